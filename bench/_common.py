"""Shared by the benchmarks in bench/ (not a benchmark itself: `make bench` skips files
that start with an underscore, and running this file without --worker does nothing).

- a moto server on 127.0.0.1 (c7n_imds_testing.moto_server, whose launch template
  listings page like AWS's);
- estates seeded through moto's backend objects in this process (the server shares
  them), because seeding 5000 groups through the API alone takes minutes;
- a worker: a separate Python process that runs one policy through c7n's own loader
  against the endpoint and reports API calls per operation (botocore before-call hooks
  on every session the policy creates), wall time, time spent inside API calls, and
  peak resident memory. A separate process keeps moto's memory out of the figure.
"""

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE_ID = "ami-12c6146b"
REQUIRED, OPTIONAL, ABSENT = "required", "optional", None
# HttpTokens by index: a quarter unset, a quarter optional, half required.
TOKEN_PATTERN = (ABSENT, OPTIONAL, REQUIRED, REQUIRED)


def progress(message):
    print(message, file=sys.stderr, flush=True)


# -- moto: AWS-like paging for launch template listings ---------------------------------


def backends():
    from moto.backends import get_backend

    return (get_backend("ec2")[ACCOUNT][REGION], get_backend("autoscaling")[ACCOUNT][REGION])


def reset(endpoint):
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    ).close()


def metadata(tokens):
    return (
        {"HttpTokens": tokens, "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"}
        if tokens
        else None
    )


def lc_kwargs(name, tokens, security_group=None):
    return dict(
        name=name,
        image_id=IMAGE_ID,
        key_name=None,
        kernel_id=None,
        ramdisk_id=None,
        security_groups=[security_group] if security_group else [],
        user_data=None,
        instance_type="t3.micro",
        instance_monitoring=True,
        instance_profile_name=None,
        spot_price=None,
        ebs_optimized=False,
        associate_public_ip_address=False,
        block_device_mappings=[],
        metadata_options=metadata(tokens),
    )


def group_kwargs(
    name, subnets, launch_config_name=None, launch_template=None, mixed_instances_policy=None
):
    return dict(
        name=name,
        availability_zones=[],
        desired_capacity=0,
        max_size=2,
        min_size=0,
        launch_config_name=launch_config_name,
        launch_template=launch_template or {},
        mixed_instances_policy=mixed_instances_policy,
        vpc_zone_identifier=",".join(subnets),
        default_cooldown=None,
        health_check_period=None,
        health_check_type=None,
        load_balancers=[],
        target_group_arns=[],
        placement_group=None,
        termination_policies=[],
        tags=[
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": "team",
                "Value": "team-%d" % (hash(name) % 7),
                "PropagateAtLaunch": True,
            }
        ],
    )


def default_network(ec2):
    vpc = [v for v in ec2.vpcs.values() if v.is_default][0]
    subnets = sorted(s.id for s in ec2.describe_subnets() if s.vpc_id == vpc.id)[:2]
    security_group = ec2.create_security_group("bench-sg", "c7n-imds bench", vpc_id=vpc.id).id
    return subnets, security_group


def seed_estate(n_lc, n_lt):
    """Seed n_lc launch-configuration groups and n_lt launch-template groups.

    Launch configurations: one per group, except every 10th group shares the previous
    group's. Templates: one per group (plus one shared IMDSv2 template that some mixed
    instances policies use as an override). Of the template groups, every 10th (index
    3) pins version "1", every 10th (index 7) follows $Latest of a two-version template
    whose default is IMDSv2 but whose latest is not necessarily, and every 5th (index
    4) is a mixed instances policy. Returns {group name: expected HttpTokens}."""
    ec2, autoscaling = backends()
    subnets, security_group = default_network(ec2)
    expected = {}
    config_tokens = {}
    for i in range(n_lc):
        config_index = i - 1 if i % 10 == 9 else i
        config = "bench-lc-%05d" % config_index
        if config not in config_tokens:
            config_tokens[config] = TOKEN_PATTERN[config_index % 4]
            autoscaling.create_launch_configuration(
                **lc_kwargs(config, config_tokens[config], security_group)
            )
        name = "bench-asg-lc-%05d" % i
        autoscaling.create_auto_scaling_group(
            **group_kwargs(name, subnets, launch_config_name=config)
        )
        expected[name] = config_tokens[config]
    shared = None
    if n_lt:
        shared = ec2.create_launch_template(
            "bench-lt-shared-imdsv2",
            None,
            {
                "ImageId": IMAGE_ID,
                "InstanceType": "t3.micro",
                "MetadataOptions": metadata(REQUIRED),
            },
            {},
        )
    for j in range(n_lt):
        tokens = TOKEN_PATTERN[j % 4]
        data = {
            "ImageId": IMAGE_ID,
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [security_group],
        }
        if tokens:
            data["MetadataOptions"] = metadata(tokens)
        name = "bench-asg-lt-%05d" % j
        if j % 10 == 7:
            template = ec2.create_launch_template(
                "bench-lt-%05d" % j, None, dict(data, MetadataOptions=metadata(REQUIRED)), {}
            )
            template.create_version(data, "latest, not default")
            spec = {"LaunchTemplateId": template.id, "Version": "$Latest"}
        else:
            template = ec2.create_launch_template("bench-lt-%05d" % j, None, data, {})
            spec = {"LaunchTemplateId": template.id, "Version": "1" if j % 10 == 3 else "$Default"}
        if j % 5 == 4:
            overrides = [{"InstanceType": "t3.micro"}, {"InstanceType": "t3.small"}]
            if j % 10 == 9:
                overrides[1]["LaunchTemplateSpecification"] = {
                    "LaunchTemplateId": shared.id,
                    "Version": "$Default",
                }
            autoscaling.create_auto_scaling_group(
                **group_kwargs(
                    name,
                    subnets,
                    mixed_instances_policy={
                        "LaunchTemplate": {
                            "LaunchTemplateSpecification": spec,
                            "Overrides": overrides,
                        }
                    },
                )
            )
        else:
            autoscaling.create_auto_scaling_group(
                **group_kwargs(name, subnets, launch_template=spec)
            )
        expected[name] = tokens
    return expected


# -- the measured process ----------------------------------------------------------------


class ApiCounter:
    """Counts API calls per operation on every session it is attached to.

    before-call fires once per API call (botocore retries happen below it); before-send
    fires once per HTTP attempt, so attempts - calls = retries. Time between before-call
    and after-call is time spent in the API (request, moto, response parsing, retries)."""

    def __init__(self, fault=None):
        self.calls = Counter()
        self.attempts = Counter()
        self.injected = Counter()
        self.dry_runs = 0
        self.api_seconds = 0.0
        self.seconds = Counter()  # per operation
        self.lock = threading.Lock()
        self.fault = fault
        self.random = random.Random(fault.get("seed", 6) if fault else 6)

    def attach(self, session):
        # unique ids: custodian may hand the same session to its subscribers twice.
        events = session.events
        events.register("before-call.*.*", self.before_call, unique_id="bench-call")
        events.register("after-call.*.*", self.after_call, unique_id="bench-done")
        events.register("after-call-error.*.*", self.after_call, unique_id="bench-error")
        events.register_first("before-send.*.*", self.before_send, unique_id="bench-send")

    def before_call(self, model, params, context, **kwargs):
        with self.lock:
            self.calls[model.name] += 1
            # params is the serialized request here (query protocol: a dict body).
            body = params.get("body")
            if isinstance(body, dict) and str(body.get("DryRun")).lower() == "true":
                self.dry_runs += 1
        context["bench-started"] = time.perf_counter()

    def after_call(self, context, event_name, **kwargs):
        started = context.get("bench-started")
        if started is not None:
            elapsed = time.perf_counter() - started
            with self.lock:
                self.api_seconds += elapsed
                self.seconds[event_name.split(".", 2)[2]] += elapsed

    def before_send(self, request, event_name, **kwargs):
        # event_name: before-send.<service id>.<operation>
        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.attempts[operation] += 1
            inject = bool(self.fault) and self.random.random() < self.fault["rate"]
            if inject:
                self.injected[operation] += 1
        if inject:
            return throttled_response(request, service)
        return None


class Latency:
    """Stands in for the network round trip to AWS: every HTTP attempt (so every API call
    and every retry) waits `milliseconds` in the thread that sends it, before it goes
    to moto. Threads sending at once wait at once, as they would on a real network.
    moto's own server time comes on top. Attached before ApiCounter, so an injected
    throttle takes its round trip too; the wait counts as time inside the API call."""

    def __init__(self, milliseconds):
        self.seconds = milliseconds / 1000.0

    def attach(self, session):
        session.events.register_first(
            "before-send.*.*", self.before_send, unique_id="bench-latency"
        )

    def before_send(self, **kwargs):
        time.sleep(self.seconds)


def throttled_response(request, service):
    """What AWS answers a throttled request with: EC2 sends RequestLimitExceeded with
    HTTP 503 (botocore's legacy retry rules expect exactly that), Auto Scaling sends
    Throttling with HTTP 400."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **kwargs):
            yield self.body

    status = 400
    if service == "ec2":
        status = 503
        body = (
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>"
            b"Request limit exceeded.</Message></Error></Errors><RequestID>"
            b"bench</RequestID></Response>"
        )
    else:
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
            b"<Message>Rate exceeded</Message></Error><RequestId>bench</RequestId>"
            b"</ErrorResponse>"
        )
    return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, Raw(body))


def maxrss_mb():
    """Peak resident memory of this process image. Not getrusage's ru_maxrss: Linux
    carries it over fork and exec, so a worker started from the (large) moto process
    would report the parent's size. VmHWM belongs to the current address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(job_path):
    """Run one policy (job file: {"policy": {...}, "fault": {...} | null,
    "latency_ms": number | null}) and write the measurements next to it."""
    job = json.loads(Path(job_path).read_text())
    from c7n.config import Config
    from c7n.credentials import SessionFactory
    from c7n.policy import PolicyCollection
    from c7n.resources import load_resources
    from c7n.utils import reset_session_cache

    import c7n_imds

    c7n_imds.register()  # importing registers; the call keeps linters quiet
    load_resources(
        ("aws.asg", "aws.launch-config", "aws.launch-template-version", "aws.ami", "aws.account")
    )
    counter = ApiCounter(job.get("fault"))
    ours = (counter.attach,)
    if job.get("latency_ms"):
        ours = (Latency(job["latency_ms"]).attach,) + ours

    class CountingSessionFactory(SessionFactory):
        # Custodian's own api-stats replace the subscribers while a policy runs; ours
        # stay attached beside theirs.
        def set_subscribers(self, subscribers):
            super().set_subscribers(tuple(subscribers) + ours)

    factory = CountingSessionFactory(REGION)
    factory.set_subscribers(())
    output_dir = tempfile.mkdtemp(prefix="c7n-imds-bench-")
    config = Config.empty(
        region=REGION, output_dir=output_dir, cache="", cache_period=0, account_id=ACCOUNT
    )
    policies = list(
        PolicyCollection.from_data({"policies": [job["policy"]]}, config, session_factory=factory)
    )
    for policy in policies:
        policy.validate()
    reset_session_cache()
    baseline = maxrss_mb()
    started = time.perf_counter()
    error = None
    try:
        resources = policies[0]() or []
    except Exception as e:  # reported, and the parent decides
        resources, error = [], "%s: %s" % (type(e).__name__, e)
    wall = time.perf_counter() - started
    # Custodian counts calls too (after-call, so successful calls only): a cross-check.
    stats = {}
    for metadata_file in Path(output_dir).glob("*/metadata.json"):
        stats = json.loads(metadata_file.read_text()).get("metrics", {})
        stats = json.loads(metadata_file.read_text()).get("api-stats", stats)
    result = {
        "custodian_api_stats": stats,
        "matched": sorted(r["AutoScalingGroupName"] for r in resources),
        "calls": dict(counter.calls),
        "attempts": dict(counter.attempts),
        "injected": dict(counter.injected),
        "dry_runs": counter.dry_runs,
        "wall": wall,
        "api_seconds": counter.api_seconds,
        "seconds": dict(counter.seconds),
        "maxrss_mb": maxrss_mb(),
        "baseline_mb": baseline,
        "error": error,
        "output_dir": output_dir,
        "paced_seconds": paced_seconds(),
    }
    Path(job_path).with_suffix(".out.json").write_text(json.dumps(result))


def paced_seconds():
    """Seconds this process's requests waited for c7n_imds's client-side pacing (summed
    over threads), or None where the product has no pacing."""
    pacer = getattr(sys.modules.get("c7n_imds.pacing"), "PACER", None)
    return getattr(pacer, "waited", None)


def run_worker(endpoint, policy, fault=None, extra_env=None, latency_ms=None):
    """Run a policy in a fresh process against the endpoint; returns its measurements.
    latency_ms: a delay added to every HTTP attempt of that process (see Latency)."""
    from c7n_imds_testing import aws_env

    job = Path(tempfile.mkdtemp(prefix="c7n-imds-bench-job-")) / "job.json"
    job.write_text(json.dumps({"policy": policy, "fault": fault, "latency_ms": latency_ms}))
    env = aws_env(endpoint)
    env["HOME"] = os.environ.get("HOME", "/tmp")
    env.update(extra_env or {})
    process = subprocess.run(
        [sys.executable, __file__, "--worker", str(job)], env=env, capture_output=True, text=True
    )
    if process.returncode != 0:
        raise RuntimeError("bench worker failed:\n%s" % process.stderr[-4000:])
    return json.loads(job.with_suffix(".out.json").read_text())


def fmt_table(headers, rows):
    from tabulate import tabulate

    return tabulate(rows, headers=headers, disable_numparse=True, stralign="right")


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    worker(sys.argv[2])

"""Organization cost: the real `c7n-imds org run` (c7n-org) over many moto accounts.

A moto server on 127.0.0.1 holds 20 accounts x 2 regions (us-east-1, eu-west-1), each
account-region a small estate (25 groups by default: four in five on their own launch
configuration, HttpTokens a quarter unset, a quarter optional, half required; every
fifth on a launch template), seeded through moto's backend objects in this process. c7n-org
assumes `arn:aws:iam::<account>:role/c7n-imds` per account (accounts.yml `role:`), and
moto binds the credentials it hands out to that account, so each account's resources
live in its own backend, exactly as they would in separate AWS accounts.

Two policies, each run through the real command in a subprocess
(`c7n-imds org run -c accounts.yml -s OUT -u POLICY.yml --cache-period 0`):

- scan: policies/detect.yml's `autoscaling-3-asg-launch-configuration-imdsv1`
  (read-only, so every worker count runs against the same estate);
- remediate: policies/remediate.yml's `autoscaling-3-convert-to-imdsv2-launch-template`
  as shipped; its imdsv1-usage gate (`missing: zero`) costs no call here because the
  groups have no instances. The estate is reset and seeded again before every run.

c7n-org's worker count is C7N_ORG_PARALLEL (c7n-org has no command-line option for it;
its default is 4 x CPUs). Counted on the server side in this process: a WSGI layer around
moto's dispatcher reads each request's SigV4 credential scope (access key -> account
through moto's own key table; region), and its operation (query `Action`, JSON
`X-Amz-Target`, or the RPC path). AssumeRole is counted for the account in its RoleArn.
--latency-ms adds a server-side delay to every request (each request has its own server
thread, so concurrent requests wait at once): it stands in for the round trip to AWS;
moto's own time comes on top. Default 0: moto on loopback.

c7n_imds paces its own EC2 and Auto Scaling requests client-side (a share of AWS's
token bucket per API, per process and region): the remediation's DryRun RunInstances
per converted group is what bounds it, so its default worker counts start at 4.

    python bench/org.py [--accounts 20] [--groups 25] [--workers 1,2,4]
                        [--remediate-workers 4,16] [--latency-ms 0]
                        [--policies scan,remediate] [--keep]
"""

import argparse
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1")
ROLE = "arn:aws:iam::%s:role/c7n-imds"
SCAN = ("scan", "detect.yml", "autoscaling-3-asg-launch-configuration-imdsv1")
REMEDIATE = ("remediate", "remediate.yml", "autoscaling-3-convert-to-imdsv2-launch-template")
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/")
ROLE_ACCOUNT = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):")


def account_ids(count):
    return ["%012d" % (210000000000 + i) for i in range(count)]


def account_name(account_id):
    return "acct-%s" % account_id[-2:]


# -- the estate ----------------------------------------------------------------------------


def seed(accounts, groups):
    """Seed every account-region; returns {(account, region): {group: HttpTokens}} for the
    launch-configuration groups (the ones both policies judge)."""
    from moto.backends import get_backend

    ec2_backends, autoscaling_backends = get_backend("ec2"), get_backend("autoscaling")
    expected = {}
    for account_id in accounts:
        for region in REGIONS:
            ec2 = ec2_backends[account_id][region]
            autoscaling = autoscaling_backends[account_id][region]
            subnets, security_group = common.default_network(ec2)
            launch_configuration_groups = {}
            for i in range(groups):
                tokens = common.TOKEN_PATTERN[i % 4]
                name = "app-%03d" % i
                if i % 5 == 4:
                    data = {
                        "ImageId": common.IMAGE_ID,
                        "InstanceType": "t3.micro",
                        "SecurityGroupIds": [security_group],
                    }
                    if tokens:
                        data["MetadataOptions"] = common.metadata(tokens)
                    template = ec2.create_launch_template("lt-" + name, None, data, {})
                    autoscaling.create_auto_scaling_group(
                        **common.group_kwargs(
                            name,
                            subnets,
                            launch_template={
                                "LaunchTemplateId": template.id,
                                "Version": "$Default",
                            },
                        )
                    )
                    continue
                autoscaling.create_launch_configuration(
                    **common.lc_kwargs("lc-" + name, tokens, security_group)
                )
                autoscaling.create_auto_scaling_group(
                    **common.group_kwargs(name, subnets, launch_config_name="lc-" + name)
                )
                launch_configuration_groups[name] = tokens
            expected[(account_id, region)] = launch_configuration_groups
    return expected


def converted(expected):
    """{(account, region): seeded launch-configuration groups that now launch from a
    template version with HttpTokens required}, from moto's state. moto keeps
    LaunchConfigurationName beside the template after the switch, so the template is
    what counts."""
    from moto.backends import get_backend

    autoscaling_backends = get_backend("autoscaling")
    result = {}
    for (account_id, region), seeded in expected.items():
        groups = autoscaling_backends[account_id][region].autoscaling_groups
        result[(account_id, region)] = names = set()
        for name in seeded:
            template = getattr(groups[name], "ec2_launch_template", None)
            if template is None:
                continue
            data = template.get_version(groups[name].launch_template_version).data
            if (data.get("MetadataOptions") or {}).get("HttpTokens") == common.REQUIRED:
                names.add(name)
    return result


# -- counting on the server side -----------------------------------------------------------


class ServerCounter:
    """A WSGI layer around moto's dispatcher: counts requests per (account, region,
    service, operation), records when the first and last arrived, how long the server
    had at least one request in flight, and optionally delays each request."""

    def __init__(self, latency_ms=0.0):
        self.latency = latency_ms / 1000.0
        self.lock = threading.Lock()
        self.account_of_key = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.calls = Counter()
            self.first = self.last = None
            self.in_flight, self.busy, self.busy_since = 0, 0.0, None

    def account(self, access_key):
        if access_key not in self.account_of_key:
            from moto.iam.models import get_account_id_from

            self.account_of_key[access_key] = get_account_id_from(access_key)
        return self.account_of_key[access_key]

    def key(self, environ):
        scope = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not scope:
            return None  # moto-api, not an AWS call
        access_key, region, service = scope.groups()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET")
        form = {}
        if target:
            operation = target.rsplit(".", 1)[-1]
        else:
            if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            action = (form.get("Action") or query.get("Action") or [None])[0]
            operation = action or environ.get("PATH_INFO", "/").rstrip("/").rsplit("/", 1)[-1]
        account_id = self.account(access_key)
        if operation == "AssumeRole":
            # made with the caller's keys; it belongs to the account it enters
            role = ROLE_ACCOUNT.search((form.get("RoleArn") or [""])[0])
            account_id = role.group(1) if role else account_id
        return account_id, region, service, operation

    def middleware(self, app):
        def counted(environ, start_response):
            key = self.key(environ)
            if key is None:
                return app(environ, start_response)
            now = time.perf_counter()
            with self.lock:
                self.calls[key] += 1
                self.first = now if self.first is None else self.first
                if self.in_flight == 0:
                    self.busy_since = now
                self.in_flight += 1
            try:
                if self.latency:
                    time.sleep(self.latency)
                # moto answers with a list of bytes; consumed here so the timing holds
                return list(app(environ, start_response))
            finally:
                now = time.perf_counter()
                with self.lock:
                    self.last = now
                    self.in_flight -= 1
                    if self.in_flight == 0:
                        self.busy += now - self.busy_since

        return counted


def install(counter):
    """Route every request of moto's servers in this process through the counter."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__
    if getattr(dispatch, "bench_counted", False):
        return

    def counted_call(self, environ, start_response):
        return counter.middleware(lambda e, s: dispatch(self, e, s))(environ, start_response)

    counted_call.bench_counted = True
    DomainDispatcherApplication.__call__ = counted_call


# -- one run -------------------------------------------------------------------------------


def policy_file(directory, source, name):
    data = yaml.safe_load((common.REPO / "policies" / source).read_text())
    policies = [p for p in data["policies"] if p["name"] == name]
    if not policies:
        raise SystemExit("policies/%s has no policy %s" % (source, name))
    path = Path(directory) / ("%s.yml" % name)
    path.write_text(yaml.safe_dump({"policies": policies}))
    return path


def run_org(endpoint, counter, accounts_file, policy_path, workers, work):
    """Run `c7n-imds org run` once; returns its measurements."""
    from c7n_imds_testing import aws_env

    out = Path(work) / ("out-%s-j%d" % (policy_path.stem, workers))
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    (home / "cache").mkdir()
    env = dict(aws_env(endpoint), HOME=str(home), C7N_ORG_PARALLEL=str(workers))
    command = [
        str(Path(sys.executable).with_name("c7n-imds")),
        "org",
        "run",
        "-c",
        str(accounts_file),
        "-s",
        str(out),
        "-u",
        str(policy_path),
        "--cache-period",
        "0",
        "--cache-path",
        str(home / "cache"),
    ]
    counter.reset()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    started = time.perf_counter()
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with counter.lock:
        calls = Counter(counter.calls)
        first = counter.first - started if counter.first else None
        window = counter.last - counter.first if counter.first else 0.0
        busy = counter.busy
    errors = [
        line
        for line in process.stderr.splitlines()
        if "Exception running policy" in line
        or "Error running policy" in line
        or "Traceback" in line
    ]
    return {
        "out": out,
        "returncode": process.returncode,
        "stderr": process.stderr,
        "errors": errors,
        "wall": wall,
        "calls": calls,
        "first_call": first,
        "window": window,
        "busy": busy,
        "server_cpu": cpu,
        "client_cpu": (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime),
    }


def matched(out, accounts, policy):
    """{(account, region): matched group names}, from c7n-org's output layout."""
    result = {}
    for account_id in accounts:
        for region in REGIONS:
            path = Path(out) / account_name(account_id) / region / policy / "resources.json"
            resources = json.loads(path.read_text()) if path.exists() else []
            result[(account_id, region)] = {r["AutoScalingGroupName"] for r in resources}
    return result


def per_account_region(calls, accounts):
    """{(account, region): Counter(operation)} for our accounts, STS apart ({account:
    calls}: custodian signs AssumeRole for STS's global endpoint, us-east-1, whatever
    region it then works in, so STS calls belong to an account, not a region), and the
    calls outside our accounts."""
    ours, sts, outside = defaultdict(Counter), Counter(), Counter()
    for (account_id, region, service, operation), n in calls.items():
        if account_id not in accounts:
            outside["%s:%s" % (service, operation)] += n
        elif service == "sts":
            sts[account_id] += n
        else:
            ours[(account_id, region)]["%s:%s" % (service, operation)] += n
    return ours, sts, outside


# -- the report ----------------------------------------------------------------------------


def summarize(label, workers, result, accounts, expected_matches):
    ours, sts, outside = per_account_region(result["calls"], accounts)
    totals = [sum(ours[(a, r)].values()) for a in accounts for r in REGIONS]
    correct = sum(
        1 for key, names in expected_matches.items() if result["checked"].get(key) == names
    )
    status = (
        "ok"
        if result["returncode"] == 0 and not result["errors"]
        else ("exit %d, %d error lines" % (result["returncode"], len(result["errors"])))
    )
    return [
        label,
        workers,
        "%.1f" % result["wall"],
        "%.1f" % (result["first_call"] or 0),
        "%.1f" % result["window"],
        "%.1f" % result["busy"],
        "%.1f" % result["server_cpu"],
        "%.1f" % result["client_cpu"],
        sum(result["calls"].values()),
        "%.1f" % (sum(totals) / len(totals)),
        "%d-%d" % (min(totals), max(totals)),
        "%.1f" % (sum(sts.values()) / len(totals)),
        sum(outside.values()),
        "%d/%d %s" % (correct, len(expected_matches), status),
    ]


def operations_table(results, accounts):
    rows = []
    for label, _, result in results:
        ours, sts, _ = per_account_region(result["calls"], accounts)
        operations = Counter()
        for counts in ours.values():
            operations.update(counts)
        n = len(accounts) * len(REGIONS)
        for operation, count in sorted(operations.items(), key=lambda i: -i[1]):
            per = [ours[(a, r)].get(operation, 0) for a in accounts for r in REGIONS]
            rows.append([label, operation, "%.2f" % (count / n), "%d-%d" % (min(per), max(per))])
        per = [sts.get(a, 0) for a in accounts]
        rows.append(
            [
                label,
                "sts (AssumeRole), per account",
                "%.2f" % (sum(per) / len(per)),
                "%d-%d" % (min(per), max(per)),
            ]
        )
    return common.fmt_table(["policy", "operation", "per account-region", "min-max"], rows)


def pacing_floor(result, accounts, workers):
    """The least wall time c7n_imds's client-side pacing allows this run: per
    account-region, the slowest API's calls through its paced bucket (the product's
    own share of AWS's bucket, starting full), times the account-regions each worker
    takes one after another. None where the product has no pacing model."""
    try:
        from c7n_imds.model.rates import DEFAULT_BUDGET, aws_bucket, bound_seconds
    except ImportError:
        return None
    ours, _, _ = per_account_region(result["calls"], accounts)
    per_task = 0.0
    for counts in ours.values():
        for operation, n in counts.items():
            service, name = operation.split(":", 1)
            bucket = aws_bucket(service, name)
            if bucket is not None:
                per_task = max(per_task, bound_seconds(n, bucket.share(DEFAULT_BUDGET)))
    tasks = len(ours)
    return per_task * -(-tasks // workers)


def scaling_table(runs, accounts):
    rows = []
    for label in dict.fromkeys(label for label, _, _ in runs):
        mine = [(w, r) for lab, w, r in runs if lab == label]
        base_workers, base = mine[0][0], mine[0][1]["wall"]
        for workers, result in mine:
            cpus = os.cpu_count() or 1
            floor = pacing_floor(result, accounts, workers)
            rows.append(
                [
                    label,
                    workers,
                    "%.1f" % result["wall"],
                    "-" if floor is None else "%.1f" % floor,
                    "%.2fx" % (base / result["wall"]),
                    "%.0f%%" % (100.0 * base * base_workers / result["wall"] / workers),
                    "%.0f%%" % (100.0 * result["server_cpu"] / result["wall"]),
                    "%.0f%%"
                    % (
                        100.0
                        * (result["server_cpu"] + result["client_cpu"])
                        / result["wall"]
                        / cpus
                    ),
                ]
            )
    return common.fmt_table(
        [
            "policy",
            "workers",
            "wall s",
            "pacing floor s",
            "speed-up vs first",
            "efficiency per worker",
            "moto CPU / wall",
            "all CPUs busy",
        ],
        rows,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument(
        "--groups", type=int, default=25, help="groups per account-region (default 25)"
    )
    parser.add_argument(
        "--workers",
        default="1,2,4",
        help="c7n-org worker counts for the scan, comma-separated (default 1,2,4)",
    )
    parser.add_argument(
        "--remediate-workers",
        default="4,16",
        help="c7n-org worker counts for the remediation (default 4,16: "
        "paced, one worker takes about 8 s per account-region)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="server-side delay per request, standing in for the round trip to AWS (default 0)",
    )
    parser.add_argument(
        "--policies", default="scan,remediate", help="which runs: scan, remediate or both (default)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the output folders")
    options = parser.parse_args(argv)
    worker_counts = {
        "scan": [int(w) for w in options.workers.split(",") if w],
        "remediate": [int(w) for w in options.remediate_workers.split(",") if w],
    }
    chosen = [p for p in (SCAN, REMEDIATE) if p[0] in options.policies.split(",")]
    accounts = account_ids(options.accounts)
    work = tempfile.mkdtemp(prefix="c7n-imds-bench-org-")
    accounts_file = Path(work) / "accounts.yml"
    accounts_file.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {
                        "account_id": a,
                        "name": account_name(a),
                        "role": ROLE % a,
                        "regions": list(REGIONS),
                    }
                    for a in accounts
                ]
            }
        )
    )

    from c7n_imds_testing import moto_server

    counter = ServerCounter(options.latency_ms)
    install(counter)
    runs, first_runs = [], []
    bench_started = time.perf_counter()
    with moto_server() as endpoint:
        for label, source, name in chosen:
            path = policy_file(work, source, name)
            for workers in worker_counts[label]:
                common.reset(endpoint)
                started = time.perf_counter()
                expected = seed(accounts, options.groups)
                should = {
                    k: {g for g, t in v.items() if t != common.REQUIRED}
                    for k, v in expected.items()
                }
                seeded = time.perf_counter() - started
                result = run_org(endpoint, counter, accounts_file, path, workers, work)
                if label == "scan":
                    result["checked"] = matched(result["out"], accounts, name)
                else:
                    result["checked"] = converted(expected)
                runs.append((label, workers, result))
                if workers == worker_counts[label][0]:
                    first_runs.append((label, workers, result))
                common.progress(
                    "%s -j%d: %.1fs, %d calls, exit %d (seeded in %.1fs)"
                    % (
                        label,
                        workers,
                        result["wall"],
                        sum(result["calls"].values()),
                        result["returncode"],
                        seeded,
                    )
                )
                if result["returncode"] or result["errors"]:
                    common.progress(result["stderr"][-3000:])
                if not options.keep:
                    shutil.rmtree(result["out"], ignore_errors=True)
                result["row"] = summarize(label, workers, result, accounts, should)

    n = len(accounts) * len(REGIONS)
    print(
        "c7n-org: `c7n-imds org run` over %d accounts x %d regions (%s), %d groups each "
        "(%d in all), moto %s on 127.0.0.1, %g ms added per request, %d CPUs; bench ran "
        "%.0fs"
        % (
            len(accounts),
            len(REGIONS),
            ", ".join(REGIONS),
            options.groups,
            options.groups * n,
            moto_version(),
            options.latency_ms,
            os.cpu_count(),
            time.perf_counter() - bench_started,
        )
    )
    print(
        "  first call: seconds from start to the first request (c7n-org and custodian "
        "start-up); API window: first to last request; server busy: time with a request "
        "in flight; moto CPU: this process (the server); c7n-org CPU: the command and "
        "its workers"
    )
    print(
        "  calls/acct-region: EC2, Auto Scaling and CloudWatch calls of one "
        "account-region; STS/acct-region: AssumeRole calls over account-regions; "
        "correct: account-regions whose matched (scan) or converted (remediate) groups "
        "are exactly the expected ones"
    )
    print(
        common.fmt_table(
            [
                "policy",
                "workers",
                "wall s",
                "first call s",
                "API window s",
                "server busy s",
                "moto CPU s",
                "c7n-org CPU s",
                "calls",
                "calls/acct-region",
                "min-max",
                "STS/acct-region",
                "outside accounts",
                "correct",
            ],
            [result["row"] for _, _, result in runs],
        )
    )
    print()
    print(
        "API calls per account-region by operation (%s)"
        % ", ".join("%s with %d workers" % (label, workers) for label, workers, _ in first_runs)
    )
    print(operations_table(first_runs, accounts))
    print()
    print("Scaling with c7n-org's worker count (C7N_ORG_PARALLEL)")
    print(
        "  pacing floor: per account-region, the slowest API's calls through "
        "c7n_imds's paced share of its bucket (c7n_imds.model.rates, starting full), "
        "times the account-regions a worker takes in turn; all CPUs busy: moto and "
        "c7n-org CPU over wall x %d CPUs" % (os.cpu_count() or 1)
    )
    print(scaling_table(runs, accounts))
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("\noutput kept in %s" % work)
    ok = all(r["returncode"] == 0 and not r["errors"] for _, _, r in runs)
    return 0 if ok else 1


def moto_version():
    import moto

    return moto.__version__


if __name__ == "__main__":
    sys.exit(main())

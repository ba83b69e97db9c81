"""Remediation under AWS's request limits: the pack's remediation policies on N groups.

A moto server on 127.0.0.1 holds N Auto Scaling groups (_common.seed_estate: half on
launch configurations - one each, every 10th shares its neighbour's - half on launch
templates following $Default, pinned to a version number, following $Latest, or in a
mixed instances policy; a quarter leave HttpTokens unset, a quarter set optional, half
require IMDSv2). In front of it, bench/bucket_proxy.py throttles every EC2 and Auto
Scaling API with AWS's token bucket ("Request throttling for the Amazon EC2 API"),
answering an empty bucket with RequestLimitExceeded / Throttling as AWS does, every
bucket `--scale` times faster; `--background` has a busy account take that share of
each bucket's refill beside the run.

The two remediation policies of policies/remediate.yml (convert-to-launch-template
and set-metadata-access, exactly as shipped; groups without instances count as making
no IMDSv1 calls) run one after the other in one fresh process, as `c7n-imds run` runs
them, with C7N_IMDS_RATE_SCALE = the proxy's scale and the actions' `rate-budget` set
to `--budget`. Afterwards the estate is read back from moto: every targeted group must
launch IMDSv2 only (every template version it launches, and the default version of
each of those templates, HttpTokens required), no other group may have changed,
nothing may have launched, and no launch configuration may have two templates.

Printed: groups to fix and failed, throttled answers (to the run, and to the
background load), whether any group failed on a throttling error (a retry budget
exhausted), calls per group by API, wall time, and the bucket-bound minimum: for each
API, the least time its calls take through the run's share of the bucket (burst at
once, then the refill rate: rates.bound_seconds), the largest over APIs since buckets
refill in parallel. Goal: wall / bound <= 1.15 at the default budget, also with
background load as long as budget + background <= 1. The proxy also counts requests
beyond the run's budget ("over budget": a run that has them is not pacing itself, and
its bound means nothing), and the bench shows where the bounding API's bucket sat
unused and which calls the run made meanwhile.

Throttling itself (and the retries' correctness under it) comes from the proxy, as in
an account: `--budget 1 --background 0.5` asks for more than the buckets hold.

What --scale changes beside the speed: moto's own service time stays unscaled (at
--scale 10 a second moto spends reading counts like ten at AWS's rates), so a scaled
run's ratio reads a little high; rates.Bucket.scaled speeds up refills only - the burst
stays, as a faster clock would leave it - so the phases AWS's real buckets make wait
still wait.

    python bench/remediate.py [--size 1000] [--scale 10] [--budget 0.5]
                              [--background 0,0.3] [--latency-ms 0]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from bucket_proxy import BucketProxy  # noqa: E402

from c7n_imds.model.rates import DEFAULT_BUDGET, aws_bucket, bound_seconds  # noqa: E402
from c7n_imds.names import CONVERT_ACTION, SET_ACCESS_ACTION, SOURCE_TAG  # noqa: E402

POLICY_FILE = common.REPO / "policies" / "remediate.yml"
REMEDIATION_ACTIONS = (CONVERT_ACTION, SET_ACCESS_ACTION)
THROTTLED = ("RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled")
GOAL = 1.15


def remediation_policies():
    """The shipped policies whose action remediates (the notify and report-only ones
    change nothing and are left out)."""
    import yaml

    policies = yaml.safe_load(POLICY_FILE.read_text())["policies"]
    return [
        p
        for p in policies
        if any(a.get("type") in REMEDIATION_ACTIONS for a in p.get("actions") or ())
    ]


def scaled_share(service, api, budget, scale):
    """The run's client-side bucket for an API: what c7n_imds.pacing allows itself."""
    return aws_bucket(service, api).share(budget).scaled(scale)


# -- the measured process -------------------------------------------------------------


class Timeline:
    """When each API call started and ended (time.monotonic: one clock for this
    process and the proxy), to see where the bounding API's bucket sat unused."""

    def __init__(self):
        self.calls = []  # [start, end, operation]
        self.lock = threading.Lock()

    def attach(self, session):
        events = session.events
        events.register("before-call.*.*", self.before, unique_id="bench-timeline-start")
        events.register("after-call.*.*", self.after, unique_id="bench-timeline-end")
        events.register("after-call-error.*.*", self.after, unique_id="bench-timeline-error")

    def before(self, context, **kwargs):
        context["bench-timeline"] = time.monotonic()

    def after(self, context, event_name, **kwargs):
        if "bench-timeline" in context:
            with self.lock:
                self.calls.append(
                    [context["bench-timeline"], time.monotonic(), event_name.split(".", 2)[2]]
                )


def worker(job_path):
    """Run the job's policies in order in this process (as custodian does for one
    policy file) and write the measurements next to the job file."""
    job = json.loads(Path(job_path).read_text())
    from c7n.config import Config
    from c7n.credentials import SessionFactory
    from c7n.policy import PolicyCollection
    from c7n.resources import load_resources
    from c7n.resources.asg import ASG
    from c7n.utils import reset_session_cache

    import c7n_imds
    from c7n_imds import pacing

    c7n_imds.register()
    load_resources(
        ("aws.asg", "aws.launch-config", "aws.launch-template-version", "aws.ami", "aws.account")
    )
    budget = job["budget"]
    option = all(
        "rate-budget" in ASG.action_registry.get(a).schema["properties"]
        for a in REMEDIATION_ACTIONS
    )
    data = json.loads(json.dumps(job["policies"]))
    for policy in data if option else ():
        for action in policy["actions"]:
            action["rate-budget"] = budget
    counter, timeline = common.ApiCounter(), Timeline()

    class CountingSessionFactory(SessionFactory):
        def set_subscribers(self, subscribers):
            super().set_subscribers(tuple(subscribers) + (counter.attach, timeline.attach))

    factory = CountingSessionFactory(common.REGION)
    factory.set_subscribers(())
    output_dir = tempfile.mkdtemp(prefix="c7n-imds-bench-")
    config = Config.empty(
        region=common.REGION,
        output_dir=output_dir,
        cache="",
        cache_period=0,
        account_id=common.ACCOUNT,
    )
    policies = list(PolicyCollection.from_data({"policies": data}, config, session_factory=factory))
    for policy in policies:
        policy.validate()
    reset_session_cache()
    runs = []
    started, clock_started = time.perf_counter(), time.monotonic()
    for policy in policies:
        before, policy_started = Counter(counter.calls), time.perf_counter()
        clock_policy_started = time.monotonic()
        error, failures, resources = None, {}, []
        try:
            resources = policy() or []
        except Exception as e:  # reported; the parent decides
            error = "%s: %s" % (type(e).__name__, e)
            failures = getattr(e, "failures", None) or {}
        runs.append(
            {
                "name": policy.name,
                "error": error,
                "failures": failures,
                "matched": sorted(r["AutoScalingGroupName"] for r in resources),
                "calls": dict(counter.calls - before),
                "wall": time.perf_counter() - policy_started,
                "span": [clock_policy_started, time.monotonic()],
            }
        )
    wall = time.perf_counter() - started
    result = {
        "runs": runs,
        "wall": wall,
        "calls": dict(counter.calls),
        "attempts": dict(counter.attempts),
        "dry_runs": counter.dry_runs,
        "api_seconds": counter.api_seconds,
        "budget_option": option,
        "span": [clock_started, time.monotonic()],
        "timeline": timeline.calls,
        "pacer": {
            "sent": pacing.PACER.sent,
            "waited": pacing.PACER.waited,
            "scale": getattr(pacing.PACER, "scale", None),
            "budget": pacing.PACER.budget,
        },
    }
    Path(job_path).with_suffix(".out.json").write_text(json.dumps(result))


def run_worker(endpoint, scale, budget):
    from c7n_imds_testing import aws_env

    job = Path(tempfile.mkdtemp(prefix="c7n-imds-bench-job-")) / "job.json"
    job.write_text(json.dumps({"policies": remediation_policies(), "budget": budget}))
    env = aws_env(endpoint)
    env.update(HOME=os.environ.get("HOME", "/tmp"), C7N_IMDS_RATE_SCALE=str(scale))
    process = subprocess.run(
        [sys.executable, __file__, "--worker", str(job)], env=env, capture_output=True, text=True
    )
    if process.returncode != 0:
        raise RuntimeError("bench worker failed:\n%s" % process.stderr[-4000:])
    return json.loads(job.with_suffix(".out.json").read_text())


# -- the estate, before and after ----------------------------------------------------


def clients(endpoint):
    import boto3

    session = boto3.Session(
        region_name=common.REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return (
        session.client("ec2", endpoint_url=endpoint),
        session.client("autoscaling", endpoint_url=endpoint),
    )


def all_groups(autoscaling):
    return {
        g["AutoScalingGroupName"]: g
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
            PaginationConfig={"PageSize": 100}
        )
        for g in page["AutoScalingGroups"]
    }


def launch_specs(group):
    """Every template specification a group launches from; [] for a launch
    configuration. moto keeps LaunchConfigurationName beside a template after a
    switch (AWS does not): the template wins."""
    if group.get("LaunchTemplate"):
        return [group["LaunchTemplate"]]
    policy = (group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    if not policy:
        return []
    return [policy["LaunchTemplateSpecification"]] + [
        o["LaunchTemplateSpecification"]
        for o in policy.get("Overrides") or ()
        if o.get("LaunchTemplateSpecification")
    ]


def launch_identity(group):
    return json.dumps(
        [
            group.get("LaunchConfigurationName") if not launch_specs(group) else None,
            launch_specs(group),
        ],
        sort_keys=True,
    )


def verify(endpoint, expected, before):
    """(problems, groups fixed) from the estate read back directly from moto."""
    ec2, autoscaling = clients(endpoint)
    groups = all_groups(autoscaling)
    tokens_of = {}

    def tokens(template_id, version):
        if (template_id, version) not in tokens_of:
            found = ec2.describe_launch_template_versions(
                LaunchTemplateId=template_id, Versions=[str(version)]
            )
            data = found["LaunchTemplateVersions"][0].get("LaunchTemplateData") or {}
            tokens_of[template_id, version] = (data.get("MetadataOptions") or {}).get("HttpTokens")
        return tokens_of[template_id, version]

    problems, fixed = [], 0
    for name, wanted in sorted(expected.items()):
        group = groups[name]
        if wanted == common.REQUIRED:
            if launch_identity(group) != before[name]:
                problems.append("%s was already IMDSv2 but changed" % name)
            continue
        specs = launch_specs(group)
        if not specs:
            problems.append("%s still launches from a launch configuration" % name)
            continue
        wrong = []
        for spec in specs:
            template_id = (
                spec.get("LaunchTemplateId")
                or ec2.describe_launch_templates(LaunchTemplateNames=[spec["LaunchTemplateName"]])[
                    "LaunchTemplates"
                ][0]["LaunchTemplateId"]
            )
            for version in {spec.get("Version") or "$Default", "$Default"}:
                if tokens(template_id, version) != common.REQUIRED:
                    wrong.append(
                        "%s %s: HttpTokens %s"
                        % (template_id, version, tokens(template_id, version))
                    )
        if wrong:
            problems.append("%s not compliant (%s)" % (name, "; ".join(wrong)))
        else:
            fixed += 1
    sources = Counter(
        {t["Key"]: t["Value"] for t in template.get("Tags") or ()}.get(SOURCE_TAG)
        for page in ec2.get_paginator("describe_launch_templates").paginate(
            PaginationConfig={"PageSize": 200}
        )
        for template in page["LaunchTemplates"]
    )
    sources.pop(None, None)
    duplicates = sorted(source for source, n in sources.items() if n > 1)
    if duplicates:
        problems.append("launch configurations with several templates: %s" % duplicates[:3])
    launched = len(list(common.backends()[0].all_reservations()))
    if launched:
        problems.append("%d reservations launched (a DryRun must launch nothing)" % launched)
    return problems, fixed


# -- one measured run ------------------------------------------------------------------


def measure(endpoint, size, scale, budget, background, latency_ms):
    common.reset(endpoint)
    expected = common.seed_estate(size // 2, size - size // 2)
    before = {n: launch_identity(g) for n, g in all_groups(clients(endpoint)[1]).items()}
    to_fix = sorted(n for n, t in expected.items() if t != common.REQUIRED)
    label = "budget %g, background %g" % (budget, background)
    common.progress("N=%d %s: %d groups to fix; running ..." % (size, label, len(to_fix)))
    # The round trip is scaled with the buckets, so that the run keeps AWS's shape.
    proxy = BucketProxy(
        endpoint,
        scale=scale,
        background=background,
        latency=latency_ms / 1000.0 / scale,
        watch=budget,
    )
    with proxy as proxy_url:
        result = run_worker(proxy_url, scale, budget)
    result["proxy"] = stats = proxy.stats()
    problems, fixed = verify(endpoint, expected, before)
    failures = {g: r for run in result["runs"] for g, r in run["failures"].items()}
    errors = [run["error"] for run in result["runs"] if run["error"]]
    if errors and not failures:
        problems.insert(0, "policy run failed: %s" % errors[0][:500])
    result.update(
        size=size,
        scale=scale,
        budget=budget,
        background=background,
        label=label,
        to_fix=len(to_fix),
        fixed=fixed,
        problems=problems,
        failures=failures,
        throttle_failures=sorted(
            g for g, r in failures.items() if any(code in r for code in THROTTLED)
        ),
        apis=per_api(result, stats, budget, scale),
    )
    result["bound"] = max([a["bound"] for a in result["apis"]] or [0.0])
    common.progress(
        "N=%d %s: %.1fs (bound %.1fs), %d/%d fixed, %d throttled, %s"
        % (
            size,
            label,
            result["wall"],
            result["bound"],
            fixed,
            len(to_fix),
            sum(a["throttled"] for a in result["apis"]),
            "correct" if not problems else "; ".join(problems[:3]),
        )
    )
    return result


def per_api(result, proxy, budget, scale):
    """Per paced API: calls, the run's bucket, its bound, when the proxy saw it."""
    start = min((s["first"] for s in proxy.values() if "first" in s), default=0.0)
    apis = []
    for key, seen in proxy.items():
        service, api = key.split(":", 1)
        if aws_bucket(service, api) is None:
            continue
        calls = result["calls"].get(api, 0)
        share = scaled_share(service, api, budget, scale)
        apis.append(
            {
                "api": api,
                "service": service,
                "calls": calls,
                "attempts": seen["requests"],
                "throttled": seen["throttled"],
                "over_share": seen["over_share"],
                "background": seen["background"],
                "background_throttled": seen["background_throttled"],
                "burst": share.burst,
                "refill": share.refill,
                "bound": bound_seconds(calls, share),
                "bound_unscaled": bound_seconds(calls, scaled_share(service, api, budget, 1.0)),
                "from": seen.get("first", start) - start,
                "to": seen.get("last", start) - start,
            }
        )
    return sorted(apis, key=lambda a: -a["bound"])


# -- report ---------------------------------------------------------------------------


def summary_row(result):
    apis = result["apis"]
    bounding = apis[0]["api"] if apis else "-"
    ratio = result["wall"] / result["bound"] if result["bound"] else float("nan")
    return [
        result["size"],
        "%g" % result["budget"],
        "%g" % result["background"],
        "%g" % result["scale"],
        result["to_fix"],
        len(result["failures"]),
        "%d/%d" % (result["fixed"], result["to_fix"]),
        sum(a["throttled"] for a in apis),
        sum(a["background_throttled"] for a in apis),
        sum(a["over_share"] for a in apis),
        "yes (%d groups)" % len(result["throttle_failures"])
        if result["throttle_failures"]
        else "no",
        "%.1f" % result["wall"],
        "%.1f" % result["bound"],
        bounding,
        "%.2f" % ratio,
        "ok" if not result["problems"] else "WRONG",
    ]


def api_rows(result):
    groups = result["to_fix"] or 1
    rows = []
    for a in result["apis"]:
        rows.append(
            [
                a["service"],
                a["api"],
                a["calls"],
                "%.2f" % (a["calls"] / groups),
                a["attempts"],
                a["throttled"],
                a["over_share"],
                "%g/%g" % (a["burst"], a["refill"]),
                "%.1f" % a["bound"],
                "%.0f" % a["bound_unscaled"],
                "%.1f-%.1f" % (a["from"], a["to"]),
                "%.1f" % (a["to"] - a["from"]),
            ]
        )
    return rows


def idle_windows(result, least=0.5):
    """Where the bounding API sent nothing for at least `least` seconds beyond its
    paced interval: [(from, to, policy, {operation: [calls, seconds]})], times from
    the run's start. The bucket refills in a gap, but only up to its burst: the rest
    of a long gap is time the bound did not count."""
    if not result["apis"]:
        return []
    bounding = result["apis"][0]
    start, end = result["span"]
    starts = sorted(t for t, _, op in result["timeline"] if op == bounding["api"])
    if not starts:
        return []
    edges = [start] + starts + [end]
    windows = []
    for a, b in zip(edges, edges[1:]):
        if b - a < least + 1.0 / bounding["refill"]:
            continue
        ops = {}
        for t, done, op in result["timeline"]:
            if a <= t < b and op != bounding["api"]:
                ops.setdefault(op, [0, 0.0])
                ops[op][0] += 1
                ops[op][1] += done - t
        middle = (a + b) / 2
        policy = next(
            (r["name"] for r in result["runs"] if r["span"][0] <= middle <= r["span"][1]),
            "between policies",
        )
        windows.append((a - start, b - start, policy, ops))
    return windows


def idle_lines(result):
    windows = idle_windows(result)
    if not windows:
        return []
    bounding = result["apis"][0]
    lines = [
        "  %s (the bounding API) sent nothing for %.1fs of the %.1fs wall (bound %.1fs):"
        % (bounding["api"], sum(b - a for a, b, _, _ in windows), result["wall"], result["bound"])
    ]
    for a, b, policy, ops in windows:
        busiest = sorted(ops.items(), key=lambda item: -item[1][1])[:4]
        lines.append(
            "    %5.1f-%5.1fs (%s): %s"
            % (
                a,
                b,
                policy,
                ", ".join("%s x%d %.1fs" % (op, n, seconds) for op, (n, seconds) in busiest)
                or "no API calls (client-side work)",
            )
        )
    return lines


def policy_lines(result):
    lines = []
    for run in result["runs"]:
        matched = len(run["matched"]) or 1
        lines.append(
            "  %s: %d groups, %.1fs; per group: %s"
            % (
                run["name"],
                len(run["matched"]),
                run["wall"],
                ", ".join(
                    "%s %.2f" % (op, n / matched)
                    for op, n in sorted(run["calls"].items(), key=lambda item: -item[1])
                ),
            )
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="groups (default 1000)")
    parser.add_argument(
        "--scale",
        type=float,
        default=5.0,
        help="every bucket (AWS's in the proxy, the run's own) this many "
        "times faster, shape kept (default 5)",
    )
    parser.add_argument(
        "--budget",
        default=str(DEFAULT_BUDGET),
        help="rate-budget values, comma-separated (default %g)" % DEFAULT_BUDGET,
    )
    parser.add_argument(
        "--background",
        default="0,0.3",
        help="shares of each refill a busy account takes beside the run, "
        "comma-separated (default 0,0.3)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="round trip to AWS added to every request, divided by "
        "--scale like the buckets (default 0: loopback and moto only)",
    )
    options = parser.parse_args(argv)
    budgets = [float(b) for b in options.budget.split(",") if b]
    backgrounds = [float(b) for b in options.background.split(",") if b]
    from c7n_imds_testing import moto_server

    results = []
    started = time.perf_counter()
    with moto_server() as endpoint:
        for budget in budgets:
            for background in backgrounds:
                results.append(
                    measure(
                        endpoint,
                        options.size,
                        options.scale,
                        budget,
                        background,
                        options.latency_ms,
                    )
                )
    first = results[0]
    print(
        "Remediation under AWS's token buckets: policies/remediate.yml's %s "
        "(one process, moto %s behind bench/bucket_proxy.py on 127.0.0.1, buckets x%g, "
        "round trip %g ms / %g)"
        % (
            " and ".join(REMEDIATION_ACTIONS),
            moto_version(),
            options.scale,
            options.latency_ms,
            options.scale,
        )
    )
    print(
        "client pacing: %s; rate-budget option: %s"
        % (
            "active (%d requests paced, %.1fs waited; scale %s)"
            % (first["pacer"]["sent"], first["pacer"]["waited"], first["pacer"]["scale"])
            if first["pacer"]["sent"]
            else "NOT ACTIVE (c7n_imds.pacing paced no request)",
            "yes" if first["budget_option"] else "MISSING (runs at the product's default)",
        )
    )
    print(
        common.fmt_table(
            [
                "groups",
                "budget",
                "background",
                "scale",
                "to fix",
                "failed",
                "compliant",
                "throttled",
                "bg throttled",
                "over budget",
                "retries exhausted",
                "wall s",
                "bound s",
                "bounding API",
                "wall/bound",
                "result",
            ],
            [summary_row(r) for r in results],
        )
    )
    for result in results:
        print()
        print(
            "%s: per API (bound = least time through the run's bucket share, "
            "burst/refill per s after scale; seen = first-last request at the proxy, s)"
            % result["label"]
        )
        print(
            common.fmt_table(
                [
                    "service",
                    "API",
                    "calls",
                    "per group",
                    "attempts",
                    "throttled",
                    "over budget",
                    "bucket share",
                    "bound s",
                    "bound at x1 s",
                    "seen s",
                    "span s",
                ],
                api_rows(result),
            )
        )
        print("\n".join(policy_lines(result) + idle_lines(result)))
        for problem in result["problems"][:10]:
            print("  PROBLEM: %s" % problem)
        for group, reason in sorted(result["failures"].items())[:5]:
            print("  failed: %s: %s" % (group, reason[:300]))
    print()
    print("Targets:")
    for result in results:
        ratio = result["wall"] / result["bound"] if result["bound"] else float("nan")
        applies = result["budget"] + result["background"] <= 1
        over = sum(a["over_share"] for a in result["apis"])
        print(
            "  wall/bound <= %.2f at budget %g, background %g: %.2f -> %s"
            % (
                GOAL,
                result["budget"],
                result["background"],
                ratio,
                "n/a (budget + background > 1)"
                if not applies
                else "MISSED (%d requests beyond the budget: the bound does not apply)" % over
                if over
                else "holds"
                if ratio <= GOAL
                else "MISSED",
            )
        )
        print(
            "  every targeted group compliant, none failed: %s"
            % ("holds" if not result["problems"] and not result["failures"] else "MISSED")
        )
    common.progress("total %.0fs" % (time.perf_counter() - started))
    return 0 if all(not r["problems"] for r in results) else 1


def moto_version():
    import moto

    return moto.__version__


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    worker(sys.argv[2])
elif __name__ == "__main__":
    sys.exit(main())

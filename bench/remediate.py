"""Remediation cost: `convert-to-launch-template` on N launch-configuration groups.

For each size N, a moto server on 127.0.0.1 holds N groups on launch configurations
(one each, every 10th shares its neighbour's; a quarter leave HttpTokens unset, a
quarter set optional, half required). A policy selects the groups that allow IMDSv1 and
converts them, run in a fresh process through c7n's own loader. Counted per converted
group: mutating calls (CreateLaunchTemplate, UpdateAutoScalingGroup, CreateOrUpdateTags)
and, separately, the RunInstances DryRun pre-flight. Then the same run again on a fresh
estate with throttling errors (Throttling / RequestLimitExceeded, HTTP 400) injected at
rate r into every HTTP attempt, to show that retries keep the result right: every group
converted exactly once, one IMDSv2 template per launch configuration, no duplicates,
nothing launched.

    python bench/remediate.py [--sizes 100,1000] [--throttle-rate 0.05]
                              [--throttle-sizes 100,1000]
"""
import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

POLICY = {"name": "asg-convert-to-imdsv2-launch-template", "resource": "asg",
          "filters": [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"},
                      {"type": "imds", "key": "HttpTokens", "value": "optional"}],
          "actions": [{"type": "convert-to-launch-template"}]}
MUTATING = ("CreateLaunchTemplate", "UpdateAutoScalingGroup", "CreateOrUpdateTags")
# EC2 token buckets per account and region (burst, refill per second), docs/aws-facts.md.
EC2_BUCKETS = {"RunInstances": (5, 2.0), "CreateLaunchTemplate": (50, 5.0)}
SOURCE_TAG = "c7n-imds:source"
PREVIOUS_LAUNCH_TAG = "c7n-imds:previous-launch"


def clients(endpoint):
    import boto3
    session = boto3.Session(region_name=common.REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")
    return (session.client("ec2", endpoint_url=endpoint),
            session.client("autoscaling", endpoint_url=endpoint))


def verify(endpoint, expected):
    """Check the estate through the API after a run. Returns (problems, facts)."""
    ec2, autoscaling = clients(endpoint)
    groups = [g for page in autoscaling.get_paginator("describe_auto_scaling_groups")
              .paginate(PaginationConfig={"PageSize": 100}) for g in page["AutoScalingGroups"]]
    templates = [t for page in ec2.get_paginator("describe_launch_templates").paginate(
        PaginationConfig={"PageSize": 200}) for t in page["LaunchTemplates"]]
    defaults = {v["LaunchTemplateId"]: v for page in ec2.get_paginator(
        "describe_launch_template_versions").paginate(
            Versions=["$Default"], PaginationConfig={"PageSize": 200})
        for v in page["LaunchTemplateVersions"]}
    configs = {c["LaunchConfigurationName"]: c for page in autoscaling.get_paginator(
        "describe_launch_configurations").paginate(PaginationConfig={"PageSize": 100})
        for c in page["LaunchConfigurations"]}
    problems = []
    by_source = Counter()
    for template in templates:
        tags = {t["Key"]: t["Value"] for t in template.get("Tags") or ()}
        if SOURCE_TAG in tags:
            by_source[tags[SOURCE_TAG]] += 1
    duplicates = {source: n for source, n in by_source.items() if n > 1}
    if duplicates:
        problems.append("%d launch configurations got more than one template (e.g. %s)" % (
            len(duplicates), sorted(duplicates.items())[:3]))
    converted, sources_needed = 0, set()
    for group in groups:
        name = group["AutoScalingGroupName"]
        tags = {t["Key"]: t["Value"] for t in group.get("Tags") or ()}
        should_convert = expected[name] != common.REQUIRED
        on_template = bool(group.get("LaunchTemplate"))
        if should_convert and not on_template:
            problems.append("%s was not converted" % name)
            continue
        if not should_convert:
            if on_template:
                problems.append("%s (already IMDSv2) was converted" % name)
            continue
        converted += 1
        template_id = group["LaunchTemplate"]["LaunchTemplateId"]
        tokens = ((defaults.get(template_id) or {}).get("LaunchTemplateData") or {}).get(
            "MetadataOptions", {}).get("HttpTokens")
        if tokens != common.REQUIRED:
            problems.append("%s launches from %s with HttpTokens %s" % (
                name, template_id, tokens))
        if PREVIOUS_LAUNCH_TAG not in tags:
            problems.append("%s has no %s tag" % (name, PREVIOUS_LAUNCH_TAG))
        # moto keeps the old name beside the template (AWS would not): the source LC.
        sources_needed.add(group.get("LaunchConfigurationName"))
    missing = sources_needed - set(by_source)
    if missing:
        problems.append("no template tagged with source %s" % sorted(missing)[:3])
    ec2_backend, _ = common.backends()
    launched = len(list(ec2_backend.all_reservations()))
    if launched:
        problems.append("%d reservations launched (a DryRun must launch nothing)" % launched)
    if len(configs) < len(set(sources_needed)):
        problems.append("launch configurations disappeared")
    return problems, {"converted": converted, "templates": sum(by_source.values()),
                      "configs_converted": len(sources_needed)}


def measure(endpoint, size, fault, concurrency=1):
    common.reset(endpoint)
    expected = common.seed_estate(size, 0)
    to_convert = sum(1 for t in expected.values() if t != common.REQUIRED)
    label = "throttled %.0f%%" % (100 * fault["rate"]) if fault else "none"
    label += ", %d worker%s" % (concurrency, "s" if concurrency > 1 else "")
    common.progress("N=%d faults=%s: seeded %d groups, %d to convert; running ..." % (
        size, label, size, to_convert))
    policy = dict(POLICY, actions=[dict(POLICY["actions"][0], concurrency=concurrency)])
    result = common.run_worker(endpoint, policy, fault)
    problems, facts = verify(endpoint, expected)
    if result["error"]:
        problems.insert(0, "policy run failed: %s" % result["error"][:500])
    result.update(facts, problems=problems, to_convert=to_convert, label=label,
                  faulty=bool(fault))
    common.progress("N=%d faults=%s: %.1fs, %d converted, %s" % (
        size, label, result["wall"], facts["converted"],
        "correct" if not problems else "; ".join(problems[:3])))
    return result


def row(size, result):
    calls = result["calls"]
    converted = result["converted"] or 1
    mutating = sum(calls.get(op, 0) for op in MUTATING)
    describes = sum(n for op, n in calls.items() if op.startswith("Describe"))
    retries = sum(result["attempts"].values()) - sum(calls.values())
    return [size, result["label"], "%d/%d" % (result["converted"], result["to_convert"]),
            result["templates"]] + [calls.get(op, 0) for op in MUTATING] + [
        "%.2f" % (mutating / converted), result["dry_runs"], describes,
        sum(result["injected"].values()), retries, "%.1f" % result["wall"],
        "ok" if not result["problems"] else "WRONG"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="group counts (default 100,1000)")
    parser.add_argument("--throttle-rate", type=float, default=0.05,
                        help="share of HTTP attempts answered with a throttling error "
                             "(default 0.05; 0 skips the throttled runs)")
    parser.add_argument("--concurrency", default="1,4",
                        help="convert-to-launch-template `concurrency` values to compare "
                             "(default 1,4); throttled runs use the largest")
    parser.add_argument("--throttle-sizes", default=None,
                        help="sizes to repeat with throttling (default: all --sizes)")
    options = parser.parse_args(argv)
    sizes = [int(s) for s in options.sizes.split(",") if s]
    throttle_sizes = sizes if options.throttle_sizes is None else [
        int(s) for s in options.throttle_sizes.split(",") if s]
    from c7n_imds.testing import moto_server
    results = []
    started = time.perf_counter()
    workers = [int(c) for c in options.concurrency.split(",") if c]
    with moto_server() as endpoint:
        for size in sizes:
            for concurrency in workers:
                results.append((size, measure(endpoint, size, None, concurrency)))
            if options.throttle_rate > 0 and size in throttle_sizes:
                results.append((size, measure(endpoint, size, {
                    "rate": options.throttle_rate, "seed": size}, max(workers))))
    headers = ["groups", "faults", "converted", "templates"] + list(MUTATING) + [
        "mutating/group", "DryRun", "describes", "throttled", "retries", "wall s", "result"]
    print("Remediation: convert-to-launch-template (moto on 127.0.0.1; one process per run; "
          "retries = HTTP attempts - API calls)")
    print(common.fmt_table(headers, [row(size, r) for size, r in results]))
    print()
    print("Calls by operation (runs without faults):")
    for size, result in results:
        if not result["faulty"]:
            print("  %d groups, %s: %s" % (size, result["label"], ", ".join(
                "%s %d" % (op, n) for op, n in sorted(result["calls"].items(),
                                                      key=lambda item: -item[1]))))
    print()
    print("Targets (issue 6):")
    clean = [(s, r) for s, r in results if not r["faulty"]]
    for size, result in clean:
        calls = result["calls"]
        per = sum(calls.get(op, 0) for op in MUTATING) / (result["converted"] or 1)
        print("  <= 3 mutating calls per converted group at %d: %.2f (+%.2f DryRun "
              "pre-flight) -> %s" % (size, per, result["dry_runs"] / (result["converted"] or 1),
                                    "holds" if per <= 3 else "MISSED"))
    print()
    print("AWS floor: however fast the client, EC2's token buckets (burst, refill/s) bound "
          "a run's duration")
    for size, result in clean:
        floors = []
        for op, (burst, refill) in sorted(EC2_BUCKETS.items()):
            n = result["calls"].get(op, 0)
            floors.append("%s %d calls -> >= %.0f s" % (op, n, max(n - burst, 0) / refill))
        print("  %d groups: %s" % (size, "; ".join(floors)))
    print()
    for size, result in results:
        if result["faulty"]:
            print("  correct under %s at %d: %s" % (
                result["label"], size, "holds" if not result["problems"] else
                "MISSED: " + "; ".join(result["problems"][:5])))
    common.progress("total %.0fs" % (time.perf_counter() - started))
    return 0 if all(not r["problems"] for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

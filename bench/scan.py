"""Scan cost: our `imds` filter against Cloud Custodian's built-in `launch-config` filter.

For each size N, a moto server on 127.0.0.1 holds N Auto Scaling groups: half on launch
configurations (one each, every 10th shares one), half on launch templates (one each;
some pinned to a version number, some following $Latest, a fifth mixed instances
policies). Both policies select the groups whose instances may start with IMDSv1 and run
in a fresh process each, through c7n's own policy loader with cache_period 0. Counted:
API calls per operation, wall time of the policy run, time spent inside API calls, and
the process's peak resident memory. Both must match exactly the seeded groups.

    python bench/scan.py [--sizes 100,1000,5000]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

OURS = {"name": "asg-imdsv1-allowed", "resource": "asg", "filters": [
    {"type": "imds", "key": "HttpTokens", "value": "optional"}]}
# The built-in filter sees raw launch data (LC or template version): HttpTokens absent
# or "optional" both allow IMDSv1, so "not required" selects the same groups.
BUILTIN = {"name": "asg-imdsv1-allowed-builtin", "resource": "asg", "filters": [
    {"type": "launch-config", "key": "MetadataOptions.HttpTokens", "value": "required",
     "op": "ne"}]}
COLUMNS = (("DescribeAutoScalingGroups", "ASG"), ("DescribeLaunchConfigurations", "LC"),
           ("DescribeLaunchTemplateVersions", "LT ver"))


def measure(endpoint, size):
    common.reset(endpoint)
    started = time.perf_counter()
    expected = common.seed_estate(size // 2, size - size // 2)
    should_match = sorted(g for g, tokens in expected.items() if tokens != common.REQUIRED)
    common.progress("N=%d: seeded %d groups (%d allow IMDSv1) in %.1fs" % (
        size, len(expected), len(should_match), time.perf_counter() - started))
    check_paging(endpoint)
    results = {}
    for variant, policy in (("imds (ours)", OURS), ("launch-config (built-in)", BUILTIN)):
        result = common.run_worker(endpoint, policy)
        if result["error"]:
            raise SystemExit("N=%d %s failed: %s" % (size, variant, result["error"]))
        missed = sorted(set(should_match) - set(result["matched"]))
        extra = sorted(set(result["matched"]) - set(should_match))
        result["correct"] = not missed and not extra
        result["detail"] = "missed %d, extra %d (e.g. %s)" % (
            len(missed), len(extra), (missed + extra)[:3])
        common.progress("N=%d: %-26s %4d calls  %6.2fs  %5.0f MB  %s" % (
            size, variant, sum(result["calls"].values()), result["wall"],
            result["maxrss_mb"], "correct" if result["correct"] else result["detail"]))
        results[variant] = result
    return len(should_match), results


def check_paging(endpoint):
    """The listing a scan sees must hold every template: moto without the paging patch
    stops at MaxResults and would make any scan look complete and cheap."""
    import boto3
    ec2 = boto3.Session(region_name=common.REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing").client("ec2", endpoint_url=endpoint)
    seen = sum(len(page["LaunchTemplateVersions"]) for page in ec2.get_paginator(
        "describe_launch_template_versions").paginate(
            Versions=["$Default"], PaginationConfig={"PageSize": 200}))
    seeded = len(common.backends()[0].launch_templates)
    if seen != seeded:
        raise SystemExit("moto paging is broken: %d of %d templates listed" % (seen, seeded))


def row(size, variant, result, expected):
    calls = result["calls"]
    named = [calls.get(op, 0) for op, _ in COLUMNS]
    other = sum(calls.values()) - sum(named)
    return [size, variant] + named + [
        other, sum(calls.values()), "%.2f" % result["wall"], "%.2f" % result["api_seconds"],
        "%.0f" % result["maxrss_mb"], "%d/%d %s" % (
            len(result["matched"]), expected, "ok" if result["correct"] else "WRONG")]


def ratio(a, b):
    return "%.3f" % (a / b) if b else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000",
                        help="comma-separated group counts (default 100,1000,5000)")
    options = parser.parse_args(argv)
    sizes = [int(s) for s in options.sizes.split(",") if s]
    from c7n_imds.testing import moto_server
    rows, measured = [], {}
    with moto_server() as endpoint:
        for size in sizes:
            expected, results = measure(endpoint, size)
            ours, builtin = results["imds (ours)"], results["launch-config (built-in)"]
            measured[size] = results
            rows.append(row(size, "imds (ours)", ours, expected))
            rows.append(row(size, "launch-config (built-in)", builtin, expected))
            rows.append([size, "ratio ours/built-in"] + [
                ratio(ours["calls"].get(op, 0), builtin["calls"].get(op, 0))
                for op, _ in COLUMNS] + ["", ratio(sum(ours["calls"].values()),
                                                   sum(builtin["calls"].values())),
                                         ratio(ours["wall"], builtin["wall"]),
                                         ratio(ours["api_seconds"], builtin["api_seconds"]),
                                         ratio(ours["maxrss_mb"], builtin["maxrss_mb"]), ""])
    headers = ["groups", "filter"] + [c for _, c in COLUMNS] + [
        "other", "calls", "wall s", "in API s", "peak MB", "matched"]
    print("Scan: asg policy selecting groups whose instances allow IMDSv1 "
          "(moto %s on 127.0.0.1, cache_period 0)" % moto_version())
    print(common.fmt_table(headers, rows))
    print()
    print(growth_table(measured))
    print()
    print(breakdown_table(measured))
    print()
    print(targets(measured))
    ok = all(r["correct"] for results in measured.values() for r in results.values())
    return 0 if ok else 1


def growth_table(measured):
    rows = []
    for size, results in sorted(measured.items()):
        for variant, result in results.items():
            rows.append([size, variant, "%.1f" % (1000.0 * sum(result["calls"].values()) / size),
                         "%.2f" % (1000.0 * result["wall"] / size),
                         "%.1f" % (result["maxrss_mb"] - result["baseline_mb"])])
    return "Growth (linear cost means flat per-group figures)\n" + common.fmt_table(
        ["groups", "filter", "calls per 1000 groups", "ms per group",
         "MB above import baseline"], rows)


def breakdown_table(measured):
    rows = []
    for size, results in sorted(measured.items()):
        result = results["imds (ours)"]
        calls, seconds = result["calls"], result["seconds"]
        total_calls, total_seconds = sum(calls.values()), sum(seconds.values()) or 1
        for op in sorted(calls, key=lambda o: -calls[o]):
            rows.append([size, op, calls[op], "%.0f%%" % (100.0 * calls[op] / total_calls),
                         "%.2f" % seconds.get(op, 0),
                         "%.0f%%" % (100.0 * seconds.get(op, 0) / total_seconds)])
        rows.append([size, "(outside API calls)", "", "",
                     "%.2f" % max(result["wall"] - result["api_seconds"], 0), ""])
    return ("Where the imds policy's cost goes (DescribeAutoScalingGroups is custodian's own "
            "listing of the groups, 100 per page under c7n-imds)\n") + common.fmt_table(
        ["groups", "operation", "calls", "of calls", "API s", "of API time"], rows)


def targets(measured):
    lines = ["Targets (issue 6):"]

    def total(size, variant):
        return sum(measured[size][variant]["calls"].values())

    if 1000 in measured:
        ours, builtin = total(1000, "imds (ours)"), total(1000, "launch-config (built-in)")
        lines.append("  1000 groups in <= 30 API calls: %d -> %s" % (
            ours, "holds" if ours <= 30 else "MISSED"))
        lines.append("  >= 10x fewer calls than built-in at 1000: %.1fx -> %s" % (
            builtin / ours, "holds" if builtin >= 10 * ours else "MISSED"))
    if 5000 in measured:
        peak = measured[5000]["imds (ours)"]["maxrss_mb"]
        lines.append("  peak memory < 300 MB at 5000: %.0f MB -> %s" % (
            peak, "holds" if peak < 300 else "MISSED"))
    sizes = sorted(measured)
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        per = [measured[s]["imds (ours)"]["wall"] / s for s in (small, large)]
        calls = [total(s, "imds (ours)") / s for s in (small, large)]
        lines.append("  linear growth %d -> %d groups: time per group x%.2f, calls per "
                     "group x%.2f -> %s" % (
                         small, large, per[1] / per[0], calls[1] / calls[0],
                         "holds" if per[1] / per[0] < 1.5 and calls[1] <= calls[0] * 1.1
                         else "MISSED"))
    return "\n".join(lines)


def moto_version():
    import moto
    return moto.__version__


if __name__ == "__main__":
    sys.exit(main())

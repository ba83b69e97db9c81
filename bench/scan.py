"""Scan cost: our `imds` filter against Cloud Custodian's built-in `launch-config` filter.

For each size N, a moto server on 127.0.0.1 holds N Auto Scaling groups: half on launch
configurations (one each, every 10th shares one), half on launch templates (one each;
some pinned to a version number, some following $Latest, a fifth mixed instances
policies). Both policies select the groups whose instances may start with IMDSv1 and run
in a fresh process each, through c7n's own policy loader with cache_period 0. Counted:
API calls per operation, wall time of the policy run, time spent inside API calls, and
the process's peak resident memory. Both must match exactly the seeded groups.

AWS-like latency: moto on loopback answers in microseconds of network time, where AWS
takes tens of milliseconds per round trip, so a filter that makes many small calls looks
cheaper here than it is. --latency-ms (default 40) stands in for the network round trip
to AWS: a botocore before-send hook on every session the measured policy makes sleeps
that long before each HTTP attempt, in the thread that sends it (client-side, in the
worker process; _common.Latency). moto's own server time comes on top, so both figures
are somewhat above what AWS would show; 0 measures moto alone.

The built-in filter is the baseline a user has without this plugin, so it runs with
c7n_imds's client-side pacing (which the plugin attaches to every custodian session of
the process, built-in filters included) scaled out of the way (C7N_IMDS_RATE_SCALE);
ours runs paced as shipped. "paced s" says how long each waited for pacing tokens.

Cost: the built-in filter makes one DescribeLaunchTemplateVersions per template group,
one after another, so at 40 ms it takes about 27 s at 1,000 groups and 135 s at 5,000;
the whole default run about 3.5 minutes. --builtin-up-to 1000 skips it at 5,000
(about 1 minute in all).

    python bench/scan.py [--sizes 1000,5000] [--latency-ms 40] [--builtin-up-to N]
                         [--repeat N]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

OURS = {
    "name": "asg-imdsv1-allowed",
    "resource": "asg",
    "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
}
# The built-in filter sees raw launch data (LC or template version): HttpTokens absent
# or "optional" both allow IMDSv1, so "not required" selects the same groups.
BUILTIN = {
    "name": "asg-imdsv1-allowed-builtin",
    "resource": "asg",
    "filters": [
        {
            "type": "launch-config",
            "key": "MetadataOptions.HttpTokens",
            "value": "required",
            "op": "ne",
        }
    ],
}
# Custodian alone does not pace: the baseline runs with the plugin's pacing this many
# times faster than AWS's buckets, i.e. never waiting.
UNPACED = {"C7N_IMDS_RATE_SCALE": "1000000"}
COLUMNS = (
    ("DescribeAutoScalingGroups", "ASG"),
    ("DescribeLaunchConfigurations", "LC"),
    ("DescribeLaunchTemplateVersions", "LT ver"),
)


def measure(endpoint, size, latency_ms, builtin=True, repeat=1):
    common.reset(endpoint)
    started = time.perf_counter()
    expected = common.seed_estate(size // 2, size - size // 2)
    should_match = sorted(g for g, tokens in expected.items() if tokens != common.REQUIRED)
    common.progress(
        "N=%d: seeded %d groups (%d allow IMDSv1) in %.1fs"
        % (size, len(expected), len(should_match), time.perf_counter() - started)
    )
    check_paging(endpoint)
    results = {}
    variants = [("imds (ours)", OURS, {})]
    if builtin:
        variants.append(("launch-config (built-in)", BUILTIN, UNPACED))
    for variant, policy, env in variants:
        # the machine may be shared: with --repeat, the fastest of the runs stands
        runs = [
            common.run_worker(endpoint, policy, latency_ms=latency_ms, extra_env=env)
            for _ in range(repeat)
        ]
        for result in runs:
            if result["error"]:
                raise SystemExit("N=%d %s failed: %s" % (size, variant, result["error"]))
        result = min(runs, key=lambda r: r["wall"])
        result["walls"] = sorted(r["wall"] for r in runs)
        missed = sorted(set(should_match) - set(result["matched"]))
        extra = sorted(set(result["matched"]) - set(should_match))
        result["correct"] = not missed and not extra
        # What the injected round trips add, summed over threads (a bound on the wall
        # time they cost: concurrent calls wait at once).
        result["latency_seconds"] = sum(result["attempts"].values()) * latency_ms / 1000.0
        result["detail"] = "missed %d, extra %d (e.g. %s)" % (
            len(missed),
            len(extra),
            (missed + extra)[:3],
        )
        common.progress(
            "N=%d: %-26s %4d calls  %6.2fs  %5.0f MB  %s"
            % (
                size,
                variant,
                sum(result["calls"].values()),
                result["wall"],
                result["maxrss_mb"],
                "correct" if result["correct"] else result["detail"],
            )
        )
        results[variant] = result
    return len(should_match), results


def check_paging(endpoint):
    """The listing a scan sees must hold every template: moto without the paging patch
    stops at MaxResults and would make any scan look complete and cheap."""
    import boto3

    ec2 = boto3.Session(
        region_name=common.REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("ec2", endpoint_url=endpoint)
    seen = sum(
        len(page["LaunchTemplateVersions"])
        for page in ec2.get_paginator("describe_launch_template_versions").paginate(
            Versions=["$Default"], PaginationConfig={"PageSize": 200}
        )
    )
    seeded = len(common.backends()[0].launch_templates)
    if seen != seeded:
        raise SystemExit("moto paging is broken: %d of %d templates listed" % (seen, seeded))


def row(size, variant, result, expected):
    calls = result["calls"]
    named = [calls.get(op, 0) for op, _ in COLUMNS]
    other = sum(calls.values()) - sum(named)
    return (
        [size, variant]
        + named
        + [
            other,
            sum(calls.values()),
            wall(result),
            "%.2f" % result["api_seconds"],
            "%.2f" % result["latency_seconds"],
            paced(result),
            "%.0f" % result["maxrss_mb"],
            "%d/%d %s" % (len(result["matched"]), expected, "ok" if result["correct"] else "WRONG"),
        ]
    )


def wall(result):
    walls = result.get("walls") or [result["wall"]]
    if len(walls) == 1:
        return "%.2f" % result["wall"]
    return "%.2f (max %.2f)" % (result["wall"], walls[-1])


def paced(result):
    seconds = result.get("paced_seconds")
    return "-" if seconds is None else "%.2f" % seconds


def ratio(a, b):
    return "%.3f" % (a / b) if b else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,5000", help="comma-separated group counts (default 1000,5000)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=40.0,
        help="delay added to every API call of the measured process, "
        "standing in for the round trip to AWS (default 40; 0: moto "
        "alone)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each policy this many times and keep the fastest (default 1)",
    )
    parser.add_argument(
        "--builtin-up-to",
        type=int,
        default=None,
        metavar="N",
        help="run the built-in filter only at sizes <= N (default: every size)",
    )
    options = parser.parse_args(argv)
    sizes = [int(s) for s in options.sizes.split(",") if s]
    latency_ms = options.latency_ms
    from c7n_imds_testing import moto_server

    rows, measured = [], {}
    started = time.perf_counter()
    with moto_server() as endpoint:
        for size in sizes:
            with_builtin = options.builtin_up_to is None or size <= options.builtin_up_to
            expected, results = measure(endpoint, size, latency_ms, with_builtin, options.repeat)
            measured[size] = results
            ours = results["imds (ours)"]
            rows.append(row(size, "imds (ours)", ours, expected))
            if not with_builtin:
                continue
            builtin = results["launch-config (built-in)"]
            rows.append(row(size, "launch-config (built-in)", builtin, expected))
            rows.append(
                [size, "ratio ours/built-in"]
                + [
                    ratio(ours["calls"].get(op, 0), builtin["calls"].get(op, 0))
                    for op, _ in COLUMNS
                ]
                + [
                    "",
                    ratio(sum(ours["calls"].values()), sum(builtin["calls"].values())),
                    ratio(ours["wall"], builtin["wall"]),
                    ratio(ours["api_seconds"], builtin["api_seconds"]),
                    "",
                    "",
                    ratio(ours["maxrss_mb"], builtin["maxrss_mb"]),
                    "",
                ]
            )
    headers = (
        ["groups", "filter"]
        + [c for _, c in COLUMNS]
        + ["other", "calls", "wall s", "in API s", "latency s", "paced s", "peak MB", "matched"]
    )
    print(
        "Scan: asg policy selecting groups whose instances allow IMDSv1 "
        "(moto %s on 127.0.0.1, cache_period 0, %g ms added per API call; "
        "bench ran %.0fs)" % (moto_version(), latency_ms, time.perf_counter() - started)
    )
    print(
        "  wall s: the policy run (fastest of --repeat %d); latency s: attempts x "
        "latency, summed over threads (concurrent calls wait at once); in API s includes "
        "it, pacing and moto's server time" % options.repeat
    )
    print(common.fmt_table(headers, rows))
    print()
    print(growth_table(measured))
    print()
    print(breakdown_table(measured))
    print()
    print(targets(measured, latency_ms))
    ok = all(r["correct"] for results in measured.values() for r in results.values())
    return 0 if ok else 1


def growth_table(measured):
    rows = []
    for size, results in sorted(measured.items()):
        for variant, result in results.items():
            rows.append(
                [
                    size,
                    variant,
                    "%.1f" % (1000.0 * sum(result["calls"].values()) / size),
                    "%.2f" % (1000.0 * result["wall"] / size),
                    "%.1f" % (result["maxrss_mb"] - result["baseline_mb"]),
                ]
            )
    return "Growth (linear cost means flat per-group figures)\n" + common.fmt_table(
        ["groups", "filter", "calls per 1000 groups", "ms per group", "MB above import baseline"],
        rows,
    )


def breakdown_table(measured):
    rows = []
    for size, results in sorted(measured.items()):
        result = results["imds (ours)"]
        calls, seconds = result["calls"], result["seconds"]
        total_calls, total_seconds = sum(calls.values()), sum(seconds.values()) or 1
        for op in sorted(calls, key=lambda o: -calls[o]):
            rows.append(
                [
                    size,
                    op,
                    calls[op],
                    "%.0f%%" % (100.0 * calls[op] / total_calls),
                    "%.2f" % seconds.get(op, 0),
                    "%.0f%%" % (100.0 * seconds.get(op, 0) / total_seconds),
                ]
            )
        rows.append(
            [
                size,
                "(outside API calls)",
                "",
                "",
                "%.2f" % max(result["wall"] - result["api_seconds"], 0),
                "",
            ]
        )
    return (
        "Where the imds policy's cost goes (DescribeAutoScalingGroups is custodian's own "
        "listing of the groups, 100 per page under c7n-imds)\n"
    ) + common.fmt_table(["groups", "operation", "calls", "of calls", "API s", "of API time"], rows)


def targets(measured, latency_ms):
    lines = ["Targets (issue 6):"]
    builtin_variant = "launch-config (built-in)"

    def total(size, variant):
        return sum(measured[size][variant]["calls"].values())

    if 1000 in measured:
        ours = total(1000, "imds (ours)")
        lines.append(
            "  1000 groups in <= 30 API calls: %d -> %s"
            % (ours, "holds" if ours <= 30 else "MISSED")
        )
    if 1000 in measured and builtin_variant in measured[1000]:
        builtin = total(1000, builtin_variant)
        lines.append(
            "  >= 10x fewer calls than built-in at 1000: %.1fx -> %s"
            % (builtin / ours, "holds" if builtin >= 10 * ours else "MISSED")
        )
        wall = measured[1000]["imds (ours)"]["wall"] / measured[1000][builtin_variant]["wall"]
        verdict = "holds" if wall <= 0.15 else "MISSED"
        if latency_ms < 20:
            verdict = "not judged (below 20 ms per call is not AWS-like)"
        lines.append(
            "  wall time ours/built-in <= 0.15 at 1000 under AWS-like latency "
            "(%g ms per call): %.3f -> %s" % (latency_ms, wall, verdict)
        )

        def without_moto(result):
            # moto's server time (and response parsing) out, the round trips kept
            return result["wall"] - result["api_seconds"] + result["latency_seconds"]

        lines.append(
            "    for reference, without moto's server time (wall - in API + "
            "latency, calls taken as one at a time): %.3f"
            % (
                without_moto(measured[1000]["imds (ours)"])
                / without_moto(measured[1000][builtin_variant])
            )
        )
    if 5000 in measured:
        peak = measured[5000]["imds (ours)"]["maxrss_mb"]
        lines.append(
            "  peak memory < 300 MB at 5000: %.0f MB -> %s"
            % (peak, "holds" if peak < 300 else "MISSED")
        )
    sizes = sorted(measured)
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        per = [measured[s]["imds (ours)"]["wall"] / s for s in (small, large)]
        calls = [total(s, "imds (ours)") / s for s in (small, large)]
        lines.append(
            "  linear growth %d -> %d groups: time per group x%.2f, calls per "
            "group x%.2f -> %s"
            % (
                small,
                large,
                per[1] / per[0],
                calls[1] / calls[0],
                "holds" if per[1] / per[0] < 1.5 and calls[1] <= calls[0] * 1.1 else "MISSED",
            )
        )
    return "\n".join(lines)


def moto_version():
    import moto

    return moto.__version__


if __name__ == "__main__":
    sys.exit(main())

"""`c7n-imds summary` at organisation scale: seconds, peak memory and the dashboard's size
at 100, 400 and 2,000 accounts x 17 regions, in c7n-org's layout.

The estate is a real output, replicated: `c7n-imds run` of policies/detect.yml, then
policies/remediate.yml, into one folder against a moto server seeded with the summary
tests' estate (tests/test_summary.py's `seed`: 9 groups, shared and IMDSv2 launch
configurations, an exempt, a stack-owned, a held-back and a broken group, a launch
template) - 15 policy outputs of one account-region. It is copied into
OUT/<account name>/<region>/<policy>/ for every account and region, as c7n-org lays its
outputs out: metadata.json rewritten with the account and region, every other file a
hard link (same bytes, no disk). Trees are kept under --cache (default /tmp/c7n-imds-
bench-summary) and reused.

Each size is summarised by the real command in a subprocess (`c7n-imds summary OUT
--format F -o FILE`), once per format asked for; peak memory is the child's (VmHWM read
by a wrapper, see PEAK: the summary's process plus, as an upper bound, its worker
processes' count times the largest of theirs). Printed: accounts, account-regions,
seconds, peak MB, output MB per format; then, between consecutive sizes, the time
exponent (log t2/t1 / log n2/n1) and the memory ratio. With --s3 the smallest tree is
also put in a bucket of a moto server and summarised from s3:// (the S3 path's own
cost: listing, parallel bounded gets).

    python bench/summary.py [--accounts 100,400,2000] [--formats json,html]
                            [--cache DIR] [--s3]
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import progress  # noqa: E402

REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
)  # 17
# Runs the summary and prints its own peak resident memory (VmHWM: this address space
# only, not the bench's) on its last line of standard error.
PEAK = (
    "import sys, runpy\n"
    "sys.argv = ['c7n-imds', 'summary'] + sys.argv[1:]\n"
    "from c7n_imds.cli import main\n"
    "try:\n"
    "    code = main()\n"
    "finally:\n"
    "    import resource\n"
    "    from c7n_imds_report import stream\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    print('PEAK_KB %d' % (int(hwm.split()[1]) + stream.workers() * workers),\n"
    "          file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def template(cache):
    """One account-region's real detect + remediate output (made once, then reused)."""
    target = cache / "template"
    if (target / "done").exists():
        return target
    import boto3

    from c7n_imds_testing import EndpointSession, aws_env, moto_server, run_c7n_imds
    from tests.test_summary import seed

    shutil.rmtree(target, ignore_errors=True)
    progress("making the template: detect + remediate against moto")
    with moto_server() as endpoint:
        session = EndpointSession(
            boto3.Session(
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ),
            endpoint,
        )
        seed(session)
        env = aws_env(endpoint)
        for policies in ("detect.yml", "remediate.yml"):
            run_c7n_imds(
                [
                    "run",
                    "-s",
                    str(target / "out"),
                    "--cache-period",
                    "0",
                    str(REPO / "policies" / policies),
                ],
                env,
            )
    (target / "done").write_text("")
    return target


def account_ids(count):
    return ["%012d" % (300000000000 + i) for i in range(count)]


def replicate(source, out, accounts):
    """OUT/<account name>/<region>/<policy>/ for each account and region."""
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    policies = []
    for folder in sorted(p for p in (source / "out").iterdir() if p.is_dir()):
        meta = json.loads((folder / "metadata.json").read_text())
        others = [f for f in folder.iterdir() if f.name != "metadata.json"]
        policies.append((folder.name, meta, others))
    for n, account in enumerate(account_ids(accounts)):
        if n % 200 == 0:
            progress("  %s: account %d of %d" % (out.name, n, accounts))
        for region in REGIONS:
            for name, meta, others in policies:
                target = out / ("acct-%s" % account) / region / name
                target.mkdir(parents=True)
                meta["config"]["account_id"], meta["config"]["region"] = account, region
                (target / "metadata.json").write_text(json.dumps(meta))
                for f in others:
                    os.link(f, target / f.name)
    (out / "done").write_text("")
    return out


def summarise(location, fmt, scratch, env=None):
    """(seconds, peak MB, output MB, exit code) of one `c7n-imds summary`."""
    output = scratch / ("summary.%s" % fmt)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(location), "--format", fmt, "-o", str(output)],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
    )
    seconds = time.perf_counter() - started
    peak = next(
        (
            int(line.split()[1]) / 1024.0
            for line in result.stderr.splitlines()
            if line.startswith("PEAK_KB ")
        ),
        float("nan"),
    )
    if result.returncode not in (0, 3):
        progress(result.stderr[-2000:])
    size = output.stat().st_size / 1e6 if output.exists() else float("nan")
    return seconds, peak, size, result.returncode


def s3_figures(tree, fmt, scratch):
    """The smallest tree from s3:// on a moto server (gzipped as custodian writes)."""
    import gzip

    import boto3

    from c7n_imds_testing import aws_env, moto_server

    with moto_server() as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="org-outputs")
        for path in tree.rglob("*"):
            if path.is_file() and path.name != "done":
                key = "org/%s/2026/01/01/00/%s.gz" % (
                    path.parent.relative_to(tree).as_posix(),
                    path.name,
                )
                s3.put_object(Bucket="org-outputs", Key=key, Body=gzip.compress(path.read_bytes()))
        return summarise(
            "s3://org-outputs/org", fmt, scratch, dict(os.environ, **aws_env(endpoint))
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", default="100,400,2000")
    parser.add_argument("--formats", default="json,html")
    parser.add_argument("--cache", default="/tmp/c7n-imds-bench-summary")
    parser.add_argument("--s3", action="store_true")
    options = parser.parse_args(argv)
    cache = Path(options.cache)
    cache.mkdir(parents=True, exist_ok=True)
    source = template(cache)
    formats = options.formats.split(",")
    sizes = [int(a) for a in options.accounts.split(",")]
    rows, scratch = [], Path(tempfile.mkdtemp(prefix="bench-summary-"))
    try:
        for accounts in sizes:
            tree = replicate(source, cache / ("org-%d" % accounts), accounts)
            for fmt in formats:
                seconds, peak, size, code = summarise(tree, fmt, scratch)
                rows.append((accounts, accounts * len(REGIONS), fmt, seconds, peak, size, code))
                print(
                    "%6d accounts %7d account-regions  %-5s %7.1f s %7.0f MB peak  "
                    "%7.2f MB out  exit %d" % rows[-1],
                    flush=True,
                )
        for fmt in formats:
            mine = [r for r in rows if r[2] == fmt]
            for a, b in zip(mine, mine[1:]):
                print(
                    "%s: %d -> %d account-regions: time exponent %.2f, memory x%.2f"
                    % (fmt, a[1], b[1], math.log(b[3] / a[3]) / math.log(b[1] / a[1]), b[4] / a[4])
                )
        if options.s3:
            seconds, peak, size, code = s3_figures(
                cache / ("org-%d" % sizes[0]), formats[0], scratch
            )
            print(
                "s3:// %d accounts, %s: %.1f s, %.0f MB peak, exit %d"
                % (sizes[0], formats[0], seconds, peak, code)
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

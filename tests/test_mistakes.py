"""The first hour's ordinary mistakes, each through the real `c7n-imds` command: no
traceback, one line on standard error that names the file, policy, option, profile,
region, folder or endpoint and what to do, exit 2. Every endpoint is on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from c7n.resources import load_resources

from c7n_imds_testing import aws_env
from tests.conftest import REPO

E2E = True
COMMAND = str(Path(sys.executable).with_name("c7n-imds"))
PACK = REPO / "policies"
TYPO = {
    "policies": [
        {
            "name": "typo",
            "resource": "asg",
            "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
            "actions": [{"type": "set-metadata-access", "hop-limt": 2}],
        }
    ]
}
CONVERT = {
    "policies": [
        {
            "name": "convert",
            "resource": "asg",
            "filters": [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}],
            "actions": [{"type": "convert-to-launch-template"}],
        }
    ]
}


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def down_env(tmp_path, **extra):
    """Keys, no profile files, and an endpoint nothing listens on."""
    env = aws_env("http://127.0.0.1:%d" % closed_port())
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )
    env.update(extra)
    return env


def c7n(args, env, cwd):
    return subprocess.run(
        [COMMAND] + [str(a) for a in args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result, *expected):
    """The single stderr line, after checking there is nothing else."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "typo.yml").write_text(yaml.safe_dump(TYPO))
    (tmp_path / "tab.yml").write_text("policies:\n\t- name: x\n")
    (tmp_path / "broken.yml").write_text("policies:\n  - name: x\n   resource: asg\n")
    (tmp_path / "accounts.yml").write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {
                        "account_id": "111111111111",
                        "name": "payments",
                        "regions": ["us-east-1"],
                        "role": "arn:aws:iam::111111111111:role/c7n-imds",
                    }
                ]
            }
        )
    )
    (tmp_path / "out").mkdir()
    return tmp_path


def allowed_options(action):
    load_resources(["aws.asg"])
    from c7n.resources.asg import ASG

    return ", ".join(sorted(set(ASG.action_registry.get(action).schema["properties"]) - {"type"}))


TYPO_LINE = (
    "typo.yml: policy typo, action set-metadata-access: unknown option 'hop-limt' "
    "(did you mean hop-limit?); allowed: "
)


@pytest.mark.parametrize(
    "verb", [["validate"], ["run", "-s", "out"], ["plan"], ["iam-policy"], ["doctor"]]
)
def test_an_option_typo_names_the_option_and_the_allowed_ones(verb, files):
    result = c7n(verb + ["typo.yml"], down_env(files), files)
    assert one_line(result) == "c7n-imds %s: %s%s" % (
        verb[0],
        TYPO_LINE,
        allowed_options("set-metadata-access"),
    )


def test_custodians_schema_report_only_with_verbose(files):
    result = c7n(["validate", "-v", "typo.yml"], down_env(files), files)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("c7n-imds validate: " + TYPO_LINE), result.stderr


def test_org_run_with_an_option_typo_stops_before_any_account(moto, files):
    """The typo'd hop limit would run in every account: nothing is touched, no output."""
    endpoint, session = moto
    autoscaling = session.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="g",
        MinSize=0,
        MaxSize=1,
        LaunchConfigurationName="lc",
        AvailabilityZones=["us-east-1a"],
    )
    env = dict(aws_env(endpoint), HOME=str(files))
    result = c7n(
        ["org", "run", "-c", "accounts.yml", "-s", "org-out", "-u", "typo.yml"], env, files
    )
    assert one_line(result) == "c7n-imds org run: %s%s" % (
        TYPO_LINE,
        allowed_options("set-metadata-access"),
    )
    assert not (files / "org-out").exists()
    assert session.client("ec2").describe_launch_templates()["LaunchTemplates"] == []


MISTAKES = [
    # (command line, environment extras, the line's expected text)
    (
        ["validate", "absent.yml"],
        {},
        "c7n-imds validate: absent.yml: no such file; give the "
        "path of a policy file (`c7n-imds pack copy DIR` puts the pack's files into DIR)",
    ),
    (["run", "-s", "out", "absent.yml"], {}, "c7n-imds run: absent.yml: no such file"),
    (
        ["validate", "broken.yml"],
        {},
        "c7n-imds validate: broken.yml line 3 column 4: not "
        "valid YAML (did not find expected '-' indicator); fix the file",
    ),
    (
        ["validate", "tab.yml"],
        {},
        "c7n-imds validate: tab.yml line 2 column 1: a tab "
        "character; YAML indents with spaces only - replace the tab",
    ),
    (["plan", "tab.yml"], {}, "c7n-imds plan: tab.yml line 2 column 1: a tab character"),
    (["validate", PACK / "left" / "imds.yml"], {}, "c7n-left run -p DIR"),
    (
        ["org", "run", "-c", "absent-accounts.yml", "-s", "out", "-u", PACK / "detect.yml"],
        {},
        "c7n-imds org run: -c absent-accounts.yml: cannot read the accounts file (No such "
        "file or directory)",
    ),
    (
        ["org", "run", "-c", "tab.yml", "-s", "out", "-u", PACK / "detect.yml"],
        {},
        "c7n-imds org run: -c tab.yml line 2 column 1: a tab character",
    ),
    (
        ["org", "run", "-c", "accounts.yml", "-s", "out", "-u", "absent.yml"],
        {},
        "c7n-imds org run: absent.yml: no such file",
    ),
    (
        ["org", "run", "-c", "accounts.yml", "-s", "out", "-u", "broken.yml"],
        {},
        "c7n-imds org run: broken.yml line 3 column 4: not valid YAML",
    ),
    (
        ["run", "-s", "out", PACK / "detect.yml"],
        {"AWS_PROFILE": "prod-typo"},
        "c7n-imds run: AWS_PROFILE=prod-typo: the config profile 'prod-typo' could not be found",
    ),
    (
        ["plan", "--profile", "prod-typo", PACK / "detect.yml"],
        {},
        "c7n-imds plan: --profile prod-typo: the config profile 'prod-typo' could not be found",
    ),
    (
        ["run", "-s", "/proc/c7n-imds-out", PACK / "detect.yml"],
        {},
        "c7n-imds run: -s /proc/c7n-imds-out: cannot write in /proc",
    ),
    (
        ["org", "run", "-c", "accounts.yml", "-s", "/proc/out", "-u", PACK / "detect.yml"],
        {},
        "c7n-imds org run: -s /proc/out: cannot write in /proc",
    ),
    (
        ["run", "-r", "us-est-1", "-s", "out", PACK / "detect.yml"],
        {},
        "c7n-imds run: region 'us-est-1' does not exist (did you mean us-east-1 or "
        "us-west-1?); valid regions: af-south-1, ",
    ),
    (["plan", "-r", "eu-wst-1", PACK / "detect.yml"], {}, "region 'eu-wst-1' does not exist"),
    (
        [
            "org",
            "run",
            "-c",
            "accounts.yml",
            "-s",
            "out",
            "-r",
            "us-est-1",
            "-u",
            PACK / "detect.yml",
        ],
        {},
        "c7n-imds org run: region 'us-est-1' does not exist",
    ),
    (["run", "-s", "out", PACK / "detect.yml"], {}, "c7n-imds run: cannot reach AWS STS"),
    (
        ["org", "run", "-c", "accounts.yml", "-s", "out", "-u", PACK / "detect.yml"],
        {},
        "c7n-imds org run: cannot reach AWS STS",
    ),
    (
        ["summary", "absent-dir"],
        {},
        "c7n-imds summary: no custodian output (metadata.json) under absent-dir",
    ),
    (["summary", "out", "-c", "tab.yml"], {}, "c7n-imds summary: -c tab.yml: not YAML"),
    (["iam-policy", "absent.yml"], {}, "c7n-imds iam-policy: absent.yml: no such file"),
    (["iam-policy", "broken.yml"], {}, "c7n-imds iam-policy: broken.yml line 3 column 4"),
    (["doctor", "tab.yml"], {}, "c7n-imds doctor: tab.yml line 2 column 1: a tab character"),
    (["report", "-s", "out", "absent.yml"], {}, "c7n-imds report: absent.yml: no such file"),
    (["report", "-s", "out", "typo.yml"], {}, "c7n-imds report: " + TYPO_LINE),
]


@pytest.mark.parametrize(
    "args, extra, expected",
    MISTAKES,
    ids=["-".join(str(a) for a in m[0][:2]) + "-%d" % i for i, m in enumerate(MISTAKES)],
)
def test_an_ordinary_mistake_is_one_line(args, extra, expected, files):
    started = time.monotonic()
    result = c7n(args, down_env(files, **extra), files)
    line = one_line(result)
    assert line.startswith(expected) or expected in line, line
    # a down endpoint is a line within seconds (it was minutes of retries)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["pack", "list"],
        ["pack", "path"],
        ["templates-dir"],
        ["validate", PACK / "detect.yml"],
    ],
)
def test_commands_that_need_no_aws_ignore_an_unknown_profile(args, files):
    result = c7n(args, down_env(files, AWS_PROFILE="prod-typo"), files)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_summary_with_an_unknown_profile_reads_local_output(moto, files):
    endpoint, _ = moto
    env = dict(aws_env(endpoint), HOME=str(files))
    assert (
        c7n(["run", "-s", "out", "--cache-period", "0", PACK / "detect.yml"], env, files).returncode
        == 0
    )
    result = c7n(["summary", "--format", "md", "out"], down_env(files, AWS_PROFILE="nope"), files)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# IMDSv2 summary"), result.stdout[:200]

    # report on the local output: no AWS call, so a down endpoint costs nothing
    started = time.monotonic()
    report = c7n(
        [
            "report",
            "-s",
            "out",
            "-p",
            "autoscaling-3-asg-launch-configuration-imdsv1",
            PACK / "detect.yml",
        ],
        down_env(files),
        files,
    )
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert time.monotonic() - started < 15


def test_summary_to_an_unwritable_file_is_one_line(moto, files):
    endpoint, _ = moto
    env = dict(aws_env(endpoint), HOME=str(files))
    assert (
        c7n(["run", "-s", "out", "--cache-period", "0", PACK / "detect.yml"], env, files).returncode
        == 0
    )
    result = c7n(["summary", "out", "-o", "/proc/imds.html"], env, files)
    one_line(result, "c7n-imds summary: -o /proc/imds.html: cannot write")


def test_failed_groups_end_as_one_block_each_named_once(moto, files):
    """One group converts, one names a security group its VPC does not have: the run
    fails naming that group once - no traceback, not once per log line."""
    endpoint, session = moto
    autoscaling = session.client("autoscaling")
    for name, groups in (("good-lc", []), ("bad-lc", ["does-not-exist"])):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=name,
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            SecurityGroups=groups,
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name[:-3],
            MinSize=0,
            MaxSize=1,
            LaunchConfigurationName=name,
            AvailabilityZones=["us-east-1a"],
        )
    (files / "convert.yml").write_text(yaml.safe_dump(CONVERT))
    env = dict(aws_env(endpoint), HOME=str(files))
    result = c7n(["run", "-s", "out", "--cache-period", "0", "convert.yml"], env, files)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count(" - bad: ") == 1, result.stderr
    assert " - good: " not in result.stderr
    assert "policy convert: convert-to-launch-template failed for 1 group(s)" in result.stderr


def test_remediation_against_a_stock_moto_server_is_one_line(files):
    """A moto server without the restored AWS behaviour (no marker path): remediation is
    refused before anything is asked of it; detection still runs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://%s:%d" % server.get_host_and_port()
        env = dict(aws_env(endpoint), HOME=str(files))
        for verb in (["run", "-s", "out"], ["plan"]):
            result = c7n(verb + [PACK / "remediate.yml"], env, files)
            one_line(
                result,
                "c7n-imds %s: %s is a stock moto server" % (verb[0], endpoint),
                "c7n-imds demo --serve",
            )
        detect = c7n(["run", "-s", "out", "--cache-period", "0", PACK / "detect.yml"], env, files)
        assert detect.returncode == 0, detect.stderr
    finally:
        server.stop()


def test_demo_serve_prints_the_environment_and_serves_until_interrupted(files):
    process = subprocess.Popen(
        [COMMAND, "demo", "--serve", "--empty"],
        cwd=files,
        env=dict(os.environ, HOME=str(files)),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        printed = []
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        exports = dict(
            part.split("=", 1)
            for line in printed
            if line.startswith("export ")
            for part in line.split()[1:]
        )
        endpoint = exports["AWS_ENDPOINT_URL"]
        assert endpoint.startswith("http://127.0.0.1:"), printed
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(exports, HOME=str(files))
        result = c7n(
            ["run", "-s", "out", "--cache-period", "0", PACK / "remediate.yml"], env, files
        )
        assert result.returncode == 0, result.stderr  # the marker: not refused as stock
        assert (
            json.loads(
                (
                    files
                    / "out"
                    / "autoscaling-3-convert-to-imdsv2-launch-template"
                    / "resources.json"
                ).read_text()
            )
            == []
        )  # --empty
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""End to end: the IMDSv1-usage gate, exemptions and owner notification.

`c7n-imds run policies/remediate.yml` runs against a moto server whose CloudWatch holds
MetadataNoToken data put there with PutMetricData; the held-back group's notification
goes onto a moto SQS queue, and the real `c7n-mailer --run` delivers it to a real SMTP
server on 127.0.0.1 (aiosmtpd), where the test reads it.
"""

import datetime
import email
import email.policy
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

from c7n_imds_testing import aws_env
from tests.conftest import REPO

REMEDIATE = str(REPO / "policies" / "remediate.yml")
CANARY = "canary-secret-31415"
TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def seed(session):
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    cloudwatch, sqs = session.client("cloudwatch"), session.client("sqs")
    queue_url = sqs.create_queue(QueueName="c7n-mailer")["QueueUrl"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="app-lc",
        ImageId="ami-12c6146b",
        InstanceType="t3.small",
        UserData="#!/bin/sh\nexport TOKEN=%s\n" % CANARY,
    )
    exemptions = {
        "legacy": None,
        "quiet": None,
        "empty": None,
        "exempt-future": "vendor agent until %s" % (TODAY + datetime.timedelta(days=30)),
        "exempt-past": "old reason until %s" % (TODAY - datetime.timedelta(days=1)),
        "exempt-bad": "until someday",
    }
    for name, exempt in exemptions.items():
        tags = [{"Key": "owner", "Value": "%s-team@example.com" % name, "PropagateAtLaunch": False}]
        if exempt:
            tags.append({"Key": "c7n-imds:exempt", "Value": exempt, "PropagateAtLaunch": False})
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName="app-lc",
            MinSize=0,
            MaxSize=2,
            DesiredCapacity=0 if name == "empty" else 1,
            VPCZoneIdentifier=subnet,
            Tags=tags,
        )
    instances = {
        g["AutoScalingGroupName"]: [i["InstanceId"] for i in g["Instances"]]
        for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    }
    now = datetime.datetime.now(datetime.timezone.utc)
    for group, ids in instances.items():
        for instance_id in ids:
            calls = 7 if group == "legacy" else 0
            cloudwatch.put_metric_data(
                Namespace="AWS/EC2",
                MetricData=[
                    {
                        "MetricName": "MetadataNoToken",
                        "Value": calls,
                        "Unit": "Count",
                        "Timestamp": now - datetime.timedelta(hours=h),
                        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                    }
                    for h in (1, 30)
                ],
            )
    return queue_url


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def launch_types(autoscaling):
    return {
        g["AutoScalingGroupName"]: "template" if g.get("LaunchTemplate") else "config"
        for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    }


def test_gate_exemptions_and_mail_to_owners(moto, c7n_imds_cmd, smtp, tmp_path):
    endpoint, session = moto
    queue_url = seed(session)
    autoscaling = session.client("autoscaling")
    out = tmp_path / "out"
    run = c7n_imds_cmd(["run", "-v", "-s", str(out), "--cache-period", "0", REMEDIATE], endpoint)

    # -v: each gate says why it left a group out
    future = TODAY + datetime.timedelta(days=30)
    for line in (
        "asg legacy left out by filter imdsv1-usage: held back: 14 IMDSv1 call(s) in 14 days",
        "asg exempt-future left out by filter imds-exempt: exempt: vendor agent until %s" % future,
        "asg exempt-bad left out by filter imds-exempt: unreadable c7n-imds:exempt tag",
        "asg legacy left out by filter imds: LaunchType is 'launch-configuration'; the "
        "policy asks in ['launch-template', 'mixed-instances-policy'] (launches from "
        "launch-configuration app-lc)",
        # converted by the first policy, so the later ones see it compliant
        "asg quiet left out by filter imds: compliant: launch-template app-lc-imdsv2-",
    ):
        assert line in run.stderr, line
    assert launch_types(autoscaling) == {
        "legacy": "config",  # 14 IMDSv1 calls in the window: held back
        "quiet": "template",  # zero calls
        "empty": "template",  # no instances: missing counts as zero here
        "exempt-future": "config",  # exempt until a future date
        "exempt-past": "template",  # exemption expired
        "exempt-bad": "config",  # malformed exemption: nothing changed on a guess
    }
    held = json.loads((out / "asg-imdsv1-in-use-held-back" / "resources.json").read_text())
    assert [g["AutoScalingGroupName"] for g in held] == ["legacy"]
    assert held[0]["c7n-imds:imdsv1-calls"]["Total"] == 14

    controller, inbox = smtp
    config = tmp_path / "mailer.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "queue_url": queue_url,
                "endpoint_url": endpoint,
                "region": "us-east-1",
                "from_address": "c7n-imds@example.com",
                "contact_tags": ["owner"],
                "smtp_server": "127.0.0.1",
                "smtp_port": controller.port,
                "smtp_ssl": False,
            }
        )
    )
    mailer = subprocess.run(
        [
            str(Path(sys.executable).with_name("c7n-mailer")),
            "-c",
            str(config),
            "-t",
            str(REPO / "c7n_imds" / "mail"),
            "--run",
        ],
        env=aws_env(endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mailer.returncode == 0, mailer.stderr

    assert len(inbox.messages) == 1, mailer.stderr
    recipients, raw = inbox.messages[0]
    assert recipients == ["legacy-team@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    # outside c7n-org, with no account alias: the subject still names the account
    assert message["Subject"] == (
        "IMDSv2: Auto Scaling groups held back - IMDSv1 still "
        "in use in account 123456789012, us-east-1"
    )
    body = message.get_body(("html",)).get_content()
    for expected in (
        "legacy",
        "launch-configuration app-lc",
        "14 in 14 days",
        "They were NOT changed",
        "c7n-imds:exempt",
        "us-east-1",
        "<td>123456789012</td>",
    ):
        assert expected in body, expected
    (tmp_path / "rendered-mail.html").write_text(body)
    assert CANARY not in raw.decode("utf-8", "replace")
    for path in out.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path

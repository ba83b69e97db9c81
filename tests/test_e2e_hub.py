"""The Security Hub custom action (policies/securityhub.yml) converts a group only when
the schedule (policies/remediate.yml) would: a click in the console is no evidence that
nothing on the group still calls IMDSv1. Its filters are the schedule's, and the
handler, run from the function archive custodian builds against a moto server, leaves
a group whose instance called IMDSv1 and an exempt group as they are."""

import datetime
import subprocess
import sys
import zipfile

import yaml
from c7n.config import Config
from c7n.loader import PolicyLoader
from c7n.mu import PolicyLambda

from c7n_imds_testing import aws_env
from tests.conftest import REPO
from tests.support.estates import groups_by_name
from tests.test_lambda import RUN_HANDLER

HUB = REPO / "policies" / "securityhub.yml"
HUB_POLICY = "autoscaling-3-remediate-from-finding"
SCHEDULE = REPO / "policies" / "remediate.yml"
SCHEDULE_POLICY = "autoscaling-3-convert-to-imdsv2-launch-template"
ACCOUNT, REGION = "123456789012", "us-east-1"


def policy_data(path, name):
    (policy,) = [p for p in yaml.safe_load(path.read_text())["policies"] if p["name"] == name]
    return policy


def load_hub_policy():
    loader = PolicyLoader(Config.empty(region=REGION, account_id=ACCOUNT))
    (policy,) = [p for p in loader.load_file(str(HUB)) if p.name == HUB_POLICY]
    return policy


def test_the_hub_action_is_gated_exactly_like_the_schedule():
    hub, schedule = policy_data(HUB, HUB_POLICY), policy_data(SCHEDULE, SCHEDULE_POLICY)
    assert hub["resource"] == schedule["resource"] == "asg"
    assert hub["filters"] == schedule["filters"]
    assert {"type": "imdsv1-usage", "days": 14, "value": 0, "missing": "zero"} in hub["filters"]
    assert {"type": "imds-exempt", "key": "Exempt", "value": False} in hub["filters"]
    assert hub["actions"] == schedule["actions"]
    assert hub["mode"]["type"] == "hub-action"
    load_hub_policy().validate()  # with the plugin's filters registered


def hub_event(group_arns):
    """The event of the custom action chosen on the findings securityhub.yml posts for
    groups (resource type AwsAutoScalingAutoScalingGroup, the group's ARN)."""
    return {
        "version": "0",
        "id": "e3",
        "detail-type": "Security Hub Findings - Custom Action",
        "source": "aws.securityhub",
        "account": ACCOUNT,
        "region": REGION,
        "time": "2026-11-29T00:00:00Z",
        "resources": ["arn:aws:securityhub:%s:%s:action/custom/%s" % (REGION, ACCOUNT, HUB_POLICY)],
        "detail": {
            "actionName": HUB_POLICY,
            "actionDescription": "convert",
            "findings": [
                {
                    "AwsAccountId": ACCOUNT,
                    "Id": "finding-%d" % n,
                    "Resources": [
                        {"Type": "AwsAutoScalingAutoScalingGroup", "Region": REGION, "Id": arn}
                    ],
                }
                for n, arn in enumerate(group_arns)
            ],
        },
    }


def test_the_hub_action_leaves_a_group_calling_imdsv1_and_an_exempt_group(moto, tmp_path):
    endpoint, session = moto
    autoscaling = session.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="app-lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    for name, capacity, tags in (
        ("quiet", 0, []),
        ("busy", 1, []),
        (
            "vendor",
            0,
            [
                {
                    "Key": "c7n-imds:exempt",
                    "Value": "vendor agent until 2099-01-01 (CHG-1)",
                    "PropagateAtLaunch": False,
                }
            ],
        ),
    ):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName="app-lc",
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=capacity,
            AvailabilityZones=[REGION + "a"],
            Tags=tags,
        )
    groups = groups_by_name(autoscaling)
    session.client("cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "MetadataNoToken",
                "Value": 7,
                "Unit": "Count",
                "Dimensions": [
                    {"Name": "InstanceId", "Value": groups["busy"]["Instances"][0]["InstanceId"]}
                ],
                "Timestamp": datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(hours=2),
            }
        ],
    )

    extracted = tmp_path / "task"
    archive = tmp_path / "hub.zip"
    archive.write_bytes(PolicyLambda(load_hub_policy()).get_archive().get_bytes())
    with zipfile.ZipFile(archive) as z:
        z.extractall(extracted)
    script = extracted / "invoke_handler.py"
    event = hub_event([groups[n]["AutoScalingGroupARN"] for n in ("quiet", "busy", "vendor")])
    script.write_text(RUN_HANDLER.replace("event = {", "event = %r\n_unused = {" % event))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=str(extracted),
        capture_output=True,
        text=True,
        env=dict(aws_env(endpoint), PYTHONPATH=str(extracted)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    after = groups_by_name(autoscaling)
    assert {n for n, g in after.items() if g.get("LaunchTemplate")} == {"quiet"}
    assert after["busy"]["LaunchConfigurationName"] == "app-lc"
    assert after["vendor"]["LaunchConfigurationName"] == "app-lc"

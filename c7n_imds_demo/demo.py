"""`c7n-imds demo`: the policy pack against an embedded moto server.

Starts moto on 127.0.0.1, seeds a realistic non-compliant estate, then runs
detect -> remediate -> detect through the real `c7n-imds` command, exactly as a user
would, and prints a before/after table. No AWS account or network needed.

`c7n-imds demo --serve [--empty]` starts the same server (AWS's behaviour restored,
seeded unless --empty), prints the environment to export, and serves until Ctrl-C: to
run the pack by hand.
"""

import argparse
import contextlib
import datetime
import importlib.util
import json
import socket
import sys
import tempfile
import threading
from pathlib import Path

import boto3

from c7n_imds.model.outcomes import entries
from c7n_imds.names import CHANGES_FILE, EXEMPT_TAG, USAGE_ANNOTATION
from c7n_imds.pack import PackMissing, pack_dir
from c7n_imds_testing import EndpointSession, aws_env, moto_server, run_c7n_imds

REGION = "us-east-1"

# Multi-line, non-ASCII user data: must arrive in the template byte for byte.
# (botocore base64-encodes CreateLaunchConfiguration's UserData itself.)
WEB_USER_DATA = (
    "#!/bin/bash\n# Grüße aus dem Rechenzentrum — デプロイ\n"
    "echo 'héllo wörld' > /etc/motd\nsystemctl restart nginx\n"
)
BATCH_USER_DATA = "#cloud-config\nruncmd:\n  - [ /opt/batch/start ]\n"


# A web shop that a CloudFormation stack owns: its group is fixed in the stack, by a
# change set for the stack's owner (policies/remediate-owners.yml), never behind it.
STACK = "demo-shop"
STACK_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: c7n-imds demo - a shop tier a stack owns, still on a launch configuration
Parameters:
  Subnet: {Type: String}
  InstanceType: {Type: String, Default: t3.micro}
Resources:
  ShopLaunchConfig:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: ami-12c6146b
      InstanceType: !Ref InstanceType
      InstanceMonitoring: false
      UserData: !Base64 "#!/bin/bash\necho shop > /etc/motd\n"
  ShopGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref ShopLaunchConfig
      MinSize: "0"
      MaxSize: "2"
      VPCZoneIdentifier: [!Ref Subnet]
"""


def seed_stack(session, subnet):
    """The stack, and the tags CloudFormation puts on its group (moto does not)."""
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=STACK_TEMPLATE,
        Parameters=[{"ParameterKey": "Subnet", "ParameterValue": subnet}],
    )
    stack_id = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["StackId"]
    for resource in cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]:
        if resource["ResourceType"] == "AWS::AutoScaling::AutoScalingGroup":
            session.client("autoscaling").create_or_update_tags(
                Tags=[
                    {
                        "ResourceId": resource["PhysicalResourceId"],
                        "ResourceType": "auto-scaling-group",
                        "Key": key,
                        "Value": value,
                        "PropagateAtLaunch": True,
                    }
                    for key, value in (
                        ("aws:cloudformation:stack-name", STACK),
                        ("aws:cloudformation:logical-id", resource["LogicalResourceId"]),
                        ("aws:cloudformation:stack-id", stack_id),
                        ("owner", "team-shop@example.com"),
                    )
                ]
            )


def launch_configurations(sg):
    """The estate's launch configurations, as CreateLaunchConfiguration parameters."""
    return [
        dict(
            LaunchConfigurationName="web-lc",
            ImageId="ami-12c6146b",
            InstanceType="t3.medium",
            KeyName="ops",
            SecurityGroups=[sg["web"]],
            UserData=WEB_USER_DATA,
            IamInstanceProfile="web-instance-profile",
            EbsOptimized=True,
        ),
        dict(
            LaunchConfigurationName="api-public-lc",
            ImageId="ami-12c6146b",
            InstanceType="t3.small",
            SecurityGroups=["api-sg"],  # by name, default VPC
            AssociatePublicIpAddress=True,
            InstanceMonitoring={"Enabled": False},
        ),
        dict(
            LaunchConfigurationName="batch-spot-lc",
            ImageId="ami-12c6146b",
            InstanceType="c5.large",
            SpotPrice="0.05",
            SecurityGroups=[sg["batch"]],
            UserData=BATCH_USER_DATA,
            IamInstanceProfile="arn:aws:iam::123456789012:instance-profile/batch",
        ),
        dict(
            LaunchConfigurationName="data lake/ingest (v2)",
            ImageId="ami-12c6146b",
            InstanceType="r5.xlarge",
            SecurityGroups=[sg["data"]],
            BlockDeviceMappings=[
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": 50,
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                },
                {
                    "DeviceName": "/dev/sdb",
                    "Ebs": {
                        "VolumeSize": 500,
                        "VolumeType": "io1",
                        "Iops": 3000,
                        "DeleteOnTermination": False,
                    },
                },
                {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
            ],
        ),
        dict(
            LaunchConfigurationName="k8s-node-lc",
            ImageId="ami-12c6146b",
            InstanceType="m5.large",
            SecurityGroups=[sg["web"]],
            MetadataOptions={
                "HttpTokens": "optional",
                "HttpPutResponseHopLimit": 2,
                "HttpEndpoint": "enabled",
            },
        ),
        dict(
            LaunchConfigurationName="hardened-lc",
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            SecurityGroups=[sg["web"]],
            MetadataOptions={
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
        ),
    ]


GROUPS = [
    # (group name, launch configuration or template key, desired capacity)
    ("web-a", "web-lc", 1),
    ("web-b", "web-lc", 0),
    ("legacy-agent", "web-lc", 1),  # its instance still calls IMDSv1: held back
    ("api-public", "api-public-lc", 0),
    ("batch-spot", "batch-spot-lc", 0),  # exempt for a month
    ("data-ingest", "data lake/ingest (v2)", 0),
    ("k8s-nodes", "k8s-node-lc", 0),
    ("hardened", "hardened-lc", 1),
    ("svc-template", "lt:svc-template", 0),
    ("svc-template-v2", "lt:svc-template-v2", 0),
]


def seed(session):
    """Create the demo estate in whatever endpoint the session talks to."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    ][:2]
    sg = {
        name: ec2.create_security_group(
            GroupName="%s-sg" % name, Description="demo %s" % name, VpcId=vpc["VpcId"]
        )["GroupId"]
        for name in ("web", "api", "batch", "data")
    }
    for params in launch_configurations(sg):
        autoscaling.create_launch_configuration(**params)
    templates = {
        "svc-template": {
            "ImageId": "ami-12c6146b",
            "InstanceType": "t3.small",
            "SecurityGroupIds": [sg["web"]],
        },
        "svc-template-v2": {
            "ImageId": "ami-12c6146b",
            "InstanceType": "t3.small",
            "SecurityGroupIds": [sg["web"]],
            "MetadataOptions": {"HttpTokens": "required"},
        },
    }
    template_ids = {
        name: ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)[
            "LaunchTemplate"
        ]["LaunchTemplateId"]
        for name, data in templates.items()
    }
    expiry = (
        datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=30)
    ).isoformat()
    for group, source, desired in GROUPS:
        launch = (
            {
                "LaunchTemplate": {
                    "LaunchTemplateId": template_ids[source[3:]],
                    "Version": "$Default",
                }
            }
            if source.startswith("lt:")
            else {"LaunchConfigurationName": source}
        )
        tags = [
            {
                "Key": "owner",
                "Value": "team-%s@example.com" % group.split("-")[0],
                "PropagateAtLaunch": True,
            }
        ]
        if group == "batch-spot":
            tags.append(
                {
                    "Key": EXEMPT_TAG,
                    "PropagateAtLaunch": False,
                    "Value": "vendor scheduler needs IMDSv1 until %s" % expiry,
                }
            )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(subnets),
            Tags=tags,
            **launch,
        )
    # CloudWatch's MetadataNoToken: IMDSv1 calls each instance received
    now = datetime.datetime.now(datetime.timezone.utc)
    for asg in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]:
        for instance in asg["Instances"]:
            calls = 42 if asg["AutoScalingGroupName"] == "legacy-agent" else 0
            session.client("cloudwatch").put_metric_data(
                Namespace="AWS/EC2",
                MetricData=[
                    {
                        "MetricName": "MetadataNoToken",
                        "Value": calls,
                        "Unit": "Count",
                        "Timestamp": now - datetime.timedelta(hours=2),
                        "Dimensions": [{"Name": "InstanceId", "Value": instance["InstanceId"]}],
                    }
                ],
            )
    seed_stack(session, subnets[0])
    # the queue c7n-mailer reads; held-back groups' owners are notified through it
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    return {"security_groups": sg, "templates": template_ids}


def estate_table(session):
    """One row per group: where it launches from and what IMDS it gets."""
    from c7n_imds.sources import LaunchSources

    autoscaling = session.client("autoscaling")
    asgs = [
        a
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate()
        for a in page["AutoScalingGroups"]
    ]
    sources = LaunchSources.from_session(session).load(asgs)
    rows = {}
    for asg in sorted(asgs, key=lambda a: a["AutoScalingGroupName"]):
        view = sources.describe(asg)
        version = view.get("LaunchTemplateVersion")
        rows[asg["AutoScalingGroupName"]] = (
            view["LaunchType"],
            view["LaunchName"] + (" v%s" % version if version else ""),
            view["HttpTokens"],
        )
    return rows


def policy_counts(out_dir):
    counts = {}
    for resources in sorted(Path(out_dir).glob("*/resources.json")):
        counts[resources.parent.name] = len(json.loads(resources.read_text()))
    return counts


def main(argv=()):
    parser = argparse.ArgumentParser(
        prog="c7n-imds demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where custodian output goes (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="only start the server and print the environment to export; serve until Ctrl-C",
    )
    parser.add_argument(
        "--empty", action="store_true", help="with --serve: no demo estate, an empty account"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="with --serve: the port on 127.0.0.1 (default: a free one)",
    )
    options = parser.parse_args(argv)
    # moto is the demo extra's: an install without it gets one line, not a traceback
    if importlib.util.find_spec("moto") is None:
        print(
            "c7n-imds demo needs moto, which comes with the demo extra: pip install "
            "'dist/c7n_imds-VERSION-py3-none-any.whl[demo]' (or pip install '.[demo]' "
            "in a checkout)",
            file=sys.stderr,
        )
        return 2
    if options.serve:
        return serve(options.empty, options.port)
    try:
        policy_dir = pack_dir()
    except PackMissing as error:
        print("c7n-imds demo: %s" % error, file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        # no --output-dir: the output lives as long as the demo, no folder left behind
        out = Path(
            options.output_dir
            or stack.enter_context(tempfile.TemporaryDirectory(prefix="c7n-imds-demo-"))
        )
        return demo(policy_dir, out, kept=bool(options.output_dir))


SERVE_HELP = """\
moto server with the AWS behaviour c7n-imds relies on: {endpoint} ({estate})
In another shell:
export AWS_ENDPOINT_URL={endpoint}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={region}
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN
c7n-imds pack copy imds-pack   # then run the pack as the README shows, e.g.
c7n-imds run -s out --cache-period 0 imds-pack/detect.yml
Ctrl-C stops the server (its estate is in memory only)."""


def serve(empty=False, port=0):
    """A local server for running the pack by hand, until Ctrl-C."""
    try:
        if port:  # moto's server thread would wait forever on a port in use: ask first
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        server = moto_server(port)
        endpoint = server.__enter__()
    except OSError as error:
        print(
            "c7n-imds demo: cannot serve on 127.0.0.1:%d (%s); choose another --port"
            % (port, error.strerror or error),
            file=sys.stderr,
        )
        return 2
    try:
        if not empty:
            seed(
                EndpointSession(
                    boto3.Session(
                        region_name=REGION,
                        aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                    ),
                    endpoint,
                )
            )
        print(
            SERVE_HELP.format(
                endpoint=endpoint,
                region=REGION,
                estate=("empty" if empty else "seeded with the demo estate"),
            ),
            flush=True,
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        print("server stopped", file=sys.stderr)
    finally:
        server.__exit__(None, None, None)
    return 0


def demo(policy_dir, out, kept):
    with moto_server() as endpoint:
        env = aws_env(endpoint)
        session = boto3.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        session = EndpointSession(session, endpoint)
        seed(session)
        before = estate_table(session)
        steps = [
            ("detect (before)", "before", "detect.yml", "run"),
            ("plan", "plan", "remediate.yml", "plan"),
            ("remediate", "remediate", "remediate.yml", "run"),
            ("fix at owners", "owners", "remediate-owners.yml", "run"),
            ("detect (after)", "after", "detect.yml", "run"),
        ]
        for title, folder, policy_file, verb in steps:
            # --cache-period 0: each step must see the estate as the previous one left it.
            result = run_c7n_imds(
                [
                    verb,
                    "-s",
                    str(out / folder),
                    "-r",
                    REGION,
                    "--cache-period",
                    "0",
                    str(policy_dir / policy_file),
                ],
                env,
            )
            print("== c7n-imds %s %s" % (verb, policy_file))
            if verb == "plan":
                print(result.stdout)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return result.returncode
            if verb == "run":
                for policy, count in policy_counts(out / folder).items():
                    print("   %-48s %d resource(s)" % (policy, count))
        after = estate_table(session)
        why = reasons(out / "remediate", session)
        why.update(read_change_sets_proposed(out / "owners"))
    print()
    print(format_table(before, after, why))
    print(FOOTNOTES)
    print(
        "\ncustodian output: %s" % out
        if kept
        else "\n(custodian output removed; keep it with --output-dir DIR)"
    )
    return 0


FOOTNOTES = """
- Launch configurations stay until policies/cleanup.yml deletes them after a 14-day soak
  (AutoScaling.3 keeps reporting them until then); revert-imds-remediation goes back.
- Running instances keep IMDSv1 until replaced (EC2.8 above): use running-instances:
  refresh or modify on the remediation actions when ready.
- The held-back group's owner gets a mail through c7n-mailer (policies/notify.yml).
- The stack-owned group is fixed in its stack: its owner is mailed the change set to
  review and execute (aws cloudformation execute-change-set); c7n-imds never executes it."""


def read_change_sets_proposed(owners_out):
    """The groups whose stack got a change set, and its name."""
    why = {}
    for changes in Path(owners_out).glob("*/" + CHANGES_FILE):
        for outcome in entries(json.loads(changes.read_text())):
            fix = outcome.get("OwnerFix") or {}
            if fix.get("ChangeSetName"):
                why[outcome["AutoScalingGroupName"]] = "change set %s proposed to stack %s" % (
                    fix["ChangeSetName"],
                    fix["StackName"],
                )
    return why


def reasons(remediate_out, session):
    """Why a group that still allows IMDSv1 was left alone."""
    why = {}
    held = Path(remediate_out) / "asg-imdsv1-in-use-held-back" / "resources.json"
    if held.exists():
        for asg in json.loads(held.read_text()):
            why[asg["AutoScalingGroupName"]] = "held back: %s IMDSv1 calls in %s days" % (
                asg[USAGE_ANNOTATION]["Total"],
                asg[USAGE_ANNOTATION]["Days"],
            )
    for asg in session.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]:
        tags = {t["Key"]: t["Value"] for t in asg.get("Tags", ())}
        if EXEMPT_TAG in tags:
            why[asg["AutoScalingGroupName"]] = "exempt: " + tags[EXEMPT_TAG]
    return why


def format_table(before, after, why=None):
    from tabulate import tabulate

    rows = []
    for group in sorted(before):
        b, a = before[group], after.get(group, (None, None, None))
        change = (
            "converted"
            if b[0] != a[0]
            else "new template version"
            if b != a
            else (why or {}).get(group, "compliant already" if b[2] == "required" else "unchanged")
        )
        rows.append((group, "%s %s" % (b[0], b[1]), b[2], "%s %s" % (a[0], a[1]), a[2], change))
    return tabulate(
        rows,
        headers=(
            "group",
            "before: launches from",
            "IMDS tokens",
            "after: launches from",
            "IMDS tokens",
            "change",
        ),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

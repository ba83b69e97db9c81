"""End to end for groups a CloudFormation stack owns: `create-stack-change-set` through the
real `c7n-imds` command against moto's CloudFormation. The stack is created from
tests/data/cfn/web.yaml (moto provisions its launch configuration and groups); its groups
are then tagged as CloudFormation tags stack resources (aws:cloudformation:stack-name,
logical-id, stack-id - moto does not add these tags). The moto server scopes change sets
to their stack and answers GetTemplate for a change set as AWS documents
(c7n_imds_testing/change_sets.py, docs/moto-gaps.md); cfn-lint judges the proposed template."""

import base64
import json
import logging
import textwrap
import urllib.request
import zlib
from pathlib import Path

import pytest
import yaml
from c7n_mailer.utils import get_rendered_jinja
from cfnlint.api import lint

import c7n_imds
from c7n_imds.model import cfn
from c7n_imds.model.outcomes import entries
from c7n_imds.names import CHANGE_SET_PREFIX
from c7n_imds_testing import aws_env, run_c7n_imds
from tests import faults
from tests.conftest import REPO

DATA = Path(__file__).parent / "data" / "cfn"
STACK = "web-tier"

POLICY = textwrap.dedent("""
    policies:
      - name: asg-stack-propose-imdsv2
        resource: asg
        filters:
          - "tag:aws:cloudformation:stack-name": present
          - type: imds
            key: LaunchType
            value: launch-configuration
        actions:
          - type: create-stack-change-set
""")


def tag_as_cloudformation(session, stack):
    """The tags CloudFormation puts on the groups of a stack, from the stack's resources."""
    cloudformation, autoscaling = session.client("cloudformation"), session.client("autoscaling")
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    groups = {}
    for resource in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]:
        if resource["ResourceType"] != cfn.AUTO_SCALING_GROUP:
            continue
        name = resource["PhysicalResourceId"]
        groups[resource["LogicalResourceId"]] = name
        autoscaling.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": value,
                    "PropagateAtLaunch": True,
                }
                for key, value in (
                    ("aws:cloudformation:stack-name", stack),
                    ("aws:cloudformation:logical-id", resource["LogicalResourceId"]),
                    ("aws:cloudformation:stack-id", described["StackId"]),
                )
            ]
        )
    return groups


@pytest.fixture
def stack_estate(moto, tmp_path):
    endpoint, session = moto
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=(DATA / "web.yaml").read_text(),
        Parameters=[{"ParameterKey": "InstanceType", "ParameterValue": "t3.small"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    groups = tag_as_cloudformation(session, STACK)
    policy = tmp_path / "stack.yml"
    policy.write_text(POLICY)
    return endpoint, session, groups, policy


def our_change_sets(cloudformation):
    return [
        s
        for s in cloudformation.list_change_sets(StackName=STACK)["Summaries"]
        if s["ChangeSetName"].startswith(CHANGE_SET_PREFIX)
    ]


def changes_file(out, policy="asg-stack-propose-imdsv2"):
    return {
        c["AutoScalingGroupName"]: c
        for c in entries(json.loads((out / policy / "imds-changes.json").read_text()))
    }


def test_stack_owned_groups_get_a_change_set_for_review(stack_estate, c7n_imds_cmd, tmp_path):
    endpoint, session, groups, policy = stack_estate
    cloudformation = session.client("cloudformation")
    original = cloudformation.get_template(StackName=STACK)["TemplateBody"]

    # plan: the change set it would propose, nothing made
    plan = c7n_imds_cmd(["plan", "--cache-period", "0", str(policy)], endpoint).stdout
    assert "1 owner change(s)" in plan, plan
    assert "CloudFormation stack %s -> change set %s" % (STACK, CHANGE_SET_PREFIX) in plan
    assert groups["WebGroup"] in plan and groups["CanaryGroup"] in plan
    assert "WebLaunchConfig: launch template WebLaunchConfigImdsv2Template added" in plan
    assert our_change_sets(cloudformation) == []

    out = tmp_path / "out"
    c7n_imds_cmd(["run", "-s", str(out), "--cache-period", "0", str(policy)], endpoint)
    [summary] = our_change_sets(cloudformation)
    name = summary["ChangeSetName"]
    change_set = cloudformation.describe_change_set(StackName=STACK, ChangeSetName=name)
    assert (change_set["Status"], change_set["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert change_set["Description"].startswith("c7n-imds (AutoScaling.3, EC2.170)")
    assert {p["ParameterKey"] for p in change_set["Parameters"]} == {
        "ImageId",
        "InstanceType",
        "KeyName",
        "SpotPrice",
        "DataSnapshot",
    }
    assert {
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in change_set["Changes"]
    } == {
        ("Add", "WebLaunchConfigImdsv2Template"),
        ("Modify", "WebGroup"),
        ("Modify", "CanaryGroup"),
        ("Remove", "WebLaunchConfig"),
    }

    # the proposed template: valid for cfn-lint, every launch configuration property
    # where AWS's mapping reference puts it, the groups on LatestVersionNumber
    body = cloudformation.get_template(StackName=STACK, ChangeSetName=name)["TemplateBody"]
    text = json.dumps(body) if isinstance(body, dict) else body
    assert [m for m in lint(text) if m.rule.id.startswith("E")] == []
    proposed, _ = cfn.parse_template(text)
    before, _ = cfn.parse_template((DATA / "web.yaml").read_text())
    lc = before["Resources"]["WebLaunchConfig"]["Properties"]
    data = proposed["Resources"]["WebLaunchConfigImdsv2Template"]["Properties"][
        "LaunchTemplateData"
    ]
    assert data["ImageId"] == lc["ImageId"] and data["InstanceType"] == lc["InstanceType"]
    assert data["KeyName"] == lc["KeyName"] and data["EbsOptimized"] == lc["EbsOptimized"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["Monitoring"] == {"Enabled": lc["InstanceMonitoring"]}
    assert (
        data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] == lc["AssociatePublicIpAddress"]
    )
    assert data["NetworkInterfaces"][0]["Groups"] == lc["SecurityGroups"]
    # AWS::EC2::LaunchTemplate's NoDevice is a string: "To omit the device from the block
    # device mapping, specify an empty string" (the configuration's is a boolean)
    assert data["BlockDeviceMappings"] == [
        dict(m, NoDevice="") if m.get("NoDevice") is True else m for m in lc["BlockDeviceMappings"]
    ]
    for group in ("WebGroup", "CanaryGroup"):
        assert proposed["Resources"][group]["Properties"]["LaunchTemplate"] == {
            "LaunchTemplateId": {"Ref": "WebLaunchConfigImdsv2Template"},
            "Version": {"Fn::GetAtt": ["WebLaunchConfigImdsv2Template", "LatestVersionNumber"]},
        }
    assert "WebLaunchConfig" not in proposed["Resources"]
    # the mixed instances group is not on a launch configuration: not in the policy
    assert proposed["Resources"]["WorkerGroup"] == before["Resources"]["WorkerGroup"]

    # never executed: the stack and its groups are as they were
    assert cloudformation.get_template(StackName=STACK)["TemplateBody"] == original
    autoscaling = session.client("autoscaling")
    for group in ("WebGroup", "CanaryGroup"):
        described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[groups[group]])[
            "AutoScalingGroups"
        ][0]
        assert described.get("LaunchConfigurationName") and not described.get("LaunchTemplate")

    # the outcome names the change set and how to execute it
    outcome = changes_file(out)[groups["WebGroup"]]
    assert outcome["Owner"] == "cloudformation:%s" % STACK
    assert outcome["OwnerFix"]["ChangeSetName"] == name
    assert outcome["OwnerFix"]["Status"] == "proposed"
    assert (
        "aws cloudformation execute-change-set --stack-name %s --change-set-name %s" % (STACK, name)
        in outcome["OwnerFix"]["Detail"]
    )
    resources = json.loads((out / "asg-stack-propose-imdsv2" / "resources.json").read_text())
    assert {r["AutoScalingGroupName"] for r in resources} == {
        groups["WebGroup"],
        groups["CanaryGroup"],
    }

    # a re-run finds its change set instead of making another
    c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "again"), "--cache-period", "0", str(policy)], endpoint
    )
    assert [s["ChangeSetName"] for s in our_change_sets(cloudformation)] == [name]
    assert (
        changes_file(tmp_path / "again")[groups["CanaryGroup"]]["OwnerFix"]["ChangeSetId"]
        == summary["ChangeSetId"]
    )

    # revert withdraws it; a change set of the owner's own is left alone
    cloudformation.create_change_set(
        StackName=STACK,
        ChangeSetName="owners-own",
        UsePreviousTemplate=True,
        ChangeSetType="UPDATE",
        Parameters=[{"ParameterKey": "InstanceType", "ParameterValue": "m5.large"}],
    )
    # the shipped revert.yml, with the groups named as its comment says
    shipped = yaml.safe_load((REPO / "policies" / "revert.yml").read_text())
    names = next(
        f for f in shipped["policies"][0]["filters"] if f.get("key") == "AutoScalingGroupName"
    )
    names["value"] = [groups["WebGroup"], groups["CanaryGroup"]]
    revert = tmp_path / "revert.yml"
    revert.write_text(yaml.safe_dump(shipped))
    c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "reverted"), "--cache-period", "0", str(revert)], endpoint
    )
    assert our_change_sets(cloudformation) == []
    assert [
        s["ChangeSetName"] for s in cloudformation.list_change_sets(StackName=STACK)["Summaries"]
    ] == ["owners-own"]
    reverted = changes_file(tmp_path / "reverted", "asg-revert-imds-remediation")
    assert reverted[groups["WebGroup"]]["Withdrawn"] == {
        "StackName": STACK,
        "ChangeSetNames": [name],
    }


def test_a_change_set_of_an_older_template_is_replaced(stack_estate, c7n_imds_cmd, tmp_path):
    """The owner changed the stack's template after a change set was proposed: the next
    run proposes one for the new template and deletes its own stale one."""
    endpoint, session, groups, policy = stack_estate
    cloudformation = session.client("cloudformation")
    c7n_imds_cmd(["run", "-s", str(tmp_path / "a"), "--cache-period", "0", str(policy)], endpoint)
    [first] = our_change_sets(cloudformation)
    text = (
        (DATA / "web.yaml")
        .read_text()
        .replace("Description: Web tier", "Description: The web tier")
    )
    cloudformation.update_stack(
        StackName=STACK,
        TemplateBody=text,
        Parameters=[{"ParameterKey": "InstanceType", "UsePreviousValue": True}],
        Capabilities=["CAPABILITY_IAM"],
    )
    c7n_imds_cmd(["run", "-s", str(tmp_path / "b"), "--cache-period", "0", str(policy)], endpoint)
    [second] = our_change_sets(cloudformation)
    assert second["ChangeSetName"] != first["ChangeSetName"]
    body = cloudformation.get_template(StackName=STACK, ChangeSetName=second["ChangeSetName"])[
        "TemplateBody"
    ]
    proposed, _ = cfn.parse_template(json.dumps(body) if isinstance(body, dict) else body)
    assert proposed["Description"].startswith("The web tier")


def test_the_pack_policy_proposes_and_mails_the_change_set(stack_estate, c7n_imds_cmd, tmp_path):
    """policies/remediate-owners.yml as shipped: the change set is proposed and the
    notice custodian queues for c7n-mailer names it; c7n-mailer's own renderer turns it
    into the mail the stack's owner reads."""
    endpoint, session, groups, _ = stack_estate
    sqs = session.client("sqs")
    queue = sqs.create_queue(QueueName="c7n-mailer")["QueueUrl"]
    pack = Path(__file__).parent.parent / "policies" / "remediate-owners.yml"
    out = tmp_path / "out"
    c7n_imds_cmd(
        [
            "run",
            "-s",
            str(out),
            "--cache-period",
            "0",
            "-p",
            "autoscaling-3-stack-change-set",
            str(pack),
        ],
        endpoint,
    )
    cloudformation = session.client("cloudformation")
    [proposed] = our_change_sets(cloudformation)

    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notice = json.loads(zlib.decompress(base64.b64decode(message["Body"])))
    fixes = {r["AutoScalingGroupName"]: r["c7n-imds:owner-fix"] for r in notice["resources"]}
    assert set(fixes) == {groups["WebGroup"], groups["CanaryGroup"]}
    assert {f["ChangeSetName"] for f in fixes.values()} == {proposed["ChangeSetName"]}
    html = get_rendered_jinja(
        "owner@example.com",
        notice,
        notice["resources"],
        logging.getLogger("test"),
        "template",
        "imds.html",
        [str(Path(c7n_imds.__file__).parent / "mail")],
    )
    assert (
        "change set <code>%s</code> on stack <code>%s</code>" % (proposed["ChangeSetName"], STACK)
        in html
    )
    assert "NOT executed" in html

    # the summary counts the groups as stack-owned by CloudFormation, with the change set
    report = json.loads(
        c7n_imds_cmd(["summary", "--format", "json", str(out)], endpoint, check=False).stdout
    )
    [account] = report["Runs"][-1]["Accounts"]
    assert account["StackOwnedByOwner"]["cloudformation"] == {
        "Groups": 2,
        "NotActed": 0,
        "FixProposed": 2,
        "FixedAtOwner": 0,
        "Failed": 0,
    }
    assert account["NonCompliant"] == 2  # a proposed change set is not compliance
    listed = {g["Group"]: g for g in report["Groups"]}
    for group in ("WebGroup", "CanaryGroup"):
        assert listed[groups[group]]["State"] == "fix-proposed"
        assert listed[groups[group]]["Fix"]["ChangeSetName"] == proposed["ChangeSetName"]

    # every call the run made is allowed by the policy iam-policy derives for the file
    document = json.loads(c7n_imds_cmd(["iam-policy", str(pack)], endpoint).stdout)
    allowed = {
        a
        for statement in document["Statement"]
        for a in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    made = {
        "%s:%s" % ({"monitoring": "cloudwatch"}.get(service, service), operation)
        for metadata in out.rglob("metadata.json")
        for service, operation in (
            call.split(".", 1) for call in json.loads(metadata.read_text())["api-stats"]
        )
    }
    assert {"cloudformation:CreateChangeSet", "cloudformation:GetTemplate"} <= made
    assert made - allowed == set()


def test_every_kill_point_converges(moto, tmp_path):
    """Killed right after each change it makes (creating the change set, deleting a
    stale one of its own), the next run ends with exactly one c7n-imds change set, for
    the stack's current template, ready for review - and the stack never executed."""
    endpoint, session = moto
    policy = tmp_path / "stack.yml"
    policy.write_text(POLICY)
    n, kills = 0, []
    while True:
        n += 1
        urllib.request.urlopen(
            urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
        ).close()
        cloudformation = session.client("cloudformation")
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=(DATA / "web.yaml").read_text(),
            Parameters=[{"ParameterKey": "InstanceType", "ParameterValue": "t3.small"}],
            Capabilities=["CAPABILITY_IAM"],
        )
        tag_as_cloudformation(session, STACK)
        # a change set of ours from an older template
        cloudformation.create_change_set(
            StackName=STACK,
            ChangeSetName=CHANGE_SET_PREFIX + "000000000000",
            ChangeSetType="UPDATE",
            UsePreviousTemplate=True,
            Parameters=[{"ParameterKey": "InstanceType", "ParameterValue": "m5.large"}],
        )
        log = tmp_path / ("kill-%d.jsonl" % n)
        env = faults.environment(
            aws_env(endpoint), tmp_path / "site", {"crash_after_mutating": n, "log": str(log)}, REPO
        )
        killed = run_c7n_imds(
            ["run", "-s", str(tmp_path / ("kill-%d" % n)), "--cache-period", "0", str(policy)], env
        )
        crashes = [e for e in faults.read_log(log) if e["event"] == "crash"]
        if killed.returncode == 0:
            assert crashes == []
            break
        assert killed.returncode == 137 and len(crashes) == 1, killed.stderr[-3000:]
        kills.append(crashes[0]["operation"])
        again = run_c7n_imds(
            ["run", "-s", str(tmp_path / ("again-%d" % n)), "--cache-period", "0", str(policy)],
            aws_env(endpoint),
        )
        assert again.returncode == 0, (n, kills[-1], again.stderr[-3000:])
        [ours] = our_change_sets(cloudformation)
        assert ours["ChangeSetName"] != CHANGE_SET_PREFIX + "000000000000", kills[-1]
        assert (ours["Status"], ours["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
        body = cloudformation.get_template(StackName=STACK, ChangeSetName=ours["ChangeSetName"])[
            "TemplateBody"
        ]
        proposed, _ = cfn.parse_template(json.dumps(body) if isinstance(body, dict) else body)
        assert "WebLaunchConfigImdsv2Template" in proposed["Resources"]
        assert (
            cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
            == "CREATE_COMPLETE"
        )
    assert kills == ["CreateChangeSet", "DeleteChangeSet"], kills


TEMPLATE_STACK = textwrap.dedent("""
    AWSTemplateFormatVersion: 2010-09-09
    Description: Groups on a launch template of their own stack that lets IMDSv1.
    Resources:
      Vpc:
        Type: AWS::EC2::VPC
        Properties:
          CidrBlock: 10.0.0.0/16
      Subnet:
        Type: AWS::EC2::Subnet
        Properties:
          VpcId: !Ref Vpc
          CidrBlock: 10.0.1.0/24
          AvailabilityZone: !Select [0, !GetAZs ""]
      AppTemplate:
        Type: AWS::EC2::LaunchTemplate
        Properties:
          LaunchTemplateData:
            ImageId: ami-12c6146b
            InstanceType: t3.micro
            MetadataOptions:
              HttpTokens: optional
              HttpPutResponseHopLimit: 3
      AppGroup:
        Type: AWS::AutoScaling::AutoScalingGroup
        Properties:
          MinSize: "0"
          MaxSize: "2"
          VPCZoneIdentifier: [!Ref Subnet]
          LaunchTemplate:
            LaunchTemplateId: !Ref AppTemplate
            Version: !GetAtt AppTemplate.LatestVersionNumber
      BatchGroup:
        Type: AWS::AutoScaling::AutoScalingGroup
        Properties:
          MinSize: "0"
          MaxSize: "1"
          VPCZoneIdentifier: [!Ref Subnet]
          LaunchTemplate:
            LaunchTemplateId: !Ref AppTemplate
            Version: !GetAtt AppTemplate.DefaultVersionNumber
""")

TEMPLATE_POLICY = textwrap.dedent("""
    policies:
      - name: asg-stack-propose-imdsv2
        resource: asg
        filters:
          - "tag:aws:cloudformation:stack-name": present
          - type: imds
            key: HttpTokens
            value: optional
        actions:
          - type: create-stack-change-set
""")


def test_a_stack_launch_template_gets_required_tokens(moto, c7n_imds_cmd, tmp_path):
    """A group on a launch template of its own stack at LatestVersionNumber: the change
    set modifies the template (HttpTokens required, the hop limit kept); moto diffs each
    resource's JSON, so the group itself is no change. The group on the template's
    DefaultVersionNumber is left, with why: CloudFormation does not move the default."""
    endpoint, session = moto
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(StackName=STACK, TemplateBody=TEMPLATE_STACK)
    groups = tag_as_cloudformation(session, STACK)
    policy = tmp_path / "stack.yml"
    policy.write_text(TEMPLATE_POLICY)
    out = tmp_path / "out"
    c7n_imds_cmd(["run", "-s", str(out), "--cache-period", "0", str(policy)], endpoint)

    [summary] = our_change_sets(cloudformation)
    change_set = cloudformation.describe_change_set(
        StackName=STACK, ChangeSetName=summary["ChangeSetName"]
    )
    assert (change_set["Status"], change_set["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert {
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in change_set["Changes"]
    } == {("Modify", "AppTemplate")}
    body = cloudformation.get_template(StackName=STACK, ChangeSetName=summary["ChangeSetName"])[
        "TemplateBody"
    ]
    text = json.dumps(body) if isinstance(body, dict) else body
    assert [m for m in lint(text) if m.rule.id.startswith("E")] == []
    proposed, _ = cfn.parse_template(text)
    before, _ = cfn.parse_template(TEMPLATE_STACK)
    assert proposed["Resources"]["AppTemplate"]["Properties"]["LaunchTemplateData"][
        "MetadataOptions"
    ] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 3}
    assert {k: v for k, v in proposed["Resources"].items() if k != "AppTemplate"} == {
        k: v for k, v in before["Resources"].items() if k != "AppTemplate"
    }

    outcome = changes_file(out)
    assert outcome[groups["AppGroup"]]["OwnerFix"]["ChangeSetName"] == summary["ChangeSetName"]
    assert any(
        "AppTemplate: the new version reaches every group of the stack on its "
        "LatestVersionNumber: AppGroup" in n
        for n in outcome[groups["AppGroup"]]["Notes"]
    )
    skipped = outcome[groups["BatchGroup"]]["Skipped"]
    assert "DefaultVersionNumber" in skipped and "does not move" in skipped
    # never executed: the template's versions still let IMDSv1
    [version] = session.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=cloudformation.describe_stack_resource(
            StackName=STACK, LogicalResourceId="AppTemplate"
        )["StackResourceDetail"]["PhysicalResourceId"],
        MaxResults=200,
    )["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "optional"


def test_a_template_too_big_for_a_body_goes_through_the_bucket(moto, c7n_imds_cmd, tmp_path):
    """A real-shaped stack (widdix's, tests/data/cfn/real/) grown past 51,200 bytes even
    as compact JSON: the change set is made from the policy's template-bucket through
    TemplateURL, removes the launch configuration (its cfn-init Metadata moved), and the
    object is deleted once the change set is made."""
    from tests.test_cfn_templates import REAL, big, real_estate

    endpoint, session = moto
    cloudformation, s3 = session.client("cloudformation"), session.client("s3")
    s3.create_bucket(Bucket="cfn-templates")
    original = big(cfn.parse_template((REAL / "widdix-ec2-asg.yaml").read_text())[0])
    # moto describes an alarm's stack resource without its type (docs/moto-gaps.md)
    del original["Resources"]["CPUTooHighAlarm"]
    values = real_estate(session, "widdix-ec2-asg.yaml")
    cloudformation.create_stack(
        StackName="fleet",
        TemplateBody=json.dumps(original),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )
    tag_as_cloudformation(session, "fleet")
    policy = tmp_path / "big.yml"
    policy.write_text(
        POLICY.replace(
            "- type: create-stack-change-set",
            ("- type: create-stack-change-set\n        template-bucket: cfn-templates"),
        )
    )
    c7n_imds_cmd(["run", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)], endpoint)
    [summary] = [
        s
        for s in cloudformation.list_change_sets(StackName="fleet")["Summaries"]
        if s["ChangeSetName"].startswith(CHANGE_SET_PREFIX)
    ]
    change_set = cloudformation.describe_change_set(
        StackName="fleet", ChangeSetName=summary["ChangeSetName"]
    )
    assert change_set["Status"] == "CREATE_COMPLETE"
    assert ("Remove", "LaunchConfiguration") in {
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in change_set["Changes"]
    }
    body = cloudformation.get_template(StackName="fleet", ChangeSetName=summary["ChangeSetName"])[
        "TemplateBody"
    ]
    text = json.dumps(body) if isinstance(body, dict) else body
    assert len(text.encode()) > 51200 and "Metadata" in json.dumps(
        cfn.parse_template(text)[0]["Resources"]["LaunchConfigurationImdsv2Template"]
    )
    assert s3.list_objects_v2(Bucket="cfn-templates").get("KeyCount") == 0

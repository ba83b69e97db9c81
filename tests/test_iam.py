"""`c7n-imds iam-policy` covers every call a real run makes.

Custodian records each policy's API calls in metadata.json ("api-stats"); every one of
them, across detect and remediate runs against moto, must be allowed by the generated
policy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from c7n_imds.iam import policy_permissions
from tests.conftest import REPO
from tests.support.estates import seed

# botocore endpoint prefixes that differ from IAM's service prefixes
IAM_PREFIX = {"monitoring": "cloudwatch"}
ROLE = "arn:aws:iam::123456789012:role/web-instances"


def test_generated_policy_covers_every_call_of_a_run(moto, c7n_imds_cmd, tmp_path):
    endpoint, session = moto
    seed(session)
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    files = [str(REPO / "policies" / f) for f in ("detect.yml", "remediate.yml", "cleanup.yml")]
    result = c7n_imds_cmd(["iam-policy", "--instance-role", ROLE] + files, endpoint)
    document = json.loads(result.stdout)
    assert document["Version"] == "2012-10-17"
    allowed = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        allowed.update([actions] if isinstance(actions, str) else actions)
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    # ec2.amazonaws.com, and ec2.amazonaws.com.cn in the aws-cn partition
    assert by_sid["C7nImdsPassInstanceRole"]["Condition"] == {
        "StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}
    }
    assert by_sid["C7nImdsTagNewTemplates"]["Condition"]["StringEquals"] == {
        "ec2:CreateAction": "CreateLaunchTemplate"
    }
    assert by_sid["C7nImdsTagAtLaunch"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "RunInstances"}
    }
    # templates c7n-imds did not make may take their image from an SSM parameter
    assert "ssm:GetParameters" in allowed
    # remediate.yml keeps running instances as they are
    assert not {"ec2:ModifyInstanceMetadataOptions", "autoscaling:StartInstanceRefresh"} & allowed

    for f in files:
        c7n_imds_cmd(
            ["run", "-s", str(tmp_path / Path(f).stem), "--cache-period", "0", f], endpoint
        )
    made = set()
    for metadata in tmp_path.rglob("metadata.json"):
        for call in json.loads(metadata.read_text())["api-stats"]:
            service, operation = call.split(".", 1)
            made.add("%s:%s" % (IAM_PREFIX.get(service, service), operation))
    assert {
        "ec2:CreateLaunchTemplate",
        "autoscaling:UpdateAutoScalingGroup",
        "ec2:RunInstances",
    } <= made  # the run really remediated
    assert made - allowed == set()
    assert {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"} <= allowed


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ("policies: [\n", "not valid YAML"),
        (
            "policies:\n  - name: p\n    resource: asg\n    actions:\n"
            "      - {type: set-metadata-access, hop-limit: 99}\n",
            "invalid policy",
        ),
        ("# nothing\n", "holds no policies"),
    ],
    ids=["missing", "bad-yaml", "invalid", "empty"],
)
def test_iam_policy_refuses_bad_input_in_one_line(tmp_path, content, words):
    path = tmp_path / "policy.yml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "iam-policy", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and words in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "action, present, absent",
    [
        (
            {"type": "set-metadata-access"},
            {
                "ec2:RunInstances",
                "ec2:GetInstanceTypesFromInstanceRequirements",
                "ec2:DeleteLaunchTemplateVersions",
            },
            {"ec2:ModifyInstanceMetadataOptions", "autoscaling:StartInstanceRefresh"},
        ),
        (
            {"type": "set-metadata-access", "running-instances": "modify"},
            {"ec2:ModifyInstanceMetadataOptions"},
            {"autoscaling:StartInstanceRefresh"},
        ),
        (
            {"type": "set-metadata-access", "running-instances": "refresh"},
            {"autoscaling:StartInstanceRefresh"},
            {"ec2:ModifyInstanceMetadataOptions"},
        ),
        (
            {"type": "set-metadata-access", "verify": False},
            {"ec2:CreateLaunchTemplateVersion"},
            {"ec2:GetInstanceTypesFromInstanceRequirements", "ec2:DescribeImages"},
        ),
        (
            {"type": "convert-to-launch-template"},
            {"ec2:DeleteLaunchTemplate"},
            {"ssm:GetParameters", "ec2:ModifyInstanceMetadataOptions"},
        ),
    ],
)
def test_permissions_follow_the_options(load_policy, action, present, absent):
    """Only what a policy's options use: running-instances keep needs nothing on
    running instances, modify and refresh each need their one call, verify false
    drops what only the pre-flight needs; a conversion makes templates from AMI ids,
    so it needs no SSM parameter."""
    policy = load_policy(
        {"name": "p", "resource": "asg", "actions": [action]}, session_factory=None
    )
    permissions = policy_permissions([policy])
    assert present <= permissions
    assert not absent & permissions


def test_deploy_policy_is_for_lambda_modes_only(tmp_path):
    """--deploy: the deployer's calls, and iam:PassRole of the modes' roles to Lambda
    only; files without a Lambda mode have nothing to deploy (one line)."""
    command = str(Path(sys.executable).with_name("c7n-imds"))
    result = subprocess.run(
        [
            command,
            "iam-policy",
            "--deploy",
            str(REPO / "policies" / "lambda" / "remediate-periodic.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    deploy, passing = json.loads(result.stdout)["Statement"]
    assert {"lambda:CreateFunction", "events:PutRule"} <= set(deploy["Action"])
    assert not [a for a in deploy["Action"] if a.startswith(("ec2:", "autoscaling:"))]
    assert passing["Resource"] == ["arn:aws:iam::*:role/c7n-imds-lambda"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    none = subprocess.run(
        [command, "iam-policy", "--deploy", str(REPO / "policies" / "detect.yml")],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 2 and none.stderr.count("\n") == 1
    assert "no policy in" in none.stderr and "Lambda mode" in none.stderr


# -- least privilege: scopes, conditions, the linter -------------------------------------

SHIPPED = sorted(
    str(p.relative_to(REPO))
    for p in list((REPO / "policies").glob("*.yml"))
    + list((REPO / "policies" / "lambda").glob("*.yml"))
)
# Findings of parliament (with its community auditors) accepted, each with its reason
# (docs/iam.md): (issue, what the finding names) -> reason.
ACCEPTED_FINDINGS = {
    (
        "RESOURCE_STAR",
        "ec2:runinstances",
    ): "RunInstances authorizes every resource type a group's own template names "
    "(images, snapshots, key pairs, capacity reservations...); c7n-imds only dry-runs "
    "it and AWS checks it on a switch",
    (
        "PRIVILEGE_ESCALATION",
        "iam:passrole ec2:runinstances",
    ): "launching with a template needs both; iam:PassRole is limited to the groups' "
    "instance roles and to EC2, so no role the groups do not already run with",
    (
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam:passrole",
    ): "the same iam:PassRole, limited to the instance roles and to EC2",
}


def run_iam_policy(*args):
    return subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "iam-policy"] + [str(a) for a in args],
        capture_output=True,
        text=True,
    )


def document_of(path, *options):
    result = run_iam_policy(*(list(options) + [REPO / path]))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def lint(document):
    """Parliament's findings at LOW or above, as (issue, names) pairs."""
    import parliament
    from parliament import analyze_policy_string, enhance_finding, override_config
    from parliament.cli import is_finding_filtered

    override_config(
        Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    )
    found = set()
    for finding in analyze_policy_string(
        json.dumps(document), include_community_auditors=True
    ).findings:
        finding = enhance_finding(finding)
        if is_finding_filtered(finding, "LOW"):
            continue
        names = (finding.location or {}).get("actions") or (
            finding.detail if isinstance(finding.detail, list) else [str(finding.detail)]
        )
        found.add((finding.issue, " ".join(n.lower() for n in names)))
    return found


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_policy_passes_the_iam_linter(path):
    document, _ = document_of(path, "--instance-role", ROLE)
    findings = lint(document)
    assert findings - set(ACCEPTED_FINDINGS) == set()


def test_the_linter_finds_what_the_old_policy_granted():
    """The check can fail: PassRole and UpdateStack on `*` (the policy before issue 21)
    are findings no reason accepts."""
    old = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["iam:PassRole", "cloudformation:UpdateStack", "ec2:DescribeVpcs"],
            }
        ],
    }
    assert lint(old) - set(ACCEPTED_FINDINGS)


def reference():
    """The AWS Service Authorization Reference as parliament ships it: action ->
    resource types it names as required (a trailing *)."""
    import parliament

    data = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
    return {
        "%s:%s" % (service["prefix"], p["privilege"]): [
            r["resource_type"] for r in p["resource_types"] if r["resource_type"].endswith("*")
        ]
        for service in data
        for p in service["privileges"]
    }


@pytest.mark.parametrize("path", SHIPPED)
def test_only_calls_aws_cannot_scope_are_on_star_and_each_is_documented(path):
    document, _ = document_of(path, "--instance-role", ROLE)
    docs = (REPO / "docs" / "iam.md").read_text()
    required = reference()
    for statement in document["Statement"]:
        if statement["Resource"] != "*":
            continue
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action in required, "%s: unknown to the reference" % action
            if action != "ec2:RunInstances":
                assert not required[action], (action, required[action])
            assert "`%s`" % action in docs, "%s on * is not explained in docs/iam.md" % action


def statements(document):
    return {s["Sid"]: s for s in document["Statement"]}


def granted(document, action):
    return [
        s
        for s in document["Statement"]
        if action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]


def test_remediate_owners_grants_no_escalation():
    document, stderr = document_of("policies/remediate-owners.yml")
    # CloudFormation reuses a stack's service role without PassRole: Beanstalk's only
    [update] = granted(document, "cloudformation:UpdateStack")
    assert update["Resource"] == "arn:aws:cloudformation:*:*:stack/awseb-e-*/*"
    # never PassRole on *: without roles, a placeholder, said on standard error
    [passing] = granted(document, "iam:PassRole")
    assert passing["Resource"] == "arn:aws:iam::ACCOUNT:role/REPLACE-WITH-INSTANCE-ROLES"
    assert passing["Condition"] == {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}
    assert stderr.count("\n") == 1 and "placeholder" in stderr and "--discover" in stderr
    # change sets only c7n-imds's own
    for action in ("cloudformation:CreateChangeSet", "cloudformation:DeleteChangeSet"):
        [statement] = granted(document, action)
        assert statement["Condition"] == {
            "StringLike": {"cloudformation:ChangeSetName": "c7n-imds-imdsv2-*"}
        }
    # group tags: only the keys c7n-imds writes
    [tags] = granted(document, "autoscaling:CreateOrUpdateTags")
    assert tags["Condition"] == {
        "ForAllValues:StringLike": {"aws:TagKeys": ["c7n-imds:previous-launch"]}
    }
    # what the Beanstalk stack update deletes and tags, only through CloudFormation
    via = {"aws:CalledVia": "cloudformation.amazonaws.com"}
    [delete] = granted(document, "ec2:DeleteLaunchTemplate")
    assert delete["Condition"] == {"ForAnyValue:StringEquals": via}
    tagging = statements(document)["C7nImdsBeanstalkStackTemplateTags"]
    assert tagging["Condition"] == {
        "ForAnyValue:StringEquals": via,
        "StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"},
    }


def test_instance_roles_named_on_the_command_line():
    other = "arn:aws:iam::123456789012:role/batch"
    document, stderr = document_of(
        "policies/remediate.yml", "--instance-role", ROLE, "--instance-role", other
    )
    assert stderr == ""
    [passing] = granted(document, "iam:PassRole")
    assert passing["Resource"] == sorted([ROLE, other])
    refused = run_iam_policy("--instance-role", "web", REPO / "policies" / "remediate.yml")
    assert refused.returncode == 2 and "not a role ARN" in refused.stderr
    assert refused.stdout == ""


@pytest.mark.parametrize(
    "path",
    ["policies/remediate.yml", "policies/revert.yml", "policies/remediate-autoscaling-9.yml"],
)
def test_deletes_and_tag_writes_are_conditioned(path):
    document, _ = document_of(path, "--instance-role", ROLE)
    by_sid = statements(document)
    for statement in granted(document, "ec2:DeleteLaunchTemplate"):
        assert statement["Condition"] in (
            {"Null": {"aws:ResourceTag/c7n-imds:source": "false"}},
            {"ForAnyValue:StringEquals": {"aws:CalledVia": "cloudformation.amazonaws.com"}},
        )
    for statement in granted(document, "ec2:CreateTags"):
        assert statement["Condition"]["StringEquals"]["ec2:CreateAction"] in (
            "CreateLaunchTemplate",
            "RunInstances",
        )
        assert statement["Resource"] != "*"
    if "C7nImdsTagNewTemplates" in by_sid:
        assert by_sid["C7nImdsTagNewTemplates"]["Condition"]["ForAllValues:StringLike"] == {
            "aws:TagKeys": ["c7n-imds:source", "c7n-imds:source-created"]
        }
    for action in ("autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"):
        for statement in granted(document, action):
            keys = statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
            assert keys and all(k.startswith("c7n-imds:") for k in keys)
    # a version of a template c7n-imds did not make is withdrawn when it fails its
    # check: only set-metadata-access needs that on an untagged template
    withdraws = "C7nImdsWithdrawFailedVersions" in by_sid
    assert withdraws == (path == "policies/remediate.yml")


def test_cleanup_deletes_launch_configurations_by_arn():
    document, _ = document_of("policies/cleanup.yml")
    [delete] = granted(document, "autoscaling:DeleteLaunchConfiguration")
    assert delete["Resource"] == (
        "arn:aws:autoscaling:*:*:launchConfiguration:*:launchConfigurationName/*"
    )


def test_config_rule_mode_may_put_evaluations():
    document, _ = document_of("policies/lambda/detect-config-rule.yml")
    assert granted(document, "config:PutEvaluations")
    periodic, _ = document_of("policies/lambda/detect-periodic.yml")
    assert not granted(periodic, "config:PutEvaluations")


@pytest.mark.parametrize(
    "content",
    [
        # a duplicate key: YAML keeps the last, custodian's validate refuses the file
        "policies:\n  - name: p\n    resource: asg\n    resource: asg\n",
        # a Lambda function name over 64 characters: the mode's own validation
        "policies:\n  - name: %s\n    resource: asg\n    mode:\n      type: periodic\n"
        "      schedule: rate(1 day)\n      role: arn:aws:iam::123456789012:role/r\n" % ("p" * 60),
    ],
    ids=["duplicate-key", "lambda-name-too-long"],
)
def test_iam_policy_refuses_what_validate_refuses(tmp_path, content):
    path = tmp_path / "policy.yml"
    path.write_text(content)
    validate = subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert validate.returncode != 0
    result = run_iam_policy(path)
    assert result.returncode == 2, result.stdout
    assert result.stdout == "" and result.stderr.count("\n") == 1
    # the same verdict, in the same words, as `c7n-imds validate`
    said = validate.stderr.strip().split("c7n-imds validate: ", 1)[1]
    assert result.stderr.strip() == "c7n-imds iam-policy: " + said
    assert str(path) in said


def test_discover_finds_the_groups_instance_roles(moto, c7n_imds_cmd):
    """--discover reads the groups' launch configurations and templates (read-only)
    and resolves their instance profiles to the roles iam:PassRole may pass."""
    endpoint, session = moto
    iam, ec2 = session.client("iam"), session.client("ec2")
    autoscaling = session.client("autoscaling")
    arns = {}
    for name in ("web", "batch", "unused"):
        arns[name] = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName=name + "-profile")
        iam.add_role_to_instance_profile(InstanceProfileName=name + "-profile", RoleName=name)
        arns[name + "-profile"] = profile["InstanceProfile"]["Arn"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="web-lc",
        ImageId=image,
        InstanceType="t3.micro",
        IamInstanceProfile="web-profile",
    )
    template = ec2.create_launch_template(
        LaunchTemplateName="batch-lt",
        LaunchTemplateData={"ImageId": image, "IamInstanceProfile": {"Arn": arns["batch-profile"]}},
    )
    zones = {"MinSize": 0, "MaxSize": 1, "AvailabilityZones": ["us-east-1a"]}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web", LaunchConfigurationName="web-lc", **zones
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="batch",
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
        **zones,
    )

    result = c7n_imds_cmd(
        ["iam-policy", "--discover", "-r", "us-east-1", str(REPO / "policies" / "remediate.yml")],
        endpoint,
    )
    [passing] = granted(json.loads(result.stdout), "iam:PassRole")
    assert passing["Resource"] == sorted([arns["web"], arns["batch"]])
    assert result.stderr == ""

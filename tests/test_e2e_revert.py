"""End to end, through the real `c7n-imds` command against a moto server: a revert
stopped after any of its changes is finished by the next run, and the scheduled
remediation (policies/remediate.yml) leaves the reverted groups alone; a template
squatted under a conversion's name is never adopted.

The launcher (c7n_imds_testing/__init__.py) answers a template's CreatedBy with its creator as
GetCallerIdentity names it, as AWS does: what c7n-imds made is its own; the squatter is
another IAM user.
"""

import hashlib
import urllib.request

import boto3

from c7n_imds_testing import EndpointSession
from tests import faults
from tests.support.commands import (
    EXEMPT_TAG,
    FIGURES,
    PREVIOUS_TAG,
    REMEDIATE,
    SOURCE_TAG,
    c7n,
    run_args,
    tags_of,
)

SQUATTER = "arn:aws:iam::123456789012:user/intruder"
# another principal the revert may trust (the running identity is trusted anyway)
RELEASE_BOT = "arn:aws:iam::123456789012:role/release-bot"
IMAGE = "ami-12c6146b"
REVERT = (
    """\
policies:
  - name: asg-revert
    resource: asg
    filters:
      - "tag:c7n-imds:previous-launch": present
    actions:
      - type: revert-imds-remediation
        trusted-principals: [%s]
"""
    % RELEASE_BOT
)


def reset(endpoint):
    urllib.request.urlopen(
        urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    ).close()


def subnets(ec2):
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    return ",".join(
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ][:2]
    )


def seed_templates(session):
    """Template web (version 1 allows IMDSv1): web-a pinned to version 1, web-b on
    $Default."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    template_id = ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={
            "ImageId": IMAGE,
            "InstanceType": "t3.micro",
            "MetadataOptions": {"HttpTokens": "optional"},
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    for name, version in (("web-a", "1"), ("web-b", "$Default")):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnets(ec2),
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": version},
        )
    return template_id


def state(session, template_id):
    """What matters after a revert: each group's template version and tags, the
    template's default and how many versions it has."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    groups = {
        g["AutoScalingGroupName"]: g
        for g in autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web-a", "web-b"])[
            "AutoScalingGroups"
        ]
    }
    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    return {
        "versions": {name: g["LaunchTemplate"]["Version"] for name, g in groups.items()},
        "records": {name: tags_of(g).get(PREVIOUS_TAG) for name, g in groups.items()},
        "exempt": {name: tags_of(g).get(EXEMPT_TAG, "")[:24] for name, g in groups.items()},
        "default": template["DefaultVersionNumber"],
        "latest": template["LatestVersionNumber"],
    }


REVERTED = {
    "versions": {"web-a": "1", "web-b": "$Default"},
    "records": {"web-a": None, "web-b": None},
    "exempt": {"web-a": "reverted by c7n-imds on ", "web-b": "reverted by c7n-imds on "},
    "default": 1,
    "latest": 2,
}


def test_every_revert_kill_point_converges(moto, tmp_path):
    """remediate.yml gives template web version 2 (from version 1), made default, and
    pins web-a to it. The revert is then killed right after its n-th change, for every
    n (the default moved back; web-a pinned back; web-a exempt; web-a's record removed;
    web-b - whose default is back already - exempt; its record removed): the next
    revert finishes the job, and the next scheduled remediate.yml run changes nothing
    (no new version, the default stays 1), because every reverted group is exempt
    before its record goes."""
    endpoint, session = moto
    policy = tmp_path / "revert.yml"
    policy.write_text(REVERT)
    n, kills = 0, []
    while True:
        n += 1
        reset(endpoint)
        template_id = seed_templates(session)
        done = c7n(run_args(tmp_path / ("remediate-%d" % n), REMEDIATE), endpoint, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        remediated = state(session, template_id)
        assert (remediated["versions"], remediated["default"]) == (
            {"web-a": "2", "web-b": "$Default"},
            2,
        ), remediated
        assert remediated["records"] == {
            "web-a": "lt:%s:1" % template_id,
            "web-b": "lt:%s:$Default" % template_id,
        }
        log = tmp_path / ("kill-%d.jsonl" % n)
        killed = c7n(
            run_args(tmp_path / ("kill-%d" % n), policy),
            endpoint,
            tmp_path,
            {"crash_after_mutating": n, "log": str(log)},
        )
        crashes = [e for e in faults.read_log(log) if e["event"] == "crash"]
        if killed.returncode == 0:
            assert crashes == []
            assert state(session, template_id) == REVERTED
            break
        assert killed.returncode == 137 and len(crashes) == 1, killed.stderr[-3000:]
        kills.append(crashes[0]["operation"])
        again = c7n(run_args(tmp_path / ("again-%d" % n), policy), endpoint, tmp_path)
        assert again.returncode == 0, (n, kills[-1], again.stderr[-3000:])
        assert state(session, template_id) == REVERTED, (n, kills[-1])
        scheduled = c7n(run_args(tmp_path / ("scheduled-%d" % n), REMEDIATE), endpoint, tmp_path)
        assert scheduled.returncode == 0, scheduled.stderr[-3000:]
        assert state(session, template_id) == REVERTED, ("remediated again", n, kills[-1])
    assert kills == [
        "ModifyLaunchTemplate",
        "UpdateAutoScalingGroup",
        "CreateOrUpdateTags",
        "DeleteTags",
        "CreateOrUpdateTags",
        "DeleteTags",
    ], kills
    FIGURES["faults injected"] += len(kills)
    FIGURES["faults survived"] += len(kills)


def derived_name(config):
    """The conversion's template name, from the documented rule (the configuration's
    name, -imdsv2-, 10 hex digits of SHA-256 of "name NUL created")."""
    created = config["CreatedTime"].strftime("%Y-%m-%dT%H:%M:%SZ")
    name = config["LaunchConfigurationName"]
    digest = hashlib.sha256(("%s\0%s" % (name, created)).encode()).hexdigest()
    return "%s-imdsv2-%s" % (name, digest[:10])


def test_a_squatted_template_is_never_adopted(moto, tmp_path):
    """Someone creates, before the first run, a template under the name the conversion
    of app-lc will use, tagged c7n-imds:source=app-lc, holding exactly what the
    conversion would make. Its CreatedBy (another IAM user) is not the running identity
    and the policy trusts nobody else: app fails naming the template, stays on app-lc,
    and the template is neither used nor deleted."""
    endpoint, session = moto
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="app-lc", ImageId=IMAGE, InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="app",
        LaunchConfigurationName="app-lc",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnets(ec2),
    )
    config = autoscaling.describe_launch_configurations()["LaunchConfigurations"][0]
    iam = session.client("iam")
    iam.create_user(UserName="intruder")
    key = iam.create_access_key(UserName="intruder")["AccessKey"]
    squatter = EndpointSession(
        boto3.Session(
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        ),
        endpoint,
    )
    squatted = squatter.client("ec2").create_launch_template(
        LaunchTemplateName=derived_name(config),
        LaunchTemplateData={
            "ImageId": IMAGE,
            "InstanceType": "t3.micro",
            "Monitoring": {"Enabled": False},
            "MetadataOptions": {"HttpTokens": "required"},
        },
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": SOURCE_TAG, "Value": "app-lc"}]}
        ],
    )["LaunchTemplate"]
    assert squatted["CreatedBy"] == SQUATTER

    result = c7n(run_args(tmp_path / "out", REMEDIATE), endpoint, tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith(" - app:")]
    assert lines, result.stderr[-3000:]
    line = lines[0]
    assert len(set(lines)) == 1, lines
    assert squatted["LaunchTemplateId"] in line and derived_name(config) in line, line
    assert "was created by %s, which is not trusted" % SQUATTER in line, line
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["app"])[
        "AutoScalingGroups"
    ][0]
    assert "LaunchTemplate" not in group and PREVIOUS_TAG not in tags_of(group)
    assert [t["LaunchTemplateId"] for t in ec2.describe_launch_templates()["LaunchTemplates"]] == [
        squatted["LaunchTemplateId"]
    ]

"""End to end: a launch template's default moves only when everything else that
launches from it - here an EC2 Fleet - passes the usage gate (the change contract's
gate over every consumer, c7n_imds.consumers), through the real `c7n-imds` command.
moto does not tag fleet instances with aws:ec2launchtemplate:id as AWS does; the fleet's
instances come from DescribeFleetInstances, which moto answers."""

import datetime
import textwrap

import pytest

POLICY = textwrap.dedent("""
    policies:
      - name: asg-template-require-imdsv2
        resource: asg
        filters:
          - type: imds
            key: HttpTokens
            value: optional
          - type: imdsv1-usage
            days: 14
            value: 0
            missing: zero
        actions:
          - type: set-metadata-access
            hop-limit: 2
""")


def seed(session, fleet_calls):
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    template_id = ec2.create_launch_template(
        LaunchTemplateName="shared",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ][0]["SubnetId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
    )
    fleet = ec2.create_fleet(
        Type="maintain",
        TargetCapacitySpecification={
            "TotalTargetCapacity": 1,
            "DefaultTargetCapacityType": "on-demand",
            "OnDemandTargetCapacity": 1,
        },
        LaunchTemplateConfigs=[
            {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateId": template_id,
                    "Version": "$Default",
                }
            }
        ],
    )["FleetId"]
    instance = ec2.describe_fleet_instances(FleetId=fleet)["ActiveInstances"][0]["InstanceId"]
    session.client("cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "MetadataNoToken",
                "Value": fleet_calls,
                "Unit": "Count",
                "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                "Timestamp": datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(hours=30),
            }
        ],
    )
    return template_id, fleet


def run(c7n_imds_cmd, endpoint, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return c7n_imds_cmd(
        ["run", "-v", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)], endpoint
    )


@pytest.mark.parametrize("fleet_calls", [900, 0])
def test_a_fleet_calling_imdsv1_keeps_the_default(moto, c7n_imds_cmd, tmp_path, fleet_calls):
    endpoint, session = moto
    template_id, fleet = seed(session, fleet_calls)
    result = run(c7n_imds_cmd, endpoint, tmp_path)
    ec2 = session.client("ec2")
    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    web = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"
    ][0]["LaunchTemplate"]
    assert template["LatestVersionNumber"] == 2
    if fleet_calls:
        # the fleet still launches version 1; the group gets version 2 by number
        assert template["DefaultVersionNumber"] == 1
        assert web["Version"] == "2"
        assert "ec2-fleet %s made 900 IMDSv1 call(s) in 14 days" % fleet in result.stderr
    else:
        assert template["DefaultVersionNumber"] == 2
        assert web["Version"] == "$Default"
        assert "also launched from by ec2-fleet %s" % fleet in result.stderr

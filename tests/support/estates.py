"""The estates the end-to-end tests seed into a moto server (no test module imports
another)."""

import base64

CANARY = "s3cr3t-canary-7f1e"
USER_DATA_TEXT = (
    "#!/bin/bash\n# Grüße — デプロイ\nexport DB_PASSWORD=%s\necho 'héllo' > /etc/motd\n" % CANARY
)
USER_DATA = base64.b64encode(USER_DATA_TEXT.encode("utf-8")).decode()
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/batch"
ODD_NAME = "ingest/lake (v2) \u00e9t\u00e9 #1"


def seed(session):
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ",".join(
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ][:2]
    )
    app_sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc["VpcId"])[
        "GroupId"
    ]
    named_sg = ec2.create_security_group(
        GroupName="legacy-named", Description="by name", VpcId=vpc["VpcId"]
    )["GroupId"]
    lcs = [
        dict(
            LaunchConfigurationName="shared-lc",
            ImageId="ami-11111111",
            InstanceType="t3.medium",
            KeyName="ops",
            SecurityGroups=[app_sg],
            # botocore base64-encodes CreateLaunchConfiguration's UserData itself
            UserData=USER_DATA_TEXT,
            IamInstanceProfile="app-profile",
            EbsOptimized=True,
        ),
        dict(
            LaunchConfigurationName="public-lc",
            ImageId="ami-22222222",
            InstanceType="t3.small",
            SecurityGroups=["legacy-named"],
            AssociatePublicIpAddress=True,
            InstanceMonitoring={"Enabled": True},
        ),
        dict(
            LaunchConfigurationName="spot-lc",
            ImageId="ami-33333333",
            InstanceType="c5.large",
            SpotPrice="0.042",
            SecurityGroups=[app_sg],
            IamInstanceProfile=PROFILE_ARN,
            KernelId="aki-12345678",
            RamdiskId="ari-12345678",
            MetadataOptions={
                "HttpTokens": "optional",
                "HttpPutResponseHopLimit": 3,
                "HttpEndpoint": "enabled",
            },
        ),
        dict(
            LaunchConfigurationName=ODD_NAME,
            ImageId="ami-44444444",
            InstanceType="r5.large",
            SecurityGroups=[app_sg],
            BlockDeviceMappings=[
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": 40,
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                        "Throughput": 250,
                        "Iops": 4000,
                    },
                },
                {
                    "DeviceName": "/dev/sdb",
                    "Ebs": {
                        "SnapshotId": "snap-0123456789abcdef0",
                        "VolumeSize": 100,
                        "VolumeType": "io2",
                        "Iops": 5000,
                        "DeleteOnTermination": False,
                    },
                },
                {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
            ],
        ),
        dict(
            LaunchConfigurationName="compliant-lc",
            ImageId="ami-55555555",
            InstanceType="t3.micro",
            SecurityGroups=[app_sg],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        ),
    ]
    for lc in lcs:
        autoscaling.create_launch_configuration(**lc)
    template_id = ec2.create_launch_template(
        LaunchTemplateName="existing-lt",
        LaunchTemplateData={"ImageId": "ami-66666666", "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    groups = {
        "shared-a": "shared-lc",
        "shared-b": "shared-lc",
        "public": "public-lc",
        "spot": "spot-lc",
        "odd": ODD_NAME,
        "compliant": "compliant-lc",
    }
    for group, lc in groups.items():
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchConfigurationName=lc,
            MinSize=0,
            MaxSize=2,
            DesiredCapacity=1 if group == "shared-a" else 0,
            VPCZoneIdentifier=subnets,
        )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="lt-group",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnets,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
    )
    return {"app_sg": app_sg, "named_sg": named_sg, "template_id": template_id, "groups": groups}


def groups_by_name(autoscaling):
    return {
        g["AutoScalingGroupName"]: g
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate()
        for g in page["AutoScalingGroups"]
    }

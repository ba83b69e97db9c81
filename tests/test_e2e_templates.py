"""End to end for launch-template groups: `set-metadata-access` and revert, through the
real `c7n-imds` command against moto.

The moto server stores versions as AWS does (c7n_imds_testing restores SourceVersion
inheritance, docs/moto-gaps.md); that every other setting survives is checked in
test_e2e_verified.py, the version pointers and defaults here.
"""

import textwrap

import pytest

OPTIONAL = {"HttpTokens": "optional", "HttpEndpoint": "enabled"}


def seed(session):
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ",".join(
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ][:2]
    )

    def template(name, metadata=None):
        data = {"ImageId": "ami-12345678", "InstanceType": "t3.small"}
        if metadata:
            data["MetadataOptions"] = metadata
        return ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)[
            "LaunchTemplate"
        ]["LaunchTemplateId"]

    ids = {
        "shared": template("shared"),  # v1 optional, followed as $Default
        "pinned": template("pinned", OPTIONAL),  # v1 optional, pinned to 1
        "latest": template("latest"),  # v1 optional, then v2 optional
        "good": template("good", {"HttpTokens": "required"}),
        "override": template("override"),  # optional, used by an override only
        # already what the policy asks for: the mixed group's base stays as it is
        "base": template("base", {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}),
    }
    ec2.create_launch_template_version(
        LaunchTemplateId=ids["latest"],
        SourceVersion="1",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.large"},
    )

    def group(name, **launch):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=2,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnets,
            **launch,
        )

    group("shared-1", LaunchTemplate={"LaunchTemplateId": ids["shared"], "Version": "$Default"})
    group("shared-2", LaunchTemplate={"LaunchTemplateId": ids["shared"], "Version": "$Default"})
    group("pinned", LaunchTemplate={"LaunchTemplateId": ids["pinned"], "Version": "1"})
    group("latest", LaunchTemplate={"LaunchTemplateId": ids["latest"], "Version": "$Latest"})
    group("good", LaunchTemplate={"LaunchTemplateId": ids["good"], "Version": "$Default"})
    group(
        "mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": ids["base"], "Version": "1"},
                "Overrides": [
                    {"InstanceType": "t3.small"},
                    {
                        "InstanceType": "m5.large",
                        "LaunchTemplateSpecification": {
                            "LaunchTemplateId": ids["override"],
                            "Version": "1",
                        },
                    },
                ],
            }
        },
    )
    return ids


POLICY = textwrap.dedent("""
    policies:
      - name: asg-template-require-imdsv2
        resource: asg
        filters:
          - type: imds
            key: LaunchType
            op: in
            value: [launch-template, mixed-instances-policy]
          - type: imds
            key: HttpTokens
            value: optional
        actions:
          - type: set-metadata-access
            hop-limit: 2
""")

REVERT = textwrap.dedent("""
    policies:
      - name: asg-revert
        resource: asg
        filters:
          - "tag:c7n-imds:previous-launch": present
        actions:
          - type: revert-imds-remediation
""")


def template_state(ec2, template_id):
    t = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    versions = {
        v["VersionNumber"]: v
        for v in ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
            "LaunchTemplateVersions"
        ]
    }
    return t["DefaultVersionNumber"], t["LatestVersionNumber"], versions


def groups(autoscaling):
    return {
        g["AutoScalingGroupName"]: g
        for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    }


@pytest.fixture
def template_estate(moto, tmp_path):
    endpoint, session = moto
    ids = seed(session)
    policy = tmp_path / "templates.yml"
    policy.write_text(POLICY)
    return endpoint, session, ids, policy


def test_set_metadata_access_new_versions_defaults_and_pins(
    template_estate, c7n_imds_cmd, tmp_path
):
    endpoint, session, ids, policy = template_estate
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    c7n_imds_cmd(["run", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)], endpoint)

    # shared: one new version for both groups, made the default
    default, latest, versions = template_state(ec2, ids["shared"])
    assert (default, latest) == (2, 2)
    assert versions[2]["LaunchTemplateData"]["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
    }
    assert versions[2]["VersionDescription"].startswith("c7n-imds: from version 1 with ")
    # pinned: group pointed at the new number; the default moved too (it was v1)
    default, latest, versions = template_state(ec2, ids["pinned"])
    assert latest == 2 and default == 2
    assert versions[2]["LaunchTemplateData"]["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
        "HttpPutResponseHopLimit": 2,
    }
    current = groups(autoscaling)
    assert current["pinned"]["LaunchTemplate"]["Version"] == "2"
    # $Latest: derived from v2 (the latest), becomes v3; the default (v1) is not it
    default, latest, versions = template_state(ec2, ids["latest"])
    assert (default, latest) == (1, 3)
    assert versions[3]["VersionDescription"].startswith("c7n-imds: from version 2 with ")
    assert current["latest"]["LaunchTemplate"]["Version"] == "$Latest"
    # compliant templates untouched
    assert template_state(ec2, ids["good"])[:2] == (1, 1)
    assert template_state(ec2, ids["base"])[:2] == (1, 1)
    # mixed: the override template gets v2 and the override is pointed at it
    override = current["mixed"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"][1]
    assert override["LaunchTemplateSpecification"]["Version"] == "2"
    base = current["mixed"]["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
    assert (base["LaunchTemplateId"], base["Version"]) == (ids["base"], "1")
    tags = {t["Key"]: t["Value"] for t in current["shared-1"]["Tags"]}
    assert tags["c7n-imds:previous-launch"] == "lt:%s:$Default" % ids["shared"]

    # a second run changes nothing
    before = {k: template_state(ec2, v)[:2] for k, v in ids.items()}
    c7n_imds_cmd(["run", "-s", str(tmp_path / "two"), "--cache-period", "0", str(policy)], endpoint)
    assert {k: template_state(ec2, v)[:2] for k, v in ids.items()} == before


def test_revert_puts_groups_back(template_estate, c7n_imds_cmd, tmp_path):
    endpoint, session, ids, policy = template_estate
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    c7n_imds_cmd(["run", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)], endpoint)
    revert = tmp_path / "revert.yml"
    revert.write_text(REVERT)
    c7n_imds_cmd(["run", "-s", str(tmp_path / "rev"), "--cache-period", "0", str(revert)], endpoint)
    current = groups(autoscaling)
    assert current["pinned"]["LaunchTemplate"]["Version"] == "1"
    assert template_state(ec2, ids["shared"])[0] == 1  # default back on the source
    assert template_state(ec2, ids["pinned"])[0] == 1
    override = current["mixed"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"][1]
    assert override["LaunchTemplateSpecification"]["Version"] == "1"
    tags = {t["Key"]: t["Value"] for t in current["shared-1"]["Tags"]}
    assert "c7n-imds:previous-launch" not in tags
    assert tags["c7n-imds:exempt"].startswith("reverted")


def test_shared_templates_never_change_groups_outside_the_run(moto, c7n_imds_cmd, tmp_path):
    """`app` and `app-exempt` follow $Default of one template; `app-exempt` is exempt.
    Moving the default would change the exempt group too, so the default stays and
    `app` is pinned to the new version. `cache` follows $Default of a template that the
    compliant group `cache-next` follows as $Latest: a new version would become what
    `cache-next` launches, so `cache` is refused with a message naming it."""
    endpoint, session = moto
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]

    def template(name):
        return ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.small"},
        )["LaunchTemplate"]["LaunchTemplateId"]

    app, cache = template("app"), template("cache")
    ec2.create_launch_template_version(  # cache v2: the latest, already requires IMDSv2
        LaunchTemplateId=cache,
        SourceVersion="1",
        LaunchTemplateData={
            "ImageId": "ami-87654321",
            "MetadataOptions": {"HttpTokens": "required"},
        },
    )
    for name, template_id, version, tags in (
        ("app", app, "$Default", []),
        (
            "app-exempt",
            app,
            "$Default",
            [{"Key": "c7n-imds:exempt", "Value": "vendor agent", "PropagateAtLaunch": False}],
        ),
        ("cache", cache, "$Default", []),
        ("cache-next", cache, "$Latest", []),
    ):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnet,
            Tags=tags,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": version},
        )
    policy = tmp_path / "templates.yml"
    text = POLICY.replace("        hop-limit: 2\n", "").replace(
        "      - type: imds\n        key: HttpTokens\n        value: optional\n",
        "      - type: imds\n        key: HttpTokens\n        value: optional\n"
        "      - type: imds-exempt\n        key: Exempt\n        value: false\n",
    )
    assert "imds-exempt" in text and "hop-limit" not in text
    policy.write_text(text)
    result = c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)],
        endpoint,
        check=False,
    )
    assert result.returncode != 0  # cache was refused
    assert "cache-next" in result.stderr and " - cache:" in result.stderr

    current = groups(autoscaling)
    assert template_state(ec2, app)[:2] == (1, 2)  # new version, default kept
    assert current["app"]["LaunchTemplate"]["Version"] == "2"  # pinned to it
    assert current["app-exempt"]["LaunchTemplate"]["Version"] == "$Default"
    assert template_state(ec2, cache)[:2] == (1, 2)  # nothing created
    assert current["cache"]["LaunchTemplate"]["Version"] == "$Default"

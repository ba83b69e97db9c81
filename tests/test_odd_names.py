"""Names AWS allows but that break naive code: 255-character, non-ASCII and
punctuation-laden launch configuration names convert, copy and revert."""

import base64
import textwrap

from tests.support.commands import (
    PREVIOUS_TAG,
    SOURCE_TAG,
    TEMPLATE_NAME,
    all_configs,
    all_templates,
    c7n,
    run_args,
    tags_of,
    version,
)
from tests.support.estates import ODD_NAME, USER_DATA_TEXT, groups_by_name

LONG_NAME = ("Prod \u00e9t\u00e9 / web (v2) [blue] #1 & 'q' \"dq\" <x> 100% ~ \u2713 " * 8)[
    :254
] + "z"


ODD_NAMES = {
    "long": LONG_NAME,
    "odd": ODD_NAME,
    "space": "a b",
    "under": "a_b",  # sanitizes like "a b": the templates must still differ
    "unicode": "\u540d\u524d\u3060\u3051",  # nothing valid left in a template name
    "short": "x",
    "punct": "..//..",
    "copy-long": LONG_NAME[:-1] + "y",
    "copy-space": "c d ",  # trailing white space
}


COPY_GROUPS = ("copy-long", "copy-space")
ODD_POLICIES = """
policies:
  - name: convert-odd
    resource: asg
    filters:
      - "tag:path": convert
      - {type: imds, key: HttpTokens, value: optional}
    actions:
      - convert-to-launch-template
  - name: copy-odd
    resource: asg
    filters:
      - "tag:path": copy
      - {type: imds, key: HttpTokens, value: optional}
    actions:
      - copy-launch-configuration
"""


def test_odd_and_255_character_names_convert_copy_and_revert(moto, tmp_path):
    endpoint, session = moto
    assert len(LONG_NAME) == 255
    autoscaling, ec2 = session.client("autoscaling"), session.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    for group, lc in ODD_NAMES.items():
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=lc,
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            UserData=USER_DATA_TEXT,
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchConfigurationName=lc,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnet,
            Tags=[
                {
                    "Key": "path",
                    "Value": "copy" if group in COPY_GROUPS else "convert",
                    "PropagateAtLaunch": False,
                }
            ],
        )
    assert set(all_configs(autoscaling)) == set(ODD_NAMES.values())
    policy = tmp_path / "odd.yml"
    policy.write_text(ODD_POLICIES)
    result = c7n(run_args(tmp_path / "out", policy), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups, templates = groups_by_name(autoscaling), all_templates(ec2)
    configs = all_configs(autoscaling)
    converted = [g for g in ODD_NAMES if g not in COPY_GROUPS]
    used = set()
    for group in converted:
        spec = groups[group]["LaunchTemplate"]
        template = templates[spec["LaunchTemplateId"]]
        assert TEMPLATE_NAME.match(template["LaunchTemplateName"]), template
        assert tags_of(template)[SOURCE_TAG] == ODD_NAMES[group]
        data = version(ec2, spec["LaunchTemplateId"], "$Default")["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert base64.b64decode(data["UserData"]).decode() == USER_DATA_TEXT
        used.add(spec["LaunchTemplateId"])
    assert len(used) == len(converted)  # "a b" and "a_b" got different templates
    assert tags_of(groups["long"])[PREVIOUS_TAG].startswith("lc-sha256:")
    assert tags_of(groups["odd"])[PREVIOUS_TAG] == "lc:" + ODD_NAME
    for group in COPY_GROUPS:
        copy_name = groups[group]["LaunchConfigurationName"]
        assert copy_name != ODD_NAMES[group] and "-imdsv2-" in copy_name, copy_name
        assert len(copy_name) <= 255
        assert configs[copy_name]["MetadataOptions"]["HttpTokens"] == "required"
        assert base64.b64decode(configs[copy_name]["UserData"]).decode() == USER_DATA_TEXT
    assert set(configs) >= set(ODD_NAMES.values())  # originals kept

    revert = tmp_path / "revert.yml"
    revert.write_text(
        textwrap.dedent("""
        policies:
          - name: revert-odd
            resource: asg
            filters:
              - type: value
                key: AutoScalingGroupName
                op: in
                value: [long, copy-long, copy-space, unicode]
            actions:
              - revert-imds-remediation
    """)
    )
    result = c7n(run_args(tmp_path / "revert", revert), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = groups_by_name(autoscaling)
    for group in ("long", "copy-long", "copy-space", "unicode"):
        assert groups[group]["LaunchConfigurationName"] == ODD_NAMES[group], group
        assert PREVIOUS_TAG not in tags_of(groups[group]), group

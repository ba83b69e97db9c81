"""c7n_imds.model.plans: typed plans and their previews (safe to print: group names,
user data as size and SHA-256 only)."""

import json

from c7n_imds.model.plans import CopyPlan, GroupSpec, Plan, TemplatePlan, VersionPlan
from c7n_imds.model.redaction import user_data_fingerprint

USER_DATA = "IyEvYmluL2Jhc2gKZWNobyBodW50ZXIyCg=="  # "#!/bin/bash\necho hunter2\n"
GROUP = {"AutoScalingGroupName": "web"}


def test_template_plan_preview_redacts_user_data():
    plan = TemplatePlan(
        "web-lc",
        "2021-03-04T05:06:07Z",
        "web-lc-imdsv2-1",
        {"ImageId": "ami-1", "UserData": USER_DATA, "MetadataOptions": {"HttpTokens": "required"}},
        ["note"],
        [GROUP],
    )
    preview = Plan(items=[plan], failures={"api": "gone"}).preview("Templates")
    assert preview["Templates"][0]["LaunchTemplateData"]["UserData"] == user_data_fingerprint(
        USER_DATA
    )
    assert preview["Templates"][0]["Groups"] == ["web"]
    assert preview["Failures"] == {"api": "gone"} and preview["Skipped"] == []
    assert plan.metadata_options == {"HttpTokens": "required"}
    assert USER_DATA not in json.dumps(preview)


def test_version_plan_preview_and_default():
    source = {
        "LaunchTemplateId": "lt-1",
        "LaunchTemplateName": "web",
        "VersionNumber": 3,
        "DefaultVersion": True,
        "LaunchTemplateData": {"UserData": USER_DATA},
    }
    plan = VersionPlan(
        source=source,
        groups=[GroupSpec(GROUP, {"Version": "$Default"})],
        metadata_options={"HttpTokens": "required"},
    )
    assert plan.key == ("lt-1", 3) and plan.group_names == ["web"]
    asg, spec = plan.groups[0]  # a group spec unpacks as (group, spec)
    assert asg is GROUP and spec == {"Version": "$Default"}
    assert plan.preview(set_default=True)["MakeDefault"] is True
    assert plan.preview(set_default=False)["MakeDefault"] is False
    plan.default_outsiders = ["other"]
    assert plan.preview(set_default=True)["MakeDefault"] is False
    assert USER_DATA not in json.dumps(plan.preview(set_default=True))


def test_copy_plan_preview_never_shows_user_data():
    plan = CopyPlan(
        "web-lc",
        {},
        {
            "LaunchConfigurationName": "web-lc-imdsv2-1",
            "UserData": b"#!/bin/bash\necho hunter2\n",
            "MetadataOptions": {"HttpTokens": "required"},
        },
        [GROUP],
    )
    preview = plan.preview()
    assert preview["CopyLaunchConfigurationName"] == "web-lc-imdsv2-1"
    assert preview["CarriesUserData"] is True and "UserData" not in preview["Parameters"]
    assert "hunter2" not in json.dumps(preview, default=str)


def test_independent_sets_keep_templates_and_groups_together():
    """Versions of one template are made and taken back together, and a group with
    several templates (a mixed instances policy) changes completely or not at all: such
    keys share a set; anything else is finished on its own."""
    from types import SimpleNamespace

    from c7n_imds.model.plans import independent_sets

    def item(*groups):
        return SimpleNamespace(groups=[({"AutoScalingGroupName": g}, {}) for g in groups])

    work = {
        ("lt-a", 1): item("web"),
        ("lt-a", 2): item("api"),
        ("lt-b", 1): item("mixed"),
        ("lt-c", 3): item("mixed", "batch"),
        ("lt-d", 1): item("solo"),
    }
    assert independent_sets(work) == [
        [("lt-a", 1), ("lt-a", 2)],
        [("lt-b", 1), ("lt-c", 3)],
        [("lt-d", 1)],
    ]

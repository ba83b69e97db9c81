"""`running-instances` (c7n_imds/actions/running_instances.py) against recorded AWS
responses: in-place modification and instance refresh after the switch.

How placebo flights answer a policy run's calls: tests/support/placebo.py. Expected
values are written out from the documented rules, not computed by the code under test.
"""

import pytest

from c7n_imds.actions.running_instances import refresh_preferences, refresh_preferences_problem
from tests.support.placebo import call_order, changes, recording_factory, set_access_policy

SVC = "lt-0e1000000000000e1"


def test_running_instances_refresh_reports_refresh_in_progress(
    placebo_factory, load_policy, tmp_path
):
    """svc-a and svc-b follow $Default of template svc (version 1, optional): version 2
    is derived and made the default, then an instance refresh is started for each group
    - Rolling, with the default SkipMatching true overlaid by `refresh-preferences`, and
    no MinHealthyPercentage or MaxHealthyPercentage, so that the group's instance
    maintenance policy applies. StartInstanceRefresh _1 (svc-a) starts one; _2 (svc-b) fails
    with InstanceRefreshInProgress: reported in imds-changes.json, not a policy error.
    moto does not implement StartInstanceRefresh."""
    factory = recording_factory(
        placebo_factory, "test_running_instances_refresh_reports_refresh_in_progress"
    )
    load_policy(
        set_access_policy(
            **{
                "running-instances": "refresh",
                "refresh-preferences": {"InstanceWarmup": 120, "SkipMatching": False},
            }
        ),
        session_factory=factory,
        output_dir=tmp_path,
    ).run()  # no RemediationError

    preferences = {"SkipMatching": False, "InstanceWarmup": 120}
    assert factory.called("StartInstanceRefresh") == [
        {"AutoScalingGroupName": "svc-a", "Strategy": "Rolling", "Preferences": preferences},
        {"AutoScalingGroupName": "svc-b", "Strategy": "Rolling", "Preferences": preferences},
    ]
    # Instances are replaced only once the new version is what the groups launch.
    order = call_order(factory, "ModifyLaunchTemplate", "StartInstanceRefresh")
    assert order[0] == ("ModifyLaunchTemplate", SVC), order

    done = changes(tmp_path, "asg-lt-imdsv2")
    assert done["svc-a"]["RunningInstances"] == {
        "Mode": "refresh",
        "InstanceRefreshId": "08b91cf7-8fa6-48af-b6a6-d227f40f1b9b",
        "Preferences": preferences,
    }
    assert done["svc-b"]["RunningInstances"]["Mode"] == "refresh"
    assert done["svc-b"]["RunningInstances"]["InProgress"] is True
    assert not any("Error" in c for c in done.values()), done


WORKER = "lt-0f1000000000000f1"


def test_running_instances_modify_touches_only_in_service_instances(
    placebo_factory, load_policy, tmp_path
):
    """worker follows $Default of template worker (version 5, optional, hop limit 1);
    `hop-limit: 2` and `running-instances: modify`. Custodian's listing
    (DescribeAutoScalingGroups _1) is older than the action's re-read (_2): by then
    i-...02 is InService too, i-...03 is Terminating, i-...04 Pending and i-...05 in
    Standby. Exactly the InService instances of the fresh read get
    ModifyInstanceMetadataOptions, one call each, after the new default is set."""
    factory = recording_factory(
        placebo_factory, "test_running_instances_modify_touches_only_in_service_instances"
    )
    load_policy(
        set_access_policy(**{"running-instances": "modify", "hop-limit": 2}),
        session_factory=factory,
        output_dir=tmp_path,
    ).run()

    (create,) = factory.called("CreateLaunchTemplateVersion")
    assert create["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}
    }
    assert factory.called("ModifyInstanceMetadataOptions") == [
        {
            "InstanceId": "i-0cc00000000000001",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
        },
        {
            "InstanceId": "i-0cc00000000000002",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
        },
    ]
    order = call_order(factory, "ModifyLaunchTemplate", "ModifyInstanceMetadataOptions")
    assert order == [
        ("ModifyLaunchTemplate", WORKER),
        ("ModifyInstanceMetadataOptions", "i-0cc00000000000001"),
        ("ModifyInstanceMetadataOptions", "i-0cc00000000000002"),
    ]
    assert changes(tmp_path, "asg-lt-imdsv2")["worker"]["RunningInstances"] == {
        "Mode": "modify",
        "Modified": ["i-0cc00000000000001", "i-0cc00000000000002"],
        "Failed": {},
    }


# -- refresh preferences: what StartInstanceRefresh refuses ----------------------------


@pytest.mark.parametrize(
    "preferences",
    [
        {},
        {"MinHealthyPercentage": 0},
        {"MinHealthyPercentage": 100},
        {"MinHealthyPercentage": 90, "MaxHealthyPercentage": 120},
        {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200},
        {"InstanceWarmup": 60, "SkipMatching": False},
    ],
)
def test_refresh_preferences_aws_accepts(preferences):
    assert refresh_preferences_problem(preferences) is None


@pytest.mark.parametrize(
    "preferences, words",
    [
        ({"MinHealthyPercentage": 101}, "outside 0-100"),
        ({"MinHealthyPercentage": -1}, "outside 0-100"),
        ({"MinHealthyPercentage": 50, "MaxHealthyPercentage": 99}, "outside 100-200"),
        ({"MinHealthyPercentage": 50, "MaxHealthyPercentage": 201}, "outside 100-200"),
        ({"MaxHealthyPercentage": 150}, "needs MinHealthyPercentage"),
        ({"MinHealthyPercentage": 40, "MaxHealthyPercentage": 150}, "more than 100"),
    ],
)
def test_refresh_preferences_aws_refuses(preferences, words):
    assert words in refresh_preferences_problem(preferences)


def test_refresh_preferences_leave_health_to_the_group():
    """Unset, the group's instance maintenance policy applies: nothing is sent."""
    assert refresh_preferences({}, uses_template=True) == {"SkipMatching": True}
    assert refresh_preferences({}, uses_template=False) == {}
    assert refresh_preferences({"MinHealthyPercentage": 95}, uses_template=True) == {
        "SkipMatching": True,
        "MinHealthyPercentage": 95,
    }

"""The `imds` filters (c7n_imds/filters/imds.py over c7n_imds/sources.py) against
recorded AWS responses (placebo flight data).

Flight data lives in tests/data/placebo/<test name>/ and is written in the shape AWS
returns (botocore's parsed output), not moto's: DescribeLaunchConfigurations items carry
AWS's empty strings for unset KeyName/UserData/KernelId/RamdiskId, report
``InstanceMonitoring.Enabled: true`` when it was never set and omit
``AssociatePublicIpAddress`` unless it was set; groups switched to a template carry only
``LaunchTemplate``. `test_flight_data_matches_botocore_output_shapes` checks every
flight file of these tests against botocore's own service model.

Placebo answers calls in the order they are made, one file per call
(<service>.<Operation>_<n>.json), whatever the parameters; where a test depends on the
order the code makes its calls, the docstring says so.
"""

import base64
import hashlib
import json

from tests.support.placebo import assert_fields, by_name, recording_factory

WEB, API, GONE, BATCH, LEGACY = (
    "lt-0aa000000000000a1",
    "lt-0bb000000000000b2",
    "lt-0cc000000000000c3",
    "lt-0dd000000000000d4",
    "lt-0ee000000000000e5",
)
ANNOTATION = "c7n-imds:launch"


def test_imds_filter_resolves_every_launch_source(placebo_factory, load_policy, tmp_path):
    """Every kind of launch source resolves to its effective metadata options.

    The estate (AWS shapes, hand-written): LC groups with no MetadataOptions, with
    tokens required, with a trailing blank in the group's LC name that the LC lacks,
    and with a deleted LC; LT groups on $Default, on $Latest (3, while $Default is 2),
    pinned to 1, pinned to 2 (= $Default), pinned to 4 and to 9 of another template
    (9 does not exist: AWS fails the whole call with
    InvalidLaunchTemplateId.VersionNotFound), on $Default and pinned to 3 of a deleted
    template (InvalidLaunchTemplateId.NotFound); and a mixed instances policy whose
    base template requires tokens while an override's template allows IMDSv1.

    Call order the flight data assumes: one $Default/$Latest call, then one call per
    template for its pinned numbers, templates in id order (web, api, gone); api's
    failed call is retried number by number (4, then 9).
    """
    name = "test_imds_filter_resolves_every_launch_source"
    factory = recording_factory(placebo_factory, name)
    every = load_policy(
        {
            "name": "every-group",
            "resource": "asg",
            "filters": [{"type": "imds", "key": "LaunchType", "value": "present"}],
        },
        session_factory=factory,
        output_dir=tmp_path / "every",
    ).run()
    groups = by_name(every)
    assert len(groups) == 13
    launch = {name: group[ANNOTATION] for name, group in groups.items()}

    lc_found = {
        "LaunchType": "launch-configuration",
        "LaunchTemplateId": None,
        "LaunchTemplateVersion": None,
        "LaunchSourceMissing": False,
    }
    assert_fields(
        launch["lc-unset"],
        dict(
            lc_found,
            LaunchName="lc-unset",
            HttpTokens="optional",
            HttpEndpoint=None,
            HttpPutResponseHopLimit=None,
            InstanceMetadataTags=None,
        ),
        "lc-unset",
    )
    assert_fields(
        launch["lc-required"],
        dict(
            lc_found,
            LaunchName="lc-required",
            HttpTokens="required",
            HttpEndpoint="enabled",
            HttpPutResponseHopLimit=2,
            InstanceMetadataTags=None,
        ),
        "lc-required",
    )
    assert_fields(
        launch["lc-trailing"],
        dict(
            lc_found,
            LaunchName="lc-trailing",
            HttpTokens="optional",
            HttpEndpoint="enabled",
            HttpPutResponseHopLimit=1,
        ),
        "lc-trailing",
    )
    assert_fields(
        launch["lc-gone"],
        {
            "LaunchType": "launch-configuration",
            "LaunchName": "lc-deleted",
            "LaunchSourceMissing": True,
            "HttpTokens": None,
            "HttpEndpoint": None,
            "HttpPutResponseHopLimit": None,
            "LaunchTemplateId": None,
            "LaunchTemplateVersion": None,
        },
        "lc-gone",
    )
    assert "lc-deleted" in launch["lc-gone"]["LaunchSourceError"]

    lt_found = {"LaunchType": "launch-template", "LaunchSourceMissing": False}
    assert_fields(
        launch["lt-default"],
        dict(
            lt_found,
            LaunchName="web",
            LaunchTemplateId=WEB,
            LaunchTemplateVersion=2,
            LaunchTemplateVersionSpecified="$Default",
            HttpTokens="required",
            HttpEndpoint="enabled",
            HttpPutResponseHopLimit=2,
            InstanceMetadataTags=None,
        ),
        "lt-default",
    )
    assert_fields(
        launch["lt-latest"],
        dict(
            lt_found,
            LaunchName="web",
            LaunchTemplateId=WEB,
            LaunchTemplateVersion=3,
            LaunchTemplateVersionSpecified="$Latest",
            HttpTokens="optional",
            HttpEndpoint=None,
            HttpPutResponseHopLimit=None,
            InstanceMetadataTags=None,
        ),
        "lt-latest",
    )
    assert_fields(
        launch["lt-pinned"],
        dict(
            lt_found,
            LaunchName="web",
            LaunchTemplateId=WEB,
            LaunchTemplateVersion=1,
            LaunchTemplateVersionSpecified="1",
            HttpTokens="optional",
            HttpEndpoint="enabled",
            HttpPutResponseHopLimit=1,
            InstanceMetadataTags="enabled",
        ),
        "lt-pinned",
    )
    assert_fields(
        launch["lt-pinned-default"],
        dict(
            lt_found,
            LaunchName="web",
            LaunchTemplateId=WEB,
            LaunchTemplateVersion=2,
            LaunchTemplateVersionSpecified="2",
            HttpTokens="required",
            HttpPutResponseHopLimit=2,
        ),
        "lt-pinned-default",
    )
    assert_fields(
        launch["lt-api-pinned"],
        dict(
            lt_found,
            LaunchName="api",
            LaunchTemplateId=API,
            LaunchTemplateVersion=4,
            HttpTokens="required",
            HttpEndpoint="enabled",
            HttpPutResponseHopLimit=1,
        ),
        "lt-api-pinned",
    )
    missing_version = {
        "LaunchType": "launch-template",
        "LaunchSourceMissing": True,
        "HttpTokens": None,
        "LaunchTemplateVersion": None,
    }
    assert_fields(
        launch["lt-version-missing"],
        dict(
            missing_version,
            LaunchName="api",
            LaunchTemplateId=API,
            LaunchTemplateVersionSpecified="9",
        ),
        "lt-version-missing",
    )
    assert "9" in launch["lt-version-missing"]["LaunchSourceError"]
    assert_fields(
        launch["lt-gone"],
        dict(
            missing_version,
            LaunchName="gone",
            LaunchTemplateId=GONE,
            LaunchTemplateVersionSpecified="$Default",
        ),
        "lt-gone",
    )
    assert_fields(
        launch["lt-gone-pinned"],
        dict(
            missing_version,
            LaunchName="gone",
            LaunchTemplateId=GONE,
            LaunchTemplateVersionSpecified="3",
        ),
        "lt-gone-pinned",
    )

    mixed = launch["mixed"]
    assert_fields(
        mixed,
        {
            "LaunchType": "mixed-instances-policy",
            "LaunchName": "batch-legacy",
            "LaunchTemplateId": LEGACY,
            "LaunchTemplateVersion": 1,
            "LaunchTemplateVersionSpecified": "$Default",
            "HttpTokens": "optional",
            "HttpEndpoint": None,
            "LaunchSourceMissing": False,
        },
        "mixed",
    )
    assert len(mixed["Templates"]) == 2
    assert_fields(
        mixed["Templates"][0],
        {
            "LaunchName": "batch",
            "LaunchTemplateId": BATCH,
            "LaunchTemplateVersion": 1,
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "LaunchSourceMissing": False,
        },
        "mixed base template",
    )
    assert_fields(
        mixed["Templates"][1],
        {
            "LaunchName": "batch-legacy",
            "LaunchTemplateId": LEGACY,
            "LaunchTemplateVersion": 1,
            "HttpTokens": "optional",
            "LaunchSourceMissing": False,
        },
        "mixed override template",
    )

    # The annotation must survive into custodian's output as plain JSON.
    written = by_name(
        json.loads((tmp_path / "every" / "every-group" / "resources.json").read_text())
    )
    assert written["mixed"][ANNOTATION]["LaunchName"] == "batch-legacy"

    versions_calls = factory.called("DescribeLaunchTemplateVersions")
    assert [(c.get("LaunchTemplateId"), sorted(c["Versions"])) for c in versions_calls] == [
        (None, ["$Default", "$Latest"]),
        (WEB, ["1"]),
        (API, ["4", "9"]),
        (API, ["4"]),
        (API, ["9"]),
        (GONE, ["3"]),
    ]

    optional = load_policy(
        {
            "name": "imdsv1-allowed",
            "resource": "asg",
            "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
        },
        session_factory=recording_factory(placebo_factory, name),
        output_dir=tmp_path / "optional",
    ).run()
    assert sorted(g["AutoScalingGroupName"] for g in optional) == [
        "lc-trailing",
        "lc-unset",
        "lt-latest",
        "lt-pinned",
        "mixed",
    ]


def test_imds_filter_api_call_economy(placebo_factory, load_policy):
    """120 launch-configuration groups and 4 template groups cost 2 group pages, 3
    DescribeLaunchConfigurations calls of at most 50 names, one DescribeLaunchTemplateVersions
    for $Default/$Latest of every template (no template id), and one for the only pinned
    number not already known (1; 2 is web's $Default).

    Flight data generated (AWS shapes): even-numbered LCs require tokens, odd ones set
    no MetadataOptions. The DescribeLaunchConfigurations files answer the names in sorted
    order, 50 a call.
    """
    factory = recording_factory(placebo_factory, "test_imds_filter_api_call_economy")
    every = load_policy(
        {
            "name": "economy",
            "resource": "asg",
            "filters": [{"type": "imds", "key": "LaunchType", "value": "present"}],
        },
        session_factory=factory,
    ).run()
    assert len(every) == 124

    lc_calls = factory.called("DescribeLaunchConfigurations")
    asked = [name for call in lc_calls for name in call["LaunchConfigurationNames"]]
    assert all(len(call["LaunchConfigurationNames"]) <= 50 for call in lc_calls), [
        len(call["LaunchConfigurationNames"]) for call in lc_calls
    ]
    assert len(lc_calls) == 3
    assert sorted(asked) == ["app-lc-%03d" % i for i in range(120)]  # each name once

    versions_calls = factory.called("DescribeLaunchTemplateVersions")
    assert len(versions_calls) == 2, versions_calls
    alias_call, pinned_call = versions_calls
    assert "LaunchTemplateId" not in alias_call and "LaunchTemplateName" not in alias_call
    assert sorted(alias_call["Versions"]) == ["$Default", "$Latest"]
    assert pinned_call.get("LaunchTemplateId") == WEB
    assert pinned_call["Versions"] == ["1"]

    launch = {g["AutoScalingGroupName"]: g[ANNOTATION] for g in every}
    for i in (0, 1, 49, 50, 51, 100, 119):
        expected = "required" if i % 2 == 0 else "optional"
        assert_fields(
            launch["app-%03d" % i],
            {"LaunchName": "app-lc-%03d" % i, "HttpTokens": expected, "LaunchSourceMissing": False},
            "app-%03d" % i,
        )
    assert_fields(
        launch["t-default"], {"LaunchTemplateVersion": 2, "HttpTokens": "required"}, "t-default"
    )
    assert_fields(
        launch["t-latest"], {"LaunchTemplateVersion": 3, "HttpTokens": "optional"}, "t-latest"
    )
    assert_fields(
        launch["t-pin-default"],
        {"LaunchTemplateVersion": 2, "HttpTokens": "required"},
        "t-pin-default",
    )
    assert_fields(
        launch["t-pin-1"],
        {"LaunchTemplateVersion": 1, "HttpTokens": "optional", "HttpEndpoint": "enabled"},
        "t-pin-1",
    )
    optional = sorted(name for name, view in launch.items() if view["HttpTokens"] == "optional")
    assert optional == sorted(["app-%03d" % i for i in range(1, 120, 2)] + ["t-latest", "t-pin-1"])


# -- imds on launch-config -------------------------------------------------------------

SECRET = "#!/bin/bash\nexport DB_PASSWORD=s3cr3t-canary-91\necho 'h\u00e9llo' > /etc/motd\n"


def test_launch_config_imds_filter_hides_user_data(placebo_factory, load_policy, tmp_path):
    """On `launch-config`, user data is replaced by its size and SHA-256 (of the decoded
    bytes) in the resource, and never reaches resources.json; HttpTokens is `optional`
    when the configuration sets no MetadataOptions. Flight data hand-written in AWS's
    shape (UserData "" when there is none)."""
    name = "test_launch_config_imds_filter_hides_user_data"
    raw = SECRET.encode("utf-8")
    encoded = base64.b64encode(raw).decode()

    optional = by_name(
        load_policy(
            {
                "name": "lc-imdsv1",
                "resource": "launch-config",
                "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
            },
            session_factory=recording_factory(placebo_factory, name),
            output_dir=tmp_path / "optional",
        ).run(),
        "LaunchConfigurationName",
    )
    assert sorted(optional) == ["lc-no-user-data", "lc-with-secret"]
    secret = optional["lc-with-secret"]
    assert secret["UserData"] == {"Bytes": len(raw), "Sha256": hashlib.sha256(raw).hexdigest()}
    assert_fields(
        secret[ANNOTATION],
        {
            "LaunchType": "launch-configuration",
            "LaunchName": "lc-with-secret",
            "HttpTokens": "optional",
            "HttpEndpoint": None,
            "HttpPutResponseHopLimit": None,
            "LaunchSourceMissing": False,
        },
        "lc-with-secret",
    )
    assert optional["lc-no-user-data"]["UserData"] in ("", None)
    assert_fields(
        optional["lc-no-user-data"][ANNOTATION],
        {"HttpTokens": "optional", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "lc-no-user-data",
    )

    written = (tmp_path / "optional" / "lc-imdsv1" / "resources.json").read_text()
    assert "s3cr3t-canary-91" not in written
    assert encoded not in written
    assert hashlib.sha256(raw).hexdigest() in written

    required = by_name(
        load_policy(
            {
                "name": "lc-imdsv2",
                "resource": "launch-config",
                "filters": [{"type": "imds", "key": "HttpTokens", "value": "required"}],
            },
            session_factory=recording_factory(placebo_factory, name),
            output_dir=tmp_path / "required",
        ).run(),
        "LaunchConfigurationName",
    )
    assert sorted(required) == ["lc-required"]
    assert required["lc-required"]["UserData"] == {
        "Bytes": 15,
        "Sha256": hashlib.sha256(b"#!/bin/sh\ntrue\n").hexdigest(),
    }
    assert_fields(
        required["lc-required"][ANNOTATION],
        {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
        "lc-required",
    )


# -- EffectiveHttpTokens and ScaleOutBlocked ------------------------------------------

PLAIN_AMI, V2_AMI = "ami-0a1a1a1a1a1a1a1a1", "ami-0b2b2b2b2b2b2b2b2"


def effective(placebo_factory, load_policy, tmp_path, flight, key, value):
    factory = recording_factory(placebo_factory, flight)
    resources = load_policy(
        {
            "name": "effective",
            "resource": "asg",
            "filters": [{"type": "imds", "key": key, "value": value}],
        },
        session_factory=factory,
        output_dir=tmp_path,
    ).run()
    return factory, {r["AutoScalingGroupName"]: r[ANNOTATION] for r in resources}


def assert_effective_calls(factory):
    assert factory.called("GetInstanceMetadataDefaults") == [{}]
    assert factory.called("DescribeImages") == [
        {
            "Filters": [{"Name": "image-id", "Values": [PLAIN_AMI, V2_AMI]}],
            "IncludeDeprecated": True,
            "IncludeDisabled": True,
        }
    ]


def test_effective_http_tokens_from_account_default(placebo_factory, load_policy, tmp_path):
    """The account default for the region requires tokens (GetInstanceMetadataDefaults
    AccountLevel HttpTokens required): every group whose launch data leaves HttpTokens
    unset gets required, whatever its AMI; the explicit optional wins over both the
    account default and the v2.0 AMI. Nothing enforces IMDSv2, so nothing is blocked.
    (Estate: see the comment above.)
    """
    factory, launch = effective(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_effective_http_tokens_from_account_default",
        "EffectiveHttpTokens",
        "present",
    )
    assert {
        name: (view["HttpTokens"], view["EffectiveHttpTokens"], view["ScaleOutBlocked"])
        for name, view in launch.items()
    } == {
        "lc-unset": ("optional", "required", False),
        "lc-required": ("required", "required", False),
        "lt-unset-v2-ami": ("optional", "required", False),
        "lt-optional-v2-ami": ("optional", "optional", False),
        "lt-unset-plain-ami": ("optional", "required", False),
    }
    assert_fields(
        launch["lt-optional-v2-ami"],
        {"LaunchTemplateVersion": 2, "ImageId": V2_AMI},
        "lt-optional-v2-ami",
    )
    assert_effective_calls(factory)


def test_effective_http_tokens_from_ami_without_account_default(
    placebo_factory, load_policy, tmp_path
):
    """No account default (AccountLevel empty): unset HttpTokens falls to the AMI -
    ImdsSupport v2.0 means required, no ImdsSupport means optional; the explicit
    optional still wins over the v2.0 AMI.
    (Estate: see the comment above.)
    """
    factory, launch = effective(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_effective_http_tokens_from_ami_without_account_default",
        "EffectiveHttpTokens",
        "present",
    )
    assert {name: view["EffectiveHttpTokens"] for name, view in launch.items()} == {
        "lc-unset": "optional",
        "lc-required": "required",
        "lt-unset-v2-ami": "required",
        "lt-optional-v2-ami": "optional",
        "lt-unset-plain-ami": "optional",
    }
    assert not any(view["ScaleOutBlocked"] for view in launch.values())
    assert_effective_calls(factory)


def test_scale_out_blocked_when_account_enforces_imdsv2(placebo_factory, load_policy, tmp_path):
    """The account enforces IMDSv2 (AccountLevel HttpTokensEnforced enabled) without a
    HttpTokens default: a launch that resolves to optional fails there, so `key:
    ScaleOutBlocked, value: true` matches exactly the groups that resolve to optional -
    unset on a plain AMI, or explicitly optional.
    (Estate: see the comment above.)
    """
    factory, launch = effective(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_scale_out_blocked_when_account_enforces_imdsv2",
        "ScaleOutBlocked",
        True,
    )
    assert sorted(launch) == ["lc-unset", "lt-optional-v2-ami", "lt-unset-plain-ami"]
    assert all(view["EffectiveHttpTokens"] == "optional" for view in launch.values())
    assert_effective_calls(factory)


def test_http_tokens_filter_makes_no_effective_calls(placebo_factory, load_policy, tmp_path):
    """A policy that uses only `key: HttpTokens` needs neither the account default nor
    the AMIs: no GetInstanceMetadataDefaults, no DescribeImages (the flight has no
    answer for them either).
    (Estate: see the comment above.)
    """
    factory, launch = effective(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_http_tokens_filter_makes_no_effective_calls",
        "HttpTokens",
        "optional",
    )
    # Unset HttpTokens reads as optional here, whatever the account or AMI would make it.
    assert sorted(launch) == [
        "lc-unset",
        "lt-optional-v2-ami",
        "lt-unset-plain-ami",
        "lt-unset-v2-ami",
    ]
    assert factory.called("GetInstanceMetadataDefaults") == []
    assert factory.called("DescribeImages") == []
    assert not any("EffectiveHttpTokens" in view for view in launch.values())

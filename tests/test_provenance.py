"""c7n_imds.model.provenance: template names, idempotency tokens, the previous-launch
tag codec, and the provenance checks (who created a template or version, and whether
what a group launches is what c7n-imds made from its record)."""

import base64
import hashlib
import re
from datetime import datetime, timedelta, timezone

import pytest

from c7n_imds.model.provenance import (
    PRINCIPAL_ARN,
    ProvenanceRefused,
    client_token,
    configuration_copy_problem,
    converted_template_problem,
    decode_previous_launch,
    encode_previous_launch,
    plan_spec_restore,
    principal,
    template_name,
    trusted_creator,
)

TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)
USER_DATA_TEXT = "#!/bin/bash\necho 'h\u00e9llo'\n"
USER_DATA = base64.b64encode(USER_DATA_TEXT.encode("utf-8")).decode("ascii")


def lc_named(name, created=CREATED):
    return {"LaunchConfigurationName": name, "CreatedTime": created}


@pytest.mark.parametrize(
    "name",
    [
        "web-lc",
        "a",
        "web lc",
        "web lc ",  # trailing whitespace
        " \t\r\n",  # whitespace only
        "ünïcödé",  # nothing readable survives
        "🙂" * 255,
        "x" * 255,
        "é" * 254 + " ",
        "ingest/lake (v2) été #1",
        "___",
        ".." * 127 + "x",
    ],
)
def test_template_name_is_valid(name):
    assert TEMPLATE_NAME.match(template_name(lc_named(name)))


def test_template_name_is_deterministic_and_readable():
    assert template_name(lc_named("web-lc")) == template_name(lc_named("web-lc"))
    assert template_name(lc_named("web-lc")).startswith("web-lc")


def test_template_name_distinct_for_names_that_sanitize_alike():
    names = ["my lc", "my_lc", "my:lc", "my  lc", "my\tlc", "my lc ", " my lc", "my\u00a0lc"]
    templates = [template_name(lc_named(n)) for n in names]
    assert len(set(templates)) == len(names), templates


def test_template_name_trailing_whitespace_is_significant():
    assert template_name(lc_named("web")) != template_name(lc_named("web "))
    assert template_name(lc_named("x" * 254)) != template_name(lc_named("x" * 254 + " "))


def test_template_name_long_names_differing_only_at_the_end():
    a, b = "x" * 254 + "a", "x" * 254 + "b"
    assert template_name(lc_named(a)) != template_name(lc_named(b))


def test_template_name_distinct_for_a_recreated_launch_configuration():
    first = template_name(lc_named("web-lc", CREATED))
    assert first != template_name(lc_named("web-lc", CREATED + timedelta(days=30)))
    assert first != template_name(lc_named("web-lc", CREATED + timedelta(seconds=1)))


def test_template_name_same_instant_in_any_timezone():
    utc = template_name(lc_named("web-lc", CREATED))
    other = CREATED.astimezone(timezone(timedelta(hours=-7)))
    naive = CREATED.replace(tzinfo=None)
    assert template_name(lc_named("web-lc", other)) == utc
    assert template_name(lc_named("web-lc", naive)) == utc


def test_client_token():
    token = client_token(template_name(lc_named("web-lc")))
    assert len(token) <= 64 and token.isascii()
    assert token == client_token(template_name(lc_named("web-lc")))
    assert token != client_token(template_name(lc_named("web-lc2")))


@pytest.mark.parametrize(
    "name", ["web-lc", "lc:with:colons", "lt:lt-0123:1", "ünïcödé 🙂", "x" * 253, " trailing "]
)
def test_previous_launch_configuration_round_trip(name):
    value = encode_previous_launch({"LaunchConfigurationName": name})
    assert len(value) <= 256
    assert decode_previous_launch(value) == {"LaunchConfigurationName": name}


@pytest.mark.parametrize("name", ["x" * 254, "x" * 255, "é" * 255, "🙂" * 255])
def test_previous_launch_configuration_long_name_uses_a_digest(name):
    value = encode_previous_launch({"LaunchConfigurationName": name})
    assert len(value) <= 256
    assert decode_previous_launch(value) == {
        "LaunchConfigurationNameSha256": hashlib.sha256(name.encode("utf-8")).hexdigest()
    }


@pytest.mark.parametrize(
    "launch, decoded",
    [
        (
            {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "3"},
            {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "3"},
        ),
        (
            {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Latest"},
            {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Latest"},
        ),
        (
            {"LaunchTemplateId": "lt-0123456789abcdef0"},
            {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Default"},
        ),
    ],
)
def test_previous_launch_template_round_trip(launch, decoded):
    value = encode_previous_launch(launch)
    assert len(value) <= 256
    assert decode_previous_launch(value) == decoded


@pytest.mark.parametrize("value", ["", "web-lc", "lt:lt-0123", "lt:a:b:c", "LC:web"])
def test_decode_previous_launch_refuses_anything_else(value):
    with pytest.raises(ValueError):
        decode_previous_launch(value)


# -- provenance ----------------------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/c7n-imds"
SESSION = "arn:aws:sts::123456789012:assumed-role/c7n-imds/run-2025-03-04"
OTHER_SESSION = "arn:aws:sts::123456789012:assumed-role/c7n-imds/run-2024-01-01"
INTRUDER = "arn:aws:iam::123456789012:user/intruder"


@pytest.mark.parametrize(
    "arn, key",
    [
        (SESSION, ("aws", "123456789012", "role", "c7n-imds")),
        (ROLE, ("aws", "123456789012", "role", "c7n-imds")),
        (
            "arn:aws:iam::123456789012:role/service-role/ci/c7n-imds",
            ("aws", "123456789012", "role", "c7n-imds"),
        ),
        ("arn:aws:iam::123456789012:user/ops/alice", ("aws", "123456789012", "user", "alice")),
        ("arn:aws:iam::123456789012:root", ("aws", "123456789012", "root", "")),
        ("arn:aws-cn:sts::123456789012:assumed-role/r/s", ("aws-cn", "123456789012", "role", "r")),
        ("arn:aws:iam::123456789012:group/admins", None),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
        ("", None),
        (None, None),
    ],
)
def test_principal_normalises_sessions_paths_and_forms(arn, key):
    assert principal(arn) == key


@pytest.mark.parametrize(
    "created_by, trusted, expected",
    [
        (OTHER_SESSION, [SESSION], True),  # another session of the running role
        (OTHER_SESSION, [ROLE], True),
        (SESSION, ["arn:aws:iam::123456789012:role/path/c7n-imds"], True),
        (INTRUDER, [SESSION], False),
        ("arn:aws:sts::123456789012:assumed-role/c7n-imds-2/x", [SESSION], False),
        ("arn:aws:sts::210987654321:assumed-role/c7n-imds/x", [SESSION], False),  # other account
        ("arn:aws:iam::123456789012:user/c7n-imds", [ROLE], False),  # a user is not the role
        ("arn:aws:iam::123456789012:root", [SESSION], False),
        # no known form (moto's caller): trusted only verbatim
        ("arn:aws:sts::123456789012:user/moto", ["arn:aws:sts::123456789012:user/moto"], True),
        ("arn:aws:sts::123456789012:user/moto", [ROLE], False),
        (None, [SESSION], False),
        ("", [SESSION], False),
        (SESSION, [], False),
    ],
)
def test_trusted_creator(created_by, trusted, expected):
    assert trusted_creator(created_by, trusted) is expected


@pytest.mark.parametrize(
    "arn, valid",
    [
        (ROLE, True),
        (SESSION, True),
        ("arn:aws:iam::123456789012:user/ops/alice", True),
        ("arn:aws:iam::123456789012:root", True),
        ("arn:aws-us-gov:iam::123456789012:role/r", True),
        ("arn:aws:iam::12345678901:role/r", False),
        ("arn:aws:iam::123456789012:role/", False),
        ("arn:aws:iam::123456789012:group/admins", False),
        ("role/c7n-imds", False),
        ("arn:aws:sts::123456789012:assumed-role/r", False),
    ],
)
def test_trusted_principals_schema_pattern(arn, valid):
    assert bool(re.match(PRINCIPAL_ARN, arn)) is valid


LC = {
    "LaunchConfigurationName": "old-lc",
    "ImageId": "ami-0abcdef1234567890",
    "InstanceType": "t3.micro",
    "SecurityGroups": ["sg-0a0a0a0a0a0a0a0a1"],
    "KeyName": "",
    "UserData": USER_DATA,
    "InstanceMonitoring": {"Enabled": True},
    "IamInstanceProfile": "app-profile",
    "BlockDeviceMappings": [],
    "MetadataOptions": {"HttpTokens": "optional"},
    "CreatedTime": CREATED,
}
CONVERTED = {
    "ImageId": "ami-0abcdef1234567890",
    "InstanceType": "t3.micro",
    "SecurityGroupIds": ["sg-0a0a0a0a0a0a0a0a1"],
    "UserData": USER_DATA,
    "Monitoring": {"Enabled": True},
    "IamInstanceProfile": {"Name": "app-profile"},
    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
}


def test_converted_template_matches_its_configuration_metadata_aside():
    assert converted_template_problem(LC, {"LaunchTemplateData": CONVERTED}) is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("ImageId", "ami-0badc0ffee0000000"),
        ("UserData", base64.b64encode(b"other").decode()),
        ("IamInstanceProfile", {"Name": "admin"}),
        ("InstanceType", "m5.large"),
        ("SecurityGroupIds", ["sg-0b0b0b0b0b0b0b0b2"]),
    ],
)
def test_converted_template_differing_in_a_launch_field_is_not_from_it(field, value):
    problem = converted_template_problem(
        LC, {"LaunchTemplateData": dict(CONVERTED, **{field: value})}
    )
    assert problem and problem.startswith(field), problem
    assert "other" not in problem  # user data only as size and hash


def test_converted_template_of_a_configuration_naming_groups_skips_the_groups():
    by_name = dict(LC, SecurityGroups=["web"])
    assert converted_template_problem(by_name, {"LaunchTemplateData": CONVERTED}) is None
    assert converted_template_problem(
        by_name, {"LaunchTemplateData": dict(CONVERTED, ImageId="ami-0badc0ffee0000000")}
    )


def test_configuration_copy_differs_only_in_identity_and_metadata():
    copy = dict(
        LC,
        LaunchConfigurationName="old-lc-imdsv2-0123456789",
        CreatedTime=CREATED + timedelta(days=1),
        MetadataOptions={"HttpTokens": "required"},
    )
    assert configuration_copy_problem(LC, copy) is None
    problem = configuration_copy_problem(LC, dict(copy, ImageId="ami-0badc0ffee0000000"))
    assert problem.startswith("ImageId"), problem


TEMPLATE = "lt-0b7000000000000b7"


def described(number, derived_from=None, created_by=OTHER_SESSION, default=False, **data):
    version = {
        "LaunchTemplateId": TEMPLATE,
        "VersionNumber": number,
        "CreatedBy": created_by,
        "DefaultVersion": default,
        "LaunchTemplateData": data,
    }
    if derived_from is not None:
        version["VersionDescription"] = (
            'c7n-imds: from version %d with {"HttpTokens":"required"}' % derived_from
        )
    return version


def lookup_in(*versions):
    """lookup(version) over described versions; aliases by DefaultVersion and the
    highest number. Records what was looked up."""
    by = {str(v["VersionNumber"]): v for v in versions}
    by["$Default"] = next((v for v in versions if v["DefaultVersion"]), versions[0])
    by["$Latest"] = max(versions, key=lambda v: v["VersionNumber"])
    asked = []

    def lookup(version):
        asked.append(version)
        return by[version]

    lookup.asked = asked
    return lookup


def spec(version, template=TEMPLATE):
    return {"LaunchTemplateId": template, "Version": version}


def test_restore_pinned_group_and_the_default_it_moved():
    lookup = lookup_in(described(2), described(3, 2, default=True))
    restore = plan_spec_restore(spec("2"), spec("3"), lookup, [SESSION])
    assert (restore.spec, restore.default_move, restore.done) == (spec("2"), (3, 2), False)
    assert restore.target["VersionNumber"] == 2
    assert lookup.asked == ["2", "3", "$Default"]


def test_restore_pinned_group_leaves_a_default_it_did_not_move():
    lookup = lookup_in(described(1, default=True), described(2), described(3, 2))
    restore = plan_spec_restore(spec("2"), spec("3"), lookup, [SESSION])
    assert (restore.spec, restore.default_move) == (spec("2"), None)


def test_restore_default_follower_moves_the_default_back():
    lookup = lookup_in(described(3), described(4, 3, default=True))
    restore = plan_spec_restore(spec("$Default"), spec("$Default"), lookup, [SESSION])
    assert (restore.spec, restore.default_move, restore.done) == (spec("$Default"), (4, 3), False)
    assert restore.target["VersionNumber"] == 3


def test_restore_latest_follower_is_pinned_to_the_source():
    lookup = lookup_in(described(3, default=True), described(4, 3))
    restore = plan_spec_restore(spec("$Latest"), spec("$Latest"), lookup, [SESSION])
    assert (restore.spec, restore.default_move, restore.done) == (spec("3"), None, False)


def test_restore_pinned_default_follower_goes_back_to_default():
    """set-default: false pinned the $Default followers to the new version."""
    lookup = lookup_in(described(3, default=True), described(4, 3))
    restore = plan_spec_restore(spec("$Default"), spec("4"), lookup, [SESSION])
    assert (restore.spec, restore.default_move, restore.done) == (spec("$Default"), None, False)


@pytest.mark.parametrize(
    "recorded, current, versions",
    [
        # stopped after the group was pinned back
        ("2", "2", [described(2), described(3, 2, default=True)]),
        # stopped after the default moved back
        ("$Default", "$Default", [described(3, default=True), described(4, 3)]),
        # stopped after a $Latest follower was pinned to the source
        ("$Latest", "3", [described(3, default=True), described(4, 3)]),
        # stopped after a pinned $Default follower went back to $Default
        ("$Default", "$Default", [described(3, default=True), described(4, 3)]),
    ],
)
def test_restore_already_done_changes_nothing(recorded, current, versions):
    restore = plan_spec_restore(spec(recorded), spec(current), lookup_in(*versions), [SESSION])
    assert restore.done and restore.default_move is None


@pytest.mark.parametrize(
    "recorded, current, versions, reason",
    [
        (
            "2",
            "3",
            [described(2), described(3, 2, created_by=INTRUDER)],
            "version 3 of launch template %s was created by %s, which is not trusted"
            % (TEMPLATE, INTRUDER),
        ),
        (
            "2",
            "3",
            [described(2), described(3, 2, created_by=None)],
            "was created by an unknown principal (no CreatedBy), which is not trusted",
        ),
        ("1", "3", [described(1), described(3, 2)], "version 3 was derived from version 2"),
        ("2", "3", [described(2), described(3)], "version 3, which c7n-imds did not derive"),
        (
            "$Default",
            "$Default",
            [described(3), described(4, 3, created_by=INTRUDER, default=True)],
            "its $Default, version 4, was created by %s, which is not trusted" % INTRUDER,
        ),
        (
            "$Latest",
            "$Latest",
            [described(3, default=True), described(4, 3, created_by=INTRUDER)],
            "its $Latest, version 4, was created by %s" % INTRUDER,
        ),
        # pinned $Default follower, but the default is no longer what it was derived from
        (
            "$Default",
            "4",
            [described(2), described(3, default=True), described(4, 2)],
            "version 4 was derived from version 2",
        ),
    ],
)
def test_restore_refuses_what_is_not_proven(recorded, current, versions, reason):
    with pytest.raises(ProvenanceRefused) as refused:
        plan_spec_restore(spec(recorded), spec(current), lookup_in(*versions), [SESSION])
    assert reason in str(refused.value), str(refused.value)


def test_restore_refuses_a_group_on_another_template():
    lookup = lookup_in(described(2))
    with pytest.raises(ProvenanceRefused, match="but the group launches from lt-0other"):
        plan_spec_restore(spec("2"), spec("3", "lt-0other"), lookup, [SESSION])
    assert lookup.asked == []

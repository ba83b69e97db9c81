"""c7n_imds.model.provenance: template names, idempotency tokens and the previous-launch
tag codec."""
import base64
import hashlib
import re
from datetime import datetime, timedelta, timezone

import pytest

from c7n_imds.model.provenance import (
    client_token,
    decode_previous_launch,
    encode_previous_launch,
    template_name,
)

TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)
USER_DATA_TEXT = "#!/bin/bash\necho 'h\u00e9llo'\n"
USER_DATA = base64.b64encode(USER_DATA_TEXT.encode("utf-8")).decode("ascii")


def lc_named(name, created=CREATED):
    return {"LaunchConfigurationName": name, "CreatedTime": created}


@pytest.mark.parametrize("name", [
    "web-lc",
    "a",
    "web lc",
    "web lc ",                        # trailing whitespace
    " \t\r\n",                        # whitespace only
    "ünïcödé",                        # nothing readable survives
    "🙂" * 255,
    "x" * 255,
    "é" * 254 + " ",
    "ingest/lake (v2) été #1",
    "___",
    ".." * 127 + "x",
])
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


@pytest.mark.parametrize("name", [
    "web-lc", "lc:with:colons", "lt:lt-0123:1", "ünïcödé 🙂", "x" * 253, " trailing "])
def test_previous_launch_configuration_round_trip(name):
    value = encode_previous_launch({"LaunchConfigurationName": name})
    assert len(value) <= 256
    assert decode_previous_launch(value) == {"LaunchConfigurationName": name}


@pytest.mark.parametrize("name", ["x" * 254, "x" * 255, "é" * 255, "🙂" * 255])
def test_previous_launch_configuration_long_name_uses_a_digest(name):
    value = encode_previous_launch({"LaunchConfigurationName": name})
    assert len(value) <= 256
    assert decode_previous_launch(value) == {
        "LaunchConfigurationNameSha256": hashlib.sha256(name.encode("utf-8")).hexdigest()}


@pytest.mark.parametrize("launch, decoded", [
    ({"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "3"},
     {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "3"}),
    ({"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Latest"},
     {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Latest"}),
    ({"LaunchTemplateId": "lt-0123456789abcdef0"},
     {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "$Default"}),
])
def test_previous_launch_template_round_trip(launch, decoded):
    value = encode_previous_launch(launch)
    assert len(value) <= 256
    assert decode_previous_launch(value) == decoded


@pytest.mark.parametrize("value", ["", "web-lc", "lt:lt-0123", "lt:a:b:c", "LC:web"])
def test_decode_previous_launch_refuses_anything_else(value):
    with pytest.raises(ValueError):
        decode_previous_launch(value)

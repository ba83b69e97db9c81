"""c7n_imds.model.launch_source: the `imds` view of metadata options, which template is
weakest, and the effective HttpTokens precedence (docs/aws-facts.md)."""

import base64
import re
from datetime import datetime, timezone

import pytest

from c7n_imds.model.launch_source import effective_http_tokens, metadata_view, weakness

TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)
USER_DATA_TEXT = "#!/bin/bash\necho 'h\u00e9llo'\n"
USER_DATA = base64.b64encode(USER_DATA_TEXT.encode("utf-8")).decode("ascii")


def test_metadata_view_absent_tokens_mean_optional():
    expected = {
        "HttpTokens": "optional",
        "HttpEndpoint": None,
        "HttpPutResponseHopLimit": None,
        "InstanceMetadataTags": None,
    }
    assert metadata_view(None) == expected
    assert metadata_view({}) == expected
    assert metadata_view({"HttpEndpoint": "enabled"})["HttpTokens"] == "optional"


def test_metadata_view_carries_the_settings():
    assert metadata_view(
        {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "HttpPutResponseHopLimit": 2,
            "InstanceMetadataTags": "disabled",
            "State": "applied",
        }
    ) == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
        "HttpPutResponseHopLimit": 2,
        "InstanceMetadataTags": "disabled",
    }


def test_weakness_ordering():
    unset = metadata_view(None)
    optional = metadata_view({"HttpTokens": "optional", "HttpEndpoint": "enabled"})
    required = metadata_view({"HttpTokens": "required"})
    disabled_optional = metadata_view({"HttpTokens": "optional", "HttpEndpoint": "disabled"})
    disabled_required = metadata_view({"HttpTokens": "required", "HttpEndpoint": "disabled"})
    assert weakness(unset) == weakness(optional)
    assert weakness(optional) < weakness(required) < weakness(disabled_optional)
    assert weakness(disabled_optional) == weakness(disabled_required)
    ordered = sorted([disabled_required, required, optional], key=weakness)
    assert ordered == [optional, required, disabled_required]


@pytest.mark.parametrize(
    "launch, account, ami, expected",
    [
        ("optional", {"HttpTokens": "required"}, "v2.0", "optional"),  # launch data wins
        ("required", {"HttpTokens": "optional"}, None, "required"),
        (None, {"HttpTokens": "optional"}, "v2.0", "optional"),  # account beats the AMI
        (None, {"HttpTokens": "required"}, None, "required"),
        (None, {"HttpTokens": "no-preference"}, "v2.0", "required"),  # then the AMI
        (None, {}, None, "optional"),
        (None, None, "v2.0", "required"),
    ],
)
def test_effective_http_tokens_precedence(launch, account, ami, expected):
    assert effective_http_tokens(launch, account, ami) == expected

"""c7n_imds.model.redaction: user data is shown only as its size and SHA-256."""
import base64
import hashlib
import json
import re
from datetime import datetime, timezone

from c7n_imds.model.redaction import redact, user_data_fingerprint

TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)
USER_DATA_TEXT = "#!/bin/bash\nexport TOKEN=canary-9c1d-do-not-print\necho 'h\u00e9llo'\n"
USER_DATA_RAW = USER_DATA_TEXT.encode("utf-8")
USER_DATA = base64.b64encode(USER_DATA_RAW).decode("ascii")


def test_user_data_fingerprint():
    assert user_data_fingerprint(USER_DATA) == {
        "Bytes": len(USER_DATA_RAW), "Sha256": hashlib.sha256(USER_DATA_RAW).hexdigest()}


def test_user_data_fingerprint_of_text_that_is_not_base64():
    text = "#!/bin/bash\necho hi\n"
    assert user_data_fingerprint(text) == {
        "Bytes": len(text.encode()), "Sha256": hashlib.sha256(text.encode()).hexdigest()}


def launch_template_data(**fields):
    return dict({"ImageId": "ami-0abcdef1234567890", "InstanceType": "t3.micro",
                 "MetadataOptions": {"HttpTokens": "required"}}, **fields)


def test_redact_hides_user_data():
    data = launch_template_data(UserData=USER_DATA, KeyName="ops-key")
    shown = redact(data)
    assert shown["UserData"] == user_data_fingerprint(USER_DATA)
    for text in (json.dumps(shown), json.dumps(shown, ensure_ascii=False)):
        assert USER_DATA not in text
        assert "canary-9c1d-do-not-print" not in text
    assert {k: v for k, v in shown.items() if k != "UserData"} == \
        {k: v for k, v in data.items() if k != "UserData"}
    assert data["UserData"] == USER_DATA        # the original is untouched


def test_redact_without_user_data():
    data = launch_template_data()
    assert redact(data) == data

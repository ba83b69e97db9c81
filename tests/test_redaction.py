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
        "Bytes": len(USER_DATA_RAW),
        "Sha256": hashlib.sha256(USER_DATA_RAW).hexdigest(),
    }


def test_user_data_fingerprint_of_text_that_is_not_base64():
    text = "#!/bin/bash\necho hi\n"
    assert user_data_fingerprint(text) == {
        "Bytes": len(text.encode()),
        "Sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def launch_template_data(**fields):
    return dict(
        {
            "ImageId": "ami-0abcdef1234567890",
            "InstanceType": "t3.micro",
            "MetadataOptions": {"HttpTokens": "required"},
        },
        **fields,
    )


def test_redact_hides_user_data():
    data = launch_template_data(UserData=USER_DATA, KeyName="ops-key")
    shown = redact(data)
    assert shown["UserData"] == user_data_fingerprint(USER_DATA)
    for text in (json.dumps(shown), json.dumps(shown, ensure_ascii=False)):
        assert USER_DATA not in text
        assert "canary-9c1d-do-not-print" not in text
    assert {k: v for k, v in shown.items() if k != "UserData"} == {
        k: v for k, v in data.items() if k != "UserData"
    }
    assert data["UserData"] == USER_DATA  # the original is untouched


def test_redact_without_user_data():
    data = launch_template_data()
    assert redact(data) == data


# ---- a real run: a private cache, and account-made text that forges no log record ------

FORGED = "\n2026-12-01 10:00:00,000 - custodian.commands - ERROR - forged by a name"


def test_a_run_keeps_its_cache_private_and_its_log_unforged(moto, tmp_path):
    """`c7n-imds run -v -v` with custodian's cache on: the cache (every launch
    configuration's user data, pickled) is readable by its owner only, and a group
    named with a newline and a record after it - logged as the filters say why they
    left it out - adds no record to custodian-run.log or standard error, so the
    summary of that output finds no error."""
    import os
    import stat

    from c7n_imds_report.load import load_folder, run_log_errors
    from c7n_imds_testing import aws_env, run_c7n_imds
    from tests.conftest import REPO

    endpoint, session = moto
    autoscaling = session.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="app-lc",
        ImageId="ami-12c6146b",
        InstanceType="t3.micro",
        UserData=USER_DATA,
    )
    for name in ("web" + FORGED, "compliant"):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName="app-lc",
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            AvailabilityZones=["us-east-1a"],
            Tags=[
                {"Key": "c7n-imds:exempt", "Value": "vendor" + FORGED, "PropagateAtLaunch": False}
            ],
        )
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True, mode=0o755)
    env = dict(aws_env(endpoint), HOME=str(home))
    out = tmp_path / "out"
    result = run_c7n_imds(
        ["run", "-v", "-v", "-s", str(out), str(REPO / "policies" / "detect.yml")], env
    )
    assert result.returncode == 0, result.stderr[-3000:]

    cache = home / ".cache" / "cloud-custodian.cache"
    assert cache.exists()  # the run did use the cache
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    logs = sorted(out.rglob("custodian-run.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert run_log_errors(text) == [], log
        assert not [line for line in text.splitlines() if line.startswith("2026-12-01")]
    assert "web\\n2026-12-01 10:00:00,000 - custodian.commands" in "".join(
        log.read_text() for log in logs
    )  # logged, on its own record's line
    assert not [line for line in result.stderr.splitlines() if line.startswith("2026-12-01")]
    assert all(output["State"] == "scanned" for output in load_folder(out))

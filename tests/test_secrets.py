"""User data never leaves the configuration: a canary in it is found in no output,
log, report or notification, at debug level."""

import base64
import datetime
import zlib

from tests.support.commands import (
    COPY_LC,
    DETECT,
    FIGURES,
    REMEDIATE,
    all_configs,
    c7n,
    c7n_together,
    run_args,
)
from tests.support.estates import CANARY, USER_DATA, USER_DATA_TEXT, groups_by_name, seed


def secret_needles():
    """The canary as text, the whole user data as base64, and the canary's own base64
    at each of the three byte alignments it can have inside a longer base64 text, each
    also URL-encoded (as a query-protocol request body carries it)."""
    from urllib.parse import quote

    needles = {CANARY, USER_DATA}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + CANARY.encode() + b"\0\0").decode()
        # base64 characters whose 6 bits all come from the canary
        first, last = -(-8 * offset // 6), 8 * (offset + len(CANARY)) // 6
        needles.add(encoded[first:last])
    needles |= {quote(n, safe="") for n in needles}
    needles |= {base64.b64encode(USER_DATA.encode()).decode()}
    return sorted(n.encode() for n in needles if len(n) >= 12)


def test_user_data_canary_never_leaves_the_configuration(moto, tmp_path):
    """detect, plan, remediate (with an owner notification), the copy path and the
    summary, all at debug verbosity; every byte of stdout, stderr, every output file
    and every message put on the mailer queue is searched for the canary."""
    endpoint, session = moto
    seed(session)
    autoscaling = session.client("autoscaling")
    cloudwatch, sqs = session.client("cloudwatch"), session.client("sqs")
    queue_url = sqs.create_queue(QueueName="c7n-mailer")["QueueUrl"]
    # shared-a's instance still calls IMDSv1: held back, its owner notified
    instance = groups_by_name(autoscaling)["shared-a"]["Instances"][0]["InstanceId"]
    cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "MetadataNoToken",
                "Value": 3,
                "Unit": "Count",
                "Timestamp": datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(hours=2),
                "Dimensions": [{"Name": "InstanceId", "Value": instance}],
            }
        ],
    )
    outputs = []

    def record(results):
        for result in results:
            outputs.append((" ".join(result.args[:2]), result.stdout + result.stderr))
            assert result.returncode == 0, (result.args, result.stderr[-3000:])

    record(
        c7n_together(
            [
                run_args(tmp_path / "detect", DETECT, verbose=True),
                [
                    "plan",
                    "-v",
                    "-v",
                    "-s",
                    str(tmp_path / "plan"),
                    "--cache-period",
                    "0",
                    REMEDIATE,
                ],
            ],
            endpoint,
            tmp_path,
        )
    )
    record([c7n(run_args(tmp_path / "remediate", REMEDIATE, verbose=True), endpoint, tmp_path)])
    groups = groups_by_name(autoscaling)
    assert groups["shared-b"].get("LaunchTemplate") and not groups["shared-a"].get("LaunchTemplate")
    # the copy path: a new group on the canary's configuration, copied with IMDSv2
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="late",
        LaunchConfigurationName="shared-lc",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=groups["public"]["VPCZoneIdentifier"],
    )
    record([c7n(run_args(tmp_path / "copy", COPY_LC, verbose=True), endpoint, tmp_path)])
    late = groups_by_name(autoscaling)["late"]["LaunchConfigurationName"]
    assert late != "shared-lc"
    copied = all_configs(autoscaling)[late]
    assert base64.b64decode(copied["UserData"]).decode() == USER_DATA_TEXT  # it did pass
    # the needles do find the secret where it legitimately is
    assert any(n in copied["UserData"].encode() for n in secret_needles())
    folders = [str(tmp_path / f) for f in ("detect", "remediate", "copy")]
    # (this used to run only while c7n_imds/report.py existed: a guard that silently
    # stopped checking the summary when the module moved)
    record(
        c7n_together(
            [["summary"] + folders]
            + [
                ["summary", "--format", fmt, "-o", str(tmp_path / ("summary." + fmt))] + folders
                for fmt in ("json", "html")
            ],
            endpoint,
            tmp_path,
        )
    )

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert messages, "the held-back group's notification was not sent"
    for message in messages:
        decoded = zlib.decompress(base64.b64decode(message["Body"]))
        assert b"shared-a" in decoded
        outputs.append(("sqs message", decoded.decode("utf-8", "replace")))
        outputs.append(("sqs message body", message["Body"]))
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "site" not in p.parts]
    assert any(p.name == "custodian-run.log" for p in files)
    leaks = []
    for needle in secret_needles():
        for what, text in outputs:
            if needle in text.encode("utf-8"):
                leaks.append("%s in output of %s" % (needle, what))
        for path in files:
            if needle in path.read_bytes():
                leaks.append("%s in %s" % (needle, path.relative_to(tmp_path)))
    FIGURES["secret files searched"] += len(files)
    print(
        "\nsecrets: %d outputs, %d files, %d messages searched for %d needles"
        % (len(outputs), len(files), len(messages), len(secret_needles()))
    )
    assert not leaks, leaks

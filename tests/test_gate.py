"""The contract's gate (c7n_imds.model.gate): exemption and IMDSv1 use over every
consumer of a change."""

import datetime

from c7n_imds.model.gate import EC2_FLEET, GROUP, INSTANCE, Consumer, GateSettings, judge

TODAY = datetime.date(2026, 12, 7)


def test_a_consumer_outside_the_policy_holds_the_change_back():
    consumers = [Consumer(GROUP, "web", ("i-1",)), Consumer(EC2_FLEET, "fleet-1", ("i-2",))]
    verdict = judge(consumers, {"i-1": 0, "i-2": 900}, GateSettings(), TODAY)
    assert not verdict.passed
    assert verdict.blocked == ["ec2-fleet fleet-1 made 900 IMDSv1 call(s) in 14 days"]
    assert "launch template lt-1 was not changed: ec2-fleet fleet-1" in verdict.reason(
        "launch template lt-1"
    )


def test_exempt_consumers_block_and_expired_exemptions_do_not():
    consumers = [
        Consumer(INSTANCE, "i-3", ("i-3",), "vendor agent until 2099-01-01"),
        Consumer(GROUP, "old", (), "migration until 2020-01-01"),
    ]
    verdict = judge(consumers, {"i-3": 0}, GateSettings(), TODAY)
    assert verdict.blocked == ["instance i-3 is exempt (vendor agent until 2099-01-01)"]


def test_missing_data_is_evidence_only_with_exclude():
    consumers = [Consumer(GROUP, "quiet", ("i-4",)), Consumer(GROUP, "empty")]
    assert judge(consumers, {"i-4": None}, GateSettings(missing="zero"), TODAY).passed
    verdict = judge(consumers, {"i-4": None}, GateSettings(missing="exclude"), TODAY)
    assert verdict.blocked == [
        "auto-scaling-group quiet: no evidence (no MetadataNoToken data for i-4) and "
        "missing: exclude",
        "auto-scaling-group empty: no evidence (no instances) and missing: exclude",
    ]

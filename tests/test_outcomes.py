"""The contract's outcome (c7n_imds.model.outcomes): one status per record, decided once
for the writer and every reader, and files of both schema versions read alike."""

import pytest

from c7n_imds.model.outcomes import (
    CHANGED,
    FAILED,
    FIX_PROPOSED,
    HELD_BACK,
    LEFT_TO_OWNER,
    REVERTED,
    SKIPPED,
    document,
    entries,
    outcome,
)


@pytest.mark.parametrize(
    "entry, owner_action, status",
    [
        ({"LaunchTemplateId": "lt-1"}, False, CHANGED),
        ({"Error": "creating: AccessDenied"}, False, FAILED),
        ({"Skipped": "exempt: vendor agent"}, False, SKIPPED),
        ({"Skipped": "held back: auto-scaling-group web made 3 IMDSv1 call(s)"}, False, HELD_BACK),
        (
            {"Skipped": "owned by CloudFormation stack web; use create-stack-change-set"},
            False,
            LEFT_TO_OWNER,
        ),
        ({"Skipped": "not owned by a stack or service"}, True, SKIPPED),
        (
            {"OwnerFix": {"Status": "proposed", "Detail": "change set c7n-imds-imdsv2-1"}},
            True,
            FIX_PROPOSED,
        ),
        ({"RevertedTo": "lc:web", "Detail": "back on web"}, False, REVERTED),
    ],
)
def test_each_record_gets_one_status(entry, owner_action, status):
    record = outcome(dict(entry, AutoScalingGroupName="web"), "x", owner_action).record()
    assert record["Status"] == status and record["AutoScalingGroupName"] == "web"


def test_both_schema_versions_read_alike():
    records = [{"AutoScalingGroupName": "web", "LaunchTemplateId": "lt-1"}]
    written = document(
        [outcome(records[0], "convert-to-launch-template", group_change={"After": "lt-1"})]
    )
    assert written["SchemaVersion"] == 2
    assert written["Outcomes"][0]["GroupChange"] == {"After": "lt-1"}
    assert entries(records) == records
    assert entries(written)[0]["Status"] == CHANGED
    assert entries({"unexpected": True}) == [] and entries(None) == []

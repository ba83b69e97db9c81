"""The policy pack (policies/): every policy says which Security Hub controls it serves
in structured metadata, which `c7n-imds summary` reads, and its description names them
for people."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONTROLS = {"AutoScaling.3", "AutoScaling.9", "EC2.170", "EC2.8"}
POLICIES = [
    (path.relative_to(REPO).as_posix(), policy)
    for path in sorted((REPO / "policies").rglob("*.yml"))
    for policy in (yaml.safe_load(path.read_text()) or {}).get("policies") or ()
]


def test_the_pack_has_policies():
    assert len(POLICIES) > 20


@pytest.mark.parametrize("path, policy", POLICIES, ids=[p["name"] for _, p in POLICIES])
def test_policy_declares_its_controls(path, policy):
    controls = (policy.get("metadata") or {}).get("controls")
    assert controls and set(controls) <= CONTROLS, (path, policy["name"], controls)
    named = set(re.findall(r"\b(?:AutoScaling|EC2)\.\d+\b", policy.get("description", "")))
    assert named == set(controls), (path, policy["name"])


def _policies(relative):
    return yaml.safe_load((REPO / relative).read_text())["policies"]


def test_lambda_remediation_is_remediate_yml_on_a_schedule():
    """The README promises the same policies: a filter or option added to one file only
    would make the scheduled run behave differently from the one people preview."""
    command_line, scheduled = (
        _policies("policies/remediate.yml"),
        _policies("policies/lambda/remediate-periodic.yml"),
    )
    assert [p["name"] + "-daily" for p in command_line] == [p["name"] for p in scheduled]
    for plain, daily in zip(command_line, scheduled):
        assert daily["mode"]["type"] == "periodic", daily["name"]
        assert "mode" not in plain, plain["name"]
        for key in set(plain) | set(daily):
            if key not in ("name", "mode", "description"):
                assert plain.get(key) == daily.get(key), (daily["name"], key)


def test_revert_policy_reverts_nothing_until_groups_are_named():
    (policy,) = _policies("policies/revert.yml")
    assert policy["actions"] == [{"type": "revert-imds-remediation"}]
    names = [f for f in policy["filters"] if f.get("key") == "AutoScalingGroupName"]
    assert names == [{"type": "value", "key": "AutoScalingGroupName", "op": "in", "value": []}]

"""The policy pack (policies/): every policy says which Security Hub controls it serves
in structured metadata, which `c7n-imds summary` reads, and its description names them
for people."""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONTROLS = {"AutoScaling.3", "AutoScaling.9", "EC2.170", "EC2.8"}
POLICIES = [(path.relative_to(REPO).as_posix(), policy)
            for path in sorted((REPO / "policies").rglob("*.yml"))
            for policy in (yaml.safe_load(path.read_text()) or {}).get("policies") or ()]


def test_the_pack_has_policies():
    assert len(POLICIES) > 20


@pytest.mark.parametrize("path, policy", POLICIES, ids=[p["name"] for _, p in POLICIES])
def test_policy_declares_its_controls(path, policy):
    controls = (policy.get("metadata") or {}).get("controls")
    assert controls and set(controls) <= CONTROLS, (path, policy["name"], controls)
    named = set(re.findall(r"\b(?:AutoScaling|EC2)\.\d+\b", policy.get("description", "")))
    assert named == set(controls), (path, policy["name"])

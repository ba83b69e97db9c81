"""The pinned custodian's defects that c7n_imds.upstream works around. Each test calls
custodian's own code and passes while the defect is there; when one fails, custodian
fixed it: delete the workaround and its test."""

import pytest
from c7n import mu
from c7n.config import Config
from c7n.loader import PolicyLoader

from tests.conftest import REPO


def test_custodian_security_hub_action_still_loses_existing():
    """c7n 0.9.53: SecurityHubAction.add calls CloudWatchEventSource.add without its
    `existing` argument, so a hub-action policy cannot deploy (TypeError before any
    AWS call)."""
    original = mu.SecurityHubAction.add.custodian_original
    loader = PolicyLoader(Config.empty(region="us-east-1", account_id="123456789012"))
    (policy,) = [
        p
        for p in loader.load_file(str(REPO / "policies" / "securityhub.yml"))
        if p.data.get("mode", {}).get("type") == "hub-action"
    ]
    action = mu.SecurityHubAction(policy, session_factory=None)
    with pytest.raises(TypeError, match="existing"):
        original(action, mu.PolicyLambda(policy), None)

"""c7n_imds.model.safety (and launch_source.effective_http_tokens): the pure rules of
the safe rollout: exemptions, container detection, hop limits and the
effective HttpTokens precedence (docs/aws-facts.md)."""

import base64
import datetime

import pytest

from c7n_imds.model.launch_source import effective_http_tokens
from c7n_imds.model.safety import (
    iac_guidance,
    iac_owner,
    parse_exemption,
    resolve_hop_limit,
    runs_containers,
)

TODAY = datetime.date(2026, 11, 29)


@pytest.mark.parametrize(
    "value, exempt, malformed, until",
    [
        ("legacy agent", True, False, None),
        ("legacy agent until 2026-12-31", True, False, "2026-12-31"),
        ("legacy agent until 2026-11-29", True, False, "2026-11-29"),  # through that day
        ("legacy agent until 2026-11-28", False, False, "2026-11-28"),  # expired
        ("UNTIL 2027-01-01", True, False, "2027-01-01"),
        ("until someday", True, True, None),
        ("until 2026-13-01", True, True, None),
        ("   ", True, True, None),
        ("reverted by c7n-imds on 2026-11-01", True, False, None),  # a date, not an expiry
        # the expiry anywhere in the value, a change ticket after it
        ("until 2027-03-31 (CHG-1)", True, False, "2027-03-31"),
        ("vendor agent until 2027-03-31", True, False, "2027-03-31"),
        ("until 2026-11-01 (CHG-1)", False, False, "2026-11-01"),
        ("until 2027-03-31, CHG-9 approved 2026-01-01", True, False, "2027-03-31"),
        # a date-ish part that is not 'until YYYY-MM-DD': exempt, and reported as malformed
        ("vendor agent until 31/03/2027", True, True, None),
        ("vendor agent until 2027-03-31T00:00", True, True, None),
        ("until 2027-02-30 (CHG-1)", True, True, None),
        ("until", True, True, None),
        ("expires 2027-03-31", True, True, None),
        ("vendor agent till March 31", True, True, None),
        ("vendor agent, 31 Mar 2027", True, True, None),
        ("vendor agent 2027/03/31", True, True, None),
        ("until 2027-03-31 or 2028/01/01", True, True, None),
        ("until 2027-01-01, then until 2027-06-30", True, True, None),
        # words that only look like months or expiries
        ("3 decoders need IMDSv1; agent may call it", True, False, None),
    ],
)
def test_exemption_values(value, exempt, malformed, until):
    parsed = parse_exemption(value, TODAY)
    assert (parsed["Exempt"], parsed["Malformed"]) == (exempt, malformed)
    assert parsed.get("Until") == until
    if malformed:
        assert parsed["Error"]


def test_a_malformed_exemption_says_what_to_write():
    parsed = parse_exemption("vendor agent until 31/03/2027", TODAY)
    assert parsed["Error"] == (
        "'31/03/2027' after 'until' is not a date (YYYY-MM-DD); "
        "write a reason, optionally with 'until YYYY-MM-DD'"
    )
    assert parse_exemption("until 2027-03-31 (CHG-1)", TODAY)["Reason"] == "(CHG-1)"
    assert parse_exemption("legacy until 2027-03-31, CHG-9", TODAY)["Reason"] == "legacy, CHG-9"


def test_the_filter_the_summary_and_the_gate_read_exemptions_alike():
    """One parse (model/safety.parse_exemption) behind the imds-exempt filter, the
    summary's reading of the tag and the change contract's gate."""
    import inspect

    from c7n_imds.filters import exemption
    from c7n_imds.model import gate
    from c7n_imds_report import load

    for module in (exemption, load, gate):
        assert module.parse_exemption is parse_exemption, module.__name__
        assert "parse_exemption(" in inspect.getsource(module), module.__name__
    facts = load.resource_facts(
        "asg",
        {
            "AutoScalingGroupName": "g",
            "Tags": [{"Key": "c7n-imds:exempt", "Value": "until 2099-03-31 (CHG-1)"}],
        },
    )
    assert (facts["ExemptByTag"], facts["ExemptUntil"], facts["ExemptReason"]) == (
        True,
        "2099-03-31",
        "(CHG-1)",
    )


def test_no_tag_is_not_exempt():
    assert parse_exemption(None, TODAY) == {"Exempt": False, "Malformed": False}


def tags(*keys):
    return {"Tags": [{"Key": k, "Value": "x"} for k in keys]}


@pytest.mark.parametrize(
    "asg, user_data, expected",
    [
        (tags("kubernetes.io/cluster/prod"), None, True),
        (tags("eks:nodegroup-name"), None, True),
        (tags("AmazonECSManaged"), None, True),
        (tags("owner"), base64.b64encode(b"#!/bin/bash\n/etc/eks/bootstrap.sh prod\n"), True),
        (tags("owner"), base64.b64encode(b"echo ECS_CLUSTER=web >> /etc/ecs/ecs.config"), True),
        (tags("owner"), base64.b64encode(b"#!/bin/bash\nyum install -y nginx\n"), False),
        (tags(), "not base64 !!", False),
    ],
)
def test_container_detection(asg, user_data, expected):
    assert (
        runs_containers(asg, user_data.decode() if isinstance(user_data, bytes) else user_data)
        is expected
    )


@pytest.mark.parametrize(
    "option, existing, containers, expected",
    [
        ("auto", None, True, 2),
        ("auto", {"HttpPutResponseHopLimit": 3}, True, 3),
        ("auto", {"HttpPutResponseHopLimit": 1}, False, "preserve"),
        ("preserve", None, True, "preserve"),
        (5, None, False, 5),
    ],
)
def test_hop_limit(option, existing, containers, expected):
    assert resolve_hop_limit(option, existing, containers) == expected


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


def test_stack_owned_groups_get_guidance():
    cfn = {"Tags": [{"Key": "aws:cloudformation:stack-name", "Value": "web-stack"}]}
    beanstalk = {"Tags": [{"Key": "elasticbeanstalk:environment-name", "Value": "api-prod"}]}
    assert iac_owner({"Tags": []}) is None
    assert "web-stack" in iac_guidance(cfn) and "create-stack-change-set" in iac_guidance(cfn)
    assert "DisableIMDSv1" in iac_guidance(beanstalk)
    assert "disable-beanstalk-imdsv1" in iac_guidance(beanstalk)
    eks = {"Tags": [{"Key": "eks:nodegroup-name", "Value": "ng-1"}]}
    assert "set-nodegroup-metadata-access" in iac_guidance(eks)


def test_beanstalk_groups_are_the_environments_not_the_stacks():
    """Elastic Beanstalk builds an environment with CloudFormation, so its group carries
    both tags; the environment is what owns it (a change set on awseb-...-stack would be
    undone by Beanstalk)."""
    both = {
        "Tags": [
            {"Key": "aws:cloudformation:stack-name", "Value": "awseb-e-x-stack"},
            {"Key": "elasticbeanstalk:environment-name", "Value": "api-prod"},
        ]
    }
    assert iac_owner(both) == ("elasticbeanstalk:environment-name", "api-prod")

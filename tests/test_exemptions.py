"""c7n_imds.model.exemptions: the ``c7n-imds:exempt`` tag's reason and expiry, read alike
by the filter, the summary and the gate."""

import datetime

import pytest

from c7n_imds.model.exemptions import parse_exemption

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
    """One parse (model/exemptions.parse_exemption) behind the imds-exempt filter, the
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

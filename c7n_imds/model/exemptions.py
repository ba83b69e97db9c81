"""The ``c7n-imds:exempt`` tag read once for the filter, the gate and the report: a
reason with an optional ``until YYYY-MM-DD``, and what makes a value malformed. Pure."""

from __future__ import annotations

import datetime
import re

# The expiry: "until" and an ISO date, anywhere in the value ("until 2027-03-31 (CHG-1)").
UNTIL = re.compile(r"\buntil\b", re.IGNORECASE)
UNTIL_DATE = re.compile(r"\buntil\s+(?P<date>\d{4}-\d\d-\d\d)(?=$|[\s,;.)\]])", re.IGNORECASE)
# What reads as a date or an expiry word. Outside "until YYYY-MM-DD" a real ISO date is a
# record ("reverted by c7n-imds on 2026-11-01", as revert-imds-remediation writes); any
# other date or an expiry word means a person meant an end date that a silent "exempt
# for good" would ignore.
MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
DATE_LIKE = re.compile(
    r"\b\d{4}[-/.]\d{1,2}(?:[-/.]\d{1,2})?\b"  # 2027-03-31, 2027/3/31, 2027-03
    r"|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"  # 31/03/2027, 3.31.27
    r"|\b%s\s*\d{1,4}\b|\b\d{1,2}(?:st|nd|rd|th)?\s*%s"  # March 31, 31st Mar
    r"|\b(?:expir\w*|exp|till?|thru)\b" % (MONTH, MONTH),
    re.IGNORECASE,
)
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
EXEMPTION_FORMAT = "a reason, optionally with 'until YYYY-MM-DD'"


def _unreadable_date(text: str) -> str | None:
    """The first date-like part or expiry word of ``text`` that is not an ISO date."""
    for found in DATE_LIKE.finditer(text):
        part = found.group()
        if ISO_DATE.fullmatch(part):
            try:
                datetime.date.fromisoformat(part)
                continue
            except ValueError:
                pass
        return part
    return None


def _malformed(reason: str, error: str) -> dict:
    return {
        "Exempt": True,
        "Malformed": True,
        "Reason": reason,
        "Until": None,
        "Expired": False,
        "Error": "%s; write %s" % (error, EXEMPTION_FORMAT),
    }


def parse_exemption(value: str | None, today: datetime.date) -> dict:
    """Read a ``c7n-imds:exempt`` tag value: a reason, with an optional expiry ``until
    YYYY-MM-DD`` anywhere in it (``vendor agent until 2027-03-31``, ``until 2027-03-31
    (CHG-1)``). Exempt until the end of that day; for good without an expiry.

    Malformed - empty, ``until`` without an ISO date after it (or twice), a date that
    does not exist, a date not written YYYY-MM-DD or an expiry word ("expires
    31/03/2027", "till March 31") - counts as exempt and says why (``Error``): an
    exemption protects a fleet that still calls IMDSv1 from an outage, and a typo in its
    date must not end that protection overnight; the report of malformed exemptions
    (policies/detect.yml, notify.yml) makes its owner fix it, since until then it never
    expires. Pure."""
    if value is None:
        return {"Exempt": False, "Malformed": False}
    text = " ".join(value.split())
    if not text:
        return _malformed("", "empty value")
    untils = UNTIL.findall(text)
    if not untils:
        other = _unreadable_date(text)
        if other:
            return _malformed(
                text,
                "%r reads as a date or an expiry, but only 'until YYYY-MM-DD' sets one" % other,
            )
        return {"Exempt": True, "Malformed": False, "Reason": text, "Until": None, "Expired": False}
    match = UNTIL_DATE.search(text)
    if len(untils) > 1:
        return _malformed(text, "'until' appears %d times" % len(untils))
    if not match:
        found = UNTIL.search(text)  # there is one: untils is not empty
        after = text[found.end() :].split() if found else []
        return _malformed(
            text,
            "%s after 'until' is not a date (YYYY-MM-DD)" % repr(after[0])
            if after
            else "no date after 'until'",
        )
    # "until 2027-03-31, CHG-9": the reason is what is left, without a dangling comma
    reason = re.sub(
        r" ([,;:])", r"\1", " ".join((text[: match.start()] + " " + text[match.end() :]).split())
    ).strip(" ,;:-")
    try:
        until = datetime.date.fromisoformat(match.group("date"))
    except ValueError:
        return _malformed(reason, "%r after 'until' is not a date" % match.group("date"))
    other = _unreadable_date(reason)
    if other:
        return _malformed(
            reason,
            "%r besides 'until %s' reads as another date or expiry" % (other, until.isoformat()),
        )
    expired = until < today
    return {
        "Exempt": not expired,
        "Malformed": False,
        "Reason": reason,
        "Until": until.isoformat(),
        "Expired": expired,
    }

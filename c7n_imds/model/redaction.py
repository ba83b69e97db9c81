"""User data never leaves the configuration: what may be printed, logged or reported
instead - its size and SHA-256. Pure."""

from __future__ import annotations

import base64
import binascii
import hashlib


def user_data_fingerprint(user_data: str) -> dict:
    """Size and SHA-256 of the decoded user data: enough to check a conversion against
    the original file without ever showing its content."""
    try:
        raw = base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raw = user_data.encode("utf-8")
    return {"Bytes": len(raw), "Sha256": hashlib.sha256(raw).hexdigest()}


def redact(launch_template_data: dict) -> dict:
    """A copy safe to print, log or report: user data replaced by its fingerprint."""
    shown = dict(launch_template_data)
    if shown.get("UserData"):
        shown["UserData"] = user_data_fingerprint(shown["UserData"])
    return shown

"""Remediation actions on `asg` (and `launch-config`). Importing this package registers
them."""

from c7n_imds.actions import (  # noqa: F401
    convert,
    copy_lc,
    revert,
    set_access,
)
from c7n_imds.actions.base import RemediationError  # noqa: F401

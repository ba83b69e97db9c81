"""Remediation actions on `asg` (and `launch-config`). Importing this package registers
them."""
from c7n_imds.actions import beanstalk, change_sets, convert, copy_lc, revert, set_access  # noqa: F401
from c7n_imds.actions.base import RemediationError  # noqa: F401

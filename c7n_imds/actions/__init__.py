"""Remediation actions on `asg`. Importing this package registers them."""
from c7n_imds.actions.common import RemediationError  # noqa: F401
from c7n_imds.actions import convert  # noqa: F401
from c7n_imds.actions import metadata  # noqa: F401
from c7n_imds.actions import revert  # noqa: F401
from c7n_imds.actions import copy_lc  # noqa: F401

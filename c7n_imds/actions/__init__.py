"""Remediation actions on `asg` (and `launch-config`). Importing this package registers
them."""
from c7n_imds.actions import (  # noqa: F401
    beanstalk,
    change_sets,
    convert,
    copy_lc,
    nodegroups,
    revert,
    set_access,
)
from c7n_imds.actions.base import RemediationError  # noqa: F401

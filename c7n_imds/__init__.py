"""c7n-imds: Cloud Custodian filters and actions that move Auto Scaling groups to IMDSv2.

Cloud Custodian no longer loads third-party plugins by entry point: filters and actions
exist only in a process that imported this package before loading policies. Importing
``c7n_imds`` registers everything; doing it twice changes nothing (Python imports a
module once, and registration happens at import).
"""

import contextlib
import os

# One version source: setup.py reads it from here.
__version__ = "0.1.0"

PAGE_SIZE = 100  # DescribeAutoScalingGroups / DescribeLaunchConfigurations allow 100


def full_pages(resource_class, limit_key="MaxRecords", page_size=PAGE_SIZE):
    """Custodian lists groups and launch configurations 50 per page; AWS allows 100.
    Listing is most of a scan's API calls, so every policy run by c7n-imds asks for
    full pages (only the page size changes, never what is listed)."""
    enum_op, path, extra_args = resource_class.resource_type.enum_spec
    if not extra_args:
        resource_class.resource_type.enum_spec = (enum_op, path, {limit_key: page_size})


@contextlib.contextmanager
def _profile_unread():
    """Importing custodian's AWS resources makes aws_xray_sdk build a client, which reads
    AWS_PROFILE: a profile that does not exist would stop every command with a
    traceback, even those that need no AWS (--version, summary, pack). The client is
    never used unless a run asks for tracing, so it is built without the profile; the
    commands that reach AWS check the profile themselves and say what is wrong."""
    hidden = {
        k: os.environ.pop(k) for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE") if k in os.environ
    }
    try:
        yield
    finally:
        os.environ.update(hidden)


def register():
    """Register our filters and actions with c7n's resource registries, ask for full
    listing pages and work around the pinned custodian's defects (idempotent). Nothing
    else of custodian changes: c7n-imds paces and retries only its own sessions
    (c7n_imds.aws.imds_session)."""
    with _profile_unread():
        from c7n.resources.asg import ASG, LaunchConfig

    from c7n_imds import actions, filters, owners, upstream  # noqa: F401  (import registers)

    upstream.apply()
    full_pages(ASG)
    full_pages(LaunchConfig)


register()

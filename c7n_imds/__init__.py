"""c7n-imds: Cloud Custodian filters and actions that move Auto Scaling groups to IMDSv2.

Cloud Custodian no longer loads third-party plugins by entry point: filters and actions
exist only in a process that imported this package before loading policies. Importing
``c7n_imds`` registers everything; doing it twice changes nothing (Python imports a
module once, and registration happens at import).
"""
import os

__version__ = "0.1.0"


# One version source: setup.py reads it from here.
PAGE_SIZE = 100  # DescribeAutoScalingGroups / DescribeLaunchConfigurations allow 100


def full_pages(resource_class, limit_key="MaxRecords", page_size=PAGE_SIZE):
    """Custodian lists groups and launch configurations 50 per page; AWS allows 100.
    Listing is most of a scan's API calls, so every policy run by c7n-imds asks for
    full pages (only the page size changes, never what is listed)."""
    enum_op, path, extra_args = resource_class.resource_type.enum_spec
    if not extra_args:
        resource_class.resource_type.enum_spec = (enum_op, path, {limit_key: page_size})


# Every call of a run - custodian's own listing included - is as patient with dropped
# connections and 5xx answers as with throttling: botocore's default (legacy) retry mode
# retries those, but only 5 attempts; 8 survive an outage of 6 consecutive failures and
# give up after at most about 2 minutes of backoff per call (random, doubling from 1 s).
# Set by environment, before custodian makes any client, so that every client of the
# process gets it; a value the user set wins.
MAX_ATTEMPTS = "8"


def patient_retries(environ=os.environ):
    environ.setdefault("AWS_MAX_ATTEMPTS", MAX_ATTEMPTS)


def pace_custodian_sessions():
    """Attach the process's request pacing (c7n_imds.pacing) and the note of unanswered
    calls (c7n_imds.aws) to every session custodian's SessionFactory makes.
    SessionFactory has no hook of its own for this: its subscriber list belongs to
    custodian's API call statistics, which replace it."""
    from c7n.credentials import SessionFactory

    from c7n_imds import aws, pacing
    if getattr(SessionFactory.update, "paced", False):
        return
    update = SessionFactory.update

    def paced_update(self, session):
        return aws.note_unanswered_calls(pacing.install(update(self, session)))
    paced_update.paced = True
    SessionFactory.update = paced_update


def register():
    """Register our filters and actions with c7n's resource registries, ask for full
    listing pages, pace requests, retry network errors patiently and work around the
    pinned custodian's defects (idempotent)."""
    from c7n.resources.asg import ASG, LaunchConfig

    from c7n_imds import actions, filters, upstream  # noqa: F401  (import registers)
    upstream.apply()
    full_pages(ASG)
    full_pages(LaunchConfig)
    patient_retries()
    pace_custodian_sessions()


register()

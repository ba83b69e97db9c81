"""The AWS edge every module shares: one retry policy, one way to name an AWS error,
the region-wide group scans."""

import os
import threading
import time
import weakref

from botocore.exceptions import BotoCoreError, ClientError
from c7n.utils import get_retry

from c7n_imds import pacing
from c7n_imds.model.launch_source import template_group_specs

# Throttling and transient server errors; botocore's own retries come first.
# ResourceContention and ScalingActivityInProgress are Auto Scaling's answers while
# another change or a scaling activity holds the group: botocore does not retry them,
# and they clear by themselves.
THROTTLING_CODES = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled")
RETRIED_CODES = THROTTLING_CODES + (
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "ResourceContention",
    "ScalingActivityInProgress",
)
retry = get_retry(RETRIED_CODES, max_attempts=8)

# An AWS error answer, or no answer at all (connection reset, timeout): either way one
# group fails, named with the reason, and the others go on.
AWS_ERRORS = (ClientError, BotoCoreError)


def describe_error(error):
    """An AWS error answer as "Code: Message"; no answer at all by its description."""
    if isinstance(error, ClientError):
        return "%s: %s" % (error.response["Error"]["Code"], error.response["Error"]["Message"])
    return str(error)


def error_code(error):
    return error.response["Error"]["Code"] if isinstance(error, ClientError) else None


# Network errors and 5xx answers are retried like throttling, 8 attempts rather than
# botocore's 5: they survive an outage of 6 consecutive failures and give up after at
# most about 2 minutes of backoff per call. A value the user set (AWS_MAX_ATTEMPTS, or
# max_attempts in the profile) wins.
MAX_ATTEMPTS = 8
SESSION_LIFETIME = 45 * 60  # as custodian's local_session: assumed roles last 1 hour

_sessions = threading.local()


def patient_command_retries(environ=os.environ):
    """For the `c7n-imds run` and `org run` commands, whose process runs our pack:
    custodian's own listing is as patient as our calls, set before custodian makes any
    client. Importing the plugin does not do this (a process that imports c7n_imds
    for other reasons keeps its own retries)."""
    environ.setdefault("AWS_MAX_ATTEMPTS", str(MAX_ATTEMPTS))


def imds_session(manager):
    """c7n-imds's own boto3 session for a policy's account and region: its requests are
    paced within the action's rate budget (c7n_imds.pacing), retried patiently, and an
    unanswered call is noted for the error line. Custodian's own sessions - its
    listing, other policies in the same process - are left exactly as custodian made
    them. One per thread and session factory (c7n-org makes one per account-region),
    renewed like custodian's after 45 minutes."""
    factory = manager.session_factory
    cache = getattr(_sessions, "by_factory", None)
    if cache is None:
        cache = _sessions.by_factory = weakref.WeakKeyDictionary()
    held = cache.get(factory)
    now = time.monotonic()
    if held is not None and held[1] + SESSION_LIFETIME > now:
        return held[0]
    session = factory()
    if not (
        os.environ.get("AWS_MAX_ATTEMPTS") or session._session.get_config_variable("max_attempts")
    ):
        session._session.set_config_variable("max_attempts", MAX_ATTEMPTS)
    note_unanswered_calls(pacing.install(session))
    cache[factory] = (session, now)
    return session


# The last call of this thread that got no answer at all (a connection error, a
# timeout): botocore's exception for it names the endpoint, not the API.
_unanswered = threading.local()


def note_unanswered_calls(session):
    """Remember, per thread, which API and region the last unanswered call was for."""
    session.events.register(
        "after-call-error", _note_unanswered, unique_id="c7n-imds-unanswered-call"
    )
    return session


def note_custodian_unanswered_calls():
    """For the `run` command only: custodian's own sessions (its listing) note their
    unanswered calls too, so that a listing that stays down ends its policy with a line
    naming the API. Only an observer is added: their pace and retries stay custodian's.
    SessionFactory has no hook of its own for this (its subscriber list belongs to
    custodian's API call statistics, which replace it)."""
    from c7n.credentials import SessionFactory

    if getattr(SessionFactory.update, "notes_unanswered", False):
        return
    update = SessionFactory.update

    def noting_update(self, session):
        return note_unanswered_calls(update(self, session))

    noting_update.notes_unanswered = True
    SessionFactory.update = noting_update


def _note_unanswered(event_name, exception, context=None, **kwargs):
    _unanswered.call = (
        exception,
        event_name.split(".", 2)[2],
        (context or {}).get("client_region"),
    )


def failed_call(error):
    """(API, region or None, attempts or None) of an AWS error raised by a call."""
    if isinstance(error, ClientError):
        return (
            error.operation_name,
            None,
            error.response.get("ResponseMetadata", {}).get("RetryAttempts"),
        )
    noted = getattr(_unanswered, "call", None)
    if noted and noted[0] is error:
        return noted[1], noted[2], None
    return None, None, None


def tags_of(resource):
    """{key: value} of a resource's Tags list (groups, templates, instances)."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def all_groups(autoscaling):
    """Every Auto Scaling group of the region, read now, 100 per page (AWS's maximum),
    retried as a whole like every other call."""
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    return retry(
        lambda: [
            asg
            for page in paginator.paginate(PaginationConfig={"PageSize": 100})
            for asg in page["AutoScalingGroups"]
        ]
    )


def template_followers(autoscaling, work, groups=None):
    """{template id: {version ("$Default", "$Latest" or a number): {groups}}} over every
    group in the region, read fresh (or ``groups``, the region's groups read now), for
    the templates this run would give a new version."""
    wanted = {template_id for template_id, _ in work}
    followers = {}
    if not wanted:
        return followers
    for asg in all_groups(autoscaling) if groups is None else groups:
        for spec in template_group_specs(asg):
            if spec.get("LaunchTemplateId") in wanted:
                followers.setdefault(spec["LaunchTemplateId"], {}).setdefault(
                    spec["Version"], set()
                ).add(asg["AutoScalingGroupName"])
    return followers


# What a policy had not read when a describe failed, by API.
NOT_SCANNED = {
    "DescribeAutoScalingGroups": "its Auto Scaling groups were not scanned",
    "DescribeLaunchConfigurations": "its launch configurations were not read",
    "DescribeLaunchTemplates": "its launch templates were not read",
    "DescribeLaunchTemplateVersions": "its launch template versions were not read",
    "DescribeInstances": "its instances were not read",
    "GetMetricData": "its IMDSv1 usage was not read",
}


def stopped_policy_line(policy, error):
    """One line for a policy that an AWS error stopped: the API, the region, the error
    and what was not scanned - instead of three chained tracebacks naming no group."""
    operation, region, attempts = failed_call(error)
    what = NOT_SCANNED.get(operation, "what it had not reached was left as it is")
    return "policy %s stopped: %s%s failed%s (%s); %s - run it again when AWS answers" % (
        policy,
        operation or "an AWS call",
        " in %s" % region if region else "",
        " after %d attempts" % (attempts + 1) if attempts else " after retrying",
        describe_error(error),
        what,
    )

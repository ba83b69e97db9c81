"""The AWS edge every module shares: one retry policy, one way to name an AWS error,
the region-wide group scans."""
from botocore.exceptions import BotoCoreError, ClientError
from c7n.utils import get_retry

from c7n_imds.model.launch_source import template_group_specs

# Throttling and transient server errors; botocore's own retries come first.
# ResourceContention and ScalingActivityInProgress are Auto Scaling's answers while
# another change or a scaling activity holds the group: botocore does not retry them,
# and they clear by themselves.
THROTTLING_CODES = ("Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "RequestThrottled")
RETRIED_CODES = THROTTLING_CODES + (
    "ServiceUnavailable", "InternalError", "InternalFailure", "ResourceContention",
    "ScalingActivityInProgress")
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


def tags_of(resource):
    """{key: value} of a resource's Tags list (groups, templates, instances)."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def all_groups(autoscaling):
    """Every Auto Scaling group of the region, read now, 100 per page (AWS's maximum),
    retried as a whole like every other call."""
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    return retry(lambda: [asg for page in paginator.paginate(
        PaginationConfig={"PageSize": 100}) for asg in page["AutoScalingGroups"]])


def template_followers(autoscaling, work):
    """{template id: {version ("$Default", "$Latest" or a number): {groups}}} over every
    group in the region, read fresh, for the templates this run would give a new
    version."""
    wanted = {template_id for template_id, _ in work}
    followers = {}
    if not wanted:
        return followers
    for asg in all_groups(autoscaling):
        for spec in template_group_specs(asg):
            if spec.get("LaunchTemplateId") in wanted:
                followers.setdefault(spec["LaunchTemplateId"], {}).setdefault(
                    spec["Version"], set()).add(asg["AutoScalingGroupName"])
    return followers

"""Running instances keep the metadata options they launched with. After a group is
switched, these bring its InService instances in line: in place
(ModifyInstanceMetadataOptions, no reboot) or by replacement (an instance refresh)."""

import logging

from botocore.exceptions import BotoCoreError, ClientError

from c7n_imds.aws import retry
from c7n_imds.names import PRESERVE

log = logging.getLogger("custodian.c7n_imds.instances")

# Skip instances already launched from the new configuration; everything else is
# AWS's default. MinHealthyPercentage and MaxHealthyPercentage are sent only when the
# user sets them: unset, the group's instance maintenance policy applies (else AWS's
# 90 and 100), and a value sent here would override the policy the group's owner chose.
DEFAULT_REFRESH_PREFERENCES = {"SkipMatching": True}
MIN_HEALTHY_RANGE = (0, 100)
MAX_HEALTHY_RANGE = (100, 200)
MAX_HEALTHY_SPREAD = 100


def in_service_instance_ids(asg):
    return sorted(
        i["InstanceId"]
        for i in asg.get("Instances") or ()
        if i.get("LifecycleState") == "InService"
    )


def metadata_parameters(http_tokens, hop_limit, http_endpoint):
    params = {}
    if http_tokens != PRESERVE:
        params["HttpTokens"] = http_tokens
    if hop_limit not in (PRESERVE, "auto", None):
        params["HttpPutResponseHopLimit"] = int(hop_limit)
    if http_endpoint != PRESERVE:
        params["HttpEndpoint"] = http_endpoint
    return params


def modify_in_service(ec2, asg, http_tokens, hop_limit, http_endpoint):
    """ModifyInstanceMetadataOptions on each InService instance (the API takes one
    instance per call). Returns a summary; failures are reported per instance."""
    params = metadata_parameters(http_tokens, hop_limit, http_endpoint)
    modified, failed = [], {}
    for instance_id in in_service_instance_ids(asg):
        try:
            retry(ec2.modify_instance_metadata_options, InstanceId=instance_id, **params)
            modified.append(instance_id)
        except ClientError as e:
            failed[instance_id] = e.response["Error"]["Code"]
        except BotoCoreError as e:
            failed[instance_id] = type(e).__name__
    log.info(
        "asg %s: metadata options modified on %d running instance(s)%s",
        asg["AutoScalingGroupName"],
        len(modified),
        ", failed on %s" % failed if failed else "",
    )
    return {"Mode": "modify", "Modified": modified, "Failed": failed}


def refresh_preferences_problem(preferences):
    """What StartInstanceRefresh would refuse in these preferences (botocore's
    documentation of RefreshPreferences), or None. Checked when the policy is
    validated: after the switch it would be too late."""
    low, high = (preferences.get("MinHealthyPercentage"), preferences.get("MaxHealthyPercentage"))
    for name, value, (least, most) in (
        ("MinHealthyPercentage", low, MIN_HEALTHY_RANGE),
        ("MaxHealthyPercentage", high, MAX_HEALTHY_RANGE),
    ):
        if value is not None and not least <= value <= most:
            return "%s %s is outside %d-%d" % (name, value, least, most)
    if high is not None and low is None:
        return (
            "MaxHealthyPercentage needs MinHealthyPercentage too (AWS refuses one "
            "without the other)"
        )
    if high is not None and high - low > MAX_HEALTHY_SPREAD:
        return "MaxHealthyPercentage %d minus MinHealthyPercentage %d is more than %d" % (
            high,
            low,
            MAX_HEALTHY_SPREAD,
        )
    return None


def refresh_preferences(overrides, uses_template):
    preferences = dict(DEFAULT_REFRESH_PREFERENCES)
    preferences.update(overrides)
    if not uses_template:
        # SkipMatching works only with launch templates.
        preferences.pop("SkipMatching", None)
    return preferences


def start_refresh(autoscaling, asg, overrides, uses_template):
    """StartInstanceRefresh; one already in progress is reported, not an error.
    (Automatic rollback is not offered: AWS needs a DesiredConfiguration for it.)"""
    name = asg["AutoScalingGroupName"]
    preferences = refresh_preferences(overrides, uses_template)
    try:
        response = retry(
            autoscaling.start_instance_refresh,
            AutoScalingGroupName=name,
            Strategy="Rolling",
            Preferences=preferences,
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "InstanceRefreshInProgress":
            log.warning(
                "asg %s: an instance refresh is already in progress; running "
                "instances will be replaced when a refresh next runs",
                name,
            )
            return {"Mode": "refresh", "InProgress": True}
        raise
    log.info("asg %s: instance refresh %s started", name, response["InstanceRefreshId"])
    return {
        "Mode": "refresh",
        "InstanceRefreshId": response["InstanceRefreshId"],
        "Preferences": preferences,
    }

"""The Elastic Beanstalk edge: an environment, the groups it owns (by its own API, not by
their tags), its DisableIMDSv1 option and how an update replaces its instances as its
configuration shows them, and putting a recorded value back (`disable-beanstalk-imdsv1`
and `revert-imds-remediation`)."""

import dataclasses
import math

from c7n.utils import chunks

from c7n_imds.aws import retry, tags_of
from c7n_imds.names import (
    BEANSTALK_ENVIRONMENT_ID_TAG,
    BEANSTALK_NAMESPACE,
    BEANSTALK_OPTION,
    BEANSTALK_TAG,
)

# DescribeEnvironments documents no maximum for EnvironmentIds / EnvironmentNames; a
# bounded batch keeps each request (a query string) small.
ENVIRONMENTS_PER_CALL = 100
READY = "Ready"
TRUE = "true"
# The option's documented default (Beanstalk's general options reference).
OPTION_DEFAULT = "false"
OPTION = "%s %s" % (BEANSTALK_NAMESPACE, BEANSTALK_OPTION)
OPTION_SETTING = {"Namespace": BEANSTALK_NAMESPACE, "OptionName": BEANSTALK_OPTION, "Value": TRUE}

# How an update that changes the launch settings replaces the instances (Beanstalk's
# "Configuration changes" and general options reference). An option a configuration
# set does not show has its documented default: RollingUpdateEnabled false (the console
# and the EB CLI set it true when they create an environment; the API, SDKs and
# CloudFormation do not), RollingUpdateType Time, EnvironmentType LoadBalanced,
# MinSize 1, MaxSize 4.
ROLLING = "aws:autoscaling:updatepolicy:rollingupdate"
ENVIRONMENT = "aws:elasticbeanstalk:environment"
ASG = "aws:autoscaling:asg"
SINGLE_INSTANCE = "SingleInstance"
ALL_AT_ONCE, ROLLING_UPDATE, IMMUTABLE = "all-at-once", "rolling", "immutable"


def environment_reference(asg):
    """("id", environment id) or ("name", environment name) from a group's tags; the
    id is preferred (a name can be reused after its environment is terminated)."""
    tags = tags_of(asg)
    if tags.get(BEANSTALK_ENVIRONMENT_ID_TAG):
        return "id", tags[BEANSTALK_ENVIRONMENT_ID_TAG]
    return "name", tags[BEANSTALK_TAG]


def describe_environments(beanstalk, references):
    """{("id"|"name", value): environment} for the references that exist (terminated
    ones are not listed: IncludeDeleted is false)."""
    found = {}
    paginator = beanstalk.get_paginator("describe_environments")
    for kind, parameter, key in (
        ("id", "EnvironmentIds", "EnvironmentId"),
        ("name", "EnvironmentNames", "EnvironmentName"),
    ):
        wanted = sorted({value for k, value in references if k == kind})
        for batch in chunks(wanted, ENVIRONMENTS_PER_CALL):
            pages = retry(
                lambda: list(paginator.paginate(**{parameter: batch, "IncludeDeleted": False}))
            )
            for page in pages:
                for environment in page["Environments"]:
                    found[(kind, environment[key])] = environment
    return found


def configuration_sets(beanstalk, environment):
    """{DeploymentStatus: configuration set} of a running environment: "deployed", and
    a draft "pending" (an update is deploying) or "failed" (the last one did not)."""
    descriptions = retry(
        beanstalk.describe_configuration_settings,
        ApplicationName=environment["ApplicationName"],
        EnvironmentName=environment["EnvironmentName"],
    )
    found = {}
    for description in descriptions["ConfigurationSettings"]:
        found.setdefault(description.get("DeploymentStatus") or "deployed", description)
    return found


def environment_groups(beanstalk, environment):
    """The names of the Auto Scaling groups Elastic Beanstalk lists among the
    environment's resources (DescribeEnvironmentResources): the proof that a group is
    the environment's. Its elasticbeanstalk:* tags only name a candidate - anyone with
    tag rights can write them on any group."""
    resources = retry(
        beanstalk.describe_environment_resources, EnvironmentId=environment["EnvironmentId"]
    )["EnvironmentResources"]
    return sorted(
        group["Name"] for group in resources.get("AutoScalingGroups") or () if group.get("Name")
    )


def not_listed(asg, environment):
    """The refusal for a group whose tags name an environment that does not list it."""
    return (
        "tags name Elastic Beanstalk environment %s (%s), but Elastic Beanstalk does "
        "not list this group among its resources; nothing changed"
        % (environment["EnvironmentName"], environment["EnvironmentId"])
    )


def option_value(configuration_set, namespace=BEANSTALK_NAMESPACE, option=BEANSTALK_OPTION):
    """The value a configuration set shows for an option (DisableIMDSv1 unless named),
    or None when it has none. Matched by namespace and name alone: answers may also
    name the option's resource (ResourceName, e.g. the environment's launch
    configuration)."""
    for setting in (configuration_set or {}).get("OptionSettings") or ():
        if setting.get("Namespace") == namespace and setting.get("OptionName") == option:
            return setting.get("Value")
    return None


@dataclasses.dataclass(frozen=True)
class Replacement:
    """How Beanstalk replaces an environment's instances when its launch settings
    change: ``mode`` is rolling, immutable or all-at-once, from the settings named
    (as the configuration shows them, or their defaults)."""

    mode: str
    environment_type: str
    rolling_enabled: str
    rolling_type: str
    max_batch_size: int = 0
    min_in_service: int = 0
    defaults: tuple = ()  # the batch options not set, whose defaults were computed

    @property
    def settings(self):
        return "EnvironmentType %s, %s RollingUpdateEnabled %s" % (
            self.environment_type,
            ROLLING,
            self.rolling_enabled,
        )

    def line(self):
        """What happens to the instances, in words for the plan, the record and mail."""
        if self.mode == ALL_AT_ONCE:
            return (
                "ALL AT ONCE: every instance is terminated and replaced at the same "
                "time, with downtime (%s)" % self.settings
            )
        if self.mode == IMMUTABLE:
            return (
                "immutable: a temporary group launches a full set of new instances "
                "beside the old ones, which are terminated once the new pass health "
                "checks (RollingUpdateType Immutable)"
            )
        pace = (
            "each batch healthy before the next"
            if self.rolling_type.lower() == "health"
            else "a pause (PauseTime) between batches"
        )
        return (
            "rolling: batches of at most %d instance(s), at least %d kept in service, "
            "%s (RollingUpdateType %s%s)"
            % (
                self.max_batch_size,
                self.min_in_service,
                pace,
                self.rolling_type,
                "; %s not set: Beanstalk's default" % " and ".join(self.defaults)
                if self.defaults
                else "",
            )
        )


def _integer(value, default):
    try:
        return int((value or "").strip())
    except ValueError:
        return default


def replacement(configuration_set):
    """The Replacement a launch settings change gets, read from a configuration set;
    an option it does not show has Beanstalk's documented default. Counted as all at
    once whenever rolling updates are not enabled (whatever RollingUpdateType says),
    and for a single-instance environment whatever its rolling settings say (one
    instance, no load balancer to keep serving)."""

    def shown(namespace, option, default):
        value = option_value(configuration_set, namespace, option)
        return (value.strip(), False) if value and value.strip() else (default, True)

    environment_type, _ = shown(ENVIRONMENT, "EnvironmentType", "LoadBalanced")
    enabled, enabled_default = shown(ROLLING, "RollingUpdateEnabled", "false")
    rolling_type, _ = shown(ROLLING, "RollingUpdateType", "Time")
    shown_enabled = enabled + (" (not set: Beanstalk's default)" if enabled_default else "")
    if environment_type == SINGLE_INSTANCE or not is_true(enabled):
        return Replacement(ALL_AT_ONCE, environment_type, shown_enabled, rolling_type)
    if rolling_type.lower() == IMMUTABLE:
        return Replacement(IMMUTABLE, environment_type, shown_enabled, rolling_type)
    # The batch defaults of the general options reference: a third of MinSize, rounded
    # up; MinSize or MaxSize - 1, whichever is lower.
    min_size = _integer(shown(ASG, "MinSize", "1")[0], 1)
    max_size = _integer(shown(ASG, "MaxSize", "4")[0], 4)
    batch, batch_default = shown(ROLLING, "MaxBatchSize", "")
    in_service, in_service_default = shown(ROLLING, "MinInstancesInService", "")
    return Replacement(
        ROLLING_UPDATE,
        environment_type,
        shown_enabled,
        rolling_type,
        _integer(batch, max(1, math.ceil(min_size / 3))),
        _integer(in_service, max(0, min(min_size, max_size - 1))),
        tuple(
            name
            for name, default in (
                ("MaxBatchSize", batch_default),
                ("MinInstancesInService", in_service_default),
            )
            if default
        ),
    )


def all_at_once_remedy(plan_replacement):
    """The way to a replacement that is not all at once (the refusal's other way out
    besides the opt-in)."""
    if plan_replacement.environment_type == SINGLE_INSTANCE:
        return (
            "a single-instance environment has no rolling updates: make it "
            "load-balanced (%s EnvironmentType LoadBalanced)" % ENVIRONMENT
        )
    return (
        "enable rolling updates first: set %s RollingUpdateEnabled=true with "
        "RollingUpdateType Health or Immutable" % ROLLING
    )


def is_true(value):
    return (value or "").strip().lower() == TRUE


def previous_value(value):
    """What the c7n-imds:previous-launch tag records. DescribeConfigurationSettings
    shows the environment's effective value, set by the environment, a saved
    configuration, .ebextensions or Beanstalk's default alike: the default ("false")
    and no value are recorded as "not set", so a revert removes the setting
    (OptionsToRemove) and what governed it before governs it again, instead of pinning
    "false" on the environment above its own configuration files."""
    if value is None or value.strip().lower() == OPTION_DEFAULT:
        return None
    return value


def shown(value):
    return "unset" if value is None else value


def not_ready(environment):
    """Why the environment cannot be updated now, or None."""
    name = environment["EnvironmentName"]
    if environment.get("Status") != READY:
        return "environment %s is %s; run again when it is Ready" % (
            name,
            environment.get("Status") or "not Ready",
        )
    if environment.get("AbortableOperationInProgress"):
        return "environment %s has an update in progress; run again when it is Ready" % name
    return None


def restore_environment(session, asg, record):
    """Put back the environment option a c7n-imds:previous-launch record names
    (``{"BeanstalkOption": value or None}``, decode_previous_launch): UpdateEnvironment
    with the recorded value, or - recorded as not set - OptionsToRemove, so what governed
    it before (a saved configuration, .ebextensions, Beanstalk's default) governs it
    again. Returns one line saying what was done; raises ValueError, with the reason,
    when the environment cannot be restored now (nothing is changed then).

    Only the environment that lists the group among its resources is changed (its tags
    alone prove nothing). Groups of one environment may be reverted in one run: an
    environment already updating to the recorded value, or already showing it, is not
    updated again.

    What a revert does not undo: once DisableIMDSv1=true moved an environment from a
    launch configuration to a launch template, Beanstalk keeps the launch template -
    putting the option back makes it a template that allows IMDSv1, never a launch
    configuration again. The restore changes the launch settings too, so Beanstalk
    replaces every instance again, as the environment's update policy says; a revert
    is the way back someone asked for, so it is not refused for an all-at-once
    replacement (there is no opt-in to ask for): the line it returns says which
    replacement Beanstalk makes."""
    beanstalk = session.client("elasticbeanstalk")
    reference = environment_reference(asg)
    environment = describe_environments(beanstalk, {reference}).get(reference)
    if environment is None:
        raise ValueError(
            "Elastic Beanstalk environment %s was not found, so its %s "
            "cannot be put back" % (reference[1], BEANSTALK_OPTION)
        )
    if asg["AutoScalingGroupName"] not in environment_groups(beanstalk, environment):
        raise ValueError(not_listed(asg, environment))
    name, value = environment["EnvironmentName"], record["BeanstalkOption"]
    wanted = OPTION_DEFAULT if value is None else value
    sets = configuration_sets(beanstalk, environment)
    problem = not_ready(environment)
    if problem:
        pending = option_value(sets.get("pending"))
        if pending is not None and pending.strip().lower() == wanted.strip().lower():
            return "environment %s is already updating to %s=%s" % (name, BEANSTALK_OPTION, pending)
        raise ValueError(problem)
    current = option_value(sets.get("deployed"))
    if current is not None and current.strip().lower() == wanted.strip().lower():
        return "environment %s already has %s=%s; nothing to put back" % (
            name,
            BEANSTALK_OPTION,
            current,
        )
    effect = (
        "Beanstalk replaces every instance - %s; the environment keeps launching "
        "from a launch template (now allowing IMDSv1), it does not go back to a "
        "launch configuration" % replacement(sets.get("deployed")).line()
    )
    if value is None:
        retry(
            beanstalk.update_environment,
            EnvironmentId=environment["EnvironmentId"],
            OptionsToRemove=[{"Namespace": BEANSTALK_NAMESPACE, "OptionName": BEANSTALK_OPTION}],
        )
        return "environment %s: %s setting removed (it was not set before); %s" % (
            name,
            BEANSTALK_OPTION,
            effect,
        )
    retry(
        beanstalk.update_environment,
        EnvironmentId=environment["EnvironmentId"],
        OptionSettings=[dict(OPTION_SETTING, Value=value)],
    )
    return "environment %s: %s %s -> %s; %s" % (
        name,
        BEANSTALK_OPTION,
        shown(current),
        value,
        effect,
    )

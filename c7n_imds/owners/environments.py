"""The Elastic Beanstalk edge: an environment, its DisableIMDSv1 option as its
configuration shows it, and putting a recorded value back (`disable-beanstalk-imdsv1`
and `revert-imds-remediation`)."""
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
OPTION_SETTING = {"Namespace": BEANSTALK_NAMESPACE, "OptionName": BEANSTALK_OPTION,
                  "Value": TRUE}

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
    for kind, parameter, key in (("id", "EnvironmentIds", "EnvironmentId"),
                                 ("name", "EnvironmentNames", "EnvironmentName")):
        wanted = sorted({value for k, value in references if k == kind})
        for batch in chunks(wanted, ENVIRONMENTS_PER_CALL):
            pages = retry(lambda: list(paginator.paginate(
                **{parameter: batch, "IncludeDeleted": False})))
            for page in pages:
                for environment in page["Environments"]:
                    found[(kind, environment[key])] = environment
    return found


def configuration_sets(beanstalk, environment):
    """{DeploymentStatus: configuration set} of a running environment: "deployed", and
    a draft "pending" (an update is deploying) or "failed" (the last one did not)."""
    descriptions = retry(beanstalk.describe_configuration_settings,
                         ApplicationName=environment["ApplicationName"],
                         EnvironmentName=environment["EnvironmentName"])
    found = {}
    for description in descriptions["ConfigurationSettings"]:
        found.setdefault(description.get("DeploymentStatus") or "deployed", description)
    return found


def option_value(configuration_set):
    """The DisableIMDSv1 value a configuration set shows, or None when it has none.
    Matched by namespace and name alone: answers may also name the option's resource
    (ResourceName, e.g. the environment's launch configuration)."""
    for setting in (configuration_set or {}).get("OptionSettings") or ():
        if (setting.get("Namespace") == BEANSTALK_NAMESPACE
                and setting.get("OptionName") == BEANSTALK_OPTION):
            return setting.get("Value")
    return None


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
            name, environment.get("Status") or "not Ready")
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

    Groups of one environment may be reverted in one run: an environment already
    updating to the recorded value, or already showing it, is not updated again."""
    beanstalk = session.client("elasticbeanstalk")
    reference = environment_reference(asg)
    environment = describe_environments(beanstalk, {reference}).get(reference)
    if environment is None:
        raise ValueError("Elastic Beanstalk environment %s was not found, so its %s "
                         "cannot be put back" % (reference[1], BEANSTALK_OPTION))
    name, value = environment["EnvironmentName"], record["BeanstalkOption"]
    wanted = OPTION_DEFAULT if value is None else value
    sets = configuration_sets(beanstalk, environment)
    problem = not_ready(environment)
    if problem:
        pending = option_value(sets.get("pending"))
        if pending is not None and pending.strip().lower() == wanted.strip().lower():
            return "environment %s is already updating to %s=%s" % (
                name, BEANSTALK_OPTION, pending)
        raise ValueError(problem)
    current = option_value(sets.get("deployed"))
    if current is not None and current.strip().lower() == wanted.strip().lower():
        return "environment %s already has %s=%s; nothing to put back" % (
            name, BEANSTALK_OPTION, current)
    if value is None:
        retry(beanstalk.update_environment, EnvironmentId=environment["EnvironmentId"],
              OptionsToRemove=[{"Namespace": BEANSTALK_NAMESPACE,
                                "OptionName": BEANSTALK_OPTION}])
        return ("environment %s: %s setting removed (it was not set before); Beanstalk "
                "replaces its instances" % (name, BEANSTALK_OPTION))
    retry(beanstalk.update_environment, EnvironmentId=environment["EnvironmentId"],
          OptionSettings=[dict(OPTION_SETTING, Value=value)])
    return "environment %s: %s %s -> %s; Beanstalk replaces its instances" % (
        name, BEANSTALK_OPTION, shown(current), value)

"""Filter `imds-converted` on `launch-config`: configurations c7n-imds replaced, safe
to delete after a soak period."""

import datetime

from c7n.filters import Filter
from c7n.resources.asg import LaunchConfig
from c7n.utils import chunks, type_schema
from dateutil.parser import parse as parse_date

from c7n_imds.aws import all_groups, imds_session, retry
from c7n_imds.model.launch_source import launch_references
from c7n_imds.model.provenance import copy_name, source_identity
from c7n_imds.names import (
    CONVERTED_FILTER,
    LAUNCH_CONFIGURATION,
    REPLACEMENT_ANNOTATION,
    SOURCE_CREATED_TAG,
    SOURCE_TAG,
)
from c7n_imds.sources import LC_NAMES_PER_CALL


@LaunchConfig.filter_registry.register(CONVERTED_FILTER)
class ConvertedLaunchConfigFilter(Filter):
    """Launch configurations that c7n-imds replaced at least ``days`` ago and that no
    Auto Scaling group uses now - the ones safe to delete.

    :example:

    .. code-block:: yaml

        policies:
          - name: delete-replaced-imdsv1-launch-configurations
            resource: launch-config
            filters:
            - {type: imds, key: HttpTokens, value: optional}
            - {type: imds-converted, days: 14}
            actions:
            - delete
    """

    schema = type_schema(CONVERTED_FILTER, days={"type": "number", "minimum": 0})
    permissions = (
        "ec2:DescribeLaunchTemplates",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeLaunchConfigurations",
    )
    annotation_key = REPLACEMENT_ANNOTATION

    def process(self, configs, event=None):
        session = imds_session(self.manager)
        ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
        replacements = template_replacements(ec2)
        replacements.update(copy_replacements(autoscaling, configs))
        in_use = launch_configurations_in_use(autoscaling)
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            days=self.data.get("days", 14)
        )
        matched = []
        for config in configs:
            replacement = replacements.get(source_identity(config))
            if replacement is None or config["LaunchConfigurationName"].strip() in in_use:
                continue
            if replacement["Created"] > cutoff:
                continue
            config[self.annotation_key] = dict(
                replacement, Created=replacement["Created"].isoformat()
            )
            matched.append(config)
        return matched


def _aware(value):
    value = value if isinstance(value, datetime.datetime) else parse_date(str(value))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def template_replacements(ec2):
    """{(LC name, LC created): {Kind, Name, Created}} from our templates' tags."""
    found = {}
    for page in ec2.get_paginator("describe_launch_templates").paginate(
        Filters=[{"Name": "tag-key", "Values": [SOURCE_TAG]}], PaginationConfig={"PageSize": 200}
    ):
        for template in page["LaunchTemplates"]:
            tags = {t["Key"]: t["Value"] for t in template.get("Tags") or ()}
            key = (tags.get(SOURCE_TAG), tags.get(SOURCE_CREATED_TAG, ""))
            found[key] = {
                "Kind": "launch-template",
                "Name": template["LaunchTemplateName"],
                "Created": _aware(template["CreateTime"]),
            }
    return found


def copy_replacements(autoscaling, configs):
    """{(LC name, LC created): {...}} for configurations with an IMDSv2 copy."""
    by_copy = {copy_name(c): source_identity(c) for c in configs}
    found = {}
    for batch in chunks(sorted(by_copy), LC_NAMES_PER_CALL):
        response = retry(
            autoscaling.describe_launch_configurations,
            LaunchConfigurationNames=batch,
            MaxRecords=100,
        )
        for copy in response["LaunchConfigurations"]:
            found[by_copy[copy["LaunchConfigurationName"]]] = {
                "Kind": "launch-configuration",
                "Name": copy["LaunchConfigurationName"],
                "Created": _aware(copy["CreatedTime"]),
            }
    return found


def launch_configurations_in_use(autoscaling):
    """Names, stripped of white space, of launch configurations some group launches
    from, read fresh (AWS also refuses to delete a configuration in use). Recorded AWS
    answers carry trailing spaces in these names on either side - the group's or the
    configuration's - so callers compare stripped names. A template beside a
    configuration name wins, as in launch_references: moto keeps the old name after a
    switch."""
    return {
        launch_references(asg)[1][0].strip()
        for asg in all_groups(autoscaling)
        if launch_references(asg)[0] == LAUNCH_CONFIGURATION
    }

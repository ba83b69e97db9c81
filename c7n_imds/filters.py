"""Filters: `imds` on `asg` and `launch-config`."""
import datetime
import json

from c7n.filters import Filter, ValueFilter
from c7n.resources.asg import ASG, LaunchConfig
from c7n.utils import chunks, local_session, type_schema
from dateutil.parser import parse as parse_date

from c7n_imds.keys import LAUNCH_CONFIGURATION_KEYS, LAUNCH_KEYS, check_key_and_value
from c7n_imds.launch import (
    LAUNCH_CONFIGURATION, LC_NAMES_PER_CALL, LaunchSources, launch_configuration_view,
    launch_references)
from c7n_imds.aws import all_groups, retry
from c7n_imds.translate import (
    SOURCE_CREATED_TAG, SOURCE_TAG, copy_name, source_identity, user_data_fingerprint)

ANNOTATION_KEY = "c7n-imds:launch"


def _full_pages(resource_class, limit_key="MaxRecords", page_size=100):
    """Custodian lists groups and launch configurations 50 per page; AWS allows 100.
    Listing is most of a scan's API calls, so every policy run by c7n-imds asks for
    full pages (only the page size changes, never what is listed)."""
    enum_op, path, extra_args = resource_class.resource_type.enum_spec
    if not extra_args:
        resource_class.resource_type.enum_spec = (enum_op, path, {limit_key: page_size})


_full_pages(ASG)
_full_pages(LaunchConfig)


@ASG.filter_registry.register("imds")
class AsgImdsFilter(ValueFilter):
    """Filter Auto Scaling groups by the instance metadata (IMDS) options their
    instances launch with.

    The options come from whatever launches the group's instances: its launch
    configuration, its launch template version (``$Default`` and ``$Latest`` resolved to
    numbers), or, for a mixed instances policy, the weakest of its templates including
    per-override templates. Keys:

    - ``LaunchType``: ``launch-configuration``, ``launch-template`` or
      ``mixed-instances-policy``
    - ``LaunchName``, ``LaunchTemplateId``, ``LaunchTemplateVersion`` (resolved number)
    - ``HttpTokens`` (``optional`` when the launch data does not set it),
      ``HttpEndpoint``, ``HttpPutResponseHopLimit``, ``InstanceMetadataTags``
      (null when unset)
    - ``LaunchSourceMissing``: true when the configuration or template version no longer
      exists (``LaunchSourceError`` says which)
    - ``ImageId`` of the launch data
    - ``EffectiveHttpTokens``: what instances really get - the launch data's value, else
      the account default for the region (GetInstanceMetadataDefaults), else the AMI's
      ``ImdsSupport`` (``v2.0`` means required), else ``optional``
    - ``ScaleOutBlocked``: true when the account enforces IMDSv2 (HttpTokensEnforced)
      but the group's launch resolves to ``optional``: such a group cannot launch
      instances any more
    - ``RemediationPending``: true when a run of ``set-metadata-access`` stopped
      half-way for a group that follows ``$Latest``: the group already launches the
      new version, but the run did not record it or move the template's default (which
      Security Hub EC2.170 judges) - select these beside ``HttpTokens: optional`` so
      the next run finishes the job

    ``EffectiveHttpTokens`` and ``ScaleOutBlocked`` cost a GetInstanceMetadataDefaults
    and a DescribeImages call, made only by filters that use them.

    The result is annotated on each group under ``c7n-imds:launch``.

    :example:

    Groups whose instances would start with IMDSv1 allowed (Security Hub
    AutoScaling.3 / EC2.170):

    .. code-block:: yaml

        policies:
          - name: asg-imdsv1-allowed
            resource: asg
            filters:
              - type: imds
                key: HttpTokens
                value: optional
    """

    schema = type_schema("imds", rinherit=ValueFilter.schema)
    schema_alias = False
    annotation_key = ANNOTATION_KEY
    permissions = ("autoscaling:DescribeAutoScalingGroups",) + LaunchSources.permissions
    effective_keys = ("EffectiveHttpTokens", "ScaleOutBlocked")

    def validate(self):
        check_key_and_value(self, LAUNCH_KEYS)
        return super().validate()

    def get_permissions(self):
        if self.data.get("key") in self.effective_keys:
            return self.permissions + ("ec2:GetInstanceMetadataDefaults", "ec2:DescribeImages")
        return self.permissions

    def process(self, asgs, event=None):
        effective = self.data.get("key") in self.effective_keys
        # Several imds filters in one policy resolve the launch sources once.
        todo = [a for a in asgs if self.annotation_key not in a or (
            effective and "EffectiveHttpTokens" not in a[self.annotation_key])]
        if todo:
            session = local_session(self.manager.session_factory)
            sources = LaunchSources.for_manager(
                self.manager, session.client("ec2"), session.client("autoscaling")).load(todo)
            if effective:
                sources.load_effective()
            for asg in todo:
                asg[self.annotation_key] = sources.describe(asg)
        self.write_scan(asgs)
        return super().process(asgs, event)

    def write_scan(self, asgs):
        """Record what the policy's first imds filter saw - every group, before any
        filtering - for `c7n-imds summary` (groups scanned, by launch type)."""
        if getattr(self.manager, "_c7n_imds_scan_written", False):
            return
        self.manager._c7n_imds_scan_written = True
        by_type = {}
        for asg in asgs:
            view = asg[self.annotation_key]
            entry = by_type.setdefault(str(view["LaunchType"]), {"Groups": 0, "Optional": 0})
            entry["Groups"] += 1
            entry["Optional"] += view["HttpTokens"] == "optional"
        self.manager.ctx.output.write_file("imds-scan.json", json.dumps(
            {"Scanned": len(asgs), "ByLaunchType": by_type}, indent=2))

    def __call__(self, asg):
        return self.match(asg[self.annotation_key])


@LaunchConfig.filter_registry.register("imds")
class LaunchConfigImdsFilter(ValueFilter):
    """Filter launch configurations by their instance metadata (IMDS) options.

    Security Hub control AutoScaling.3 evaluates each launch configuration, used or not,
    so an unused configuration that allows IMDSv1 keeps failing until it is deleted.
    Keys are those of the ``asg`` filter ``imds`` (``HttpTokens`` is ``optional`` when
    unset). Requires no API call beyond listing the configurations.

    The configuration's user data is replaced by its size and SHA-256 in the resource
    record, so it never reaches custodian's output files.

    :example:

    .. code-block:: yaml

        policies:
          - name: launch-config-imdsv1-allowed
            resource: launch-config
            filters:
              - type: imds
                key: HttpTokens
                value: optional
    """

    schema = type_schema("imds", rinherit=ValueFilter.schema)
    schema_alias = False
    annotation_key = ANNOTATION_KEY
    permissions = ("autoscaling:DescribeLaunchConfigurations",)

    def validate(self):
        check_key_and_value(self, LAUNCH_CONFIGURATION_KEYS)
        return super().validate()

    def process(self, configs, event=None):
        for config in configs:
            if isinstance(config.get("UserData"), str) and config["UserData"]:
                config["UserData"] = user_data_fingerprint(config["UserData"])
            config[self.annotation_key] = launch_configuration_view(config)
        return super().process(configs, event)

    def __call__(self, config):
        return self.match(config[self.annotation_key])


@LaunchConfig.filter_registry.register("imds-converted")
class ConvertedLaunchConfigFilter(Filter):
    """Launch configurations that c7n-imds replaced at least ``days`` ago and that no
    Auto Scaling group uses now - the ones safe to delete.

    Security Hub AutoScaling.3 keeps failing for a launch configuration that allows
    IMDSv1 until it is deleted, even when no group uses it. A configuration counts as
    replaced when a launch template tagged ``c7n-imds:source`` with its name (and
    creation time) exists, or its ``copy-launch-configuration`` copy does; ``days``
    counts from when that replacement was created, a soak period during which
    ``revert-imds-remediation`` can still go back. Group usage is read fresh from
    DescribeAutoScalingGroups (never custodian's cache), and AWS itself refuses to
    delete a configuration a group still uses.

    :example:

    .. code-block:: yaml

        policies:
          - name: delete-replaced-imdsv1-launch-configurations
            resource: launch-config
            filters:
              - type: imds
                key: HttpTokens
                value: optional
              - type: imds-converted
                days: 14
            actions:
              - delete
    """

    schema = type_schema("imds-converted", days={"type": "number", "minimum": 0})
    permissions = ("ec2:DescribeLaunchTemplates", "autoscaling:DescribeAutoScalingGroups",
                   "autoscaling:DescribeLaunchConfigurations")
    annotation_key = "c7n-imds:replaced-by"

    def process(self, configs, event=None):
        session = local_session(self.manager.session_factory)
        ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
        replacements = template_replacements(ec2)
        replacements.update(copy_replacements(autoscaling, configs))
        in_use = launch_configurations_in_use(autoscaling)
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            days=self.data.get("days", 14))
        matched = []
        for config in configs:
            replacement = replacements.get(source_identity(config))
            if replacement is None or config["LaunchConfigurationName"].strip() in in_use:
                continue
            if replacement["Created"] > cutoff:
                continue
            config[self.annotation_key] = dict(
                replacement, Created=replacement["Created"].isoformat())
            matched.append(config)
        return matched


def _aware(value):
    value = value if isinstance(value, datetime.datetime) else parse_date(str(value))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def template_replacements(ec2):
    """{(LC name, LC created): {Kind, Name, Created}} from our templates' tags."""
    found = {}
    for page in ec2.get_paginator("describe_launch_templates").paginate(
            Filters=[{"Name": "tag-key", "Values": [SOURCE_TAG]}],
            PaginationConfig={"PageSize": 200}):
        for template in page["LaunchTemplates"]:
            tags = {t["Key"]: t["Value"] for t in template.get("Tags") or ()}
            key = (tags.get(SOURCE_TAG), tags.get(SOURCE_CREATED_TAG, ""))
            found[key] = {"Kind": "launch-template", "Name": template["LaunchTemplateName"],
                          "Created": _aware(template["CreateTime"])}
    return found


def copy_replacements(autoscaling, configs):
    """{(LC name, LC created): {...}} for configurations with an IMDSv2 copy."""
    by_copy = {copy_name(c): source_identity(c) for c in configs}
    found = {}
    for batch in chunks(sorted(by_copy), LC_NAMES_PER_CALL):
        response = retry(autoscaling.describe_launch_configurations,
                         LaunchConfigurationNames=batch, MaxRecords=100)
        for copy in response["LaunchConfigurations"]:
            found[by_copy[copy["LaunchConfigurationName"]]] = {
                "Kind": "launch-configuration", "Name": copy["LaunchConfigurationName"],
                "Created": _aware(copy["CreatedTime"])}
    return found


def launch_configurations_in_use(autoscaling):
    """Names, stripped of white space, of launch configurations some group launches
    from, read fresh (AWS also refuses to delete a configuration in use). Recorded AWS
    answers carry trailing spaces in these names on either side - the group's or the
    configuration's - so callers compare stripped names. A template beside a
    configuration name wins, as in launch_references: moto keeps the old name after a
    switch."""
    return {launch_references(asg)[1][0].strip() for asg in all_groups(autoscaling)
            if launch_references(asg)[0] == LAUNCH_CONFIGURATION}

"""Filters: `imds` on `asg` and `launch-config`."""
from c7n.filters import ValueFilter
from c7n.resources.asg import ASG, LaunchConfig
from c7n.utils import local_session, type_schema

from c7n_imds.launch import LAUNCH_CONFIGURATION, LaunchSources
from c7n_imds.translate import metadata_view, user_data_fingerprint

ANNOTATION_KEY = "c7n-imds:launch"


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

    def process(self, asgs, event=None):
        sources = LaunchSources.from_session(
            local_session(self.manager.session_factory)).load(asgs)
        for asg in asgs:
            asg[self.annotation_key] = sources.describe(asg)
        return super().process(asgs, event)

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

    def process(self, configs, event=None):
        for config in configs:
            if isinstance(config.get("UserData"), str) and config["UserData"]:
                config["UserData"] = user_data_fingerprint(config["UserData"])
            config[self.annotation_key] = dict(
                metadata_view(config.get("MetadataOptions")),
                LaunchType=LAUNCH_CONFIGURATION,
                LaunchName=config["LaunchConfigurationName"],
                LaunchTemplateId=None, LaunchTemplateVersion=None,
                LaunchSourceMissing=False)
        return super().process(configs, event)

    def __call__(self, config):
        return self.match(config[self.annotation_key])

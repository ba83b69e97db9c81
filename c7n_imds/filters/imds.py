"""Filters: `imds` on `asg` and `launch-config`."""

import json

from c7n.filters import ValueFilter
from c7n.resources.asg import ASG, LaunchConfig
from c7n.utils import type_schema

from c7n_imds.aws import imds_session
from c7n_imds.filters.vocabularies import (
    LAUNCH_CONFIGURATION_KEYS,
    LAUNCH_KEYS,
    AnnotationValueFilter,
)
from c7n_imds.model.launch_source import launch_configuration_view
from c7n_imds.model.redaction import user_data_fingerprint
from c7n_imds.names import IMDS_FILTER, LAUNCH_ANNOTATION, SCAN_FILE
from c7n_imds.sources import LaunchSources


class LaunchViewFilter(AnnotationValueFilter):
    """The two ``imds`` filters: a value filter over the launch view (LAUNCH_KEYS)."""

    def why(self, launch):
        source = "%s %s" % (launch.get("LaunchType"), launch.get("LaunchName"))
        if launch.get("HttpTokens") == "required" and self.data.get("key") == "HttpTokens":
            return "compliant: %s requires IMDSv2" % source
        return "%s (launches from %s)" % (super().why(launch), source)


@ASG.filter_registry.register(IMDS_FILTER)
class AsgImdsFilter(LaunchViewFilter):
    """Filter Auto Scaling groups by the instance metadata (IMDS) options their
    instances launch with.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-imdsv1-allowed
            resource: asg
            filters:
            - {type: imds, key: HttpTokens, value: optional}
    """

    schema = type_schema(IMDS_FILTER, rinherit=ValueFilter.schema)
    annotation_key = LAUNCH_ANNOTATION
    vocabulary = LAUNCH_KEYS
    permissions = ("autoscaling:DescribeAutoScalingGroups",) + LaunchSources.permissions
    effective_keys = ("EffectiveHttpTokens", "ScaleOutBlocked")

    def get_permissions(self):
        if self.data.get("key") in self.effective_keys:
            return self.permissions + ("ec2:GetInstanceMetadataDefaults", "ec2:DescribeImages")
        return self.permissions

    def process(self, asgs, event=None):
        effective = self.data.get("key") in self.effective_keys
        # Several imds filters in one policy resolve the launch sources once.
        todo = [
            a
            for a in asgs
            if self.annotation_key not in a
            or (effective and "EffectiveHttpTokens" not in a[self.annotation_key])
        ]
        if todo:
            session = imds_session(self.manager)
            sources = LaunchSources.for_manager(
                self.manager, session.client("ec2"), session.client("autoscaling")
            ).load(todo)
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
        self.manager.ctx.output.write_file(
            SCAN_FILE, json.dumps({"Scanned": len(asgs), "ByLaunchType": by_type}, indent=2)
        )


@LaunchConfig.filter_registry.register(IMDS_FILTER)
class LaunchConfigImdsFilter(LaunchViewFilter):
    """Filter launch configurations by their instance metadata (IMDS) options.

    :example:

    .. code-block:: yaml

        policies:
          - name: launch-config-imdsv1-allowed
            resource: launch-config
            filters:
            - {type: imds, key: HttpTokens, value: optional}
    """

    schema = type_schema(IMDS_FILTER, rinherit=ValueFilter.schema)
    annotation_key = LAUNCH_ANNOTATION
    vocabulary = LAUNCH_CONFIGURATION_KEYS
    permissions = ("autoscaling:DescribeLaunchConfigurations",)

    def process(self, configs, event=None):
        for config in configs:
            if isinstance(config.get("UserData"), str) and config["UserData"]:
                config["UserData"] = user_data_fingerprint(config["UserData"])
            config[self.annotation_key] = launch_configuration_view(config)
        return super().process(configs, event)

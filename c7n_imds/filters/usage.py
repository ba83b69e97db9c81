"""Safe rollout filters: real IMDSv1 use (`imdsv1-usage`) and exemptions (`imds-exempt`).

Requiring IMDSv2 breaks whatever still calls IMDSv1 - old SDKs, CLIs, agents. EC2
publishes the calls each instance receives without a token as the CloudWatch metric
``MetadataNoToken`` (namespace ``AWS/EC2``, dimension ``InstanceId``); gating
remediation on it being zero over a window is what makes the change safe.
"""

from c7n.filters import ValueFilter
from c7n.resources.asg import ASG
from c7n.resources.ec2 import EC2
from c7n.utils import type_schema

from c7n_imds.aws import imds_session
from c7n_imds.consumers import metadata_no_token_sums
from c7n_imds.filters.vocabularies import USAGE_KEYS, ExplainsDrops, check_key_and_value
from c7n_imds.names import USAGE_ANNOTATION, USAGE_FILTER


class UsageFilter(ExplainsDrops, ValueFilter):
    """Shared by the asg and ec2 filters: instance ids in, a number out."""

    schema = type_schema(
        USAGE_FILTER,
        rinherit=ValueFilter.schema,
        days={"type": "number", "minimum": 1, "maximum": 455},
        missing={"enum": ["exclude", "zero", "include"]},
    )
    schema_alias = False
    annotation_key = USAGE_ANNOTATION
    permissions = ("cloudwatch:GetMetricData",)

    def instance_ids(self, resource):
        raise NotImplementedError

    def validate(self):
        self.data.setdefault("key", "Total")  # the only key; users may omit it
        check_key_and_value(self, USAGE_KEYS)
        return super().validate()

    def process(self, resources, event=None):
        days = self.data.get("days", 14)
        client = imds_session(self.manager).client("cloudwatch")
        sums = metadata_no_token_sums(
            client, [i for r in resources for i in self.instance_ids(r)], days
        )
        for r in resources:
            counts = {i: sums.get(i) for i in self.instance_ids(r)}
            without_data = sorted(i for i, c in counts.items() if c is None)
            r[self.annotation_key] = {
                "Total": sum(c for c in counts.values() if c is not None),
                "Days": days,
                "Instances": counts,
                "InstancesWithoutData": without_data,
                # no instances, or some without data points: no evidence either way
                "Incomplete": not counts or bool(without_data),
            }
        return super().process(resources, event)

    def __call__(self, r):
        usage = r[self.annotation_key]
        missing = self.data.get("missing", "exclude")
        if usage["Incomplete"] and missing != "zero":
            return self.explained(r, missing == "include", usage)
        return self.explained(r, self.match(usage), usage)

    def why(self, usage):
        if usage["Incomplete"] and self.data.get("missing", "exclude") == "exclude":
            return "no evidence (%s) and missing: exclude" % (
                "no CloudWatch MetadataNoToken data for %s"
                % ", ".join(usage["InstancesWithoutData"])
                if usage["Instances"]
                else "no instances"
            )
        if usage["Total"]:
            return "held back: %d IMDSv1 call(s) in %d days" % (usage["Total"], usage["Days"])
        return "made no IMDSv1 call in %d days; the policy asks %s %r" % (
            usage["Days"],
            self.data.get("op", "equal"),
            self.data.get("value"),
        )


@ASG.filter_registry.register(USAGE_FILTER)
class AsgImdsV1Usage(UsageFilter):
    """Filter groups by how often their instances called IMDSv1 (without a token).

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-no-imdsv1-use
            resource: asg
            filters:
            - {type: imdsv1-usage, days: 14, value: 0, missing: exclude}
    """

    def instance_ids(self, asg):
        return [i["InstanceId"] for i in asg.get("Instances") or ()]


@EC2.filter_registry.register(USAGE_FILTER)
class Ec2ImdsV1Usage(AsgImdsV1Usage):
    """Filter instances by how often they called IMDSv1 (``MetadataNoToken``).

    :example:

    .. code-block:: yaml

        policies:
          - name: ec2-imdsv1-callers
            resource: ec2
            filters:
            - {type: imdsv1-usage, days: 7, value: 0, op: gt}
    """

    def instance_ids(self, instance):
        return [instance["InstanceId"]]

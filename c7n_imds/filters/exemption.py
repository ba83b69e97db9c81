"""Filter `imds-exempt` on `asg`: the `c7n-imds:exempt` tag, read."""

import datetime

from c7n.filters import ValueFilter
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.filters.vocabularies import EXEMPTION_KEYS, AnnotationValueFilter
from c7n_imds.model.exemptions import parse_exemption
from c7n_imds.names import EXEMPT_FILTER, EXEMPT_TAG, EXEMPTION_ANNOTATION


@ASG.filter_registry.register(EXEMPT_FILTER)
class ImdsExemptFilter(AnnotationValueFilter):
    """Filter groups by their IMDS remediation exemption (tag ``c7n-imds:exempt``).

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-not-exempt
            resource: asg
            filters:
            - {type: imds-exempt, key: Exempt, value: false}
    """

    schema = type_schema(EXEMPT_FILTER, rinherit=ValueFilter.schema)
    annotation_key = EXEMPTION_ANNOTATION
    vocabulary = EXEMPTION_KEYS
    permissions = ("autoscaling:DescribeAutoScalingGroups",)

    def why(self, exemption):
        if exemption.get("Malformed"):
            return "unreadable %s tag (%s): counts as exempt" % (EXEMPT_TAG, exemption.get("Error"))
        if exemption.get("Exempt"):
            return "exempt: %s%s" % (
                exemption.get("Reason"),
                " until %s" % exemption["Until"] if exemption.get("Until") else "",
            )
        if exemption.get("Expired"):
            return "not exempt: its exemption ended %s" % exemption.get("Until")
        return super().why(exemption)

    def process(self, asgs, event=None):
        today = datetime.datetime.now(datetime.timezone.utc).date()
        for asg in asgs:
            tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
            asg[self.annotation_key] = parse_exemption(tags.get(EXEMPT_TAG), today)
        return super().process(asgs, event)

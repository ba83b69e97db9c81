"""The options the remediation actions share: their schemas (which reject typos at
validate time) and what each costs in permissions."""

from c7n_imds.model.changes import LAUNCH_CHANGE_KINDS
from c7n_imds.names import PRESERVE

HOP_LIMIT_SCHEMA = {
    "oneOf": [{"enum": [PRESERVE, "auto"]}, {"type": "integer", "minimum": 1, "maximum": 64}]
}
IAC_MANAGED_SCHEMA = {"enum": ["skip", "remediate"]}
HTTP_ENDPOINT_SCHEMA = {"enum": [PRESERVE, "enabled", "disabled"]}
RUNNING_INSTANCES_SCHEMA = {"enum": ["keep", "modify", "refresh"]}
# The share of each of AWS's API token buckets a run may use (c7n_imds/model/rates.py);
# the rest stays for the account's own automation.
RATE_BUDGET_SCHEMA = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
RUNNING_INSTANCES_PERMISSIONS = {
    "modify": ("ec2:ModifyInstanceMetadataOptions",),
    "refresh": ("autoscaling:StartInstanceRefresh",),
}
REFRESH_PREFERENCES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "MinHealthyPercentage": {"type": "integer", "minimum": 0, "maximum": 100},
        "MaxHealthyPercentage": {"type": "integer", "minimum": 100, "maximum": 200},
        "InstanceWarmup": {"type": "integer", "minimum": 0},
        "SkipMatching": {"type": "boolean"},
        "ScaleInProtectedInstances": {"enum": ["Refresh", "Ignore", "Wait"]},
        "StandbyInstances": {"enum": ["Terminate", "Ignore", "Wait"]},
        "BakeTime": {"type": "integer", "minimum": 0},
    },
}

# The launch-affecting differences beyond metadata options a policy accepts for a
# change (c7n_imds.model.changes): none by default.
ALLOW_LAUNCH_CHANGES_SCHEMA = {
    "type": "array",
    "uniqueItems": True,
    "items": {"enum": sorted(LAUNCH_CHANGE_KINDS)},
}
# The usage gate every action applies to everything that will launch from what it
# changes: MetadataNoToken summed over `days`; `missing` as the imdsv1-usage filter's
# (zero: no data points count as no calls; exclude: no evidence holds the change back);
# `enabled: false` turns it off. By default: the policy's own imdsv1-usage filter's
# settings, else 14 days, zero.
IMDSV1_GATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "days": {"type": "number", "minimum": 1, "maximum": 455},
        "missing": {"enum": ["zero", "exclude"]},
    },
}

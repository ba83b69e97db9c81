"""The options the remediation actions share: their schemas (which reject typos at
validate time) and what each costs in permissions."""

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from c7n_imds.model.changes import LAUNCH_CHANGE_KINDS
from c7n_imds.model.rates import DEFAULT_BUDGET
from c7n_imds.names import DEFAULT, PRESERVE, TOKENS_REQUIRED

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


@dataclass(frozen=True)
class RemediationOptions:
    """The options the remediation actions share, parsed once per action with their
    defaults (the schemas above have already rejected what is not allowed)."""

    http_tokens: str = TOKENS_REQUIRED
    hop_limit: Any = PRESERVE
    http_endpoint: str = PRESERVE
    metadata_tags: str = PRESERVE
    set_default: bool = True
    verify: bool = True
    running_instances: str = "keep"
    refresh_preferences: dict = field(default_factory=dict)
    iac_managed: str = "skip"
    rate_budget: float = DEFAULT_BUDGET
    allow_launch_changes: tuple = ()
    imdsv1_gate: dict = field(default_factory=dict)
    version: str = DEFAULT

    @classmethod
    def parse(cls, data: dict, defaults: dict | None = None) -> "RemediationOptions":
        """The options in ``data``; ``defaults`` ({option name: value}) overrides the
        class's own defaults for one action."""
        values = {k.replace("-", "_"): v for k, v in (defaults or {}).items()}
        for option in fields(cls):
            name = option.name.replace("_", "-")
            if data.get(name) is not None:
                values[option.name] = data[name]
        values["allow_launch_changes"] = tuple(values.get("allow_launch_changes", ()))
        return cls(**values)

    @classmethod
    def defaults(cls, overrides: dict | None = None) -> dict:
        """{option name as users write it: its default}."""
        found: dict = dict(overrides or {})
        for option in fields(cls):
            default = option.default_factory() if option.default is MISSING else option.default
            found.setdefault(option.name.replace("_", "-"), default)
        return found

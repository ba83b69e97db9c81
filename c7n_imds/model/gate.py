"""The gate of the change contract: a change goes ahead only when nothing that will
launch from what it changes still calls IMDSv1 or is exempt.

"Everything that will launch from it" is wider than the groups a policy matched: the
other groups of an Elastic Beanstalk environment or an EKS node group, and, for a
launch template whose default moves, every Auto Scaling group, EC2 Fleet, Spot Fleet
and instance launched from the template (instances carry ``aws:ec2launchtemplate:id``).
The edge (c7n_imds.consumers) finds them and their IMDSv1 calls; this module judges.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from c7n_imds.model.exemptions import parse_exemption

GROUP = "auto-scaling-group"
EC2_FLEET = "ec2-fleet"
SPOT_FLEET = "spot-fleet"
INSTANCE = "instance"


# how every gate refusal ends (model/outcomes reads it as "held back")
WAITS = (
    "the change waits until nothing that launches from it calls IMDSv1 (or exempt it on purpose)"
)


@dataclass(frozen=True)
class Consumer:
    """Something that launches instances from what a change touches."""

    kind: str
    name: str
    instance_ids: tuple[str, ...] = ()
    exemption: str | None = None  # its c7n-imds:exempt tag, if any

    @property
    def label(self) -> str:
        return "%s %s" % (self.kind, self.name)


@dataclass(frozen=True)
class GateSettings:
    """MetadataNoToken summed over `days`; `missing` as the imdsv1-usage filter's:
    ``zero`` counts an instance without data points as making no calls, ``exclude``
    holds the change back for want of evidence."""

    days: float = 14
    missing: str = "zero"


@dataclass
class GateVerdict:
    consumers: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # one reason per consumer

    @property
    def passed(self) -> bool:
        return not self.blocked

    def reason(self, what: str) -> str:
        return "%s was not changed: %s - %s" % (what, "; ".join(self.blocked), WAITS)


def judge(
    consumers: list[Consumer],
    calls: dict[str, float | None],
    settings: GateSettings,
    today: datetime.date,
) -> GateVerdict:
    """The verdict over every consumer: exempt ones and ones whose instances made IMDSv1
    calls hold the change back (with ``missing: exclude``, so do instances without
    data)."""
    verdict = GateVerdict(consumers=[c.label for c in consumers])
    for consumer in consumers:
        exemption = parse_exemption(consumer.exemption, today) if consumer.exemption else None
        if exemption and exemption["Exempt"]:
            verdict.blocked.append("%s is exempt (%s)" % (consumer.label, consumer.exemption))
            continue
        counts = {i: calls.get(i) for i in consumer.instance_ids}
        total = sum(c for c in counts.values() if c)
        if total:
            verdict.blocked.append(
                "%s made %s IMDSv1 call(s) in %s days"
                % (consumer.label, _number(total), _number(settings.days))
            )
            continue
        without = sorted(i for i, c in counts.items() if c is None)
        if settings.missing == "exclude" and (without or not counts):
            verdict.blocked.append(
                "%s: no evidence (%s) and missing: exclude"
                % (
                    consumer.label,
                    "no MetadataNoToken data for %s" % ", ".join(without)
                    if without
                    else "no instances",
                )
            )
    return verdict


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

"""Security Hub's controls as the summary counts them: which control judges a group
(AutoScaling.3 and .9 judge launch configurations, EC2.170 launch templates and mixed
instances policies, others any launch type), the order controls are listed in, and the
compliant share of each. Pure, like ``c7n_imds_report.aggregate``, which counts with it."""

import functools

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED

CONTROLS = ("AutoScaling.3", "AutoScaling.9", "EC2.170", "EC2.8")
CONTROL_SCOPE = {"AutoScaling.3": {LC}, "AutoScaling.9": {LC}, "EC2.170": {LT, MIXED}}


def control_for(controls, launch_type):
    for control in controls:
        scope = CONTROL_SCOPE.get(control)
        if launch_type is None or scope is None or launch_type in scope:
            return control
    return controls[0] if controls else "other"


@functools.lru_cache(maxsize=256)
def control_sort_key(control):
    prefix, _, number = control.partition(".")
    return (prefix == "other", prefix, int(number) if number.isdigit() else 0)


def control_shares(rows, controls, fixes=None):
    """Per control: groups in scope, non-compliant (those with an owner fix proposed or
    rolling out included: they fail the control until a scan sees them fixed), and the
    compliant share."""
    shares = []
    for control in [c for c in CONTROLS if c in controls] + [
        c for c in controls if c not in CONTROLS
    ]:
        mine = [
            r
            for r in rows
            if r["Control"] == control and r["State"] == "scanned" and r["Scanned"] is not None
        ]
        in_scope = sum(r["Scanned"] for r in mine) if mine else None
        non_compliant = sum(r["NonCompliant"] or 0 for r in mine) if mine else None
        pending = [(fixes or {}).get((r["Account"], r["Region"], control), (0, 0)) for r in mine]
        shares.append(
            dict(
                Control=control,
                InScope=in_scope,
                NonCompliant=non_compliant,
                CompliantShare=round(max(0.0, 1 - non_compliant / in_scope), 4)
                if in_scope
                else None,
                FixProposed=sum(p[0] for p in pending) if mine else None,
                FixedAtOwner=sum(p[1] for p in pending) if mine else None,
            )
        )
    return shares

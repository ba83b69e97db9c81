"""What a pre-flight ``RunInstances`` DryRun must send so that EC2 checks the launch a
group would really make from a template version.

Launch template parameters are not validated when a template or version is created; a
bad one surfaces at the group's next scale-out. A DryRun is the cheap check, but only
if it launches as the group would: every parameter given to RunInstances replaces the
template's, so network interfaces are passed whole (with the group's subnet), and a
mixed instances policy launches each template with instance types (and images) of
its own overrides.
"""

from __future__ import annotations

from typing import Any

CHOICE_FIELDS = ("InstanceType", "InstanceRequirements", "ImageId")


def subnet_ids(asg: dict) -> list[str]:
    return [s.strip() for s in (asg.get("VPCZoneIdentifier") or "").split(",") if s.strip()]


def _same_template(spec: dict, other: dict) -> bool:
    def key(s: dict) -> tuple:
        return (
            s.get("LaunchTemplateId") or s.get("LaunchTemplateName"),
            str(s.get("Version") or "$Default"),
        )

    return key(spec) == key(other)


def launch_choice(asg: dict, spec: dict | None) -> dict[str, Any]:
    """The override of a group's mixed instances policy that launches from ``spec``:
    its ``InstanceType``, ``InstanceRequirements`` and ``ImageId`` where set.

    A per-override template launches with its own override's type; the base template
    with a type from the overrides that carry no template of their own. ``{}`` for
    other groups, or when no override uses the template (its own settings apply).
    """
    policy = (asg.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    overrides = policy.get("Overrides") or []
    if spec is None or not overrides:
        return {}
    own = [
        o
        for o in overrides
        if o.get("LaunchTemplateSpecification")
        and _same_template(o["LaunchTemplateSpecification"], spec)
    ]
    if not own and _same_template(policy.get("LaunchTemplateSpecification") or {}, spec):
        own = [o for o in overrides if not o.get("LaunchTemplateSpecification")]
    if not own:
        return {}
    return {k: own[0][k] for k in CHOICE_FIELDS if own[0].get(k)}


def instance_requirements(choice: dict, launch_template_data: dict) -> dict | None:
    """Attribute-based selection that needs a concrete type for RunInstances (which
    cannot take InstanceRequirements), or None when a type is known."""
    if choice.get("InstanceType"):
        return None
    if choice.get("InstanceRequirements"):
        return choice["InstanceRequirements"]
    if launch_template_data.get("InstanceType"):
        return None
    return launch_template_data.get("InstanceRequirements")


def preflight_parameters(
    asg: dict,
    template_id: str,
    version: int | str,
    launch_template_data: dict,
    choice: dict,
    instance_type: str | None = None,
) -> dict:
    """RunInstances(DryRun) parameters that launch what the group would launch from
    this template version. ``instance_type`` is the concrete type found for
    attribute-based selection, when there is one."""
    params: dict[str, Any] = {
        "DryRun": True,
        "MinCount": 1,
        "MaxCount": 1,
        "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": str(version)},
    }
    subnets = subnet_ids(asg)
    interfaces = launch_template_data.get("NetworkInterfaces") or []
    if subnets and interfaces:
        # Interfaces in the request replace the template's: send every one of them
        # (EFA, network cards, IPv6, secondary interfaces), each in the group's subnet
        # where it names none; the primary one always in the group's, as Auto Scaling
        # launches it.
        params["NetworkInterfaces"] = []
        for interface in interfaces:
            interface = dict(interface)
            primary = interface.get("DeviceIndex") in (0, None) and interface.get(
                "NetworkCardIndex"
            ) in (0, None)
            if not interface.get("NetworkInterfaceId") and (
                primary or not interface.get("SubnetId")
            ):
                interface["SubnetId"] = subnets[0]
            params["NetworkInterfaces"].append(interface)
    elif subnets:
        params["SubnetId"] = subnets[0]
    chosen_type = choice.get("InstanceType") or instance_type
    if chosen_type:
        params["InstanceType"] = chosen_type
    if choice.get("ImageId"):
        params["ImageId"] = choice["ImageId"]
    return params

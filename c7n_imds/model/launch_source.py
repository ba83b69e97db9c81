"""What launches a group's instances, and the `imds` filter's view of it, from data
already loaded: launch references, the views of configurations and template versions,
the weakest template of a mixed instances policy, what instances really get. Pure."""

from __future__ import annotations

from c7n_imds.names import (
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    MIXED_INSTANCES_POLICY,
    TOKENS_OPTIONAL,
    TOKENS_REQUIRED,
)


def metadata_view(metadata_options: dict | None) -> dict:
    """The `imds` filter keys for a set of metadata options (from an LC or LT version).

    Only HttpTokens has a fixed meaning when unset - ``optional``, i.e. IMDSv1 allowed
    unless the account default or the AMI says otherwise. Other unset keys stay None.
    """
    options = metadata_options or {}
    return {
        "HttpTokens": options.get("HttpTokens") or TOKENS_OPTIONAL,
        "HttpEndpoint": options.get("HttpEndpoint"),
        "HttpPutResponseHopLimit": options.get("HttpPutResponseHopLimit"),
        "InstanceMetadataTags": options.get("InstanceMetadataTags"),
    }


def effective_http_tokens(
    launch_http_tokens: str | None, account_defaults: dict | None, image_imds_support: str | None
) -> str:
    """What instances really get (docs/aws-facts.md): a value in the launch data wins,
    then the account default for the region, then the AMI (``ImdsSupport: v2.0`` means
    tokens required); otherwise ``optional``."""
    if launch_http_tokens in (TOKENS_REQUIRED, TOKENS_OPTIONAL):
        return launch_http_tokens
    account = (account_defaults or {}).get("HttpTokens")
    if account in (TOKENS_REQUIRED, TOKENS_OPTIONAL):
        return account
    if image_imds_support == "v2.0":
        return TOKENS_REQUIRED
    return TOKENS_OPTIONAL


def weakness(view: dict) -> int:
    """Sort key: lower is weaker. IMDS with tokens optional is the weakest; a disabled
    endpoint cannot be reached with or without a token."""
    if view.get("HttpEndpoint") == "disabled":
        return 2
    return 1 if view.get("HttpTokens") == TOKENS_REQUIRED else 0


def template_spec(spec: dict) -> dict:
    """A LaunchTemplateSpecification with the version AWS uses when none is given."""
    return {
        "LaunchTemplateId": spec.get("LaunchTemplateId"),
        "LaunchTemplateName": spec.get("LaunchTemplateName"),
        "Version": str(spec.get("Version") or "$Default"),
    }


def launch_references(asg: dict) -> tuple[str | None, list]:
    """(launch type, [references]) for a group, without any API call.

    A reference is an LC name (str) or a template spec (dict). AWS returns exactly one
    of MixedInstancesPolicy, LaunchTemplate and LaunchConfigurationName; moto keeps the
    old LaunchConfigurationName beside a template after a switch, so templates win.
    """
    if asg.get("MixedInstancesPolicy"):
        lt = asg["MixedInstancesPolicy"].get("LaunchTemplate") or {}
        specs = [template_spec(lt.get("LaunchTemplateSpecification") or {})]
        for override in lt.get("Overrides") or ():
            if override.get("LaunchTemplateSpecification"):
                specs.append(template_spec(override["LaunchTemplateSpecification"]))
        return MIXED_INSTANCES_POLICY, specs
    if asg.get("LaunchTemplate"):
        return LAUNCH_TEMPLATE, [template_spec(asg["LaunchTemplate"])]
    if asg.get("LaunchConfigurationName"):
        return LAUNCH_CONFIGURATION, [asg["LaunchConfigurationName"]]
    return None, []


def mixed_overrides(asg: dict) -> list[dict]:
    """The overrides of a group's mixed instances policy ([] for other groups)."""
    policy = asg.get("MixedInstancesPolicy") or {}
    return list((policy.get("LaunchTemplate") or {}).get("Overrides") or ())


def launch_configuration_view(config: dict) -> dict:
    """The `imds` keys of a launch configuration (a group's, or the LC itself)."""
    return dict(
        metadata_view(config.get("MetadataOptions")),
        LaunchType=LAUNCH_CONFIGURATION,
        LaunchName=config["LaunchConfigurationName"],
        LaunchTemplateId=None,
        LaunchTemplateVersion=None,
        ImageId=config.get("ImageId"),
        RemediationPending=False,
        LaunchSourceMissing=False,
    )


def missing_view(launch_type: str | None, name: str | None, reason: str) -> dict:
    return {
        "LaunchType": launch_type,
        "LaunchName": name,
        "LaunchTemplateId": None,
        "LaunchTemplateVersion": None,
        "HttpTokens": None,
        "HttpEndpoint": None,
        "HttpPutResponseHopLimit": None,
        "InstanceMetadataTags": None,
        "RemediationPending": False,
        "LaunchSourceMissing": True,
        "LaunchSourceError": reason,
    }


def template_group_specs(asg):
    """The template specs a launch-template or mixed-instances group launches from."""
    launch_type, refs = launch_references(asg)
    return refs if launch_type in (LAUNCH_TEMPLATE, MIXED_INSTANCES_POLICY) else []

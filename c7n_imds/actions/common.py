"""What every remediation action shares: fresh group state, option schemas, the
pre-flight check, tagging, running instances and the end-of-run report."""
import base64
import binascii
import datetime
import json
import logging

from botocore.exceptions import BotoCoreError, ClientError
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError
from c7n.utils import chunks, local_session

from c7n_imds import instances
from c7n_imds.launch import describe_error, retry
from c7n_imds.network import subnet_ids
from c7n_imds.translate import PRESERVE, PREVIOUS_LAUNCH_TAG

log = logging.getLogger("custodian.c7n_imds.actions")

HOP_LIMIT_SCHEMA = {"oneOf": [
    {"enum": [PRESERVE, "auto"]}, {"type": "integer", "minimum": 1, "maximum": 64}]}
IAC_MANAGED_SCHEMA = {"enum": ["skip", "remediate"]}
CLOUDFORMATION_TAG = "aws:cloudformation:stack-name"
BEANSTALK_TAG = "elasticbeanstalk:environment-name"
EKS_NODEGROUP_TAG = "eks:nodegroup-name"
CONTAINER_TAG_PREFIXES = (
    "kubernetes.io/cluster/", "k8s.io/cluster-autoscaler/", "eks:cluster-name",
    "eks:nodegroup-name", "alpha.eksctl.io/", "AmazonECSManaged", "aws:ecs:")
CONTAINER_USER_DATA_MARKERS = (
    b"/etc/eks/bootstrap.sh", b"node.eks.aws", b"ECS_CLUSTER=", b"/etc/ecs/ecs.config")
HTTP_ENDPOINT_SCHEMA = {"enum": [PRESERVE, "enabled", "disabled"]}
RUNNING_INSTANCES_SCHEMA = {"enum": ["keep", "modify", "refresh"]}
REFRESH_PREFERENCES_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "MinHealthyPercentage": {"type": "integer", "minimum": 0, "maximum": 100},
        "MaxHealthyPercentage": {"type": "integer", "minimum": 100, "maximum": 200},
        "InstanceWarmup": {"type": "integer", "minimum": 0},
        "SkipMatching": {"type": "boolean"},
        "ScaleInProtectedInstances": {"enum": ["Refresh", "Ignore", "Wait"]},
        "StandbyInstances": {"enum": ["Terminate", "Ignore", "Wait"]},
        "BakeTime": {"type": "integer", "minimum": 0}}}
GROUP_NAMES_PER_CALL = 50
DRY_RUN_OK = "DryRunOperation"
THROTTLING_CODES = ("Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "RequestThrottled")
TAGS_PER_CALL = 25
# An AWS error answer, or no answer at all (connection reset, timeout): either way one
# group fails, named with the reason, and the others go on.
AWS_ERRORS = (ClientError, BotoCoreError)


class RemediationError(PolicyExecutionError):
    """Some groups could not be remediated; the others were."""

    def __init__(self, action, failures):
        self.failures = dict(failures)
        super().__init__("%s failed for %d group(s); the others were processed:\n%s" % (
            action, len(failures), "\n".join(
                " - %s: %s" % (group, reason) for group, reason in sorted(failures.items()))))


def current_groups(autoscaling, asgs):
    """The groups as they are now. Custodian may hand an action a cached listing up to
    --cache-period minutes old; a change must start from the group's current launch
    settings. Groups deleted since are dropped."""
    names = [a["AutoScalingGroupName"] for a in asgs]
    current = {}
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    for batch in chunks(names, GROUP_NAMES_PER_CALL):
        pages = retry(lambda: list(paginator.paginate(
            AutoScalingGroupNames=batch, PaginationConfig={"PageSize": 100})))
        current.update({a["AutoScalingGroupName"]: a for page in pages
                        for a in page["AutoScalingGroups"]})
    for name in names:
        if name not in current:
            log.info("asg %s: no longer exists; skipped", name)
    return [current[n] for n in names if n in current]


def tag_group(autoscaling, group, key, value):
    retry(autoscaling.create_or_update_tags, Tags=[{
        "ResourceId": group, "ResourceType": "auto-scaling-group",
        "Key": key, "Value": value, "PropagateAtLaunch": False}])


def runs_containers(asg, user_data=None):
    """Whether a group evidently runs containers, which need a hop limit of 2 or more
    to reach IMDSv2 from inside a container: EKS/ECS/Kubernetes tags on the group, or
    an EKS/ECS bootstrap in its user data (read here, never shown)."""
    if any(t["Key"].startswith(CONTAINER_TAG_PREFIXES) for t in asg.get("Tags") or ()):
        return True
    if user_data:
        try:
            raw = base64.b64decode(user_data)
        except (binascii.Error, ValueError):
            return False
        return any(marker in raw for marker in CONTAINER_USER_DATA_MARKERS)
    return False


def resolve_hop_limit(option, existing_metadata_options, containers):
    """`hop-limit: auto`: at least 2 where containers run, else keep what is there."""
    if option != "auto":
        return option
    if not containers:
        return PRESERVE
    current = (existing_metadata_options or {}).get("HttpPutResponseHopLimit") or 1
    return max(int(current), 2)


def iac_owner(asg):
    """(tag, owner name) of the stack or environment that manages a group, or None."""
    tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
    for key in (CLOUDFORMATION_TAG, BEANSTALK_TAG, EKS_NODEGROUP_TAG):
        if tags.get(key):
            return key, tags[key]
    return None


def iac_guidance(asg):
    key, owner = iac_owner(asg)
    if key == CLOUDFORMATION_TAG:
        return ("managed by CloudFormation stack %s: a change made behind the stack "
                "drifts or is reverted. Set MetadataOptions HttpTokens: required in the "
                "stack's launch template (or replace its AWS::AutoScaling::"
                "LaunchConfiguration with an AWS::EC2::LaunchTemplate) and update the "
                "stack; or set iac-managed: remediate" % owner)
    if key == EKS_NODEGROUP_TAG:
        return ("managed by EKS managed node group %s: EKS owns its launch template and "
                "reverts changes made behind it. Give the node group a launch template "
                "version with HttpTokens required (and hop limit 2 for pods) and update "
                "the node group to it; or set iac-managed: remediate" % owner)
    return ("managed by Elastic Beanstalk environment %s: set the option "
            "aws:autoscaling:launchconfiguration DisableIMDSv1=true in the environment's "
            "configuration (Beanstalk then uses a launch template); or set "
            "iac-managed: remediate" % owner)


def preflight_parameters(asg, template_id, version, launch_template_data):
    """RunInstances(DryRun) parameters that launch what the group would launch."""
    params = {"DryRun": True, "MinCount": 1, "MaxCount": 1,
              "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": str(version)}}
    subnets = subnet_ids(asg)
    interfaces = launch_template_data.get("NetworkInterfaces") or []
    if subnets and interfaces:
        # A request that names interfaces replaces the template's: repeat the primary
        # one with the subnet the group would use.
        primary = {k: v for k, v in interfaces[0].items()
                   if k in ("DeviceIndex", "AssociatePublicIpAddress", "Groups",
                            "DeleteOnTermination", "Description")}
        params["NetworkInterfaces"] = [dict(primary, SubnetId=subnets[0])]
    elif subnets:
        params["SubnetId"] = subnets[0]
    if not launch_template_data.get("InstanceType"):
        overrides = ((asg.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get(
            "Overrides") or []
        types = [o["InstanceType"] for o in overrides if o.get("InstanceType")]
        if types:
            params["InstanceType"] = types[0]
    return params


class Remediation(BaseAction):
    """Base for our remediation actions."""

    skipped = ()  # groups left to their stack, set by eligible()

    def eligible(self, groups):
        """Groups this action leaves alone, reported in self.skipped: exempt ones (tag
        c7n-imds:exempt - also when a policy forgot the imds-exempt filter, as a
        Security Hub custom action may), and those owned by CloudFormation, Elastic
        Beanstalk or an EKS managed node group, with what to change there instead,
        unless `iac-managed: remediate`."""
        from c7n_imds.rollout import EXEMPT_TAG, parse_exemption
        self.skipped = []
        today = datetime.datetime.now(datetime.timezone.utc).date()
        eligible = []
        for asg in groups:
            tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
            exemption = parse_exemption(tags.get(EXEMPT_TAG), today)
            if exemption["Exempt"]:
                self.skipped.append({"AutoScalingGroupName": asg["AutoScalingGroupName"],
                                     "Skipped": "exempt: %s" % tags[EXEMPT_TAG]})
                log.info("asg %s: exempt (%s); not changed", asg["AutoScalingGroupName"],
                         tags[EXEMPT_TAG])
                continue
            if iac_owner(asg) is None or self.data.get("iac-managed", "skip") == "remediate":
                eligible.append(asg)
                continue
            guidance = iac_guidance(asg)
            log.warning("asg %s: not changed: %s", asg["AutoScalingGroupName"], guidance)
            self.skipped.append({"AutoScalingGroupName": asg["AutoScalingGroupName"],
                                 "Skipped": guidance})
        return eligible

    def hop_limit(self, groups, existing_metadata_options, user_data=None):
        return resolve_hop_limit(
            self.data.get("hop-limit", PRESERVE), existing_metadata_options,
            any(runs_containers(asg, user_data) for asg in groups))

    def clients(self):
        session = local_session(self.manager.session_factory)
        return session.client("ec2"), session.client("autoscaling")

    def preflight(self, ec2, asg, template_id, version, launch_template_data,
                  metadata_options=None):
        """Ask EC2 whether it would launch from the template, without launching.
        Launch template parameters are not validated when a template is created; a bad
        one would otherwise surface only at the group's next scale-out. Returns None
        when the launch would succeed, else the reason. Groups that would launch the
        same way (template, subnet, instance type) share one check: RunInstances has the
        smallest of EC2's rate limits."""
        if not self.data.get("verify", True):
            return None
        params = preflight_parameters(asg, template_id, version, launch_template_data)
        if metadata_options:
            # The options a new version would carry, checked before it exists.
            params["MetadataOptions"] = dict(metadata_options)
        key = json.dumps(params, sort_keys=True)
        checked = self.__dict__.setdefault("_preflight_checked", {})
        if key not in checked:
            checked[key] = self._dry_run(ec2, params, template_id, version)
        return checked[key]

    def _dry_run(self, ec2, params, template_id, version):
        try:
            retry(ec2.run_instances, **params)
        except BotoCoreError as e:
            return ("could not verify launch template %s version %s (%s); the group was "
                    "left unchanged - run the policy again" % (
                        template_id, version, describe_error(e)))
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code == DRY_RUN_OK:
                return None
            if code in THROTTLING_CODES:
                return ("could not verify launch template %s version %s (%s); the group "
                        "was left unchanged - run the policy again" % (
                            template_id, version, describe_error(e)))
            return "pre-flight RunInstances (DryRun) refused launch template %s version " \
                   "%s: %s; the group was left unchanged" % (
                       template_id, version, describe_error(e))
        return None

    def record_previous_launch(self, autoscaling, group, value):
        # Recorded before the change, so a crash between the calls still leaves a way back.
        tag_group(autoscaling, group, PREVIOUS_LAUNCH_TAG, value)

    def record_previous_launches(self, autoscaling, values):
        """{group: tag value} in as few CreateOrUpdateTags calls as possible."""
        tags = [{"ResourceId": group, "ResourceType": "auto-scaling-group",
                 "Key": PREVIOUS_LAUNCH_TAG, "Value": value, "PropagateAtLaunch": False}
                for group, value in sorted(values.items())]
        for batch in chunks(tags, TAGS_PER_CALL):
            retry(autoscaling.create_or_update_tags, Tags=batch)

    def update_running_instances(self, ec2, autoscaling, switched, results, failures,
                                 uses_template, metadata=None):
        """Apply the `running-instances` option to groups that were switched. Runs only
        after the switch, so instances never get options their group would not give."""
        mode = self.data.get("running-instances", "keep")
        if mode == "keep" or not switched:
            return
        by_name = {r["AutoScalingGroupName"]: r for r in results}
        for asg in switched:
            name = asg["AutoScalingGroupName"]
            try:
                if mode == "modify":
                    # exactly the options the group's new launch source carries
                    options = (metadata or {}).get(name) or {}
                    outcome = instances.modify_in_service(
                        ec2, asg, options.get("HttpTokens", self.data.get(
                            "http-tokens", "required")),
                        options.get("HttpPutResponseHopLimit", PRESERVE),
                        options.get("HttpEndpoint", PRESERVE))
                else:
                    outcome = instances.start_refresh(
                        autoscaling, asg, self.data.get("refresh-preferences") or {},
                        uses_template=uses_template)
            except AWS_ERRORS as e:
                failures[name] = "group switched, but %s of its running instances " \
                    "failed: %s" % (mode, describe_error(e))
                continue
            by_name.setdefault(name, {"AutoScalingGroupName": name})["RunningInstances"] = \
                outcome

    def finish(self, results, failures):
        """Write the per-group outcome file and fail the policy if any group failed."""
        for group, reason in sorted(failures.items()):
            log.error("asg %s: not remediated: %s", group, reason)
            results.append({"AutoScalingGroupName": group, "Error": reason})
        self.manager.ctx.output.write_file(
            "imds-changes.json", json.dumps(results, indent=2, default=str))
        if failures:
            raise RemediationError(self.type, failures)
        return results

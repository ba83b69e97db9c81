"""Where an Auto Scaling group's instances get their launch settings from.

A group launches from a launch configuration (LC), a launch template (LT) version, or a
mixed instances policy (a base template plus optional per-override templates). This
module resolves all of them for a batch of groups with as few API calls as AWS allows:

- launch configurations: DescribeLaunchConfigurations, 50 names per call;
- ``$Default`` / ``$Latest`` versions of *every* template: one paginated
  DescribeLaunchTemplateVersions without a template id;
- pinned version numbers: one call per template, all its numbers at once, skipping
  numbers the previous call already returned (and, when many templates are pinned,
  loading every $Default/$Latest first, since pins are usually one of those).

AWS I/O lives in :class:`LaunchSources`; :func:`launch_references` and the annotation
builders are pure.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from c7n.utils import chunks

from c7n_imds.aws import describe_error, retry, tags_of
from c7n_imds.model.launch_source import (
    effective_http_tokens,
    launch_configuration_view,
    launch_references,
    metadata_view,
    missing_view,
    mixed_overrides,
    template_spec,
    weakness,
)
from c7n_imds.model.preflight import subnet_ids
from c7n_imds.model.provenance import parse_derived_version_description
from c7n_imds.names import (
    ALIASES,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    MIXED_INSTANCES_POLICY,
    PREVIOUS_LAUNCH_TAG,
    TEMPLATE_NOT_FOUND,
    TOKENS_OPTIONAL,
    VERSION_NOT_FOUND,
)

log = logging.getLogger("custodian.c7n_imds.sources")


LC_NAMES_PER_CALL = 50  # DescribeLaunchConfigurations accepts at most 50 names


LT_MAX_RESULTS = 200  # DescribeLaunchTemplateVersions allows 200 per page


# Past this many templates with pinned numbers, load every template's $Default and
# $Latest first (one paginated call) and fetch per template only what is still missing.
BULK_THRESHOLD = 2


class LaunchSources:
    """Launch configurations and template versions for a batch of groups."""

    permissions = ("autoscaling:DescribeLaunchConfigurations", "ec2:DescribeLaunchTemplateVersions")

    def __init__(self, ec2, autoscaling, configs=None):
        self.ec2 = ec2
        self.autoscaling = autoscaling
        # exact LC name -> describe item; LCs are immutable, so a policy's filter and
        # action can share what was read (see for_manager).
        self.configs = {} if configs is None else configs
        self.versions = {}  # (template id, "3" | "$Default" | "$Latest") -> version item
        self.template_ids = {}  # template name -> id
        self.missing_templates = set()  # ids or names that do not exist
        self.loaded_aliases = set()
        self.account_defaults = None  # GetInstanceMetadataDefaults AccountLevel
        self.image_imds_support = None  # image id -> ImdsSupport ("v2.0" or None)
        self.override_images = set()  # ImageIds that mixed instances overrides carry

    @classmethod
    def from_session(cls, session):
        return cls(session.client("ec2"), session.client("autoscaling"))

    @classmethod
    def for_manager(cls, manager, ec2, autoscaling):
        """Sources sharing the launch configurations already read during this policy
        run (held in memory only, never written out)."""
        return cls(
            ec2,
            autoscaling,
            configs=manager.__dict__.setdefault("_c7n_imds_launch_configurations", {}),
        )

    # -- loading (AWS I/O) ------------------------------------------------------------

    def load(self, asgs):
        lc_names, specs = set(), []
        for asg in asgs:
            _, refs = launch_references(asg)
            for ref in refs:
                if isinstance(ref, str):
                    # Recorded answers carry trailing white space in LC names, on the
                    # group's side or the LC's; ask for both spellings.
                    lc_names.update({ref, ref.strip()})
                else:
                    specs.append(ref)
            self.override_images.update(
                o["ImageId"] for o in mixed_overrides(asg) if o.get("ImageId")
            )
        self.load_launch_configurations(lc_names - set(self.configs))
        self.load_template_versions(specs)
        return self

    def load_launch_configurations(self, names):
        paginator = self.autoscaling.get_paginator("describe_launch_configurations")
        for batch in chunks(sorted(n for n in names if n), LC_NAMES_PER_CALL):
            pages = retry(
                lambda: list(
                    paginator.paginate(
                        LaunchConfigurationNames=batch, PaginationConfig={"PageSize": 100}
                    )
                )
            )
            for page in pages:
                for config in page["LaunchConfigurations"]:
                    self.configs[config["LaunchConfigurationName"]] = config

    def load_template_versions(self, specs):
        aliases = sorted({s["Version"] for s in specs if s["Version"] in ALIASES})
        if "$Latest" in aliases:
            # A template's EC2.170 state is its default version, whatever a group
            # follows: $Latest followers need it too (see remediation_pending).
            aliases = list(ALIASES)
        if aliases and not self.loaded_aliases.issuperset(aliases):
            self._load_alias_versions(aliases)
        numbered = self._numbered_to_fetch(specs)
        if len(numbered) > BULK_THRESHOLD and not self.loaded_aliases.issuperset(ALIASES):
            # Pinned numbers are usually a template's default or latest (CloudFormation
            # and Terraform pin LatestVersionNumber): one paginated call for every
            # template's $Default and $Latest beats a call per template.
            self._load_alias_versions(list(ALIASES))
            numbered = self._numbered_to_fetch(specs)
        for key, numbers in sorted(numbered.items()):
            self._load_numbered_versions(key, sorted(numbers, key=_version_sort_key))

    def _numbered_to_fetch(self, specs):
        """{template key: {version numbers}} not loaded yet."""
        numbered = {}
        for spec in specs:
            if spec["Version"] in ALIASES:
                continue
            key = self._template_key(spec)
            if key is None or key in self.missing_templates:
                continue
            if self.template_version(spec) is None:
                numbered.setdefault(key, set()).add(spec["Version"])
        return numbered

    def _load_alias_versions(self, aliases):
        paginator = self.ec2.get_paginator("describe_launch_template_versions")
        pages = retry(
            lambda: list(
                paginator.paginate(
                    Versions=list(aliases), PaginationConfig={"PageSize": LT_MAX_RESULTS}
                )
            )
        )
        latest = {}
        for page in pages:
            for version in page["LaunchTemplateVersions"]:
                self._remember(version)
                tid = version["LaunchTemplateId"]
                if version.get("DefaultVersion") or aliases == ["$Default"]:
                    self.versions[(tid, "$Default")] = version
                if version["VersionNumber"] > latest.get(tid, {}).get("VersionNumber", 0):
                    latest[tid] = version
        if "$Latest" in aliases:
            for tid, version in latest.items():
                self.versions[(tid, "$Latest")] = version
        self.loaded_aliases.update(aliases)

    def _load_numbered_versions(self, key, numbers):
        ident = {key[0]: key[1]}
        try:
            for batch in chunks(numbers, LT_MAX_RESULTS):
                response = retry(
                    lambda: self.ec2.describe_launch_template_versions(
                        Versions=batch, MaxResults=LT_MAX_RESULTS, **ident
                    )
                )
                for version in response["LaunchTemplateVersions"]:
                    self._remember(version)
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code in TEMPLATE_NOT_FOUND:
                self.missing_templates.add(key)
            elif code in VERSION_NOT_FOUND and len(numbers) > 1:
                # One missing number fails the whole call: find the ones that exist.
                for number in numbers:
                    self._load_numbered_versions(key, [number])
            elif code not in VERSION_NOT_FOUND:
                raise

    def _remember(self, version):
        tid = version["LaunchTemplateId"]
        self.template_ids[version["LaunchTemplateName"]] = tid
        self.versions[(tid, str(version["VersionNumber"]))] = version

    @staticmethod
    def _template_key(spec):
        """("LaunchTemplateId", id) when the spec has an id, else by name."""
        for field in ("LaunchTemplateId", "LaunchTemplateName"):
            if spec.get(field):
                return (field, spec[field])
        return None

    def load_effective(self):
        """What decides metadata options the launch data leaves unset: the account
        default (per region) and the AMI's ImdsSupport. Only needed for the
        EffectiveHttpTokens and ScaleOutBlocked keys."""
        try:
            self.account_defaults = (
                retry(self.ec2.get_instance_metadata_defaults).get("AccountLevel") or {}
            )
        except (ClientError, BotoCoreError) as e:
            # Read-only context for a report: say so and judge without it.
            log.warning(
                "cannot read the account's instance metadata defaults (%s); "
                "EffectiveHttpTokens ignores them",
                describe_error(e),
            )
            self.account_defaults = {}
        image_ids = (
            {c.get("ImageId") for c in self.configs.values()}
            | {(v.get("LaunchTemplateData") or {}).get("ImageId") for v in self.versions.values()}
            | self.override_images
        )
        # Templates may name an SSM parameter instead of an image id; it stays unknown.
        image_ids = sorted(i for i in image_ids if i and i.startswith("ami-"))
        self.image_imds_support = {}
        paginator = self.ec2.get_paginator("describe_images")
        for batch in chunks(image_ids, LT_MAX_RESULTS):
            # A filter, unlike ImageIds, does not fail on an image that no longer exists.
            # Deprecated or disabled AMIs still launch existing groups' instances.
            pages = retry(
                lambda: list(
                    paginator.paginate(
                        Filters=[{"Name": "image-id", "Values": batch}],
                        IncludeDeprecated=True,
                        IncludeDisabled=True,
                    )
                )
            )
            self.image_imds_support.update(
                {i["ImageId"]: i.get("ImdsSupport") for page in pages for i in page["Images"]}
            )
        return self

    def with_effective(self, view, metadata_options, image_id):
        if self.account_defaults is None:
            return view
        tokens = effective_http_tokens(
            (metadata_options or {}).get("HttpTokens"),
            self.account_defaults,
            self.image_imds_support.get(image_id),
        )
        view["EffectiveHttpTokens"] = tokens
        # With IMDSv2 enforced for the account, a launch resolving to optional fails.
        view["ScaleOutBlocked"] = (
            self.account_defaults.get("HttpTokensEnforced") == "enabled" and tokens == "optional"
        )
        return view

    # -- lookups (pure over what was loaded) --------------------------------------------

    def launch_configuration(self, name):
        """The LC a group names, tolerating white space around the name on either side
        (the group's or the configuration's)."""
        if name in self.configs:
            return self.configs[name]
        stripped = name.strip()
        if stripped in self.configs:
            return self.configs[stripped]
        return next((c for n, c in self.configs.items() if n.strip() == stripped), None)

    def template_version(self, spec):
        key = self._template_key(spec)
        if key is None:
            return None
        tid = key[1] if key[0] == "LaunchTemplateId" else self.template_ids.get(key[1])
        return self.versions.get((tid, spec["Version"]))

    def describe(self, asg):
        """The `imds` filter annotation for a group: plain, JSON-safe, no user data."""
        launch_type, refs = launch_references(asg)
        if launch_type is None:
            return missing_view(
                None,
                None,
                "the group names no launch configuration, "
                "launch template or mixed instances policy",
            )
        if launch_type == LAUNCH_CONFIGURATION:
            config = self.launch_configuration(refs[0])
            if config is None:
                return missing_view(
                    launch_type, refs[0], "launch configuration %r no longer exists" % refs[0]
                )
            return self.with_effective(
                launch_configuration_view(config),
                config.get("MetadataOptions"),
                config.get("ImageId"),
            )
        templates = [self.template_view(spec, asg) for spec in refs]
        if launch_type == MIXED_INSTANCES_POLICY:
            templates += self.override_image_views(asg, refs)
        missing = [t for t in templates if t["LaunchSourceMissing"]]
        # The weakest template decides - by what instances really get when that is
        # known; a missing one cannot be judged, so it wins.
        decider = (
            missing[0]
            if missing
            else min(
                templates,
                key=lambda t: (
                    weakness(dict(t, HttpTokens=t.get("EffectiveHttpTokens", t["HttpTokens"]))),
                    weakness(t),
                ),
            )
        )
        view = dict(
            decider,
            LaunchType=launch_type,
            RemediationPending=any(t.get("RemediationPending") for t in templates),
        )
        if launch_type == MIXED_INSTANCES_POLICY:
            view["Templates"] = templates
        return view

    def override_image_views(self, asg, refs):
        """Views of the templates that overrides launch with an AMI of their own: the
        override's image decides what the account default and ImdsSupport give."""
        views = []
        for override in mixed_overrides(asg):
            if not override.get("ImageId"):
                continue
            spec = (
                template_spec(override["LaunchTemplateSpecification"])
                if override.get("LaunchTemplateSpecification")
                else refs[0]
            )
            version = self.template_version(spec)
            if version is None:
                continue  # already reported missing by the spec's own view
            view = self.template_view(spec, asg)
            options = (version.get("LaunchTemplateData") or {}).get("MetadataOptions")
            view["ImageId"] = override["ImageId"]
            views.append(self.with_effective(view, options, override["ImageId"]))
        return views

    def remediation_pending(self, spec, version, asg):
        """Whether an earlier run stopped half-way for a group following ``$Latest``:
        its latest is a version c7n-imds derived, but the group was never tagged with
        where it came from (stopped before verification finished), or the version was
        derived from the template's default and the default still allows IMDSv1
        (stopped before the default moved; EC2.170 judges the default)."""
        if spec["Version"] != "$Latest" or asg is None:
            return False
        derived = parse_derived_version_description(version.get("VersionDescription"))
        if derived is None:
            return False
        recorded = tags_of(asg).get(PREVIOUS_LAUNCH_TAG) or ""
        if version["LaunchTemplateId"] not in recorded:
            return True
        default = self.versions.get((version["LaunchTemplateId"], "$Default"))
        return (
            bool(default)
            and default["VersionNumber"] == derived[0]
            and metadata_view((default.get("LaunchTemplateData") or {}).get("MetadataOptions"))[
                "HttpTokens"
            ]
            == TOKENS_OPTIONAL
        )

    def template_view(self, spec, asg=None):
        version = self.template_version(spec)
        name = spec.get("LaunchTemplateName") or spec.get("LaunchTemplateId")
        if version is None:
            view = missing_view(
                LAUNCH_TEMPLATE,
                name,
                "launch template %s version %s no longer exists" % (name, spec["Version"]),
            )
            view.update(
                LaunchTemplateId=spec.get("LaunchTemplateId"),
                LaunchTemplateVersionSpecified=spec["Version"],
            )
            return view
        data = version.get("LaunchTemplateData") or {}
        return self.with_effective(
            dict(
                metadata_view(data.get("MetadataOptions")),
                LaunchName=version["LaunchTemplateName"],
                LaunchTemplateId=version["LaunchTemplateId"],
                LaunchTemplateVersion=version["VersionNumber"],
                LaunchTemplateVersionSpecified=spec["Version"],
                ImageId=data.get("ImageId"),
                RemediationPending=self.remediation_pending(spec, version, asg),
                LaunchSourceMissing=False,
            ),
            data.get("MetadataOptions"),
            data.get("ImageId"),
        )


def _version_sort_key(version):
    return int(version) if version.isdigit() else 0


# EC2 describes take at most 200 filter values per call, all filters together.
FILTER_VALUES_PER_CALL = 200


def group_vpcs(ec2, asgs):
    """{group name: VPC id}. A group without subnets launches into the default VPC."""
    subnets = sorted({s for asg in asgs for s in subnet_ids(asg)})
    subnet_vpc = {}
    for batch in chunks(subnets, FILTER_VALUES_PER_CALL):
        pages = retry(
            lambda: list(
                ec2.get_paginator("describe_subnets").paginate(
                    Filters=[{"Name": "subnet-id", "Values": batch}]
                )
            )
        )
        for page in pages:
            subnet_vpc.update({s["SubnetId"]: s["VpcId"] for s in page["Subnets"]})
    default_vpc = None
    if any(not subnet_ids(asg) for asg in asgs):
        vpcs = retry(ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}])
        default_vpc = vpcs["Vpcs"][0]["VpcId"] if vpcs["Vpcs"] else None
    result = {}
    for asg in asgs:
        ids = subnet_ids(asg)
        result[asg["AutoScalingGroupName"]] = subnet_vpc.get(ids[0]) if ids else default_vpc
    return result


def security_group_ids_by_name(ec2, vpc_names):
    """{(VPC id, group name): group id} for the given {VPC id: {names}}."""
    resolved = {}
    for vpc_id, names in sorted(vpc_names.items()):
        # The vpc-id value counts towards the 200.
        for batch in chunks(sorted(names), FILTER_VALUES_PER_CALL - 1):
            pages = retry(
                lambda: list(
                    ec2.get_paginator("describe_security_groups").paginate(
                        Filters=[
                            {"Name": "vpc-id", "Values": [vpc_id]},
                            {"Name": "group-name", "Values": batch},
                        ]
                    )
                )
            )
            for page in pages:
                for group in page["SecurityGroups"]:
                    resolved[(vpc_id, group["GroupName"])] = group["GroupId"]
    return resolved

"""The moto launcher the demo and the tests share, with AWS's documented semantics
restored where the product depends on them and moto 5.2.5 lacks them.

End-to-end tests must judge what AWS would store and launch, not what moto happens to
do. Each patch below is written from AWS's own API documentation (botocore's
documentation strings of the operation, quoted beside it) and listed in
docs/moto-gaps.md:

- ``CreateLaunchTemplateVersion`` with ``SourceVersion`` inherits the source's launch
  parameters, each given top-level parameter replacing the inherited one, and
  "Snapshots applied to the block device mapping are ignored when creating a new
  version unless they are explicitly included" (moto stores only what is given);
- ``ClientToken`` makes ``CreateLaunchTemplate`` / ``CreateLaunchTemplateVersion``
  idempotent (moto ignores it);
- ``DescribeLaunchTemplates`` / ``DescribeLaunchTemplateVersions`` page with
  ``NextToken`` (moto returns at most ``MaxResults`` items and never a token: a scan
  that silently sees the first page is the classic false green);
- version numbers are never reused and stay with their version when another is
  deleted (moto numbers versions by list position);
- ``CreateLaunchTemplate``'s ``TagSpecifications`` tag the template, not its launch
  data (moto copies them into ``LaunchTemplateData``);
- ``DeleteLaunchTemplateVersions`` and ``GetInstanceTypesFromInstanceRequirements``
  exist (moto lacks both);
- a ``RunInstances`` DryRun with a launch template checks what EC2 checks before
  answering ``DryRunOperation``: a version that does not exist, a template with
  ``InstanceRequirements`` (attribute-based selection is "only supported when using
  Auto Scaling groups, EC2 Fleet, and Spot Fleet") unless the request names an
  instance type, and an instance type whose architecture the image does not have
  (moto answers every DryRun before any validation);
- a template's and a version's ``CreatedBy`` is the ARN of the caller that made it, as
  GetCallerIdentity names it (moto answers the account root for every one), so that
  provenance - who made a template - can be judged as on AWS;
- Security Hub custom actions exist (c7n_imds_testing/security_hub.py);
- CloudFormation change sets belong to their stack (c7n_imds_testing/change_sets.py).

Patches apply to moto's classes in this process (the threaded server serves from it)
and are idempotent.
"""

import contextlib
import copy
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from c7n_imds import names
from c7n_imds_testing.change_sets import change_sets
from c7n_imds_testing.security_hub import action_targets

REGION = "us-east-1"
_patched = False


def _inherit(source_data, given):
    """What AWS stores for a version made with SourceVersion (see module docstring)."""
    data = copy.deepcopy(source_data)
    if "BlockDeviceMappings" not in given:
        # The snapshot rule: inherited block devices lose their SnapshotId.
        for mapping in data.get("BlockDeviceMappings") or ():
            (mapping.get("Ebs") or {}).pop("SnapshotId", None)
    data.update(copy.deepcopy(given))
    return data


def aws_semantics():
    """Patch moto's EC2 responses as described in the module docstring."""
    global _patched
    if _patched:
        return
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import (
        EC2ClientError,
        InvalidLaunchTemplateVersionNotFound,
        InvalidParameterValue,
    )
    from moto.ec2.models.instance_types import INSTANCE_TYPES
    from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateVersion
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data

    tokens = {}  # (account, region, operation, client token) -> response dict
    create_template = LaunchTemplates.create_launch_template
    create_version = LaunchTemplates.create_launch_template_version
    run_instances = InstanceResponse.run_instances

    def idempotent(self, operation, make):
        token = self._get_param("ClientToken")
        key = (self.current_account, self.region, operation, token)
        if token and key in tokens:
            return ActionResult(tokens[key])
        result = make()
        if token:
            tokens[key] = result.result if hasattr(result, "result") else result
        return result

    def creator(self):
        """The caller of this request as STS names it: AWS's CreatedBy is the ARN of
        the principal that made the template or version (moto answers the root)."""
        from moto.sts.models import sts_backends

        return sts_backends[self.current_account][self.partition].get_caller_identity(
            self.get_access_key(), self.region
        )[1]

    def template_of(self):
        if self._get_param("LaunchTemplateId"):
            return self.ec2_backend.get_launch_template(self._get_param("LaunchTemplateId"))
        return self.ec2_backend.get_launch_template_by_name(self._get_param("LaunchTemplateName"))

    def create_launch_template(self):
        def make():
            result = create_template(self)
            template = self.ec2_backend.get_launch_template(
                result.result["LaunchTemplate"]["LaunchTemplateId"]
            )
            template.created_by = template.versions[0].created_by = creator(self)
            result.result["LaunchTemplate"]["CreatedBy"] = template.created_by
            data = template.versions[0].data
            # Launch data tags instances, volumes, interfaces; the template's own tags
            # (ResourceType launch-template) are what moto copies in.
            instance_tags = [
                t
                for t in data.get("TagSpecifications") or ()
                if t.get("ResourceType") != "launch-template"
            ]
            if instance_tags:
                data["TagSpecifications"] = instance_tags
            else:
                data.pop("TagSpecifications", None)
            if data.get("UserData") is None:
                data.pop("UserData", None)
            return result

        return idempotent(self, "CreateLaunchTemplate", make)

    def create_launch_template_version(self):
        source_version = self._get_param("SourceVersion")

        def make():
            result = create_version(self)
            template = template_of(self)
            version = template.versions[-1]
            version.created_by = creator(self)
            result.result["LaunchTemplateVersion"]["CreatedBy"] = version.created_by
            given = self._get_param("LaunchTemplateData", {})
            if given.get("UserData"):
                given["UserData"] = parse_user_data(given["UserData"])
            if source_version:
                version.data = _inherit(template.get_version(source_version).data, given)
            else:
                version.data = given
            result.result["LaunchTemplateVersion"]["LaunchTemplateData"] = version.data
            return result

        return idempotent(self, "CreateLaunchTemplateVersion", make)

    def delete_launch_template_versions(self):
        template = template_of(self)
        deleted, refused = [], []
        for number in self._get_param("Versions", []):
            item = {
                "LaunchTemplateId": template.id,
                "LaunchTemplateName": template.name,
                "VersionNumber": int(number),
            }
            versions = [v for v in template.versions if v.number == int(number)]
            if not versions:
                refused.append(
                    dict(
                        item,
                        ResponseError={
                            "Code": "launchTemplateVersionDoesNotExist",
                            "Message": "The specified launch template version does not exist",
                        },
                    )
                )
            elif template.is_default(versions[0]):
                refused.append(
                    dict(
                        item,
                        ResponseError={
                            "Code": "launchTemplateVersionIsDefault",
                            "Message": "The default version of a launch template cannot be deleted",
                        },
                    )
                )
            else:
                template.versions.remove(versions[0])
                deleted.append(item)
        return ActionResult(
            {
                "SuccessfullyDeletedLaunchTemplateVersions": deleted,
                "UnsuccessfullyDeletedLaunchTemplateVersions": refused,
            }
        )

    def get_instance_types_from_instance_requirements(self):
        architectures = set(self._get_param("ArchitectureTypes", []))
        requirements = self._get_param("InstanceRequirements", {})
        vcpus = requirements.get("VCpuCount") or {}
        memory = requirements.get("MemoryMiB") or {}

        def within(value, bounds):
            return bounds.get("Min", 0) <= value <= bounds.get("Max", value)

        matching = sorted(
            name
            for name, info in INSTANCE_TYPES.items()
            if architectures & set(info["ProcessorInfo"]["SupportedArchitectures"])
            and within(info["VCpuInfo"]["DefaultVCpus"], vcpus)
            and within(info["MemoryInfo"]["SizeInMiB"], memory)
        )
        return ActionResult({"InstanceTypes": [{"InstanceType": t} for t in matching]})

    def run_instances_checked(self):
        if self._get_param("DryRun") and self._get_param("LaunchTemplate"):
            spec = self._get_param("LaunchTemplate")
            backend = self.ec2_backend
            template = (
                backend.get_launch_template(spec["LaunchTemplateId"])
                if spec.get("LaunchTemplateId")
                else backend.get_launch_template_by_name(spec["LaunchTemplateName"])
            )
            data = template.get_version(spec.get("Version") or "$Default").data
            instance_type = self._get_param("InstanceType") or data.get("InstanceType")
            if data.get("InstanceRequirements") and not self._get_param("InstanceType"):
                raise InvalidParameterValue(
                    "InstanceRequirements: attribute-based instance type selection is "
                    "not supported by RunInstances; give an InstanceType"
                )
            image_id = self._get_param("ImageId") or data.get("ImageId")
            try:
                images = backend.describe_images(ami_ids=[image_id]) if image_id else []
            except EC2ClientError:
                # Test estates name images moto does not have; whether the image
                # exists is left to tests/faults.py (missing_images).
                images = []
            info = INSTANCE_TYPES.get(instance_type)
            if (
                images
                and info
                and images[0].architecture not in info["ProcessorInfo"]["SupportedArchitectures"]
            ):
                raise InvalidParameterValue(
                    "The architecture '%s' of the specified instance type does not match "
                    "the architecture '%s' of the specified AMI"
                    % (
                        "/".join(info["ProcessorInfo"]["SupportedArchitectures"]),
                        images[0].architecture,
                    )
                )
        return run_instances(self)

    def page(self, items):
        max_results = self._get_int_param("MaxResults", 15)
        start = int(self._get_param("NextToken") or 0)
        chunk = items[start : start + max_results]
        token = str(start + max_results) if start + max_results < len(items) else None
        return chunk, token

    def describe_launch_template_versions(self):
        self.error_on_dryrun()
        name, template_id = (
            self._get_param("LaunchTemplateName"),
            self._get_param("LaunchTemplateId"),
        )
        wanted = self._get_param("Versions", [])
        low, high = self._get_int_param("MinVersion"), self._get_int_param("MaxVersion")
        if name or template_id:
            template = (
                self.ec2_backend.get_launch_template_by_name(name)
                if name
                else self.ec2_backend.get_launch_template(template_id)
            )
            if wanted:
                versions = [(template, template.get_version(v)) for v in wanted]
            else:
                versions = [
                    (template, v)
                    for v in template.versions
                    if (low is None or v.number >= low) and (high is None or v.number <= high)
                ]
        else:
            versions = self.ec2_backend.describe_launch_template_versions(
                template_name=None,
                template_id=None,
                versions=wanted,
                min_version=None,
                max_version=None,
                max_results=10**9,
            )
        chunk, token = page(self, versions)
        result = {
            "LaunchTemplateVersions": [
                {
                    "CreateTime": version.create_time,
                    "CreatedBy": getattr(version, "created_by", None)
                    or "arn:%s:iam::%s:root" % (self.partition, self.current_account),
                    "DefaultVersion": template.is_default(version),
                    "LaunchTemplateData": version.data,
                    "LaunchTemplateId": template.id,
                    "LaunchTemplateName": template.name,
                    "VersionDescription": version.description,
                    "VersionNumber": version.number,
                }
                for template, version in chunk
            ]
        }
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def describe_launch_templates(self):
        self.error_on_dryrun()
        templates = self.ec2_backend.describe_launch_templates(
            template_names=self._get_param("LaunchTemplateNames", []),
            template_ids=self._get_param("LaunchTemplateIds", []),
            filters=self._filters_from_querystring(),
        )
        chunk, token = page(self, list(templates))
        result = {
            "LaunchTemplates": [
                {
                    "CreateTime": template.create_time,
                    "CreatedBy": getattr(template, "created_by", None)
                    or "arn:%s:iam::%s:root" % (self.partition, self.current_account),
                    "DefaultVersionNumber": template.default_version_number,
                    "LatestVersionNumber": template.latest_version_number,
                    "LaunchTemplateId": template.id,
                    "LaunchTemplateName": template.name,
                    "Tags": template.tags,
                }
                for template in chunk
            ]
        }
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    # Version numbers are never reused and stay with their version when others are
    # deleted (moto numbers by list position).
    def create_version_numbered(template, data, description):
        number = (
            max(
                [v.number for v in template.versions]
                + [getattr(template, "highest_version_number", 0)]
            )
            + 1
        )
        template.highest_version_number = number
        version = LaunchTemplateVersion(template, number, data, description)
        template.versions.append(version)
        return version

    def get_version(template, number):
        if str(number).lower() == "$latest":
            return template.versions[-1]
        if str(number).lower() == "$default":
            number = template.default_version_number
        for version in template.versions:
            if str(version.number) == str(number):
                return version
        raise InvalidLaunchTemplateVersionNotFound(template_id=template.id, version=number)

    LaunchTemplate.create_version = create_version_numbered
    LaunchTemplate.get_version = get_version
    LaunchTemplate.default_version = lambda template: get_version(template, "$Default")
    LaunchTemplates.describe_launch_template_versions = describe_launch_template_versions
    LaunchTemplates.describe_launch_templates = describe_launch_templates
    LaunchTemplates.create_launch_template = create_launch_template
    LaunchTemplates.create_launch_template_version = create_launch_template_version
    LaunchTemplates.delete_launch_template_versions = delete_launch_template_versions
    LaunchTemplates.get_instance_types_from_instance_requirements = (
        get_instance_types_from_instance_requirements
    )
    InstanceResponse.run_instances = run_instances_checked
    action_targets()
    change_sets()
    _patched = True


@contextlib.contextmanager
def moto_server(port=0):
    """An in-process moto server on loopback with AWS semantics restored; yields its
    endpoint URL. ``port`` 0 picks a free one."""
    from moto.server import ThreadedMotoServer

    aws_semantics()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    server._server.app = semantics_marker(server._server.app)
    host, port = server.get_host_and_port()
    endpoint = "http://%s:%d" % (host, port)
    # moto's backends are process-wide: start every server from an empty estate.
    urllib.request.urlopen(
        urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    ).close()
    try:
        yield endpoint
    finally:
        server.stop()


# `c7n-imds run` and `plan` ask an endpoint URL for this path: a moto server that answers
# it has AWS's behaviour restored (above); a stock moto server does not, and remediation
# against it is refused with one line (c7n_imds/cli.py).
SEMANTICS_PATH = names.SEMANTICS_PATH


def semantics_marker(app):
    """The moto server's WSGI app, answering SEMANTICS_PATH itself."""

    def marked(environ, start_response):
        if environ.get("PATH_INFO") == SEMANTICS_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"restored": true}']
        return app(environ, start_response)

    return marked


def aws_env(endpoint, region=REGION):
    """Environment for a process that must talk only to the local endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=region,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def run_c7n_imds(args, env, cwd=None):
    """Run the real `c7n-imds` command, as a user would."""
    script = Path(sys.executable).with_name("c7n-imds")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "c7n_imds.cli"]
    return subprocess.run(command + args, env=env, capture_output=True, text=True, cwd=cwd)


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint."""

    def __init__(self, session, endpoint):
        self._session, self._endpoint = session, endpoint

    def client(self, service, **kw):
        return self._session.client(service, endpoint_url=self._endpoint, **kw)

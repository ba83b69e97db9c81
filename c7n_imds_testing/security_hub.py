"""Security Hub custom actions (action targets) for the test moto server: moto 5.2.5
lacks CreateActionTarget, DescribeActionTargets and UpdateActionTarget, which deploying
a ``hub-action`` policy calls (docs/moto-gaps.md). Written from botocore's documentation
of the three operations:

- CreateActionTarget "Creates a custom action target in Security Hub" from ``Name``,
  ``Description`` and ``Id``; its ARN is
  ``arn:aws:securityhub:REGION:ACCOUNT:action/custom/ID`` (the form custodian builds
  and the console shows); a second one with the same ``Id`` is a
  ``ResourceConflictException``;
- DescribeActionTargets "Returns a list of the custom action targets", those named by
  ``ActionTargetArns`` when given;
- UpdateActionTarget "Updates the name and description of a custom action target".
"""

import json
import urllib.parse

URL_PATHS = {
    "{0}/actionTargets$": "dispatch",
    "{0}/actionTargets/get$": "dispatch",
    "{0}/actionTargets/(?P<arn>.+)$": "dispatch",
}


def action_targets():
    """Patch moto's Security Hub responses and URLs in this process (idempotent)."""
    from moto.core.exceptions import JsonRESTError
    from moto.securityhub import urls
    from moto.securityhub.responses import SecurityHubResponse

    if hasattr(SecurityHubResponse, "create_action_target"):
        return

    def targets(self):
        return self.securityhub_backend.__dict__.setdefault("c7n_imds_action_targets", {})

    def create_action_target(self):
        params = json.loads(self.body or "{}")
        arn = "arn:aws:securityhub:%s:%s:action/custom/%s" % (
            self.region,
            self.current_account,
            params["Id"],
        )
        if arn in targets(self):
            raise JsonRESTError(
                "ResourceConflictException", "Action target %s already exists" % arn
            )
        targets(self)[arn] = {
            "ActionTargetArn": arn,
            "Name": params["Name"],
            "Description": params["Description"],
        }
        return json.dumps({"ActionTargetArn": arn})

    def describe_action_targets(self):
        wanted = json.loads(self.body or "{}").get("ActionTargetArns")
        found = [t for arn, t in sorted(targets(self).items()) if wanted is None or arn in wanted]
        return json.dumps({"ActionTargets": found})

    def update_action_target(self):
        arn = urllib.parse.unquote(self.path.split("/actionTargets/", 1)[1])
        if arn not in targets(self):
            raise JsonRESTError("ResourceNotFoundException", "No action target %s" % arn)
        params = json.loads(self.body or "{}")
        targets(self)[arn].update({k: params[k] for k in ("Name", "Description") if k in params})
        return json.dumps({})

    SecurityHubResponse.create_action_target = create_action_target
    SecurityHubResponse.describe_action_targets = describe_action_targets
    SecurityHubResponse.update_action_target = update_action_target
    for path in URL_PATHS:
        urls.url_paths[path] = SecurityHubResponse.dispatch

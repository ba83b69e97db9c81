"""The CloudFormation edge: reading a stack's template, its stack policy and the change
sets c7n-imds proposed to it (`create-stack-change-set`, and `revert-imds-remediation`
withdrawing them)."""

import json

from c7n_imds.aws import retry
from c7n_imds.model import cfn
from c7n_imds.model.refusals import Refused
from c7n_imds.names import CHANGE_SET_PREFIX

# CreateChangeSet's TemplateBody: "a maximum length of 51,200 bytes" (botocore's docs);
# its TemplateURL: "max size: 1 MB", from an S3 bucket.
TEMPLATE_BODY_MAX = 51200
TEMPLATE_URL_MAX = 1024 * 1024
# Where a template too big for TemplateBody is put in the policy's template-bucket.
TEMPLATE_KEY = "c7n-imds/change-sets/%s/%s.json"


class StackRefused(Refused):
    """The stack cannot get a change set now; the message says why and what to do."""


def template_of(body, stack_name):
    """(template, format) of GetTemplate's TemplateBody: botocore hands a JSON template
    over already decoded, a YAML one as text."""
    text = json.dumps(body) if isinstance(body, dict) else body
    try:
        return cfn.parse_template(text)
    except ValueError as e:
        raise StackRefused(
            "the template of stack %s could not be read: %s; not touched" % (stack_name, e)
        )


def template_body(template, fmt, stack_name, bucket=None):
    """(text, through S3) of the new template: in the stack's own format when that fits
    CreateChangeSet's TemplateBody, else compact JSON (CloudFormation takes either
    format for any stack); over the limit, that JSON goes through ``bucket`` (the
    policy's template-bucket) as a TemplateURL."""
    body = cfn.dump_template(template, fmt)
    if _size(body) <= TEMPLATE_BODY_MAX:
        return body, False
    body = json.dumps(template, separators=(",", ":"))
    size = _size(body)
    if size <= TEMPLATE_BODY_MAX:
        return body, False
    if size > TEMPLATE_URL_MAX:
        raise StackRefused(
            "stack %s: the new template is %d bytes, more than the %d CreateChangeSet takes "
            "even from S3; migrate it by hand (docs/mapping.md)"
            % (stack_name, size, TEMPLATE_URL_MAX)
        )
    if not bucket:
        raise StackRefused(
            "stack %s: the new template is %d bytes even as compact JSON, more than the %d "
            "CreateChangeSet takes as TemplateBody; name an S3 bucket for it in the action's "
            "template-bucket option (docs/mapping.md), then run again"
            % (stack_name, size, TEMPLATE_BODY_MAX)
        )
    return body, True


def _size(text):
    return len(text.encode("utf-8"))


def template_url(s3, bucket, key):
    """The https URL CreateChangeSet's TemplateURL takes for an object of ``bucket``
    (virtual-hosted style, in the client's region and partition)."""
    region = s3.meta.region_name or "us-east-1"
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return "https://%s.s3.%s.%s/%s" % (bucket, region, domain, key)


def put_template(s3, bucket, key, body):
    retry(
        s3.put_object,
        Bucket=bucket,
        Key=key,
        Body=body.encode("utf-8"),
        ContentType="application/json",
    )
    return template_url(s3, bucket, key)


def delete_template(s3, bucket, key):
    retry(s3.delete_object, Bucket=bucket, Key=key)


def stack_policy(cloudformation, stack_id):
    """GetStackPolicy's StackPolicyBody: None when the stack has none ("If a stack
    doesn't have a policy, a null value is returned")."""
    return retry(cloudformation.get_stack_policy, StackName=stack_id).get("StackPolicyBody") or None


def own_change_sets(cloudformation, stack_id):
    """The stack's change sets that c7n-imds made (by name)."""
    found, token = [], None
    while True:
        page = retry(
            cloudformation.list_change_sets,
            StackName=stack_id,
            **({"NextToken": token} if token else {}),
        )
        found += [
            s
            for s in page.get("Summaries") or ()
            if s["ChangeSetName"].startswith(CHANGE_SET_PREFIX)
        ]
        token = page.get("NextToken")
        if not token:
            return found


def describe_change_set(cloudformation, stack_id, name):
    """DescribeChangeSet with every page of Changes."""
    pages, token = [], None
    while True:
        page = retry(
            cloudformation.describe_change_set,
            StackName=stack_id,
            ChangeSetName=name,
            **({"NextToken": token} if token else {}),
        )
        pages.append(page)
        token = page.get("NextToken")
        if not token:
            break
    first = dict(pages[0])
    first["Changes"] = [c for p in pages for c in p.get("Changes") or ()]
    return first


def delete_change_set(cloudformation, stack_id, name):
    retry(cloudformation.delete_change_set, StackName=stack_id, ChangeSetName=name)


def withdraw_change_sets(cloudformation, stack_name):
    """For revert: delete the change sets c7n-imds proposed to a stack and its owner did
    not execute. Returns (deleted names, executed names)."""
    stack = retry(cloudformation.describe_stacks, StackName=stack_name)["Stacks"][0]
    deleted, executed = [], []
    for change_set in own_change_sets(cloudformation, stack["StackId"]):
        if change_set.get("ExecutionStatus") in ("EXECUTE_COMPLETE", "EXECUTE_IN_PROGRESS"):
            executed.append(change_set["ChangeSetName"])
            continue
        delete_change_set(cloudformation, stack["StackId"], change_set["ChangeSetName"])
        deleted.append(change_set["ChangeSetName"])
    return deleted, executed


def arn_name(arn):
    """A stack's name from its id (arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID)."""
    parts = str(arn).split("/")
    return parts[1] if len(parts) > 2 else str(arn)

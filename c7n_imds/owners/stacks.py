"""The CloudFormation edge: reading a stack's template, its stack policy and the change
sets c7n-imds proposed to it (`create-stack-change-set`, and `revert-imds-remediation`
withdrawing them)."""
import json

from c7n_imds.aws import retry
from c7n_imds.model import cfn
from c7n_imds.names import CHANGE_SET_PREFIX

# CreateChangeSet's TemplateBody: "a maximum length of 51,200 bytes" (botocore's docs).
TEMPLATE_BODY_MAX = 51200


class StackRefused(Exception):
    """The stack cannot get a change set now; the message says why and what to do."""


def template_of(body, stack_name):
    """(template, format) of GetTemplate's TemplateBody: botocore hands a JSON template
    over already decoded, a YAML one as text."""
    text = json.dumps(body) if isinstance(body, dict) else body
    try:
        return cfn.parse_template(text)
    except ValueError as e:
        raise StackRefused("the template of stack %s could not be read: %s; not touched"
                           % (stack_name, e))


def template_body(template, fmt, stack_name):
    """The new template as TemplateBody text, in the stack's own format; JSON that would
    exceed CreateChangeSet's limit is written compactly."""
    body = cfn.dump_template(template, fmt)
    if len(body.encode("utf-8")) > TEMPLATE_BODY_MAX and fmt == "json":
        body = json.dumps(template, separators=(",", ":"))
    size = len(body.encode("utf-8"))
    if size > TEMPLATE_BODY_MAX:
        raise StackRefused(
            "stack %s: the new template is %d bytes, more than the %d CreateChangeSet takes "
            "as TemplateBody; c7n-imds does not upload templates - migrate it by hand "
            "(docs/mapping.md)" % (stack_name, size, TEMPLATE_BODY_MAX))
    return body


def stack_policy(cloudformation, stack_id):
    """GetStackPolicy's StackPolicyBody: None when the stack has none ("If a stack
    doesn't have a policy, a null value is returned")."""
    return retry(cloudformation.get_stack_policy, StackName=stack_id).get(
        "StackPolicyBody") or None


def own_change_sets(cloudformation, stack_id):
    """The stack's change sets that c7n-imds made (by name)."""
    found, token = [], None
    while True:
        page = retry(cloudformation.list_change_sets, StackName=stack_id,
                     **({"NextToken": token} if token else {}))
        found += [s for s in page.get("Summaries") or ()
                  if s["ChangeSetName"].startswith(CHANGE_SET_PREFIX)]
        token = page.get("NextToken")
        if not token:
            return found


def describe_change_set(cloudformation, stack_id, name):
    """DescribeChangeSet with every page of Changes."""
    pages, token = [], None
    while True:
        page = retry(cloudformation.describe_change_set, StackName=stack_id,
                     ChangeSetName=name, **({"NextToken": token} if token else {}))
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

"""CloudFormation change sets as AWS documents them, for the test moto server. moto 5.2.5
keeps every change set of a region in one list and ignores the stack they belong to
(docs/moto-gaps.md); `create-stack-change-set` reads back what CloudFormation stored, so
its tests need the documented behaviour. Written from botocore's documentation strings:

- GetTemplate: "ChangeSetName - The name or Amazon Resource Name (ARN) of a change set
  for which CloudFormation returns the associated template. If you specify a name, you
  must also specify the StackName." (moto returns the stack's template whatever it is
  asked);
- ListChangeSets "Returns the ID and status of each active change set for a stack"
  (moto returns the change sets of every stack);
- DescribeChangeSet / DeleteChangeSet: "If you specified the name of a change set,
  specify the stack name or ID (ARN) of the change set you want to describe / that's
  associated with it" - a name is looked up within that stack (moto matches the name in
  any stack).
"""


def change_sets():
    """Patch moto's CloudFormation responses in this process (idempotent)."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import ActionResult, EmptyResult

    if getattr(CloudFormationResponse, "_c7n_imds_change_sets", False):
        return

    def of_stack(self, stack_name):
        stack = self.cloudformation_backend.get_stack(stack_name)
        return {
            i: c
            for i, c in self.cloudformation_backend.change_sets.items()
            if c.stack_id == stack.stack_id
        }

    def find(self):
        """The (id, change set) named by ChangeSetName - an ARN, or a name within
        StackName."""
        name, stack_name = self._get_param("ChangeSetName"), self._get_param("StackName")
        backend = self.cloudformation_backend
        if name in backend.change_sets:
            return name, backend.change_sets[name]
        if not stack_name:
            raise ValidationError(name, message="StackName is required with a change set name")
        for change_set_id, change_set in of_stack(self, stack_name).items():
            if change_set.change_set_name == name:
                return change_set_id, change_set
        raise ValidationError(name, message="ChangeSet [%s] does not exist" % name)

    original_get_template = CloudFormationResponse.get_template

    def get_template(self):
        if not self._get_param("ChangeSetName"):
            return original_get_template(self)
        _, change_set = find(self)
        return ActionResult({"TemplateBody": change_set.template})

    def list_change_sets(self):
        return ActionResult(
            {"Summaries": list(of_stack(self, self._get_param("StackName")).values())}
        )

    def describe_change_set(self):
        return ActionResult(find(self)[1])

    def delete_change_set(self):
        change_set_id, _ = find(self)
        del self.cloudformation_backend.change_sets[change_set_id]
        return EmptyResult()

    CloudFormationResponse.get_template = get_template
    CloudFormationResponse.list_change_sets = list_change_sets
    CloudFormationResponse.describe_change_set = describe_change_set
    CloudFormationResponse.delete_change_set = delete_change_set
    CloudFormationResponse._c7n_imds_change_sets = True

"""The public vocabulary: every name users write in YAML or find on their resources, and
the AWS names the code matches on, declared once."""

# What launches a group's instances (the `imds` filter's LaunchType).
LAUNCH_CONFIGURATION = "launch-configuration"
LAUNCH_TEMPLATE = "launch-template"
MIXED_INSTANCES_POLICY = "mixed-instances-policy"
LAUNCH_TYPES = (LAUNCH_CONFIGURATION, LAUNCH_TEMPLATE, MIXED_INSTANCES_POLICY)

# Template version aliases a group can follow.
DEFAULT = "$Default"
LATEST = "$Latest"
ALIASES = (DEFAULT, LATEST)

# Annotations on resource records (custodian's output files).
LAUNCH_ANNOTATION = "c7n-imds:launch"
USAGE_ANNOTATION = "c7n-imds:imdsv1-calls"
EXEMPTION_ANNOTATION = "c7n-imds:exemption"
REPLACEMENT_ANNOTATION = "c7n-imds:replaced-by"
# what an owner action did for a group (its OwnerFix record), for a notify after it
OWNER_FIX_ANNOTATION = "c7n-imds:owner-fix"

# Files c7n-imds writes beside custodian's own in a policy's output folder (the summary
# reads them back).
CHANGES_FILE = "imds-changes.json"  # every remediation action: one outcome per group
PLAN_FILE = "imds-plan.json"  # `c7n-imds plan`: what a run would do
SCAN_FILE = "imds-scan.json"  # the `imds` filter: groups seen, by launch type

# Tags c7n-imds reads or writes.
EXEMPT_TAG = "c7n-imds:exempt"  # on a group: leave it alone ("reason until YYYY-MM-DD")
SOURCE_TAG = "c7n-imds:source"  # on a template: the configuration it was made from
SOURCE_CREATED_TAG = "c7n-imds:source-created"  # ... and that configuration's CreatedTime
PREVIOUS_LAUNCH_TAG = "c7n-imds:previous-launch"  # on a group: where it launched before

# Tags AWS puts on groups that a stack or service owns.
CLOUDFORMATION_TAG = "aws:cloudformation:stack-name"
BEANSTALK_TAG = "elasticbeanstalk:environment-name"
EKS_NODEGROUP_TAG = "eks:nodegroup-name"
# Beanstalk and EKS create their groups through CloudFormation or tag them like a stack,
# so the service tags are read first (c7n_imds.model.ownership.iac_owner).
OWNER_TAGS = (BEANSTALK_TAG, EKS_NODEGROUP_TAG, CLOUDFORMATION_TAG)
CLOUDFORMATION_LOGICAL_ID_TAG = "aws:cloudformation:logical-id"
BEANSTALK_ENVIRONMENT_ID_TAG = "elasticbeanstalk:environment-id"
EKS_CLUSTER_TAG = "eks:cluster-name"

# The Elastic Beanstalk option that makes an environment launch from a launch template
# with IMDSv2 required.
BEANSTALK_NAMESPACE = "aws:autoscaling:launchconfiguration"
BEANSTALK_OPTION = "DisableIMDSv1"

# Change sets c7n-imds creates for a group's stack (never executed by c7n-imds).
CHANGE_SET_PREFIX = "c7n-imds-imdsv2-"

# Filters and actions (their registered names).
IMDS_FILTER = "imds"
USAGE_FILTER = "imdsv1-usage"
EXEMPT_FILTER = "imds-exempt"
CONVERTED_FILTER = "imds-converted"
CONVERT_ACTION = "convert-to-launch-template"
SET_ACCESS_ACTION = "set-metadata-access"
COPY_ACTION = "copy-launch-configuration"
REVERT_ACTION = "revert-imds-remediation"
# ... and those that fix a group at its owner
BEANSTALK_ACTION = "disable-beanstalk-imdsv1"
NODEGROUP_ACTION = "set-nodegroup-metadata-access"
CHANGE_SET_ACTION = "create-stack-change-set"
OWNER_ACTIONS = (BEANSTALK_ACTION, NODEGROUP_ACTION, CHANGE_SET_ACTION)

# HttpTokens values, and the option value that keeps what the source has.
TOKENS_REQUIRED = "required"
TOKENS_OPTIONAL = "optional"
PRESERVE = "preserve"

# AWS error codes matched on.
TEMPLATE_NAME_EXISTS = "InvalidLaunchTemplateName.AlreadyExistsException"
CONFIGURATION_EXISTS = "AlreadyExists"
TEMPLATE_NOT_FOUND = (
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.Malformed",
)
VERSION_NOT_FOUND = ("InvalidLaunchTemplateId.VersionNotFound",)
DRY_RUN_OK = "DryRunOperation"
REFRESH_IN_PROGRESS = "InstanceRefreshInProgress"

# The path a moto server with AWS's behaviour restored (c7n_imds_testing, the demo)
# answers; `c7n-imds run` and `plan` refuse to remediate against one that does not.
SEMANTICS_PATH = "/c7n-imds/aws-semantics"

# The instance tag Auto Scaling puts on the instances of a group.
GROUP_NAME_TAG = "aws:autoscaling:groupName"
# ... and the one EC2 puts on instances launched from a launch template.
TEMPLATE_ID_TAG = "aws:ec2launchtemplate:id"

# Custodian's execution mode that runs where it is started; every other mode is a Lambda.
PULL_MODE = "pull"

"""The owners wing: actions that fix a group where its owner defines it - a
CloudFormation stack (a change set), an Elastic Beanstalk environment (its option), an
EKS managed node group (a version of its launch template) - each with its own AWS edge.

Importing this package registers the owner actions and their ways back with
`revert-imds-remediation` (c7n_imds.actions.revert imports no owner)."""

from c7n_imds.owners import beanstalk, cloudformation, eks  # noqa: F401

"""c7n_imds.model.ownership: which stack or service owns a group, and what fixes it there."""

from c7n_imds.model.ownership import iac_guidance, iac_owner


def test_stack_owned_groups_get_guidance():
    cfn = {"Tags": [{"Key": "aws:cloudformation:stack-name", "Value": "web-stack"}]}
    beanstalk = {"Tags": [{"Key": "elasticbeanstalk:environment-name", "Value": "api-prod"}]}
    assert iac_owner({"Tags": []}) is None
    assert "web-stack" in iac_guidance(cfn) and "create-stack-change-set" in iac_guidance(cfn)
    assert "DisableIMDSv1" in iac_guidance(beanstalk)
    assert "disable-beanstalk-imdsv1" in iac_guidance(beanstalk)
    eks = {"Tags": [{"Key": "eks:nodegroup-name", "Value": "ng-1"}]}
    assert "set-nodegroup-metadata-access" in iac_guidance(eks)


def test_beanstalk_groups_are_the_environments_not_the_stacks():
    """Elastic Beanstalk builds an environment with CloudFormation, so its group carries
    both tags; the environment is what owns it (a change set on awseb-...-stack would be
    undone by Beanstalk)."""
    both = {
        "Tags": [
            {"Key": "aws:cloudformation:stack-name", "Value": "awseb-e-x-stack"},
            {"Key": "elasticbeanstalk:environment-name", "Value": "api-prod"},
        ]
    }
    assert iac_owner(both) == ("elasticbeanstalk:environment-name", "api-prod")

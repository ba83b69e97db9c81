"""VPC lookups a conversion needs: which VPC a group launches into, and security group
names (allowed in a launch configuration for the default VPC) resolved to ids there."""
from c7n.utils import chunks

from c7n_imds.aws import retry
from c7n_imds.model.preflight import subnet_ids

# EC2 describes take at most 200 filter values per call, all filters together.
FILTER_VALUES_PER_CALL = 200


def group_vpcs(ec2, asgs):
    """{group name: VPC id}. A group without subnets launches into the default VPC."""
    subnets = sorted({s for asg in asgs for s in subnet_ids(asg)})
    subnet_vpc = {}
    for batch in chunks(subnets, FILTER_VALUES_PER_CALL):
        pages = retry(lambda: list(ec2.get_paginator("describe_subnets").paginate(
            Filters=[{"Name": "subnet-id", "Values": batch}])))
        for page in pages:
            subnet_vpc.update({s["SubnetId"]: s["VpcId"] for s in page["Subnets"]})
    default_vpc = None
    if any(not subnet_ids(asg) for asg in asgs):
        vpcs = retry(ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}])
        default_vpc = vpcs["Vpcs"][0]["VpcId"] if vpcs["Vpcs"] else None
    result = {}
    for asg in asgs:
        ids = subnet_ids(asg)
        result[asg["AutoScalingGroupName"]] = (
            subnet_vpc.get(ids[0]) if ids else default_vpc)
    return result


def security_group_ids_by_name(ec2, vpc_names):
    """{(VPC id, group name): group id} for the given {VPC id: {names}}."""
    resolved = {}
    for vpc_id, names in sorted(vpc_names.items()):
        # The vpc-id value counts towards the 200.
        for batch in chunks(sorted(names), FILTER_VALUES_PER_CALL - 1):
            pages = retry(lambda: list(ec2.get_paginator(
                "describe_security_groups").paginate(Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": "group-name", "Values": batch}])))
            for page in pages:
                for group in page["SecurityGroups"]:
                    resolved[(vpc_id, group["GroupName"])] = group["GroupId"]
    return resolved

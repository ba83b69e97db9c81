"""The gate's AWS edge: who launches from what a change touches, and their IMDSv1
calls (CloudWatch ``MetadataNoToken``). The verdict is c7n_imds.model.gate's.

EC2 publishes the calls each instance receives without a token as ``MetadataNoToken``
(namespace ``AWS/EC2``, dimension ``InstanceId``).
"""

from __future__ import annotations

import datetime

from c7n.utils import chunks

from c7n_imds.aws import all_groups, retry, tags_of
from c7n_imds.model.gate import (
    EC2_FLEET,
    GROUP,
    INSTANCE,
    SPOT_FLEET,
    Consumer,
    GateSettings,
    GateVerdict,
    judge,
)
from c7n_imds.model.launch_source import template_group_specs
from c7n_imds.names import EXEMPT_TAG, TEMPLATE_ID_TAG

METRIC_QUERIES_PER_CALL = 500  # GetMetricData's limit
FILTER_VALUES_PER_CALL = 200  # EC2 describes: at most 200 filter values per call
DAY = 86400
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
LIVE_FLEET_STATES = ("submitted", "active", "modifying")


def metadata_no_token_sums(cloudwatch, instance_ids, days, now=None):
    """{instance id: sum of MetadataNoToken over the last `days`, or None without data}.
    Up to 500 instances per GetMetricData call."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=days)
    sums = {}
    for batch in chunks(sorted(set(instance_ids)), METRIC_QUERIES_PER_CALL):
        queries = [
            {
                "Id": "i%d" % n,
                "ReturnData": True,
                "MetricStat": {
                    "Stat": "Sum",
                    "Period": DAY,
                    "Metric": {
                        "Namespace": "AWS/EC2",
                        "MetricName": "MetadataNoToken",
                        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                    },
                },
            }
            for n, instance_id in enumerate(batch)
        ]
        ids = {q["Id"]: instance_id for q, instance_id in zip(queries, batch)}
        paginator = cloudwatch.get_paginator("get_metric_data")
        pages = retry(
            lambda: list(
                paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=now)
            )
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                instance_id = ids[result["Id"]]
                if result.get("Values"):
                    total = (sums.get(instance_id) or 0) + sum(result["Values"])
                    # counts of calls: show 14, not 14.0
                    sums[instance_id] = int(total) if float(total).is_integer() else total
                else:
                    sums.setdefault(instance_id, None)
    return {i: sums.get(i) for i in instance_ids}


def group_consumer(asg: dict) -> Consumer:
    return Consumer(
        GROUP,
        asg["AutoScalingGroupName"],
        tuple(i["InstanceId"] for i in asg.get("Instances") or ()),
        tags_of(asg).get(EXEMPT_TAG),
    )


def describe_groups(autoscaling, names) -> list[dict]:
    """The named groups as they are now (50 names per call, AWS's maximum)."""
    found = []
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    for batch in chunks(sorted(set(names)), 50):
        found += retry(
            lambda: [
                asg
                for page in paginator.paginate(AutoScalingGroupNames=batch)
                for asg in page["AutoScalingGroups"]
            ]
        )
    return found


def _spec_template(spec: dict, names: dict[str, str]) -> str | None:
    """The template id of a fleet's LaunchTemplateSpecification (by id or by name)."""
    if spec.get("LaunchTemplateId"):
        return spec["LaunchTemplateId"]
    by_name = {name: template_id for template_id, name in names.items()}
    return by_name.get(spec.get("LaunchTemplateName"))


def template_consumers(
    session, templates: dict[str, str], groups: list[dict] | None = None
) -> dict[str, list[Consumer]]:
    """{template id: consumers} for the templates ({id: name}) a change would give a new
    default: every Auto Scaling group whose specifications name the template, every
    live EC2 Fleet and Spot Fleet whose configurations do, and every live instance
    launched from it that belongs to neither (instances carry aws:ec2launchtemplate:id).
    ``groups``: the region's groups if the caller has read them already."""
    found: dict[str, list[Consumer]] = {t: [] for t in templates}
    if not templates:
        return found
    ec2 = session.client("ec2")
    if groups is None:
        groups = all_groups(session.client("autoscaling"))
    counted: set[str] = set()
    for asg in groups:
        for template_id in {s.get("LaunchTemplateId") for s in template_group_specs(asg)}:
            if template_id in found:
                consumer = group_consumer(asg)
                found[template_id].append(consumer)
                counted.update(consumer.instance_ids)
    for fleet in retry(
        lambda: [
            f for page in ec2.get_paginator("describe_fleets").paginate() for f in page["Fleets"]
        ]
    ):
        if fleet.get("FleetState") not in LIVE_FLEET_STATES:
            continue
        specs = [
            c.get("LaunchTemplateSpecification") or {}
            for c in fleet.get("LaunchTemplateConfigs") or ()
        ]
        hit = {_spec_template(s, templates) for s in specs} & set(found)
        if not hit:
            continue
        instances = tuple(
            i for group in fleet.get("Instances") or () for i in group.get("InstanceIds") or ()
        )
        if fleet.get("Type") != "instant":
            instances = tuple(
                i["InstanceId"]
                for i in retry(ec2.describe_fleet_instances, FleetId=fleet["FleetId"])[
                    "ActiveInstances"
                ]
            )
        consumer = Consumer(EC2_FLEET, fleet["FleetId"], instances, tags_of(fleet).get(EXEMPT_TAG))
        counted.update(instances)
        for template_id in hit:
            found[template_id].append(consumer)
    requests = retry(
        lambda: [
            r
            for page in ec2.get_paginator("describe_spot_fleet_requests").paginate()
            for r in page["SpotFleetRequestConfigs"]
        ]
    )
    for request in requests:
        if request.get("SpotFleetRequestState") not in ("submitted", "active", "modifying"):
            continue
        config = request.get("SpotFleetRequestConfig") or {}
        specs = [
            c.get("LaunchTemplateSpecification") or {}
            for c in config.get("LaunchTemplateConfigs") or ()
        ]
        hit = {_spec_template(s, templates) for s in specs} & set(found)
        if not hit:
            continue
        instances = tuple(
            i["InstanceId"]
            for i in retry(
                ec2.describe_spot_fleet_instances, SpotFleetRequestId=request["SpotFleetRequestId"]
            )["ActiveInstances"]
        )
        consumer = Consumer(
            SPOT_FLEET, request["SpotFleetRequestId"], instances, tags_of(request).get(EXEMPT_TAG)
        )
        counted.update(instances)
        for template_id in hit:
            found[template_id].append(consumer)
    paginator = ec2.get_paginator("describe_instances")
    for batch in chunks(sorted(found), FILTER_VALUES_PER_CALL - len(LIVE_STATES)):
        pages = retry(
            lambda: list(
                paginator.paginate(
                    Filters=[
                        {"Name": "tag:" + TEMPLATE_ID_TAG, "Values": batch},
                        {"Name": "instance-state-name", "Values": LIVE_STATES},
                    ]
                )
            )
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = tags_of(instance)
                    if instance["InstanceId"] in counted or tags.get(TEMPLATE_ID_TAG) not in found:
                        continue
                    found[tags[TEMPLATE_ID_TAG]].append(
                        Consumer(
                            INSTANCE,
                            instance["InstanceId"],
                            (instance["InstanceId"],),
                            tags.get(EXEMPT_TAG),
                        )
                    )
    return found


class Gate:
    """The usage and exemption gate over a change's consumers, for one account and
    region; MetadataNoToken sums are read once per instance and run."""

    def __init__(self, session, settings: GateSettings, today: datetime.date | None = None):
        self.session = session
        self.settings = settings
        self.today = today or datetime.datetime.now(datetime.timezone.utc).date()
        self.calls: dict[str, float | None] = {}

    def check(self, consumers: list[Consumer]) -> GateVerdict:
        wanted = sorted({i for c in consumers for i in c.instance_ids} - set(self.calls))
        if wanted:
            self.calls.update(
                metadata_no_token_sums(
                    self.session.client("cloudwatch"), wanted, self.settings.days
                )
            )
        return judge(consumers, self.calls, self.settings, self.today)

    def check_groups(self, names) -> GateVerdict:
        """The verdict over the named groups, read now (an owner's groups: all of them,
        not only those the policy matched)."""
        groups = describe_groups(self.session.client("autoscaling"), names)
        missing = sorted(set(names) - {g["AutoScalingGroupName"] for g in groups})
        verdict = self.check([group_consumer(g) for g in groups])
        verdict.blocked += ["auto-scaling-group %s could not be read" % n for n in missing]
        return verdict


# The permissions the gate's reads need, for the actions that declare them.
GATE_PERMISSIONS = ("cloudwatch:GetMetricData", "autoscaling:DescribeAutoScalingGroups")
CONSUMER_PERMISSIONS = GATE_PERMISSIONS + (
    "ec2:DescribeFleets",
    "ec2:DescribeFleetInstances",
    "ec2:DescribeSpotFleetRequests",
    "ec2:DescribeSpotFleetInstances",
    "ec2:DescribeInstances",
)

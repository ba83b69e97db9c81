"""AWS's API token buckets, and the client-side buckets that keep a run within a share
of them. Pure: the caller passes the clock in.

EC2 throttles each account and region with one token bucket per API ("Request
throttling for the Amazon EC2 API", EC2 developer guide): every request - a DryRun
included - takes one token; an empty bucket answers ``RequestLimitExceeded``; tokens
come back at a fixed refill rate up to the bucket's size. The published request buckets
this product meets:

=================================================  =====  ===========
API                                                burst  refill / s
=================================================  =====  ===========
non-mutating (``Describe*``, ``Get*``)               100           20
mutating (the rest)                                   50            5
``CreateLaunchTemplateVersion``,                     100            5
``ModifyLaunchTemplate``
``RunInstances``                                       5            2
=================================================  =====  ===========

Auto Scaling publishes no bucket sizes; it answers ``Throttling`` when a caller goes too
fast. We assume EC2's shape for its describes and changes (docs/aws-facts.md says so).

The account's own automation - Auto Scaling's launches, deploy pipelines - takes from
the same buckets, so a run should not use a whole bucket: ``rate-budget`` is the share
of each bucket (its burst and its refill) the run allows itself.
"""

from typing import NamedTuple

DEFAULT_BUDGET = 0.5  # half of each bucket; the other half stays the account's


class Bucket(NamedTuple):
    burst: float
    refill: float  # tokens per second

    def share(self, budget):
        """The part of this bucket a run at ``budget`` (0 < budget <= 1) may use."""
        return Bucket(max(1.0, self.burst * budget), self.refill * budget)

    def scaled(self, factor):
        """The same bucket on a clock ``factor`` times faster (benchmarks only): the
        refill speeds up, the burst stays - more burst would hide the tail of a run."""
        return Bucket(self.burst, self.refill * factor)


EC2_DESCRIBE = Bucket(100, 20)
EC2_MUTATING = Bucket(50, 5)
EC2_BUCKETS = {
    "CreateLaunchTemplateVersion": Bucket(100, 5),
    "ModifyLaunchTemplate": Bucket(100, 5),
    "RunInstances": Bucket(5, 2),
}
# Not published by AWS: assumed to be shaped like EC2's (see above).
AUTOSCALING_DESCRIBE = EC2_DESCRIBE
AUTOSCALING_MUTATING = EC2_MUTATING
NON_MUTATING_PREFIXES = ("Describe", "Get", "List")
PACED_SERVICES = ("ec2", "autoscaling")


def aws_bucket(service, operation):
    """The published (or, for Auto Scaling, assumed) bucket of one API; None for the
    services this product does not pace (CloudWatch, STS, IAM, SQS ...)."""
    if service not in PACED_SERVICES:
        return None
    if service == "ec2" and operation in EC2_BUCKETS:
        return EC2_BUCKETS[operation]
    reading = operation.startswith(NON_MUTATING_PREFIXES)
    if service == "ec2":
        return EC2_DESCRIBE if reading else EC2_MUTATING
    return AUTOSCALING_DESCRIBE if reading else AUTOSCALING_MUTATING


class TokenBucket:
    """One API's client-side bucket: ``take(now)`` spends a token and returns how long
    the caller must wait before sending (0 when a token was there). Tokens may go
    negative: each waiting caller reserves its own future token, so callers are served
    in order and the rate never exceeds the refill, however many threads ask."""

    def __init__(self, bucket, now):
        self.bucket, self.tokens, self.stamp = bucket, float(bucket.burst), now

    def take(self, now):
        self.tokens = min(self.bucket.burst, self.tokens + (now - self.stamp) * self.bucket.refill)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.bucket.refill


def bound_seconds(calls, bucket):
    """The least time ``calls`` requests can take through ``bucket`` starting full: the
    burst at once, the rest at the refill rate."""
    return max(0.0, (calls - bucket.burst) / bucket.refill)

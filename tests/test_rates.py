"""c7n_imds.model.rates: AWS's published buckets and the client-side token bucket."""

import pytest

from c7n_imds.model.rates import Bucket, TokenBucket, aws_bucket, bound_seconds


@pytest.mark.parametrize(
    "service, operation, expected",
    [
        # EC2 developer guide, "Request throttling for the Amazon EC2 API"
        ("ec2", "DescribeLaunchTemplateVersions", Bucket(100, 20)),
        ("ec2", "CreateLaunchTemplate", Bucket(50, 5)),
        ("ec2", "CreateLaunchTemplateVersion", Bucket(100, 5)),
        ("ec2", "ModifyLaunchTemplate", Bucket(100, 5)),
        ("ec2", "RunInstances", Bucket(5, 2)),
        # Auto Scaling publishes none: EC2's shape, assumed
        ("autoscaling", "DescribeAutoScalingGroups", Bucket(100, 20)),
        ("autoscaling", "UpdateAutoScalingGroup", Bucket(50, 5)),
        ("cloudwatch", "GetMetricData", None),
        ("sts", "GetCallerIdentity", None),
    ],
)
def test_published_buckets(service, operation, expected):
    assert aws_bucket(service, operation) == expected


def test_share_keeps_at_least_one_token_of_burst():
    assert Bucket(5, 2).share(0.5) == Bucket(2.5, 1.0)
    assert Bucket(1, 2).share(0.1) == Bucket(1.0, 0.2)
    assert Bucket(5, 2).scaled(10) == Bucket(5, 20)


def test_burst_then_refill_rate_in_call_order():
    bucket = TokenBucket(Bucket(2, 1.0), now=0.0)
    # two tokens at once, then each caller reserves the next token in turn
    assert [bucket.take(0.0) for _ in range(4)] == [0.0, 0.0, 1.0, 2.0]
    # a second later one token has come back, and the two reserved are still owed
    assert bucket.take(1.0) == pytest.approx(2.0)


def test_tokens_come_back_up_to_the_burst_only():
    bucket = TokenBucket(Bucket(3, 1.0), now=0.0)
    for _ in range(3):
        assert bucket.take(0.0) == 0.0
    # 100 s idle refills 3 tokens, not 100
    assert [bucket.take(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_bound_is_the_burst_then_the_refill():
    assert bound_seconds(5, Bucket(5, 2)) == 0.0
    assert bound_seconds(505, Bucket(5, 2)) == 250.0

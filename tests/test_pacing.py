"""c7n_imds.pacing: one bucket per account, region and API for the whole process, drawn on by
every HTTP attempt of EC2 and Auto Scaling, never by other services. A fake clock whose
sleep advances it keeps the tests free of wall-clock time."""

import threading

import boto3
import pytest

from c7n_imds import pacing
from c7n_imds.model.rates import Bucket


class Clock:
    def __init__(self):
        self.now, self.slept = 0.0, []
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.slept.append(seconds)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(pacing, "PACER", pacing.Pacer(clock=fake, sleep=fake.sleep, scale=1))
    return fake


def test_run_instances_is_paced_at_the_budgeted_share(clock):
    # RunInstances: 5 burst, 2 per second; at the default budget (0.5): 2.5 and 1 per s
    delays = [pacing.PACER.wait_for_token("us-east-1", "ec2", "RunInstances") for _ in range(5)]
    assert delays == [0.0, 0.0, pytest.approx(0.5), pytest.approx(1.5), pytest.approx(2.5)]
    assert clock.slept == delays[2:]


def test_buckets_are_per_region_and_api(clock):
    for _ in range(2):
        pacing.PACER.wait_for_token("us-east-1", "ec2", "RunInstances")
    assert pacing.PACER.wait_for_token("eu-west-1", "ec2", "RunInstances") == 0.0
    assert pacing.PACER.wait_for_token("us-east-1", "ec2", "CreateLaunchTemplate") == 0.0
    assert pacing.PACER.wait_for_token("us-east-1", "cloudwatch", "GetMetricData") == 0.0
    assert ("us-east-1", "cloudwatch", "GetMetricData") not in pacing.PACER.buckets


def test_threads_share_one_bucket(clock):
    """Eight threads asking at once get eight distinct slots: the refill rate holds."""
    delays = []
    threads = [
        threading.Thread(
            target=lambda: delays.append(
                pacing.PACER.wait_for_token("us-east-1", "ec2", "RunInstances")
            )
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == pytest.approx([0, 0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5])


def test_budget_change_applies_to_existing_buckets(clock):
    pacing.PACER.wait_for_token("us-east-1", "ec2", "RunInstances")
    pacing.PACER.set_budget(1.0)
    assert pacing.PACER.buckets[("us-east-1", "ec2", "RunInstances")].bucket == Bucket(5, 2)


def test_every_http_attempt_of_a_session_is_paced(clock, moto):
    """Installed on a session, the pacer sees each EC2 / Auto Scaling request with its
    API name, and nothing of the other services."""
    endpoint, _ = moto
    session = pacing.install(
        boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
    )
    session.client("ec2", endpoint_url=endpoint).describe_launch_templates()
    session.client("autoscaling", endpoint_url=endpoint).describe_auto_scaling_groups()
    session.client("sts", endpoint_url=endpoint).get_caller_identity()
    # the signed request's credential scope names the account's key and the region
    assert sorted(pacing.PACER.buckets) == [
        ("testing/us-east-1", "autoscaling", "DescribeAutoScalingGroups"),
        ("testing/us-east-1", "ec2", "DescribeLaunchTemplates"),
    ]
    assert pacing.PACER.sent == 2


def test_custodian_sessions_are_left_alone_and_ours_are_paced(clock, moto, monkeypatch):
    """Importing c7n_imds paces no session of custodian's - another policy in the same
    process keeps its own pace and retries - while imds_session, what our filters and
    actions use, draws from the process's buckets and retries 8 times."""
    from c7n.credentials import SessionFactory

    from c7n_imds.aws import MAX_ATTEMPTS, imds_session

    endpoint, _ = moto
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    factory = SessionFactory("eu-west-1")
    custodians = factory()
    custodians.client("autoscaling", endpoint_url=endpoint).describe_launch_configurations()
    assert pacing.PACER.buckets == {}
    assert custodians._session.get_config_variable("max_attempts") is None

    class Manager:
        session_factory = factory

    ours = imds_session(Manager)
    assert imds_session(Manager) is ours and ours is not custodians
    ours.client("autoscaling", endpoint_url=endpoint).describe_launch_configurations()
    assert (
        "testing/eu-west-1",
        "autoscaling",
        "DescribeLaunchConfigurations",
    ) in pacing.PACER.buckets
    assert ours._session.get_config_variable("max_attempts") == MAX_ATTEMPTS


def test_progress_line_on_long_runs_only(clock):
    progress = pacing.Progress("convert-to-launch-template", 200, every=30)
    assert progress.advance(10) is None  # not yet due
    clock.now = 31.0
    for _ in range(40):
        pacing.PACER.wait_for_token("us-east-1", "ec2", "DescribeImages")
    assert progress.advance(10) == (
        "convert-to-launch-template: 20/200 groups done, 1.3 requests/s, about 279 s left"
    )
    assert pacing.Progress("x", 10).advance(10) is None  # short runs stay quiet


def test_accounts_have_buckets_of_their_own(clock):
    """c7n-org runs many accounts in one worker; AWS limits each account separately."""

    class Request:
        def __init__(self, key):
            self.headers = {
                "Authorization": (
                    "AWS4-HMAC-SHA256 Credential=%s/20261201/eu-west-1/ec2/aws4_request, "
                    "SignedHeaders=host, Signature=abc" % key
                ).encode()
            }

    owners = [pacing.bucket_owner(Request(key), "us-east-1") for key in ("ASIAONE", "ASIATWO")]
    assert owners == ["ASIAONE/eu-west-1", "ASIATWO/eu-west-1"]
    assert pacing.bucket_owner(None, "us-east-1") == "us-east-1"
    for owner in owners:
        for _ in range(2):
            assert pacing.PACER.wait_for_token(owner, "ec2", "RunInstances") == 0.0


def test_remediation_steps_have_a_progress_outside_process():
    """Shared steps (make_versions) count groups on self.progress; a caller that is
    not process() - a later owner path - gets a quiet one, not an AttributeError."""
    from c7n_imds.actions.base import Remediation

    progress = Remediation.progress
    assert list(progress.each(["a", "b"], lambda item: 1)) == ["a", "b"]
    assert progress.advance(5) is None

"""Client-side pacing: every EC2 and Auto Scaling request of a run waits for a token
from a bucket that holds a share (``rate-budget``) of AWS's own bucket for that API
(c7n_imds/model/rates.py), so a large run sends at a steady rate within its budget
instead of finding the limit by failing - and leaves the rest of each bucket to the
account's own automation. botocore's retries stay for what pacing cannot foresee.

The buckets are per account (the request's access key), region and API, shared by
every thread and every session of the process: custodian's listing, its own filters,
ours and our actions all draw from them - AWS counts them all against the same limits.
They are attached to each session custodian's SessionFactory makes (``install``). A
token is taken for each HTTP attempt (``before-send``), since AWS counts retries too.
"""

import logging
import os
import re
import threading
import time

from c7n_imds.model.rates import DEFAULT_BUDGET, TokenBucket, aws_bucket

log = logging.getLogger("custodian.c7n_imds.pacing")

# Benchmarks only: every bucket refills this many times faster (a faster clock), to
# match a bucket proxy scaled by the same factor (bench/bucket_proxy.py).
RATE_SCALE_ENV = "C7N_IMDS_RATE_SCALE"

# botocore names events after the service id, hyphenated
EVENT_SERVICES = {"ec2": "ec2", "auto-scaling": "autoscaling"}


class Pacer:
    """The process's buckets. ``clock`` and ``sleep`` are replaceable for tests."""

    def __init__(self, budget=DEFAULT_BUDGET, clock=time.monotonic, sleep=time.sleep, scale=None):
        self.budget, self.clock, self.sleep = budget, clock, sleep
        self.scale = float(os.environ.get(RATE_SCALE_ENV) or 1) if scale is None else scale
        self.lock = threading.Lock()
        self.buckets = {}
        self.sent = 0
        self.waited = 0.0

    def set_budget(self, budget):
        """A new share applies to buckets made from now on, and to the existing ones
        (their token count is kept, capped at the new burst)."""
        with self.lock:
            self.budget = budget
            for key, bucket in self.buckets.items():
                bucket.bucket = self.bucket_for(key[1], key[2])
                bucket.tokens = min(bucket.tokens, bucket.bucket.burst)

    def bucket_for(self, service, operation):
        published = aws_bucket(service, operation)
        return published and published.share(self.budget).scaled(self.scale)

    def wait_for_token(self, owner, service, operation):
        """``owner``: whose bucket (account and region, see bucket_owner)."""
        key = (owner, service, operation)
        with self.lock:
            bucket = self.buckets.get(key)
            now = self.clock()
            if bucket is None:
                allowed = self.bucket_for(service, operation)
                if allowed is None:
                    return 0.0
                bucket = self.buckets[key] = TokenBucket(allowed, now)
            delay = bucket.take(now)
            self.sent += 1
            self.waited += delay
        if delay > 0:
            self.sleep(delay)
        return delay

    def rate(self, since, sent_since):
        """Requests per second since ``since`` (a clock reading) given ``sent_since``
        requests then."""
        elapsed = self.clock() - since
        return (self.sent - sent_since) / elapsed if elapsed > 0 else 0.0


PACER = Pacer()


def install(session):
    """Pace every EC2 and Auto Scaling request of a boto3 session (idempotent). Clients
    copy their session's handlers when made, so this runs before any client is."""
    region = session.region_name
    for event_service in EVENT_SERVICES:
        session.events.register(
            "before-send.%s" % event_service,
            _handler(region),
            unique_id="c7n-imds-pacing-%s" % event_service,
        )
    return session


def _handler(region):
    def pace(event_name, request=None, **kwargs):
        _, event_service, operation = event_name.split(".", 2)
        PACER.wait_for_token(
            bucket_owner(request, region), EVENT_SERVICES[event_service], operation
        )

    return pace


# SigV4: "Credential=<access key>/<date>/<region>/<service>/aws4_request"
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")


def bucket_owner(request, region):
    """Whose buckets a signed request draws from: AWS keeps them per account and region.
    The request's own credential scope says both - its access key stands for the
    account (c7n-org runs many accounts in one worker, each with its own assumed-role
    key) - and the session's region is the fallback."""
    headers = getattr(request, "headers", None) or {}
    authorization = headers.get("Authorization") or b""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    match = CREDENTIAL_SCOPE.search(authorization)
    return "%s/%s" % match.groups() if match else region


class Progress:
    """On a long run, a line now and then: groups done of the total, the request rate
    of the process, and the time left at the pace so far - so a paced run visibly
    moves instead of looking stuck. Short runs (fewer than ``minimum`` groups) stay
    quiet."""

    def __init__(self, what, total, every=30.0, minimum=50, pacer=None):
        self.what, self.total, self.every, self.minimum = what, total, every, minimum
        self.pacer = pacer or PACER
        self.done, self.lock = 0, threading.Lock()
        self.start = self.last = self.pacer.clock()
        self.sent_at_start = self.pacer.sent

    def advance(self, groups):
        with self.lock:
            self.done += groups
            now = self.pacer.clock()
            due = now - self.last >= self.every or self.done >= self.total
            if self.total < self.minimum or not due:
                return None
            self.last = now
            elapsed = now - self.start
            left = elapsed / self.done * (self.total - self.done) if self.done else 0
            line = "%s: %d/%d groups done, %.1f requests/s, about %d s left" % (
                self.what,
                min(self.done, self.total),
                self.total,
                self.pacer.rate(self.start, self.sent_at_start),
                round(left),
            )
        log.info(line)
        return line

    def each(self, items, groups=len):
        """Yield each item; once the caller is through with it, count its groups."""
        for item in items:
            yield item
            self.advance(groups(item))

"""A loopback HTTP proxy in front of moto that throttles like AWS: a tool for the
benches (bench/remediate.py); run alone (`make bench` does) it checks in seconds that
botocore reads its throttling answers as AWS's.

moto answers every request at once, so a run against it never meets AWS's request
limits, and a client that paces itself cannot be told from one that does not. AWS
throttles EC2 "for each AWS account on a per-Region basis" with token buckets, and
"each API is evaluated individually": every request - a DryRun too - takes one token
from its API's bucket, tokens come back at a fixed refill rate up to the bucket's size,
and an empty bucket answers ``RequestLimitExceeded`` ("Request throttling for the
Amazon EC2 API", EC2 developer guide). This proxy applies those buckets, per (region,
service, API), from c7n_imds.model.rates.aws_bucket (Auto Scaling's are assumed EC2's
shape there), and answers an empty bucket the way AWS does, so that botocore parses
and retries exactly what it would meet in an account:

- EC2 (EC2QueryParser): HTTP 503, ``<Response><Errors><Error><Code>
  RequestLimitExceeded`` (botocore's legacy retry rules for ec2 match code and 503);
- Auto Scaling (QueryParser): HTTP 400, ``<ErrorResponse><Error><Type>Sender</Type>
  <Code>Throttling</Code><Message>Rate exceeded``.

Every bucket is scaled by ``scale`` as rates.Bucket.scaled scales the product's own
(C7N_IMDS_RATE_SCALE), so that a benchmark runs faster and the two stay in step.
``latency`` (seconds) stands in for the round trip to AWS, which loopback lacks.
``background`` (0 <= share < 1) adds what a busy account does: a thread per API that
takes that share of the bucket's refill from the moment the API is first used. Other
services (CloudWatch, STS, ...) and moto-api calls pass through unthrottled.

    with BucketProxy("http://127.0.0.1:5000", scale=10, background=0.3) as url:
        ...  # point AWS_ENDPOINT_URL at url; proxy.stats() counts per API
"""

import http.client
import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from c7n_imds.model.rates import Bucket, aws_bucket  # noqa: E402

# SigV4: Credential=AKID/20240101/us-east-1/ec2/aws4_request
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def throttled_answer(service):
    """(status, body) of AWS's answer to a request its bucket has no token for."""
    request_id = str(uuid.uuid4())
    if service == "ec2":
        return 503, (
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>"
            "Request limit exceeded.</Message></Error></Errors><RequestID>%s"
            "</RequestID></Response>" % request_id
        ).encode()
    return 400, (
        '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
        "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
        "</Message></Error><RequestId>%s</RequestId></ErrorResponse>" % request_id
    ).encode()


class AwsBucket:
    """AWS's side of a bucket: a request finds a token or is refused; nothing waits
    (unlike the client's TokenBucket, which reserves future tokens)."""

    def __init__(self, bucket, now):
        self.bucket, self.tokens, self.stamp = bucket, float(bucket.burst), now
        self.lowest = self.tokens

    def try_take(self, now):
        self.tokens = min(self.bucket.burst, self.tokens + (now - self.stamp) * self.bucket.refill)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        self.lowest = min(self.lowest, self.tokens)
        return True


class BucketProxy:
    """The proxy; a context manager yielding its URL. ``buckets`` overrides AWS's
    bucket per (service, API), e.g. {("ec2", "RunInstances"): Bucket(5, 2)}; ``None``
    there means unthrottled. ``watch`` (a rate-budget) also counts, per API, the run's
    requests beyond that share of the bucket ("over_share"): a client that paces itself
    at its budget has none, whether or not AWS's bucket would have refused them."""

    def __init__(
        self,
        upstream,
        scale=1.0,
        background=0.0,
        buckets=None,
        latency=0.0,
        watch=None,
        clock=time.monotonic,
    ):
        if not 0 <= background < 1:
            raise ValueError("background is a share of each refill: 0 <= background < 1")
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.scale, self.background, self.clock = float(scale), background, clock
        self.latency = latency  # seconds: a network round trip, added to every request
        self.overrides = dict(buckets or {})
        self.watch = watch
        self.shares = {}  # (region, service, api) -> AwsBucket of the watched share
        self.lock = threading.Lock()
        self.buckets = {}  # (region, service, api) -> AwsBucket
        self.counts = {}  # (service, api) -> Counter-like dict
        self.stopping = threading.Event()
        self.server = None

    # -- buckets -------------------------------------------------------------------

    def bucket_of(self, service, api):
        """AWS's bucket for an API, scaled (None: not throttled)."""
        published = self.overrides.get((service, api), aws_bucket(service, api))
        if published is None:
            return None
        # Scaled as the product scales its own buckets (C7N_IMDS_RATE_SCALE), so the
        # two stay in step; a bucket always holds at least one token.
        scaled = published.scaled(self.scale)
        return Bucket(max(1.0, scaled.burst), scaled.refill)

    def take(self, region, service, api, background=False):
        """True when the request may go on. Counts it either way."""
        bucket = self.bucket_of(service, api)
        with self.lock:
            now = self.clock()
            counts = self.counts.setdefault(
                (service, api),
                dict.fromkeys(
                    ("requests", "throttled", "over_share", "background", "background_throttled"), 0
                ),
            )
            counts["background" if background else "requests"] += 1
            if not background:
                counts.setdefault("first", now)
                counts["last"] = now
            if bucket is None:
                return True
            key = (region, service, api)
            state = self.buckets.get(key)
            if state is None:
                state = self.buckets[key] = AwsBucket(bucket, now)
                if self.background:
                    threading.Thread(
                        target=self.busy_account,
                        args=key,
                        daemon=True,
                        name="background %s %s" % (service, api),
                    ).start()
            if self.watch and not background:
                share = self.shares.get(key)
                if share is None:
                    # as c7n_imds.pacing sizes it, plus 2 tokens of slack: requests
                    # reach the proxy a little later or earlier than they were paced
                    allowed = self.overrides.get((service, api), aws_bucket(service, api))
                    allowed = allowed.share(self.watch).scaled(self.scale)
                    share = self.shares[key] = AwsBucket(
                        Bucket(allowed.burst + 2, allowed.refill), now
                    )
                if not share.try_take(now):
                    counts["over_share"] += 1
            allowed = state.try_take(now)
            if not allowed:
                counts["background_throttled" if background else "throttled"] += 1
            return allowed

    def busy_account(self, region, service, api):
        """The account's own automation: ``background`` of the refill, evenly spaced
        (deadlines, not sleeps, so the rate does not drift)."""
        interval = 1.0 / (self.bucket_of(service, api).refill * self.background)
        deadline = self.clock() + interval
        while not self.stopping.is_set():
            self.stopping.wait(max(0.0, deadline - self.clock()))
            self.take(region, service, api, background=True)
            deadline += interval

    def stats(self):
        """{"service:Api": {requests, throttled, over_share, background,
        background_throttled, first and last (clock readings of the run's first and
        last request), lowest (fewest tokens left after a request)}}."""
        with self.lock:
            out = {"%s:%s" % key: dict(counts) for key, counts in self.counts.items()}
            for (region, service, api), state in self.buckets.items():
                out["%s:%s" % (service, api)]["lowest"] = round(state.lowest, 2)
        return out

    # -- HTTP ----------------------------------------------------------------------

    def __enter__(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
            # headers and body go out in two writes: without TCP_NODELAY, Nagle's
            # algorithm and the client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/proxy-stats"):
                    return self.answer(200, json.dumps(proxy.stats()).encode(), "application/json")
                self.forward(b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.latency:
                    time.sleep(proxy.latency)  # concurrent requests wait at once
                scope = CREDENTIAL_SCOPE.search(self.headers.get("Authorization") or "")
                if scope:
                    region, service = scope.groups()
                    # EC2 and Auto Scaling speak the query protocol: a form body.
                    api = (
                        urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[
                            0
                        ]
                        if service in ("ec2", "autoscaling")
                        else None
                    )
                    if api and not proxy.take(region, service, api):
                        return self.answer(*throttled_answer(service))
                self.forward(body)

            do_PUT = do_DELETE = do_POST

            def forward(self, body):
                if getattr(self, "upstream", None) is None:
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                if self.upstream.sock is None:  # new, or closed by moto
                    self.upstream.connect()
                    self.upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    self.upstream.close()
                    self.upstream = None
                    return self.answer(502, b"upstream failed", "text/plain")
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def answer(self, status, data, content_type="text/xml;charset=UTF-8"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="bucket proxy").start()
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def self_check():
    """Drain one EC2 and one Auto Scaling bucket through a real boto3 client and show
    what botocore made of the answers: the error code, the status, and its retries."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from c7n_imds_testing import moto_server

    tiny = Bucket(1, 0.001)
    with (
        moto_server() as endpoint,
        BucketProxy(
            endpoint, buckets={("ec2", "RunInstances"): tiny, ("autoscaling", "DescribeTags"): tiny}
        ) as url,
    ):
        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        calls = (
            (
                "ec2",
                "run_instances",
                dict(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, DryRun=True),
            ),
            ("autoscaling", "describe_tags", {}),
        )
        for service, method, params in calls:
            # botocore's default (legacy) mode; 3 attempts keep the check short
            client = session.client(
                service,
                endpoint_url=url,
                config=Config(retries={"mode": "legacy", "total_max_attempts": 3}),
            )
            for attempt in ("first", "second"):
                try:
                    getattr(client, method)(**params)
                    print("%s %s, %s call: answered" % (service, method, attempt))
                except ClientError as e:
                    meta = e.response["ResponseMetadata"]
                    print(
                        "%s %s, %s call: %s (HTTP %s) after %d retries"
                        % (
                            service,
                            method,
                            attempt,
                            e.response["Error"]["Code"],
                            meta["HTTPStatusCode"],
                            meta.get("RetryAttempts", 0),
                        )
                    )


if __name__ == "__main__":
    self_check()

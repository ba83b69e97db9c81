"""Fault injection and call recording inside the real `c7n-imds` subprocess.

The command under test runs in its own process, so faults cannot be patched in from
the test. :func:`environment` writes a one-line ``sitecustomize.py`` into a folder and
returns the environment for the subprocess: Python imports ``sitecustomize`` at start
up, which calls :func:`activate` here. ``activate`` wraps ``botocore.session.Session``
so that every botocore session the process creates (c7n makes several) gets event
handlers that, as the JSON plan in ``C7N_IMDS_FAULTS`` says:

- ``rate``/``mutating_rate``/``kinds``/``seed``: fail a share of the HTTP requests
  (``before-send``) with
  what AWS or the network really answers - throttling (``Throttling`` for the query
  protocol, ``RequestLimitExceeded`` for EC2, ``ThrottlingException`` for JSON/CBOR),
  ``ServiceUnavailable`` (503), ``InternalError`` (500), a connection reset before the
  request reached the server, and a response lost after the server processed the
  request (the request is really sent, then a read timeout is raised);
- ``outage``: ``{"failures": n, "kinds": [...], "services": [...]}`` - every
  operation's first n attempts in the process fail, one after the other, with these
  kinds in turn (an API that is down for a while, then back); only those services
  (botocore's hyphenated ids, e.g. ``auto-scaling``) when given;
- ``crash_after``: ``os._exit(137)`` - as if the process were killed - right after the
  n-th successful call of an operation (``after-call``);
- ``crash_after_mutating``: the same right after the n-th successful call that changes
  the account, whatever its operation (every kill point between two changes);
- ``refuse``: answer one operation, when its request mentions a string, with a given
  AWS error (e.g. a template quota exceeded), or with a fault ``kind`` on every attempt;
- ``missing_images``: answer ``RunInstances`` (the pre-flight DryRun) with
  ``InvalidAMIID.NotFound`` when the launch template version names one of these images,
  as EC2 does and moto does not (moto answers a DryRun before any validation);
- ``barriers``: before the first request of an operation, wait until ``parties``
  processes have reached the same point (files in a folder), to force a race;
- ``record``: log every request (operation, idempotency token, names) to the log.

Everything injected is appended as JSON lines to ``log`` (one file may be shared by
several processes); a fault counts as survived once a later attempt of the same
operation succeeds in the same process.

Backoff sleeps (botocore's and c7n's ``get_retry``) are scaled by ``sleep_scale`` so a
test with many retries stays quick; retry counts and limits are unchanged.
"""

import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl

ENV = "C7N_IMDS_FAULTS"
ALL_KINDS = ("throttle", "unavailable", "internal", "reset", "lost-response")
# Operations a lost response may hit: on AWS and on moto a retry of these ends as one
# call would (a replayed create meets AlreadyExists on AWS; moto overwrites an LC of the
# same name). moto ignores ClientToken, so a replayed CreateLaunchTemplateVersion would
# make a second version on moto where AWS would not: left out, see the tests.
REPLAY_SAFE = (
    "CreateLaunchTemplate",
    "CreateLaunchConfiguration",
    "CreateOrUpdateTags",
    "UpdateAutoScalingGroup",
    "ModifyLaunchTemplate",
    "DeleteTags",
)
_state = threading.local()


def environment(base_env, folder, plan, repo):
    """Env for a subprocess with the plan active. ``folder`` receives the
    sitecustomize.py; ``repo`` goes on PYTHONPATH so that it can import this module."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text("import tests.faults\ntests.faults.activate()\n")
    env = dict(base_env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder), str(repo)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env[ENV] = json.dumps(plan)
    return env


def read_log(path):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def activate():
    raw = os.environ.get(ENV)
    if not raw:
        return
    plan = json.loads(raw)
    injector = Injector(plan)
    import botocore.session

    original = botocore.session.Session.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        injector.attach(self)

    botocore.session.Session.__init__ = __init__
    scale = plan.get("sleep_scale")
    if scale is not None:
        real_sleep = time.sleep
        time.sleep = lambda seconds: real_sleep(max(0.0, seconds) * scale)
        injector.real_sleep = real_sleep


class Injector:
    def __init__(self, plan):
        self.plan = plan
        self.rng = random.Random(plan.get("seed", 0))
        self.lock = threading.Lock()
        self.log_path = plan.get("log")
        self.successes = {}
        self.mutations = 0
        self.barriers_passed = set()
        self.outage_attempts = {}
        self.real_sleep = time.sleep

    def attach(self, session):
        session.register("before-call", self.before_call)
        session.register("before-send", self.before_send)
        session.register("after-call", self.after_call)
        session.register("after-call-error", self.after_call_error)

    def write(self, **entry):
        if not self.log_path:
            return
        entry.setdefault("pid", os.getpid())
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    # -- before the request goes out ----------------------------------------------------

    def before_call(self, **kwargs):
        # One API call, with all of botocore's attempts, runs on one thread.
        _state.faults_in_call = 0

    def before_send(self, request, event_name, **kwargs):
        if getattr(_state, "bypass", False):
            return None
        _, service, operation = event_name.split(".", 2)
        params = _form(request)
        if self.plan.get("record"):
            self.write(
                event="call",
                service=service,
                operation=operation,
                **{
                    k: params[k]
                    for k in (
                        "ClientToken",
                        "LaunchTemplateName",
                        "LaunchTemplateId",
                        "VersionDescription",
                        "SourceVersion",
                        "AutoScalingGroupName",
                        "Tags.member.1.ResourceId",
                    )
                    if k in params
                },
            )
        for barrier in self.plan.get("barriers") or ():
            if barrier["operation"] == operation and operation not in self.barriers_passed:
                self.barriers_passed.add(operation)
                self.wait_at_barrier(barrier, operation)
        for rule in self.plan.get("refuse") or ():
            if rule["operation"] == operation and any(rule["match"] in v for v in params.values()):
                if rule.get("kind"):  # a fault on every attempt, e.g. a dead network path
                    self.write(event="refused", operation=operation, code=rule["kind"])
                    return self.fault(rule["kind"], request, service)
                self.write(event="refused", operation=operation, code=rule["code"])
                return error_response(
                    request, service, rule.get("status", 400), rule["code"], rule["message"]
                )
        if operation == "RunInstances" and self.plan.get("missing_images"):
            image = self.template_image(request, params)
            if image in self.plan["missing_images"]:
                self.write(event="refused", operation=operation, code="InvalidAMIID.NotFound")
                return error_response(
                    request,
                    service,
                    400,
                    "InvalidAMIID.NotFound",
                    "The image id '[%s]' does not exist" % image,
                )
        outage = self.plan.get("outage")
        if outage and service in (outage.get("services") or (service,)):
            with self.lock:
                attempt = self.outage_attempts[operation] = (
                    self.outage_attempts.get(operation, 0) + 1
                )
            if attempt <= outage["failures"]:
                kinds = outage.get("kinds") or ("reset",)
                kind = kinds[(attempt - 1) % len(kinds)]
                _state.faults_in_call = getattr(_state, "faults_in_call", 0) + 1
                self.write(event="fault", kind=kind, service=service, operation=operation)
                return self.fault(kind, request, service)
        rate = self.plan.get("rate", 0)
        if not operation.startswith(("Describe", "Get", "List")):
            rate = self.plan.get("mutating_rate", rate)
        services = self.plan.get("services")
        if not rate or (services and service not in services):
            return None
        with self.lock:
            hit = self.rng.random() < rate
            kind = self.rng.choice(self.plan.get("kinds") or ALL_KINDS)
        if not hit:
            return None
        if (
            kind == "lost-response"
            and operation not in REPLAY_SAFE
            and not operation.startswith(("Describe", "Get", "List"))
        ):
            kind = "reset"
        _state.faults_in_call = getattr(_state, "faults_in_call", 0) + 1
        self.write(event="fault", kind=kind, service=service, operation=operation)
        return self.fault(kind, request, service)

    def fault(self, kind, request, service):
        from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

        if kind == "throttle":
            if service == "ec2":
                return error_response(
                    request, service, 503, "RequestLimitExceeded", "Request limit exceeded."
                )
            code = "Throttling" if _protocol(request, service) == "query" else "ThrottlingException"
            return error_response(request, service, 400, code, "Rate exceeded")
        if kind == "unavailable":
            return error_response(
                request,
                service,
                503,
                "ServiceUnavailable",
                "Service is unavailable, try again later.",
            )
        if kind == "internal":
            code = "InternalError" if service == "ec2" else "InternalFailure"
            return error_response(request, service, 500, code, "An internal error has occurred.")
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "lost-response":
            from botocore.httpsession import URLLib3Session

            URLLib3Session().send(request)  # the server does the work ...
            raise ReadTimeoutError(endpoint_url=request.url)  # ... the answer is lost
        raise ValueError(kind)

    def wait_at_barrier(self, barrier, operation):
        folder = Path(barrier["folder"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("%s.%d" % (operation, os.getpid()))).touch()
        deadline = time.monotonic() + barrier.get("timeout", 20)
        while time.monotonic() < deadline:
            if len(list(folder.glob(operation + ".*"))) >= barrier["parties"]:
                self.write(event="barrier", operation=operation)
                return
            self.real_sleep(0.01)
        self.write(event="barrier-timeout", operation=operation)

    def template_image(self, request, params):
        """The ImageId of the template version a RunInstances request launches."""
        template_id = params.get("LaunchTemplate.LaunchTemplateId")
        if not template_id:
            return params.get("ImageId")
        import botocore.session

        _state.bypass = True
        try:
            client = botocore.session.get_session().create_client(
                "ec2", endpoint_url=request.url.split("?")[0].rstrip("/") or None
            )
            versions = client.describe_launch_template_versions(
                LaunchTemplateId=template_id,
                Versions=[params.get("LaunchTemplate.Version") or "$Default"],
            )
        finally:
            _state.bypass = False
        data = versions["LaunchTemplateVersions"][0].get("LaunchTemplateData") or {}
        return data.get("ImageId")

    # -- after a call completed -----------------------------------------------------------

    def after_call(self, http_response, model, parsed=None, **kwargs):
        if getattr(_state, "bypass", False):
            return
        dry_run_ok = ((parsed or {}).get("Error") or {}).get("Code") == "DryRunOperation"
        if http_response is None or (http_response.status_code >= 300 and not dry_run_ok):
            return self.after_call_error(event_name="after-call-error.x." + model.name)
        operation = model.name
        with self.lock:
            count = self.successes[operation] = self.successes.get(operation, 0) + 1
        survived, _state.faults_in_call = getattr(_state, "faults_in_call", 0), 0
        if survived:
            self.write(event="survived", operation=operation, count=survived)
        crash = self.plan.get("crash_after")
        if crash and crash["operation"] == operation and count == crash.get("nth", 1):
            self.write(event="crash", operation=operation, nth=count)
            os._exit(137)
        nth_change = self.plan.get("crash_after_mutating")
        if nth_change and mutating(operation, dry_run_ok):
            with self.lock:
                self.mutations += 1
                reached = self.mutations == nth_change
            self.write(event="mutation", operation=operation, nth=self.mutations)
            if reached:
                self.write(event="crash", operation=operation, nth=self.mutations)
                os._exit(137)

    def after_call_error(self, event_name, **kwargs):
        """The call failed for good: its faults were not survived."""
        lost, _state.faults_in_call = getattr(_state, "faults_in_call", 0), 0
        if lost and not getattr(_state, "bypass", False):
            self.write(event="gave-up", operation=event_name.rsplit(".", 1)[-1], count=lost)


def mutating(operation, dry_run):
    """Whether a call changes the account (a DryRun or a read does not)."""
    return not dry_run and not operation.startswith(("Describe", "Get", "List"))


def _form(request):
    body = request.body
    if not body:
        return {}
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
    if not isinstance(body, str) or body.startswith("{"):
        return {}
    return dict(parse_qsl(body, keep_blank_values=True))


def _protocol(request, service):
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "smithy-protocol" in headers:
        return "cbor"
    if "x-amz-target" in headers:
        return "json"
    return "ec2" if service == "ec2" else "query"


def error_response(request, service, status, code, message):
    """An HTTP error answer in the protocol the request used, as AWS sends it."""
    from botocore.awsrequest import AWSResponse

    protocol = _protocol(request, service)
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if protocol == "ec2":
        body = (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
            "<Code>%s</Code><Message>%s</Message></Error></Errors>"
            "<RequestID>%s</RequestID></Response>" % (code, message, request_id)
        )
        headers["Content-Type"] = "text/xml;charset=UTF-8"
        body = body.encode()
    elif protocol == "query":
        body = (
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">"
            "<Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>"
            "<RequestId>%s</RequestId></ErrorResponse>"
            % ("Sender" if status < 500 else "Receiver", code, message, request_id)
        )
        headers["Content-Type"] = "text/xml"
        body = body.encode()
    elif protocol == "json":
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-query-error"] = "%s;%s" % (code, "Sender" if status < 500 else "Receiver")
        body = json.dumps({"__type": code, "message": message}).encode()
    else:
        headers["Content-Type"] = "application/cbor"
        headers["smithy-protocol"] = "rpc-v2-cbor"
        headers["x-amzn-query-error"] = "%s;%s" % (code, "Sender" if status < 500 else "Receiver")
        body = _cbor_map({"__type": code, "message": message})
    return AWSResponse(request.url, status, headers, _Raw(body))


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def _cbor_text(text):
    data = text.encode("utf-8")
    if len(data) < 24:
        return bytes([0x60 | len(data)]) + data
    if len(data) < 256:
        return bytes([0x78, len(data)]) + data
    return bytes([0x79]) + len(data).to_bytes(2, "big") + data


def _cbor_map(mapping):
    out = bytes([0xA0 | len(mapping)])
    for key, value in mapping.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out

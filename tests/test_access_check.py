"""c7n_imds.access_check and the one-line answers of `c7n-imds run` / `plan` when the way to AWS
is missing: no credentials, a closed port, an endpoint that answers as nothing AWS
does, credentials AWS rejects. Every endpoint here is on 127.0.0.1."""

import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from c7n_imds.access_check import Unreachable, caller_identity
from tests.conftest import REPO

COMMAND = str(Path(sys.executable).with_name("c7n-imds"))
DETECT = str(REPO / "policies" / "detect.yml")


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


class EmptyReply(http.server.BaseHTTPRequestHandler):
    """What a captive proxy or a wrong service may send: a status with no body."""

    status = 200

    def do_POST(self):
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(params=[200, 503])
def not_aws(request):
    handler = type("Reply%d" % request.param, (EmptyReply,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_port
    server.shutdown()


def bare_env(tmp_path, **extra):
    """No credentials anywhere: no keys, no profile files, no instance role."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.update(extra)
    return env


def one_line(result, *expected):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("verb", ["run", "plan"])
def test_no_credentials_is_one_line(verb, tmp_path):
    result = subprocess.run(
        [COMMAND, verb, "-s", str(tmp_path / "out"), DETECT],
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    one_line(result, "c7n-imds %s: no AWS credentials found" % verb, "AWS_PROFILE")
    assert not (tmp_path / "out").exists()  # nothing started


def test_closed_endpoint_is_one_line(tmp_path):
    endpoint = "http://127.0.0.1:%d" % closed_port()
    result = subprocess.run(
        [COMMAND, "run", "-s", str(tmp_path / "out"), DETECT],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bare_env(
            tmp_path,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_ENDPOINT_URL=endpoint,
        ),
    )
    one_line(result, "cannot reach AWS STS", endpoint, "AWS_ENDPOINT_URL")


def test_missing_profile_names_it(tmp_path):
    result = subprocess.run(
        [COMMAND, "plan", "--profile", "prod-typo", DETECT],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bare_env(tmp_path),
    )
    one_line(result, "prod-typo")


def test_reply_not_from_aws_says_so(not_aws):
    with pytest.raises(Unreachable, match="did not answer as AWS does|answers HTTP 503"):
        caller_identity(region="us-east-1", session=_keyed_session(), endpoint=not_aws)


def test_reach_rejected_credentials_say_so(placebo_factory):
    factory = placebo_factory("test_reach_rejected_credentials_say_so")
    with pytest.raises(
        Unreachable,
        match="AWS rejected the credentials "
        r"\(InvalidClientTokenId: The security token",
    ):
        caller_identity(region="us-east-1", session=factory())


def test_identity_of_working_credentials(moto):
    endpoint, _ = moto
    identity = caller_identity(region="us-east-1", session=_keyed_session(), endpoint=endpoint)
    assert identity["Account"] == "123456789012"


def _keyed_session():
    import boto3

    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


def test_an_html_answer_is_named_never_pasted():
    from c7n_imds.access_check import plain

    page = (
        "<!DOCTYPE html><html><head><title>Access denied\n by proxy</title></head>"
        "<body><h1>Forbidden</h1>%s</body></html>" % ("x" * 5000)
    )
    assert plain("AccessDenied: %s" % page) == (
        "the endpoint answered with an HTML page, not as AWS does (Access denied by proxy): "
        "check proxy settings and AWS_ENDPOINT_URL"
    )
    assert plain("Throttling:  slow\n down") == "Throttling: slow down"
    assert len(plain("x" * 1000)) == 303

"""Shared test fixtures: placebo flight data for unit tests, a real moto server on
127.0.0.1 and the real `c7n-imds` command for end-to-end tests."""

import copy
import json
import os
from pathlib import Path

import boto3
import placebo
import pytest
from c7n.config import Config
from c7n.policy import PolicyCollection
from c7n.utils import reset_session_cache

import c7n_imds  # noqa: F401  (registers filters and actions)
from c7n_imds_testing import EndpointSession, aws_env, moto_server, run_c7n_imds

PLACEBO_DIR = Path(__file__).parent / "data" / "placebo"
REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


class PlaceboFactory:
    """A c7n session factory that replays recorded AWS responses for one test.

    Flight data lives in tests/data/placebo/<name>/<service>.<Operation>_<n>.json,
    each {"status_code": 200, "data": <the parsed AWS response>}.
    """

    region = REGION

    def __init__(self, name):
        self.path = PLACEBO_DIR / name
        assert self.path.is_dir(), "no flight data at %s" % self.path
        self.session = boto3.Session(
            region_name=REGION, aws_access_key_id="placebo", aws_secret_access_key="placebo"
        )
        self.pill = placebo.attach(self.session, data_path=str(self.path))
        self.pill.playback()
        self.served = []
        next_file = self.pill.get_next_file_path

        def serve(service, operation):
            found = next_file(service, operation)
            self.served.append(Path(found[0]).name)
            return found

        self.pill.get_next_file_path = serve
        self.calls = []
        # Placebo answers at before-call and stops the chain there, so count earlier,
        # while params are still the API parameters.
        self.session.events.register_first("before-parameter-build.*.*", self._count)

    def _count(self, model, params, **kwargs):
        self.calls.append((model.service_model.service_name, model.name, copy.deepcopy(params)))

    def __call__(self, *args, **kwargs):
        return self.session

    def called(self, operation):
        return [params for _, name, params in self.calls if name == operation]

    def repeated(self):
        """Files that answered more than one call of an operation that has several:
        placebo starts an operation's files over when they run out, so a call the
        flight does not know about silently gets the first answer. (An operation with
        one file may answer every call with it.)"""
        operations = {}
        for path in self.path.glob("*.json"):
            operations.setdefault(path.name.rsplit("_", 1)[0], []).append(path.name)
        return sorted(
            {
                f
                for f in self.served
                if self.served.count(f) > 1 and len(operations[f.rsplit("_", 1)[0]]) > 1
            }
        )


def flight_problems(factories):
    """A flight must say exactly what happened: every recorded response answers a call
    (of one of the test's policy runs), and no operation's files start over."""
    problems = []
    for path in sorted({f.path for f in factories}):
        used = {name for f in factories if f.path == path for name in f.served}
        unused = sorted(p.name for p in path.glob("*.json") if p.name not in used)
        if unused:
            problems.append("%s: never used: %s" % (path.name, ", ".join(unused)))
    for f in factories:
        if f.repeated():
            problems.append(
                "%s: answered more than one call: %s" % (f.path.name, ", ".join(f.repeated()))
            )
    return problems


E2E_FIXTURES = {"moto", "c7n_imds_cmd", "runs", "validated"}


def pytest_collection_modifyitems(items):
    """Every test is `unit` or `e2e`, by what it uses: a moto server or the real command
    makes it end to end (marked from the fixtures, so a marker cannot drift)."""
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        module = getattr(item, "module", None)
        e2e = uses & E2E_FIXTURES or getattr(module, "E2E", False)
        item.add_marker(pytest.mark.e2e if e2e else pytest.mark.unit)


@pytest.fixture
def placebo_factory(request):
    reset_session_cache()
    made = []

    def factory(name):
        # c7n caches the session of the first factory it meets (local_session): a new
        # factory must really answer the policy runs that follow
        reset_session_cache()
        made.append(PlaceboFactory(name))
        return made[-1]

    yield factory
    reset_session_cache()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.passed:
        problems = flight_problems(made)
        assert not problems, "flight data does not match the calls made:\n" + "\n".join(problems)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture
def load_policy(tmp_path):
    """Load one policy dict with c7n's own loader and schema validation."""

    def load(data, session_factory, output_dir=None):
        config = Config.empty(
            region=REGION, output_dir=str(output_dir or tmp_path), account_id="123456789012"
        )
        collection = PolicyCollection.from_data(
            {"policies": [data]}, config, session_factory=session_factory
        )
        policies = list(collection)
        for p in policies:
            p.validate()
        return policies[0]

    return load


@pytest.fixture
def moto():
    """A fresh moto server on 127.0.0.1 for one test: (endpoint, boto3-like session)."""
    with moto_server() as endpoint:
        session = EndpointSession(
            boto3.Session(
                region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            ),
            endpoint,
        )
        yield endpoint, session


@pytest.fixture
def c7n_imds_cmd():
    """Run `c7n-imds ARGS` in a subprocess against an endpoint; returns the result."""

    def run(args, endpoint, check=True):
        env = aws_env(endpoint)
        env["HOME"] = os.environ.get("HOME", "/tmp")
        result = run_c7n_imds(list(args), env)
        if check and result.returncode != 0:
            raise AssertionError(
                "c7n-imds %s exited %d\nstdout:\n%s\nstderr:\n%s"
                % (" ".join(args), result.returncode, result.stdout, result.stderr)
            )
        return result

    return run


def read_resources(out_dir, policy):
    return json.loads((Path(out_dir) / policy / "resources.json").read_text())


@pytest.fixture(scope="session", autouse=True)
def reliability_figures():
    """What the fault, crash and secret tests injected and survived, printed once."""
    yield
    from tests.support.commands import FIGURES

    if FIGURES:
        print("\nreliability figures: %s" % dict(FIGURES))

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
from c7n_imds.testing import EndpointSession, aws_env, moto_server, run_c7n_imds

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
            region_name=REGION, aws_access_key_id="placebo", aws_secret_access_key="placebo")
        self.pill = placebo.attach(self.session, data_path=str(self.path))
        self.pill.playback()
        self.calls = []
        # Placebo answers at before-call and stops the chain there, so count earlier,
        # while params are still the API parameters.
        self.session.events.register_first("before-parameter-build.*.*", self._count)

    def _count(self, model, params, **kwargs):
        self.calls.append((model.service_model.service_name, model.name,
                           copy.deepcopy(params)))

    def __call__(self, *args, **kwargs):
        return self.session

    def called(self, operation):
        return [params for _, name, params in self.calls if name == operation]


@pytest.fixture
def placebo_factory():
    reset_session_cache()
    yield PlaceboFactory
    reset_session_cache()


@pytest.fixture
def load_policy(tmp_path):
    """Load one policy dict with c7n's own loader and schema validation."""
    def load(data, session_factory, output_dir=None):
        config = Config.empty(region=REGION, output_dir=str(output_dir or tmp_path),
                              account_id="123456789012")
        collection = PolicyCollection.from_data(
            {"policies": [data]}, config, session_factory=session_factory)
        policies = list(collection)
        for p in policies:
            p.validate()
        return policies[0]
    return load


@pytest.fixture
def moto():
    """A fresh moto server on 127.0.0.1 for one test: (endpoint, boto3-like session)."""
    with moto_server() as endpoint:
        session = EndpointSession(boto3.Session(
            region_name=REGION, aws_access_key_id="testing",
            aws_secret_access_key="testing"), endpoint)
        yield endpoint, session


@pytest.fixture
def c7n_imds_cmd():
    """Run `c7n-imds ARGS` in a subprocess against an endpoint; returns the result."""
    def run(args, endpoint, check=True):
        env = aws_env(endpoint)
        env["HOME"] = os.environ.get("HOME", "/tmp")
        result = run_c7n_imds(list(args), env)
        if check and result.returncode != 0:
            raise AssertionError("c7n-imds %s exited %d\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(args), result.returncode, result.stdout, result.stderr))
        return result
    return run


def read_resources(out_dir, policy):
    return json.loads((Path(out_dir) / policy / "resources.json").read_text())


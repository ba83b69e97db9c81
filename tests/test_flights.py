"""The placebo flight data itself (tests/data/placebo/<test name>/): every folder
belongs to a test of that name, and every response file has exactly the shape AWS
returns - only members botocore's output shape knows, with their types. Whether each
file answers a call is checked after every placebo test (tests/conftest.py)."""

import json
import re
from pathlib import Path

import pytest

from tests.conftest import PLACEBO_DIR
from tests.support.placebo import flight_shape_errors

FLIGHTS = sorted(p.name for p in PLACEBO_DIR.iterdir() if p.is_dir())
TESTS = {
    name
    for path in Path(__file__).parent.glob("test_*.py")
    for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.M)
}


def test_there_are_flights():
    assert len(FLIGHTS) > 20


@pytest.mark.parametrize("flight", FLIGHTS)
def test_flight_belongs_to_a_test_and_has_aws_shape(flight):
    assert flight in TESTS, "no test named %s uses this flight" % flight
    assert flight_shape_errors(PLACEBO_DIR / flight) == []


def test_flight_shape_check_catches_a_moto_ism(tmp_path):
    """The shape check itself fails on a field AWS does not return."""
    (tmp_path / "autoscaling.DescribeAutoScalingGroups_1.json").write_text(
        json.dumps(
            {
                "status_code": 200,
                "data": {
                    "AutoScalingGroups": [
                        {"AutoScalingGroupName": "a", "MinSize": "0", "LaunchTemplateName": "x"}
                    ]
                },
            }
        )
    )
    errors = flight_shape_errors(tmp_path)
    assert any("MinSize: expected an integer" in e for e in errors), errors
    assert any("LaunchTemplateName: not a member" in e for e in errors), errors

"""Placebo helpers the placebo tests share: a factory that records every call's API
parameters, field-by-field assertions, and the check that a flight file has AWS's
shape (botocore's output shapes).

How flights are read. Placebo answers each operation's calls in order, one file per call
(<service>.<Operation>_<n>.json), whatever the parameters; every file must answer a
call and no operation's files may start over (tests/conftest.py checks both). A policy
run makes: DescribeAutoScalingGroups (custodian's listing), the `imds` filter's
describes, the action's own DescribeAutoScalingGroups (it re-reads the groups it
changes), its own describes, then its changes - each create followed by a describe of
exactly what it created (the read-back). Where one operation gets different answers,
the test's docstring says which call gets which. Flights are in AWS's shape
(botocore's parsed output; tests/test_flights.py checks every file); expected values
are written out from the documented rules, not computed by the code under test.
"""

import copy
import functools
import json
import re
from pathlib import Path

import botocore.session

from c7n_imds.model.outcomes import entries


def recording_factory(placebo_factory, name):
    """A PlaceboFactory whose ``called(operation)`` lists every call's API parameters
    (``api_calls`` holds (service, operation, parameters) in call order).

    conftest's factory counts on ``before-call``, which (a) runs *after* placebo's
    playback handler has answered, so botocore never reaches the counter, and (b) would
    see the serialized HTTP request, not the parameters. ``before-parameter-build`` sees
    the parameters as the caller passed them. Kept in a list of its own, so a fixed
    conftest counter cannot double the entries.
    """
    factory = placebo_factory(name)
    factory.api_calls = []

    def record(params, model, **kwargs):
        factory.api_calls.append(
            (model.service_model.service_name, model.name, copy.deepcopy(params))
        )

    factory.session.events.register_first("before-parameter-build.*.*", record)
    factory.called = lambda operation: [
        params for _, name, params in factory.api_calls if name == operation
    ]
    return factory


def assert_fields(actual, expected, what):
    """Compare the expected keys one by one, so a failure names the field."""
    for key, value in expected.items():
        assert key in actual, "%s: no %r in %r" % (what, key, actual)
        assert actual[key] == value, "%s: %s is %r, expected %r" % (what, key, actual[key], value)


def by_name(resources, key="AutoScalingGroupName"):
    return {r[key]: r for r in resources}


def _check_shape(shape, value, path, errors):
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict) or "__class__" in value:
            errors.append("%s: expected a structure" % path)
            return
        for key, member in value.items():
            if key not in shape.members:
                errors.append("%s.%s: not a member of %s" % (path, key, shape.name))
            else:
                _check_shape(shape.members[key], member, "%s.%s" % (path, key), errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append("%s: expected a list" % path)
            return
        for i, member in enumerate(value):
            _check_shape(shape.member, member, "%s[%d]" % (path, i), errors)
    elif kind == "string":
        if not isinstance(value, str):
            errors.append("%s: expected a string" % path)
        elif shape.enum and value not in shape.enum:
            errors.append("%s: %r is not one of %s" % (path, value, shape.enum))
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append("%s: expected an integer" % path)
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append("%s: expected a boolean" % path)
    elif kind in ("double", "float"):  # e.g. GetMetricData Values
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append("%s: expected a number" % path)
    elif kind == "timestamp":
        if not (isinstance(value, dict) and value.get("__class__") == "datetime"):
            errors.append("%s: expected a placebo datetime" % path)
    else:
        errors.append("%s: unchecked type %s" % (path, kind))


# placebo names a flight file by the client's endpoint prefix, not its service name
ENDPOINT_PREFIXES = {"monitoring": "cloudwatch"}


@functools.lru_cache(maxsize=None)
def service_model(service):
    return botocore.session.get_session().get_service_model(ENDPOINT_PREFIXES.get(service, service))


def flight_shape_errors(directory):
    """Every way the flight files in a directory differ from AWS's response shape."""
    errors = []
    for path in sorted(Path(directory).glob("*.json")):
        match = re.match(r"^([a-z0-9-]+)\.([A-Za-z0-9]+)_(\d+)\.json$", path.name)
        if not match:
            errors.append("%s: not <service>.<Operation>_<n>.json" % path.name)
            continue
        # placebo names a file by the service's endpoint prefix (cloudwatch: monitoring)
        service = ENDPOINT_PREFIXES.get(match.group(1), match.group(1))
        model = service_model(service).operation_model(match.group(2))
        flight = json.loads(path.read_text())
        if set(flight) != {"status_code", "data"}:
            errors.append("%s: keys %s" % (path.name, sorted(flight)))
            continue
        data = dict(flight["data"])
        data.pop("ResponseMetadata", None)
        if flight["status_code"] >= 400:
            error = data.pop("Error", None) or {}
            if not (isinstance(error.get("Code"), str) and isinstance(error.get("Message"), str)):
                errors.append("%s: an error needs Error.Code and Error.Message" % path.name)
            if data:
                errors.append("%s: unexpected keys beside Error: %s" % (path.name, sorted(data)))
        elif model.output_shape is None:
            if data:
                errors.append(
                    "%s: %s returns nothing, got %s" % (path.name, model.name, sorted(data))
                )
        else:
            _check_shape(model.output_shape, data, path.name, errors)
    return errors


# -- imds on asg -----------------------------------------------------------------------


def asg_policy(name, action, filters):
    return {"name": name, "resource": "asg", "filters": filters, "actions": [action]}


def group_tag(group, key, value):
    return {
        "Tags": [
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
        ]
    }


def dry_run(template_id, version, **network):
    return dict(
        {
            "DryRun": True,
            "MinCount": 1,
            "MaxCount": 1,
            "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": version},
        },
        **network,
    )


def call_order(factory, *operations):
    """[(operation, group or template)] of the given operations, in call order."""
    order = []
    for _, name, params in factory.api_calls:
        if name in operations:
            target = (
                params.get("AutoScalingGroupName")
                or params.get("LaunchTemplateId")
                or params.get("InstanceId")
                or (params.get("Tags") or [{}])[0].get("ResourceId")
            )
            order.append((name, target))
    return order


def changes(tmp_path, policy):
    """The action's own record per group (imds-changes.json schema 2 without the
    outcome's envelope: Status, Action and GroupChange, which test_outcomes covers)."""
    document = json.loads((tmp_path / policy / "imds-changes.json").read_text())
    assert document["SchemaVersion"] == 2, document
    return {
        c["AutoScalingGroupName"]: {
            k: v for k, v in c.items() if k not in ("Status", "Action", "GroupChange")
        }
        for c in entries(document)
    }


def derived_options(description, source_version):
    """The metadata options a c7n-imds version description names, after checking that it
    names the source version ("c7n-imds: from version N with {json}")."""
    prefix = "c7n-imds: from version %s with " % source_version
    assert description.startswith(prefix), description
    return json.loads(description[len(prefix) :])


def set_access_policy(**options):
    return asg_policy(
        "asg-lt-imdsv2",
        dict({"type": "set-metadata-access"}, **options),
        [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
    )

"""c7n_imds.model.containers: container detection and the hop limit it asks for."""

import base64

import pytest

from c7n_imds.model.containers import resolve_hop_limit, runs_containers


def tags(*keys):
    return {"Tags": [{"Key": k, "Value": "x"} for k in keys]}


@pytest.mark.parametrize(
    "asg, user_data, expected",
    [
        (tags("kubernetes.io/cluster/prod"), None, True),
        (tags("eks:nodegroup-name"), None, True),
        (tags("AmazonECSManaged"), None, True),
        (tags("owner"), base64.b64encode(b"#!/bin/bash\n/etc/eks/bootstrap.sh prod\n"), True),
        (tags("owner"), base64.b64encode(b"echo ECS_CLUSTER=web >> /etc/ecs/ecs.config"), True),
        (tags("owner"), base64.b64encode(b"#!/bin/bash\nyum install -y nginx\n"), False),
        (tags(), "not base64 !!", False),
    ],
)
def test_container_detection(asg, user_data, expected):
    assert (
        runs_containers(asg, user_data.decode() if isinstance(user_data, bytes) else user_data)
        is expected
    )


@pytest.mark.parametrize(
    "option, existing, containers, expected",
    [
        ("auto", None, True, 2),
        ("auto", {"HttpPutResponseHopLimit": 3}, True, 3),
        ("auto", {"HttpPutResponseHopLimit": 1}, False, "preserve"),
        ("preserve", None, True, "preserve"),
        (5, None, False, 5),
    ],
)
def test_hop_limit(option, existing, containers, expected):
    assert resolve_hop_limit(option, existing, containers) == expected

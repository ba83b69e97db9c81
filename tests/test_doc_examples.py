"""Every filter and action of the plugin documents itself with a runnable YAML example
(users read it with `c7n-imds schema asg.actions.NAME`); each example must validate
against custodian's schema and load as a policy, as Cloud Custodian's own
tests/test_doc_examples.py does for its resources. Also: each declares its IAM
permissions and a schema that rejects unknown options."""

import textwrap

import pytest
import yaml
from c7n.config import Config
from c7n.policy import PolicyCollection
from c7n.provider import clouds
from c7n.schema import generate, validate

import c7n_imds  # noqa: F401  (registers filters and actions)


def plugin_elements():
    """(resource type, "filters" | "actions", name, class) of everything c7n_imds
    registers."""
    found = []
    for resource_type, resource in sorted(clouds["aws"].resources.items()):
        for kind, registry in (
            ("filters", resource.filter_registry),
            ("actions", resource.action_registry),
        ):
            for name, element in sorted(registry.items()):
                if element.__module__.startswith("c7n_imds."):
                    found.append((resource_type, kind, name, element))
    return found


ELEMENTS = plugin_elements()


def examples(element):
    """The YAML blocks of a docstring's ``.. code-block:: yaml`` sections."""
    doc = element.__doc__ or ""
    blocks = []
    for part in doc.split(".. code-block:: yaml")[1:]:
        lines = []
        for line in part.splitlines()[1:]:
            if line.strip() and not line.startswith(" " * 8) and lines:
                break
            lines.append(line)
        blocks.append(textwrap.dedent("\n".join(lines)))
    return blocks


def test_the_plugin_registers_what_the_readme_lists():
    names = {(r, k, n) for r, k, n, _ in ELEMENTS}
    assert {
        ("asg", "filters", "imds"),
        ("launch-config", "filters", "imds"),
        ("asg", "filters", "imdsv1-usage"),
        ("ec2", "filters", "imdsv1-usage"),
        ("asg", "filters", "imds-exempt"),
        ("launch-config", "filters", "imds-converted"),
        ("asg", "actions", "convert-to-launch-template"),
        ("launch-config", "actions", "convert-to-launch-template"),
        ("asg", "actions", "set-metadata-access"),
        ("asg", "actions", "copy-launch-configuration"),
        ("asg", "actions", "revert-imds-remediation"),
        ("asg", "actions", "disable-beanstalk-imdsv1"),
        ("asg", "actions", "create-stack-change-set"),
        ("asg", "actions", "set-nodegroup-metadata-access"),
    } <= names


@pytest.fixture(scope="module")
def schema():
    return generate()


@pytest.mark.parametrize(
    "resource_type, kind, name, element", ELEMENTS, ids=["%s.%s.%s" % e[:3] for e in ELEMENTS]
)
def test_docstring_example_validates_and_loads(schema, resource_type, kind, name, element):
    blocks = examples(element)
    assert blocks, "%s.%s.%s has no YAML example" % (resource_type, kind, name)
    for block in blocks:
        data = yaml.safe_load(block)
        assert validate(data, schema) == [], block
        policies = list(
            PolicyCollection.from_data(
                data, Config.empty(region="us-east-1", account_id="123456789012")
            )
        )
        assert policies, block
        used = set()
        for policy in policies:
            policy.validate()
            manager = policy.resource_manager
            used |= {
                (policy.resource_type.split(".")[-1], "filters", f.type) for f in manager.filters
            } | {(policy.resource_type.split(".")[-1], "actions", a.type) for a in manager.actions}
        assert (resource_type, kind, name) in used, "the example does not use %s" % name


@pytest.mark.parametrize(
    "resource_type, kind, name, element", ELEMENTS, ids=["%s.%s.%s" % e[:3] for e in ELEMENTS]
)
def test_declares_permissions_and_a_closed_schema(resource_type, kind, name, element):
    assert element.permissions, name
    assert element.schema.get("additionalProperties") is False or (
        "rinherit" in str(element.schema) or element.schema.get("$ref")
    ), name
    # a docstring opens with one sentence
    assert (element.__doc__ or "").strip().split("\n\n")[0].endswith("."), name

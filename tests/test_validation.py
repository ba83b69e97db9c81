"""Bad input is refused at `c7n-imds validate`, before any API call: every invalid option
of every filter and action, and mistyped filter keys and values."""

import json
import re

import pytest
import yaml

from tests import faults
from tests.support.commands import FIGURES, c7n

# module-scoped fixtures: the whole module on one worker (make test-e2e: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("validation")

ASG_ACTION_OPTIONS = {
    "http-endpoint": ("on", "'preserve', 'enabled', 'disabled'"),
    "running-instances": ("replace", "'keep', 'modify', 'refresh'"),
    "iac-managed": ("ignore", "'skip', 'remediate'"),
    "allow-launch-changes": (["images"], "'image', 'instance-profile'"),
    "imdsv1-gate": ({"day": 3}, "'day' was unexpected"),
}


HOP = ("hop-limit", [(0, "'maximum': 64"), (65, "'maximum': 64"), ("two", "'auto'")])
REFRESH = [
    ({"MinHealthyPercentage": 101}, "MinHealthyPercentage", "'maximum': 100"),
    ({"MaxHealthyPercentage": 99}, "MaxHealthyPercentage", "'minimum': 100"),
    ({"InstanceWarmup": -1}, "InstanceWarmup", "'minimum': 0"),
    ({"SkipMatching": "yes"}, "SkipMatching", "'boolean'"),
    ({"ScaleInProtectedInstances": "Skip"}, "ScaleInProtectedInstances", "'Refresh'"),
    ({"StandbyInstances": "Keep"}, "StandbyInstances", "'Terminate'"),
    ({"BakeTime": -5}, "BakeTime", "'minimum': 0"),
    ({"Unknown": 1}, "Unknown", "MinHealthyPercentage"),
    # what StartInstanceRefresh would refuse only after the groups switched
    ({"MaxHealthyPercentage": 150}, "MaxHealthyPercentage", "needs MinHealthyPercentage"),
    (
        {"MinHealthyPercentage": 40, "MaxHealthyPercentage": 150},
        "MaxHealthyPercentage",
        "more than 100",
    ),
]


def bad_option_cases():
    """(resource, kind, block, option, allowed) - one invalid value each. `allowed` is
    text the message must show: the allowed values or the limit."""
    cases = []

    def action(resource, action_type, option, value, allowed):
        cases.append((resource, "actions", {"type": action_type, option: value}, option, allowed))

    remediations = [
        ("asg", "convert-to-launch-template"),
        ("asg", "set-metadata-access"),
        ("asg", "copy-launch-configuration"),
        ("launch-config", "convert-to-launch-template"),
    ]
    for resource, action_type in remediations:
        for option, (value, allowed) in ASG_ACTION_OPTIONS.items():
            action(resource, action_type, option, value, allowed)
        for value, allowed in HOP[1]:
            action(resource, action_type, HOP[0], value, allowed)
        for value, sub, allowed in REFRESH:
            cases.append(
                (
                    resource,
                    "actions",
                    {"type": action_type, "refresh-preferences": value},
                    "refresh-preferences",
                    allowed,
                )
            )
        action(resource, action_type, "no-such-option", 1, "was unexpected")
        action(resource, action_type, "rate-budget", 1.5, "'maximum': 1")
        action(resource, action_type, "rate-budget", 0, "'exclusiveMinimum': 0")
    action("asg", "revert-imds-remediation", "rate-budget", 2, "'maximum': 1")
    for resource in ("asg", "launch-config"):
        action(
            resource,
            "convert-to-launch-template",
            "http-tokens",
            "optional",
            "'required', 'preserve'",
        )
        action(resource, "convert-to-launch-template", "version", "3", "'$Default', '$Latest'")
        action(resource, "convert-to-launch-template", "verify", "yes", "'boolean'")
        for value, allowed in ((0, "'minimum': 1"), (17, "'maximum': 16"), ("4", "'integer'")):
            action(resource, "convert-to-launch-template", "concurrency", value, allowed)
    action("asg", "set-metadata-access", "http-tokens", "maybe", "'required', 'optional'")
    action("asg", "set-metadata-access", "metadata-tags", "on", "'preserve', 'enabled', 'disabled'")
    action("asg", "set-metadata-access", "set-default", "no", "'boolean'")
    action("asg", "set-metadata-access", "verify", "yes", "'boolean'")
    action("asg", "copy-launch-configuration", "http-tokens", "required", "was unexpected")
    action("asg", "revert-imds-remediation", "exempt", "yes", "'boolean'")
    action("asg", "revert-imds-remediation", "no-such-option", 1, "was unexpected")
    # trusted-principals: role, user or root ARNs (c7n_imds.model.provenance.PRINCIPAL_ARN)
    for resource, action_type in (
        ("asg", "revert-imds-remediation"),
        ("asg", "convert-to-launch-template"),
        ("launch-config", "convert-to-launch-template"),
    ):
        action(resource, action_type, "trusted-principals", ["role/c7n-imds"], "does not match")
    # the actions that fix a group at its owner
    action("asg", "disable-beanstalk-imdsv1", "rate-budget", 2, "'maximum': 1")
    action("asg", "disable-beanstalk-imdsv1", "no-such-option", 1, "was unexpected")
    action(
        "asg",
        "disable-beanstalk-imdsv1",
        "allow-launch-changes",
        ["all-at-once"],
        "'replace-all-at-once'",
    )
    action("asg", "disable-beanstalk-imdsv1", "imdsv1-gate", {"missing": "maybe"}, "'zero'")
    action("asg", "create-stack-change-set", "allow-launch-changes", ["sizes"], "'group-size'")
    action("asg", "create-stack-change-set", "template-bucket", 7, "'string'")
    for value, allowed in HOP[1]:
        action("asg", "create-stack-change-set", HOP[0], value, allowed)
    action(
        "asg", "create-stack-change-set", "http-endpoint", "on", "'preserve', 'enabled', 'disabled'"
    )
    action("asg", "create-stack-change-set", "rate-budget", 0, "'exclusiveMinimum': 0")
    action("asg", "create-stack-change-set", "execute", True, "was unexpected")
    for value, allowed in HOP[1]:
        action("asg", "set-nodegroup-metadata-access", HOP[0], value, allowed)
    for option, value, allowed in (
        ("http-tokens", "maybe", "'required', 'optional'"),
        ("http-endpoint", "on", "'preserve', 'enabled', 'disabled'"),
        ("verify", "yes", "'boolean'"),
        ("force", "yes", "'boolean'"),
        ("rate-budget", 2, "'maximum': 1"),
        ("set-default", True, "was unexpected"),
        ("allow-launch-changes", ["kernel"], "'image'"),
        ("imdsv1-gate", {"days": 0}, "less than the minimum of 1"),
    ):
        action("asg", "set-nodegroup-metadata-access", option, value, allowed)

    def filter_(resource, block, option, allowed):
        cases.append((resource, "filters", block, option, allowed))

    for resource in ("asg", "launch-config"):
        filter_(
            resource,
            {"type": "imds", "key": "HttpTokens", "op": "bogus", "value": "optional"},
            "op",
            "'eq'",
        )
        filter_(
            resource,
            {"type": "imds", "key": "HttpTokens", "value": "optional", "value_type": "bogus"},
            "value_type",
            "'age'",
        )
    filter_("asg", {"type": "imdsv1-usage", "days": 0, "value": 0}, "days", "'minimum': 1")
    filter_("asg", {"type": "imdsv1-usage", "days": 456, "value": 0}, "days", "'maximum': 455")
    filter_("asg", {"type": "imdsv1-usage", "days": "14", "value": 0}, "days", "'number'")
    filter_(
        "asg",
        {"type": "imdsv1-usage", "missing": "maybe", "value": 0},
        "missing",
        "'exclude', 'zero', 'include'",
    )
    filter_("ec2", {"type": "imdsv1-usage", "days": 0, "value": 0}, "days", "'minimum': 1")
    filter_(
        "ec2",
        {"type": "imdsv1-usage", "missing": "maybe", "value": 0},
        "missing",
        "'exclude', 'zero', 'include'",
    )
    for resource in ("asg", "ec2"):
        filter_(resource, {"type": "imdsv1-usage", "op": "bogus", "value": 0}, "op", "'eq'")
        filter_(
            resource,
            {"type": "imdsv1-usage", "value_type": "bogus", "value": 0},
            "value_type",
            "'age'",
        )
    filter_(
        "asg",
        {"type": "imds-exempt", "key": "Exempt", "value_type": "bogus", "value": True},
        "value_type",
        "'age'",
    )
    filter_(
        "asg", {"type": "imds-exempt", "key": "Exempt", "op": "bogus", "value": True}, "op", "'eq'"
    )
    filter_("launch-config", {"type": "imds-converted", "days": -1}, "days", "'minimum': 0")
    filter_("launch-config", {"type": "imds-converted", "days": "14"}, "days", "'number'")
    filter_("launch-config", {"type": "imds-converted", "day": 3}, "day", "was unexpected")
    return cases


def mistyped_filter_cases():
    """Keys and values the filters document a fixed set of. A mistyped one silently
    matches nothing (or everything), so a remediation policy silently does nothing."""
    cases = []
    for resource in ("asg", "launch-config"):
        cases += [
            (
                resource,
                "filters",
                {"type": "imds", "key": "HttpToken", "value": "optional"},
                "key",
                "HttpTokens",
            ),
            (
                resource,
                "filters",
                {"type": "imds", "key": "HttpTokens", "value": "requried"},
                "value",
                "'required', 'optional'",
            ),
            (
                resource,
                "filters",
                {"type": "imds", "key": "LaunchType", "value": "launch-configuraton"},
                "value",
                "launch-template",
            ),
        ]
    cases += [
        ("asg", "filters", {"type": "imdsv1-usage", "key": "Totl", "value": 0}, "key", "Total"),
        (
            "asg",
            "filters",
            {"type": "imds-exempt", "key": "Exempted", "value": True},
            "key",
            "Exempt",
        ),
    ]
    return cases


VALID_POLICIES = """
policies:
  - name: every-option-valid-asg
    resource: asg
    filters:
      - {type: imds, key: HttpTokens, value: optional}
      - {type: imds, key: LaunchType, op: in, value: [launch-configuration]}
      - {type: imdsv1-usage, days: 14, value: 0, missing: zero, op: eq}
      - {type: imds-exempt, key: Exempt, value: false}
    actions:
      - type: convert-to-launch-template
        http-tokens: required
        hop-limit: auto
        http-endpoint: preserve
        version: $Latest
        verify: false
        concurrency: 16
        iac-managed: remediate
        running-instances: refresh
        refresh-preferences: {MinHealthyPercentage: 50, MaxHealthyPercentage: 150,
          InstanceWarmup: 60, SkipMatching: true, ScaleInProtectedInstances: Wait,
          StandbyInstances: Ignore, BakeTime: 0}
  - name: every-option-valid-template
    resource: asg
    actions:
      - {type: set-metadata-access, http-tokens: optional, hop-limit: 64,
         http-endpoint: enabled, metadata-tags: disabled, set-default: false,
         verify: true, iac-managed: skip, running-instances: modify}
  - name: every-option-valid-copy
    resource: asg
    actions:
      - {type: copy-launch-configuration, hop-limit: 1, http-endpoint: disabled,
         iac-managed: skip, running-instances: keep}
  - name: every-option-valid-revert
    resource: asg
    actions:
      - {type: revert-imds-remediation, exempt: false}
  - name: every-option-valid-lc
    resource: launch-config
    filters:
      - {type: imds, key: HttpTokens, value: optional}
      - {type: imds-converted, days: 0}
    actions:
      - {type: convert-to-launch-template, hop-limit: preserve, version: $Default,
         concurrency: 1}
  - name: every-option-valid-ec2
    resource: ec2
    filters:
      - {type: imdsv1-usage, days: 455, missing: include, value: 0, op: gt}
"""


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """One `c7n-imds validate` over every bad case, each in its own file, plus a file
    using every option validly. Its AWS endpoint is a closed port and every HTTP
    request it attempts is recorded."""
    tmp_path = tmp_path_factory.mktemp("validate")
    cases = {"option": bad_option_cases(), "typo": mistyped_filter_cases()}
    files, expected = [], {}
    for group, group_cases in cases.items():
        for n, (resource, kind, block, option, allowed) in enumerate(group_cases):
            name = "bad-%s-%02d-%s-%s" % (
                group,
                n,
                resource,
                re.sub(r"[^a-z0-9]+", "-", block["type"]),
            )
            path = tmp_path / ("%s.yml" % name)
            path.write_text(
                yaml.safe_dump(
                    {"policies": [{"name": name, "resource": resource, kind: [block]}]},
                    sort_keys=False,
                )
            )
            files.append(str(path))
            expected[str(path)] = (group, name, option, allowed, block)
    valid = tmp_path / "valid.yml"
    valid.write_text(VALID_POLICIES)
    log = tmp_path / "calls.jsonl"
    result = c7n(
        ["validate", str(valid)] + files,
        None,
        tmp_path,
        {"record": True, "log": str(log)},
        endpoint_url="http://127.0.0.1:9",
    )
    FIGURES["invalid options checked"] += len(expected)
    return result, split_validate_output(result.stderr), expected, str(valid), log


def validate_problems(validated, group):
    result, verdicts, expected, _, _ = validated
    problems, checked = [], 0
    for path, (case_group, name, option, allowed, block) in expected.items():
        if case_group != group:
            continue
        checked += 1
        text = verdicts.get(path)
        if text is None or text == "valid":
            problems.append("%s accepted: %s" % (name, json.dumps(block)))
            continue
        # an unknown option gets our own line ("unknown option 'x'; allowed: ...")
        # rather than jsonschema's "'x' was unexpected"
        unknown = "unknown option '%s'" % option
        missing = [
            part
            for part in (name, option, allowed)
            if part not in text and not (part == "was unexpected" and unknown in text)
        ]
        if missing:
            problems.append("%s: message lacks %s:\n%s" % (name, missing, text[:600]))
    return problems, checked


def test_every_invalid_option_is_rejected_at_validate_without_api_calls(validated):
    """Every option of every c7n-imds filter and action, given an invalid value, is
    refused by `c7n-imds validate` with a message naming the policy, the option and
    what is allowed - before, and without, any API call."""
    result, verdicts, _, valid, log = validated
    assert result.returncode != 0
    assert faults.read_log(log) == [], "validate made API calls"
    for marker in ("Could not connect", "EndpointConnectionError", "Traceback"):
        assert marker not in result.stderr, marker
    assert verdicts.get(valid) == "valid", verdicts.get(valid)
    problems, checked = validate_problems(validated, "option")
    assert checked >= 60
    assert not problems, "%d of %d invalid options not rejected properly:\n%s" % (
        len(problems),
        checked,
        "\n".join(problems),
    )


def test_the_invalid_cases_cover_every_option_there_is():
    """Every option of every filter and action c7n-imds registers (read from their
    schemas, so a new option needs a case here) has an invalid-value case above."""
    from c7n.filters import ValueFilter
    from c7n.resources.asg import ASG, LaunchConfig
    from c7n.resources.ec2 import EC2

    covered = {
        (resource, block["type"], option) for resource, _, block, option, _ in bad_option_cases()
    }
    covered |= {
        (resource, block["type"], "refresh-preferences." + sub)
        for resource, _, block, _, _ in bad_option_cases()
        for sub in block.get("refresh-preferences") or ()
    }
    value_filter_options = set(ValueFilter.schema["properties"])
    missing = []
    for resource, manager in (("asg", ASG), ("launch-config", LaunchConfig), ("ec2", EC2)):
        for registry in (manager.filter_registry, manager.action_registry):
            for name, klass in registry.items():
                if not klass.__module__.startswith("c7n_imds"):
                    continue
                properties = klass.schema.get("properties") or {}
                options = set(properties) - value_filter_options - {"type"}
                if set(properties) & value_filter_options - {"type"}:
                    options |= {"op", "value_type"}  # the value filter's own enums
                for option in options:
                    if (resource, name, option) not in covered:
                        missing.append((resource, name, option))
                nested = (properties.get("refresh-preferences") or {}).get("properties")
                for sub in nested or ():
                    if (resource, name, "refresh-preferences." + sub) not in covered:
                        missing.append((resource, name, "refresh-preferences." + sub))
    assert not missing, "options without an invalid-value case: %s" % sorted(missing)


def test_mistyped_filter_keys_and_values_are_rejected_at_validate(validated):
    """`imds`, `imdsv1-usage` and `imds-exempt` document a closed set of keys (and
    `HttpTokens` / `LaunchType` a closed set of values). A typo such as
    ``key: HttpToken`` validates today and then matches no group, so remediation
    silently does nothing - the classic false green."""
    problems, checked = validate_problems(validated, "typo")
    assert not problems, "%d of %d mistyped filter keys/values accepted:\n%s" % (
        len(problems),
        checked,
        "\n".join(problems),
    )


def split_validate_output(stderr):
    """{file: 'valid' | the line given for it}: `c7n-imds validate` answers one line
    per file, "c7n-imds validate: FILE: valid" or "c7n-imds validate: FILE: problem"."""
    verdicts = {}
    for line in stderr.splitlines():
        match = re.match(r"^c7n-imds validate: (\S+?\.ya?ml): (.*)$", line)
        if match:
            verdicts[match.group(1)] = "valid" if match.group(2) == "valid" else line
    return verdicts

"""One line for each ordinary mistake, before anything touches an account.

Custodian answers a missing file, a YAML error or a tab with a traceback, and an option
typo with a schema dump of 50-70 lines whose useful line is the third. A new user
reads the first line only: each check here raises Mistake with a line that names the
file, policy, option, region or folder and what to do. ``detail`` keeps what custodian
said, shown with ``-v``.
"""

import difflib
import logging
import os
import re
import tempfile

import yaml

POLICY_SUFFIXES = (".yml", ".yaml", ".json")
LEFT_HINT = (
    "c7n-left checks and runs them over Terraform, not c7n-imds: pip install "
    "c7n-left==0.3.39; c7n-left run -p DIR -d TERRAFORM_DIR"
)


class Mistake(Exception):
    """What the user got wrong, in one line; ``detail`` is custodian's own report."""

    def __init__(self, line, detail=""):
        super().__init__(line)
        self.detail = detail


def _closest(word, choices, n=1):
    found = sorted(difflib.get_close_matches(str(word), sorted(choices), n=n, cutoff=0.6))
    return " (did you mean %s?)" % " or ".join(found) if found else ""


def read_policy_file(path):
    """The parsed file, as custodian's validate reads it (duplicate keys refused)."""
    from c7n.commands import DuplicateKeyCheckLoader

    if not os.path.exists(os.path.expanduser(path)):
        raise Mistake(
            "%s: no such file; give the path of a policy file (`c7n-imds pack "
            "copy DIR` puts the pack's files into DIR)" % path
        )
    if os.path.isdir(path):
        raise Mistake(
            "%s: a folder; give the policy files in it (%s/*.yml)" % (path, path.rstrip("/"))
        )
    if not path.endswith(POLICY_SUFFIXES):
        raise Mistake("%s: a policy file ends in .yml, .yaml or .json" % path)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise Mistake("%s: not UTF-8 text; save it as UTF-8" % path) from None
    except OSError as e:
        raise Mistake("%s: cannot read (%s)" % (path, e.strerror or e)) from None
    try:
        data = yaml.load(text, Loader=DuplicateKeyCheckLoader)  # nosec: a safe loader
    except yaml.YAMLError as e:
        raise Mistake(yaml_line(path, e, text), str(e)) from None
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list):
        raise Mistake(
            "%s: holds no policies (a policy file has a top-level `policies:` list)" % path
        )
    return data


def yaml_line(path, error, text=""):
    """A YAML error as `file line L column C: what`; a tab gets what to do about it."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = "%s line %d column %d" % (path, mark.line + 1, mark.column + 1) if mark else path
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    lines = text.splitlines()
    at = lines[mark.line][mark.column : mark.column + 1] if mark and mark.line < len(lines) else ""
    if at == "\t" or "'\\t'" in problem:
        return "%s: a tab character; YAML indents with spaces only - replace the tab" % where
    return "%s: not valid YAML (%s); fix the file" % (where, problem)


def check_policy_files(paths):
    """Validate the files as `c7n-imds validate` does (custodian's validate command:
    structure, schema, unique names across the files, each policy's own validation),
    after our own one-line checks; Mistake for the first problem. Returns the data."""
    if not paths:
        raise Mistake("no policy file given; name one or more (e.g. remediate.yml)")
    loaded = [(path, read_policy_file(path)) for path in paths]
    for path, data in loaded:
        left = [
            p.get("resource")
            for p in data["policies"]
            if isinstance(p, dict) and str(p.get("resource", "")).startswith("terraform.")
        ]
        if left:
            raise Mistake("%s: c7n-left policies (resource %s): %s" % (path, left[0], LEFT_HINT))
    from c7n.exceptions import PolicyValidationError
    from c7n.resources import load_resources
    from c7n.structure import StructureParser

    structure = StructureParser()
    names = {}
    for path, data in loaded:
        try:
            structure.validate(data)
        except PolicyValidationError as e:
            raise Mistake("%s: %s" % (path, " ".join(str(e).split()))) from None
        load_resources(structure.get_resource_types(data))
        for policy in data["policies"]:
            option_typos(path, policy)
            if policy["name"] in names:
                raise Mistake(
                    "%s: policy %s: the name is also used in %s; policy names "
                    "must be unique" % (path, policy["name"], names[policy["name"]])
                )
            names[policy["name"]] = path
    custodian_validate([path for path, _ in loaded])
    return [data for _, data in loaded]


def option_typos(path, policy):
    """An unknown policy key, filter or action type, or option - named with the allowed
    ones: the line custodian's schema dump buries."""
    from c7n.provider import get_resource_class
    from c7n.schema import generate  # noqa: F401  (c7n's registries complete)

    name = policy["name"]
    allowed = set(_policy_keys())
    unknown = sorted(set(policy) - allowed)
    if unknown:
        raise Mistake(
            "%s: policy %s: unknown key %r%s; allowed: %s"
            % (path, name, unknown[0], _closest(unknown[0], allowed), ", ".join(sorted(allowed)))
        )
    try:
        resource = get_resource_class(policy["resource"])
    except (KeyError, ValueError):
        return  # custodian's validation names an unknown resource
    for kind, registry in (
        ("filter", resource.filter_registry),
        ("action", resource.action_registry),
    ):
        for element in _elements(policy.get(kind + "s") or (), kind):
            _check_element(path, name, kind, registry, element, policy["resource"])


def _policy_keys():
    from c7n.schema import generate

    return generate()["definitions"]["policy"]["properties"].keys()


BOOLEAN_BLOCKS = ("or", "and", "not")


def _elements(items, kind):
    """Each filter or action of a list, boolean filter blocks opened."""
    for item in items:
        if (
            kind == "filter"
            and isinstance(item, dict)
            and len(item) == 1
            and next(iter(item)) in BOOLEAN_BLOCKS
        ):
            yield from _elements(next(iter(item.values())) or (), kind)
        else:
            yield item


def _check_element(path, name, kind, registry, element, resource):
    if isinstance(element, str):
        type_name = element
    elif isinstance(element, dict) and "type" in element:
        type_name = element["type"]
    else:
        return  # a value filter without type ({"tag:x": ...}): custodian's schema
    known = set(registry.keys())
    cls = registry.get(type_name)
    if cls is None:
        raise Mistake(
            "%s: policy %s: unknown %s type %r for %s%s; `c7n-imds schema "
            "%s.%ss` lists them"
            % (path, name, kind, type_name, resource, _closest(type_name, known), resource, kind)
        )
    schema = getattr(cls, "schema", None) or {}
    properties = schema.get("properties") or {}
    if (
        not isinstance(element, dict)
        or schema.get("additionalProperties") is not False
        or not properties
    ):
        return
    unknown = sorted(set(element) - set(properties))
    if unknown:
        raise Mistake(
            "%s: policy %s, %s %s: unknown option %r%s; allowed: %s"
            % (
                path,
                name,
                kind,
                type_name,
                unknown[0],
                _closest(unknown[0], properties),
                ", ".join(sorted(set(properties) - {"type"})),
            )
        )


class _Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines = []

    def emit(self, record):
        message = record.getMessage()
        if not message.startswith(("Configuration invalid: ", "Found ")):
            self.lines.append(message)


def custodian_validate(paths):
    """Custodian's validate command over the files, its error log kept: Mistake with
    its first line, the whole report as detail."""
    from c7n.commands import validate
    from c7n.config import Config

    captured = _Captured()
    logger = logging.getLogger("custodian.commands")
    logger.addHandler(captured)
    propagate, logger.propagate = logger.propagate, False
    try:
        validate(Config.empty(configs=list(paths), check_deprecations="yes"))
    except SystemExit:
        pass
    except (ValueError, yaml.YAMLError) as e:
        captured.lines.append(str(e))
    finally:
        logger.removeHandler(captured)
        logger.propagate = propagate
    if captured.lines:
        detail = "\n".join(captured.lines)
        raise Mistake(
            "%s: invalid policy: %s (-v for custodian's report)"
            % (", ".join(paths) if len(paths) > 1 else paths[0], schema_line(detail)),
            detail,
        )


# custodian's schema report: "Error on policy:NAME resource:TYPE", the specific error,
# then jsonschema's "On instance['option'][...]:" naming where it is
ERROR_ON = re.compile(r"Error on policy:(\S+) resource:(\S+)")
ON_INSTANCE = re.compile(r"On instance((?:\[[^\]]*\])+):")


def schema_line(report):
    """One line from custodian's validation report: the policy, the option (where
    jsonschema names it) and the error, e.g. "policy p1 (asg): http-endpoint: 'on' is
    not one of ['preserve', 'enabled', 'disabled']"."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    head = next((ERROR_ON.search(line) for line in lines if ERROR_ON.search(line)), None)
    if head is None:
        return " ".join(lines[0].split())[:300] if lines else "invalid"
    after = lines[lines.index(head.string.strip()) + 1 :]
    message = next(
        (line for line in after if not line.startswith(("Failed validating", "On instance", "{"))),
        "",
    )
    where = next((ON_INSTANCE.search(line) for line in after if ON_INSTANCE.search(line)), None)
    keys = [k.strip("'\"") for k in re.findall(r"\[([^\]]*)\]", where.group(1))] if where else []
    option = ".".join(k for k in keys if not k.isdigit())
    # what the schema allows there: the lines after "Failed validating", up to "On"
    failed = next((i for i, line in enumerate(after) if line.startswith("Failed validating")), None)
    allowed = []
    for line in after[failed + 1 :] if failed is not None else ():
        if line.startswith("On instance"):
            break
        allowed.append(line)
    schema = " ".join(allowed)
    return "policy %s (%s): %s%s%s" % (
        head.group(1),
        head.group(2),
        "%s: " % option if option else "",
        message[:300],
        " (schema: %s)" % (schema[:300] + ("..." if len(schema) > 300 else "")) if schema else "",
    )


def check_regions(regions, service="ec2"):
    """Each region custodian will be given must exist (or be 'all'): one line naming it
    and the valid ones, instead of ten warnings and a connection error per client."""
    # what botocore's session.get_available_regions answers, from its endpoint data
    # alone: a session would read AWS_PROFILE, which may name no profile
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    valid = set()
    for partition in resolver.get_available_partitions():
        valid.update(resolver.get_available_endpoints(service, partition))
    for region in regions:
        for name in str(region).split(","):
            name = name.strip()
            if name and name != "all" and name not in valid:
                raise Mistake(
                    "region %r does not exist%s; valid regions: %s"
                    % (name, _closest(name, valid, 2), ", ".join(sorted(valid)))
                )


def check_output_dir(path, flag="-s"):
    """A local output folder custodian can create and write; s3:// and other URLs are
    left to custodian."""
    if not path or "://" in path:
        return
    folder = os.path.abspath(os.path.expanduser(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise Mistake(
            "%s %s: %s is a file, not a folder; choose another output folder"
            % (flag, path, existing)
        )
    try:  # os.access says yes to root whatever the file system says: try it
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise Mistake(
            "%s %s: cannot write in %s (%s); choose a folder you can write"
            % (flag, path, existing, e.strerror or e)
        ) from None

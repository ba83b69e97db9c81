"""Help for our filters and actions, from their docstrings and schemas.

`c7n-imds schema RESOURCE.actions.NAME` (or ``.filters.NAME``) prints, for ours, the
docstring (purpose and a runnable example) and one screen of options with their
defaults; custodian prints the same for its own elements, with the whole schema.
Every option's allowed values are in docs/options.md, generated from the same schemas:
``python -m c7n_imds.help > docs/options.md`` (tests/test_help.py fails when stale).
"""

import inspect
import sys
import textwrap

from c7n_imds.actions.options import RemediationOptions

WIDTH = 88


def elements():
    """(resource type, "filters" | "actions", name, class) of everything c7n-imds
    registers, sorted."""
    from c7n.provider import clouds

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


def find(path):
    """The class of ``RESOURCE.filters.NAME`` / ``RESOURCE.actions.NAME`` (``aws.``
    optional) if c7n-imds registers it, else None."""
    parts = path.lower().split(".")
    if parts[:1] == ["aws"]:
        parts = parts[1:]
    if len(parts) != 3:
        return None
    for resource_type, kind, name, element in elements():
        if [resource_type, kind, name] == parts:
            return element
    return None


def allowed(schema):
    """A property schema as one short phrase: ``required | optional``, ``1-64``."""
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "oneOf" in schema or "anyOf" in schema:
        return " | ".join(allowed(s) for s in schema.get("oneOf") or schema["anyOf"])
    kind = schema.get("type")
    if kind == "boolean":
        return "true | false"
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum")
        if low is not None and high is not None:
            return "%s%s-%s" % ("above " if "exclusiveMinimum" in schema else "", low, high)
        return "a number" if low is None else "%s or more" % low
    if kind == "array":
        return "a list of: %s" % allowed(schema.get("items") or {})
    if kind == "object":
        keys = sorted((schema.get("properties") or {}))
        return "{%s}" % ", ".join(keys) if keys else "a mapping"
    if kind == "string":
        return "text"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    return "see the schema"


def options(element):
    """[(option, allowed, default or None)] of an element's schema, `type` left out."""
    defaults = (
        RemediationOptions.defaults(getattr(element, "option_defaults", {}))
        if hasattr(element, "remediate")
        else {}
    )
    found = []
    for name, schema in sorted((element.schema.get("properties") or {}).items()):
        if name == "type":
            continue
        default = defaults.get(name)
        found.append((name, allowed(schema), None if default in ({}, (), None) else default))
    return found


def text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def brief(element):
    """What `c7n-imds schema` prints for one of ours."""
    names = [
        "%s%s" % (name, " (%s)" % text(default) if default is not None else "")
        for name, _, default in options(element)
    ]
    lines = ["", "Help", "----", "", inspect.cleandoc(element.__doc__ or ""), ""]
    lines += textwrap.wrap(
        "Options (default): %s" % (", ".join(names) or "none"), WIDTH, break_on_hyphens=False
    )
    lines.append("Allowed values: docs/options.md (the JSON schema: c7n-imds schema --json)")
    return "\n".join(lines)


def markdown():
    """docs/options.md: every option of every filter and action, from the schemas."""
    out = [
        "# Options",
        "",
        "Every option of c7n-imds's filters and actions: what it allows and its "
        "default. Generated from the schemas by `python -m c7n_imds.help > "
        "docs/options.md`; tests/test_help.py fails when this page is stale. What "
        "each element does, with an example: `c7n-imds schema RESOURCE.KIND.NAME`.",
        "",
    ]
    for resource_type, kind, name, element in elements():
        out += ["## %s.%s.%s" % (resource_type, kind, name), ""]
        first = inspect.cleandoc(element.__doc__ or "").split("\n\n")[0]
        out += [" ".join(first.split()), ""]
        rows = options(element)
        if not rows:
            out += ["No options.", ""]
            continue
        out += ["| option | allowed | default |", "| --- | --- | --- |"]
        out += [
            "| `%s` | %s | %s |"
            % (
                option,
                values.replace("|", "\\|"),
                "" if default is None else "`%s`" % text(default),
            )
            for option, values, default in rows
        ]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import c7n_imds  # noqa: F401  (registers)

    sys.stdout.write(markdown())

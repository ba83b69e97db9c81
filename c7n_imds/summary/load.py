"""Reading custodian and c7n-org output folders: of each resource only the names and
facts that are counted (never user data or any other field)."""
import json
import os
import re
from pathlib import Path

from c7n_imds.names import (
    EXEMPTION_ANNOTATION,
    GROUP_NAME_TAG,
    LAUNCH_ANNOTATION,
    LAUNCH_CONFIGURATION,
    REVERT_ACTION,
    USAGE_ANNOTATION,
)

MTIME_SLACK = 2  # seconds; some filesystems store coarse modification times
# Older outputs, and policies of the user's own, may name their controls only in the
# description.
CONTROL = re.compile(r"\b((?:AutoScaling|EC2)\.\d+)\b")


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fresh_json(path, start):
    try:
        if os.path.getmtime(path) < start - MTIME_SLACK:
            return None
    except OSError:
        return None
    return read_json(path)


def load_folder(root):
    """Every policy output under ``root`` (any layout), reduced to counted facts."""
    root = Path(root)
    outputs = []
    for meta_path in sorted(root.rglob("metadata.json")):
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or not isinstance(meta.get("policy"), dict):
            continue
        folder = meta_path.parent
        start = float((meta.get("execution") or {}).get("start") or 0)
        resources = read_json(folder / "resources.json")
        outputs.append(policy_output(
            meta, resources if isinstance(resources, list) else [],
            fresh_json(folder / "imds-scan.json", start),
            fresh_json(folder / "imds-changes.json", start),
            folder.relative_to(root).parts, str(root)))
    return outputs


def policy_output(meta, resources, scan, changes, parts, folder):
    """One policy's output as plain facts. Pure."""
    policy, config = meta["policy"], meta.get("config") or {}
    resource = str(policy.get("resource") or "")
    resource = resource[4:] if resource.startswith("aws.") else resource
    actions = [a.get("type") if isinstance(a, dict) else a
               for a in policy.get("actions") or ()]
    records = [resource_facts(resource, r) for r in resources if isinstance(r, dict)]
    return {
        "Folder": folder, "Parts": tuple(parts), "Policy": str(policy.get("name")),
        "Resource": resource, "Controls": controls_of(policy),
        "Account": str(config.get("account_id") or "unknown"),
        "Region": str(config.get("region") or "unknown"),
        "Start": float((meta.get("execution") or {}).get("start") or 0),
        "Records": [r for r in records if r["Name"]],
        "Scan": scan if isinstance(scan, dict) else None,
        "Changes": [] if REVERT_ACTION in actions else change_outcomes(changes)}


def resource_facts(resource, record):
    """The fields counted, and nothing else, of one resource record."""
    launch = record.get(LAUNCH_ANNOTATION)
    launch = launch if isinstance(launch, dict) else {}
    if resource == "launch-config":
        return {"Kind": "launch-config", "Name": record.get("LaunchConfigurationName"),
                "LaunchType": LAUNCH_CONFIGURATION, "HttpTokens": launch.get("HttpTokens")}
    if resource == "ec2":
        tags = {t.get("Key"): t.get("Value") for t in record.get("Tags") or ()
                if isinstance(t, dict)}
        return {"Kind": "instance", "Name": tags.get(GROUP_NAME_TAG), "LaunchType": None,
                "HttpTokens": (record.get("MetadataOptions") or {}).get("HttpTokens")}
    usage, exemption = (record.get(key) if isinstance(record.get(key), dict) else {}
                        for key in (USAGE_ANNOTATION, EXEMPTION_ANNOTATION))
    calls = usage.get("Total")
    return {"Kind": "group", "Name": record.get("AutoScalingGroupName"),
            "LaunchType": launch.get("LaunchType"), "HttpTokens": launch.get("HttpTokens"),
            "Calls": calls if isinstance(calls, (int, float)) else 0,
            "Exempt": exemption.get("Exempt") is True}


def change_outcomes(changes):
    outcomes = []
    for entry in changes if isinstance(changes, list) else ():
        if not isinstance(entry, dict) or not entry.get("AutoScalingGroupName"):
            continue
        outcome = "Failed" if "Error" in entry else (
            "LeftToStack" if "Skipped" in entry else "Remediated")
        outcomes.append({"Group": str(entry["AutoScalingGroupName"]), "Outcome": outcome})
    return outcomes


def controls_of(policy):
    """The Security Hub controls a policy serves: its ``metadata: {controls: [...]}``,
    else the control ids its description names, in order."""
    declared = (policy.get("metadata") or {}).get("controls") if isinstance(
        policy.get("metadata"), dict) else None
    if isinstance(declared, list) and declared:
        return [str(c) for c in declared]
    found = []
    for control in CONTROL.findall(str(policy.get("description") or "")):
        if control not in found:
            found.append(control)
    return found

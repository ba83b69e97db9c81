"""Reading custodian and c7n-org output trees - local folders, or S3 as written with
``-s s3://bucket/prefix`` - into plain facts: of each resource only the names and facts
that are counted or listed (never user data or any other field), and of each policy
output whether it can be trusted at all.

A failed scan must never read as a compliant one, so each policy output gets a state:
``scanned`` (its resources were read), ``errored`` (the policy stopped with an error:
its PolicyException metric, or ERROR lines in custodian-run.log that group failures do
not explain), ``unreadable`` (a file that is there but cannot be read), each with the
reason.
"""

import concurrent.futures
import datetime
import json
import os
import re
import tempfile
import threading
import zlib
from contextlib import closing
from pathlib import Path

try:  # the `report` extra's; optional: the standard library's json otherwise
    import orjson
except ImportError:  # pragma: no cover - installed with the extra
    orjson = None

from c7n_imds.model.escape import controls
from c7n_imds.model.exemptions import parse_exemption
from c7n_imds.model.outcomes import (
    CHANGED,
    FAILED,
    FIX_PROPOSED,
    FIXED_AT_OWNER,
    HELD_BACK,
    LEFT_TO_OWNER,
    REVERTED,
    SKIPPED,
    entries,
)
from c7n_imds.model.ownership import iac_guidance, iac_owner
from c7n_imds.names import (
    CONVERT_ACTION,
    COPY_ACTION,
    EKS_CLUSTER_TAG,
    EKS_NODEGROUP_TAG,
    EXEMPT_TAG,
    EXEMPTION_ANNOTATION,
    GROUP_NAME_TAG,
    LAUNCH_ANNOTATION,
    LAUNCH_CONFIGURATION,
    REVERT_ACTION,
    SET_ACCESS_ACTION,
    USAGE_ANNOTATION,
)
from c7n_imds_report.owners import OWNER_ACTION, STACK_KINDS

# The tags that name a group's stack or service (c7n_imds.model.ownership reads them).
STACK_TAGS = tuple(STACK_KINDS)

MTIME_SLACK = 2  # seconds; some filesystems store coarse modification times
# Older outputs, and policies of the user's own, may name their controls only in the
# description.
CONTROL = re.compile(r"\b((?:AutoScaling|EC2)\.\d+)\b")
OUTPUT_FILES = ("metadata.json", "resources.json", "custodian-run.log")
# Tags whose value names a group's owner (as policies/mailer's contact_tags).
OWNER_TAGS = ("owner", "Owner", "OwnerContact", "team-email")
IN_PLACE_ACTIONS = (CONVERT_ACTION, SET_ACCESS_ACTION, COPY_ACTION)
# An owner action's OwnerFix.Status -> the outcome counted: a change set is only proposed
# (the group fails AutoScaling.3 until its owner executes it); an applied fix rolls out
# with the owner's own update.
FIX_OUTCOMES = {
    "proposed": "FixProposed",
    "applied": "FixedAtOwner",
    "already-applied": "FixedAtOwner",
}
# A proven change's action -> the launch type it leaves the group with (others keep it).
LAUNCH_AFTER = {CONVERT_ACTION: "launch-template", COPY_ACTION: LAUNCH_CONFIGURATION}
# imds-converted's annotation on a kept launch configuration, and policies/cleanup.yml's
# soak: it is deleted that many days after its replacement was created.
REPLACED_ANNOTATION = "c7n-imds:replaced-by"
CLEANUP_SOAK_DAYS = 14
# imds-changes.json schema 2: an outcome's Status -> the outcome counted. Held back and
# reverted groups are not remediated; revert is not a fix.
STATUS_OUTCOMES = {
    CHANGED: "Remediated",
    FAILED: "Failed",
    SKIPPED: "Skipped",
    HELD_BACK: "Skipped",
    LEFT_TO_OWNER: "LeftToStack",
    FIX_PROPOSED: "FixProposed",
    FIXED_AT_OWNER: "FixedAtOwner",
    REVERTED: "Skipped",
}
# Of an OwnerFix record, the fields listed (names and ids of the owner's resources).
FIX_FIELDS = (
    "StackName",
    "ChangeSetName",
    "ChangeSetId",
    "EnvironmentName",
    "EnvironmentId",
    "ClusterName",
    "NodegroupName",
    "UpdateId",
    "Detail",
)
# custodian-run.log: "TIME - LOGGER - LEVEL - MESSAGE", continuation lines after it
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - (\S+) - (\w+) - (.*)$")
# The run command's one line for a remediation whose groups failed (c7n_imds.cli's
# OneLineAwsErrors): the groups are named on lines of their own, counted as failed.
GROUP_FAILURES = re.compile(r"^policy failed for \d+ group\(s\)")
# An S3 or dated layout keeps one folder per hour under the policy: .../YYYY/MM/DD/HH
DATED = re.compile(r"^\d{2,4}$")


class Unreadable(ValueError):
    """A file that exists but cannot be read; the message says which and why."""


def read_json(path, missing=None):
    """The parsed file; ``missing`` when it does not exist; Unreadable when it exists
    but is not JSON."""
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return missing
    except OSError as e:
        raise Unreadable("%s: %s" % (os.path.basename(path), e)) from None
    if data.startswith(NOT_READ):
        raise Unreadable("%s: %s" % (os.path.basename(path), not_read_reason(data)))
    try:
        return parse_json(data)
    except ValueError as e:
        raise Unreadable("%s: %s" % (os.path.basename(path), e)) from None


def read_bytes(path, newer_than=None):
    """A file's bytes, read with one open and as few reads as its size needs (a summary
    reads hundreds of thousands of small files); None when ``newer_than`` (epoch
    seconds) is given and the file was last written before it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if newer_than is not None and info.st_mtime < newer_than:
            return None
        chunks, size = [], max(info.st_size, 0) + 1
        while True:
            chunk = os.read(fd, size)
            if not chunk:
                break
            chunks.append(chunk)
            size = 1 << 20
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_json(data):
    """JSON bytes parsed: orjson where installed (the `report` extra: a resources.json
    of thousands of groups parses several times faster), else the standard library;
    the same error message either way (the standard library's, which says where)."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library's message, below
    return json.loads(data.decode("utf-8"))


def not_read_reason(data):
    """Why fetch_s3 did not read an object (the text after NOT_READ), on one line."""
    return controls(data[len(NOT_READ) :].decode("utf-8", "replace"))


def fresh_json(path, start):
    """A file written by this execution (not left over from an earlier one), or None."""
    try:
        data = read_bytes(path, start - MTIME_SLACK)
        if data is None or data.startswith(NOT_READ):
            return None
        return parse_json(data)
    except (OSError, ValueError):
        return None


def run_log_errors(text):
    """The ERROR messages of a custodian-run.log that group failures do not explain: a
    remediation that failed for some groups raises RemediationError after the others
    were done, and those groups are counted as failed, not the scan as broken."""
    records = []
    for line in text.splitlines():
        match = LOG_RECORD.match(line)
        if match:
            records.append([match.group(1), match.group(2), match.group(3), []])
        elif records:
            records[-1][3].append(line)
    errors = []
    for logger, level, message, rest in records:
        if level not in ("ERROR", "CRITICAL"):
            continue
        if (
            ": not remediated: " in message
            or GROUP_FAILURES.match(message)
            or any("RemediationError" in r for r in rest)
        ):
            continue
        errors.append(message.strip())
    return errors


def output_folders(root):
    """Every folder under ``root`` that holds a policy's output."""
    found = set()
    for name in OUTPUT_FILES:
        found.update(p.parent for p in Path(root).rglob(name))
    return sorted(found)


def load_folder(root):
    """Every policy output under ``root`` (any layout), reduced to facts and a state."""
    root = Path(root)
    return [load_output(folder, root) for folder in output_folders(root)]


def load_output(folder, root, names=None):
    """One policy output (``folder`` under ``root``); ``names``: the files the folder
    holds, when the walk listed them (no open of a file that is not there)."""
    folder, root = str(folder), str(root)
    parts = (
        tuple(os.path.relpath(folder, root).split(os.sep))
        if not folder.startswith(root + os.sep)
        else tuple(folder[len(root) + 1 :].split(os.sep))
    )

    def path(name):
        return folder + os.sep + name

    def present(name):
        return names is None or name in names

    try:
        meta = read_json(path("metadata.json"))
        if meta is not None and not isinstance(
            meta.get("policy") if isinstance(meta, dict) else None, dict
        ):
            raise Unreadable("metadata.json: not custodian's metadata")
    except Unreadable as e:
        return unreadable_output(parts, root, str(e))
    if meta is None:
        return unreadable_output(parts, root, "no metadata.json: the policy run did not finish")
    start = float((meta.get("execution") or {}).get("start") or 0)
    state, reason, resources = "scanned", None, []
    try:
        resources = read_json(path("resources.json")) if present("resources.json") else None
        if resources is not None and not isinstance(resources, list):
            raise Unreadable("resources.json: not a list of resources")
    except Unreadable as e:
        state, reason, resources = "unreadable", str(e), []
    errors = []
    try:
        if not present("custodian-run.log"):
            raise FileNotFoundError
        log_bytes = read_bytes(path("custodian-run.log"))
    except OSError:
        log_bytes = b""
    if log_bytes.startswith(NOT_READ) and state == "scanned":
        # its errors cannot be known: the scan is not counted as a clean one
        state, reason = "unreadable", "custodian-run.log: %s" % not_read_reason(log_bytes)
    else:
        errors = run_log_errors(log_bytes.decode("utf-8", errors="replace"))
    exception = any(
        m.get("MetricName") == "PolicyException"
        for m in meta.get("metrics") or ()
        if isinstance(m, dict)
    )
    if state == "scanned" and (errors or (resources is None and exception)):
        state, reason = (
            "errored",
            errors[0] if errors else "the policy stopped with an error (see custodian-run.log)",
        )
    elif state == "scanned" and resources is None:
        state, reason = "unreadable", "no resources.json"
    output = policy_output(
        meta,
        resources or [],
        fresh_json(path("imds-scan.json"), start) if present("imds-scan.json") else None,
        fresh_json(path("imds-changes.json"), start) if present("imds-changes.json") else None,
        parts,
        root,
    )
    output.update(State=state, Reason=reason)
    return output


def unreadable_output(parts, root, reason):
    """What the folder's place in the layout tells of an output that cannot be read."""
    undated = tuple(p for p in parts if not DATED.match(p)) or ("?",)
    account, region = (undated[-3], undated[-2]) if len(undated) >= 3 else ("unknown", "unknown")
    return {
        "Folder": root,
        "Parts": tuple(parts),
        "Policy": undated[-1],
        "Resource": "",
        "Controls": [],
        "Account": account,
        "AccountName": account,
        "Region": region,
        "Start": 0.0,
        "Records": [],
        "Scan": None,
        "Changes": [],
        "State": "unreadable",
        "Reason": reason,
        "RunKey": run_key(parts),
    }


def run_key(parts):
    """The dated folders custodian keeps under a policy (S3: YYYY/MM/DD/HH), or None."""
    dated = []
    for part in reversed(parts):
        if not DATED.match(part):
            break
        dated.insert(0, part)
    return "/".join(dated) or None


def policy_output(meta, resources, scan, changes, parts, folder):
    """One policy's output as plain facts. Pure."""
    policy, config = meta["policy"], meta.get("config") or {}
    resource = str(policy.get("resource") or "")
    resource = resource[4:] if resource.startswith("aws.") else resource
    actions = [a.get("type") if isinstance(a, dict) else a for a in policy.get("actions") or ()]
    records = [resource_facts(resource, r) for r in resources if isinstance(r, dict)]
    filters = repr(policy.get("filters") or [])
    return {
        "Folder": folder,
        "Parts": tuple(parts),
        "Policy": str(policy.get("name")),
        "Resource": resource,
        "Controls": controls_of(policy),
        "Account": str(config.get("account_id") or "unknown"),
        "AccountName": None,
        "Region": str(config.get("region") or "unknown"),
        "Start": float((meta.get("execution") or {}).get("start") or 0),
        "Records": [r for r in records if r["Name"]],
        "Scan": scan if isinstance(scan, dict) else None,
        # which figures this policy could know at all (else they are "not measured")
        # a policy that records every resource of its kind (Security Hub's in scope)
        "Inventory": (policy.get("metadata") or {}).get("inventory") is True
        if isinstance(policy.get("metadata"), dict)
        else False,
        "MeasuresUsage": "'imdsv1-usage'" in filters
        or any(r.get("UsageMeasured") for r in records),
        "Changes": [] if REVERT_ACTION in actions else change_outcomes(changes, actions),
        "State": "scanned",
        "Reason": None,
        "RunKey": run_key(parts),
    }


def resource_facts(resource, record):
    """The fields counted or listed, and nothing else, of one resource record."""
    launch = record.get(LAUNCH_ANNOTATION)
    launch = launch if isinstance(launch, dict) else {}
    tags = {t.get("Key"): t.get("Value") for t in record.get("Tags") or () if isinstance(t, dict)}
    if resource == "launch-config":
        replaced = record.get(REPLACED_ANNOTATION)
        replaced = replaced if isinstance(replaced, dict) else {}
        return {
            "Kind": "launch-config",
            "Name": record.get("LaunchConfigurationName"),
            "LaunchType": LAUNCH_CONFIGURATION,
            "HttpTokens": launch.get("HttpTokens"),
            "DeleteAfter": delete_after(replaced.get("Created")),
        }
    if resource == "ec2":
        return {
            "Kind": "instance",
            "Name": tags.get(GROUP_NAME_TAG),
            "LaunchType": None,
            "InstanceId": record.get("InstanceId"),
            "HttpTokens": (record.get("MetadataOptions") or {}).get("HttpTokens"),
        }
    usage, exemption = (
        record.get(key) if isinstance(record.get(key), dict) else {}
        for key in (USAGE_ANNOTATION, EXEMPTION_ANNOTATION)
    )
    # Counted as exempt: what the imds-exempt filter said. Listed as exempt: also a
    # group whose tag says so in a policy without that filter.
    tagged = parse_exemption(tags[EXEMPT_TAG], today()) if tags.get(EXEMPT_TAG) is not None else {}
    calls = usage.get("Total")
    # the owner's tags only (most groups have none: no list to build for them)
    stack = iac_owner({"Tags": [{"Key": k, "Value": tags[k]} for k in STACK_TAGS if k in tags]})
    owner = stack and stack[1]
    if stack and stack[0] == EKS_NODEGROUP_TAG and tags.get(EKS_CLUSTER_TAG):
        # node group names are unique per cluster only (the owner actions' Owner)
        owner = "%s/%s" % (tags[EKS_CLUSTER_TAG], stack[1])
    return {
        "Kind": "group",
        "Name": record.get("AutoScalingGroupName"),
        "LaunchType": launch.get("LaunchType"),
        "HttpTokens": launch.get("HttpTokens"),
        "Calls": calls if isinstance(calls, (int, float)) else 0,
        "Days": usage.get("Days") if isinstance(usage.get("Days"), int) else None,
        "UsageMeasured": isinstance(calls, (int, float)),
        "Exempt": exemption.get("Exempt") is True,
        "ExemptByTag": tagged.get("Exempt") is True,
        "ExemptReason": exemption.get("Reason") or tagged.get("Reason"),
        "ExemptUntil": exemption.get("Until") or tagged.get("Until"),
        "Owner": next((tags[k] for k in OWNER_TAGS if tags.get(k)), None),
        "Stack": "%s:%s" % (STACK_KINDS[stack[0]], owner) if stack else None,
        "StackGuidance": iac_guidance({"Tags": [{"Key": stack[0], "Value": stack[1]}]})
        if stack
        else None,
    }


def today():
    """Today (UTC), once per process: every exemption of a summary is read on one day."""
    global TODAY
    if TODAY is None:
        TODAY = datetime.datetime.now(datetime.timezone.utc).date()
    return TODAY


TODAY = None


def delete_after(created):
    """The day policies/cleanup.yml deletes a kept launch configuration that c7n-imds
    replaced at ``created`` (ISO 8601): its imds-converted soak, CLEANUP_SOAK_DAYS."""
    try:
        day = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (day + datetime.timedelta(days=CLEANUP_SOAK_DAYS)).date().isoformat()


def change_outcomes(changes, actions=()):
    """The entries of imds-changes.json as outcomes: Failed (Error), FixProposed /
    FixedAtOwner (an owner action's OwnerFix), LeftToStack (Skipped: left to a stack or
    service), Skipped (left alone for another reason: exempt, or not what an owner
    action fixes), else Remediated. An owner action's entry is never Remediated: it
    changes the owner, not the group."""
    actions = [a for a in actions if isinstance(a, str)]
    action = next((a for a in actions if a in OWNER_ACTION.values()), None)
    in_place = any(a in IN_PLACE_ACTIONS for a in actions)
    outcomes = []
    for entry in entries(changes):
        if not entry.get("AutoScalingGroupName"):
            continue
        fix = entry.get("OwnerFix") if isinstance(entry.get("OwnerFix"), dict) else None
        reason = entry.get("Error") or entry.get("Skipped")
        if entry.get("Status") in STATUS_OUTCOMES:
            # schema 2: the action decided the status (model/outcomes.py)
            outcome = STATUS_OUTCOMES[entry["Status"]]
            reason = entry.get("Detail") or reason
        elif "Error" in entry:
            outcome = "Failed"
        elif fix is not None:
            outcome = FIX_OUTCOMES.get(fix.get("Status"), "Skipped")
            reason = text_of(fix.get("Detail"))
        elif "Skipped" in entry:
            outcome = "Skipped" if str(reason).startswith("exempt") else "LeftToStack"
        elif "Owner" in entry or (action and not in_place):
            outcome = "Skipped"  # an owner action's record of a shape not known here
        else:
            outcome = "Remediated"
        owner = entry.get("Owner")
        outcomes.append(
            {
                "Group": str(entry["AutoScalingGroupName"]),
                "Outcome": outcome,
                # the launch type the proven change left the group with
                "LaunchTypeAfter": LAUNCH_AFTER.get(
                    entry.get("Action") or (actions[0] if actions else None)
                ),
                "Reason": text_of(reason),
                "Action": text_of((fix or {}).get("Action"))
                or action
                or (actions[0] if actions else None),
                "Owner": owner if isinstance(owner, str) and owner else None,
                "Fix": owner_fix(fix) if fix is not None else None,
            }
        )
    return outcomes


def text_of(value):
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def owner_fix(fix):
    """Of an OwnerFix record, its action, status and the names and ids it gives."""
    found = {"Action": text_of(fix.get("Action")), "Status": text_of(fix.get("Status"))}
    found.update((k, text_of(fix[k])) for k in FIX_FIELDS if text_of(fix.get(k)))
    template = fix.get("LaunchTemplate")
    if isinstance(template, dict) and (template.get("id") or template.get("name")):
        found["LaunchTemplate"] = {
            k: text_of(template[k]) for k in ("id", "name", "version") if text_of(template.get(k))
        }
    return found


def controls_of(policy):
    """The Security Hub controls a policy serves: its ``metadata: {controls: [...]}``,
    else the control ids its description names, in order."""
    declared = (
        (policy.get("metadata") or {}).get("controls")
        if isinstance(policy.get("metadata"), dict)
        else None
    )
    if isinstance(declared, list) and declared:
        return [str(c) for c in declared]
    found = []
    for control in CONTROL.findall(str(policy.get("description") or "")):
        if control not in found:
            found.append(control)
    return found


# ---- S3 ------------------------------------------------------------------------------

# An object's content is read at most this far, decompressed (custodian gzips each file
# it writes to S3): a gzip member of 0.5 MB can expand to 1 GB, and a summary must not
# be made to fill the memory or the disk by whoever can write to the bucket.
MAX_OBJECT_BYTES = 64 * 1024 * 1024
S3_READERS = 16  # objects read from S3 at once (threads: the time is the round trip)
S3_IN_FLIGHT = 64  # objects listed and handed to the readers, not yet read
READ_CHUNK = 1024 * 1024
# What fetch_s3 writes in place of an object it did not read whole: never JSON (nor a
# log record), so each reader reports the file as unreadable, with the reason after it.
NOT_READ = b"\0c7n-imds: not read: "


class TooLarge(ValueError):
    pass


def read_bounded(chunks, gzipped, limit=None):
    """The content of a stream of byte chunks, gunzipped when ``gzipped`` (every member
    of it, as ``gzip.decompress``); TooLarge as soon as it would exceed ``limit`` bytes
    (default MAX_OBJECT_BYTES) - never expanded further in memory. zlib.error or
    EOFError when it does not decompress."""
    limit = MAX_OBJECT_BYTES if limit is None else limit
    out = bytearray()
    member = None
    for chunk in chunks:
        if not gzipped:
            out += chunk
            if len(out) > limit:
                raise TooLarge("over %d MiB" % (limit // (1024 * 1024)))
            continue
        pending = bytes(chunk)
        while pending:
            if member is None or member.eof:
                member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += member.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise TooLarge("over %d MiB decompressed" % (limit // (1024 * 1024)))
            # the rest of this chunk: a next member's start, or nothing (more input needed)
            pending = member.unused_data if member.eof else member.unconsumed_tail
    if gzipped and (member is None or not member.eof):
        raise EOFError("compressed file ended before the end of its data")
    return bytes(out)


def fetch_s3(url, session=None):
    """Copy an output tree from ``s3://bucket/prefix`` into a temporary folder, as
    custodian wrote it (each file gzipped), and return the folder. A file that does not
    decompress is kept as it is, so that reading it fails and says so; one over
    MAX_OBJECT_BYTES is not read at all (NOT_READ and the reason stand in for it)."""
    import boto3

    bucket, _, prefix = url[len("s3://") :].split("?", 1)[0].partition("/")
    prefix = prefix.strip("/")
    s3 = (session or boto3.Session()).client("s3")
    target = Path(tempfile.mkdtemp(prefix="c7n-imds-summary-"))
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/" if prefix else ""
    )

    def fetch(item):
        key = item["Key"][len(prefix) :].lstrip("/")
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        gzipped = key.endswith(".gz")
        key = key[:-3] if gzipped else key
        try:
            with closing(body):
                content = read_bounded(body.iter_chunks(READ_CHUNK), False)
            if gzipped:
                content = read_bounded((content,), True)
        except TooLarge as e:
            content = NOT_READ + ("s3://%s/%s is %s" % (bucket, item["Key"], e)).encode()
        except (zlib.error, EOFError):
            pass  # kept compressed, so that reading it says so
        path = target / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    # S3_READERS gets at once, at most S3_IN_FLIGHT objects listed and not yet read: each
    # object is small and its time the round trip; memory holds S3_READERS objects at most
    gate = threading.Semaphore(S3_IN_FLIGHT)
    with concurrent.futures.ThreadPoolExecutor(S3_READERS) as pool:
        pending = []
        for page in pages:
            for item in page.get("Contents") or ():
                key = item["Key"][len(prefix) :].lstrip("/")
                if not key or key.endswith("/") or ".." in key.split("/"):
                    continue
                gate.acquire()
                future = pool.submit(fetch, item)
                future.add_done_callback(lambda _: gate.release())
                pending.append(future)
                if len(pending) >= 4 * S3_IN_FLIGHT:  # an error surfaces as it happens
                    for finished in [f for f in pending if f.done()]:
                        finished.result()
                    pending = [f for f in pending if not f.done()]
        for future in pending:
            future.result()  # the first error (credentials, the bucket) is raised here
    return target

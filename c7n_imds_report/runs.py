"""The runs in the output trees ``c7n_imds_report.load`` reads, and the state of each
scan of a run. Pure, like ``c7n_imds_report.aggregate``, which summarizes each run.

Runs: custodian keeps dated folders under each policy (S3: YYYY/MM/DD/HH), each one run;
otherwise each OUT folder is one run, split by sub-folder while a policy appears twice
for one account and region (``-s OUT/{now:%Y-%m-%d}``). Runs are in time order.

Scans: each account, region and policy has a state (scanned, errored, unreadable, not
scanned - load.py); with an accounts file, an expected account and region that produced
nothing is "not scanned"; a policy that ran in some account-regions of a run and not in
others is "not scanned" where it is missing.
"""

import os
from collections import defaultdict

STATES = ("scanned", "not-scanned", "unreadable", "errored")  # worst last
NOT_SCANNED = (
    "no output for this account and region: its role could not be assumed, "
    "or it was not part of the run"
)


def account_name(output):
    """c7n-org writes OUT/<account name>/<region>/<policy>/: the name, when so laid out."""
    if output.get("AccountName"):
        return output["AccountName"]
    dated = (output.get("RunKey") or "").split("/")
    parts = [p for p in output["Parts"] if p not in dated]
    if len(parts) >= 3 and parts[-2] == output["Region"]:
        return parts[-3]
    return None


def split_runs(outputs):
    """Runs in one tree: dated folders first, then - while a policy appears twice for
    one account and region - by the next sub-folder."""
    by_date = defaultdict(list)
    for o in outputs:
        by_date[o.get("RunKey")].append(o)
    if len(by_date) > 1 or None not in by_date:
        return [
            run
            for key in sorted(by_date, key=lambda k: k or "")
            for run in (by_rank(by_date[key]) if key else split_runs(by_date[key]))
        ]
    keys = [(o["Account"], o["Region"], o["Policy"]) for o in outputs]
    if len(set(keys)) == len(keys):
        return [outputs] if outputs else []
    by_child, runs = defaultdict(list), []
    for o in outputs:
        if len(o["Parts"]) > 1:
            by_child[o["Parts"][0]].append(
                dict(o, Parts=o["Parts"][1:], Folder=os.path.join(o["Folder"], o["Parts"][0]))
            )
        else:
            by_child[None].append(o)
    for child in sorted(by_child, key=lambda c: (c is None, c or "")):
        runs.extend(split_runs(by_child[child]) if child else [by_child[child]])
    return runs


def by_rank(outputs):
    """Runs within one dated folder (custodian keeps one per hour): a policy's n-th
    execution there, in time order, belongs to the n-th run."""
    ranked = defaultdict(list)
    for o in sorted(outputs, key=lambda o: o["Start"]):
        ranked[(o["Account"], o["Region"], o["Policy"])].append(o)
    runs = defaultdict(list)
    for executions in ranked.values():
        for rank, o in enumerate(executions):
            runs[rank].append(o)
    return [runs[rank] for rank in sorted(runs)]


def resolve_accounts(outputs, expected):
    """An output that could not be read knows its account only by the name in its
    path (c7n-org's layout): give it the id that the accounts file, or the other
    outputs of the same account, name."""
    ids = {name: account for (account, _), name in (expected or {}).items() if name}
    ids.update(
        {
            account_name(o): o["Account"]
            for o in outputs
            if o["State"] != "unreadable" and account_name(o)
        }
    )
    return [
        dict(o, Account=ids.get(o["Account"], o["Account"])) if o["State"] == "unreadable" else o
        for o in outputs
    ]


def not_scanned(account, account_name, region):
    """The scan state of an account-region the run has no output for."""
    return dict(
        Account=account,
        AccountName=account_name,
        Region=region,
        Policy=None,
        State="not-scanned",
        Reason=NOT_SCANNED,
    )


def worst(states):
    return max(states, key=STATES.index) if states else "not-scanned"


def scan_states(outputs, expected):
    """Each account, region and policy of a run with its state, plus what was expected
    (accounts file) or run elsewhere in the run but produced nothing."""
    names = {o["Account"]: account_name(o) for o in outputs}
    names.update({a: n for (a, _), n in (expected or {}).items() if n})
    found = [
        dict(
            Account=o["Account"],
            AccountName=names.get(o["Account"]),
            Region=o["Region"],
            Policy=o["Policy"],
            State=o["State"],
            Reason=o["Reason"],
        )
        for o in outputs
    ]
    policies = sorted({o["Policy"] for o in outputs if o["State"] == "scanned"})
    places = {(o["Account"], o["Region"]) for o in outputs} | set(expected or ())
    have = {(s["Account"], s["Region"], s["Policy"]) for s in found}
    for account, region in sorted(places):
        if not any((account, region) == (s["Account"], s["Region"]) for s in found):
            found.append(not_scanned(account, names.get(account), region))
            continue
        for policy in policies:
            if (account, region, policy) not in have:
                found.append(
                    dict(
                        Account=account,
                        AccountName=names.get(account),
                        Region=region,
                        Policy=policy,
                        State="not-scanned",
                        Reason="no output for this policy here",
                    )
                )
    return sorted(found, key=lambda s: (s["Account"], s["Region"], s["Policy"] or ""))

"""The summary at organisation scale: one account-region at a time, never the estate.

c7n-org writes OUT/<account>/<region>/<policy>/[YYYY/MM/DD/HH/]; custodian OUT/<policy>/
(or OUT/<region>/<policy>/ for several regions). Either way the folder above a policy's
is a *unit*: all of one account-region's outputs, of every run, are in it. ``walk``
yields units as it leaves their folder (depth first), ``summarize_units`` reduces each
unit to its rows, groups and scan states right away (``aggregate.place_summary``), adds
its counts into one accumulator per run and spools its lists (rows, groups, scans) to
disk. What stays in memory: per run, the totals, each account's counts, each control's,
the account x control cells, and one interned set of policy names per account-region
(to name the policies a run ran elsewhere but not there) - aggregates, not the estate.

A run is the unit's place in the tree above the account and region (a run per folder:
OUT/monday/<account>/<region>/...), its dated folder (S3: YYYY/MM/DD/HH) and, within one
dated folder, a policy's n-th execution there - as ``runs.split_runs`` cuts a tree.
"""

import itertools
import os
import pickle
import tempfile
from collections import defaultdict

from c7n_imds_report.load import DATED, OUTPUT_FILES, load_output

SPILL_AFTER = 2000  # items a spool keeps in memory before it moves them to a file


class Spool:
    """A list that moves to a temporary file once it is long: appended to while the tree
    is read, iterated (any number of times, one reader at a time) by the renderers.
    Small summaries - every test's - stay in memory and behave as a list. On file, the
    items are pickled in chunks of CHUNK (the file is this process's own, read back by
    it only)."""

    CHUNK = 512

    def __init__(self, items=()):
        self.items, self.file, self.length, self.pending = [], None, 0, []
        for item in items:
            self.append(item)

    def append(self, item):
        self.length += 1
        if self.file is None:
            self.items.append(item)
            if len(self.items) > SPILL_AFTER:
                self.file = tempfile.TemporaryFile("w+b")
                self.pending, self.items = self.items, []
                self.flush()
            return
        self.pending.append(item)
        if len(self.pending) >= self.CHUNK:
            self.flush()

    def flush(self):
        for start in range(0, len(self.pending), self.CHUNK):
            pickle.dump(
                self.pending[start : start + self.CHUNK], self.file, pickle.HIGHEST_PROTOCOL
            )
        self.pending = []

    def extend(self, items):
        for item in items:
            self.append(item)

    def __len__(self):
        return self.length

    def __iter__(self):
        if self.file is None:
            yield from self.items
            return
        self.flush()
        self.file.flush()
        with open(self.file.fileno(), "rb", closefd=False) as reader:
            reader.seek(0)
            while True:
                try:
                    chunk = pickle.load(reader)
                except EOFError:
                    break
                yield from chunk
        self.file.seek(0, os.SEEK_END)

    def __getitem__(self, index):
        return (self.items if self.file is None else list(self))[index]

    def __eq__(self, other):
        return list(self) == list(other)

    def sort(self, key):
        """Sorted in place (a spilled spool is read back once to sort)."""
        items = sorted(self, key=key)
        self.close()
        self.__init__(items)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None
            self.pending = []


def walk(root, parts=()):
    """(unit parts, [(output folder, its file names)]) per unit under ``root`` (whose
    own parts in the tree are ``parts``), each as soon as the walk leaves the unit's
    folder: memory holds the folders of the units being walked only. Each folder is
    listed once (os.scandir; no stat of a file)."""
    pending = defaultdict(list)

    def visit(folder, parts):
        names, folders = listing(folder)
        if not names.isdisjoint(OUTPUT_FILES):
            pending[unit_of(parts)].append((folder, names))
        for name, path in folders:
            yield from visit(path, parts + (name,))
        if parts in pending:
            yield parts, pending.pop(parts)

    yield from visit(str(root), tuple(parts))
    for parts in sorted(pending):  # units above their root (only the root itself)
        yield parts, pending.pop(parts)


def listing(folder):
    """(file and folder names, sorted [(name, path)] of the folders) of a folder."""
    try:
        with os.scandir(folder) as entries:
            entries = list(entries)
    except OSError:
        return frozenset(), []
    return frozenset(e.name for e in entries), sorted(
        (e.name, e.path) for e in entries if e.is_dir(follow_symlinks=False)
    )


def tasks(root):
    """What the readers are given, in walk order: ("unit", parts, folders) - a unit as
    walk gives it - or ("tree", folder, parts): a unit's folder, walked by the reader
    itself (c7n-org's OUT/<account>/<region>/, found by listing the first policy folder
    only), so that this process lists three folders per account-region, not all."""
    pending = defaultdict(list)

    def visit(folder, parts):
        names, folders = listing(folder)
        own = not names.isdisjoint(OUTPUT_FILES)
        if own:
            pending[unit_of(parts)].append((folder, names))
        elif folders:
            found = probe(*folders[0], parts)
            if found is not None and unit_of(found) == parts:
                yield "tree", folder, parts
                return
        for name, path in folders:
            yield from visit(path, parts + (name,))
        if parts in pending:
            yield "unit", parts, pending.pop(parts)

    yield from visit(str(root), ())
    for parts in sorted(pending):
        yield "unit", parts, pending.pop(parts)


def probe(name, folder, parts, depth=8):
    """The parts of the first output folder down the first folders from ``folder``."""
    parts = parts + (name,)
    for _ in range(depth):
        names, folders = listing(folder)
        if not names.isdisjoint(OUTPUT_FILES):
            return parts
        if not folders:
            return None
        (name, folder), parts = folders[0], parts + (folders[0][0],)
    return None


def unit_of(parts):
    """The folder above the policy's: the output folder less its dated folders and
    the policy's own."""
    undated = list(parts)
    while undated and DATED.match(undated[-1]):
        undated.pop()
    return tuple(undated[:-1])


def load_unit(root, folders):
    """The outputs of a unit: its folders as walk gives them ((folder, file names)), or
    folder paths alone."""
    root = str(root)
    return [
        load_output(f[0], root, f[1]) if isinstance(f, tuple) else load_output(str(f), root)
        for f in folders
    ]


def run_id(output):
    """Where the output's run is: its unit above the account and region, and its dated
    folder. (The n-th execution within one dated folder: aggregate.runs_of_unit.)"""
    undated = (
        [p for p in output["Parts"] if p not in (output.get("RunKey") or "").split("/")]
        if output.get("RunKey")
        else list(output["Parts"])
    )
    unit = undated[:-1]
    if unit and unit[-1] == output["Region"]:
        unit = unit[:-2]  # c7n-org: <account name>/<region> (as runs.account_name reads it)
    return tuple(unit), output.get("RunKey")


# ---- the accumulator of one run ---------------------------------------------------------


def add(into, counts):
    """Counts added into ``into``: null (not measured) plus a count is the count; the
    by-launch-type and by-owner counts added key by key."""
    for key, value in counts.items():
        if isinstance(value, dict):
            mine = into.setdefault(key, {})
            for k, v in value.items():
                if isinstance(v, dict):
                    add(mine.setdefault(k, {}), v)
                else:
                    mine[k] = (mine.get(k) or 0) + (v or 0)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = value if into.get(key) is None else into[key] + value
        else:
            into.setdefault(key, value)


class Run:
    """One run's aggregates, fed one account-region at a time."""

    def __init__(self):
        self.start, self.folders, self.policies = None, set(), set()
        self.rows, self.groups, self.scans = Spool(), Spool(), Spool()
        self.accounts, self.totals, self.places, self.interned = {}, {}, {}, {}
        self.names, self.regions, self.controls, self.fixes = {}, set(), set(), {}

    def add_place(self, outputs, where):
        self.add_payload(place_payload(outputs), where)

    def add_payload(self, place, where):
        """One account-region's counts (place_payload) added in."""
        if place["Start"]:
            self.start = min(self.start or place["Start"], place["Start"])
        self.folders.update(place["Folders"])
        self.controls.update(r["Control"] for r in place["Rows"])
        self.rows.extend(place["Rows"])
        for control, proposed, fixed in place["Fixes"]:
            add(
                self.fixes.setdefault(control, {}),
                {"FixProposedNC": proposed, "FixedAtOwnerNC": fixed},
            )
        self.groups.extend(place["Groups"])
        policies = place["Policies"]
        self.places[where] = self.interned.setdefault(policies, policies)
        self.policies.update(place["Scanned"])
        self.scans.extend(place["States"])
        for s in place["States"]:
            self.names[s["Account"]] = self.names.get(s["Account"]) or s["AccountName"]
        for account in place["Accounts"]:
            add(
                self.accounts.setdefault(account["Account"], {}),
                {k: v for k, v in account.items() if k not in ("Account", "AccountName")},
            )
        totals = dict(place["Totals"])
        self.regions.update(r["Region"] for r in place["Rows"])
        del totals["Accounts"], totals["Regions"]
        add(self.totals, totals)

    def finish(self, expected):
        """The run as schema.json has it (Rows, Accounts, Controls, Totals), its scan
        states and problems: a policy the run ran elsewhere and not in an account-region
        is not scanned there, as is an expected account-region that wrote nothing."""
        from c7n_imds_report.aggregate import NOT_MEASURED, iso
        from c7n_imds_report.controls import control_sort_key
        from c7n_imds_report.runs import not_scanned, worst

        names = dict(self.names)
        names.update({a: n for (a, _), n in (expected or {}).items() if n})
        problems, missing = [], {}
        for where, policies in self.places.items():
            for policy in sorted(self.policies - policies):
                missing.setdefault(where, []).append(policy)
        scans = Spool()
        for s in self.scans:
            scans.append(dict(s, AccountName=names.get(s["Account"])))
        for where, policies in missing.items():
            for policy in policies:
                scans.append(
                    dict(
                        Account=where[0],
                        AccountName=names.get(where[0]),
                        Region=where[1],
                        Policy=policy,
                        State="not-scanned",
                        Reason="no output for this policy here",
                    )
                )
        controls = sorted(self.controls, key=control_sort_key) or ["other"]
        absent = sorted(set(expected or ()) - set(self.places))
        for account, region in absent:
            scans.append(not_scanned(account, names.get(account), region))
        self.scans.close()
        if len(scans) <= SPILL_AFTER:
            scans.sort(key=lambda s: (s["Account"], s["Region"], s["Policy"] or ""))
        state_of = defaultdict(list)
        for s in scans:
            if s["State"] != "scanned":
                problems.append(s)
                state_of[(s["Account"], s["Region"])].append(s["State"])
        rows, shares, matrix, read = Spool(), {}, {}, set()
        blank = [
            dict(
                Account=a,
                AccountName=None,
                Region=r,
                Control=c,
                State="not-scanned",
                Scanned=None,
                ScannedByLaunchType={},
                **NOT_MEASURED,
            )
            for a, r in absent
            for c in controls
        ]
        for row in (
            list(self.rows) + blank
            if len(self.rows) <= SPILL_AFTER
            else iter_chain(self.rows, blank)
        ):
            where = (row["Account"], row["Region"])
            row = dict(row, AccountName=names.get(row["Account"]))
            if where in state_of:
                row["State"] = (
                    worst(["scanned"] + state_of[where]) if where in self.places else "not-scanned"
                )
            rows.append(row)
            if row["State"] == "scanned":
                read.add(row["Account"])
            cell = matrix.setdefault((row["Account"], row["Control"]), [None, []])
            if row["State"] == "scanned" and row["NonCompliant"] is not None:
                cell[0] = (cell[0] or 0) + row["NonCompliant"]
            elif row["State"] != "scanned":
                cell[1].append((row["Region"], row["State"]))
            if row["State"] == "scanned" and row["Scanned"] is not None:
                add(
                    shares.setdefault(row["Control"], {}),
                    {
                        k: row.get(k)
                        for k in (
                            "Scanned",
                            "NonCompliant",
                            "Resources",
                            "ResourcesNonCompliant",
                            "AwaitingCleanup",
                        )
                    },
                )
                shares[row["Control"]]["Places"] = shares[row["Control"]].get("Places", 0) + 1
                shares[row["Control"]]["ResourceType"] = row.get("ResourceType")
        self.rows.close()
        if len(rows) <= SPILL_AFTER:
            rows.sort(key=lambda r: (r["Account"], r["Region"], control_sort_key(r["Control"])))
        accounts = []
        for account in sorted(set(self.accounts) | {a for a, _ in absent}):
            counts = dict(self.accounts.get(account) or {})
            record = dict(Account=account, AccountName=names.get(account), **counts)
            if account not in read:  # nothing of it was read: not measured, not 0
                record.update(NOT_MEASURED, Scanned=None)
            accounts.append(record)
        start = self.start or 0
        return {
            "Run": iso(start),
            "Start": start,
            "Folders": sorted(self.folders),
            "Rows": rows,
            "Accounts": accounts,
            "Controls": [
                share(c, dict(shares.get(c) or {}, **self.fixes.get(c, {}))) for c in controls
            ],
            "Totals": dict(
                Accounts=len(accounts),
                Regions=len(self.regions | {r for _, r in absent}),
                **self.totals,
            ),
            "_matrix": matrix,
            "_problems": problems,
            "_scans": scans,
            "_groups": self.groups,
        }


def listed(spool):
    """A spool that stayed in memory as the plain list it is; a spilled one as is."""
    return spool.items if spool.file is None else spool


def iter_chain(*iterables):
    for iterable in iterables:
        yield from iterable


def share(control, sums):
    """A control's compliant share on the group view, and on the resource Security Hub
    evaluates (launch configurations, instances) where a policy recorded every one."""
    from c7n_imds_report.aggregate import RESOURCE_TYPES

    sums = sums or {}
    in_scope, non_compliant = sums.get("Scanned"), sums.get("NonCompliant")
    resources, failing = sums.get("Resources"), sums.get("ResourcesNonCompliant")
    return dict(
        Control=control,
        InScope=in_scope,
        NonCompliant=non_compliant,
        CompliantShare=round(max(0.0, 1 - non_compliant / in_scope), 4)
        if in_scope and non_compliant is not None
        else (1.0 if in_scope == 0 else None)
        if in_scope is not None
        else None,
        FixProposed=sums.get("FixProposedNC"),
        FixedAtOwner=sums.get("FixedAtOwnerNC"),
        ResourceType=RESOURCE_TYPES.get(control, "auto-scaling-group"),
        Resources=resources,
        ResourcesNonCompliant=failing,
        ResourceShare=round(max(0.0, 1 - failing / resources), 4)
        if resources and failing is not None
        else None,
        AwaitingCleanup=sums.get("AwaitingCleanup"),
        AccountRegions=sums.get("Places", 0),
    )


def place_payload(outputs):
    """What a run keeps of one account-region's outputs (pure; a worker computes it):
    its rows, groups, scan states and counts - never the outputs themselves."""
    from c7n_imds_report.aggregate import drill_down, summarize_run

    place = summarize_run(outputs)
    return {
        "Start": place["Start"],
        "Folders": place["Folders"],
        "Rows": place["Rows"],
        "Fixes": [(c["Control"], c["FixProposed"], c["FixedAtOwner"]) for c in place["Controls"]],
        "Groups": drill_down(outputs, place["_states"]),
        "Policies": frozenset(o["Policy"] for o in outputs),
        "Scanned": sorted({o["Policy"] for o in outputs if o["State"] == "scanned"}),
        "States": place["_states"],
        "Accounts": place["Accounts"],
        "Totals": place["Totals"],
    }


def unit_payloads(root, outputs, expected):
    """[((prefix, run key, rank), (account, region), payload)] of one unit's outputs."""
    from c7n_imds_report.runs import resolve_accounts

    outputs = resolve_accounts(outputs, expected)
    by_run = defaultdict(list)
    for o in outputs:
        by_run[run_id(o)].append(o)
    found = []
    for (prefix, key), mine in by_run.items():
        ranked = defaultdict(list)
        for o in sorted(mine, key=lambda o: o["Start"]):
            ranked[(o["Account"], o["Region"], o["Policy"])].append(o)
        by_rank = defaultdict(list)
        for executions in ranked.values():
            for rank, o in enumerate(executions):
                by_rank[rank].append(o)
        folder = os.path.join(root, *prefix) if prefix else root
        for rank, these in by_rank.items():
            places = defaultdict(list)
            for o in these:
                places[(o["Account"], o["Region"])].append(dict(o, Folder=folder))
            for where, place in places.items():
                found.append(((prefix, key or "", rank), where, place_payload(place)))
    return found


# ---- reading in parallel -------------------------------------------------------------------

WORKERS = 2  # processes that read and count account-regions (this machine has 2 cores)
PARALLEL_AFTER = 32  # units: a smaller tree is read in this process (no pool to start)
IN_FLIGHT = 64  # units handed to the workers and not yet added in: a bounded queue
_EXPECTED = None  # the workers' accounts file (set once, by the pool's initializer)


def _start_worker(expected):
    global _EXPECTED
    _EXPECTED = expected


def _read_unit(task):
    return read_task(task, _EXPECTED)


def read_task(unit, expected):
    """(tree, payloads) of a unit, or of every unit of a ("tree", folder, parts) task."""
    tree, root, folders, source = unit_parts(unit)
    if folders and isinstance(folders, tuple) and folders[0] == "tree":
        payloads = []
        for _, found in walk(folders[1], folders[2]):
            payloads += unit_payloads(root, load_unit(source, found), expected)
        return tree, payloads
    if folders and isinstance(folders, tuple) and folders[0] == "unit":
        folders = folders[2]
    outputs = folders if folders and isinstance(folders[0], dict) else load_unit(source, folders)
    return tree, unit_payloads(root, outputs, expected)


def unit_parts(unit):
    """(tree, root, folders, source): ``root`` names the tree in the summary, ``source``
    is where its files are (a temporary copy of s3://...; else the root itself)."""
    tree, root, folders = unit[:3]
    return tree, root, folders, unit[3] if len(unit) > 3 else root


def workers():
    """The worker processes to use: C7N_IMDS_SUMMARY_WORKERS (1: none), else WORKERS."""
    try:
        return max(1, int(os.environ.get("C7N_IMDS_SUMMARY_WORKERS") or WORKERS))
    except ValueError:
        return WORKERS


def read_units(units, expected):
    """(tree, payloads) per unit, in the units' order. Units given as loaded outputs, a
    small tree, or one worker: read here; else by a pool of processes, at most IN_FLIGHT
    units ahead of what has been added in (memory stays bounded whatever the estate)."""
    units = iter(units)
    head = list(itertools.islice(units, PARALLEL_AFTER))
    loaded = head and head[0][2] and isinstance(head[0][2][0], dict)
    count = workers()
    if loaded or len(head) < PARALLEL_AFTER or count < 2:
        for unit in itertools.chain(head, units):
            yield read_task(unit, expected)
        return
    import multiprocessing
    import threading

    gate = threading.Semaphore(IN_FLIGHT)

    def gated():
        for unit in itertools.chain(head, units):
            gate.acquire()  # Pool.imap reads its input ahead in a thread: bound it
            yield unit

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    with context.Pool(count, initializer=_start_worker, initargs=(expected,)) as pool:
        # a chunk is formed of units taken through the gate: never more than it lets by
        chunk = max(1, min(4, IN_FLIGHT // 4))
        for result in pool.imap(_read_unit, gated(), chunksize=chunk):
            gate.release()
            yield result


def compare_runs(runs):
    """Each control's Change: against the latest earlier run that measured it (a run
    that did not is skipped, not read as 0), in points only where both measured it in
    as many account-regions - else the coverage changed and the shares are not
    compared."""
    last = {}
    for run in runs:
        for control in run["Controls"]:
            if control.get("InScope") is None:
                continue
            before = last.get(control["Control"])
            share = exact_share(control)
            change = dict(Since=None, Points=None, AccountRegionsBefore=None)
            if before is not None:
                then, counts = before
                change.update(Since=then["Run"], AccountRegionsBefore=counts.get("AccountRegions"))
                if (
                    counts.get("AccountRegions") == control.get("AccountRegions")
                    and share is not None
                    and exact_share(counts) is not None
                ):
                    change["Points"] = round((share - exact_share(counts)) * 100, 1)
            control["Change"] = change
            last[control["Control"]] = (run, control)


def exact_share(counts):
    if counts.get("InScope") and counts.get("NonCompliant") is not None:
        return (counts["InScope"] - counts["NonCompliant"]) / counts["InScope"]
    return counts.get("CompliantShare")


def summarize_units(units, expected=None):
    """The summary (schema.json) from units: (tree, root, [output folder][, source])
    as walk finds them, or (tree, root, [loaded outputs]), in walk order."""
    from c7n_imds_report.aggregate import SCHEMA_VERSION

    runs = {}
    for tree, payloads in read_units(units, expected):
        for (prefix, key, rank), where, payload in payloads:
            runs.setdefault((tree, prefix, key, rank), Run()).add_payload(payload, where)
    finished = sorted((run.finish(expected) for run in runs.values()), key=lambda r: r["Start"])
    if not finished:
        empty = Run()
        finished = [empty.finish(expected)]
    compare_runs(finished)
    latest = finished[-1]
    for run in finished:
        for name in ("_scans", "_groups"):
            if run is not latest:
                run[name].close()
    for run in finished:
        run["Rows"] = listed(run["Rows"])
    summary = {
        "SchemaVersion": SCHEMA_VERSION,
        "Runs": finished,
        "Scans": listed(latest.pop("_scans")),
        "Groups": listed(latest.pop("_groups")),
        "Problems": latest["_problems"],
    }
    for run in finished:
        run.pop("_scans", None)
        run.pop("_groups", None)
        run.pop("_problems", None)
    return summary

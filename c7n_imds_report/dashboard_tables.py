"""The tables of the HTML page (``c7n_imds_report.dashboard``): accounts by control,
stack-owned groups by owner, the groups by state (the drill-down), the scans not
complete, the figures by account, region and control, and the runs. Each is a table the
page's script can sort and filter; without the script it reads the same, unsorted.
"""
import re

from c7n_imds.model import escape
from c7n_imds_report import display, stack_owned

# A run of characters no line can break in: such a cell may break anywhere (letting every
# cell do so would squeeze short columns: "Regio/n").
LONG_WORD = re.compile(r"[^\s-]{28,}")


def esc(value):
    """Text for the page, in text and attributes alike (quotes too), control characters
    written out: an account's owner chose it, not the reader of the page."""
    return escape.html(value)


def account_html(record):
    """The account's name with its id beside it (the id alone when it has no name)."""
    return '%s <span class="id">%s</span>' % (esc(record.get("AccountName")),
                                              esc(record["Account"]))


# ---- cells and tables: a cell is (escaped HTML, sort key or None, class) ------------

def text(value):
    return (esc(value), None, "long" if LONG_WORD.search(str(value)) else "")


def number(value, shown=None):
    return (esc(shown or display.count(value)), -1 if value is None else value, "n")


def account_cell(record):
    return (account_html(record), None, text(record.get("AccountName") or "")[2])


def table(table_id, label, headers, rows, empty="None.", kind="data"):
    if not rows:
        return '<p class="empty" id="%s">%s</p>' % (table_id, esc(empty))
    head = "".join('<th scope="col">%s</th>' % esc(h) for h in headers)
    body = "".join("<tr>%s</tr>" % "".join(
        '<td data-label="%s"%s%s>%s</td>' % (
            esc(header), "" if sort is None else ' data-sort="%s"' % esc(sort),
            ' class="%s"' % esc(cls) if cls else "", content)
        for header, (content, sort, cls) in zip(headers, row)) for row in rows)
    return ('<table class="%s" id="%s" aria-label="%s"><thead><tr>%s</tr></thead>'
            '<tbody>%s</tbody></table>' % (kind, table_id, esc(label), head, body))


# ---- account x control --------------------------------------------------------------

def matrix(run):
    controls, accounts = display.account_cells(run)
    rows = []
    for record, cells in accounts:
        row = [account_cell(record)]
        for cell in cells:
            main, missing = display.cell_text(cell)
            row.append(("<span>%s</span>%s" % (esc(main), "".join(
                "<small>%s</small>" % esc(m) for m in missing)),
                -1 if not cell or cell["NonCompliant"] is None else cell["NonCompliant"],
                "st-" + cell["State"] if cell else "st-none"))
        rows.append(row)
    legend = "".join('<li><span class="sw st-%s"></span>%s</li>' % (s, label) for s, label in (
        ("compliant", "compliant"), ("non-compliant", "non-compliant groups"),
        ("errored", "errored or unreadable"), ("not-scanned", "not scanned")))
    return ('<ul class="legend">%s<li>%s not measured</li></ul>' % (legend, display.DASH) +
            table("accounts-table", "Accounts by control", ["Account"] + controls, rows))


# ---- stack-owned groups by owner ----------------------------------------------------

def owners(run):
    """Per account and owner kind, and for all accounts, the stack-owned groups and how
    far their fix has come."""
    rows = [[(esc(label), None, "") if record is None else account_cell(record),
             text(stack_owned.owner_label(kind))] + [
                number(counts.get(k, 0)) for k, _ in stack_owned.OWNER_COUNTS]
            for label, record, kind, counts in stack_owned.owner_rows(run)]
    return ('<p class="note">Groups that CloudFormation, Elastic Beanstalk or an EKS managed '
            'node group owns are fixed there, not behind the owner\'s back. A fix proposed '
            '(a change set) or rolling out is still counted non-compliant: the group fails '
            'the control until a scan sees it launch with IMDSv2 required.</p>' +
            table("t-owners", "Stack-owned groups by owner", ["Account", "Owner"] + [
                label for _, label in stack_owned.OWNER_COUNTS], rows,
                empty="Not measured in this run."))


# ---- drill-down ------------------------------------------------------------------------

def calls(group):
    return number(group.get("Calls"), None if group.get("Calls") is None or group.get(
        "Days") is None else "%d in %d days" % (group["Calls"], group["Days"]))


WHERE = [("Account", account_cell), ("Region", lambda g: text(g["Region"])),
         ("Group", lambda g: text(g["Group"])), ("Control", lambda g: text(g["Control"]))]
LAUNCH = ("Launch type", lambda g: text(display.launch_label(g["LaunchType"])))
OWNER = ("Owner", lambda g: text(g.get("Owner") or display.DASH))
REASON = ("Reason", lambda g: text(g.get("Reason") or display.DASH))
OWNED_BY = ("Owned by", lambda g: text(g.get("Stack") or display.DASH))


def fix_field(name):
    return lambda g: text((g.get("Fix") or {}).get(name) or display.DASH)


def command(group):
    found = (group.get("Fix") or {}).get("Command")
    return ("<code>%s</code>" % esc(found), None, "long") if found else text(display.DASH)


def fix_done(group):
    fix = group.get("Fix") or {}
    return text("%s (%s)" % (fix.get("Action") or display.DASH, "applied" if fix.get(
        "Status") == "applied" else "already in place"))


DRILL_DOWN = [
    ("non-compliant", "Non-compliant", "Their launch allows IMDSv1.", [LAUNCH, OWNER]),
    ("held-back", "Held back: instances still call IMDSv1", "Left alone until the calls "
     "stop (CloudWatch MetadataNoToken); the owner was notified.",
     [LAUNCH, ("IMDSv1 calls", calls), OWNER]),
    ("exempt", "Exempt", "Tagged c7n-imds:exempt by their owners.",
     [REASON, ("Expires", lambda g: text(g.get("Until") or "no expiry")), OWNER]),
    ("stack-owned", "Owned by a stack", "Changed at the stack, not by c7n-imds; no fix "
     "at the owner yet.",
     [OWNED_BY, ("What to change", lambda g: text(g.get("Reason") or display.DASH)), OWNER,
      ("Next step", lambda g: text(stack_owned.fix_text(g)))]),
    ("fix-proposed", "Fix proposed: a change set to execute", "The stack's owner reviews "
     "and executes the change set; until then the group still fails AutoScaling.3.",
     [OWNED_BY, ("Change set", fix_field("ChangeSetName")), ("Execute", command), OWNER]),
    ("fixed-at-owner", "Fixed at the owner, rolling out", "The owner's own update replaces "
     "the group's launch source; counted non-compliant until a scan sees it launch with "
     "IMDSv2 required.",
     [OWNED_BY, ("Fix", fix_done), ("Waiting for", fix_field("Pending")),
      ("Follow it", command), OWNER]),
    ("failed", "Failed", "The change was tried and did not complete.",
     [LAUNCH, REASON, OWNER]),
    ("remediated", "Remediated in this run", "Now launch with IMDSv2 required.",
     [LAUNCH, OWNER])]


def drill_down(summary):
    out = []
    for state, title, note, columns in DRILL_DOWN:
        groups, columns = [g for g in summary["Groups"] if g["State"] == state], WHERE + columns
        out.append('<h3 id="h-%s">%s (%d)</h3><p class="note">%s</p>%s' % (
            state, esc(title), len(groups), esc(note), table(
                "t-" + state, title, [c[0] for c in columns],
                [[cell(g) for _, cell in columns] for g in groups])))
    return "".join(out)


def problems_table(found):
    return table("t-problems", "Scans not complete", ["Account", "Region", "Policy",
                                                       "State", "Reason"], [[
        account_cell(s), text(s["Region"]), text(s["Policy"] or display.DASH),
        text(display.STATE_LABELS.get(s["State"], s["State"])), text(s["Reason"] or display.DASH)]
        for s in found], empty="None: every expected account and region was read.")


# ---- figures tables -----------------------------------------------------------------------

def figures_table(run):
    columns = display.figure_columns(run)
    headers = ["Account", "Region", "Control", "State", "Scanned"] + [c[1] for c in columns]
    rows = [[account_cell(r), text(r["Region"]), text(r["Control"]),
             text(display.STATE_LABELS.get(r["State"], r["State"])), number(r.get("Scanned"))] +
            [number(display.figure(r, k)) for k, _ in columns] for r in run["Rows"]]
    return table("t-figures", "By account, region and control", headers, rows,
                 kind="data wide")


def trend_table(runs):
    return table("t-trend", "Runs", ["Run", "Accounts", "Regions"] + [
        label for _, label in display.TREND_FIGURES] + ["Folders"], [
        [text(r["Run"]), number(r["Totals"]["Accounts"]), number(r["Totals"]["Regions"])] +
        [number(r["Totals"].get(k)) for k, _ in display.TREND_FIGURES] +
        [text(", ".join(r["Folders"]))] for r in runs], kind="data wide")

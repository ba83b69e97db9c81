"""Headless Chromium (Debian's, installed by `make test`) for the tests that judge what a
page shows: the DOM it made after its scripts ran, and a screenshot. Every run is cut
off from the network: no resolver, a proxy on a closed loopback port."""

import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def chromium(*jobs):
    """Chromium on each job (an HTML file, the window's width, extra flags), side by
    side; the DOM it made of each page after the scripts ran (with --screenshot=FILE,
    a picture of the window too)."""
    assert Path(CHROMIUM).exists(), "no %s: `make test` installs it (Debian's chromium)" % (
        CHROMIUM
    )
    runs = []
    for path, width, extra in jobs:
        out = path.with_suffix(".dom")
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--user-data-dir=%s" % path.with_suffix(".profile"),
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=%d,2400" % width,
            "--dump-dom",
            *extra,
            path.as_uri(),
        ]
        with open(out, "w") as stdout, open(path.with_suffix(".log"), "w") as stderr:
            runs.append((subprocess.Popen(command, stdout=stdout, stderr=stderr), path, out))
    doms = []
    for process, path, out in runs:
        try:
            assert process.wait(timeout=60) == 0, path.with_suffix(".log").read_text()[-2000:]
        finally:
            if process.poll() is None:  # a page that never finished (a dialog waits forever)
                process.kill()
                process.wait()
        text = out.read_text(encoding="utf-8")
        assert "</html>" in text, path.with_suffix(".log").read_text()[-2000:]
        doms.append(text)
    return doms


VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return " ".join(
            "".join(c if isinstance(c, str) else " %s " % c.text() for c in self.children).split()
        )

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find(self, element_id):
        return next((e for e in self.iter() if e.attrs.get("id") == element_id), None)

    def all(self, tag):
        return [e for e in self.iter() if e.tag == tag]


class Dom(HTMLParser):
    """The dumped DOM as a tree of Elements (html.parser keeps script text as text)."""

    def __init__(self, text):
        super().__init__()
        self.root = self.current = Element("#document", {}, None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def cells(root, table_id):
    table = root.find(table_id)
    assert table is not None and table.tag == "table", table_id
    return [
        [(td.text(), td.attrs.get("class", "")) for td in tr.all("td")]
        for tr in table.all("tr")[1:]
    ]


def column(root, table_id, index):
    return [row[index][0] for row in cells(root, table_id)]

"""The pod picker's documented keys and cases that had no test
(docs/kubernetes.md, Picking a pod): PgUp/PgDn, Home/End, filter editing
with Backspace and ^U, Escape, ^C, a resize, several clusters and a cluster
that cannot be listed."""

from __future__ import annotations

import pathlib
import re
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from fixture import closed_port, start_apiserver, write_kubeconfig  # noqa: E402
from test_broker_picker import Shell, list_screen, pick  # noqa: E402

NPODS = 40
PODS = {"namespaces": {"many": {"pods": [f"pod-{i:02d}" for i in range(NPODS)]},
                       "other": {"pods": ["solo-0"]}}}
RULES = [{"groups": ["oncall"], "targets": ["prod:many/*", "prod:other/*"]}]


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    d = tmp_path_factory.mktemp("k8s-pick-keys")
    srv = start_apiserver(PODS, d / "api")
    srv.cache = d / "kube-cache"
    srv.down_kubeconfig = write_kubeconfig(d / "down.kubeconfig",
                                           f"https://127.0.0.1:{closed_port()}",
                                           ca_file=srv.ca, token=srv.token)
    try:
        yield srv
    finally:
        srv.stop()


def cluster(k8s, name="prod", kubeconfig=None):
    return {"name": name, "kubeconfig": str(kubeconfig or k8s.kubeconfig),
            "kubectl": "/usr/bin/kubectl", "cache_dir": str(k8s.cache), "timeout": "5s"}


def picker(broker, k8s, rules=RULES, clusters=None):
    b = broker(users={"alice": {"groups": ["oncall"]}}, rules=rules, targets={}, start=False)
    b.kubernetes = clusters or [cluster(k8s)]
    b.start()
    return b


def selected(sh, since):
    """The name on the highlighted row drawn last since output offset since."""
    rows = re.findall(rb"\x1b\[7m> +\S+ +(\S+)", sh.out[since:])
    return rows[-1].decode() if rows else None


def key(sh, data: bytes, want, what: str):
    """Send a key and wait until the highlighted row is want."""
    n = len(sh.out)
    sh.chan.send(data)
    deadline = time.monotonic() + 20
    while selected(sh, n) != want:
        assert time.monotonic() < deadline, f"{what}: selected {selected(sh, n)!r}, not {want!r}"
        if not sh.read():
            time.sleep(0.01)


def test_page_and_home_end_keys(broker, k8s):
    b = picker(broker, k8s)
    sh = Shell(b)
    try:
        list_screen(sh)
        key(sh, b"\x1b[F", "solo-0", "End")                 # the last entry
        key(sh, b"\x1b[H", "pod-00", "Home")
        n = len(sh.out)
        sh.chan.send(b"\x1b[6~")                              # PgDn: a page further
        sh.expect("\x1b[7m>", start=n)
        m = re.fullmatch(r"pod-(\d+)", selected(sh, n) or "")
        assert m and 5 < int(m.group(1)) < NPODS, selected(sh, n)
        key(sh, b"\x1b[5~", "pod-00", "PgUp")
        key(sh, b"\x0e", "pod-01", "^N")
        key(sh, b"\x10", "pod-00", "^P")
    finally:
        sh.close()


def test_filter_editing_escape_and_ctrl_c(broker, k8s):
    b = picker(broker, k8s)
    sh = Shell(b)
    try:
        list_screen(sh)
        n = len(sh.out)
        sh.chan.send(b"pod-3")
        sh.expect("(10 of 41)", start=n)
        n = len(sh.out)
        sh.chan.send(b"\x7f")                                  # Backspace: "pod-"
        sh.expect("(40 of 41)", start=n)
        n = len(sh.out)
        sh.chan.send(b"\x15solo")                              # ^U clears, then "solo"
        sh.expect("(1 of 41)", start=n)
        n = len(sh.out)
        sh.chan.send(b"\x1b")                                  # Escape clears the filter first
        sh.expect("(41 of 41)", start=n)
        sh.chan.send(b"\x1b")                                  # ... then quits
        assert sh.exit_status() == 1
        assert b"podgate: no target selected" in sh.out + sh.err
    finally:
        sh.close()
    sh = Shell(b)
    try:
        list_screen(sh)
        sh.chan.send(b"pod\x03")                               # ^C quits, filter or not
        assert sh.exit_status() == 1
        assert b"podgate: no target selected" in sh.out + sh.err
    finally:
        sh.close()
    assert b.recording_paths() == []


def test_resize_redraws_within_the_new_size(broker, k8s):
    b = picker(broker, k8s)
    sh = Shell(b)
    try:
        list_screen(sh)
        n = len(sh.out)
        sh.chan.resize_pty(width=60, height=16)
        sh.expect("filter:", start=n)
        redraw = sh.out[n:].decode(errors="replace")
        frame = redraw[redraw.rfind("\x1b[H"):]            # the last full drawing
        lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", x) for x in frame.split("\r\n")]
        assert 3 < len(lines) <= 16, lines
        assert all(len(x) <= 60 for x in lines), lines
        assert "filter:" in lines[-1], lines
        pick(sh)
        n = len(sh.out)
        sh.chan.send(b"stty size; exit\r")
        sh.expect("16 60", start=n)
        assert sh.exit_status() == 0
    finally:
        sh.close()


def test_several_clusters_and_one_that_cannot_be_listed(broker, k8s):
    rules = [{"groups": ["oncall"], "targets": ["*:other/*"]}]
    clusters = [cluster(k8s), cluster(k8s, "eu"), cluster(k8s, "down", k8s.down_kubeconfig)]
    b = picker(broker, k8s, rules=rules, clusters=clusters)
    sh = Shell(b)
    try:
        list_screen(sh)
        sh.expect("down")
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", sh.out.decode(errors="replace"))
        # With several clusters the NAMESPACE column reads CLUSTER:NS.
        assert re.search(r"prod:other +solo-0", text) and re.search(r"eu:other +solo-0", text), text
        assert "(2 of 2)" in text, text
        # The cluster that cannot be listed is named under the list.
        assert re.search(r"\bdown\b.*(cannot|refused|reach)", text), text
        n = len(sh.out)
        sh.chan.send(b"eu:")
        sh.expect("(1 of 2)", start=n)
        pick(sh)
        n = len(sh.out)
        sh.chan.send(b"echo host=$HOSTNAME; exit\r")
        sh.expect("host=solo-0", start=n)
        assert sh.exit_status() == 0
    finally:
        sh.close()
    start = b.wait_audit("session_start")[0]
    assert start["target"] == "eu:other/solo-0", start

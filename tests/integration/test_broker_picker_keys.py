"""The pod picker's documented keys and cases that had no test
(docs/kubernetes.md, Picking a pod): PgUp/PgDn, Home/End, filter editing
with Backspace and ^U, Escape, ^C, a resize, several clusters and a cluster
that cannot be listed."""

from __future__ import annotations

import re

import pytest

from support.picker import (Shell, closed_port, cluster, key, list_screen, pick, picker_broker,
                            pods_apiserver, screen_text, selected, send_expect, write_kubeconfig)

NPODS = 40
PODS = {"namespaces": {"many": {"pods": [f"pod-{i:02d}" for i in range(NPODS)]},
                       "other": {"pods": ["solo-0"]}}}
RULES = [{"groups": ["oncall"], "targets": ["prod:many/*", "prod:other/*"]}]


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    for srv in pods_apiserver(tmp_path_factory, "k8s-pick-keys", PODS):
        srv.down_kubeconfig = write_kubeconfig(srv.cache.parent / "down.kubeconfig",
                                               f"https://127.0.0.1:{closed_port()}",
                                               ca_file=srv.ca, token=srv.token)
        yield srv


def picker(broker, k8s, rules=RULES, clusters=None):
    return picker_broker(broker, clusters or [cluster(k8s)], rules)


def test_page_and_home_end_keys(broker, k8s):
    b = picker(broker, k8s)
    with Shell(b) as sh:
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


def test_filter_editing_escape_and_ctrl_c(broker, k8s):
    b = picker(broker, k8s)
    with Shell(b) as sh:
        list_screen(sh)
        send_expect(sh, b"pod-3", "(10 of 41)")
        send_expect(sh, b"\x7f", "(40 of 41)")                 # Backspace: "pod-"
        send_expect(sh, b"\x15solo", "(1 of 41)")              # ^U clears, then "solo"
        send_expect(sh, b"\x1b", "(41 of 41)")                 # Escape clears the filter first
        sh.chan.send(b"\x1b")                                  # ... then quits
        assert sh.exit_status() == 1
        assert b"podgate: no target selected" in sh.out + sh.err
    with Shell(b) as sh:
        list_screen(sh)
        sh.chan.send(b"pod\x03")                               # ^C quits, filter or not
        assert sh.exit_status() == 1
        assert b"podgate: no target selected" in sh.out + sh.err
    assert b.recording_paths() == []


def test_resize_redraws_within_the_new_size(broker, k8s):
    b = picker(broker, k8s)
    with Shell(b) as sh:
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
        send_expect(sh, b"stty size; exit\r", "16 60")
        assert sh.exit_status() == 0


def test_several_clusters_and_one_that_cannot_be_listed(broker, k8s):
    rules = [{"groups": ["oncall"], "targets": ["*:other/*"]}]
    clusters = [cluster(k8s), cluster(k8s, "eu"), cluster(k8s, "down", k8s.down_kubeconfig)]
    b = picker(broker, k8s, rules=rules, clusters=clusters)
    with Shell(b) as sh:
        list_screen(sh)
        sh.expect("down")
        text = screen_text(sh)
        # With several clusters the NAMESPACE column reads CLUSTER:NS.
        assert re.search(r"prod:other +solo-0", text) and re.search(r"eu:other +solo-0", text), text
        assert "(2 of 2)" in text, text
        # The cluster that cannot be listed is named under the list.
        assert re.search(r"\bdown\b.*(cannot|refused|reach)", text), text
        send_expect(sh, b"eu:", "(1 of 2)")
        pick(sh)
        send_expect(sh, b"echo host=$HOSTNAME; exit\r", "host=solo-0")
        assert sh.exit_status() == 0
    start = b.wait_audit("session_start")[0]
    assert start["target"] == "eu:other/solo-0", start

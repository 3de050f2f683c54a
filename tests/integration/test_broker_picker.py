"""The pod picker: `ssh -t broker` without a target on a broker with clusters.

The client is paramiko with an 80x24 PTY (invoke_shell); the broker lists
pods against the test API server (tests/k8s/fixture.py) with both
transports: natively (kubectl is /bin/false, never run) and through the real
kubectl. Screens are awaited with deadlines, never sleeps.
"""

from __future__ import annotations

import re

import pytest

from support.picker import (Shell, cluster, list_screen, pick, picker_broker,  # noqa: F401
                            pods_apiserver, send_expect)

PODS = {
    "namespaces": {
        "prod": {"pods": [
            {"name": "api-1", "containers": ["app"]},
            {"name": "web-0", "containers": ["app", "sidecar"]},
            {"name": "worker-7", "containers": ["main"], "phase": "Pending"},
        ]},
        "staging": {"pods": ["tool-0", "tool-1"]},
    },
}

RULES = [{"groups": ["oncall"], "targets": ["prod:prod/*"],
          "impersonate": {"user": "{user}", "groups": ["oncall"]}}]


@pytest.fixture(scope="module", params=["native", "kubectl"])
def k8s(request, tmp_path_factory):
    yield from pods_apiserver(tmp_path_factory, "k8s-pick-" + request.param, PODS,
                              transport=request.param)


def pick_broker(broker, k8s, rules=RULES, targets=None):
    """A broker picking from k8s through its transport (natively, kubectl
    is /bin/false, never run)."""
    c = cluster(k8s, context="podgate-test", transport=k8s.transport,
                kubectl="/usr/bin/kubectl" if k8s.transport == "kubectl" else "/bin/false")
    return picker_broker(broker, [c], rules, targets)


def test_list_shows_allowed_pods_with_columns(broker, k8s):
    b = pick_broker(broker, k8s)
    with Shell(b) as sh:
        text = list_screen(sh)
        assert re.search(r"NAMESPACE +NAME +CONTAINERS +AGE +STATUS", text), text
        rows = {m.group(2): m.group(0) for m in
                re.finditer(r"(prod) +((?:api|web|worker)-\d) +(\S+) +(\S+) +(\S+)", text)}
        assert set(rows) == {"api-1", "web-0", "worker-7"}, text
        assert re.search(r"web-0 +app,sidecar +\d+[smhd] +Running", rows["web-0"]), rows
        assert re.search(r"main +\d+[smhd] +ContainerCreating", rows["worker-7"]), rows
        assert "tool-0" not in text and "staging" not in text
        # Every line of the screen fits 80 columns.
        for line in text.split("\n"):
            assert len(line) < 80, line
        # The listing asked for the allowed namespace only, as the user.
        lists = [q for q in k8s.requests() if q["path"].endswith("/pods") and q["method"] == "GET"]
        assert lists and all(q["path"] == "/api/v1/namespaces/prod/pods" for q in lists), lists
        assert all(q["impersonate_user"] == "alice" for q in lists)
        # No session is recorded while the picker runs.
        assert b.recording_paths() == []


def test_arrow_down_enter_picks_second_pod(broker, k8s):
    b = pick_broker(broker, k8s)
    with Shell(b) as sh:
        list_screen(sh)
        send_expect(sh, b"\x1b[B", "\x1b[7m> prod")
        pick(sh)
        send_expect(sh, b"echo pod=$PODGATE_K8S_POD\r", "pod=web-0")
        sh.chan.send(b"exit 3\r")
        assert sh.exit_status() == 3
    rec = b.wait_recordings(1)[0]
    assert rec.header["where"]["pod"] == "web-0"
    assert rec.header["where"]["namespace"] == "prod"
    assert b"filter:" not in rec.data("o"), "the picker's screen is not recorded"
    start = b.wait_audit("session_start")[0]
    assert start["target"] == "prod:prod/web-0" and start["pod"] == "web-0"


def test_typing_filters_and_enter_picks(broker, k8s):
    b = pick_broker(broker, k8s)
    with Shell(b) as sh:
        list_screen(sh)
        n = len(sh.out)
        sh.chan.send(b"work")
        sh.expect("filter: work", start=n)
        sh.expect("(1 of 3)", start=n)
        sh.chan.send(b"\r")
        # worker-7 is Pending: the target says so in one line, and the session ends.
        assert sh.exit_status() == 1
        assert b"not running (phase Pending)" in sh.out + sh.err
    with Shell(b) as sh:
        list_screen(sh)
        sh.chan.send(b"api")
        sh.expect("filter: api")
        pick(sh)
        send_expect(sh, b"echo host=$HOSTNAME; exit\r", "host=api-1")
        assert sh.exit_status() == 0


def test_q_cancels(broker, k8s):
    b = pick_broker(broker, k8s)
    with Shell(b) as sh:
        list_screen(sh)
        sh.chan.send(b"q")
        assert sh.exit_status() == 1
        assert b"podgate: no target selected" in sh.err + sh.out
    b.wait_audit("refused", lambda e: e.get("reason") == "no target selected")
    assert b.recording_paths() == []


def test_local_is_listed_first(broker, k8s):
    rules = RULES + [{"groups": ["oncall"], "targets": ["local"]}]
    b = pick_broker(broker, k8s, rules=rules, targets={"local": {"shell": "/bin/sh"}})
    with Shell(b) as sh:
        text = list_screen(sh)
        assert "(1 of 4)" not in text and "of 4)" in text, text
        assert re.search(r"> - +local +broker host", text), text
        pick(sh)
        send_expect(sh, b"echo local-$((6*7)); exit\r", "local-42")
        assert sh.exit_status() == 0

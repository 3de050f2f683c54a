"""The kubernetes target: ssh -> podgate-broker -> the test API server, through
both transports: native (the broker speaks TLS, HTTP and the exec WebSocket
itself; kubectl is /bin/false to show it is never run) and kubectl (the real
kubectl exec).

One API server per module and transport (tests/k8s/fixture.py) serves every
test; each test starts its own broker whose kubectl discovery cache is shared
(cache_dir), so only the first kubectl run pays for discovery.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from conftest import to_yaml, wait_until  # noqa: E402
from support import recv_until  # noqa: E402
from support.terminal import Terminal  # noqa: E402
from fixture import blackhole, closed_port, start_apiserver, write_kubeconfig  # noqa: E402

PODS = {
    "namespaces": {
        "prod": {
            "pods": [
                {"name": "web-0", "containers": ["app", "sidecar"], "owner": {"statefulset": "web"}},
                {"name": "api-1", "containers": ["app"], "owner": {"deployment": "api"}},
                {"name": "job-1", "phase": "Succeeded"},
                {"name": "pend-1", "phase": "Pending"},
                {"name": "secret-0", "forbidden_users": ["mallory"]},
            ],
            "exec_forbidden_users": ["eve"],
        },
        "staging": {"pods": ["tool-0"]},
        # Containers with only some shells (the test API server hides the others).
        "slim": {"pods": [{"name": "slim-0", "shells": ["sh"]},
                          {"name": "dash-0", "shells": ["sh", "dash"]},
                          {"name": "bare-0", "shells": []}]},
    },
}

RULE_TARGETS = ["prod:*/*", "prod:*/*/*", "prod:*/deploy/*", "prod:*/sts/*", "down:*/*", "hung:*/*"]


@pytest.fixture(scope="module", params=["native", "kubectl"])
def k8s(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("k8s-" + request.param)
    srv = start_apiserver(PODS, d / "api")
    hung = start_apiserver(PODS, d / "hung", hang="all")
    srv.hung = hung
    srv.transport = request.param
    srv.cache = d / "kube-cache"
    srv.down_kubeconfig = write_kubeconfig(d / "down.kubeconfig", f"https://127.0.0.1:{closed_port()}",
                                           ca_file=srv.ca, token=srv.token)
    try:
        yield srv
    finally:
        hung.stop()
        srv.stop()


def kube_broker(broker, k8s, users=None, rules=None, timeout="3s", clusters=None):
    """A broker whose config has targets.kubernetes for the module's API servers."""
    users = users or {"alice": {"groups": ["oncall"]}, "mallory": {"groups": ["oncall"]},
                      "eve": {"groups": ["oncall"]}, "bob": {"groups": ["dev"]}}
    rules = rules or [{"groups": ["oncall"], "targets": RULE_TARGETS,
                       "impersonate": {"user": "{user}", "groups": ["oncall"]}}]
    b = broker(users=users, rules=rules, targets={}, start=False)
    clusters = clusters or [
        {"name": "prod", "kubeconfig": str(k8s.kubeconfig), "context": "podgate-test",
         "kubectl": "/usr/bin/kubectl", "cache_dir": str(k8s.cache), "timeout": timeout},
        {"name": "down", "kubeconfig": str(k8s.down_kubeconfig), "cache_dir": str(k8s.cache),
         "timeout": timeout},
        {"name": "hung", "kubeconfig": str(k8s.hung.kubeconfig), "cache_dir": str(k8s.cache),
         "timeout": timeout},
    ]
    for cl in clusters:
        if "transport" not in cl:
            cl["transport"] = k8s.transport
        if cl["transport"] == "native":
            cl["kubectl"] = "/bin/false"  # never run
    b.kubernetes = clusters
    b.start()
    return b


def exec_requests(k8s, since=0):
    return [q for q in k8s.requests()[since:] if q["path"].endswith("/exec")]


def one_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# ---------------------------------------------------------------- exec

def test_exec_output_stderr_status_and_impersonation(broker, k8s):
    b = kube_broker(broker, k8s)
    n0 = len(k8s.requests())
    r = b.ssh("alice", "prod/web-0", "--", "echo out; echo err >&2; exit 3")
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\n", r.stderr
    assert r.returncode == 3
    (ex,) = exec_requests(k8s, n0)
    assert ex["authorization"] == f"Bearer {k8s.token}"
    assert ex["impersonate_user"] == "alice"
    assert ex["impersonate_groups"] == ["oncall"]
    assert ex["query"]["command"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert ex["query"]["container"] == ["app"]
    # The preflight GET impersonates too.
    gets = [q for q in k8s.requests()[n0:] if q["path"] == "/api/v1/namespaces/prod/pods/web-0"]
    assert gets and all(q["impersonate_user"] == "alice" for q in gets)

    start = b.wait_audit("session_start", lambda e: e.get("target") == "prod/web-0")[0]
    assert start["kind"] == "kubernetes"
    assert (start["cluster"], start["context"], start["namespace"], start["pod"]) == \
        ("prod", "podgate-test", "prod", "web-0")
    assert start["as_user"] == "alice" and start["as_groups"] == "oncall"
    end = b.wait_audit("session_end")[0]
    assert end["exit_status"] == 3

    rec = b.recording_for("echo out; echo err >&2; exit 3")
    assert rec.header["where"]["kind"] == "kubernetes" or rec.header["where"].get("cluster") == "prod"
    where = rec.header["where"]
    assert where["cluster"] == "prod" and where["namespace"] == "prod" and where["pod"] == "web-0"
    assert where["context"] == "podgate-test"
    assert rec.header["who"]["as_user"] == "alice"
    assert rec.data("o") == b"out\n"
    assert rec.data("e") == b"err\n"
    assert rec.exit()["status"] == 3


def test_stdin_eof_container_and_workloads(broker, k8s):
    b = kube_broker(broker, k8s)
    r = b.ssh("alice", "prod/api-1", "--", "cat; echo done", input=b"hello\nworld\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hello\nworld\ndone\n", b"")
    r = b.ssh("alice", "prod/web-0/sidecar", "--", "echo $PODGATE_K8S_CONTAINER")
    assert (r.returncode, r.stdout) == (0, b"sidecar\n")
    r = b.ssh("alice", "prod/deploy/api", "--", "echo $HOSTNAME")
    assert (r.returncode, r.stdout) == (0, b"api-1\n"), r.stderr
    r = b.ssh("alice", "prod:prod/sts/web", "--", "echo $HOSTNAME")
    assert (r.returncode, r.stdout) == (0, b"web-0\n"), r.stderr
    # A command killed by a signal: kubectl reports 128+N.
    r = b.ssh("alice", "prod/web-0", "--", "kill -TERM $$")
    assert r.returncode == 143 and r.stderr == b""


def test_pty_session_and_resize(broker, k8s):
    b = kube_broker(broker, k8s)
    c = b.connect("alice")
    try:
        ch = c.get_transport().open_session()
        ch.get_pty(term="xterm", width=80, height=24)
        ch.exec_command("prod/web-0 -- stty size; read x; stty size; exit 5")
        t = Terminal(ch)
        t.expect(b"24 80", timeout=20)
        ch.resize_pty(width=100, height=40)
        k8s.wait_event("resize", lambda e: e["width"] == 100 and e["height"] == 40)
        ch.send(b"\r")
        t.expect(b"40 100", timeout=20)
        assert ch.recv_exit_status() == 5
    finally:
        c.close()
    rec = b.wait_recordings(1)[0]
    assert rec.header["where"]["pod"] == "web-0"
    assert (100, 40) in rec.resizes()
    assert b"40 100" in rec.data("o")


def test_pty_session_ends_without_kubectls_exit_report(broker, k8s):
    """ssh -tt gets the remote status, and neither the terminal nor the recording
    gets kubectl's own "command terminated with exit code N" line."""
    b = kube_broker(broker, k8s)
    r = b.ssh("alice", "prod/web-0", "--", "echo pty-out; exit 7", opts=("-tt",))
    assert r.returncode == 7, (r.returncode, r.stdout, r.stderr)
    assert b"pty-out" in r.stdout, r.stdout
    assert b"command terminated" not in r.stdout + r.stderr, (r.stdout, r.stderr)
    rec = b.recording_for("echo pty-out; exit 7")
    assert rec.header["pty"] is True
    assert b"pty-out" in rec.data("o")
    assert b"command terminated" not in rec.data("o") + rec.data("e"), rec.data("o")
    assert rec.exit()["status"] == 7
    # What the command itself writes on stderr still shows (a PTY merges the two).
    r = b.ssh("alice", "prod/web-0", "--", "echo command terminated with exit code 9 >&2; exit 9",
              opts=("-tt",))
    assert r.returncode == 9
    assert b"command terminated with exit code 9" in r.stdout, r.stdout


def interactive_shell_name(b, target):
    """Open an interactive session on target; the name its shell reports ($0)."""
    c = b.connect("alice")
    try:
        ch = c.get_transport().open_session()
        ch.get_pty(term="xterm", width=80, height=24)
        ch.exec_command(target)
        ch.send(b"echo shell=$0.; exit 4\r")
        out = recv_until(ch, b".\r\n", timeout=30)
        assert ch.recv_exit_status() == 4
        return re.search(rb"shell=([a-z/]+)\.", bytes(out)).group(1).decode()
    finally:
        c.close()


def test_interactive_shell_without_command(broker, k8s):
    """bash when the container has it, else sh (the test API server's pods say
    which shells their containers have)."""
    b = kube_broker(broker, k8s)
    assert interactive_shell_name(b, "prod/web-0") == "bash"
    assert interactive_shell_name(b, "slim/slim-0") == "sh"


def test_interactive_shell_rule(broker, k8s):
    rules = [{"groups": ["oncall"], "targets": RULE_TARGETS,
              "impersonate": {"user": "{user}", "groups": ["oncall"]},
              "interactive_shell": ["zsh", "dash", "sh"]}]
    b = kube_broker(broker, k8s, rules=rules)
    assert interactive_shell_name(b, "slim/dash-0") == "dash"   # the first it has
    assert interactive_shell_name(b, "slim/slim-0") == "sh"
    # One program: run as it is; a container without it fails with one clear line.
    rules[0]["interactive_shell"] = "bash"
    b = kube_broker(broker, k8s, rules=rules)
    assert interactive_shell_name(b, "prod/web-0") == "bash"
    r = b.ssh("alice", "slim/slim-0", opts=["-tt"])
    assert r.returncode == 1 and b"bash" in r.stdout + r.stderr, r


def test_shell_none_runs_plain_argv(broker, k8s):
    """shell: none splits the command at blanks, no shell needed (or used)."""
    rules = [{"groups": ["oncall"], "targets": RULE_TARGETS,
              "impersonate": {"user": "{user}", "groups": ["oncall"]}, "shell": "none"}]
    b = kube_broker(broker, k8s, rules=rules)
    r = b.ssh("alice", "slim/bare-0", "--", "echo a  $HOME 'b c'")
    assert (r.returncode, r.stdout) == (0, b"a $HOME 'b c'\n"), r.stderr
    # With the default shell (sh -c), a container without sh cannot run the command.
    b = kube_broker(broker, k8s)
    r = b.ssh("alice", "slim/bare-0", "--", "echo hi")
    assert r.returncode == 1 and r.stdout == b"", (r.returncode, r.stderr)
    assert b'"sh"' in r.stderr, r.stderr
    r = b.ssh("alice", "slim/slim-0", "--", "echo $((6*7))")
    assert (r.returncode, r.stdout) == (0, b"42\n"), r.stderr


# ---------------------------------------------------------------- failures

FAILURES = [
    ("pod not found", "alice", "prod/nope", r'pods "nope" not found'),
    ("namespace not found", "alice", "nons/web-0", r'(pods "web-0"|namespaces "nons") not found'),
    ("container not in the pod", "alice", "prod/web-0/nope",
     r"container nope is not in pod web-0 \(containers: app, sidecar\)"),
    ("forbidden", "mallory", "prod/secret-0", r'is forbidden: User "mallory" cannot get'),
    ("completed pod", "alice", "prod/job-1", r"completed pod \(phase Succeeded\)"),
    ("pending pod", "alice", "prod/pend-1", r"not running \(phase Pending\)"),
    ("deployment not found", "alice", "prod/deploy/nope", r'deployments.apps "nope" not found'),
    ("unreachable", "alice", "down:prod/web-0", r"cannot reach the API server of cluster down"),
]


def test_failures_are_one_clear_line(broker, k8s):
    b = kube_broker(broker, k8s)
    for i, (what, user, target, rx) in enumerate(FAILURES):
        r = b.ssh(user, target, "--", "echo never")
        assert r.returncode == 1, (what, r)
        line = one_line(r.stderr)
        assert line.startswith("podgate: "), (what, line)
        assert re.search(rx, line), (what, line)
        assert r.stdout == b""
        ev = b.wait_audit("target_failed", count=i + 1)[i]
        assert ev["user"] == user and ev["target"].endswith(target.split(":")[-1]), ev
        assert re.search(rx, ev["reason"]), (what, ev)


def test_exec_forbidden_comes_from_kubectl(broker, k8s):
    b = kube_broker(broker, k8s)
    r = b.ssh("eve", "prod/web-0", "--", "echo never")
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert 'cannot create resource "pods/exec"' in line, line
    ev = b.wait_audit("target_failed", lambda e: e["user"] == "eve")[0]
    assert "pods/exec" in ev["reason"]


def test_hanging_api_server_is_bounded(broker, k8s):
    b = kube_broker(broker, k8s, timeout="2s")
    t0 = time.monotonic()
    r = b.ssh("alice", "hung:prod/web-0", "--", "echo never", timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 1
    line = one_line(r.stderr)
    # The cluster's timeout ended the wait (the message says so); ssh's 30 s is the
    # test's deadline for a hang, not a speed requirement.
    assert "did not answer within 2s" in line, line
    assert took >= 2, took  # never before the timeout
    b.wait_audit("target_failed", lambda e: "hung" in e["cluster"])


# ---------------------------------------------------------------- names and policy

INJECTIONS = [
    "--kubeconfig=/x", "-c", "$(id)", "a;b", "prod/web\x0b0", "prod/wéb-0", "prod//web-0",
    "/web-0", "prod/", "prod/web-0/", ":prod/web-0", "prod/-c", "prod/web-0/--as=admin",
    "prod/$(id)", "prod/a;b", "prod/web-0/app/extra", "prod:prod:web", "Prod/web-0",
    "prod/web-0\\;id", "prod/..", "nope:prod/web-0",
]


def test_bad_names_never_reach_kubectl(broker, k8s):
    b = kube_broker(broker, k8s)
    n0 = len(k8s.requests())
    for name in INJECTIONS:
        # "--" first: OpenSSH reads options after the destination too.
        r = b.ssh("alice", "--", name, "--", "id")
        assert r.returncode == 1, (name, r.returncode, r.stderr)
        line = one_line(r.stderr)
        assert line.startswith("podgate: "), (name, line)
        assert "\x0b" not in line and "é" not in line
    # Each ssh above returned after its session ended, so any kubectl it ran had
    # already made its requests: none may have reached the API server.
    assert k8s.requests()[n0:] == [], "a request reached the API server"
    r = b.ssh("alice", "prod/Web-0", "--", "id")
    assert "'W' is not allowed: Kubernetes names are lowercase" in one_line(r.stderr)
    r = b.ssh("alice", "prod/-c", "--", "id")
    assert "pod '-c' is not a valid name" in one_line(r.stderr)
    r = b.ssh("alice", "nope:prod/web-0", "--", "id")
    assert "no such cluster 'nope'" in one_line(r.stderr)


def test_refused_container_names_the_rule_that_grants_the_pod(broker, k8s):
    """prod:*/* grants pods, not their named containers: the refusal says so, with the fix."""
    rules = [{"groups": ["oncall"], "targets": ["prod:*/*", "prod:*/deploy/*"],
              "impersonate": {"user": "{user}", "groups": ["oncall"]}}]
    b = kube_broker(broker, k8s, rules=rules)
    n0 = len(k8s.requests())
    r = b.ssh("alice", "prod/web-0/sidecar", "--", "id")
    assert r.returncode == 1 and r.stdout == b""
    assert one_line(r.stderr) == (
        "podgate: access to 'prod/web-0/sidecar' denied: no rule grants it "
        '(rules grant prod:prod/web-0 without a container; add "prod:*/*/*")')
    r = b.ssh("alice", "prod/deploy/api/app", "--", "id")
    assert one_line(r.stderr) == (
        "podgate: access to 'prod/deploy/api/app' denied: no rule grants it "
        '(rules grant prod:prod/deploy/api without a container; add "prod:*/deploy/*/*")')
    # No hint when no rule grants the pod either, nor for a user without rules.
    r = b.ssh("bob", "prod/web-0/sidecar", "--", "id")
    assert one_line(r.stderr) == "podgate: access to 'prod/web-0/sidecar' denied: no rule grants it"
    assert k8s.requests()[n0:] == []
    # The suggested pattern does grant it.
    rules[0]["targets"].append("prod:*/*/*")
    b.write_config(rules=rules)
    since = b.log_size()
    b.reload()
    b.wait_log("configuration reloaded", since=since)
    r = b.ssh("alice", "prod/web-0/sidecar", "--", "echo $PODGATE_K8S_CONTAINER")
    assert (r.returncode, r.stdout) == (0, b"sidecar\n"), r.stderr


def test_policy_names_the_rule_not_the_pods(broker, k8s):
    rules = [{"groups": ["oncall"], "targets": ["prod:prod/api-*/app"],
              "impersonate": {"user": "{user}", "groups": ["oncall"]}}]
    b = kube_broker(broker, k8s, rules=rules)
    n0 = len(k8s.requests())
    for target in ("prod/web-0", "prod/nope", "staging/tool-0", "prod/api-1"):
        r = b.ssh("alice", target, "--", "id")
        assert r.returncode == 1
        assert one_line(r.stderr) == f"podgate: access to '{target}' denied: no rule grants it"
    assert k8s.requests()[n0:] == []
    r = b.ssh("alice", "prod/api-1/app", "--", "echo ok")
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    r = b.ssh("bob", "prod/api-1/app", "--", "echo ok")
    assert r.returncode == 1 and b"no rule grants it" in r.stderr


@pytest.mark.parametrize("transport", ["kubectl", "native"])
def test_names_from_a_hostile_api_server_never_reach_kubectl(broker, tmp_path, transport):
    """Pod and container names that come back from the API server are checked
    as the ones that go in, on both transports: an option-like name, or one
    that would change the exec request's URL, ends the session with one line."""
    evil = {"namespaces": {"prod": {"pods": [
        {"name": "--kubeconfig=/tmp/evil", "containers": ["app"], "owner": {"deployment": "evil"}},
        {"name": "ok-0", "containers": ["--kubeconfig=/tmp/evil"], "owner": {"deployment": "bad"}},
        {"name": "ok-1?container=app&command=id#", "containers": ["app"],
         "owner": {"deployment": "query"}},
        {"name": "ok-2", "containers": ["app&command=id"], "owner": {"deployment": "cquery"}},
    ]}}}
    srv = start_apiserver(evil, tmp_path / "evil-api")
    try:
        clusters = [{"name": "evil", "kubeconfig": str(srv.kubeconfig), "context": "podgate-test",
                     "kubectl": "/usr/bin/kubectl", "cache_dir": str(tmp_path / "cache"),
                     "timeout": "5s", "transport": transport}]
        rules = [{"groups": ["oncall"], "targets": ["evil:*/*", "evil:*/deploy/*"]}]
        b = kube_broker(broker, None, rules=rules, clusters=clusters)
        for target, what in (("evil:prod/deploy/evil", "pod whose name"),
                             ("evil:prod/deploy/bad", "container whose name"),
                             ("evil:prod/deploy/query", "pod whose name"),
                             ("evil:prod/deploy/cquery", "container whose name")):
            r = b.ssh("alice", target, "--", "id")
            assert (r.returncode, r.stdout) == (1, b""), r
            line = one_line(r.stderr)
            assert line.startswith("podgate: ") and what in line, line
        # Nothing asked of a pod: no exec, and no request naming one.
        assert [q for q in srv.requests() if "/pods/" in (q.get("path") or "")] == []
    finally:
        srv.stop()

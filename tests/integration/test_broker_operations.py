"""Operating the broker (docs/deploy.md): the audit log after logrotate, the HTTP
health probes, and reloading when the config file changes."""

from __future__ import annotations

import json
import os
import stat

from conftest import wait_until


def audit_events(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sighup_reopens_the_audit_log_moved_away(broker):
    """logrotate moves audit.jsonl away and sends SIGHUP: new events go to a new file."""
    b = broker()
    r = b.ssh("alice", "local", "--", "echo one")
    assert (r.returncode, r.stdout) == (0, b"one\n")
    wait_until(lambda: any(e.get("command") == "echo one" for e in audit_events(b.audit_path)),
               what="the first session audited")
    rotated = b.audit_path.with_name("audit.jsonl.1")
    os.rename(b.audit_path, rotated)
    since = b.log_size()
    b.reload()
    b.wait_log("audit log reopened", since=since)
    r = b.ssh("alice", "local", "--", "echo two")
    assert (r.returncode, r.stdout) == (0, b"two\n")
    wait_until(lambda: any(e.get("command") == "echo two" for e in audit_events(b.audit_path)),
               what="the second session in the new audit log")
    assert stat.S_IMODE(os.stat(b.audit_path).st_mode) == 0o600
    old = audit_events(rotated)
    assert any(e.get("command") == "echo one" for e in old)
    assert not any(e.get("command") == "echo two" for e in old), "written to the rotated file"


# ---------------------------------------------------------------- HTTP probes and metrics

import http.client  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

from conftest import free_port  # noqa: E402
from support import assert_refused, readline_within  # noqa: E402


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def metric(text: str, name: str) -> float:
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    assert m is not None, f"{name} not in:\n{text}"
    return float(m.group(1))


def metrics_broker(broker, **settings):
    port = free_port()
    b = broker(settings={"metrics_listen": f"127.0.0.1:{port}", "shutdown_grace": 30,
                         **settings})
    b.metrics_port = port
    return b


def test_probes_answer_and_metrics_move(broker, tmp_path):
    b = metrics_broker(broker)
    port = b.metrics_port
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    status, text = http_get(port, "/metrics")
    assert status == 200
    assert metric(text, 'podgate_sessions_ended_total{outcome="exit"}') == 0
    assert metric(text, 'podgate_sessions{kind="local"}') == 0
    assert re.search(r'^podgate_build_info\{version="[^"]+"\} 1$', text, re.M)

    # A session running shows; once ended it is counted with its bytes.
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    p = subprocess.Popen(b.ssh_args("alice", "local", "--", f"echo started; read x < {gate}"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert readline_within(p.stdout) == b"started\n"
        wait_until(lambda: metric(http_get(port, "/metrics")[1],
                                  'podgate_sessions{kind="local"}') == 1,
                   what="the running session in the metrics")
        with open(gate, "w") as g:
            g.write("\n")
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    wait_until(lambda: metric(http_get(port, "/metrics")[1],
                              'podgate_sessions_ended_total{outcome="exit"}') == 1,
               what="the ended session counted")
    text = http_get(port, "/metrics")[1]
    assert metric(text, 'podgate_session_bytes_total{direction="out"}') == len(b"started\n")
    assert metric(text, 'podgate_sessions{kind="local"}') == 0
    # A refusal and a failed authentication are counted too.
    r = b.ssh("alice", "nowhere", "--", "true")
    assert_refused(r, 1, "podgate: ")
    wait_until(lambda: metric(http_get(port, "/metrics")[1], "podgate_refused_total") >= 1,
               what="the refusal counted")


def test_probe_listener_refuses_what_it_does_not_serve(broker):
    b = metrics_broker(broker)
    port = b.metrics_port
    assert http_get(port, "/nope")[0] == 404
    assert http_get(port, "/healthz", method="POST")[0] == 405
    assert http_get(port, "/" + "a" * 1000)[0] == 414
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400 ")
    # A client that says nothing holds no one up, and the SSH side is unaffected.
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    try:
        assert http_get(port, "/healthz") == (200, "ok\n")
        r = b.ssh("alice", "local", "--", "echo fine")
        assert (r.returncode, r.stdout) == (0, b"fine\n")
    finally:
        for s in silent:
            s.close()
    assert b.proc.poll() is None


def test_readyz_says_stopping_during_shutdown_grace(broker, tmp_path):
    b = metrics_broker(broker)
    port = b.metrics_port
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    p = subprocess.Popen(b.ssh_args("alice", "local", "--", f"echo started; read x < {gate}"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert readline_within(p.stdout) == b"started\n"
        b.terminate()
        wait_until(lambda: http_get(port, "/readyz") == (503, "not ready: stopping\n"),
                   what="readyz to say stopping")
        assert http_get(port, "/healthz") == (200, "ok\n")
        with open(gate, "w") as g:
            g.write("\n")
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    assert b.wait_exit(30) == 0


def test_metrics_listen_must_be_an_address(broker):
    b = broker(settings={"metrics_listen": "localhost:9102"}, start=False)
    b.write_config_text(b.config_text())
    r = subprocess.run([str(b.build.require("broker")), "--check-config", str(b.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert_refused(r, 2, "metrics_listen", "numeric")  # a configuration mistake


# ---------------------------------------------------------------- reload on change

def carol_can_log_in(b, carol) -> bool:
    r = b.ssh("carol", "local", "--", "echo carol", key=carol)
    return r.returncode == 0 and r.stdout == b"carol\n"


def test_an_edited_config_file_is_loaded_without_a_signal(broker, keys):
    b = broker()
    carol = keys("carol")
    assert not carol_can_log_in(b, carol)
    # A broken edit: logged, the running configuration stays.
    since = b.log_size()
    b.write_config_text(b.config_text().replace("users:", "users: [unclosed\n  oops:", 1))
    b.wait_log(r"changed: reloading", since=since)
    b.wait_log(r"broker\.yaml:\d+", since=since)
    r = b.ssh("alice", "local", "--", "echo still")
    assert (r.returncode, r.stdout) == (0, b"still\n")
    # The fixed file, with a new user: she gets in, and the reload is audited.
    users = dict(b.users)
    users["carol"] = {"groups": ["oncall"], "keys": [carol]}
    b.write_config(users=users)
    wait_until(lambda: carol_can_log_in(b, carol), what="carol to log in after the edit",
               interval=0.2)
    assert b.events("config_reloaded"), "the reload was not audited"


def test_a_configmap_update_is_loaded_without_a_signal(broker, keys, tmp_path):
    """Kubernetes updates a mounted ConfigMap by swapping the ..data symlink."""
    b = broker(start=False)
    carol = keys("carol")
    cm = tmp_path / "configmap"
    cm.mkdir()
    versions = []

    def cm_write(text: str):
        v = cm / f"..2026_12_06_{len(versions):02d}"
        v.mkdir()
        (v / "config.yaml").write_text(text)
        os.chmod(v / "config.yaml", 0o444)
        versions.append(v)
        tmp = cm / "..data_tmp"
        os.symlink(v.name, tmp)
        os.replace(tmp, cm / "..data")
        if not (cm / "config.yaml").is_symlink():
            os.symlink("..data/config.yaml", cm / "config.yaml")

    b.write_config_text = cm_write
    b.config_path = cm / "config.yaml"
    b.start()
    assert not carol_can_log_in(b, carol)
    users = dict(b.users)
    users["carol"] = {"groups": ["oncall"], "keys": [carol]}
    b.write_config(users=users)
    wait_until(lambda: carol_can_log_in(b, carol), what="carol to log in after the swap",
               interval=0.2)
    assert len(versions) == 2

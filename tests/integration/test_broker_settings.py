"""Broker settings and signals that had no test of their own: max_connections,
SIGINT, --listen on IPv6, and the warnings a reload gives for settings that
change only at restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from conftest import SSH_BASE_OPTS, free_port, wait_until
from support import assert_no_sanitizer_report, readline_within


def banner_or_close(port: int, timeout: float = 10.0) -> bytes:
    """What the broker sends a new TCP connection first: its banner, or b"" when it closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        try:
            return s.recv(256)
        except ConnectionResetError:
            return b""


def test_max_connections_refuses_the_one_too_many(broker):
    b = broker(settings={"max_connections": 2})
    first, second = b.connect("alice"), b.connect("alice")
    try:
        assert banner_or_close(b.port) == b""
        ev = b.wait_audit("refused", lambda e: e.get("reason") == "max_connections reached")[0]
        assert ev["client"].startswith("127.0.0.1:"), ev
        b.wait_log(r"refused: max_connections \(2\) reached")
        r = b.ssh("alice", "local", "--", "echo over")
        assert r.returncode == 255 and r.stdout == b""
        # The authenticated connections go on; once one ends there is room again.
        assert first.exec_command("local -- echo still")[1].read() == b"still\n"
    finally:
        first.close()
    wait_until(lambda: b.ssh("alice", "local", "--", "echo room").stdout == b"room\n", 15,
               "a connection once one of the two has ended")
    second.close()


def test_sigint_stops_like_sigterm(broker, tmp_path):
    b = broker(settings={"shutdown_grace": 60})
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    p = subprocess.Popen(b.ssh_args("alice", "local", "--", f"echo go; cat {gate}; echo done"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert readline_within(p.stdout) == b"go\n"
        os.kill(b.pid, signal.SIGINT)
        b.wait_log(r"SIGINT: stopping; live sessions have 60s to end")
        # A new connection is no longer served; the running session finishes.
        wait_until(lambda: b.ssh("alice", "local", "--", "true", timeout=30).returncode != 0,
                   15, "new sessions refused after SIGINT")
        with open(gate, "wb"):
            pass
        out, err = p.communicate(timeout=30)
        assert (p.returncode, out) == (0, b"done\n"), err
        assert b.wait_exit(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert b.events("broker_stop")


def test_listen_on_ipv6_loopback(build, broker):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    b = broker(start=False)
    b.write_config()
    port = free_port()
    proc = subprocess.Popen([str(build.broker), "--config", str(b.config_path),
                             "--listen", f"[::1]:{port}"], cwd=b.workdir, env=b.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        def serving():
            try:
                with socket.create_connection(("::1", port), timeout=2) as s:
                    return s.recv(8).startswith(b"SSH-")
            except OSError:
                return False
        wait_until(serving, 20, f"the broker on [::1]:{port}")
        r = subprocess.run(["ssh", *SSH_BASE_OPTS, "-p", str(port), "-i", str(b.key("alice").path),
                            "alice@::1", "local", "--", "echo v6"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, b"v6\n"), r.stderr
        # The configured IPv4 address is not listened on.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert_no_sanitizer_report(err)
    r = subprocess.run([str(build.broker), "--config", str(b.config_path), "--listen", "::1:22"],
                       capture_output=True, timeout=30, cwd=b.workdir, env=b.env)
    assert r.returncode == 2 and b"--listen takes HOST:PORT" in r.stderr, r.stderr


def test_reload_warns_about_settings_that_change_at_restart(broker):
    b = broker()
    size = b.log_size()
    old_port = b.port
    b.write_config(settings={"host_key": "state/other_host_key", "audit_log": "state/other.jsonl"})
    text = b.config_path.read_text().replace(f"127.0.0.1:{old_port}",
                                             f"127.0.0.1:{free_port()}")
    b.write_config_text(text)
    b.reload()
    b.wait_log(r"configuration reloaded", since=size)
    log = b.log()[size:]
    for what in ("listen", "host_key", "audit_log"):
        assert f"reload: {what} changes only at restart" in log, log
    # Until a restart: the same port, the same host key, the same audit log.
    b.settings.update({"host_key": "state/host_ed25519", "audit_log": "state/audit.jsonl"})
    r = b.ssh("alice", "local", "--", "echo same")
    assert (r.returncode, r.stdout) == (0, b"same\n"), r.stderr
    assert b.wait_audit("config_reloaded")
    assert not (b.workdir / "state" / "other.jsonl").exists()
    assert not (b.workdir / "state" / "other_host_key").exists()

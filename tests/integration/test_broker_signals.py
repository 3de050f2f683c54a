"""podgate-broker under SIGHUP (reloading, refusing a bad config, revoking a
key) and SIGTERM (live sessions closed within the grace, or let finish).

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

import pytest

from conftest import wait_until
from support import assert_sealed, readline_within
from support.terminal import Terminal


# ---------------------------------------------------------------- SIGHUP

def test_sighup_broken_config_keeps_old_then_valid_adds_user(broker, keys):
    b = broker()
    carol = keys("carol")
    c = b.connect("alice")
    try:
        live = c.get_transport().open_session()
        live.exec_command("local -- cat")
        t = Terminal(live)
        live.sendall(b"before\n")
        pos = t.expect(b"before\n")
        r = b.ssh("carol", "local", "--", "echo carol", key=carol)
        assert r.returncode == 255, "carol logged in before she was configured"

        good = b.config_text()
        since = b.log_size()
        b.write_config_text(good.replace("users:", "users: [unclosed\n  oops:", 1))
        b.reload()
        b.wait_log(r"broker\.yaml:\d+", since=since)
        r = b.ssh("alice", "local", "--", "echo still")
        assert (r.returncode, r.stdout) == (0, b"still\n"), "old config lost after broken reload"
        live.sendall(b"after\n")
        pos = t.expect(b"after\n", start=pos)

        users = dict(b.users)
        users["carol"] = {"groups": ["oncall"], "keys": [carol]}
        b.write_config(users=users)
        b.reload()

        def carol_in():
            r = b.ssh("carol", "local", "--", "echo carol", key=carol)
            return r.returncode == 0 and r.stdout == b"carol\n"
        wait_until(carol_in, 10, "carol to log in after the reload", interval=0.2)
        live.sendall(b"more\n")
        t.expect(b"more\n", start=pos)
        live.shutdown_write()
        t.drain()
        assert live.recv_exit_status() == 0
    finally:
        c.close()
    rec = b.recording_for("cat")
    assert rec.data("i") == b"before\nafter\nmore\n"
    assert rec.data("o") == b"before\nafter\nmore\n"
    assert b.proc.poll() is None


def test_sighup_refuses_config_writable_by_others(broker, keys):
    b = broker()
    carol = keys("carol")
    users = dict(b.users)
    users["carol"] = {"groups": ["oncall"], "keys": [carol]}
    b.write_config(users=users)
    os.chmod(b.config_path, 0o666)
    since = b.log_size()
    b.reload()
    b.wait_log(re.escape(str(b.config_path)) + "|broker\\.yaml", since=since)
    r = b.ssh("carol", "local", "--", "echo carol", key=carol)
    assert r.returncode == 255, "a config writable by others was loaded on SIGHUP"
    r = b.ssh("alice", "local", "--", "echo alice")
    assert (r.returncode, r.stdout) == (0, b"alice\n")


def test_sighup_revokes_key_keeps_live_session(broker):
    b = broker(users={"alice": {"groups": ["oncall"]}, "bob": {"groups": ["oncall"]}})
    alice = b.key("alice")
    c = b.connect("alice")
    try:
        live = c.get_transport().open_session()
        live.exec_command("local -- cat")
        t = Terminal(live)
        live.sendall(b"one\n")
        pos = t.expect(b"one\n")
        b.write_config(users={"bob": {"groups": ["oncall"]}})
        b.reload()
        wait_until(lambda: b.ssh("alice", "local", "--", "true", key=alice).returncode == 255, 10,
                   "alice's key to be revoked", interval=0.2)
        live.sendall(b"two\n")
        t.expect(b"two\n", start=pos)
        r = b.ssh("bob", "local", "--", "echo bob")
        assert (r.returncode, r.stdout) == (0, b"bob\n")
    finally:
        c.close()


# ---------------------------------------------------------------- SIGTERM

def test_sigterm_closes_live_session_within_grace(broker, tmp_path):
    grace = 2
    b = broker(settings={"shutdown_grace": grace})
    errf = open(tmp_path / "ssh.err", "wb")
    client = subprocess.Popen(b.ssh_args("alice", "local", "--", "echo started; sleep 1000"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf)
    try:
        assert readline_within(client.stdout) == b"started\n"
        b.wait_audit("session_start")
        t0 = time.monotonic()
        b.terminate()

        def refused():
            try:
                socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
            except OSError:
                return True
            return False
        wait_until(refused, grace, "the broker to stop accepting connections")
        assert b.running(), "the broker exited before the grace period with a session open"
        rc = b.wait_exit(grace + 8)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"broker exited {rc} on SIGTERM"
        assert elapsed >= grace - 0.5, f"the live session got {elapsed:.1f}s, not {grace}s"
        try:
            client.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("the client's session did not end when the broker exited")
    finally:
        if client.poll() is None:
            client.kill()
        client.wait(10)
        errf.close()
    recs = b.recordings()
    assert len(recs) == 1
    rec = recs[0]
    assert_sealed(b.build, rec.path)
    assert rec.data("o") == b"started\n"
    ends = b.events("session_end")
    assert len(ends) == 1, b.audit()


def test_sigterm_lets_session_finish(broker):
    grace = 120
    b = broker(settings={"shutdown_grace": grace})
    client = subprocess.Popen(b.ssh_args("alice", "local", "--", "echo go; sleep 1; echo finished"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        assert readline_within(client.stdout) == b"go\n"
        t0 = time.monotonic()
        b.terminate()
        out, err = client.communicate(timeout=15)
        assert client.returncode == 0, (client.returncode, err)
        assert out == b"finished\n"
        rc = b.wait_exit(grace / 2)  # less than the grace: it did not wait for it all
        assert rc == 0
        assert time.monotonic() - t0 < grace, "the broker waited for the whole grace period " \
            "although its last session had ended"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    rec = b.recording_for("echo go; sleep 1; echo finished")
    assert rec.data("o") == b"go\nfinished\n"
    assert rec.exit() == {"status": 0}


def test_sigterm_with_stalled_flooding_client(broker):
    grace = 2
    b = broker(settings={"shutdown_grace": grace})
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.exec_command("local -- cat /dev/zero")
        wait_until(lambda: len(chan.in_buffer) >= 1_000_000, 10,
                   "the flood to fill the client's window")
        t0 = time.monotonic()
        b.terminate()
        rc = b.wait_exit(grace + 8)
        assert rc == 0, f"broker exited {rc} on SIGTERM"
        assert time.monotonic() - t0 >= grace - 0.5
    finally:
        c.close()
    recs = b.recordings()
    assert len(recs) == 1
    assert_sealed(b.build, recs[0].path)

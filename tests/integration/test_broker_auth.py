"""podgate-broker's authentication: public keys only, refusals that tell an
unknown user from an unknown key apart to nobody, key types, authorized_keys
files, MaxAuthTries and the login grace time.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import os
import socket
import time

import paramiko
import pytest

from conftest import wait_until
from support.audit import has_client_addr, mentions


def ssh_env_with_askpass(tmp_path, secret="hunter2"):
    """An environment where ssh asks a script (no terminal) for passwords and answers."""
    script = tmp_path / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho {secret}\n")
    script.chmod(0o700)
    env = dict(os.environ)
    env.update({"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force",
                "DISPLAY": ":0"})
    return env


# ---------------------------------------------------------------- refusals: auth

def test_password_auth_refused(broker, tmp_path):
    b = broker()
    r = b.ssh("alice", "local", "--", "true", env=ssh_env_with_askpass(tmp_path),
              opts=["-o", "BatchMode=no", "-o", "PreferredAuthentications=password",
                    "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"])
    assert r.returncode == 255
    assert b"Permission denied (publickey)" in r.stderr, r.stderr
    t = b.transport()
    try:
        with pytest.raises(paramiko.BadAuthenticationType) as ei:
            t.auth_password("alice", "hunter2")
        assert ei.value.allowed_types == ["publickey"]
        assert not t.is_authenticated()
    finally:
        t.close()
    b.wait_audit("auth_failure", lambda e: mentions(e, "alice") and has_client_addr(e))


def test_none_and_keyboard_interactive_refused(broker, tmp_path):
    b = broker()
    t = b.transport()
    try:
        with pytest.raises(paramiko.BadAuthenticationType) as ei:
            t.auth_none("alice")
        assert ei.value.allowed_types == ["publickey"]
        before = len(b.events("auth_failure"))
        with pytest.raises(paramiko.BadAuthenticationType) as ei:
            t.auth_interactive("alice", lambda title, instr, prompts: ["hunter2"] * len(prompts))
        assert ei.value.allowed_types == ["publickey"]
        assert not t.is_authenticated()
        b.wait_audit("auth_failure", lambda e: mentions(e, "alice"), count=before + 1)
    finally:
        t.close()
    r = b.ssh("alice", "local", "--", "true", env=ssh_env_with_askpass(tmp_path),
              opts=["-o", "BatchMode=no", "-o", "PreferredAuthentications=keyboard-interactive",
                    "-o", "PubkeyAuthentication=no"])
    assert r.returncode == 255
    assert b"Permission denied (publickey)" in r.stderr, r.stderr


def test_unknown_key_and_unknown_user_refused_identically(broker, keys):
    b = broker()
    alice, stranger = b.key("alice"), keys("stranger")
    rk = b.ssh("alice", "local", "--", "echo in", key=stranger, opts=["-o", "LogLevel=DEBUG1"])
    ru = b.ssh("mallory", "local", "--", "echo in", key=alice, opts=["-o", "LogLevel=DEBUG1"])
    for what, r in (("unknown key", rk), ("unknown user", ru)):
        assert r.returncode == 255, f"{what}: rc {r.returncode}"
        assert r.stdout == b"", f"{what}: got in: {r.stdout!r}"
        assert b"Server accepts key" not in r.stderr, f"{what}: server accepted the key query"
        assert b"Permission denied (publickey)" in r.stderr, f"{what}: {r.stderr[-300:]!r}"

    def visible(r, user):
        lines = [ln for ln in r.stderr.decode(errors="replace").splitlines()
                 if not ln.startswith(("debug", "OpenSSH_", "Warning: Permanently"))]
        return [ln.replace(user, "USER") for ln in lines]
    assert visible(rk, "alice") == visible(ru, "mallory")

    def paramiko_refusal(user, key):
        t = b.transport()
        try:
            with pytest.raises(paramiko.AuthenticationException) as ei:
                t.auth_publickey(user, key.pkey())
            e = ei.value
            return type(e).__name__, str(e).replace(user, "USER"), \
                getattr(e, "allowed_types", None)
        finally:
            t.close()
    assert paramiko_refusal("alice", stranger) == paramiko_refusal("mallory", alice)
    b.wait_audit("auth_failure", lambda e: mentions(e, "alice") and
                 mentions(e, stranger.fingerprint) and has_client_addr(e))
    b.wait_audit("auth_failure", lambda e: mentions(e, "mallory") and
                 mentions(e, alice.fingerprint) and has_client_addr(e))
    assert not b.events("auth_success"), b.events("auth_success")
    assert not b.recording_paths()


@pytest.mark.parametrize("ktype", ["ed25519", "ecdsa", "rsa"])
def test_key_types_accepted(broker, keys, ktype):
    k = keys("alice", ktype)
    b = broker(users={"alice": {"groups": ["oncall"], "keys": [k]}})
    r = b.ssh("alice", "local", "--", "echo ok", key=k)
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    b.wait_audit("auth_success", lambda e: mentions(e, "alice") and
                 mentions(e, k.fingerprint) and has_client_addr(e))
    assert b.recording_for("echo ok").header["who"]["key_fp"] == k.fingerprint


def test_rsa_sha1_signature_refused(broker, keys):
    k = keys("alice", "rsa")
    b = broker(users={"alice": {"groups": ["oncall"], "keys": [k]}})
    r = b.ssh("alice", "local", "--", "echo ok", key=k,
              opts=["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
    assert r.returncode == 255 and r.stdout == b"", (r.returncode, r.stdout, r.stderr)
    t = b.transport()
    try:
        t.disabled_algorithms = {"pubkeys": ["rsa-sha2-256", "rsa-sha2-512"]}
        with pytest.raises(paramiko.AuthenticationException):
            t.auth_publickey("alice", k.pkey())
    finally:
        t.close()


def test_authorized_keys_file(broker, keys, tmp_path):
    k1, k2 = keys("dave"), keys("dave", "ecdsa")
    ak = tmp_path / "dave_authorized_keys"
    ak.write_text(f"# dave's keys\n{k1.pub}\n\n{k2.pub}\n")
    ak.chmod(0o600)
    b = broker(users={"dave": {"groups": ["oncall"], "authorized_keys": ak}})
    for k in (k1, k2):
        r = b.ssh("dave", "local", "--", "echo ok", key=k)
        assert (r.returncode, r.stdout) == (0, b"ok\n"), (k.type, r.stderr)
    r = b.ssh("dave", "local", "--", "echo ok", key=keys("eve"))
    assert r.returncode == 255


def test_max_auth_tries(broker, keys):
    b = broker(settings={"max_auth_tries": 3})
    alice = b.key("alice")
    wrong = [keys(f"wrong{i}") for i in range(4)]
    # Two failures, then the right key: allowed.
    t = b.transport()
    try:
        for k in wrong[:2]:
            with pytest.raises(paramiko.AuthenticationException):
                t.auth_publickey("alice", k.pkey())
        t.auth_publickey("alice", alice.pkey())
        assert t.is_authenticated()
    finally:
        t.close()
    # Three failures: the connection is over, the right key no longer helps.
    t = b.transport()
    try:
        for k in wrong[:3]:
            try:
                t.auth_publickey("alice", k.pkey())
                pytest.fail("a wrong key was accepted")
            except (paramiko.SSHException, EOFError, OSError):
                pass
        try:
            t.auth_publickey("alice", alice.pkey())
        except (paramiko.SSHException, EOFError, OSError):
            pass
        assert not t.is_authenticated(), "authenticated after max_auth_tries failures"
        wait_until(lambda: not t.is_active(), 10, "the broker to close the connection")
    finally:
        t.close()
    # The real client with three wrong keys before the right one.
    args = []
    for k in wrong[:3]:
        args += ["-i", str(k.path)]
    r = b.ssh("alice", "local", "--", "echo in", opts=args)
    assert r.returncode == 255 and r.stdout == b"", (r.returncode, r.stdout, r.stderr)
    assert len(b.events("auth_failure")) >= 5


def test_login_grace_time(broker):
    b = broker(settings={"login_grace_time": 2})
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    try:
        s.settimeout(15)
        start = time.monotonic()
        assert s.recv(256).startswith(b"SSH-2.0-")
        s.sendall(b"SSH-2.0-idle_client\r\n")
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                pytest.fail("connection still open 15s after login_grace_time 2")
            if not d:
                break
        elapsed = time.monotonic() - start
    finally:
        s.close()
    # Never before login_grace_time (the timer starts at accept, a moment before
    # `start`); the 15 s socket timeout above catches a connection left open.
    assert elapsed >= 1.5, f"closed after {elapsed:.1f}s, login_grace_time is 2"
    # A connection that authenticates in time is not affected.
    r = b.ssh("alice", "local", "--", "sleep 3; echo late")
    assert (r.returncode, r.stdout) == (0, b"late\n")

"""podgate-broker's channel requests and targets: forwarding, agents,
subsystems and X11 refused, the environment and signals a session may pass,
and which targets a user may name.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile

import paramiko
import pytest
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from conftest import channel_request, drain_channel, run_exec, ssh_string, wait_until
from support.audit import mentions, text_of
from support.terminal import Terminal


def assert_one_line(stderr: bytes, what: str):
    text = stderr.decode(errors="replace")
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln != ""]
    assert len(lines) == 1 and text.strip(), \
        f"{what}: expected exactly one line on stderr, got {stderr!r}"


def send_channel_request(chan, name: str, payload: bytes = b""):
    """A channel request without want-reply (as 'signal' is sent)."""
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(name)
    m.add_boolean(False)
    m.add_bytes(payload)
    chan.transport._send_user_message(m)


# ---------------------------------------------------------------- refusals: channels

def refused_event(b, words, before: int):
    """Wait for a 'refused' audit event newer than index before mentioning one of words."""
    def find():
        evs = b.events("refused")[before:]
        return [e for e in evs if any(w in text_of(e) for w in words)]
    return wait_until(find, 10, f"audit 'refused' event mentioning one of {words}; "
                      f"have {b.events('refused')}")


def test_port_forwarding_refused(broker):
    b = broker()
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(5)
    target.settimeout(0.5)
    tport = target.getsockname()[1]
    try:
        c = b.connect("alice")
        try:
            tr = c.get_transport()
            with pytest.raises(paramiko.ChannelException):
                tr.open_channel("direct-tcpip", ("127.0.0.1", tport), ("127.0.0.1", 5555),
                                timeout=10)
            refused_event(b, ["direct-tcpip", "forward", "tcpip"], 0)
            n = len(b.events("refused"))
            with pytest.raises(paramiko.SSHException):
                tr.request_port_forward("127.0.0.1", 0)
            refused_event(b, ["tcpip-forward", "forward"], n)
            # The connection still works.
            assert run_exec(c, "local -- echo still").stdout == b"still\n"
        finally:
            c.close()
        n = len(b.events("refused"))
        r = b.ssh("alice", opts=["-W", f"127.0.0.1:{tport}"], timeout=15)
        assert r.returncode == 255, (r.returncode, r.stderr)
        r = b.ssh("alice", opts=["-N", "-o", "ExitOnForwardFailure=yes",
                                 "-R", f"0:127.0.0.1:{tport}"], timeout=15)
        assert r.returncode == 255, (r.returncode, r.stderr)
        assert b"forwarding failed" in r.stderr, r.stderr
        refused_event(b, ["forward", "tcpip"], n)
        with pytest.raises(socket.timeout):
            target.accept()  # nothing ever reached the forwarding target
    finally:
        target.close()


def test_agent_forwarding_refused(broker, tmp_path):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        assert channel_request(chan, "auth-agent-req@openssh.com") is False
        refused_event(b, ["agent"], 0)
        chan.exec_command("local -- echo ${SSH_AUTH_SOCK:-unset}")
        out, _ = drain_channel(chan)
        assert out == b"unset\n"
    finally:
        c.close()
    sock = tempfile.mktemp(prefix="pg-agent-", dir="/tmp")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(sock), 10, "ssh-agent socket")
        r = b.ssh("alice", "local", "--", "echo ${SSH_AUTH_SOCK:-unset}",
                  opts=["-o", f"ForwardAgent={sock}"])
        assert (r.returncode, r.stdout) == (0, b"unset\n"), r.stderr
    finally:
        agent.terminate()
        agent.wait(10)


def test_sftp_and_subsystems_refused(broker, tmp_path):
    b = broker()
    c = b.connect("alice")
    try:
        with pytest.raises(paramiko.SSHException):
            c.open_sftp()
        refused_event(b, ["sftp", "subsystem"], 0)
        chan = c.get_transport().open_session()
        assert channel_request(chan, "subsystem", ssh_string("sftp")) is False
    finally:
        c.close()
    batch = tmp_path / "batch"
    batch.write_text("ls\n")
    key = b.key("alice")
    args = ["sftp", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR",
            "-P", str(b.port), "-i", str(key.path), "-b", str(batch), "alice@127.0.0.1"]
    r = subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    # sftp's own status when the server refuses the subsystem: 255, "subsystem request failed".
    assert r.returncode == 255 and b"subsystem request failed" in r.stderr, (r.stdout, r.stderr)
    assert b"sftp>" not in r.stdout


def test_x11_refused_and_session_continues(broker):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        payload = ssh_string(False, "MIT-MAGIC-COOKIE-1", "0123456789abcdef0123456789abcdef", 0)
        assert channel_request(chan, "x11-req", payload) is False
        refused_event(b, ["x11"], 0)
        chan.exec_command("local -- echo ${DISPLAY:-nodisplay}")
        out, _ = drain_channel(chan)
        assert out == b"nodisplay\n"
        chan2 = c.get_transport().open_session()
        with pytest.raises(paramiko.SSHException):
            chan2.request_x11()
    finally:
        c.close()


def test_env_only_allowed_names_reach_target(broker):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        allowed = {"LANG": "C.UTF-8", "LC_TIME": "C", "PODGATE_TICKET": "INC-42"}
        for k, v in allowed.items():
            assert channel_request(chan, "env", ssh_string(k, v)) is True, f"env {k} refused"
        for k, v in {"EVIL": "1", "LD_PRELOAD": "/nonexistent/evil.so", "PATH": "/evil",
                     "BASH_ENV": "/evil", "PODGATEX": "1", "XLC_A": "1"}.items():
            channel_request(chan, "env", ssh_string(k, v))
        chan.exec_command("local -- env")
        out, err = drain_channel(chan)
        assert chan.recv_exit_status() == 0, err
    finally:
        c.close()
    env = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    for k, v in allowed.items():
        assert env.get(k) == v, f"{k} not passed: {env.get(k)!r}"
    for k in ("EVIL", "LD_PRELOAD", "BASH_ENV", "PODGATEX", "XLC_A"):
        assert k not in env, f"{k} reached the target"
    assert env.get("PATH") != "/evil"
    # ssh keeps the first SetEnv it is given: all variables in one option.
    r = b.ssh("alice", "local", "--", "env", opts=["-o", "SetEnv=PODGATE_X=yes EVIL2=no LC_ALL=C"])
    env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
    assert env.get("PODGATE_X") == "yes" and env.get("LC_ALL") == "C", r.stdout
    assert "EVIL2" not in env


def test_signal_request_reaches_target(broker):
    b = broker()
    cmd = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.exec_command(f"local -- {cmd}")
        t = Terminal(chan)
        t.expect(b"ready\n")
        send_channel_request(chan, "signal", ssh_string("TERM"))
        t.expect(b"got-term\n")
        t.drain()
        assert chan.recv_exit_status() == 7
    finally:
        c.close()
    assert b.recording_for(cmd).exit() == {"status": 7}


def test_break_request_accepted(broker):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command("local")
        t = Terminal(chan)
        chan.sendall(b"echo A$((1+1))B\r")
        pos = t.expect(b"A2B")
        assert channel_request(chan, "break", ssh_string(100)) is True
        chan.sendall(b"echo C$((2+1))D\r")
        t.expect(b"C3D", start=pos)
        chan.sendall(b"exit\r")
        t.drain()
    finally:
        c.close()


# ---------------------------------------------------------------- target policy

def test_unknown_target_refused(broker):
    b = broker()
    r = b.ssh("alice", "nosuch", "--", "echo ran")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == b""
    assert_one_line(r.stderr, "unknown target")
    ev = b.wait_audit("refused", lambda e: mentions(e, "alice"))
    assert "nosuch" in text_of(ev[0]), ev


def test_target_not_granted_refused(broker, tmp_path):
    marker = tmp_path / "bob-ran"
    b = broker(users={"alice": {"groups": ["oncall"]}, "bob": {"groups": ["dev"]}})
    r = b.ssh("bob", "local", "--", f"touch {marker}")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == b""
    assert_one_line(r.stderr, "target not granted")
    assert not marker.exists(), "the command ran for a user without a grant"
    ev = b.wait_audit("refused", lambda e: mentions(e, "bob"))
    assert "local" in text_of(ev[0])
    b.wait_audit("auth_success", lambda e: mentions(e, "bob"))
    r = b.ssh("alice", "local", "--", "echo granted")
    assert (r.returncode, r.stdout) == (0, b"granted\n")


def test_rules_by_user_name(broker, tmp_path):
    marker = tmp_path / "dave-ran"
    b = broker(users={"carol": {"groups": []}, "dave": {"groups": []}},
               rules=[{"users": ["carol"], "targets": ["local"]}])
    r = b.ssh("carol", "local", "--", "echo carol")
    assert (r.returncode, r.stdout) == (0, b"carol\n"), r.stderr
    r = b.ssh("dave", "local", "--", f"touch {marker}")
    assert r.returncode == 1 and not marker.exists(), (r.returncode, r.stderr)
    assert_one_line(r.stderr, "no rule for dave")


def test_injection_looking_targets_refused(broker, tmp_path):
    b = broker()
    marks = tmp_path / "marks"
    marks.mkdir()
    targets = [
        "--kubeconfig=/x", "$(id)", "a;b", "-oProxyCommand=x",
        "$(touch${IFS}%s)", "`touch${IFS}%s`", "local;touch${IFS}%s", "local&&touch${IFS}%s",
        "local|touch${IFS}%s", "local$(touch${IFS}%s)", "../local", "local/../../bin/sh",
    ]
    problems = []
    for i, t in enumerate(targets):
        m = marks / f"m{i}"
        target = t % m if "%s" in t else t
        before = len(b.events("refused"))
        # "--" ends ssh's own options, so a target may start with "-".
        r = b.ssh("alice", "--", target, "--", f"touch {marks}/cmd{i}")
        if r.returncode != 1:
            problems.append(f"{target!r}: exit {r.returncode} stderr {r.stderr!r}")
        lines = [ln for ln in r.stderr.decode(errors="replace").splitlines() if ln]
        if len(lines) != 1:
            problems.append(f"{target!r}: stderr is not one line: {r.stderr!r}")
        try:
            b.wait_audit("refused", count=before + 1, timeout=5)
        except pytest.fail.Exception:
            problems.append(f"{target!r}: no 'refused' audit event")
    made = sorted(p.name for p in marks.iterdir())
    assert not made, f"injected commands ran: {made}"
    assert not problems, "\n".join(problems)

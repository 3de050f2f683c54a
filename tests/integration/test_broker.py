"""Integration tests of podgate-broker, driven with the OpenSSH client and paramiko.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import pathlib
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import termios
import threading
import time
import uuid

import paramiko
import pytest

from conftest import channel_request, drain_channel, run_exec, ssh_string, wait_until
import support
from support import assert_refused, assert_sealed, recv_until
from support.procs import pids_with_argv, pids_with_cmdline
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


# ---------------------------------------------------------------- helpers

def flat_values(obj):
    """Every scalar value of a (nested) audit event."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from flat_values(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from flat_values(v)
    else:
        yield obj


def mentions(ev: dict, value) -> bool:
    return value in list(flat_values(ev))


def has_client_addr(ev: dict) -> bool:
    return any(isinstance(v, str) and re.fullmatch(r"127\.0\.0\.1(:\d+)?", v)
               for v in flat_values(ev))


def text_of(ev: dict) -> str:
    return json.dumps(ev).lower()


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


class Term:
    """Bytes from a paramiko channel (PTY), with waiting for a pattern."""

    def __init__(self, chan):
        self.chan = chan
        self.buf = bytearray()
        self.chan.settimeout(0.1)

    def pump(self):
        try:
            d = self.chan.recv(65536)
        except socket.timeout:
            return True
        if not d:
            return False
        self.buf += d
        return True

    def expect(self, pattern: bytes, timeout: float = 10.0, start: int = 0) -> int:
        """Wait for pattern in what came after offset start; return the offset after it."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pattern, start)
            if i >= 0:
                return i + len(pattern)
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {pattern!r}; "
                            f"received {bytes(self.buf[-400:])!r}")
            if not self.pump():
                if self.buf.find(pattern, start) < 0:
                    pytest.fail(f"channel closed before {pattern!r}; "
                                f"received {bytes(self.buf[-400:])!r}")

    def drain(self, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while self.pump():
            if time.monotonic() > deadline:
                pytest.fail(f"channel not closed within {timeout}s")
        return bytes(self.buf)


def set_winsize(fd: int, rows: int, cols: int):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyProcess:
    """A client process (ssh -tt) whose stdin/stdout is a pseudo-terminal we hold."""

    def __init__(self, args, rows=24, cols=80, stderr_path=None, env=None):
        self.master, self.slave = os.openpty()
        set_winsize(self.slave, rows, cols)
        self.stderr = open(stderr_path or os.devnull, "wb")
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave,
                                     stderr=self.stderr, start_new_session=True, env=env)
        self.buf = bytearray()

    def resize(self, rows, cols):
        set_winsize(self.slave, rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def write(self, data: bytes):
        os.write(self.master, data)

    def pump(self, timeout=0.1) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if r:
            try:
                d = os.read(self.master, 65536)
            except OSError:
                return False
            if not d:
                return False
            self.buf += d
        return True

    def expect(self, pattern: bytes, timeout: float = 10.0, start: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pattern, start)
            if i >= 0:
                return i + len(pattern)
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {pattern!r}; "
                            f"received {bytes(self.buf[-400:])!r}")
            if not self.pump() and self.proc.poll() is not None:
                pytest.fail(f"ssh exited ({self.proc.returncode}) before {pattern!r}; "
                            f"received {bytes(self.buf[-400:])!r}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stderr.close()


def read_until(pipe, pattern: bytes, timeout: float = 15.0) -> bytes:
    """Read a subprocess pipe byte by byte until pattern; fail after timeout."""
    return bytes(support.read_until(pipe.fileno(), pattern, timeout, chunk=1))


def dir_size(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*") if p.is_file()) if path.is_dir() else 0




def ssh_env_with_askpass(tmp_path, secret="hunter2"):
    """An environment where ssh asks a script (no terminal) for passwords and answers."""
    script = tmp_path / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho {secret}\n")
    script.chmod(0o700)
    env = dict(os.environ)
    env.update({"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force",
                "DISPLAY": ":0"})
    return env


# ---------------------------------------------------------------- config

VALID_CONFIG = """\
listen: 127.0.0.1:{port}
host_key: state/host_ed25519
recordings: state/recordings
audit_log: state/audit.jsonl
max_auth_tries: 6
login_grace_time: 30
shutdown_grace: 10
users:
  - name: alice
    keys: ["{key}"]
    groups: [oncall]
rules:
  - groups: [oncall]
    targets: [local]
targets:
  local: {{shell: /bin/sh, user: nobody}}
"""


def check_config(build, path, timeout=20):
    return subprocess.run([str(build.require("broker")), "--check-config", str(path)],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write_private(path: pathlib.Path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_check_config_valid_exits_0(build, keys, tmp_path):
    cfg = write_private(tmp_path / "ok.yaml", VALID_CONFIG.format(port=2222, key=keys("alice").pub))
    r = check_config(build, cfg)
    assert r.returncode == 0, f"valid config refused: rc={r.returncode} {r.stdout}{r.stderr}"


def test_check_config_yaml_error_reports_path_line_and_exits_2(build, keys, tmp_path):
    text = VALID_CONFIG.format(port=2222, key=keys("alice").pub).splitlines()
    # line 13: an unclosed flow sequence
    assert text[12].startswith("  - groups:")
    text[12] = "  - groups: [oncall"
    cfg = write_private(tmp_path / "broken.yaml", "\n".join(text) + "\n")
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    m = re.search(re.escape(str(cfg)) + r":(\d+): \S", out)
    assert m, f"no '{cfg}:LINE: message' in {out!r}"
    assert 13 <= int(m.group(1)) <= 15, f"YAML error reported at line {m.group(1)}: {out!r}"


def test_check_config_reports_each_error_with_its_line(build, keys, tmp_path):
    lines = VALID_CONFIG.format(port=2222, key=keys("alice").pub).splitlines()
    lines[4] = "max_auth_tries: many"          # line 5: not a number
    lines.insert(7, "listne: 127.0.0.1:1")      # line 8: unknown key
    cfg = write_private(tmp_path / "bad.yaml", "\n".join(lines) + "\n")
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    reported = {int(n) for n in re.findall(re.escape(str(cfg)) + r":(\d+): \S", out)}
    assert {5, 8} <= reported, f"expected errors at lines 5 and 8, got {sorted(reported)}: {out!r}"


def test_check_config_bad_key_reported(build, tmp_path):
    cfg = write_private(tmp_path / "badkey.yaml",
                        VALID_CONFIG.format(port=2222, key="ssh-ed25519 not-base64!! x@y"))
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    assert re.search(re.escape(str(cfg)) + r":10: \S", out), f"no error at line 10: {out!r}"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["0620", "0602", "0666"])
def test_config_writable_by_others_refused(build, keys, tmp_path, mode):
    port = 1  # any port: the broker must refuse the file before it listens
    cfg = write_private(tmp_path / "open.yaml",
                        VALID_CONFIG.format(port=port, key=keys("alice").pub), mode)
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"mode {oct(mode)}: --check-config rc={r.returncode} {out!r}"
    assert str(cfg) in out, f"the refusal does not name the file: {out!r}"
    workdir = tmp_path / "run"
    workdir.mkdir()
    try:
        p = subprocess.run([str(build.require("broker")), "--config", str(cfg)], cwd=workdir,
                           capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker started with a config of mode {oct(mode)}")
    assert_refused(p, 2, str(cfg))  # a configuration mistake; names the file


def test_host_key_generated_ed25519_0600(broker):
    b = broker()
    hk = b.host_key_path
    assert hk.is_file(), f"no host key at {hk}"
    assert stat.S_IMODE(hk.stat().st_mode) == 0o600, oct(hk.stat().st_mode)
    r = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(hk)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("(ED25519)"), r.stdout + r.stderr
    fp_file = r.stdout.split()[1]
    t = b.transport()
    try:
        k = t.get_remote_server_key()
        fp_server = "SHA256:" + base64.b64encode(hashlib.sha256(k.asbytes()).digest()).decode().rstrip("=")
        assert k.get_name() == "ssh-ed25519"
        assert fp_server == fp_file, "the broker does not serve the host key it wrote"
    finally:
        t.close()
    # The same key after a restart.
    before = hk.read_bytes()
    assert b.stop() == 0
    b.start()
    assert hk.read_bytes() == before, "host key replaced on restart"


# ---------------------------------------------------------------- exec

def test_exec_stdout_stderr_apart(broker):
    b = broker()
    cmd = "echo out; echo err >&2"
    r = b.ssh("alice", "local", "--", cmd)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"out\n", b"err\n")
    rec = b.recording_for(cmd)
    assert rec.data("o") == b"out\n"
    assert rec.data("e") == b"err\n"
    assert rec.exit() == {"status": 0}
    assert rec.complete()
    h = rec.header
    assert h["format"] == "podgate-rec" and h["version"] == 2
    assert h["pty"] is False
    assert h["who"]["user"] == "alice"
    assert h["who"]["key_fp"] == b.key("alice").fingerprint
    assert re.fullmatch(r"127\.0\.0\.1:\d+", h["who"]["client"]), h["who"]
    assert h["where"] == {"kind": "local", "target": "local"} or \
        (h["where"]["kind"], h["where"]["target"]) == ("local", "local"), h["where"]


@pytest.mark.parametrize("status", [0, 3])
def test_exec_exit_status(broker, status):
    b = broker()
    cmd = f"echo before-exit; exit {status}"
    r = b.ssh("alice", "local", "--", cmd)
    assert r.returncode == status, f"ssh rc {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == b"before-exit\n"
    rec = b.recording_for(cmd)
    assert rec.exit() == {"status": status}
    assert rec.complete()


def test_exec_killed_by_signal_openssh(broker):
    b = broker()
    cmd = "echo dying; kill -KILL $$"
    r = b.ssh("alice", "local", "--", cmd, opts=["-o", "LogLevel=DEBUG1"])
    assert r.returncode == 255, f"rc {r.returncode}, stderr {r.stderr[-600:]!r}"
    assert r.stdout == b"dying\n"
    assert b"rtype exit-signal" in r.stderr, \
        "ssh received no exit-signal: " + repr([ln for ln in r.stderr.splitlines()
                                                 if b"rtype" in ln or b"xit" in ln])
    rec = b.recording_for(cmd)
    assert rec.exit() == {"signal": "KILL"}
    assert rec.data("o") == b"dying\n"


def test_exec_killed_by_signal_paramiko(broker):
    b = broker()
    c = b.connect("alice")
    try:
        res = run_exec(c, "local -- kill -TERM $$")
    finally:
        c.close()
    assert res.status == -1, f"exit-status {res.status} sent for a signalled target"
    assert res.signal == "TERM", f"exit-signal {res.signal!r}"
    assert b.recording_for("kill -TERM $$").exit() == {"signal": "TERM"}


def test_recording_header_and_file_modes(broker):
    b = broker()
    c = b.connect("alice")
    try:
        local = c.get_transport().sock.getsockname()
        t0 = time.time_ns()
        res = run_exec(c, "local -- printf hello")
        t1 = time.time_ns()
    finally:
        c.close()
    assert (res.stdout, res.stderr, res.status) == (b"hello", b"", 0)
    rec = b.recording_for("printf hello")
    h = rec.header
    sid = h["session"]
    u = uuid.UUID(sid)
    assert u.version == 7 and str(u) == sid.lower(), f"session id {sid!r} is not a UUIDv7"
    assert rec.path.name == f"{sid}.rec"
    assert t0 - 5_000_000_000 <= h["start"] <= t1, (t0, h["start"], t1)
    assert h["who"] == {**h["who"], "user": "alice", "key_fp": b.key("alice").fingerprint,
                        "client": f"{local[0]}:{local[1]}"}, h["who"]
    assert h["where"]["kind"] == "local" and h["where"]["target"] == "local"
    assert h["what"]["command"] == "printf hello"
    assert h["pty"] is False
    assert stat.S_IMODE(rec.path.stat().st_mode) == 0o600, oct(rec.path.stat().st_mode)
    assert stat.S_IMODE(b.recordings_dir.stat().st_mode) == 0o700, \
        oct(b.recordings_dir.stat().st_mode)
    times = [e.time_ns for e in rec.events]
    assert times == sorted(times)


def test_recording_exists_before_target_starts(broker):
    b = broker()
    cmd = f"ls -1 {b.recordings_dir}"
    r = b.ssh("alice", "local", "--", cmd)
    assert r.returncode == 0, r.stderr
    rec = b.recording_for(cmd)
    assert f"{rec.session}.rec".encode() in r.stdout.split(b"\n"), \
        f"the target did not see its own recording {rec.session}.rec: {r.stdout!r}"


def test_player_reads_broker_recording(broker, build):
    player = build.require("player")
    b = broker()
    cmd = "head -c 3000 /dev/urandom; echo; printf 'err' >&2"
    r = b.ssh("alice", "local", "--", cmd)
    assert r.returncode == 0 and len(r.stdout) == 3001
    rec = b.recording_for(cmd)
    cat = subprocess.run([str(player), "cat", str(rec.path)], capture_output=True, timeout=30)
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == r.stdout == rec.data("o")
    info = subprocess.run([str(player), "info", str(rec.path), "--json"], capture_output=True,
                          timeout=30)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout.decode("utf-8"))
    assert rec.session in json.dumps(doc)


def test_exec_no_output_recorded_empty(broker):
    b = broker()
    r = b.ssh("alice", "local", "--", "true")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    rec = b.recording_for("true")
    assert rec.data("o") == rec.data("e") == rec.data("i") == b""
    assert rec.exit() == {"status": 0}


# ---------------------------------------------------------------- stdin

def test_stdin_forwarded_with_eof(broker):
    b = broker()
    r = b.ssh("alice", "local", "--", "cat", input=b"data")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"data", b"")
    rec = b.recording_for("cat")
    assert rec.data("i") == b"data"
    assert rec.data("o") == b"data"


def test_stdin_large_roundtrip(broker):
    b = broker()
    data = os.urandom(5 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    r = b.ssh("alice", "local", "--", "cat", input=data, timeout=90)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data), f"got {len(r.stdout)} of {len(data)} bytes back"
    assert hashlib.sha256(r.stdout).hexdigest() == digest
    r2 = b.ssh("alice", "local", "--", "sha256sum", input=data, timeout=90)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.split()[0].decode() == digest, "the target read different bytes"
    rec = b.recording_for("cat")
    assert hashlib.sha256(rec.data("i")).hexdigest() == digest, "recorded input differs"
    assert hashlib.sha256(rec.data("o")).hexdigest() == digest, "recorded output differs"


# ---------------------------------------------------------------- PTY

RESIZE_CMD = ("n=0; trap 'stty size; n=$((n+1))' WINCH; stty size; echo ready; "
              "while [ $n -lt {count} ]; do sleep 0.05; done; echo done")


def test_pty_resize_reaches_child_paramiko(broker):
    b = broker()
    cmd = RESIZE_CMD.format(count=2)
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command(f"local -- {cmd}")
        t = Term(chan)
        pos = t.expect(b"24 80\r\n")
        pos = t.expect(b"ready\r\n", start=pos)
        chan.resize_pty(width=100, height=40)
        pos = t.expect(b"40 100\r\n", start=pos)
        chan.resize_pty(width=120, height=50)
        pos = t.expect(b"50 120\r\n", start=pos)
        t.expect(b"done\r\n", start=pos)
        received = t.drain()
        assert chan.recv_exit_status() == 0
    finally:
        c.close()
    rec = b.recording_for(cmd)
    h = rec.header
    assert h["pty"] is True
    assert h["term"] == {**h["term"], "cols": 80, "rows": 24, "type": "xterm"}, h["term"]
    assert rec.resizes() == [(100, 40), (120, 50)]
    assert rec.data("o") == received, "recorded PTY output differs from what the client got"
    assert rec.data("e") == b"", "a PTY session has no separate stderr"
    assert rec.exit() == {"status": 0}


def test_pty_resize_reaches_child_openssh(broker, tmp_path):
    b = broker()
    cmd = RESIZE_CMD.format(count=1)
    p = PtyProcess(b.ssh_args("alice", "local", "--", cmd, opts=["-tt"]), rows=30, cols=90,
                   stderr_path=tmp_path / "ssh.err")
    try:
        pos = p.expect(b"30 90\r\n")
        pos = p.expect(b"ready\r\n", start=pos)
        p.resize(43, 132)
        pos = p.expect(b"43 132\r\n", start=pos)
        p.expect(b"done\r\n", start=pos)
        assert p.proc.wait(15) == 0
    finally:
        p.close()
    rec = b.recording_for(cmd)
    assert rec.header["pty"] is True
    assert (rec.header["term"]["cols"], rec.header["term"]["rows"]) == (90, 30)
    assert (132, 43) in rec.resizes(), rec.resizes()


def test_pty_raw_bytes_both_ways(broker):
    b = broker()
    every = bytes(range(256))
    fmt = "".join(f"\\{i:03o}" for i in range(256))
    cmd = (f"stty raw -echo -iexten; printf R; head -c 256 | od -An -v -tx1 | tr -d ' \\n'; "
           f"printf S; printf '{fmt}'; printf T")
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm-256color", width=80, height=24)
        chan.exec_command(f"local -- {cmd}")
        t = Term(chan)
        pos = t.expect(b"R")
        chan.sendall(every)
        pos = t.expect(b"S", start=pos)
        t.expect(b"T", start=pos + 256)
        received = t.drain()
        assert chan.recv_exit_status() == 0
    finally:
        c.close()
    m = re.search(rb"R([0-9a-f]*)S", received)
    assert m, received[:600]
    assert bytes.fromhex(m.group(1).decode()) == every, "the target did not read raw input bytes"
    tail = received[m.end():]
    assert tail[:257] == every + b"T", f"raw output altered: {tail[:300]!r}"
    rec = b.recording_for(cmd)
    # Raw mode is no password prompt (echo off, but not canonical): recorded as typed.
    assert rec.data("i") == every
    assert rec.data("o") == received
    assert rec.header["term"]["type"] == "xterm-256color"


def test_pty_interactive_shell_on_target(broker):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command("local")
        t = Term(chan)
        chan.sendall(b"echo hi-$((6*7)); tty\r")
        pos = t.expect(b"hi-42\r\n")
        t.expect(b"/dev/pts/", start=pos)
        chan.sendall(b"exit 5\r")
        received = t.drain()
        assert chan.recv_exit_status() == 5
    finally:
        c.close()
    recs = [r for r in b.wait_recordings(1) if r.header["where"]["target"] == "local"]
    assert len(recs) == 1
    rec = recs[0]
    assert rec.command is None, f"interactive shell recorded with command {rec.command!r}"
    assert rec.header["pty"] is True
    assert rec.data("o") == received
    assert b"exit 5\r" in rec.data("i")
    assert rec.exit() == {"status": 5}


def test_pty_menu_pick_by_number(broker):
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        chan.invoke_shell()
        t = Term(chan)
        pos = t.expect(b"local")
        chan.sendall(b"1\r")
        chan.sendall(b"echo M$((2+3))N\r")
        pos = t.expect(b"M5N", start=pos)
        chan.sendall(b"exit 6\r")
        t.drain()
        assert chan.recv_exit_status() == 6
    finally:
        c.close()
    recs = b.wait_recordings(1)
    assert len(recs) == 1
    rec = recs[0]
    assert rec.header["where"]["target"] == "local"
    assert rec.command is None
    assert rec.header["pty"] is True
    assert b"M5N" in rec.data("o")
    assert rec.exit() == {"status": 6}


def test_openssh_menu_pick_by_name(broker, tmp_path):
    b = broker()
    p = PtyProcess(b.ssh_args("alice", opts=["-tt"]), stderr_path=tmp_path / "ssh.err")
    try:
        pos = p.expect(b"local")
        p.write(b"local\r")
        p.write(b"echo X$((3*3))Y\r")
        pos = p.expect(b"X9Y", start=pos)
        p.write(b"exit 7\r")
        try:
            rc = p.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("ssh did not end after the shell exited")
        assert rc == 7
    finally:
        p.close()
    rec = b.wait_recordings(1)[0]
    assert rec.header["where"]["target"] == "local" and rec.command is None
    assert rec.exit() == {"status": 7}


def test_openssh_interactive_shell_on_target(broker, tmp_path):
    b = broker()
    # ssh sends its own TERM in the pty-req: set one so the check below is not TERM == TERM.
    p = PtyProcess(b.ssh_args("alice", "local", opts=["-tt"]), rows=33, cols=101,
                   stderr_path=tmp_path / "ssh.err", env={**os.environ, "TERM": "vt220"})
    try:
        p.write(b"stty size; echo TERM=$TERM.\r")
        pos = p.expect(b"33 101")
        p.expect(b"TERM=vt220.", start=pos)
        p.write(b"exit 4\r")
        try:
            rc = p.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("ssh did not end after the shell exited")
        assert rc == 4
    finally:
        p.close()
    rec = b.wait_recordings(1)[0]
    assert (rec.header["term"]["cols"], rec.header["term"]["rows"]) == (101, 33)
    assert rec.header["term"]["type"] == "vt220"
    assert rec.exit() == {"status": 4}


# ---------------------------------------------------------------- concurrency

@pytest.mark.parametrize("hogs", [0, 4], ids=["idle", "busy-cpu"])
def test_50_concurrent_sessions(broker, tmp_path, hogs):
    """50 sessions at once; with hogs, on a machine whose CPUs are busy with other work."""
    b = broker()
    n = 50
    copies = tmp_path / "copies"
    copies.mkdir()
    # tee keeps a copy of what the target wrote, to tell lost output from missing output.
    cmds = [f"head -c {1000 + 97 * i} /dev/urandom | base64 | tee {copies}/{i}" for i in range(n)]
    results = [None] * n

    def one(i):
        results[i] = b.ssh("alice", "local", "--", cmds[i], timeout=90)

    # Each hog is the shell itself looping (no child), so kill() ends it.
    busy = [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _ in range(hogs)]
    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    finally:
        for p in busy:
            p.kill()
            p.wait(10)
    failed = [(i, r.returncode, r.stderr[-200:]) for i, r in enumerate(results)
              if r is None or r.returncode != 0]
    assert not failed, f"{len(failed)} of {n} sessions failed: {failed[:5]}"
    recs = b.wait_recordings(n, timeout=30)
    assert len(recs) == n
    by_cmd = {}
    for r in recs:
        by_cmd.setdefault(r.command, []).append(r)
    problems = []
    for i, cmd in enumerate(cmds):
        if len(by_cmd.get(cmd, [])) != 1:
            problems.append(f"session {i}: {len(by_cmd.get(cmd, []))} recordings")
            continue
        rec = by_cmd[cmd][0]
        out = results[i].stdout
        # base64 of N bytes: 4 * ceil(N / 3) characters plus a newline every 76.
        n_b64 = 4 * -(-(1000 + 97 * i) // 3)
        expected_len = n_b64 + -(-n_b64 // 76)
        written = (copies / str(i)).read_bytes()
        if len(out) != expected_len or out != written or rec.data("o") != out \
                or rec.exit() != {"status": 0}:
            problems.append(f"session {i}: the target wrote {len(written)} bytes (expected "
                            f"{expected_len}), the client got {len(out)}, the recording has "
                            f"{len(rec.data('o'))} ('o' equal to the client's: "
                            f"{rec.data('o') == out}), exit {rec.exit()}, ssh rc "
                            f"{results[i].returncode}")
    assert not problems, "\n".join(problems)
    assert len({r.session for r in recs}) == n


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
    assert r.returncode != 0, (r.stdout, r.stderr)
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
        t = Term(chan)
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
        t = Term(chan)
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


# ---------------------------------------------------------------- flooding

def test_flood_does_not_slow_interactive(broker):
    b = broker()
    flood = b.connect("alice")
    stalled = b.connect("alice")
    inter = b.connect("alice")
    stop = threading.Event()
    got = {"n": 0}
    try:
        fchan = flood.get_transport().open_session()
        fchan.exec_command("local -- cat /dev/zero")
        schan = stalled.get_transport().open_session()
        schan.exec_command("local -- yes flood")

        def slow_reader():
            fchan.settimeout(1)
            while not stop.is_set():
                try:
                    d = fchan.recv(32768)
                except socket.timeout:
                    continue
                if not d:
                    return
                got["n"] += len(d)
                stop.wait(0.02)  # a slow client: about 1.6 MB/s
        rt = threading.Thread(target=slow_reader, daemon=True)
        rt.start()
        wait_until(lambda: got["n"] > 100_000, 10, "the flood to reach the slow reader")

        chan = inter.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command("local")
        t = Term(chan)
        chan.sendall(b"echo R$((0))E\r")
        pos = t.expect(b"R0E")
        worst = 0.0
        n_before = got["n"]
        for i in range(1, 21):
            t0 = time.monotonic()
            chan.sendall(f"printf 'P%sQ\\n' {i}\r".encode())
            pos = t.expect(f"P{i}Q".encode(), start=pos, timeout=10)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.1)  # a typist's pace: the measurement spans about 2 s of flood
        # Every echo came back while the flood kept flowing; how fast is for
        # `make bench` (keystroke echo), not for a shared test machine.
        assert got["n"] > n_before, "the flood stopped during the measurement"
        print(f"slowest echo round trip {worst:.2f}s while another session floods")
        assert dir_size(b.recordings_dir) < 512 * 1024 * 1024
        chan.sendall(b"exit\r")
        t.drain()
    finally:
        stop.set()
        for c in (flood, stalled, inter):
            c.close()


def test_stalled_client_memory_bounded(broker):
    b = broker()
    stalled = b.connect("alice")
    try:
        chan = stalled.get_transport().open_session()
        chan.exec_command("local -- cat /dev/zero")
        # paramiko only opens its window when the application reads: nothing is read here.
        wait_until(lambda: len(chan.in_buffer) >= 1_000_000, 10,
                   "the flood to fill the client's window")
        base = b.rss_kb()
        peak = base
        end = time.monotonic() + 4
        while time.monotonic() < end:
            peak = max(peak, b.rss_kb())
            time.sleep(0.1)  # sampling interval, not a wait for a condition
        # Another session still works while the stalled one floods.
        r = b.ssh("alice", "local", "--", "echo alive")
        assert (r.returncode, r.stdout) == (0, b"alive\n"), r.stderr
        peak = max(peak, b.rss_kb())
        grew_mb = (peak - base) / 1024
        assert grew_mb < 64, f"broker RSS grew {grew_mb:.0f} MB behind a stalled client"
        rec_mb = dir_size(b.recordings_dir) / 1e6
        assert rec_mb < 64, f"{rec_mb:.0f} MB recorded for a client that read 2 MB"
    finally:
        stalled.close()


# ---------------------------------------------------------------- SIGHUP

def test_sighup_broken_config_keeps_old_then_valid_adds_user(broker, keys):
    b = broker()
    carol = keys("carol")
    c = b.connect("alice")
    try:
        live = c.get_transport().open_session()
        live.exec_command("local -- cat")
        t = Term(live)
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
        t = Term(live)
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
        assert read_until(client.stdout, b"\n") == b"started\n"
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
        assert read_until(client.stdout, b"\n") == b"go\n"
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


# ---------------------------------------------------------------- multiplexing

def test_openssh_controlmaster_two_sessions_one_connection(broker, tmp_path):
    b = broker()
    cdir = tempfile.mkdtemp(prefix="pgcm", dir="/tmp")
    cp = os.path.join(cdir, "m")
    mux = ["-o", "ControlMaster=auto", "-o", f"ControlPath={cp}", "-o", "ControlPersist=30"]
    outs = []
    try:
        for i, cmd in enumerate(["echo one", "echo two; echo err-two >&2"]):
            o, e = tmp_path / f"out{i}", tmp_path / f"err{i}"
            with open(o, "wb") as fo, open(e, "wb") as fe:
                p = subprocess.run(b.ssh_args("alice", "local", "--", cmd, opts=mux),
                                   stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=30)
            assert p.returncode == 0, e.read_bytes()
            outs.append((o.read_bytes(), e.read_bytes()))
            assert os.path.exists(cp), "no control master socket"
        chk = subprocess.run(b.ssh_args("alice", opts=mux + ["-O", "check"]),
                             capture_output=True, timeout=10)
        assert chk.returncode == 0, chk.stderr
    finally:
        subprocess.run(b.ssh_args("alice", opts=mux + ["-O", "exit"]), capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
        shutil.rmtree(cdir, ignore_errors=True)
    assert outs == [(b"one\n", b""), (b"two\n", b"err-two\n")]
    r1, r2 = b.recording_for("echo one"), b.recording_for("echo two; echo err-two >&2")
    assert r1.session != r2.session
    assert r1.data("o") == b"one\n" and r2.data("o") == b"two\n" and r2.data("e") == b"err-two\n"
    assert r1.header["who"]["client"] == r2.header["who"]["client"], "not one TCP connection"
    assert len(b.recording_paths()) == 2
    wait_until(lambda: len(b.events("session_end")) >= 2, 10, "two session_end events")
    assert len(b.events("auth_success")) == 1, b.events("auth_success")


def test_paramiko_concurrent_channels_one_connection(broker, tmp_path):
    b = broker()
    c = b.connect("alice")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # Each session waits for the gate; it opens once all three run at once.
    cmds = [f"echo start{i}; cat {gate} >/dev/null; echo end{i}" for i in range(3)]
    try:
        chans = []
        for cmd in cmds:
            ch = c.get_transport().open_session()
            ch.exec_command(f"local -- {cmd}")
            chans.append(ch)
        firsts = [bytes(recv_until(ch, f"start{i}\n".encode())) for i, ch in enumerate(chans)]
        wait_until(lambda: len(pids_with_argv("cat", str(gate))) == 3, 15,
                   "three sessions waiting at the gate")
        with open(gate, "wb"):
            pass  # the three readers see end of file together
        outs = [first + drain_channel(ch)[0] for first, ch in zip(firsts, chans)]
        assert [ch.recv_exit_status() for ch in chans] == [0, 0, 0]
        local = c.get_transport().sock.getsockname()
    finally:
        c.close()
    assert outs == [f"start{i}\nend{i}\n".encode() for i in range(3)]
    recs = [b.recording_for(cmd) for cmd in cmds]
    assert {r.header["who"]["client"] for r in recs} == {f"{local[0]}:{local[1]}"}
    assert [r.data("o") for r in recs] == outs
    assert len(b.events("auth_success")) == 1


# ---------------------------------------------------------------- audit

def test_audit_session_start_and_end(broker):
    b = broker()
    cmd = "cat >/dev/null; printf abcde; exit 4"
    data = b"x" * 300
    r = b.ssh("alice", "local", "--", cmd, input=data)
    assert (r.returncode, r.stdout) == (4, b"abcde")
    fp = b.key("alice").fingerprint
    rec = b.recording_for(cmd)
    ok = b.wait_audit("auth_success", lambda e: mentions(e, "alice") and mentions(e, fp)
                      and has_client_addr(e))
    start = b.wait_audit("session_start", lambda e: mentions(e, "alice"))[0]
    assert "local" in list(flat_values(start)), start
    end = b.wait_audit("session_end", lambda e: mentions(e, "alice"))[0]
    paths = [v for v in flat_values(end) if isinstance(v, str) and v.endswith(".rec")]
    assert paths, f"no recording path in session_end: {end}"
    assert b.path(paths[0]) == rec.path.resolve(), (paths[0], rec.path)
    nums = [v for v in flat_values(end) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert 300 in nums, f"bytes in (300) not in session_end: {end}"
    assert 5 in nums, f"bytes out (5) not in session_end: {end}"
    assert 4 in nums, f"exit status 4 not in session_end: {end}"
    durs = [v for k, v in end.items() if "duration" in k]
    assert durs and isinstance(durs[0], (int, float)) and durs[0] >= 0, end
    for e in b.audit():
        assert TIME_RE.match(e["time"]), f"time not RFC 3339: {e['time']!r}"
    order = [e["event"] for e in b.audit()]
    assert order.index("auth_success") < order.index("session_start") < order.index("session_end")
    assert ok


def test_audit_log_to_stdout(broker):
    b = broker(settings={"audit_log": "-"})
    r = b.ssh("alice", "local", "--", "echo hi")
    assert r.stdout == b"hi\n"
    b.wait_audit("session_end")
    assert not (b.workdir / "-").exists()


# ---------------------------------------------------------------- robustness

def test_garbage_and_aborted_connections_do_not_hurt(broker):
    b = broker()
    for payload in (b"\x00" * 64, os.urandom(4096),
                    b"SSH-2.0-x\r\n" + struct.pack(">I", 0x7fffffff) + os.urandom(64),
                    b"SSH-2.0-x\r\n" + struct.pack(">IB", 12, 4) + b"\xff" * 11):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        s.settimeout(3)
        s.recv(256)
        try:
            s.sendall(payload)
            s.recv(4096)
        except OSError:
            pass
        s.close()
    assert b.running()
    r = b.ssh("alice", "local", "--", "echo fine")
    assert (r.returncode, r.stdout) == (0, b"fine\n")


def test_odd_channel_requests_do_not_hurt(broker):
    b = broker()
    c = b.connect("alice")
    try:
        tr = c.get_transport()
        # A window-change on a channel without a PTY.
        chan = tr.open_session()
        chan.exec_command("local -- cat")
        chan.resize_pty(width=100, height=30)
        chan.sendall(b"still here\n")
        chan.shutdown_write()
        out, _ = drain_channel(chan)
        assert out == b"still here\n"
        # Absurd terminal sizes.
        chan = tr.open_session()
        channel_request(chan, "pty-req", ssh_string("xterm", 0xFFFFFFFF, 0xFFFFFFFF, 0, 0, ""))
        chan.exec_command("local -- echo sized")
        chan.resize_pty(width=0, height=0)
        out, _ = drain_channel(chan)
        assert b"sized" in out
        # A second exec on a channel that already runs one.
        chan = tr.open_session()
        chan.exec_command("local -- echo first; sleep 0.3")
        assert channel_request(chan, "exec", ssh_string("local -- echo second")) is False
        out, _ = drain_channel(chan)
        assert out == b"first\n"
        # A huge target name.
        res = run_exec(c, "x" * 20000 + " -- echo huge")
        assert res.status == 1 and res.stdout == b""
    finally:
        c.close()
    assert not [r for r in b.recordings() if r.command == "echo second"], \
        "a second exec on one channel started a second target"
    r = b.ssh("alice", "local", "--", "echo alive")
    assert (r.returncode, r.stdout) == (0, b"alive\n")


def test_client_vanishing_ends_session_and_child(broker):
    b = broker()
    token = "987.125"
    cmd = f"echo up; sleep {token}"
    c = b.connect("alice")
    chan = c.get_transport().open_session()
    chan.exec_command(f"local -- {cmd}")
    Term(chan).expect(b"up\n")
    wait_until(lambda: pids_with_cmdline(f"sleep {token}"), 5, "the target's sleep to run")
    c.get_transport().sock.shutdown(socket.SHUT_RDWR)
    c.close()
    b.wait_audit("session_end", timeout=15)
    wait_until(lambda: not pids_with_cmdline(f"sleep {token}"), 15,
               "the target to be ended after its client vanished")
    rec = b.recording_for(cmd)
    assert rec.complete()
    r = b.ssh("alice", "local", "--", "echo next")
    assert r.stdout == b"next\n"


def test_no_session_without_recording(broker, tmp_path):
    b = broker()
    r = b.ssh("alice", "local", "--", "true")
    assert r.returncode == 0
    shutil.rmtree(b.recordings_dir)
    b.recordings_dir.write_text("not a directory\n")
    marker = tmp_path / "ran-unrecorded"
    r = b.ssh("alice", "local", "--", f"touch {marker}")
    assert_refused(r, 1, "podgate: ")  # a session ran although its recording could not be created
    assert not marker.exists(), "the target ran without a recording"

"""podgate-broker runs commands: exec's output, exit statuses and signals,
stdin, the recording of each session, many sessions at once, several
channels on one connection, and the audit events of a session.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from conftest import drain_channel, run_exec, wait_until
from support import recv_until
from support.audit import TIME_RE, flat_values, has_client_addr, mentions
from support.procs import pids_with_argv


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
    # The test holds the gate open (read-write, so that it does not wait for a
    # reader) before they start: a cat opens it at once, and the three wait
    # in their reads, where the test can see them, not in open().
    held = os.open(gate, os.O_RDWR)
    cmds = [f"echo start{i}; cat {gate} >/dev/null; echo end{i}" for i in range(3)]

    def at_gate():
        return [p for p in pids_with_argv("cat", str(gate))
                if any(os.path.realpath(f"/proc/{p}/fd/{fd}") == str(gate)
                       for fd in os.listdir(f"/proc/{p}/fd"))]
    try:
        chans = []
        for cmd in cmds:
            ch = c.get_transport().open_session()
            ch.exec_command(f"local -- {cmd}")
            chans.append(ch)
        firsts = [bytes(recv_until(ch, f"start{i}\n".encode())) for i, ch in enumerate(chans)]
        wait_until(lambda: len(at_gate()) == 3, 15, "three sessions waiting at the gate")
        os.close(held)  # the three readers see end of file together
        held = None
        outs = [first + drain_channel(ch)[0] for first, ch in zip(firsts, chans)]
        assert [ch.recv_exit_status() for ch in chans] == [0, 0, 0]
        local = c.get_transport().sock.getsockname()
    finally:
        if held is not None:
            os.close(held)
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

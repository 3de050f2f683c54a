"""podgate-broker's interactive sessions: PTY sizes and resizes, raw bytes
both ways, shells on the target and the target menu, over paramiko and the
OpenSSH client.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from support.terminal import Terminal


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
        t = Terminal(chan)
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
    p = Terminal.spawn(b.ssh_args("alice", "local", "--", cmd, opts=["-tt"]), rows=30, cols=90,
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
        t = Terminal(chan)
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
        t = Terminal(chan)
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
        t = Terminal(chan)
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
    p = Terminal.spawn(b.ssh_args("alice", opts=["-tt"]), stderr_path=tmp_path / "ssh.err")
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
    p = Terminal.spawn(b.ssh_args("alice", "local", opts=["-tt"]), rows=33, cols=101,
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

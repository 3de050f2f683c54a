"""podgate-broker against floods, stalled readers, garbage on the port, odd
channel requests and vanishing clients, and its refusal to run a session it
cannot record.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import struct
import threading
import time

from conftest import channel_request, drain_channel, run_exec, ssh_string, wait_until
from support import assert_refused, assert_sealed
from support.procs import pids_with_cmdline
from support.terminal import Terminal


def dir_size(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*") if p.is_file()) if path.is_dir() else 0


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
        t = Terminal(chan)
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
    Terminal(chan).expect(b"up\n")
    wait_until(lambda: pids_with_cmdline(f"sleep {token}"), 5, "the target's sleep to run")
    c.get_transport().sock.shutdown(socket.SHUT_RDWR)
    c.close()
    b.wait_audit("session_end", timeout=15)
    wait_until(lambda: not pids_with_cmdline(f"sleep {token}"), 15,
               "the target to be ended after its client vanished")
    rec = b.recording_for(cmd)
    # Closed and sealed, ending with the hang-up the vanished client caused.
    assert rec.complete() and rec.exit() == {"signal": "HUP"}, rec.codes()[-3:]
    assert_sealed(b.build, rec.path)
    assert rec.data("o") == b"up\n"
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
    assert_refused(r, 1, "podgate: session recording failed; session refused")
    assert not marker.exists(), "the target ran without a recording"

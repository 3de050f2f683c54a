"""Recordings shipped to S3-compatible object storage (s3rver), and read from there."""
import io
import json
import os
import signal
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import wait_until
from s3_support import BUCKET, S3_ENV, s3, s3_settings  # noqa: F401 (fixture)

SEALED, TRUNCATED = 0, 1


def verify_bytes(build, tmp_path, data: bytes, name: str = "check.rec"):
    p = tmp_path / name
    p.write_bytes(data)
    r = subprocess.run([str(build.player), "verify", "--json", str(p)], capture_output=True,
                       timeout=120)
    return r.returncode, json.loads(r.stdout)


def segments(server, prefix, sid):
    return dict(sorted(server.list(f"{prefix}{sid}.rec.seg/").items()))


def test_segments_while_live_then_one_sealed_object(build, broker, s3, tmp_path):
    server = s3()
    b = broker(settings=s3_settings(server, keep_local=True), env=S3_ENV)
    c = b.connect("alice")
    chan = c.get_transport().open_session()
    chan.exec_command("local -- sh -c 'i=0; while read l; do echo got $l; done'")
    chan.sendall(b"one\n")
    wait_until(lambda: chan.recv_ready(), what="first echo")
    sid = b.recording_paths()[0].stem
    # While the session runs, segments hold its bytes up to a checkpoint.
    wait_until(lambda: segments(server, "prod/", sid), timeout=20, what="a segment")
    chan.sendall(b"two\n")
    first = segments(server, "prod/", sid)
    wait_until(lambda: len(segments(server, "prod/", sid)) > len(first), timeout=20,
               what="a second segment")
    assert server.list(f"prod/{sid}.rec") == {} or f"prod/{sid}.rec" not in server.list("prod/")
    segs = segments(server, "prod/", sid)
    # Names are start offsets: they follow each other without gaps.
    off = 0
    for key, size in segs.items():
        assert key.endswith("/%020d" % off), (key, off)
        off += size
    joined = b"".join(server.get(k) for k in segs)
    code, j = verify_bytes(build, tmp_path, joined)
    assert code == TRUNCATED and j["verified_bytes"] == len(joined), j
    chan.shutdown_write()
    drain = b""
    while not chan.exit_status_ready() or chan.recv_ready():
        drain += chan.recv(65536)
    c.close()
    # Then one object with the sealed recording, byte for byte the spool's, and no segments.
    key = f"prod/{sid}.rec"
    wait_until(lambda: key in server.list("prod/") and not segments(server, "prod/", sid),
               timeout=30, what="the sealed object, segments gone")
    data = server.get(key)
    assert data == (b.recordings_dir / f"{sid}.rec").read_bytes()
    code, j = verify_bytes(build, tmp_path, data)
    assert code == SEALED, j
    ok = b.wait_audit("storage_ok", lambda e: e.get("object") == key)
    assert ok[0]["bytes"] == len(data)


def exec_session(b, command):
    """An exec channel running command through the broker (the caller closes the client)."""
    c = b.connect("alice")
    chan = c.get_transport().open_session()
    chan.exec_command(command)
    return c, chan


def echo(chan, line: bytes, timeout: float = 20.0) -> bytes:
    """Send a line to a `while read` loop and wait for its answer."""
    chan.sendall(line + b"\n")
    got = b""
    deadline = time.monotonic() + timeout
    while b"got " + line + b"\n" not in got:
        assert time.monotonic() < deadline, f"no echo of {line!r}; got {got!r}"
        if chan.recv_ready():
            got += chan.recv(65536)
        else:
            time.sleep(0.01)
    return got


def finish(c, chan):
    chan.shutdown_write()
    while not chan.exit_status_ready() or chan.recv_ready():
        if chan.recv_ready():
            chan.recv(65536)
        else:
            time.sleep(0.01)
    status = chan.recv_exit_status()
    c.close()
    return status


LOOP = "local -- sh -c 'while read l; do echo got $l; done'"


def test_server_stopped_mid_session_session_goes_on_and_ships_after(build, broker, s3, tmp_path):
    server = s3()
    b = broker(settings=s3_settings(server, keep_local=True), env=S3_ENV)
    c, chan = exec_session(b, LOOP)
    echo(chan, b"before")
    sid = b.recording_paths()[0].stem
    wait_until(lambda: segments(server, "prod/", sid), timeout=20, what="a segment")
    server.stop()
    # The session does not notice: every line still comes back.
    for i in range(20):
        echo(chan, b"down%d" % i)
    failed = b.wait_audit("storage_failed", lambda e: e.get("session") == sid, timeout=20)
    assert failed[0]["error"] and failed[0]["retry_in_ms"] >= 1000
    assert finish(c, chan) == 0
    rec = b.recording_paths()[0]
    assert rec.exists()  # the spool keeps it
    server.start()
    key = f"prod/{sid}.rec"
    wait_until(lambda: key in server.list("prod/") and not segments(server, "prod/", sid),
               timeout=90, what="the sealed object once the server is back")
    assert server.get(key) == rec.read_bytes()
    code, j = verify_bytes(build, tmp_path, server.get(key))
    assert code == SEALED, j
    oks = b.wait_audit("storage_ok", lambda e: e.get("session") == sid, timeout=10)
    assert any(e.get("failed_attempts", 0) >= 1 for e in oks), oks
    assert any(e.get("object") == key and e.get("bytes") == rec.stat().st_size for e in oks), oks


def test_kill_9_leaves_a_verifiable_prefix_and_a_restart_ships_the_rest(build, broker, s3,
                                                                        tmp_path):
    server = s3()
    seg = 4
    b = broker(settings=s3_settings(server, segment_seconds=seg), env=S3_ENV)
    c, chan = exec_session(b, "local -- sh -c 'while :; do date +%s%N; sleep 0.1; done'")
    wait_until(lambda: b.recording_paths(), what="the recording")
    sid = b.recording_paths()[0].stem
    wait_until(lambda: len(segments(server, "prod/", sid)) >= 2, timeout=30, what="two segments")
    # Kill at no particular point of the shipping cycle: 25 more lines (about 2.5 s) later.
    lines = 0
    while lines < 25:
        lines += chan.recv(65536).count(b"\n")
    killed_at = time.time_ns()
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait(10)
    c.close()
    spool = b.recording_paths()[0].read_bytes()
    segs = segments(server, "prod/", sid)
    joined = b"".join(server.get(k) for k in segs)
    assert spool.startswith(joined)
    assert f"prod/{sid}.rec" not in server.list("prod/")  # nothing passes for a whole recording
    code, j = verify_bytes(build, tmp_path, joined)
    assert code == TRUNCATED and j["verified_bytes"] == len(joined), j
    start_ns = next(msgpack.Unpacker(io.BytesIO(spool), raw=False))["start"]
    lag_s = (killed_at - (start_ns + j["verified_time_ns"])) / 1e9
    assert lag_s <= seg, f"the bucket ends {lag_s:.2f}s before the kill"
    print(f"kill -9: bucket verified to {lag_s:.2f}s before the kill; "
          f"{len(spool) - len(joined)} bytes only in the spool")
    # A restarted broker ships what the spool holds: the whole (truncated) recording.
    b.proc = None
    b.start()
    key = f"prod/{sid}.rec"
    wait_until(lambda: key in server.list("prod/") and not segments(server, "prod/", sid),
               timeout=60, what="the spool's recording shipped after the restart")
    assert server.get(key) == spool
    code, j = verify_bytes(build, tmp_path, spool)
    assert code == TRUNCATED
    wait_until(lambda: not (b.recordings_dir / f"{sid}.rec").exists(), what="spool emptied")

"""Recordings shipped to S3-compatible object storage (s3rver), and read from there."""
import json
import os
import signal
import subprocess
import threading
import time

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

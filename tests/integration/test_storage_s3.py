"""Recordings shipped to S3-compatible object storage (s3rver), and read from there."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import wait_until
from s3_support import BUCKET, S3_ENV, s3, s3_settings  # noqa: F401 (fixture)
from support import recv_until
from support.procs import kill_tagged
from support.verify import SEALED, TRUNCATED, verify


def verify_bytes(build, tmp_path, data: bytes, name: str = "check.rec"):
    """verify --json on data written to tmp_path/name: (exit status, JSON)."""
    p = tmp_path / name
    p.write_bytes(data)
    return verify(build, p)


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
    return bytes(recv_until(chan, b"got " + line + b"\n", timeout))


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


def test_a_stalled_server_does_not_stall_sessions(build, broker, s3, tmp_path):
    """s3rver frozen (SIGSTOP) mid-upload: connections hang, sessions do not."""
    server = s3()
    b = broker(settings=s3_settings(server, segment_seconds=1, keep_local=True), env=S3_ENV)
    c, chan = exec_session(b, LOOP)
    echo(chan, b"first")
    sid = b.recording_paths()[0].stem
    wait_until(lambda: segments(server, "prod/", sid), timeout=20, what="a segment")
    shipped = len(segments(server, "prod/", sid))
    os.killpg(server.proc.pid, signal.SIGSTOP)
    try:
        # Segments fall due while the server hangs; every line still comes back.
        for i in range(40):
            echo(chan, b"frozen%d" % i)
        c2, chan2 = exec_session(b, LOOP)  # and new sessions start
        echo(chan2, b"second")
        assert finish(c2, chan2) == 0
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
    assert finish(c, chan) == 0
    key = f"prod/{sid}.rec"
    wait_until(lambda: key in server.list("prod/"), timeout=90, what="the sealed object")
    assert server.get(key) == (b.recordings_dir / f"{sid}.rec").read_bytes()
    assert shipped >= 1


def test_kill_9_leaves_a_verifiable_prefix_and_a_restart_ships_the_rest(build, broker, s3,
                                                                        tmp_path):
    server = s3()
    seg = 4
    b = broker(settings=s3_settings(server, segment_seconds=seg), env=S3_ENV)
    # The loop outlives the killed broker (each date dies of EPIPE, the loop
    # goes on): its tag lets the test end it.
    c, chan = exec_session(b, "local -- sh -c 'while :; do date +%s%N; sleep 0.1; done' "
                              f"# {tmp_path.name}")
    try:
        kill_9_and_restart(build, b, server, seg, c, chan, tmp_path)
    finally:
        kill_tagged(f"# {tmp_path.name}")


def kill_9_and_restart(build, b, server, seg, c, chan, tmp_path):
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


# ------------------------------------------------------------ the player reads the bucket

def run_player(build, server, *args, env=None, timeout=120):
    e = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SESSION_TOKEN",
              "AWS_ENDPOINT_URL_S3"):
        e.pop(k, None)
    e.update(S3_ENV)
    e.update({"AWS_ENDPOINT_URL": server.endpoint, "AWS_REGION": "us-east-1",
              "HOME": "/nonexistent"})
    e.update(env or {})
    r = subprocess.run([str(build.player), *map(str, args)], capture_output=True, env=e,
                       timeout=timeout)
    assert b"runtime error:" not in r.stderr and b"Sanitizer" not in r.stderr, r.stderr
    return r


def local_player(build, *args):
    return subprocess.run([str(build.player), *map(str, args)], capture_output=True, timeout=120)


@pytest.fixture
def shipped(build, broker, s3, tmp_path):
    """Two sealed sessions in the bucket under prod/, kept in the spool too."""
    server = s3()
    b = broker(settings=s3_settings(server, keep_local=True), env=S3_ENV)
    for cmd in ("echo alpha-one; exit 3", "echo beta-two"):
        b.ssh("alice", "local", "--", cmd)
    recs = sorted(b.recording_paths())
    for p in recs:
        key = f"prod/{p.stem}.rec"
        wait_until(lambda: key in server.list("prod/") and server.list(key)[key] ==
                   p.stat().st_size, timeout=30, what=f"{key} stored")
    return server, b, recs


def test_player_reads_every_form(build, shipped, tmp_path):
    server, b, recs = shipped
    url = "s3://" + BUCKET
    sid = recs[0].stem
    # ls of a prefix: the same lines as ls of the spool, the names aside.
    r = run_player(build, server, "ls", "--json", f"{url}/prod/")
    assert r.returncode == 0, r.stderr
    remote = [json.loads(x) for x in r.stdout.splitlines()]
    local = [json.loads(x) for x in local_player(build, "ls", "--json", b.recordings_dir)
             .stdout.splitlines()]
    assert [x["file"] for x in remote] == [f"{url}/prod/{p.name}" for p in recs]
    assert [{k: v for k, v in x.items() if k != "file"} for x in remote] == \
           [{k: v for k, v in x.items() if k != "file"} for x in local]
    # ls of the whole bucket finds them too.
    r = run_player(build, server, "ls", url + "/")
    assert r.returncode == 0 and r.stdout.count(b"\n") == 2, r
    # grep across the prefix.
    r = run_player(build, server, "grep", "beta-two", f"{url}/prod/")
    assert r.returncode == 0 and recs[1].name.encode() in r.stdout, r
    assert recs[0].name.encode() not in r.stdout
    # cat and export of one object, by key, by session id and by a unique prefix of it.
    for name in (f"prod/{sid}.rec", f"prod/{sid}", f"prod/{sid[:30]}"):
        r = run_player(build, server, "cat", f"{url}/{name}")
        assert r.returncode == 0 and b"alpha-one" in r.stdout, r
        assert r.stdout == local_player(build, "cat", recs[0]).stdout
    r = run_player(build, server, "export", f"{url}/prod/{sid}", "--format", "asciicast-v2")
    assert r.returncode == 0
    assert r.stdout == local_player(build, "export", recs[0], "--format", "asciicast-v2").stdout
    # info, and verify with the broker's public key: exactly as the local file.
    r = run_player(build, server, "info", "--json", f"{url}/prod/{sid}")
    loc = local_player(build, "info", "--json", recs[0])
    assert r.returncode == 0 and json.loads(r.stdout)["header"]["session"] == sid
    assert {k: v for k, v in json.loads(r.stdout).items() if k != "file"} == \
           {k: v for k, v in json.loads(loc.stdout).items() if k != "file"}
    pub = tmp_path / "broker.pub"
    pk = subprocess.run([str(build.broker), "--config", str(b.config_path),
                         "--print-signing-key"], capture_output=True, cwd=b.workdir, timeout=30)
    pub.write_bytes(pk.stdout)
    r = run_player(build, server, "verify", "--key", pub, "--json", f"{url}/prod/{sid}.rec",
                   f"{url}/prod/{recs[1].stem}")
    assert r.returncode == SEALED, r
    assert [json.loads(x)["state"] for x in r.stdout.splitlines()] == ["sealed", "sealed"]
    # Names that do not resolve.
    r = run_player(build, server, "cat", f"{url}/prod/0")
    assert r.returncode == 2 and b"2 recordings start with this name" in r.stderr, r.stderr
    r = run_player(build, server, "cat", f"{url}/prod/ffffffff")
    assert r.returncode == 2 and b"no such recording" in r.stderr, r.stderr
    r = run_player(build, server, "info", f"{url}/prod/")
    assert r.returncode == 2 and b"names a prefix" in r.stderr, r.stderr
    r = run_player(build, server, "ls", "s3://no-such-bucket/")
    assert r.returncode == 2 and b"NoSuchBucket" in r.stderr, r.stderr
    # Credentials as the aws CLI takes them: missing, unknown, or from a profile file.
    r = run_player(build, server, "cat", f"{url}/prod/{sid}",
                   env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert r.returncode == 2 and b"no credentials" in r.stderr, r.stderr
    r = run_player(build, server, "cat", f"{url}/prod/{sid}", env={"AWS_ACCESS_KEY_ID": "NOPE"})
    assert r.returncode == 2 and b"InvalidAccessKeyId" in r.stderr, r.stderr
    creds = tmp_path / "aws-credentials"
    creds.write_text("[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n"
                     "[review]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n")
    r = run_player(build, server, "cat", f"{url}/prod/{sid}",
                   env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                        "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "review"})
    assert r.returncode == 0 and b"alpha-one" in r.stdout, r.stderr


def test_player_plays_from_the_bucket(build, shipped, tmp_path):
    from player_support import Tmux
    server, b, recs = shipped
    env = dict(S3_ENV, AWS_ENDPOINT_URL=server.endpoint, AWS_REGION="us-east-1")
    with Tmux(cols=100, rows=30) as t:
        t.start([str(build.player), "play", f"s3://{BUCKET}/prod/{recs[1].stem}"], env=env)
        screen = t.wait_for(lambda s: "beta-two" in s and "verified" in s, what="the replay")
        assert "alice@local" in screen
        t.keys("q")
        t.wait_for(lambda s: t.dead() or "beta-two" not in s, what="quit")


def test_player_reads_a_large_object_by_ranges(build, s3, tmp_path):
    server = s3()
    big = tmp_path / "big.rec"
    r = local_player(build, "rec", "-q", "-o", big, "--", "sh", "-c",
                     "head -c 12000000 /dev/zero | tr '\\0' a; echo")
    assert r.returncode == 0, r.stderr
    assert big.stat().st_size > 9 << 20  # more than one 8 MiB range
    server.put("big/0192f000-0000-7000-8000-000000000000.rec", big.read_bytes())
    r = run_player(build, server, "cat", f"s3://{BUCKET}/big/0192f000")
    assert r.returncode == 0 and r.stdout == local_player(build, "cat", big).stdout
    r = run_player(build, server, "verify", f"s3://{BUCKET}/big/0192f000")
    assert r.returncode == SEALED, r


def test_player_reads_a_live_session_from_its_segments(build, broker, s3, tmp_path):
    server = s3()
    b = broker(settings=s3_settings(server), env=S3_ENV)
    c, chan = exec_session(b, LOOP)
    echo(chan, b"live-line")
    sid = b.recording_paths()[0].stem
    wait_until(lambda: segments(server, "prod/", sid), timeout=20, what="a segment")
    r = run_player(build, server, "verify", "--json", f"s3://{BUCKET}/prod/{sid}")
    assert r.returncode == TRUNCATED, r
    assert b"not sealed in the bucket yet" in r.stderr
    r = run_player(build, server, "ls", f"s3://{BUCKET}/prod/")
    assert r.returncode == 0 and f"{sid}.rec".encode() in r.stdout, r
    r = run_player(build, server, "cat", f"s3://{BUCKET}/prod/{sid}")
    assert b"got live-line" in r.stdout
    assert finish(c, chan) == 0


# ------------------------------------------------------------ signatures and credentials

@pytest.fixture
def proxy(s3):
    from s3_support import SigV4Proxy
    made = []

    def factory(secrets=None):
        p = SigV4Proxy(s3(), secrets or {"S3RVER": "S3RVER"})
        made.append(p)
        return p
    yield factory
    for p in made:
        p.close()


def test_requests_are_signed_with_sigv4(build, broker, proxy, tmp_path):
    p = proxy()
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint),
               env=dict(S3_ENV, AWS_SESSION_TOKEN="tok/en+1"))
    r = b.ssh("alice", "local", "--", "echo signed")
    assert r.returncode == 0
    sid = b.recording_paths()[0].stem if b.recording_paths() else None
    wait_until(lambda: any(m == "PUT" and path.endswith(".rec") for m, path, _, _ in p.requests),
               timeout=30, what="the sealed upload")
    wait_until(lambda: not b.recording_paths(), what="the spool emptied")
    methods = {m for m, _, _, _ in p.requests}
    assert "PUT" in methods and "GET" in methods  # the upload and the listing of segments
    bad = [(m, path, why) for m, path, why, _ in p.requests if why is not None]
    assert not bad, bad
    for _, _, _, h in p.requests:
        assert h.get("x-amz-security-token") == "tok/en+1"
    assert p.server.list("prod/") and (sid is None or f"prod/{sid}.rec" in p.server.list("prod/"))


def test_a_wrong_secret_is_refused_and_audited(build, broker, proxy):
    p = proxy()
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint),
               env=dict(S3_ENV, AWS_SECRET_ACCESS_KEY="not-the-secret"))
    r = b.ssh("alice", "local", "--", "echo refused")
    assert r.returncode == 0 and r.stdout == b"refused\n"  # the session does not notice
    failed = b.wait_audit("storage_failed", timeout=30)
    assert "SignatureDoesNotMatch" in failed[0]["error"], failed
    assert p.server.list("") == {}
    assert len(b.recording_paths()) == 1  # still in the spool


def test_credentials_from_files_are_read_again_after_a_refusal(build, broker, proxy, tmp_path):
    p = proxy()
    ak, sk = tmp_path / "access_key", tmp_path / "secret_key"
    ak.write_text("S3RVER\n")
    sk.write_text("old-secret\n")
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint, credentials={
        "access_key_file": str(ak), "secret_key_file": str(sk)}))
    b.ssh("alice", "local", "--", "echo rotated")
    b.wait_audit("storage_failed", timeout=30)
    sk.write_text("S3RVER\n")  # the Secret is rotated
    wait_until(lambda: any(k.endswith(".rec") for k in p.server.list("prod/")), timeout=90,
               what="the upload with the new secret")
    ok = b.wait_audit("storage_ok", lambda e: e.get("failed_attempts", 0) >= 1)
    assert ok


def test_web_identity_credentials_from_sts(build, broker, proxy, tmp_path):
    p = proxy()
    p.sts_token = "eyJ.web-identity.token"
    tok = tmp_path / "token"
    tok.write_text(p.sts_token + "\n")
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint, credentials="web_identity"),
               env={"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/podgate",
                    "AWS_WEB_IDENTITY_TOKEN_FILE": str(tok),
                    "AWS_ENDPOINT_URL_STS": p.endpoint,
                    "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    b.ssh("alice", "local", "--", "echo identity")
    wait_until(lambda: any(k.endswith(".rec") for k in p.server.list("prod/")), timeout=30,
               what="the upload with STS credentials")
    assert p.issued
    puts = [h for m, _, why, h in p.requests if m == "PUT"]
    assert puts and all(h.get("x-amz-security-token") == p.issued[-1] for h in puts)
    assert all(why is None for _, _, why, _ in p.requests)


# ------------------------------------------------------------ multipart uploads

def test_a_large_recording_goes_up_in_parts(build, broker, proxy, tmp_path):
    """Above multipart_threshold the sealed object is sent in parts; a failed part is sent again."""
    p = proxy()
    part = 5 << 20
    # The second part fails once: only it is sent again, in the same upload.
    p.faults.append(lambda m, path: m == "PUT" and "partNumber=2&" in path)
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint, keep_local=True,
                                    multipart_threshold="6MiB", part_size="5MiB"), env=S3_ENV)
    r = b.ssh("alice", "local", "--", "head -c 12000000 /dev/zero | tr '\\0' a; echo end",
              timeout=120)
    assert r.returncode == 0 and r.stdout.endswith(b"aend\n"), r.stderr
    rec = b.recording_paths()[0]
    sid, key = rec.stem, f"prod/{rec.stem}.rec"
    ok = b.wait_audit("storage_ok", lambda e: e.get("object") == key and "bytes" in e,
                      timeout=120)
    size = rec.stat().st_size
    assert size > 2 * part and ok[0]["bytes"] == size and ok[0]["parts"] == 3, ok
    assert ok[0]["operation"] == "upload recording"
    # One object, byte for byte the spool's file, and no segments left.
    wait_until(lambda: not segments(p.server, "prod/", sid), timeout=30, what="segments gone")
    data = p.server.get(key)
    assert data == rec.read_bytes()
    # Create, parts 1..3 (2 twice), Complete; no single PUT of the object; every request signed.
    reqs = [(m, path, h) for m, path, why, h in p.requests if path.split("?")[0].endswith(".rec")]
    assert [m for m, path, _ in reqs if "?" not in path] == []
    mp = [(m, path.split("?")[1]) for m, path, _ in reqs]
    assert mp[0] == ("POST", "uploads="), mp
    upload = mp[1][1].split("uploadId=")[1]
    assert [(m, q.split("&")[0]) for m, q in mp[1:-1]] == \
        [("PUT", "partNumber=1"), ("PUT", "partNumber=2"), ("PUT", "partNumber=2"),
         ("PUT", "partNumber=3")], mp
    assert mp[-1] == ("POST", f"uploadId={upload}"), mp
    lengths = [int(h["Content-Length"]) for _, _, h in reqs[1:-1]]
    assert lengths == [part, part, part, size - 2 * part], lengths
    assert all(why is None for _, _, why, _ in p.requests)
    failed = b.wait_audit("storage_failed", lambda e: e.get("operation") == "upload part")
    assert failed[0]["object"] == key and "InternalError" in failed[0]["error"], failed
    assert b.wait_audit("storage_ok", lambda e: e.get("operation") == "upload part" and
                        e.get("failed_attempts") == 1)
    # The player reads it from the bucket as any recording: verify, cat, play.
    server = p.server
    pub = tmp_path / "broker.pub"
    pk = subprocess.run([str(build.broker), "--config", str(b.config_path),
                         "--print-signing-key"], capture_output=True, cwd=b.workdir, timeout=30)
    pub.write_bytes(pk.stdout)
    r = run_player(build, server, "verify", "--key", pub, f"s3://{BUCKET}/{key}")
    assert r.returncode == SEALED, r
    r = run_player(build, server, "cat", f"s3://{BUCKET}/prod/{sid}")
    assert r.returncode == 0 and r.stdout == local_player(build, "cat", rec).stdout
    from player_support import Tmux
    env = dict(S3_ENV, AWS_ENDPOINT_URL=server.endpoint, AWS_REGION="us-east-1")
    with Tmux(cols=100, rows=30) as t:
        t.start([str(build.player), "play", f"s3://{BUCKET}/prod/{sid}"], env=env)
        t.wait_for(lambda s: "verified" in s and "alice@local" in s, timeout=60,
                   what="the replay")
        t.keys("q")
        t.wait_for(lambda s: t.dead() or "alice@local" not in s, what="quit")


def multipart_session(broker, p, letter, keep_local=True):
    """A broker that sends recordings above 5 MiB in 5 MiB parts through proxy p, and one
    session of 6 MB of output: (broker, spool file, object key)."""
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint, keep_local=keep_local,
                                    multipart_threshold="5MiB", part_size="5MiB"), env=S3_ENV)
    r = b.ssh("alice", "local", "--", f"head -c 6000000 /dev/zero | tr '\\0' {letter}; echo end",
              timeout=120)
    assert r.returncode == 0, r.stderr
    rec = b.recording_paths()[0]
    return b, rec, f"prod/{rec.stem}.rec"


def multipart_requests(p):
    """(method, query) of the requests for whole recordings, and where each upload began."""
    mp = [(m, path.split("?")[1]) for m, path, _, _ in p.requests
          if path.split("?")[0].endswith(".rec")]
    return mp, [i for i, (m, q) in enumerate(mp) if (m, q) == ("POST", "uploads=")]


def test_a_refused_multipart_upload_is_aborted_and_sent_again(build, broker, proxy, tmp_path):
    p = proxy()
    # Completing the first upload is refused as the parts would not make an object.
    p.faults.append(lambda m, path: 400 if m == "POST" and "?uploadId=" in path else False)
    b, rec, key = multipart_session(broker, p, "b")
    ok = b.wait_audit("storage_ok", lambda e: e.get("object") == key and "bytes" in e,
                      timeout=120)
    assert ok[0]["parts"] == 2 and ok[0]["bytes"] == rec.stat().st_size, ok
    assert p.server.get(key) == rec.read_bytes()
    failed = b.wait_audit("storage_failed",
                          lambda e: e.get("operation") == "complete multipart upload")
    assert "InvalidPart" in failed[0]["error"], failed
    mp, creates = multipart_requests(p)
    assert len(creates) == 2, mp
    # The first upload is aborted before the second starts. s3rver refuses to abort
    # (4xx): the abort is asked three times, then left to the bucket's lifecycle rule.
    first = mp[creates[0] + 1][1].split("uploadId=")[1]
    assert mp[creates[0]:creates[1]].count(("DELETE", f"uploadId={first}")) == 3, mp
    assert not (b.recordings_dir / f"{rec.name}.upload").exists()
    assert mp[-1][0] == "POST" and first not in mp[-1][1], mp


def test_an_abort_that_fails_is_asked_again(build, broker, proxy, tmp_path):
    """An abort that gets no good answer is sent again after the back-off, not forgotten."""
    p = proxy()
    p.faults.append(lambda m, path: 400 if m == "POST" and "?uploadId=" in path else False)
    p.faults.append(lambda m, path: m == "DELETE" and "?uploadId=" in path)
    p.aborts = []
    b, rec, key = multipart_session(broker, p, "c")
    b.wait_audit("storage_ok", lambda e: e.get("object") == key and "bytes" in e, timeout=120)
    assert p.server.get(key) == rec.read_bytes()
    failed = b.wait_audit("storage_failed",
                          lambda e: e.get("operation") == "abort multipart upload")
    assert failed[0]["object"] == key and "InternalError" in failed[0]["error"], failed
    mp, creates = multipart_requests(p)
    assert len(creates) == 2, mp
    first = mp[creates[0] + 1][1].split("uploadId=")[1]
    # Both aborts name the first upload, and come before the second upload starts.
    assert mp[creates[0]:creates[1]].count(("DELETE", f"uploadId={first}")) == 2, mp
    assert p.aborts == [first]
    # The streak of failures (the refused Complete, the failed abort) ends with the abort.
    assert b.wait_audit("storage_ok", lambda e: e.get("operation") == "abort multipart upload"
                        and e.get("failed_attempts") == 2)
    assert not (b.recordings_dir / f"{rec.name}.upload").exists()


def test_a_restart_aborts_the_upload_the_crash_left(build, broker, proxy, tmp_path):
    """The id of an upload in progress is kept beside the spool file; after kill -9 the
    restarted broker aborts that upload before it sends the recording again."""
    p = proxy()
    # Every part fails while the first broker runs: its upload stays in progress.
    for _ in range(100):
        p.faults.append(lambda m, path: m == "PUT" and "partNumber=" in path)
    p.aborts = []
    b, rec, key = multipart_session(broker, p, "d", keep_local=False)
    note = b.recordings_dir / f"{rec.name}.upload"
    wait_until(lambda: any("partNumber=" in path for _, path, _, _ in p.requests),
               timeout=60, what="a part sent")
    upload = next(path.split("uploadId=")[1] for _, path, _, _ in p.requests
                  if "partNumber=" in path)
    assert note.read_text() == upload + "\n"
    assert oct(note.stat().st_mode & 0o777) == "0o600"
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait(10)
    p.faults.clear()
    seen = len(p.requests)
    b.proc = None
    b.start()
    b.wait_audit("storage_ok", lambda e: e.get("object") == key and "bytes" in e, timeout=120)
    after = [(m, path.split("?")[1]) for m, path, _, _ in p.requests[seen:]
             if path.split("?")[0].endswith(".rec") and "?" in path]
    assert after[0] == ("DELETE", f"uploadId={upload}"), after
    assert ("POST", "uploads=") in after[1:], after
    assert p.aborts == [upload]
    wait_until(lambda: not rec.exists(), what="the spool emptied")
    assert not note.exists()


def strace_calls(text: str):
    """(thread id, call) of each finished system call in an `strace -f` log, in the order
    they finished; a call cut by another thread's (<unfinished ...>) is joined to its end."""
    pending, calls = {}, []
    for line in text.splitlines():
        m = re.match(r"(\d+) +(.*)$", line)
        if not m:
            continue
        tid, rest = int(m.group(1)), m.group(2)
        if rest.endswith("<unfinished ...>"):
            pending[tid] = rest[:-len("<unfinished ...>")]
            continue
        r = re.match(r"<\.\.\. \w+ resumed>(.*)$", rest)
        if r:
            rest = pending.pop(tid, "") + r.group(1)
        calls.append((tid, rest))
    return calls


def test_the_upload_note_is_durable_before_any_part_and_written_off_the_loop(
        build, broker, proxy, tmp_path):
    """The note of a multipart upload is fsync'd, renamed into place and its directory
    fsync'd, all on the thread pool, before the first part of the upload is sent."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make deps-test installs it)")
    p = proxy()
    b = broker(settings=s3_settings(p.server, endpoint=p.endpoint, keep_local=True,
                                    multipart_threshold="5MiB", part_size="5MiB"), env=S3_ENV)
    log = tmp_path / "strace.log"
    st = subprocess.Popen(["strace", "-f", "-qq", "-y", "-s", "400", "-o", str(log),
                           "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,sendto",
                           "-p", str(b.pid)], stderr=subprocess.PIPE)
    try:
        # strace has attached once the broker's next system call is in its log.
        wait_until(lambda: st.poll() is not None or
                   (log.exists() and log.stat().st_size > 0), what="strace attached")
        if st.poll() is not None:
            pytest.skip(f"strace cannot attach here: {st.stderr.read().decode(errors='replace')}")
        r = b.ssh("alice", "local", "--", "head -c 6000000 /dev/zero | tr '\\0' e; echo end",
                  timeout=120)
        assert r.returncode == 0, r.stderr
        rec = b.recording_paths()[0]
        key = f"prod/{rec.stem}.rec"
        b.wait_audit("storage_ok", lambda e: e.get("object") == key and "bytes" in e,
                     timeout=120)
    finally:
        st.terminate()
        st.wait(30)
    calls = strace_calls(log.read_text(errors="replace"))
    tmp = f"{rec}.upload.tmp"
    rdir = str(b.recordings_dir)

    def first(pred, what, after=-1):
        for i, (tid, call) in enumerate(calls):
            if i > after and pred(call):
                return i, tid
        pytest.fail(f"no {what} after call {after} in the strace log:\n"
                    + "\n".join(c for _, c in calls if rec.stem in c or "partNumber" in c))

    part = first(lambda c: c.startswith("sendto(") and "partNumber=1&" in c, "first part")
    opened = first(lambda c: c.startswith("openat(") and "O_CREAT" in c and
                   c.endswith(f"<{tmp}>"), "open of the note")
    synced = first(lambda c: re.match(r"f(data)?sync\(\d+<" + re.escape(tmp) + r">\) = 0", c),
                   "fsync of the note", opened[0])
    name = re.escape(rec.name)
    renamed = first(lambda c: re.match(r'rename(at2?)?\(.*"([^"]*/)?' + name + r'\.upload\.tmp", '
                                       r'.*"([^"]*/)?' + name + r'\.upload".*\) = 0', c),
                    "rename of the note", synced[0])
    dsynced = first(lambda c: re.match(r"f(data)?sync\(\d+<" + re.escape(rdir) + r">\) = 0", c),
                    "fsync of the recordings directory", renamed[0])
    # All of it before the first part is sent, and none of it on the event loop's thread.
    assert dsynced[0] < part[0], (dsynced, part)
    assert {opened[1], synced[1], renamed[1], dsynced[1]}.isdisjoint({b.pid}), \
        (b.pid, opened, synced, renamed, dsynced)

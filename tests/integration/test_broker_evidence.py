"""Evidence through the broker: signed recordings, kill -9, and fail-closed storage."""
import json
import os
import signal
import subprocess
import sys
import time

import msgpack
import pytest

import recording
from conftest import wait_until
from support import assert_refused, verify
from support.checkpoints import assert_checkpoint_cadence

SEALED, TRUNCATED, NOT_RECORDING, UNSIGNED, WRONG_KEY, MODIFIED = range(6)




def public_key(build, b, tmp_path):
    r = subprocess.run([str(build.broker), "--config", str(b.config_path), "--print-signing-key"],
                       capture_output=True, timeout=30, cwd=b.workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")
    pub = tmp_path / "broker-signing.pub"
    pub.write_bytes(r.stdout)
    return pub, r.stderr.decode().strip().splitlines()[-1]   # after any config warnings


def test_recordings_are_signed_by_the_broker_key(build, broker, tmp_path):
    b = broker(settings={"signing_key": "keys/signing_ed25519"})
    keyfile = b.workdir / "keys" / "signing_ed25519"
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    pub, fp = public_key(build, b, tmp_path)
    r = b.ssh("alice", "local", "--", "echo signed; exit 3")
    assert r.returncode == 3 and r.stdout == b"signed\n"
    rec = b.recording_for("echo signed; exit 3")
    code, j = verify(build, rec.path, "--key", str(pub))
    assert code == SEALED, j
    assert j["key_fp"] == fp
    # The suite's own verifier, written from docs/format.md, agrees on every figure.
    mine = recording.verify(rec.path, pub)
    assert (mine.verdict, mine.version, mine.key_fp, mine.offset, mine.time_ns, mine.checkpoints) == \
        ("sealed", 2, fp, j["verified_bytes"], j["verified_time_ns"], j["checkpoints"])
    with open(rec.path, "rb") as f:
        header = next(msgpack.Unpacker(f, raw=False))
    assert header["signer"]["key_fp"] == fp
    # Another key is refused as the wrong one.
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(other)],
                   check=True, capture_output=True)
    code, j = verify(build, rec.path, "--key", str(other))
    assert code == WRONG_KEY and "wrong key" in j["reason"]


def test_signing_key_readable_by_others_is_refused(build, broker):
    b = broker(start=False, settings={"signing_key": "loose.pem"})
    key = b.workdir / "loose.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)
    b.write_config()
    r = subprocess.run([str(build.broker), "--config", str(b.config_path)], cwd=b.workdir,
                       capture_output=True, timeout=30, env=b.env)
    assert_refused(r, 1, "chmod 600")


def test_kill_9_during_flood_verifies_to_within_a_second(build, broker):
    b = broker()
    proc = subprocess.Popen(b.ssh_args("alice", "local", "--", "yes flooding-the-broker"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def two_checkpoints():
            paths = b.recording_paths()
            if not paths:
                return False
            code, j = verify(build, paths[0])
            return j.get("checkpoints", 0) >= 2
        wait_until(two_checkpoints, timeout=30, what="checkpoints in the flood's recording")
        os.kill(b.pid, signal.SIGKILL)
        killed_at = time.time_ns()
        b.wait_exit(10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    path = b.recording_paths()[0]
    code, j = verify(build, path)
    assert code == TRUNCATED, j
    mine = recording.verify(path)
    assert (mine.verdict, mine.offset, mine.time_ns, mine.checkpoints) == \
        ("truncated", j["verified_bytes"], j["verified_time_ns"], j["checkpoints"])
    # What the recorder guarantees: a checkpoint at least once a second (or
    # 1 MiB), so the verified prefix ends at the last checkpoint written and
    # at most one interval of events follows it. The wall-clock loss depends
    # on scheduling too; it is shown, not asserted (make bench measures it).
    assert_checkpoint_cadence(path, j)
    with open(path, "rb") as f:
        header = next(msgpack.Unpacker(f, raw=False))
    lost = killed_at - header["start"] - j["verified_time_ns"]
    print(f"kill -9 during a flood: {lost / 1e9:.2f} s after the last verified checkpoint")
    # A restarted broker serves at once, with no clean-up by hand.
    b.start()
    assert b.ssh("alice", "local", "--", "echo again").stdout == b"again\n"


@pytest.fixture
def small_disk(tmp_path):
    """A 384 KiB tmpfs for recordings: a full disk on demand."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_closes_the_session_and_refuses_new_ones(build, broker, small_disk):
    b = broker(settings={"recordings": str(small_disk / "recordings")})
    # A session that writes more than the disk holds is closed, not left unrecorded.
    r = b.ssh("alice", "local", "--", "head -c 3000000 /dev/urandom | od -An -tx1",
              timeout=60)
    assert r.returncode == 255, r  # the target is ended by a signal: ssh has no status
    assert b"podgate: session recording failed; session closed" in r.stderr
    b.wait_audit("recording_failed")
    # The broker stays up; while storage is full, new sessions are refused.
    r = b.ssh("alice", "local", "--", "echo refused")
    assert_refused(r, 1, "podgate: session recording failed; session refused")
    assert b"refused" not in r.stdout
    # Once space is back, sessions work again, with no restart.
    for p in b.recording_paths():
        p.unlink()
    r = b.ssh("alice", "local", "--", "echo back")
    assert r.returncode == 0 and r.stdout == b"back\n"
    assert b.running()


def test_on_recording_failure_continue(build, broker, small_disk):
    b = broker(settings={"recordings": str(small_disk / "recordings")},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "on_recording_failure": "continue"}])
    b.recordings_dir.mkdir(exist_ok=True)
    # The disk is full: with continue, the session still runs, unrecorded.
    filler = small_disk / "recordings" / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    r = b.ssh("alice", "local", "--", "head -c 2000000 /dev/urandom | wc -c", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == b"2000000", b.log_tail()
    b.wait_audit("recording_failed")


# The same failures without a mount: the broker runs under RLIMIT_FSIZE with
# SIGXFSZ ignored, so a write that would take one file past the limit fails
# (EFBIG) exactly where a write to a full disk fails (ENOSPC).
FSIZE_LIMIT = 512 * 1024
FSIZE_WRAPPER = ("import os, resource, signal, sys; "
                 "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                 "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
                 "os.execv(sys.argv[2], sys.argv[2:])")


def size_limited_broker(broker, limit=FSIZE_LIMIT, **kw):
    b = broker(start=False, **kw)
    b.wrapper = [sys.executable, "-c", FSIZE_WRAPPER, str(limit)]
    b.start()
    with open(f"/proc/{b.pid}/limits") as f:
        assert any(line.startswith("Max file size") and str(limit) in line for line in f)
    return b


def test_write_failure_closes_the_session_without_a_mount(build, broker):
    b = size_limited_broker(broker)
    cmd = "head -c 3000000 /dev/urandom | od -An -tx1"
    r = b.ssh("alice", "local", "--", cmd, timeout=60)
    # The target is ended by a signal: ssh has no status to pass on.
    assert r.returncode == 255 and len(r.stdout) < 3000000 * 3, (r.returncode, r.stderr)
    assert b"podgate: session recording failed; session closed" in r.stderr
    ev = b.wait_audit("recording_failed")[0]
    assert ev["reason"] == "session recording failed; session closed", ev
    # The cut recording keeps what fitted, and is not sealed.
    (path,) = b.recording_paths()
    assert path.stat().st_size <= FSIZE_LIMIT
    code, j = verify(build, path)
    assert code == TRUNCATED, j
    # The broker stays up and the next session, with a file of its own, works.
    r = b.ssh("alice", "local", "--", "echo back")
    assert (r.returncode, r.stdout) == (0, b"back\n"), r.stderr
    assert b.running()


def test_on_recording_failure_continue_without_a_mount(build, broker):
    b = size_limited_broker(broker, rules=[{"groups": ["oncall"], "targets": ["local"],
                                            "on_recording_failure": "continue"}])
    # 6 MB of output, more than a recording may hold: the session goes on unrecorded.
    r = b.ssh("alice", "local", "--", "head -c 2000000 /dev/urandom | od -An -tx1 -v",
              timeout=60)
    assert r.returncode == 0 and len(r.stdout) == 2000000 // 16 * 49, b.log_tail()
    ev = b.wait_audit("recording_failed")[0]
    assert "continues unrecorded" in ev["reason"], ev


def resident_bytes(path):
    """How much of a file the page cache holds (util-linux fincore)."""
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[0])


def test_a_recording_on_disk_leaves_the_page_cache(broker, tmp_path):
    """Recordings are written once and read later: what a sync made durable
    is handed back to the kernel, so a broker writing many recordings does
    not fill the page cache (in a pod, its memory cgroup) with them."""
    if subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True,
                      text=True).stdout.strip() in ("tmpfs", "ramfs"):
        pytest.skip("the recordings would be on tmpfs, where the page cache is the storage")
    b = broker()
    r = b.ssh("alice", "local", "--", "head -c 8000000 /dev/zero | tr '\\0' x")
    assert r.returncode == 0 and len(r.stdout) == 8_000_000, r.stderr
    (path,) = b.recording_paths()
    # Not read by the test before this: a read would bring its pages back.
    wait_until(lambda: resident_bytes(path) == 0, 20,
               f"{path} no longer in the page cache (now {resident_bytes(path)} bytes)")
    assert path.stat().st_size > 8_000_000
    rec = b.recording_for("head -c 8000000 /dev/zero | tr '\\0' x")
    assert rec.complete()

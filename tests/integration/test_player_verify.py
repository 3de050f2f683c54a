"""podgate-player verify and key: signed recordings checked offline with a public key."""
import functools
import json
import os
import random
import signal
import subprocess
import time

import msgpack
import pytest

import recording
from player_support import PLAYER, player  # player(): a sanitizer report fails the test
from player_support import make_key, own_home  # noqa: F401 (own_home: autouse)
from support.verify import (MODIFIED, NOT_RECORDING, SEALED, TRUNCATED, UNSIGNED,
                            WRONG_KEY, verify)
from support.checkpoints import assert_checkpoint_cadence

# verify --json with the player under test: (exit status, JSON)
verify_json = functools.partial(verify, PLAYER)


@pytest.fixture
def signed(tmp_path):
    key = tmp_path / "signer.pem"
    pub = make_key(key)
    out = tmp_path / "s.rec"
    r = player("rec", "-q", "--key", str(key), "-o", str(out), "--", "sh", "-c",
               "printf 'first line\\n'; printf 'second\\n' >&2; exit 4")
    assert r.returncode == 4
    return out, key, pub


def test_sealed_recording_verifies_with_its_key(signed):
    out, _, pub = signed
    r = player("verify", "--key", pub, str(out))
    assert r.returncode == SEALED, r.stdout + r.stderr
    assert b"sealed and intact" in r.stdout
    code, j = verify_json(out, "--key", pub)
    assert code == 0 and j["state"] == "sealed"
    assert j["verified_bytes"] == out.stat().st_size
    # The key printed by `key` is the one in the header.
    k = player("key", "--key", str(signed[1]))
    assert k.returncode == 0 and k.stdout == open(pub, "rb").read()
    assert k.stderr.decode().strip() == j["key_fp"]
    info = json.loads(player("info", "--json", str(out)).stdout)
    assert info["integrity"]["state"] == "sealed"
    assert info["header"]["signer"]["key_fp"] == j["key_fp"]


def test_wrong_key(signed, tmp_path):
    out, _, _ = signed
    other = make_key(tmp_path / "other.pem")
    r = player("verify", "--key", other, str(out))
    assert r.returncode == WRONG_KEY
    assert b"wrong key" in r.stdout


def test_every_flipped_byte_detected(signed):
    out, _, pub = signed
    data = out.read_bytes()
    flipped = out.with_suffix(".flip")
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 0x20 if i % 3 else 0x01
        flipped.write_bytes(bytes(b))
        r = player("verify", "--key", pub, str(flipped))
        assert r.returncode != SEALED, f"flip at byte {i} not detected"
        assert len(r.stdout.splitlines()) + len(r.stderr.splitlines()) == 1


def test_truncation_reports_verified_prefix(signed):
    out, _, pub = signed
    data = out.read_bytes()
    cut = out.with_suffix(".cut")
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    unpacker.unpack()
    header_end = unpacker.tell()
    for n in list(range(0, len(data), 7)) + [header_end - 1, header_end, len(data) - 1]:
        cut.write_bytes(data[:n])
        code, j = verify_json(cut, "--key", pub)
        # Without a whole header it is not a recording; with one, a truncated recording.
        assert code == (NOT_RECORDING if n < header_end else TRUNCATED), (n, header_end, j)
        if code == TRUNCATED:
            assert header_end <= j["verified_bytes"] <= n, (n, j)
            assert "truncated" in j["reason"] or "not sealed" in j["reason"]


def test_large_recording_random_flips(tmp_path):
    out = tmp_path / "big.rec"
    r = player("rec", "-q", "-o", str(out), "--", "sh", "-c",
               "head -c 3000000 /dev/urandom | od -An -tx1")
    assert r.returncode == 0
    assert player("verify", str(out)).returncode == SEALED
    data = out.read_bytes()
    rnd = random.Random(7)
    flipped = tmp_path / "big.flip"
    for _ in range(25):
        i = rnd.randrange(len(data))
        b = bytearray(data)
        b[i] ^= 1 << rnd.randrange(8)
        flipped.write_bytes(bytes(b))
        code, j = verify_json(flipped)
        assert code != SEALED, f"flip at byte {i} not detected"


def test_data_after_seal_is_modification(signed):
    out, _, pub = signed
    with open(out, "ab") as f:
        f.write(msgpack.packb([0, "o", b"injected"]))
    code, j = verify_json(out, "--key", pub)
    assert code == MODIFIED and "after the seal" in j["reason"]


def test_incomplete_object_after_the_seal_is_modification(signed):
    """Even one incomplete object after the trailer is data after the seal, not a cut."""
    out, _, pub = signed
    size = out.stat().st_size
    with open(out, "ab") as f:
        f.write(msgpack.packb([0, "o", b"injected"])[:-3])
    code, j = verify_json(out, "--key", pub)
    assert code == MODIFIED and "after the seal" in j["reason"]
    assert j["bad_offset"] == size


def test_cut_recording_reports_signed_figures(tmp_path):
    """A cut file reports the offset, time and event count its last good checkpoint signed."""
    key = tmp_path / "k.pem"
    pub = make_key(key)
    out = tmp_path / "slow.rec"
    r = player("rec", "-q", "--key", str(key), "-o", str(out), "--", "sh", "-c",
               "printf 'one\\n'; sleep 1.1; printf 'two\\n'")
    assert r.returncode == 0
    rec = recording.Recording.load(out)
    cps = [e for e in rec.events if e.code == "c"]
    seal = [e for e in rec.events if e.code == "s"][0]
    assert cps, "a session over a second long has a checkpoint"
    cut = tmp_path / "cut.rec"
    cut.write_bytes(out.read_bytes()[:seal.offset + 5])
    code, j = verify_json(cut, "--key", pub)
    assert code == TRUNCATED, j
    last = cps[-1]
    assert (j["verified_bytes"], j["verified_time_ns"], j["checkpoints"]) == \
        (last.offset + last.size, last.time_ns, len(cps))
    assert (last.payload["time"], last.payload["offset"]) == (last.time_ns, last.offset)
    assert j["verified_events"] == last.payload["events"]
    mine = recording.verify(cut, pub)
    assert (mine.verdict, mine.offset, mine.time_ns) == ("truncated", j["verified_bytes"],
                                                        j["verified_time_ns"])


def test_not_a_recording_and_bad_key(tmp_path, signed):
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    assert player("verify", str(junk)).returncode == NOT_RECORDING
    r = player("verify", "--key", "/etc/hostname", str(signed[0]))
    assert r.returncode == 2 and b"not an Ed25519 key" in r.stderr
    # Several files: the worst verdict is the exit status.
    r = player("verify", str(signed[0]), str(junk))
    assert r.returncode == NOT_RECORDING and len(r.stdout.splitlines()) == 2


def test_private_key_readable_by_others_refused(tmp_path):
    key = tmp_path / "loose.pem"
    make_key(key)
    os.chmod(key, 0o644)
    r = player("rec", "-q", "--key", str(key), "-o", str(tmp_path / "x.rec"), "--", "true")
    assert r.returncode == 2 and b"chmod 600" in r.stderr
    assert not (tmp_path / "x.rec").exists()


def test_per_user_key_is_generated_private(own_home, tmp_path):
    out = tmp_path / "u.rec"
    assert player("rec", "-q", "-o", str(out), "--", "true").returncode == 0
    keyfile = own_home / ".config" / "podgate" / "signing_ed25519"
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    assert oct((keyfile.parent).stat().st_mode & 0o777) == "0o700"
    pub = tmp_path / "u.pub"
    pub.write_bytes(player("key").stdout)
    assert player("verify", "--key", str(pub), str(out)).returncode == SEALED


def test_kill_9_loses_at_most_about_a_second(tmp_path):
    """A recorder killed mid-flood leaves a file verified to within ~1 s of the kill."""
    out = tmp_path / "killed.rec"
    proc = subprocess.Popen([PLAYER, "rec", "-q", "-o", str(out), "--", "sh", "-c",
                             "while :; do echo flooding-output-line; done"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "no checkpoints appeared"
            code, j = verify_json(out)
            if j.get("checkpoints", 0) >= 3:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time_ns()
        proc.wait(timeout=10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    code, j = verify_json(out)
    assert code == TRUNCATED, j
    with open(out, "rb") as f:
        header = next(msgpack.Unpacker(f, raw=False))
    lost_ns = killed_at - header["start"] - j["verified_time_ns"]
    # Guaranteed by the writer, whatever the machine's load: a checkpoint at
    # least once a second (or 1 MiB), the verified prefix ends at the last one.
    assert_checkpoint_cadence(out, j)
    print(f"kill -9: {lost_ns / 1e9:.2f} s after the last verified checkpoint")


# ---------------------------------------------------------------- broker-made recordings

def test_broker_recordings_verify_sealed_with_the_broker_key(broker_recordings):
    br = broker_recordings
    r = player("verify", "--key", str(br.pub), *map(str, br.all))
    assert r.returncode == SEALED, r.stdout + r.stderr
    assert r.stdout.count(b"sealed and intact") == 3
    for p in br.all:
        code, j = verify_json(p, "--key", str(br.pub))
        assert code == SEALED and j["state"] == "sealed", j
    # The interactive session lasted over two seconds: checkpoints, at the promised pace.
    code, j = verify_json(br.pty, "--key", str(br.pub))
    assert j["checkpoints"] >= 2, j
    assert_checkpoint_cadence(br.pty)


def test_verify_unsigned_exits_3_and_several_files_give_the_worst(broker_recordings, tmp_path):
    from player_support import write_recording
    br = broker_recordings
    pub = str(br.pub)
    data = br.pty.read_bytes()
    cut = tmp_path / "cut.rec"
    cut.write_bytes(data[:-10])
    flipped = tmp_path / "flipped.rec"
    i = data.index(b"tick-2")
    flipped.write_bytes(data[:i] + b"T" + data[i + 1:])
    notrec = tmp_path / "notes.rec"
    notrec.write_text("not a recording\n")
    unsigned = write_recording(tmp_path / "unsigned.rec", [(10**9, "o", b"hi\r\n"),
                                                         (2 * 10**9, "x", {"status": 0})])
    other = make_key(tmp_path / "other.pem")
    alone = {br.pty: SEALED, cut: TRUNCATED, notrec: NOT_RECORDING, unsigned: UNSIGNED,
             flipped: MODIFIED}
    for path, want in alone.items():
        r = player("verify", "--key", pub, str(path))
        assert r.returncode == want, (path.name, r.stdout, r.stderr)
    assert player("verify", "--key", other, str(br.pty)).returncode == WRONG_KEY
    # Several files: the worst (highest) status, in whatever order they come.
    for files, want in [([br.pty, cut], TRUNCATED), ([cut, br.pty], TRUNCATED),
                        ([br.pty, cut, notrec], NOT_RECORDING),
                        ([unsigned, cut, br.pty], UNSIGNED),
                        ([flipped, unsigned, br.pty, cut], MODIFIED),
                        ([br.pty, br.nopty, br.killed], SEALED)]:
        r = player("verify", "--key", pub, *map(str, files))
        assert r.returncode == want, ([f.name for f in files], r.stdout, r.stderr)
        assert len(r.stdout.splitlines()) + len(r.stderr.splitlines()) == len(files)


def test_verify_says_the_verdict_once(signed, tmp_path):
    """The reason of a wrong key starts with the verdict itself: printed once."""
    out, _, _ = signed
    other = make_key(tmp_path / "other.pem")
    r = player("verify", "--key", other, str(out))
    assert r.returncode == WRONG_KEY
    line = r.stdout.decode()
    assert line.startswith(f"{out}: wrong key: signed by SHA256:"), line
    assert line.count("wrong key") == 1, line
    # The JSON reason is unchanged.
    code, j = verify_json(out, "--key", other)
    assert code == WRONG_KEY and j["state"] == "wrong key"
    assert j["reason"].startswith("wrong key: signed by ")


def test_verify_a_directory(signed, tmp_path):
    """verify DIR checks every recording under it (as ls and grep read
    directories), skips files that are not recordings quietly (-v names
    them) and exits with the worst verdict."""
    out, key, pub = signed
    d = tmp_path / "recs"
    (d / "sub").mkdir(parents=True)
    good = d / "a.rec"
    good.write_bytes(out.read_bytes())
    (d / "sub" / "b.rec").write_bytes(out.read_bytes())
    (d / "audit.log").write_text('{"event":"session_start"}\n')
    (d / "signing_ed25519.pub").write_bytes(open(pub, "rb").read())
    r = player("verify", "--key", pub, str(d))
    assert r.returncode == SEALED, r.stdout + r.stderr
    assert r.stderr == b""
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2 and all("sealed and intact" in line for line in lines), lines
    assert lines[0].startswith(f"{good}:") and lines[1].startswith(f"{d / 'sub' / 'b.rec'}:")
    r = player("verify", "-v", "--key", pub, str(d))
    assert r.returncode == SEALED
    assert b"audit.log: not a podgate recording" in r.stderr
    assert b"signing_ed25519.pub: not a podgate recording" in r.stderr
    # The worst over the directory: a cut copy makes it 1, a flipped byte 5.
    data = out.read_bytes()
    (d / "sub" / "cut.rec").write_bytes(data[:-10])
    r = player("verify", "--key", pub, str(d))
    assert r.returncode == TRUNCATED, r.stdout + r.stderr
    assert len(r.stdout.splitlines()) == 3
    i = data.index(b"first line")
    (d / "z.rec").write_bytes(data[:i] + b"F" + data[i + 1:])
    code = player("verify", "--key", pub, str(d)).returncode
    assert code == MODIFIED
    # JSON: one object per recording.
    r = player("verify", "--json", "--key", pub, str(d))
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["state"] for o in objs] == ["sealed", "sealed", "truncated", "modified"]
    # A file named on the command line that is not a recording still counts.
    r = player("verify", "--key", pub, str(good), str(d / "audit.log"))
    assert r.returncode == NOT_RECORDING
    # A directory that cannot be read is an error.
    r = player("verify", "--key", pub, str(tmp_path / "missing"))
    assert r.returncode == NOT_RECORDING


def test_key_help(signed):
    r = player("key", "--help")
    assert r.returncode == 0 and r.stderr == b""
    text = r.stdout.decode()
    assert text.startswith("usage: podgate-player key [--key PRIVATE]\n")
    assert "  --key PRIVATE" in text


def test_info_says_the_verdict_once(signed, tmp_path):
    """info's integrity line: a reason that names its verdict is not
    prefixed with it again ("truncated: truncated at byte")."""
    out, _, pub = signed
    cut = tmp_path / "cut.rec"
    cut.write_bytes(out.read_bytes()[:-10])
    for args in ([], ["--key", pub]):
        r = player("info", *args, str(cut))
        line = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("integrity:")][0]
        assert "truncated" in line and "truncated: truncated" not in line, line

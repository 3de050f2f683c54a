"""podgate-player as a reviewer meets hostile or unusual recordings: huge
events, recordings whose state is claimed by unsigned events, signers that
are not trusted, control characters in recorded strings, sessions without
a PTY. Driven from outside: the CLI, and `play` inside tmux."""
import base64
import hashlib
import json
import os
import shutil
import subprocess

import msgpack
import pytest

from player_support import PLAYER, Tmux, no_sanitizer_report, player, write_recording

MS = 1_000_000
BIG = 2 << 20  # one 2 MiB output event


@pytest.fixture
def big(tmp_path):
    # Plain text without a line feed, then text that is all two-byte characters.
    return write_recording(tmp_path / "big.rec", [
        (1 * MS, "o", b"A" * BIG + b"\r\nNEEDLE here\r\n"),
        (2 * MS, "o", "\u00e9".encode() * (BIG // 2) + b"\r\n"),
        (3 * MS, "x", {"status": 0}),
    ], cols=80, rows=24)


def test_one_huge_event_grep_and_export(big, tmp_path):
    r = player("grep", "NEEDLE", big)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0 and b"NEEDLE here" in r.stdout, r.stderr
    r = player("export", big, "--format", "text")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    assert b"NEEDLE here" in r.stdout and "\u00e9\u00e9\u00e9".encode() in r.stdout
    assert b"\xef\xbf\xbd" not in r.stdout  # no character split between pieces
    for fmt in ("asciicast-v2", "asciicast-v3"):
        r = player("export", big, "--format", fmt, "-o", tmp_path / ("out." + fmt))
        no_sanitizer_report(r.stderr)
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_one_huge_event_play(big):
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", big, "--speed", "16"])
        t.wait_for(lambda s: "END" in s, what="the end of the recording")
        assert "\u00e9\u00e9\u00e9" in t.screen()
        t.keys("q")
        t.wait_for(lambda s: t.dead(), what="play to quit")


def test_payload_over_the_limit_is_refused(tmp_path):
    limit = 16 << 20
    p = write_recording(tmp_path / "over.rec", [
        (1 * MS, "o", b"before\r\n"),
        (2 * MS, "o", b"B" * (limit + 1)),
        (3 * MS, "x", {"status": 0}),
    ])
    r = player("cat", p)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 1 and r.stdout == b"before\r\n"
    assert b"over the limit" in r.stderr, r.stderr


# ---- Trusted signers, and the state taken from the verified seal ----

@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """No trusted keys but those a test gives."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PODGATE_KEYS", raising=False)
    return home


def make_key(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)],
                   check=True, capture_output=True)
    os.chmod(path, 0o600)
    pub = str(path) + ".pub"
    subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return pub


def fingerprint(pub):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return "SHA256:" + base64.b64encode(hashlib.sha256(der[-32:]).digest()).decode().rstrip("=")


@pytest.fixture
def keys(tmp_path):
    good = make_key(tmp_path / "broker.pem")
    evil = make_key(tmp_path / "evil.pem")
    return tmp_path / "broker.pem", good, tmp_path / "evil.pem", evil


def signed_rec(path, key, script="echo hi; exit 3"):
    r = player("rec", "-q", "--key", key, "-o", path, "--", "sh", "-c", script)
    assert r.returncode == 3, r.stderr
    return path


def info_json(path, *args):
    r = player("info", "--json", *args, path)
    no_sanitizer_report(r.stderr)
    return r.returncode, json.loads(r.stdout)


def ls_json(path, *args):
    r = player("ls", "--json", *args, path)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines()]


def test_signer_must_be_trusted(tmp_path, keys, own_home, monkeypatch):
    good_key, good, evil_key, evil = keys
    rec = signed_rec(tmp_path / "s.rec", good_key)
    forged = signed_rec(tmp_path / "forged.rec", evil_key)
    # No list configured: nothing is "verified".
    code, j = info_json(rec)
    assert j["integrity"]["trust"] == "unverified-signer" and j["state"] == "complete"
    r = player("info", rec)
    assert b"unverified signer SHA256:" in r.stdout and b"integrity: verified" not in r.stdout
    # --key: the right signer verifies, another one is an unknown key.
    assert info_json(rec, "--key", good)[1]["integrity"]["trust"] == "verified"
    assert info_json(forged, "--key", good)[1]["integrity"]["trust"] == "unknown-key"
    r = player("info", "--key", good, forged)
    assert ("signed by an unknown key " + fingerprint(evil)).encode() in r.stdout, r.stdout
    # $PODGATE_KEYS, then ~/.config/podgate/trusted_keys (a list: PEM keys, fingerprints).
    monkeypatch.setenv("PODGATE_KEYS", good)
    assert ls_json(rec)[0]["trust"] == "verified"
    assert ls_json(forged)[0]["trust"] == "unknown-key"
    monkeypatch.delenv("PODGATE_KEYS")
    conf = own_home / ".config" / "podgate"
    conf.mkdir(parents=True)
    (conf / "trusted_keys").write_text("# reviewers' list\n\n" + fingerprint(evil) + "\n" +
                                       open(good).read())
    by = {os.path.basename(e["file"]): e for e in ls_json(tmp_path)}
    assert by["s.rec"]["trust"] == "verified" and by["forged.rec"]["trust"] == "verified"
    assert by["s.rec"]["signer"] == fingerprint(good)
    r = player("ls", tmp_path)
    assert all(b"verified" in l for l in r.stdout.splitlines()), r.stdout
    # A list that holds something else is an error, not an empty list.
    (conf / "trusted_keys").write_text("ssh-ed25519 AAAA not-a-key\n")
    r = player("ls", tmp_path)
    assert r.returncode == 2 and b"trusted_keys:1: not a PEM public key" in r.stderr
    r = player("info", "--key", tmp_path / "missing.pub", rec)
    assert r.returncode == 2 and b"missing.pub" in r.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_play_shows_the_trusted_signer(tmp_path, keys):
    good_key, good, evil_key, evil = keys
    forged = signed_rec(tmp_path / "forged.rec", evil_key)
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", "--key", good, forged])
        t.wait_for(lambda s: "complete  unknown-key" in s, what="an unknown signer")
        assert "verified" not in t.screen()
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", "--key", evil, forged])
        t.wait_for(lambda s: "complete  verified" in s, what="a trusted signer")


def forge_tail(src, dst):
    """Strip the seal and the real exit, and append an unsigned exit 0."""
    raw = open(src, "rb").read()
    u = msgpack.Unpacker(raw=False)
    u.feed(raw)
    ends, objs = [], []
    for o in u:
        objs.append(o)
        ends.append(u.tell())
    x = [k for k, o in enumerate(objs) if isinstance(o, list) and o[1] == "x"][0]
    open(dst, "wb").write(raw[:ends[x - 1]] + msgpack.packb([0, "x", {"status": 0}]))
    return dst


def test_state_comes_from_the_seal(tmp_path, keys):
    good_key, good = keys[0], keys[1]
    rec = signed_rec(tmp_path / "s.rec", good_key)
    forged = forge_tail(rec, tmp_path / "forged.rec")
    code, j = info_json(forged, "--key", good)
    assert j["state"] == "truncated" and j["exit_verified"] is False and code == 1
    assert j["integrity"]["state"] == "truncated"
    r = player("info", "--key", good, forged)
    assert b"state:     truncated" in r.stdout and b"(unverified" in r.stdout
    e = ls_json(forged, "--key", good)[0]
    assert e["state"] == "truncated" and e["exit"] is None
    # The real one is complete, with its exit status.
    code, j = info_json(rec, "--key", good)
    assert code == 0 and j["state"] == "complete" and j["exit"] == {"status": 3}
    assert j["exit_verified"] is True
    assert ls_json(rec, "--key", good)[0]["exit"] == {"status": 3}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_play_state_comes_from_the_seal(tmp_path, keys):
    good_key, good = keys[0], keys[1]
    forged = forge_tail(signed_rec(tmp_path / "s.rec", good_key), tmp_path / "forged.rec")
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", "--key", good, forged])
        t.wait_for(lambda s: "truncated  verified" in s, what="truncated")
        assert "complete" not in t.screen()

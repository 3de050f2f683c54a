"""podgate-player as a reviewer meets hostile or unusual recordings: huge
events, recordings whose state is claimed by unsigned events, signers that
are not trusted, control characters in recorded strings, sessions without
a PTY. Driven from outside: the CLI, and `play` inside tmux."""
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess

import msgpack
import pytest

from player_support import (PLAYER, Tmux, make_key, no_sanitizer_report,  # noqa: F401
                            own_home, player, write_recording)  # own_home: autouse

MS = 1_000_000
BIG = 2 << 20  # one 2 MiB output event


@contextlib.contextmanager
def playing(*args, cols=100, rows=30, env=None):
    """`play` with args in a tmux pane of cols x rows."""
    with Tmux(cols=cols, rows=rows) as t:
        t.start([PLAYER, "play", *args], env=env)
        yield t


def pause(t):
    """Once play is playing, pause it."""
    t.wait_for(lambda s: "PLAYING" in s, what="playing")
    t.keys("Space")
    t.wait_for(lambda s: "PAUSED" in s, what="paused")


def search(t, text):
    """Search for text from play's / prompt."""
    t.keys("/")
    t.wait_for(lambda s: s.rstrip().endswith("/"), what="search prompt")
    t.literal(text)
    t.keys("Enter")


def escaped_line(t, needle):
    """The first line of the pane holding needle, with its SGR escapes."""
    esc = t.tmux("capture-pane", "-e", "-p", "-t", "t").stdout.decode()
    return [l for l in esc.split("\n") if needle in l][0]


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
    with playing(big, "--speed", "16") as t:
        # 4 MiB through the emulator twice (index, replay) under ASan: a generous deadline.
        t.wait_for(lambda s: "END" in s, timeout=120, what="the end of the recording")
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
    assert ls_json(rec, "--verify")[0]["trust"] == "verified"
    assert ls_json(forged, "--verify")[0]["trust"] == "unknown-key"
    # Without --verify, ls reads only the header and the seal: nothing is checked.
    assert ls_json(rec)[0]["trust"] == "unchecked"
    monkeypatch.delenv("PODGATE_KEYS")
    conf = own_home / ".config" / "podgate"
    conf.mkdir(parents=True)
    (conf / "trusted_keys").write_text("# reviewers' list\n\n" + fingerprint(evil) + "\n" +
                                       open(good).read())
    by = {os.path.basename(e["file"]): e for e in ls_json(tmp_path, "--verify")}
    assert by["s.rec"]["trust"] == "verified" and by["forged.rec"]["trust"] == "verified"
    assert by["s.rec"]["signer"] == fingerprint(good)
    r = player("ls", "--verify", tmp_path)
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
    with playing("--key", good, forged) as t:
        t.wait_for(lambda s: "complete  unknown-key" in s, what="an unknown signer")
        assert "verified" not in t.screen()
    with playing("--key", evil, forged) as t:
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
    for args in ((), ("--verify", "--key", good)):
        e = ls_json(forged, *args)[0]
        assert e["state"] == "truncated" and e["exit"] is None, args
    # The real one is complete, with its exit status.
    code, j = info_json(rec, "--key", good)
    assert code == 0 and j["state"] == "complete" and j["exit"] == {"status": 3}
    assert j["exit_verified"] is True
    for args in ((), ("--verify", "--key", good)):
        e = ls_json(rec, *args)[0]
        assert e["exit"] == {"status": 3} and e["state"] == "complete", args


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_play_state_comes_from_the_seal(tmp_path, keys):
    good_key, good = keys[0], keys[1]
    forged = forge_tail(signed_rec(tmp_path / "s.rec", good_key), tmp_path / "forged.rec")
    with playing("--key", good, forged) as t:
        t.wait_for(lambda s: "truncated  verified" in s, what="truncated")
        assert "complete" not in t.screen()


# ---- Recorded strings never reach the reviewer's terminal raw ----

HOSTILE = "ls\r\x1b[2Kecho harmless\x1b[2J\x1b]52;c;cm0gLXJmIC8=\x07\u202e"


def test_ls_and_info_escape_control_characters(tmp_path):
    p = write_recording(tmp_path / "h.rec", [
        (1 * MS, "o", b"x\r\n"), (2 * MS, "x", {"status": 0}),
    ], user="eve\x1b[31m", target="prod/\x1b]0;title\x07web", command=HOSTILE)
    for args in (("ls", p), ("info", p)):
        r = player(*args)
        no_sanitizer_report(r.stderr)
        assert r.returncode == 0, r.stderr
        assert b"\x1b" not in r.stdout and b"\r" not in r.stdout and b"\x07" not in r.stdout
        assert "\u202e".encode() not in r.stdout
        assert b"ls\\r\\x1b[2Kecho harmless\\x1b[2J\\x1b]52;c;cm0gLXJmIC8=\\x07\\u202e" in r.stdout
        assert b"eve\\x1b[31m" in r.stdout and b"prod/\\x1b]0;title\\x07web" in r.stdout
    # The JSON forms carry the exact strings.
    j = json.loads(player("ls", "--json", p).stdout)
    assert j["command"] == HOSTILE


def test_cat_safe_strips_strings_that_act_outside_the_screen(tmp_path):
    p = write_recording(tmp_path / "osc.rec", [
        (1 * MS, "o", b"a\x1b]52;c;cm0gLXJmIC8=\x07b\x1b]0;tit"),
        (2 * MS, "o", b"le\x1b\\c\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\"),
        (3 * MS, "o", b"\x1bP+q544e\x1b\\\x1b[1mbold\x1b[0m\xc3\xa9\x1b"),
        (4 * MS, "o", b"[2Jend\r\n"),
        (5 * MS, "x", {"status": 0}),
    ])
    raw = player("cat", p)
    assert b"\x1b]52;" in raw.stdout  # cat keeps raw bytes
    r = player("cat", "--safe", p)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0
    assert r.stdout == "abclink\x1b[1mbold\x1b[0m\u00e9\x1b[2Jend\r\n".encode()


# ---- play: status line, speed, Ctrl-C, stepping ----

pytestmark_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
S = 1_000_000_000


@pytestmark_tmux
def test_play_any_speed_and_ctrl_c(tmp_path):
    p = write_recording(tmp_path / "s.rec", [(1 * S, "o", b"one\r\n"), (60 * S, "x", {"status": 0})])
    for speed in ("3", "1.7"):
        with playing("--speed", speed, p) as t:
            t.wait_for(lambda s: f"  {speed}x  " in s, what=f"{speed}x")
            t.keys("C-c")
            t.wait_for(lambda s: t.dead(), what="Ctrl-C to quit")
    r = player("play", "--speed", "0", p)
    assert r.returncode == 2 and b"bad speed" in r.stderr


@pytestmark_tmux
def test_play_step_skips_events_that_show_nothing(tmp_path):
    p = write_recording(tmp_path / "s.rec", [
        (1 * S, "o", b"first\r\n"),
        (2 * S, "i", b"x"),            # typed, not echoed
        (3 * S, "o", b""),             # nothing
        (4 * S, "o", b"\x1b[0m"),       # a pen change: the screen does not change
        (5 * S, "o", b"second\r\n"),
        (6 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p) as t:
        pause(t)
        t.keys("g")
        t.wait_for(lambda s: "PAUSED 0:00:00.000" in s, what="the start")
        t.keys(".")
        t.wait_for(lambda s: "PAUSED 0:00:01.000" in s and "first" in s, what="first")
        t.keys(".")
        t.wait_for(lambda s: "0:00:05.000" in s and "second" in s, what="second, skipping 2-4 s")


@pytestmark_tmux
def test_play_status_keeps_position_and_verdict_when_narrow(tmp_path):
    p = write_recording(tmp_path / "wide.rec", [
        (1 * S, "o", b"x" * 100 + b"\r\n"), (2 * S, "m", "a-long-marker-label"),
        (3 * S, "x", {"status": 0}),
    ], cols=120, rows=40, user="someone-with-a-long-name", target="production/some-long-pod-name-0")
    with playing(p, cols=60, rows=20) as t:
        t.wait_for(lambda s: "END" in s, what="the end")
        last = t.lines()[-1]
        assert last.startswith(" END 0:00:03.000 / 0:00:03.000  complete  unsigned"), last
        assert len(last.rstrip()) <= 60


# ---- Output recorded without a PTY (no ONLCR) ----

def no_pty_recording(path):
    return write_recording(path, [
        (1 * MS, "o", b"1\n2\n3\n"), (2 * MS, "e", b"oops\n"), (3 * MS, "o", b"4\n5\n"),
        (4 * MS, "x", {"status": 0}),
    ], cols=0, rows=0, pty=False, command="seq 1 5")


def test_no_pty_output_is_not_a_staircase(tmp_path):
    p = no_pty_recording(tmp_path / "nopty.rec")
    r = player("export", p, "--format", "text")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.decode().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[:6] == ["1", "2", "3", "oops", "4", "5"], r.stdout
    # Each line is a line of its own for grep, not "   4" after a staircase.
    r = player("grep", "--json", "--regex", "^4$", p)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["line"] == "4"


def framed_rows(t):
    """The pane's lines, each inside play's frame taken out of it."""
    return [l.split("\u2502")[1].rstrip() if "\u2502" in l else l for l in t.lines()]


@pytestmark_tmux
def test_no_pty_play_is_not_a_staircase(tmp_path):
    p = no_pty_recording(tmp_path / "nopty.rec")
    with playing(p) as t:
        # Wait for the whole screen, not only the status line: curses may
        # still be drawing the rows when "END" is already there.
        t.wait_for(lambda s: "END" in s and "oops" in s, what="the end")
        rows = framed_rows(t)
        i = rows.index("1")
        assert rows[i:i + 6] == ["1", "2", "3", "oops", "4", "5"], t.screen()
        # Seeking back goes through a keyframe: still no staircase. Paused,
        # the start stays on screen until G, so each step can be waited for.
        t.keys(" ")
        t.keys("g")
        t.wait_for(lambda s: "PAUSED 0:00:00.000" in s, what="the start, paused")
        t.keys("G")
        t.wait_for(lambda s: "END" in s and "oops" in s, what="the end again")
        rows = framed_rows(t)
        assert rows[i:i + 6] == ["1", "2", "3", "oops", "4", "5"], t.screen()


def test_ls_reads_only_the_header_and_the_seal(tmp_path, keys):
    """A byte changed in the middle goes unseen by ls (it does not hash every
    byte) and is found by ls --verify; both agree on duration and exit."""
    good_key, good = keys[0], keys[1]
    rec = tmp_path / "long.rec"
    r = player("rec", "-q", "--key", good_key, "-o", rec, "--", "sh", "-c",
               "head -c 3000000 /dev/zero | tr '\\0' x; exit 5")
    assert r.returncode == 5, r.stderr
    fast = ls_json(rec)[0]
    full = ls_json(rec, "--verify", "--key", good)[0]
    assert fast["state"] == full["state"] == "complete"
    assert fast["exit"] == full["exit"] == {"status": 5}
    assert fast["duration_ns"] == full["duration_ns"]
    assert (fast["trust"], full["trust"]) == ("unchecked", "verified")
    raw = bytearray(rec.read_bytes())
    mid = raw.index(b"xxxx", len(raw) // 2)
    raw[mid] = ord("y")
    rec.write_bytes(bytes(raw))
    assert ls_json(rec)[0]["state"] == "complete"
    full = ls_json(rec, "--verify", "--key", good)[0]
    assert full["state"] == "modified" and full["trust"] == "MODIFIED"


# ---- grep and ls options reviewers ask for ----

OLD = 1577836800 * 10**9  # 2020-01-01T00:00:00Z
NEW = 1764345600 * 10**9  # 2025-11-28T16:00:00Z


@pytest.fixture
def many(tmp_path):
    d = tmp_path / "recs"
    d.mkdir()
    body = b"".join(b"line %d\r\n" % i for i in range(1, 11))
    write_recording(d / "a.rec", [(1 * MS, "o", body), (2 * MS, "x", {"status": 0})],
                    user="alice", command="seq 10", start_ns=OLD)
    write_recording(d / "b.rec", [(1 * MS, "o", b"line 5 again\r\n"), (9 * S, "x", {"status": 2})],
                    user="bob", command="make test", start_ns=NEW, target="staging/db-1")
    write_recording(d / "c.rec", [(1 * MS, "o", b"nothing\r\n"), (2 * MS, "x", {"signal": "KILL"})],
                    user="carol", command=None, start_ns=NEW + S)
    (d / "signing_ed25519.pub").write_text("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")
    (d / "audit.log").write_text('{"event":"session_start"}\n')
    return d


def test_grep_list_count_context_and_filters(many):
    r = player("grep", "-l", "line 5", many)
    assert r.returncode == 0 and r.stdout.decode().splitlines() == [
        str(many / "a.rec"), str(many / "b.rec")]
    assert r.stderr == b""  # the key and the log are skipped quietly
    r = player("grep", "-v", "-l", "line 5", many)
    assert b"audit.log: not a podgate recording" in r.stderr
    r = player("grep", "-c", "line", many)
    assert r.stdout.decode().splitlines() == [
        f"{many / 'a.rec'}:10", f"{many / 'b.rec'}:1", f"{many / 'c.rec'}:0"]
    def marks(*args):
        """Each line grep prints around line 5 of a.rec: its mark and its text."""
        r = player("grep", *args, "line 5", many / "a.rec")
        return [l.split("@prod/web-0 ")[1] for l in r.stdout.decode().splitlines()]
    assert marks("-C", "1") == ["- line 4", ": line 5", "- line 6"]
    assert marks("-B", "2") == ["- line 3", "- line 4", ": line 5"]
    r = player("grep", "--user", "bob", "-l", "line", many)
    assert r.stdout.decode().splitlines() == [str(many / "b.rec")]
    r = player("grep", "--since", "2025-01-01", "-l", "line", many)
    assert r.stdout.decode().splitlines() == [str(many / "b.rec")]
    r = player("grep", "-A", "x", "line", many)
    assert r.returncode == 2 and b"bad context" in r.stderr


def test_ls_filters_sort_limit_header(many):
    def files(*args):
        r = player("ls", *args, many)
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        return [os.path.basename(l.split()[-1]) for l in r.stdout.decode().splitlines()]
    assert files() == ["a.rec", "b.rec", "c.rec"]
    assert files("--command", "make *") == ["b.rec"]
    assert files("--command", "") == ["c.rec"]
    assert files("--exit", "2") == ["b.rec"]
    assert files("--exit", "KILL") == files("--exit", "SIGKILL") == ["c.rec"]
    assert files("--state", "complete") == ["a.rec", "b.rec", "c.rec"]
    assert files("--state", "truncated") == []
    assert files("--min-duration", "5") == ["b.rec"]
    assert files("--max-duration", "1") == ["a.rec", "c.rec"]
    assert files("--client", "127.0.0.1:*") == ["a.rec", "b.rec", "c.rec"]
    assert files("--client", "10.*") == []
    assert files("--key-fp", "SHA256:test", "--user", "alice") == ["a.rec"]
    assert files("--sort", "duration", "--limit", "1") == ["a.rec"]
    assert files("--sort", "user") == ["a.rec", "b.rec", "c.rec"]
    assert files("--sort", "target", "--limit", "2") == ["a.rec", "c.rec"]
    r = player("ls", "--header", many)
    assert r.stdout.decode().splitlines()[0].split() == [
        "START", "DURATION", "USER", "TARGET", "COMMAND", "EXIT", "STATE", "SIGNER", "FILE"]
    for bad in (("--state", "done"), ("--sort", "size"), ("--limit", "0"),
                ("--min-duration", "soon")):
        r = player("ls", *bad, many)
        assert r.returncode == 2 and r.stderr.startswith(b"podgate-player: bad"), bad
    r = player("ls", "-v", many)
    assert b"audit.log: not a podgate recording" in r.stderr


def test_open_by_session_id(tmp_path, monkeypatch):
    d = tmp_path / "recordings"
    (d / "sub").mkdir(parents=True)
    ids = ["01a2491b-0000-7000-8000-000000000001", "01a2491b-0000-7000-8000-000000000002",
           "01b00000-0000-7000-8000-000000000003"]
    for i, sid in enumerate(ids):
        write_recording((d if i else d / "sub") / f"{sid}.rec",
                        [(1 * MS, "o", b"session %d\r\n" % i), (2 * MS, "x", {"status": 0})],
                        session=sid)
    r = player("cat", "--dir", d, ids[1])
    assert r.returncode == 0 and r.stdout == b"session 1\r\n", r.stderr
    r = player("cat", "--dir", d, "01b0")  # a unique prefix
    assert r.returncode == 0 and r.stdout == b"session 2\r\n", r.stderr
    r = player("cat", "--dir", d, "01a2491b")
    assert r.returncode == 2 and b"2 sessions" in r.stderr
    monkeypatch.setenv("PODGATE_RECORDINGS", str(d))
    r = player("info", "--json", ids[0])
    assert r.returncode == 0 and json.loads(r.stdout)["header"]["session"] == ids[0]
    r = player("export", ids[2], "--format", "text")
    assert r.returncode == 0 and b"session 2" in r.stdout
    r = player("info", "0fffffff")
    assert r.returncode == 2 and b"no session 0fffffff" in r.stderr
    if shutil.which("tmux"):
        with playing(ids[1], env={"PODGATE_RECORDINGS": str(d)}) as t:
            t.wait_for(lambda s: "END" in s and "session 1" in s, what="the session by its ID")


def test_cat_follows_a_recording_being_written(tmp_path):
    import select
    p = tmp_path / "live.rec"
    write_recording(p, [(1 * MS, "o", b"one\r\n")])
    proc = subprocess.Popen([PLAYER, "cat", "-f", str(p)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        got = b""
        while b"one" not in got:
            assert select.select([proc.stdout], [], [], 20)[0], "no output from cat -f"
            got += os.read(proc.stdout.fileno(), 100)
        with open(p, "ab") as f:
            f.write(msgpack.packb([1 * MS, "o", b"two\r\n"]) +
                    msgpack.packb([1 * MS, "x", {"status": 0}]))
        out, err = proc.communicate(timeout=20)
        no_sanitizer_report(err)
        assert proc.returncode == 0 and got + out == b"one\r\ntwo\r\n", (got, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytestmark_tmux
def test_search_hit_inside_a_burst_is_shown_where_it_is(tmp_path):
    """One event prints WORD and then 100 more lines: the match is shown
    with the event stopped at the end of the matched line, not after it
    scrolled away; playing on applies the rest of the event."""
    burst = b"".join(b"before %d\r\n" % i for i in range(5)) + b"the WORD here\r\n" + \
        b"".join(b"after %d\r\n" % i for i in range(100))
    p = write_recording(tmp_path / "burst.rec", [
        (1 * S, "o", b"start\r\n"), (2 * S, "o", burst), (3 * S, "o", b"done\r\n"),
        (4 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p) as t:
        pause(t)
        t.keys("g")
        search(t, "WORD")
        screen = t.wait_for(lambda s: "match 1/1" in s, what="the match")
        assert "the WORD here" in screen and "after 0" not in screen, screen
        assert "0:00:02.000" in screen
        # The match is highlighted.
        row = escaped_line(t, "WORD")
        assert "\x1b[" in row.split("WORD")[0][-12:], row
        # Stepping goes on with the rest of the burst, then the next event.
        t.keys(".")
        t.wait_for(lambda s: "after 99" in s and "the WORD here" not in s, what="the rest")
        t.keys(".")
        t.wait_for(lambda s: "done" in s and "0:00:03.000" in s, what="the next event")


@pytestmark_tmux
def test_search_pans_to_a_match_outside_the_viewport(tmp_path):
    p = write_recording(tmp_path / "wide.rec", [
        (1 * S, "o", b"\x1b[2J\x1b[1;1Htop left"),
        (2 * S, "o", b"\x1b[50;150HFARAWAY text"),
        (3 * S, "x", {"status": 0}),
    ], cols=200, rows=60)
    with playing(p, cols=80, rows=24) as t:
        t.wait_for(lambda s: "END" in s, what="the end")
        t.keys("g")
        t.wait_for(lambda s: "top left" in s, what="the top left of the recording")
        search(t, "FARAWAY")
        screen = t.wait_for(lambda s: "match 1/1" in s, what="the match")
        assert "FARAWAY text" in screen and "top left" not in screen, screen


@pytestmark_tmux
def test_redactions_are_shown_as_such(tmp_path):
    marker = b"[REDACTED:jwt]"
    real = b"token=" + marker + b" end\r\n"
    p = write_recording(tmp_path / "r.rec", [
        (1 * S, "o", b"fake: " + marker + b"\r\n"),      # printed text that looks like one
        (2 * S, "R", [{"at": 6, "len": len(marker), "kind": "jwt"}]),
        (2 * S, "o", real),
        (3 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p) as t:
        t.wait_for(lambda s: "END" in s and "token=" in s, what="the end")
        fake = escaped_line(t, "fake:")
        tok = escaped_line(t, "token=")
        assert "\x1b[7m[REDACTED:jwt]" in tok, repr(tok)
        assert "\x1b[7m" not in fake, repr(fake)
    r = player("info", p)
    assert b"redactions R 1" in r.stdout, r.stdout


def test_text_export_keeps_markers_and_exports_one_screen(tmp_path):
    p = write_recording(tmp_path / "m.rec", [
        (1 * S, "o", b"one\r\ntwo"), (2 * S, "m", "half\x1b[2J"), (3 * S, "o", b"\r\nthree\r\n"),
        (4 * S, "x", {"status": 0}),
    ], cols=20, rows=5)
    r = player("export", p, "--format", "text")
    assert r.returncode == 0
    assert r.stdout == b"one\n--- marker at 0:00:02.000: half\\x1b[2J ---\ntwo\nthree\n"
    r = player("export", p, "--format", "text", "--at", "2.5")
    assert r.returncode == 0 and r.stdout == b"one\ntwo\n"
    r = player("export", p, "--format", "text", "--at", "0:03")
    assert r.stdout == b"one\ntwo\nthree\n"
    r = player("export", p, "--format", "asciicast-v2", "--at", "3")
    assert r.returncode == 2 and b"--at needs --format text" in r.stderr


@pytestmark_tmux
def test_play_y_copies_the_screen(tmp_path):
    p = write_recording(tmp_path / "y.rec", [
        (1 * S, "o", b"\x1b[1mcopied\x1b[0m line\r\nsecond"), (2 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p) as t:
        t.wait_for(lambda s: "END" in s, what="the end")
        t.keys("y")
        t.wait_for(lambda s: "screen copied" in s, what="copied")
        t.keys("q")
        t.wait_for(lambda s: t.dead(), what="quit")
        # What play printed after leaving the full screen (with the history).
        out = t.tmux("capture-pane", "-p", "-S", "-100", "-t", "t").stdout.decode()
        lines = [l for l in out.split("\n") if l.strip()]
        i = lines.index("copied line")
        assert lines[i:i + 2] == ["copied line", "second"], lines


@pytestmark_tmux
def test_play_without_room_for_the_search_index_still_plays(tmp_path):
    p = write_recording(tmp_path / "s.rec", [(1 * S, "o", b"hello there\r\n"),
                                             (2 * S, "x", {"status": 0})], cols=40, rows=10)
    with playing(p, env={"TMPDIR": str(tmp_path / "missing")}) as t:
        t.wait_for(lambda s: "END" in s and "hello there" in s and "no search index" in s,
                   what="playing, without search")
        search(t, "hello")
        t.wait_for(lambda s: "no search index: No such file or directory" in s,
                   what="search unavailable")


@pytestmark_tmux
def test_play_case_toggle_and_idle_limit_keys(tmp_path):
    p = write_recording(tmp_path / "c.rec", [
        (1 * S, "o", b"Hello one\r\n"), (2 * S, "o", b"hello two\r\n"),
        (3 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p) as t:
        t.wait_for(lambda s: "END" in s, what="the end")
        search(t, "hello")
        t.wait_for(lambda s: "match 1/1" in s, what="case-sensitive: one match")
        t.keys("c")
        t.wait_for(lambda s: "match 1/2" in s, what="case-insensitive: two matches")
        t.keys("c")
        t.wait_for(lambda s: "match 1/1" in s, what="case-sensitive again")
        t.keys("}")
        t.wait_for(lambda s: "idle limit: 4s" in s, what="idle limit doubled")
        t.keys("{", "{")
        t.wait_for(lambda s: "idle limit: 1s" in s, what="idle limit halved twice")


@pytestmark_tmux
def test_timeline_shows_position_markers_and_hits(tmp_path):
    p = write_recording(tmp_path / "t.rec", [
        (10 * S, "o", b"alpha\r\n"), (25 * S, "m", "kill"), (50 * S, "o", b"NEEDLE\r\n"),
        (75 * S, "o", b"NEEDLE again\r\n"), (100 * S, "x", {"status": 0}),
    ], cols=40, rows=10)
    with playing(p, cols=101, rows=30) as t:
        pause(t)
        t.keys("g")
        line = t.wait_for(lambda s: "PAUSED 0:00:00.000" in s, what="start").split("\n")[28]
        assert line == ">" + "-" * 24 + "|" + "-" * 75, line
        search(t, "NEEDLE")
        line = t.wait_for(lambda s: "match 1/2" in s, what="match").split("\n")[28]
        assert line == "=" * 25 + "|" + "=" * 24 + ">" + "-" * 24 + "*" + "-" * 25, line


def test_every_command_lists_its_options_and_has_a_manual():
    man = open(os.path.join(os.path.dirname(__file__), "../../player/podgate-player.1")).read()
    for cmd, opts in [("rec", ["-o FILE", "--no-input", "--key"]),
                      ("cat", ["--input", "--safe", "-f", "--dir"]),
                      ("info", ["--json", "--key", "--dir"]),
                      ("play", ["--speed", "--idle-limit", "--start", "--key", "--dir"]),
                      ("ls", ["--verify", "--sort", "--limit", "--header", "--state", "--exit"]),
                      ("grep", ["-l ", "-c ", "-A N", "--user", "--since"]),
                      ("export", ["--format", "--at", "-o OUT", "--dir"])]:
        r = player(cmd, "--help")
        assert r.returncode == 0
        text = r.stdout.decode()
        # One line per option after the usage line.
        for o in opts:
            assert any(l.lstrip().startswith(o.strip()) for l in text.splitlines()[1:]), (cmd, o)
        assert re.search(r'^\.BI "%s ' % cmd, man, re.M), cmd  # a section of the manual


def test_info_json_gives_the_signer_key_in_base64(tmp_path, keys):
    good_key, good = keys[0], keys[1]
    rec = signed_rec(tmp_path / "s.rec", good_key)
    code, j = info_json(rec)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", good, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    assert j["header"]["signer"]["key"] == base64.b64encode(der[-32:]).decode()
    assert j["header"]["signer"]["key_fp"] == fingerprint(good)


def test_admin_sessions_are_not_shells(tmp_path):
    p = tmp_path / "admin.rec"
    write_recording(p, [(1 * MS, "o", b"ID USER\r\n"), (2 * MS, "x", {"status": 0})],
                    command=None, target="sessions")
    raw = p.read_bytes()
    p.write_bytes(raw.replace(b"\xa5local", b"\xa7podgate", 1))  # where.kind
    r = player("ls", p)
    assert b"(admin)" in r.stdout and b"(shell)" not in r.stdout, r.stdout
    r = player("info", p)
    assert b"command:   (admin command)" in r.stdout, r.stdout


def test_asciicast_export_says_what_it_replaced(tmp_path):
    p = write_recording(tmp_path / "u.rec", [
        (1 * MS, "o", b"ok \xff\xfe here \xc3"), (2 * MS, "o", b"\xa9 split\r\n"),
        (3 * MS, "x", {"status": 0}),
    ])
    r = player("export", p, "--format", "asciicast-v2")
    assert r.returncode == 0
    assert b"2 invalid UTF-8 sequences replaced by U+FFFD" in r.stderr, r.stderr
    q = write_recording(tmp_path / "ok.rec", [(1 * MS, "o", b"caf\xc3"), (2 * MS, "o", b"\xa9\r\n")])
    r = player("export", q, "--format", "asciicast-v3")
    assert r.returncode == 0 and r.stderr == b""


def test_rec_marker_key(tmp_path):
    from recording import Recording
    out = tmp_path / "m.rec"
    r = player("rec", "-q", "--marker-key", "^]", "-o", out, "--", "sh", "-c",
               "read x; echo got $x", stdin=None, input=b"ab\x1dcd\n")
    assert r.returncode == 0, r.stderr
    rec = Recording.load(out)
    assert [e.payload for e in rec.events if e.code == "m"] == ["marker 1"]
    assert rec.data("i") == b"abcd\n"
    assert b"got abcd" in rec.data("o")
    r = player("rec", "--marker-key", "x", "--", "true")
    assert r.returncode == 2 and b"bad marker key" in r.stderr


def test_grep_joins_rows_wrapped_at_the_margin(tmp_path):
    word = b"WRAPWORD_ACROSS_EDGE"
    # One line wrapped by the emulator, then a flood of wrapped lines (the fast path).
    flood = b"".join(b"%03d" % i + b"y" * 33 + (word if i == 150 else b"z" * 20) + b"\r\n"
                     for i in range(300))
    p = write_recording(tmp_path / "w.rec", [
        (1 * MS, "o", b"x" * 35 + word + b" and more\r\nnext\r\n"),
        (2 * MS, "o", flood),
        (3 * MS, "x", {"status": 0}),
    ], cols=40, rows=5)
    r = player("grep", "--json", "WRAPWORD_ACROSS_EDGE", p)
    no_sanitizer_report(r.stderr)
    lines = [json.loads(l)["line"] for l in r.stdout.splitlines()]
    assert lines == ["x" * 35 + "WRAPWORD_ACROSS_EDGE and more",
                     "150" + "y" * 33 + "WRAPWORD_ACROSS_EDGE"], lines
    r = player("grep", "-c", "next", p)
    assert r.stdout.strip().endswith(b":1")

"""podgate-player as a reviewer meets hostile or unusual recordings: huge
events, recordings whose state is claimed by unsigned events, signers that
are not trusted, control characters in recorded strings, sessions without
a PTY. Driven from outside: the CLI, and `play` inside tmux."""
import json
import shutil

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

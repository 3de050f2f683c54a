"""podgate-player export: asciicast v2 and v3 exactly as asciinema 3 writes
them, and the plain-text transcript."""
import fcntl
import json
import shutil
import termios

import pytest

from player_support import no_sanitizer_report, player, write_recording
from support.terminal import Terminal

MS = 1_000_000

# A recording with a character split across two events, an invalid byte,
# control bytes, input, a resize, a marker and the exit.
EVENTS = [
    (400_000, "o", b"hello \xe2\x82"),
    (800_000, "o", b"\xac\r\n"),
    (1_200_000, "o", b"bad \xff\x1b[31mred\x1b[0m\x07\x7f\r\n"),
    (1000 * MS, "i", b"ls\r"),
    (1001_600_000, "r", [100, 30]),
    (1500 * MS, "m", "mark"),
    (5_600_001_000, "o", b"caf\xc3"),
    (5_601_500_000, "o", b"\xa9 \"q\" \\ \t\r\n"),
    (6000 * MS, "x", {"status": 3}),
]

V2 = [
    '{"version":2,"width":80,"height":24,"timestamp":1764345600,"command":"bash",'
    '"title":"alice@prod/web-0","env":{"TERM":"xterm-256color"}}',
    '[0.0004, "o", "hello "]',
    '[0.0008, "o", "\u20ac\\r\\n"]',
    '[0.0012, "o", "bad \ufffd\\u001b[31mred\\u001b[0m\\u0007\x7f\\r\\n"]',
    '[1.0, "i", "ls\\r"]',
    '[1.0016, "r", "100x30"]',
    '[1.5, "m", "mark"]',
    '[5.600001, "o", "caf"]',
    '[5.6015, "o", "\u00e9 \\"q\\" \\\\ \\t\\r\\n"]',
    '[6.0, "x", "3"]',
]

# v3: intervals rounded to ms, the rounding error carried to the next one.
V3 = [
    '{"version":3,"term":{"cols":80,"rows":24,"type":"xterm-256color"},'
    '"timestamp":1764345600,"command":"bash","title":"alice@prod/web-0"}',
    '[0.000, "o", "hello "]',
    '[0.001, "o", "\u20ac\\r\\n"]',
    '[0.000, "o", "bad \ufffd\\u001b[31mred\\u001b[0m\\u0007\x7f\\r\\n"]',
    '[0.999, "i", "ls\\r"]',
    '[0.002, "r", "100x30"]',
    '[0.498, "m", "mark"]',
    '[4.100, "o", "caf"]',
    '[0.002, "o", "\u00e9 \\"q\\" \\\\ \\t\\r\\n"]',
    '[0.398, "x", "3"]',
]


@pytest.fixture
def rec(tmp_path):
    return write_recording(tmp_path / "golden.rec", EVENTS)


@pytest.mark.parametrize("fmt,want", [("asciicast-v2", V2), ("asciicast-v3", V3)])
def test_asciicast_golden(rec, fmt, want):
    r = player("export", rec, "--format", fmt)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == want
    for line in lines[:-1]:
        json.loads(line)


def test_v3_times_sum_to_rounded_absolute_time(rec):
    out = player("export", rec, "--format", "asciicast-v3").stdout.decode().splitlines()[1:]
    total = sum(round(json.loads(line)[0] * 1000) for line in out)
    assert total == 6000


def test_export_to_file_and_errors(rec, tmp_path):
    out = tmp_path / "out.cast"
    r = player("export", rec, "--format", "asciicast-v2", "-o", out)
    assert r.returncode == 0 and r.stdout == b""
    assert out.read_text().splitlines() == V2
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    r = player("export", rec, "--format", "mp4")
    assert r.returncode == 2 and b"unknown format" in r.stderr
    r = player("export", rec)
    assert r.returncode == 2 and b"usage" in r.stderr
    r = player("export", "/etc/passwd", "--format", "text")
    assert r.returncode == 2 and b"not a podgate recording" in r.stderr


def test_text_transcript(rec):
    r = player("export", rec, "--format", "text")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == ["hello \u20ac", "bad \ufffdred",
                                              "--- marker at 0:00:01.500: mark ---",
                                              'caf\u00e9 "q" \\']


def test_text_transcript_renders_escape_sequences(tmp_path):
    path = write_recording(tmp_path / "t.rec", [
        (1 * MS, "o", b"$ \x1b[32mrm\x1b[0m -rf\x1b[1D\x1b[1Cx \x1b[1m/tmp/a\x1b[0m\r\n"),
        (2 * MS, "o", b"progress 10%\rprogress 100%\r\n\x1b[2K"),
        (3 * MS, "o", b"\x1b[?1049h\x1b[Hin vim\x1b[?1049l"),
        (4 * MS, "o", b"done\r\n"),
    ])
    r = player("export", path, "--format", "text")
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == ["$ rm -rfx /tmp/a", "progress 100%", "in vim",
                                              "done"]


def test_text_transcript_joins_wrapped_rows(tmp_path):
    """A line longer than the terminal is wide comes out as one line, as grep matches it."""
    path = write_recording(tmp_path / "w.rec", [
        (1 * MS, "o", b"x" * 75 + b"WRAPPED WORD\r\nshort\r\n"),
    ], cols=80, rows=24)
    r = player("export", path, "--format", "text")
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == ["x" * 75 + "WRAPPED WORD", "short"]


def test_truncated_recording_exports_what_it_can(rec, tmp_path):
    data = rec.read_bytes()
    cut = tmp_path / "cut.rec"
    cut.write_bytes(data[:-3])
    r = player("export", cut, "--format", "asciicast-v2")
    assert r.returncode == 1
    assert b"truncated at byte" in r.stderr
    assert r.stdout.decode().splitlines() == V2[:-1]


def run_in_pty(argv, timeout=30):
    """Run argv with a terminal as its controlling tty; return all it wrote."""
    t = Terminal.spawn(argv, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    try:
        out = t.drain(timeout)
        t.exit_status(timeout)
    finally:
        t.close()
    return out


@pytest.mark.skipif(shutil.which("asciinema") is None, reason="asciinema is not installed")
def test_asciinema_cat_matches_player_cat(tmp_path):
    rec = tmp_path / "utf8.rec"
    script = ('printf "\\033[1;32mgr\\303\\274n\\033[0m \\342\\202\\254 \\360\\237\\230\\200\\n";'
              'printf "tab\\there\\r\\nend"')
    r = player("rec", "-q", "-o", rec, "--", "sh", "-c", script)
    assert r.returncode == 0
    cast = tmp_path / "utf8.cast"
    assert player("export", rec, "--format", "asciicast-v2", "-o", cast).returncode == 0
    want = player("cat", rec).stdout
    assert "grün\x1b[0m € 😀".encode() in want
    got = run_in_pty(["asciinema", "cat", str(cast)])
    assert got == want


def test_export_broker_recordings(broker_recordings):
    """asciicast v2 of broker-made recordings: the PTY session at its size with
    the secret redacted; the session without a PTY exported too."""
    br = broker_recordings
    r = player("export", br.pty, "--format", "asciicast-v2")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert lines[0]["version"] == 2
    assert (lines[0]["width"], lines[0]["height"]) == (100, 30)
    text = "".join(e[2] for e in lines[1:] if e[1] == "o")
    assert "tick-4" in text and "[REDACTED:" in text and "ghp_" not in text
    assert [e[0] for e in lines[1:]] == sorted(e[0] for e in lines[1:])
    r = player("export", br.nopty, "--format", "asciicast-v2")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert "to-stdout" in "".join(str(e[2]) for e in lines[1:])


NOPTY_EVENTS = [
    (1 * MS, "o", b"1\n2\n"),
    (2 * MS, "e", b"warn\n"),
    (3 * MS, "o", b"3\r\n"),
    (4 * MS, "x", {"status": 0}),
]


@pytest.mark.parametrize("fmt", ["asciicast-v2", "asciicast-v3"])
def test_asciicast_of_a_session_without_a_pty_has_crlf(tmp_path, fmt):
    """Output recorded without a PTY had no ONLCR: the asciicast writes each
    LF as CR LF, as the client's terminal showed it (no staircase), and a
    marker at the start says so."""
    rec = write_recording(tmp_path / "nopty.rec", NOPTY_EVENTS, pty=False, command="seq 1 3")
    r = player("export", rec, "--format", fmt)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert lines[1][1] == "m" and lines[1][0] == 0.0, lines[1]
    assert "without a terminal" in lines[1][2] and "CR LF" in lines[1][2]
    assert [e[2] for e in lines[2:] if e[1] == "o"] == ["1\r\n2\r\n", "warn\r\n", "3\r\r\n"]
    # A PTY session is written as recorded, without the note.
    pty_rec = write_recording(tmp_path / "pty.rec", NOPTY_EVENTS, pty=True)
    r = player("export", pty_rec, "--format", fmt)
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [e[1] for e in lines[1:]] == ["o", "o", "o", "x"]
    assert lines[1][2] == "1\n2\n"


@pytest.mark.skipif(shutil.which("asciinema") is None, reason="asciinema is not installed")
def test_asciinema_plays_a_session_without_a_pty_without_a_staircase(tmp_path):
    rec = write_recording(tmp_path / "nopty.rec", NOPTY_EVENTS, pty=False)
    cast = tmp_path / "nopty.cast"
    assert player("export", rec, "--format", "asciicast-v2", "-o", cast).returncode == 0
    # The terminal asciinema writes to does not add CR itself (stty -onlcr),
    # so what it shows is what the cast holds.
    got = run_in_pty(["sh", "-c", f"stty -onlcr; exec asciinema cat {cast}"])
    assert got == b"1\r\n2\r\nwarn\r\n3\r\r\n", got

"""podgate-player play, driven through tmux like a reviewer would use it:
keys are sent with send-keys, screens read with capture-pane and compared
with the screens expected (polling with a deadline, never a fixed sleep)."""
import os
import re
import shutil
import sys
import time
import unicodedata

import pytest

from player_support import PLAYER, Tmux, player, write_recording
from support.term import background_runs

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

S = 1_000_000_000
COLS, ROWS = 40, 10  # the recorded terminal: framed inside a 100x30 viewer
NLINES = 30


def line_text(i):
    return f"line {i:02d} " + "abcdefghij"[i % 10] * (i % 7)


def small_recording(path):
    """line NN at NN seconds, a marker at 10.5 s, a typed command at 12 s."""
    ev = []
    for i in range(1, NLINES + 1):
        ev.append((i * S, "o", b"\x1b[3%dm" % (i % 7 + 1) + line_text(i).encode() + b"\x1b[0m\r\n"))
        if i == 10:
            ev.append((10 * S + S // 2, "m", "half"))
        if i == 12:
            ev.append((12 * S, "i", b"echo secret\r"))
    ev.append((NLINES * S + S, "x", {"status": 0}))
    return write_recording(path, ev, cols=COLS, rows=ROWS, user="alice", target="prod/web-0")


def shown_lines(k):
    """The recorded screen after k lines: the last rows-1 lines, then the cursor row."""
    first = max(1, k - (ROWS - 1) + 1)
    rows = [line_text(i) for i in range(first, k + 1)]
    return rows + [""] * (ROWS - len(rows))


def frame(rows):
    """The viewer's screen above the status line: the recording framed at the top left."""
    out = ["\u250c" + "\u2500" * COLS + "\u2510"]
    out += ["\u2502" + r.ljust(COLS) + "\u2502" for r in rows]
    out.append("\u2514" + "\u2500" * COLS + "\u2518")
    return [l.rstrip() for l in out] + [""] * (29 - len(out))


def screen_lines(text):
    lines = text.split("\n")[:30]
    return [l.rstrip() for l in lines] + [""] * (30 - len(lines))


def status(text):
    return screen_lines(text)[29]


def escaped_lines(t):
    """The screen with its attributes (tmux capture-pane -e), one string per row."""
    text = t.tmux("capture-pane", "-e", "-p", "-t", "t").stdout.decode()
    return (text.split("\n") + [""] * 30)[:30]


def highlighted(line):
    """The parts of a row drawn on the search highlight's yellow background."""
    return background_runs(line, 43)


def wait_screen(t, rows, status_re, what):
    want = frame(rows)

    def ok(text):
        lines = screen_lines(text)
        # Row 28 is the timeline (test_timeline).
        return lines[:28] == want[:28] and re.search(status_re, lines[29]) is not None
    return t.wait_for(ok, what=what)


@pytest.fixture
def rec(tmp_path):
    return small_recording(tmp_path / "small.rec")


@pytest.fixture
def tmux():
    with Tmux(cols=100, rows=30) as t:
        yield t


def start_paused_at_zero(t, rec, *args):
    t.start([PLAYER, "play", rec, *args])
    t.wait_for(lambda s: "PLAYING" in s, what="playing")
    t.keys("Space")
    t.wait_for(lambda s: "PAUSED" in s, what="paused")
    t.keys("g")
    return wait_screen(t, shown_lines(0), r"^ PAUSED 0:00:00\.000 / 0:00:31\.000  complete  unsigned"
                       r"  1x  alice@prod/web-0", "start")


def test_pause_step_and_golden_screen(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys(".")
    screen = wait_screen(tmux, shown_lines(1), r"PAUSED 0:00:01\.000", "one step")
    assert screen_lines(screen)[29] == \
        " PAUSED 0:00:01.000 / 0:00:31.000  complete  unsigned  1x  alice@prod/web-0  h:help"
    tmux.keys(".", ".")
    # Two steps: line 02, then line 03 (events at 2 s and 3 s).
    wait_screen(tmux, shown_lines(3), r"PAUSED 0:00:03\.000", "three steps")
    # Paused means paused: after a full turn through the player (help shown,
    # then closed), still 3.000 s and line 03, although events wait at 4 s.
    tmux.keys("h")
    tmux.wait_for(lambda s: "podgate-player play: keys" in s, what="help")
    tmux.keys("x")
    wait_screen(tmux, shown_lines(3), r"PAUSED 0:00:03\.000", "still paused after the help")
    tmux.keys("Space")
    tmux.wait_for(lambda s: "PLAYING" in s and "line 04" in s, what="resumed")


def test_seek_back_and_forth(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("5")  # 50% of 31 s
    wait_screen(tmux, shown_lines(15), r"PAUSED 0:00:15\.500", "50%")
    tmux.keys("Right")
    wait_screen(tmux, shown_lines(20), r"PAUSED 0:00:20\.500", "+5 s")
    tmux.keys("Left", "Left", "Left")
    wait_screen(tmux, shown_lines(5), r"PAUSED 0:00:05\.500", "-15 s")
    tmux.keys("NPage")
    wait_screen(tmux, shown_lines(30), r"END 0:00:31\.000 / 0:00:31\.000", "+60 s: the end")
    tmux.keys("PPage")
    wait_screen(tmux, shown_lines(0), r"PAUSED 0:00:00\.000", "-60 s: the start")
    tmux.keys("G")
    wait_screen(tmux, shown_lines(30), r"END 0:00:31\.000", "G")
    tmux.keys("9")
    wait_screen(tmux, shown_lines(27), r"PAUSED 0:00:27\.900", "90%")
    tmux.keys("g")
    wait_screen(tmux, shown_lines(0), r"PAUSED 0:00:00\.000", "g")


def test_markers(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("]")
    wait_screen(tmux, shown_lines(10), r"PAUSED 0:00:10\.500 .*marker: half", "next marker")
    # ] and [ walk typed commands too: "echo secret" ended by Enter at 12 s.
    tmux.keys("]")
    wait_screen(tmux, shown_lines(12), r"PAUSED 0:00:12\.000 .*command: echo secret",
                "next command")
    tmux.keys("]")
    wait_screen(tmux, shown_lines(12), r"no next marker or command", "no more markers")
    tmux.keys("G", "[")
    wait_screen(tmux, shown_lines(12), r"PAUSED 0:00:12\.000 .*command: echo secret",
                "previous command")
    tmux.keys("[")
    wait_screen(tmux, shown_lines(10), r"PAUSED 0:00:10\.500 .*marker: half", "previous marker")


def test_speed(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("+", "+")
    tmux.wait_for(lambda s: "  4x  " in status(s), what="4x")
    for _ in range(5):
        tmux.keys(">")
    tmux.wait_for(lambda s: "  64x  " in status(s), what="64x at most")
    for _ in range(9):
        tmux.keys("-")
    tmux.wait_for(lambda s: "  0.125x  " in status(s), what="halved 9 times")
    for _ in range(5):
        tmux.keys("<")
    tmux.wait_for(lambda s: "  0.015625x  " in status(s), what="1/64x at least")


def test_speed_flag_plays_faster(tmp_path, rec):
    with Tmux(cols=100, rows=30) as t:
        t0 = time.monotonic()
        t.start([PLAYER, "play", "--speed", "16", rec])
        t.wait_for(lambda s: " 16x " in s, what="16x")
        t.wait_for(lambda s: "END 0:00:31.000" in s, timeout=20, what="the end at 16x")
        assert time.monotonic() - t0 < 31  # 31 s of recording: at 1x it could not be done
        assert screen_lines(t.screen())[:28] == frame(shown_lines(30))[:28]


def test_start_flag_and_idle_limit(tmp_path):
    path = write_recording(tmp_path / "idle.rec", [
        (1 * S, "o", b"before the pause\r\n"),
        (3600 * S, "o", b"after an hour\r\n"),
        (3601 * S, "x", {"status": 0}),
    ], cols=COLS, rows=ROWS)
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", "--idle-limit", "0.5", path])
        t.wait_for(lambda s: "after an hour" in s and "END 1:00:01.000" in s, timeout=15,
                   what="the hour-long pause cut to half a second")
    with Tmux(cols=100, rows=30) as t:
        # A pause counts from where playing starts: shown for 2 s, then cut.
        t.start([PLAYER, "play", "--start", "30:00", path])
        t.wait_for(lambda s: "before the pause" in s and "PLAYING 0:30:0" in s, what="--start")
        t.wait_for(lambda s: "after an hour" in s, timeout=15, what="the rest of the pause cut")


def test_search_and_next_match(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("/")
    tmux.wait_for(lambda s: status(s) == "/", what="search prompt")
    tmux.literal("line 2")
    tmux.keys("Enter")
    # line 20 ... line 29: the first one appears at 20 s.
    wait_screen(tmux, shown_lines(20), r"PAUSED 0:00:20\.000 .*match 1/10", "first match")
    tmux.keys("n")
    wait_screen(tmux, shown_lines(21), r"PAUSED 0:00:21\.000 .*match 2/10", "next match")
    tmux.keys("N", "N")
    wait_screen(tmux, shown_lines(29), r"PAUSED 0:00:29\.000 .*match 10/10", "wrap back")
    # Each match on screen is highlighted (black on yellow), and only the match.
    assert [highlighted(l) for l in escaped_lines(tmux)[1:10]] == [["line 2"]] * 9
    tmux.keys("/")
    tmux.literal("line 27")
    tmux.keys("Enter")
    wait_screen(tmux, shown_lines(27), r"PAUSED 0:00:27\.000 .*match 1/1", "one match")
    assert [highlighted(l) for l in escaped_lines(tmux)] == \
        [[]] * 9 + [["line 27"]] + [[]] * 20
    # Backward search from the end.
    tmux.keys("G", "?")
    tmux.wait_for(lambda s: status(s) == "?", what="backward prompt")
    tmux.literal("line 1")
    tmux.keys("Enter")
    wait_screen(tmux, shown_lines(19), r"PAUSED 0:00:19\.000 .*match 10/10", "last line 1x")


def test_search_typed_input_and_regex(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("/")
    tmux.literal("re:ech[o] sec")
    tmux.keys("Enter")
    screen = tmux.wait_for(lambda s: "match 1/1" in status(s), what="typed match")
    assert "PAUSED 0:00:12.000" in status(screen)
    assert "typed" in screen and "echo secret" in screen
    tmux.keys("i")
    tmux.wait_for(lambda s: "echo secret" not in s, what="overlay hidden")
    tmux.keys("i")
    tmux.wait_for(lambda s: "echo secret" in s, what="overlay shown")
    tmux.keys("/")
    tmux.literal("nothing like this")
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "match 0/0" in status(s) and "no match for 'nothing" in status(s),
                  what="no match")


def test_help(tmux, rec):
    start_paused_at_zero(tmux, rec)
    tmux.keys("h")
    screen = tmux.wait_for(lambda s: "podgate-player play: keys" in s, what="help")
    for needle in ["space", "PgUp/PgDn", "] / [", "n / N", "H J K L", "q, Ctrl-C    quit"]:
        assert needle in screen
    tmux.keys("x")
    wait_screen(tmux, shown_lines(0), r"PAUSED 0:00:00\.000", "help closed")
    tmux.keys("q")
    tmux.wait_for(lambda s: tmux.dead(), what="quit")


def seq_recording(path, n, per_event):
    """`seq 1 n` at 2 s, per_event lines an event (one burst), then a prompt."""
    ev = [(1 * S, "o", b"$ seq 1 %d\r\n" % n)]
    for first in range(1, n + 1, per_event):
        ev.append((2 * S, "o", b"".join(b"%d\r\n" % i for i in range(first, min(n, first + per_event - 1) + 1))))
    ev += [(3 * S, "o", b"$ "), (4 * S, "x", {"status": 0})]
    return write_recording(path, ev, cols=COLS, rows=ROWS, user="alice", target="prod/web-0")


def start_seq_paused(t, rec):
    t.start([PLAYER, "play", rec])
    t.wait_for(lambda s: "PLAYING" in s or "END" in s, what="playing")
    t.keys("Space", "g")
    t.wait_for(lambda s: status(s).startswith(" PAUSED 0:00:00.000 / 0:00:04.000"), what="paused")


def test_scrollback_view_from_a_search_hit(tmux, tmp_path):
    """v after a hit inside a burst shows the rows that scrolled off above the
    screen at that moment, the hit in view and highlighted; the view scrolls
    and searches on its own, and q gives back the paused player unchanged."""
    rec = seq_recording(tmp_path / "seq.rec", 500, 500)
    start_seq_paused(tmux, rec)
    tmux.keys("/")
    tmux.literal("250")
    tmux.keys("Enter")
    # The burst stops at the end of line 250: the screen shows 241 ... 250.
    paused = tmux.wait_for(lambda s: "match 1/1" in status(s) and "\u2502250" in s, what="hit")
    assert screen_lines(paused)[1:11] == frame([str(i) for i in range(241, 251)])[1:11]
    tmux.keys("v")
    # Rows 0 ("$ seq 1 500") to 250: the bottom 29 of them, the screen's last.
    view = tmux.wait_for(lambda s: status(s).startswith(" SCROLLBACK rows 223-251 / 251"),
                         what="view at the bottom")
    assert screen_lines(view)[:29] == [str(i) for i in range(222, 251)]
    assert "kept" not in status(view)
    assert [highlighted(l) for l in escaped_lines(tmux)[:29]] == [[]] * 28 + [["250"]]
    # N: the player's search, up from the hit; none above it, so round to itself.
    tmux.keys("N")
    view = tmux.wait_for(lambda s: "search wrapped" in status(s), what="N with the player's search")
    assert status(view).startswith(" SCROLLBACK rows 223-251 / 251")
    # Up a page, then the top: what scrolled off before the screen.
    tmux.keys("PPage")
    view = tmux.wait_for(lambda s: "rows 195-223 / 251" in status(s), what="page up")
    assert screen_lines(view)[0] == "194"
    tmux.keys("g")
    view = tmux.wait_for(lambda s: "rows 1-29 / 251" in status(s), what="top")
    assert screen_lines(view)[:3] == ["$ seq 1 500", "1", "2"]
    tmux.keys("Down", "Down")
    tmux.wait_for(lambda s: "rows 3-31 / 251" in status(s) and s.startswith("2\n"), what="down")
    # A search of its own: up from the page, round past the top, to 123.
    tmux.keys("?")
    tmux.wait_for(lambda s: status(s) == "?", what="view search prompt")
    tmux.literal("123")
    tmux.keys("Enter")
    view = tmux.wait_for(lambda s: "rows 110-138 / 251" in status(s), what="search in the view")
    assert "search wrapped" in status(view)
    lines = screen_lines(view)
    assert lines[:29] == [str(i) for i in range(109, 138)]
    assert [highlighted(l) for l in escaped_lines(tmux)[:29]] == [[]] * 14 + [["123"]] + [[]] * 14
    tmux.keys("n")
    view = tmux.wait_for(lambda s: "search wrapped" in status(s) and "rows 110-138" in status(s),
                         what="the only match again")
    # q: the paused player as it was, at the hit.
    tmux.keys("q")
    back = tmux.wait_for(lambda s: "PAUSED" in status(s), what="back to the player")
    assert screen_lines(back) == screen_lines(paused)


def test_scrollback_view_is_bounded(tmux, tmp_path):
    """The view of a 50,000-line burst keeps the last 10,000 rows and says so."""
    rec = seq_recording(tmp_path / "big.rec", 50000, 1000)
    start_seq_paused(tmux, rec)
    tmux.keys("G", "v")
    # 50,002 lines; the screen shows 49992 ... 50000 and the prompt; above
    # it 49,992 rows scrolled off, of which 39991 ... 49991 are kept.
    view = tmux.wait_for(lambda s: status(s).startswith(" SCROLLBACK rows 9982-10010 / 10010"),
                         timeout=60, what="the view of the end")
    assert "the last 10000 rows kept, not older ones" in status(view)
    lines = screen_lines(view)
    assert lines[:29] == [str(i) for i in range(49973, 50001)] + ["$"]
    tmux.keys("g")
    view = tmux.wait_for(lambda s: "rows 1-29 / 10010" in status(s), what="the oldest kept")
    assert screen_lines(view)[:29] == [str(i) for i in range(39992, 40021)]
    tmux.keys("Escape")
    tmux.wait_for(lambda s: re.search(r"END 0:00:04\.000", status(s)) is not None, what="back")


def test_search_finds_a_word_wrapped_across_the_edge(tmux, tmp_path):
    """The terminal wrapped the word over two rows: search finds the line whole."""
    rec = write_recording(tmp_path / "wrap.rec", [
        (1 * S, "o", b"start\r\n"),
        (2 * S, "o", b"x" * 35 + b"WRAPPEDWORD tail\r\n"),
        (3 * S, "o", b"after\r\n"), (4 * S, "x", {"status": 0}),
    ], cols=COLS, rows=ROWS, user="alice", target="prod/web-0")
    start_seq_paused(tmux, rec)
    tmux.keys("/")
    tmux.literal("WRAPPEDWORD")
    tmux.keys("Enter")
    wait_screen(tmux, ["start", "x" * 35 + "WRAPP", "EDWORD tail"] + [""] * 7,
                r"PAUSED 0:00:02\.000 .*match 1/1", "the wrapped line")


def test_viewport_on_oversized_recording(tmp_path):
    cols, rows = 150, 50
    body = b"".join(b"\x1b[%d;1H" % (r + 1) + (b"R%02d" % r) + bytes(
        (ord("a") + (c // 10) % 26) for c in range(3, cols)) for r in range(rows))
    path = write_recording(tmp_path / "big.rec", [
        (1 * S, "o", body + b"\x1b[50;150H"),
        (2 * S, "x", {"status": 0}),
    ], cols=cols, rows=rows)
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", path])
        screen = t.wait_for(lambda s: "END" in s, what="end")
        lines = screen_lines(screen)
        assert "view 150x50+0+0" in lines[29]
        assert lines[0] == ("R00" + "".join(chr(ord("a") + (c // 10) % 26) for c in range(3, 100)))
        assert lines[27].startswith("R27")  # row 28 is the timeline
        t.keys("L", "L", "J")
        screen = t.wait_for(lambda s: "view 150x50+16+4" in s, what="panned")
        lines = screen_lines(screen)
        assert lines[0] == "".join(chr(ord("a") + (c // 10) % 26) for c in range(16, 116))
        assert lines[1].startswith("bbbb")  # row 5, from column 16
        for _ in range(10):
            t.keys("L", "J")
        screen = t.wait_for(lambda s: "view 150x50+50+22" in s, what="panned to the corner")
        assert screen_lines(screen)[27].endswith("o" * 10)
        t.keys("H", "K")
        t.wait_for(lambda s: "view 150x50+42+18" in s, what="panned back")


CURSES_PROGRAM = r'''
import curses, os, sys
def main(scr):
    curses.start_color(); curses.use_default_colors()
    curses.init_pair(1, curses.COLOR_RED, -1); curses.init_pair(2, curses.COLOR_BLACK, curses.COLOR_CYAN)
    scr.box()
    scr.addstr(0, 3, " podgate ", curses.color_pair(1) | curses.A_BOLD)
    for i in range(8):
        scr.addstr(2 + i, 2, "row %d %s" % (i, "=" * (i * 5)), curses.color_pair(2) if i % 2 else 0)
    win = curses.newwin(5, 20, 3, 35)
    win.scrollok(True)
    for i in range(9):
        win.addstr("scroll %d\n" % i)
    win.refresh()
    scr.move(12, 2); scr.addstr("wide: \u4e2d\u6587 caf\u00e9")
    scr.move(5, 2); scr.insdelln(1); scr.addstr(5, 2, "inserted line")
    scr.move(9, 10); scr.clrtoeol()
    scr.addstr(13, 40, "bottom right", curses.A_REVERSE)
    scr.refresh(); win.touchwin(); win.refresh()
    sys.stdout.write("\033]2;drawn\007"); sys.stdout.flush()  # last: a title, not on screen
    scr.getch()
    sys.stdout.flush(); os._exit(0)
curses.wrapper(main)
'''


def test_end_screen_equals_tmux_screen(tmp_path):
    """Record a curses program inside tmux; the player's last screen is what tmux showed."""
    prog = tmp_path / "prog.py"
    prog.write_text(CURSES_PROGRAM)
    rec = tmp_path / "curses.rec"
    with Tmux(cols=60, rows=15) as t:
        t.start([PLAYER, "rec", "-q", "-o", rec, "--", "/usr/bin/python3", prog])
        original = t.wait_for(lambda s: "bottom right" in s and "inserted line" in s,
                              what="the curses program's screen")
        # tmux handles output in order: once the title is set, all the drawing is on screen.
        t.wait_for(lambda s: t.tmux("display-message", "-p", "-t", "t",
                                    "#{pane_title}").stdout.strip() == b"drawn",
                   what="the title set after the last drawing")
        original = t.screen()
        t.keys("x")
        t.wait_for(lambda s: t.dead(), what="the program to exit")
    want = [l.rstrip() for l in original.split("\n")[:15]]
    assert any("scroll 8" in l for l in want)
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", rec])
        screen = t.wait_for(lambda s: "END" in s, what="the end of the recording")
        lines = screen.split("\n")
        got = [columns(l, 1, 61).rstrip() for l in lines[1:16]]
    assert got == want


def columns(line, start, end):
    """The part of a screen line between two columns (wide characters take two)."""
    out, col = [], 0
    for ch in line:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if col >= start and col + w <= end:
            out.append(ch)
        col += w
    return "".join(out)


def with_status(argv):
    """argv run by a shell that prints its exit status once it ends."""
    return ["sh", "-c", '"$@"; echo "exit-status=$?"', "sh", *map(str, argv)]


def exit_status(t):
    """The status with_status printed (it may have scrolled into tmux's history)."""
    def find(_):
        text = t.tmux("capture-pane", "-p", "-S", "-200", "-t", "t").stdout.decode()
        return re.search(r"exit-status=(\d+)", text)
    t.wait_for(find, what="the exit status")
    return int(find(None).group(1))


def test_play_broker_recordings(broker_recordings):
    """A broker's recordings play as recorded: the interactive one with the
    secret redacted; the killed one with its kill marker to jump to."""
    br = broker_recordings
    with Tmux(cols=120, rows=40) as t:
        t.start(with_status([PLAYER, "play", "--speed", "16", br.pty]))
        screen = t.wait_for(lambda s: "END" in status_of(s, 40), what="the end")
        assert "tick-4" in screen and "token=[REDACTED:" in screen
        assert "ghp_" not in screen
        assert "sealed" in status_of(screen, 40) or "complete" in status_of(screen, 40)
        t.keys("q")
        assert exit_status(t) == 0
    with Tmux(cols=120, rows=40) as t:
        t.start(with_status([PLAYER, "play", br.killed]))
        # The killed session lasted milliseconds: it may have played to its end
        # before the screen is first looked at.
        t.wait_for(lambda s: "PLAYING" in s or "END" in status_of(s, 40), what="playing")
        t.keys("Space", "g", "]")
        screen = t.wait_for(lambda s: "marker: podgate: session ended by bob" in s,
                            what="the kill marker")
        assert "before-kill" in screen
        t.keys("q")
        assert exit_status(t) == 0


def test_play_exit_statuses(broker_recordings, tmp_path):
    """0 after q; 1 for a cut recording (played as far as it goes); 2 for a
    file that is not a recording, a missing one, or bad usage."""
    cut = tmp_path / "cut.rec"
    cut.write_bytes(broker_recordings.pty.read_bytes()[:-10])
    with Tmux(cols=120, rows=40) as t:
        t.start(with_status([PLAYER, "play", "--speed", "16", cut]))
        t.wait_for(lambda s: "END" in status_of(s, 40), what="the end of what is there")
        t.keys("q")
        assert exit_status(t) == 1
    notrec = tmp_path / "notes.rec"
    notrec.write_text("not a recording\n")
    for args in ([notrec], [tmp_path / "missing.rec"], [], ["--speed", "fast", cut]):
        with Tmux(cols=120, rows=40) as t:
            t.start(with_status([PLAYER, "play", *args]))
            assert exit_status(t) == 2, (args, t.screen())


def status_of(text, rows):
    lines = text.split("\n")
    return (lines + [""] * rows)[rows - 1]


def test_follow_a_recording_being_written(tmux, tmp_path):
    """play -f plays a recording still being written as tail -f follows a
    file: what is written later (even an event cut in two by a write) shows
    as it arrives, the status says LIVE / live meanwhile, and following
    ends at the exit status, with the state of a finished recording."""
    import msgpack
    full = write_recording(tmp_path / "full.rec", [
        (S // 10, "o", b"first-chunk\r\n"),
        (2 * S // 10, "o", b"second-chunk\r\n"),
        (3 * S // 10, "o", b"third-chunk\r\n"),
        (4 * S // 10, "x", {"status": 0}),
    ], cols=COLS, rows=ROWS)
    data = full.read_bytes()
    ends = []
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    for _ in u:
        ends.append(u.tell())  # the header, then each event
    live = tmp_path / "live.rec"
    half = (ends[1] + ends[2]) // 2
    live.write_bytes(data[:half])  # the second event cut in two
    tmux.start([PLAYER, "play", "-f", live])
    tmux.wait_for(lambda s: "first-chunk" in s and re.search(r"LIVE .*  live  unsigned", s),
                  what="the first event, live")
    assert "second-chunk" not in tmux.screen()

    def append(upto):
        with open(live, "ab") as f:
            f.write(data[live.stat().st_size:upto])

    append(ends[2])
    tmux.wait_for(lambda s: "second-chunk" in s and "LIVE" in s, what="the second event")
    append(len(data))
    screen = tmux.wait_for(lambda s: "third-chunk" in s and re.search(r" END .*  complete  unsigned", s),
                           what="the end, complete")
    assert "LIVE" not in screen and " live " not in screen
    # Still a player: pause, and seek back to the start.
    tmux.keys("Space", "g")
    tmux.wait_for(lambda s: "PAUSED 0:00:00.000 / 0:00:00.400" in s and "first-chunk" not in s,
                  what="the start")
    tmux.keys("q")
    tmux.wait_for(lambda s: tmux.dead(), what="quit")




def test_shell_prompt_marks_walk_commands(tmux, tmp_path):
    """] and [ stop at the prompts a shell marks with OSC 133;A (also split
    across events, ended by BEL or ST), saying the exit status OSC 133;D
    gave the command before; no input is needed in the recording."""
    A_BEL, A_ST = b"\x1b]133;A\x07", b"\x1b]133;A\x1b\\"
    ev = [
        (1 * S, "o", b"\x1b]133;A;cl=m;aid=0123456789abcdef0123\x07$ "),  # long arguments
        (2 * S, "o", b"make\r\nbuilding\r\n\x1b]133;D;2\x07\x1b]13"),
        (3 * S, "o", b"3;A\x07$ "),  # the mark split across two events
        (4 * S, "o", b"ls\r\nfile-one\r\n\x1b]133;D;0\x1b\\" + A_ST[:-1]),
        (5 * S, "o", b"\\" + b"$ "),  # ... and its ST too
        (6 * S, "o", b"echo \x1b]133;Anot a mark\r\n"),  # no terminator: not one
        (7 * S, "x", {"status": 0}),
    ]
    rec = write_recording(tmp_path / "osc133.rec", ev, cols=COLS, rows=ROWS)
    tmux.start([PLAYER, "play", rec])
    tmux.wait_for(lambda s: "PLAYING" in s, what="playing")
    tmux.keys("Space", "g")
    tmux.wait_for(lambda s: "PAUSED 0:00:00.000" in s, what="start")
    tmux.keys("]")
    tmux.wait_for(lambda s: "PAUSED 0:00:01.000" in s and "prompt: marked by the shell" in s,
                  what="first prompt")
    tmux.keys("]")
    tmux.wait_for(lambda s: "PAUSED 0:00:03.000" in s and "prompt: the command before exited 2" in s,
                  what="prompt after make")
    tmux.keys("]")
    screen = tmux.wait_for(lambda s: "PAUSED 0:00:05.000" in s and
                           "prompt: the command before exited 0" in s, what="prompt after ls")
    assert "file-one" in screen
    tmux.keys("]")
    tmux.wait_for(lambda s: "no next marker or command" in s, what="no more")
    tmux.keys("[")
    tmux.wait_for(lambda s: "PAUSED 0:00:03.000" in s, what="back one prompt")


class GatedProxy:
    """A TCP proxy in front of s3rver that holds every request for a range
    not starting at byte 0 until opened: what play shows before that came
    from the first range alone."""

    def __init__(self, upstream_port):
        import socket
        import threading
        self.upstream = upstream_port
        self.gate = threading.Event()
        self.held = threading.Event()  # a later range was asked for
        self.ranges = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()

    def _pipe(self, src, dst, requests):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                m = re.search(rb"(?i)\r\nrange: bytes=(\d+)-", data) if requests else None
                if m:
                    self.ranges.append(int(m.group(1)))
                    if int(m.group(1)) > 0:
                        self.held.set()
                        self.gate.wait(60)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self):
        self.gate.set()
        self.sock.close()


def bucket_recording(tmp_path):
    """s3rver holding a recording of 1.2 MB: FIRST-SCREEN at once, then
    filler drawn over row 5, LAST-SCREEN at 2 s; and the gated proxy."""
    from s3_support import S3_ENV, S3rver
    server = S3rver(tmp_path / "s3").start()
    ev = [(S // 10, "o", b"\x1b[2J\x1b[HFIRST-SCREEN\r\n")]
    ev += [(S // 10 + (i + 1) * 1000, "o", b"".join(b"\x1b[5;1Hfiller-%06d" % (i * 4000 + k)
                                                    for k in range(4000)))
           for i in range(20)]
    ev += [(2 * S, "o", b"\x1b[2J\x1b[HLAST-SCREEN\r\n"), (2 * S + 1, "x", {"status": 0})]
    rec = write_recording(tmp_path / "big.rec", ev, cols=COLS, rows=ROWS)
    assert rec.stat().st_size > 1 << 20
    server.put("big/0192f111-0000-7000-8000-000000000000.rec", rec.read_bytes())
    proxy = GatedProxy(server.port)
    env = dict(S3_ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="us-east-1")
    return server, proxy, env


def test_play_from_the_bucket_starts_before_the_download_ends(tmux, tmp_path):
    """play of an s3:// recording shows its start from the first range while
    the rest is still to come (a proxy holds the later ranges), says
    LOADING meanwhile, and plays on to the end once the rest arrives."""
    from s3_support import BUCKET
    server, proxy, env = bucket_recording(tmp_path)
    try:
        tmux.start([PLAYER, "play", f"s3://{BUCKET}/big/0192f111"], env=env)
        screen = tmux.wait_for(lambda s: "FIRST-SCREEN" in s and "LOADING" in s and
                               " loading " in s, what="the start, while loading")
        assert proxy.held.is_set() and not proxy.gate.is_set()
        assert "LAST-SCREEN" not in screen
        proxy.gate.set()
        tmux.wait_for(lambda s: "LAST-SCREEN" in s and re.search(r" END .*  complete  unsigned", s),
                      timeout=60, what="the end, once all has come")
        assert proxy.ranges[0] == 0 and max(proxy.ranges) > 0, proxy.ranges
        tmux.keys("q")
    finally:
        proxy.close()
        server.stop()


def test_play_from_the_bucket_quits_while_loading(tmux, tmp_path):
    """q while the rest of the recording has not come: play stops the
    download and exits at once (0), without waiting for the server."""
    from s3_support import BUCKET
    server, proxy, env = bucket_recording(tmp_path)
    try:
        tmux.start(with_status([PLAYER, "play", f"s3://{BUCKET}/big/0192f111"]), env=env)
        tmux.wait_for(lambda s: "FIRST-SCREEN" in s and "LOADING" in s, what="loading")
        assert proxy.held.is_set()
        tmux.keys("q")
        # The proxy holds the rest of the download until the test ends: had play
        # waited for it, it would not exit at all.
        assert proxy.held.is_set()
        assert exit_status(tmux) == 0
        assert not proxy.gate.is_set()  # exited while the download was still held
    finally:
        proxy.close()
        server.stop()


def test_play_from_the_bucket_reads_segments_in_the_background(tmux, tmp_path):
    """A recording not sealed in the bucket yet plays from its segments,
    read in order while it plays, however small the first one is (here it
    ends inside the header)."""
    from s3_support import BUCKET, S3_ENV, S3rver
    server = S3rver(tmp_path / "s3").start()
    try:
        ev = [(S // 10, "o", b"SEG-ONE\r\n"), (S // 5, "o", b"SEG-TWO\r\n"),
              (S // 2, "o", b"SEG-THREE\r\n")]
        data = write_recording(tmp_path / "r.rec", ev).read_bytes()
        sid = "0192f222-0000-7000-8000-000000000000"
        cuts = [0, 100, len(data) * 3 // 4, len(data)]
        for a, b in zip(cuts, cuts[1:]):
            server.put(f"live/{sid}.rec.seg/{a}", data[a:b])
        env = dict(S3_ENV, AWS_ENDPOINT_URL=server.endpoint, AWS_REGION="us-east-1")
        tmux.start([PLAYER, "play", f"s3://{BUCKET}/live/{sid[:8]}"], env=env)
        tmux.wait_for(lambda s: "SEG-ONE" in s and "SEG-THREE" in s and
                      re.search(r" END .*  incomplete  unsigned", s), what="all segments, played")
        tmux.keys("q")
    finally:
        server.stop()


def test_follow_a_recording_in_the_bucket(tmux, tmp_path):
    """-f on a session not sealed in the bucket yet plays its segments, the
    new ones as the broker ships them (LIVE), then, once the sealed object
    is there and the segments gone, the rest of it, to its end."""
    from s3_support import BUCKET, S3_ENV, S3rver
    server = S3rver(tmp_path / "s3").start()
    try:
        ev = [(S // 10, "o", b"SEG-ONE\r\n"), (S // 5, "o", b"SEG-TWO\r\n"),
              (S // 2, "o", b"SEG-THREE\r\n"), (S, "o", b"SEALED-END\r\n"),
              (S + 1, "x", {"status": 0})]
        data = write_recording(tmp_path / "r.rec", ev).read_bytes()
        sid = "0192f333-0000-7000-8000-000000000000"
        three, end = data.index(b"SEG-THREE"), data.index(b"SEALED-END")
        cuts = [0, 100, three - 5, end - 5]  # the last two inside an event's header
        server.put(f"live/{sid}.rec.seg/{cuts[0]:020d}", data[cuts[0]:cuts[1]])
        server.put(f"live/{sid}.rec.seg/{cuts[1]:020d}", data[cuts[1]:cuts[2]])
        env = dict(S3_ENV, AWS_ENDPOINT_URL=server.endpoint, AWS_REGION="us-east-1")
        tmux.start([PLAYER, "play", "-f", f"s3://{BUCKET}/live/{sid[:8]}"], env=env)
        screen = tmux.wait_for(lambda s: "SEG-TWO" in s and " LIVE " in status(s) and
                               "  live  " in status(s), what="the segments there, live")
        assert "SEG-THREE" not in screen
        server.put(f"live/{sid}.rec.seg/{cuts[2]:020d}", data[cuts[2]:cuts[3]])
        screen = tmux.wait_for(lambda s: "SEG-THREE" in s, what="a segment shipped later")
        assert "SEALED-END" not in screen and " LIVE " in status(screen)
        # The broker seals: the whole recording, then the segments go.
        server.put(f"live/{sid}.rec", data)
        for a in cuts[:3]:
            assert server.curl("DELETE", f"live/{sid}.rec.seg/{a:020d}")[0] == 204
        tmux.wait_for(lambda s: "SEALED-END" in s and re.search(r" END .*  complete  unsigned", s),
                      timeout=30, what="the rest from the sealed object, to the end")
        tmux.keys("q")
        tmux.wait_for(lambda s: tmux.dead(), what="quit")
    finally:
        server.stop()

"""Helpers for the podgate-player tests: run the player, write recordings
with exact contents and times (independently of librec), and drive `play`
inside tmux.

    write_recording(path, [(time_ns, "o", b"hi\\r\\n"), (time_ns, "x", {"status": 0})],
                    cols=80, rows=24, user="alice", target="prod/web-0")
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", path])
        t.wait_for(lambda screen: "PAUSED" in screen)
        t.keys("space")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import msgpack

BUILD = os.environ.get("PODGATE_BUILD", os.path.join(os.path.dirname(__file__), "../../build-dev"))
PLAYER = os.path.join(BUILD, "player", "podgate-player")
START_NS = 1764345600 * 10**9 + 500_000_000  # 2025-11-28T16:00:00.5Z


def player(*args, stdin=subprocess.DEVNULL, timeout=120, **kw):
    return subprocess.run([PLAYER, *map(str, args)], stdin=stdin, capture_output=True,
                          timeout=timeout, **kw)


def no_sanitizer_report(stderr):
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "AddressSanitizer" not in text and "runtime error:" not in text, text
    assert "LeakSanitizer" not in text, text


def write_recording(path, events, cols=80, rows=24, user="alice", target="prod/web-0",
                    command="bash", start_ns=START_NS, term="xterm-256color", session=None,
                    pty=True):
    """Write a recording; events are (absolute time in ns, code, payload)."""
    header = {
        "format": "podgate-rec", "version": 1,
        "session": session or str(uuid.UUID(int=uuid.uuid4().int & ~(0xf << 76) | (7 << 76))),
        "start": start_ns, "term": {"cols": cols, "rows": rows, "type": term}, "pty": pty,
        "who": {"user": user, "key_fp": "SHA256:test", "client": "127.0.0.1:1"},
        "where": {"kind": "local", "target": target}, "what": {"command": command},
    }
    prev = 0
    with open(path, "wb") as f:
        f.write(msgpack.packb(header, use_bin_type=True))
        for t, code, payload in events:
            assert t >= prev
            f.write(msgpack.packb([t - prev, code, payload], use_bin_type=True))
            prev = t
    return path


class Tmux:
    """A private tmux server (its own socket) with one session of a fixed size."""

    def __init__(self, cols=100, rows=30):
        self.cols, self.rows = cols, rows
        self.sock = f"podgate-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        assert shutil.which("tmux"), "tmux is not installed"
        return self

    def __exit__(self, *exc):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, check=check,
                              timeout=30)

    def start(self, argv, env=None):
        """Run argv in a new session; the pane stays after it exits."""
        cmd = " ".join(_quote(a) for a in argv)
        envs = " ".join(f"{k}={_quote(v)}" for k, v in (env or {}).items())
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", str(self.cols), "-y",
                  str(self.rows), "-s", "t", f"{envs} {cmd}".strip())
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def literal(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t").stdout.decode()

    def lines(self):
        out = self.screen().split("\n")
        return (out + [""] * self.rows)[: self.rows]

    def dead(self):
        r = self.tmux("display-message", "-p", "-t", "t", "#{pane_dead}", check=False)
        return r.stdout.strip() == b"1"

    def wait_for(self, pred, timeout=20, what="screen"):
        """Poll capture-pane until pred(screen text) holds; fail with the last screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if pred(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; screen was:\n{screen}")


def _quote(s):
    s = str(s)
    if s and all(c.isalnum() or c in "@%_-+=:,./" for c in s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"

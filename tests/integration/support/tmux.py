"""A private tmux server (its own socket) for driving and reading terminals.

    with Tmux(cols=100, rows=30) as t:      # one session "t" of that size
        t.start([PLAYER, "play", path])
        t.wait_for(lambda screen: "PAUSED" in screen)
        t.keys("space")

Several named sessions on one server: ``t.new(name, command)``,
``t.capture(name)`` (rows, right-stripped), ``t.cursor(name)`` ("x,y").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid


class Tmux:
    """A private tmux server (its own socket) with one session of a fixed size."""

    def __init__(self, cols=100, rows=30, socket_path=None):
        self.cols, self.rows = cols, rows
        self.sock = f"podgate-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # -L NAME (under tmux's own directory) or -S PATH
        self.where = ["-S", str(socket_path)] if socket_path else ["-L", self.sock]

    def __enter__(self):
        assert shutil.which("tmux"), "tmux is not installed"
        return self

    def __exit__(self, *exc):
        self.kill()

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", *self.where, *args], capture_output=True, check=check,
                              timeout=30)

    def start(self, argv, env=None):
        """Run argv in a new session; the pane stays after it exits."""
        cmd = " ".join(_quote(a) for a in argv)
        envs = " ".join(f"{k}={_quote(v)}" for k, v in (env or {}).items())
        # remain-on-exit from the server's start: a program that exits at once
        # leaves its pane (and exit status) too.
        self._with_conf("set-option -g remain-on-exit on", self.tmux, "new-session", "-d",
                        "-x", str(self.cols), "-y", str(self.rows), "-s", "t",
                        f"{envs} {cmd}".strip())

    @staticmethod
    def _with_conf(line, run, *args):
        """run("-f", CONF, *args) with a server configuration of one line (read only
        by the command that starts the server)."""
        conf = tempfile.NamedTemporaryFile("w", prefix="podgate-tmux-", suffix=".conf",
                                           delete=False)
        with conf:
            conf.write(line + "\n")
        try:
            return run("-f", conf.name, *args)
        finally:
            os.unlink(conf.name)

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


    # -- several named sessions (text results)
    def run(self, *args, check=True):
        """tmux ARGS with text output."""
        return subprocess.run(["tmux", *self.where, *args], capture_output=True, text=True,
                              check=check, timeout=30)

    def new(self, name, command):
        """A detached session NAME of the server's size running a shell command. The
        server outlives its sessions (exit-empty off): a session started just after
        the last one ended must not reach a server on its way out."""
        self._with_conf("set-option -g exit-empty off", self.run, "new-session", "-d",
                        "-s", name, "-x", str(self.cols), "-y", str(self.rows), command)

    def capture(self, name):
        """Session NAME's rows, right-stripped."""
        return [line.rstrip() for line in self.run("capture-pane", "-p", "-t", name).stdout
                .split("\n")[:self.rows]]

    def cursor(self, name):
        """Session NAME's cursor as "x,y"."""
        return self.run("display", "-p", "-t", name, "#{cursor_x},#{cursor_y}").stdout.strip()

    def kill(self):
        subprocess.run(["tmux", *self.where, "kill-server"], capture_output=True, timeout=30)


def _quote(s):
    s = str(s)
    if s and all(c.isalnum() or c in "@%_-+=:,./" for c in s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"

"""Admin commands as users run them (docs/live.md): the users and roles of the
live-supervision suites, ssh clients left running, held requests, and a reader
for pending --follow.

    from support.live import GROUPS, USERS, Follower, finish, start_bg, wait_request
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time

import pytest

from . import tmux
from .wait import readline_within, wait_until

USERS = {
    "alice": {"groups": ["oncall"]},
    "bob": {"groups": ["sec"]},           # auditor and approver through the group
    "carol": {"roles": ["auditor"]},      # auditor on the user
}
GROUPS = [{"name": "sec", "roles": ["auditor", "approver"]}]


def start_bg(b, user, *remote, opts=()):
    """An ssh client to broker b left running, its three pipes open."""
    return subprocess.Popen(b.ssh_args(user, *remote, opts=opts), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p, timeout=20):
    """Wait for a start_bg client to end: (status, stdout, stderr)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"ssh did not end: {out[-300:]!r} {err[-300:]!r}")
    return p.returncode, out, err


def wait_request(p):
    """The id of the request a start_bg client was told is waiting for approval."""
    buf = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = readline_within(p.stderr, max(0.1, deadline - time.monotonic()))
        buf += line
        m = re.search(rb"waiting for approval: ([0-9a-f-]{36})", buf)
        if m:
            return m.group(1).decode()
    pytest.fail(f"no 'waiting for approval' line: {buf!r}")


class Tmux(tmux.Tmux):
    """A private tmux server for rendering terminals: 80x24 sessions."""

    def __init__(self, path):
        super().__init__(cols=80, rows=24, socket_path=path)


class Follower:
    """`pending ARGS` (--follow, -f) left running on broker b: its stdout and stderr
    as lines."""

    def __init__(self, b, user, *args):
        self.p = start_bg(b, user, "pending", *args)
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self._part = {self.p.stdout.fileno(): b"", self.p.stderr.fileno(): b""}

    def _read(self):
        fds = [fd for fd in self._part if fd >= 0]
        r, _, _ = select.select(fds, [], [], 0)
        for fd in r:
            data = os.read(fd, 65536)
            if not data:
                self._part[fd] = b""
                continue
            lines = (self._part[fd] + data).split(b"\n")
            self._part[fd] = lines.pop()
            (self.out if fd == self.p.stdout.fileno() else self.err).extend(lines)

    def wait_out(self, pred, timeout=15, what="a line from pending --follow"):
        """The first stdout line for which pred(line) holds, waiting for it."""
        def check():
            self._read()
            return next((line for line in self.out if pred(line)), None)
        return wait_until(check, timeout=timeout, what=what)

    def wait_err(self, pred, timeout=15, what="a notice from pending --follow"):
        def check():
            self._read()
            return next((line for line in self.err if pred(line)), None)
        return wait_until(check, timeout=timeout, what=what)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()

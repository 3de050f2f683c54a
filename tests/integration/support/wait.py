"""Waiting on conditions, never on the clock: every wait has a deadline and
fails the test with what it saw when the deadline passes."""

from __future__ import annotations

import os
import select
import time

import pytest

from .terminal import Terminal


def wait_until(pred, timeout: float = 10.0, what: str = "condition", interval: float = 0.02):
    """Poll pred() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_until(fd: int, pattern: bytes, timeout: float = 15.0,
               buf: bytearray | None = None, chunk: int = 65536) -> bytearray:
    """Read a file descriptor until pattern is in what was read; return it all.

    Fails the test at the deadline or at end of file, with the last bytes read.
    chunk=1 reads nothing past the pattern (for a pipe read on afterwards).
    """
    t = Terminal(fd=fd, buf=buf, chunk=chunk)
    t.expect(pattern, timeout)
    return t.buf


def readline_within(stream, timeout: float = 15.0) -> bytes:
    """One line from a pipe (a Popen's stdout or stderr), or fail after timeout.

    Reads the file descriptor directly, one byte at a time, so nothing is
    left in the file object's buffer for later reads; b"" at end of file.
    """
    fd = stream.fileno()
    line = bytearray()
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no complete line within {timeout}s; got {bytes(line)!r}")
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not r:
            continue
        c = os.read(fd, 1)
        if not c:
            break
        line += c
    return bytes(line)


def exit_status(chan, timeout: float = 30.0) -> int:
    """A paramiko channel's exit status, or fail after timeout (-1: it ended by a signal)."""
    if not chan.status_event.wait(timeout):
        pytest.fail(f"no exit-status or exit-signal within {timeout}s")
    return chan.exit_status


def recv_until(chan, pattern: bytes, timeout: float = 15.0, buf: bytearray | None = None):
    """Read a paramiko channel until pattern appears in what was read; return it all.
    The channel's stderr stays unread, for the caller."""
    t = Terminal(chan, buf=buf, stderr=False)
    t.expect(pattern, timeout)
    return t.buf

"""One terminal reader for every suite: what a terminal shows, read from a
paramiko channel or from a pseudo-terminal, and waiting for a pattern in it
under a deadline.

    t = Terminal(chan)                          # a paramiko channel
    t = Terminal(fd=master)                     # a PTY master opened elsewhere
    t = Terminal.spawn(argv, rows=30, cols=90)  # a process on a PTY of its own

    pos = t.expect(b"ready")            # the offset after the match
    t.send(b"exit\\r")
    t.expect(b"bye", start=pos)         # only what came after pos counts
    everything = t.drain()              # all of it, up to the end

``buf`` holds every byte read so far (``out`` the same as bytes); a
channel's stderr goes to ``err``. Every wait fails the test at its deadline
or when the stream ends first, with the last bytes read, so a test never
hangs and never passes on output that did not come.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """Set the window size of the terminal fd (a PTY's master or slave side)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    # How long expect() and exit_status() wait when not told: a guard
    # against hangs, not a measure of speed.
    timeout = 20.0

    def __init__(self, chan=None, *, fd: int | None = None, proc=None,
                 buf: bytearray | None = None, stderr: bool = True, chunk: int = 65536):
        """buf: go on from (and add to) bytes already read; stderr=False
        leaves a channel's stderr unread, for its owner; chunk=1 reads
        nothing past the pattern (a pipe read on afterwards)."""
        assert (chan is None) != (fd is None), "a channel or a file descriptor"
        self.chan = chan
        self.fd = fd
        self.proc = proc          # set by spawn(): the process on the PTY
        self.buf = buf if buf is not None else bytearray()
        self.err = bytearray()
        self.eof = False
        self.stderr = stderr
        self.chunk = chunk
        if chan is not None:
            chan.settimeout(0.1)

    @classmethod
    def spawn(cls, argv, rows: int = 24, cols: int = 80, stderr_path=None, env=None,
              **popen) -> "Terminal":
        """Run argv in a new session with stdin and stdout on a new PTY of
        rows x cols; its stderr goes to stderr_path when given, else to the
        terminal too."""
        master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        err = open(stderr_path, "wb") if stderr_path is not None else slave
        try:
            proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=err,
                                    start_new_session=True, env=env, **popen)
        finally:
            os.close(slave)  # the child's alone now: its exit ends the stream
            if stderr_path is not None:
                err.close()
        return cls(fd=master, proc=proc)

    # -- reading
    @property
    def out(self) -> bytes:
        return bytes(self.buf)

    def pump(self, timeout: float = 0.1) -> bool:
        """Read what comes within timeout; False once the stream has ended."""
        if self.eof:
            return False
        if self.chan is not None:
            self._take_stderr()
            try:
                d = self.chan.recv(self.chunk)
            except socket.timeout:
                return True
        else:
            if not select.select([self.fd], [], [], timeout)[0]:
                return True
            try:
                d = os.read(self.fd, self.chunk)
            except OSError:  # EIO: every slave side is closed
                d = b""
        if not d:
            self._take_stderr()
            self.eof = True
            return False
        self.buf += d
        return True

    def _take_stderr(self) -> None:
        while self.chan is not None and self.stderr and self.chan.recv_stderr_ready():
            self.err += self.chan.recv_stderr(65536)

    def read(self) -> bool:
        """Take what has already come, without waiting; whether anything did."""
        n, e = len(self.buf), len(self.err)
        if self.chan is not None:
            while self.chan.recv_ready() or (self.stderr and self.chan.recv_stderr_ready()):
                self.pump()
        else:
            while select.select([self.fd], [], [], 0)[0] and self.pump(0):
                pass
        return len(self.buf) != n or len(self.err) != e

    def _tail(self) -> str:
        s = f"received {bytes(self.buf[-400:])!r}"
        return s + (f" stderr {bytes(self.err[-400:])!r}" if self.err else "")

    def expect(self, pattern: bytes | str, timeout: float | None = None, start: int = 0) -> int:
        """Wait for pattern in what came after offset start; return the offset after it."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pattern, start)
            if i >= 0:
                return i + len(pattern)
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {pattern!r}; "
                            + self._tail())
            if not self.pump() and self.buf.find(pattern, start) < 0:
                what = "channel closed" if self.chan is not None else "end of terminal"
                if self.proc is not None and self.proc.poll() is not None:
                    what = f"{self.proc.args[0]} exited ({self.proc.returncode})"
                pytest.fail(f"{what} before {pattern!r}; " + self._tail())

    def drain(self, timeout: float | None = None) -> bytes:
        """Read to the end of the stream; return all that came."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.pump():
            if time.monotonic() > deadline:
                pytest.fail(f"{'channel' if self.chan is not None else 'terminal'} "
                            f"not closed within {timeout}s; " + self._tail())
        return bytes(self.buf)

    # -- writing and control
    def send(self, data: bytes) -> None:
        if self.chan is not None:
            self.chan.sendall(data)
        else:
            os.write(self.fd, data)

    write = send

    def resize(self, rows: int, cols: int) -> None:
        """A new window size: a window-change request on a channel; on a PTY
        the size, then SIGWINCH to the process (the PTY is not its
        controlling terminal, so the kernel does not send it)."""
        if self.chan is not None:
            self.chan.resize_pty(width=cols, height=rows)
            return
        set_winsize(self.fd, rows, cols)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGWINCH)

    def exit_status(self, timeout: float | None = None) -> int:
        """The exit status (a channel's, or the spawned process's), reading
        the output meanwhile; fails the test after timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self.proc is not None:
            while self.proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.proc.args[0]} did not exit within {timeout}s; "
                                + self._tail())
                if not self.pump():
                    time.sleep(0.01)
            return self.proc.returncode
        while not self.chan.exit_status_ready():
            if time.monotonic() > deadline:
                pytest.fail(f"no exit status within {timeout}s; " + self._tail())
            if not self.pump():
                time.sleep(0.01)
        self.read()
        return self.chan.recv_exit_status()

    def close(self) -> None:
        """Kill and reap a spawned process and close its PTY (a channel, or a
        descriptor opened elsewhere, stays its owner's to close)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

"""A paramiko session channel read by a thread: wait for text in what came."""

from __future__ import annotations

import threading

from .terminal import Terminal
from .wait import wait_until


class Chan:
    """Open a session on a paramiko client (with a PTY unless pty=False, with
    env), exec command, and collect stdout and stderr in .out and .err while
    the test goes on (a support.terminal.Terminal read by a thread)."""

    def __init__(self, client, command, pty=True, env=None):
        self.chan = client.get_transport().open_session(timeout=10)
        if pty:
            self.chan.get_pty(term="xterm", width=80, height=24)
        for k, v in (env or {}).items():
            self.chan.set_environment_variable(k, v)
        self.chan.exec_command(command)
        self.term = Terminal(self.chan)
        self.out = self.term.buf
        self.err = self.term.err
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.term.pump():
            pass

    def wait(self, text: bytes, timeout=10.0, err=False):
        buf = self.err if err else self.out
        wait_until(lambda: text in buf, timeout,
                   f"{text!r} from the target; have {bytes(self.out)[-200:]!r} "
                   f"{bytes(self.err)[-200:]!r}")

    def send(self, data: bytes):
        self.chan.sendall(data)

    def status(self, timeout=15.0) -> int:
        assert self.chan.status_event.wait(timeout), "no exit status"
        self.thread.join(timeout)
        return self.chan.exit_status

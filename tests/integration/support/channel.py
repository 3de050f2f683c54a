"""A paramiko session channel read by a thread: wait for text in what came."""

from __future__ import annotations

import threading

from .wait import wait_until


class Chan:
    """Open a session on a paramiko client (with a PTY unless pty=False, with
    env), exec command, and collect stdout and stderr in .out and .err."""

    def __init__(self, client, command, pty=True, env=None):
        self.chan = client.get_transport().open_session(timeout=10)
        if pty:
            self.chan.get_pty(term="xterm", width=80, height=24)
        for k, v in (env or {}).items():
            self.chan.set_environment_variable(k, v)
        self.chan.exec_command(command)
        self.out = bytearray()
        self.err = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        self.chan.settimeout(0.1)
        while True:
            got = False
            while self.chan.recv_stderr_ready():
                self.err += self.chan.recv_stderr(65536)
                got = True
            try:
                d = self.chan.recv(65536)
                if not d:
                    if not self.chan.recv_stderr_ready():
                        return
                self.out += d
                got = True
            except OSError:
                pass
            if not got and self.chan.closed:
                # Data, exit status and close may all have come in since recv
                # timed out: take what paramiko buffered before leaving.
                while self.chan.recv_ready():
                    self.out += self.chan.recv(65536)
                while self.chan.recv_stderr_ready():
                    self.err += self.chan.recv_stderr(65536)
                return

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

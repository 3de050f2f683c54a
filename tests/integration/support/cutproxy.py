"""A TCP proxy between a replica and the peer listener of another, which can
lose an answer on purpose. Held, the one connection through it passes the
client's bytes on at once and keeps the server's until the test releases
them or cuts the connection (a reset both ways), which loses what it kept.
A test that looks at the server's audit log each time the proxy keeps
something learns whether the command it waits for has run (a replica
audits a command before it answers it), and can cut just then."""

from __future__ import annotations

import select
import socket
import struct
import threading


class CutProxy:
    def __init__(self, upstream_port: int, port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.lock = threading.Lock()
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.held_pair = None       # the connection whose server bytes are kept
        self.kept: list[bytes] = []
        self.cut_done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            pair = (c, socket.create_connection(self.upstream))
            with self.lock:
                self.conns.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def hold(self):
        """Keep the server's bytes on the one connection open through the proxy."""
        with self.lock:
            live = [p for p in self.conns if p[0].fileno() >= 0]
            assert len(live) == 1, f"{len(live)} connections through the proxy"
            self.held_pair = live[0]

    def keeping(self) -> bool:
        with self.lock:
            return bool(self.kept)

    def release(self):
        """Pass on what was kept; go on keeping what comes next."""
        with self.lock:
            data, self.kept = b"".join(self.kept), []
            self.held_pair[0].sendall(data)

    def cut(self):
        """Reset the held connection both ways; what was kept is lost."""
        with self.lock:
            pair, self.kept, self.cut_done = self.held_pair, [], True
        for s in pair:
            self._reset(s)

    def _pump(self, pair):
        c, u = pair
        try:
            while True:
                r, _, _ = select.select([c, u], [], [])
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    with self.lock:
                        if s is c:
                            u.sendall(data)
                        elif self.held_pair is pair:
                            if not self.cut_done:
                                self.kept.append(data)
                        else:
                            c.sendall(data)
        except (OSError, ValueError):
            for s in pair:
                self._reset(s)

    @staticmethod
    def _reset(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass

    def stop(self):
        self.lsock.close()
        with self.lock:
            for pair in self.conns:
                for s in pair:
                    self._reset(s)

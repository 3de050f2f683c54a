"""The broker at its open file limit: the soft RLIMIT_NOFILE is raised to
the hard one at start; near the limit new connections and new sessions
are refused cleanly (a reason the client sees, an audit "refused" event)
while every session already admitted keeps working; and out of
descriptors, the accept loop pauses instead of spinning, with the waiting
clients served once descriptors are free again.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import time

import paramiko
import pytest

from conftest import drain_channel
from support import recv_until

CAPACITY_REFUSAL = b"at its capacity (open file limit)"


def nofile(soft: int, hard: int):
    """A preexec_fn that starts the broker under these RLIMIT_NOFILE limits."""
    def set_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return set_limits


def start_limited(broker, soft: int, hard: int, **kw):
    b = broker(start=False, **kw)
    b.preexec_fn = nofile(soft, hard)
    return b.start()


def broker_nofile(b) -> tuple[int, int]:
    return resource.prlimit(b.pid, resource.RLIMIT_NOFILE)


def open_fds(b) -> int:
    return len(os.listdir(f"/proc/{b.pid}/fd"))


def expect(chan: paramiko.Channel, want: bytes, timeout: float = 20.0) -> bytes:
    """Read chan until want has arrived."""
    return bytes(recv_until(chan, want, timeout))


def pty_cat(b) -> tuple[paramiko.SSHClient, paramiko.Channel]:
    """One connection with one PTY session running cat (raises when refused)."""
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session(timeout=10)
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command("local -- cat")
        return c, chan
    except BaseException:
        c.close()
        raise


def still_works(chan: paramiko.Channel, word: str):
    chan.sendall(f"{word}\n".encode())
    expect(chan, f"{word}\r\n{word}\r\n".encode())


def test_soft_open_file_limit_raised_to_hard_at_start(broker):
    hard = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    b = start_limited(broker, 256, hard)
    assert broker_nofile(b) == (hard, hard)
    b.wait_log(rf"open file limit raised from 256 to {hard}")
    m = b.wait_log(r"capacity: (\d+) open files \((\d+) in use, (\d+) kept in reserve\); "
                   r"a session holds 4 with a PTY on its own connection \(about (\d+) such"
                   r".*, 4 without a PTY plus 2 per connection \(about (\d+) at 10 per"
                   r".*, 2 on the native Kubernetes transport \(about (\d+) at 10 per")
    limit, used, reserve, sessions, nopty, native = map(int, m.groups())
    assert limit == hard and reserve == max(16, min(128, hard // 16))
    room = hard - used - reserve
    assert sessions == room // 4
    assert (nopty, native) == (room * 10 // 42, room * 10 // 22)
    r = b.ssh("alice", "local", "--", "echo up")
    assert (r.returncode, r.stdout) == (0, b"up\n"), r.stderr


def exec_cat_or_refusal(t: paramiko.Transport, word: str, chans: list) -> bytes | None:
    """A session without a PTY running cat: None once it echoed word (the
    channel is added to chans), else what it said on stderr when refused."""
    ch = t.open_session(timeout=10)
    ch.exec_command("local -- cat")
    try:
        ch.sendall(f"{word}\n".encode())
    except OSError:
        pass  # refused and closed already: what it said is still to be read
    out, err = b"", b""
    ch.settimeout(0.2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        while ch.recv_stderr_ready():
            err += ch.recv_stderr(4096)
        try:
            d = ch.recv(4096)
        except socket.timeout:
            continue
        if not d:
            err += drain_channel(ch, 10)[1]
            assert ch.recv_exit_status() == 1, err
            return err
        out += d
        if out == f"{word}\n".encode():
            chans.append(ch)
            return None
    pytest.fail(f"session neither echoed nor refused: {out!r} {err!r}")


def test_sessions_until_the_open_file_limit_refused_cleanly(broker):
    b = start_limited(broker, 256, 256, settings={"max_connections": 1000})
    assert broker_nofile(b) == (256, 256)
    admitted, refused = [], 0
    try:
        # PTY sessions, one connection each, until the broker refuses some.
        while refused < 3:
            assert len(admitted) < 120, "256 descriptors held more sessions than possible"
            try:
                c, chan = pty_cat(b)
            except (paramiko.SSHException, EOFError, OSError):
                refused += 1
                continue
            assert refused == 0, "a connection was served after the broker refused one"
            admitted.append((c, chan))
            still_works(chan, f"first-{len(admitted)}")
        assert len(admitted) >= 30, f"only {len(admitted)} sessions in 256 descriptors"
        print(f"{len(admitted)} PTY sessions admitted under 256 open files")
        # The real client is told why, before any key exchange.
        r = b.ssh("alice", "local", "--", "echo never")
        assert r.returncode == 255 and b"never" not in r.stdout
        assert CAPACITY_REFUSAL in r.stderr, r.stderr
        evs = b.wait_audit("refused", lambda e: e.get("reason") == "open file limit reached",
                           count=refused + 1)
        assert all(e.get("client", "").startswith("127.0.0.1:") for e in evs)
        # Every admitted session still works; none was failed half-started.
        for n, (_, chan) in enumerate(admitted):
            still_works(chan, f"alive-{n}")
        assert len(b.events("session_start")) == len(admitted)
        others = [e for e in b.events("refused") if e.get("reason") != "open file limit reached"]
        assert others == [], others
        assert "Too many open files" not in b.log()

        # Free a few connections; on one of them, sessions without a PTY
        # (many channels on one connection) until one is refused.
        for c, _ in admitted[:8]:
            c.close()
        del admitted[:8]
        b.wait_audit("session_end", count=8)
        host = b.connect("alice")
        admitted.append((host, None))
        t = host.get_transport()
        chans, refusal = [], None
        while refusal is None:
            assert len(chans) < 40, "sessions went past the open file limit"
            refusal = exec_cat_or_refusal(t, f"exec-{len(chans)}", chans)
        assert CAPACITY_REFUSAL in refusal, refusal
        assert len(chans) >= 2, "no room at all for another session"
        print(f"then {len(chans)} sessions without a PTY on one connection")
        for n, ch in enumerate(chans):
            ch.sendall(f"more-{n}\n".encode())
            expect(ch, f"more-{n}\n".encode())
        b.wait_audit("refused", lambda e: e.get("reason") == "open file limit reached"
                     and e.get("user") == "alice", count=1)
        for n, (_, chan) in enumerate(admitted[:-1]):
            still_works(chan, f"again-{n}")
        assert "Too many open files" not in b.log()
        # Once sessions end, their descriptors serve new ones.
        for c, _ in admitted:
            c.close()
        admitted = []
        b.wait_audit("session_end", count=len(b.events("session_start")), timeout=30)
        r = b.ssh("alice", "local", "--", "echo back")
        assert (r.returncode, r.stdout) == (0, b"back\n"), r.stderr
    finally:
        for c, _ in admitted:
            c.close()
    assert b.running()


def test_accept_pauses_while_out_of_descriptors(broker):
    b = broker()
    soft, hard = broker_nofile(b)
    # No descriptor number left (0, 1 and 2 are open): accept fails with EMFILE.
    resource.prlimit(b.pid, resource.RLIMIT_NOFILE, (3, hard))
    waiting = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            waiting.append(s)
        b.wait_log(r"accept: Too many open files; pausing accepts")
        cpu0 = sum(map(int, open(f"/proc/{b.pid}/stat").read().rsplit(")", 1)[1].split()[11:13]))
        time.sleep(1.0)  # an observation window: a spinning loop would burn it all
        cpu1 = sum(map(int, open(f"/proc/{b.pid}/stat").read().rsplit(")", 1)[1].split()[11:13]))
        ticks = os.sysconf("SC_CLK_TCK")
        assert cpu1 - cpu0 < ticks // 4, f"{cpu1 - cpu0} ticks of CPU in 1 s while out of files"
        assert len(re.findall(r"pausing accepts", b.log())) == 1
        # The clients wait in the listen queue, neither served nor dropped.
        for s in waiting:
            s.settimeout(0.05)
            with pytest.raises(socket.timeout):
                s.recv(64)
        # Descriptors again: the waiting clients get the server's banner.
        resource.prlimit(b.pid, resource.RLIMIT_NOFILE, (soft, hard))
        for s in waiting:
            s.settimeout(10)
            assert s.recv(64).startswith(b"SSH-2.0-")
        b.wait_log(r"accepting connections again")
        r = b.ssh("alice", "local", "--", "echo served")
        assert (r.returncode, r.stdout) == (0, b"served\n"), r.stderr
    finally:
        for s in waiting:
            s.close()

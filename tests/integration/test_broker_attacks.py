"""Attacks on the broker: connection floods and password guessing from one
address, key exchanges that never finish, commands meant to break out of
sh -c, names meant to move recordings, loose file modes, a symlinked
recordings directory.

Attackers connect from 127.0.0.2 (any 127/8 address is local on Linux);
the honest user connects from 127.0.0.1, so "other users unaffected" is
checked from another address, as it would be in production.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import socket
import subprocess
import threading
import time

import paramiko
import pytest

from conftest import drain_channel, wait_until
from support import assert_refused, recv_until

ATTACKER = "127.0.0.2"
UUID_REC = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.rec$")


def attacker_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((ATTACKER, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def got_banner(s: socket.socket, timeout: float) -> bytes | None:
    """What the server sent first within timeout: its banner, b"" when closed, None when silent."""
    s.settimeout(timeout)
    try:
        return s.recv(256)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""


def audit_ns(ev: dict) -> int:
    """An audit event's time ("2026-01-02T03:04:05.123456789Z") in ns since the epoch."""
    whole, frac = ev["time"].rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac.ljust(9, "0"))


FAILURE_SLACK = 0.1  # seconds of one event-loop turn, see failure_gaps


def failure_gaps(b) -> list[float]:
    """Seconds between the attacker's consecutive auth_failure events, as the broker
    wrote them (when it handled each failure: the penalty runs from there)."""
    ts = [audit_ns(e) for e in b.events("auth_failure")
          if e.get("client", "").startswith(ATTACKER) and "password" in e.get("reason", "")]
    return [(y - x) / 1e9 for x, y in zip(ts, ts[1:])]


def honest_session_works(b, word="honest"):
    r = b.ssh("alice", "local", "--", f"echo {word}")
    assert (r.returncode, r.stdout) == (0, f"{word}\n".encode()), r.stderr


# ---------------------------------------------------------------- floods from one address

def test_unauthenticated_connections_from_one_address_are_limited(broker):
    limit = 3
    b = broker(settings={"max_unauthenticated_per_address": limit, "login_grace_time": 30})
    socks = []
    try:
        # The first `limit` connections get the server's banner at once.
        for _ in range(limit):
            s = attacker_socket(b.port)
            socks.append(s)
            assert (got_banner(s, 10) or b"").startswith(b"SSH-2.0-")
        # The next ones wait their turn (parked: no banner, no key exchange work) ...
        parked = []
        for _ in range(10 * limit):
            s = attacker_socket(b.port)
            parked.append(s)
        socks += parked
        assert all(got_banner(s, 0.05) is None for s in parked[:5])
        # ... and past ten times the limit waiting, connections are refused.
        refused = [attacker_socket(b.port) for _ in range(5)]
        socks += refused
        assert all(got_banner(s, 10) == b"" for s in refused)
        evs = b.wait_audit("refused", lambda e: e.get("client", "").startswith(ATTACKER + ":")
                           and "unauthenticated" in e.get("reason", ""), count=5)
        assert len(evs) == 5
        # Another address is not affected: its session runs from start to end while
        # the attacker's connections are still parked (proved by order, not by a clock).
        honest_session_works(b)
        assert all(got_banner(s, 0.05) is None for s in parked[:5])
        # When an attacker's connection ends, a parked one gets its turn.
        socks[0].close()
        assert (got_banner(parked[0], 10) or b"").startswith(b"SSH-2.0-")
    finally:
        for s in socks:
            s.close()
    assert b.running()


def test_password_guessing_is_slowed_and_cut_off(broker, keys):
    delay = 2
    b = broker(settings={"auth_failure_delay": f"{delay}s", "max_auth_tries": 4})
    s = attacker_socket(b.port)
    t = paramiko.Transport(s)
    t.start_client(timeout=10)
    times = []
    last = None  # when the previous failure came back
    try:
        for guess in ("password", "123456", "alice", "letmein", "hunter2"):
            try:
                t.auth_password("alice", guess)
                pytest.fail("a password was accepted")
            except (paramiko.BadAuthenticationType, paramiko.AuthenticationException):
                now = time.monotonic()
                times.append(now - last if last is not None else 0.0)
                last = now
            except (paramiko.SSHException, EOFError, OSError):
                break  # the broker closed the connection
            if len(times) == 2:
                # While the guesser waits, another address logs in.
                honest_session_works(b)
        wait_until(lambda: not t.is_active(), 15, "the broker to drop the guessing connection")
    finally:
        t.close()
    # (paramiko may report the closed connection as one more failed attempt)
    assert len(times) >= 3, times
    fails = b.wait_audit("auth_failure", lambda e: e.get("client", "").startswith(ATTACKER)
                         and "password" in e.get("reason", ""), count=4)
    assert len(fails) == 4, fails
    # Every guess after the first waited out the penalty, until max_auth_tries: the
    # broker reads nothing for `delay` after handling a failure, so it handles them
    # `delay` apart, less the part of the event-loop turn that came before the
    # audit line (libuv counts a timer from the turn's start).
    assert all(g >= delay - FAILURE_SLACK for g in failure_gaps(b)), (failure_gaps(b), times)
    assert all(e["user"] == "alice" for e in fails)
    # A "would this key do?" query with a wrong key is not penalised (see
    # test_penalty_holds_only_the_guessing_connection for the proof by order).
    wrong = keys("mallory")
    r = b.ssh("alice", "local", "--", "echo in", opts=["-i", str(wrong.path)])
    assert (r.returncode, r.stdout) == (0, b"in\n"), r.stderr


def guess_in_background(t, guess="wrong"):
    """Start one password guess on transport t; returns the thread and its result list."""
    result = []

    def run():
        try:
            t.auth_password("alice", guess)
            result.append("accepted")
        except Exception as e:  # noqa: BLE001 - any end of the attempt will do
            result.append(type(e).__name__)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, result


def test_penalty_holds_only_the_guessing_connection(broker, keys):
    """With the longest delay (60 s), a guesser's second attempt is held while
    an honest login and a login offering a wrong key first both complete:
    proved by order, not by a stopwatch."""
    b = broker(settings={"auth_failure_delay": "60s"})
    t = paramiko.Transport(attacker_socket(b.port))
    t.start_client(timeout=10)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            t.auth_password("alice", "first")          # the first failure arms the delay
        held, result = guess_in_background(t)
        b.wait_audit("auth_failure", lambda e: e.get("client", "").startswith(ATTACKER))
        honest_session_works(b)
        wrong = keys("mallory")
        r = b.ssh("alice", "local", "--", "echo in", opts=["-i", str(wrong.path)])
        assert (r.returncode, r.stdout) == (0, b"in\n"), r.stderr
        assert held.is_alive() and result == [], "the guess was answered within the delay"
    finally:
        t.close()


@pytest.mark.parametrize("value,ok", [("0", True), ("500ms", True), ("60s", True), ("60", True),
                                      ("61s", False), ("60001ms", False), ("-1s", False),
                                      ("soon", False)])
def test_auth_failure_delay_values(build, broker, value, ok):
    b = broker(settings={"auth_failure_delay": value}, start=False)
    b.write_config()
    r = subprocess.run([str(build.broker), "--check-config", str(b.config_path)],
                       capture_output=True, timeout=30, env=b.env)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert_refused(r, 2, "auth_failure_delay")


@pytest.mark.parametrize("setting,least", [(None, 1.0), ("500ms", 0.5), ("0", 0.0)])
def test_auth_failure_delay_waits_at_least_its_value(broker, setting, least):
    """The default is 1 s; each failure after the first costs at least the delay
    (a lower bound the broker guarantees); with 0 the guesser is cut off at
    max_auth_tries all the same."""
    b = broker(settings={"max_auth_tries": 3, **({"auth_failure_delay": setting}
                                                  if setting else {})})
    t = paramiko.Transport(attacker_socket(b.port))
    t.start_client(timeout=10)
    times = []  # between one failure's reply and the next one's
    last = None
    try:
        for guess in ("a", "b", "c", "d"):
            try:
                t.auth_password("alice", guess)
            except paramiko.AuthenticationException:
                now = time.monotonic()
                times.append(now - last if last is not None else 0.0)
                last = now
            except (paramiko.SSHException, EOFError, OSError):
                break
        wait_until(lambda: not t.is_active(), 15, "the broker to drop the guessing connection")
    finally:
        t.close()
    fails = b.wait_audit("auth_failure", lambda e: e.get("client", "").startswith(ATTACKER)
                         and "password" in e.get("reason", ""), count=3)
    assert len(fails) == 3, fails
    assert all(g >= least - FAILURE_SLACK for g in failure_gaps(b)), (failure_gaps(b), times)


def test_key_exchanges_that_never_finish_are_ended(broker):
    grace = 2
    b = broker(settings={"login_grace_time": grace})
    socks = []
    try:
        t0 = time.monotonic()
        for n in range(6):
            s = attacker_socket(b.port)
            assert (got_banner(s, 10) or b"").startswith(b"SSH-2.0-")
            s.sendall(b"SSH-2.0-stalled_%d\r\n" % n)
            if n % 2:
                # Half a KEXINIT packet, then nothing.
                s.sendall(b"\x00\x00\x01\x00\x0a\x14" + os.urandom(40))
            socks.append(s)
        honest_session_works(b)

        def all_closed():
            for s in socks:
                s.settimeout(0.05)
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    pass
            return True
        wait_until(all_closed, grace + 10, "the stalled key exchanges to be ended")
        assert time.monotonic() - t0 >= grace - 0.5
    finally:
        for s in socks:
            s.close()
    evs = b.wait_audit("auth_failure", lambda e: "grace" in e.get("reason", ""), count=6)
    assert all(e["client"].startswith(ATTACKER) for e in evs)


# ---------------------------------------------------------------- commands and names

NASTY_COMMANDS = [
    "echo 'single' \"double\" `back` $(sub) ${var}",
    "line one\nline two\n\nline four",
    "trailing newline\n",
    "; rm -rf / ; echo",
    "a\\b\\\\c \\n",
    "tab\there\rcarriage",
    "-c",
    "--help",
    "'unbalanced \"quotes",
    "ünïcödé ✓",
    " leading and trailing spaces ",
    "x" * 4000,
]


def test_commands_reach_the_shell_as_one_argument(broker, tmp_path):
    # A "shell" that reports its argv, NUL-separated, instead of running anything.
    dump = tmp_path / "argv-dump"
    dump.write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    dump.chmod(0o755)
    b = broker(targets={"local": {"shell": str(dump)}})
    c = b.connect("alice")
    try:
        for cmd in NASTY_COMMANDS:
            chan = c.get_transport().open_session()
            chan.exec_command(f"local -- {cmd}".encode())
            out, err = drain_channel(chan)
            assert chan.recv_exit_status() == 0, (cmd, err)
            # "--" first, so that a command starting with "-" is not an option of sh.
            # Blanks right after the "--" of the request separate; the rest is kept.
            assert out == b"-c\0--\0" + cmd.lstrip(" ").encode() + b"\0", (cmd, out[:200])
            chan.close()
    finally:
        c.close()
    recs = b.wait_recordings(len(NASTY_COMMANDS))
    assert sorted(r.command for r in recs) == sorted(c.lstrip(" ") for c in NASTY_COMMANDS)


def test_client_cannot_influence_recording_paths(broker, tmp_path):
    b = broker(targets={"local": {"shell": "/bin/sh"}})
    outside = tmp_path / "outside"
    outside.mkdir()
    cmds = [f"echo ../../../{outside}/x", "echo /etc/passwd", "echo ..", "echo a/../../b"]
    for cmd in cmds:
        r = b.ssh("alice", "local", "--", cmd)
        assert r.returncode == 0
    # Names with path tricks are refused before anything is recorded.
    for target in ("../local", "local/../local", "./local", "local/..", "..%2flocal"):
        r = b.ssh("alice", "--", target, "--", "echo no")
        assert r.returncode == 1 and r.stdout == b"", (target, r.returncode, r.stderr)
    recs = b.wait_recordings(len(cmds))
    names = sorted(p.name for p in b.recordings_dir.iterdir())
    assert len(names) == len(cmds), names
    for rec in recs:
        assert UUID_REC.match(rec.path.name), rec.path.name
        assert rec.path.name == f"{rec.session}.rec"
        assert rec.path.parent == b.recordings_dir
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------- files

def broker_start_fails(build, b, status=1) -> subprocess.CompletedProcess:
    """The broker refuses to start: 2 for a configuration mistake, 1 for anything else."""
    b.write_config()
    r = subprocess.run([str(build.broker), "--config", str(b.config_path)], cwd=b.workdir,
                       capture_output=True, timeout=30, env=b.env)
    assert_refused(r, status)
    return r


def test_host_key_readable_by_others_is_warned_with_the_fix(broker):
    b = broker()
    b.stop()
    os.chmod(b.host_key_path, 0o644)
    size = b.log_size()
    b.start()
    m = b.wait_log(r"host key (\S+) is readable by others \(mode 644\); fix with: chmod 600 (\S+)",
                   since=size)
    assert m.group(1) == m.group(2)
    honest_session_works(b)


def test_authorized_keys_writable_by_others_is_refused(build, broker, keys, tmp_path):
    ak = tmp_path / "alice_authorized_keys"
    ak.write_text(keys("alice").pub + "\n")
    os.chmod(ak, 0o666)
    b = broker(users={"alice": {"groups": ["oncall"], "authorized_keys": ak}}, start=False)
    r = broker_start_fails(build, b, 2)
    assert b"writable by group or others; fix with: chmod go-w" in r.stderr, r.stderr
    os.chmod(ak, 0o644)   # readable is fine: public keys are not secret
    b.start()
    honest_session_works(b)


def test_recordings_directory_symlink_is_refused(build, broker, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    b = broker(start=False)
    link = b.workdir / "state" / "recordings"
    link.symlink_to(elsewhere)
    r = broker_start_fails(build, b)
    err = r.stderr.decode()
    assert f"the recordings directory {b.settings['recordings']} is a symbolic link" in err \
        or "is a symbolic link; refusing to start" in err, err
    assert list(elsewhere.iterdir()) == []
    # Naming the real directory works.
    b.write_config(settings={"recordings": str(elsewhere)})
    b.start()
    honest_session_works(b)
    assert len(list(elsewhere.glob("*.rec"))) == 1


# ---------------------------------------------------------------- the local target's account

def test_local_target_runs_as_its_own_account_not_the_brokers(broker):
    """targets.local.user: sessions run with that uid and its groups, and cannot
    read the signing key, the audit log or signal the broker."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    b = broker(targets={"local": {"shell": "/bin/sh", "user": "nobody"}})
    key = b.path(b.settings.get("signing_key", "state/signing_ed25519"))
    r = b.ssh("alice", "local", "--", "id -u; id -g; id -G; echo HOME=$HOME; pwd")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().split("\n")
    assert lines[0] == str(nobody.pw_uid) and lines[1] == str(nobody.pw_gid), r.stdout
    assert "0" not in lines[2].split(), r.stdout
    r = b.ssh("alice", "local", "--", f"cat {key}; cat {b.audit_path}; kill -0 {b.pid}")
    # `kill -0` last: refused, so the shell's status is 1; nothing of the key or the log read.
    assert r.returncode == 1 and b"BEGIN" not in r.stdout and b"session_start" not in r.stdout, r
    assert r.stderr.count(b"ermission denied") + r.stderr.count(b"Operation not permitted") >= 2
    # With a terminal, the terminal is the account's.
    r = b.ssh("alice", "local", "--", "stat -c %u $(tty)", opts=("-tt",))
    assert r.returncode == 0 and r.stdout.strip() == str(nobody.pw_uid).encode(), r


def test_local_target_as_root_or_the_brokers_user_is_refused(build, broker):
    b = broker(targets={"local": {"shell": "/bin/sh", "user": "root"}}, start=False)
    r = broker_start_fails(build, b, 2)
    assert b'targets.local.user "root" is root' in r.stderr, r.stderr
    assert b"allow_broker_user: true" in r.stderr
    b.write_config(targets={"local": {"shell": "/bin/sh", "user": "root",
                                      "allow_broker_user": True}})
    b.start()
    b.wait_log(r'warning: targets.local.user "root" is root')
    honest_session_works(b)


# ---------------------------------------------------------------- window changes

def test_window_change_flood_is_coalesced_and_capped(broker):
    """400 window changes at once are applied as a few (the last size wins),
    and a terminal larger than 1000x500 is given 1000x500."""
    b = broker()
    c = b.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        cmd = "echo ready; while read x; do stty size; done"
        chan.exec_command(f"local -- {cmd}")
        out = bytearray()

        def saw(text):
            while chan.recv_ready():
                out.extend(chan.recv(65536))
            return text in out
        wait_until(lambda: saw(b"ready"), 10, "ready")
        for i in range(400):
            chan.resize_pty(width=100 + i % 50, height=30 + i % 20)

        def stty_size():
            del out[:]
            chan.sendall(b"\n")
            m = wait_until(lambda: saw(b"") and re.search(rb"(\d+ \d+)\r\n", out), 10,
                           "stty size")
            return m.group(1)
        wait_until(lambda: stty_size() == b"49 149", 10, "the last size")
        chan.resize_pty(width=5000, height=5000)
        wait_until(lambda: stty_size() == b"500 1000", 10, "the capped size")
        honest_session_works(b)
        chan.close()
    finally:
        c.close()
    rec = b.recording_for(cmd)
    sizes = rec.resizes()
    assert sizes[-1] == (1000, 500), sizes[-5:]
    assert (149, 49) in sizes
    assert len(sizes) < 100, f"{len(sizes)} resize events for 401 window changes"


# ---------------------------------------------------------------- audit floods

def _attacker_transport(port: int) -> paramiko.Transport:
    t = paramiko.Transport(attacker_socket(port))
    t.banner_timeout = 10
    t.start_client(timeout=10)
    return t


def test_long_user_name_is_refused_with_one_bounded_event(broker):
    b = broker()
    key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    key = key or paramiko.ECDSAKey.generate()
    t = _attacker_transport(b.port)
    try:
        with pytest.raises((paramiko.AuthenticationException, paramiko.SSHException, EOFError)):
            t.auth_publickey("u" * 250000, key)
        wait_until(lambda: not t.is_active(), 10, "the connection to end")
    finally:
        t.close()
    evs = b.wait_audit("auth_failure", lambda e: e.get("client", "").startswith(ATTACKER + ":"))
    assert len(evs) == 1, evs
    assert evs[0]["user"] == "u" * 256 and evs[0]["reason"] == "user name longer than 256 bytes"
    assert b.audit_path.stat().st_size < 4096
    honest_session_works(b)


def test_audit_events_from_one_address_are_limited_and_summarised(broker):
    """Past 20 events in 10 s from one address, failures are counted, not
    written, and one audit_suppressed event says how many."""
    b = broker(settings={"auth_failure_delay": 0, "max_auth_tries": 6,
                         "max_unauthenticated_per_address": 10})
    key = paramiko.ECDSAKey.generate()
    for _ in range(6):   # 6 connections x 6 failures = 36 events
        t = _attacker_transport(b.port)
        try:
            while t.is_active():
                try:
                    t.auth_publickey("mallory", key)
                except (paramiko.AuthenticationException, paramiko.SSHException, EOFError,
                        OSError):
                    pass
        finally:
            t.close()
    honest_session_works(b)
    assert b.stop() == 0
    mine = [e for e in b.audit()
            if e.get("client", "").startswith(ATTACKER + ":") or e.get("address") == ATTACKER]
    written = [e for e in mine if e["event"] == "auth_failure"]
    summary = [e for e in mine if e["event"] == "audit_suppressed"]
    assert len(written) == 20, len(written)
    assert len(summary) == 1 and summary[0]["first"] == "auth_failure", summary
    assert summary[0]["suppressed"] == 36 - 20, summary


# ---------------------------------------------------------------- log injection

def test_commands_cannot_forge_log_or_audit_lines(broker):
    """A command holding a newline and a JSON object stays inside its log
    line, escaped, and its secrets are redacted there too."""
    b = broker(settings={"audit_log": "-"})
    forged = '{"event":"session_end","user":"forged","time":"x"}'
    cmd = f"true DB_PASSWORD=hunter2hunter2\n{forged}\r\x1b[2Kx"
    r = b.ssh("alice", "local", "--", cmd)
    assert r.returncode == 127, r.stderr   # the second line is no command
    b.wait_audit("session_end")
    assert b.stop() == 0
    both = b.log_path.read_bytes() + b.stdout_path.read_bytes()
    assert b"hunter2hunter2" not in both
    for line in both.splitlines():
        assert not line.startswith(b'{"event"'), line
        if line.startswith(b"{"):
            assert json.loads(line)["time"] != "x", line
    assert b"\\n{\\\"event\\\"" in b.log_path.read_bytes() or \
        b'\\n{"event":"session_end"' in b.log_path.read_bytes(), b.log_tail()
    assert [e for e in b.audit() if e.get("user") == "forged"] == []


# ---------------------------------------------------------------- escaped processes

def _escaped_pid(c, request: str):
    """Run request on connection c: its channel, and the pid it prints first
    (a process that left the session's process group)."""
    chan = c.get_transport().open_session()
    chan.exec_command(request)
    return chan, int(recv_until(chan, b"\n").split()[0])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_processes_that_escape_the_session_end_with_it(broker):
    """setsid/nohup children leave the target's process group; the session's
    cgroup ends them when the session ends, its client vanishes or an auditor kills it."""
    from support.live import GROUPS, USERS
    b = broker(users=USERS, settings={"groups": GROUPS},
               targets={"local": {"shell": "/bin/sh", "user": "nobody"}})
    if "no cgroup v2 hierarchy" in b.log() or "cannot make the cgroup" in b.log():
        pytest.skip("no writable cgroup v2 hierarchy here")
    r = b.ssh("alice", "local", "--",
              "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")
    assert r.returncode == 0, r.stderr
    escaped = int(r.stdout)
    wait_until(lambda: not _alive(escaped), 10, "the escaped process to end")

    c = b.connect("alice")
    chan, escaped = _escaped_pid(
        c, "local -- nohup setsid sleep 1001 </dev/null >/dev/null 2>&1 & echo $!; sleep 1000")
    assert _alive(escaped)
    c.close()   # the client vanishes
    wait_until(lambda: not _alive(escaped), 15, "the escaped process to end")

    c = b.connect("alice")
    chan, escaped = _escaped_pid(
        c, "local -- setsid sleep 1002 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 1000")
    assert _alive(escaped)
    sid = wait_until(lambda: [x["id"] for x in json.loads(b.ssh("bob", "sessions", "--json")
                                                          .stdout)
                              if x["command"].startswith("setsid sleep 1002")],
                     15, "the session listed")[0]
    r = b.ssh("bob", "kill", sid, "escaped processes go too")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: not _alive(escaped), 15, "the escaped process to end")
    c.close()
    honest_session_works(b)


def test_processes_a_killed_broker_left_end_when_the_next_starts(broker):
    """A broker killed with -9 ends none of its sessions: their processes run on in
    the broker's cgroup. The next broker started in the same cgroup ends them and
    removes what the dead one made, and says so."""
    dead = broker(targets={"local": {"shell": "/bin/sh", "user": "nobody"}})
    if "no cgroup v2 hierarchy" in dead.log() or "cannot make the cgroup" in dead.log():
        pytest.skip("no writable cgroup v2 hierarchy here")
    c = dead.connect("alice")
    chan, escaped = _escaped_pid(
        c, "local -- setsid sleep 1003 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 1000")
    dead_pid = dead.pid
    dead.proc.kill()
    dead.proc.wait(10)
    dead._close_files()
    dead.proc = None  # killed on purpose: the fixture leaves it alone
    c.close()
    assert _alive(escaped), "the escaped process ended with the broker"
    nxt = broker(targets={"local": {"shell": "/bin/sh", "user": "nobody"}})
    wait_until(lambda: not _alive(escaped), 15, "the process the dead broker left to end")
    assert f"broker {dead_pid} is gone: the processes of its 1 sessions left" in nxt.log(), \
        nxt.log_tail()
    honest_session_works(nxt)

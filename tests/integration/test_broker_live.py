"""Live supervision through the broker (docs/live.md): sessions, watch, kill,
approvals, and refusals for users without the role, driven with the OpenSSH
client (and paramiko where a client must misbehave)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import wait_until
from conftest import drain_channel
from recording import Recording
from support import exit_status, read_until, recv_until
from support.terminal import Terminal
from support.live import GROUPS, USERS, Follower, Tmux, finish, start_bg, wait_request


def live_broker(broker, rules=None):
    return broker(users=USERS, settings={"groups": GROUPS},
                  rules=rules or [{"groups": ["oncall"], "targets": ["local"],
                                   "announce_watchers": True}])


def live_sessions(b, user="bob"):
    r = b.ssh(user, "sessions", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_session(b, command):
    found = []

    def check():
        found[:] = [s for s in live_sessions(b) if s["command"] == command]
        return bool(found)
    wait_until(check, timeout=15, what=f"live session running {command!r}")
    return found[0]


def watchers_of(b, sid):
    """The number of watchers of live session sid (0 when it is not listed)."""
    return sum(x["watchers"] for x in live_sessions(b) if x["id"] == sid)


def gate(path):
    """A FIFO: a session blocks in `cat GATE` until the test releases it."""
    os.mkfifo(path)
    return path


def release(path):
    """Let the session waiting in `cat path` go on (opening blocks until it reads)."""
    with open(path, "wb"):
        pass


# ---------------------------------------------------------------- sessions

def test_sessions_lists_running_sessions(broker):
    b = live_broker(broker)
    p = start_bg(b, "alice", "local", "--", "sleep 30")
    try:
        s = wait_session(b, "sleep 30")
        assert s["user"] == "alice" and s["target"] == "local" and s["watchers"] == 0
        assert re.fullmatch(r"[0-9a-f-]{36}", s["id"])
        assert isinstance(s["idle_seconds"], int) and isinstance(s["bytes_out"], int)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["start"])
        r = b.ssh("carol", "sessions")
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        assert text.splitlines()[0].split()[:3] == ["ID", "USER", "TARGET"]
        assert s["id"] in text and "sleep 30" in text
        assert b.wait_audit("admin_command", lambda e: e.get("command") == "sessions")
        # the admin session has a recording of its own
        assert any(r.header["where"].get("target") == "podgate:sessions"
                   for r in b.recordings() if r.header.get("where"))
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("cmd,role", [
    (["sessions"], "auditor"), (["sessions", "--json"], "auditor"),
    (["watch", "0190"], "auditor"), (["kill", "0190", "x"], "auditor"),
    (["pending"], "approver"), (["pending", "--follow"], "approver"),
    (["approve", "0190"], "approver"),
    (["deny", "0190"], "approver")])
def test_non_auditors_refused(broker, cmd, role):
    b = live_broker(broker)
    user = "alice" if role == "auditor" else "carol"
    r = b.ssh(user, *cmd)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == f"podgate: '{cmd[0]}' needs the {role} role"
    assert r.stdout == b""
    assert b.wait_audit("refused", lambda e: f"needs the {role} role" in e.get("reason", ""))


# ---------------------------------------------------------------- kill

def test_kill_ends_session_with_reason(broker):
    b = live_broker(broker)
    p = start_bg(b, "alice", "local", "--", "sleep 60")
    try:
        s = wait_session(b, "sleep 60")
        r = b.ssh("bob", "kill", s["id"], "too", "risky")
        assert r.returncode == 0, r.stderr
        assert (r.stdout + r.stderr).decode().strip() == f"podgate: session {s['id']} ended"
        rc, out, err = finish(p)
        assert rc == 255  # the target ended by a signal: ssh has no status to pass on
        assert b"podgate: session ended by bob: too risky" in err
        b.wait_audit("session_killed")
        ev = b.events("session_killed")[0]
        assert ev["killed"] == s["id"] and ev["reason"] == "too risky" and ev["user"] == "bob"
        assert ev["killed_user"] == "alice" and ev["target"] == "local", ev
        wait_until(lambda: not [x for x in live_sessions(b) if x["id"] == s["id"]],
                   what="killed session gone")
        path = b.recordings_dir / f"{s['id']}.rec"
        wait_until(lambda: b"session ended by bob: too risky" in path.read_bytes(),
                   what="marker in the recording")
        r = b.ssh("bob", "kill", s["id"])
        assert r.returncode == 1 and b"no live session" in r.stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- watch

SCREEN = (b"\x1b[2J\x1b[Hhello world\r\n\x1b[31mred text\x1b[0m and \x1b[1mbold\x1b[0m\r\n"
          + b"".join(b"line %d of the scrolling part\r\n" % i for i in range(30))
          + b"\x1b[5;10Hmoved here\x1b[K\x1b[12;1H\x1b[7mreverse\x1b[0m partial"
          + "\x1b[14;3Hwide: \u4e2d\u6587 done".encode())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux missing")
def test_watch_late_joiner_sees_screen_then_live_output(broker, tmp_path):
    b = live_broker(broker)
    f = tmp_path / "screen.bin"
    f.write_bytes(SCREEN)
    tm = Tmux(tmp_path / "tmux.sock")
    c = b.connect("alice")
    try:
        # the reference: tmux's rendering of the same bytes through a PTY
        tm.new("ref", f"cat {shlex.quote(str(f))}; sleep 60")
        wait_until(lambda: "partial" in "\n".join(tm.capture("ref")), what="reference drawn")
        ref = tm.capture("ref")
        ref_cursor = tm.cursor("ref")

        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        cmd = f"cat {shlex.quote(str(f))}; read x; echo AFTER-MARK; read y; echo \"y=[$y]\""
        chan.exec_command(f"local -- {cmd}")
        seen = b""

        def drawn():
            nonlocal seen
            while chan.recv_ready():
                seen += chan.recv(65536)
            return b"partial" in seen
        wait_until(drawn, what="watched session output")
        s = wait_session(b, cmd)

        tm.new("watch", shlex.join(b.ssh_args("bob", "watch", s["id"], opts=["-tt"])))
        wait_until(lambda: tm.capture("watch") == ref, timeout=15,
                   what="the watcher's screen equal to tmux's rendering")
        wait_until(lambda: tm.cursor("watch") == ref_cursor, what="cursor placed")
        # the watched user is told
        wait_until(lambda: (chan.recv_stderr_ready() and b"bob is watching" in
                            chan.recv_stderr(4096)), what="announcement")
        assert [x for x in live_sessions(b) if x["id"] == s["id"]][0]["watchers"] == 1

        # then the live stream
        chan.sendall(b"\n")
        wait_until(lambda: any("AFTER-MARK" in l for l in tm.capture("watch")),
                   what="new output in the watcher's view")
        # keystrokes are not forwarded; q leaves
        tm.run("send-keys", "-t", "watch", "x")
        tm.run("send-keys", "-t", "watch", "q")
        wait_until(lambda: b.events("watch_end"), what="watch ended")
        # alice's Enter ends `read y`: had the watcher's x or q reached her shell, y holds them.
        chan.sendall(b"\n")
        out = recv_until(chan, b"]\r\n", buf=bytearray(seen))
        assert re.search(rb"y=\[(.*)\]\r\n", bytes(out)).group(1) == b"", bytes(out[-200:])
        assert chan.recv_exit_status() == 0
    finally:
        tm.kill()
        c.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux missing")
def test_watch_late_joiner_of_a_session_without_pty(broker, tmp_path):
    """An exec session without a PTY that printed more than the broker keeps for it
    (its output is not emulated while nobody watches): a late watcher sees its last
    lines, each from the left margin, then the live output."""
    b = live_broker(broker)
    tm = Tmux(tmp_path / "tmux.sock")
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # 200 KB of numbered lines, more than the 64 KiB kept for a late watcher.
    cmd = (f"seq -f 'line %06g ..........................................' 1 4000; "
           f"echo LAST-BEFORE; read x < {shlex.quote(str(fifo))}; echo AFTER-MARK; sleep 30")
    p = start_bg(b, "alice", "local", "--", cmd)
    try:
        s = wait_session(b, cmd)
        wait_until(lambda: [x for x in live_sessions(b) if x["id"] == s["id"]][0]["bytes_out"]
                   >= 4000 * 50, what="the session's output sent")
        tm.new("watch", shlex.join(b.ssh_args("bob", "watch", s["id"], opts=["-tt"])))
        wait_until(lambda: any(l == "LAST-BEFORE" for l in tm.capture("watch")), timeout=15,
                   what="the session's last line on the watcher's screen")
        screen = tm.capture("watch")
        last = screen.index("LAST-BEFORE")
        assert last >= 5 and all(screen[i] == f"line {4000 - last + i + 1:06d} " + "." * 42
                                 for i in range(last)), screen
        with open(fifo, "w") as f:
            f.write("\n")
        wait_until(lambda: "AFTER-MARK" in tm.capture("watch"), what="live output after joining")
    finally:
        tm.kill()
        p.kill()
        p.wait()


def test_watch_session_end_detaches_watchers(broker, tmp_path):
    b = live_broker(broker)
    end = gate(tmp_path / "end")
    cmd = f"cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd)
    s = wait_session(b, cmd)
    watchers = [start_bg(b, u, "watch", s["id"], opts=["-tt"]) for u in ("bob", "carol")]
    wait_until(lambda: watchers_of(b, s["id"]) == 2, what="two watchers")
    starts = b.wait_audit("watch_start", count=2)
    assert sorted(e["user"] for e in starts) == ["bob", "carol"]
    assert all(e["watched"] == s["id"] and e["watched_user"] == "alice" and
               e["target"] == "local" for e in starts), starts
    release(end)
    finish(p)
    for w in watchers:
        rc, out, err = finish(w)
        assert rc == 0
        assert b"podgate: session ended" in out + err


def test_slow_watcher_dropped_without_delaying_session(broker, tmp_path):
    b = live_broker(broker)
    size = 16 * 1024 * 1024
    go, end = gate(tmp_path / "go"), gate(tmp_path / "end")
    cmd = f"cat {go} >/dev/null; head -c {size} /dev/zero | tr '\\0' x; cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd, opts=["-tt"])
    s = wait_session(b, cmd)
    # a watcher that never reads: a small window and no reads
    c = b.connect("bob")
    try:
        chan = c.get_transport().open_session(window_size=32768, max_packet_size=16384)
        chan.get_pty(term="xterm", width=80, height=24)
        chan.exec_command(f"watch {s['id']}")
        wait_until(lambda: watchers_of(b, s["id"]) == 1, what="the watcher attached")
        release(go)
        # The whole flood reaches alice although the watcher reads nothing: the
        # session never waits for a watcher (were it to, this would hang).
        n = 0
        term = Terminal(fd=p.stdout.fileno(), chunk=1 << 20)
        deadline = time.monotonic() + 120  # a guard against a hang, not a measure of speed
        while n < size and time.monotonic() < deadline and term.pump(0.5):
            n += term.buf.count(b"x")
            term.buf.clear()
        assert n >= size, f"{n} of {size} bytes of the flood reached alice"
        b.wait_audit("watch_end", lambda e: "too slow" in e.get("reason", ""))
        # The dropped watcher is told so and exits 1; the session goes on.
        out, err = drain_channel(chan)
        assert b"podgate: you were too slow; watch again to rejoin" in out + err
        assert chan.recv_exit_status() == 1
        assert p.poll() is None
        release(end)
        finish(p)
    finally:
        c.close()


# ---------------------------------------------------------------- approvals

APPROVE_RULES = [{"groups": ["oncall"], "targets": ["local"],
                  "commands": {"approve": ["rm *", "re:^danger"], "approve_timeout": "3s"}}]


def test_approve_starts_the_request(broker, tmp_path):
    b = live_broker(broker, APPROVE_RULES)
    ran = tmp_path / "ran"
    cmd = f"danger; touch {ran}; echo approved-run"
    p = start_bg(b, "alice", "local", "--", cmd)
    rid = wait_request(p)
    r = b.ssh("bob", "pending")
    assert r.returncode == 0 and rid.encode() in r.stdout and b"danger" in r.stdout
    # Held: nothing started, although the broker has since served `pending`.
    assert p.poll() is None and not ran.exists()
    req = b.wait_audit("approval_requested")[0]
    assert req["timeout_s"] == 3 and req["command"] == cmd and req["target"] == "local", req
    r = b.ssh("bob", "approve", rid[:8])  # a unique prefix of 8 characters will do
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).decode().strip() == f"podgate: request {rid} approved"
    rc, out, err = finish(p)
    assert b"approved-run" in out
    ev = b.wait_audit("approved")
    assert b.events("approved")[0]["request"] == rid and b.events("approved")[0]["user"] == "bob"
    assert b.events("approval_requested")[0]["session"] == rid
    raw = (b.recordings_dir / f"{rid}.rec").read_bytes()
    assert b"approver" in raw and b"bob" in raw and b"decided_at" in raw
    assert ev


def test_deny_refuses_with_126_and_reason(broker):
    b = live_broker(broker, APPROVE_RULES)
    p = start_bg(b, "alice", "local", "--", "rm -rf /tmp/nothing-here")
    rid = wait_request(p)
    r = b.ssh("bob", "deny", rid, "not", "today")
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).decode().strip() == f"podgate: request {rid} denied"
    rc, out, err = finish(p)
    assert rc == 126
    assert b"podgate: request denied by bob: not today\n" in err
    assert b.wait_audit("denied")


def test_approval_timeout_exits_126(broker):
    b = live_broker(broker, APPROVE_RULES)
    t0 = time.monotonic()
    p = start_bg(b, "alice", "local", "--", "danger now")
    wait_request(p)
    rc, out, err = finish(p)
    assert rc == 126
    assert b"podgate: no approval in time; request refused\n" in err
    assert time.monotonic() - t0 >= 3  # never before approve_timeout
    ev = b.wait_audit("approval_timeout")[0]
    assert ev["command"] == "danger now" and ev["target"] == "local", ev


def test_commands_not_matching_approve_run_at_once(broker):
    b = live_broker(broker, APPROVE_RULES)
    r = b.ssh("alice", "local", "--", "echo fine")
    assert r.returncode == 0 and r.stdout == b"fine\n"


# ---------------------------------------------------------------- redaction

def test_watchers_see_secrets_redacted(broker, tmp_path):
    """A live view gets what the record holds: secrets replaced, never the real token."""
    b = live_broker(broker)
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    go, end = gate(tmp_path / "go"), gate(tmp_path / "end")
    script = f"cat {go} >/dev/null; printf 'token=%s\\n' " + token + f"; cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", script)
    # sessions lists the command as the recording holds it: redacted.
    found = wait_until(lambda: [x for x in live_sessions(b)
                                if x["command"].startswith("cat ") and "printf" in x["command"]],
                       15,
                       "the live session")
    s = found[0]
    assert token not in s["command"] and "[REDACTED:github-token]" in s["command"], s
    w = start_bg(b, "bob", "watch", s["id"], opts=["-tt"])
    wait_until(lambda: watchers_of(b, s["id"]) == 1, what="the watcher attached")
    release(go)
    seen = read_until(w.stdout.fileno(), b"token=")
    release(end)
    rc, out, err = finish(p)
    assert rc == 0 and token.encode() in out          # the user's own terminal: real bytes
    rc, wout, werr = finish(w)
    wout = bytes(seen) + wout
    assert b"[REDACTED:" in wout, wout[-500:]
    assert token.encode() not in wout


# ---------------------------------------------------------------- documented details

def test_watch_redraw_mode_prefix_and_q(broker, tmp_path):
    """A smaller terminal gets redraw mode with its status line; an 8-character
    prefix names the session; q leaves with `podgate: stopped watching`, exit 0."""
    b = live_broker(broker)
    go, end = gate(tmp_path / "go"), gate(tmp_path / "end")
    cmd = f"cat {go} >/dev/null; echo fresh-output; cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd, opts=["-tt"])
    c = b.connect("bob")
    try:
        s = wait_session(b, cmd)
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=60, height=20)
        chan.exec_command(f"watch {s['id'][:8]}")
        buf = recv_until(chan, b"podgate: session is ")
        wait_until(lambda: watchers_of(b, s["id"]) == 1, what="the watcher attached")
        release(go)
        recv_until(chan, b"fresh-output", buf=buf)
        assert re.search(rb"podgate: session is \d+x\d+, your terminal 60x20: showing the "
                         rb"top-left", bytes(buf)), bytes(buf[-500:])
        chan.sendall(b"q")
        out, err = drain_channel(chan)
        assert b"podgate: stopped watching" in out + err
        assert chan.recv_exit_status() == 0
        ev = b.wait_audit("watch_end")[0]
        assert ev["watched"] == s["id"] and ev["user"] == "bob", ev
        assert p.poll() is None  # the watched session goes on
        release(end)
        rc, _, _ = finish(p)
        assert rc == 0
    finally:
        c.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_kill_by_prefix_with_the_default_reason(broker, tmp_path):
    b = live_broker(broker)
    end = gate(tmp_path / "end")
    cmd = f"cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd)
    try:
        s = wait_session(b, cmd)
        r = b.ssh("bob", "kill", s["id"][:8])
        assert r.returncode == 0, r.stderr
        rc, out, err = finish(p)
        assert b"podgate: session ended by bob: no reason given\n" in err
        ev = b.wait_audit("session_killed")[0]
        assert ev["killed"] == s["id"] and ev["reason"] == "no reason given", ev
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_kill_reason_with_a_secret_is_redacted_and_proved(broker, tmp_path):
    """The reason an auditor types is a user's text like any other: the audit
    log holds it redacted, with reason_hmac proving what the marker hides."""
    import hashlib
    import hmac
    b = live_broker(broker)
    key = bytes.fromhex((b.workdir / "state" / "redaction_key").read_text().strip())
    end = gate(tmp_path / "end")
    cmd = f"cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd)
    try:
        s = wait_session(b, cmd)
        reason = "INC-9 DB_PASSWORD=hunter2"
        r = b.ssh("bob", "kill", s["id"], reason)
        assert r.returncode == 0, r.stderr
        rc, out, err = finish(p)
        assert b"session ended by bob: INC-9 DB_PASSWORD=[REDACTED:password]" in err, err
        ev = b.wait_audit("session_killed")[0]
        assert ev["reason"] == "INC-9 DB_PASSWORD=[REDACTED:password]", ev
        assert ev["reason_hmac"] == hmac.new(key, reason.encode(), hashlib.sha256).hexdigest()
        assert b"hunter2" not in (b.workdir / "state" / "audit.jsonl").read_bytes()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_recording_being_written_is_open_then_complete(broker, build, tmp_path):
    """A recording without its seal reads as open while the broker still
    writes it, never as truncated (the word for a crash); sealed, complete."""
    b = live_broker(broker)
    end = gate(tmp_path / "end")
    cmd = f"echo started; cat {end} >/dev/null"
    p = start_bg(b, "alice", "local", "--", cmd)
    try:
        s = wait_session(b, cmd)
        path = b.recordings_dir / f"{s['id']}.rec"

        def state():
            r = subprocess.run([str(build.player), "info", "--json", str(path)],
                               capture_output=True, timeout=30)
            return json.loads(r.stdout)["state"]

        def listed():
            r = subprocess.run([str(build.player), "ls", "--json", "--state", "open",
                                str(b.recordings_dir)], capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
            return [json.loads(x)["session"] for x in r.stdout.decode().splitlines() if x.strip()]

        assert state() == "open"
        assert s["id"] in listed()
        release(end)
        rc, out, err = finish(p)
        assert rc == 0 and out == b"started\n", err
        wait_until(lambda: state() == "complete", 20, "the sealed recording")
        assert s["id"] not in listed()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("cmd,usage", [
    (["sessions", "--bogus"], "usage: sessions [--json]"),
    (["kill"], "usage: kill ID [REASON]"),
    (["watch"], "usage: watch ID"),
    (["approve"], "usage: approve ID"),
    (["pending", "--follow", "--bogus"], "usage: pending [--json] [--follow]")])
def test_admin_commands_bad_arguments_exit_2(broker, cmd, usage):
    b = live_broker(broker)
    r = b.ssh("bob", *cmd)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert usage in r.stderr.decode(), r.stderr
    assert r.stdout == b""


# ---------------------------------------------------------------- approvals: evasion, self, listing

def test_approvals_see_through_quotes_refuse_self_approval_and_show_commands_whole(broker):
    users = dict(USERS, erin={"groups": ["oncall", "sec"]})   # requester and approver
    b = broker(users=users, settings={"groups": GROUPS},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "commands": {"approve": ["echo approve *"], "approve_timeout": "30s"}}])
    # Quoting does not dodge an approve pattern: the shell-word form matches.
    for cmd in ('echo "approve" x', 'echo ap""prove x', "echo \\approve x"):
        p = start_bg(b, "alice", "local", "--", cmd)
        rid = wait_request(p)
        assert b.ssh("bob", "deny", rid).returncode == 0
        assert finish(p)[0] == 126
    # A request is listed whole, escaped, and redacted, as text and JSON.
    long_cmd = "echo approve DB_PASSWORD=hunter2hunter2 " + "a" * 400 + " \u202ex"
    p = start_bg(b, "erin", "local", "--", long_cmd)
    rid = wait_request(p)
    r = b.ssh("bob", "pending")
    assert r.returncode == 0, r.stderr
    assert b"a" * 400 + b" \\u{202E}x" in r.stdout, r.stdout
    assert "\u202e".encode() not in r.stdout and b"hunter2hunter2" not in r.stdout
    r = b.ssh("bob", "pending", "--json")
    held = json.loads(r.stdout)
    assert [h["id"] for h in held] == [rid]
    assert held[0]["command"] == long_cmd.replace("hunter2hunter2", "[REDACTED:password]")
    # The requester cannot approve their own request; another approver can.
    r = b.ssh("erin", "approve", rid)
    assert r.returncode == 1 and b"is your own" in r.stderr, r
    assert p.poll() is None
    r = b.ssh("bob", "approve", rid)
    assert r.returncode == 0, r.stderr
    rc, out, err = finish(p)
    assert rc == 0 and b"a" * 400 in out
    for ev in ("approval_requested", "approved"):
        e = b.wait_audit(ev, lambda e: "a" * 400 in e.get("command", ""))[0]
        assert "hunter2hunter2" not in e["command"] and "[REDACTED:password]" in e["command"]
    assert b"hunter2hunter2" not in b.audit_path.read_bytes()


def test_self_approve_true_lets_a_requester_approve(broker):
    users = dict(USERS, erin={"groups": ["oncall", "sec"]})
    b = broker(users=users, settings={"groups": GROUPS},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "commands": {"approve": ["echo approve *"], "self_approve": True}}])
    p = start_bg(b, "erin", "local", "--", "echo approve mine")
    rid = wait_request(p)
    r = b.ssh("erin", "approve", rid)
    assert r.returncode == 0, r.stderr
    rc, out, err = finish(p)
    assert rc == 0 and out == b"approve mine\n"


# ---------------------------------------------------------------- unrecorded sessions

# Each file the broker writes is cut at this size (RLIMIT_FSIZE, SIGXFSZ ignored):
# a session that prints more goes on unrecorded under on_recording_failure: continue.
FSIZE_LIMIT = 512 * 1024
FSIZE_WRAPPER = ("import os, resource, signal, sys; "
                 "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                 "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
                 "os.execv(sys.argv[2], sys.argv[2:])")


def test_watchers_of_an_unrecorded_session_see_secrets_redacted(broker, tmp_path):
    """A session that lost its recording (on_recording_failure: continue) still redacts
    for its watchers: they get what the recording would hold, even for a secret whose
    key and value come in two reads."""
    b = broker(start=False, users=USERS, settings={"groups": GROUPS},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "on_recording_failure": "continue"}])
    b.wrapper = ["/usr/bin/python3", "-c", FSIZE_WRAPPER, str(FSIZE_LIMIT)]
    b.start()
    secret = "hunter2-not-for-watchers"
    go, end = gate(tmp_path / "go"), gate(tmp_path / "end")
    # More output than a recording may hold, then (once watched) the secret in two reads.
    script = (f"seq 1 120000; cat {go} >/dev/null; printf 'db_password='; sleep 0.2; "
              f"printf '%s\\n' {secret}; echo SHOWN; cat {end} >/dev/null")
    user_out = open(tmp_path / "user.out", "wb")
    p = subprocess.Popen(b.ssh_args("alice", "local", "--", script), stdin=subprocess.PIPE,
                         stdout=user_out, stderr=subprocess.PIPE)
    w = None
    try:
        b.wait_audit("recording_failed", timeout=30)
        s = wait_until(lambda: [x for x in live_sessions(b) if x["command"].startswith("seq ")],
                       15, "the live session")[0]
        w = start_bg(b, "bob", "watch", s["id"])
        wait_until(lambda: watchers_of(b, s["id"]) == 1, what="the watcher attached")
        release(go)
        seen = read_until(w.stdout.fileno(), b"SHOWN")
        release(end)
        rc, _, err = finish(p)
        out = (tmp_path / "user.out").read_bytes()
        assert rc == 0 and f"db_password={secret}".encode() in out, err   # the user: real bytes
        rc, wout, werr = finish(w)
        wout = bytes(seen) + wout
        assert b"[REDACTED:password]" in wout, wout[-800:]
        assert secret.encode() not in wout and secret[:8].encode() not in wout
        ev = b.events("recording_failed")[0]
        assert "continues unrecorded" in ev["reason"], ev
    finally:
        user_out.close()
        for x in (p, w):
            if x is not None and x.poll() is None:
                x.kill()
                x.wait()


def test_metrics_count_held_requests_and_admin_sessions_apart(broker, tmp_path):
    """A request waiting for an approver is a held request in /metrics, an admin command
    an admin session; neither is counted as the other."""
    import http.client
    from conftest import free_port

    def metrics():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^(podgate_[^ ]+) (\S+)$", text, re.M)}

    port = free_port()
    b = broker(users=USERS, settings={"groups": GROUPS, "metrics_listen": f"127.0.0.1:{port}"},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "commands": {"approve": ["re:^danger"], "approve_timeout": "30s"}}])
    p = start_bg(b, "alice", "local", "--", "danger; echo ran")
    try:
        rid = wait_request(p)
        m = metrics()
        assert m["podgate_approvals_held"] == 1 and m['podgate_sessions{kind="admin"}'] == 0, m
        r = b.ssh("bob", "deny", rid)
        assert r.returncode == 0, r.stderr
        rc, out, err = finish(p)
        assert rc == 126
        wait_until(lambda: metrics()["podgate_approvals_held"] == 0, what="no request held")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_watched_session_whose_terminal_shrinks(broker):
    """A session's terminal shrinks with the cursor at the bottom (rows scroll
    up), then with the cursor at the top and insert mode on (rows above it go):
    the broker's screen follows and a watcher sees the output after it."""
    b = live_broker(broker)
    c = b.connect("alice")
    w = b.connect("bob")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        cmd = ("seq 1 40; read x; printf '\\033[H\\033[4h'; read y; echo shrunk-$y; "
               "read z")
        chan.exec_command(f"local -- {cmd}")
        buf = recv_until(chan, b"40\r\n")
        s = wait_session(b, cmd)

        def resized(cols, rows):
            """Wait until the broker applied a window change (a burst of them is
            applied once, a moment after the first): the recording says so."""
            def seen():
                for p in b.recording_paths():
                    rec = Recording.load(p, allow_truncated=True)
                    if rec.command == cmd:
                        return any(e.code == "r" and list(e.payload) == [cols, rows]
                                   for e in rec.events)
                return False
            wait_until(seen, 15, f"the session resized to {cols}x{rows}")
        chan.resize_pty(width=80, height=20)
        resized(80, 20)
        chan.sendall(b"\n")
        recv_until(chan, b"\x1b[4h", buf=buf)
        # The output after the shrink is what must survive it: the shrink first.
        chan.resize_pty(width=70, height=8)
        resized(70, 8)
        chan.sendall(b"ok\n")
        recv_until(chan, b"shrunk-ok", buf=buf)

        wch = w.get_transport().open_session()
        wch.get_pty(term="xterm", width=70, height=8)
        wch.exec_command(f"watch {s['id']}")
        recv_until(wch, b"shrunk-ok")
        wch.sendall(b"q")
        out, err = drain_channel(wch)
        assert b"podgate: stopped watching" in out + err
        chan.sendall(b"\n")
        assert chan.recv_exit_status() == 0
    finally:
        w.close()
        c.close()


# ---------------------------------------------------------------- pending --follow

FOLLOW_RULES = [{"groups": ["oncall"], "targets": ["local"],
                 "commands": {"approve": ["rm *", "re:^danger"], "approve_timeout": "2m"}}]


def test_pending_follow_announces_requests_as_they_come_and_go(broker):
    b = live_broker(broker, FOLLOW_RULES)
    first = start_bg(b, "alice", "local", "--", "danger=1; echo one")
    second = text = as_json = None
    try:
        rid1 = wait_request(first)
        text = Follower(b, "bob", "--follow")
        as_json = Follower(b, "bob", "-f", "--json")
        # First the requests held now, as pending lists them; then the events.
        text.wait_out(lambda l: l.split()[:2] == [b"ID", b"USER"], what="the table's header")
        row = text.wait_out(lambda l: rid1.encode() in l, what="the table's row")
        assert row.split()[1:3] == [b"alice", b"local"] and row.endswith(b"danger=1; echo one")
        listed = json.loads(as_json.wait_out(lambda l: rid1.encode() in l))
        assert "event" not in listed and listed["command"] == "danger=1; echo one", listed

        second = start_bg(b, "alice", "local", "--", "rm -rf /nothing DB_PASSWORD=hunter2hunter2")
        rid2 = wait_request(second)
        held = text.wait_out(lambda l: l.startswith(b"held") and rid2.encode() in l)
        assert held.split()[:4] == [b"held", rid2.encode(), b"alice", b"local"], held
        ev = json.loads(as_json.wait_out(lambda l: b'"held"' in l))
        assert ev["event"] == "held" and ev["id"] == rid2 and ev["user"] == "alice", ev
        # the command redacted exactly as pending shows it
        r = b.ssh("bob", "pending", "--json")
        assert [x["command"] for x in json.loads(r.stdout) if x["id"] == rid2] == [ev["command"]]
        assert "hunter2" not in ev["command"] and b"hunter2" not in held
        r = b.ssh("bob", "pending")
        assert [l for l in r.stdout.splitlines() if rid2.encode() in l][0].endswith(
            held.split(b"local", 1)[1].strip())

        assert b.ssh("bob", "approve", rid1).returncode == 0
        line = text.wait_out(lambda l: l.startswith(b"approved"))
        assert line.split() == [b"approved", rid1.encode(), b"by", b"bob"], line
        ev = json.loads(as_json.wait_out(lambda l: b'"approved"' in l))
        assert ev["id"] == rid1 and ev["by"] == "bob", ev
        assert b.ssh("bob", "deny", rid2, "not", "today").returncode == 0
        line = text.wait_out(lambda l: l.startswith(b"denied"))
        assert line.split() == [b"denied", rid2.encode(), b"by", b"bob:", b"not", b"today"], line
        ev = json.loads(as_json.wait_out(lambda l: b'"denied"' in l))
        assert ev["id"] == rid2 and ev["reason"] == "not today", ev
        assert finish(first)[0] == 0 and finish(second)[0] == 126
        # following goes on until the approver leaves; audited as an admin command
        assert text.p.poll() is None and as_json.p.poll() is None
        args = [e["args"] for e in b.events("admin_command") if e["command"] == "pending"]
        assert "--follow" in args and "-f --json" in args, args
        assert text.err == [] and as_json.err == []
    finally:
        for x in (first, second):
            if x is not None and x.poll() is None:
                x.kill()
                x.wait()
        for f in (text, as_json):
            if f is not None:
                f.close()


def test_pending_follow_ends_on_q_ctrl_c_and_close_and_leaves_requests_held(broker):
    b = live_broker(broker, FOLLOW_RULES)
    p = start_bg(b, "alice", "local", "--", "danger=2; echo two")
    c = b.connect("bob")
    f = None
    try:
        rid = wait_request(p)
        for key in (b"q", b"\x03"):
            chan = c.get_transport().open_session()
            chan.get_pty(term="xterm", width=80, height=24)
            chan.exec_command("pending --follow")
            recv_until(chan, rid.encode())
            chan.send(key)
            assert exit_status(chan) == 0
        # An approver who closes the connection ends the follow, nothing else.
        f = Follower(b, "bob", "--follow")
        f.wait_out(lambda l: rid.encode() in l)
        f.close()
        b.wait_audit("session_end", lambda e: e.get("target") == "podgate:pending", count=3)
        assert p.poll() is None
        r = b.ssh("bob", "pending", "--json")
        assert [x["id"] for x in json.loads(r.stdout)] == [rid]
        assert not b.events("approval_timeout") and not b.events("denied")
        assert b.ssh("bob", "approve", rid).returncode == 0
        rc, out, err = finish(p)
        assert rc == 0, err
    finally:
        if f is not None:
            f.close()
        c.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_pending_follow_tells_of_timeouts_and_requesters_who_leave(broker):
    b = live_broker(broker, [{"groups": ["oncall"], "targets": ["local"],
                              "commands": {"approve": ["re:^danger"], "approve_timeout": "2s"}}])
    f = Follower(b, "bob", "--json", "--follow")
    p = q = None
    try:
        # nothing is held yet: the audit says when the follower is there
        b.wait_audit("admin_command", lambda e: e.get("command") == "pending")
        p = start_bg(b, "alice", "local", "--", "danger wait")
        rid = wait_request(p)
        ev = json.loads(f.wait_out(lambda l: b'"timeout"' in l))
        assert ev["id"] == rid and ev["command"] == "danger wait", ev
        q = start_bg(b, "alice", "local", "--", "danger leave")
        qid = wait_request(q)
        f.wait_out(lambda l: qid.encode() in l and b'"held"' in l)
        q.kill()
        q.wait()
        ev = json.loads(f.wait_out(lambda l: b'"ended"' in l))
        assert ev["id"] == qid and ev["reason"] == "the requester left", ev
    finally:
        for x in (p, q):
            if x is not None and x.poll() is None:
                x.kill()
                x.wait()
        f.close()


def test_a_follower_that_does_not_read_is_dropped_and_nothing_waits(broker):
    b = live_broker(broker, FOLLOW_RULES)
    approver, agent = b.connect("bob"), b.connect("alice")
    held = []
    try:
        # a 32 KiB SSH window, never read: what does not fit waits in the follower's queue
        f = approver.get_transport().open_session(window_size=32768)
        f.exec_command("pending --follow")
        b.wait_audit("admin_command", lambda e: e.get("command") == "pending")
        for i in range(10):     # ~400 KiB of events: more than the window and the queue
            held.append(agent.get_transport().open_session())
            held[-1].exec_command(f"local -- danger {i} " + "x" * 40000)
        assert exit_status(f) == 1
        ev = b.wait_audit("session_end", lambda e: e.get("target") == "podgate:pending")
        assert ev[0]["exit_status"] == 1, ev
        # the requests are held all the same, and the broker serves on
        wait_until(lambda: len(json.loads(b.ssh("bob", "pending", "--json").stdout)) == 10,
                   what="ten requests held")
        assert b.ssh("alice", "local", "--", "echo still-here").stdout == b"still-here\n"
        assert all(not c.exit_status_ready() for c in held)
        rec = (b.recordings_dir / f"{ev[0]['session']}.rec").read_bytes()
        assert b"you were too slow; follow again to rejoin" in rec
    finally:
        approver.close()
        agent.close()


def test_every_place_a_command_is_shown_or_logged_is_redacted(broker, tmp_path):
    """A secret in a command, plain or split by colour codes, is redacted in pending
    (text and JSON), sessions (text and JSON), the approval_requested, denied,
    approval_timeout, admin_command and session_killed events and the broker's log."""
    b = broker(users=USERS, settings={"groups": GROUPS},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "commands": {"approve": ["echo approve *"], "approve_timeout": "1s"}}])
    secrets = [b"hunter2plain", b"hunter2colour", b"hunter2reason"]
    tail = "DB_PASSWORD=hunter2plain DB_\x1b[01;31mPASSWORD\x1b[m=hunter2colour"

    def redacted(text):
        if isinstance(text, str):
            text = text.encode()
        assert not any(s in text for s in secrets), text
        assert text.count(b"[REDACTED:password]") == 2, text

    # Held, listed, then denied.
    p = start_bg(b, "alice", "local", "--", f"echo approve {tail}")
    rid = wait_request(p)
    r = b.ssh("bob", "pending")
    assert r.returncode == 0, r.stderr
    redacted(r.stdout)
    r = b.ssh("bob", "pending", "--json")
    assert r.returncode == 0, r.stderr
    redacted(json.loads(r.stdout)[0]["command"])
    assert b.ssh("bob", "deny", rid).returncode == 0
    assert finish(p)[0] == 126
    redacted(b.wait_audit("approval_requested")[0]["command"])
    redacted(b.wait_audit("denied")[0]["command"])
    # Held until approve_timeout.
    p = start_bg(b, "alice", "local", "--", f"echo approve again {tail}")
    wait_request(p)
    assert finish(p)[0] == 126
    redacted(b.wait_audit("approval_timeout")[0]["command"])
    # Running: sessions, then killed with a reason holding a secret of its own.
    end = gate(tmp_path / "end")
    p = start_bg(b, "alice", "local", "--", f"cat {end} >/dev/null; : {tail}")
    try:
        s = wait_until(lambda: [x for x in live_sessions(b) if x["command"].startswith("cat ")],
                       15, "the live session")[0]
        redacted(s["command"])
        r = b.ssh("bob", "sessions")
        assert r.returncode == 0 and b"cat " in r.stdout, r
        redacted(r.stdout)
        r = b.ssh("bob", "kill", s["id"], "INC-9 DB_PASSWORD=hunter2reason")
        assert r.returncode == 0, r.stderr
        finish(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    e = b.wait_audit("session_killed")[0]
    assert e["reason"] == "INC-9 DB_PASSWORD=[REDACTED:password]", e
    e = b.wait_audit("admin_command", lambda e: e.get("command") == "kill")[0]
    assert "hunter2reason" not in json.dumps(e) and "[REDACTED:password]" in json.dumps(e), e
    # Nowhere in the audit log or the broker's log.
    for path in (b.audit_path, b.log_path):
        data = path.read_bytes()
        assert not any(s in data for s in secrets), (path, [s for s in secrets if s in data])

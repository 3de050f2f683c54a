"""Several replicas acting as one service (docs/live.md, "Several replicas"): three
brokers on 127.0.0.1 that know each other through peers, peer_listen, peer_key and
peer_keys. Admin commands given to any of them cover all three; a replica that is
killed is named; an unknown peer key is refused. Driven with the OpenSSH client."""

from __future__ import annotations

import json
import os
import re
import signal
import shlex
import shutil
import socket

import paramiko
import pytest

from conftest import Key, free_port, make_key, wait_until
from support.cutproxy import CutProxy
from support.live import GROUPS, USERS, Follower, Tmux, finish, start_bg, wait_request


# As test_broker_live's, with time for three replicas to be asked twice.
APPROVE_RULES = [{"groups": ["oncall"], "targets": ["local"],
                  "commands": {"approve": ["rm *", "re:^danger"], "approve_timeout": "5m"}}]


def peer_key(tmp_path, name):
    """A peer key pair, made once per test."""
    path = tmp_path / "peerkeys" / f"{name}_ed25519"
    if path.exists():
        return Key(name, "ed25519", path)
    return make_key(tmp_path / "peerkeys", name)


def replicas(broker, tmp_path, n=3, rules=None, trusted=None, users=None, names=None):
    """n brokers, each a peer of the others, named r0, r1, r2 (PODGATE_REPLICA)."""
    names = names or [f"r{i}" for i in range(n)]
    pkeys = [peer_key(tmp_path, f"r{i}") for i in range(n)]
    ports = [free_port() for _ in range(n)]
    trusted = pkeys if trusted is None else trusted
    out = []
    for i in range(n):
        settings = {
            "groups": GROUPS,
            # one list for all: each replica skips its own address and port
            "peers": [f"127.0.0.1:{ports[j]}" for j in range(n)],
            "peer_listen": f"127.0.0.1:{ports[i]}",
            "peer_key": str(pkeys[i].path),
            "peer_keys": [k.pub for k in trusted],
        }
        b = broker(users=users or USERS, settings=settings, env={"PODGATE_REPLICA": names[i]},
                   rules=rules or [{"groups": ["oncall"], "targets": ["local"]}])
        b.peer_port = ports[i]
        out.append(b)
    return out


def dns_replicas(broker, tmp_path, name, hosts):
    """A replica on each of hosts, all at one peer port, all with peers: {dns: name}."""
    port = free_port()
    pkeys = [peer_key(tmp_path, f"r{i}") for i in range(len(hosts))]
    out = []
    for i, host in enumerate(hosts):
        settings = {
            "groups": GROUPS,
            "peers": {"dns": name},
            "peer_listen": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "peer_key": str(pkeys[i].path),
            "peer_keys": [k.pub for k in pkeys],
        }
        out.append(broker(users=USERS, settings=settings, env={"PODGATE_REPLICA": f"r{i}"},
                          rules=[{"groups": ["oncall"], "targets": ["local"]}]))
    return out


def assert_sessions_of(b, replicas):
    r = b.ssh("bob", "sessions", "--json")
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert sorted(x["replica"] for x in json.loads(r.stdout)) == replicas


def test_peers_found_by_dns_name(broker, tmp_path):
    """peers: {dns: localhost}. "localhost" resolves (/etc/hosts) to 127.0.0.1, and on
    some machines to ::1 too, of which the IPv4 address is taken. One replica listens
    there, one on 127.0.0.2 (the whole of 127/8 is the loopback) at the same port,
    outside the name: that one reaches the other, which skips its own address."""
    assert "127.0.0.1" in {ai[4][0] for ai in socket.getaddrinfo("localhost", 22)}
    r0, r1 = dns_replicas(broker, tmp_path, "localhost", ["127.0.0.2", "127.0.0.1"])
    procs = [start_bg(b, "alice", "local", "--", f"sleep 6{i}") for i, b in enumerate((r0, r1))]
    try:
        wait_listed(r0, "sleep 60", "r0")
        wait_listed(r0, "sleep 61", "r1")
        assert_sessions_of(r0, ["r0", "r1"])
        assert_sessions_of(r1, ["r1"])
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_peers_found_by_a_dns_name_of_ipv6_addresses(broker, tmp_path):
    """A name with IPv6 addresses only (Debian's /etc/hosts gives ip6-localhost ::1):
    the replica on [::1] is reached there, by one on 127.0.0.1 at the same port."""
    name = None
    for candidate in ("ip6-localhost", "ip6-loopback"):
        try:
            found = {ai[4][0] for ai in socket.getaddrinfo(candidate, 22)}
        except socket.gaierror:
            continue
        if found == {"::1"}:
            name = candidate
            break
    if name is None:
        pytest.skip("no host name resolves to ::1 alone here (ip6-localhost in /etc/hosts)")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"::1 cannot be bound here: {e}")
    r0, r1 = dns_replicas(broker, tmp_path, name, ["127.0.0.1", "::1"])
    p = start_bg(r1, "alice", "local", "--", "sleep 62")
    try:
        wait_listed(r0, "sleep 62", "r1")
        assert_sessions_of(r1, ["r1"])
    finally:
        p.kill()
        p.wait()


def sessions_json(b, user="bob"):
    r = b.ssh(user, "sessions", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_listed(b, command, replica):
    found = []

    def check():
        found[:] = [s for s in sessions_json(b) if s["command"] == command]
        return bool(found)
    wait_until(check, timeout=15, what=f"{command!r} listed")
    assert found[0]["replica"] == replica
    return found[0]


def kill_replica(b):
    """SIGKILL a replica; the fixture then leaves it alone."""
    b.proc.kill()
    b.proc.wait(10)
    b._close_files()
    b.proc = None


def test_sessions_lists_every_replica(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    procs = [start_bg(b, "alice", "local", "--", f"sleep 3{i}") for i, b in enumerate((r0, r1, r2))]
    try:
        for i in range(3):
            s = wait_listed(r0, f"sleep 3{i}", f"r{i}")
            assert s["user"] == "alice"
        # the same answer from every replica, ids unique
        for b in (r1, r2):
            rows = sessions_json(b)
            assert sorted(x["replica"] for x in rows) == ["r0", "r1", "r2"]
            assert len({x["id"] for x in rows}) == 3
        r = r1.ssh("carol", "sessions")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.decode().splitlines()
        assert lines[0].split()[:3] == ["REPLICA", "ID", "USER"]
        assert sorted(l.split()[0] for l in lines[1:]) == ["r0", "r1", "r2"]
        assert r.stderr == b""
        # the replica that ran it audits the admin, with the peer key
        ev = r2.wait_audit("admin_command", lambda e: e.get("user") == "carol")
        assert ev[0]["command"] == "sessions"
        assert r2.wait_audit("auth_success", lambda e: e.get("via") == "peer")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_replica_names_are_escaped_in_json_listings(broker, tmp_path):
    names = ['r"0\\', "r1\u00e9"]
    r0, r1 = replicas(broker, tmp_path, n=2, names=names)
    procs = [start_bg(b, "alice", "local", "--", f"sleep 4{i}") for i, b in enumerate((r0, r1))]
    try:
        for i in range(2):
            wait_listed(r1, f"sleep 4{i}", names[i])
        assert sorted(x["replica"] for x in sessions_json(r0)) == sorted(names)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_roles_checked_again_by_the_replica(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    r = r0.ssh("alice", "sessions")
    assert r.returncode == 1 and b"needs the auditor role" in r.stderr
    assert not r1.events("admin_command")


def test_kill_where_the_session_is(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    p = start_bg(r2, "alice", "local", "--", "sleep 60")
    try:
        s = wait_listed(r0, "sleep 60", "r2")
        r = r0.ssh("bob", "kill", s["id"], "from", "elsewhere")
        assert r.returncode == 0, r.stderr
        assert f"session {s['id']} ended".encode() in r.stdout
        rc, out, err = finish(p)
        assert b"session ended by bob: from elsewhere" in err
        ev = r2.wait_audit("session_killed")
        assert ev[0]["user"] == "bob" and ev[0]["killed"] == s["id"]
        r = r1.ssh("bob", "kill", s["id"])
        assert r.returncode == 1 and b"no live session" in r.stderr
    finally:
        p.kill()
        p.wait()


def test_approve_and_deny_across_replicas(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path, rules=APPROVE_RULES)
    p = start_bg(r1, "alice", "local", "--", "danger; echo approved-run")
    q = start_bg(r2, "alice", "local", "--", "rm -rf /tmp/nothing-here")
    try:
        rid = wait_request(p)
        qid = wait_request(q)
        r = r0.ssh("bob", "pending", "--json")
        assert r.returncode == 0, r.stderr
        held = {x["id"]: x["replica"] for x in json.loads(r.stdout)}
        assert held == {rid: "r1", qid: "r2"}
        r = r0.ssh("bob", "pending")
        assert r.returncode == 0 and rid.encode() in r.stdout and b"REPLICA" in r.stdout
        r = r0.ssh("bob", "approve", rid)
        assert r.returncode == 0, r.stderr
        assert f"request {rid} approved".encode() in r.stdout
        rc, out, err = finish(p)
        assert rc == 0 and b"approved-run" in out
        r = r0.ssh("bob", "deny", qid, "not", "today")
        assert r.returncode == 0, r.stderr
        rc, out, err = finish(q)
        assert rc == 126 and b"denied by bob: not today" in err
        assert r1.wait_audit("approved")[0]["user"] == "bob"
        assert r2.wait_audit("denied")[0]["user"] == "bob"
    finally:
        for x in (p, q):
            x.kill()
            x.wait()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux missing")
def test_watch_relayed_from_another_replica(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    tm = Tmux(tmp_path / "tmux.sock")
    c = r2.connect("alice")
    try:
        chan = c.get_transport().open_session()
        chan.get_pty(term="xterm", width=80, height=24)
        cmd = "echo BEFORE-MARK; read x; echo AFTER-MARK; read y"
        chan.exec_command(f"local -- {cmd}")
        s = wait_listed(r0, cmd, "r2")
        tm.new("watch", shlex.join(r0.ssh_args("bob", "watch", s["id"], opts=["-tt"])))
        wait_until(lambda: any("BEFORE-MARK" in l for l in tm.capture("watch")),
                   what="the screen so far, relayed")
        chan.sendall(b"\n")
        wait_until(lambda: any("AFTER-MARK" in l for l in tm.capture("watch")),
                   what="new output, relayed")
        assert r2.wait_audit("watch_start")[0]["user"] == "bob"
        tm.run("send-keys", "-t", "watch", "q")
        ev = r2.wait_audit("watch_end")
        assert ev[0]["reason"] == "podgate: stopped watching"
        ev = r0.wait_audit("session_end", lambda e: e.get("target") == "podgate:watch")
        assert ev[0]["exit_status"] == 0
        # a smaller watcher: the replica that holds the session draws for its size
        tm.new("small", shlex.join(r0.ssh_args("bob", "watch", s["id"], opts=["-tt"])))
        wait_until(lambda: any("AFTER-MARK" in l for l in tm.capture("small")),
                   what="the screen, relayed again")
        tm.run("resize-window", "-t", "small", "-x", "60", "-y", "20")
        wait_until(lambda: any("your terminal 60x20" in l for l in tm.capture("small")),
                   what="the status line of a smaller watcher")
        chan.sendall(b"\n")
        assert chan.recv_exit_status() == 0
    finally:
        tm.kill()
        c.close()


def test_watch_of_unknown_session(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    r = r0.ssh("bob", "watch", "01900000-0000-7000-8000-000000000000")
    assert r.returncode == 1 and b"no live session" in r.stderr


def test_unknown_peer_key_refused_and_audited(broker, tmp_path):
    stranger = peer_key(tmp_path, "stranger")
    r0, r1 = replicas(broker, tmp_path, n=2)
    # a client holding a key that is not in peer_keys
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        c.connect("127.0.0.1", port=r0.peer_port, username="bob", pkey=stranger.pkey(),
                  allow_agent=False, look_for_keys=False, timeout=10)
    c.close()
    ev = r0.wait_audit("auth_failure", lambda e: e.get("reason") == "unknown peer key")
    assert ev[0]["user"] == "bob"
    # a user's own key does not open the peer listener either
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        c.connect("127.0.0.1", port=r0.peer_port, username="bob", pkey=r0.key("bob").pkey(),
                  allow_agent=False, look_for_keys=False, timeout=10)
    c.close()


def test_replica_not_trusting_our_key_is_named(broker, tmp_path):
    r0, r1 = replicas(broker, tmp_path, n=2)
    # r1 now trusts nobody but itself: r0's queries are refused there
    r1.settings["peer_keys"] = [peer_key(tmp_path, "r1").pub]
    r1.write_config()
    r1.wait_log("configuration reloaded")
    r = r0.ssh("bob", "sessions")
    assert r.returncode == 0
    assert b"replica 127.0.0.1:%d unreachable" % r1.peer_port in r.stderr
    assert r1.wait_audit("auth_failure", lambda e: e.get("reason") == "unknown peer key")


def test_peer_listener_runs_admin_commands_only(broker, tmp_path):
    r0, r1 = replicas(broker, tmp_path, n=2)
    pk = peer_key(tmp_path, "r1")
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", port=r0.peer_port, username="alice", pkey=pk.pkey(),
              allow_agent=False, look_for_keys=False, timeout=10)
    try:
        chan = c.get_transport().open_session()
        chan.exec_command("local -- id")
        assert chan.recv_exit_status() == 1
        assert b"peers may run admin commands only" in chan.recv_stderr(4096)
        # roles are those passed along, checked again: none passed, none granted
        chan = c.get_transport().open_session()
        chan.exec_command("sessions")
        assert chan.recv_exit_status() == 1
    finally:
        c.close()


def test_killed_replica_is_named_and_the_rest_answer(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    p = start_bg(r2, "alice", "local", "--", "sleep 40")
    try:
        wait_listed(r0, "sleep 40", "r2")
        kill_replica(r1)
        r = r0.ssh("bob", "sessions", "--json")
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert [x["replica"] for x in rows] == ["r2"]
        assert b"replica 127.0.0.1:%d unreachable" % r1.peer_port in r.stderr
        m = r0.ssh("bob", "sessions")
        assert b"unreachable" in m.stderr and b"r2" in m.stdout
    finally:
        p.kill()
        p.wait()


def test_hung_replica_is_named_and_nothing_waits_for_it(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    p = start_bg(r2, "alice", "local", "--", "sleep 41")
    os.kill(r1.pid, signal.SIGSTOP)     # accepts TCP (the kernel does), never answers
    try:
        wait_listed(r0, "sleep 41", "r2")
        r = r0.ssh("bob", "sessions", "--json", timeout=60)
        assert r.returncode == 0, r.stderr
        assert [x["replica"] for x in json.loads(r.stdout)] == ["r2"]
        assert b"replica 127.0.0.1:%d unreachable" % r1.peer_port in r.stderr
        # the broker's own loop kept serving while the query waited
        assert r0.ssh("alice", "local", "--", "echo still-here").stdout == b"still-here\n"
    finally:
        os.kill(r1.pid, signal.SIGCONT)
        p.kill()
        p.wait()


def test_held_request_on_a_killed_replica_reported_ended(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path, rules=APPROVE_RULES)
    p = start_bg(r1, "alice", "local", "--", "danger; echo never")
    try:
        rid = wait_request(p)
        r = r0.ssh("bob", "pending", "--json")
        assert [x["id"] for x in json.loads(r.stdout)] == [rid]
        kill_replica(r1)
        rc, out, err = finish(p)
        assert b"never" not in out
        r = r0.ssh("bob", "pending", "--json")
        assert r.returncode == 0
        assert json.loads(r.stdout) == []
        assert b"replica 127.0.0.1:%d unreachable" % r1.peer_port in r.stderr
        assert f"request {rid} ended".encode() in r.stderr
        r = r0.ssh("bob", "approve", rid)
        assert r.returncode == 1
        assert f"request {rid} ended".encode() in r.stderr
    finally:
        p.kill()
        p.wait()


def test_metrics_report_peer_reachability(broker, tmp_path):
    import urllib.request
    mport = free_port()
    r0, r1 = replicas(broker, tmp_path, n=2)
    r0.write_config(settings={"metrics_listen": f"127.0.0.1:{mport}"})
    r0.stop()
    r0.start()
    assert r0.ssh("bob", "sessions").returncode == 0

    def scrape():
        return urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
    assert re.search(rb'podgate_peer_up\{replica="127.0.0.1:%d"\} 1' % r1.peer_port, scrape())
    kill_replica(r1)
    assert r0.ssh("bob", "sessions").returncode == 0
    assert re.search(rb'podgate_peer_up\{replica="127.0.0.1:%d"\} 0' % r1.peer_port, scrape())


def test_kill_by_a_prefix_two_replicas_share_ends_nothing(broker, tmp_path):
    r0, r1, r2 = replicas(broker, tmp_path)
    p = start_bg(r1, "alice", "local", "--", "sleep 51")
    q = start_bg(r2, "alice", "local", "--", "sleep 52")
    try:
        a = wait_listed(r0, "sleep 51", "r1")["id"]
        b = wait_listed(r0, "sleep 52", "r2")["id"]
        prefix = os.path.commonprefix([a, b])
        if len(prefix) < 8:
            pytest.skip("the two ids share fewer than 8 characters (a minute boundary)")
        r = r0.ssh("bob", "kill", prefix[:8])
        assert r.returncode == 1
        assert b"names more than one session" in r.stderr
        assert sorted(x["command"] for x in sessions_json(r0)) == ["sleep 51", "sleep 52"]
        assert not r1.events("session_killed") and not r2.events("session_killed")
        # the full id reaches the one replica that holds it
        r = r0.ssh("bob", "kill", b)
        assert r.returncode == 0, r.stderr
        assert r2.wait_audit("session_killed")[0]["killed"] == b
        # the audit comes with the hangup; the session leaves the list once its target exits
        wait_until(lambda: [x["command"] for x in sessions_json(r0)] == ["sleep 51"],
                   timeout=15, what="only sleep 51 listed")
    finally:
        for x in (p, q):
            x.kill()
            x.wait()


# ---------------------------------------------------------------- pending --follow

def followed_by(b, count=1):
    """Wait until count followers on other replicas run pending --follow --json on b."""
    b.wait_audit("admin_command", lambda e: e.get("command") == "pending"
                 and e.get("args") == "--follow --json", count=count)


def test_pending_follow_announces_requests_of_every_replica(broker, tmp_path):
    users = dict(USERS, dave={"groups": ["sec"]})      # a second approver
    r0, r1, r2 = replicas(broker, tmp_path, rules=APPROVE_RULES, users=users)
    text = Follower(r0, "bob", "--follow")
    as_json = Follower(r0, "bob", "--json", "--follow")
    p = None
    try:
        text.wait_out(lambda l: l.split()[:3] == [b"REPLICA", b"ID", b"USER"],
                      what="the table's header")
        for b in (r1, r2):
            followed_by(b, count=2)
        p = start_bg(r1, "alice", "local", "--", "danger=1; echo across")
        rid = wait_request(p)
        line = text.wait_out(lambda l: l.startswith(b"held") and rid.encode() in l,
                             what="the request held on r1, announced on r0")
        assert line.split()[:5] == [b"held", b"r1", rid.encode(), b"alice", b"local"], line
        ev = json.loads(as_json.wait_out(lambda l: rid.encode() in l))
        assert ev["event"] == "held" and ev["replica"] == "r1", ev
        assert ev["command"] == "danger=1; echo across", ev
        # another approver denies it on a third replica: the follower sees it end
        r = r2.ssh("dave", "deny", rid, "not", "now")
        assert r.returncode == 0, r.stderr
        line = text.wait_out(lambda l: l.startswith(b"denied"))
        assert line.split() == [b"denied", b"r1", rid.encode(), b"by", b"dave:", b"not",
                                b"now"], line
        ev = json.loads(as_json.wait_out(lambda l: b'"denied"' in l))
        assert ev["id"] == rid and ev["by"] == "dave" and ev["replica"] == "r1", ev
        assert finish(p)[0] == 126
        assert text.err == [] and as_json.err == [] and text.p.poll() is None
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        text.close()
        as_json.close()


def test_pending_follow_ends_the_requests_of_a_replica_that_goes_away(broker, tmp_path):
    r0, r1 = replicas(broker, tmp_path, n=2, rules=APPROVE_RULES)
    p = start_bg(r1, "alice", "local", "--", "danger=1; echo never")
    f = None
    try:
        rid = wait_request(p)
        f = Follower(r0, "bob", "--follow")
        row = f.wait_out(lambda l: rid.encode() in l, what="the request listed")
        assert row.split()[:2] == [b"r1", rid.encode()], row
        followed_by(r1)
        kill_replica(r1)
        f.wait_err(lambda l: b"replica 127.0.0.1:%d unreachable" % r1.peer_port in l)
        line = f.wait_out(lambda l: l.startswith(b"ended"))
        assert line.split() == [b"ended", b"r1", rid.encode() + b":", b"replica",
                                b"127.0.0.1:%d" % r1.peer_port, b"unreachable"], line
        # the rest of the service is still followed
        assert f.p.poll() is None
    finally:
        if f is not None:
            f.close()
        p.kill()
        p.wait()


# ------------------------------------------------- a replica that stops answering

def test_hung_replica_ends_a_relayed_watch_and_a_follow(broker, tmp_path):
    """A replica stopped (SIGSTOP) keeps its connections open and answers nothing:
    the relays' keepalive probe finds it out within PEER_PROBE_MS + PEER_TIMEOUT_MS.
    The watcher is told as for a connection lost, the follower names the replica and
    ends its requests, and follows it again once it answers."""
    r0, r1 = replicas(broker, tmp_path, n=2, rules=APPROVE_RULES)
    p = start_bg(r1, "alice", "local", "--", "sleep 45")
    q = start_bg(r1, "alice", "local", "--", "danger=1; echo never")
    w = f = None
    stopped = False
    try:
        rid = wait_request(q)
        s = wait_listed(r0, "sleep 45", "r1")
        f = Follower(r0, "bob", "--follow")
        f.wait_out(lambda l: rid.encode() in l, what="the request listed")
        followed_by(r1)
        w = start_bg(r0, "bob", "watch", s["id"], opts=["-tt"])
        r1.wait_audit("watch_start")
        os.kill(r1.pid, signal.SIGSTOP)
        stopped = True
        rc, out, err = finish(w, timeout=20)
        assert rc == 1, (out, err)
        assert b"replica 127.0.0.1:%d unreachable: no answer in time" % r1.peer_port in out
        f.wait_err(lambda l: b"replica 127.0.0.1:%d unreachable (no answer in time)"
                   % r1.peer_port in l)
        line = f.wait_out(lambda l: l.startswith(b"ended"))
        assert line.split()[:3] == [b"ended", b"r1", rid.encode() + b":"], line
        # the probe's timeout ended it ("no answer in time"); finish's 20 s is the deadline
        assert f.p.poll() is None
        # back: followed again, its request announced again
        os.kill(r1.pid, signal.SIGCONT)
        stopped = False
        f.wait_err(lambda l: l == b"podgate: replica 127.0.0.1:%d followed" % r1.peer_port,
                   what="the replica followed again")
        wait_until(lambda: f._read() or sum(l.startswith(b"held") and rid.encode() in l
                                             for l in f.out) == 1,
                   what="the request announced again")
    finally:
        if stopped:
            os.kill(r1.pid, signal.SIGCONT)
        for x in (p, q, w):
            if x is not None:
                x.kill()
                x.wait()
        if f is not None:
            f.close()


def test_pending_follow_takes_in_a_replica_that_starts_later(broker, tmp_path):
    """r1 is down when the follow begins, r2 is followed from the start. r1 is
    followed once it starts; r2 is left as it is: nothing is said of it."""
    r0, r1, r2 = replicas(broker, tmp_path, rules=APPROVE_RULES)
    r1.stop()
    f = Follower(r0, "bob", "--json", "--follow")
    p = None
    try:
        f.wait_err(lambda l: b"replica 127.0.0.1:%d unreachable" % r1.peer_port in l)
        followed_by(r2)
        r1.start()
        f.wait_err(lambda l: l == b"podgate: replica 127.0.0.1:%d followed" % r1.peer_port,
                   what="the replica followed once it started")
        p = start_bg(r1, "alice", "local", "--", "danger=1; echo later")
        rid = wait_request(p)
        ev = json.loads(f.wait_out(lambda l: rid.encode() in l, what="its request announced"))
        assert ev["event"] == "held" and ev["replica"] == "r1", ev
        assert f.p.poll() is None
        assert not [l for l in f.err if b"%d" % r2.peer_port in l], f.err
    finally:
        if p is not None:
            p.kill()
            p.wait()
        f.close()


def test_request_a_follower_learned_of_is_reported_ended_by_approve(broker, tmp_path):
    """r0 never listed the request: its follower was told of it. Once r1 is gone,
    approve on r0 says the request ended with its replica, not that there is none."""
    r0, r1 = replicas(broker, tmp_path, n=2, rules=APPROVE_RULES)
    f = Follower(r0, "bob", "--follow")
    p = None
    try:
        f.wait_out(lambda l: l.split()[:2] == [b"REPLICA", b"ID"], what="the header")
        followed_by(r1)
        p = start_bg(r1, "alice", "local", "--", "danger=1; echo never")
        rid = wait_request(p)
        f.wait_out(lambda l: l.startswith(b"held") and rid.encode() in l)
        kill_replica(r1)
        r = r0.ssh("bob", "approve", rid)
        assert r.returncode == 1
        assert (f"podgate: request {rid} ended: replica 127.0.0.1:{r1.peer_port} unreachable"
                .encode() in r.stderr), r.stderr
        r = r0.ssh("bob", "deny", rid[:13])
        assert r.returncode == 1 and f"request {rid} ended".encode() in r.stderr, r.stderr
    finally:
        if p is not None:
            p.kill()
            p.wait()
        f.close()


def test_commands_of_one_admin_reuse_a_connection(broker, tmp_path):
    """The second command of an admin runs on the connection the first made: the
    replica audits one peer authentication for two commands. A peer key dropped from
    that replica's peer_keys serves no more on it: asked again on a new connection,
    the replica is named as it is for one that never took the key."""
    r0, r1 = replicas(broker, tmp_path, n=2)
    for _ in range(2):
        r = r0.ssh("bob", "sessions")
        assert r.returncode == 0 and r.stderr == b"", r.stderr
    r1.wait_audit("admin_command", lambda e: e.get("user") == "bob", count=2)
    assert len([e for e in r1.events("auth_success") if e.get("via") == "peer"]) == 1
    r1.settings["peer_keys"] = [peer_key(tmp_path, "r1").pub]
    r1.write_config()
    r1.wait_log("configuration reloaded")
    r = r0.ssh("bob", "sessions")
    assert r.returncode == 0
    assert (b"replica 127.0.0.1:%d unreachable (authentication refused)" % r1.peer_port
            in r.stderr), r.stderr
    assert r1.wait_audit("refused", lambda e: e.get("reason") == "peer key no longer trusted")
    assert r1.wait_audit("auth_failure", lambda e: e.get("reason") == "unknown peer key")


def test_a_kill_whose_answer_is_lost_is_not_run_again(broker, tmp_path):
    """r0 reaches r1 through a proxy (support/cutproxy.py) that lets the kill
    reach r1, loses r1's answer and cuts the connection r0 kept from finding the
    session. The kill ran: r0 must not run it again on a new connection, where it
    would find no such session and say so as if nothing had been done. It says
    the answer was lost and the kill may have run; r1 ran one kill."""
    pkeys = [peer_key(tmp_path, f"r{i}") for i in range(2)]
    ports = [free_port() for _ in range(2)]
    proxy = CutProxy(ports[1], free_port())
    out = []
    try:
        for i in range(2):
            # r0 reaches r1 through the proxy; r1 reaches r0 directly.
            peers = [f"127.0.0.1:{ports[0]}",
                     f"127.0.0.1:{proxy.port}" if i == 0 else f"127.0.0.1:{ports[1]}"]
            settings = {"groups": GROUPS, "peers": peers,
                        "peer_listen": f"127.0.0.1:{ports[i]}", "peer_key": str(pkeys[i].path),
                        "peer_keys": [k.pub for k in pkeys]}
            out.append(broker(users=USERS, settings=settings, env={"PODGATE_REPLICA": f"r{i}"},
                              rules=[{"groups": ["oncall"], "targets": ["local"]}]))
        r0, r1 = out
        p = start_bg(r1, "alice", "local", "--", "sleep 60")
        try:
            s = wait_listed(r0, "sleep 60", "r1")
            proxy.hold()
            k = start_bg(r0, "bob", "kill", s["id"], "answer", "lost")

            def kill_ran():
                return [e for e in r1.events("admin_command") if e.get("command") == "kill"]
            # Each answer of r1 is kept until the audit log is read: one kept
            # after the kill was audited is the kill's, and is lost.
            while True:
                wait_until(proxy.keeping, 20, "an answer of r1 kept by the proxy")
                if kill_ran():
                    proxy.cut()
                    break
                proxy.release()
            rc, kout, kerr = finish(k)
            assert rc == 1, (rc, kout, kerr)
            assert (b"podgate: replica 127.0.0.1:%d did not answer (connection lost after "
                    b"the command was sent): it may have run" % proxy.port in kerr), kerr
            assert b"no live session" not in kerr, kerr
            assert len(kill_ran()) == 1, kill_ran()
            rc, _, err = finish(p)
            assert b"session ended by bob: answer lost" in err
        finally:
            p.kill()
            p.wait()
    finally:
        proxy.stop()

"""Faults injected into a running broker: kill -9 under load, targets and kubectl
killed, connections reset, stalled readers, the API server dying, SIGTERM with
many sessions open. Each test checks that the other sessions go on, that the
audit log says what happened and that every recording is sealed (or verifies
up to its last checkpoint when the broker itself was killed).

What test_broker_robustness.py, test_broker_signals.py, test_broker_evidence.py
and test_broker_kube.py already cover (one flood killed with -9, a full disk,
one stalled client, a client shutting its socket, SIGTERM with one session, a
hanging or unreachable API server at session start) is not repeated here;
docs/reliability.md lists which test covers which fault.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import msgpack
import pytest

from conftest import to_yaml, wait_until
from support import recv_until, verify
from support.checkpoints import assert_checkpoint_cadence
from support.procs import kill_tagged, pids_with_cmdline

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from fixture import start_apiserver  # noqa: E402

SEALED, TRUNCATED = 0, 1


# ---------------------------------------------------------------- helpers

def header_of(path) -> dict:
    with open(path, "rb") as f:
        return next(msgpack.Unpacker(f, raw=False))


def shell_ready(chan) -> bytearray:
    """Wait until an interactive shell on chan runs commands (whatever its prompt)."""
    chan.sendall(b"echo R$((1+1))E\r")
    return recv_until(chan, b"R2E")


def echo_roundtrip(client, word: str) -> None:
    """One exec on an existing connection: the session still works."""
    chan = client.get_transport().open_session(timeout=10)
    try:
        chan.exec_command(f"local -- echo {word}")
        out = recv_until(chan, f"{word}\n".encode())
        assert bytes(out) == f"{word}\n".encode()
        assert chan.recv_exit_status() == 0
    finally:
        chan.close()


def reset_connection(client) -> None:
    """Close a paramiko client's TCP connection with a RST (SO_LINGER 0)."""
    sock = client.get_transport().sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    client.get_transport().close()


def sealed_recording(build, b, command):
    rec = b.recording_for(command, timeout=20)
    code, j = verify(build, rec.path)
    assert code == SEALED, j
    return rec


# ---------------------------------------------------------------- kill -9 under load

BULK = "while :; do head -c 49152 /dev/urandom | base64; sleep 0.1; done"
TICKS = "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done"


def test_kill_9_during_20_live_sessions(build, broker, tmp_path):
    b = broker(settings={"max_connections": 64})
    clients = []
    stop = threading.Event()
    try:
        for n in range(20):
            kind = ("bulk", "ticks", "cat")[n % 3]
            tag = f"# {tmp_path.name} s{n}"  # this run's, for the clean-up below
            cmd = {"bulk": f"{BULK} {tag}", "ticks": f"{TICKS} {tag}", "cat": f"cat {tag}"}[kind]
            out = open(tmp_path / f"out{n}", "wb")
            p = subprocess.Popen(b.ssh_args("alice", "local", "--", cmd), stdin=subprocess.PIPE,
                                 stdout=out, stderr=subprocess.DEVNULL)
            clients.append((kind, p, out, tmp_path / f"out{n}"))

        def typist():
            i = 0
            while not stop.is_set():
                for kind, p, _, _ in clients:
                    if kind == "cat" and p.poll() is None:
                        try:
                            p.stdin.write(f"typed line {i}\n".encode())
                            p.stdin.flush()
                        except OSError:
                            pass
                i += 1
                stop.wait(0.2)
        threading.Thread(target=typist, daemon=True).start()
        b.wait_audit("session_start", count=20, timeout=60)

        def checkpointed():
            paths = b.recording_paths()
            if len(paths) < 20:
                return False
            return all(verify(build, p)[1].get("checkpoints", 0) >= 2 for p in paths)
        wait_until(checkpointed, timeout=60, what="two checkpoints in each of 20 recordings",
                   interval=0.5)
        assert all(p.poll() is None for _, p, _, _ in clients), "a session ended early"
        os.kill(b.pid, signal.SIGKILL)
        killed_at = time.time_ns()
        b.wait_exit(10)
        stop.set()
        for _, p, _, _ in clients:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                pytest.fail("an ssh client still runs 15 s after the broker was killed")
    finally:
        stop.set()
        for _, p, out, _ in clients:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            out.close()
        # The targets outlive a broker killed with -9 (the bulk loops go on past
        # each EPIPE): end them here so that they do not load later tests.
        kill_tagged(f"# {tmp_path.name} s")

    from recording import Recording
    paths = b.recording_paths()
    assert len(paths) == 20
    worst = 0
    by_cmd = {}
    for path in paths:
        code, j = verify(build, path)
        assert code == TRUNCATED, (path, j)
        assert_checkpoint_cadence(path, j)
        lost = killed_at - header_of(path)["start"] - j["verified_time_ns"]
        worst = max(worst, lost)
        rec = Recording.load(path, allow_truncated=True)
        by_cmd[rec.command] = rec
    # The bound the recorder guarantees was checked above from the recordings'
    # own times; the wall-clock figure also depends on the machine's load.
    print(f"kill -9 with 20 sessions: at most {worst / 1e9:.2f} s of a session unverified")
    # What the clients received and what was recorded agree up to where either stops.
    for n, (kind, _, _, outpath) in enumerate(clients):
        rec = next(r for c, r in by_cmd.items() if c.endswith(f"{tmp_path.name} s{n}"))
        got, recorded = outpath.read_bytes(), rec.data("o")
        assert got and recorded, (kind, len(got), len(recorded))
        assert got.startswith(recorded) or recorded.startswith(got), \
            f"session {n} ({kind}): client and recording differ"
        if kind == "cat":
            assert rec.data("i").startswith(b"typed line 0\n")

    # A restarted broker serves at once, with no clean-up by hand.
    b.start()
    r = b.ssh("alice", "local", "--", "echo again")
    assert (r.returncode, r.stdout) == (0, b"again\n"), r.stderr
    rec = b.recording_for("echo again")
    assert verify(build, rec.path)[0] == SEALED
    # The cut recordings were left as they were.
    assert all(verify(build, p)[0] == TRUNCATED for p in paths)


# ---------------------------------------------------------------- targets killed

def test_local_target_killed_mid_session_others_continue(build, broker):
    b = broker()
    token = "913.417"
    victim_cmd = f"echo up; sleep {token}; echo never"
    other = b.connect("alice")
    victim = b.connect("alice")
    try:
        ochan = other.get_transport().open_session()
        ochan.get_pty(term="xterm", width=80, height=24)
        ochan.exec_command("local")
        obuf = shell_ready(ochan)
        vchan = victim.get_transport().open_session()
        vchan.exec_command(f"local -- {victim_cmd}")
        recv_until(vchan, b"up\n")
        pids = wait_until(lambda: pids_with_cmdline(f"sleep {token}"), 10, "the target's sleep")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert vchan.status_event.wait(15), "no exit status after the target was killed"
        status, sig = vchan.exit_status, getattr(vchan, "exit_signal", None)
        assert (sig, status) == ("KILL", -1), (status, sig)  # exit-signal, not a status
        # The interactive session on another connection goes on.
        ochan.sendall(b"echo still-$((40+2))\r")
        recv_until(ochan, b"still-42", buf=obuf)
        ochan.sendall(b"exit\r")
        assert ochan.status_event.wait(15)
    finally:
        other.close()
        victim.close()
    rec = sealed_recording(build, b, victim_cmd)
    assert rec.data("o") == b"up\n"
    assert rec.exit() == {"signal": "KILL"}
    end = b.wait_audit("session_end", lambda e: e.get("recording") == str(rec.path) or
                       e.get("recording", "").endswith(rec.path.name))[0]
    assert end.get("exit_signal") == "KILL" and "exit_status" not in end, end


# ---------------------------------------------------------------- connections reset

def test_client_connection_reset_mid_flood_and_mid_shell(build, broker):
    b = broker()
    flood_token, shell_token = "871.25", "871.5"
    flood_cmd = f"yes reset-me # {flood_token}"
    flooder, typist, bystander = b.connect("alice"), b.connect("alice"), b.connect("alice")
    try:
        fchan = flooder.get_transport().open_session()
        fchan.exec_command(f"local -- {flood_cmd}")
        recv_until(fchan, b"reset-me\n" * 10)
        tchan = typist.get_transport().open_session()
        tchan.get_pty(term="xterm", width=80, height=24)
        tchan.exec_command("local")
        tbuf = shell_ready(tchan)
        tchan.sendall(f"sleep {shell_token}\r".encode())
        wait_until(lambda: pids_with_cmdline(f"sleep {shell_token}"), 10, "the shell's sleep")
        assert len(b.events("session_start")) == 2
        reset_connection(flooder)
        reset_connection(typist)
        ends = b.wait_audit("session_end", count=2, timeout=20)
        assert len(ends) == 2
        discs = b.wait_audit("disconnect", count=2, timeout=10)
        reasons = [e["reason"] for e in discs]
        assert all(any(w in r.lower() for w in ("reset", "closed by the client", "socket error"))
                   for r in reasons), reasons
        # The targets are gone, the third connection goes on.
        wait_until(lambda: not pids_with_cmdline(flood_token)
                   and not pids_with_cmdline(f"sleep {shell_token}"), 15,
                   "the targets of the reset connections to end")
        echo_roundtrip(bystander, "bystander-ok")
        del tbuf
    finally:
        for c in (flooder, typist, bystander):
            c.close()
    rec = sealed_recording(build, b, flood_cmd)
    assert rec.data("o").startswith(b"reset-me\n" * 10)
    assert rec.exit() == {"signal": "HUP"}  # a vanished client hangs up its target
    shell = [r for r in b.recordings() if r.command is None or r.command == ""]
    assert len(shell) == 1 and shell[0].complete()
    assert f"sleep {shell_token}".encode() in shell[0].data("i")
    assert verify(build, shell[0].path)[0] == SEALED


# ---------------------------------------------------------------- stalled readers

def test_five_stalled_readers_memory_bounded(build, broker):
    # A small ASan quarantine, so that RSS shows what the broker holds, not what it freed.
    b = broker(env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1:"
                                    "quarantine_size_mb=4"})
    stalled = [b.connect("alice") for _ in range(5)]
    other = b.connect("alice")
    try:
        base = b.rss_kb()
        chans = []
        for n, c in enumerate(stalled):
            ch = c.get_transport().open_session()
            ch.exec_command(f"local -- cat /dev/zero # stalled{n}")
            chans.append(ch)
        # paramiko opens its window only as the application reads: nothing is read.
        wait_until(lambda: all(len(ch.in_buffer) >= 1_000_000 for ch in chans), 20,
                   "every flood to fill its client's window")
        first = b.rss_kb()
        peak = first
        end = time.monotonic() + 4
        while time.monotonic() < end:
            peak = max(peak, b.rss_kb())
            echo_roundtrip(other, "alive")   # other sessions are not held up
        grew_mb = (peak - base) / 1024
        print(f"5 stalled readers: broker RSS {base // 1024} MB -> {first // 1024} MB when "
              f"the windows were full -> peak {peak // 1024} MB 4 s later")
        assert grew_mb < 128, f"broker RSS grew {grew_mb:.0f} MB behind 5 stalled clients"
        assert (peak - first) / 1024 < 16, "broker memory still grows behind stalled clients"
        sizes = [p.stat().st_size for p in b.recording_paths()]
        assert sum(sizes) < 5 * 64 * 1024 * 1024
    finally:
        for c in stalled + [other]:
            c.close()
    recs = b.wait_recordings(5 + 5, timeout=30)
    for rec in recs:
        assert verify(build, rec.path)[0] == SEALED
    assert len(b.wait_audit("disconnect", count=6, timeout=15)) >= 6


# ---------------------------------------------------------------- SIGTERM

def test_sigterm_with_many_sessions_open(build, broker):
    grace = 3
    b = broker(settings={"shutdown_grace": grace})
    conns = [b.connect("alice") for _ in range(4)]
    try:
        chans = []
        # Two idle shells, two stalled floods, two commands that finish inside the grace.
        for n in range(2):
            ch = conns[0].get_transport().open_session()
            ch.get_pty(term="xterm", width=80, height=24)
            ch.exec_command("local")
            shell_ready(ch)
            chans.append(ch)
        for n in range(2):
            ch = conns[1 + n].get_transport().open_session()
            ch.exec_command(f"local -- cat /dev/zero # term{n}")
            chans.append(ch)
        finishers = []
        for n in range(2):
            ch = conns[3].get_transport().open_session()
            ch.exec_command(f"local -- sleep 1; echo done{n}")
            finishers.append(ch)
        b.wait_audit("session_start", count=6)
        wait_until(lambda: all(len(ch.in_buffer) >= 500_000 for ch in chans[2:4]), 15,
                   "the floods to fill their windows")
        t0 = time.monotonic()
        b.terminate()
        for n, ch in enumerate(finishers):
            out = recv_until(ch, f"done{n}\n".encode(), timeout=grace + 5)
            assert bytes(out) == f"done{n}\n".encode()
            assert ch.recv_exit_status() == 0
        rc = b.wait_exit(grace + 15)
        assert rc == 0
        assert time.monotonic() - t0 >= grace - 0.5
    finally:
        for c in conns:
            c.close()
    recs = b.recordings()
    assert len(recs) == 6
    for rec in recs:
        assert rec.complete(), (rec.path, rec.codes()[-3:])
        assert verify(build, rec.path)[0] == SEALED
    assert len(b.events("session_end")) == 6
    # The four connections were open until the broker stopped.
    assert [e["reason"] for e in b.events("disconnect")] == ["broker shutting down"] * 4
    assert b.events("broker_stop")


# ---------------------------------------------------------------- kubernetes

PODS = {"namespaces": {"prod": {"pods": [{"name": "web-0", "containers": ["app"]}]}}}


@pytest.fixture
def apiserver(tmp_path):
    srv = start_apiserver(PODS, tmp_path / "api")
    try:
        yield srv
    finally:
        try:
            srv.stop()
        except Exception:
            pass


def kube_and_local_broker(broker, srv, tmp_path):
    rules = [{"groups": ["oncall"], "targets": ["local"]},
             {"groups": ["oncall"], "targets": ["prod:*/*"],
              "impersonate": {"user": "{user}", "groups": ["oncall"]}}]
    b = broker(rules=rules, start=False)
    clusters = [{"name": "prod", "kubeconfig": str(srv.kubeconfig), "context": "podgate-test",
                 "cache_dir": str(tmp_path / "kube-cache"), "timeout": "5s",
                 "transport": "kubectl"}]
    b.kubernetes = clusters
    b.start()
    return b


def test_kubectl_killed_mid_session(build, broker, apiserver, tmp_path):
    b = kube_and_local_broker(broker, apiserver, tmp_path)
    token = "victim-4711"
    cmd = f"echo up; sleep 600; echo {token}"
    other = b.connect("alice")
    victim = b.connect("alice")
    try:
        ochan = other.get_transport().open_session()
        ochan.get_pty(term="xterm", width=80, height=24)
        ochan.exec_command("local")
        obuf = shell_ready(ochan)
        vchan = victim.get_transport().open_session()
        vchan.exec_command(f"prod/web-0 -- {cmd}")
        recv_until(vchan, b"up\n", timeout=30)
        def kubectls():
            out = []
            for p in pids_with_cmdline(token):
                try:
                    argv0 = pathlib.Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                if os.path.basename(argv0).startswith(b"kubectl"):
                    out.append(p)
            return out
        pids = wait_until(kubectls, 10, "the kubectl process of the session")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert vchan.status_event.wait(15), "no exit status after kubectl was killed"
        assert (getattr(vchan, "exit_signal", None), vchan.exit_status) == ("KILL", -1)
        ochan.sendall(b"echo local-$((6*7))\r")
        recv_until(ochan, b"local-42", buf=obuf)
        ochan.sendall(b"exit\r")
        assert ochan.status_event.wait(15)
    finally:
        other.close()
        victim.close()
    rec = sealed_recording(build, b, cmd)
    assert rec.data("o").startswith(b"up\n")
    assert rec.exit() == {"signal": "KILL"}
    end = b.wait_audit("session_end", lambda e: e.get("target") == "prod/web-0")[0]
    assert end.get("exit_signal") == "KILL" and "exit_status" not in end, end


def test_api_server_dies_mid_session(build, broker, apiserver, tmp_path):
    b = kube_and_local_broker(broker, apiserver, tmp_path)
    # The pod's command outlives the test API server killed below: its tag
    # lets the test end it.
    cmd = f"echo up; sleep 600; echo never # {tmp_path.name}"
    other = b.connect("alice")
    victim = b.connect("alice")
    try:
        vchan = victim.get_transport().open_session()
        vchan.exec_command(f"prod/web-0 -- {cmd}")
        recv_until(vchan, b"up\n", timeout=30)
        os.kill(apiserver.pid, signal.SIGKILL)
        assert vchan.status_event.wait(30), "no exit status after the API server died"
        # kubectl ends with a status of its own, not a signal
        assert getattr(vchan, "exit_signal", None) is None and vchan.exit_status > 0, \
            (vchan.exit_status, getattr(vchan, "exit_signal", None))
        echo_roundtrip(other, "local-still-works")
        # A new session to the dead cluster fails with one clear line, at once.
        r = b.ssh("alice", "prod/web-0", "--", "echo never", timeout=30)
        assert r.returncode == 1 and r.stdout == b"", (r.returncode, r.stderr)
        assert r.stderr.startswith(b"podgate: ") and r.stderr.count(b"\n") == 1, r.stderr
        # At once: the refused connection is the failure, not the cluster's timeout.
        assert b"did not answer within" not in r.stderr, r.stderr
    finally:
        other.close()
        victim.close()
        kill_tagged(f"# {tmp_path.name}")
    rec = sealed_recording(build, b, cmd)
    assert rec.data("o").startswith(b"up\n") and b"\nnever" not in rec.data("o")
    assert rec.exit() == {"status": vchan.exit_status}
    end = b.wait_audit("session_end", lambda e: e.get("target") == "prod/web-0")[0]
    assert end.get("exit_status") == vchan.exit_status and "exit_signal" not in end, end
    b.wait_audit("target_failed")

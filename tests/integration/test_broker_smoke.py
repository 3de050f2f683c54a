"""End-to-end smoke checks of podgate-broker's command line, demo mode and menu.

The broker contract itself is tested in the test_broker_*.py files, a file a
topic; these cover what a person does first: `make run` (--demo), the printed
ssh and replay commands, usage errors, and picking a target from the menu with
the real ssh client.
"""

from __future__ import annotations

import os
import pathlib
import re
import select
import shlex
import signal
import subprocess
import time

import pytest

from conftest import free_port, read_ssh_banner, wait_until
from support.terminal import Terminal


def run_broker(build, *args, timeout=15, **kw):
    return subprocess.run([str(build.require("broker")), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def test_version_help_and_usage_errors(build):
    r = run_broker(build, "--version")
    assert r.returncode == 0 and r.stdout.startswith("podgate-broker "), r
    r = run_broker(build, "--help")
    assert r.returncode == 0 and "--config" in r.stdout and "--demo" in r.stdout, r
    for args in ([], ["--nope"], ["--config"], ["--config", "a", "--demo", "b"],
                 ["--demo", "x", "--listen", "localhost"], ["--demo", "x", "--listen", "1.2.3.4:0"],
                 ["--config", "a", "extra"]):
        r = run_broker(build, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln]
        assert len(lines) == 1 and r.stdout == "", (args, r.stdout, r.stderr)


def test_demo_mode_printed_commands_work(build, tmp_path):
    """--demo DIR: the printed ssh command connects, the printed replay command replays."""
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    env.update(HOME=str(home), USER="tester")
    out = open(tmp_path / "stdout", "w+")
    err = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([str(build.require("broker")), "--demo", "state",
                             "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: read_ssh_banner(port) is not None or proc.poll() is not None, 20,
                   "the demo broker to listen")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        text = wait_until(lambda: "Replay" in (tmp_path / "stdout").read_text() and
                          (tmp_path / "stdout").read_text(), 10, "the demo instructions")
        state = tmp_path / "state"
        assert (state / "client_ed25519").stat().st_mode & 0o777 == 0o600
        assert (state / "host_ed25519").stat().st_mode & 0o777 == 0o600
        assert (state / "recordings").stat().st_mode & 0o777 == 0o700
        one = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ssh ") and
               ln.strip().endswith("local -- uname -a")]
        assert one, text
        args = shlex.split(one[0])
        assert f"tester@127.0.0.1" in args and "-i" in args, args
        # Strict host key checking: the printed known_hosts file must do.
        args = args[:1] + ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                           "-F", "/dev/null"] + args[1:-2] + ["echo demo-$((40+2))"]
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, b"demo-42\n"), r.stderr
        replay = [ln.strip() for ln in text.splitlines() if " cat " in ln]
        assert replay, text
        build.require("player")
        r = subprocess.run(replay[0], shell=True, cwd=tmp_path, capture_output=True,
                           timeout=30)
        assert (r.returncode, r.stdout) == (0, b"demo-42\n"), r.stderr
        if os.geteuid() == 0:
            # As root the demo's sessions run as nobody, who cannot read the broker's keys.
            import pwd
            nobody = pwd.getpwnam("nobody").pw_uid
            r = subprocess.run(args[:-1] + [f"id -u; cat {state}/host_ed25519 || echo refused"],
                               cwd=tmp_path, capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            assert r.stdout.splitlines() == [str(nobody).encode(), b"refused"], r
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, (tmp_path / "stderr").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = (tmp_path / "stderr").read_text()
    assert "AddressSanitizer" not in log and "runtime error:" not in log, log[-3000:]


def test_menu_pick_with_openssh(broker):
    """ssh -t without a command: a numbered menu; the pick runs an interactive shell."""
    b = broker()
    p = Terminal.spawn(b.ssh_args("alice", opts=["-tt"]))
    try:
        p.expect(b"1) local")
        p.expect(b"Select a target")
        p.send(b"9\r")
        p.expect(b"no such choice")
        p.send(b"1\r")
        p.send(b"echo picked-$((1+1))\r")
        p.expect(b"picked-2")
        p.send(b"exit 3\r")
        assert p.proc.wait(15) == 3
    finally:
        p.close()
    recs = b.wait_recordings(1)
    assert len(recs) == 1
    rec = recs[0]
    assert rec.header["pty"] is True and rec.command is None
    assert b"picked-2" in rec.data("o")
    assert rec.exit() == {"status": 3}


def test_no_target_without_pty_lists_targets(broker):
    b = broker()
    r = b.ssh("alice")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(rb"^\s+local$", r.stdout, re.M), r.stdout
    assert not b.recording_paths()


def test_exit_statuses_through_one_controlmaster(broker, tmp_path):
    b = broker()
    cp = f"/tmp/pgsm-{os.getpid()}"
    master = subprocess.Popen(b.ssh_args("alice", opts=["-N", "-o", "ControlMaster=yes",
                                                        "-o", f"ControlPath={cp}"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(cp), 15, "the control socket")
        procs = [subprocess.Popen(b.ssh_args("alice", "local", "--", f"echo s{i}; exit {i}",
                                             opts=["-o", f"ControlPath={cp}"]),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for i in range(1, 5)]
        for i, pr in enumerate(procs, 1):
            out, _ = pr.communicate(timeout=30)
            assert (pr.returncode, out) == (i, f"s{i}\n".encode())
        assert len(b.wait_recordings(4)) == 4
        assert len({r.header["who"]["client"] for r in b.recordings()}) == 1
    finally:
        # "-O exit" rather than SIGTERM, which an OpenSSH 9.2 master sometimes
        # misses right after its mux clients leave.
        subprocess.run(b.ssh_args("alice", opts=["-o", f"ControlPath={cp}", "-O", "exit"]),
                       capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(10)
        if os.path.exists(cp):
            os.unlink(cp)

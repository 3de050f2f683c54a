"""Recordings made by a real broker, for the player suites: signed, with
checkpoints, input, a secret the guard redacted, a marker and a kill, and a
session without a PTY. Made once per test run (conftest's
``broker_recordings`` fixture)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess

from .procs import pids_with_argv
from .wait import exit_status, recv_until, wait_until

# A token the built-in redaction knows (github-token).
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
KILL_REASON = "review drill"
# Interactive: typed commands, output over two seconds (so checkpoints), a secret.
PTY_SCRIPT = ("for i in 1 2 3 4; do echo tick-$i; sleep 0.6; done; "
              f"printf 'token=%s\\n' {TOKEN}; exit 3")
NOPTY_COMMAND = "echo to-stdout; echo to-stderr >&2; exit 5"


@dataclasses.dataclass
class BrokerRecordings:
    dir: pathlib.Path          # the broker's recordings directory (these three, and
                               # bob's `kill` admin session)
    pub: pathlib.Path          # the broker's signing public key (PEM)
    pty: pathlib.Path          # interactive shell, 100x30, exit 3, redacted token
    nopty: pathlib.Path        # exec without a PTY, stdout and stderr, exit 5
    killed: pathlib.Path       # killed by bob: marker, then {"signal": "HUP"}

    @property
    def all(self) -> list[pathlib.Path]:
        return [self.pty, self.nopty, self.killed]


def make_broker_recordings(broker_cls, build, workdir: pathlib.Path, keyf) -> BrokerRecordings:
    """Run a broker in workdir, make the three recordings, stop it cleanly."""
    b = broker_cls(build, workdir, keyf,
                   users={"alice": {"groups": ["oncall"]}, "bob": {"roles": ["auditor"]}},
                   rules=[{"groups": ["oncall"], "targets": ["local"]}])
    b.start()
    try:
        c = b.connect("alice")
        try:
            chan = c.get_transport().open_session()
            chan.get_pty(term="xterm", width=100, height=30)
            chan.exec_command("local")
            chan.sendall(b"echo R$((1+1))E\r")
            buf = recv_until(chan, b"R2E")
            chan.sendall(PTY_SCRIPT.encode() + b"\r")
            recv_until(chan, b"token=", buf=buf, timeout=30)
            assert exit_status(chan) == 3
            pty = b.wait_recordings(1)[0].path

            chan = c.get_transport().open_session()
            chan.exec_command(f"local -- {NOPTY_COMMAND}")
            assert exit_status(chan) == 5
            nopty = b.recording_for(NOPTY_COMMAND).path

            gate = workdir / "gate"
            os.mkfifo(gate)
            cmd = f"echo before-kill; cat {gate}"
            chan = c.get_transport().open_session()
            chan.exec_command(f"local -- {cmd}")
            recv_until(chan, b"before-kill\n")
            wait_until(lambda: pids_with_argv("cat", str(gate)), 15, "the session at its gate")
            live = [r for r in b.recordings_dir.glob("*.rec") if r not in (pty, nopty)]
            assert len(live) == 1, live
            r = b.ssh("bob", "kill", live[0].stem, *KILL_REASON.split())
            assert r.returncode == 0, r.stderr
            exit_status(chan)
            killed = b.recording_for(cmd).path
        finally:
            c.close()
        r = subprocess.run([str(build.broker), "--config", str(b.config_path),
                            "--print-signing-key"], capture_output=True, timeout=30,
                           cwd=b.workdir, env=b.env)
        assert r.returncode == 0 and b"PUBLIC KEY" in r.stdout, r.stderr
        pub = workdir / "broker.pub"
        pub.write_bytes(r.stdout)
    finally:
        rc = b.stop()
    b.check_clean(rc)
    return BrokerRecordings(b.recordings_dir, pub, pty, nopty, killed)

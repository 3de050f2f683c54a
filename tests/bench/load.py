#!/usr/bin/env python3
"""Load run for docs/reliability.md: N sessions (default 200) for D seconds (default 60).

    python3 tests/bench/load.py BUILD_DIR [--sessions N] [--duration S]

Starts BUILD_DIR/broker/podgate-broker on a free port in a scratch directory,
runs tests/bench/loadgen.py's mixed load, verifies every recording with
BUILD_DIR/player/podgate-player (or --player) and compares its bytes with
what the clients sent and received. Prints the figures as JSON; exits 1 if a
session failed or a recording is wrong.
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from loadgen import check_recordings, run_load  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--player")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60)
    a = ap.parse_args()
    build = pathlib.Path(a.build).resolve()
    player = a.player or str(build / "player" / "podgate-player")
    work = pathlib.Path(tempfile.mkdtemp(prefix="podgate-load-"))
    key = work / "client"
    subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f", str(key)], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = work / "broker.yaml"
    cfg.write_text(f"""listen: "127.0.0.1:{port}"
host_key: state/host_ed25519
generate_keys: true
recordings: state/recordings
audit_log: state/audit.jsonl
max_connections: 512
users:
  - name: load
    keys: ["{(work / 'client.pub').read_text().strip()}"]
    groups: [ops]
rules:
  - groups: [ops]
    targets: [local]
targets:
  local: {{shell: /bin/sh, allow_broker_user: true}}
""")
    os.chmod(cfg, 0o600)
    log = open(work / "broker.stderr", "wb")
    p = subprocess.Popen([str(build / "broker" / "podgate-broker"), "--config", str(cfg)],
                         cwd=work, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or p.poll() is not None:
                sys.exit("the broker did not start; see " + str(work / "broker.stderr"))
            time.sleep(0.1)
    try:
        fig = run_load(port=port, user="load", key_path=str(key), pid=p.pid,
                       sessions=a.sessions, duration=a.duration)
        problems = list(fig.pop("problems"))
        expected = fig.pop("expected")
        audit = work / "state" / "audit.jsonl"
        deadline = time.monotonic() + 60
        while audit.read_text().count('"session_end"') < a.sessions:
            if time.monotonic() > deadline:
                problems.append("not every session_end was audited within 60 s")
                break
            time.sleep(0.1)
        more, recorded = check_recordings(player, work / "state" / "recordings", expected)
        problems += more
        fig["bytes_recorded"] = recorded
        fig["recordings_verified"] = len(expected)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    fig["problems"] = problems[:20]
    fig["workdir"] = str(work)
    print(json.dumps(fig, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

"""Load on a running podgate-broker: N concurrent sessions of mixed traffic.

Used by tests/integration/test_broker_load.py (200 sessions, ~30 s) and by
tests/bench/load.py (a longer run whose figures go into docs/reliability.md).

Half the sessions are interactive: paramiko connections with several
channels each (the broker allows 10 per connection), half with a PTY,
typing a line every `pace` seconds into `cat` and reading the echo. The
other half are bulk transfers through the real OpenSSH client: downloads
(the target writes base64 of random bytes once a second) and uploads (the
client sends random bytes that the target counts).

run_load() returns a dict of figures and a list of problems; the caller
checks every recording afterwards with check_recordings().
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import msgpack
import paramiko

SSH_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=30"]
CHANNELS_PER_CONN = 5


def proc_stats(pid: int) -> dict:
    """Peak RSS (VmHWM, kB) and CPU seconds (utime+stime) of a process."""
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return {"hwm_kb": hwm, "rss_kb": rss, "cpu_s": (int(fields[11]) + int(fields[12])) / tck}


class Interactive:
    """One channel: `cat` (with or without PTY), a line typed every pace seconds."""

    def __init__(self, client, tag: str, pty: bool):
        self.tag, self.pty = tag, pty
        self.command = f"cat # {tag}"
        self.sent = bytearray()
        self.received = bytearray()
        self.error = None
        self.chan = client.get_transport().open_session(timeout=60)
        if pty:
            self.chan.get_pty(term="xterm", width=100, height=30)
        self.chan.exec_command(f"local -- {self.command}")

    def run(self, duration: float, pace: float):
        try:
            end = time.monotonic() + duration
            n = 0
            self.chan.settimeout(0.05)
            while time.monotonic() < end:
                line = f"{self.tag} line {n} {'x' * (n % 50)}\n".encode()
                self.chan.sendall(line)
                self.sent += line
                n += 1
                nxt = time.monotonic() + pace
                while time.monotonic() < nxt:
                    self._pump()
            if self.pty:
                self.chan.sendall(b"\x04")   # ^D at the start of a line: cat ends
                self.sent += b"\x04"
            else:
                self.chan.shutdown_write()
            deadline = time.monotonic() + 60
            while not (self.chan.closed or self.chan.eof_received) or self.chan.recv_ready():
                if time.monotonic() > deadline:
                    raise TimeoutError("channel did not close")
                self._pump()
            status = self.chan.recv_exit_status()
            if status != 0:
                self.error = f"exit status {status}"
        except Exception as e:  # noqa: BLE001 - reported as a failed session
            self.error = f"{type(e).__name__}: {e}"

    def _pump(self):
        try:
            d = self.chan.recv(65536)
            if d:
                self.received += d
        except socket.timeout:
            pass


class Bulk:
    """One real ssh client: a download or an upload for about `duration` seconds."""

    def __init__(self, ssh_base: list[str], tag: str, upload: bool, duration: float, rate: int):
        self.tag, self.upload = tag, upload
        secs = max(1, int(duration))
        if upload:
            self.input = os.urandom(rate * secs)
            self.command = f"wc -c # {tag}"
        else:
            self.input = b""
            self.command = (f"i=0; while [ $i -lt {secs} ]; do head -c {rate * 3 // 4} "
                            f"/dev/urandom | base64; i=$((i+1)); sleep 1; done # {tag}")
        self.args = ssh_base + ["local", "--", self.command]
        self.out = b""
        self.error = None

    def run(self):
        try:
            p = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            if self.upload:
                # Spread the upload over the run: 64 KiB at a time.
                def feed():
                    try:
                        for i in range(0, len(self.input), 65536):
                            p.stdin.write(self.input[i:i + 65536])
                            p.stdin.flush()
                            time.sleep(0.2)
                        p.stdin.close()
                    except OSError:
                        pass
                w = threading.Thread(target=feed, daemon=True)
                w.start()
            else:
                p.stdin.close()
            out, err = p.stdout.read(), p.stderr.read()
            p.wait(120)
            self.out = out
            if p.returncode != 0:
                self.error = f"ssh exit {p.returncode}: {err[-200:]!r}"
            elif self.upload and out.strip() != str(len(self.input)).encode():
                self.error = f"target counted {out.strip()!r}, sent {len(self.input)}"
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"


def run_load(*, port: int, user: str, key_path: str, pid: int, sessions: int = 200,
             duration: float = 30.0, pace: float = 0.5, rate: int = 16384) -> dict:
    """Run the sessions; return figures, every session's expected bytes and the problems."""
    n_inter = sessions // 2
    n_bulk = sessions - n_inter
    pkey = paramiko.Ed25519Key.from_private_key_file(key_path)
    ssh_base = ["ssh", *SSH_OPTS, "-p", str(port), "-i", key_path, f"{user}@127.0.0.1"]
    cpu0 = proc_stats(pid)["cpu_s"]
    t0 = time.monotonic()
    clients, inter, problems = [], [], []
    for i in range(0, n_inter, CHANNELS_PER_CONN):
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", port, username=user, pkey=pkey, look_for_keys=False,
                  allow_agent=False, timeout=60, banner_timeout=60, auth_timeout=60)
        clients.append(c)
        for j in range(i, min(i + CHANNELS_PER_CONN, n_inter)):
            inter.append(Interactive(c, f"i{j}", pty=(j % 2 == 0)))
    bulk = [Bulk(ssh_base, f"b{k}", upload=(k % 2 == 1), duration=duration, rate=rate)
            for k in range(n_bulk)]
    threads = [threading.Thread(target=s.run, args=(duration, pace), daemon=True) for s in inter]
    threads += [threading.Thread(target=s.run, daemon=True) for s in bulk]
    for t in threads:
        t.start()
    peak_rss = 0
    while any(t.is_alive() for t in threads):
        peak_rss = max(peak_rss, proc_stats(pid)["rss_kb"])
        time.sleep(0.5)   # sampling interval
        if time.monotonic() - t0 > duration + 180:
            problems.append("sessions still running 180 s after the planned end")
            break
    elapsed = time.monotonic() - t0
    for c in clients:
        c.close()
    st = proc_stats(pid)
    for s in inter + bulk:
        if s.error:
            problems.append(f"{s.tag} ({s.command[:40]}): {s.error}")
    expected = {}
    for s in inter:
        expected[s.command] = (bytes(s.sent), bytes(s.received))
    for s in bulk:
        expected[s.command] = (s.input, s.out)
    total = sum(len(i) + len(o) for i, o in expected.values())
    return {
        "sessions": sessions, "interactive": n_inter, "bulk": n_bulk,
        "connections": len(clients) + n_bulk, "duration_s": round(elapsed, 1),
        "bytes_total": total, "broker_peak_hwm_mb": round(st["hwm_kb"] / 1024, 1),
        "broker_peak_rss_sampled_mb": round(peak_rss / 1024, 1),
        "broker_cpu_s": round(st["cpu_s"] - cpu0, 1),
        "broker_cpu_pct": round(100 * (st["cpu_s"] - cpu0) / elapsed, 1),
        "expected": expected, "problems": problems,
    }


def read_recording(path) -> tuple[dict, dict]:
    """(header, {code: bytes}) of a recording, complete objects only."""
    data = {"o": bytearray(), "e": bytearray(), "i": bytearray()}
    with open(path, "rb") as f:
        up = msgpack.Unpacker(f, raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        header = next(up)
        for obj in up:
            if isinstance(obj, list) and len(obj) == 3 and obj[1] in data:
                data[obj[1]] += obj[2]
    return header, {k: bytes(v) for k, v in data.items()}


def check_recordings(player: str, recdir, expected: dict) -> tuple[list[str], int]:
    """Verify every recording and compare its bytes; return (problems, bytes recorded)."""
    problems = []
    paths = sorted(str(p) for p in __import__("pathlib").Path(recdir).glob("*.rec"))
    if len(paths) != len(expected):
        problems.append(f"{len(paths)} recordings for {len(expected)} sessions")
    r = subprocess.run([player, "verify", "--json", *paths], capture_output=True, timeout=600)
    states = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    bad = [s for s in states if s.get("state") != "sealed"]
    if r.returncode != 0 or bad or len(states) != len(paths):
        problems.append(f"verify exit {r.returncode}: {bad[:3]}")
    recorded = 0
    seen = set()
    for p in paths:
        header, data = read_recording(p)
        cmd = (header.get("what") or {}).get("command")
        seen.add(cmd)
        if cmd not in expected:
            problems.append(f"{p}: unexpected command {cmd!r}")
            continue
        sent, received = expected[cmd]
        got_out = data["o"] + data["e"]
        recorded += len(data["i"]) + len(got_out)
        if data["i"] != sent:
            problems.append(f"{cmd[:40]}: recorded input {len(data['i'])} bytes, "
                            f"client sent {len(sent)}")
        if got_out != received:
            problems.append(f"{cmd[:40]}: recorded output {len(got_out)} bytes, "
                            f"client received {len(received)}")
    missing = set(expected) - seen
    if missing:
        problems.append(f"no recording for {len(missing)} sessions, e.g. {sorted(missing)[:2]}")
    return problems, recorded

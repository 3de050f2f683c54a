#!/usr/bin/python3
"""podgate benchmarks: podgate against OpenSSH, script, ttyrec, tlog and asciinema.

Runs every workload several times, alternating between contenders, on
loopback servers started here with throw-away keys, and writes
docs/benchmarks.md. Benchmarks report; they never assert.

    tests/bench/bench.py BUILD_DIR [--quick] [--out docs/benchmarks.md]
"""
import argparse
import json
import os
import pathlib
import platform
import pty
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - a missing tool is reported, not fatal
        return f"unavailable ({e.__class__.__name__})"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Rig:
    """Private sshd and podgate-broker on loopback, with one client key."""

    def __init__(self, build, work):
        self.build = pathlib.Path(build).resolve()
        self.work = work
        self.key = work / "client_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                       check=True)
        self.pub = (work / "client_ed25519.pub").read_text().strip()
        self.procs = []
        # tlog-rec under a PTY records a login in utmp, as a Debian system has it.
        if not os.path.exists("/var/run/utmp"):
            open("/var/run/utmp", "a").close()
            os.chmod("/var/run/utmp", 0o664)

    def start_sshd(self):
        d = self.work / "sshd"
        d.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")],
                       check=True)
        (d / "authorized_keys").write_text(self.pub + "\n")
        os.chmod(d / "authorized_keys", 0o600)
        self.sshd_port = free_port()
        cfg = d / "sshd_config"
        cfg.write_text(f"""Port {self.sshd_port}
ListenAddress 127.0.0.1
HostKey {d / 'host'}
AuthorizedKeysFile {d / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {d / 'sshd.pid'}
LogLevel ERROR
MaxSessions 2000
MaxStartups 2000
""")
        os.makedirs("/run/sshd", exist_ok=True)
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                             stderr=open(d / "sshd.log", "w"))
        self.procs.append(p)
        wait_port(self.sshd_port)

    def start_k8s(self):
        """The test Kubernetes API server (tests/k8s), for the kubectl path."""
        sys.path.insert(0, str(TOP / "tests" / "k8s"))
        from fixture import start_apiserver  # noqa: E402 - the tests' own module
        self.k8s = start_apiserver({"namespaces": {"bench": {"pods": ["web-0"]}}},
                                   self.work / "k8s")
        self.kube_cache = self.work / "kube-cache"

    def start_broker(self):
        d = self.work / "broker"
        d.mkdir()
        self.broker_port = free_port()
        cfg = d / "config.yaml"
        kube = ""
        if getattr(self, "k8s", None) is not None:
            kube = (f"  kubernetes:\n    - name: bench\n      kubeconfig: {self.k8s.kubeconfig}\n"
                    f"      kubectl: /usr/bin/kubectl\n      cache_dir: {self.kube_cache}\n")
        cfg.write_text(f"""listen: 127.0.0.1:{self.broker_port}
host_key: {d / 'host_ed25519'}
signing_key: {d / 'signing_ed25519'}
recordings: {d / 'recordings'}
audit_log: {d / 'audit.jsonl'}
max_connections: 4000
users:
  - name: bench
    keys: ["{self.pub}"]
    groups: [bench]
rules:
  - groups: [bench]
    targets: [local, "bench:*/*"]
    impersonate: {{user: "{{user}}", groups: [bench]}}
targets:
  local: {{shell: /bin/sh}}
{kube}""")
        os.chmod(cfg, 0o600)
        self.recordings = d / "recordings"
        self.broker = subprocess.Popen([str(self.build / "broker" / "podgate-broker"),
                                        "--config", str(cfg)], cwd=d,
                                       stderr=open(d / "broker.log", "w"))
        self.procs.append(self.broker)
        wait_port(self.broker_port)

    def ssh_kube(self, command):
        """ssh -> podgate -> kubectl exec -> the test API server."""
        return self.ssh("podgate", command)[:-3] + ["bench:bench/web-0", "--", command]

    def kubectl(self, command):
        """kubectl alone, against the same API server."""
        return ["/usr/bin/kubectl", "--kubeconfig", str(self.k8s.kubeconfig), "exec", "-i",
                "-n", "bench", "web-0", "--", "sh", "-c", command]

    def ssh(self, which, command, tty=False, extra=()):
        base = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", str(self.key)]
        if tty:
            base.append("-tt")
        base += list(extra)
        if which == "podgate":
            return base + ["-p", str(self.broker_port), "bench@127.0.0.1", "local", "--", command]
        return base + ["-p", str(self.sshd_port), "root@127.0.0.1", command]

    def stop(self):
        if getattr(self, "k8s", None) is not None:
            self.k8s.stop()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def timed(argv, stdin=subprocess.DEVNULL, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=900, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv[-1]!r} exited {r.returncode}: {r.stderr.decode()[-300:]}")
    return dt


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def fmt(s, unit="", scale=1.0, digits=1):
    return (f"{s['median'] * scale:.{digits}f}{unit} "
            f"({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})")


# ---- workloads ------------------------------------------------------------

def bench_flood(rig, runs, mb, work):
    """100 MB of text through a PTY session to a client writing to /dev/null."""
    data = work / "flood.txt"
    line = b"podgate flood line 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n"
    with open(data, "wb") as f:
        n = mb * 1_000_000 // len(line)
        f.write(line * n)
    size = data.stat().st_size
    pty_bytes = size + n		# the terminal turns each LF into CR LF
    out = work / "flood-out"
    out.mkdir()
    contenders = {
        "podgate (recording on)": ("podgate", f"cat {data}"),
        "sshd bare": ("sshd", f"cat {data}"),
        "sshd + script": ("sshd", f"script -q -c 'cat {data}' {out}/typescript"),
        "sshd + ttyrec": ("sshd", f"ttyrec -e 'cat {data}' {out}/ttyrec"),
        "sshd + tlog-rec": ("sshd", f"tlog-rec --writer=file --file-path={out}/tlog.json "
                                    f"cat {data}"),
        "sshd + asciinema rec": ("sshd", f"asciinema rec -q --overwrite -c 'cat {data}' "
                                         f"{out}/asciinema.cast"),
    }
    times = {k: [] for k in contenders}
    errors = {}
    for _ in range(runs):
        for name, (which, cmd) in contenders.items():
            if name in errors:
                continue
            try:
                times[name].append(timed(rig.ssh(which, cmd, tty=True)))
            except Exception as e:  # noqa: BLE001 - reported in the table
                errors[name] = str(e)
    sizes = {}
    for f in out.iterdir():
        sizes[f.name] = f.stat().st_size
    recs = sorted(rig.recordings.glob("*.rec"), key=lambda p: p.stat().st_mtime)
    if recs:
        sizes["podgate .rec"] = recs[-1].stat().st_size
    return {"bytes": size, "pty_bytes": pty_bytes,
            "times": {k: summary(v) for k, v in times.items() if v},
            "errors": errors, "sizes": sizes}


def bench_nopty(rig, runs, mb, work):
    """Exec without a PTY, the agents' path: mb MB downloaded (`cat FILE`) and uploaded
    (`cat > /dev/null` fed from a file), podgate's local target beside sshd."""
    data = work / "nopty.txt"
    line = b"podgate no-pty line 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n"
    with open(data, "wb") as f:
        f.write(line * (mb * 1_000_000 // len(line)))
    res = {"bytes": data.stat().st_size, "download": {"podgate": [], "sshd": []},
           "upload": {"podgate": [], "sshd": []}}
    for _ in range(runs):
        for which in ("sshd", "podgate"):
            res["download"][which].append(timed(rig.ssh(which, f"cat {data}")))
            with open(data, "rb") as f:
                res["upload"][which].append(timed(rig.ssh(which, "cat > /dev/null"), stdin=f))
    return {"bytes": res["bytes"], **{k: {c: summary(v) for c, v in res[k].items()}
                                      for k in ("download", "upload")}}


def bench_echo(rig, keys):
    """Single keystrokes to cat under a PTY, round trip."""
    res = {}
    for which in ("sshd", "podgate"):
        pid, fd = pty.fork()
        if pid == 0:
            argv = rig.ssh(which, "stty raw -echo; echo READY; cat", tty=True)
            os.execvp(argv[0], argv)
        buf = b""
        deadline = time.monotonic() + 20
        while b"READY" not in buf and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                buf += os.read(fd, 4096)
        rtts = []
        for i in range(keys):
            c = bytes([97 + i % 26])
            t0 = time.perf_counter()
            os.write(fd, c)
            got = b""
            while c not in got:
                r, _, _ = select.select([fd], [], [], 5)
                if not r:
                    break
                got += os.read(fd, 4096)
            rtts.append(time.perf_counter() - t0)
        os.write(fd, b"\x04")
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
        rtts.sort()
        res[which] = {"p50": rtts[len(rtts) // 2], "p99": rtts[int(len(rtts) * 0.99) - 1],
                      "n": len(rtts)}
    return res


def bench_exec(rig, runs):
    """`ssh host TARGET -- true`, connect to exit."""
    times = {"podgate": [], "sshd": []}
    for _ in range(runs):
        for which in times:
            times[which].append(timed(rig.ssh(which, "true")))
    return {k: summary(v) for k, v in times.items()}


def bench_concurrency(rig, idle, flooding, mb_each):
    """Idle PTY sessions for memory, then flooding sessions at once for fairness."""
    import paramiko  # Debian's python3-paramiko
    pkey = paramiko.Ed25519Key.from_private_key_file(str(rig.key))
    clients, chans = [], []
    base = rss_kb(rig.broker.pid)
    per_conn = 10  # the broker allows 10 session channels per connection, as OpenSSH
    for i in range(0, idle, per_conn):
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", rig.broker_port, "bench", pkey=pkey, allow_agent=False,
                  look_for_keys=False, timeout=30)
        clients.append(c)
        for _ in range(min(per_conn, idle - i)):
            ch = c.get_transport().open_session(timeout=30)
            ch.get_pty(width=80, height=24)
            ch.exec_command("local -- cat")
            chans.append(ch)
    deadline = time.monotonic() + 60
    while len(list(rig.recordings.glob("*.rec"))) < idle and time.monotonic() < deadline:
        time.sleep(0.1)
    with_idle = rss_kb(rig.broker.pid)
    per_session_kb = (with_idle - base) / max(idle, 1)

    rates = []
    lock = threading.Lock()

    def flood():
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", rig.broker_port, "bench", pkey=pkey, allow_agent=False,
                  look_for_keys=False, timeout=60)
        ch = c.get_transport().open_session(timeout=60)
        ch.exec_command(f"local -- head -c {mb_each * 1_000_000} /dev/zero")
        t0 = time.perf_counter()
        got = 0
        while True:
            d = ch.recv(1 << 16)
            if not d:
                break
            got += len(d)
        dt = time.perf_counter() - t0
        with lock:
            rates.append(got / dt / 1e6)
        c.close()

    threads = [threading.Thread(target=flood) for _ in range(flooding)]
    for t in threads:
        t.start()
    peak = with_idle
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_kb(rig.broker.pid))
        time.sleep(0.05)
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    fair = min(rates) / statistics.median(rates) if rates else 0
    return {"idle": idle, "base_kb": base, "with_idle_kb": with_idle,
            "per_session_kb": per_session_kb, "flooding": flooding,
            "rate_median_mbs": statistics.median(rates) if rates else 0,
            "rate_min_mbs": min(rates) if rates else 0, "fairness": fair, "peak_kb": peak}


def bench_player(build, work, mb, runs, grep_runs):
    """Index, seek and grep a large recording; verify it; against grep -F and sha256sum."""
    player = pathlib.Path(build) / "player" / "podgate-player"
    rec = work / "big.rec"
    script = (f"i=0; while [ $i -lt {mb} ]; do head -c 1000000 /dev/urandom | od -An -tx1; "
              f"echo needle-$i; i=$((i+1)); done")
    # od turns 1 MB into ~3 MB of text: scale the loop to the size asked for.
    script = script.replace(f"-lt {mb}", f"-lt {max(1, mb // 3)}")
    subprocess.run([str(player), "rec", "-q", "-o", str(rec), "--", "sh", "-c", script],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True,
                   env=dict(os.environ, HOME=str(work)))
    raw = work / "big.raw"
    with open(raw, "wb") as f:
        subprocess.run([str(player), "cat", str(rec)], stdout=f, check=True)
    out = {"rec_bytes": rec.stat().st_size, "raw_bytes": raw.stat().st_size}
    idx, seeks = [], []
    for _ in range(grep_runs):
        r = subprocess.run([str(pathlib.Path(build) / "tests" / "bench-player"), str(rec), "20"],
                           capture_output=True, text=True, check=True)
        j = json.loads(r.stdout)
        idx.append(j["index_s"])
        seeks.extend(j["seeks_ms"])
    out["index"] = summary(idx)
    out["seek_ms"] = summary(seeks)
    out["seek_max_ms"] = max(seeks)
    g_pod, g_grep, v_pod, v_sha = [], [], [], []
    for i in range(runs):
        if i < grep_runs:
            g_pod.append(timed([str(player), "grep", "needle-1", str(rec)]))
        # -c: GNU grep stops at the first match when its output is /dev/null.
        g_grep.append(timed(["grep", "-F", "-c", "needle-1", str(raw)]))
        v_pod.append(timed([str(player), "verify", str(rec)]))
        v_sha.append(timed(["sha256sum", str(rec)]))
    out["grep"] = summary(g_pod)
    out["grep_F"] = summary(g_grep)
    out["verify"] = summary(v_pod)
    out["sha256sum"] = summary(v_sha)
    return out


def bench_kube(rig, runs, mb):
    """Flood and exec round trip through kubectl: via podgate, and kubectl alone."""
    env = dict(os.environ, HOME=str(rig.work / "kube-home"))
    os.makedirs(env["HOME"], exist_ok=True)
    flood = f"head -c {mb * 1_000_000} /dev/zero"
    res = {"flood": {"podgate": [], "kubectl": []}, "exec": {"podgate": [], "kubectl": []}}
    timed(rig.kubectl("true"), env=env)		# warm both discovery caches
    timed(rig.ssh_kube("true"))
    for _ in range(runs):
        res["exec"]["podgate"].append(timed(rig.ssh_kube("true")))
        res["exec"]["kubectl"].append(timed(rig.kubectl("true"), env=env))
        res["flood"]["podgate"].append(timed(rig.ssh_kube(flood)))
        res["flood"]["kubectl"].append(timed(rig.kubectl(flood), env=env))
    return {"mb": mb, **{k: {c: summary(v) for c, v in d.items()} for k, d in res.items()}}


def bench_rec(build, runs):
    """The cost of a signed checkpoint, and the writer's bulk rate (bench-rec)."""
    out = []
    for _ in range(runs):
        r = subprocess.run([str(pathlib.Path(build) / "tests" / "bench-rec"), "2000"],
                           capture_output=True, text=True, check=True)
        out.append(json.loads(r.stdout))
    return {k: summary([o[k] for o in out]) for k in
            ("signed_us", "unsigned_us", "signing_us", "bulk_signed_mbs")}


# ---- report ----------------------------------------------------------------

def start_replicas(build, work, n):
    """n brokers on loopback that are each other's peers, plus one without peers."""
    key = work / "replica_client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    peer = work / "replica_peer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(peer)], check=True)
    pub = (work / "replica_client.pub").read_text().strip()
    peer_pub = (work / "replica_peer.pub").read_text().strip()
    peer_ports = [free_port() for _ in range(n)]
    brokers, procs = [], []
    for i in range(n + 1):
        d = work / f"replica{i}"
        d.mkdir()
        port = free_port()
        peers = ""
        if i < n:
            peers = (f"peers: [{', '.join(f'127.0.0.1:{p}' for p in peer_ports)}]\n"
                     f"peer_listen: 127.0.0.1:{peer_ports[i]}\npeer_key: {peer}\n"
                     f"peer_keys: [\"{peer_pub}\"]\n")
        cfg = d / "config.yaml"
        cfg.write_text(f"""listen: 127.0.0.1:{port}
host_key: {d / 'host_ed25519'}
signing_key: {d / 'signing_ed25519'}
recordings: {d / 'recordings'}
audit_log: {d / 'audit.jsonl'}
{peers}users:
  - name: bench
    keys: ["{pub}"]
    roles: [auditor, approver]
rules:
  - users: [bench]
    targets: [local]
targets:
  local: {{shell: /bin/sh}}
""")
        os.chmod(cfg, 0o600)
        env = dict(os.environ, PODGATE_REPLICA=f"r{i}")
        procs.append(subprocess.Popen([str(pathlib.Path(build) / "broker" / "podgate-broker"),
                                       "--config", str(cfg)], cwd=d, env=env,
                                      stderr=open(d / "broker.log", "w")))
        brokers.append(port)
    for port in brokers:
        wait_port(port)
    for port in peer_ports:
        wait_port(port)

    def ssh(port, *remote, tty=False):
        return (["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                 "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", str(key)]
                + (["-tt"] if tty else []) + ["-p", str(port), "bench@127.0.0.1", *remote])
    return brokers, procs, ssh


def pty_spawn(argv, cols=80, rows=24):
    """Run argv on a new PTY of cols x rows; returns (pid, master fd)."""
    import fcntl
    import struct
    import termios
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execvp(argv[0], argv)
    return pid, fd


def pty_wait(fd, needle, timeout=20):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            buf += os.read(fd, 65536)
    return needle in buf


def bench_replicas(build, work, runs, keys):
    """Three replicas: `sessions` across them, and a relayed `watch` beside a local one."""
    brokers, procs, ssh = start_replicas(build, work, 3)
    res = {}
    try:
        # sessions: a broker without peers, then the same command given to a replica
        times = {"alone": [], "three replicas": []}
        for _ in range(runs):
            times["alone"].append(timed(ssh(brokers[3], "sessions", "--json")))
            times["three replicas"].append(timed(ssh(brokers[0], "sessions", "--json")))
        res["sessions"] = {k: summary(v) for k, v in times.items()}
        # watch: a session on r2 running cat; a watcher on r2 (local) and one on r0 (relayed)
        sp, sfd = pty_spawn(ssh(brokers[2], "local", "--", "stty raw -echo; echo READY; cat",
                                tty=True))
        pty_wait(sfd, b"READY")
        sid = None
        deadline = time.monotonic() + 20
        while sid is None and time.monotonic() < deadline:
            out = subprocess.run(ssh(brokers[2], "sessions", "--json"), capture_output=True,
                                 timeout=60).stdout
            rows = [r for r in json.loads(out or b"[]") if "cat" in (r.get("command") or "")]
            sid = rows[0]["id"] if rows else None
        watchers = {}
        for name, port in (("local", brokers[2]), ("relayed", brokers[0])):
            pid, fd = pty_spawn(ssh(port, "watch", sid, tty=True))
            pty_wait(fd, b"READY")
            watchers[name] = (pid, fd)
        lat = {k: [] for k in watchers}
        for i in range(keys):
            c = bytes([97 + i % 26])
            t0 = time.perf_counter()
            os.write(sfd, c)
            waiting = {fd: name for name, (pid, fd) in watchers.items()}
            while waiting:
                r, _, _ = select.select(list(waiting), [], [], 5)
                if not r:
                    break
                for fd in r:
                    if c in os.read(fd, 65536):
                        lat[waiting.pop(fd)].append(time.perf_counter() - t0)
        for name, (pid, fd) in list(watchers.items()) + [("session", (sp, sfd))]:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            os.close(fd)
        res["watch"] = {}
        if len(lat["local"]) == len(lat["relayed"]):
            # keystroke by keystroke: what the hop adds, free of the load both share
            d = sorted(r - l for l, r in zip(lat["local"], lat["relayed"]))
            res["watch"]["added"] = {"p50": d[len(d) // 2], "p99": d[int(len(d) * 0.99) - 1],
                                     "n": len(d)}
        for name, v in lat.items():
            v.sort()
            res["watch"][name] = {"p50": v[len(v) // 2], "p99": v[int(len(v) * 0.99) - 1],
                                  "n": len(v)}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return res


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "load": os.getloadavg()}


def targets(res):
    """Each target of the benchmark issue: (what, measured, met)."""
    out = []
    f, e, c, p = res["flood"], res["echo"], res["concurrency"], res["player"]
    connect = {k: v["median"] for k, v in res["exec"].items()}

    def net(name):
        t = f["times"].get(name)
        if t is None:
            return None
        return max(t["median"] - connect["podgate" if name.startswith("podgate") else "sshd"], 1e-6)
    pod, bare = net("podgate (recording on)"), net("sshd bare")
    if pod and bare:
        out.append(("flood: podgate ≥ 0.9× bare sshd", f"{bare / pod:.2f}×", bare / pod >= 0.9))
        rec = [n for n in f["times"] if n.startswith("sshd +")]
        slower = [n for n in rec if net(n) < pod]
        out.append(("flood: faster than every recorded contender",
                    "faster than all" if not slower else "slower than " + ", ".join(slower),
                    not slower))
    n = res.get("nopty")
    if n is not None:
        r = n["download"]["sshd"]["median"] / n["download"]["podgate"]["median"]
        out.append(("exec without a PTY: download ≥ 0.9× sshd's, recording on", f"{r:.2f}×",
                    r >= 0.9))
    size = f["sizes"].get("podgate .rec")
    if size:
        out.append(("recording ≤ 1.03× the bytes recorded", f"{size / f['pty_bytes']:.4f}×",
                    size / f["pty_bytes"] <= 1.03))
    added = (e["podgate"]["p50"] - e["sshd"]["p50"]) * 1e3
    out.append(("keystroke echo: ≤ 0.2 ms added at p50", f"{added:+.3f} ms", added <= 0.2))
    out.append(("≤ 200 KB of broker memory per session", f"{c['per_session_kb']:.0f} KB",
                c["per_session_kb"] <= 200))
    out.append(("no flooding session below half its fair share", f"{c['fairness']:.2f}",
                c["fairness"] >= 0.5))
    out.append(("seek ≤ 200 ms on a 1 GB recording", f"worst {p['seek_max_ms']:.1f} ms",
                p["seek_max_ms"] <= 200))
    v = p["sha256sum"]["median"] / p["verify"]["median"]
    out.append(("verify ≥ 0.5× sha256sum", f"{v:.2f}×", v >= 0.5))
    k = res.get("kube")
    if k is not None:
        r = min(k["flood"]["kubectl"]["median"] / k["flood"]["podgate"]["median"],
                k["exec"]["kubectl"]["median"] / k["exec"]["podgate"]["median"])
        out.append(("Kubernetes path ≥ 0.8× kubectl alone", f"{r:.2f}× (the lower of flood "
                    "and exec)", r >= 0.8))
    return out


def report(res, path, quick):
    m = res["machine"]
    L = ["# Benchmarks", "",
         "Written by `make bench`" + (" QUICK=1 (a reduced set)" if quick else "") +
         f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Each figure is the "
         "median of the runs, with (min–max); contenders alternate within each round, on "
         "the same machine in the same run. Benchmarks report; they do not pass or fail.",
         "", "## Machine", "",
         f"- {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}",
         f"- load average at the start: {m['load'][0]:.2f}",
         "- versions: " + "; ".join(f"{k} {v}" for k, v in res["versions"].items()), ""]
    L += ["## Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    for what, got, met in targets(res):
        L.append(f"| {what} | {got} | {'met' if met else '**missed**'} |")
    L.append("")
    f = res["flood"]
    mb = f["bytes"] / 1e6
    connect = {k: v["median"] for k, v in res["exec"].items()}

    def net(name, s):
        return max(s["median"] - connect["podgate" if name.startswith("podgate") else "sshd"],
                   1e-6)
    ref = f["times"].get("sshd bare")
    L += ["## Output flood", "",
          f"{mb:.0f} MB of text through a PTY session (`ssh -tt`), client output to /dev/null. "
          "Target: podgate ≥ 0.9× bare sshd and faster than every recorded contender. "
          "*Time* is the whole `ssh` command; *MB/s* is net of the server's connect-to-exit "
          "time measured below (`-- true`), so it compares the data path.", "",
          "| contender | time s | MB/s (net) | vs sshd bare (net) |", "| --- | --- | --- | --- |"]
    for name, s in f["times"].items():
        ratio = net("sshd bare", ref) / net(name, s) if ref else float("nan")
        L.append(f"| {name} | {fmt(s, digits=2)} | {mb / net(name, s):.0f} | {ratio:.2f}× |")
    for name, e in f["errors"].items():
        L.append(f"| {name} | could not run: {e[:120]} | | |")
    n = res.get("nopty")
    if n is not None:
        L += ["", "## Exec without a PTY", "",
              f"{n['bytes'] / 1e6:.0f} MB through `ssh host local -- cat FILE` (download) and "
              "`ssh host local -- 'cat > /dev/null' < FILE` (upload), no PTY, recording on; "
              "sshd runs the same commands. Whole `ssh` commands. Target: download ≥ 0.9× "
              "sshd's.", "", "| direction | podgate s | sshd s | ratio |", "| --- | --- | --- | --- |"]
        for d in ("download", "upload"):
            L.append(f"| {d} | {fmt(n[d]['podgate'], digits=2)} | {fmt(n[d]['sshd'], digits=2)} "
                     f"| {n[d]['sshd']['median'] / n[d]['podgate']['median']:.2f}× |")
    L += ["", "## Recording size", "",
          f"The flood above: {f['bytes']} bytes of text, {f['pty_bytes']} bytes through the "
          "terminal (each LF becomes CR LF): what every recorder records. Target: ≤ 1.03× "
          "the raw bytes recorded.", "",
          "| file | bytes | × bytes recorded |", "| --- | --- | --- |"]
    for name, size in sorted(f["sizes"].items()):
        L.append(f"| {name} | {size} | {size / f['pty_bytes']:.4f} |")
    e = res["echo"]
    L += ["", "## Keystroke echo", "",
          f"{e['podgate']['n']} single keystrokes to `cat` under a PTY, round trip. "
          "Target: added latency ≤ 0.2 ms at p50.", "",
          "| contender | p50 ms | p99 ms |", "| --- | --- | --- |"]
    for k in ("sshd", "podgate"):
        L.append(f"| {k} | {e[k]['p50'] * 1e3:.3f} | {e[k]['p99'] * 1e3:.3f} |")
    L.append(f"\nAdded at p50: {(e['podgate']['p50'] - e['sshd']['p50']) * 1e3:.3f} ms.")
    x = res["exec"]
    L += ["", "## Exec round trip", "", "`ssh host TARGET -- true`, connect to exit.", "",
          "| contender | ms |", "| --- | --- |"]
    for k in ("sshd", "podgate"):
        L.append(f"| {k} | {fmt(x[k], scale=1e3)} |")
    c = res["concurrency"]
    L += ["", "## Concurrency", "",
          f"{c['idle']} idle PTY sessions (10 channels per connection), then {c['flooding']} "
          "sessions flooding at once. Targets: ≤ 200 KB of broker memory per session; no "
          "session below half its fair share.", "",
          f"- broker RSS: {c['base_kb']} KB idle → {c['with_idle_kb']} KB with the sessions: "
          f"**{c['per_session_kb']:.0f} KB per session**; peak while flooding "
          f"{c['peak_kb']} KB",
          f"- flood throughput per session: median {c['rate_median_mbs']:.1f} MB/s, slowest "
          f"{c['rate_min_mbs']:.1f} MB/s: **slowest/median {c['fairness']:.2f}**"]
    p = res["player"]
    L += ["", "## Player and verification", "",
          f"A recording of {p['rec_bytes'] / 1e6:.0f} MB ({p['raw_bytes'] / 1e6:.0f} MB of "
          "output). Targets: seek ≤ 200 ms; verify ≥ 0.5× sha256sum.", "",
          "| operation | time | vs reference |", "| --- | --- | --- |",
          f"| index (bench-player) | {fmt(p['index'], ' s', digits=2)} | "
          f"{p['raw_bytes'] / 1e6 / p['index']['median']:.1f} MB/s |",
          f"| seek, random points | {fmt(p['seek_ms'], ' ms', digits=2)}, worst "
          f"{p['seek_max_ms']:.1f} ms | |",
          f"| podgate-player grep | {fmt(p['grep'], ' s', digits=2)} | "
          f"{p['grep_F']['median'] / p['grep']['median']:.3f}× grep -F |",
          f"| grep -F on the raw output | {fmt(p['grep_F'], ' s', digits=3)} | |",
          f"| podgate-player verify | {fmt(p['verify'], ' s', digits=2)} | "
          f"{p['sha256sum']['median'] / p['verify']['median']:.2f}× sha256sum |",
          f"| sha256sum of the file | {fmt(p['sha256sum'], ' s', digits=2)} | |"]
    w = res["rec"]
    L += ["", "## Recording writer and signing", "",
          "`bench-rec`: 2,000 checkpoints, each after one event, with and without an Ed25519 "
          "signature; then 256 MiB of 64 KiB output events written signed to a memory file.",
          "",
          f"- a signed checkpoint: {fmt(w['signed_us'], ' µs', digits=1)}; unsigned "
          f"{fmt(w['unsigned_us'], ' µs', digits=2)}: **signing costs "
          f"{w['signing_us']['median']:.0f} µs per checkpoint**, at most one a second (or per "
          f"MiB) per session: {w['signing_us']['median'] / 1e4:.4f}% of a core per session at "
          "one a second",
          f"- bulk writing with the hash chain and signed checkpoints every MiB: "
          f"{fmt(w['bulk_signed_mbs'], ' MB/s', digits=0)}"]
    k = res.get("kube")
    if k is not None:
        L += ["", "## Kubernetes path", "",
              f"ssh → podgate → kubectl exec → the test API server (tests/k8s, a local "
              f"process that runs the command), against kubectl alone on the same server: "
              f"{k['mb']} MB of output without a PTY, and `true`. Target: ≥ 0.8× kubectl "
              "alone.", "", "| workload | podgate via kubectl | kubectl alone | ratio |",
              "| --- | --- | --- | --- |",
              f"| flood | {fmt(k['flood']['podgate'], ' s', digits=2)} | "
              f"{fmt(k['flood']['kubectl'], ' s', digits=2)} | "
              f"{k['flood']['kubectl']['median'] / k['flood']['podgate']['median']:.2f}× |",
              f"| exec round trip | {fmt(k['exec']['podgate'], ' ms', scale=1e3)} | "
              f"{fmt(k['exec']['kubectl'], ' ms', scale=1e3)} | "
              f"{k['exec']['kubectl']['median'] / k['exec']['podgate']['median']:.2f}× |",
              "", "The podgate column includes the broker's pre-flight `kubectl get pod` "
              "(bounded by the cluster's timeout), which kubectl alone does not make."]
        n = res.get("nopty")
        if n is not None:
            per_mb = n["download"]["sshd"]["median"] / (n["bytes"] / 1e6)
            L += ["", f"Beside sshd: the same flood through bare sshd without a PTY takes about "
                  f"{per_mb * k['mb']:.2f} s (scaled from the download above), so the "
                  f"Kubernetes path runs at {per_mb * k['mb'] / k['flood']['podgate']['median']:.2f}× "
                  "sshd's no-PTY speed."]
    else:
        L += ["", "## Kubernetes path", "", f"Not measured: {res.get('kube_error')}"]
    rp = res.get("replicas")
    if rp is not None:
        s, w = rp["sessions"], rp["watch"]
        L += ["", "## Several replicas", "",
              "Three brokers on loopback that are each other's peers (docs/live.md). "
              "`sessions --json` given to one of them (it asks the two others over SSH, "
              "in parallel) against a broker without peers; and one keystroke to `cat` in a "
              "session on r2, seen by a watcher on r2 and by one on r0 (relayed from r2).", "",
              "| | alone / local | three replicas / relayed | added |",
              "| --- | --- | --- | --- |",
              f"| `sessions --json`, connect to exit | {fmt(s['alone'], ' ms', scale=1e3)} | "
              f"{fmt(s['three replicas'], ' ms', scale=1e3)} | "
              f"{(s['three replicas']['median'] - s['alone']['median']) * 1e3:.1f} ms |",
              f"| `watch`, keystroke to watcher, p50 | {w['local']['p50'] * 1e3:.2f} ms | "
              f"{w['relayed']['p50'] * 1e3:.2f} ms | "
              f"{w['added']['p50'] * 1e3:.2f} ms |" if "added" in w else "",
              f"| `watch`, p99 | {w['local']['p99'] * 1e3:.2f} ms | "
              f"{w['relayed']['p99'] * 1e3:.2f} ms | "
              f"{w['added']['p99'] * 1e3:.2f} ms |" if "added" in w else "",
              "", "*Added* for `watch` is the median (p99) of the relayed watcher's delay "
              "minus the local one's, keystroke by keystroke."]
    L += [""]
    pathlib.Path(path).write_text("\n".join(L))
    (pathlib.Path(path).with_suffix(".json")).write_text(json.dumps(res, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(TOP / "docs" / "benchmarks.md"))
    ap.add_argument("--only", choices=["replicas"],
                    help="run one part and print its figures (no report)")
    a = ap.parse_args()
    a.build = str(pathlib.Path(a.build).resolve())
    quick = a.quick
    work = pathlib.Path(tempfile.mkdtemp(prefix="podgate-bench-"))
    if a.only == "replicas":
        print(json.dumps(bench_replicas(a.build, work, 5 if quick else 20,
                                        100 if quick else 500), indent=1))
        shutil.rmtree(work, ignore_errors=True)
        return
    rig = Rig(a.build, work)
    res = {"machine": machine(), "versions": {
        "podgate": version([str(pathlib.Path(a.build) / "broker" / "podgate-broker"), "--version"]),
        "OpenSSH": version(["ssh", "-V"]), "ttyrec": "1.0.8 (Debian)",
        "tlog": version(["tlog-rec", "--version"]), "asciinema": version(["asciinema", "--version"]),
        "script": version(["script", "--version"])}}
    try:
        rig.start_sshd()
        try:
            rig.start_k8s()
        except Exception as e:  # noqa: BLE001 - reported in the table
            res["kube_error"] = f"the test API server did not start: {e}"
            rig.k8s = None
        rig.start_broker()
        print("exec...", flush=True)
        res["exec"] = bench_exec(rig, 5 if quick else 20)
        print("flood...", flush=True)
        res["flood"] = bench_flood(rig, 3 if quick else 5, 20 if quick else 100, work)
        print("exec without a PTY...", flush=True)
        res["nopty"] = bench_nopty(rig, 3 if quick else 5, 20 if quick else 100, work)
        print("echo...", flush=True)
        res["echo"] = bench_echo(rig, 300 if quick else 2000)
        print("concurrency...", flush=True)
        res["concurrency"] = bench_concurrency(rig, 100 if quick else 1000, 20 if quick else 100,
                                               5 if quick else 20)
        if rig.k8s is not None:
            print("kubernetes path...", flush=True)
            try:
                res["kube"] = bench_kube(rig, 3 if quick else 5, 20 if quick else 100)
            except Exception as e:  # noqa: BLE001 - reported in the table
                res["kube_error"] = str(e)[:300]
        print("recording writer...", flush=True)
        res["rec"] = bench_rec(a.build, 3 if quick else 5)
        print("replicas...", flush=True)
        res["replicas"] = bench_replicas(a.build, work, 5 if quick else 20, 100 if quick else 500)
        print("player...", flush=True)
        res["player"] = bench_player(a.build, work, 30 if quick else 1000, 3 if quick else 5,
                                     2 if quick else 1)
    finally:
        rig.stop()
    report(res, a.out, quick)
    print(pathlib.Path(a.out).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""podgate benchmarks: podgate against OpenSSH, script, ttyrec, tlog and asciinema.

Runs every workload several times, alternating between contenders, on
loopback servers started here with throw-away keys, and writes
docs/benchmarks.md. Benchmarks report; they never assert.

    tests/bench/bench.py BUILD_DIR [--quick] [--out docs/benchmarks.md]
"""
import argparse
import asyncio
import json
import os
import pathlib
import platform
import pty
import re
import resource
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
sys.path.insert(0, str(TOP / "tests" / "integration" / "support"))
from ports import free_port  # noqa: E402 - the tests' one, below the ephemeral range


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


def broker_nofile():
    """Before exec: a hard open file limit of 65,536 where it is lower and may be
    raised (CAP_SYS_RESOURCE); the broker raises its soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 65536:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, 65536))
        except (ValueError, OSError):
            pass


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        return sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


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
        # inprocess_cat: the server answers `echo ready; exec cat` without a TTY
        # itself (kube-scale's sessions), with no process or pipes per exec.
        self.k8s = start_apiserver({"namespaces": {"bench": {"pods": [
            {"name": "web-0", "inprocess_cat": True}]}}}, self.work / "k8s")
        self.kube_cache = self.work / "kube-cache"

    def start_broker(self, name="broker"):
        self.broker_dir = name
        d = self.work / name
        d.mkdir()
        self.broker_port = free_port()
        cfg = d / "config.yaml"
        kube = ""
        if getattr(self, "k8s", None) is not None:
            # bench: the native transport (kubectl /bin/false: never run); benchk: kubectl.
            kube = (f"  kubernetes:\n    - name: bench\n      kubeconfig: {self.k8s.kubeconfig}\n"
                    f"      kubectl: /bin/false\n      transport: native\n"
                    f"    - name: benchk\n      kubeconfig: {self.k8s.kubeconfig}\n"
                    f"      kubectl: /usr/bin/kubectl\n      cache_dir: {self.kube_cache}\n"
                    f"      transport: kubectl\n")
        cfg.write_text(f"""listen: 127.0.0.1:{self.broker_port}
host_key: {d / 'host_ed25519'}
signing_key: {d / 'signing_ed25519'}
generate_keys: true
recordings: {d / 'recordings'}
audit_log: {d / 'audit.jsonl'}
max_connections: 4000
users:
  - name: bench
    keys: ["{self.pub}"]
    groups: [bench]
rules:
  - groups: [bench]
    targets: [local{', "bench:*/*", "benchk:*/*"' if kube else ''}]
    impersonate: {{user: "{{user}}", groups: [bench]}}
targets:
  # the same account as sshd's sessions, so the two compare like for like
  local: {{shell: /bin/sh, allow_broker_user: true}}
{kube}""")
        os.chmod(cfg, 0o600)
        self.recordings = d / "recordings"
        self.broker = subprocess.Popen([str(self.build / "broker" / "podgate-broker"),
                                        "--config", str(cfg)], cwd=d,
                                       stderr=open(d / "broker.log", "w"),
                                       preexec_fn=broker_nofile)
        self.procs.append(self.broker)
        wait_port(self.broker_port)

    def restart_broker(self, name):
        """Stop the broker and start a fresh one in its own directory (same key)."""
        self.broker.send_signal(signal.SIGTERM)
        self.broker.wait(timeout=60)
        self.start_broker(name)

    def ssh_kube(self, command, cluster="bench", tty=False):
        """ssh -> podgate -> the test API server: natively (bench) or through kubectl (benchk)."""
        return self.ssh("podgate", command, tty=tty)[:-3] + [f"{cluster}:bench/web-0", "--",
                                                             command]

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


def echo_rtts(rig, which, keys):
    """Single keystrokes to cat under a PTY over `ssh -tt`: p50, p99 round trip.
    which: "sshd", "podgate" (the local target) or "native" (the native Kubernetes
    transport, a pod of the test API server)."""
    pid, fd = pty.fork()
    if pid == 0:
        if which == "native":
            argv = rig.ssh_kube("stty raw -echo; echo READY; cat", tty=True)
        else:
            argv = rig.ssh(which, "stty raw -echo; echo READY; cat", tty=True)
        os.execvp(argv[0], argv)
    buf = b""
    deadline = time.monotonic() + 20
    try:
        while b"READY" not in buf and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                buf += os.read(fd, 4096)
    except OSError:
        pass		# the client ended (EIO): reported below
    if b"READY" not in buf:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
        raise RuntimeError(f"the {which} session did not start: {buf[-300:]!r}")
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
    return {"p50": rtts[len(rtts) // 2], "p99": rtts[int(len(rtts) * 0.99) - 1], "n": len(rtts)}


def bench_echo(rig, keys):
    """Single keystrokes to cat under a PTY, round trip."""
    return {which: echo_rtts(rig, which, keys) for which in ("sshd", "podgate")}


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


async def _scale_run(rig, sessions, per_conn, pty_on, echo_keys, limit_s, kube=False):
    """Open sessions (per_conn channels on each connection, from this one
    process), hold them, measure the broker, close them; stop by limit_s.
    kube: the sessions (and the echo session) run in the test API server's pod
    through the native transport, `cat` waiting for input that does not come."""
    import asyncssh  # Debian's python3-asyncssh
    key = asyncssh.read_private_key(str(rig.key))
    pid = rig.broker.pid
    loop = asyncio.get_running_loop()
    conns, procs, errors = [], [], []
    # Key exchanges under way at once: fewer than max_unauthenticated_per_address,
    # so that none waits parked (and none runs into login_grace_time).
    sem = asyncio.Semaphore(8)
    # With a PTY, an interactive cat; without, a command with its input at
    # EOF, as an agent's (`ssh host TARGET -- CMD < /dev/null`).
    command = "local -- echo ready; exec " + ("cat" if pty_on else "sleep 3600")
    ready = b"ready\r\n" if pty_on else b"ready\n"
    # Kubernetes exec carries no signals: a kube session is probed with a line
    # that cat echoes, as a PTY session is.
    echoes = pty_on or kube
    if kube:
        command = "bench:bench/web-0 -- echo ready; exec cat"
    which = "native" if kube else "podgate"
    # Kubernetes sessions starting at once: the test API server is one Python
    # process that also runs every command; unpaced, thousands of pre-flight
    # GETs and upgrades queue there past the cluster's timeout.
    starting = asyncio.Semaphore(64 if kube else sessions)

    async def session(conn):
        async with starting:
            p = await conn.create_process(command, encoding=None,
                                          term_type="xterm" if pty_on else None,
                                          term_size=(80, 24) if pty_on else None)
            if not echoes:
                p.stdin.write_eof()
            try:
                await p.stdout.readuntil(ready)
            except asyncio.IncompleteReadError:
                why = (await p.stderr.read()).decode(errors="replace").strip()
                raise RuntimeError(f"ended before ready (exit {p.exit_status}): "
                                   f"{why[-200:]}") from None
        procs.append(p)

    async def connection(k):
        try:
            async with sem:
                conn = await asyncssh.connect("127.0.0.1", rig.broker_port, username="bench",
                                              client_keys=[key], known_hosts=None,
                                              agent_path=None, preferred_auth="publickey",
                                              compression_algs=["none"])	# as OpenSSH
            conns.append(conn)
            for r in await asyncio.gather(*(session(conn) for _ in range(k)),
                                          return_exceptions=True):
                if isinstance(r, BaseException):
                    errors.append(repr(r)[:200])
        except (OSError, asyncssh.Error) as e:
            errors.append(repr(e)[:200])

    async def echo():
        try:
            return await loop.run_in_executor(None, echo_rtts, rig, which, echo_keys)
        except (OSError, RuntimeError) as e:
            return {"error": repr(e)[:200]}

    base_kb, base_fds, base_cpu = rss_kb(pid), open_fds(pid), cpu_ticks(pid)
    idle_echo = await echo()
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(connection(min(per_conn, sessions - i)))
             for i in range(0, sessions, per_conn)]
    done, pending = await asyncio.wait(tasks, timeout=limit_s)
    for t in pending:
        t.cancel()
    open_s = time.perf_counter() - t0
    out = {"asked": sessions, "per_conn": per_conn, "pty": pty_on, "kube": kube,
           "opened": len(procs),
           "connections": len(conns), "errors": len(errors), "error_sample": errors[:3],
           "timed_out": bool(pending), "open_s": open_s, "base_kb": base_kb,
           "base_fds": base_fds, "idle_echo": idle_echo}
    n = max(len(procs), 1)
    out["with_kb"] = rss_kb(pid)
    out["per_session_kb"] = (out["with_kb"] - base_kb) / n
    out["fds"] = open_fds(pid)
    out["fds_per_session"] = (out["fds"] - base_fds) / n
    # CPU while every session is open and idle: from two seconds after the
    # last one opened (each recording writes its last checkpoint within one
    # second of its last output), over ten.
    await asyncio.sleep(2)
    c0, w0 = cpu_ticks(pid), time.perf_counter()
    await asyncio.sleep(10)
    out["idle_cpu_pct"] = ((cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK")
                           / (time.perf_counter() - w0) * 100)
    out["busy_echo"] = await echo()
    # Sessions still answer: cat echoes a line; sleep ends on the signal sent.
    probe = procs[:: max(1, len(procs) // 50)]
    for p in probe:
        if echoes:
            p.stdin.write(b"probe\n")
        else:
            p.send_signal("TERM")
    answered = 0
    for p in probe:
        try:
            if echoes:
                await asyncio.wait_for(p.stdout.readuntil(b"probe"), 20)
            else:
                await asyncio.wait_for(p.wait_closed(), 20)
                if (p.exit_signal or ("",))[0] != "TERM":
                    continue
            answered += 1
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncssh.Error):
            pass
    out["probed"], out["answered"] = len(probe), answered
    t1 = time.perf_counter()
    for c in conns:
        c.close()
    await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in conns] or
                       [asyncio.ensure_future(asyncio.sleep(0))], timeout=60)
    deadline = time.monotonic() + 120
    while open_fds(pid) > base_fds + 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    out["close_s"] = time.perf_counter() - t1
    log = (rig.work / rig.broker_dir / "broker.log").read_text(errors="replace")
    ended = re.findall(r"connection ended: (.*)", log)
    out["connections_ended"] = {r: ended.count(r) for r in sorted(set(ended))}
    out["refused"] = len(re.findall(r"refused: ", log))
    out["log_errors"] = re.findall(r".* (?:error|warning) .*", log)[:5]
    out["fds_after"] = open_fds(pid)
    out["cpu_s_total"] = (cpu_ticks(pid) - base_cpu) / os.sysconf("SC_CLK_TCK")
    if kube:
        kids = []
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            kids += (task / "children").read_text().split()
        out["broker_children"] = len(kids)
    return out


def bench_scale(rig, exec_sessions, pty_sessions, echo_keys, limit_s):
    """Thousands of sessions on one broker: exec without a PTY, 10 channels per
    connection (the broker's most), then PTY sessions with a connection each."""
    res = {}
    for name, n, per_conn, pty_on in (("exec", exec_sessions, 10, False),
                                      ("pty", pty_sessions, 1, True)):
        print(f"  {n} {name} sessions...", flush=True)
        rig.restart_broker(f"broker-{name}")	# memory measured from a fresh broker
        res[name] = asyncio.run(_scale_run(rig, n, per_conn, pty_on, echo_keys, limit_s))
    return res


def bench_kube_scale(rig, sessions, echo_keys, limit_s):
    """Thousands of idle sessions on the native Kubernetes transport against the test
    API server (tests/k8s): no PTY, 10 channels per connection, `cat` waiting in the
    pod, served by the test API server itself (its inprocess_cat pod option: one
    socket per exec, no process or pipes); echo latency on one more native session
    with a PTY."""
    # The broker holds about 2.2 descriptors per native session without a PTY (the
    # API server's socket, the recording, and two per 10-channel connection; the
    # session moves the exec's bytes with no descriptors between), the test API
    # server 1: no more than the hard limit allows, 1,000 kept for the rest.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    most = max(10, (hard - 1000) * 10 // 22 // 10 * 10)
    wanted = sessions
    if sessions > most:
        sessions = most
        print(f"  {wanted} native Kubernetes sessions asked; the open file limit "
              f"({hard}) holds {most}", flush=True)
    print(f"  {sessions} native Kubernetes sessions...", flush=True)
    rig.restart_broker("broker-kube-scale")	# memory measured from a fresh broker
    out = asyncio.run(_scale_run(rig, sessions, 10, False, echo_keys, limit_s, kube=True))
    if wanted != sessions:
        out["wanted"], out["nofile_hard"] = wanted, hard
    return out


def raise_nofile():
    """This process's soft open file limit to the hard one (raised to 65,536 where it
    may be): the test API server, its child, holds a socket per Kubernetes session
    (and three pipes for one whose command it runs as a process)."""
    broker_nofile()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
    """The Kubernetes path: native and kubectl transports, beside kubectl alone, sshd and
    the local target. No-PTY flood and upload, PTY flood, and `true` connect to exit."""
    env = dict(os.environ, HOME=str(rig.work / "kube-home"))
    os.makedirs(env["HOME"], exist_ok=True)
    flood = f"head -c {mb * 1_000_000} /dev/zero"
    sink = "cat > /dev/null"
    data = rig.work / "kube-upload.bin"
    line = b"podgate upload line 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n"
    with open(data, "wb") as f:
        f.write(line * (mb * 1_000_000 // len(line)))
    cols = ("podgate", "native", "kubectl", "sshd", "local")
    res = {k: {c: [] for c in cols} for k in ("flood", "upload", "pty", "exec")}

    def upload(argv, **kw):
        with open(data, "rb") as f:
            return timed(argv, stdin=f, **kw)

    timed(rig.kubectl("true"), env=env)		# warm both discovery caches
    timed(rig.ssh_kube("true", "benchk"))
    timed(rig.ssh_kube("true"))
    for _ in range(runs):
        res["exec"]["native"].append(timed(rig.ssh_kube("true")))
        res["exec"]["podgate"].append(timed(rig.ssh_kube("true", "benchk")))
        res["exec"]["kubectl"].append(timed(rig.kubectl("true"), env=env))
        res["flood"]["native"].append(timed(rig.ssh_kube(flood)))
        res["flood"]["podgate"].append(timed(rig.ssh_kube(flood, "benchk")))
        res["flood"]["kubectl"].append(timed(rig.kubectl(flood), env=env))
        res["flood"]["sshd"].append(timed(rig.ssh("sshd", flood)))
        res["upload"]["native"].append(upload(rig.ssh_kube(sink)))
        res["upload"]["podgate"].append(upload(rig.ssh_kube(sink, "benchk")))
        res["upload"]["kubectl"].append(upload(rig.kubectl(sink), env=env))
        res["upload"]["sshd"].append(upload(rig.ssh("sshd", sink)))
        res["pty"]["native"].append(timed(rig.ssh_kube(flood, tty=True)))
        res["pty"]["podgate"].append(timed(rig.ssh_kube(flood, "benchk", tty=True)))
        res["pty"]["local"].append(timed(rig.ssh("podgate", flood, tty=True)))
    return {"mb": mb, **{k: {c: summary(v) for c, v in d.items() if v} for k, d in res.items()}}


def bench_kube_idle(rig, idle):
    """Broker memory per idle native Kubernetes session (no PTY, `cat` waiting in the pod),
    and the processes the broker has while they run."""
    import paramiko  # Debian's python3-paramiko
    pkey = paramiko.Ed25519Key.from_private_key_file(str(rig.key))
    clients, chans = [], []
    base = rss_kb(rig.broker.pid)
    per_conn = 10
    for i in range(0, idle, per_conn):
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", rig.broker_port, "bench", pkey=pkey, allow_agent=False,
                  look_for_keys=False, timeout=60)
        clients.append(c)
        for _ in range(min(per_conn, idle - i)):
            ch = c.get_transport().open_session(timeout=60)
            ch.exec_command("bench:bench/web-0 -- echo ready; cat")
            chans.append(ch)
    ready = 0
    deadline = time.monotonic() + 300
    for ch in chans:
        buf = b""
        while b"ready" not in buf and time.monotonic() < deadline:
            if ch.recv_ready():
                buf += ch.recv(64)
            elif ch.exit_status_ready():
                break
            else:
                time.sleep(0.01)
        ready += b"ready" in buf
    with_idle = rss_kb(rig.broker.pid)
    kids = []
    for task in pathlib.Path(f"/proc/{rig.broker.pid}/task").iterdir():
        kids += (task / "children").read_text().split()
    for c in clients:
        c.close()
    return {"idle": idle, "ready": ready, "base_kb": base, "with_idle_kb": with_idle,
            "per_session_kb": (with_idle - base) / max(ready, 1), "broker_children": len(kids)}


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

def start_replicas(build, work, n, admins=0):
    """n brokers on loopback that are each other's peers, plus one without peers; users
    bench and bench1..benchADMINS, all holding one key."""
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
        more = "".join(f"""  - name: bench{a}
    keys: ["{pub}"]
    roles: [auditor]
""" for a in range(1, admins + 1))
        cfg = d / "config.yaml"
        cfg.write_text(f"""listen: 127.0.0.1:{port}
host_key: {d / 'host_ed25519'}
signing_key: {d / 'signing_ed25519'}
generate_keys: true
recordings: {d / 'recordings'}
audit_log: {d / 'audit.jsonl'}
{peers}users:
  - name: bench
    keys: ["{pub}"]
    roles: [auditor, approver]
{more}rules:
  - users: [bench]
    targets: [local]
targets:
  # the same account as sshd's sessions, so the two compare like for like
  local: {{shell: /bin/sh, allow_broker_user: true}}
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

    def ssh(port, *remote, tty=False, user="bench"):
        return (["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                 "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", str(key)]
                + (["-tt"] if tty else []) + ["-p", str(port), f"{user}@127.0.0.1", *remote])
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
    brokers, procs, ssh = start_replicas(build, work, 3, admins=runs)
    res = {}
    try:
        # sessions: a broker without peers, then the same command given to a replica, by
        # one admin (its connections to the peers kept after the first) and by a new
        # admin each time (new connections: a key exchange and an authentication each)
        times = {"alone": [], "three replicas": [], "three replicas, new connections": []}
        for i in range(runs):
            times["alone"].append(timed(ssh(brokers[3], "sessions", "--json")))
            times["three replicas"].append(timed(ssh(brokers[0], "sessions", "--json")))
            times["three replicas, new connections"].append(
                timed(ssh(brokers[0], "sessions", "--json", user=f"bench{i + 1}")))
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


def bench_ls(build, work, big, runs):
    """ls over 4 large recordings (links to the player benchmark's) and 200 small ones."""
    player = pathlib.Path(build) / "player" / "podgate-player"
    d = work / "ls"
    (d / "small").mkdir(parents=True)
    for i in range(4):
        os.link(big, d / f"big{i}.rec")
    for i in range(200):
        subprocess.run([str(player), "rec", "-q", "-o", str(d / "small" / f"s{i}.rec"), "--",
                        "echo", str(i)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       check=True, env=dict(os.environ, HOME=str(work)))
    total = sum(p.stat().st_size for p in d.rglob("*.rec"))
    times = [timed([str(player), "ls", str(d)]) for _ in range(runs)]
    return {"files": 204, "bytes": total, "ls": summary(times),
            "ls_verify": summary([timed([str(player), "ls", "--verify", str(d)])])}


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
    ls = res.get("ls")
    if ls is not None:
        out.append(("ls over 4 large + 200 small recordings well under 1 s",
                    f"{ls['ls']['median']:.3f} s for {ls['bytes'] / 1e9:.1f} GB "
                    f"(--verify {ls['ls_verify']['median']:.1f} s)", ls["ls"]["median"] < 0.5))
    v = p["sha256sum"]["median"] / p["verify"]["median"]
    out.append(("verify ≥ 0.5× sha256sum", f"{v:.2f}×", v >= 0.5))
    for name, sc in res.get("scale", {}).items():
        what = f"{sc['asked']:,} sessions " + ("with a PTY" if sc["pty"] else "without a PTY")
        out.append((f"{what}: all open and answering",
                    f"{sc['opened']:,} open, {sc['answered']}/{sc['probed']} probed answer",
                    sc["opened"] == sc["asked"] and sc["answered"] == sc["probed"]))
        out.append((f"{what}: ≤ 200 KB of broker memory per session",
                    f"{sc['per_session_kb']:.0f} KB", sc["per_session_kb"] <= 200))
        out.append((f"{what}: idle CPU ≈ 0 (≤ 1% of a core)", f"{sc['idle_cpu_pct']:.2f}%",
                    sc["idle_cpu_pct"] <= 1))
        if "p50" in sc["busy_echo"] and "p50" in sc["idle_echo"]:
            added = (sc["busy_echo"]["p50"] - sc["idle_echo"]["p50"]) * 1e3
            out.append((f"{what}: echo within 0.2 ms of an idle broker (p50)",
                        f"{added:+.3f} ms", added <= 0.2))
        else:
            out.append((f"{what}: echo within 0.2 ms of an idle broker (p50)",
                        "not measured: the echo session did not start", False))
    k = res.get("kube")
    if k is not None:
        r = min(k["flood"]["kubectl"]["median"] / k["flood"]["podgate"]["median"],
                k["exec"]["kubectl"]["median"] / k["exec"]["podgate"]["median"])
        out.append(("Kubernetes path ≥ 0.8× kubectl alone", f"{r:.2f}× (the lower of flood "
                    "and exec)", r >= 0.8))
        f = k["flood"]["sshd"]["median"] / k["flood"]["native"]["median"]
        out.append(("native no-PTY flood ≥ 0.9× sshd's", f"{f:.2f}×", f >= 0.9))
        t = k["pty"]["local"]["median"] / k["pty"]["native"]["median"]
        out.append(("native PTY flood ≥ 0.9× the local target's", f"{t:.2f}×", t >= 0.9))
        e = k["exec"]["kubectl"]["median"] / k["exec"]["native"]["median"]
        out.append(("native `-- true` faster than kubectl exec alone",
                    f"{k['exec']['native']['median'] * 1e3:.0f} ms vs "
                    f"{k['exec']['kubectl']['median'] * 1e3:.0f} ms", e > 1))
    ks = res.get("kube_scale")
    if ks is not None:
        what = f"{ks['asked']:,} native Kubernetes sessions"
        out.append((f"{what}: all open and answering",
                    f"{ks['opened']:,} open, {ks['answered']}/{ks['probed']} probed answer",
                    ks["opened"] == ks["asked"] and ks["answered"] == ks["probed"]))
        out.append((f"{what}: ≤ 200 KB of broker memory per session",
                    f"{ks['per_session_kb']:.0f} KB", ks["per_session_kb"] <= 200))
        out.append((f"{what}: idle CPU ≈ 0 (≤ 1% of a core)", f"{ks['idle_cpu_pct']:.2f}%",
                    ks["idle_cpu_pct"] <= 1))
        if "p50" in ks["busy_echo"] and "p50" in ks["idle_echo"]:
            added = (ks["busy_echo"]["p50"] - ks["idle_echo"]["p50"]) * 1e3
            out.append((f"{what}: echo within 0.2 ms of an idle broker (p50)",
                        f"{added:+.3f} ms", added <= 0.2))
        else:
            out.append((f"{what}: echo within 0.2 ms of an idle broker (p50)",
                        "not measured: the echo session did not start", False))
    ki = res.get("kube_idle")
    if ki is not None:
        out.append((f"≤ 300 KB per idle native Kubernetes session ({ki['idle']} sessions, "
                    "no kubectl)", f"{ki['per_session_kb']:.0f} KB, "
                    f"{ki['broker_children']} processes",
                    ki["per_session_kb"] <= 300 and ki["broker_children"] == 0
                    and ki["ready"] == ki["idle"]))
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
    if res.get("scale"):
        L += ["", "## Thousands of sessions", "",
              "One client process (asyncssh) opens the sessions on the local target: without a "
              "PTY `echo ready; exec sleep 3600` with its input at EOF (as an agent's command), "
              "10 channels per connection (the broker's most); with a PTY `echo ready; exec cat`, "
              "one connection each; 8 key exchanges at a time; no compression (OpenSSH's "
              "default). *Open* is the time until "
              "every session has said ready; memory and descriptors are the broker's growth "
              "divided by the sessions; *idle CPU* is the broker's over 10 s with all of them "
              "open, from 2 s after the last one opened (past every recording's last "
              "checkpoint); *echo* is `ssh -tt` keystroke round trips on one more session, on the idle "
              "broker and with all of them open.", "",
              "| sessions | open | open s | KB per session | descriptors per session | "
              "idle CPU | echo p50 idle → loaded ms | echo p99 idle → loaded ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        def ms(e, k):
            return f"{e[k] * 1e3:.3f}" if k in e else "—"
        for name, sc in res["scale"].items():
            ie, be = sc["idle_echo"], sc["busy_echo"]
            L.append(f"| {sc['asked']:,} {'with a PTY' if sc['pty'] else 'without a PTY'} | "
                     f"{sc['opened']:,} ({sc['connections']:,} connections, {sc['errors']} "
                     f"errors) | {sc['open_s']:.1f} | {sc['per_session_kb']:.0f} | "
                     f"{sc['fds_per_session']:.2f} | {sc['idle_cpu_pct']:.2f}% | "
                     f"{ms(ie, 'p50')} → {ms(be, 'p50')} | {ms(ie, 'p99')} → {ms(be, 'p99')} |")
        ks = res.get("kube_scale")
        if ks is not None:
            ie, be = ks["idle_echo"], ks["busy_echo"]
            L.append(f"| {ks['asked']:,} native Kubernetes | {ks['opened']:,} "
                     f"({ks['connections']:,} connections, {ks['errors']} errors) | "
                     f"{ks['open_s']:.1f} | {ks['per_session_kb']:.0f} | "
                     f"{ks['fds_per_session']:.2f} | {ks['idle_cpu_pct']:.2f}% | "
                     f"{ms(ie, 'p50')} → {ms(be, 'p50')} | {ms(ie, 'p99')} → {ms(be, 'p99')} |")
            if "wanted" in ks:
                L += ["", f"{ks['wanted']:,} native Kubernetes sessions were asked for; the "
                      f"hard open file limit of this machine ({ks['nofile_hard']:,}) holds "
                      f"{ks['asked']:,} (about 2.2 descriptors each in the broker, 1 in "
                      "the test API server)."]
            L += ["", "Native Kubernetes sessions: the test API server (tests/k8s) serves "
                  "`echo ready; exec cat` in its pod for each itself (the pod's "
                  "`inprocess_cat` option: no process or pipes), no PTY, 10 channels per "
                  "connection, input left open; the echo session is one more native session "
                  "with a PTY. The API server is a Python process on the same machine, so "
                  "*open* is mostly its time. Through kubectl each session would be a kubectl "
                  "process; natively the broker has "
                  f"{ks.get('broker_children', 0)} child processes."]
        else:
            L += ["", "Kubernetes sessions at this scale: " +
                  res.get("kube_scale_error", "not measured") + "."]
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
        L += ["", "### Native transport", "",
              "The same server through `transport: native` (no process per session), beside "
              "`transport: kubectl`, kubectl alone, sshd (no PTY: the download and the upload) "
              "and the broker's `local` target (PTY). Recording on.", "",
              "| workload | native | transport: kubectl | reference | native vs reference |",
              "| --- | --- | --- | --- | --- |",
              f"| {k['mb']} MB, no PTY | {fmt(k['flood']['native'], ' s', digits=2)} | "
              f"{fmt(k['flood']['podgate'], ' s', digits=2)} | sshd "
              f"{fmt(k['flood']['sshd'], ' s', digits=2)}; kubectl alone "
              f"{fmt(k['flood']['kubectl'], ' s', digits=2)} | "
              f"{k['flood']['sshd']['median'] / k['flood']['native']['median']:.2f}× sshd |",
              *([f"| {k['mb']} MB upload (`cat > /dev/null`), no PTY | "
                 f"{fmt(k['upload']['native'], ' s', digits=2)} | "
                 f"{fmt(k['upload']['podgate'], ' s', digits=2)} | sshd "
                 f"{fmt(k['upload']['sshd'], ' s', digits=2)}; kubectl alone "
                 f"{fmt(k['upload']['kubectl'], ' s', digits=2)} | "
                 f"{k['upload']['sshd']['median'] / k['upload']['native']['median']:.2f}× sshd; "
                 f"{k['upload']['kubectl']['median'] / k['upload']['native']['median']:.2f}× "
                 "kubectl |"] if "upload" in k else []),
              f"| {k['mb']} MB, PTY | {fmt(k['pty']['native'], ' s', digits=2)} | "
              f"{fmt(k['pty']['podgate'], ' s', digits=2)} | local target "
              f"{fmt(k['pty']['local'], ' s', digits=2)} | "
              f"{k['pty']['local']['median'] / k['pty']['native']['median']:.2f}× local |",
              f"| `-- true`, connect to exit | {fmt(k['exec']['native'], ' ms', scale=1e3)} | "
              f"{fmt(k['exec']['podgate'], ' ms', scale=1e3)} | kubectl alone "
              f"{fmt(k['exec']['kubectl'], ' ms', scale=1e3)} | "
              f"{k['exec']['kubectl']['median'] / k['exec']['native']['median']:.2f}× kubectl |"]
        ki = res.get("kube_idle")
        if ki is not None:
            L += ["", f"{ki['idle']} idle native sessions (`cat` waiting in the pod, "
                  f"{ki['ready']} ready): broker RSS {ki['base_kb'] / 1024:.1f} → "
                  f"{ki['with_idle_kb'] / 1024:.1f} MB, **{ki['per_session_kb']:.0f} KB per "
                  f"session**, {ki['broker_children']} child processes of the broker."]
    else:
        L += ["", "## Kubernetes path", "", f"Not measured: {res.get('kube_error')}"]
    st = res.get("storage")
    if st is not None:
        L += ["", "## Object storage", "",
              "The broker shipping to s3rver on loopback (tests/bench/storage.py, "
              "docs/storage.md).", "", "| figure | value |", "| --- | --- |"]
        for t in st["throughput"]:
            L.append(f"| upload of a {t['object_bytes'] / 1e6:.0f} MB recording after its "
                     f"session ended | {t['upload_after_end_s']:.2f} s, "
                     f"{t['mb_per_s']:.0f} MB/s |")
        for name in ("without storage", "with storage"):
            e = st["echo"][name]
            L.append(f"| keystroke echo beside a 2 MB/s flood, {name} | p50 "
                     f"{e['p50_ms']:.3f} ms, p99 {e['p99_ms']:.3f} ms |")
        for key, what in (("kill9_lines", "a line every 100 ms"),
                          ("kill9_flood", "about 1.3 MB/s")):
            k = st[key]
            L.append(f"| kill -9 with the spool gone, {what} (segment_seconds 10) | "
                     f"median {k['median_lost_bytes']} bytes / {k['median_lost_s']:.2f} s "
                     f"lost, worst {k['max_lost_bytes']} bytes / {k['max_lost_s']:.2f} s |")
    elif res.get("storage_error"):
        L += ["", "## Object storage", "", f"Not measured: {res['storage_error']}"]
    rp = res.get("replicas")
    if rp is not None:
        s, w = rp["sessions"], rp["watch"]
        L += ["", "## Several replicas", "",
              "Three brokers on loopback that are each other's peers (docs/live.md). "
              "`sessions --json` given to one of them (it asks the two others over SSH, "
              "in parallel, on connections kept for the same admin's next commands) against "
              "a broker without peers; and one keystroke to `cat` in a "
              "session on r2, seen by a watcher on r2 and by one on r0 (relayed from r2).", "",
              "| | alone / local | three replicas / relayed | added |",
              "| --- | --- | --- | --- |",
              f"| `sessions --json`, connect to exit | {fmt(s['alone'], ' ms', scale=1e3)} | "
              f"{fmt(s['three replicas'], ' ms', scale=1e3)} | "
              f"{(s['three replicas']['median'] - s['alone']['median']) * 1e3:.1f} ms |",
              f"| the same, a new admin each time (no connection kept) | | "
              f"{fmt(s['three replicas, new connections'], ' ms', scale=1e3)} | "
              f"{(s['three replicas, new connections']['median'] - s['alone']['median']) * 1e3:.1f}"
              " ms |" if "three replicas, new connections" in s else "",
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
    ap.add_argument("--only", choices=["scale", "kube-scale", "kube", "replicas", "nopty"],
                    help="run only this part and print its figures as JSON (no report)")
    ap.add_argument("--kube-sessions", type=int,
                    help="native Kubernetes sessions to hold at once (default 5,000; 500 quick)")
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
    scale = (500, 100, 200, 180) if quick else (5000, 1000, 1000, 600)
    kube_scale = (500, 200, 300) if quick else (5000, 1000, 900)
    if a.kube_sessions:
        kube_scale = (a.kube_sessions,) + kube_scale[1:]
    raise_nofile()
    if a.only == "kube-scale":
        try:
            rig.start_k8s()
            rig.start_broker()
            print(json.dumps(bench_kube_scale(rig, *kube_scale), indent=1))
        finally:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)
        return
    if a.only == "kube":
        try:
            rig.start_sshd()
            rig.start_k8s()
            rig.start_broker()
            print(json.dumps(bench_kube(rig, 3 if quick else 5, 20 if quick else 100), indent=1))
        finally:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)
        return
    if a.only == "nopty":
        try:
            rig.start_sshd()
            rig.start_broker()
            print(json.dumps(bench_nopty(rig, 3 if quick else 5, 20 if quick else 100, work),
                             indent=1))
        finally:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)
        return
    if a.only == "scale":
        try:
            rig.start_broker()
            print(json.dumps(bench_scale(rig, *scale), indent=1))
        finally:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)
        return
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
        print("thousands of sessions...", flush=True)
        res["scale"] = bench_scale(rig, *scale)
        if rig.k8s is not None:
            print("kubernetes path...", flush=True)
            try:
                res["kube"] = bench_kube(rig, 3 if quick else 5, 20 if quick else 100)
                res["kube_idle"] = bench_kube_idle(rig, 100 if quick else 1000)
            except Exception as e:  # noqa: BLE001 - reported in the table
                res["kube_error"] = str(e)[:300]
            print("thousands of native Kubernetes sessions...", flush=True)
            try:
                res["kube_scale"] = bench_kube_scale(rig, *kube_scale)
            except Exception as e:  # noqa: BLE001 - reported in the table
                res["kube_scale_error"] = str(e)[:300]
        print("recording writer...", flush=True)
        res["rec"] = bench_rec(a.build, 3 if quick else 5)
        print("replicas...", flush=True)
        res["replicas"] = bench_replicas(a.build, work, 5 if quick else 20, 100 if quick else 500)
        print("player...", flush=True)
        res["player"] = bench_player(a.build, work, 30 if quick else 1000, 3 if quick else 5,
                                     2 if quick else 1)
        print("ls...", flush=True)
        res["ls"] = bench_ls(a.build, work, work / "big.rec", 5 if quick else 10)
        if shutil.which("s3rver"):
            print("object storage...", flush=True)
            sys.path.insert(0, str(TOP / "tests" / "bench"))
            import storage  # noqa: E402 - tests/bench/storage.py
            try:
                res["storage"] = storage.run(a.build, quick)
            except Exception as e:  # noqa: BLE001 - reported in the table
                res["storage_error"] = str(e)[:300]
        else:
            res["storage_error"] = "s3rver is not installed (make deps-test)"
    finally:
        rig.stop()
    report(res, a.out, quick)
    print(pathlib.Path(a.out).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Object storage figures for docs/reliability.md and docs/benchmarks.md.

    python3 tests/bench/storage.py BUILD_DIR [--quick] [--json OUT]

Runs BUILD_DIR's broker against s3rver (npm, `make deps-test`) on loopback:

- upload throughput: a session writes MB bytes without a PTY; the time from
  its end to the storage_ok of its sealed object (the whole file is hashed,
  then PUT), and the segments shipped while it ran;
- echo latency while shipping: single keystrokes to cat under a PTY, with
  and without storage, while another session floods output (so segments and
  a final object are uploaded all the time);
- kill -9 with the spool gone: a session printing a line every 100 ms (and
  one flooding 1 MB/s), the broker killed at a random point; what the bucket
  holds (the concatenated segments, verified) against what the spool held.

Prints the figures as JSON.
"""
import argparse
import io
import json
import os
import pathlib
import pty
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import msgpack

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration" / "support"))
from ports import free_port  # noqa: E402 - the tests' one, below the ephemeral range
from procs import kill_tagged  # noqa: E402

BUCKET = "podgate-recordings"
ENV = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
NS = "{http://doc.s3.amazonaws.com/2006-03-01/}"


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class S3:
    def __init__(self, work):
        self.port = free_port()
        self.proc = subprocess.Popen(["s3rver", "-d", str(work / "s3"), "-a", "127.0.0.1", "-p",
                                      str(self.port), "--configure-bucket", BUCKET, "-s"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait(lambda: self.try_list(""), 30, "s3rver")

    def curl(self, path, query=""):
        r = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
                            "S3RVER:S3RVER", "-H", f"x-amz-content-sha256: {EMPTY}",
                            f"http://127.0.0.1:{self.port}/{BUCKET}/{path}"
                            + (f"?{query}" if query else "")], capture_output=True, timeout=120)
        return r.stdout if r.returncode == 0 else None

    def try_list(self, prefix):
        body = self.curl("", "list-type=2&prefix=" + prefix)
        if body is None or b"ListBucketResult" not in body:
            return None
        root = ET.fromstring(body)
        return {c.find(NS + "Key").text: int(c.find(NS + "Size").text)
                for c in root.iter(NS + "Contents")} or {"": 0}

    def list(self, prefix):
        got = self.try_list(prefix)
        return {k: v for k, v in (got or {}).items() if k}

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(20)


class Broker:
    def __init__(self, build, work, name, s3=None, seg=10):
        self.dir = work / name
        self.dir.mkdir()
        self.key = work / "client"
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                           check=True)
        self.port = free_port()
        storage = ""
        if s3 is not None:
            storage = (f"storage:\n  s3:\n    endpoint: http://127.0.0.1:{s3.port}\n"
                       f"    bucket: {BUCKET}\n    prefix: bench/\n    path_style: true\n"
                       f"    segment_seconds: {seg}\n")
        cfg = self.dir / "broker.yaml"
        cfg.write_text(f"""listen: "127.0.0.1:{self.port}"
host_key: state/host_ed25519
generate_keys: true
recordings: state/recordings
audit_log: state/audit.jsonl
users:
  - name: bench
    keys: ["{(work / 'client.pub').read_text().strip()}"]
    groups: [b]
rules:
  - groups: [b]
    targets: [local]
targets:
  local: {{shell: /bin/sh, allow_broker_user: true}}
{storage}""")
        os.chmod(cfg, 0o600)
        self.build = build
        self.start()

    def start(self):
        self.proc = subprocess.Popen([str(self.build / "broker" / "podgate-broker"), "--config",
                                      "broker.yaml"], cwd=self.dir, env=dict(os.environ, **ENV),
                                     stderr=open(self.dir / "broker.log", "ab"))
        wait(lambda: self.banner(), 30, "the broker")

    def banner(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(16).startswith(b"SSH-")
        except OSError:
            return False

    def ssh(self, command, tty=False):
        return (["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
                 "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                 "-i", str(self.key)] + (["-tt"] if tty else [])
                + ["-p", str(self.port), "bench@127.0.0.1", "local", "--", command])

    def audit(self):
        p = self.dir / "state" / "audit.jsonl"
        return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

    def recordings(self):
        d = self.dir / "state" / "recordings"
        return sorted(d.glob("*.rec")) if d.exists() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def throughput(build, work, s3, mb):
    b = Broker(build, work, f"tp{mb}", s3)
    try:
        t0 = time.monotonic()
        r = subprocess.run(b.ssh(f"head -c {mb * 1000000} /dev/zero"), capture_output=True,
                           timeout=600)
        ended = time.monotonic()
        assert len(r.stdout) == mb * 1000000
        segs = sum(1 for e in b.audit() if e["event"] == "storage_ok")  # finals only so far
        ok = wait(lambda: [e for e in b.audit() if e["event"] == "storage_ok"
                           and e.get("operation") == "upload recording"], 600, "the upload")
        stored = time.monotonic()
        size = ok[0]["bytes"]
        return {"mb": mb, "session_s": ended - t0, "upload_after_end_s": stored - ended,
                "object_bytes": size, "mb_per_s": size / 1e6 / (stored - ended),
                "finals_before_end": segs}
    finally:
        b.stop()


def echo(b, keys):
    pid, fd = pty.fork()
    if pid == 0:
        argv = b.ssh("stty raw -echo; echo READY; cat", tty=True)
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
        time.sleep(0.005)
    os.write(fd, b"\x04")
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(fd)
    rtts.sort()
    return {"p50_ms": rtts[len(rtts) // 2] * 1e3, "p99_ms": rtts[int(len(rtts) * 0.99) - 1] * 1e3,
            "n": len(rtts)}


def echo_while_shipping(build, work, s3, keys):
    res = {}
    for name, store in (("without storage", None), ("with storage", s3)):
        b = Broker(build, work, "echo-" + name.replace(" ", "-"), store, seg=2)
        try:
            # Output all the time: 2 MB/s through the recorder, shipped every second.
            flood = subprocess.Popen(b.ssh("while :; do head -c 200000 /dev/zero; sleep 0.1; "
                                           "done"), stdout=subprocess.DEVNULL)
            time.sleep(3)
            res[name] = echo(b, keys)
            if store is not None:
                res[name]["segments_seen"] = sum(1 for k in s3.list("bench/") if ".rec.seg/" in k)
            flood.kill()
            flood.wait()
        finally:
            b.stop()
    return res


def kill9(build, work, s3, seg, runs, command, name):
    out = []
    for i in range(runs):
        b = Broker(build, work, f"kill-{name}-{i}", s3, seg=seg)
        # The target outlives the killed broker (its loop goes on past each
        # EPIPE): the tag lets it be ended, so that it loads nothing after.
        tag = f"# {work.name} kill-{name}-{i}"
        p = subprocess.Popen(b.ssh(f"{command} {tag}"), stdout=subprocess.DEVNULL)
        wait(lambda: b.recordings(), 20, "a recording")
        sid = b.recordings()[0].stem
        wait(lambda: any(k.startswith(f"bench/{sid}.rec.seg/") for k in s3.list("bench/")),
             60, "a segment")
        time.sleep(seg + random.uniform(0, seg))
        killed = time.time_ns()
        b.proc.kill()
        b.proc.wait()
        p.kill()
        p.wait()
        kill_tagged(tag)
        spool = b.recordings()[0].read_bytes()
        keys = sorted(k for k in s3.list(f"bench/{sid}.rec.seg/"))
        joined = b"".join(s3.curl(k) for k in keys)
        tmp = work / "joined.rec"
        tmp.write_bytes(joined)
        v = subprocess.run([str(build / "player" / "podgate-player"), "verify", "--json",
                            str(tmp)], capture_output=True)
        j = json.loads(v.stdout)
        start = next(msgpack.Unpacker(io.BytesIO(spool), raw=False))["start"]
        out.append({"spool_bytes": len(spool), "bucket_bytes": len(joined),
                    "verified_bytes": j["verified_bytes"], "state": j["state"],
                    "lost_bytes": len(spool) - j["verified_bytes"],
                    "lost_s": (killed - start - j["verified_time_ns"]) / 1e9})
        shutil.rmtree(b.dir / "state" / "recordings")  # the spool is gone too
    lost = sorted(x["lost_bytes"] for x in out)
    secs = sorted(x["lost_s"] for x in out)
    return {"runs": out, "median_lost_bytes": lost[len(lost) // 2], "max_lost_bytes": lost[-1],
            "median_lost_s": secs[len(secs) // 2], "max_lost_s": secs[-1],
            "all_prefixes_verify": all(x["verified_bytes"] == x["bucket_bytes"] for x in out)}


def run(build, quick: bool) -> dict:
    """Every figure above, against a private s3rver."""
    build = pathlib.Path(build).resolve()
    work = pathlib.Path(tempfile.mkdtemp(prefix="podgate-storage-bench-"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client")],
                   check=True)
    s3 = S3(work)
    res = {}
    try:
        print("upload throughput...", file=sys.stderr, flush=True)
        res["throughput"] = [throughput(build, work, s3, mb) for mb in ((20,) if quick
                                                                        else (20, 100))]
        print("echo while shipping...", file=sys.stderr, flush=True)
        res["echo"] = echo_while_shipping(build, work, s3, 200 if quick else 1000)
        print("kill -9 with the spool gone...", file=sys.stderr, flush=True)
        n = 3 if quick else 10
        res["kill9_lines"] = kill9(build, work, s3, 10, n,
                                   "while :; do date +%s%N; sleep 0.1; done", "lines")
        res["kill9_flood"] = kill9(build, work, s3, 10, n,
                                   "while :; do head -c 100000 /dev/urandom | base64; "
                                   "sleep 0.1; done", "flood")
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    res = run(a.build, a.quick)
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        pathlib.Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()

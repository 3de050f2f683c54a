"""An S3-compatible server for the tests (s3rver from npm), and a small client.

The client is the curl command (its own --aws-sigv4), so the tests read the
bucket without podgate's code.
"""
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import free_port

BUCKET = "podgate-recordings"
ACCESS_KEY = "S3RVER"   # s3rver's built-in account
SECRET_KEY = "S3RVER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
NS = "{http://doc.s3.amazonaws.com/2006-03-01/}"


class S3rver:
    """One s3rver process on 127.0.0.1 with the bucket BUCKET."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log_path = workdir / "s3rver.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0):
        exe = shutil.which("s3rver")
        if exe is None:
            pytest.fail("s3rver is not installed: run `make deps-test` (npm install -g s3rver)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe, "-d", str(self.data), "-a", "127.0.0.1",
                                      "-p", str(self.port), "--configure-bucket", BUCKET],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("s3rver exited at start:\n" + self.log_path.read_text())
            try:
                self.list("")
                return self
            except (RuntimeError, subprocess.SubprocessError):
                time.sleep(0.1)
        pytest.fail("s3rver did not answer within %ss:\n%s" % (timeout, self.log_path.read_text()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    # -- a client: curl's own SigV4
    def curl(self, method: str, path: str, query: str = "", extra=()) -> tuple[int, bytes]:
        url = f"{self.endpoint}/{BUCKET}/{path}" + (f"?{query}" if query else "")
        r = subprocess.run(["curl", "-sS", "-X", method, "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", f"{ACCESS_KEY}:{SECRET_KEY}",
                            "-H", f"x-amz-content-sha256: {EMPTY_SHA256}",
                            "-w", "\n%{http_code}", *extra, url],
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body

    def list(self, prefix: str) -> dict[str, int]:
        """Keys under prefix with their sizes."""
        out, token = {}, None
        while True:
            q = (f"continuation-token={token}&" if token else "") + "list-type=2&prefix=" + prefix
            code, body = self.curl("GET", "", q)
            if code != 200:
                raise RuntimeError(f"list: HTTP {code}: {body[:300]!r}")
            root = ET.fromstring(body)
            for c in root.iter(NS + "Contents"):
                out[c.find(NS + "Key").text] = int(c.find(NS + "Size").text)
            if root.findtext(NS + "IsTruncated") != "true":
                return out
            token = root.findtext(NS + "NextContinuationToken")

    def get(self, key: str) -> bytes:
        code, body = self.curl("GET", key)
        if code != 200:
            raise RuntimeError(f"get {key}: HTTP {code}: {body[:300]!r}")
        return body

    def put(self, key: str, data: bytes):
        sha = hashlib.sha256(data).hexdigest()
        url = f"{self.endpoint}/{BUCKET}/{key}"
        r = subprocess.run(["curl", "-sS", "-X", "PUT", "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", f"{ACCESS_KEY}:{SECRET_KEY}",
                            "-H", f"x-amz-content-sha256: {sha}", "--data-binary", "@-",
                            "-H", "Content-Type: application/octet-stream",
                            "-w", "%{http_code}", "-o", "/dev/null", url],
                           input=data, capture_output=True, timeout=60)
        assert r.stdout == b"200", (r.stdout, r.stderr)


def s3_settings(server: S3rver, prefix: str = "prod/", segment_seconds: int = 2, **extra) -> dict:
    """The broker's storage block for this server."""
    s3 = {
        "endpoint": server.endpoint,
        "region": "us-east-1",
        "bucket": BUCKET,
        "prefix": prefix,
        "path_style": True,
        "credentials": "env",
        "segment_seconds": segment_seconds,
    }
    s3.update(extra)
    return {"storage": {"s3": s3}}


S3_ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


@pytest.fixture
def s3(tmp_path):
    servers = []

    def factory() -> S3rver:
        s = S3rver(tmp_path / f"s3rver{len(servers)}")
        servers.append(s)
        return s.start()
    yield factory
    for s in servers:
        s.stop()

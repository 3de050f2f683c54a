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


# ------------------------------------------------ an independent check of the signatures

import hmac  # noqa: E402
import http.client  # noqa: E402
import http.server  # noqa: E402
import threading  # noqa: E402
import urllib.parse  # noqa: E402


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


def sigv4_check(method: str, raw_path: str, headers, body: bytes, secrets: dict) -> str | None:
    """Why a request's AWS Signature V4 is wrong (None: it is right), from the spec alone."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access, date, region, service, term = parts["Credential"].split("/")
    if access not in secrets:
        return "InvalidAccessKeyId"
    signed = parts["SignedHeaders"].split(";")
    for must in ("host", "x-amz-content-sha256", "x-amz-date"):
        if must not in signed:
            return f"{must} is not signed"
    if headers.get("x-amz-security-token") and "x-amz-security-token" not in signed:
        return "x-amz-security-token is not signed"
    payload = headers.get("x-amz-content-sha256", "")
    if method in ("PUT", "POST") and payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the SHA-256 of the body"
    path, _, query = raw_path.partition("?")
    pairs = []
    for item in query.split("&") if query else []:
        k, _, v = item.partition("=")
        pairs.append((_q(urllib.parse.unquote(k)), _q(urllib.parse.unquote(v))))
    cquery = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    cheaders = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    creq = "\n".join([method, path, cquery, cheaders, ";".join(signed), payload])
    amzdate = headers.get("x-amz-date", "")
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, f"{date}/{region}/{service}/{term}",
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secrets[access]).encode()
    for part in (date, region, service, term):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if service != "s3" or not hmac.compare_digest(want, parts["Signature"]):
        return "SignatureDoesNotMatch"
    return None


class SigV4Proxy:
    """Checks each request's signature, then passes it on to s3rver; also a tiny STS."""

    def __init__(self, server: S3rver, secrets: dict):
        self.server, self.secrets = server, secrets
        self.requests = []  # (method, path, verdict, headers)
        self.sts_token = None  # the web identity token STS accepts
        self.issued = []  # session tokens handed out
        # Predicates of (method, path): the first request for which one answers gets an
        # error instead of s3rver's answer: 500 InternalError for True, 400 InvalidPart for 400.
        self.faults = []
        # A list: DELETE ?uploadId= (AbortMultipartUpload, which s3rver refuses) is
        # answered 204 here, as S3 does, and the upload id added to it.
        self.aborts = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.path.startswith("/?Action=AssumeRoleWithWebIdentity"):
                    return self._sts()
                why = sigv4_check(self.command, self.path, self.headers, body, proxy.secrets)
                proxy.requests.append((self.command, self.path, why, dict(self.headers)))
                if why is not None:
                    out = (f"<Error><Code>{why.split()[0]}</Code><Message>{why}</Message>"
                           "</Error>").encode()
                    return self._send(403, out, {"Content-Type": "application/xml"})
                for f in list(proxy.faults):
                    fault = f(self.command, self.path)
                    if fault:
                        proxy.faults.remove(f)
                        code, err = (400, b"InvalidPart") if fault == 400 else \
                            (500, b"InternalError")
                        return self._send(code, b"<Error><Code>" + err + b"</Code><Message>"
                                          b"injected</Message></Error>",
                                          {"Content-Type": "application/xml"})
                if proxy.aborts is not None and self.command == "DELETE" and \
                        "?uploadId=" in self.path:
                    proxy.aborts.append(self.path.split("uploadId=")[1].split("&")[0])
                    return self._send(204, b"", {})
                c = http.client.HTTPConnection("127.0.0.1", proxy.server.port, timeout=60)
                hdrs = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                c.request(self.command, self.path, body=body or None, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                keep = {k: v for k, v in r.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "content-length")}
                c.close()
                self._send(r.status, data, keep, head_length=r.getheader("Content-Length"))

            def _sts(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if q.get("WebIdentityToken", [None])[0] != proxy.sts_token:
                    return self._send(403, b"<ErrorResponse><Error><Code>AccessDenied</Code>"
                                      b"<Message>bad token</Message></Error></ErrorResponse>", {})
                tok = f"session-token-{len(proxy.issued)}"
                proxy.issued.append(tok)
                exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                xml = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                       f"<Credentials><AccessKeyId>{ACCESS_KEY}</AccessKeyId>"
                       f"<SecretAccessKey>{SECRET_KEY}</SecretAccessKey>"
                       f"<SessionToken>{tok}</SessionToken><Expiration>{exp}</Expiration>"
                       "</Credentials></AssumeRoleWithWebIdentityResult>"
                       "</AssumeRoleWithWebIdentityResponse>")
                self._send(200, xml.encode(), {"Content-Type": "text/xml"})

            def _send(self, code, data, headers, head_length=None):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", head_length or "0")
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

"""Start the test Kubernetes API server (tests/k8s/apiserver.py) from tests.

No pytest fixture lives here, so any test module can use it::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "k8s"))
    from fixture import k8s_apiserver, closed_port, blackhole

    with k8s_apiserver(PODS, tmp_path) as k8s:
        r = k8s.kubectl("exec", "-n", "prod", "web-0", "--", "true")
        assert r.returncode == 0
        k8s.requests()          # logged requests, oldest first
        k8s.kubeconfig          # path of a kubeconfig for the server

``k8s_apiserver(pods, directory, **options)`` is a context manager;
``start_apiserver(...)`` returns the same ``K8sApiServer`` for the caller to
``.stop()``. Options:

  tls=True                https with a fresh self-signed CA (False: plain http)
  token="podgate-test-token"  bearer token the server requires and the
                          kubeconfig carries (None: no authentication)
  token_user="podgate-broker" who the token is
  forbid=(), forbid_exec=()   users (or "group:NAME") refused everything, or
                          refused pods/exec only (403)
  forbid_impersonation=False  403 for requests with Impersonate-User
  hang=None               "all" | "api" | "exec": which requests are read and
                          never answered
  namespace="default"     namespace of the kubeconfig's context
  server_version=None     what /version says (default v1.32.4; note that
                          /usr/bin/kubectl may be a dispatcher that runs the
                          kubectl matching this version)
  in_process=False        run ApiServer in a thread of this process instead
                          of a subprocess (then hang can be changed on the fly
                          through .server.hang)

A ``K8sApiServer`` has: .url .port .kubeconfig .token .ca (CA file or None)
.dir .home (a HOME for kubectl, so that its discovery cache is this test's)
.pid (subprocess mode) .server (in-process mode), and
  .requests()              list of request dicts: method, path, query
                           ({name: [values]}), raw_query, authorization,
                           impersonate_user, impersonate_groups,
                           impersonate_uid, impersonate_extra, accept,
                           user_agent, upgrade, protocols, status, user, time
  .events(type=None)       all log entries (requests and exec events:
                           "exec-start", "resize", "stdin-close", "exec-end")
  .wait_event(type, pred=None, timeout=10)  the first such event, polled
  .kubectl_argv(*args)     ["kubectl", "--kubeconfig", K, *args]
  .kubectl_env(home=None, **extra)  os.environ with HOME=home or .home
  .kubectl(*args, input=b"", timeout=30, env=None, home=None)  run it ->
                           CompletedProcess (bytes), stdin from `input`
  .stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import select
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
APISERVER = HERE / "apiserver.py"
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
KUBECTL = os.environ.get("KUBECTL", "kubectl")

sys.path.insert(0, str(HERE))
import apiserver  # noqa: E402


class K8sApiServer:
    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.url = None
        self.port = None
        self.kubeconfig = None
        self.token = None
        self.ca = None
        self.pid = None
        self.server = None  # ApiServer when in process
        self.proc = None
        self.log_path = directory / "requests.jsonl"
        self.home = directory / "home"
        self.home.mkdir(exist_ok=True)

    # ---- the log

    def events(self, type: str | None = None) -> list[dict]:
        if self.server is not None:
            entries = self.server.events()
        else:
            entries = []
            if self.log_path.exists():
                for line in self.log_path.read_text().splitlines():
                    if line.strip():
                        entries.append(json.loads(line))
        return [e for e in entries if type is None or e["type"] == type]

    def requests(self) -> list[dict]:
        return self.events("request")

    def wait_event(self, type: str, pred=None, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(type):
                if pred is None or pred(e):
                    return e
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {type!r} event matching within {timeout}s; log: {self.events()}")
            time.sleep(0.02)

    # ---- kubectl

    def kubectl_argv(self, *args) -> list[str]:
        return [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args]

    def kubectl_env(self, home=None, **extra) -> dict:
        env = dict(os.environ)
        env["HOME"] = str(home or self.home)
        env.pop("KUBECONFIG", None)
        env.update(extra)
        return env

    def kubectl(self, *args, input: bytes = b"", timeout: float = 30, env=None,
                home=None) -> subprocess.CompletedProcess:
        return subprocess.run(self.kubectl_argv(*args), input=input, capture_output=True, timeout=timeout,
                              env=env or self.kubectl_env(home))

    # ---- lifetime

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc.stdout.close()
            self.proc = None


def start_apiserver(pods=None, directory=None, *, tls=True, token="podgate-test-token",
                    token_user="podgate-broker", forbid=(), forbid_exec=(), forbid_impersonation=False,
                    hang=None, namespace="default", server_version=None, in_process=False,
                    start_timeout: float = 15, protocols=None, client_ca=False) -> K8sApiServer:
    """Start a server on a free port of 127.0.0.1, write its kubeconfig."""
    if directory is None:
        import tempfile
        directory = tempfile.mkdtemp(prefix="k8s-apiserver-")
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    srv = K8sApiServer(d)
    srv.token = token
    tls_files = apiserver.make_tls(d / "tls") if tls else None
    srv.ca = tls_files["ca"] if tls else None
    if in_process:
        srv.server = apiserver.ApiServer(
            pods if pods is not None else {}, tls=(tls_files["cert"], tls_files["key"]) if tls else None,
            token=token, token_user=token_user, forbid=forbid, forbid_exec=forbid_exec,
            forbid_impersonation=forbid_impersonation, hang=hang, log_path=str(srv.log_path),
            server_version=server_version or apiserver.SERVER_VERSION, protocols=protocols,
            client_ca=tls_files["ca"] if tls and client_ca else None).start()
        srv.url, srv.port = srv.server.url, srv.server.port
    else:
        pods_path = d / "pods.json"
        if isinstance(pods, (str, os.PathLike)) and not str(pods).lstrip().startswith("{"):
            pods_path = pathlib.Path(pods)
        else:
            pods_path.write_text(json.dumps(apiserver.load_spec(pods if pods is not None else {}), indent=1))
        argv = [PYTHON, str(APISERVER), "--port", "0", "--pods", str(pods_path), "--log", str(srv.log_path),
                "--token-user", token_user]
        if tls:
            argv += ["--tls-cert", tls_files["cert"], "--tls-key", tls_files["key"]]
        if token:
            argv += ["--token", token]
        for u in forbid:
            argv += ["--forbid", u]
        for u in forbid_exec:
            argv += ["--forbid-exec", u]
        if forbid_impersonation:
            argv.append("--forbid-impersonation")
        if hang:
            argv += ["--hang", hang]
        if server_version:
            argv += ["--server-version", server_version]
        for p in protocols or ():
            argv += ["--protocol", p]
        stderr = open(d / "apiserver.stderr", "wb")
        srv.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        stderr.close()
        srv.pid = srv.proc.pid
        line = b""
        deadline = time.monotonic() + start_timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([srv.proc.stdout], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                srv.stop()
                raise RuntimeError(f"apiserver did not start within {start_timeout}s: "
                                   f"{(d / 'apiserver.stderr').read_text()}")
            chunk = os.read(srv.proc.stdout.fileno(), 4096)
            if not chunk:
                srv.stop()
                raise RuntimeError(f"apiserver exited: {(d / 'apiserver.stderr').read_text()}")
            line += chunk
        info = json.loads(line)
        srv.url, srv.port = info["url"], info["port"]
    srv.kubeconfig = apiserver.write_kubeconfig(d / "kubeconfig", srv.url, ca_file=srv.ca, token=token,
                                                namespace=namespace)
    return srv


@contextlib.contextmanager
def k8s_apiserver(pods=None, directory=None, **options):
    srv = start_apiserver(pods, directory, **options)
    try:
        yield srv
    finally:
        srv.stop()


def make_client_cert(tls_dir, cn: str) -> dict:
    """A client certificate for CN signed by the CA of make_tls(tls_dir): {"cert", "key"}."""
    d = pathlib.Path(tls_dir)
    cert, key, csr, ext = d / f"{cn}.crt", d / f"{cn}.key", d / f"{cn}.csr", d / f"{cn}.ext"
    ext.write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={cn}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(d / "ca.crt"),
                    "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(cert),
                    "-days", "30", "-extfile", str(ext)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return {"cert": str(cert), "key": str(key)}


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def blackhole():
    """A port that completes TCP handshakes (kernel backlog) and never answers.

    Yields the port; nothing is ever accepted or read.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


write_kubeconfig = apiserver.write_kubeconfig
make_tls = apiserver.make_tls

"""The test Kubernetes API server (tests/k8s/apiserver.py) against the real kubectl.

Each kubectl run has its own HOME (so its own discovery cache). The messages
kubectl prints for each failure mode are asserted exactly; the table of them is
in docs/k8s-test-apiserver.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
import ssl
import urllib.error
import urllib.request

import pytest

K8S_DIR = pathlib.Path(__file__).resolve().parents[1] / "k8s"
sys.path.insert(0, str(K8S_DIR))
import apiserver  # noqa: E402
from fixture import blackhole, closed_port, k8s_apiserver, write_kubeconfig  # noqa: E402
from support import readline_within  # noqa: E402
from support.terminal import Terminal, set_winsize  # noqa: E402

if shutil.which("kubectl") is None:
    pytest.skip("kubectl is not installed", allow_module_level=True)

PODS = {
    "namespaces": {
        "prod": {
            "pods": [
                {"name": "web-0", "containers": ["app", "sidecar"], "labels": {"tier": "web"},
                 "owner": {"statefulset": "web"}},
                {"name": "api-1", "containers": ["app"], "owner": {"deployment": "api"}},
                {"name": "secret-0", "containers": ["app"], "forbidden_users": ["alice"]},
                {"name": "job-1", "phase": "Succeeded"},
                {"name": "crashed-1", "phase": "Failed"},
                {"name": "pend-1", "phase": "Pending"},
            ],
        },
        "restricted": {"exec_forbidden_users": ["alice"], "pods": ["db-0"]},
        "default": {},
    },
}
TOKEN = "podgate-test-token"


def last_line(b: bytes) -> str:
    lines = b.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture
def k8s(tmp_path):
    with k8s_apiserver(PODS, tmp_path / "k8s", forbid=["mallory"], forbid_exec=["eve"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def shared_k8s(tmp_path_factory):
    """One server for the failure table (each kubectl run still has its own HOME)."""
    d = tmp_path_factory.mktemp("k8s-shared")
    with k8s_apiserver(PODS, d, forbid=["mallory"], forbid_exec=["eve"]) as srv:
        yield srv


def exec_requests(srv) -> list[dict]:
    return [r for r in srv.requests() if r["path"].endswith("/exec")]


# --------------------------------------------------------------------------
# exec
# --------------------------------------------------------------------------

def test_exec_stdout_stderr_and_exit_status(k8s):
    r = k8s.kubectl("exec", "-i", "-n", "prod", "api-1", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\ncommand terminated with exit code 7\n"
    assert r.returncode == 7
    (ex,) = exec_requests(k8s)
    assert ex["method"] == "GET" and ex["status"] == 101
    assert ex["path"] == "/api/v1/namespaces/prod/pods/api-1/exec"
    assert ex["query"]["command"] == ["sh", "-c", "echo out; echo err >&2; exit 7"]
    assert ex["query"]["container"] == ["app"]
    assert ex["query"]["stdin"] == ["true"] and ex["query"]["stdout"] == ["true"]
    assert ex["query"]["stderr"] == ["true"] and "tty" not in ex["query"]
    assert ex["upgrade"].lower() == "websocket" and ex["subprotocol"] == "v5.channel.k8s.io"
    end = k8s.wait_event("exec-end")
    assert end["exit_code"] == 7 and not end["client_gone"]


def test_exec_success_and_container_env(k8s):
    r = k8s.kubectl("exec", "-n", "prod", "web-0", "-c", "sidecar", "--", "sh", "-c",
                    'echo "$HOSTNAME $PODGATE_K8S_NAMESPACE $PODGATE_K8S_POD $PODGATE_K8S_CONTAINER"')
    assert (r.returncode, r.stdout, r.stderr) == (0, b"web-0 prod web-0 sidecar\n", b"")


def test_exec_stdin_until_eof(k8s):
    r = k8s.kubectl("exec", "-i", "-n", "prod", "api-1", "--", "cat", input=b"data")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"data", b"")
    k8s.wait_event("stdin-close")


def test_exec_large_streams_are_byte_exact(k8s):
    blob = os.urandom(1 << 20)
    r = k8s.kubectl("exec", "-i", "-n", "prod", "api-1", "--", "sh", "-c", "cat; seq 1 100000 >&2", input=blob)
    assert r.returncode == 0
    assert r.stdout == blob
    assert r.stderr == "".join(f"{i}\n" for i in range(1, 100001)).encode()


def test_exec_deploy_and_sts_resolve_to_pods(k8s):
    r = k8s.kubectl("exec", "-n", "prod", "deploy/api", "--", "sh", "-c", "echo $HOSTNAME")
    assert (r.returncode, r.stdout) == (0, b"api-1\n")
    r = k8s.kubectl("exec", "-n", "prod", "sts/web", "-c", "sidecar", "--", "sh", "-c", "echo $HOSTNAME")
    assert (r.returncode, r.stdout) == (0, b"web-0\n")
    paths = [(q["path"], q["raw_query"]) for q in k8s.requests()]
    assert ("/apis/apps/v1/namespaces/prod/deployments/api", "") in paths
    assert ("/api/v1/namespaces/prod/pods", "labelSelector=app%3Dapi") in paths
    assert ("/apis/apps/v1/namespaces/prod/statefulsets/web", "") in paths


def spawn_in_pty(argv: list[str], env: dict, rows=24, cols=80) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # child: kubectl on a terminal of the given size
        try:
            set_winsize(0, rows, cols)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, fd


def wait_pid(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"kubectl (pid {pid}) did not exit within {timeout}s")


def test_exec_tty_resize_reaches_the_command(k8s):
    script = 'trap "stty size; exit 3" WINCH; stty size; tty >/dev/null && echo "TERM=$TERM"; echo READY; ' \
             'while :; do sleep 0.05; done'
    pid, fd = spawn_in_pty(k8s.kubectl_argv("exec", "-it", "-n", "prod", "api-1", "--", "sh", "-c", script),
                           k8s.kubectl_env())
    t = Terminal(fd=fd)
    try:
        t.expect(b"READY", timeout=15)
        assert b"24 80\r\n" in t.buf and b"TERM=xterm\r\n" in t.buf
        set_winsize(fd, 40, 100)  # kubectl gets SIGWINCH and sends a resize frame
        t.expect(b"40 100\r\n", timeout=15)
        buf = t.drain(timeout=15)  # the rest, up to EOF
    finally:
        code = wait_pid(pid, 15)
        os.close(fd)
    assert code == 3
    assert buf.endswith(b"command terminated with exit code 3\r\n"), bytes(buf)
    (ex,) = exec_requests(k8s)
    assert ex["query"]["tty"] == ["true"] and ex["query"]["stdin"] == ["true"]
    assert "stderr" not in ex["query"] or ex["query"]["stderr"] == ["false"]
    sizes = [(e["width"], e["height"]) for e in k8s.events("resize")]
    assert sizes[0] == (80, 24) and (100, 40) in sizes


def test_exec_tty_input(k8s):
    pid, fd = spawn_in_pty(k8s.kubectl_argv("exec", "-it", "-n", "prod", "api-1", "--", "sh", "-c",
                                            'echo READY; read line; echo "got:$line"'), k8s.kubectl_env())
    t = Terminal(fd=fd)
    try:
        t.expect(b"READY", timeout=15)
        t.send(b"abc\r")  # kubectl puts its terminal in raw mode: the remote PTY cooks it
        t.expect(b"got:abc", timeout=15)
    finally:
        code = wait_pid(pid, 15)
        os.close(fd)
    assert code == 0


def test_client_gone_ends_the_command(k8s, tmp_path):
    pidfile = tmp_path / "child.pid"
    p = subprocess.Popen(k8s.kubectl_argv("exec", "-n", "prod", "api-1", "--", "sh", "-c",
                                          f"echo $$ > {pidfile}; echo started; exec sleep 60"),
                         env=k8s.kubectl_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert readline_within(p.stdout) == b"started\n"
        p.kill()
    finally:
        p.wait()
        p.stdout.close()
    end = k8s.wait_event("exec-end")
    assert end["client_gone"] is True
    child = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


# --------------------------------------------------------------------------
# authentication, impersonation, the request log
# --------------------------------------------------------------------------

def test_token_and_impersonation_headers_reach_the_server(k8s):
    r = k8s.kubectl("--as", "alice", "--as-group", "oncall", "--as-group", "sre",
                    "exec", "-n", "prod", "api-1", "--", "true")
    assert r.returncode == 0, r.stderr
    reqs = k8s.requests()
    assert reqs and all(q["authorization"] == f"Bearer {TOKEN}" for q in reqs)
    assert all(q["impersonate_user"] == "alice" for q in reqs)
    assert all(q["impersonate_groups"] == ["oncall", "sre"] for q in reqs)
    (ex,) = exec_requests(k8s)
    assert ex["user"] == "alice" and ex["status"] == 101
    # The same log as JSON lines on disk.
    on_disk = [json.loads(x) for x in (k8s.dir / "requests.jsonl").read_text().splitlines()]
    assert [e["path"] for e in on_disk if e["type"] == "request"] == [q["path"] for q in reqs]


def test_impersonation_refused(tmp_path):
    with k8s_apiserver(PODS, tmp_path / "k8s", forbid_impersonation=True, in_process=True) as srv:
        # Cold discovery cache: discovery itself is refused and kubectl loses the message.
        r = srv.kubectl("--as", "alice", "exec", "-n", "prod", "api-1", "--", "true")
        assert (r.returncode, last_line(r.stderr)) == (1, "Error from server (Forbidden): unknown")
        # Warm cache (as a broker has after its first session): the message comes through.
        srv.server.forbid_impersonation = False
        assert srv.kubectl("exec", "-n", "prod", "api-1", "--", "true").returncode == 0
        srv.server.forbid_impersonation = True
        r = srv.kubectl("--as", "alice", "exec", "-n", "prod", "api-1", "--", "true")
        assert (r.returncode, last_line(r.stderr)) == (
            1, 'Error from server (Forbidden): users "alice" is forbidden: User "podgate-broker" '
               'cannot impersonate resource "users" in API group "" at the cluster scope')


# --------------------------------------------------------------------------
# failure modes: kubectl's exit status and last line of stderr
# --------------------------------------------------------------------------

FAILURES = {
    "pod-not-found": (["exec", "-n", "prod", "nope", "--", "true"],
                      1, 'Error from server (NotFound): pods "nope" not found'),
    "namespace-not-found": (["exec", "-n", "nons", "web-0", "--", "true"],
                            1, 'Error from server (NotFound): namespaces "nons" not found'),
    "container-not-in-pod": (["exec", "-n", "prod", "web-0", "-c", "nope", "--", "true"],
                             1, "Error from server (BadRequest): container nope is not valid for pod web-0"),
    "forbidden-user": (["--as", "mallory", "exec", "-n", "prod", "api-1", "--", "true"],
                       1, 'Error from server (Forbidden): pods "api-1" is forbidden: User "mallory" cannot get '
                          'resource "pods" in API group "" in the namespace "prod"'),
    "forbidden-exec": (["--as", "eve", "exec", "-n", "prod", "api-1", "--", "true"],
                       1, 'Error from server (Forbidden): pods "api-1" is forbidden: User "eve" cannot create '
                          'resource "pods/exec" in API group "" in the namespace "prod"'),
    "forbidden-pod-in-spec": (["--as", "alice", "exec", "-n", "prod", "secret-0", "--", "true"],
                              1, 'Error from server (Forbidden): pods "secret-0" is forbidden: User "alice" cannot '
                                 'get resource "pods" in API group "" in the namespace "prod"'),
    "forbidden-exec-namespace-in-spec": (
        ["--as", "alice", "exec", "-n", "restricted", "db-0", "--", "true"],
        1, 'Error from server (Forbidden): pods "db-0" is forbidden: User "alice" cannot create resource '
           '"pods/exec" in API group "" in the namespace "restricted"'),
    "completed-pod": (["exec", "-n", "prod", "job-1", "--", "true"],
                      1, "error: cannot exec into a container in a completed pod; current phase is Succeeded"),
    "failed-pod": (["exec", "-n", "prod", "crashed-1", "--", "true"],
                   1, "error: cannot exec into a container in a completed pod; current phase is Failed"),
    "pending-pod": (["exec", "-n", "prod", "pend-1", "--", "true"],
                    1, "Error from server (BadRequest): pod pend-1 does not have a host assigned"),
    "command-not-found": (["exec", "-n", "prod", "api-1", "--", "/nonexistent/cmd"],
                          1, 'error: Internal error occurred: error executing command in container: failed to exec '
                             'in container: exec: "/nonexistent/cmd": No such file or directory'),
    "deployment-not-found": (["exec", "-n", "prod", "deploy/nope", "--", "true"],
                             1, 'Error from server (NotFound): deployments.apps "nope" not found'),
    # Cold discovery cache; with a warm one the parenthesis says "(Unauthorized)".
    "bad-token": (["--token", "wrong", "exec", "-n", "prod", "api-1", "--", "true"],
                  1, "error: You must be logged in to the server "
                     "(the server has asked for the client to provide credentials)"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_modes(shared_k8s, tmp_path, case):
    args, code, message = FAILURES[case]
    r = shared_k8s.kubectl(*args, home=tmp_path / "home")
    assert (r.returncode, last_line(r.stderr)) == (code, message), r.stderr.decode()
    assert r.stdout == b""


def test_spdy_is_refused_cleanly(k8s):
    r = k8s.kubectl("exec", "-n", "prod", "api-1", "--", "true",
                    env=k8s.kubectl_env(KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false"))
    assert (r.returncode, last_line(r.stderr)) == (
        1, "Error from server (BadRequest): upgrade to SPDY/3.1 is not supported by this test API server; "
           "use WebSockets (v5.channel.k8s.io)")
    (ex,) = exec_requests(k8s)
    assert ex["method"] == "POST" and ex["status"] == 400 and ex["upgrade"] == "SPDY/3.1"


def test_refused_websocket_falls_back_to_a_refused_post(k8s):
    k8s.kubectl("exec", "-n", "prod", "web-0", "-c", "nope", "--", "true")
    assert [(q["method"], q["status"]) for q in exec_requests(k8s)] == [("GET", 400), ("POST", 400)]


def test_unknown_certificate_authority(k8s, tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", k8s.url, token=TOKEN)  # no CA: the system roots
    r = subprocess.run(["kubectl", "--kubeconfig", kc, "exec", "-n", "prod", "api-1", "--", "true"],
                       capture_output=True, env=k8s.kubectl_env(), timeout=30)
    assert (r.returncode, last_line(r.stderr)) == (
        1, "Unable to connect to the server: tls: failed to verify certificate: "
           "x509: certificate signed by unknown authority")


def test_unreachable_server(tmp_path):
    port = closed_port()
    kc = write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}", token=TOKEN)
    r = subprocess.run(["kubectl", "--kubeconfig", kc, "exec", "-n", "prod", "api-1", "--", "true"],
                       capture_output=True, env=dict(os.environ, HOME=str(tmp_path)), timeout=30)
    assert (r.returncode, last_line(r.stderr)) == (
        1, f"The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?")


# Go words the same timeout differently from run to run.
TIMEOUT_RE = (r"Unable to connect to the server: (context deadline exceeded|net/http: request canceled"
              r"( while waiting for connection)?)( \(Client\.Timeout exceeded while awaiting headers\))?")


def test_hanging_server(tmp_path):
    with k8s_apiserver(PODS, tmp_path / "k8s", hang="all") as srv:
        t0 = time.monotonic()
        r = srv.kubectl("--request-timeout=2s", "exec", "-n", "prod", "api-1", "--", "true", timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 1
        assert re.fullmatch(TIMEOUT_RE, last_line(r.stderr)), r.stderr.decode()
        # Never before the request timeout. Cold cache: the dispatcher's /version and up to
        # 4 discovery tries, 2 s each, none answered; that count bounds the wait, not a clock.
        assert took >= 2
        paths = [q["path"] for q in srv.requests()]
        assert paths[:1] == ["/version"] and len(paths) <= 5, paths
        assert all(p == "/api" for p in paths[1:]), paths
        assert all(q["status"] is None for q in srv.requests())


def test_hanging_api_after_discovery(tmp_path):
    with k8s_apiserver(PODS, tmp_path / "k8s", hang="api") as srv:
        t0 = time.monotonic()
        r = srv.kubectl("--request-timeout=2s", "exec", "-n", "prod", "api-1", "--", "true", timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 1
        assert re.fullmatch(TIMEOUT_RE, last_line(r.stderr)), r.stderr.decode()
        assert took >= 2  # never before the request timeout
        # Discovery answered, then the one request left unanswered: a single 2 s wait.
        reqs = srv.requests()
        assert reqs[-1]["path"] == "/api/v1/namespaces/prod/pods/api-1"
        assert [q for q in reqs if q["status"] is None] == [reqs[-1]], reqs


def test_hanging_exec_is_not_bounded_by_request_timeout(tmp_path):
    """kubectl's WebSocket dial ignores --request-timeout: the broker needs its own deadline."""
    with k8s_apiserver(PODS, tmp_path / "k8s", hang="exec") as srv:
        p = subprocess.Popen(srv.kubectl_argv("--request-timeout=2s", "exec", "-n", "prod", "api-1", "--", "true"),
                             env=srv.kubectl_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            srv.wait_event("request", lambda q: q["path"].endswith("/exec"))
            with pytest.raises(subprocess.TimeoutExpired):
                p.wait(timeout=3)  # longer than --request-timeout
        finally:
            p.kill()
            p.wait()


def test_blackhole_port(tmp_path):
    """TCP accepted by the kernel, never answered (not even TLS)."""
    with blackhole() as port:
        kc = write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}", token=TOKEN)
        r = subprocess.run(["kubectl", "--kubeconfig", kc, "--request-timeout=1s", "exec", "-n", "prod", "api-1",
                            "--", "true"], capture_output=True, env=dict(os.environ, HOME=str(tmp_path)),
                           timeout=60)
        assert r.returncode == 1
        # The request timeout's message: kubectl gave up by itself (the 60 s above is the
        # test's deadline for a hang).
        assert re.fullmatch(TIMEOUT_RE, last_line(r.stderr)), r.stderr.decode()


# --------------------------------------------------------------------------
# listings
# --------------------------------------------------------------------------

def test_get_pods_json(k8s):
    r = k8s.kubectl("get", "pods", "-n", "prod", "-o", "json")
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)
    assert listing["kind"] == "List" or listing["kind"] == "PodList"
    pods = {p["metadata"]["name"]: p for p in listing["items"]}
    assert set(pods) == {"web-0", "api-1", "secret-0", "job-1", "crashed-1", "pend-1"}
    web = pods["web-0"]
    assert web["metadata"]["namespace"] == "prod" and web["metadata"]["labels"] == {"tier": "web", "app": "web"}
    assert [c["name"] for c in web["spec"]["containers"]] == ["app", "sidecar"]
    assert web["status"]["phase"] == "Running" and web["metadata"]["creationTimestamp"]
    assert [c["name"] for c in web["status"]["containerStatuses"]] == ["app", "sidecar"]
    assert web["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert pods["job-1"]["status"]["phase"] == "Succeeded"

    r = k8s.kubectl("get", "pods", "-n", "prod", "-l", "app=api", "-o", "json")
    assert [p["metadata"]["name"] for p in json.loads(r.stdout)["items"]] == ["api-1"]
    r = k8s.kubectl("get", "pods", "-n", "prod", "-l", "app in (api,web),tier!=web", "-o", "json")
    assert [p["metadata"]["name"] for p in json.loads(r.stdout)["items"]] == ["api-1"]
    r = k8s.kubectl("get", "pods", "-n", "nons", "-o", "json")
    assert (r.returncode, json.loads(r.stdout)["items"]) == (0, [])


def test_get_tables_and_workloads(k8s):
    r = k8s.kubectl("get", "pods", "-n", "prod")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:3] == ["web-0", "2/2", "Running"]
    assert "Completed" in r.stdout.decode()
    r = k8s.kubectl("get", "deploy", "api", "-n", "prod", "-o", "json")
    dep = json.loads(r.stdout)
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "api"}
    r = k8s.kubectl("get", "sts", "web", "-n", "prod", "-o", "json")
    assert json.loads(r.stdout)["spec"]["selector"]["matchLabels"] == {"app": "web"}
    r = k8s.kubectl("get", "pod", "nope", "-n", "prod")
    assert (r.returncode, last_line(r.stderr)) == (1, 'Error from server (NotFound): pods "nope" not found')
    r = k8s.kubectl("get", "ns", "-o", "name")
    assert r.stdout.decode().split() == ["namespace/prod", "namespace/restricted", "namespace/default"]


# --------------------------------------------------------------------------
# plain http, the command line, in-process use, the wire protocol
# --------------------------------------------------------------------------

def test_plain_http_without_token(tmp_path):
    with k8s_apiserver(PODS, tmp_path / "k8s", tls=False, token=None) as srv:
        assert srv.url.startswith("http://")
        r = srv.kubectl("exec", "-n", "prod", "api-1", "--", "echo", "hi")
        assert (r.returncode, r.stdout) == (0, b"hi\n")
        assert all(q["authorization"] is None for q in srv.requests())


def test_command_line(tmp_path):
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps(PODS))
    kc = tmp_path / "kubeconfig"
    p = subprocess.Popen([sys.executable, str(K8S_DIR / "apiserver.py"),
                          "--port", "0", "--pods", str(pods), "--tls-dir", str(tmp_path / "tls"),
                          "--token", "t0k", "--kubeconfig", str(kc), "--namespace", "prod",
                          "--log", str(tmp_path / "log.jsonl")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = json.loads(readline_within(p.stdout))
        assert info["url"] == f"https://127.0.0.1:{info['port']}" and info["pid"] == p.pid
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.crt"))
        req = urllib.request.Request(info["url"] + "/api/v1/namespaces/prod/pods/web-0",
                                     headers={"Authorization": "Bearer t0k"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            pod = json.load(resp)
        assert (pod["kind"], pod["apiVersion"], pod["metadata"]["name"]) == ("Pod", "v1", "web-0")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(info["url"] + "/api", context=ctx, timeout=10)
        assert e.value.code == 401 and json.load(e.value)["reason"] == "Unauthorized"
        # The kubeconfig it wrote, with the context's namespace.
        r = subprocess.run(["kubectl", "--kubeconfig", str(kc), "exec", "api-1", "--", "echo", "ok"],
                           capture_output=True, env=dict(os.environ, HOME=str(tmp_path)), timeout=30)
        assert (r.returncode, r.stdout) == (0, b"ok\n")
        log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
        assert [e["type"] for e in log[:2]] == ["connection", "request"]
        assert log[1]["conn"] == log[0]["conn"] == 1
    finally:
        p.terminate()
        assert p.wait(10) == 0
        p.stdout.close()
        p.stderr.close()


def test_in_process_server_and_not_found_status(tmp_path):
    srv = apiserver.ApiServer(PODS).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.url + "/api/v1/namespaces/prod/pods/x", timeout=10)
        assert e.value.code == 404
        assert json.load(e.value) == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'pods "x" not found', "reason": "NotFound", "details": {"name": "x", "kind": "pods"},
            "code": 404}
        with urllib.request.urlopen(srv.url + "/apis", timeout=10) as resp:
            assert json.load(resp)["kind"] == "APIGroupList"
        assert [q["path"] for q in srv.requests()] == ["/api/v1/namespaces/prod/pods/x", "/apis"]
    finally:
        srv.stop()


def test_v4_protocol_and_status_frames(tmp_path):
    import websockets

    with k8s_apiserver(PODS, tmp_path / "k8s", tls=False, token=None) as srv:
        base = srv.url.replace("http://", "ws://") + "/api/v1/namespaces/prod/pods/api-1/exec"
        query = "?command=sh&command=-c&command=echo%20hi%3B%20exit%202&stdout=true&stderr=true"

        async def session(protocols):
            async with websockets.connect(base + query, subprotocols=protocols) as ws:
                return ws.subprotocol, [m async for m in ws]

        proto, frames = asyncio.run(session(["v4.channel.k8s.io"]))
        assert proto == "v4.channel.k8s.io"
        assert frames[0] == b"\x01hi\n"
        assert frames[-1][0] == 3 and json.loads(frames[-1][1:]) == {
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       "[sh -c echo hi; exit 2], exit code 2",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}
        proto, frames = asyncio.run(session(["v5.channel.k8s.io", "v4.channel.k8s.io"]))
        assert proto == "v5.channel.k8s.io"
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            asyncio.run(session(["channel.k8s.io"]))
        assert e.value.status_code == 400


def test_pod_shells_hide_the_others(tmp_path):
    """A pod spec says which shells its containers have: the others are neither
    found on PATH nor run by path, so a slim image can be stood in for."""
    spec = {"namespaces": {"slim": {"pods": [
        {"name": "slim-0", "shells": ["sh"]},
        {"name": "two-0", "containers": ["app", {"name": "tools", "shells": ["sh", "bash"]}],
         "shells": ["sh"]}]}}}
    with k8s_apiserver(spec, tmp_path / "k8s") as srv:
        r = srv.kubectl("exec", "-n", "slim", "slim-0", "--", "sh", "-c",
                        "command -v bash || echo no-bash; command -v cat >/dev/null && echo cat")
        assert (r.returncode, r.stdout) == (0, b"no-bash\ncat\n"), r.stderr
        for argv in (["bash", "-c", "true"], ["/bin/bash", "-c", "true"], ["dash"]):
            r = srv.kubectl("exec", "-n", "slim", "slim-0", "--", *argv)
            assert r.returncode == 1 and r.stdout == b"", argv
            assert f'exec: "{argv[0]}": executable file not found in $PATH'.encode() in r.stderr, \
                r.stderr
        r = srv.kubectl("exec", "-n", "slim", "two-0", "-c", "tools", "--", "bash", "-c",
                        "echo $0")
        assert (r.returncode, r.stdout) == (0, b"bash\n"), r.stderr
        r = srv.kubectl("exec", "-n", "slim", "two-0", "-c", "app", "--", "bash")
        assert r.returncode == 1


def test_inprocess_cat_serves_echo_then_cat_without_a_process(tmp_path):
    """An inprocess_cat pod serves `sh -c 'echo WORDS; exec cat'` itself (the
    benchmark's thousands of execs): no shell is needed for it, while any other
    command still runs as a process (here with no PATH, so it cannot)."""
    spec = {"namespaces": {"b": {"pods": [
        {"name": "cat-0", "inprocess_cat": True, "env": {"PATH": "/nonexistent"}}]}}}
    with k8s_apiserver(spec, tmp_path / "k8s") as srv:
        r = srv.kubectl("exec", "-i", "-n", "b", "cat-0", "--", "sh", "-c",
                        "echo ready; exec cat", input=b"one\ntwo")
        assert (r.returncode, r.stdout, r.stderr) == (0, b"ready\none\ntwo", b"")
        srv.wait_event("stdin-close")
        end = srv.wait_event("exec-end")
        assert end["exit_code"] == 0 and not end["client_gone"]
        r = srv.kubectl("exec", "-n", "b", "cat-0", "--", "sh", "-c", "echo ready; cat")
        assert r.returncode != 0 and r.stdout == b""

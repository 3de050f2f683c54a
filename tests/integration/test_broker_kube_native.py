"""The native Kubernetes transport: what only it does.

ssh -> podgate-broker (TLS, HTTP/1.1, the exec WebSocket with wslay) -> the
test API server (tests/k8s/apiserver.py). What both transports share is in
test_broker_kube.py; here: no process per session, the protocols offered and
chosen (v5, v4), credentials (token file rotation, exec plugins, a refused
kubeconfig), TLS failures, a stream without a status, pings and a dead API
server, and bounded memory when the client stops reading.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import sys
import time
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from conftest import free_port, wait_until  # noqa: E402
from support.terminal import Terminal  # noqa: E402
from fixture import make_client_cert, make_tls, start_apiserver  # noqa: E402
import apiserver  # noqa: E402

PODS = {
    "namespaces": {
        "prod": {
            "pods": [
                {"name": "web-0", "containers": ["app", "sidecar"], "default_container": "sidecar"},
                {"name": "drop-0", "drop_exec": True},
                {"name": "hang-0", "hang_exec": True},
            ],
        },
    },
}

RULES = [{"groups": ["oncall"], "targets": ["*:*/*", "*:*/*/*"],
          "impersonate": {"user": "{user}", "groups": ["oncall", "sre"]}}]


def native_broker(broker, clusters, env=None, settings=None):
    """A broker with native clusters (kubectl /bin/false: never run)."""
    b = broker(users={"alice": {"groups": ["oncall"]}}, rules=RULES, targets={}, env=env,
               settings=settings, start=False)
    for cl in clusters:
        cl.setdefault("transport", "native")
        cl.setdefault("kubectl", "/bin/false")
        cl.setdefault("timeout", "3s")
    b.kubernetes = clusters
    b.start()
    return b


def kubeconfig(path, url, *, ca=None, user=None, cluster=None):
    """A kubeconfig (JSON, which is YAML) for url with the given user entry."""
    d = apiserver.kubeconfig_dict(url, ca_file=ca, token=None)
    d["users"][0]["user"] = user or {}
    if cluster:
        d["clusters"][0]["cluster"].update(cluster)
    p = pathlib.Path(path)
    p.write_text(json.dumps(d, indent=1))
    os.chmod(p, 0o600)
    return str(p)


def one_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


def children(pid: int) -> list[int]:
    kids = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(x) for x in text]
    return kids


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    d = tmp_path_factory.mktemp("k8s-native")
    srv = start_apiserver(PODS, d / "api", in_process=True, client_ca=True)
    srv.v4 = start_apiserver(PODS, d / "v4", protocols=["v4.channel.k8s.io"])
    try:
        yield srv
    finally:
        srv.v4.stop()
        srv.stop()


def test_native_starts_no_process(broker, api):
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig)}])
    n0 = len(api.requests())
    c = b.connect("alice")
    try:
        ch = c.get_transport().open_session()
        ch.exec_command("prod/web-0 -- read x; echo got $x; echo $PODGATE_K8S_CONTAINER")
        api.wait_event("exec-start", lambda e: e["pod"] == "web-0")
        assert children(b.pid) == [], "the broker started a process for the session"
        ch.sendall(b"hello\n")
        ch.shutdown_write()
        assert ch.recv_exit_status() == 0
        out = Terminal(ch).drain()
        assert out == b"got hello\nsidecar\n"  # the default-container annotation
    finally:
        c.close()
    reqs = api.requests()[n0:]
    (ex,) = [q for q in reqs if q["path"].endswith("/exec")]
    assert ex["user_agent"].startswith("podgate/")
    assert ex["protocols"] == ["v5.channel.k8s.io, v4.channel.k8s.io"]
    assert ex["subprotocol"] == "v5.channel.k8s.io"
    assert ex["query"]["container"] == ["sidecar"]
    assert ex["impersonate_user"] == "alice" and ex["impersonate_groups"] == ["oncall", "sre"]
    assert all(q["authorization"] == f"Bearer {api.token}" for q in reqs)
    assert all(q["impersonate_user"] == "alice" for q in reqs)
    # One connection: the pre-flight GET and the exec, nothing else.
    assert [q["path"] for q in reqs] == ["/api/v1/namespaces/prod/pods/web-0",
                                         "/api/v1/namespaces/prod/pods/web-0/exec"]


def fd_kinds(pid: int) -> dict[str, int]:
    """The process's descriptors by kind: pipe, socket, anon_inode, file."""
    kinds: dict[str, int] = {}
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except FileNotFoundError:
            continue
        kind = link.split(":", 1)[0] if ":" in link and not link.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_native_session_holds_no_descriptor_for_its_stdio(broker, api):
    """The session reads and writes the exec stream's bytes with nothing between:
    no pipes, no socket pairs; stdout and stderr stay apart, EOF reaches the pod."""
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig)}])
    c = b.connect("alice")
    try:
        before = fd_kinds(b.pid)
        ch = c.get_transport().open_session()
        ch.settimeout(20)
        ch.exec_command("prod/web-0/app -- echo started; echo warn >&2; cat")
        out, err = b"", b""
        while b"started\n" not in out:
            chunk = ch.recv(64)
            assert chunk, "the session ended before it started"
            out += chunk
        while b"warn\n" not in err:
            chunk = ch.recv_stderr(64)
            assert chunk, "stderr ended before the pod's line"
            err += chunk
        during = fd_kinds(b.pid)
        assert during.get("pipe", 0) == before.get("pipe", 0), (before, during)
        # The TLS socket and the recording (and perhaps a connection opened ahead).
        added = sum(during.values()) - sum(before.values())
        assert added <= 3, (before, during)
        ch.sendall(b"one\ntwo\n")
        ch.shutdown_write()  # EOF: cat ends only when it reaches the pod
        assert ch.recv_exit_status() == 0
        while True:
            chunk = ch.recv(1024)
            if not chunk:
                break
            out += chunk
        assert out == b"started\none\ntwo\n"
        assert err == b"warn\n"
    finally:
        c.close()


def test_next_session_uses_a_connection_opened_ahead(broker, api):
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig)}])
    r = b.ssh("alice", "prod/web-0/app", "--", "echo one")
    assert (r.returncode, r.stdout) == (0, b"one\n"), r.stderr
    # The first session opened a second connection for the next one.
    wait_until(lambda: len(api.events("connection")) >= 2, 10, "a connection opened ahead")
    ahead = {e["conn"] for e in api.events("connection")}
    n0 = len(api.requests())
    r = b.ssh("alice", "prod/web-0/app", "--", "echo two")
    assert (r.returncode, r.stdout) == (0, b"two\n"), r.stderr
    reqs = api.requests()[n0:]
    assert [q["path"] for q in reqs] == ["/api/v1/namespaces/prod/pods/web-0",
                                         "/api/v1/namespaces/prod/pods/web-0/exec"]
    assert reqs[0]["conn"] == reqs[1]["conn"] and reqs[0]["conn"] in ahead


def test_v4_server(broker, api):
    b = native_broker(broker, [{"name": "old", "kubeconfig": str(api.v4.kubeconfig)}])
    r = b.ssh("alice", "old:prod/web-0/app", "--", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, b"out\n", b"err\n")
    (ex,) = [q for q in api.v4.requests() if q["path"].endswith("/exec")]
    assert ex["subprotocol"] == "v4.channel.k8s.io"


def test_failures_are_one_line(broker, api, tmp_path):
    other = make_tls(tmp_path / "other-ca")
    clusters = [
        {"name": "prod", "kubeconfig": str(api.kubeconfig), "timeout": "2s"},
        {"name": "badca", "kubeconfig": kubeconfig(tmp_path / "badca", api.url, ca=other["ca"],
                                                   user={"token": api.token})},
        {"name": "badtoken", "kubeconfig": kubeconfig(tmp_path / "badtoken", api.url, ca=api.ca,
                                                      user={"token": "wrong"})},
    ]
    b = native_broker(broker, clusters)
    cases = [
        ("badca:prod/web-0", r"cannot reach the API server of cluster badca: TLS handshake with "
                             r"127\.0\.0\.1:\d+ failed: certificate verify failed"),
        ("badtoken:prod/web-0", r"refused the broker's credentials \(401 Unauthorized\)"),
        ("prod/drop-0", r"the exec stream of cluster prod ended without an exit status"),
        ("prod/hang-0", r"the API server of cluster prod did not answer within 2s"),
    ]
    import re
    for i, (target, rx) in enumerate(cases):
        r = b.ssh("alice", target, "--", "echo never", timeout=30)
        assert r.returncode == 1, (target, r)
        assert r.stdout == b""
        line = one_line(r.stderr)
        assert line.startswith("podgate: "), line
        assert re.search(rx, line), (target, line)
        ev = b.wait_audit("target_failed", count=i + 1)[i]
        assert re.search(rx, ev["reason"]) and ev["user"] == "alice", ev


def test_token_file_is_read_again_when_it_changes(broker, api, tmp_path):
    tok = tmp_path / "token"
    tok.write_text(api.token + "\n")
    kc = kubeconfig(tmp_path / "kc", api.url, ca=api.ca, user={"tokenFile": str(tok)})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    r = b.ssh("alice", "prod/web-0/app", "--", "echo one")
    assert (r.returncode, r.stdout) == (0, b"one\n"), r.stderr
    # Rotate: the server takes only the new token, the file holds it.
    try:
        api.server.token = "rotated-token"
        tmp = tmp_path / "token.new"
        tmp.write_text("rotated-token\n")
        os.rename(tmp, tok)
        n0 = len(api.requests())
        r = b.ssh("alice", "prod/web-0/app", "--", "echo two")
        assert (r.returncode, r.stdout) == (0, b"two\n"), r.stderr
        assert all(q["authorization"] == "Bearer rotated-token" for q in api.requests()[n0:])
    finally:
        api.server.token = api.token


PLUGIN = r"""#!/bin/sh
# A credential plugin: counts its runs, keeps what it was given, prints a token.
dir=$(dirname "$0")
echo run >> "$dir/runs"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/info.json"
printf '%s' "$PLUGIN_EXTRA" > "$dir/extra"
token=$(cat "$dir/token")
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2099-01-01T00:00:00Z"}}\n' "$API_VERSION" "$token"
"""


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_exec_plugin_cached_and_run_again_on_401(broker, api, tmp_path, version):
    d = tmp_path / "plugin"
    d.mkdir()
    plugin = d / "cred.sh"
    plugin.write_text(PLUGIN)
    plugin.chmod(0o755)
    (d / "token").write_text(api.token)
    av = "client.authentication.k8s.io/" + version
    kc = kubeconfig(tmp_path / "kc", api.url, ca=api.ca, user={"exec": {
        "apiVersion": av, "command": str(plugin), "args": [],
        "env": [{"name": "PLUGIN_EXTRA", "value": "x1"}, {"name": "API_VERSION", "value": av}],
        "interactiveMode": "Never"}})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    for word in ("a", "b"):
        r = b.ssh("alice", "prod/web-0/app", "--", f"echo {word}")
        assert (r.returncode, r.stdout) == (0, word.encode() + b"\n"), r.stderr
    assert (d / "runs").read_text().count("run") == 1, "the credential was not cached"
    info = json.loads((d / "info.json").read_text())
    assert info["apiVersion"] == av and info["kind"] == "ExecCredential"
    assert info["spec"]["interactive"] is False
    assert (d / "extra").read_text() == "x1"
    # The server stops taking the cached token: a 401 runs the plugin again.
    try:
        api.server.token = "second-token"
        (d / "token").write_text("second-token")
        r = b.ssh("alice", "prod/web-0/app", "--", "echo c")
        assert (r.returncode, r.stdout) == (0, b"c\n"), r.stderr
        assert (d / "runs").read_text().count("run") == 2
    finally:
        api.server.token = api.token


def test_exec_plugin_gets_cluster_info_as_json(broker, api, tmp_path):
    """provideClusterInfo: the plugin reads the cluster (server, CA) as valid JSON."""
    import base64
    d = tmp_path / "plugin"
    d.mkdir()
    plugin = d / "cred.sh"
    plugin.write_text(PLUGIN)
    plugin.chmod(0o755)
    (d / "token").write_text(api.token)
    av = "client.authentication.k8s.io/v1"
    kc = kubeconfig(tmp_path / "kc", api.url, ca=api.ca, user={"exec": {
        "apiVersion": av, "command": str(plugin), "args": [], "provideClusterInfo": True,
        "env": [{"name": "API_VERSION", "value": av}], "interactiveMode": "Never"}})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    r = b.ssh("alice", "prod/web-0/app", "--", "echo ok")
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    info = json.loads((d / "info.json").read_text())
    cluster = info["spec"]["cluster"]
    assert cluster["server"] == api.url
    assert cluster["insecure-skip-tls-verify"] is False
    assert base64.b64decode(cluster["certificate-authority-data"]) == \
        pathlib.Path(api.ca).read_bytes()


def test_client_certificate_from_files_and_data(broker, api, tmp_path):
    import base64
    c = make_client_cert(pathlib.Path(api.ca).parent, "cert-broker")
    data = {"client-certificate-data": base64.b64encode(pathlib.Path(c["cert"]).read_bytes()).decode(),
            "client-key-data": base64.b64encode(pathlib.Path(c["key"]).read_bytes()).decode()}
    clusters = [
        {"name": "files", "kubeconfig": kubeconfig(tmp_path / "files", api.url, ca=api.ca, user={
            "client-certificate": c["cert"], "client-key": c["key"]})},
        {"name": "data", "kubeconfig": kubeconfig(tmp_path / "data", api.url, ca=api.ca,
                                                  user=data)},
    ]
    b = native_broker(broker, clusters)
    for cl in ("files", "data"):
        n0 = len(api.requests())
        r = b.ssh("alice", f"{cl}:prod/web-0/app", "--", "echo " + cl)
        assert (r.returncode, r.stdout) == (0, cl.encode() + b"\n"), r.stderr
        reqs = api.requests()[n0:]
        assert reqs and all(q["client_cert"] == "cert-broker" and q["authorization"] is None
                            for q in reqs), reqs


def test_a_pod_that_stops_reading_holds_the_client_back(broker, api, tmp_path):
    import threading
    # The broker's own buffering is measured: under ASan, freed blocks wait in the
    # sanitizer's quarantine (256 MB by default) and would count as growth.
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:strict_string_checks=1")
    # No keepalive ping within the test: input that stalled would stay stalled
    # (a ping once woke it) and fail the test instead of slowing it.
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig),
                                "keepalive": "1h"}],
                      env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=4"})
    c = b.connect("alice")
    # Far more than every buffer on the way can hold: the test API server's 16
    # frames (and as many in its WebSocket library), the channel window, and
    # the loopback sockets' buffers, which the kernel grows to a few MiB.
    total = 48 * 1024 * 1024
    sent = []
    go = tmp_path / "go"
    try:
        ch = c.get_transport().open_session()
        # The pod reads nothing until the test says so.
        ch.exec_command(f"prod/web-0/app -- while [ ! -e {go} ]; do sleep 0.05; done; wc -c")
        api.wait_event("exec-start", lambda e: "wc -c" in e["command"][-1])
        rss0 = b.rss_kb()

        def send():
            chunk = b"x" * (1 << 20)
            for _ in range(total // len(chunk)):
                ch.sendall(chunk)
                sent.append(len(chunk))
            ch.shutdown_write()
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(1.0)  # let every buffer on the way fill up
        grown = b.rss_kb() - rss0
        assert sum(sent) < total, "everything was taken while the pod did not read"
        assert grown < 24 * 1024, f"broker RSS grew {grown} KB while the pod did not read"
        go.touch()
        t.join(60)
        assert not t.is_alive(), f"input stalled once the pod read: {sum(sent)} bytes sent"
        out = Terminal(ch).drain()
        assert ch.recv_exit_status() == 0
        assert int(out.split()[0]) == total
    finally:
        c.close()


def test_plugin_failure_is_one_line(broker, api, tmp_path):
    plugin = tmp_path / "bad.sh"
    plugin.write_text("#!/bin/sh\necho 'no credentials for you' >&2\nexit 3\n")
    plugin.chmod(0o755)
    kc = kubeconfig(tmp_path / "kc", api.url, ca=api.ca, user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    r = b.ssh("alice", "prod/web-0/app", "--", "echo never")
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "cannot authenticate to cluster prod" in line and "no credentials for you" in line, line


def test_unsupported_kubeconfig_refuses_the_cluster(broker, api, tmp_path):
    kc = kubeconfig(tmp_path / "kc", api.url, ca=api.ca, user={
        "auth-provider": {"name": "oidc", "config": {"idp-issuer-url": "https://idp.invalid"}}})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    assert "auth-provider in its kubeconfig is not supported by transport: native; use " \
           "transport: kubectl" in b.log()
    r = b.ssh("alice", "prod/web-0/app", "--", "echo never")
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line.startswith("podgate: prod:prod/web-0/app: cluster prod cannot be used: "
                           "auth-provider"), line
    assert "use transport: kubectl" in line


def test_insecure_skip_tls_verify_warns(broker, api, tmp_path):
    kc = kubeconfig(tmp_path / "kc", api.url, user={"token": api.token},
                    cluster={"insecure-skip-tls-verify": True})
    b = native_broker(broker, [{"name": "prod", "kubeconfig": kc}])
    assert "cluster prod: insecure-skip-tls-verify is set" in b.log()
    r = b.ssh("alice", "prod/web-0/app", "--", "echo ok")
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr


def test_pings_keep_the_stream_and_a_dead_server_is_noticed(broker, tmp_path):
    srv = start_apiserver(PODS, tmp_path / "api")
    try:
        b = native_broker(broker, [{"name": "prod", "kubeconfig": str(srv.kubeconfig),
                                    "keepalive": "1s"}])
        r = b.ssh("alice", "prod/web-0/app", "--", "sleep 2.5; echo awake")
        assert (r.returncode, r.stdout) == (0, b"awake\n"), r.stderr
        end = srv.wait_event("exec-end")
        assert end["pings"] >= 1, end
        # A server that stops answering (stopped, its socket open) ends the session.
        p = b.ssh_args("alice", "prod/web-0/app", "--", "sleep 60")
        import subprocess
        proc = subprocess.Popen(p, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        srv.wait_event("exec-start", lambda e: e["command"][-1] == "sleep 60")
        os.kill(srv.pid, signal.SIGSTOP)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            os.kill(srv.pid, signal.SIGCONT)
        assert proc.returncode == 1
        assert "the API server of cluster prod stopped answering" in one_line(err), err
    finally:
        srv.stop()


def test_a_client_that_stops_reading_holds_the_pod_back(broker, api):
    # keepalive 1s: a client that holds output back for longer than the
    # dead-server limit (3 s) is not mistaken for a dead API server.
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig),
                                "keepalive": "1s"}])
    c = b.connect("alice")
    # Far more than every buffer on the way can hold: the test API server's 16
    # frames (and as many in its WebSocket library), the channel window, and
    # the loopback sockets' buffers, which the kernel grows to a few MiB.
    total = 48 * 1024 * 1024
    try:
        ch = c.get_transport().open_session(window_size=2 * 1024 * 1024)
        ch.exec_command(f"prod/web-0/app -- head -c {total} /dev/zero")
        api.wait_event("exec-start", lambda e: "head" in e["command"][-1])
        rss0 = b.rss_kb()
        time.sleep(4)  # the pod writes as fast as it may; nobody reads
        grown = b.rss_kb() - rss0
        assert grown < 24 * 1024, f"broker RSS grew {grown} KB while the client did not read"
        got = 0
        while True:
            chunk = ch.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        assert got == total
        assert ch.recv_exit_status() == 0
    finally:
        c.close()


def sessions_of_kind(port: int, kind: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^podgate_sessions\{kind="%s"\} (\d+)$' % kind, text, re.M)
    assert m is not None, text
    return int(m.group(1))


def test_metrics_count_a_native_session_as_kubernetes(broker, api):
    port = free_port()
    b = native_broker(broker, [{"name": "prod", "kubeconfig": str(api.kubeconfig)}],
                      settings={"metrics_listen": f"127.0.0.1:{port}"})
    assert sessions_of_kind(port, "kubernetes") == 0
    c = b.connect("alice")
    try:
        ch = c.get_transport().open_session()
        ch.exec_command("prod/web-0/app -- echo started; read x")
        out = b""
        while b"started" not in out:
            chunk = ch.recv(64)
            assert chunk, "the session ended before it started"
            out += chunk
        wait_until(lambda: sessions_of_kind(port, "kubernetes") == 1, 10,
                   "the native session in the metrics")
        assert sessions_of_kind(port, "local") == 0
        ch.sendall(b"x\n")
        assert ch.recv_exit_status() == 0
    finally:
        c.close()
    wait_until(lambda: sessions_of_kind(port, "kubernetes") == 0, 10, "the session ended")

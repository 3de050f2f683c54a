"""Documented details of the kubernetes target (docs/kubernetes.md) that had no
test: the deployment/ and statefulset/ spellings, terminating pods skipped,
kubectl's environment built from scratch, cache_dir made 0700,
`impersonate: true`, and in-cluster configuration."""

from __future__ import annotations

import pathlib
import stat
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from fixture import start_apiserver  # noqa: E402

PODS = {"namespaces": {"apps": {"pods": [
    {"name": "db-0", "owner": {"statefulset": "db"}, "terminating": True},
    {"name": "db-1", "owner": {"statefulset": "db"}},
    {"name": "api-old", "owner": {"deployment": "api"}, "terminating": True},
    {"name": "api-new", "owner": {"deployment": "api"}},
]}}}
RULE = {"groups": ["oncall"], "targets": ["prod:*/*", "prod:*/deploy/*", "prod:*/sts/*"]}


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    d = tmp_path_factory.mktemp("k8s-details")
    srv = start_apiserver(PODS, d / "api")
    srv.cache = d / "kube-cache"
    try:
        yield srv
    finally:
        srv.stop()


def kube_broker(broker, k8s, rule=None, users=None, env=None, **cluster):
    b = broker(users=users or {"alice": {"groups": ["oncall"]}}, rules=[rule or RULE],
               targets={}, env=env, start=False)
    c = {"name": "prod", "kubeconfig": str(k8s.kubeconfig), "context": "podgate-test",
         "kubectl": "/usr/bin/kubectl", "cache_dir": str(k8s.cache), "timeout": "5s",
         "transport": "kubectl"}
    c.update(cluster)
    b.kubernetes = [{k: v for k, v in c.items() if v is not None}]
    b.start()
    return b


def spy_kubectl(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    """A kubectl that writes its environment and argv (NUL-separated) to files, then
    runs the real one."""
    out = tmp_path / "spy"
    out.mkdir()
    script = tmp_path / "kubectl-spy"
    script.write_text("#!/bin/sh\n"
                      f"env -0 > {out}/env.$$\n"
                      f"printf '%s\\0' \"$@\" > {out}/argv.$$\n"
                      "exec /usr/bin/kubectl \"$@\"\n")
    script.chmod(0o755)
    return script, out


def spied(out: pathlib.Path, kind: str) -> list[list[str]]:
    return [p.read_bytes().decode().split("\0")[:-1] for p in sorted(out.glob(f"{kind}.*"))]


def test_workload_spellings_pick_a_running_pod_not_terminating(broker, k8s):
    b = kube_broker(broker, k8s)
    for target, pod in (("apps/statefulset/db", "db-1"), ("apps/sts/db", "db-1"),
                        ("apps/deployment/api", "api-new"), ("apps/deploy/api", "api-new")):
        r = b.ssh("alice", target, "--", "echo $HOSTNAME")
        assert (r.returncode, r.stdout) == (0, f"{pod}\n".encode()), (target, r.stderr)
    # Named directly, a terminating pod is refused with one line.
    r = b.ssh("alice", "apps/db-0", "--", "echo never")
    assert (r.returncode, r.stdout) == (1, b""), r
    assert r.stderr.decode().strip() == "podgate: prod:apps/db-0: pod db-0 is terminating", \
        r.stderr
    # statefulset/ is policy's sts/: the long spelling is no way around a rule.
    b2 = kube_broker(broker, k8s, rule={"groups": ["oncall"], "targets": ["prod:*/*"]})
    r = b2.ssh("alice", "apps/statefulset/db", "--", "echo never")
    assert (r.returncode, r.stdout) == (1, b""), r
    assert r.stderr.decode().strip() == \
        "podgate: access to 'apps/statefulset/db' denied: no rule grants it", r.stderr


def test_kubectl_environment_is_built_from_scratch(broker, k8s, tmp_path):
    kubectl, out = spy_kubectl(tmp_path)
    cache = tmp_path / "fresh" / "cache"
    b = kube_broker(broker, k8s, kubectl=str(kubectl), cache_dir=str(cache),
                    env={"PODGATE_TEST_SECRET": "broker-only", "KUBECONFIG": "/nonexistent"})
    r = b.ssh("alice", "apps/db-1", "--", "echo ok",
              opts=["-o", "SetEnv=LANG=de_DE.UTF-8 CLIENT_VAR=from-client"])
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    envs = [dict(kv.split("=", 1) for kv in e) for e in spied(out, "env")]
    assert envs, "kubectl never ran"
    for env in envs:
        assert set(env) - {"PWD", "SHLVL", "_"} <= {"PATH", "HOME", "LANG", "TERM"}, env
        assert env["HOME"] == str(cache) and env["LANG"] == "de_DE.UTF-8", env
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    # A LANG that is not a plain locale name is replaced by C.UTF-8.
    for p in out.iterdir():
        p.unlink()
    r = b.ssh("alice", "apps/db-1", "--", "echo ok", opts=["-o", "SetEnv=LANG=x;rm$(id)"])
    assert r.returncode == 0, r.stderr
    assert {dict(kv.split("=", 1) for kv in e)["LANG"] for e in spied(out, "env")} == {"C.UTF-8"}


def test_impersonate_true_is_the_user_and_their_groups(broker, k8s):
    rule = dict(RULE, impersonate=True)
    b = kube_broker(broker, k8s, rule=rule, users={"alice": {"groups": ["oncall", "sre"]}})
    n0 = len(k8s.requests())
    r = b.ssh("alice", "apps/db-1", "--", "echo ok")
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    reqs = [q for q in k8s.requests()[n0:] if "/namespaces/apps/" in q["path"]]
    assert reqs and any(q["path"].endswith("/exec") for q in reqs), reqs
    assert {q["impersonate_user"] for q in reqs} == {"alice"}
    assert {tuple(q["impersonate_groups"]) for q in reqs} == {("oncall", "sre")}
    rec = b.recording_for("echo ok")
    assert rec.header["who"]["as_user"] == "alice"
    assert rec.header["who"]["as_groups"] == "oncall,sre"


def test_in_cluster_configuration(broker, k8s, tmp_path):
    """Without kubeconfig (transport kubectl), kubectl gets the in-cluster kubeconfig the
    broker writes from KUBERNETES_SERVICE_HOST/PORT and the service account's files:
    kubectl's own in-cluster configuration is ignored as soon as --as is given."""
    kubectl, out = spy_kubectl(tmp_path)
    b = kube_broker(broker, k8s, kubectl=str(kubectl), kubeconfig=None, context=None,
                    env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                         "KUBERNETES_SERVICE_PORT": str(k8s.port)})
    r = b.ssh("alice", "apps/db-1", "--", "echo ok")
    # No service account token here: kubectl fails, but with the in-cluster inputs.
    assert (r.returncode, r.stdout) == (1, b""), r  # a target that failed: status 1
    assert r.stderr.startswith(b"podgate: "), r.stderr
    argvs, envs = spied(out, "argv"), spied(out, "env")
    generated = str(k8s.cache / "in-cluster.kubeconfig")
    assert argvs and all(generated in argv for argv in argvs), argvs
    text = pathlib.Path(generated).read_text()
    assert f'server: "https://127.0.0.1:{k8s.port}"' in text, text
    assert "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token" in text, text
    for e in envs:
        env = dict(kv.split("=", 1) for kv in e)
        assert "KUBERNETES_SERVICE_HOST" not in env, env
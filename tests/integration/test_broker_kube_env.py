"""targets.kubernetes[].env: the environment an exec credential plugin gets through the
kubectl transport (docs/kubernetes.md). kubectl's environment is otherwise built from
scratch, so a plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin) would see
nothing of the broker's."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from support import assert_refused

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "k8s"))

from fixture import start_apiserver  # noqa: E402

PODS = {"namespaces": {"prod": {"pods": ["web-0"]}}}

PLUGIN = """#!/bin/sh
# An exec credential plugin: it answers only with what the environment gives it.
env > "$PLUGIN_SEEN"
[ -n "$PLUGIN_TOKEN" ] || { echo "plugin: PLUGIN_TOKEN is not set" >&2; exit 1; }
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
printf '"status":{"token":"%s"}}\\n' "$PLUGIN_TOKEN"
"""


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    srv = start_apiserver(PODS, tmp_path_factory.mktemp("k8s") / "api")
    try:
        yield srv
    finally:
        srv.stop()


def plugin_kubeconfig(k8s, d: pathlib.Path) -> pathlib.Path:
    plugin = d / "plugin.sh"
    plugin.write_text(PLUGIN)
    plugin.chmod(0o755)
    cfg = json.loads(pathlib.Path(k8s.kubeconfig).read_text())
    for u in cfg["users"]:
        u["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                              "command": str(plugin), "interactiveMode": "Never"}}
    path = d / "plugin.kubeconfig"
    path.write_text(json.dumps(cfg))
    path.chmod(0o600)
    return path


def env_broker(broker, k8s, tmp_path, env_list, broker_env):
    kubeconfig = plugin_kubeconfig(k8s, tmp_path)
    b = broker(rules=[{"groups": ["oncall"], "targets": ["prod:*/*"],
                       "impersonate": {"user": "{user}", "groups": ["oncall"]}}],
               targets={}, env=broker_env, start=False)
    cluster = {"name": "prod", "kubeconfig": str(kubeconfig), "kubectl": "/usr/bin/kubectl",
               "cache_dir": str(tmp_path / "cache"), "timeout": "5s", "transport": "kubectl"}
    if env_list is not None:
        cluster["env"] = env_list
    b.kubernetes = [cluster]
    b.start()
    return b


def seen_env(path: pathlib.Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_listed_variables_reach_the_plugin_and_nothing_else(broker, k8s, tmp_path):
    seen = tmp_path / "seen.env"
    b = env_broker(broker, k8s, tmp_path, ["PLUGIN_TOKEN", f"PLUGIN_SEEN={seen}", "UNSET_ONE"],
                   {"PLUGIN_TOKEN": k8s.token, "BROKER_SECRET": "not-for-plugins"})
    r = b.ssh("alice", "prod/web-0", "--", "echo", "via-plugin")
    assert (r.returncode, r.stdout) == (0, b"via-plugin\n"), r.stderr
    env = seen_env(seen)
    assert env["PLUGIN_TOKEN"] == k8s.token and env["PLUGIN_SEEN"] == str(seen)
    assert "BROKER_SECRET" not in env and "UNSET_ONE" not in env
    assert env["HOME"] == str(tmp_path / "cache")
    # The API server saw the plugin's token, with the user impersonated.
    execs = [q for q in k8s.requests() if q["path"].endswith("/exec")]
    assert execs and execs[-1]["impersonate_user"] == "alice"


def test_without_env_the_plugin_gets_nothing_and_the_session_fails_in_one_line(
        broker, k8s, tmp_path):
    b = env_broker(broker, k8s, tmp_path, None, {"PLUGIN_TOKEN": k8s.token})
    r = b.ssh("alice", "prod/web-0", "--", "echo", "never")
    assert (r.returncode, r.stdout) == (1, b""), r  # a target that failed: status 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("podgate: "), r.stderr


@pytest.mark.parametrize("entry", ["HOME", "PATH=/tmp", "KUBECONFIG", "1ABC", "A B", "=x", "LANG"])
def test_env_entries_the_broker_sets_itself_are_refused(broker, entry, tmp_path):
    b = broker(targets={}, start=False)
    cluster = {"name": "prod", "kubeconfig": "/dev/null", "env": [entry]}
    b.kubernetes = [cluster]
    b.write_config_text(b.config_text())
    import subprocess
    r = subprocess.run([str(b.build.require("broker")), "--check-config", str(b.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert_refused(r, 2, "env", "NAME or NAME=VALUE")  # a configuration mistake

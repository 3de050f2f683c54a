"""Configuration mistakes that used to pass silently, from outside.

Keys named in the file that do not exist (the broker made new ones), rules
naming unknown groups or clusters, kubeconfigs that do not exist, the exit
status of a configuration error at start and in --check-config, where the
signing key goes by default, and SIGHUP reloads in the audit log.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import subprocess


def run_broker(build, *args, cwd, env=None, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([str(build.require("broker")), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write_private(path: pathlib.Path, text: str) -> pathlib.Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def ssh_keygen(path: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- keys

def test_missing_host_key_is_refused_with_its_path(build, broker):
    b = broker(start=False, settings={"generate_keys": False,
                                      "host_key": "keys/host_ed25519_typo"})
    b.write_config()
    r = run_broker(build, "--config", str(b.config_path), cwd=b.workdir, env=b.env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "host key keys/host_ed25519_typo does not exist" in r.stderr, r.stderr
    assert "ssh-keygen -t ed25519 -N '' -f keys/host_ed25519_typo" in r.stderr
    assert "generate_keys: true" in r.stderr
    assert not (b.workdir / "keys").exists(), "a host key was made for a path nobody made"
    assert not b.recordings_dir.exists()


def test_missing_signing_key_is_refused_with_its_path(build, broker):
    b = broker(start=False, settings={"generate_keys": False,
                                      "signing_key": "keys/signing_typo"})
    ssh_keygen(b.host_key_path)
    b.write_config()
    r = run_broker(build, "--config", str(b.config_path), cwd=b.workdir, env=b.env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "recording signing key keys/signing_typo does not exist" in r.stderr, r.stderr
    assert "openssl genpkey -algorithm ed25519 -out keys/signing_typo" in r.stderr
    assert not (b.workdir / "keys").exists(), "a signing key was made for a typo"
    # --print-signing-key makes none either, and says the same.
    r = run_broker(build, "--config", str(b.config_path), "--print-signing-key",
                   cwd=b.workdir, env=b.env)
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "keys/signing_typo does not exist" in r.stderr
    assert not (b.workdir / "keys").exists()


def test_existing_keys_are_used_without_generate_keys(build, broker):
    b = broker(start=False, settings={"generate_keys": False})
    ssh_keygen(b.host_key_path)
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    str(b.host_key_path.parent / "signing_ed25519")],
                   check=True, capture_output=True, timeout=60)
    os.chmod(b.host_key_path.parent / "signing_ed25519", 0o600)
    host = b.host_key_path.read_bytes()
    b.start()
    r = b.ssh("alice", "local", "--", "echo ok")
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    assert b.host_key_path.read_bytes() == host
    assert "generated" not in b.log()


def test_signing_key_defaults_beside_the_host_key(build, broker, tmp_path):
    """Started from another directory, the broker puts the signing key next to
    host_key, not in state/ under its working directory, and logs where."""
    keydir = tmp_path / "etc-keys"
    b = broker(start=False, settings={"host_key": str(keydir / "host_ed25519"),
                                      "recordings": str(tmp_path / "recs"),
                                      "audit_log": str(tmp_path / "audit.jsonl")})
    (b.workdir / "state").rmdir()
    b.start()
    signing = keydir / "signing_ed25519"
    assert signing.is_file() and (signing.stat().st_mode & 0o777) == 0o600
    assert not (b.workdir / "state").exists(), list(b.workdir.iterdir())
    b.wait_log(r"generated recording signing key " + re.escape(str(signing)))
    b.wait_log(r"recordings are signed by SHA256:\S+ \(" + re.escape(str(signing)) + r"\)")
    r = run_broker(build, "--config", str(b.config_path), "--print-signing-key",
                   cwd=tmp_path, env=b.env)
    assert r.returncode == 0 and r.stdout.startswith("-----BEGIN PUBLIC KEY-----"), r.stderr
    assert not (tmp_path / "state").exists()


# ---------------------------------------------------------------- checks and exit statuses

def kube_config_text(alice_pub: str, kubeconfig: str) -> str:
    return f"""\
listen: 127.0.0.1:1
host_key: state/host_ed25519
generate_keys: true
users:
  - name: alice
    keys: ["{alice_pub}"]
    groups: [oncall]
rules:
  - groups: [oncall]
    targets: ["lab:*/*"]
  - groups: [on-call]
    targets: [local]
  - users: [alice]
    targets: ["prod/*", "stagign:*/*"]
targets:
  local: {{user: nobody}}
  kubernetes:
    - name: lab
      kubeconfig: {kubeconfig}
    - name: staging
"""


def test_check_config_reports_groups_clusters_and_kubeconfigs_with_lines(build, keys, tmp_path):
    cfg = write_private(tmp_path / "c.yaml",
                        kube_config_text(keys("alice").pub, str(tmp_path / "lab.kubeconfig")))
    r = run_broker(build, "--check-config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    errs = r.stderr.splitlines()
    want = [
        f'{cfg}:11: rule names unknown group "on-call": no user is in it',
        f'{cfg}:13: rule target "prod/*" names no cluster and would match nothing: '
        'write "lab:prod/*" or "*:prod/*"',
        f'{cfg}:13: rule target "stagign:*/*" names unknown cluster "stagign" '
        "(clusters: lab, staging)",
        f"{cfg}:19: kubeconfig {tmp_path / 'lab.kubeconfig'}: No such file or directory",
    ]
    for w in want:
        assert any(e.startswith(w) for e in errs), (w, errs)
    assert len(errs) == len(want), errs


def test_config_error_exits_2_at_start_as_in_check_config(build, keys, tmp_path):
    """One status for one meaning: a configuration error is 2 in both modes."""
    (tmp_path / "lab.kubeconfig").write_text("")
    text = kube_config_text(keys("alice").pub, str(tmp_path / "lab.kubeconfig"))
    cfg = write_private(tmp_path / "c.yaml", text)
    check = run_broker(build, "--check-config", str(cfg), cwd=tmp_path)
    start = run_broker(build, "--config", str(cfg), cwd=tmp_path)
    assert check.returncode == 2 and start.returncode == 2, (check, start)
    for r in (check, start):
        assert f'{cfg}:11: rule names unknown group "on-call"' in r.stderr, r.stderr
    assert not (tmp_path / "state").exists(), "the broker went on after a config error"
    # Fixed as the messages say, the file passes; a start that fails for another
    # reason (recordings under a regular file) is status 1.
    fixed = text.replace("[on-call]", "[oncall]").replace('"prod/*", "stagign:*/*"',
                                                           '"lab:prod/*", "staging:*/*"')
    fixed += f"recordings: {cfg}/recordings\n"
    write_private(cfg, fixed)
    check = run_broker(build, "--check-config", str(cfg), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    start = run_broker(build, "--config", str(cfg), cwd=tmp_path)
    assert start.returncode == 1, (start.returncode, start.stderr)
    assert "cannot make the recordings directory" in start.stderr, start.stderr


def test_a_group_named_before_its_members_loads(build, keys, tmp_path):
    text = kube_config_text(keys("alice").pub, "/dev/null").replace(
        "rules:\n", "groups:\n  - name: on-call\nrules:\n", 1)
    text = text.replace('"prod/*", "stagign:*/*"', '"*:prod/*"')
    text = text.replace("      kubeconfig: /dev/null\n", "")
    cfg = write_private(tmp_path / "c.yaml", text)
    r = run_broker(build, "--check-config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)


# ---------------------------------------------------------------- SIGHUP in the audit log

def test_sighup_reloads_are_audited_with_the_config_hash(broker):
    b = broker()
    start = b.wait_audit("broker_start")[0]
    first = hashlib.sha256(b.config_path.read_bytes()).hexdigest()
    assert start["sha256"] == first and start["config"] == str(b.config_path)

    users = dict(b.users)
    users["bob"] = {"groups": ["oncall"]}
    b.write_config(users=users)
    second = hashlib.sha256(b.config_path.read_bytes()).hexdigest()
    assert second != first
    b.reload()
    ev = b.wait_audit("config_reloaded")[0]
    assert ev["sha256"] == second and ev["config"] == str(b.config_path), ev
    assert (ev["users"], ev["rules"]) == (2, 1), ev

    # A rule with a typo in its group: refused, audited with the errors, old config kept.
    b.write_config(rules=[{"groups": ["oncal"], "targets": ["local"]}])
    b.reload()
    ev = b.wait_audit("config_reload_failed")[0]
    assert ev["config"] == str(b.config_path) and ev["running_sha256"] == second, ev
    assert re.search(re.escape(str(b.config_path)) + r':\d+: rule names unknown group "oncal"',
                     ev["errors"]), ev
    assert ev["reason"] == "Invalid argument", ev
    r = b.ssh("bob", "local", "--", "echo still")
    assert (r.returncode, r.stdout) == (0, b"still\n"), r.stderr
    assert len(b.events("config_reloaded")) == 1


"""podgate-broker's configuration checks: --check-config's messages and
exit statuses, a config file others can write, the generated host key.

Each test starts its own broker (conftest.py's ``broker`` fixture) in
tmp_path on a free port; the fixture fails the test when the broker does not
exit 0 on SIGTERM or reports a sanitizer error.
"""

from __future__ import annotations

import base64
import hashlib
import pathlib
import re
import stat
import subprocess

import pytest

from support import assert_refused


# ---------------------------------------------------------------- config

VALID_CONFIG = """\
listen: 127.0.0.1:{port}
host_key: state/host_ed25519
recordings: state/recordings
audit_log: state/audit.jsonl
max_auth_tries: 6
login_grace_time: 30
shutdown_grace: 10
users:
  - name: alice
    keys: ["{key}"]
    groups: [oncall]
rules:
  - groups: [oncall]
    targets: [local]
targets:
  local: {{shell: /bin/sh, user: nobody}}
"""


def check_config(build, path, timeout=20):
    return subprocess.run([str(build.require("broker")), "--check-config", str(path)],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def write_private(path: pathlib.Path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_check_config_valid_exits_0(build, keys, tmp_path):
    cfg = write_private(tmp_path / "ok.yaml", VALID_CONFIG.format(port=2222, key=keys("alice").pub))
    r = check_config(build, cfg)
    assert r.returncode == 0, f"valid config refused: rc={r.returncode} {r.stdout}{r.stderr}"


def test_check_config_yaml_error_reports_path_line_and_exits_2(build, keys, tmp_path):
    text = VALID_CONFIG.format(port=2222, key=keys("alice").pub).splitlines()
    # line 13: an unclosed flow sequence
    assert text[12].startswith("  - groups:")
    text[12] = "  - groups: [oncall"
    cfg = write_private(tmp_path / "broken.yaml", "\n".join(text) + "\n")
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    m = re.search(re.escape(str(cfg)) + r":(\d+): \S", out)
    assert m, f"no '{cfg}:LINE: message' in {out!r}"
    assert 13 <= int(m.group(1)) <= 15, f"YAML error reported at line {m.group(1)}: {out!r}"


def test_check_config_reports_each_error_with_its_line(build, keys, tmp_path):
    lines = VALID_CONFIG.format(port=2222, key=keys("alice").pub).splitlines()
    lines[4] = "max_auth_tries: many"          # line 5: not a number
    lines.insert(7, "listne: 127.0.0.1:1")      # line 8: unknown key
    cfg = write_private(tmp_path / "bad.yaml", "\n".join(lines) + "\n")
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    reported = {int(n) for n in re.findall(re.escape(str(cfg)) + r":(\d+): \S", out)}
    assert {5, 8} <= reported, f"expected errors at lines 5 and 8, got {sorted(reported)}: {out!r}"


def test_check_config_bad_key_reported(build, tmp_path):
    cfg = write_private(tmp_path / "badkey.yaml",
                        VALID_CONFIG.format(port=2222, key="ssh-ed25519 not-base64!! x@y"))
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc={r.returncode}, output {out!r}"
    assert re.search(re.escape(str(cfg)) + r":10: \S", out), f"no error at line 10: {out!r}"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["0620", "0602", "0666"])
def test_config_writable_by_others_refused(build, keys, tmp_path, mode):
    port = 1  # any port: the broker must refuse the file before it listens
    cfg = write_private(tmp_path / "open.yaml",
                        VALID_CONFIG.format(port=port, key=keys("alice").pub), mode)
    r = check_config(build, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"mode {oct(mode)}: --check-config rc={r.returncode} {out!r}"
    assert str(cfg) in out, f"the refusal does not name the file: {out!r}"
    workdir = tmp_path / "run"
    workdir.mkdir()
    try:
        p = subprocess.run([str(build.require("broker")), "--config", str(cfg)], cwd=workdir,
                           capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker started with a config of mode {oct(mode)}")
    assert_refused(p, 2, str(cfg))  # a configuration mistake; names the file


def test_host_key_generated_ed25519_0600(broker):
    b = broker()
    hk = b.host_key_path
    assert hk.is_file(), f"no host key at {hk}"
    assert stat.S_IMODE(hk.stat().st_mode) == 0o600, oct(hk.stat().st_mode)
    r = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(hk)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("(ED25519)"), r.stdout + r.stderr
    fp_file = r.stdout.split()[1]
    t = b.transport()
    try:
        k = t.get_remote_server_key()
        fp_server = "SHA256:" + base64.b64encode(hashlib.sha256(k.asbytes()).digest()).decode().rstrip("=")
        assert k.get_name() == "ssh-ed25519"
        assert fp_server == fp_file, "the broker does not serve the host key it wrote"
    finally:
        t.close()
    # The same key after a restart.
    before = hk.read_bytes()
    assert b.stop() == 0
    b.start()
    assert hk.read_bytes() == before, "host key replaced on restart"


@pytest.mark.parametrize("pattern", ["re:a++", "re:x*?", "re:(ab){2}+"])
@pytest.mark.parametrize("where", ["redact", "watch"])
def test_check_config_refuses_a_repetition_after_a_repetition(build, keys, tmp_path, where,
                                                              pattern):
    """docs/guard.md: a repetition right after a repetition is refused when the
    configuration loads, with an error naming the pattern and its line."""
    text = VALID_CONFIG.format(port=2222, key=keys("alice").pub)
    quoted = '"' + pattern + '"'
    if where == "redact":
        text += f"redact: [{quoted}]\n"
    else:
        text = text.replace("    targets: [local]\n",
                            f"    targets: [local]\n    watch: [{quoted}]\n")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if pattern in l)
    cfg = write_private(tmp_path / "repeat.yaml", text)
    r = check_config(build, cfg)
    err = assert_refused(r, 2, f"bad regular expression '{pattern}': "
                               "a repetition follows a repetition")
    assert re.search(re.escape(f"{cfg}:{line}: bad regular expression '{pattern}'"), err), err
    # The same text with one repetition loads.
    one = pattern.replace("++", "+").replace("*?", "*").replace("}+", "}")
    write_private(cfg, text.replace(pattern, one))
    r = check_config(build, cfg)
    assert r.returncode == 0, f"{one!r} refused: rc={r.returncode} {r.stdout}{r.stderr}"

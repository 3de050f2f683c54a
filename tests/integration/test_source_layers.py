"""The broker's sources keep their layers: includes point down, modules form no loop.

tests/check-layers.py does the work; this runs it on broker/ and on small
trees that break each rule, so the check itself is known to catch them.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

TOP = pathlib.Path(__file__).resolve().parents[2]
CHECK = TOP / "tests" / "check-layers.py"


def run_check(root=None):
    args = [sys.executable, str(CHECK)] + ([str(root)] if root else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def write(root, files):
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_broker_layers_point_down_without_loops():
    r = run_check()
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_catches_an_upward_include(tmp_path):
    write(tmp_path, {
        "ssh/server.h": "",
        "base/log.c": '#include "ssh/server.h"\n',
    })
    r = run_check(tmp_path)
    assert r.returncode == 1
    assert "base/log.c includes ssh/server.h, a layer above its own" in r.stdout


def test_check_catches_an_include_of_the_top(tmp_path):
    write(tmp_path, {
        "main.h": "",
        "ssh/server.c": '#include "main.h"\n',
    })
    r = run_check(tmp_path)
    assert r.returncode == 1
    assert "ssh/server.c includes main.h, a layer above its own" in r.stdout


def test_check_catches_a_module_loop(tmp_path):
    write(tmp_path, {
        "ssh/server.h": "",
        "ssh/server.c": '#include "ssh/conn.h"\n',
        "ssh/conn.h": "",
        "ssh/peer.h": '#include "ssh/server.h"\n',
        "ssh/conn.c": '#include "ssh/peer.h"\n',
    })
    r = run_check(tmp_path)
    assert r.returncode == 1
    assert "loop" in r.stdout and "ssh/conn" in r.stdout and "ssh/server" in r.stdout


def test_check_accepts_a_private_header_pair(tmp_path):
    write(tmp_path, {
        "policy/config.h": '#include "policy/config-parse.h"\n',
        "policy/config-parse.h": '#include "policy/config.h"\n',
        "policy/config.c": '#include "policy/config.h"\n',
    })
    assert run_check(tmp_path).returncode == 0

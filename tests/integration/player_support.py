"""Helpers for the podgate-player tests: run the player, write recordings
with exact contents and times (independently of librec), make signing keys,
give each test a HOME of its own, and drive `play` inside tmux.

    write_recording(path, [(time_ns, "o", b"hi\\r\\n"), (time_ns, "x", {"status": 0})],
                    cols=80, rows=24, user="alice", target="prod/web-0")
    with Tmux(cols=100, rows=30) as t:
        t.start([PLAYER, "play", path])
        t.wait_for(lambda screen: "PAUSED" in screen)
        t.keys("space")
"""

from __future__ import annotations

import os
import subprocess
import uuid

import msgpack
import pytest

from conftest import build_dir
from support import assert_no_sanitizer_report
from support.tmux import Tmux, _quote  # noqa: F401 (the suites import Tmux from here)

PLAYER = str(build_dir() / "player" / "podgate-player")
START_NS = 1764345600 * 10**9 + 500_000_000  # 2025-11-28T16:00:00.5Z


def player(*args, stdin=subprocess.DEVNULL, timeout=120, **kw):
    """Run podgate-player to completion; fails on a sanitizer report in its stderr."""
    r = subprocess.run([PLAYER, *map(str, args)], stdin=stdin, capture_output=True,
                       timeout=timeout, **kw)
    assert_no_sanitizer_report(r.stderr)
    return r


no_sanitizer_report = assert_no_sanitizer_report  # ASan, LeakSanitizer and UBSan


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """A HOME of the test's own, so its per-user signing key and trusted keys
    are its own: no trusted keys but those a test gives. A suite takes it
    (autouse) by importing it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PODGATE_KEYS", raising=False)
    return home


def make_key(path):
    """An Ed25519 signing key at path (mode 0600) made by openssl; returns the
    path of its public key (PEM), path + ".pub"."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)],
                   check=True, capture_output=True)
    os.chmod(path, 0o600)
    pub = str(path) + ".pub"
    subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return pub


def write_recording(path, events, cols=80, rows=24, user="alice", target="prod/web-0",
                    command="bash", start_ns=START_NS, term="xterm-256color", session=None,
                    pty=True):
    """Write a recording; events are (absolute time in ns, code, payload)."""
    header = {
        "format": "podgate-rec", "version": 1,
        "session": session or str(uuid.UUID(int=uuid.uuid4().int & ~(0xf << 76) | (7 << 76))),
        "start": start_ns, "term": {"cols": cols, "rows": rows, "type": term}, "pty": pty,
        "who": {"user": user, "key_fp": "SHA256:test", "client": "127.0.0.1:1"},
        "where": {"kind": "local", "target": target}, "what": {"command": command},
    }
    prev = 0
    with open(path, "wb") as f:
        f.write(msgpack.packb(header, use_bin_type=True))
        for t, code, payload in events:
            assert t >= prev
            f.write(msgpack.packb([t - prev, code, payload], use_bin_type=True))
            prev = t
    return path

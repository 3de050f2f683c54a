"""Helpers for the podgate-player tests: run the player, write recordings
with exact contents and times (independently of librec), and drive `play`
inside tmux.

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

from support import assert_no_sanitizer_report
from support.tmux import Tmux, _quote  # noqa: F401 (the suites import Tmux from here)

BUILD = os.environ.get("PODGATE_BUILD", os.path.join(os.path.dirname(__file__), "../../build-dev"))
PLAYER = os.path.join(BUILD, "player", "podgate-player")
START_NS = 1764345600 * 10**9 + 500_000_000  # 2025-11-28T16:00:00.5Z


def player(*args, stdin=subprocess.DEVNULL, timeout=120, **kw):
    """Run podgate-player to completion; fails on a sanitizer report in its stderr."""
    r = subprocess.run([PLAYER, *map(str, args)], stdin=stdin, capture_output=True,
                       timeout=timeout, **kw)
    assert_no_sanitizer_report(r.stderr)
    return r


no_sanitizer_report = assert_no_sanitizer_report  # ASan, LeakSanitizer and UBSan


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

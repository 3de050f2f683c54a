"""200 concurrent sessions of mixed interactive and bulk traffic for about 30 s.

No session may fail, every recording must verify (sealed and intact) and
hold exactly the bytes its client sent and received. The broker's peak
memory (VmHWM) and CPU time are printed; tests/bench/load.py runs the same
load for longer against a release build for docs/reliability.md.
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))

from loadgen import check_recordings, run_load  # noqa: E402


def test_200_sessions_mixed_load(build, broker):
    b = broker(settings={"max_connections": 512})
    build.require("player")
    figures = run_load(port=b.port, user="alice", key_path=str(b.key("alice").path),
                       pid=b.pid, sessions=200, duration=30, pace=0.5, rate=16384)
    assert not figures["problems"], "\n".join(figures["problems"][:20])
    b.wait_audit("session_end", count=200, timeout=60)
    problems, recorded = check_recordings(str(build.player), b.recordings_dir,
                                          figures["expected"])
    assert not problems, "\n".join(problems[:20])
    assert recorded == figures["bytes_total"]
    print(f"\nload: {figures['sessions']} sessions over {figures['connections']} connections, "
          f"{figures['duration_s']} s, {figures['bytes_total'] / 1e6:.1f} MB; broker peak "
          f"RSS {figures['broker_peak_hwm_mb']} MB, CPU {figures['broker_cpu_s']} s "
          f"({figures['broker_cpu_pct']} %)")

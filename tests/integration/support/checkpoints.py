"""What the recorder guarantees about checkpoints (docs/format.md, Integrity):
one once a second or once 1 MiB of events was written since the previous
one, whichever comes first, and the file is flushed at each. A recording cut
by kill -9 therefore verifies up to its last checkpoint, and what follows it
is at most one checkpoint interval of events plus the event that was being
written. These checks use the recording's own times, not the wall clock."""

from __future__ import annotations

import msgpack

from recording import Recording

INTERVAL_NS = 1_000_000_000
MAX_BYTES = 1 << 20
# The writer's timer and the events' timestamps come from different clocks
# read at different moments; this is the slack allowed between them.
CLOCK_SLACK_NS = 50_000_000


def _size(e) -> int:
    return len(msgpack.packb([e.interval_ns, e.code, e.payload], use_bin_type=True))


def segments(rec: Recording):
    """The runs of events between checkpoints: [(time of the checkpoint before it
    (0: the start), [events])], the last run being the tail after the last one."""
    out, start, run = [], 0, []
    for e in rec.events:
        if e.code == "c":
            out.append((start, run))
            start, run = e.time_ns, []
        elif e.code != "s":
            run.append(e)
    out.append((start, run))
    return out


def assert_checkpoint_cadence(path, verified: dict | None = None) -> int:
    """Every run of events between checkpoints, and the tail after the last one,
    spans at most one interval (plus clock slack) and holds less than 1 MiB,
    not counting its last event. With verify's JSON, the verified prefix ends
    at the last checkpoint in the file. Returns the span in ns of the events
    after the last checkpoint (0 when none follow it)."""
    rec = Recording.load(path, allow_truncated=True)
    cps = [e for e in rec.events if e.code == "c"]
    assert cps, f"{path}: no checkpoint"
    tail_span = 0
    for start, run in segments(rec):
        body = run[:-1]
        tail_span = run[-1].time_ns - start if run else 0
        if not body:
            continue
        span = body[-1].time_ns - start
        size = sum(_size(e) for e in body)
        assert span <= INTERVAL_NS + CLOCK_SLACK_NS or size >= MAX_BYTES, \
            f"{path}: {span / 1e9:.3f} s and {size} bytes of events without a checkpoint"
        assert size < MAX_BYTES + max(_size(e) for e in body), \
            f"{path}: {size} bytes of events without a checkpoint"
    if verified is not None:
        assert verified["verified_time_ns"] == cps[-1].time_ns, (verified, cps[-1].time_ns)
        assert verified["checkpoints"] == len(cps), (verified, len(cps))
    return tail_span

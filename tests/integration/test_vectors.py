"""The published test vectors (tests/vectors/): podgate-player verify and the suite's
independent reader both give every recording the verdict, offset and time expected.json lists."""
import json
import pathlib
import subprocess
import sys

import pytest

import recording
from player_support import PLAYER
from support import verify
VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors"
EXPECTED = json.loads((VECTORS / "expected.json").read_text())


def check(name, e, got):
    """Compare one verdict (a dict with the names of verify --json) with the expected one."""
    assert got["state"] == e["verdict"], (name, e["description"], got)
    if "version" in e:
        assert got["version"] == e["version"], (name, got)
    if e["verdict"] == "modified":
        assert got["bad_offset"] == e["bad_offset"], (name, e["description"], got)
    elif "offset" in e:
        assert (got["verified_bytes"], got["verified_time_ns"], got["checkpoints"]) == \
            (e["offset"], e["time_ns"], e["checkpoints"]), (name, e["description"], got)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_podgate_player_verify(name):
    e = EXPECTED[name]
    args = ["--key", str(VECTORS / e["key"])] if e["key"] else []
    code, got = verify(PLAYER, VECTORS / name, *args, timeout=60)  # fails on a sanitizer report
    assert code == e["status"], (name, got)
    check(name, e, got)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_independent_reader(name):
    e = EXPECTED[name]
    v = recording.verify(VECTORS / name, VECTORS / e["key"] if e["key"] else None)
    check(name, e, {"state": v.verdict, "version": v.version, "bad_offset": v.bad_offset,
                    "verified_bytes": v.offset, "verified_time_ns": v.time_ns,
                    "checkpoints": v.checkpoints})
    assert v.status == e["status"]


def test_every_vector_listed_and_reproducible():
    """Every .rec in tests/vectors/ has an expected verdict, and the generator gives the same bytes."""
    assert sorted(p.name for p in VECTORS.glob("*.rec")) == sorted(EXPECTED)
    r = subprocess.run([sys.executable, str(VECTORS / "make-vectors.py"), "--check"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_verdict_and_part_covered():
    verdicts = {e["verdict"] for e in EXPECTED.values()}
    assert verdicts == set(recording.VERDICTS)
    for part in ("header", "data", "checkpoint", "seal", "trailer"):
        assert any(n.startswith(f"flip-{part}") for n in EXPECTED), part
    assert len([n for n in EXPECTED if n.startswith("cut-")]) >= 5
    assert {e.get("version") for e in EXPECTED.values()} >= {1, 2}

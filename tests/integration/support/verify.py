"""podgate-player verify, as the suites call it on broker-made recordings."""

from __future__ import annotations

import json
import subprocess

from .sanitizer import assert_no_sanitizer_report

# verify's exit statuses (docs/format.md)
SEALED, TRUNCATED, NOT_RECORDING, UNSIGNED, WRONG_KEY, MODIFIED = range(6)


def verify(build, path, *args, timeout: float = 120) -> tuple[int, dict]:
    """Run `podgate-player verify --json [args] path`; return (exit status, parsed JSON).

    build is the conftest Build (or anything with a .player path), or the
    player's path itself. Fails on a sanitizer report in the player's stderr.
    """
    player = getattr(build, "player", build)
    r = subprocess.run([str(player), "verify", "--json", *map(str, args), str(path)],
                       capture_output=True, timeout=timeout)
    assert_no_sanitizer_report(r.stderr)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"verify printed no JSON (exit {r.returncode}): "
                             f"{r.stdout[-300:]!r} {r.stderr[-500:]!r}") from None


def assert_sealed(build, path, *args) -> dict:
    """The recording at path verifies as sealed; returns verify's JSON."""
    code, j = verify(build, path, *args)
    assert code == SEALED and j.get("state") == "sealed", (path, code, j)
    return j

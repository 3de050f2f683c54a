"""Sanitizer reports in a process's stderr, and exact checks of refusals."""

from __future__ import annotations

import subprocess

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "LeakSanitizer has encountered a fatal error",
)


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, (bytes, bytearray)) else data


def sanitizer_report(stderr) -> str | None:
    """The first sanitizer report in stderr (bytes or str) with a few lines before it, or None."""
    log = _text(stderr or "")
    for p in SANITIZER_PATTERNS:
        i = log.find(p)
        if i >= 0:
            i = log.rfind("\n", 0, max(0, log.rfind("\n", 0, i))) + 1
            return log[i: i + 4000]
    return None


def assert_no_sanitizer_report(stderr) -> None:
    """Fail when stderr (bytes or str) holds an ASan, LSan or UBSan report."""
    report = sanitizer_report(stderr)
    assert report is None, "sanitizer report:\n" + report


def assert_refused(r: subprocess.CompletedProcess, status: int, *texts) -> str:
    """A refusal: exit status exactly status, each of texts in stderr, no sanitizer report.

    A crash (a sanitizer abort, a signal) is not a refusal even though its
    status is non-zero: this is the check for "bad input gets a clear error".
    Returns stderr as text.
    """
    err = _text(r.stderr or b"")
    assert_no_sanitizer_report(err)
    assert r.returncode == status, f"exit status {r.returncode}, expected {status}; stderr:\n{err}"
    for t in texts:
        assert _text(t) in err, f"{_text(t)!r} not in stderr:\n{err}"
    return err

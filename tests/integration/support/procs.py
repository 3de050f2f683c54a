"""Finding processes by their command line in /proc."""

from __future__ import annotations

import os
import pathlib
import signal


def _cmdlines():
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit() or d.name == str(os.getpid()):
            continue
        try:
            yield int(d.name), (d / "cmdline").read_bytes()
        except OSError:
            continue


def pids_with_cmdline(token: str) -> list[int]:
    """Processes (not this one) whose command line, arguments joined by spaces, holds token."""
    return [pid for pid, cmd in _cmdlines() if token.encode() in cmd.replace(b"\0", b" ")]


def pids_with_argv(*argv: str) -> list[int]:
    """Processes whose argument vector is exactly argv."""
    want = b"".join(os.fsencode(a) + b"\0" for a in argv)
    return [pid for pid, cmd in _cmdlines() if cmd == want]


def kill_tagged(token: str) -> None:
    """End the process groups of the processes whose command line holds token:
    the targets a broker killed with -9 (or a killed test API server) leaves
    running, children included, so that they do not load the tests after."""
    for pid in pids_with_cmdline(token):
        try:
            group = os.getpgid(pid)
            if group == os.getpgrp():
                os.kill(pid, signal.SIGKILL)  # never the tests' own group
            else:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

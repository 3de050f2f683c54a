"""Operating the broker (docs/deploy.md): the audit log after logrotate, the HTTP
health probes, and reloading when the config file changes."""

from __future__ import annotations

import json
import os
import stat

from conftest import wait_until


def audit_events(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sighup_reopens_the_audit_log_moved_away(broker):
    """logrotate moves audit.jsonl away and sends SIGHUP: new events go to a new file."""
    b = broker()
    r = b.ssh("alice", "local", "--", "echo one")
    assert (r.returncode, r.stdout) == (0, b"one\n")
    wait_until(lambda: any(e.get("command") == "echo one" for e in audit_events(b.audit_path)),
               what="the first session audited")
    rotated = b.audit_path.with_name("audit.jsonl.1")
    os.rename(b.audit_path, rotated)
    since = b.log_size()
    b.reload()
    b.wait_log("audit log reopened", since=since)
    r = b.ssh("alice", "local", "--", "echo two")
    assert (r.returncode, r.stdout) == (0, b"two\n")
    wait_until(lambda: any(e.get("command") == "echo two" for e in audit_events(b.audit_path)),
               what="the second session in the new audit log")
    assert stat.S_IMODE(os.stat(b.audit_path).st_mode) == 0o600
    old = audit_events(rotated)
    assert any(e.get("command") == "echo one" for e in old)
    assert not any(e.get("command") == "echo two" for e in old), "written to the rotated file"

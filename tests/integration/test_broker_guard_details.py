"""Documented guard behaviour that had no test (docs/guard.md): ^C and ^D at
the reason prompt, reasons checked and redacted, and watch patterns `on: both`."""

from __future__ import annotations

import pytest

from support.channel import Chan

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
REASON_RULE = {"groups": ["oncall"], "targets": ["local"], "require_reason": True}


@pytest.mark.parametrize("key", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_reason_prompt_ends_the_session(broker, key, tmp_path):
    b = broker(rules=[REASON_RULE])
    marker = tmp_path / "ran"
    client = b.connect("alice")
    try:
        chan = Chan(client, f"local -- touch {marker}")
        chan.wait(b"Reason (ticket or incident): ")
        chan.send(b"INC-")
        chan.send(key)
        chan.wait(b"podgate: no reason given", err=True)
        assert chan.status() == 1
    finally:
        client.close()
    assert not marker.exists(), "the target ran without a reason"
    ev = b.wait_audit("refused", lambda e: "no reason given" in e.get("reason", ""))[0]
    assert ev["user"] == "alice", ev


def test_reasons_are_checked_and_redacted(broker):
    b = broker(rules=[REASON_RULE])
    # A secret in the reason is kept out of the recording and the audit log.
    r = b.ssh("alice", "local", "--", "echo in",
              opts=["-o", f'SetEnv=PODGATE_REASON="INC-9 token {TOKEN}"'])
    assert (r.returncode, r.stdout) == (0, b"in\n"), r.stderr
    rec = b.recording_for("echo in")
    reason = rec.header["what"]["reason"]
    assert reason.startswith("INC-9 token ") and "[REDACTED:github-token]" in reason, reason
    assert TOKEN.encode() not in rec.path.read_bytes()
    ev = b.wait_audit("session_start", lambda e: e.get("command") == "echo in")[0]
    assert ev["reason"] == reason
    assert TOKEN not in b.audit_path.read_text()
    # 1 to 200 characters of text: longer is refused like none.
    r = b.ssh("alice", "local", "--", "echo long", opts=["-o", "SetEnv=PODGATE_REASON=" + "x" * 201])
    assert r.returncode == 1 and r.stdout == b"", r.stderr
    assert b"reason" in r.stderr
    r = b.ssh("alice", "local", "--", "echo max", opts=["-o", "SetEnv=PODGATE_REASON=" + "x" * 200])
    assert (r.returncode, r.stdout) == (0, b"max\n"), r.stderr


def test_watch_on_both_sees_input_and_output(broker):
    b = broker(rules=[{"groups": ["oncall"], "targets": ["local"],
                       "watch": [{"on": "both", "pattern": "*DROPME*", "action": "terminate"}]}])
    # Output only: the command line does not hold the pattern, what it prints does.
    r = b.ssh("alice", "local", "--", "printf 'DROP''ME\\n'; sleep 10; echo after")
    assert b"podgate: session terminated: " in r.stderr and b"after" not in r.stdout, r
    ev = b.wait_audit("watch", lambda e: e.get("on") == "output")[0]
    assert ev["action"] == "terminate" and ev["pattern"] == "*DROPME*", ev
    # Input: the typed line is matched when Enter is typed, before the shell
    # echoes it back (input typed with echo off is masked, so not matched).
    client = b.connect("alice")
    try:
        chan = Chan(client, "local")
        chan.send(b"echo R$((1+1))E\r")
        chan.wait(b"R2E")
        chan.send(b"true DROPME\r")
        chan.wait(b"podgate: session terminated: typed input matches watch pattern '*DROPME*'",
                  err=True)
        chan.status()
    finally:
        client.close()
    ev = b.wait_audit("watch", lambda e: e.get("on") == "input")[0]
    assert ev["line"] == "true DROPME" and ev["action"] == "terminate", ev

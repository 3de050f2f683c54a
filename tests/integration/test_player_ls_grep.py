"""podgate-player ls and grep over a directory of recordings.

The directory is filled by "makers": today recordings made with
`podgate-player rec` and hand-written ones (for exact users, targets and
start times). Recordings made through the broker can be added as another
maker that returns the paths it wrote (see RECORDING_MAKERS).
"""
import json
import os

import pytest

from player_support import START_NS, no_sanitizer_report, player, write_recording

MS = 1_000_000
OLD_START = 1577836800 * 10**9  # 2020-01-01T00:00:00Z


def make_with_rec(d):
    """Real sessions recorded by `podgate-player rec` under a PTY."""
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, script in [
        ("danger.rec", 'printf "$ rm \\033[1m-rf\\033[0m\\033[1D\\033[1C /tmp/x\\n"; exit 1'),
        ("hello.rec", 'printf "\\033[32mhello\\033[0m world\\n"'),
    ]:
        p = d / name
        r = player("rec", "-q", "-o", p, "--", "sh", "-c", script)
        assert r.returncode in (0, 1), r.stderr
        paths.append(p)
    p = d / "typed.rec"
    r = player("rec", "-q", "-o", p, "--", "sh", "-c", "read x; echo got", stdin=None,
               input=b"s3cret passw0rd\n")
    assert r.returncode == 0
    paths.append(p)
    return paths


def make_by_hand(d):
    """Recordings with chosen users, targets and start times."""
    d.mkdir(parents=True, exist_ok=True)
    a = write_recording(d / "alice-old.rec", [
        (1 * MS, "o", b"kubectl get pods\r\n"),
        (2 * MS, "x", {"status": 0}),
    ], user="alice", target="prod/web-0", command="kubectl get pods", start_ns=OLD_START)
    b = write_recording(d / "bob.rec", [
        (1 * MS, "i", b"cat /etc/shadow\r"),
        (5 * MS, "o", b"Permission \x1b[31mdenied\x1b[0m\r\n"),
        (9 * MS, "x", {"signal": "KILL"}),
    ], user="bob", target="staging/db-1", command=None, start_ns=START_NS)
    return [a, b]


# Add a broker-made recordings maker here when the broker tests provide one.
RECORDING_MAKERS = {"rec": make_with_rec, "hand": make_by_hand}


@pytest.fixture
def recdir(tmp_path):
    top = tmp_path / "recordings"
    made = {}
    for name, maker in RECORDING_MAKERS.items():
        made[name] = maker(top / name)
    # Things ls and grep must skip with a note on stderr.
    (top / "notes.txt").write_text("not a recording\n")
    good = made["hand"][1].read_bytes()
    (top / "hand" / "cut.rec").write_bytes(good[:-2])
    return top, made


def ls_json(*args):
    r = player("ls", "--json", *args)
    no_sanitizer_report(r.stderr)
    return r, [json.loads(line) for line in r.stdout.decode().splitlines()]


def test_ls_lists_every_session_sorted(recdir):
    top, made = recdir
    r, rows = ls_json(top)
    assert r.returncode == 0
    # Files in a directory that are not recordings are skipped quietly (-v names them).
    assert b"notes.txt" not in r.stderr
    assert b"notes.txt: not a podgate recording" in player("ls", "-v", top).stderr
    files = [row["file"] for row in rows]
    assert len(files) == sum(len(v) for v in made.values()) + 1  # + cut.rec
    assert [row["start_ns"] for row in rows] == sorted(row["start_ns"] for row in rows)
    by = {os.path.basename(row["file"]): row for row in rows}
    assert by["alice-old.rec"]["start"] == "2020-01-01T00:00:00Z"
    assert by["alice-old.rec"]["command"] == "kubectl get pods"
    assert by["alice-old.rec"]["exit"] == {"status": 0} and by["alice-old.rec"]["state"] == "complete"
    assert by["bob.rec"]["exit"] == {"signal": "KILL"} and by["bob.rec"]["duration_ns"] == 9 * MS
    assert by["cut.rec"]["state"] == "truncated" and by["cut.rec"]["exit"] is None
    assert by["danger.rec"]["exit"] == {"status": 1} and by["danger.rec"]["target"] == "local"


def test_ls_text_columns(recdir):
    top, _ = recdir
    r = player("ls", top / "hand" / "bob.rec")
    assert r.returncode == 0
    line = r.stdout.decode().rstrip("\n")
    fields = line.split()
    assert fields[0] == "2025-11-28T16:00:00Z" and fields[1] == "0:00:00.009"
    assert fields[2] == "bob" and fields[3] == "staging/db-1"
    assert "(shell)" in line and "SIGKILL" in line and "complete" in line
    assert line.endswith("bob.rec")


def test_ls_filters(recdir):
    top, made = recdir
    _, rows = ls_json(top, "--user", "alice")
    assert [os.path.basename(r["file"]) for r in rows] == ["alice-old.rec"]
    _, rows = ls_json(top, "--target", "prod/*")
    assert [os.path.basename(r["file"]) for r in rows] == ["alice-old.rec"]
    _, rows = ls_json(top, "--target", "*db*")
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["bob.rec", "cut.rec"]
    _, rows = ls_json(top, "--until", "2020-06-01")
    assert [os.path.basename(r["file"]) for r in rows] == ["alice-old.rec"]
    _, rows = ls_json(top, "--since", "2021-01-01T00:00Z", "--until", "2025-11-28T16:00:01Z")
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["bob.rec", "cut.rec"]
    # Made just now: within the last 2 hours; the 2020 and 2025 ones are not.
    _, rows = ls_json(top, "--since", "2h")
    assert sorted(r["file"] for r in rows) == sorted(str(p) for p in made["rec"])
    _, rows = ls_json(top, "--until", "30m")
    assert "alice-old.rec" in [os.path.basename(r["file"]) for r in rows]
    assert not set(str(p) for p in made["rec"]) & set(r["file"] for r in rows)


@pytest.mark.parametrize("args,needle", [
    (["--since", "yesterday"], b"bad time"),
    (["--until", "2025-02-30"], b"bad time"),
    ([], b"usage"),
])
def test_ls_usage_errors(recdir, args, needle):
    top, _ = recdir
    r = player("ls", *args, *([top] if args else []))
    assert r.returncode == 2 and needle in r.stderr


def test_ls_named_path_errors(recdir, tmp_path):
    top, _ = recdir
    r = player("ls", top / "hand" / "bob.rec", tmp_path / "missing.rec")
    assert r.returncode == 2
    assert b"missing.rec" in r.stderr and b"bob.rec" in r.stdout
    r = player("ls", top / "notes.txt")
    assert r.returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    r = player("ls", empty)
    assert r.returncode == 0 and r.stdout == b""


def test_grep_finds_rendered_command(recdir):
    top, made = recdir
    r = player("grep", "rm -rf", top)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1
    path, when, who, text = lines[0].split("  ", 3)
    assert path == str(made["rec"][0])
    assert when.startswith("0:00:00.")
    assert who.endswith("@local")
    assert text == "$ rm -rf /tmp/x"
    assert b"notes.txt" not in r.stderr
    assert b"notes.txt: not a podgate recording" in player("grep", "-v", "rm -rf", top).stderr


def test_grep_exit_statuses_and_options(recdir, tmp_path):
    top, _ = recdir
    assert player("grep", "no such text anywhere", top).returncode == 1
    r = player("grep", "DENIED", top / "hand" / "bob.rec")
    assert r.returncode == 1
    r = player("grep", "-i", "DENIED", top / "hand" / "bob.rec")
    assert r.returncode == 0 and r.stdout.decode().split("  ")[3] == "Permission denied\n"
    r = player("grep", "--regex", "^Perm[a-z]+ d", top / "hand")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2  # bob.rec and cut.rec
    r = player("grep", "--regex", "(", top)
    assert r.returncode == 2 and b"bad pattern" in r.stderr
    r = player("grep", "x", tmp_path / "missing.rec")
    assert r.returncode == 2
    r = player("grep", "x")
    assert r.returncode == 2 and b"usage" in r.stderr


def test_grep_input_and_json(recdir):
    top, made = recdir
    r = player("grep", "--input", "passw0rd", top)
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].endswith("  s3cret passw0rd")
    assert lines[0].startswith(str(made["rec"][2]) + "  ")
    r = player("grep", "--input", "--json", "shadow", top / "hand" / "bob.rec")
    assert r.returncode == 0
    hit = json.loads(r.stdout)
    assert hit["kind"] == "input" and hit["line"] == "cat /etc/shadow"
    assert hit["user"] == "bob" and hit["target"] == "staging/db-1" and hit["time_ns"] == 1 * MS
    # Typed text is not searched without --input (bob's shell never echoed it).
    assert player("grep", "shadow", top / "hand" / "bob.rec").returncode == 1


def test_ls_and_grep_on_broker_recordings(broker_recordings):
    """What a reviewer runs on the broker's directory: ls shows each session
    sealed; grep finds what was on screen, never the secret the guard redacted."""
    br = broker_recordings
    r, rows = ls_json(br.dir)
    assert r.returncode == 0, r.stderr
    # bob's `kill` was an admin session, recorded like any other
    assert [(row["user"], row["target"]) for row in rows if row["user"] != "alice"] == \
        [("bob", "podgate:kill")]
    r, rows = ls_json(br.dir, "--user", "alice")
    by = {row["file"]: row for row in rows}
    assert sorted(by) == sorted(str(p) for p in br.all)
    # ls reads the header and the seal without checking every byte; `ls --verify`
    # checks them all, and with no trusted key names the signer unverified.
    assert all(row["state"] == "complete" and row["user"] == "alice" and row["target"] == "local"
               for row in rows), rows
    r, rows = ls_json(br.dir, "--user", "alice", "--verify")
    assert r.returncode == 0 and all(row["state"] == "complete" and row["trust"] ==
                                     "unverified-signer" for row in rows), rows
    assert by[str(br.pty)]["command"] is None and by[str(br.pty)]["exit"] == {"status": 3}
    assert by[str(br.nopty)]["exit"] == {"status": 5}
    assert by[str(br.killed)]["exit"] == {"signal": "HUP"}
    r = player("grep", "tick-3", br.dir)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0
    (line,) = r.stdout.decode().splitlines()
    path, when, who, text = line.split("  ", 3)
    assert (path, who, text) == (str(br.pty), "alice@local", "tick-3")
    r = player("grep", "--regex", "REDACTED:[a-z-]+", br.dir)
    assert r.returncode == 0 and r.stdout.startswith(str(br.pty).encode())
    assert player("grep", "ghp_", br.dir).returncode == 1
    assert player("grep", "--input", "ghp_", br.dir).returncode == 1
    r = player("grep", "to-stdout", br.dir)
    assert r.returncode == 0 and r.stdout.decode().startswith(str(br.nopty))


def test_info_of_several_files(broker_recordings):
    br = broker_recordings
    r = player("info", *br.all)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.decode().strip().split("\n\n")
    assert [b.splitlines()[0].split(None, 1)[1] for b in blocks] == [str(p) for p in br.all]
    assert "terminal:  100x30 xterm (pty)" in blocks[0] and "exit:      status 3" in blocks[0]
    assert "(no pty)" in blocks[1] and "stderr 10" in blocks[1]
    assert "exit:      signal HUP" in blocks[2] or "SIGHUP" in blocks[2], blocks[2]
    # No trusted key given: intact, with the signer said to be unverified.
    assert all("sealed and intact" in b and "unverified signer" in b for b in blocks)
    r = player("info", "--json", *br.all)
    assert r.returncode == 0
    docs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [d["file"] for d in docs] == [str(p) for p in br.all]
    assert [d["integrity"]["state"] for d in docs] == ["sealed"] * 3


def test_grep_raw_finds_what_a_carriage_return_hid(tmp_path):
    """--raw matches the recorded bytes: a password printed and then
    overwritten after a \\r is not on the rendered screen, but is in the
    bytes; lines are cut at LF across events and printed escaped."""
    rec = write_recording(tmp_path / "cr.rec", [
        (1 * MS, "o", b"$ ./deploy\r\n"),
        (2 * MS, "o", b"token: hunter2-se"),
        (3 * MS, "o", b"cret\r\x1b[2Ktoken: ********\r\n"),
        (4 * MS, "i", b"sudo -S x\rpw-typed\r"),
        (5 * MS, "x", {"status": 0}),
    ])
    r = player("grep", "hunter2-secret", str(rec))
    assert r.returncode == 1, r.stdout  # not on the screen
    r = player("grep", "--raw", "hunter2-secret", str(rec))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(r"token: hunter2-secret\r\x1b[2Ktoken: ********\r"), lines
    r = player("grep", "--raw", "--json", "hunter2", str(rec))
    j = json.loads(r.stdout)
    assert j["kind"] == "raw" and j["line"] == "token: hunter2-secret\r\x1b[2Ktoken: ********\r"
    # What was typed, raw: cut at Enter.
    r = player("grep", "--raw", "--input", "--json", "pw-", str(rec))
    j = json.loads(r.stdout)
    assert j["kind"] == "raw-input" and j["line"] == "pw-typed", j
    r = player("grep", "--raw", "-c", "token", str(rec))
    assert r.stdout.decode().strip() == f"{rec}:1"

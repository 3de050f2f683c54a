"""podgate-player rec, cat and info, driven from outside like a user would."""
import fcntl
import glob
import json
import os
import pty
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import termios
import time

import msgpack
import pytest

import support
from player_support import PLAYER, player  # player(): a sanitizer report fails the test
from player_support import own_home  # noqa: F401 (autouse: a HOME of its own)
from support import assert_no_sanitizer_report


def events(path):
    """Header and events of a recording, parsed independently of librec."""
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, raw=False, max_buffer_size=64 << 20)
        header = next(unpacker)
        return header, [tuple(e) for e in unpacker]


def exit_event(evs):
    return [e for e in evs if e[1] == "x"][-1]


no_sanitizer_report = assert_no_sanitizer_report  # ASan, LeakSanitizer and UBSan


def test_rec_exit_status_cat_and_info(tmp_path):
    out = tmp_path / "a.rec"
    r = player("rec", "-o", str(out), "--", "sh", "-c", 'printf "hello\\n"; exit 3')
    no_sanitizer_report(r.stderr)
    assert r.returncode == 3
    assert r.stdout == b"hello\r\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    c = player("cat", str(out))
    assert c.returncode == 0 and c.stdout == b"hello\r\n" and c.stderr == b""

    i = player("info", str(out))
    assert i.returncode == 0
    text = i.stdout.decode()
    assert "exit:      status 3" in text
    assert "state:     complete" in text
    # Recorded strings are escaped for the terminal: a backslash is doubled.
    assert "command:   sh -c 'printf \"hello\\\\n\"; exit 3'" in text

    j = json.loads(player("info", "--json", str(out)).stdout)
    assert j["exit"] == {"status": 3}
    assert j["state"] == "complete"
    assert j["bytes"]["o"] == 7
    assert j["header"]["format"] == "podgate-rec" and j["header"]["version"] == 2
    assert j["header"]["term"]["cols"] == 80 and j["header"]["term"]["rows"] == 24

    header, evs = events(out)
    assert header["session"] == j["header"]["session"]
    assert b"".join(e[2] for e in evs if e[1] == "o") == b"hello\r\n"
    assert exit_event(evs)[2] == {"status": 3}
    # The seal, then the trailer that names the seal's offset.
    assert [e[1] for e in evs[-2:]] == ["s", "t"]


def test_rec_signal_exit(tmp_path):
    out = tmp_path / "s.rec"
    r = player("rec", "-q", "-o", str(out), "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM
    assert r.stderr == b""
    _, evs = events(out)
    assert exit_event(evs)[1:] == ("x", {"signal": "TERM"})
    assert "signal TERM" in player("info", str(out)).stdout.decode()


def test_rec_input_recorded_and_eof(tmp_path):
    out = tmp_path / "i.rec"
    r = player("rec", "-q", "-o", str(out), "--", "sh", "-c", "read line; echo got:$line",
               stdin=None, input=b"abc\n")
    assert r.returncode == 0
    assert b"got:abc" in r.stdout
    _, evs = events(out)
    assert b"".join(e[2] for e in evs if e[1] == "i") == b"abc\n"
    with_input = player("cat", "--input", str(out)).stdout
    assert b"abc\n" in with_input and b"got:abc" in with_input

    out2 = tmp_path / "n.rec"
    r = player("rec", "-q", "--no-input", "-o", str(out2), "--", "cat", stdin=None, input=b"xyz\n")
    assert r.returncode == 0
    _, evs = events(out2)
    assert not [e for e in evs if e[1] == "i"]
    assert b"xyz" in b"".join(e[2] for e in evs if e[1] == "o")


def test_rec_refuses_to_overwrite(tmp_path):
    out = tmp_path / "exists.rec"
    out.write_bytes(b"keep")
    r = player("rec", "-o", str(out), "--", "true")
    assert r.returncode == 2
    assert b"exists" in r.stderr and len(r.stderr.splitlines()) == 1
    assert out.read_bytes() == b"keep"


def test_rec_missing_command(tmp_path):
    out = tmp_path / "m.rec"
    r = player("rec", "-q", "-o", str(out), "--", "/nonexistent/cmd")
    assert r.returncode == 127
    assert b"No such file" in r.stderr


def test_bulk_output_size(tmp_path):
    out = tmp_path / "bulk.rec"
    r = player("rec", "-q", "-o", str(out), "--", "sh", "-c",
               "head -c 12000000 /dev/zero | tr '\\0' 'y'")
    assert r.returncode == 0
    raw = len(r.stdout)
    assert raw == 12000000
    _, evs = events(out)
    assert sum(len(e[2]) for e in evs if e[1] == "o") == raw
    size = out.stat().st_size
    assert size <= 1.03 * raw, (size, raw)


def read_until(fd, needle, deadline):
    return bytes(support.read_until(fd, needle, deadline - time.monotonic()))


def test_rec_resize_reaches_child_and_is_recorded(tmp_path):
    out = tmp_path / "r.rec"
    script = 'trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.05; done'
    pid, master = pty.fork()
    if pid == 0:
        os.execv(PLAYER, [PLAYER, "rec", "-q", "-o", str(out), "--", "sh", "-c", script])
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        deadline = time.monotonic() + 20
        before = termios.tcgetattr(master)
        read_until(master, b"ready", deadline)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        got = read_until(master, b"40 100", deadline)
        assert b"40 100" in got
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
        # The terminal's modes are restored after raw mode.
        assert termios.tcgetattr(master)[3] == before[3]
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    _, evs = events(out)
    resizes = [e[2] for e in evs if e[1] == "r"]
    assert [100, 40] in resizes
    assert b"40 100" in b"".join(e[2] for e in evs if e[1] == "o")


def test_rec_typed_input_in_raw_mode(tmp_path):
    out = tmp_path / "t.rec"
    pid, master = pty.fork()
    if pid == 0:
        os.execv(PLAYER, [PLAYER, "rec", "-q", "-o", str(out), "--", "sh", "-c",
                          "echo ready; read x; echo typed:$x"])
    try:
        deadline = time.monotonic() + 20
        read_until(master, b"ready", deadline)
        os.write(master, b"hi\r")
        read_until(master, b"typed:hi", deadline)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    _, evs = events(out)
    assert b"".join(e[2] for e in evs if e[1] == "i") == b"hi\r"


def test_rec_masks_input_typed_with_echo_off(tmp_path):
    """A password typed at a prompt that does not echo is recorded masked, as the broker does."""
    out = tmp_path / "p.rec"
    pid, master = pty.fork()
    if pid == 0:
        os.execv(PLAYER, [PLAYER, "rec", "-q", "-o", str(out), "--", "sh", "-c",
                          "stty -echo; echo prompt; read p; stty echo; echo len:${#p}; "
                          "read x; echo typed:$x"])
    try:
        deadline = time.monotonic() + 20
        read_until(master, b"prompt", deadline)
        os.write(master, "sécret\r".encode())
        read_until(master, b"len:7", deadline)  # sh counts bytes
        os.write(master, b"hi\r")
        read_until(master, b"typed:hi", deadline)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    _, evs = events(out)
    typed = b"".join(e[2] for e in evs if e[1] == "i")
    assert typed == b"******\rhi\r"
    assert b"cret" not in out.read_bytes()


@pytest.mark.parametrize("args,needle", [
    (["bogus"], b"unknown command"),
    (["cat", "/nonexistent.rec"], b"No such file"),
    (["cat", "/etc/passwd"], b"not a podgate recording"),
    (["info", "/etc/passwd"], b"not a podgate recording"),
    (["cat", "/"], b"is a directory"),
    (["cat"], b"usage"),
])
def test_errors_exit_2_with_one_line(args, needle):
    r = player(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    no_sanitizer_report(r.stderr)


def test_empty_and_foreign_files(tmp_path):
    empty = tmp_path / "empty.rec"
    empty.write_bytes(b"")
    js = tmp_path / "cast.rec"
    js.write_bytes(b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hi"]\n')
    for p in (empty, js):
        r = player("info", str(p))
        assert r.returncode == 2 and b"not a podgate recording" in r.stderr


def test_truncated_recording(tmp_path):
    out = tmp_path / "full.rec"
    r = player("rec", "-q", "-o", str(out), "--", "sh", "-c", "printf one; sleep 0.01; printf two")
    assert r.returncode == 0
    data = out.read_bytes()
    cut = tmp_path / "cut.rec"
    cut.write_bytes(data[:-3])
    i = player("info", "--json", str(cut))
    assert i.returncode == 1
    j = json.loads(i.stdout)
    assert j["state"] == "truncated"
    assert "truncated at byte" in j["error"]
    assert j["valid_bytes"] < len(data) - 3
    c = player("cat", str(cut))
    assert c.returncode == 1
    assert b"truncated at byte" in c.stderr
    # Only the seal was cut: every output byte is still there.
    assert c.stdout == b"onetwo"
    assert j["exit"] == {"status": 0}
    assert j["integrity"]["state"] == "truncated"


def test_help_and_version():
    r = player("--help")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0 and r.stderr == b""
    text = r.stdout.decode()
    assert text.startswith("usage: podgate-player COMMAND [ARGS]\n")
    for cmd in ("rec", "cat", "info", "verify", "key", "play", "ls", "grep", "export"):
        assert f"  podgate-player {cmd} " in text, cmd
    meson = open(os.path.join(os.path.dirname(__file__), "../../meson.build")).read()
    version = re.search(r"version\s*:\s*'([^']+)'", meson).group(1)
    r = player("--version")
    assert r.returncode == 0 and r.stdout == f"podgate-player {version}\n".encode(), r
    r = player("--bogus")
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.startswith(b"podgate-player: unknown command '--bogus' (try podgate-player --help)")
    r = player()
    assert r.returncode == 2 and b"usage: podgate-player COMMAND" in r.stderr


@pytest.mark.parametrize("cmd", ["rec", "cat", "info", "verify", "key", "play", "ls", "grep",
                                 "export"])
def test_every_command_help_lists_its_options(cmd):
    """COMMAND --help: exit 0, the usage on stdout, and every option of the
    usage line explained on a line of its own below it."""
    r = player(cmd, "--help")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0 and r.stderr == b"", r
    text = r.stdout.decode()
    first, _, body = text.partition("\n")
    assert first.startswith(f"usage: podgate-player {cmd} "), first
    options = set(re.findall(r"\[(--?[a-zA-Z][-a-zA-Z]*)", first))
    assert options, first
    described = set(re.findall(r"^ +(--?[a-zA-Z][-a-zA-Z]*)", body, re.M))
    described |= set(re.findall(r"^ +-[A-Za-z] [A-Z]+, (--?[a-zA-Z][-a-zA-Z]*)", body, re.M))
    described |= set(re.findall(r", (--?[a-zA-Z][-a-zA-Z]*)", body))
    assert options <= described, (cmd, options - described)


ROOT = os.path.join(os.path.dirname(__file__), "../..")
MANUALS = {"podgate-player.1": "man1", "podgate-broker.8": "man8", "podgate.yaml.5": "man5"}


def render_man(path):
    """The manual as man(1) shows it, failing on any groff warning."""
    r = subprocess.run(["man", "--warnings", "-l", str(path)], capture_output=True, timeout=60,
                       env={**os.environ, "MANWIDTH": "100", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""})
    assert r.returncode == 0 and r.stderr == b"", (path, r.stderr)
    return re.sub(r".\x08", "", r.stdout.decode())


@pytest.mark.skipif(not shutil.which("man"), reason="man is not installed")
def test_manuals_are_installed_and_cover_every_option_and_key():
    """meson install puts podgate-player(1), podgate-broker(8) and
    podgate.yaml(5) in place; each renders without a warning, and they name
    every option of the commands and every key the configuration loader
    knows, so they cannot drift from the code unnoticed."""
    build = os.path.dirname(os.path.dirname(PLAYER))
    installed = json.loads(subprocess.run(["meson", "introspect", build, "--installed"],
                                          capture_output=True, check=True).stdout)
    dest = {os.path.basename(s): d for s, d in installed.items()}
    pages = {}
    for name, section in MANUALS.items():
        assert name in dest and dest[name].endswith(f"/share/man/{section}/{name}"), dest
        src = [s for s in installed if os.path.basename(s) == name][0]
        pages[name] = render_man(src)
        assert pages[name].startswith(name.rsplit(".", 1)[0].upper()), pages[name][:80]
    # Every key of the configuration file, from the loader's typed tables
    # (rows CONFIG_FIELD("key", ...), CONFIG_INT(...), CONFIG_KUBE_PATH(...)).
    config_c = "".join(open(p).read() for p in
                       glob.glob(os.path.join(ROOT, "broker/policy/config*.c")))
    keys = set(re.findall(r'\bCONFIG_[A-Z_]*(?:FIELD|INT|PATH)\("([a-z_0-9]+)"', config_c))
    assert len(keys) > 70, keys
    missing = {k for k in keys if not re.search(rf"\b{k}\b", pages["podgate.yaml.5"])}
    assert not missing, f"podgate.yaml(5) does not describe {sorted(missing)}"
    # Every option of the broker.
    broker = os.path.join(build, "broker", "podgate-broker")
    usage = subprocess.run([broker, "--help"], capture_output=True, check=True).stdout.decode()
    for opt in set(re.findall(r"--[a-z][-a-z]*", usage)):
        assert opt in pages["podgate-broker.8"], opt
    # Every option on the usage line of each player command.
    for cmd in ("rec", "cat", "info", "verify", "key", "play", "ls", "grep", "export"):
        first = player(cmd, "--help").stdout.decode().split("\n", 1)[0]
        for opt in set(re.findall(r"\[(--?[a-zA-Z][-a-zA-Z]*)", first)):
            assert re.search(rf"(^|[\s\[(,]){re.escape(opt)}\b", pages["podgate-player.1"], re.M), \
                (cmd, opt)

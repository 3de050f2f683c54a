"""Shared fixtures for podgate's integration tests.

Binaries come from a meson build directory: $PODGATE_BUILD, or build-dev at
the top of the repository when unset (see ``build_dir()``).

Fixtures
--------
``build``   (session) a ``Build`` with ``.dir``, ``.broker`` and ``.player``
            paths; ``build.require("broker")`` fails the test with a clear
            message when that binary was not built.

``keys``    factory: ``keys("alice")`` makes (once per test, cached by name
            and type) a throw-away key pair in tmp_path and returns a ``Key``
            (``.path``, ``.pub`` line, ``.fingerprint`` "SHA256:...",
            ``.pkey()`` for paramiko). ``keys("bob", "ecdsa")``,
            ``keys("carol", "rsa")``.

``broker``  factory: ``broker(**options)`` writes a config (mode 0600) in a
            fresh directory under tmp_path, starts ``podgate-broker --config``
            on a free port, waits until the port speaks SSH and returns a
            ``Broker``. Options (all optional):
              users    {"alice": {"groups": ["oncall"]}, ...}; a user without
                       "keys" gets keys(name); "keys" may hold Key objects or
                       authorized_keys lines; "authorized_keys": PATH is
                       passed through.  Default: alice in group oncall.
              rules    default [{"groups": ["oncall"], "targets": ["local"]}]
              targets  default {"local": {"shell": "/bin/sh"}}
              settings extra top-level keys (max_auth_tries, login_grace_time,
                       shutdown_grace, audit_log, ...), override the defaults.
              env      extra environment for the broker process (ASAN_OPTIONS
                       and UBSAN_OPTIONS default to those of tests/run-tests.sh).
              start    False: only prepare (b.port is chosen, b.write_config()
                       writes the file); call b.start() yourself. Before
                       start, b.kubernetes = [cluster dicts] adds
                       targets.kubernetes, b.wrapper = [argv] runs the broker
                       through a program that execs it.
            At teardown the broker gets SIGTERM (unless it already exited)
            and the test FAILS if it does not exit 0 in time, if its stderr
            holds a sanitizer report (AddressSanitizer, LeakSanitizer, UBSan
            "runtime error:"), or if an audit line is not a JSON object with
            "time" and "event".

A ``Broker`` offers:
  paths:     .workdir (its cwd) .config_path .recordings_dir .audit_path
             .host_key_path .log_path (stderr) .stdout_path; .port .pid
  clients:   .ssh(user, *remote, key=, opts=[], input=b"", timeout=) ->
             CompletedProcess (bytes) running the real OpenSSH client;
             .ssh_args(...) the argv for Popen; .connect(user, key=) ->
             connected paramiko.SSHClient; .transport() -> paramiko Transport
             after key exchange, before auth.
  state:     .audit() list of dicts; .wait_audit(event, pred=, count=,
             timeout=); .recordings() list of recording.Recording;
             .wait_recordings(n); .recording_for(command); .log() stderr text;
             .wait_log(regex, since=); .rss_kb().
  control:   .write_config(**changes) / .write_config_text(text), .reload()
             (SIGHUP), .terminate() (SIGTERM), .wait_exit(timeout), .stop().

Other helpers: ``wait_until(pred, timeout, what)`` polls a condition with a
deadline; ``run_exec(client, command, ...)`` runs one exec channel over
paramiko and returns stdout, stderr, exit status and exit signal;
``channel_request(chan, name, payload)`` sends any channel request with
want-reply and returns whether the server accepted it. These and the other
shared helpers live in the ``support`` package (tests/integration/support/).

Every test has a deadline (pytest-timeout, ``timeout`` in pytest.ini): a hang
fails that test instead of stopping the suite. paramiko's
``Channel.recv_exit_status()`` waits at most EXIT_STATUS_TIMEOUT seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import paramiko
import pytest
from paramiko.common import MSG_CHANNEL_FAILURE, MSG_CHANNEL_REQUEST, cMSG_CHANNEL_REQUEST
from paramiko.message import Message

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from recording import Recording  # noqa: E402
from support import SANITIZER_PATTERNS, exit_status, sanitizer_report, wait_until  # noqa: E402,F401
from support.ports import free_port  # noqa: E402,F401

SSH_BASE_OPTS = [
    "-F", "/dev/null",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "IdentityAgent=none",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
]


# ---------------------------------------------------------------- helpers

def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("pytest-timeout is missing (Debian: python3-pytest-timeout; "
                                "`make deps-test` installs it): without it a hang stops the "
                                "suite instead of failing one test")


def build_dir() -> pathlib.Path:
    """The meson build directory holding the binaries under test."""
    return pathlib.Path(os.environ.get("PODGATE_BUILD") or REPO / "build-dev").resolve()


def read_ssh_banner(port: int, timeout: float = 2.0) -> bytes | None:
    """Connect, read the server's identification line, close. None if not possible."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 512:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
            # Say hello back so the server does not log a protocol error.
            try:
                s.sendall(b"SSH-2.0-podgate-test-probe\r\n")
            except OSError:
                pass
            return data if data.startswith(b"SSH-") else None
    except OSError:
        return None


@dataclasses.dataclass
class Build:
    dir: pathlib.Path

    @property
    def broker(self) -> pathlib.Path:
        return self.dir / "broker" / "podgate-broker"

    @property
    def player(self) -> pathlib.Path:
        return self.dir / "player" / "podgate-player"

    def require(self, name: str) -> pathlib.Path:
        """The path of binary "broker" or "player"; fails the test if missing."""
        p = getattr(self, name)
        if not (p.is_file() and os.access(p, os.X_OK)):
            pytest.fail(f"{p} is not built (PODGATE_BUILD={self.dir}); "
                        f"run: ninja -C {self.dir}")
        return p


@dataclasses.dataclass
class Key:
    name: str
    type: str
    path: pathlib.Path

    @property
    def pub(self) -> str:
        """The authorized_keys line: "ssh-ed25519 AAAA... name"."""
        return pathlib.Path(str(self.path) + ".pub").read_text().strip()

    @property
    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.path) + ".pub"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return out.split()[1]

    def pkey(self) -> paramiko.PKey:
        cls = {"ed25519": paramiko.Ed25519Key, "ecdsa": paramiko.ECDSAKey,
               "rsa": paramiko.RSAKey}[self.type]
        return cls.from_private_key_file(str(self.path))


def make_key(directory: pathlib.Path, name: str, type: str = "ed25519") -> Key:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{type}"
    args = ["ssh-keygen", "-t", type, "-N", "", "-q", "-C", f"{name}@test", "-f", str(path)]
    if type == "rsa":
        args[3:3] = ["-b", "2048"]
    subprocess.run(args, check=True, timeout=60, stdin=subprocess.DEVNULL)
    return Key(name, type, path)


def yaml_scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid double-quoted YAML scalar


def to_yaml(obj, indent: int = 0) -> str:
    """A small block-style YAML emitter for dicts, lists and scalars."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v and not (
                    isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)):
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 1)}")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: [{', '.join(yaml_scalar(x) for x in v)}]")
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            else:
                out.append(f"{pad}{k}: {yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 1).splitlines()
                first = body[0].lstrip()
                out.append(f"{pad}- {first}")
                out.extend(body[1:])
            else:
                out.append(f"{pad}- {yaml_scalar(item)}")
    else:
        out.append(pad + yaml_scalar(obj))
    return "\n".join(out)


# ---------------------------------------------- paramiko: exit-signal, requests

EXIT_STATUS_TIMEOUT = 120.0


def _recv_exit_status_with_deadline(self, timeout: float = EXIT_STATUS_TIMEOUT) -> int:
    """paramiko waits for an exit status forever: fail the test after timeout instead."""
    return exit_status(self, timeout)


paramiko.Channel.recv_exit_status = _recv_exit_status_with_deadline

_orig_handle_request = paramiko.Transport._channel_handler_table[MSG_CHANNEL_REQUEST]


def _handle_request_keep_signal(chan, m):
    """paramiko ignores exit-signal: keep its signal name in chan.exit_signal."""
    start = m.packet.tell()
    try:
        key = m.get_text()
    except Exception:
        key = None
    if key == "exit-signal":
        m.get_boolean()
        chan.exit_signal = m.get_text()
        chan.status_event.set()
        return
    m.packet.seek(start)
    return _orig_handle_request(chan, m)


paramiko.Transport._channel_handler_table[MSG_CHANNEL_REQUEST] = _handle_request_keep_signal

_orig_request_failed = paramiko.Transport._channel_handler_table[MSG_CHANNEL_FAILURE]


def _request_failed_keep_open(chan, m):
    """paramiko closes a channel when a request fails; not for channel_request()."""
    if getattr(chan, "podgate_pending_request", False):
        chan.podgate_pending_request = False
        chan.event_ready = False
        chan.event.set()
        return
    return _orig_request_failed(chan, m)


paramiko.Transport._channel_handler_table[MSG_CHANNEL_FAILURE] = _request_failed_keep_open


def channel_request(chan: paramiko.Channel, name: str, payload: bytes = b"",
                    timeout: float = 10.0) -> bool:
    """Send channel request `name` with want-reply; True if the server said success.

    payload is the request-specific data, already SSH-encoded (see ssh_string).
    Unlike paramiko's own requests, a refusal leaves the channel open. A
    channel closed by the server counts as a refusal.
    """
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(name)
    m.add_boolean(True)
    m.add_bytes(payload)
    chan._event_pending()
    chan.podgate_pending_request = True
    chan.transport._send_user_message(m)
    deadline = time.monotonic() + timeout
    while not chan.event.is_set():
        if time.monotonic() > deadline:
            pytest.fail(f"no reply to channel request {name!r} within {timeout}s")
        chan.event.wait(0.05)
        if chan.transport is None or not chan.transport.is_active():
            return False
    chan.podgate_pending_request = False
    return not chan.closed and chan.event_ready


def ssh_string(*parts) -> bytes:
    """Encode values as an SSH payload: str/bytes as strings, int as uint32, bool as byte."""
    m = Message()
    for p in parts:
        if isinstance(p, bool):
            m.add_boolean(p)
        elif isinstance(p, int):
            m.add_int(p)
        else:
            m.add_string(p)
    return m.asbytes()


@dataclasses.dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    status: int          # -1 when the target ended by a signal (or no status came)
    signal: str | None   # signal name without "SIG", from exit-signal


def drain_channel(chan: paramiko.Channel, timeout: float = 30.0) -> tuple[bytes, bytes]:
    """Read stdout and stderr of a channel until it is closed (EOF on both)."""
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    chan.settimeout(0.2)
    while True:
        if time.monotonic() > deadline:
            pytest.fail(f"channel not closed within {timeout}s; got {len(out)} bytes stdout "
                        f"{bytes(out[-200:])!r}, {len(err)} stderr {bytes(err[-200:])!r}")
        progressed = False
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            progressed = True
        try:
            d = chan.recv(65536)
            if d:
                out += d
                progressed = True
            elif not chan.recv_stderr_ready():
                # EOF on stdout; collect what is left on stderr until it ends too.
                while True:
                    e = chan.recv_stderr(65536)
                    if not e:
                        break
                    err += e
                return bytes(out), bytes(err)
        except socket.timeout:
            pass
        if not progressed and chan.closed and not chan.recv_ready() \
                and not chan.recv_stderr_ready():
            return bytes(out), bytes(err)


def run_exec(client: paramiko.SSHClient, command: str, stdin: bytes = b"",
             pty: dict | None = None, env: dict | None = None,
             timeout: float = 30.0) -> ExecResult:
    """One exec channel: optional pty-req (dict for get_pty) and env, send stdin then EOF."""
    chan = client.get_transport().open_session(timeout=10)
    try:
        if pty is not None:
            chan.get_pty(**pty)
        for k, v in (env or {}).items():
            chan.set_environment_variable(k, v)
        chan.exec_command(command)
        if stdin:
            writer = threading.Thread(target=chan.sendall, args=(stdin,), daemon=True)
            writer.start()
        else:
            writer = None
        if writer is None:
            chan.shutdown_write()
        out_err = {}

        def reader():
            out_err["v"] = drain_channel(chan, timeout)
        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        if writer is not None:
            writer.join(timeout)
            assert not writer.is_alive(), "sending stdin did not finish"
            chan.shutdown_write()
        rt.join(timeout + 5)
        assert not rt.is_alive() and "v" in out_err, "reading the channel did not finish"
        if not chan.status_event.wait(timeout):
            pytest.fail(f"no exit-status/exit-signal within {timeout}s for {command!r}")
        out, err = out_err["v"]
        return ExecResult(out, err, chan.exit_status, getattr(chan, "exit_signal", None))
    finally:
        chan.close()


# ---------------------------------------------------------------- the broker

class Broker:
    """One podgate-broker process with its own directory, config and port."""

    def __init__(self, build: Build, workdir: pathlib.Path, keyf, users=None, rules=None,
                 targets=None, settings=None, env=None):
        self.build = build
        self.workdir = workdir
        self._keyf = keyf
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "state").mkdir(exist_ok=True)
        self.config_path = self.workdir / "broker.yaml"
        self.log_path = self.workdir / "broker.stderr"
        self.stdout_path = self.workdir / "broker.stdout"
        self.users = users if users is not None else {"alice": {"groups": ["oncall"]}}
        self.rules = rules if rules is not None else [{"groups": ["oncall"], "targets": ["local"]}]
        self.targets = targets if targets is not None else {"local": {"shell": "/bin/sh"}}
        self.settings = {
            "host_key": "state/host_ed25519",
            "recordings": "state/recordings",
            "audit_log": "state/audit.jsonl",
            # Each test's broker makes its own keys (a deployment names existing ones).
            "generate_keys": True,
        }
        self.settings.update(settings or {})
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:strict_string_checks=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.env.update(env or {})
        self.port = free_port()
        self.proc = None
        self.preexec_fn = None  # run in the broker's process before exec (e.g. setrlimit)
        self.start_failed = False  # start() already failed the test: no second report
        self.wrapper = []  # argv that execs the broker (same pid), e.g. to set limits
        self.kubernetes = None  # targets.kubernetes: a list of cluster dicts
        self._log_file = None
        self._out_file = None

    # -- paths
    def path(self, p) -> pathlib.Path:
        """A path from the config, resolved against the broker's working directory."""
        return (self.workdir / p).resolve()

    @property
    def recordings_dir(self) -> pathlib.Path:
        return self.path(self.settings["recordings"])

    @property
    def audit_path(self) -> pathlib.Path | None:
        a = self.settings["audit_log"]
        return self.stdout_path if a == "-" else self.path(a)

    @property
    def host_key_path(self) -> pathlib.Path:
        return self.path(self.settings["host_key"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def key(self, user: str):
        """The first Key of a configured user (made by the keys fixture)."""
        spec = self.users[user]
        for k in spec.get("keys", []):
            if isinstance(k, Key):
                return k
        return self._keyf(user)

    # -- config
    def config_dict(self) -> dict:
        users = []
        for name, spec in self.users.items():
            u = {"name": name}
            if "authorized_keys" in spec:
                u["authorized_keys"] = str(spec["authorized_keys"])
            else:
                ks = spec.get("keys")
                if ks is None:
                    ks = [self._keyf(name)]
                u["keys"] = [k.pub if isinstance(k, Key) else k for k in ks]
            if spec.get("groups") is not None:
                u["groups"] = list(spec["groups"])
            if spec.get("roles") is not None:
                u["roles"] = list(spec["roles"])
            users.append(u)
        d = {"listen": f"127.0.0.1:{self.port}"}
        d.update(self.settings)
        d["users"] = users
        d["rules"] = self.rules
        # The local target runs as the broker's own user unless a test names
        # an account: most tests run scripts from tmp_path, which only the
        # broker's user can read (test_broker_attacks.py tests "user").
        d["targets"] = {name: (dict(spec, allow_broker_user=True)
                               if name == "local" and "user" not in spec
                               and "allow_broker_user" not in spec else spec)
                        for name, spec in self.targets.items()}
        return d

    def config_text(self) -> str:
        d = self.config_dict()
        text = to_yaml({k: v for k, v in d.items() if k != "targets"}) + "\n"
        # targets as written in the documentation: "local: {shell: /bin/sh}"
        text += "targets:\n"
        for name, spec in d["targets"].items():
            inner = ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in spec.items())
            text += f"  {name}: {{{inner}}}\n"
        if self.kubernetes:
            text += "  kubernetes:\n" + to_yaml(self.kubernetes, 2) + "\n"
        return text

    def write_config_text(self, text: str):
        """Replace the config file (mode 0600) atomically with text."""
        tmp = self.config_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config_path)

    def write_config(self, users=None, rules=None, targets=None, settings=None):
        """Change parts of the config and rewrite the file (no reload)."""
        if users is not None:
            self.users = users
        if rules is not None:
            self.rules = rules
        if targets is not None:
            self.targets = targets
        if settings:
            self.settings.update(settings)
        self.write_config_text(self.config_text())

    # -- process
    def start(self, timeout: float = 20.0):
        binary = self.build.require("broker")
        for attempt in range(5):
            if attempt:
                self.port = free_port()
            self.write_config_text(self.config_text())
            self._log_file = open(self.log_path, "ab")
            self._out_file = open(self.stdout_path, "ab")
            log_start = self.log_path.stat().st_size
            self.proc = subprocess.Popen([*self.wrapper, str(binary), "--config",
                                          str(self.config_path)],
                                         cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=self._out_file, stderr=self._log_file,
                                         preexec_fn=self.preexec_fn)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if read_ssh_banner(self.port):
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self._close_files()
                self.proc.kill()
                self.proc.wait(10)
                self.start_failed = True
                pytest.fail(f"broker did not accept SSH on port {self.port} within {timeout}s\n"
                            + self.log_tail())
            log = self.log_path.read_bytes()[log_start:].decode(errors="replace")
            self._close_files()
            if "in use" in log or "EADDRINUSE" in log:
                continue  # lost a race for the port: try another one
            self.start_failed = True
            pytest.fail(f"broker exited with {self.proc.returncode} at start\n" + self.log_tail())
        pytest.fail("could not find a free port for the broker in 5 tries")

    def _close_files(self):
        for f in (self._log_file, self._out_file):
            if f:
                f.close()
        self._log_file = self._out_file = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def terminate(self):
        os.kill(self.proc.pid, signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the broker to exit by itself; fail the test after timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        pytest.fail(f"broker still running {timeout}s later\n" + self.log_tail(), pytrace=False)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (if running) and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._close_files()
                pytest.fail(f"broker did not exit within {timeout}s of SIGTERM (killed)\n"
                            + self.log_tail())
        self._close_files()
        return self.proc.returncode

    # -- observation
    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 60) -> str:
        lines = self.log().splitlines()
        return "---- broker stderr (last lines) ----\n" + "\n".join(lines[-n:])

    def log_size(self) -> int:
        return len(self.log())

    def wait_log(self, regex: str, since: int = 0, timeout: float = 10.0) -> re.Match:
        """Wait for regex to match the broker's stderr from character offset since."""
        rx = re.compile(regex, re.M)
        m = wait_until(lambda: rx.search(self.log(), since), timeout,
                       f"broker log to match {regex!r}")
        return m

    def sanitizer_report(self) -> str | None:
        return sanitizer_report(self.log())

    def audit_lines(self) -> list[str]:
        p = self.audit_path
        if p is None or not p.exists():
            return []
        text = p.read_bytes().decode(errors="replace")
        # Only complete lines: the broker may be writing the last one.
        return text.split("\n")[:-1]

    def audit(self) -> list[dict]:
        out = []
        for line in self.audit_lines():
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                out.append(v)
        return out

    def events(self, event: str) -> list[dict]:
        return [e for e in self.audit() if e.get("event") == event]

    def wait_audit(self, event: str, pred=lambda e: True, count: int = 1,
                   timeout: float = 10.0) -> list[dict]:
        """Wait until at least count audit events named event satisfy pred; return them."""
        def found():
            evs = [e for e in self.events(event) if pred(e)]
            return evs if len(evs) >= count else None
        return wait_until(found, timeout, f"{count} audit event(s) {event!r}; have "
                          f"{[e.get('event') for e in self.audit()]}")

    def recording_paths(self) -> list[pathlib.Path]:
        d = self.recordings_dir
        return sorted(d.glob("*.rec")) if d.is_dir() else []

    def recordings(self) -> list[Recording]:
        return [Recording.load(p) for p in self.recording_paths()]

    def wait_recordings(self, n: int, complete: bool = True, timeout: float = 15.0):
        """Wait until n recordings exist (and all end with an exit event when complete)."""
        def ready():
            paths = self.recording_paths()
            if len(paths) < n:
                return None
            recs = []
            for p in paths:
                try:
                    r = Recording.load(p, allow_truncated=True)
                except Exception:
                    return None
                if complete and not r.complete():
                    return None
                recs.append(r)
            return recs
        return wait_until(ready, timeout, f"{n} {'complete ' if complete else ''}recordings "
                          f"in {self.recordings_dir} (have {len(self.recording_paths())})")

    def recording_for(self, command, timeout: float = 15.0) -> Recording:
        """The one complete recording whose header command equals command."""
        def find():
            found = []
            for p in self.recording_paths():
                try:
                    r = Recording.load(p, allow_truncated=True)
                except Exception:
                    continue
                if r.command == command:
                    found.append(r)
            if len(found) == 1 and found[0].complete():
                return Recording.load(found[0].path)
            if len(found) > 1:
                pytest.fail(f"{len(found)} recordings with command {command!r}")
            return None
        return wait_until(find, timeout, f"a complete recording with command {command!r}")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    # -- clients
    def ssh_args(self, user: str, *remote: str, key: Key | None = None, opts=()) -> list[str]:
        key = key or self.key(user)
        # ssh keeps the first value given for an option: the caller's opts go first.
        return ["ssh", *opts, *SSH_BASE_OPTS, "-p", str(self.port), "-i", str(key.path),
                f"{user}@127.0.0.1", *remote]

    def ssh(self, user: str, *remote: str, key: Key | None = None, opts=(), input: bytes = b"",
            timeout: float = 30.0, env=None) -> subprocess.CompletedProcess:
        """Run the OpenSSH client to completion; stdout/stderr are bytes."""
        args = self.ssh_args(user, *remote, key=key, opts=opts)
        try:
            return subprocess.run(args, input=input, capture_output=True, timeout=timeout,
                                  env=env)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"ssh did not finish within {timeout}s: {args}\nstdout: "
                        f"{(e.stdout or b'')[-300:]!r}\nstderr: {(e.stderr or b'')[-300:]!r}")

    def transport(self, timeout: float = 10.0) -> paramiko.Transport:
        """A paramiko Transport after key exchange, not yet authenticated."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        t = paramiko.Transport(sock)
        t.banner_timeout = timeout
        t.start_client(timeout=timeout)
        return t

    def connect(self, user: str, key: Key | None = None, **kw) -> paramiko.SSHClient:
        """A paramiko SSHClient authenticated as user with key (the user's by default)."""
        key = key or self.key(user)
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", self.port, username=user, pkey=key.pkey(), look_for_keys=False,
                  allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10, **kw)
        return c

    # -- teardown checks
    def check_clean(self, rc: int):
        problems = []
        report = self.sanitizer_report()
        if report:
            problems.append("sanitizer report in broker stderr:\n" + report)
        if rc != 0:
            problems.append(f"broker exited with status {rc} (expected 0)")
        bad = []
        for n, line in enumerate(self.audit_lines(), 1):
            try:
                v = json.loads(line)
                ok = isinstance(v, dict) and isinstance(v.get("time"), str) \
                    and isinstance(v.get("event"), str)
            except ValueError:
                ok = False
            if not ok:
                bad.append(f"{self.audit_path}:{n}: {line[:200]}")
        if bad:
            problems.append("audit lines that are not JSON objects with \"time\" and \"event\":\n"
                            + "\n".join(bad[:10]))
        if problems:
            pytest.fail("\n".join(problems) + "\n" + self.log_tail(), pytrace=False)


@pytest.fixture(scope="session")
def build() -> Build:
    return Build(build_dir())


@pytest.fixture
def keys(tmp_path):
    cache = {}
    kdir = tmp_path / "keys"

    def make(name: str, type: str = "ed25519") -> Key:
        if (name, type) not in cache:
            cache[(name, type)] = make_key(kdir, name, type)
        return cache[(name, type)]
    return make


@pytest.fixture
def broker(build, keys, tmp_path):
    started = []

    def factory(users=None, rules=None, targets=None, settings=None, env=None,
                start: bool = True) -> Broker:
        b = Broker(build, tmp_path / f"broker{len(started)}", keys, users=users, rules=rules,
                   targets=targets, settings=settings, env=env)
        started.append(b)
        if start:
            b.start()
        return b

    yield factory
    failures = []
    for b in started:
        if b.proc is None or b.start_failed:
            continue
        try:
            rc = b.stop(timeout=float(b.settings.get("shutdown_grace", 10)) + 20)
            b.check_clean(rc)
        except pytest.fail.Exception as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture(scope="session")
def broker_recordings(build, tmp_path_factory):
    """Recordings made once by a real broker (support/brokered.py): .pty (signed,
    checkpoints, typed input, a redacted token, exit 3), .nopty (stdout and
    stderr, exit 5), .killed (a kill marker, then SIGHUP); .pub the broker's
    public key, .dir their directory."""
    from support.brokered import make_broker_recordings
    top = tmp_path_factory.mktemp("broker-recordings")
    cache = {}

    def keyf(name, type="ed25519"):
        if (name, type) not in cache:
            cache[(name, type)] = make_key(top / "keys", name, type)
        return cache[(name, type)]
    return make_broker_recordings(Broker, build, top / "broker", keyf)

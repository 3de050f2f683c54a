"""The pod picker's tests, shared: a test API server serving pods, a broker
whose clusters point at it, and an interactive client that reads the
picker's screen.

    @pytest.fixture(scope="module")
    def k8s(tmp_path_factory):
        yield from pods_apiserver(tmp_path_factory, "k8s-pick", PODS)

    b = picker_broker(broker, [cluster(k8s)], RULES)
    with Shell(b) as sh:
        text = list_screen(sh)
        send_expect(sh, b"api", "(1 of 3)")
        pick(sh)
"""

from __future__ import annotations

import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "k8s"))

from fixture import closed_port, start_apiserver, write_kubeconfig  # noqa: E402,F401

from .terminal import Terminal  # noqa: E402

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def pods_apiserver(tmp_path_factory, name, pods, **attrs):
    """A test API server serving pods, with a kube cache directory beside it
    in srv.cache and attrs set on it too; a generator, for a fixture to
    yield from."""
    d = tmp_path_factory.mktemp(name)
    srv = start_apiserver(pods, d / "api")
    srv.cache = d / "kube-cache"
    for k, v in attrs.items():
        setattr(srv, k, v)
    try:
        yield srv
    finally:
        srv.stop()


def cluster(k8s, name="prod", kubeconfig=None, **more):
    """A targets.kubernetes entry for the server k8s (its kubeconfig unless
    another is given); more adds or replaces keys."""
    c = {"name": name, "kubeconfig": str(kubeconfig or k8s.kubeconfig),
         "kubectl": "/usr/bin/kubectl", "cache_dir": str(k8s.cache), "timeout": "5s"}
    c.update(more)
    return c


def picker_broker(broker, clusters, rules, targets=None):
    """A started broker with those clusters and rules, and alice in oncall."""
    b = broker(users={"alice": {"groups": ["oncall"]}}, rules=rules,
               targets=targets if targets is not None else {}, start=False)
    b.kubernetes = clusters
    b.start()
    return b


class Shell(Terminal):
    """An interactive channel with a PTY of 80x24 and its output so far;
    closed at the end of a with block."""

    def __init__(self, b, user="alice"):
        self.client = b.connect(user)
        super().__init__(self.client.invoke_shell(term="xterm", width=80, height=24))

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_expect(sh: Shell, data: bytes, pattern) -> int:
    """Send data, then wait for pattern in what comes after it."""
    n = len(sh.out)
    sh.chan.send(data)
    return sh.expect(pattern, start=n)


def pick(sh: Shell) -> None:
    """Enter, then wait until the picker has left its screen (keys typed
    before that may reach the picker instead of the target)."""
    send_expect(sh, b"\r", "\x1b[?1049l")


def screen_text(sh: Shell) -> str:
    """All the output so far as text, each escape sequence a line break."""
    return ESCAPE.sub("\n", sh.out.decode(errors="replace"))


def list_screen(sh: Shell) -> str:
    """The picker's screen text once the list is drawn (escape sequences dropped)."""
    sh.expect("filter:")
    return screen_text(sh)


def selected(sh: Shell, since: int):
    """The name on the highlighted row drawn last since output offset since."""
    rows = re.findall(rb"\x1b\[7m> +\S+ +(\S+)", sh.out[since:])
    return rows[-1].decode() if rows else None


def key(sh: Shell, data: bytes, want, what: str) -> None:
    """Send a key and wait until the highlighted row is want."""
    n = len(sh.out)
    sh.chan.send(data)
    deadline = time.monotonic() + sh.timeout
    while selected(sh, n) != want:
        assert time.monotonic() < deadline, f"{what}: selected {selected(sh, n)!r}, not {want!r}"
        assert sh.pump(), f"{what}: the channel closed"

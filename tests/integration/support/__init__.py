"""Helpers shared by every integration suite.

    from support import wait_until, readline_within, exit_status
    from support import assert_no_sanitizer_report, assert_refused

``wait``       waiting on conditions with deadlines: ``wait_until``,
               ``read_until`` (a file descriptor), ``readline_within`` (a pipe),
               ``exit_status`` (a paramiko channel), ``recv_until`` (a channel).
``terminal``   ``Terminal``: the one terminal reader, over a paramiko channel,
               a PTY master, or a process it spawns on a PTY of its own
               (``read_until`` and ``recv_until`` read through it too).
``audit``      reading audit events (``mentions``, ``has_client_addr``, ...).
``verify``     ``podgate-player verify --json`` on a recording, its exit
               statuses (SEALED, TRUNCATED, ...) and ``assert_sealed``.
``ports``      ``free_port``: a port for a server to listen on, below the
               kernel's ephemeral range (the benchmarks import it too).
``procs``      processes by command line (``pids_with_cmdline``, ``pids_with_argv``).
``tmux``       ``Tmux``: a private tmux server to drive and read terminals.
``term``       attributes in ``tmux capture-pane -e`` output.
``checkpoints`` what the recorder guarantees about checkpoints, checked from
               a recording's own times.
``brokered``   recordings a real broker made (conftest's ``broker_recordings``).
``picker``     the pod picker's suites: a test API server serving pods, a broker
               with clusters on it, and ``Shell``, a client reading the picker.
``live``       admin commands as users run them: the live suites' users and
               roles, ssh clients left running, held requests, ``Follower``
               (``pending --follow`` read line by line)
               (``from support.live import ...``).
``sanitizer``  finding AddressSanitizer, LeakSanitizer and UBSan reports in
               a process's stderr; ``assert_refused`` for a refusal's exact
               exit status and message.
"""

from .sanitizer import (SANITIZER_PATTERNS, assert_no_sanitizer_report,  # noqa: F401
                        assert_refused, sanitizer_report)
from .verify import (MODIFIED, NOT_RECORDING, SEALED, TRUNCATED, UNSIGNED,  # noqa: F401
                     WRONG_KEY, assert_sealed, verify)
from .wait import exit_status, read_until, readline_within, recv_until, wait_until  # noqa: F401

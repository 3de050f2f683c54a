"""Reading terminals: the attributes in a tmux ``capture-pane -e`` line."""

from __future__ import annotations

import re

_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_OTHER_ESC = re.compile(r"\x1b(\[[0-9;?]*[A-Za-ln-z]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z])")


def background_runs(line: str, bg: int) -> list[str]:
    """The runs of text drawn on background colour bg (40-47, e.g. 43 yellow) in one
    line of ``tmux capture-pane -e -p``."""
    runs, cur, state = [], [], None
    i = 0
    while i < len(line):
        m = _SGR.match(line, i)
        if m:
            params = [int(p) if p else 0 for p in re.split("[;:]", m.group(1))]
            k = 0
            while k < len(params):
                p = params[k]
                if p == 0 or p == 49:
                    state = None
                elif 40 <= p <= 47 or 100 <= p <= 107:
                    state = p
                elif p in (38, 48):  # extended colours: 5;n or 2;r;g;b
                    mode = params[k + 1] if k + 1 < len(params) else 0
                    if p == 48:
                        state = ("ext", tuple(params[k + 1:k + (3 if mode == 5 else 5)]))
                    k += 2 if mode == 5 else 4
                k += 1
            i = m.end()
            continue
        m = _OTHER_ESC.match(line, i)
        if m:
            i = m.end()
            continue
        if state == bg:
            cur.append(line[i])
        elif cur:
            runs.append("".join(cur))
            cur = []
        i += 1
    if cur:
        runs.append("".join(cur))
    return runs

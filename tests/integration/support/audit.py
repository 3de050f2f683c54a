"""Reading the broker's audit events (one JSON object a line)."""

from __future__ import annotations

import json
import re

# An RFC 3339 time as the audit log writes it.
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def flat_values(obj):
    """Every scalar value of a (nested) audit event."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from flat_values(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from flat_values(v)
    else:
        yield obj


def mentions(ev: dict, value) -> bool:
    """Whether value is one of the event's values, at any depth."""
    return value in list(flat_values(ev))


def has_client_addr(ev: dict) -> bool:
    """Whether the event names the test's client address (127.0.0.1, with or without port)."""
    return any(isinstance(v, str) and re.fullmatch(r"127\.0\.0\.1(:\d+)?", v)
               for v in flat_values(ev))


def text_of(ev: dict) -> str:
    """The event as lower-case JSON text, to search for words."""
    return json.dumps(ev).lower()

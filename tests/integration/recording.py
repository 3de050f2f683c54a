"""Read podgate recordings (format version 1) in tests, independently of librec.

A recording is a stream of msgpack objects: one header map, then events
``[interval_ns, code, payload]``. Payloads of 'o', 'e' and 'i' are msgpack
bin (bytes here); 'r' is ``[cols, rows]``; 'x' is ``{"status": int}`` or
``{"signal": "KILL"}``; 'm' is a str. Codes this module does not know
('c', 's', ...) are kept in ``events`` but ignored by the helpers.

    rec = Recording.load(path)
    rec.header["who"]["user"]      # "alice"
    rec.data("o")                  # all stdout / PTY output bytes
    rec.resizes()                  # [(cols, rows), ...]
    rec.exit()                     # {"status": 0} or {"signal": "KILL"}
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import msgpack

KNOWN_CODES = frozenset("oeirmx")


class RecordingError(Exception):
    """The file is not a well-formed podgate recording."""


@dataclasses.dataclass
class Event:
    interval_ns: int
    code: str
    payload: Any
    time_ns: int  # since the start of the recording (sum of intervals)


@dataclasses.dataclass
class Recording:
    path: pathlib.Path
    header: dict
    events: list[Event]
    truncated: bool  # the file ends inside an object

    @classmethod
    def load(cls, path, allow_truncated: bool = False) -> "Recording":
        """Parse a recording; raise RecordingError when it is malformed.

        A file that ends inside an object (a recording still being written,
        or cut by a crash) raises unless allow_truncated is true, in which
        case the complete objects are returned and ``truncated`` is set.
        """
        path = pathlib.Path(path)
        raw = path.read_bytes()
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                    max_buffer_size=max(len(raw), 1 << 20))
        unpacker.feed(raw)
        objects = []
        consumed = 0
        try:
            for obj in unpacker:
                objects.append(obj)
                consumed = unpacker.tell()
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
                ValueError, UnicodeDecodeError) as e:
            raise RecordingError(f"{path}: bad msgpack after byte {consumed}: {e}") from e
        truncated = consumed != len(raw)
        if truncated and not allow_truncated:
            raise RecordingError(f"{path}: truncated: {len(raw) - consumed} trailing bytes "
                                 f"after the last complete object at byte {consumed}")
        if not objects:
            raise RecordingError(f"{path}: empty recording")
        header = objects[0]
        if not isinstance(header, dict):
            raise RecordingError(f"{path}: first object is {type(header).__name__}, not a map")
        if header.get("format") != "podgate-rec":
            raise RecordingError(f"{path}: header format is {header.get('format')!r}")
        if header.get("version") != 1:
            raise RecordingError(f"{path}: header version is {header.get('version')!r}")
        events = []
        t = 0
        for n, obj in enumerate(objects[1:], start=1):
            if not (isinstance(obj, (list, tuple)) and len(obj) == 3):
                raise RecordingError(f"{path}: object {n} is not [interval, code, payload]: {obj!r:.80}")
            interval, code, payload = obj
            if not isinstance(interval, int) or interval < 0:
                raise RecordingError(f"{path}: object {n}: bad interval {interval!r}")
            if not isinstance(code, str) or len(code) != 1:
                raise RecordingError(f"{path}: object {n}: bad code {code!r}")
            if code in "oei" and not isinstance(payload, (bytes, bytearray)):
                raise RecordingError(f"{path}: object {n}: '{code}' payload is "
                                     f"{type(payload).__name__}, not bin")
            if code == "r" and not (isinstance(payload, (list, tuple)) and len(payload) == 2
                                    and all(isinstance(v, int) for v in payload)):
                raise RecordingError(f"{path}: object {n}: bad resize payload {payload!r}")
            if code == "x" and not (isinstance(payload, dict)
                                    and ("status" in payload or "signal" in payload)):
                raise RecordingError(f"{path}: object {n}: bad exit payload {payload!r}")
            t += interval
            events.append(Event(interval, code, payload, t))
        return cls(path, header, events, truncated)

    def data(self, code: str) -> bytes:
        """Concatenated payload bytes of every event with this code ('o', 'e', 'i')."""
        return b"".join(bytes(e.payload) for e in self.events if e.code == code)

    def codes(self) -> list[str]:
        """The codes of the events, in order, known ones only."""
        return [e.code for e in self.events if e.code in KNOWN_CODES]

    def resizes(self) -> list[tuple[int, int]]:
        return [tuple(e.payload) for e in self.events if e.code == "r"]

    def exits(self) -> list[dict]:
        return [e.payload for e in self.events if e.code == "x"]

    def exit(self) -> dict | None:
        """The payload of the one 'x' event, or None; more than one raises."""
        xs = self.exits()
        if len(xs) > 1:
            raise RecordingError(f"{self.path}: {len(xs)} exit events: {xs}")
        return xs[0] if xs else None

    def complete(self) -> bool:
        """Whether the recording ends with an exit event (unknown codes after it allowed)."""
        known = self.codes()
        return not self.truncated and bool(known) and known[-1] == "x"

    @property
    def session(self) -> str:
        return self.header.get("session")

    @property
    def command(self):
        return (self.header.get("what") or {}).get("command")


def load_all(directory) -> list[Recording]:
    """Every *.rec file in a directory, parsed (sorted by name)."""
    return [Recording.load(p) for p in sorted(pathlib.Path(directory).glob("*.rec"))]

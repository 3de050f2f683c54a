"""Read and verify podgate recordings (format versions 1 and 2) in tests, independently of librec.

Written from docs/format.md alone. A recording is a stream of msgpack
objects: one header map, then events ``[interval_ns, code, payload]``.
Payloads of 'o', 'e' and 'i' are msgpack bin (bytes here); 'r' is
``[cols, rows]``; 'x' is ``{"status": int}`` or ``{"signal": "KILL"}``; 'm'
is a str. Codes the helpers do not use ('c', 's', 't', ...) are kept in
``events`` but ignored by them.

    rec = Recording.load(path)
    rec.header["who"]["user"]      # "alice"
    rec.data("o")                  # all stdout / PTY output bytes
    rec.resizes()                  # [(cols, rows), ...]
    rec.exit()                     # {"status": 0} or {"signal": "KILL"}

    v = verify(path, key=pub)      # the verdict podgate-player verify must give
    v.verdict, v.offset, v.time_ns # "sealed", end of the last good checkpoint, its time
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import struct
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KNOWN_CODES = frozenset("oeirmx")
VERSIONS = (1, 2)
SID_LEN = 36
MAX_OBJECT = 16 * 1024 * 1024 + 4096   # bytes in one object (a payload of 16 MiB and framing)
MAX_ITEMS = 65536                      # msgpack items in one object
MAX_DEPTH = 32                         # nested containers in one object
TRAILER_FRAME = bytes([0x93, 0x00, 0xa1, ord("t"), 0xc4, 0x08])
TRAILER_LEN = len(TRAILER_FRAME) + 8

# Verdicts, also podgate-player verify's exit statuses.
VERDICTS = ("sealed", "truncated", "not a recording", "unsigned", "wrong key", "modified")


class RecordingError(Exception):
    """The file is not a well-formed podgate recording."""


@dataclasses.dataclass
class Event:
    interval_ns: int
    code: str
    payload: Any
    time_ns: int  # since the start of the recording (sum of intervals)
    offset: int = 0  # byte offset of the event's first byte
    size: int = 0  # encoded size in bytes


def _objects(raw: bytes):
    """Yield (offset, size, object) for each complete object; then a final
    ("end", offset, reason) tuple: reason None at a clean end, "truncated"
    when the file ends inside an object, or a description of a corrupt one."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                                object_pairs_hook=_map, ext_hook=_ext,
                                max_buffer_size=max(len(raw), 1 << 20))
    unpacker.feed(raw)
    pos = 0
    while True:
        try:
            obj = next(unpacker)
        except StopIteration:
            if pos == len(raw):
                yield ("end", pos, None)
            elif _declares_too_much(raw, pos):
                yield ("end", pos, f"corrupt object at byte {pos}: declares more than the limits")
            else:
                yield ("end", pos, "truncated")
            return
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
                ValueError, UnicodeDecodeError) as e:
            yield ("end", pos, f"corrupt object at byte {pos}: {e}")
            return
        end = unpacker.tell()
        bad = _limits(obj, end - pos)
        if bad:
            yield ("end", pos, f"corrupt object at byte {pos}: {bad}")
            return
        yield (pos, end - pos, obj)
        pos = end


def _ext(code: int, data: bytes):
    """An ext object of any type code (librec accepts all; none is a known payload)."""
    return ("ext", code, data)


def _frozen(o):
    """A hashable stand-in for a map key that is an array or a map."""
    if isinstance(o, list):
        return tuple(_frozen(v) for v in o)
    if isinstance(o, dict):
        return tuple((k, _frozen(v)) for k, v in o.items())
    return o


def _map(pairs) -> dict:
    """A msgpack map as a dict: any key allowed, and the first of repeated keys
    wins, as librec looks keys up."""
    d = {}
    for k, v in pairs:
        d.setdefault(_frozen(k), v)
    return d


def _declares_too_much(raw: bytes, pos: int) -> bool:
    """Whether the incomplete object at pos already declares a length or an
    item count over the limits: a reader measures before it waits for more."""
    owed, items, off = 1, 0, pos
    while owed > 0 and off < len(raw):
        items += 1
        if items > MAX_ITEMS:
            return True
        owed -= 1
        b = raw[off]
        off += 1
        if b <= 0x7f or b >= 0xe0 or b in (0xc0, 0xc2, 0xc3):
            continue
        if 0x80 <= b <= 0x8f:
            owed += 2 * (b & 0x0f)
            continue
        if 0x90 <= b <= 0x9f:
            owed += b & 0x0f
            continue
        if 0xa0 <= b <= 0xbf:
            length = b & 0x1f
        elif b in (0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb, 0xc7, 0xc8, 0xc9, 0xdc, 0xdd, 0xde, 0xdf):
            width = {0xc4: 1, 0xd9: 1, 0xc7: 1, 0xc5: 2, 0xda: 2, 0xc8: 2, 0xdc: 2, 0xde: 2}.get(b, 4)
            if off + width > len(raw):
                return False
            length = int.from_bytes(raw[off:off + width], "big")
            off += width
            if b in (0xdc, 0xdd, 0xde, 0xdf):
                if length > MAX_ITEMS:
                    return True
                owed += 2 * length if b >= 0xde else length
                continue
            if b in (0xc7, 0xc8, 0xc9):
                length += 1
        else:
            length = {0xcc: 1, 0xd0: 1, 0xcd: 2, 0xd1: 2, 0xce: 4, 0xd2: 4, 0xca: 4, 0xcf: 8,
                      0xd3: 8, 0xcb: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17}.get(b)
            if length is None:
                return True
        if length > MAX_OBJECT or off + length - pos > MAX_OBJECT:
            return True
        off += length
    return False


def _limits(obj, size) -> str | None:
    """Whether an object is within the reader limits of docs/format.md."""
    if size > MAX_OBJECT:
        return f"{size} bytes, over {MAX_OBJECT}"
    items, stack = 0, [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        items += 1
        if items > MAX_ITEMS:
            return f"over {MAX_ITEMS} items"
        if isinstance(o, (list, tuple, dict)):
            if depth > MAX_DEPTH:
                return f"nested over {MAX_DEPTH} deep"
            if isinstance(o, dict):
                for k, v in o.items():
                    stack.append((k, depth + 1))
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in o)
    return None


def _uint(v, top=None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0 and (top is None or v <= top)


def _str_or_nil(v) -> bool:
    return v is None or (isinstance(v, str) and "\0" not in v)


def header_problem(h: dict) -> str | None:
    """The first header field of the wrong type (docs/format.md, Header), or None."""
    if not (isinstance(h.get("session"), str) and len(h["session"].encode("utf-8", "surrogateescape")) == SID_LEN
            and "\0" not in h["session"]):
        return "session"
    if "start" not in h or not _uint(h["start"]):
        return "start"
    for key, fields in (("term", ("cols", "rows", "type")), ("who", ("user", "key_fp", "client")),
                        ("where", ("kind", "target")), ("what", ("command",))):
        m = h.get(key)
        if m is None and key not in h:
            continue
        if not isinstance(m, dict):
            return key
        for f in fields:
            if f not in m:
                continue
            ok = _uint(m[f], 0xffff) if f in ("cols", "rows") else _str_or_nil(m[f])
            if not ok:
                return key
    if "pty" in h and not isinstance(h["pty"], bool):
        return "pty"
    return None


def event_problem(code: str, p, version: int) -> str | None:
    """Why a known event's payload is of the wrong type, or None."""
    if code in "oei" and not isinstance(p, bytes):
        return f"'{code}' payload is {type(p).__name__}, not bin"
    if code == "m" and not isinstance(p, str):
        return "'m' payload is not a str"
    if code == "r" and not (isinstance(p, list) and len(p) == 2 and all(_uint(v, 0xffff) for v in p)):
        return f"bad resize payload {p!r:.60}"
    if code == "x":
        if not isinstance(p, dict) or ("status" in p) == ("signal" in p):
            return f"bad exit payload {p!r:.60}"
        if "status" in p and not (isinstance(p["status"], int) and not isinstance(p["status"], bool)
                                  and -2**31 <= p["status"] < 2**31):
            return "bad exit status"
        if "signal" in p and not (isinstance(p["signal"], str) and 0 < len(p["signal"].encode()) < 32
                                  and "\0" not in p["signal"]):
            return "bad exit signal"
        if "reason" in p and not isinstance(p["reason"], str):
            return "bad exit reason"
    if code == "R":
        if not isinstance(p, list):
            return "'R' payload is not an array"
        end = 0
        for span in p:
            if not (isinstance(span, dict) and _uint(span.get("at")) and _uint(span.get("len"))
                    and isinstance(span.get("kind"), str) and span["at"] >= end):
                return f"bad redacted span {span!r:.60}"
            end = span["at"] + span["len"]
    if code == "t" and version >= 2 and not (isinstance(p, bytes) and len(p) == 8):
        return "bad trailer"
    return None


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
        objects = []
        truncated = False
        for item in _objects(raw):
            if item[0] == "end":
                _, pos, why = item
                if why == "truncated":
                    if not allow_truncated:
                        raise RecordingError(f"{path}: truncated: {len(raw) - pos} trailing bytes "
                                             f"after the last complete object at byte {pos}")
                    truncated = True
                elif why is not None:
                    raise RecordingError(f"{path}: {why}")
                break
            objects.append(item)
        if not objects:
            raise RecordingError(f"{path}: empty recording")
        header = objects[0][2]
        if not isinstance(header, dict):
            raise RecordingError(f"{path}: first object is {type(header).__name__}, not a map")
        if header.get("format") != "podgate-rec":
            raise RecordingError(f"{path}: header format is {header.get('format')!r}")
        if header.get("version") not in VERSIONS:
            raise RecordingError(f"{path}: header version is {header.get('version')!r}")
        events = []
        t = 0
        for n, (off, size, obj) in enumerate(objects[1:], start=1):
            if not (isinstance(obj, list) and len(obj) == 3):
                raise RecordingError(f"{path}: object {n} is not [interval, code, payload]: {obj!r:.80}")
            interval, code, payload = obj
            if not _uint(interval):
                raise RecordingError(f"{path}: object {n}: bad interval {interval!r}")
            if not isinstance(code, str) or len(code.encode("utf-8", "surrogateescape")) != 1:
                raise RecordingError(f"{path}: object {n}: bad code {code!r}")
            bad = event_problem(code, payload, header["version"])
            if bad:
                raise RecordingError(f"{path}: object {n}: {bad}")
            t += interval
            events.append(Event(interval, code, payload, t, off, size))
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


# ---- Verification (docs/format.md, Integrity) ----

@dataclasses.dataclass
class Verdict:
    verdict: str          # one of VERDICTS
    reason: str
    version: int = 0      # format version read (0: not a recording)
    key_fp: str | None = None
    checkpoints: int = 0  # good checkpoints, the seal not counted
    offset: int = 0       # end of the last good checkpoint, or of the seal (and trailer), or the header
    time_ns: int = 0      # the time of that checkpoint or seal
    events: int = 0       # events before it
    bad_offset: int | None = None  # modified: where

    @property
    def status(self) -> int:
        return VERDICTS.index(self.verdict)


def key_fingerprint(raw: bytes) -> str:
    import base64
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def load_public_key(path) -> bytes:
    """The 32 raw bytes of an Ed25519 public (or private) key in PEM form."""
    data = pathlib.Path(path).read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = serialization.load_pem_private_key(data, password=None).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _be(*values) -> bytes:
    return b"".join(struct.pack(">Q", v & 0xffffffffffffffff) for v in values)


def exit_fields(exit_map) -> tuple[int, bytes]:
    """The exit status (-1 for a signal or no exit) and the 32-byte signal field a seal signs."""
    if exit_map is None:
        return -1, bytes(32)
    if "signal" in exit_map:
        return -1, exit_map["signal"].encode().ljust(32, b"\0")
    return exit_map["status"], bytes(32)


def signed_message(version, code, sid, mark) -> bytes:
    """The bytes a checkpoint or seal signs; mark holds its fields (seal: with totals)."""
    name = b"checkpoint" if code == "c" else b"seal"
    msg = b"podgate-rec/%d " % version + name + b"\0" + sid.encode().ljust(SID_LEN, b"\0")[:SID_LEN]
    msg += _be(mark["seq"])
    if version >= 2 and code == "c":
        msg += _be(mark["time"], mark["offset"], mark["events"])
    elif version >= 2:
        msg += _be(mark["offset"])
    msg += mark["digest"]
    if code == "s":
        status, sig = exit_fields(mark["exit"])
        msg += _be(mark["events"], *mark["bytes"], mark["duration"], status) + sig
    return msg


def pack_mark(version, code, interval, mark) -> bytes:
    """The exact bytes of a checkpoint or seal, smallest encodings, keys in the spec's order."""
    if version < 2:
        keys = ("seq", "digest") if code == "c" else \
            ("seq", "digest", "events", "bytes", "duration", "exit")
    elif code == "c":
        keys = ("seq", "time", "offset", "events", "digest")
    else:
        keys = ("seq", "offset", "digest", "events", "bytes", "duration", "exit")
    payload = {k: mark[k] for k in keys}
    if mark.get("sig") is not None:
        payload["sig"] = mark["sig"]
    return msgpack.packb([interval, code, payload], use_bin_type=True)


def trailer(seal_offset: int) -> bytes:
    return TRAILER_FRAME + struct.pack(">Q", seal_offset)


def verify(path, key: bytes | str | os.PathLike | None = None) -> Verdict:
    """Verify a recording as docs/format.md says; key is the raw public key or a PEM file."""
    raw = pathlib.Path(path).read_bytes()
    if key is not None and not isinstance(key, bytes):
        key = load_public_key(key)
    return verify_bytes(raw, key)


def verify_bytes(raw: bytes, key: bytes | None = None) -> Verdict:
    items = iter(_objects(raw))
    first = next(items)
    if first[0] == "end" or not isinstance(first[2], dict) or first[2].get("format") != "podgate-rec":
        why = "truncated inside the header" if first[0] == "end" and first[2] == "truncated" else \
            "not a podgate recording"
        return Verdict("not a recording", why)
    _, hsize, h = first
    version = h.get("version")
    if not _uint(version) or version not in VERSIONS:
        return Verdict("not a recording", f"version {version!r} not read")
    bad = header_problem(h)
    if bad:
        if "signer" in h:
            return Verdict("modified", f"signed header with bad field '{bad}'", version=version,
                           bad_offset=0)
        return Verdict("not a recording", f"bad header field '{bad}'")

    v = Verdict("sealed", "", version=version, offset=hsize)
    key_verdict, key_reason, pub = "sealed", "", None

    def modified(off, why):
        v.verdict, v.reason, v.bad_offset = "modified", why, off
        return v

    chain, signer = h.get("chain"), h.get("signer")
    if chain is None and signer is not None:
        return modified(0, "the header names a signer but no hash chain")
    if chain is not None and chain != "sha256":
        return modified(0, "unknown hash chain in the header")
    if chain is None or signer is None:
        key_verdict, key_reason = "unsigned", "unsigned"
    else:
        if not (isinstance(signer, dict) and signer.get("alg") == "ed25519"
                and isinstance(signer.get("key"), bytes) and len(signer["key"]) == 32):
            return modified(0, "bad signer in the header")
        pub = signer["key"]
        v.key_fp = key_fingerprint(pub)
        if "key_fp" in signer and signer["key_fp"] != v.key_fp:
            return modified(0, "signer fingerprint does not match the signer key")
        if key is not None and key != pub:
            key_verdict, key_reason = "wrong key", f"wrong key: signed by {v.key_fp}"

    sha = hashlib.sha256(raw[:hsize])
    sid = h["session"]
    seq, t, events = 0, 0, 0
    totals = {"bytes": [0, 0, 0], "exit": None}
    sealed_at = None
    trailer_ok = False
    end_verdict, end_reason = None, ""
    for item in items:
        if item[0] == "end":
            _, pos, why = item
            if why is None:
                if sealed_at is None:
                    end_verdict, end_reason = "truncated", "not sealed"
                elif version >= 2 and not trailer_ok:
                    end_verdict, end_reason = "truncated", "cut after the seal"
            elif why == "truncated":
                if sealed_at is None:
                    end_verdict, end_reason = "truncated", f"truncated at byte {pos}"
                elif version >= 2 and not trailer_ok and trailer(sealed_at).startswith(raw[pos:]):
                    end_verdict, end_reason = "truncated", "cut inside the trailer"
                else:
                    return modified(pos, f"data after the seal, at byte {pos}")
            else:
                return modified(pos, why)
            break
        off, size, obj = item
        if sealed_at is not None:
            if version >= 2 and not trailer_ok and raw[off:off + size] == trailer(sealed_at):
                trailer_ok = True
                v.offset = off + size
                continue
            return modified(off, f"data after the seal, at byte {off}")
        if not (isinstance(obj, list) and len(obj) == 3 and _uint(obj[0]) and isinstance(obj[1], str)
                and len(obj[1].encode("utf-8", "surrogateescape")) == 1):
            return modified(off, f"event at byte {off} is not [interval, code, payload]")
        interval, code, p = obj
        bad = event_problem(code, p, version)
        if bad:
            return modified(off, f"event at byte {off}: {bad}")
        t += interval
        if code in "cs":
            digest = sha.digest()
            if not isinstance(p, dict) or p.get("seq") != seq:
                return modified(off, f"mark at byte {off} out of sequence")
            if p.get("digest") != digest:
                return modified(off, f"digest of mark {seq} at byte {off} does not match")
            mark = {"seq": seq, "time": t, "offset": off, "events": events, "digest": digest,
                    "bytes": list(totals["bytes"]), "duration": t, "exit": totals["exit"]}
            if pub is not None:
                sig = p.get("sig")
                try:
                    if not isinstance(sig, bytes):
                        raise InvalidSignature()
                    Ed25519PublicKey.from_public_bytes(pub).verify(
                        sig, signed_message(version, code, sid, mark))
                except InvalidSignature:
                    return modified(off, f"mark {seq} at byte {off}: bad signature")
                mark["sig"] = sig
            elif "sig" in p:
                return modified(off, f"mark at byte {off} signed but no signer")
            if raw[off:off + size] != pack_mark(version, code, interval if code == "c" else 0, mark):
                return modified(off, f"mark at byte {off} not as written")
            seq += 1
            if code == "c":
                v.checkpoints += 1
            else:
                sealed_at = off
            v.offset, v.time_ns, v.events = off + size, t, events
        else:
            if code in "oei":
                totals["bytes"]["oei".index(code)] += len(p)
            if code == "x":
                totals["exit"] = p
        events += 1
        sha.update(raw[off:off + size])

    if end_verdict == "truncated" and sealed_at is None and version >= 2 \
            and len(raw) >= TRAILER_LEN and raw[-TRAILER_LEN:].startswith(TRAILER_FRAME):
        named = struct.unpack(">Q", raw[-8:])[0]
        return modified(named if named < len(raw) - TRAILER_LEN else len(raw) - TRAILER_LEN,
                        f"the trailer names a seal at byte {named}, which is damaged or missing")
    # Within one file the worst verdict wins: modified, wrong key, unsigned, truncated, sealed.
    if key_verdict != "sealed":
        v.verdict, v.reason = key_verdict, key_reason + (f"; {end_reason}" if end_verdict else "")
    elif end_verdict:
        v.verdict, v.reason = end_verdict, end_reason
    else:
        v.reason = "sealed and intact"
    return v

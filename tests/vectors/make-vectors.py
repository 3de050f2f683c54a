#!/usr/bin/env python3
"""Make the test vectors of tests/vectors/: recordings and expected.json.

Each recording is built here, event by event, from docs/format.md (one is
recorded by podgate-player rec, the reference writer), then cut, flipped
or altered; the verdict each must get is worked out from how it was
built, never by running a verifier. The files are deterministic
(Ed25519 signatures are), so running this again gives the same bytes:

    tests/vectors/make-vectors.py              # rewrite the vectors
    tests/vectors/make-vectors.py --check      # exit 1 if a vector differs
    tests/vectors/make-vectors.py --podgate-player build/player/podgate-player
                                               # also re-record genuine-podgate.rec

signing-key.pem and other-signing-key.pem are keys for these vectors
only; they sign nothing else.
"""

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import msgpack
from cryptography.hazmat.primitives import serialization

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import recording as R  # noqa: E402  (the suite's reader: encodings of the spec)

SID = "0193d1a2-5c00-7000-8000-00000000a001"
START = 1764345600000000000
NAMES = ("sealed", "truncated", "not a recording", "unsigned", "wrong key", "modified")


def private_key(name):
    return serialization.load_pem_private_key((HERE / name).read_bytes(), password=None)


def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


class Writer:
    """A recording written the way docs/format.md says, with what was written kept."""

    def __init__(self, version=2, key="signing-key.pem", chain=True, edit_header=None, sid=SID):
        self.version, self.sid = version, sid
        self.key = private_key(key) if key else None
        h = {"format": "podgate-rec", "version": version, "session": sid, "start": START,
             "term": {"cols": 80, "rows": 24, "type": "xterm-256color"}, "pty": True,
             "who": {"user": "alice", "key_fp": "SHA256:2bmJ5ZYhB0kPqKu0ZJcnR3yC7yB6ZtY7S0vYfV1dQx4",
                     "client": "127.0.0.1:50122"},
             "where": {"kind": "local", "target": "local"}, "what": {"command": None}}
        if chain:
            h["chain"] = "sha256"
        if self.key:
            pub = raw_public(self.key)
            h["signer"] = {"alg": "ed25519", "key": pub, "key_fp": R.key_fingerprint(pub)}
        if edit_header:
            edit_header(h)
        self.buf = bytearray(packb(h))
        self.header_end = len(self.buf)
        self.t = self.events = self.seq = 0
        self.bytes = [0, 0, 0]
        self.exit = None
        self.marks = []    # {"code", "offset", "end", "time", "events"}
        self.spans = []    # (offset, end, code) of every event
        self.seal_at = None

    def ev(self, interval, code, payload, raw=None):
        off = len(self.buf)
        self.buf += raw if raw is not None else packb([interval, code, payload])
        self.t += interval
        self.events += 1
        if code in "oei" and isinstance(payload, bytes):
            self.bytes["oei".index(code)] += len(payload)
        if code == "x":
            self.exit = payload
        self.spans.append((off, len(self.buf), code))
        return off

    def mark(self, code, interval, edit=None):
        off = len(self.buf)
        self.t += interval
        m = {"seq": self.seq, "time": self.t, "offset": off, "events": self.events,
             "digest": hashlib.sha256(self.buf).digest(), "bytes": list(self.bytes),
             "duration": self.t, "exit": self.exit}
        if self.key:
            m["sig"] = self.key.sign(R.signed_message(self.version, code, self.sid, m))
        raw = R.pack_mark(self.version, code, interval, m)
        if edit:
            raw = edit(raw, m)
        self.buf += raw
        self.spans.append((off, len(self.buf), code))
        self.marks.append({"code": code, "offset": off, "end": len(self.buf), "time": self.t,
                           "events": self.events})
        self.events += 1
        self.seq += 1
        return off

    def checkpoint(self, interval=0, edit=None):
        return self.mark("c", interval, edit)

    def seal(self, trailer=True):
        self.seal_at = self.mark("s", 0)
        if self.version >= 2 and trailer:
            self.buf += R.trailer(self.seal_at)
        return self.seal_at

    def checkpoints(self):
        return [m for m in self.marks if m["code"] == "c"]

    def data(self):
        return bytes(self.buf)


def session(w, between=None):
    """A short interactive session: prompt, typing, a resize after a 5 s pause
    (an interval over 32 bits), a marker, a redaction, an unknown event,
    stderr, three checkpoints, exit 0. between(w, n) runs after checkpoint n."""
    w.ev(1_250_000, "o", b"$ ")
    w.ev(400_000_000, "i", b"cat app.env\r")
    w.ev(2_000_000, "o", b"cat app.env\r\n")
    w.checkpoint(1_000_000)
    if between:
        between(w, 0)
    w.ev(5_000_000_000, "r", [100, 30])
    w.ev(0, "m", "deploy")
    line = b"AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-key]\r\n"
    w.ev(3_000_000, "R", [{"at": 22, "len": 25, "kind": "aws-secret-key"}])
    w.ev(0, "o", line)
    w.checkpoint(500_000)
    if between:
        between(w, 1)
    w.ev(10_000_000, "z", {"a later version": ["may", "add", "codes"]})
    w.ev(1_000_000, "e", b"warning: deprecated\n")
    w.ev(700_000_000, "o", b"$ exit\r\n")
    w.checkpoint(1_000)
    if between:
        between(w, 2)
    w.ev(2_000_000, "x", {"status": 0})
    return w


class Vectors:
    def __init__(self):
        self.files = {}
        self.expected = {}

    def add(self, name, data, verdict, why, key="public.pem", version=2, offset=None, time_ns=None,
            checkpoints=None, bad_offset=None):
        assert name not in self.files
        self.files[name] = bytes(data)
        e = {"description": why, "verdict": verdict, "status": NAMES.index(verdict),
             "key": key}
        if verdict != "not a recording":
            e["version"] = version
        if verdict == "modified":
            e["bad_offset"] = bad_offset
        elif verdict != "not a recording":
            e.update(offset=offset, time_ns=time_ns, checkpoints=checkpoints)
        self.expected[name] = e

    def sealed(self, name, w, why, verdict="sealed", key="public.pem"):
        seal = w.marks[-1]
        self.add(name, w.data(), verdict, why, key, w.version, len(w.buf), seal["time"],
                 len(w.checkpoints()))

    def cut(self, name, w, at, why, verdict="truncated", key="public.pem"):
        """w's file cut to its first `at` bytes: verified up to the last mark that ends within."""
        data = w.data()[:at]
        if at < w.header_end:
            self.add(name, data, "not a recording", why, key)
            return
        done = [m for m in w.marks if m["end"] <= at]
        cps = len([m for m in done if m["code"] == "c"])
        if done:
            self.add(name, data, verdict, why, key, w.version, done[-1]["end"], done[-1]["time"], cps)
        else:
            self.add(name, data, verdict, why, key, w.version, w.header_end, 0, 0)

    def modified(self, name, data, bad_offset, why, version=2, key="public.pem"):
        self.add(name, data, "modified", why, key, version, bad_offset=bad_offset)


def next_mark(w, pos):
    """The offset of the first checkpoint or seal after byte pos."""
    return min(m["offset"] for m in w.marks if m["offset"] > pos)


def flip(data, at, mask=0x01):
    b = bytearray(data)
    b[at] ^= mask
    return bytes(b)


def make(podgate_player=None):
    v = Vectors()
    g = session(Writer())
    g.seal()
    data = g.data()
    cps = g.checkpoints()
    seal = g.marks[-1]
    v.sealed("genuine.rec", g, "a signed, sealed session (version 2): every figure signed")

    v1 = session(Writer(version=1))
    v1.seal()
    v.sealed("genuine-v1.rec", v1, "the same session in version 1 (no trailer, v1 signed messages)")

    # Cut at several points.
    v.cut("cut-in-header.rec", g, g.header_end - 5, "cut inside the header")
    v.cut("cut-after-header.rec", g, g.header_end, "cut right after the header: nothing verified")
    v.cut("cut-before-checkpoint-0.rec", g, cps[0]["offset"] - 3, "cut before the first checkpoint")
    v.cut("cut-in-checkpoint-0.rec", g, cps[0]["offset"] + 20, "cut inside the first checkpoint")
    v.cut("cut-after-checkpoint-0.rec", g, cps[0]["end"], "cut right after the first checkpoint")
    v.cut("cut-in-data.rec", g, cps[1]["offset"] - 10, "cut inside data after checkpoint 0")
    v.cut("cut-in-checkpoint-2.rec", g, cps[2]["end"] - 1, "cut one byte short of checkpoint 2")
    v.cut("cut-in-seal.rec", g, seal["offset"] + 40, "cut inside the seal")
    v.cut("cut-after-seal.rec", g, seal["end"], "cut after the seal: the trailer is missing")
    v.cut("cut-in-trailer.rec", g, seal["end"] + 7, "cut inside the trailer")
    v.cut("cut-v1.rec", v1, v1.checkpoints()[1]["end"] + 9, "a version 1 file cut after checkpoint 1")
    d1 = v1.data()
    v.modified("after-seal-incomplete-v1.rec", d1 + b"\x93\x00\xa1o", len(d1),
               "version 1: an incomplete object after the seal is data after the seal", version=1)
    o = d1.index(b"AWS_SECRET")
    v.modified("flip-data-v1.rec", flip(d1, o), next_mark(v1, o),
               "version 1: a byte of output changed", version=1)

    # A byte flipped in each part.
    user = data.index(b"alice")
    v.modified("flip-header.rec", flip(data, user, 0x20), cps[0]["offset"],
               "a byte of the header changed (user alice -> Alice): checkpoint 0 does not match")
    o = data.index(b"AWS_SECRET")
    v.modified("flip-data.rec", flip(data, o), next_mark(g, o),
               "a byte of output changed: the next checkpoint does not match")
    dg = cps[1]["offset"] + data[cps[1]["offset"]:].index(b"digest") + 8
    v.modified("flip-checkpoint-digest.rec", flip(data, dg), cps[1]["offset"],
               "a byte of checkpoint 1's digest changed")
    tm = cps[1]["offset"] + data[cps[1]["offset"]:].index(b"time") + 5
    v.modified("flip-checkpoint-time.rec", flip(data, tm), cps[1]["offset"],
               "a byte of checkpoint 1's signed time changed")
    sg = cps[2]["end"] - 10
    v.modified("flip-checkpoint-sig.rec", flip(data, sg), cps[2]["offset"],
               "a byte of checkpoint 2's signature changed")
    by = seal["offset"] + data[seal["offset"]:].index(b"bytes") + 6
    v.modified("flip-seal-total.rec", flip(data, by), seal["offset"],
               "a byte of the seal's output total changed")
    v.modified("flip-seal-map.rec", flip(data, seal["offset"] + 4, 0x07), seal["offset"],
               "the seal's map header changed so that it runs past the end of the file: "
               "the trailer still names the seal, so this is not a cut")
    v.modified("flip-trailer.rec", flip(data, len(data) - 1), seal["end"],
               "a byte of the trailer's offset changed")

    # Keys and signatures.
    other = session(Writer(key="other-signing-key.pem"))
    other.seal()
    v.sealed("wrong-key.rec", other, "signed by another key than public.pem", verdict="wrong key")
    v.sealed("other-key.rec", other, "the same file verified with the key that signed it",
             key="other-public.pem")
    uns = session(Writer(key=None))
    uns.seal()
    v.sealed("unsigned.rec", uns, "a hash chain but no signer", verdict="unsigned")
    v.sealed("unsigned-no-key.rec", uns, "unsigned, verified without --key", verdict="unsigned",
             key=None)
    v.cut("unsigned-cut.rec", uns, uns.checkpoints()[1]["end"] + 5,
          "unsigned and cut short: unsigned wins, the reason says where it was cut",
          verdict="unsigned")
    v.cut("wrong-key-cut.rec", other, other.checkpoints()[0]["end"] + 2,
          "wrong key and cut short: wrong key wins", verdict="wrong key")
    o = other.data().index(b"AWS_SECRET")
    v.modified("wrong-key-modified.rec", flip(other.data(), o), next_mark(other, o),
               "wrong key and tampered with: modified wins")
    nochain = session(Writer(key=None, chain=False))
    nochain.seal()
    v.sealed("no-chain-unsigned.rec", nochain, "neither chain nor signer", verdict="unsigned")
    v.modified("no-chain-signed.rec", session(Writer(edit_header=lambda h: h.pop("chain"))).data(),
               0, "a signer but no chain in the header")

    # The seal: data after it, a damaged or missing seal.
    v.modified("after-seal-incomplete.rec", data + b"\x93\x00\xa1o\xc4\x10partial", len(data),
               "one incomplete object appended to a sealed file")
    v.modified("after-seal-event.rec", data + packb([0, "o", b"injected"]), len(data),
               "a complete event appended after the trailer")
    v.modified("after-seal-no-trailer.rec", data[:seal["end"]] + packb([0, "o", b"injected"]),
               seal["end"], "an event instead of the trailer after the seal")
    v.modified("seal-removed.rec", data[:seal["offset"]] + data[seal["end"]:], seal["offset"],
               "the seal cut out, the trailer kept: the trailer names a seal that is not there")
    v.modified("trailer-twice.rec", data + R.trailer(seal["offset"]), len(data),
               "the trailer written twice")

    # The case: a cut file whose last checkpoint's time was rewritten.
    cutw = session(Writer())
    body = cutw.data()
    last = cutw.checkpoints()[-1]
    interval_at = last["offset"] + 1   # [interval, ...]: the interval follows the array byte
    hacked = body[:interval_at] + packb(3600 * 10**9) + body[interval_at + len(packb(1_000)):]
    hacked = hacked[:len(hacked) - 4]
    v.modified("checkpoint-time-rewritten.rec", hacked, last["offset"],
               "a cut file whose last checkpoint's interval was made an hour longer: "
               "its signed time no longer matches")

    def wide_seq(raw, m):
        # seq 1 as uint64 instead of a fixint: the same value, not the canonical bytes.
        i = raw.index(b"\xa3seq") + 4
        return raw[:i] + b"\xcf" + m["seq"].to_bytes(8, "big") + raw[i + 1:]
    nc = Writer()
    nc.ev(1_000, "o", b"x")
    nc.checkpoint(0)
    nc.ev(1_000, "o", b"y")
    nc.checkpoint(0, edit=wide_seq)
    nc.ev(1_000, "x", {"status": 0})
    nc.seal()
    v.modified("checkpoint-not-canonical.rec", nc.data(), nc.checkpoints()[1]["offset"],
               "checkpoint 1 signed, but its seq encoded as uint64: not the canonical bytes")

    # Header edges.
    def cols_str(h):
        h["term"]["cols"] = "80"
    w = session(Writer(edit_header=cols_str))
    w.seal()
    v.modified("header-type-signed.rec", w.data(), 0,
               "a signed header with term.cols a str: tampering, not 'not a recording'")
    w = session(Writer(key=None, edit_header=lambda h: h.update(pty=1)))
    w.seal()
    v.add("header-type-unsigned.rec", w.data(), "not a recording",
          "an unsigned header with pty an int", key=None)
    w = session(Writer(sid=SID[:-1]))
    w.seal()
    v.modified("sid-35-bytes.rec", w.data(), 0, "a signed header whose session id is 35 bytes")
    w = session(Writer(edit_header=lambda h: h.update(who={"user": "alice", "key_fp": None,
                                                           "client": None})))
    w.seal()
    v.sealed("who-nil.rec", w, "who.key_fp and who.client nil, as podgate-player rec writes them")
    w = session(Writer(version=3))
    w.seal()
    v.add("version-3.rec", w.data(), "not a recording", "a version this verifier does not know")
    w = session(Writer(version=0))
    w.seal()
    v.add("version-0.rec", w.data(), "not a recording", "version 0, which no version defines")

    # Event edges.
    w = Writer()
    w.ev(1_000, "o", b"x")
    bad = w.ev(1_000, "x", {"status": 0, "signal": "KILL"})
    w.checkpoint(0)
    w.seal()
    v.modified("exit-both.rec", w.data(), bad, "an exit map with both status and signal")
    w = Writer()
    w.ev(1_000, "o", b"x")
    bad = w.ev(1_000, "R", "[REDACTED:jwt]")
    w.ev(0, "o", b"[REDACTED:jwt]")
    w.checkpoint(0)
    w.seal()
    v.modified("redacted-str.rec", w.data(), bad, "an R event whose payload is a str")

    def limits(name, payload, ok, why):
        w = Writer()
        w.ev(1_000, "o", b"x")
        at = w.ev(1_000, "z", payload)
        w.ev(1_000, "x", {"status": 0})
        w.checkpoint(0)
        w.seal()
        if ok:
            v.sealed(name, w, why)
        else:
            v.modified(name, w.data(), at, why)
    # [interval, "z", [0, ...]]: 4 items and n elements.
    limits("unknown-items-max.rec", [0] * (R.MAX_ITEMS - 4), True,
           "an unknown event of exactly 65,536 items: skipped")
    limits("unknown-items-over.rec", [0] * (R.MAX_ITEMS - 3), False,
           "an unknown event of 65,537 items: over the limit")
    nest = 0
    for _ in range(R.MAX_DEPTH - 1):
        nest = [nest]
    limits("unknown-depth-max.rec", nest, True,
           "an unknown event nested 32 containers deep (its own array included): skipped")
    limits("unknown-depth-over.rec", [nest], False, "an unknown event nested 33 deep")
    limits("unknown-ext.rec", msgpack.ExtType(5, b"later"), True,
           "an unknown event whose payload is an ext type: skipped")

    w = Writer()
    w.ev(1_000, "o", b"x")
    w.ev(1_000, "z", None, raw=b"\x93\xcd\x03\xe8\xa1z\xd4\x80\x00")
    w.ev(1_000, "x", {"status": 0})
    w.checkpoint(0)
    w.seal()
    v.sealed("unknown-ext-negative.rec", w, "an unknown event whose payload is an ext of type -128: skipped")

    # Lengths over the limits are refused before the bytes arrive: corrupt, not a cut.
    for name, frame, why in (
            ("unknown-size-over.rec", b"\xc6" + (R.MAX_OBJECT + 1).to_bytes(4, "big"),
             "an unknown event whose bin declares 16 MiB + 4097 bytes (the file ends there)"),
            ("unknown-array-over.rec", b"\xdd" + (R.MAX_ITEMS + 1).to_bytes(4, "big"),
             "an unknown event whose array declares 65,537 elements (the file ends there)")):
        w = Writer()
        w.ev(1_000, "o", b"x")
        w.checkpoint(0)
        at = w.ev(1_000, "z", None, raw=b"\x93\xcd\x03\xe8\xa1z" + frame)
        v.modified(name, w.data(), at, why)
    w = Writer()
    w.ev(1_000, "o", b"x")
    w.checkpoint(0)
    w.ev(1_000, "o", None, raw=b"\x93\xcd\x03\xe8\xa1o\xc6" + (1 << 20).to_bytes(4, "big") + b"abc")
    v.cut("cut-in-large-payload.rec", w, len(w.buf),
          "a 1 MiB payload cut after 3 bytes: within the limits, so a cut")

    if podgate_player:
        v.files["genuine-podgate.rec"] = record_podgate(podgate_player)
    else:
        v.files["genuine-podgate.rec"] = (HERE / "genuine-podgate.rec").read_bytes()
    rec = v.files["genuine-podgate.rec"]
    v.expected["genuine-podgate.rec"] = podgate_expected(rec, "recorded by podgate-player rec")
    marks = podgate_marks(rec)
    cut_at = marks[1]["end"] + 3
    v.files["genuine-podgate-cut.rec"] = rec[:cut_at]
    v.expected["genuine-podgate-cut.rec"] = {
        "description": "the podgate recording cut after its second checkpoint",
        "verdict": "truncated", "status": 1, "key": "public.pem", "version": 2,
        "offset": marks[1]["end"], "time_ns": marks[1]["time"], "checkpoints": 2}
    return v


def podgate_marks(data):
    """Checkpoints and seal of a recording, from the parser (no verification)."""
    path = pathlib.Path(tempfile.mkstemp()[1])
    try:
        path.write_bytes(data)
        rec = R.Recording.load(path, allow_truncated=True)
    finally:
        path.unlink()
    return [{"code": e.code, "offset": e.offset, "end": e.offset + e.size, "time": e.time_ns}
            for e in rec.events if e.code in "cs"]


def podgate_expected(data, why):
    marks = podgate_marks(data)
    return {"description": why, "verdict": "sealed", "status": 0, "key": "public.pem",
            "version": 2, "offset": len(data), "time_ns": marks[-1]["time"],
            "checkpoints": len([m for m in marks if m["code"] == "c"])}


def record_podgate(player):
    """Record a short session with podgate-player rec and the vector key."""
    with tempfile.TemporaryDirectory() as d:
        key = pathlib.Path(d) / "key.pem"
        shutil.copy(HERE / "signing-key.pem", key)
        os.chmod(key, 0o600)
        out = pathlib.Path(d) / "out.rec"
        # Two waits on a fifo nobody writes would hang; output over time is enough.
        r = subprocess.run([player, "rec", "-q", "--key", str(key), "-o", str(out), "--", "sh", "-c",
                            "printf 'one\\n'; sleep 1.1; printf 'two\\n'; sleep 1.1; "
                            "printf 'three\\n'; exit 3"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=dict(os.environ, HOME=d))
        assert r.returncode == 3, r.stderr
        return out.read_bytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the files, write nothing")
    ap.add_argument("--podgate-player", help="re-record genuine-podgate.rec with this binary")
    a = ap.parse_args()
    v = make(a.podgate_player)
    expected = json.dumps(v.expected, indent=1, sort_keys=True) + "\n"
    if a.check:
        bad = [n for n, b in v.files.items()
               if not (HERE / n).exists() or (HERE / n).read_bytes() != b]
        if (HERE / "expected.json").read_text() != expected:
            bad.append("expected.json")
        for n in bad:
            print(f"differs: {n}")
        return 1 if bad else 0
    for old in HERE.glob("*.rec"):
        if old.name not in v.files:
            old.unlink()
    for n, b in v.files.items():
        (HERE / n).write_bytes(b)
    (HERE / "expected.json").write_text(expected)
    print(f"{len(v.files)} recordings")
    return 0


if __name__ == "__main__":
    sys.exit(main())

/*
 * librec: the podgate recording format, version 2 (docs/format.md); the
 * reader and the verifier also read version 1.
 *
 * A recording is a stream of msgpack objects: one header map, then events
 * [interval, code, payload]. This header is the whole public API of the
 * library: the writer appends events to a file descriptor through an
 * explicit buffer; the reader streams events from a file descriptor
 * without loading the whole file and reports each event's byte offset.
 *
 * Errors are negative errno values:
 *   -EINVAL   bad argument
 *   -EMSGSIZE payload larger than REC_MAX_PAYLOAD
 *   -ENOMEM   out of memory
 *   -EBADMSG  the file is not a recording, or an object in it is corrupt
 *   -EPROTO   an event is well-formed msgpack but not a valid event
 *   -ENODATA  (reader) the file ends inside an object: truncated
 *   other     the errno of a failed read(2) or write(2)
 * Out-parameters are cleared on entry.
 */
#ifndef PODGATE_REC_H
#define PODGATE_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define REC_FORMAT_NAME "podgate-rec"
#define REC_FORMAT_VERSION 2
/* The oldest version the reader and the verifier still accept. */
#define REC_FORMAT_VERSION_MIN 1

/* Length of a session id (UUID text form), as the format requires. */
#define REC_SID_LEN 36

/* Largest payload of one event; writers split or refuse above this. */
#define REC_MAX_PAYLOAD (16u * 1024 * 1024)

/* Event codes. Readers skip codes they do not know. */
enum rec_code {
	REC_OUTPUT = 'o',	/* bin: bytes the target wrote (PTY or stdout) */
	REC_STDERR = 'e',	/* bin: bytes the target wrote to stderr (no PTY) */
	REC_INPUT = 'i',	/* bin: bytes the client sent */
	REC_RESIZE = 'r',	/* [cols, rows] */
	REC_MARKER = 'm',	/* str: a label */
	REC_EXIT = 'x',		/* map: {"status": int} or {"signal": str} */
	REC_CHECKPOINT = 'c',	/* integrity: signed checkpoint */
	REC_SEAL = 's',		/* integrity: final signed seal */
	REC_REDACTED = 'R',	/* redacted spans of the next o, e or i event */
	REC_TRAILER = 't',	/* version 2: follows the seal, names its offset */
};

/* The trailer: a fixed-size event [0, "t", bin 8] holding the seal's offset. */
#define REC_TRAILER_LEN 14

/* A redacted span: the marker text at byte `at` of an event's payload. */
struct rec_span {
	uint64_t at, len;
	const char *kind;	/* "jwt", "private-key", ... */
};

/*
 * Header fields. Strings are NUL-terminated UTF-8; NULL means absent.
 * The writer copies what it needs; a header filled by the reader owns its
 * strings (heap copies) until rec_header_clear.
 */
struct rec_header {
	unsigned version;	/* reader: the format version read */
	const char *session_id;	/* UUIDv7 text form (36 bytes); the writer makes one if NULL */
	uint64_t start_ns;	/* UTC, nanoseconds since the epoch; 0: now */
	uint16_t cols, rows;	/* terminal size at start (0x0 when no PTY) */
	const char *term;		/* TERM */
	bool pty;		/* was a PTY allocated */
	/* who */
	const char *user;
	const char *key_fp;		/* SHA256:... fingerprint of the client key */
	const char *client;		/* client address, "ip:port" */
	/* where */
	const char *target_kind;	/* "local", "kubernetes", ... */
	const char *target;		/* the target as named by the user */
	/* what */
	const char *command;		/* the command line; NULL for an interactive shell */
	/*
	 * Extra "key": "value" strings for the where/who/what maps, as
	 * NULL-terminated arrays of pairs {k0, v0, k1, v1, ..., NULL}.
	 * Later versions add fields here without changing the format version.
	 */
	const char *const *who_extra;
	const char *const *where_extra;
	const char *const *what_extra;
};

/* Free the strings of a header filled by the reader and zero it. */
void rec_header_clear(struct rec_header *h);

/* Make a UUIDv7 (time-ordered) in text form; buf must hold 37 bytes. */
int rec_uuid7(char buf[37]);

/*
 * Mask typed input the terminal does not echo (a password prompt), as the
 * format requires: one '*' per character, CR and LF kept. out holds at
 * least len bytes (it may be in); returns the masked length.
 */
size_t rec_input_mask(const void *in, size_t len, uint8_t *out);

/* Current UTC time in nanoseconds; current monotonic time in nanoseconds. */
uint64_t rec_now_utc_ns(void);
uint64_t rec_now_mono_ns(void);

/* One event. */
struct rec_event {
	char code;		/* enum rec_code, or an unknown code */
	uint64_t interval_ns;	/* since the previous event (or the start) */
	uint64_t time_ns;	/* reader: since the start (sum of intervals) */
	uint64_t offset;	/* reader: byte offset of the event's first byte */
	uint64_t size;		/* reader: encoded size in bytes */
	const uint8_t *data;	/* o e i: bytes; m: label; reader: valid until next call */
	size_t len;
	uint16_t cols, rows;	/* r */
	int exit_status;	/* x: status, or -1 */
	char exit_signal[32];	/* x: signal name without "SIG" ("KILL"), or "" */
};

/* ---- Signing keys (Ed25519) ---- */

struct rec_key;

/* "SHA256:" + 43 base64 characters + NUL fits. */
#define REC_KEY_FP_LEN 64

/*
 * Load a PEM key. With private true the file must hold a private key and
 * must not be readable by group or others (-EPERM); with private false a
 * public key (or a private key, whose public half is used). Returns
 * -EKEYREJECTED for a file that is not an Ed25519 key.
 */
int rec_key_load(const char *path, bool private, struct rec_key **out);

/* Generate a key and store it at path (mode 0600, parents 0700; -EEXIST if present). */
int rec_key_generate(const char *path, struct rec_key **out);

/* rec_key_load(path, true), generating the key first when path does not exist. */
int rec_key_load_or_generate(const char *path, struct rec_key **out);

/* "SHA256:..." of the raw public key, as OpenSSH prints fingerprints. */
const char *rec_key_fingerprint(const struct rec_key *k);

/* Write the public key as PEM (what `verify --key` reads). */
int rec_key_write_public(const struct rec_key *k, FILE *out);

/* Free a key; the private material is wiped. */
void rec_key_free(struct rec_key *k);

/* ---- Writer ---- */

struct rec_writer;

struct rec_writer_opts {
	/*
	 * Merge an o, e or i event into the previous event of the same code
	 * when it follows it within this many nanoseconds (0: never). The
	 * merged event keeps the first one's time; bytes are kept exactly.
	 */
	uint64_t coalesce_ns;
	/* Bytes buffered before a write(2); 0 means 64 KiB. */
	size_t buffer_size;
	/* Monotonic time the recording starts at (0: now). */
	uint64_t start_mono_ns;
	/*
	 * Integrity: checkpoints are written once checkpoint_ns (0: 1 s) or
	 * checkpoint_bytes (0: 1 MiB) have passed since the previous one and
	 * at least one event was appended meanwhile; each is signed with
	 * sign_key when set (borrowed: it must outlive the writer). A seal
	 * is written by rec_writer_close.
	 */
	const struct rec_key *sign_key;
	uint64_t checkpoint_ns;
	uint64_t checkpoint_bytes;
};

/*
 * Start a recording on fd (not taken over: the caller closes it after
 * rec_writer_close). Writes the header into the buffer; a session id
 * given in h must be REC_SID_LEN bytes (-EINVAL otherwise). The monotonic
 * clock starts at opts->start_mono_ns, or now: the first event's
 * interval counts from there.
 * On success *out is a new writer.
 */
int rec_writer_open(struct rec_writer **out, int fd, const struct rec_header *h,
    const struct rec_writer_opts *opts);

/* Session id of the recording (valid while the writer lives). */
const char *rec_writer_session_id(const struct rec_writer *w);

/*
 * Append one event stamped with the monotonic time mono_ns (0: now);
 * times earlier than the previous event's are taken as equal to it.
 * For o/e/i/m data/len are the payload; r uses cols/rows, x uses
 * exit_status/exit_signal. Writes to fd only when the buffer is full.
 */
int rec_writer_append(struct rec_writer *w, uint64_t mono_ns, const struct rec_event *ev);

/*
 * Append an o, e or i event whose payload holds redaction markers: an R
 * event listing the spans (sorted, inside the payload), then the event
 * itself at the same time. With nspans 0 this is rec_writer_append.
 */
int rec_writer_append_spans(struct rec_writer *w, uint64_t mono_ns, const struct rec_event *ev,
    const struct rec_span *spans, size_t nspans);

/* Convenience wrappers around rec_writer_append with mono_ns = now. */
int rec_writer_data(struct rec_writer *w, char code, const void *data, size_t len);
int rec_writer_resize(struct rec_writer *w, uint16_t cols, uint16_t rows);
int rec_writer_exit(struct rec_writer *w, int status, const char *signal_name);
int rec_writer_marker(struct rec_writer *w, const char *label);

/* Write everything buffered (including a pending merged event) to fd. */
int rec_writer_flush(struct rec_writer *w);

/*
 * Called periodically (e.g. every 100-250 ms) with the monotonic time
 * (0: now): writes a checkpoint when one is due and flushes. Returns 1
 * when a checkpoint was written (the caller may then fdatasync the fd,
 * off its event loop), 0 when none was due, or a negative error.
 */
int rec_writer_tick(struct rec_writer *w, uint64_t mono_ns);

/* Number of checkpoints written so far. */
uint64_t rec_writer_checkpoints(const struct rec_writer *w);

/*
 * True when nothing is buffered and no event came since the last
 * checkpoint: no tick is needed until the next append.
 */
bool rec_writer_quiet(const struct rec_writer *w);

/* Bytes written to fd so far, and bytes buffered but not yet written. */
uint64_t rec_writer_written(const struct rec_writer *w);
size_t rec_writer_pending(const struct rec_writer *w);

/*
 * Write the seal (totals and a signature over the final digest) and the
 * trailer that names the seal's offset, flush and free. Returns the first
 * error of the recording; the writer is freed anyway.
 */
int rec_writer_close(struct rec_writer *w);

/*
 * Whether a writer in another process still holds the recording open on
 * fd (a writer locks its file from rec_writer_open to its seal, and the
 * kernel lets go when the writer dies): an unsealed recording that is
 * being written is "open", not cut short by a crash.
 */
bool rec_being_written(int fd);

/* Free the writer without sealing (what a crash leaves; for tests). */
void rec_writer_abandon(struct rec_writer *w);

/* ---- Reader ---- */

struct rec_reader;

/*
 * Start reading fd (not taken over) at its current position, which must
 * be the start of a recording. Reads and parses the header into *h
 * (which the caller frees with rec_header_clear).
 * Returns -EBADMSG if the file is not a podgate recording, -ENODATA if
 * it ends inside the header, -EPROTONOSUPPORT for a newer version.
 */
int rec_reader_open(struct rec_reader **out, int fd, struct rec_header *h);

/*
 * Continue reading fd in the middle of a recording: offset must be the
 * offset of an event as a reader reported it (rec_event.offset), and
 * time_ns the time of the event before it (0 for the first event). The
 * reader seeks fd there and reads on as if every earlier object had been
 * read: offsets and times continue. No header is read, so
 * rec_reader_header_raw() gives NULL and rec_reader_header_json() fails.
 */
int rec_reader_open_at(struct rec_reader **out, int fd, uint64_t offset, uint64_t time_ns);

/*
 * Read the next event into *ev. Returns 1 when an event was read, 0 at a
 * clean end of file, or a negative error. On -ENODATA the file ends
 * inside an event: rec_reader_offset() is the end of the last complete
 * event ("truncated at byte N"). On -EBADMSG / -EPROTO,
 * rec_reader_error_offset() is the offset of the bad object and
 * rec_reader_error() describes it. Unknown codes are returned as events
 * with code set and no decoded payload; callers skip them.
 */
int rec_reader_next(struct rec_reader *r, struct rec_event *ev);

/* Byte offset just past the last complete object read. */
uint64_t rec_reader_offset(const struct rec_reader *r);
uint64_t rec_reader_error_offset(const struct rec_reader *r);
const char *rec_reader_error(const struct rec_reader *r);

/*
 * The raw msgpack bytes of the header and of the last event read (valid
 * until the next call), for integrity checks and re-encoding.
 */
const uint8_t *rec_reader_header_raw(const struct rec_reader *r, size_t *len);
const uint8_t *rec_reader_event_raw(const struct rec_reader *r, size_t *len);

/*
 * Write the header as one line of JSON to a stdio stream (any msgpack map
 * is rendered, so fields added later appear too).
 */
int rec_reader_header_json(const struct rec_reader *r, FILE *out);

void rec_reader_free(struct rec_reader *r);

/* ---- Verification ---- */

/*
 * The outcome of verifying one recording, worst last. Within one file the
 * verdict is the worst that applies too: a recording both unsigned and cut
 * short is REC_UNSIGNED (its reason says where it was cut).
 */
enum rec_verdict {
	REC_SEALED = 0,		/* sealed, every checkpoint, the seal and the trailer intact and signed */
	REC_TRUNCATED,		/* no seal, or cut after it: intact up to the last good checkpoint */
	REC_NOT_RECORDING,	/* not a podgate recording */
	REC_UNSIGNED,		/* intact but not signed */
	REC_WRONG_KEY,		/* signed by a key other than the one given */
	REC_MODIFIED,		/* a digest, signature or figure does not match, data after the seal, ... */
};

/*
 * Every figure but file_size and events comes from data covered by a
 * signature (version 2; in version 1 a checkpoint's time is not signed).
 */
struct rec_verify {
	enum rec_verdict verdict;
	char reason[320];		/* one line */
	unsigned version;		/* format version read (0: not a recording) */
	char key_fp[REC_KEY_FP_LEN];	/* signer named in the header, or "" */
	uint64_t checkpoints;		/* good checkpoints (the seal not counted) */
	uint64_t verified_bytes;	/* end of the last good checkpoint (or the seal, or the header) */
	uint64_t verified_time_ns;	/* its time since the start */
	uint64_t verified_events;	/* events before it */
	uint64_t bad_offset;		/* MODIFIED: offset of the failing event */
	uint64_t file_size;		/* bytes read */
	uint64_t events;		/* events read */
};

/*
 * Verify the recording on fd from its current position (a seekable fd is
 * also read at its end, for a trailer naming a seal). With pinned set,
 * the header's signer must be that key (else REC_WRONG_KEY); without it,
 * signatures are checked against the key named in the header. Returns 0
 * with *out filled, or a negative errno for an I/O error.
 */
int rec_verify_fd(int fd, const struct rec_key *pinned, struct rec_verify *out);

/* The verdict's name: "sealed", "truncated", ... */
const char *rec_verdict_name(enum rec_verdict v);

/* A one-line description of an error returned by this library. */
const char *rec_strerror(int err);

/*
 * Write bytes as a JSON string literal (with the quotes): control
 * characters escaped, invalid UTF-8 replaced by U+FFFD.
 */
void rec_json_string(FILE *out, const void *s, size_t len);

#endif

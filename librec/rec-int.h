/* librec internals shared between the writer, the reader and JSON output. */
#ifndef PODGATE_REC_INT_H
#define PODGATE_REC_INT_H

#include <msgpack.h>

#include "rec.h"

/* Largest object a reader accepts: a full payload plus framing. */
#define REC_MAX_OBJECT (REC_MAX_PAYLOAD + 4096u)
/* Most msgpack items (containers and scalars) in one object. */
#define REC_MAX_ITEMS 65536u

void rec_header_pack(msgpack_packer *pk, const struct rec_header *h, const char *sid,
    uint64_t start_ns);
int rec_header_decode(const msgpack_object *m, struct rec_header *h, const char **what);
bool rec_obj_is(const msgpack_object *o, const char *s);
const msgpack_object *rec_map_get(const msgpack_object *m, const char *key);

/*
 * Measure the msgpack object at p[0..n): its total size when complete,
 * 0 when more bytes are needed, -EBADMSG when malformed or over the limits.
 */
ssize_t rec_object_size(const uint8_t *p, size_t n);

/* Write a msgpack object as JSON (bin as a string of its bytes). */
void rec_json_object(FILE *out, const msgpack_object *o);

#endif

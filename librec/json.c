/*
 * JSON output for recordings: string literals from arbitrary bytes and
 * msgpack objects rendered as JSON (for `info --json` and exports), built
 * with jansson through libbase. Control characters keep the spelling
 * they always had here: \b \f \n \r \t by name, others and DEL as
 * \u00xx.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "base.h"
#include "rec.h"
#include "rec-int.h"

#define REC_JSON_ESC	(JSONOUT_SHORT | JSONOUT_DEL)

/* Write bytes as a JSON string literal. */
void
rec_json_string(FILE *out, const void *s, size_t len)
{
	jsonout_print_string(out, s, len, REC_JSON_ESC);
}

/* A msgpack object as a new jansson value; NULL when out of memory. */
static json_t *
rec_json_value(const msgpack_object *o)
{
	const msgpack_object_kv *kv;
	json_t *v, *item, *key;
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		/* Past jansson's integers (int64) only a real can hold the value, roughly. */
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* JSON has no NaN or infinity. */
		return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
	case MSGPACK_OBJECT_STR:
		return jsonout_string(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return jsonout_string(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		if ((v = json_array()) == NULL)
			return NULL;
		for (i = 0; i < o->via.array.size; i++) {
			if (json_array_append_new(v, rec_json_value(&o->via.array.ptr[i])) != 0) {
				json_decref(v);
				return NULL;
			}
		}
		return v;
	case MSGPACK_OBJECT_MAP:
		if ((v = json_object()) == NULL)
			return NULL;
		for (i = 0; i < o->via.map.size; i++) {
			kv = &o->via.map.ptr[i];
			key = kv->key.type == MSGPACK_OBJECT_STR ?
			    jsonout_string(kv->key.via.str.ptr, kv->key.via.str.size) :
			    json_string("?");
			item = rec_json_value(&kv->val);
			if (key == NULL || item == NULL || json_object_setn_new_nocheck(v,
			    json_string_value(key), json_string_length(key), item) != 0) {
				if (key == NULL)
					json_decref(item);
				json_decref(key);
				json_decref(v);
				return NULL;
			}
			json_decref(key);
		}
		return v;
	default:
		return json_null();
	}
}

/* Write a msgpack object as JSON. */
void
rec_json_object(FILE *out, const msgpack_object *o)
{
	json_t *v = rec_json_value(o);

	if (v == NULL) {
		fputs("null", out);
		return;
	}
	jsonout_print(out, v, JSON_COMPACT | JSON_ENCODE_ANY, REC_JSON_ESC);
	json_decref(v);
}

/* A one-line description of an error returned by librec. */
const char *
rec_strerror(int err)
{
	switch (err) {
	case -EBADMSG:
		return "not a podgate recording, or corrupt";
	case -ENODATA:
		return "truncated";
	case -EPROTONOSUPPORT:
		return "recording format version not supported";
	case -EPROTO:
		return "malformed recording";
	case -EMSGSIZE:
		return "payload too large";
	default:
		return strerror(-err);
	}
}

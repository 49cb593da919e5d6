/*
 * Internals shared by object.c, transform.c and store.c: a strict JSON
 * scanner that walks raw bytes without building a tree, and the precomputed
 * identity hash of an object.
 *
 * The scanner follows RFC 8259 (no comments, no trailing commas, no
 * single quotes, no bare control characters in strings, numbers in the
 * JSON grammar, nesting up to KFI_JSON_MAX_DEPTH). It does not check that
 * string bytes are valid UTF-8. Each call takes a cursor and returns the
 * position just after what it consumed, or NULL when the bytes are not
 * valid JSON there; js->errp and js->why then tell where and why.
 */
#ifndef KF_BROKER_OBJECT_INT_H
#define KF_BROKER_OBJECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/object.h"

#define KFI_JSON_MAX_DEPTH 512

struct kfi_json {
	const char *start; /* first byte of the document, for offsets */
	const char *end;   /* one past the last byte */
	const char *errp;  /* where scanning failed */
	const char *why;   /* static text saying why */
};

/* A string token: the bytes between the quotes, still escaped when esc. */
struct kfi_jstr {
	const char *p;
	size_t len;
	bool esc;
};

const char *kfi_json_ws(const struct kfi_json *js, const char *p);
/* p must point at '"'. */
const char *kfi_json_string(struct kfi_json *js, const char *p,
			    struct kfi_jstr *out);
/* Skips one value of any type, starting at its first byte. */
const char *kfi_json_value(struct kfi_json *js, const char *p);
/* At '{' or '[' (open): *more tells whether a member or element follows;
 * returns the position of the first one, or just after the close. */
const char *kfi_json_open(struct kfi_json *js, const char *p, char open,
			  bool *more);
/* At a member name: reads it and returns the start of its value. */
const char *kfi_json_key(struct kfi_json *js, const char *p,
			 struct kfi_jstr *key);
/* After a value in a container: past a comma (*more) or past the close. */
const char *kfi_json_next(struct kfi_json *js, const char *p, char close,
			  bool *more);
/* True when the (raw) string token equals the NUL-terminated lit. */
bool kfi_jstr_is(const struct kfi_jstr *s, const char *lit);
/* Writes the unescaped bytes of s to dst (room for s->len bytes is always
 * enough) and returns how many were written. */
size_t kfi_jstr_unescape(const struct kfi_jstr *s, char *dst);

/* A store's entry for an object: {object, seq}, plus two fields only the
 * store's writer uses. Each object carries one, so the first store that
 * holds the object needs no separate allocation and a look-up touches one
 * block less; see store.c. */
struct kfi_store_entry {
	_Atomic(kf_object *) obj;
	union {
		uint64_t seq;
		const struct kfi_ident *id; /* in a look-up probe (obj NULL) */
	} u;
	uint16_t cls;
	uint32_t pend;
};

/* The object's own entry, if nobody claimed it yet (then it is claimed
 * for good); NULL otherwise. Any thread. */
struct kfi_store_entry *kfi_object_entry_claim(kf_object *obj);
/* True when e is obj's own entry (freed with the object). */
bool kfi_object_entry_is_own(const kf_object *obj,
			     const struct kfi_store_entry *e);

/* An identity ready for look-ups: the strings (never NULL; a NULL field
 * reads as ""), their lengths and the identity hash, computed once. */
struct kfi_ident {
	const char *kind, *ns, *name;
	uint32_t kind_len, ns_len, name_len;
	uint64_t hash;
};

/* Fill id from the three strings (borrowed); one pass over each. */
void kfi_ident_init(struct kfi_ident *id, const char *kind, const char *ns,
		    const char *name);
/* True when obj has identity id: hash, lengths, then bytes. */
bool kfi_object_ident_eq(const kf_object *obj, const struct kfi_ident *id);

/* The identity hash of (kind, namespace, name); kf_objref_hash() and the
 * hash kept in each object agree. */
uint64_t kfi_identity_hash(const char *kind, const char *ns, const char *name);
/* The hash computed once at parse time. */
uint64_t kfi_object_hash(const kf_object *obj);
/* Identity equality of two objects (kind, namespace, name). */
bool kfi_object_same_identity(const kf_object *a, const kf_object *b);
/* Byte size of the object's single allocation (for the benchmarks). */
size_t kfi_object_footprint(const kf_object *obj);

#endif

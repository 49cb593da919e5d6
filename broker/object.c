/*
 * kf_object: the server's JSON bytes plus the metadata parsed out of them.
 *
 * Theory. Parsing is the reflector's bottleneck and a json-c tree costs
 * about twenty times the JSON's size, so ingest never builds a tree. A
 * strict scanner (below) walks the raw bytes once: it validates the whole
 * document and remembers, as spans into the input, only the fields a
 * controller reaches for (apiVersion, kind, metadata.{namespace, name, uid,
 * resourceVersion, generation, deletionTimestamp, labels, annotations,
 * ownerReferences}). Then one malloc holds the header, the pointer arrays
 * for labels, annotations and owners, every metadata string (unescaped and
 * NUL-terminated, identity strings first) and, last, the JSON bytes
 * (NUL-terminated for convenience).
 *
 * An object never changes after kf_object_parse() returns, so any thread
 * may read it without synchronisation; only the reference count is
 * atomic. kf_object_field() walks the bytes again with the same scanner and
 * returns the exact JSON text of the value it finds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/object.h"
#include "object_int.h"

struct kfo_owner {
	const char *kind;
	const char *name;
	const char *uid;
	bool controller;
};

/* Identity lengths are kept in 16 bits; a longer string (not a valid
 * Kubernetes name, but accepted) stores this and is measured again. */
#define KFO_LEN_BIG 0xffffu

struct kf_object {
	/* The first cache line (objects are 64-byte aligned) holds all that
	 * a store look-up reads; reference counts live in the next line, so
	 * two cores looking up the same hot objects do not make each other
	 * miss on it. */
	struct kfi_store_entry entry;
	uint64_t hash;
	uint16_t kind_len, ns_len, name_len; /* or KFO_LEN_BIG */
	const char *kind;
	const char *ns;
	const char *name;

	_Alignas(64) atomic_uint refs;
	atomic_bool entry_claimed;
	void *base; /* what malloc() gave: the object is aligned inside it */
	uint32_t nlabels;
	uint32_t nannots;
	uint32_t nowners;
	size_t len;
	size_t footprint;
	int64_t generation;
	const char *api_version;
	const char *uid;
	const char *rv;
	const char *deleted;
	const char **labels; /* key, value, key, value, ... */
	const char **annots;
	struct kfo_owner *owners;
	char *json;
};

_Static_assert(offsetof(struct kf_object, refs) == 64,
	       "a look-up reads the first cache line only");

/* ---- the scanner ---- */

static const char *
js_fail(struct kfi_json *js, const char *p, const char *why)
{
	js->errp = p;
	js->why = why;
	return NULL;
}

const char *
kfi_json_ws(const struct kfi_json *js, const char *p)
{
	while (p < js->end &&
	       (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

static int
js_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
js_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		int d = js_hex(p[i]);

		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return true;
}

const char *
kfi_json_string(struct kfi_json *js, const char *p, struct kfi_jstr *out)
{
	const char *end = js->end;
	const char *s = ++p;
	bool esc = false;
	unsigned cp;

	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			out->p = s;
			out->len = (size_t)(p - s);
			out->esc = esc;
			return p + 1;
		}
		if (c < 0x20)
			return js_fail(js, p, "control character in a string");
		if (c != '\\') {
			p++;
			continue;
		}
		esc = true;
		if (end - p < 2)
			break;
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			break;
		case 'u':
			if (end - p < 6 || !js_hex4(p + 2, &cp))
				return js_fail(js, p, "bad \\u escape");
			p += 6;
			break;
		default:
			return js_fail(js, p, "bad escape in a string");
		}
	}
	return js_fail(js, p, "unterminated string");
}

static bool
js_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static const char *
js_number(struct kfi_json *js, const char *p)
{
	const char *end = js->end;

	if (p < end && *p == '-')
		p++;
	if (!js_digit(p, end))
		return js_fail(js, p, "bad number");
	if (*p == '0')
		p++;
	else
		while (js_digit(p, end))
			p++;
	if (p < end && *p == '.') {
		p++;
		if (!js_digit(p, end))
			return js_fail(js, p, "bad number fraction");
		while (js_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!js_digit(p, end))
			return js_fail(js, p, "bad number exponent");
		while (js_digit(p, end))
			p++;
	}
	return p;
}

static const char *
js_literal(struct kfi_json *js, const char *p, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(js->end - p) < n || memcmp(p, lit, n) != 0)
		return js_fail(js, p, "unexpected character");
	return p + n;
}

/* One scalar, or the opening of a container (pushed on stack). */
static const char *
js_token(struct kfi_json *js, const char *p, char *stack, int *depth)
{
	struct kfi_jstr s;

	if (p >= js->end)
		return js_fail(js, p, "unexpected end of input");
	switch (*p) {
	case '{':
	case '[':
		if (*depth == KFI_JSON_MAX_DEPTH)
			return js_fail(js, p, "nested too deeply");
		stack[(*depth)++] = *p;
		return p + 1;
	case '"':
		return kfi_json_string(js, p, &s);
	case 't':
		return js_literal(js, p, "true");
	case 'f':
		return js_literal(js, p, "false");
	case 'n':
		return js_literal(js, p, "null");
	default:
		if (*p == '-' || (*p >= '0' && *p <= '9'))
			return js_number(js, p);
		return js_fail(js, p, "unexpected character");
	}
}

const char *
kfi_json_value(struct kfi_json *js, const char *p)
{
	char stack[KFI_JSON_MAX_DEPTH];
	int depth = 0;
	struct kfi_jstr key;
	bool fresh; /* a container was just opened */

	/* Bound: every turn consumes at least one byte of input. */
	p = kfi_json_ws(js, p);
	p = js_token(js, p, stack, &depth);
	fresh = depth > 0;
	while (p != NULL && depth > 0) {
		char open = stack[depth - 1];
		char close = open == '{' ? '}' : ']';
		int before;

		p = kfi_json_ws(js, p);
		if (p >= js->end)
			return js_fail(js, p, "unexpected end of input");
		if (*p == close) {
			depth--;
			p++;
			fresh = false;
			continue;
		}
		if (!fresh) {
			if (*p != ',')
				return js_fail(js, p,
					       "expected ',' or a close");
			p = kfi_json_ws(js, p + 1);
		}
		if (open == '{') {
			if (p >= js->end || *p != '"')
				return js_fail(js, p, "expected a member name");
			p = kfi_json_string(js, p, &key);
			if (p == NULL)
				return NULL;
			p = kfi_json_ws(js, p);
			if (p >= js->end || *p != ':')
				return js_fail(js, p, "expected ':'");
			p = kfi_json_ws(js, p + 1);
		}
		before = depth;
		p = js_token(js, p, stack, &depth);
		fresh = depth > before;
	}
	return p;
}

bool
kfi_jstr_is(const struct kfi_jstr *s, const char *lit)
{
	size_t n = strlen(lit);

	return !s->esc && s->len == n && memcmp(s->p, lit, n) == 0;
}

static size_t
js_utf8(unsigned cp, char *dst)
{
	if (cp < 0x80) {
		dst[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		dst[0] = (char)(0xc0 | cp >> 6);
		dst[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		dst[0] = (char)(0xe0 | cp >> 12);
		dst[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		dst[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	dst[0] = (char)(0xf0 | cp >> 18);
	dst[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	dst[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	dst[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t
kfi_jstr_unescape(const struct kfi_jstr *s, char *dst)
{
	const char *p = s->p, *end = s->p + s->len;
	char *d = dst;
	unsigned cp = 0, lo = 0;

	if (!s->esc) {
		memcpy(dst, s->p, s->len);
		return s->len;
	}
	/* The scanner validated every escape, so no bound check fails. */
	while (p < end) {
		if (*p != '\\') {
			*d++ = *p++;
			continue;
		}
		switch (p[1]) {
		case 'b':
			*d++ = '\b';
			break;
		case 'f':
			*d++ = '\f';
			break;
		case 'n':
			*d++ = '\n';
			break;
		case 'r':
			*d++ = '\r';
			break;
		case 't':
			*d++ = '\t';
			break;
		case 'u':
			js_hex4(p + 2, &cp);
			p += 6;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 &&
			    p[0] == '\\' && p[1] == 'u' &&
			    js_hex4(p + 2, &lo) && lo >= 0xdc00 &&
			    lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd; /* a lone surrogate */
			}
			d += js_utf8(cp, d);
			continue;
		default: /* '"', '\\', '/' */
			*d++ = p[1];
			break;
		}
		p += 2;
	}
	return (size_t)(d - dst);
}

/* ---- walking objects and arrays member by member ---- */

/* At '{' or '[': *more tells whether a member or element follows. */
const char *
kfi_json_open(struct kfi_json *js, const char *p, char open, bool *more)
{
	char close = open == '{' ? '}' : ']';

	if (p >= js->end || *p != open)
		return js_fail(js, p, "expected an object or array");
	p = kfi_json_ws(js, p + 1);
	if (p < js->end && *p == close) {
		*more = false;
		return p + 1;
	}
	*more = true;
	return p;
}

/* At a member name: reads it and returns the start of its value. */
const char *
kfi_json_key(struct kfi_json *js, const char *p, struct kfi_jstr *key)
{
	if (p >= js->end || *p != '"')
		return js_fail(js, p, "expected a member name");
	p = kfi_json_string(js, p, key);
	if (p == NULL)
		return NULL;
	p = kfi_json_ws(js, p);
	if (p >= js->end || *p != ':')
		return js_fail(js, p, "expected ':'");
	return kfi_json_ws(js, p + 1);
}

/* After a value inside a container: a comma, or the close. */
const char *
kfi_json_next(struct kfi_json *js, const char *p, char close, bool *more)
{
	p = kfi_json_ws(js, p);
	if (p < js->end && *p == ',') {
		*more = true;
		return kfi_json_ws(js, p + 1);
	}
	if (p < js->end && *p == close) {
		*more = false;
		return p + 1;
	}
	return js_fail(js, p, "expected ',' or a close");
}

/* ---- metadata extraction ---- */

struct kfo_pairspan {
	struct kfi_jstr k, v;
};

struct kfo_ownspan {
	struct kfi_jstr kind, name, uid;
	bool controller;
};

/* A growable array with room for a few items on the stack. */
struct kfo_vec {
	void *items;
	size_t n, cap, size;
	bool heap;
};

static void *
kfo_vec_push(struct kfo_vec *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap * 2;
		void *items = malloc(cap * v->size);

		if (items == NULL)
			return NULL;
		memcpy(items, v->items, v->n * v->size);
		if (v->heap)
			free(v->items);
		v->items = items;
		v->cap = cap;
		v->heap = true;
	}
	return (char *)v->items + v->size * v->n++;
}

static void
kfo_vec_fini(struct kfo_vec *v)
{
	if (v->heap)
		free(v->items);
}

struct kfo_meta {
	struct kfi_jstr api_version, kind, ns, name, uid, rv, deleted;
	const char *gen_p;
	size_t gen_len;
	struct kfo_vec labels, annots, owners;
	bool nomem;
};

/* A string value; null and other types leave *dst absent. */
static const char *
kfo_string_or_skip(struct kfi_json *js, const char *p, struct kfi_jstr *dst)
{
	if (p < js->end && *p == '"')
		return kfi_json_string(js, p, dst);
	dst->p = NULL;
	return kfi_json_value(js, p);
}

static const char *
kfo_pairs(struct kfi_json *js, const char *p, struct kfo_meta *m,
	  struct kfo_vec *v)
{
	struct kfo_pairspan *pair;
	struct kfi_jstr key, val;
	bool more;

	if (p < js->end && *p != '{')
		return kfi_json_value(js, p); /* null or junk: not a map */
	p = kfi_json_open(js, p, '{', &more);
	while (p != NULL && more) {
		p = kfi_json_key(js, p, &key);
		if (p == NULL)
			return NULL;
		p = kfo_string_or_skip(js, p, &val);
		if (p == NULL)
			return NULL;
		if (val.p != NULL) {
			pair = kfo_vec_push(v);
			if (pair == NULL) {
				m->nomem = true;
				return NULL;
			}
			pair->k = key;
			pair->v = val;
		}
		p = kfi_json_next(js, p, '}', &more);
	}
	return p;
}

static const char *
kfo_owner(struct kfi_json *js, const char *p, struct kfo_ownspan *o)
{
	struct kfi_jstr key;
	bool more;

	memset(o, 0, sizeof(*o));
	if (p < js->end && *p != '{')
		return kfi_json_value(js, p);
	p = kfi_json_open(js, p, '{', &more);
	while (p != NULL && more) {
		p = kfi_json_key(js, p, &key);
		if (p == NULL)
			return NULL;
		if (kfi_jstr_is(&key, "kind"))
			p = kfo_string_or_skip(js, p, &o->kind);
		else if (kfi_jstr_is(&key, "name"))
			p = kfo_string_or_skip(js, p, &o->name);
		else if (kfi_jstr_is(&key, "uid"))
			p = kfo_string_or_skip(js, p, &o->uid);
		else if (kfi_jstr_is(&key, "controller")) {
			const char *v = p;

			p = kfi_json_value(js, p);
			o->controller = p != NULL && p - v == 4 &&
					memcmp(v, "true", 4) == 0;
		} else
			p = kfi_json_value(js, p);
		if (p == NULL)
			return NULL;
		p = kfi_json_next(js, p, '}', &more);
	}
	return p;
}

static const char *
kfo_owners(struct kfi_json *js, const char *p, struct kfo_meta *m)
{
	struct kfo_ownspan *o;
	bool more;

	if (p < js->end && *p != '[')
		return kfi_json_value(js, p);
	p = kfi_json_open(js, p, '[', &more);
	while (p != NULL && more) {
		o = kfo_vec_push(&m->owners);
		if (o == NULL) {
			m->nomem = true;
			return NULL;
		}
		p = kfo_owner(js, p, o);
		if (p == NULL)
			return NULL;
		p = kfi_json_next(js, p, ']', &more);
	}
	return p;
}

static const char *
kfo_metadata(struct kfi_json *js, const char *p, struct kfo_meta *m)
{
	struct kfi_jstr key;
	bool more;

	/* Duplicate keys: the last one wins, as with json-c; so a second
	 * "metadata" (or one that is null) replaces all of the first. */
	m->name.p = m->ns.p = m->uid.p = m->rv.p = m->deleted.p = NULL;
	m->gen_p = NULL;
	m->gen_len = 0;
	m->labels.n = m->annots.n = m->owners.n = 0;
	if (p < js->end && *p != '{')
		return kfi_json_value(js, p);
	p = kfi_json_open(js, p, '{', &more);
	while (p != NULL && more) {
		p = kfi_json_key(js, p, &key);
		if (p == NULL)
			return NULL;
		if (kfi_jstr_is(&key, "name"))
			p = kfo_string_or_skip(js, p, &m->name);
		else if (kfi_jstr_is(&key, "namespace"))
			p = kfo_string_or_skip(js, p, &m->ns);
		else if (kfi_jstr_is(&key, "uid"))
			p = kfo_string_or_skip(js, p, &m->uid);
		else if (kfi_jstr_is(&key, "resourceVersion"))
			p = kfo_string_or_skip(js, p, &m->rv);
		else if (kfi_jstr_is(&key, "deletionTimestamp"))
			p = kfo_string_or_skip(js, p, &m->deleted);
		else if (kfi_jstr_is(&key, "generation")) {
			const char *v = p;

			p = kfi_json_value(js, p);
			m->gen_p = v;
			m->gen_len = p != NULL ? (size_t)(p - v) : 0;
		} else if (kfi_jstr_is(&key, "labels")) {
			m->labels.n = 0;
			p = kfo_pairs(js, p, m, &m->labels);
		} else if (kfi_jstr_is(&key, "annotations")) {
			m->annots.n = 0;
			p = kfo_pairs(js, p, m, &m->annots);
		} else if (kfi_jstr_is(&key, "ownerReferences")) {
			m->owners.n = 0;
			p = kfo_owners(js, p, m);
		} else
			p = kfi_json_value(js, p);
		if (p == NULL)
			return NULL;
		p = kfi_json_next(js, p, '}', &more);
	}
	return p;
}

static const char *
kfo_document(struct kfi_json *js, struct kfo_meta *m, bool *has_meta)
{
	const char *p = kfi_json_ws(js, js->start);
	struct kfi_jstr key;
	bool more;

	*has_meta = false;
	p = kfi_json_open(js, p, '{', &more);
	while (p != NULL && more) {
		p = kfi_json_key(js, p, &key);
		if (p == NULL)
			return NULL;
		if (kfi_jstr_is(&key, "apiVersion"))
			p = kfo_string_or_skip(js, p, &m->api_version);
		else if (kfi_jstr_is(&key, "kind"))
			p = kfo_string_or_skip(js, p, &m->kind);
		else if (kfi_jstr_is(&key, "metadata")) {
			*has_meta = p < js->end && *p == '{';
			p = kfo_metadata(js, p, m);
		} else
			p = kfi_json_value(js, p);
		if (p == NULL)
			return NULL;
		p = kfi_json_next(js, p, '}', &more);
	}
	if (p == NULL)
		return NULL;
	p = kfi_json_ws(js, p);
	if (p != js->end)
		return js_fail(js, p, "bytes after the object");
	return p;
}

/* ---- building the object ---- */

static size_t
kfo_need(const struct kfi_jstr *s)
{
	return s->p != NULL ? s->len + 1 : 0;
}

static const char *
kfo_put(char **pool, const struct kfi_jstr *s)
{
	char *d = *pool;
	size_t n;

	if (s->p == NULL)
		return "";
	n = kfi_jstr_unescape(s, d);
	d[n] = '\0';
	*pool = d + n + 1;
	return d;
}

static int64_t
kfo_generation(const char *p, size_t len)
{
	char buf[64];

	if (p == NULL || len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (memchr(buf, '.', len) || memchr(buf, 'e', len) ||
	    memchr(buf, 'E', len))
		return (int64_t)strtod(buf, NULL);
	return strtoll(buf, NULL, 10);
}

static size_t
kfo_size(const struct kfo_meta *m, size_t len, const char *kind_hint)
{
	const struct kfo_pairspan *pr;
	const struct kfo_ownspan *o;
	size_t n = sizeof(struct kf_object) + len + 1;

	n += (m->labels.n + m->annots.n) * 2 * sizeof(char *);
	n += m->owners.n * sizeof(struct kfo_owner);
	n += kfo_need(&m->api_version) + kfo_need(&m->ns) + kfo_need(&m->name) +
	     kfo_need(&m->uid) + kfo_need(&m->rv) + kfo_need(&m->deleted);
	if (m->kind.p != NULL)
		n += kfo_need(&m->kind);
	else if (kind_hint != NULL)
		n += strlen(kind_hint) + 1;
	pr = m->labels.items;
	for (size_t i = 0; i < m->labels.n; i++)
		n += kfo_need(&pr[i].k) + kfo_need(&pr[i].v);
	pr = m->annots.items;
	for (size_t i = 0; i < m->annots.n; i++)
		n += kfo_need(&pr[i].k) + kfo_need(&pr[i].v);
	o = m->owners.items;
	for (size_t i = 0; i < m->owners.n; i++)
		n += kfo_need(&o[i].kind) + kfo_need(&o[i].name) +
		     kfo_need(&o[i].uid);
	return n;
}

static void
kfo_fill_pairs(const struct kfo_vec *v, const char **dst, char **pool)
{
	const struct kfo_pairspan *pr = v->items;

	for (size_t i = 0; i < v->n; i++) {
		dst[2 * i] = kfo_put(pool, &pr[i].k);
		dst[2 * i + 1] = kfo_put(pool, &pr[i].v);
	}
}

static uint16_t kfo_len16(uint32_t n);
static uint64_t kfo_str_hash(const char *s, size_t n, uint64_t seed);

/* Pairs of the same key (JSON with a key twice, which the API server
 * never sends) become one, at the first one's place with the last one's
 * value, as kf_object_label() answers; the indexes then file the object
 * under what a reader sees. Up to 16 pairs are compared with each other;
 * past that through a table of indexes. Returns how many pairs remain. */
static uint32_t
kfo_dedup_pairs(const char **pr, uint32_t n)
{
	uint32_t out = 0, *tab = NULL;
	size_t mask = 0;

	if (n > 16) {
		size_t cap = 32;

		while (cap < 2 * (size_t)n)
			cap *= 2;
		tab = calloc(cap, sizeof(*tab)); /* NULL: compare all, slowly */
		mask = cap - 1;
	}
	/* Bound: n pairs, each one probe sequence of a half-empty table, or
	 * a scan of the pairs kept so far. */
	for (uint32_t i = 0; i < n; i++) {
		const char *k = pr[2 * i];
		size_t slot = 0;
		uint32_t j = out;

		if (tab != NULL) {
			slot = kfo_str_hash(k, strlen(k), 0) & mask;
			for (; tab[slot] != 0; slot = (slot + 1) & mask)
				if (strcmp(pr[2 * (tab[slot] - 1)], k) == 0)
					break;
			if (tab[slot] != 0)
				j = tab[slot] - 1;
		} else {
			for (j = 0; j < out && strcmp(pr[2 * j], k) != 0; j++)
				;
		}
		if (j < out) {
			pr[2 * j + 1] = pr[2 * i + 1];
			continue;
		}
		pr[2 * out] = k;
		pr[2 * out + 1] = pr[2 * i + 1];
		if (tab != NULL)
			tab[slot] = out + 1;
		out++;
	}
	free(tab);
	return out;
}

static kf_object *
kfo_build(const struct kfo_meta *m, const char *json, size_t len,
	  const char *kind_hint)
{
	size_t size = (kfo_size(m, len, kind_hint) + 63) & ~(size_t)63;
	const struct kfo_ownspan *o = m->owners.items;
	/* Aligned by hand: glibc's aligned_alloc() takes a slower path that
	 * splits chunks, measurable at 200 000 objects a second. */
	char *base = malloc(size + 64);
	kf_object *obj;
	char *pool;

	if (base == NULL)
		return NULL;
	obj = (kf_object *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
	obj->base = base;
	atomic_init(&obj->refs, 1);
	atomic_init(&obj->entry_claimed, false);
	obj->footprint = size + 64;
	obj->len = len;
	obj->nlabels = (uint32_t)m->labels.n;
	obj->nannots = (uint32_t)m->annots.n;
	obj->nowners = (uint32_t)m->owners.n;
	obj->labels = (const char **)(obj + 1);
	obj->annots = obj->labels + 2 * m->labels.n;
	obj->owners = (struct kfo_owner *)(obj->annots + 2 * m->annots.n);
	/* The JSON goes last, so the identity strings that every look-up
	 * compares sit next to the header, in the same cache lines. */
	obj->json = (char *)obj + size - len - 1;
	memcpy(obj->json, json, len);
	obj->json[len] = '\0';

	pool = (char *)(obj->owners + m->owners.n);
	if (m->kind.p == NULL && kind_hint != NULL) {
		obj->kind = strcpy(pool, kind_hint);
		pool += strlen(kind_hint) + 1;
	} else
		obj->kind = kfo_put(&pool, &m->kind);
	obj->ns = kfo_put(&pool, &m->ns);
	obj->name = kfo_put(&pool, &m->name);
	obj->api_version = kfo_put(&pool, &m->api_version);
	obj->uid = kfo_put(&pool, &m->uid);
	obj->rv = kfo_put(&pool, &m->rv);
	obj->deleted = kfo_put(&pool, &m->deleted);
	obj->generation = kfo_generation(m->gen_p, m->gen_len);
	kfo_fill_pairs(&m->labels, obj->labels, &pool);
	kfo_fill_pairs(&m->annots, obj->annots, &pool);
	obj->nlabels = kfo_dedup_pairs(obj->labels, obj->nlabels);
	obj->nannots = kfo_dedup_pairs(obj->annots, obj->nannots);
	for (size_t i = 0; i < m->owners.n; i++) {
		obj->owners[i].kind = kfo_put(&pool, &o[i].kind);
		obj->owners[i].name = kfo_put(&pool, &o[i].name);
		obj->owners[i].uid = kfo_put(&pool, &o[i].uid);
		obj->owners[i].controller = o[i].controller;
	}
	{
		struct kfi_ident id;

		kfi_ident_init(&id, obj->kind, obj->ns, obj->name);
		obj->hash = id.hash;
		obj->kind_len = kfo_len16(id.kind_len);
		obj->ns_len = kfo_len16(id.ns_len);
		obj->name_len = kfo_len16(id.name_len);
	}
	return obj;
}

static void
kfo_errmsg(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

kf_err
kf_object_parse(const char *json, size_t len, const char *kind_hint,
		char *errbuf, size_t errlen, kf_object **out)
{
	struct kfo_pairspan lab[16], ann[16];
	struct kfo_ownspan own[4];
	struct kfo_meta m = {
	    .labels = {lab, 0, 16, sizeof(lab[0]), false},
	    .annots = {ann, 0, 16, sizeof(ann[0]), false},
	    .owners = {own, 0, 4, sizeof(own[0]), false},
	};
	struct kfi_json js = {json, json + len, NULL, NULL};
	bool has_meta;
	kf_err err = KF_OK;

	*out = NULL;
	if (json == NULL) {
		kfo_errmsg(errbuf, errlen, "no JSON given");
		return KF_EINVAL;
	}
	if (kfo_document(&js, &m, &has_meta) == NULL) {
		if (m.nomem) {
			err = KF_ENOMEM;
			goto done;
		}
		kfo_errmsg(errbuf, errlen, "invalid JSON at byte %zu: %s",
			   (size_t)(js.errp - json), js.why);
		err = KF_EPARSE;
		goto done;
	}
	if (!has_meta || m.name.p == NULL || m.name.len == 0) {
		kfo_errmsg(errbuf, errlen, "object has no metadata.name");
		err = KF_EPARSE;
		goto done;
	}
	*out = kfo_build(&m, json, len, kind_hint);
	if (*out == NULL)
		err = KF_ENOMEM;
done:
	kfo_vec_fini(&m.labels);
	kfo_vec_fini(&m.annots);
	kfo_vec_fini(&m.owners);
	return err;
}

kf_object *
kf_object_ref(kf_object *obj)
{
	if (obj != NULL)
		atomic_fetch_add_explicit(&obj->refs, 1, memory_order_relaxed);
	return obj;
}

void
kf_object_unref(kf_object *obj)
{
	if (obj == NULL)
		return;
	if (atomic_fetch_sub_explicit(&obj->refs, 1, memory_order_acq_rel) == 1)
		free(obj->base);
}

const char *
kf_object_json(const kf_object *obj, size_t *len)
{
	if (len != NULL)
		*len = obj->len;
	return obj->json;
}

const char *
kf_object_api_version(const kf_object *obj)
{
	return obj->api_version;
}

const char *
kf_object_kind(const kf_object *obj)
{
	return obj->kind;
}

const char *
kf_object_namespace(const kf_object *obj)
{
	return obj->ns;
}

const char *
kf_object_name(const kf_object *obj)
{
	return obj->name;
}

const char *
kf_object_uid(const kf_object *obj)
{
	return obj->uid;
}

const char *
kf_object_resource_version(const kf_object *obj)
{
	return obj->rv;
}

const char *
kf_object_deletion_timestamp(const kf_object *obj)
{
	return obj->deleted;
}

int64_t
kf_object_generation(const kf_object *obj)
{
	return obj->generation;
}

/* Keys are unique (kfo_dedup_pairs): the last value of a key given twice. */
static const char *
kfo_lookup(const char **pairs, size_t n, const char *key)
{
	for (size_t i = n; i-- > 0;)
		if (strcmp(pairs[2 * i], key) == 0)
			return pairs[2 * i + 1];
	return NULL;
}

const char *
kf_object_label(const kf_object *obj, const char *key)
{
	return kfo_lookup(obj->labels, obj->nlabels, key);
}

size_t
kf_object_label_count(const kf_object *obj)
{
	return obj->nlabels;
}

void
kf_object_label_at(const kf_object *obj, size_t i, const char **key,
		   const char **value)
{
	*key = i < obj->nlabels ? obj->labels[2 * i] : NULL;
	*value = i < obj->nlabels ? obj->labels[2 * i + 1] : NULL;
}

const char *
kf_object_annotation(const kf_object *obj, const char *key)
{
	return kfo_lookup(obj->annots, obj->nannots, key);
}

size_t
kf_object_annotation_count(const kf_object *obj)
{
	return obj->nannots;
}

void
kf_object_annotation_at(const kf_object *obj, size_t i, const char **key,
			const char **value)
{
	*key = i < obj->nannots ? obj->annots[2 * i] : NULL;
	*value = i < obj->nannots ? obj->annots[2 * i + 1] : NULL;
}

size_t
kf_object_owner_count(const kf_object *obj)
{
	return obj->nowners;
}

void
kf_object_owner_at(const kf_object *obj, size_t i, const char **kind,
		   const char **name, const char **uid, bool *controller)
{
	const struct kfo_owner *o = i < obj->nowners ? &obj->owners[i] : NULL;

	if (kind != NULL)
		*kind = o != NULL ? o->kind : NULL;
	if (name != NULL)
		*name = o != NULL ? o->name : NULL;
	if (uid != NULL)
		*uid = o != NULL ? o->uid : NULL;
	if (controller != NULL)
		*controller = o != NULL && o->controller;
}

/* ---- kf_object_field: walk the path over the raw bytes ---- */

static bool
kfo_seg_eq(const struct kfi_jstr *key, const char *seg, size_t n)
{
	char small[128];
	size_t m;

	if (!key->esc)
		return key->len == n && memcmp(key->p, seg, n) == 0;
	if (key->len > sizeof(small))
		return false;
	m = kfi_jstr_unescape(key, small);
	return m == n && memcmp(small, seg, n) == 0;
}

static bool
kfo_seg_index(const char *seg, size_t n, size_t *out)
{
	size_t v = 0;

	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (seg[i] < '0' || seg[i] > '9')
			return false;
		v = v * 10 + (size_t)(seg[i] - '0');
	}
	*out = v;
	return true;
}

/* At a value: step into the member or element named by seg. Returns the
 * start of that value, or NULL when absent. */
static const char *
kfo_step(struct kfi_json *js, const char *p, const char *seg, size_t n)
{
	struct kfi_jstr key;
	size_t want, i = 0;
	const char *found = NULL;
	bool more;

	if (p < js->end && *p == '{') {
		p = kfi_json_open(js, p, '{', &more);
		while (p != NULL && more) {
			p = kfi_json_key(js, p, &key);
			if (p == NULL)
				return NULL;
			if (kfo_seg_eq(&key, seg, n))
				found = p; /* keep going: last one wins */
			p = kfi_json_value(js, p);
			if (p == NULL)
				return NULL;
			p = kfi_json_next(js, p, '}', &more);
		}
		return found;
	}
	if (p < js->end && *p == '[' && kfo_seg_index(seg, n, &want)) {
		p = kfi_json_open(js, p, '[', &more);
		while (p != NULL && more) {
			if (i++ == want)
				return p;
			p = kfi_json_value(js, p);
			if (p == NULL)
				return NULL;
			p = kfi_json_next(js, p, ']', &more);
		}
	}
	return NULL;
}

kf_err
kf_object_field(const kf_object *obj, const char *path, char **out)
{
	struct kfi_json js = {obj->json, obj->json + obj->len, NULL, NULL};
	const char *p = kfi_json_ws(&js, obj->json), *end;
	const char *seg = path;

	*out = NULL;
	if (path == NULL)
		return KF_EINVAL;
	/* Bound: one step per path segment. */
	while (*seg != '\0') {
		size_t n = strcspn(seg, ".");

		p = kfo_step(&js, p, seg, n);
		if (p == NULL)
			return KF_ENOTFOUND;
		seg += n;
		if (*seg == '.')
			seg++;
	}
	end = kfi_json_value(&js, p);
	if (end == NULL)
		return KF_EPARSE;
	*out = strndup(p, (size_t)(end - p));
	return *out != NULL ? KF_OK : KF_ENOMEM;
}

/* ---- identity ---- */

static uint64_t
kfo_word(const char *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return w;
}

static uint64_t
kfo_half(const char *p)
{
	uint32_t w;

	memcpy(&w, p, 4);
	return w;
}

/* One multiply per 8 bytes; the tail is read with overlapping loads, so
 * no byte loop. The three fields hash independently (with their own
 * seeds) and are mixed at the end: get() hashes on every call. */
static uint64_t
kfo_str_hash(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull), w;

	if (n > 8) {
		/* Bound: one step per 8 bytes. */
		for (; n > 8; s += 8, n -= 8)
			h = (h ^ kfo_word(s)) * 0xff51afd7ed558ccdull;
		w = kfo_word(s + n - 8);
	} else if (n == 8) {
		w = kfo_word(s);
	} else if (n >= 4) {
		w = kfo_half(s) << 32 | kfo_half(s + n - 4);
	} else if (n > 0) {
		w = (uint64_t)(unsigned char)s[0] << 16 |
		    (uint64_t)(unsigned char)s[n / 2] << 8 |
		    (unsigned char)s[n - 1];
	} else {
		w = 0;
	}
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 32);
}

static uint64_t
kfo_identity_hash(const struct kfi_ident *id)
{
	uint64_t h;

	h = kfo_str_hash(id->kind, id->kind_len, 0x243f6a8885a308d3ull);
	h += 3 * kfo_str_hash(id->ns, id->ns_len, 0x13198a2e03707344ull);
	h += 5 * kfo_str_hash(id->name, id->name_len, 0xa4093822299f31d0ull);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static const char *
kfo_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

void
kfi_ident_init(struct kfi_ident *id, const char *kind, const char *ns,
	       const char *name)
{
	id->kind = kfo_or_empty(kind);
	id->ns = kfo_or_empty(ns);
	id->name = kfo_or_empty(name);
	id->kind_len = (uint32_t)strlen(id->kind);
	id->ns_len = (uint32_t)strlen(id->ns);
	id->name_len = (uint32_t)strlen(id->name);
	id->hash = kfo_identity_hash(id);
}

static uint16_t
kfo_len16(uint32_t n)
{
	return n < KFO_LEN_BIG ? (uint16_t)n : KFO_LEN_BIG;
}

/* True when the identity string s, of stored length field len, is n
 * bytes long. */
static bool
kfo_len_is(uint16_t len, const char *s, size_t n)
{
	if (len != KFO_LEN_BIG)
		return len == n;
	return n >= KFO_LEN_BIG && strlen(s) == n;
}

/* n bytes equal; inline word compares (identity strings are short, and a
 * libc call per field costs more than the compare). */
static bool
kfo_bytes_eq(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		/* Bound: one step per 8 bytes, then the last 8 (overlapping).
		 */
		for (; n > 8; a += 8, b += 8, n -= 8)
			if (kfo_word(a) != kfo_word(b))
				return false;
		return kfo_word(a + n - 8) == kfo_word(b + n - 8);
	}
	if (n >= 4)
		return kfo_half(a) == kfo_half(b) &&
		       kfo_half(a + n - 4) == kfo_half(b + n - 4);
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* Hash and lengths first (they reject strangers), then the bytes, the
 * name first: it tells objects of one namespace apart. */
bool
kfi_object_ident_eq(const kf_object *obj, const struct kfi_ident *id)
{
	return obj->hash == id->hash &&
	       kfo_len_is(obj->name_len, obj->name, id->name_len) &&
	       kfo_len_is(obj->ns_len, obj->ns, id->ns_len) &&
	       kfo_len_is(obj->kind_len, obj->kind, id->kind_len) &&
	       kfo_bytes_eq(obj->name, id->name, id->name_len) &&
	       kfo_bytes_eq(obj->ns, id->ns, id->ns_len) &&
	       kfo_bytes_eq(obj->kind, id->kind, id->kind_len);
}

uint64_t
kfi_identity_hash(const char *kind, const char *ns, const char *name)
{
	struct kfi_ident id;

	kfi_ident_init(&id, kind, ns, name);
	return id.hash;
}

uint64_t
kfi_object_hash(const kf_object *obj)
{
	return obj->hash;
}

bool
kfi_object_same_identity(const kf_object *a, const kf_object *b)
{
	struct kfi_ident id;

	if (a == b)
		return true;
	if (a->hash != b->hash)
		return false;
	id = (struct kfi_ident){
	    .kind = b->kind,
	    .ns = b->ns,
	    .name = b->name,
	    .kind_len = b->kind_len != KFO_LEN_BIG ? b->kind_len
						   : (uint32_t)strlen(b->kind),
	    .ns_len =
		b->ns_len != KFO_LEN_BIG ? b->ns_len : (uint32_t)strlen(b->ns),
	    .name_len = b->name_len != KFO_LEN_BIG ? b->name_len
						   : (uint32_t)strlen(b->name),
	    .hash = b->hash,
	};
	return kfi_object_ident_eq(a, &id);
}

struct kfi_store_entry *
kfi_object_entry_claim(kf_object *obj)
{
	bool no = false;

	if (atomic_load_explicit(&obj->entry_claimed, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong(&obj->entry_claimed, &no, true))
		return NULL;
	return &obj->entry;
}

bool
kfi_object_entry_is_own(const kf_object *obj, const struct kfi_store_entry *e)
{
	return e == &obj->entry;
}

size_t
kfi_object_footprint(const kf_object *obj)
{
	return obj->footprint;
}

kf_objref
kf_object_objref(const kf_object *obj)
{
	kf_objref r = {obj->kind, obj->ns, obj->name, obj->uid, obj->rv};

	return r;
}

bool
kf_objref_equal(const kf_objref *a, const kf_objref *b)
{
	return strcmp(kfo_or_empty(a->name), kfo_or_empty(b->name)) == 0 &&
	       strcmp(kfo_or_empty(a->namespace_),
		      kfo_or_empty(b->namespace_)) == 0 &&
	       strcmp(kfo_or_empty(a->kind), kfo_or_empty(b->kind)) == 0;
}

uint64_t
kf_objref_hash(const kf_objref *ref)
{
	return kfi_identity_hash(ref->kind, ref->namespace_, ref->name);
}

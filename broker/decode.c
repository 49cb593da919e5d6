/*
 * Decoding watch lines, list bodies and Status replies; see decode.h.
 *
 * Theory: the expensive step is building a json-c tree (about 20 times the
 * bytes, at 80-100 MB/s). An object's bytes must be parsed exactly once,
 * by kf_object_parse(), which keeps them. So the envelope around objects
 * (the watch event, the list) is walked with a byte scanner that only
 * tracks strings and nesting to find where each value starts and ends.
 * The scanner does not validate numbers or literals; whatever it lets
 * through is still fully validated by the object parser, and a structural
 * fault (unterminated string, unbalanced nesting, trailing garbage) is
 * caught here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "decode.h"

#define DEC_MAX_DEPTH 512

struct dec_span {
	const char *p;
	size_t n;
};

static void dec_err(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dec_err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static const char *
dec_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at an opening quote: the byte after the closing quote, or NULL. */
static const char *
dec_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			p++;
			continue;
		}
		if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* p at the start of a value: the byte after it, or NULL when malformed.
 * Bounded by the bytes of the value; nesting depth is capped. */
static const char *
dec_value(const char *p, const char *end)
{
	int depth = 0;

	if (p >= end)
		return NULL;
	if (*p == '"')
		return dec_string(p, end);
	if (*p != '{' && *p != '[') {
		const char *s = p;

		while (p < end && *p != ',' && *p != '}' && *p != ']' &&
		       *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
			p++;
		return p > s ? p : NULL;
	}
	while (p < end) {
		switch (*p) {
		case '"':
			p = dec_string(p, end);
			if (p == NULL)
				return NULL;
			continue;
		case '{':
		case '[':
			if (++depth > DEC_MAX_DEPTH)
				return NULL;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return p + 1;
			break;
		default:
			break;
		}
		p++;
	}
	return NULL;
}

/* Walk the members of the object at [p, end). For each member whose key is
 * one of keys[0..nkeys), fill vals[i]. The whole text must be one object
 * and nothing else. Returns 0 or -1. */
static int
dec_members(const char *p, const char *end, const char *const *keys,
	    struct dec_span *vals, size_t nkeys)
{
	const char *k, *v;
	size_t klen;

	p = dec_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = dec_ws(p + 1, end);
	if (p < end && *p == '}')
		return dec_ws(p + 1, end) == end ? 0 : -1;
	/* Bounded by the text: each member consumes bytes. */
	while (p < end) {
		if (*p != '"')
			return -1;
		k = p + 1;
		p = dec_string(p, end);
		if (p == NULL)
			return -1;
		klen = (size_t)(p - 1 - k);
		p = dec_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		v = dec_ws(p + 1, end);
		p = dec_value(v, end);
		if (p == NULL)
			return -1;
		for (size_t i = 0; i < nkeys; i++) {
			if (strlen(keys[i]) == klen &&
			    memcmp(keys[i], k, klen) == 0) {
				vals[i].p = v;
				vals[i].n = (size_t)(p - v);
			}
		}
		p = dec_ws(p, end);
		if (p < end && *p == ',') {
			p = dec_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return dec_ws(p + 1, end) == end ? 0 : -1;
		return -1;
	}
	return -1;
}

static json_object *
dec_tree(const char *p, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;

	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, p, (int)n);
	if (o != NULL && json_tokener_get_parse_end(tok) != n) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static const char *
dec_str_at(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b != NULL && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

static void
dec_status_from(json_object *o, struct kfi_status *st)
{
	json_object *v;
	const char *s;

	memset(st, 0, sizeof(*st));
	if (json_object_object_get_ex(o, "code", &v))
		st->code = (long)json_object_get_int64(v);
	if ((s = dec_str_at(o, "reason", NULL)) != NULL)
		snprintf(st->reason, sizeof(st->reason), "%s", s);
	if ((s = dec_str_at(o, "message", NULL)) != NULL)
		snprintf(st->message, sizeof(st->message), "%s", s);
}

kf_err
kfi_decode_status(const char *body, size_t len, struct kfi_status *st)
{
	json_object *o = dec_tree(body, len);
	const char *kind;

	memset(st, 0, sizeof(*st));
	if (o == NULL)
		return KF_EPARSE;
	kind = dec_str_at(o, "kind", NULL);
	if (!json_object_is_type(o, json_type_object) || kind == NULL ||
	    strcmp(kind, "Status") != 0) {
		json_object_put(o);
		return KF_EPARSE;
	}
	dec_status_from(o, st);
	json_object_put(o);
	return KF_OK;
}

static kf_err
dec_object(const char *p, size_t n, const char *hint,
	   const struct kfi_ingest *ing, char *errbuf, size_t errlen,
	   kf_object **out)
{
	char *tbuf = NULL;
	size_t tlen = 0;
	kf_err e;

	if (ing != NULL && ing->transform != NULL) {
		e = ing->transform(ing->transform_arg, p, n, &tbuf, &tlen);
		if (e != KF_OK) {
			dec_err(errbuf, errlen, "ingest transform failed: %s",
				kf_strerror(e));
			return e;
		}
		if (tbuf != NULL) {
			p = tbuf;
			n = tlen;
		}
	}
	e = kf_object_parse(p, n, hint, errbuf, errlen, out);
	free(tbuf);
	return e;
}

static const struct {
	const char *name;
	enum kfi_wtype type;
} dec_types[] = {
    {"ADDED", KFI_W_ADDED},	{"MODIFIED", KFI_W_MODIFIED},
    {"DELETED", KFI_W_DELETED}, {"BOOKMARK", KFI_W_BOOKMARK},
    {"ERROR", KFI_W_ERROR},
};

static kf_err
dec_bookmark(struct dec_span o, struct kfi_wevent *ev, char *errbuf,
	     size_t errlen)
{
	json_object *t = dec_tree(o.p, o.n);
	const char *rv, *end;

	if (t == NULL || !json_object_is_type(t, json_type_object)) {
		json_object_put(t);
		dec_err(errbuf, errlen, "BOOKMARK object is not JSON object");
		return KF_EPARSE;
	}
	rv = dec_str_at(t, "metadata", "resourceVersion");
	if (rv == NULL || rv[0] == '\0' || strlen(rv) >= KFI_RV_MAX) {
		json_object_put(t);
		dec_err(errbuf, errlen,
			"BOOKMARK without a usable metadata.resourceVersion");
		return KF_EPARSE;
	}
	snprintf(ev->rv, sizeof(ev->rv), "%s", rv);
	{
		json_object *md, *ann, *v;

		if (json_object_object_get_ex(t, "metadata", &md) &&
		    json_object_object_get_ex(md, "annotations", &ann) &&
		    json_object_object_get_ex(ann, "k8s.io/initial-events-end",
					      &v)) {
			end = json_object_get_string(v);
			ev->initial_events_end =
			    end != NULL && strcmp(end, "true") == 0;
		}
	}
	json_object_put(t);
	return KF_OK;
}

kf_err
kfi_decode_event(const char *line, size_t len, const struct kfi_ingest *ing,
		 char *errbuf, size_t errlen, struct kfi_wevent *ev)
{
	static const char *const keys[] = {"type", "object"};
	struct dec_span v[2] = {{0}};
	const char *rv;
	size_t tn;
	kf_err e;

	memset(ev, 0, sizeof(*ev));
	if (dec_members(line, line + len, keys, v, 2) != 0) {
		dec_err(errbuf, errlen,
			"watch line is not one JSON object "
			"(%zu bytes)",
			len);
		return KF_EPARSE;
	}
	if (v[0].p == NULL || v[0].n < 2 || v[0].p[0] != '"') {
		dec_err(errbuf, errlen, "watch line without a string \"type\"");
		return KF_EPARSE;
	}
	tn = v[0].n - 2;
	snprintf(ev->type_name, sizeof(ev->type_name), "%.*s", (int)tn,
		 v[0].p + 1);
	ev->type = KFI_W_UNKNOWN;
	for (size_t i = 0; i < sizeof(dec_types) / sizeof(dec_types[0]); i++)
		if (strlen(dec_types[i].name) == tn &&
		    memcmp(dec_types[i].name, v[0].p + 1, tn) == 0)
			ev->type = dec_types[i].type;
	if (ev->type == KFI_W_UNKNOWN)
		return KF_OK;
	if (ev->type == KFI_W_ERROR) {
		json_object *t = v[1].p ? dec_tree(v[1].p, v[1].n) : NULL;

		if (t != NULL && json_object_is_type(t, json_type_object))
			dec_status_from(t, &ev->status);
		json_object_put(t);
		return KF_OK;
	}
	if (v[1].p == NULL || v[1].p[0] != '{') {
		dec_err(errbuf, errlen, "%s line without an \"object\"",
			ev->type_name);
		return KF_EPARSE;
	}
	if (ev->type == KFI_W_BOOKMARK)
		return dec_bookmark(v[1], ev, errbuf, errlen);
	e = dec_object(v[1].p, v[1].n, ing ? ing->kind_hint : NULL, ing, errbuf,
		       errlen, &ev->obj);
	if (e != KF_OK)
		return e;
	rv = kf_object_resource_version(ev->obj);
	if (rv[0] == '\0' || strlen(rv) >= KFI_RV_MAX) {
		kf_object_unref(ev->obj);
		ev->obj = NULL;
		dec_err(errbuf, errlen,
			"%s object without a usable metadata.resourceVersion",
			ev->type_name);
		return KF_EPARSE;
	}
	snprintf(ev->rv, sizeof(ev->rv), "%s", rv);
	return KF_OK;
}

static kf_err
dec_list_meta(struct dec_span m, char *errbuf, size_t errlen,
	      struct kfi_list_meta *meta)
{
	json_object *t = m.p ? dec_tree(m.p, m.n) : NULL;
	const char *rv, *c;

	if (t == NULL || !json_object_is_type(t, json_type_object)) {
		json_object_put(t);
		dec_err(errbuf, errlen, "list without a metadata object");
		return KF_EPARSE;
	}
	rv = dec_str_at(t, "resourceVersion", NULL);
	if (rv == NULL || rv[0] == '\0' || strlen(rv) >= KFI_RV_MAX) {
		json_object_put(t);
		dec_err(errbuf, errlen,
			"list without a usable metadata.resourceVersion");
		return KF_EPARSE;
	}
	snprintf(meta->rv, sizeof(meta->rv), "%s", rv);
	c = dec_str_at(t, "continue", NULL);
	if (c != NULL && c[0] != '\0') {
		meta->cont = strdup(c);
		if (meta->cont == NULL) {
			json_object_put(t);
			return KF_ENOMEM;
		}
	}
	json_object_put(t);
	return KF_OK;
}

kf_err
kfi_decode_list(const char *body, size_t len, const struct kfi_ingest *ing,
		kfi_item_fn fn, void *arg, char *errbuf, size_t errlen,
		struct kfi_list_meta *meta)
{
	static const char *const keys[] = {"kind", "metadata", "items"};
	struct dec_span v[3] = {{0}};
	char hint[128], ierr[256];
	const char *p, *end, *q;
	kf_object *obj;
	size_t kl;
	kf_err e;

	memset(meta, 0, sizeof(*meta));
	if (dec_members(body, body + len, keys, v, 3) != 0) {
		dec_err(errbuf, errlen,
			"list body is not one JSON object "
			"(%zu bytes)",
			len);
		return KF_EPARSE;
	}
	if (v[0].p != NULL && v[0].p[0] == '"' && v[0].n - 2 < sizeof(hint))
		snprintf(meta->kind, sizeof(meta->kind), "%.*s",
			 (int)(v[0].n - 2), v[0].p + 1);
	snprintf(hint, sizeof(hint), "%s", meta->kind);
	kl = strlen(hint);
	if (kl > 4 && strcmp(hint + kl - 4, "List") == 0)
		hint[kl - 4] = '\0';
	if (ing != NULL && ing->kind_hint != NULL && ing->kind_hint[0])
		snprintf(hint, sizeof(hint), "%s", ing->kind_hint);
	e = dec_list_meta(v[1], errbuf, errlen, meta);
	if (e != KF_OK)
		return e;
	if (v[2].p == NULL || (v[2].p[0] == 'n' && v[2].n == 4))
		return KF_OK; /* "items": null or absent: an empty list */
	if (v[2].p[0] != '[') {
		dec_err(errbuf, errlen, "list \"items\" is not an array");
		goto bad;
	}
	p = dec_ws(v[2].p + 1, v[2].p + v[2].n);
	end = v[2].p + v[2].n - 1; /* the closing ']' */
	/* Bounded by the array's bytes: each item consumes its span. */
	while (p < end) {
		q = dec_value(p, end);
		if (q == NULL) {
			dec_err(errbuf, errlen, "list item %zu is malformed",
				meta->items + meta->bad_items);
			goto bad;
		}
		e = dec_object(p, (size_t)(q - p), hint[0] ? hint : NULL, ing,
			       ierr, sizeof(ierr), &obj);
		if (e == KF_ENOMEM)
			goto fail;
		if (e != KF_OK) {
			if (meta->bad_items++ == 0)
				dec_err(errbuf, errlen, "list item %zu: %s",
					meta->items + meta->bad_items - 1,
					ierr);
		} else {
			meta->items++;
			e = fn(arg, obj);
			if (e != KF_OK)
				goto fail;
		}
		p = dec_ws(q, end);
		if (p < end && *p == ',')
			p = dec_ws(p + 1, end);
		else if (p < end)
			goto bad;
	}
	return KF_OK;
bad:
	e = KF_EPARSE;
fail:
	free(meta->cont);
	meta->cont = NULL;
	return e;
}

static int
dec_decimal(const char *s, unsigned long long *out)
{
	char *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return (*end != '\0' || errno != 0) ? -1 : 0;
}

int
kfi_rv_compare(const char *a, const char *b)
{
	unsigned long long x, y;

	if (dec_decimal(a, &x) != 0 || dec_decimal(b, &y) != 0)
		return 2;
	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Built-in ingest transform: drop metadata.managedFields and, on request,
 * the kubectl last-applied-configuration annotation.
 *
 * It edits the raw bytes rather than parsing and re-printing: every byte
 * outside the removed members is kept as the server sent it, including
 * the separators, so the result is still the server's formatting minus
 * the dropped members. A member is removed with the separator that led
 * into it (or, for a first member, with the one after it), so the output
 * stays valid JSON.
 */
#include <stdlib.h>
#include <string.h>

#include "kubefan/object.h"
#include "object_int.h"

#define KFT_LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

enum kft_level { KFT_TOP, KFT_META, KFT_ANNOT };

struct kft_out {
	char *buf;
	size_t n;
};

static void
kft_emit(struct kft_out *o, const char *a, const char *b)
{
	memcpy(o->buf + o->n, a, (size_t)(b - a));
	o->n += (size_t)(b - a);
}

static bool
kft_drop(enum kft_level level, const struct kfi_jstr *key)
{
	if (level == KFT_META)
		return kfi_jstr_is(key, "managedFields");
	if (level == KFT_ANNOT)
		return kfi_jstr_is(key, KFT_LAST_APPLIED);
	return false;
}

/* The member's value, rewritten when it is a container we edit. */
static const char *kft_value(struct kfi_json *js, const char *v,
			     enum kft_level level, const struct kfi_jstr *key,
			     bool annot, struct kft_out *o);

/* At '{': copy the object to o without the members kft_drop() names. */
static const char *
kft_object(struct kfi_json *js, const char *p, enum kft_level level, bool annot,
	   struct kft_out *o)
{
	const char *open = p, *kstart, *v, *prev_end = NULL;
	struct kfi_jstr key;
	bool more, kept_any = false;

	p = kfi_json_open(js, p, '{', &more);
	if (p == NULL)
		return NULL;
	if (!more) {
		kft_emit(o, open, p);
		return p;
	}
	kft_emit(o, open, p);
	/* Bound: one turn per member of this object. */
	while (more) {
		kstart = p;
		v = kfi_json_key(js, p, &key);
		if (v == NULL)
			return NULL;
		if (kft_drop(level, &key)) {
			p = kfi_json_value(js, v);
		} else {
			if (kept_any)
				kft_emit(o, prev_end, kstart);
			kft_emit(o, kstart, v);
			p = kft_value(js, v, level, &key, annot, o);
			kept_any = true;
		}
		if (p == NULL)
			return NULL;
		prev_end = p;
		p = kfi_json_next(js, p, '}', &more);
		if (p == NULL)
			return NULL;
	}
	kft_emit(o, prev_end, p); /* trailing blanks and the '}' */
	return p;
}

static const char *
kft_value(struct kfi_json *js, const char *v, enum kft_level level,
	  const struct kfi_jstr *key, bool annot, struct kft_out *o)
{
	const char *end;

	if (v < js->end && *v == '{') {
		if (level == KFT_TOP && kfi_jstr_is(key, "metadata"))
			return kft_object(js, v, KFT_META, annot, o);
		if (level == KFT_META && annot &&
		    kfi_jstr_is(key, "annotations"))
			return kft_object(js, v, KFT_ANNOT, annot, o);
	}
	end = kfi_json_value(js, v);
	if (end != NULL)
		kft_emit(o, v, end);
	return end;
}

kf_err
kf_transform_strip_managed_fields(void *arg, const char *json, size_t len,
				  char **out, size_t *outlen)
{
	struct kfi_json js = {json, json + len, NULL, NULL};
	struct kft_out o = {malloc(len + 1), 0};
	const char *p = kfi_json_ws(&js, json);

	*out = NULL;
	*outlen = 0;
	if (o.buf == NULL)
		return KF_ENOMEM;
	kft_emit(&o, json, p);
	p = kft_object(&js, p, KFT_TOP, arg != NULL, &o);
	if (p == NULL || kfi_json_ws(&js, p) != js.end) {
		free(o.buf);
		return KF_EPARSE;
	}
	kft_emit(&o, p, js.end);
	if (o.n == len) {
		free(o.buf); /* nothing removed: keep the input */
		return KF_OK;
	}
	*out = o.buf;
	*outlen = o.n;
	return KF_OK;
}

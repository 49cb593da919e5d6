/*
 * libFuzzer target: a list response body (one page), decoded as the
 * watcher decodes pages.
 *
 * Input: byte 0 chooses the transform (bit 0), a kind hint (bit 1), and
 * whether the item callback refuses the Nth item (bits 2-7, N = value;
 * 0 never refuses); the rest is the body.
 *
 * Checked beyond the sanitizers: a decoded list has a resourceVersion
 * and counts exactly the items it handed over; a refused item stops the
 * decode with the callback's error and no continue token; every object
 * handed over is readable; without a transform, each object's JSON is a
 * byte range of the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fl_ctx {
	const char *body;
	size_t len;
	bool transform;
	size_t seen;
	size_t refuse_at; /* 1-based; 0 never */
};

static kf_err
fl_item(void *arg, kf_object *obj)
{
	struct fl_ctx *c = arg;
	size_t jl;
	const char *j;

	KFF_CHECK(obj != NULL);
	c->seen++;
	kff_touch_object(obj);
	j = kf_object_json(obj, &jl);
	if (!c->transform)
		KFF_CHECK(memmem(c->body, c->len, j, jl) != NULL);
	kf_object_unref(obj);
	return c->seen == c->refuse_at ? KF_ECLOSED : KF_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kfi_ingest ing = {0};
	struct kfi_list_meta meta;
	struct kfi_status st;
	struct fl_ctx c = {0};
	char err[256];
	kf_err e;

	if (size < 1)
		return 0;
	c.transform = (data[0] & 1) != 0;
	if (c.transform)
		ing.transform = kf_transform_strip_managed_fields;
	ing.kind_hint = (data[0] & 2) ? "Pod" : NULL;
	c.refuse_at = data[0] >> 2;
	c.body = (const char *)data + 1;
	c.len = size - 1;
	err[0] = '\0';
	e = kfi_decode_list(c.body, c.len, &ing, fl_item, &c, err, sizeof(err),
			    &meta);
	KFF_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	KFF_CHECK(memchr(meta.rv, '\0', sizeof(meta.rv)) != NULL);
	KFF_CHECK(memchr(meta.kind, '\0', sizeof(meta.kind)) != NULL);
	if (e == KF_OK) {
		KFF_CHECK(meta.rv[0] != '\0');
		KFF_CHECK(meta.items == c.seen);
		KFF_CHECK(c.refuse_at == 0 || c.seen < c.refuse_at);
	} else if (c.refuse_at != 0 && c.seen == c.refuse_at) {
		KFF_CHECK(e == KF_ECLOSED);
		KFF_CHECK(meta.cont == NULL);
	} else {
		KFF_CHECK(e == KF_EPARSE);
	}
	free(meta.cont);
	if (kfi_decode_status(c.body, c.len, &st) != KF_OK)
		KFF_CHECK(st.code == 0 && st.reason[0] == '\0');
	return 0;
}

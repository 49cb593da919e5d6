/*
 * libFuzzer target: a watch response body, framed into lines and each line
 * decoded as a watch event, the way the watcher does it.
 *
 * Input: byte 0 chooses the line limit (low 3 bits), whether the
 * strip-managed-fields transform runs (bit 3) and whether a kind hint is
 * given (bit 4); byte 1 seeds the chunk sizes; the rest is the body.
 *
 * Checked on every input, beyond the sanitizers:
 * - framing the body in chunks hands out exactly the lines (and over-limit
 *   reports) that one feed of the whole body does;
 * - a decoded ADDED/MODIFIED/DELETED has an object; without a transform
 *   its JSON is a byte range of the line; a failed decode has none;
 * - kfi_rv_compare() is antisymmetric on the versions seen.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "framer.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fw_lines {
	char *bytes; /* every line, each followed by a NUL marker byte */
	size_t len, cap;
	size_t count;
};

struct fw_ctx {
	struct fw_lines lines;
	struct kfi_ingest ing;
	bool transform;
	char last_rv[KFI_RV_MAX];
};

static void
fw_append(struct fw_lines *l, const char *p, size_t n, char mark)
{
	if (l->len + n + 1 > l->cap) {
		size_t cap = (l->len + n + 1) * 2;
		char *nb = realloc(l->bytes, cap);

		KFF_CHECK(nb != NULL);
		l->bytes = nb;
		l->cap = cap;
	}
	if (n > 0)
		memcpy(l->bytes + l->len, p, n);
	l->bytes[l->len + n] = mark;
	l->len += n + 1;
	l->count++;
}

static void
fw_decode(struct fw_ctx *c, const char *line, size_t len)
{
	char err[256];
	struct kfi_wevent ev;
	struct kfi_status st;
	kf_err e;

	err[0] = '\0';
	e = kfi_decode_event(line, len, &c->ing, err, sizeof(err), &ev);
	if (e != KF_OK) {
		KFF_CHECK(ev.obj == NULL);
		KFF_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	} else {
		KFF_CHECK(memchr(ev.rv, '\0', sizeof(ev.rv)) != NULL);
		KFF_CHECK(memchr(ev.type_name, '\0', sizeof(ev.type_name)) !=
			  NULL);
		switch (ev.type) {
		case KFI_W_ADDED:
		case KFI_W_MODIFIED:
		case KFI_W_DELETED: {
			size_t jl;
			const char *j;

			KFF_CHECK(ev.obj != NULL);
			kff_touch_object(ev.obj);
			j = kf_object_json(ev.obj, &jl);
			KFF_CHECK(jl > 0 && jl <= len);
			if (!c->transform)
				KFF_CHECK(memmem(line, len, j, jl) != NULL);
			kf_object_unref(ev.obj);
			break;
		}
		default:
			KFF_CHECK(ev.obj == NULL);
		}
		{
			int ab = kfi_rv_compare(ev.rv, c->last_rv);
			int ba = kfi_rv_compare(c->last_rv, ev.rv);

			KFF_CHECK(ab == 2 ? ba == 2 : ab == -ba);
		}
		memcpy(c->last_rv, ev.rv, sizeof(c->last_rv));
	}
	/* Error bodies are read as Status the same way. */
	if (kfi_decode_status(line, len, &st) != KF_OK)
		KFF_CHECK(st.code == 0 && st.reason[0] == '\0');
	KFF_CHECK(memchr(st.reason, '\0', sizeof(st.reason)) != NULL);
	KFF_CHECK(memchr(st.message, '\0', sizeof(st.message)) != NULL);
}

/* The reference run: keep the lines. */
static int
fw_collect(void *arg, const char *line, size_t len)
{
	struct fw_lines *l = arg;

	if (line == NULL)
		fw_append(l, "", 0, 'O'); /* over limit */
	else
		fw_append(l, line, len, '\0');
	return 0;
}

/* The chunked run: keep the lines and decode each. */
static int
fw_line(void *arg, const char *line, size_t len)
{
	struct fw_ctx *c = arg;

	if (line == NULL) {
		fw_append(&c->lines, "", 0, 'O');
		return 0;
	}
	KFF_CHECK(len > 0 && memchr(line, '\n', len) == NULL);
	fw_append(&c->lines, line, len, '\0');
	fw_decode(c, line, len);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[8] = {1,   2,    16,	   64,
					 256, 4096, 65536, 16u << 20};
	struct kfi_framer whole, chunked;
	struct fw_lines ref = {0};
	struct fw_ctx c;
	const char *body;
	size_t len, off = 0, limit;
	uint32_t seed;

	if (size < 2)
		return 0;
	memset(&c, 0, sizeof(c));
	limit = limits[data[0] & 7];
	c.transform = (data[0] & 8) != 0;
	if (c.transform)
		c.ing.transform = kf_transform_strip_managed_fields;
	c.ing.kind_hint = (data[0] & 16) ? "ConfigMap" : NULL;
	seed = data[1] * 2654435761u + 1;
	body = (const char *)data + 2;
	len = size - 2;

	kfi_framer_init(&whole, limit);
	KFF_CHECK(kfi_framer_feed(&whole, body, len, fw_collect, &ref) == 0);
	KFF_CHECK(kfi_framer_finish(&whole, fw_collect, &ref) == 0);
	kfi_framer_fini(&whole);

	kfi_framer_init(&chunked, limit);
	while (off < len) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 97;
		if (n > len - off)
			n = len - off;
		KFF_CHECK(
		    kfi_framer_feed(&chunked, body + off, n, fw_line, &c) == 0);
		off += n;
	}
	KFF_CHECK(kfi_framer_finish(&chunked, fw_line, &c) == 0);
	KFF_CHECK(kfi_framer_pending(&chunked) == 0);
	kfi_framer_fini(&chunked);

	KFF_CHECK(ref.count == c.lines.count);
	KFF_CHECK(ref.len == c.lines.len);
	KFF_CHECK(ref.len == 0 ||
		  memcmp(ref.bytes, c.lines.bytes, ref.len) == 0);
	free(ref.bytes);
	free(c.lines.bytes);
	return 0;
}

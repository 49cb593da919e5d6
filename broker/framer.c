/*
 * Newline framing over raw bytes; see framer.h for the contract.
 *
 * Theory: a line is complete only at a '\n' byte. JSON never holds a raw
 * newline inside a string (it must be escaped), and '\n' (0x0a) never occurs
 * inside a multi-byte UTF-8 sequence (those bytes are all >= 0x80), so
 * splitting on the byte is exact whatever the chunking. When a whole line
 * lies inside one feed and nothing is pending, the callback gets a pointer
 * into the caller's bytes: no copy. Only the tail of a feed that does not
 * end in a newline is copied aside, and it grows until its newline arrives
 * or it passes the limit; past the limit the bytes are counted and dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "framer.h"

void
kfi_framer_init(struct kfi_framer *f, size_t limit)
{
	memset(f, 0, sizeof(*f));
	f->limit = limit;
}

void
kfi_framer_fini(struct kfi_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

void
kfi_framer_reset(struct kfi_framer *f)
{
	f->len = 0;
	f->discarded = 0;
}

size_t
kfi_framer_pending(const struct kfi_framer *f)
{
	return f->len;
}

static int
fr_emit(const char *line, size_t len, kfi_frame_fn fn, void *arg)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	return fn(arg, line, len);
}

/* Keep n more bytes of the current line; 1 when the line went over the
 * limit (the caller reports it), -1 when out of memory. */
static int
fr_keep(struct kfi_framer *f, const char *data, size_t n)
{
	size_t want;
	char *nb;

	if (f->discarded > 0) {
		f->discarded += n;
		return 0;
	}
	if (f->len + n > f->limit) {
		f->discarded = f->len + n;
		f->len = 0;
		if (f->cap > 65536) { /* give a big buffer back */
			free(f->buf);
			f->buf = NULL;
			f->cap = 0;
		}
		return 1;
	}
	if (f->len + n > f->cap) {
		want = f->cap ? f->cap : 4096;
		while (want < f->len + n)
			want *= 2;
		if (want > f->limit)
			want = f->limit;
		nb = realloc(f->buf, want);
		if (nb == NULL) {
			f->len = 0;
			return -1;
		}
		f->buf = nb;
		f->cap = want;
	}
	memcpy(f->buf + f->len, data, n);
	f->len += n;
	return 0;
}

static int
fr_oversize(struct kfi_framer *f, kfi_frame_fn fn, void *arg)
{
	f->oversize++;
	return fn(arg, NULL, f->discarded);
}

int
kfi_framer_feed(struct kfi_framer *f, const char *data, size_t len,
		kfi_frame_fn fn, void *arg)
{
	const char *p = data, *end = data + len, *nl;
	int rc;

	/* Bounded by len: each pass consumes at least one byte. */
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			rc = fr_keep(f, p, (size_t)(end - p));
			if (rc == 1)
				return fr_oversize(f, fn, arg);
			return rc;
		}
		if (f->discarded > 0) {
			f->discarded = 0; /* the over-limit line ends here */
			p = nl + 1;
			continue;
		}
		if (f->len == 0) {
			if ((size_t)(nl - p) > f->limit) {
				f->discarded = (size_t)(nl - p);
				rc = fr_oversize(f, fn, arg);
				f->discarded = 0;
			} else {
				rc = fr_emit(p, (size_t)(nl - p), fn, arg);
			}
		} else {
			rc = fr_keep(f, p, (size_t)(nl - p));
			if (rc == 1) {
				rc = fr_oversize(f, fn, arg);
				f->discarded = 0;
			} else if (rc == 0) {
				rc = fr_emit(f->buf, f->len, fn, arg);
				f->len = 0;
			}
		}
		p = nl + 1;
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
kfi_framer_finish(struct kfi_framer *f, kfi_frame_fn fn, void *arg)
{
	int rc = 0;

	if (f->discarded == 0 && f->len > 0)
		rc = fr_emit(f->buf, f->len, fn, arg);
	f->len = 0;
	f->discarded = 0;
	return rc;
}

/*
 * Internal: newline framing of a watch stream over raw bytes.
 *
 * The API server writes one JSON document per line, but HTTP hands the body
 * over in chunks cut anywhere: inside a line, inside a UTF-8 sequence,
 * inside an escape. The framer joins the pieces and hands out whole lines,
 * each exactly once, without the newline (a trailing '\r' is dropped too;
 * blank lines are skipped).
 *
 * Memory is bounded by the line limit: a line longer than `limit` bytes is
 * reported once through the callback (line == NULL, len == bytes seen so
 * far) and the rest of it, up to its newline, is thrown away as it arrives,
 * never buffered.
 *
 * Work per feed is linear in the bytes fed: each byte is looked at once by
 * memchr and copied at most once (only when a line spans feeds).
 *
 * One framer serves one stream on one thread; it takes no locks.
 */
#ifndef KF_BROKER_FRAMER_H
#define KF_BROKER_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/err.h"

/* Called once per whole line (line != NULL), or once per over-limit line
 * (line == NULL, len = bytes of it seen so far). Returning non-zero stops
 * the feed at once; kfi_framer_feed() then returns that value. */
typedef int (*kfi_frame_fn)(void *arg, const char *line, size_t len);

struct kfi_framer {
	char *buf;	   /* the start of a line that spans feeds */
	size_t len;	   /* bytes in buf */
	size_t cap;	   /* bytes allocated for buf */
	size_t limit;	   /* longest line accepted, in bytes */
	size_t discarded;  /* bytes of the current over-limit line, or 0 */
	uint64_t oversize; /* over-limit lines seen */
};

void kfi_framer_init(struct kfi_framer *f, size_t limit);
void kfi_framer_fini(struct kfi_framer *f);

/* Forget any partial line (a new stream starts). Keeps the buffer. */
void kfi_framer_reset(struct kfi_framer *f);

/* Feed the next bytes of the stream. Returns 0, the callback's non-zero
 * value, or -1 when memory ran out (the partial line is then dropped). */
int kfi_framer_feed(struct kfi_framer *f, const char *data, size_t len,
		    kfi_frame_fn fn, void *arg);

/* The stream ended: deliver a last line that had no newline, if any. */
int kfi_framer_finish(struct kfi_framer *f, kfi_frame_fn fn, void *arg);

/* Bytes of a partial line held right now (for tests and stats). */
size_t kfi_framer_pending(const struct kfi_framer *f);

#endif

/*
 * kf_watcher: list and watch one resource, turned into the five events of
 * event.h. kf_loop: one thread that drives any number of watchers over
 * libcurl's multi interface (HTTP/2 over TLS when the server offers it, so
 * many watches share one connection; HTTP/1.1 otherwise).
 *
 * Life: kf_loop_alloc(), kf_loop_start(); kf_watcher_alloc(), set the
 * handlers, kf_watcher_start(w, loop); ... kf_watcher_stop(w) (from any
 * thread; waits until the loop has let go of it, unless called from one of
 * its own handlers), kf_watcher_free(w); kf_loop_stop(), kf_loop_free().
 * kf_loop_stop() stops every watcher still on it.
 *
 * Handlers run on the loop's thread, one at a time per loop, and must not
 * block for long: every watcher of the loop waits meanwhile. The object in
 * an event is borrowed for the call; take a reference to keep it.
 *
 * Protocol (docs/watcher.md has the reasons): lists are paged (`limit`,
 * `continue`, never a resourceVersion on a page request) or streamed
 * (`sendInitialEvents`, when the server supports it; paged otherwise); the
 * resume point is the list's metadata.resourceVersion and then the watch
 * events and bookmarks in stream order; 410 Gone (HTTP or in-stream) lists
 * again with no resourceVersion; other failures back off with jitter and
 * honour Retry-After; a watch asks for bookmarks and `timeoutSeconds` and
 * is dropped after a client idle deadline.
 *
 * Reading status (errors, stats, version) is safe from any thread.
 */
#ifndef KUBEFAN_WATCHER_H
#define KUBEFAN_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "err.h"
#include "event.h"
#include "export.h"
#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_loop kf_loop;
typedef struct kf_watcher kf_watcher;

/* ---- the loop ---- */

KF_API kf_err kf_loop_alloc(kf_loop **out);
/* Start the loop's thread. */
KF_API kf_err kf_loop_start(kf_loop *l);
/* Stop every watcher on the loop and join its thread. Not from a handler. */
KF_API void kf_loop_stop(kf_loop *l);
/* Free a stopped (or never started) loop. Its watchers must be freed
 * first or stopped; they can be freed after it. */
KF_API void kf_loop_free(kf_loop *l);

/* ---- what to watch and how ---- */

typedef enum kf_list_mode {
	KF_LIST_AUTO = 0, /* streaming list, falling back to paged lists */
	KF_LIST_PAGED,	  /* paged lists only */
	KF_LIST_STREAM,	  /* streaming only (no fallback) */
} kf_list_mode;

/* Fill with kf_watcher_opts_init() and set what differs; zero numbers mean
 * the defaults. Strings are copied by kf_watcher_alloc(). */
typedef struct kf_watcher_opts {
	const char *group;	    /* "" or NULL for the core group */
	const char *version;	    /* "v1" */
	const char *resource;	    /* plural, lower case: "configmaps" */
	const char *namespace_;	    /* NULL or "" watches all namespaces (and
				     * is what cluster-scoped resources need) */
	const char *label_selector; /* NULL for none */
	const char *field_selector; /* NULL for none */
	const char *kind; /* kind hint for list items; NULL: taken from
			   * the list's kind */
	kf_list_mode list_mode;
	unsigned page_size;	  /* default 500 */
	unsigned timeout_seconds; /* watch timeoutSeconds; default 290 */
	unsigned idle_ms; /* no byte for this long drops a request; default
			   * (timeout_seconds + 15) s */
	size_t max_line;  /* longest watch line; default 16 MiB */
	size_t max_body;  /* longest list page or error body; default 512 MiB */
	unsigned backoff_initial_ms;   /* default 800 */
	unsigned backoff_max_ms;       /* default 30 000 */
	unsigned backoff_reset_ms;     /* healthy this long resets; 120 000 */
	unsigned stale_after_failures; /* consecutive failures that make the
					* data stale; default 3 */
	kf_transform_fn transform;     /* ingest transform, or NULL */
	void *transform_arg;
} kf_watcher_opts;

KF_API void kf_watcher_opts_init(kf_watcher_opts *o);

/* ---- handlers ---- */

/* One event; ev->obj is borrowed for the call. */
typedef void (*kf_watcher_event_fn)(void *arg, const kf_event *ev);

/* The watch's health changed: healthy false with a reason (a stale or
 * failing watch: idle past the deadline, failures in a row, 401/403), or
 * true once data flows again. */
typedef void (*kf_watcher_health_fn)(void *arg, bool healthy,
				     const char *reason);

/* ---- the watcher ---- */

/* conn must outlive the watcher. KF_EINVAL names a bad option. */
KF_API kf_err kf_watcher_alloc(kf_conn *conn, const kf_watcher_opts *opts,
			       kf_watcher **out);

/* Set the handlers; before kf_watcher_start() only. */
KF_API kf_err kf_watcher_set_handlers(kf_watcher *w, kf_watcher_event_fn ev,
				      kf_watcher_health_fn health, void *arg);

/* Hand the watcher to a started loop; it lists first. Once only. */
KF_API kf_err kf_watcher_start(kf_watcher *w, kf_loop *l);

/* Stop watching: aborts the request in flight and drops what a list had
 * gathered. From any thread it returns once the loop has let go of the
 * watcher (promptly: no request is waited for). From one of the watcher's
 * own handlers it only asks, and returns at once. Idempotent. */
KF_API kf_err kf_watcher_stop(kf_watcher *w);

/* Stop (if needed) and free. Not from a handler. */
KF_API void kf_watcher_free(kf_watcher *w);

/* The last failure and its detail (status, reason, server's message);
 * KF_OK and "" when none happened yet. Kept after recovery. */
KF_API kf_err kf_watcher_last_error(kf_watcher *w, char *buf, size_t len);

/* The resume point: the version the next watch would start from ("" when
 * the next step is a list). */
KF_API void kf_watcher_resource_version(kf_watcher *w, char *buf, size_t len);

/* Counters since alloc; each read atomically (the set is not a snapshot). */
typedef struct kf_watcher_stats {
	uint64_t lists;	       /* lists started (paged or streaming) */
	uint64_t list_pages;   /* list page requests */
	uint64_t relists;      /* lists after the first */
	uint64_t stream_lists; /* lists done by streaming */
	uint64_t watches;      /* watch requests */
	uint64_t gone;	       /* 410s: HTTP status or in-stream ERROR */
	uint64_t bytes;	       /* body bytes received */
	uint64_t added, modified, deleted, bookmarks, errors; /* by type */
	uint64_t unknown_types;	   /* events of unknown type, skipped */
	uint64_t parse_errors;	   /* lines or items that did not parse */
	uint64_t oversize_lines;   /* lines over max_line */
	uint64_t http_errors;	   /* replies with an unexpected status */
	uint64_t transport_errors; /* curl failures, idle deadlines */
	uint64_t retries;	   /* waits before a retry */
	uint64_t idle_timeouts;	   /* requests dropped by the idle deadline */
	/* When the last ADDED, MODIFIED, DELETED or BOOKMARK line arrived
	 * (initial events of a streaming list included), in milliseconds of
	 * CLOCK_MONOTONIC; 0 before the first. */
	uint64_t last_event_ms;
	/* How long the last complete list took, from its first request to
	 * its last byte, in microseconds (at least 1); 0 before the first. */
	uint64_t last_list_us;
} kf_watcher_stats;

KF_API void kf_watcher_stats_get(kf_watcher *w, kf_watcher_stats *out);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Metrics for kubefand: a small registry that renders the Prometheus text
 * exposition format 0.0.4 (HELP and TYPE lines, counters and gauges with
 * label sets).
 *
 * Nothing is stored between scrapes. The daemon declares metric families
 * once, then registers collectors; each scrape (kfi_metrics_render) calls
 * every collector in registration order with a writer, and each collector
 * reads the counters the library already keeps (atomically) and emits one
 * sample per call. So the data path takes no lock and does no work for
 * metrics; only the scrape does.
 *
 * Output order is stable: families in declaration order, and within a
 * family the samples in the order the collectors emitted them. A family
 * with no sample in a scrape is left out. A collector must not emit the
 * same name and label set twice in one scrape (nothing checks it).
 *
 * Threads: declare and add_collector before the first render, from one
 * thread. render is safe from any thread; scrapes are serialised, so a
 * collector never runs twice at once. Collectors run on the rendering
 * thread (the HTTP server's) and must not block for long.
 */
#ifndef KF_BROKER_METRICS_H
#define KF_BROKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/err.h"
#include "kubefan/subscriber.h"
#include "kubefan/watcher.h"

typedef struct kfi_metrics kfi_metrics;
typedef struct kfi_mw kfi_mw; /* the writer a collector emits through */

enum kfi_metric_type {
	KFI_METRIC_COUNTER,
	KFI_METRIC_GAUGE,
};

typedef void (*kfi_metrics_collect_fn)(void *arg, kfi_mw *w);

kf_err kfi_metrics_alloc(kfi_metrics **out);
void kfi_metrics_free(kfi_metrics *m);

/* Declare a family. The name must match [a-zA-Z_:][a-zA-Z0-9_:]*, and a
 * counter's must end in "_total"; help is one line of any text (escaped on
 * output). KF_EINVAL on a bad or duplicate name. Both strings are copied. */
kf_err kfi_metrics_declare(kfi_metrics *m, enum kfi_metric_type type,
			   const char *name, const char *help);

/* Register a collector, called at every scrape. arg is borrowed: it must
 * outlive the registry or the last render. */
kf_err kfi_metrics_add_collector(kfi_metrics *m, kfi_metrics_collect_fn fn,
				 void *arg);

/* One scrape: run the collectors and render. *out is a NUL-terminated
 * malloc'd text of *len bytes; the caller frees it. KF_ENOMEM leaves *out
 * NULL. */
kf_err kfi_metrics_render(kfi_metrics *m, char **out, size_t *len);

/* Samples dropped since alloc because their family was not declared, a
 * label name was invalid, or a label had no value. A non-zero value is a
 * bug in a collector. */
uint64_t kfi_metrics_dropped(kfi_metrics *m);

/* ---- inside a collector ---- */

/* labels: NULL, or name/value pairs ending with a NULL name. Label values
 * may hold any bytes; \, " and newline are escaped on output. */
#define KFI_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

void kfi_mw_u64(kfi_mw *w, const char *name, const char *const *labels,
		uint64_t v);
/* NaN and the infinities are written as NaN, +Inf and -Inf. */
void kfi_mw_f64(kfi_mw *w, const char *name, const char *const *labels,
		double v);

/* ---- process metrics ---- */

/* Declare the conventional process_* families (resident and virtual
 * memory, open and maximum fds, cpu seconds, start time) and register a
 * collector that reads them from /proc/self at each scrape. */
kf_err kfi_metrics_add_process(kfi_metrics *m);

/* ---- the families kubefand exports (docs/operations.md) ---- */

/* Declare every kubefan_* family below, and kubefan_build_info. */
kf_err kfi_metrics_declare_kubefand(kfi_metrics *m, const char *version);

/* kubefan_build_info{version} 1. */
void kfi_mw_build_info(kfi_mw *w);

/* Per resource, from its watcher's counters: events by type, lists,
 * re-lists, list pages, 410s, watch restarts, bytes, errors by kind,
 * retries. */
void kfi_mw_watcher(kfi_mw *w, const char *resource, const kf_watcher_stats *s);

/* Per resource, values the daemon tracks itself. A negative age or
 * duration means "not known yet" and leaves that sample out. */
struct kfi_resource_sample {
	uint64_t objects;	 /* kf_store_len() */
	bool ready;		 /* kf_store_is_ready() */
	double last_event_age_s; /* since the last event or bookmark */
	double last_list_s;	 /* duration of the last complete list */
};
void kfi_mw_resource(kfi_mw *w, const char *resource,
		     const struct kfi_resource_sample *s);

/* Per ring (one per resource with a shared store). */
struct kfi_ring_sample {
	uint64_t capacity;    /* slots */
	uint64_t head;	      /* sequence of the newest event */
	uint64_t slowest_lag; /* events the slowest reader has not read */
	uint64_t published;   /* events published since alloc */
};
void kfi_mw_ring(kfi_mw *w, const char *resource,
		 const struct kfi_ring_sample *s);

/* Per in-process subscriber of a resource (subscriber: a stable name). */
void kfi_mw_subscriber(kfi_mw *w, const char *resource, const char *subscriber,
		       const kf_sub_stats *s);

/* The remote publisher, as a whole (fill from kf_publisher_stats). */
struct kfi_publisher_sample {
	uint64_t messages; /* PUB messages sent, all kinds */
	uint64_t bytes;	   /* PUB bytes sent */
	uint64_t batches;  /* event batches sent */
	uint64_t drops;	   /* messages not sent (send failures) */
	uint64_t heartbeats;
	uint64_t resets;
	uint64_t lagged;   /* times a stream's feed lagged the ring */
	uint64_t requests; /* REP requests answered */
	uint64_t bad_requests;
	uint64_t snapshots; /* snapshots opened */
	uint64_t stalled;   /* requesters cut off for not reading */
};
void kfi_mw_publisher(kfi_mw *w, const struct kfi_publisher_sample *s);

/* The remote publisher, per stream (fill from kf_publisher_stream_stats). */
void kfi_mw_publisher_stream(kfi_mw *w, const char *stream, uint64_t seq,
			     uint64_t objects);

#endif

/*
 * kf_publisher: publishes shared stores over nng, the broker side of the
 * wire protocol (docs/protocol.md). kubefand is one user; a program that
 * runs its own reflectors can embed a publisher the same way.
 *
 * One publisher owns a PUB socket for events (and optionally a second PUB
 * socket with the same events as references only) and a REP socket that
 * answers hello, snapshot, status and get. Each stream is one shared store
 * (kf_store_shared_alloc); the publisher subscribes to it and keeps its own
 * mirror so every snapshot it serves is consistent with a sequence number.
 *
 * Life: kf_publisher_alloc() binds the sockets; kf_publisher_add_stream()
 * for each stream; kf_publisher_start() starts one thread per stream and
 * one for requests; kf_publisher_free() stops and joins them and closes
 * the sockets. The stores must outlive the publisher. Stats are safe from
 * any thread.
 */
#ifndef KUBEFAN_PUBLISHER_H
#define KUBEFAN_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "export.h"
#include "store.h"
#include "subscriber.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_publisher kf_publisher;

/* Zero means the default for every number. Strings are used during
 * kf_publisher_alloc() only. */
typedef struct kf_publisher_opts {
	const char *pub_addr;  /* required: ipc://, tcp://, tls+tcp:// */
	const char *refs_addr; /* optional reference-only PUB address */
	const char *rep_addr;  /* required */
	int ipc_mode;	       /* socket file mode; default 0600 */
	bool allow_remote;     /* allow tcp listeners off loopback */
	const char *tls_cert_key_file; /* tls+tcp: certificate + key PEM */
	unsigned batch_delay_us;       /* longest hold; default 0 = off */
	size_t batch_max_bytes;	       /* default 64 KiB */
	unsigned heartbeat_ms;	       /* default 1000 */
	size_t snapshot_chunk_bytes;   /* default 1 MiB */
	unsigned snapshot_ttl_ms;      /* idle open snapshots; 30 000 */
	uint64_t incarnation;	       /* 0: random (tests fix it) */
} kf_publisher_opts;

typedef struct kf_publisher_stats {
	uint64_t incarnation;
	uint64_t messages; /* PUB messages sent (all kinds) */
	uint64_t batches;  /* EVENTS messages sent on the full feed */
	uint64_t events;   /* event records numbered */
	uint64_t bytes;	   /* PUB bytes sent on the full feed */
	uint64_t heartbeats;
	uint64_t resets;
	uint64_t lagged;	     /* times a stream's subscription lagged */
	uint64_t send_errors;	     /* nng_sendmsg failures */
	uint64_t requests;	     /* requests answered */
	uint64_t bad_requests;	     /* malformed requests */
	uint64_t snapshots;	     /* snapshots opened */
	uint64_t stalled_requesters; /* connections closed for not reading */
} kf_publisher_stats;

typedef struct kf_publisher_stream_stats {
	uint64_t seq;	/* last sequence number published */
	uint64_t base;	/* sequence of the last RESET */
	size_t objects; /* objects in the publisher's mirror */
	bool synced;
} kf_publisher_stream_stats;

/* errbuf (may be NULL) names the address that failed and why. tcp
 * listeners off loopback are KF_ECONFIG unless allow_remote. */
KF_API kf_err kf_publisher_alloc(const kf_publisher_opts *opts, char *errbuf,
				 size_t errlen, kf_publisher **out);

/* Before start. name is the stream id on the wire (unique, no NUL); src is
 * a shared store, borrowed. */
KF_API kf_err kf_publisher_add_stream(kf_publisher *p, const char *name,
				      kf_store *src);

KF_API kf_err kf_publisher_start(kf_publisher *p);
KF_API void kf_publisher_free(kf_publisher *p);

KF_API void kf_publisher_stats_get(kf_publisher *p, kf_publisher_stats *out);
KF_API size_t kf_publisher_stream_count(kf_publisher *p);
/* The i-th stream's name (owned by the publisher) and counters. */
KF_API const char *
kf_publisher_stream_stats_get(kf_publisher *p, size_t i,
			      kf_publisher_stream_stats *out);

/* The counters of the i-th stream's own subscription to its source store
 * (what feeds the stream). KF_EINVAL for i out of range or a stream with
 * no source store, or before kf_publisher_start(). Any thread once
 * kf_publisher_start() has returned. */
KF_API kf_err kf_publisher_stream_feed_stats(kf_publisher *p, size_t i,
					     kf_sub_stats *out);

#ifdef __cplusplus
}
#endif

#endif

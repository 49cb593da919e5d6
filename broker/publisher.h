/*
 * Internal: the nng publisher. One kfi_pub owns the broker's sockets: a PUB
 * socket for events (and an optional second PUB socket carrying the same
 * events as references only), and a REP socket answering hello, snapshot,
 * status and get (docs/protocol.md). Each stream is one resource: the
 * publisher keeps its own mirror of the stream (a plain store of shared
 * object references) and numbers every change it publishes, so a snapshot
 * it serves is exactly consistent with a sequence number.
 *
 * Life: kfi_pub_alloc() (binds the sockets), kfi_pub_add_stream() for each
 * stream, kfi_pub_start() (the REP thread, and one thread per stream that
 * has a source store), ..., kfi_pub_free() (stops and joins everything).
 *
 * A stream with a source store is fed by its own thread, an in-process
 * subscriber of that store. A stream without one is fed by the caller
 * through kfi_pub_feed()/kfi_pub_flush()/kfi_pub_heartbeat(), from one
 * thread at a time (tests drive the protocol this way). The REP thread
 * reads mirrors under each stream's mutex; nothing else is shared.
 */
#ifndef KF_BROKER_PUBLISHER_H
#define KF_BROKER_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/err.h"
#include "kubefan/event.h"
#include "kubefan/store.h"

struct kfi_pub;
struct kfi_pub_stream;

struct kfi_pub_opts {
	const char *pub_addr;  /* required: ipc://, tcp://, tls+tcp:// */
	const char *refs_addr; /* optional reference-only PUB address */
	const char *rep_addr;  /* required */
	int ipc_mode;	       /* socket file mode; default 0600 */
	bool allow_remote;     /* allow tcp binds off loopback */
	const char *tls_cert_key_file; /* tls+tcp: cert + key, one PEM */
	unsigned batch_delay_us;       /* longest hold; default 2000, 0 off */
	size_t batch_max_bytes;	       /* default 64 KiB */
	unsigned heartbeat_ms;	       /* default 1000 */
	size_t snapshot_chunk_bytes;   /* default 1 MiB */
	unsigned snapshot_ttl_ms;      /* idle open snapshots; 30 000 */
	uint64_t incarnation;	       /* 0: random */
};

struct kfi_pub_stats {
	uint64_t incarnation;
	uint64_t messages; /* PUB messages sent (all kinds) */
	uint64_t events;   /* event records published */
	uint64_t bytes;	   /* PUB bytes sent (full feed) */
	uint64_t heartbeats;
	uint64_t resets;
	uint64_t lagged;       /* times a stream's subscriber lagged */
	uint64_t send_errors;  /* nng_sendmsg failures */
	uint64_t requests;     /* REP requests answered */
	uint64_t bad_requests; /* malformed requests */
	uint64_t snapshots;    /* snapshots opened */
};

struct kfi_pub_stream_stats {
	uint64_t seq;	/* last sequence number published */
	uint64_t base;	/* sequence of the last RESET */
	size_t objects; /* objects in the publisher's mirror */
	bool synced;
};

/* errbuf (may be NULL) says which address failed and why. */
kf_err kfi_pub_alloc(const struct kfi_pub_opts *opts, char *errbuf,
		     size_t errlen, struct kfi_pub **out);

/* Before kfi_pub_start(). name is the stream id of the wire protocol (no
 * NUL, no '/' restrictions; unique). src NULL: fed by kfi_pub_feed().
 * src is borrowed and must outlive the publisher. */
kf_err kfi_pub_add_stream(struct kfi_pub *p, const char *name, kf_store *src,
			  struct kfi_pub_stream **out);

kf_err kfi_pub_start(struct kfi_pub *p);

/* Stop every thread, close the sockets, free everything. */
void kfi_pub_free(struct kfi_pub *p);

/* Manual feeding (streams without a source), one thread per stream: the
 * event algebra as a subscriber sees it (INIT..INIT_DONE frames, APPLY,
 * DELETE, LAGGED). The publisher takes its own references. */
void kfi_pub_feed(struct kfi_pub_stream *s, const kf_event *ev);
/* Send the open batch now. */
void kfi_pub_flush(struct kfi_pub_stream *s);
/* Flush, then send a heartbeat now. */
void kfi_pub_heartbeat(struct kfi_pub_stream *s);
/* Test hook: number the next event but do not send it (a lost message). */
void kfi_pub_drop_next(struct kfi_pub_stream *s);

void kfi_pub_stats_get(struct kfi_pub *p, struct kfi_pub_stats *out);
void kfi_pub_stream_stats_get(struct kfi_pub_stream *s,
			      struct kfi_pub_stream_stats *out);
size_t kfi_pub_stream_count(struct kfi_pub *p);
struct kfi_pub_stream *kfi_pub_stream_at(struct kfi_pub *p, size_t i);
const char *kfi_pub_stream_name(struct kfi_pub_stream *s);

#endif

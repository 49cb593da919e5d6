/*
 * Internal: the nng publisher. One kfi_pub owns the broker's sockets: a PUB
 * socket for events (and an optional second PUB socket carrying the same
 * events as references only), and a REP socket answering hello, snapshot,
 * status and get (docs/protocol.md). Each stream is one resource: the
 * publisher keeps its own mirror of the stream (a plain store of shared
 * object references) and numbers every change it publishes, so a snapshot
 * it serves is exactly consistent with a sequence number.
 *
 * Life: kf_publisher_alloc() (binds the sockets), kfi_pub_add_stream() for each
 * stream, kf_publisher_start() (the REP thread, and one thread per stream that
 * has a source store), ..., kf_publisher_free() (stops and joins everything).
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
#include "kubefan/publisher.h"
#include "kubefan/store.h"

struct kfi_pub_stream;

/* kf_publisher_add_stream(), returning the stream; src NULL makes a
 * stream fed by kfi_pub_feed(). */
kf_err kfi_pub_add_stream(kf_publisher *p, const char *name, kf_store *src,
			  struct kfi_pub_stream **out);

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

void kfi_pub_stream_stats_get(struct kfi_pub_stream *s,
			      kf_publisher_stream_stats *out);
struct kfi_pub_stream *kfi_pub_stream_at(kf_publisher *p, size_t i);
const char *kfi_pub_stream_name(struct kfi_pub_stream *s);

#endif

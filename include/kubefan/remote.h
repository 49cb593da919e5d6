/*
 * Remote subscriptions: a stream of a kubefand broker, read over nng, with
 * the same handle shape as an in-process subscription (subscriber.h) and a
 * local mirror store with the same reader calls (store.h).
 *
 * kf_remote_subscribe() dials the broker's PUB and REP addresses (it does
 * not wait for them: a broker that is not up yet is fine) and returns at
 * once. The handle then delivers what an in-process subscriber sees:
 *
 *   INIT, INIT_APPLY per object, INIT_DONE   the broker's state
 *   APPLY, DELETE ...                         live changes, in order
 *
 * with no gap and no duplicate in between. nng PUB loses messages to slow
 * or late peers, so every message is numbered; on a gap, a RESET from the
 * broker, a new broker incarnation (restart), or a lost tail message
 * (noticed from heartbeats), the handle delivers KF_EV_LAGGED (missed: the
 * number of events known lost, 0 when unknown) and then a fresh
 * INIT..INIT_DONE frame fetched over the reliable request channel, after
 * which live events continue. The mirror is replaced in one swap by each
 * frame; it is marked stale while the broker is silent (no message for
 * heartbeat_timeout_ms) and fresh again when it speaks.
 *
 * Threads: one thread at a time calls next/try_next (the protocol work is
 * done inside those calls; no thread of ours runs in the background);
 * kf_remote_stats() and the mirror's reader calls are safe from any
 * thread; kf_remote_close() is from the reading thread, or from any
 * thread while no next/try_next runs (it frees the handle).
 *
 * Objects: ev->obj is borrowed until the next next/try_next or close; take
 * kf_object_ref() to keep it. Objects of a reference-only subscription
 * carry apiVersion, kind and metadata (name, namespace, uid,
 * resourceVersion) only.
 */
#ifndef KUBEFAN_REMOTE_H
#define KUBEFAN_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "event.h"
#include "export.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_remote kf_remote;

/* Fill with kf_remote_opts_init() and set what differs. Strings are
 * copied. */
typedef struct kf_remote_opts {
	const char *pub_addr;	/* the broker's PUB (or reference-only PUB) */
	const char *rep_addr;	/* the broker's REP; NULL: derived from
				 * pub_addr as kubefand does (x.pub ->
				 * x.rep for ipc, port + 1 for tcp) */
	const char *stream;	/* stream id, as the broker names it */
	const char *namespace_; /* NULL or "": every namespace */
	bool refs_only;		/* ask snapshots without JSON (use with the
				 * broker's reference-only PUB address) */
	int recv_buffer;	/* SUB queue in messages; 0: 8192 (max) */
	int64_t request_timeout_ms;   /* one snapshot/status reply; 5000 */
	int64_t heartbeat_timeout_ms; /* silence that marks the mirror
				       * stale; 0: 3 broker intervals */
	int64_t backoff_max_ms;	      /* retry cap; default 5000 */
	const char *tls_ca_file;      /* tls+tcp:// trust */
	const char *tls_server_name;  /* tls+tcp:// name to verify */
} kf_remote_opts;

KF_API void kf_remote_opts_init(kf_remote_opts *o);

/* The request/reply address kubefand pairs with a PUB address when none is
 * configured: ipc://x.pub -> ipc://x.rep (ipc://x -> ipc://x.rep), and
 * tcp:// or tls+tcp:// port + 1. Returns a malloc'd string the caller
 * frees, or NULL when none can be derived (or on allocation failure). */
KF_API char *kf_remote_rep_address(const char *pub);

KF_API kf_err kf_remote_subscribe(const kf_remote_opts *o, kf_remote **out);

/* The next event: KF_OK, KF_ETIMEDOUT after timeout_ms (0: do not wait;
 * < 0: wait forever), or KF_ECLOSED. A re-sync started inside may wait
 * for the snapshot reply (request_timeout_ms per chunk) beyond the
 * timeout. */
KF_API kf_err kf_remote_next(kf_remote *r, int64_t timeout_ms, kf_event *ev);

/* Never waits for an event: KF_OK or KF_EAGAIN (a re-sync it starts still
 * waits for its snapshot, as above). */
KF_API kf_err kf_remote_try_next(kf_remote *r, kf_event *ev);

/* A file descriptor for poll: readable when a message from the broker is
 * waiting. Call kf_remote_try_next() until KF_EAGAIN, then poll again,
 * with a timeout no longer than a broker heartbeat interval (1 s) so that
 * silence and lost tail messages are noticed. Owned by the handle. */
KF_API int kf_remote_fd(kf_remote *r);

/* The mirror: a reader of the local store (borrowed; kf_store_clone() it
 * for another thread or to keep it past close). */
KF_API kf_store *kf_remote_store(kf_remote *r);

typedef struct kf_remote_stats {
	uint64_t delivered;	 /* events returned by next/try_next */
	uint64_t messages;	 /* PUB messages received */
	uint64_t applied;	 /* live events applied to the mirror */
	uint64_t duplicates;	 /* records already covered, skipped */
	uint64_t gaps;		 /* sequence gaps detected */
	uint64_t missed;	 /* events known lost in those gaps */
	uint64_t resyncs;	 /* snapshots applied after the first */
	uint64_t snapshots;	 /* snapshots applied, the first included */
	uint64_t resets;	 /* RESETs from the broker that re-synced */
	uint64_t restarts;	 /* new broker incarnations seen */
	uint64_t silences;	 /* times the broker went silent */
	uint64_t malformed;	 /* messages rejected by the decoder */
	uint64_t request_errors; /* failed or timed-out requests */
	uint64_t redials;	 /* dialers replaced: after a request found
				  * no connection, and once per silence
				  * period while the broker is silent */
	uint64_t seq;	      /* the sequence the mirror is consistent with */
	uint64_t incarnation; /* the broker incarnation followed */
	uint64_t snapshots_dropped; /* snapshots the broker evicted before
				     * their last chunk was read (it keeps
				     * 64 open); each is started again */
} kf_remote_stats;

KF_API void kf_remote_stats_get(kf_remote *r, kf_remote_stats *out);

/* Close the sockets and free the handle (the mirror lives on while a
 * clone of its reader does). */
KF_API void kf_remote_close(kf_remote *r);

#ifdef __cplusplus
}
#endif

#endif

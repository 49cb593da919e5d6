/*
 * Subscriptions to a shared store's broadcast ring ("subscribe()").
 *
 * kf_store_subscribe() works on a store made by kf_store_shared_alloc(),
 * at any time: before the first list, or long after the watch started.
 * The stream a subscriber reads (see event.h):
 *
 *   INIT, INIT_APPLY per object, INIT_DONE   the store's current state
 *   APPLY, DELETE ...                         live changes, in order
 *
 * with no gap and no duplicate between the two parts, also while events
 * are being published. The state frame is taken from the store by the
 * subscriber's first read, not by kf_store_subscribe(): changes made in
 * between are already in the frame and are not delivered one by one (an
 * object created and deleted meanwhile is never seen). Read first to
 * see each change from a point on. Created before the store's first list
 * completes, the subscriber gets INIT at its first read and the rest of
 * the frame when the list is done.
 *
 * The writer never waits for a subscriber (policy KF_SUB_DROP, the
 * default). A subscriber that falls more than the ring's capacity behind
 * gets KF_EV_LAGGED with the exact number of events it missed, then the
 * events the ring still holds up to the moment it noticed, then a fresh
 * INIT..INIT_DONE frame from the store, after which live events follow
 * as before. With KF_SUB_BLOCK the writer waits for this subscriber, up
 * to block_timeout_ms per event, before treating it as lagged.
 *
 * Threads: one thread at a time reads a handle (next, try_next, and the
 * fd); kf_subscriber_close() and kf_subscriber_stats() are safe from any
 * thread at any time; kf_subscriber_free() once, when no other thread
 * uses the handle. Handles are independent: closing or stalling one
 * never affects another.
 *
 * Wake-ups: a blocking next may spin for a few microseconds before it
 * sleeps (only while a CPU is free for it), and a next woken by the writer
 * first passes the wake-up on to a few other sleeping subscribers (up to
 * two system calls), so that the writer makes at most one per event.
 *
 * Objects: ev->obj is borrowed. It stays valid until the next call of
 * next/try_next on the same handle, or close; take kf_object_ref() to
 * keep it longer. Delivery copies no object and takes no reference.
 */
#ifndef KUBEFAN_SUBSCRIBER_H
#define KUBEFAN_SUBSCRIBER_H

#include <stdint.h>

#include "err.h"
#include "event.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_store kf_store;
typedef struct kf_subscriber kf_subscriber;

typedef enum kf_sub_policy {
	KF_SUB_DROP = 0, /* the writer never waits; overflow means lag */
	KF_SUB_BLOCK,	 /* the writer waits up to block_timeout_ms */
} kf_sub_policy;

typedef struct kf_sub_opts {
	kf_sub_policy policy;
	/* KF_SUB_BLOCK: how long the writer waits for this subscriber on
	 * one event before it marks it lagged and stops waiting for it
	 * (until it reads again). 0 means the default, 1000 ms; negative
	 * is KF_EINVAL; a huge value waits as long as the reader takes. */
	int64_t block_timeout_ms;
} kf_sub_opts;

typedef struct kf_sub_stats {
	uint64_t delivered; /* events returned by next/try_next */
	uint64_t lag;	    /* events published and not yet read */
	uint64_t missed;    /* events overwritten before they were read */
	uint64_t lagged;    /* times KF_EV_LAGGED was delivered */
	uint64_t resyncs;   /* re-sync frames after a lag */
} kf_sub_stats;

/* Subscribe to a shared store. opts may be NULL (defaults). KF_EINVAL on a
 * store without a ring, an unknown policy or a negative block_timeout_ms
 * (logged as KF-SUB-OPTS). The handle keeps the store alive. */
KF_API kf_err kf_store_subscribe(kf_store *s, const kf_sub_opts *opts,
				 kf_subscriber **out);

/* The next event: KF_OK, KF_ETIMEDOUT after timeout_ms (0: do not wait;
 * < 0: wait forever), or KF_ECLOSED once the handle (or its store's ring)
 * is closed. */
KF_API kf_err kf_subscriber_next(kf_subscriber *sub, int64_t timeout_ms,
				 kf_event *ev);

/* Never blocks: KF_OK, KF_EAGAIN when nothing is ready, or KF_ECLOSED.
 * KF_EAGAIN also re-arms the fd. */
KF_API kf_err kf_subscriber_try_next(kf_subscriber *sub, kf_event *ev);

/* A file descriptor for poll/epoll: it becomes readable when an event may
 * be ready. Call kf_subscriber_try_next() until KF_EAGAIN, then wait on
 * the fd again; the fd is reset by that KF_EAGAIN (edge-triggered epoll
 * works). Owned by the handle; do not read or close it. */
KF_API int kf_subscriber_fd(kf_subscriber *sub);

/* Any thread, any number of times: stop the subscription and wake a
 * blocked next (it returns KF_ECLOSED). */
KF_API void kf_subscriber_close(kf_subscriber *sub);

/* Close and free. */
KF_API void kf_subscriber_free(kf_subscriber *sub);

/* Counters; any thread. */
KF_API void kf_subscriber_stats(kf_subscriber *sub, kf_sub_stats *out);

/* A shared store's ring, for monitoring. */
typedef struct kf_ring_stats {
	uint64_t capacity; /* slots */
	uint64_t head;	   /* sequence number of the newest event, which is
			    * also the number published; 0 before the first */
} kf_ring_stats;

/* Any thread, never blocks. KF_EINVAL for a store without a ring. */
KF_API kf_err kf_store_ring_stats(kf_store *s, kf_ring_stats *out);

#ifdef __cplusplus
}
#endif

#endif

/*
 * A controller on a shared store: a subscription feeds a work queue of
 * object refs, and N worker threads call reconcile for each.
 *
 * kf_controller_for_shared_stream() subscribes to the store (see
 * subscriber.h); several controllers on one store share its one watch.
 * kf_controller_start() starts one feeder thread and `workers` worker
 * threads; kf_controller_stop() stops taking events, lets reconciles that
 * are running finish, and joins the threads; kf_controller_free() stops
 * and frees.
 *
 * The queue holds each ref at most once. A ref that changes while it is
 * being reconciled is queued again and reconciled after the running call
 * returns: one ref is never reconciled by two workers at once.
 *
 * reconcile(arg, ref, obj, &requeue_ms) gets the store's current object
 * for ref (borrowed for the call; kf_object_ref() to keep it), or NULL
 * when the object is gone. It returns KF_OK, optionally setting
 * *requeue_ms >= 0 to be called again after that delay, or an error. On
 * an error, error_policy(arg, ref, err, failures, backoff_ms) returns the
 * delay before the next try (< 0: drop the ref until its next event);
 * backoff_ms is the per-ref exponential backoff, base * 2^(failures-1)
 * capped at max. Without an error_policy that backoff is used. A success
 * resets the ref's failure count.
 *
 * Deletes are reconciled also when the subscription lagged past them: at
 * the end of the re-sync frame every object the controller knew that the
 * frame does not list is queued (and then reconciled with NULL).
 *
 * Callbacks run on worker threads, several at once for different refs.
 * The ref passed to callbacks is valid for the call only.
 */
#ifndef KUBEFAN_CONTROLLER_H
#define KUBEFAN_CONTROLLER_H

#include <stdint.h>

#include "err.h"
#include "export.h"
#include "object.h"
#include "subscriber.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_controller kf_controller;

typedef kf_err (*kf_reconcile_fn)(void *arg, const kf_objref *ref,
				  kf_object *obj, int64_t *requeue_ms);
typedef int64_t (*kf_error_policy_fn)(void *arg, const kf_objref *ref,
				      kf_err err, uint32_t failures,
				      int64_t backoff_ms);

typedef struct kf_controller_opts {
	const char *name;		 /* for logs; copied */
	unsigned workers;		 /* 0 means 1 */
	kf_reconcile_fn reconcile;	 /* required */
	kf_error_policy_fn error_policy; /* NULL: retry with the backoff */
	void *arg;			 /* passed to both callbacks */
	int64_t backoff_base_ms;	 /* 0 means 5 */
	int64_t backoff_max_ms;		 /* 0 means 300000 */
	kf_sub_opts sub;		 /* for the internal subscription */
} kf_controller_opts;

typedef struct kf_ctl_stats {
	uint64_t reconciles; /* calls of reconcile */
	uint64_t errors;     /* reconcile calls that failed */
	uint64_t requeues;   /* delayed re-runs scheduled */
	uint64_t queued;     /* refs waiting now (ready or delayed) */
	kf_sub_stats sub;    /* the internal subscription */
} kf_ctl_stats;

KF_API kf_err kf_controller_for_shared_stream(kf_store *s,
					      const kf_controller_opts *opts,
					      kf_controller **out);

/* KF_EINVAL when started already, KF_ECLOSED after kf_controller_stop(),
 * KF_EIO when a thread cannot start (the threads already started are
 * ended; start may be tried again). */
KF_API kf_err kf_controller_start(kf_controller *c);

/* Graceful: no new reconcile starts; running ones finish; threads are
 * joined. Refs still queued are dropped. Idempotent. From a callback it
 * stops the controller without waiting (a worker cannot join itself;
 * logged as KF-CTL-STOP-CALLBACK) and kf_controller_free() joins. */
KF_API void kf_controller_stop(kf_controller *c);

KF_API void kf_controller_free(kf_controller *c);

/* Queue a ref by hand (its strings are copied); any thread. */
KF_API kf_err kf_controller_enqueue(kf_controller *c, const kf_objref *ref);

KF_API void kf_controller_stats(kf_controller *c, kf_ctl_stats *out);

#ifdef __cplusplus
}
#endif

#endif

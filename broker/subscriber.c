/*
 * subscriber: the stream a subscription reads, built from a store
 * snapshot and the broadcast ring (ring.c).
 *
 * Theory of operation
 *
 * A subscriber is a small state machine driven by the reading thread:
 *
 *   INIT ──(store synced)──► SNAPSHOT ─► CATCHUP ─► LIVE
 *     └─(not yet)─► WAIT_SYNC ─(INIT_DONE marker or synced)─┘
 *   LIVE/CATCHUP ─(lag)─► DRAIN ─► RESYNC ─► SNAPSHOT ...
 *
 * Snapshot without gap or duplicate. The source reads the ring head h0,
 * takes a snapshot S whose entries carry the sequence number of the
 * event that last set them, and reads the head again, h1. Every event
 * below h0 is in S; none at or above h1 is. The subscriber delivers S as
 * INIT_APPLY, then reads the ring from h0. Events in [h0, h1) may or may
 * not be in S, so they are checked against a temporary map of S's keys:
 * an APPLY is skipped when S holds that key with an entry number at or
 * above the event's; a DELETE is delivered only while the key is present
 * in what this subscriber has been shown (from S with an older entry
 * number, or applied during the catch-up). Events from h1 on pass as
 * they are and the map is freed. As a guard against a store that makes a
 * change visible before it publishes it, an entry numbered at or above
 * h1 moves the end of the catch-up past that entry.
 *
 * Lag. The ring tells the reader how many events were overwritten; the
 * subscriber adds up consecutive lags until a read succeeds (that event
 * is kept aside), delivers LAGGED with the total, then the kept event
 * and the rest of what the ring held when the lag was noticed (DRAIN),
 * then a fresh INIT..INIT_DONE frame from the store (RESYNC). A lag
 * during a catch-up keeps the catch-up map until RESYNC, so the drain
 * skips events below h1 that the frame already showed, as the catch-up
 * would have: an APPLY never goes back behind what was shown.
 *
 * Delivery copies nothing: ring events come out protected by the
 * reader's hazard pointer (see ring.c), snapshot objects are borrowed
 * from the snapshot, which lives until the catch-up ends.
 */
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/object.h"
#include "kubefan/subscriber.h"
#include "log.h"
#include "mono.h"
#include "ring.h"
#include "store_int.h"

enum sub_state {
	SS_INIT,
	SS_WAIT_SYNC,
	SS_SNAPSHOT,
	SS_CATCHUP,
	SS_LIVE,
	SS_DRAIN,
	SS_RESYNC,
};

/* One key of the catch-up map. */
struct sub_key {
	kf_object *obj; /* names the key; NULL = empty slot */
	uint64_t hash;
	uint64_t seq_s; /* entry number in S; 0 when not in S */
	bool present;	/* in the view this subscriber was shown */
	bool owned;	/* obj referenced by the map (not from S) */
};

struct kf_subscriber {
	struct kfi_sub_source src;
	struct kfi_ring_reader *rd;
	enum sub_state state;
	bool fd_used;
	_Atomic bool closed;

	/* SNAPSHOT / CATCHUP */
	void *snap;
	size_t snap_i, snap_n;
	uint64_t h0, h1;
	struct sub_key *map;
	size_t map_cap;

	/* Lag */
	uint64_t drain_to;
	bool stash_valid;
	kf_event stash;
	uint64_t stash_seq;

	_Atomic uint64_t st_delivered, st_missed, st_lagged, st_resyncs;
};

static void
sub_count(_Atomic uint64_t *c, uint64_t n)
{
	/* One writer (the reading thread); readers load. */
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* ---- the catch-up map ---- */

static struct sub_key *
sub_map_find(struct kf_subscriber *sub, const kf_objref *ref, uint64_t h)
{
	size_t mask = sub->map_cap - 1;

	/* Bounded: the map is at most half full. */
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct sub_key *k = &sub->map[i];

		if (k->obj == NULL)
			return k;
		if (k->hash == h) {
			kf_objref kr = kf_object_objref(k->obj);

			if (kf_objref_equal(&kr, ref))
				return k;
		}
	}
}

static void
sub_map_free(struct kf_subscriber *sub)
{
	for (size_t i = 0; i < sub->map_cap; i++)
		if (sub->map[i].owned)
			kf_object_unref(sub->map[i].obj);
	free(sub->map);
	sub->map = NULL;
	sub->map_cap = 0;
}

static void
sub_snap_free(struct kf_subscriber *sub)
{
	if (sub->map != NULL)
		sub_map_free(sub);
	if (sub->snap != NULL)
		sub->src.ops->snap_free(sub->snap);
	sub->snap = NULL;
}

/* Build the map of S's keys, when the catch-up needs one. An entry
 * numbered >= h1 first moves h1 past it. */
static kf_err
sub_map_build(struct kf_subscriber *sub)
{
	size_t want, cap = 16;

	for (size_t i = 0; i < sub->snap_n; i++) {
		uint64_t seq = sub->src.ops->snap_seq_at(sub->snap, i);

		if (seq >= sub->h1)
			sub->h1 = seq + 1;
	}
	if (sub->h1 <= sub->h0)
		return KF_OK;
	want = 2 * (sub->snap_n + (size_t)(sub->h1 - sub->h0)) + 16;
	while (cap < want)
		cap *= 2;
	sub->map = calloc(cap, sizeof(*sub->map));
	if (sub->map == NULL)
		return KF_ENOMEM;
	sub->map_cap = cap;
	for (size_t i = 0; i < sub->snap_n; i++) {
		kf_object *o = sub->src.ops->snap_at(sub->snap, i);
		uint64_t seq = sub->src.ops->snap_seq_at(sub->snap, i);
		kf_objref ref = kf_object_objref(o);
		uint64_t h = kf_objref_hash(&ref);
		struct sub_key *k = sub_map_find(sub, &ref, h);

		if (k->obj == NULL) {
			k->obj = o;
			k->hash = h;
		}
		if (seq > k->seq_s)
			k->seq_s = seq;
		k->present = true;
	}
	return KF_OK;
}

/* Decide whether catch-up event `seq` reaches the user. */
static bool
sub_catchup_pass(struct kf_subscriber *sub, const kf_event *ev, uint64_t seq)
{
	kf_objref ref;
	struct sub_key *k;
	uint64_t h;

	if (ev->obj == NULL)
		return false;
	ref = kf_object_objref(ev->obj);
	h = kf_objref_hash(&ref);
	k = sub_map_find(sub, &ref, h);
	if (ev->type == KF_EV_DELETE) {
		if (k->obj == NULL || !k->present || k->seq_s >= seq)
			return false;
		k->present = false;
		return true;
	}
	if (k->obj != NULL && k->seq_s >= seq)
		return false;
	if (k->obj == NULL) {
		/* The map was sized for every catch-up event: room left. */
		k->obj = kf_object_ref(ev->obj);
		k->hash = h;
		k->owned = true;
	}
	k->present = true;
	return true;
}

/* ---- steps ---- */

static kf_err
sub_take_snapshot(struct kf_subscriber *sub)
{
	kf_err err;

	sub_snap_free(sub); /* a map a lagged catch-up kept for the drain */
	err = sub->src.ops->snapshot(sub->src.arg, &sub->snap, &sub->h0,
				     &sub->h1);
	if (err != KF_OK)
		return err;
	kfi_ring_reader_unpin(sub->rd);
	kfi_ring_reader_seek(sub->rd, sub->h0);
	sub->snap_i = 0;
	sub->snap_n = sub->src.ops->snap_len(sub->snap);
	sub->state = SS_SNAPSHOT;
	return KF_OK;
}

static void
sub_deliver(kf_event *ev, kf_event_type type, kf_object *obj, unsigned fl)
{
	ev->type = type;
	ev->flags = fl;
	ev->obj = obj;
	ev->missed = 0;
}

/* A lag was reported with `missed`: find the next readable event, keep
 * it aside, and deliver LAGGED with the exact total. */
static kf_err
sub_on_lag(struct kf_subscriber *sub, uint64_t missed, kf_event *ev)
{
	uint64_t m = 0, seq;
	kf_err err;

	if (sub->state != SS_DRAIN)
		sub->drain_to = kfi_ring_head(sub->src.ring);
	/* A lag during the catch-up keeps the snapshot's key map: the
	 * drain still skips what the frame already showed. */
	if (sub->state == SS_SNAPSHOT)
		sub_snap_free(sub);
	/* Bounded: each further lag means the producer lapped the ring. */
	for (;;) {
		err = kfi_ring_read(sub->rd, &sub->stash, &seq, &m);
		if (err != KF_ELAGGED)
			break;
		missed += m;
	}
	sub->stash_valid = err == KF_OK;
	sub->stash_seq = seq;
	if (err != KF_OK && err != KF_EAGAIN)
		return err;
	sub_count(&sub->st_missed, missed);
	sub_count(&sub->st_lagged, 1);
	kfi_log(KF_LOG_INFO, "KF-SUB-LAGGED",
		"subscriber missed %llu events; re-syncing",
		(unsigned long long)missed);
	sub->state = SS_DRAIN;
	sub_deliver(ev, KF_EV_LAGGED, NULL, 0);
	ev->missed = missed;
	return KF_OK;
}

static bool
sub_is_change(const kf_event *ev)
{
	return ev->type == KF_EV_APPLY || ev->type == KF_EV_DELETE;
}

/* One ring event for the DRAIN state: deliver it while below drain_to. */
static kf_err
sub_step_drain(struct kf_subscriber *sub, kf_event *ev)
{
	uint64_t seq, missed;
	kf_err err;

	/* Bounded by the ring's capacity: drain_to is fixed. */
	for (;;) {
		if (sub->stash_valid) {
			*ev = sub->stash;
			seq = sub->stash_seq;
			sub->stash_valid = false;
			err = KF_OK;
		} else {
			err = kfi_ring_read(sub->rd, ev, &seq, &missed);
		}
		if (err == KF_ELAGGED)
			return sub_on_lag(sub, missed, ev);
		if (err == KF_ECLOSED)
			return err;
		if (err == KF_EAGAIN || seq >= sub->drain_to) {
			sub->state = SS_RESYNC;
			return KF_EAGAIN; /* caller steps again */
		}
		if (!sub_is_change(ev))
			continue;
		/* Below h1 of a frame whose catch-up lagged: only what the
		 * frame did not already show (no older APPLY after a newer
		 * INIT_APPLY). */
		if (sub->map != NULL && seq < sub->h1 &&
		    !sub_catchup_pass(sub, ev, seq))
			continue;
		return KF_OK;
	}
}

static kf_err
sub_step_ring(struct kf_subscriber *sub, kf_event *ev)
{
	uint64_t seq, missed;
	kf_err err;

	/* Bounded by the events the ring holds past pos. */
	for (;;) {
		if (sub->state == SS_CATCHUP &&
		    kfi_ring_reader_pos(sub->rd) >= sub->h1) {
			sub_snap_free(sub);
			sub->state = SS_LIVE;
		}
		err = kfi_ring_read(sub->rd, ev, &seq, &missed);
		if (err == KF_ELAGGED) {
			if (sub->state == SS_WAIT_SYNC)
				continue; /* nothing shown yet: nothing lost */
			return sub_on_lag(sub, missed, ev);
		}
		if (err != KF_OK)
			return err;
		if (sub->state == SS_WAIT_SYNC) {
			if (ev->type == KF_EV_INIT_DONE) {
				err = sub_take_snapshot(sub);
				return err == KF_OK ? KF_EAGAIN : err;
			}
			continue;
		}
		if (!sub_is_change(ev))
			continue;
		if (sub->state == SS_CATCHUP && seq < sub->h1 &&
		    !sub_catchup_pass(sub, ev, seq))
			continue;
		return KF_OK;
	}
}

/* Produce the next event: KF_OK, KF_EAGAIN (nothing now), KF_ECLOSED or
 * an error from the source. */
static kf_err
sub_step(struct kf_subscriber *sub, kf_event *ev)
{
	kf_err err;

	/* Each pass either delivers, or moves to a state that does. */
	for (;;) {
		if (atomic_load_explicit(&sub->closed, memory_order_relaxed))
			return KF_ECLOSED;
		switch (sub->state) {
		case SS_INIT:
			sub_deliver(ev, KF_EV_INIT, NULL, 0);
			if (sub->src.ops->synced(sub->src.arg))
				err = sub_take_snapshot(sub);
			else
				err = KF_OK, sub->state = SS_WAIT_SYNC;
			return err;
		case SS_RESYNC:
			err = sub_take_snapshot(sub);
			if (err != KF_OK)
				return err;
			sub_count(&sub->st_resyncs, 1);
			sub_deliver(ev, KF_EV_INIT, NULL, 0);
			return KF_OK;
		case SS_SNAPSHOT:
			if (sub->snap_i < sub->snap_n) {
				kf_object *o = sub->src.ops->snap_at(
				    sub->snap, sub->snap_i++);

				sub_deliver(ev, KF_EV_INIT_APPLY, o, 0);
				return KF_OK;
			}
			err = sub_map_build(sub);
			if (err != KF_OK)
				return err;
			sub->state = SS_CATCHUP;
			if (sub->map == NULL) {
				/* Nothing to de-duplicate: the last INIT_APPLY
				 * object is no longer needed after this call.
				 */
				sub_snap_free(sub);
				sub->state = SS_LIVE;
			}
			sub_deliver(ev, KF_EV_INIT_DONE, NULL, 0);
			return KF_OK;
		case SS_DRAIN:
			err = sub_step_drain(sub, ev);
			if (err == KF_EAGAIN && sub->state == SS_RESYNC)
				continue;
			return err;
		case SS_WAIT_SYNC:
			if (sub->src.ops->synced(sub->src.arg)) {
				err = sub_take_snapshot(sub);
				if (err != KF_OK)
					return err;
				continue;
			}
			/* fall through */
		case SS_CATCHUP:
		case SS_LIVE:
			err = sub_step_ring(sub, ev);
			if (err == KF_EAGAIN && sub->state == SS_SNAPSHOT)
				continue;
			return err;
		}
	}
}

/* ---- API ---- */

kf_err
kfi_subscriber_alloc(const struct kfi_sub_source *src, const kf_sub_opts *opts,
		     kf_subscriber **out)
{
	kf_subscriber *sub;
	kf_err err;

	sub = calloc(1, sizeof(*sub));
	if (sub == NULL) {
		src->ops->release(src->arg);
		return KF_ENOMEM;
	}
	sub->src = *src;
	err = kfi_ring_reader_alloc(src->ring, opts, &sub->rd);
	if (err != KF_OK) {
		src->ops->release(src->arg);
		free(sub);
		return err;
	}
	sub->state = SS_INIT;
	*out = sub;
	return KF_OK;
}

kf_err
kfi_subscriber_get(kf_subscriber *sub, const kf_objref *ref, kf_object **out)
{
	return sub->src.ops->get(sub->src.arg, ref, out);
}

/* ---- the store as a source ---- */

static kf_err
sub_store_snapshot(void *arg, void **snap, uint64_t *h0, uint64_t *h1)
{
	return kfi_store_snapshot_seq(arg, (kf_state **)snap, h0, h1);
}

static size_t
sub_store_snap_len(void *snap)
{
	return kf_state_len(snap);
}

static kf_object *
sub_store_snap_at(void *snap, size_t i)
{
	return kf_state_at(snap, i);
}

static uint64_t
sub_store_snap_seq_at(void *snap, size_t i)
{
	return kfi_state_seq_at(snap, i);
}

static void
sub_store_snap_free(void *snap)
{
	kf_state_free(snap);
}

static bool
sub_store_synced(void *arg)
{
	return kfi_store_synced_once(arg);
}

static kf_err
sub_store_get(void *arg, const kf_objref *ref, kf_object **out)
{
	return kf_store_get(arg, ref, out);
}

static void
sub_store_release(void *arg)
{
	kf_store_free(arg);
}

static const struct kfi_sub_source_ops sub_store_ops = {
    .snapshot = sub_store_snapshot,
    .snap_len = sub_store_snap_len,
    .snap_at = sub_store_snap_at,
    .snap_seq_at = sub_store_snap_seq_at,
    .snap_free = sub_store_snap_free,
    .synced = sub_store_synced,
    .get = sub_store_get,
    .release = sub_store_release,
};

kf_err
kf_store_subscribe(kf_store *s, const kf_sub_opts *opts, kf_subscriber **out)
{
	struct kfi_sub_source src = {.ops = &sub_store_ops};

	if (s == NULL || out == NULL || kfi_store_ring(s) == NULL)
		return KF_EINVAL;
	src.ring = kfi_store_ring(s);
	src.arg = kf_store_clone(s);
	if (src.arg == NULL)
		return KF_ENOMEM;
	return kfi_subscriber_alloc(&src, opts, out);
}

static kf_err
sub_try(kf_subscriber *sub, kf_event *ev)
{
	kf_err err = sub_step(sub, ev);

	if (err == KF_OK)
		sub_count(&sub->st_delivered, 1);
	return err;
}

kf_err
kf_subscriber_try_next(kf_subscriber *sub, kf_event *ev)
{
	kf_err err = sub_try(sub, ev);

	if (err != KF_EAGAIN || !sub->fd_used)
		return err;
	kfi_ring_reader_arm(sub->rd);
	return sub_try(sub, ev); /* an event that raced the arming */
}

kf_err
kf_subscriber_next(kf_subscriber *sub, int64_t timeout_ms, kf_event *ev)
{
	/* Saturated: a huge timeout waits as long as -1 does. No clock
	 * read for 0 and -1, the feeder's and pollers' calls. */
	int64_t deadline =
	    timeout_ms > 0 ? kfi_deadline_ms(kfi_now_ms(), timeout_ms) : 0;

	/* Each turn either delivers or sleeps until a publish or close. */
	for (;;) {
		int64_t left = -1;
		kf_err err = sub_try(sub, ev);

		if (err != KF_EAGAIN)
			return err;
		if (timeout_ms == 0)
			return KF_ETIMEDOUT;
		if (timeout_ms > 0) {
			left = deadline - kfi_now_ms();
			if (left <= 0)
				return KF_ETIMEDOUT;
		}
		err = kfi_ring_reader_wait(sub->rd, left);
		if (err == KF_ECLOSED) {
			err = sub_try(sub, ev); /* what is left, then closed */
			return err == KF_EAGAIN ? KF_ECLOSED : err;
		}
	}
}

int
kf_subscriber_fd(kf_subscriber *sub)
{
	if (!sub->fd_used) {
		sub->fd_used = true;
		kfi_ring_reader_kick(sub->rd); /* the INIT frame is ready */
	}
	return kfi_ring_reader_fd(sub->rd);
}

void
kf_subscriber_close(kf_subscriber *sub)
{
	atomic_store(&sub->closed, true);
	kfi_ring_reader_close(sub->rd);
}

void
kf_subscriber_free(kf_subscriber *sub)
{
	if (sub == NULL)
		return;
	kf_subscriber_close(sub);
	kfi_ring_reader_free(sub->rd);
	sub_snap_free(sub);
	sub->src.ops->release(sub->src.arg);
	free(sub);
}

void
kf_subscriber_stats(kf_subscriber *sub, kf_sub_stats *out)
{
	uint64_t head = kfi_ring_head(sub->src.ring);
	uint64_t pos = kfi_ring_reader_pos(sub->rd);

	out->delivered = atomic_load(&sub->st_delivered);
	out->lag = head > pos ? head - pos : 0;
	out->missed = atomic_load(&sub->st_missed);
	out->lagged = atomic_load(&sub->st_lagged);
	out->resyncs = atomic_load(&sub->st_resyncs);
}

/*
 * A small fake store for the ring, subscriber and controller tests: keys
 * are "k<id>" ConfigMaps in namespace "ns", each apply gets a fresh
 * resourceVersion, and the fake follows store_int.h's counting rules
 * (started raised before the contents change, done = ring head after the
 * publish), so subscribers see the same snapshot contract as with the
 * real store. Also a `view` that replays a subscriber's stream and checks
 * it: no DELETE of an unknown key, resourceVersions strictly rising on
 * APPLY, frames that replace the view at INIT_DONE.
 */
#ifndef KF_TEST_RING_FAKE_H
#define KF_TEST_RING_FAKE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/object.h"
#include "kubefan/subscriber.h"
#include "ring.h"

#define FK_MAXKEYS 4096

struct fake {
	struct kfi_ring *ring;
	pthread_mutex_t mu;
	kf_object *objs[FK_MAXKEYS];
	uint64_t seqs[FK_MAXKEYS];
	size_t nkeys;
	_Atomic uint64_t started;
	_Atomic bool synced;
	_Atomic int refs;
	uint64_t rv; /* writer only */
	_Atomic uint64_t snapshots;
	/* When set, a snapshot first counts itself in snap_waiting and
	 * waits for the test to release this mutex. */
	pthread_mutex_t *_Atomic snap_gate;
	_Atomic int snap_waiting;
};

static inline kf_object *
fk_make(size_t id, uint64_t rv)
{
	char buf[256];
	kf_object *o = NULL;
	int n = snprintf(buf, sizeof(buf),
			 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
			 "\"metadata\":{\"name\":\"k%zu\",\"namespace\":"
			 "\"ns\",\"resourceVersion\":\"%llu\"}}",
			 id, (unsigned long long)rv);

	cr_assert_eq(kf_object_parse(buf, (size_t)n, NULL, NULL, 0, &o), KF_OK);
	return o;
}

static inline size_t
fk_id(const kf_object *o)
{
	return (size_t)strtoull(kf_object_name(o) + 1, NULL, 10);
}

static inline uint64_t
fk_rv(const kf_object *o)
{
	return strtoull(kf_object_resource_version(o), NULL, 10);
}

static inline struct fake *
fk_alloc(size_t cap, size_t nkeys)
{
	struct fake *f = calloc(1, sizeof(*f));

	cr_assert_not_null(f);
	cr_assert_eq(kfi_ring_alloc(cap, &f->ring), KF_OK);
	pthread_mutex_init(&f->mu, NULL);
	f->nkeys = nkeys;
	atomic_init(&f->started, 1);
	atomic_init(&f->refs, 1);
	return f;
}

static inline void
fk_unref(struct fake *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	for (size_t i = 0; i < f->nkeys; i++)
		if (f->objs[i] != NULL)
			kf_object_unref(f->objs[i]);
	kfi_ring_free(f->ring);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Writer: set key id to a new version and publish APPLY. */
static inline void
fk_apply(struct fake *f, size_t id)
{
	uint64_t s = kfi_ring_head(f->ring);
	kf_object *o = fk_make(id, ++f->rv);
	kf_event ev = {.type = KF_EV_APPLY, .obj = o};

	atomic_store(&f->started, s + 1);
	pthread_mutex_lock(&f->mu);
	if (f->objs[id] != NULL)
		kf_object_unref(f->objs[id]);
	f->objs[id] = o;
	f->seqs[id] = s;
	pthread_mutex_unlock(&f->mu);
	kfi_ring_publish(f->ring, &ev);
}

/* Writer: delete key id (if present) and publish DELETE with the last
 * known object. */
static inline void
fk_delete(struct fake *f, size_t id)
{
	uint64_t s = kfi_ring_head(f->ring);
	kf_object *o;
	kf_event ev = {.type = KF_EV_DELETE};

	if (f->objs[id] == NULL)
		return;
	atomic_store(&f->started, s + 1);
	pthread_mutex_lock(&f->mu);
	o = f->objs[id];
	f->objs[id] = NULL;
	pthread_mutex_unlock(&f->mu);
	ev.obj = o;
	kfi_ring_publish(f->ring, &ev);
	kf_object_unref(o);
}

/* Writer: the first list completes with keys [0, n): the entries carry
 * the INIT_DONE marker's number. */
static inline void
fk_first_list(struct fake *f, size_t n)
{
	uint64_t s = kfi_ring_head(f->ring);
	kf_event ev = {.type = KF_EV_INIT_DONE};

	atomic_store(&f->started, s + 1);
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < n; i++) {
		f->objs[i] = fk_make(i, ++f->rv);
		f->seqs[i] = s;
	}
	pthread_mutex_unlock(&f->mu);
	atomic_store(&f->synced, true);
	kfi_ring_publish(f->ring, &ev);
}

struct fk_snap {
	size_t n;
	kf_object **objs;
	uint64_t *seqs;
};

static inline kf_err
fk_snapshot(void *arg, void **snap, uint64_t *h0, uint64_t *h1)
{
	struct fake *f = arg;
	struct fk_snap *s = calloc(1, sizeof(*s));
	pthread_mutex_t *gate = atomic_load(&f->snap_gate);

	if (gate != NULL) {
		atomic_fetch_add(&f->snap_waiting, 1);
		pthread_mutex_lock(gate);
		pthread_mutex_unlock(gate);
	}
	s->objs = calloc(f->nkeys + 1, sizeof(*s->objs));
	s->seqs = calloc(f->nkeys + 1, sizeof(*s->seqs));
	*h0 = kfi_ring_head(f->ring);
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nkeys; i++) {
		if (f->objs[i] == NULL)
			continue;
		s->objs[s->n] = kf_object_ref(f->objs[i]);
		s->seqs[s->n++] = f->seqs[i];
	}
	pthread_mutex_unlock(&f->mu);
	*h1 = atomic_load(&f->started);
	atomic_fetch_add(&f->snapshots, 1);
	*snap = s;
	return KF_OK;
}

static inline size_t
fk_snap_len(void *snap)
{
	return ((struct fk_snap *)snap)->n;
}

static inline kf_object *
fk_snap_at(void *snap, size_t i)
{
	return ((struct fk_snap *)snap)->objs[i];
}

static inline uint64_t
fk_snap_seq_at(void *snap, size_t i)
{
	return ((struct fk_snap *)snap)->seqs[i];
}

static inline void
fk_snap_free(void *snap)
{
	struct fk_snap *s = snap;

	for (size_t i = 0; i < s->n; i++)
		kf_object_unref(s->objs[i]);
	free(s->objs);
	free(s->seqs);
	free(s);
}

static inline bool
fk_synced(void *arg)
{
	return atomic_load(&((struct fake *)arg)->synced);
}

static inline kf_err
fk_get(void *arg, const kf_objref *ref, kf_object **out)
{
	struct fake *f = arg;
	size_t id = (size_t)strtoull(ref->name + 1, NULL, 10);
	kf_err err = KF_ENOTFOUND;

	pthread_mutex_lock(&f->mu);
	if (id < f->nkeys && f->objs[id] != NULL) {
		*out = kf_object_ref(f->objs[id]);
		err = KF_OK;
	}
	pthread_mutex_unlock(&f->mu);
	return err;
}

static inline void
fk_release(void *arg)
{
	fk_unref(arg);
}

static const struct kfi_sub_source_ops fk_ops = {
    .snapshot = fk_snapshot,
    .snap_len = fk_snap_len,
    .snap_at = fk_snap_at,
    .snap_seq_at = fk_snap_seq_at,
    .snap_free = fk_snap_free,
    .synced = fk_synced,
    .get = fk_get,
    .release = fk_release,
};

static inline kf_subscriber *
fk_subscribe(struct fake *f, const kf_sub_opts *opts)
{
	struct kfi_sub_source src = {.ring = f->ring, .ops = &fk_ops, .arg = f};
	kf_subscriber *sub = NULL;

	atomic_fetch_add(&f->refs, 1);
	cr_assert_eq(kfi_subscriber_alloc(&src, opts, &sub), KF_OK);
	return sub;
}

/* ---- a subscriber's reconstructed view ---- */

struct view {
	uint64_t rv[FK_MAXKEYS];      /* 0 = absent */
	uint64_t frame[FK_MAXKEYS];   /* the frame being built */
	uint64_t last_rv[FK_MAXKEYS]; /* highest rv ever shown */
	bool in_frame;
	bool synced;
	bool gap; /* LAGGED seen, re-sync frame not yet complete */
	uint64_t events, frames, lagged, missed;
};

/* Apply one event; checks the stream's rules. */
static inline void
view_apply(struct view *v, const kf_event *ev)
{
	size_t id;
	uint64_t rv;

	v->events++;
	switch (ev->type) {
	case KF_EV_INIT:
		cr_assert(!v->in_frame, "INIT inside a frame");
		v->in_frame = true;
		memset(v->frame, 0, sizeof(v->frame));
		return;
	case KF_EV_INIT_DONE:
		cr_assert(v->in_frame, "INIT_DONE outside a frame");
		v->in_frame = false;
		v->synced = true;
		v->gap = false;
		v->frames++;
		memcpy(v->rv, v->frame, sizeof(v->rv));
		return;
	case KF_EV_LAGGED:
		cr_assert(!v->in_frame);
		cr_assert_gt(ev->missed, 0);
		v->lagged++;
		v->missed += ev->missed;
		v->gap = true;
		return;
	default:
		break;
	}
	cr_assert_not_null(ev->obj);
	id = fk_id(ev->obj);
	rv = fk_rv(ev->obj);
	cr_assert_lt(id, FK_MAXKEYS);
	if (ev->type == KF_EV_INIT_APPLY) {
		cr_assert(v->in_frame, "INIT_APPLY outside a frame");
		cr_assert_eq(v->frame[id], 0, "key k%zu twice in a frame", id);
		cr_assert_geq(rv, v->last_rv[id], "k%zu went back", id);
		v->frame[id] = rv;
		v->last_rv[id] = rv;
		return;
	}
	cr_assert(!v->in_frame, "live event inside a frame");
	cr_assert(v->synced, "live event before the first frame");
	if (ev->type == KF_EV_APPLY) {
		cr_assert_gt(rv, v->last_rv[id],
			     "k%zu: rv %llu after %llu (duplicate or old)", id,
			     (unsigned long long)rv,
			     (unsigned long long)v->last_rv[id]);
		v->rv[id] = rv;
		v->last_rv[id] = rv;
		return;
	}
	cr_assert_eq(ev->type, KF_EV_DELETE);
	/* Between LAGGED and the re-sync frame the view has a hole: the
	 * APPLY of a key deleted now may be among the missed events. */
	cr_assert(v->gap || v->rv[id] != 0, "DELETE of unknown k%zu", id);
	v->rv[id] = 0;
}

/* The view equals the fake's contents (writer quiescent). */
static inline void
view_assert_equals(const struct view *v, struct fake *f)
{
	for (size_t i = 0; i < f->nkeys; i++) {
		uint64_t want = f->objs[i] ? fk_rv(f->objs[i]) : 0;

		cr_assert_eq(v->rv[i], want, "k%zu: view %llu store %llu", i,
			     (unsigned long long)v->rv[i],
			     (unsigned long long)want);
	}
}

/* Read until nothing is ready, applying to the view. */
static inline void
view_drain(struct view *v, kf_subscriber *sub)
{
	kf_event ev;
	kf_err err;

	while ((err = kf_subscriber_try_next(sub, &ev)) == KF_OK)
		view_apply(v, &ev);
	cr_assert_eq(err, KF_EAGAIN, "%s", kf_strerror(err));
}

#endif

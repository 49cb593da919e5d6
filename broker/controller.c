/*
 * controller: a subscription feeding a de-duplicating work queue served by
 * N worker threads.
 *
 * Every ref the controller knows has one item in a hash table, in at most
 * one of these places: the ready FIFO (queued), a worker (processing),
 * the delay heap (delayed). A ref that gets an event while processing is
 * marked dirty and goes back to the FIFO when its worker finishes, so no
 * two workers ever hold the same ref. An event for a delayed ref moves it
 * to the FIFO at once. An item with nothing pending and no failure count
 * is freed, so memory follows the work outstanding, not the store size.
 *
 * One mutex guards the table, the FIFO and the heap; callbacks run
 * outside it. Workers sleep on one condition variable, until the earliest
 * due time when the heap is not empty.
 *
 * The feeder also keeps the objects it has been told exist (a reference
 * to each, the store's own object, in a table only it touches). A lagged
 * subscription gets a fresh INIT..INIT_DONE frame instead of the events
 * it missed, deletes included; at that INIT_DONE every known object the
 * frame did not name is queued, so its reconcile sees it gone, as it
 * would have after its DELETE.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/controller.h"
#include "kubefan/store.h"
#include "log.h"
#include "mono.h"
#include "ring.h"

struct ctl_item {
	struct ctl_item *hnext; /* hash chain */
	struct ctl_item *qnext; /* ready FIFO */
	kf_objref ref;		/* strings in the same allocation */
	uint64_t hash;
	bool queued, processing, dirty, delayed;
	uint32_t failures;
	int64_t due_ms;
	size_t heap_idx;
};

struct kf_controller {
	kf_subscriber *sub;
	kf_controller_opts opts;
	char *name;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ctl_item **buckets;
	size_t nbuckets, nitems;
	struct ctl_item *ready_head, *ready_tail;
	size_t nready;
	struct ctl_item **heap;
	size_t nheap, heap_cap;
	/* started: threads run (or are to be joined); stopping: workers
	 * end; closed: stop was called (no start, no enqueue); joined: a
	 * stop from outside the callbacks joined the threads. */
	bool started, stopping, closed, joined;
	pthread_mutex_t life; /* start and stop from outside the callbacks */

	pthread_t feeder;
	pthread_t *workers;
	unsigned nworkers;

	_Atomic uint64_t st_reconciles, st_errors, st_requeues;
};

/* The controller a worker on this thread serves (callbacks run there). */
static _Thread_local kf_controller *ctl_self;

/* ---- items ---- */

static struct ctl_item *
ctl_item_new(const kf_objref *ref, uint64_t hash)
{
	const char *k = ref->kind ? ref->kind : "";
	const char *ns = ref->namespace_ ? ref->namespace_ : "";
	const char *n = ref->name ? ref->name : "";
	size_t lk = strlen(k) + 1, lns = strlen(ns) + 1, ln = strlen(n) + 1;
	struct ctl_item *it = calloc(1, sizeof(*it) + lk + lns + ln);
	char *p;

	if (it == NULL)
		return NULL;
	p = (char *)(it + 1);
	it->ref.kind = memcpy(p, k, lk);
	it->ref.namespace_ = memcpy(p + lk, ns, lns);
	it->ref.name = memcpy(p + lk + lns, n, ln);
	it->hash = hash;
	return it;
}

static kf_err
ctl_grow_locked(kf_controller *c)
{
	size_t nb = c->nbuckets ? c->nbuckets * 2 : 64;
	struct ctl_item **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return KF_ENOMEM;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct ctl_item *it = c->buckets[i], *next;

		for (; it != NULL; it = next) {
			next = it->hnext;
			it->hnext = b[it->hash & (nb - 1)];
			b[it->hash & (nb - 1)] = it;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
	return KF_OK;
}

static struct ctl_item *
ctl_lookup_locked(kf_controller *c, const kf_objref *ref, bool create)
{
	uint64_t h = kf_objref_hash(ref);
	struct ctl_item *it;

	if (c->nbuckets != 0) {
		it = c->buckets[h & (c->nbuckets - 1)];
		for (; it != NULL; it = it->hnext)
			if (it->hash == h && kf_objref_equal(&it->ref, ref))
				return it;
	}
	if (!create)
		return NULL;
	if (c->nitems >= c->nbuckets && ctl_grow_locked(c) != KF_OK)
		return NULL;
	it = ctl_item_new(ref, h);
	if (it == NULL)
		return NULL;
	it->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = it;
	c->nitems++;
	return it;
}

static void
ctl_forget_locked(kf_controller *c, struct ctl_item *it)
{
	struct ctl_item **pp = &c->buckets[it->hash & (c->nbuckets - 1)];

	while (*pp != it)
		pp = &(*pp)->hnext;
	*pp = it->hnext;
	c->nitems--;
	free(it);
}

/* ---- the delay heap (min by due_ms) ---- */

static void
ctl_heap_swap(kf_controller *c, size_t a, size_t b)
{
	struct ctl_item *t = c->heap[a];

	c->heap[a] = c->heap[b];
	c->heap[b] = t;
	c->heap[a]->heap_idx = a;
	c->heap[b]->heap_idx = b;
}

static void
ctl_heap_fix(kf_controller *c, size_t i)
{
	while (i > 0 && c->heap[(i - 1) / 2]->due_ms > c->heap[i]->due_ms) {
		ctl_heap_swap(c, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < c->nheap && c->heap[l]->due_ms < c->heap[m]->due_ms)
			m = l;
		if (r < c->nheap && c->heap[r]->due_ms < c->heap[m]->due_ms)
			m = r;
		if (m == i)
			return;
		ctl_heap_swap(c, i, m);
		i = m;
	}
}

static void
ctl_heap_remove(kf_controller *c, struct ctl_item *it)
{
	size_t i = it->heap_idx;

	it->delayed = false;
	c->nheap--;
	if (i == c->nheap)
		return;
	c->heap[i] = c->heap[c->nheap];
	c->heap[i]->heap_idx = i;
	ctl_heap_fix(c, i);
}

static kf_err
ctl_heap_push(kf_controller *c, struct ctl_item *it)
{
	if (c->nheap == c->heap_cap) {
		size_t nc = c->heap_cap ? c->heap_cap * 2 : 64;
		struct ctl_item **h = realloc(c->heap, nc * sizeof(*h));

		if (h == NULL)
			return KF_ENOMEM;
		c->heap = h;
		c->heap_cap = nc;
	}
	it->delayed = true;
	it->heap_idx = c->nheap;
	c->heap[c->nheap++] = it;
	ctl_heap_fix(c, it->heap_idx);
	return KF_OK;
}

/* ---- queueing ---- */

static void
ctl_ready_push_locked(kf_controller *c, struct ctl_item *it)
{
	if (it->delayed)
		ctl_heap_remove(c, it);
	it->queued = true;
	it->qnext = NULL;
	if (c->ready_tail != NULL)
		c->ready_tail->qnext = it;
	else
		c->ready_head = it;
	c->ready_tail = it;
	c->nready++;
	pthread_cond_signal(&c->cv);
}

static kf_err
ctl_enqueue_locked(kf_controller *c, const kf_objref *ref)
{
	struct ctl_item *it = ctl_lookup_locked(c, ref, true);

	if (it == NULL)
		return KF_ENOMEM;
	if (it->processing)
		it->dirty = true;
	else if (!it->queued)
		ctl_ready_push_locked(c, it);
	return KF_OK;
}

/* Due items to the FIFO; returns the next due time or -1. */
static int64_t
ctl_promote_locked(kf_controller *c, int64_t now)
{
	/* Bounded by the heap size; each pass removes one item. */
	while (c->nheap > 0 && c->heap[0]->due_ms <= now)
		ctl_ready_push_locked(c, c->heap[0]);
	return c->nheap > 0 ? c->heap[0]->due_ms : -1;
}

static void
ctl_schedule_locked(kf_controller *c, struct ctl_item *it, int64_t delay)
{
	/* Saturated: a huge delay is "not before the next event". */
	int64_t due = kfi_deadline_ms(kfi_now_ms(), delay);

	if (it->delayed) {
		if (due < it->due_ms) {
			it->due_ms = due;
			ctl_heap_fix(c, it->heap_idx);
		}
		return;
	}
	it->due_ms = due;
	if (ctl_heap_push(c, it) != KF_OK)
		kfi_log(KF_LOG_ERR, "KF-CTL-NOMEM",
			"controller %s: out of memory; dropping a requeue",
			c->name);
	pthread_cond_broadcast(&c->cv);
}

/* ---- threads ---- */

static int64_t
ctl_backoff(const kf_controller *c, uint32_t failures)
{
	int64_t d = c->opts.backoff_base_ms;

	for (uint32_t i = 1; i < failures && d < c->opts.backoff_max_ms; i++)
		d = d > c->opts.backoff_max_ms / 2 ? c->opts.backoff_max_ms
						   : d * 2;
	return d < c->opts.backoff_max_ms ? d : c->opts.backoff_max_ms;
}

static void
ctl_run_one(kf_controller *c, struct ctl_item *it)
{
	kf_object *obj = NULL;
	int64_t requeue = -1, delay = -1;
	kf_err err, gerr;
	uint32_t failures;

	gerr = kfi_subscriber_get(c->sub, &it->ref, &obj);
	if (gerr != KF_OK)
		obj = NULL;
	if (gerr == KF_ENOTREADY && obj == NULL) {
		/* Not authoritative: try again when the store recovers. */
		pthread_mutex_lock(&c->mu);
		ctl_schedule_locked(c, it, 1000);
		return;
	}
	atomic_fetch_add_explicit(&c->st_reconciles, 1, memory_order_relaxed);
	err = c->opts.reconcile(c->opts.arg, &it->ref, obj, &requeue);
	if (obj != NULL)
		kf_object_unref(obj);

	pthread_mutex_lock(&c->mu);
	if (err == KF_OK) {
		it->failures = 0;
		delay = requeue;
	} else {
		atomic_fetch_add_explicit(&c->st_errors, 1,
					  memory_order_relaxed);
		failures = ++it->failures;
		delay = ctl_backoff(c, failures);
		if (c->opts.error_policy != NULL) {
			pthread_mutex_unlock(&c->mu);
			delay = c->opts.error_policy(c->opts.arg, &it->ref, err,
						     failures, delay);
			pthread_mutex_lock(&c->mu);
		}
		if (delay < 0)
			it->failures = 0;
	}
	if (delay >= 0) {
		atomic_fetch_add_explicit(&c->st_requeues, 1,
					  memory_order_relaxed);
		ctl_schedule_locked(c, it, delay);
	}
}

static void *
ctl_worker(void *arg)
{
	kf_controller *c = arg;

	ctl_self = c;
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		int64_t next = ctl_promote_locked(c, kfi_now_ms());
		struct ctl_item *it = c->ready_head;

		if (it == NULL) {
			if (next < 0) {
				pthread_cond_wait(&c->cv, &c->mu);
			} else {
				struct timespec ts = {next / 1000,
						      next % 1000 * 1000000};

				pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			}
			continue;
		}
		c->ready_head = it->qnext;
		if (c->ready_head == NULL)
			c->ready_tail = NULL;
		c->nready--;
		it->queued = false;
		it->processing = true;
		pthread_mutex_unlock(&c->mu);

		ctl_run_one(c, it); /* returns with mu held */

		it->processing = false;
		if (it->dirty) {
			it->dirty = false;
			ctl_ready_push_locked(c, it);
		} else if (!it->delayed && !it->queued && it->failures == 0) {
			ctl_forget_locked(c, it);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- the feeder's known objects ---- */

struct ctl_known_slot {
	kf_object *obj; /* referenced; NULL: free */
	uint64_t hash;
	uint64_t frame; /* the frame or event that last named it */
};

/* Open addressing with linear probing, at most half full; removal shifts
 * the following run back, so there are no tombstones. */
struct ctl_known {
	struct ctl_known_slot *slot;
	size_t cap, n;
	uint64_t frame; /* INIT frames seen */
	bool in_frame;
};

static size_t
ctl_known_find(const struct ctl_known *k, const kf_objref *ref, uint64_t h)
{
	size_t i = h & (k->cap - 1);

	/* Bound: the table is at most half full. */
	for (; k->slot[i].obj != NULL; i = (i + 1) & (k->cap - 1)) {
		kf_objref r;

		if (k->slot[i].hash != h)
			continue;
		r = kf_object_objref(k->slot[i].obj);
		if (kf_objref_equal(&r, ref))
			break;
	}
	return i;
}

static bool
ctl_known_grow(struct ctl_known *k)
{
	size_t cap = k->cap ? k->cap * 2 : 256;
	struct ctl_known_slot *old = k->slot, *nu = calloc(cap, sizeof(*nu));

	if (nu == NULL)
		return false;
	/* Bound: one pass over the old slots. */
	for (size_t i = 0; i < k->cap; i++) {
		size_t j;

		if (old[i].obj == NULL)
			continue;
		for (j = old[i].hash & (cap - 1); nu[j].obj != NULL;
		     j = (j + 1) & (cap - 1))
			;
		nu[j] = old[i];
	}
	free(old);
	k->slot = nu;
	k->cap = cap;
	return true;
}

/* obj exists (a reference is taken); false when out of memory. */
static bool
ctl_known_put(struct ctl_known *k, kf_object *obj)
{
	kf_objref ref = kf_object_objref(obj);
	uint64_t h = kf_objref_hash(&ref);
	size_t i;

	if (2 * (k->n + 1) > k->cap && !ctl_known_grow(k))
		return false;
	i = ctl_known_find(k, &ref, h);
	if (k->slot[i].obj != NULL)
		kf_object_unref(k->slot[i].obj);
	else
		k->n++;
	k->slot[i].obj = kf_object_ref(obj);
	k->slot[i].hash = h;
	k->slot[i].frame = k->frame;
	return true;
}

static void
ctl_known_drop_at(struct ctl_known *k, size_t i)
{
	size_t mask = k->cap - 1, j = i;

	kf_object_unref(k->slot[i].obj);
	k->slot[i].obj = NULL;
	k->n--;
	/* Shift back what the hole would cut off from its home slot. */
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (k->slot[j].obj == NULL)
			return;
		home = k->slot[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			k->slot[i] = k->slot[j];
			k->slot[j].obj = NULL;
			i = j;
		}
	}
}

static void
ctl_known_drop(struct ctl_known *k, const kf_object *obj)
{
	kf_objref ref = kf_object_objref(obj);
	size_t i;

	if (k->cap == 0)
		return;
	i = ctl_known_find(k, &ref, kf_objref_hash(&ref));
	if (k->slot[i].obj != NULL)
		ctl_known_drop_at(k, i);
}

static void
ctl_known_fini(struct ctl_known *k)
{
	for (size_t i = 0; i < k->cap; i++)
		if (k->slot[i].obj != NULL)
			kf_object_unref(k->slot[i].obj);
	free(k->slot);
}

static void
ctl_feed_ref(kf_controller *c, const kf_objref *ref)
{
	pthread_mutex_lock(&c->mu);
	if (ctl_enqueue_locked(c, ref) != KF_OK)
		kfi_log(KF_LOG_ERR, "KF-CTL-NOMEM",
			"controller %s: out of memory; event dropped", c->name);
	pthread_mutex_unlock(&c->mu);
}

/* A frame ended: every known object it did not name is gone (deleted
 * while the subscription lagged); queue it and forget it. */
static void
ctl_known_sweep(kf_controller *c, struct ctl_known *k)
{
	size_t i = 0;

	/* Bound: one pass; a removal shifts a later slot into i, which is
	 * looked at again. */
	while (i < k->cap) {
		kf_objref ref;

		if (k->slot[i].obj == NULL || k->slot[i].frame == k->frame) {
			i++;
			continue;
		}
		ref = kf_object_objref(k->slot[i].obj);
		ctl_feed_ref(c, &ref);
		ctl_known_drop_at(k, i);
	}
}

static void *
ctl_feeder(void *arg)
{
	kf_controller *c = arg;
	struct ctl_known known = {0};
	kf_event ev;
	kf_err err;

	/* Ends when stop closes the subscription. */
	while ((err = kf_subscriber_next(c->sub, -1, &ev)) == KF_OK) {
		kf_objref ref;

		if (ev.type == KF_EV_INIT) {
			known.frame++;
			known.in_frame = true;
		} else if (ev.type == KF_EV_INIT_DONE && known.in_frame) {
			known.in_frame = false;
			ctl_known_sweep(c, &known);
		}
		if (ev.obj == NULL)
			continue; /* INIT, INIT_DONE, LAGGED */
		if (ev.type == KF_EV_DELETE)
			ctl_known_drop(&known, ev.obj);
		else if (!ctl_known_put(&known, ev.obj))
			kfi_log(KF_LOG_ERR, "KF-CTL-NOMEM",
				"controller %s: out of memory; a delete during "
				"a lag may go unnoticed",
				c->name);
		ref = kf_object_objref(ev.obj);
		ctl_feed_ref(c, &ref);
	}
	if (err != KF_ECLOSED)
		kfi_log(KF_LOG_ERR, "KF-CTL-FEED",
			"controller %s: subscription failed: %s", c->name,
			kf_strerror(err));
	ctl_known_fini(&known);
	return NULL;
}

/* ---- API ---- */

static kf_err
ctl_alloc(kf_subscriber *sub, const kf_controller_opts *opts,
	  kf_controller **out)
{
	kf_controller *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;

	if (c == NULL) {
		kf_subscriber_free(sub);
		return KF_ENOMEM;
	}
	c->sub = sub;
	c->opts = *opts;
	c->name = strdup(opts->name ? opts->name : "controller");
	c->nworkers = opts->workers ? opts->workers : 1;
	c->workers = calloc(c->nworkers, sizeof(*c->workers));
	if (c->name == NULL || c->workers == NULL) {
		free(c->name);
		free(c->workers);
		free(c);
		kf_subscriber_free(sub);
		return KF_ENOMEM;
	}
	c->opts.name = c->name;
	if (c->opts.backoff_base_ms <= 0)
		c->opts.backoff_base_ms = 5;
	if (c->opts.backoff_max_ms <= 0)
		c->opts.backoff_max_ms = 300000;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->life, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = c;
	return KF_OK;
}

kf_err
kfi_controller_alloc(kf_subscriber *sub, const kf_controller_opts *opts,
		     kf_controller **out)
{
	if (opts == NULL || opts->reconcile == NULL) {
		kf_subscriber_free(sub);
		return KF_EINVAL;
	}
	return ctl_alloc(sub, opts, out);
}

kf_err
kf_controller_for_shared_stream(kf_store *s, const kf_controller_opts *opts,
				kf_controller **out)
{
	kf_subscriber *sub;
	kf_err err;

	if (opts == NULL || opts->reconcile == NULL || out == NULL)
		return KF_EINVAL;
	err = kf_store_subscribe(s, &opts->sub, &sub);
	if (err != KF_OK)
		return err;
	return ctl_alloc(sub, opts, out);
}

kf_err
kf_controller_start(kf_controller *c)
{
	unsigned n = 0;
	kf_err err = KF_OK;

	pthread_mutex_lock(&c->life);
	pthread_mutex_lock(&c->mu);
	if (c->closed || c->started)
		err = c->closed ? KF_ECLOSED : KF_EINVAL;
	c->started = true;
	pthread_mutex_unlock(&c->mu);
	if (err != KF_OK) {
		pthread_mutex_unlock(&c->life);
		return err;
	}
	for (; n < c->nworkers; n++)
		if (pthread_create(&c->workers[n], NULL, ctl_worker, c) != 0)
			goto fail;
	if (pthread_create(&c->feeder, NULL, ctl_feeder, c) != 0)
		goto fail;
	pthread_mutex_unlock(&c->life);
	return KF_OK;

fail:
	kfi_log(KF_LOG_ERR, "KF-CTL-THREAD", "controller %s: no thread",
		c->name);
	/* Undo: the workers that started end at once; start may be tried
	 * again. */
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (unsigned i = 0; i < n; i++)
		pthread_join(c->workers[i], NULL);
	pthread_mutex_lock(&c->mu);
	c->started = false;
	c->stopping = c->closed;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->life);
	return KF_EIO;
}

void
kf_controller_stop(kf_controller *c)
{
	bool from_callback = ctl_self == c;
	bool join;

	if (!from_callback)
		pthread_mutex_lock(&c->life);
	pthread_mutex_lock(&c->mu);
	join = c->started && !c->joined && !from_callback;
	if (join)
		c->joined = true;
	c->stopping = true;
	c->closed = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	kf_subscriber_close(c->sub);
	if (from_callback) {
		/* A worker cannot join itself: the threads end, and a stop
		 * or free from outside the callbacks joins them. */
		kfi_log(KF_LOG_WARNING, "KF-CTL-STOP-CALLBACK",
			"controller %s: stop called from a callback does not "
			"wait; kf_controller_free() joins the threads",
			c->name);
		return;
	}
	if (join) {
		pthread_join(c->feeder, NULL);
		for (unsigned i = 0; i < c->nworkers; i++)
			pthread_join(c->workers[i], NULL);
	}
	pthread_mutex_unlock(&c->life);
}

void
kf_controller_free(kf_controller *c)
{
	if (c == NULL)
		return;
	kf_controller_stop(c);
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct ctl_item *it = c->buckets[i], *next;

		for (; it != NULL; it = next) {
			next = it->hnext;
			free(it);
		}
	}
	free(c->buckets);
	free(c->heap);
	kf_subscriber_free(c->sub);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->life);
	pthread_cond_destroy(&c->cv);
	free(c->workers);
	free(c->name);
	free(c);
}

kf_err
kf_controller_enqueue(kf_controller *c, const kf_objref *ref)
{
	kf_err err;

	pthread_mutex_lock(&c->mu);
	err = c->closed ? KF_ECLOSED : ctl_enqueue_locked(c, ref);
	pthread_mutex_unlock(&c->mu);
	return err;
}

void
kf_controller_stats(kf_controller *c, kf_ctl_stats *out)
{
	out->reconciles = atomic_load(&c->st_reconciles);
	out->errors = atomic_load(&c->st_errors);
	out->requeues = atomic_load(&c->st_requeues);
	pthread_mutex_lock(&c->mu);
	out->queued = c->nready + c->nheap;
	pthread_mutex_unlock(&c->mu);
	kf_subscriber_stats(c->sub, &out->sub);
}

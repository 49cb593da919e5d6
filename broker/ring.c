/*
 * ring: the bounded broadcast ring between the store's writer and its
 * subscribers.
 *
 * Theory of operation
 *
 * Slots. capacity slots, each {seq, obj, meta}. Event number s lives in
 * slot s & mask. The producer writes a slot like a seqlock: seq := BUSY
 * (0; real numbers start at 1), release fence, obj and meta, then
 * seq := s with release, then head := s + 1. A reader at position pos
 * loads seq (acquire); seq == pos means the event is there. It loads obj
 * and meta, then (acquire fence) loads seq again: still pos means the
 * copy is whole. seq != pos with pos < head means the producer has
 * overwritten (or is overwriting) event pos: the reader lagged.
 *
 * Objects without reference counting on delivery. A slot owns one
 * reference to its object. When the producer overwrites a slot it does
 * not drop that reference at once: it appends the object to a retire
 * batch. A reader protects the object it hands out with a hazard pointer:
 * it stores the pointer into its own `hazard` (seq_cst) BEFORE the
 * validating second load of seq (seq_cst). When the batch is full the
 * producer scans (under the mutex, after a seq_cst fence) every attached
 * reader's hazard, keeps the retired objects some hazard names, and drops
 * the ring's reference on the others. Why this is safe: take a reader
 * that validated pos and so uses obj p, and the scan that could free p.
 * The producer's BUSY store to p's slot is sequenced before the scan's
 * fence; the reader's hazard store is sequenced before its validating
 * load. If the scan missed the hazard, the scan's hazard load comes
 * before the reader's hazard store in the single total order of seq_cst
 * operations, so the fence precedes the validating load, which must then
 * see BUSY or a later number, not pos: the reader would have failed
 * validation and never touched p. If the scan saw the hazard, p is kept
 * until a later scan sees the reader's hazard point elsewhere, and that
 * store is a release that orders all of the reader's use of p before it.
 * A reader therefore delivers an event with a few loads and one store to
 * its own cache line; no shared counter is touched per (reader, event).
 * Memory: capacity slot references + one retire batch + at most one kept
 * object per reader.
 *
 * Lag arithmetic. When pos has been overwritten and head is h, the
 * oldest event the ring may still hold is h - capacity (the producer may
 * be overwriting it right now, in which case the next read lags again).
 * The reader moves to max(pos + 1, h - capacity) and reports the
 * difference as missed; the subscriber adds up consecutive lags until a
 * read succeeds, so the count is exact.
 *
 * Wake-ups. A publish must reach readers that sleep in
 * kfi_ring_reader_wait() or poll their eventfd, and it must cost the
 * producer O(1) system calls whatever the number of readers: waking n
 * threads is O(n) kernel work even as one FUTEX_WAKE(INT_MAX) call.
 *
 * Each reader has one wake word `ws`, its own futex: IDLE (not listed),
 * LISTED (on a list, nothing to do), FD (on a list, write its eventfd),
 * SLEEP (on a list, its thread sleeps on ws), WAKING (a waker is handing
 * it over). A reader about to sleep, or arming its fd, sets ws and, when
 * it was IDLE, pushes itself on the ring's `listed` stack (lock-free
 * push; the only removal is taking the whole stack, so no ABA). Then a
 * seq_cst fence and a re-check of head: either it sees the event, or the
 * producer, which fences after storing head and then loads `listed`,
 * sees the node (Dekker). A listed node stays listed until the one thread
 * that took its list releases it: every listed node is processed, and a
 * reader that finds itself listed only changes ws.
 *
 * The producer's fast path is that load: an empty stack, no system call,
 * no write to a shared line. Otherwise it takes the whole stack and hands
 * it to the first sleeping reader of the list: it stores the rest of the
 * list in that reader's `share`, moves its ws SLEEP -> WAKING and wakes
 * that one futex. A woken reader (a relayer) hands half of its share to
 * the next sleeper and the rest to the one after (a binary tree, log2 n
 * rounds), releases non-sleeping nodes itself (LISTED: one CAS; FD: one
 * eventfd write while the node is WAKING, so its fd stays open) and only
 * then reads its own events. So a publish makes at most one wake-up
 * system call and the n - 1 others are spread over the woken readers.
 *
 * Once per round. `nrelay` counts relayers that have not finished their
 * share (a waker counts the reader it wakes before waking it). While it is
 * non-zero the producer does not take the stack: it sets `wake_req`,
 * re-reads nrelay and, still non-zero, returns without a system call. A
 * relayer, when done, decrements nrelay, then reads wake_req and, if it
 * can exchange it to 0, takes the stack and relays it. The two sides are
 * a second Dekker pair (store; seq_cst; load), so a request is never left
 * behind: either the producer sees nrelay == 0 and relays itself, or some
 * counted relayer decrements after the producer's store and sees it.
 *
 * Spinning. Before listing itself a reader spins (pause, re-read head) for
 * an adaptive number of turns, doubled when a spin found an event and
 * halved when it did not, and only while fewer than (online CPUs - 1)
 * readers spin, so spinners never crowd out the producer. A reader that
 * keeps up thus usually never lists itself, and the producer sees an
 * empty stack.
 *
 * A reader closed from another thread is woken by moving its ws SLEEP ->
 * LISTED (so a FUTEX_WAIT about to start fails) and waking its futex.
 * Freeing a reader waits until its node is released: it takes the stack
 * itself, or yields while the relayer that holds it finishes.
 *
 * Blocking policy. Before overwriting event s - capacity the producer
 * checks, if any reader asked for KF_SUB_BLOCK, whether one of them is
 * still at or before that event; it then waits on a condition variable
 * until the reader moves, closes, or its deadline passes. A reader that
 * reaches its deadline is marked exempt and lags like any other until it
 * next notices the lag.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kubefan/object.h"
#include "log.h"
#include "ring.h"

#define RING_BUSY 0

struct ring_slot {
	_Atomic uint64_t seq;
	_Atomic(kf_object *) obj;
	_Atomic uint32_t meta; /* type | flags << 8 */
};

struct kfi_ring_reader {
	/* Written by the reader per event; read by the producer's scan. */
	_Alignas(64) _Atomic(kf_object *) hazard;
	_Atomic uint64_t pos;
	uint64_t cur; /* reader-thread copy of pos */
	_Atomic bool closed;
	_Atomic bool exempt; /* blocking: producer gave up until next lag */

	struct kfi_ring *ring;
	bool blocking;
	int64_t block_ms;
	int efd;

	/* Under ring->mu. */
	bool attached;
	int64_t deadline_ns; /* blocking: producer waits until then */
	struct kfi_ring_reader *prev, *next;

	/* Wake-ups (theory above). ws is the futex word; wnext and share
	 * belong to whoever holds the list the node is on. */
	_Alignas(64) _Atomic uint32_t ws;
	struct kfi_ring_reader *wnext;
	struct kfi_ring_reader *share;
	uint32_t spin; /* adaptive spin turns (reader thread) */
};

/* One hazard in the scan's hash set: `left` references still to keep. */
struct ring_hz {
	kf_object *p;
	uint32_t left;
};

struct kfi_ring {
	size_t cap;
	uint64_t mask;
	struct ring_slot *slots;

	/* Producer. */
	_Alignas(64) _Atomic uint64_t head;
	kf_object **retired;
	size_t nretired;
	size_t batch;

	/* The stack of listed readers, which the producer loads per
	 * publish, and its request to the relayers (same line: read next). */
	_Alignas(64) _Atomic(struct kfi_ring_reader *) listed;
	_Atomic int wake_req;
	/* Relayers at work. */
	_Alignas(64) _Atomic int nrelay;
	_Atomic int nspin; /* readers spinning now */
	int max_spin;	   /* readers allowed to spin at once */

	_Alignas(64) _Atomic int nblocking;
	_Atomic bool producer_waiting;
	_Atomic bool closed;

	pthread_mutex_t mu;
	pthread_cond_t space_cv;
	struct kfi_ring_reader *readers; /* all attached readers */
	size_t nreaders;
	/* Scan scratch: a hash set of the hazards (2 * hz_cap entries, a
	 * power of two), and the kept objects (room for hz_cap readers). */
	struct ring_hz *hz;
	kf_object **kept;
	size_t nkept;
	size_t hz_cap;

	_Atomic uint64_t st_held;
	_Atomic uint64_t st_scans, st_block_waits, st_block_expiry;
	_Atomic uint64_t st_wakes, st_pub_wakes, st_deferred;
};

static int64_t
ring_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wake states of a reader (theory above). */
#define WS_IDLE	  0u
#define WS_LISTED 1u
#define WS_FD	  2u
#define WS_SLEEP  3u
#define WS_WAKING 4u

#define RING_SPIN_MIN 16
#define RING_SPIN_MAX 256

static void
ring_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static long
ring_futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
}

static void
ring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void
ring_efd_signal(int efd)
{
	uint64_t one = 1;
	ssize_t n = write(efd, &one, sizeof(one));

	(void)n; /* only fails when the counter is saturated: readable */
}

static void
ring_efd_drain(int efd)
{
	uint64_t v;
	ssize_t n = read(efd, &v, sizeof(v));

	(void)n; /* EAGAIN when already zero */
}

kf_err
kfi_ring_alloc(size_t capacity, struct kfi_ring **out)
{
	struct kfi_ring *r;

	if (capacity < 2 || (capacity & (capacity - 1)) != 0)
		return KF_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return KF_ENOMEM;
	r->cap = capacity;
	r->mask = capacity - 1;
	r->batch = capacity < 16 ? 16 : capacity;
	r->hz_cap = 8;
	r->max_spin = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
	if (r->max_spin < 0)
		r->max_spin = 0;
	r->slots = calloc(capacity, sizeof(*r->slots));
	r->retired = calloc(r->batch, sizeof(*r->retired));
	r->hz = calloc(2 * r->hz_cap, sizeof(*r->hz));
	r->kept = calloc(r->hz_cap, sizeof(*r->kept));
	if (r->slots == NULL || r->retired == NULL || r->hz == NULL ||
	    r->kept == NULL)
		goto fail;
	atomic_init(&r->head, 1);

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->space_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->mu, NULL);
	*out = r;
	return KF_OK;

fail:
	free(r->slots);
	free(r->retired);
	free(r->hz);
	free(r->kept);
	free(r);
	return KF_ENOMEM;
}

/* The producer is the only writer of st_held (publish and scan). */
static void
ring_held_add(struct kfi_ring *r, int64_t d)
{
	uint64_t v = atomic_load_explicit(&r->st_held, memory_order_relaxed);

	atomic_store_explicit(&r->st_held, v + (uint64_t)d,
			      memory_order_relaxed);
}

/* The hash set slot for p: its entry, or the empty one to fill. Bounded:
 * the set is at most half full. */
static struct ring_hz *
ring_hz_slot(struct kfi_ring *r, kf_object *p)
{
	size_t mask = 2 * r->hz_cap - 1;
	size_t i =
	    (size_t)((uint64_t)((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15u >> 32);

	for (;; i++) {
		struct ring_hz *e = &r->hz[i & mask];

		if (e->p == p || e->p == NULL)
			return e;
	}
}

/* Keep one retired or kept object if a hazard still owed names it, else
 * drop the ring's reference. Caller holds mu. O(1) expected. */
static void
ring_settle_locked(struct kfi_ring *r, kf_object *p)
{
	struct ring_hz *e = ring_hz_slot(r, p);

	if (e->p == p && e->left > 0) {
		e->left--;
		r->kept[r->nkept++] = p;
		return;
	}
	kf_object_unref(p); /* unprotected, or another reference kept */
	ring_held_add(r, -1);
}

/* Release every retired object no reader protects. Producer thread (or
 * kfi_ring_free). Bounded by the batch plus the number of readers. */
static void
ring_scan(struct kfi_ring *r)
{
	size_t nold;

	atomic_thread_fence(memory_order_seq_cst);
	pthread_mutex_lock(&r->mu);
	for (struct kfi_ring_reader *rd = r->readers; rd; rd = rd->next) {
		kf_object *p = atomic_load(&rd->hazard);

		if (p != NULL) {
			struct ring_hz *e = ring_hz_slot(r, p);

			e->p = p;
			e->left++;
		}
	}

	nold = r->nkept;
	r->nkept = 0;
	for (size_t i = 0; i < nold; i++)
		ring_settle_locked(r, r->kept[i]);
	for (size_t i = 0; i < r->nretired; i++)
		ring_settle_locked(r, r->retired[i]);
	r->nretired = 0;
	memset(r->hz, 0, 2 * r->hz_cap * sizeof(*r->hz));
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_add_explicit(&r->st_scans, 1, memory_order_relaxed);
}

void
kfi_ring_free(struct kfi_ring *r)
{
	if (r == NULL)
		return;
	/* No readers remain, so the scan drops every retired reference. */
	ring_scan(r);
	for (size_t i = 0; i < r->cap; i++) {
		kf_object *p = atomic_load(&r->slots[i].obj);

		if (p != NULL)
			kf_object_unref(p);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->space_cv);
	free(r->slots);
	free(r->retired);
	free(r->hz);
	free(r->kept);
	free(r);
}

size_t
kfi_ring_capacity(const struct kfi_ring *r)
{
	return r->cap;
}

uint64_t
kfi_ring_head(const struct kfi_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire);
}

/* Wait until no non-exempt blocking reader still needs event `need`, or
 * each one's deadline passed. Bounded by the readers' deadlines. */
static void
ring_wait_blocking(struct kfi_ring *r, uint64_t need)
{
	bool waited = false;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct kfi_ring_reader *slow = NULL;
		int64_t now = ring_now_ns();

		for (struct kfi_ring_reader *rd = r->readers; rd;
		     rd = rd->next) {
			if (!rd->blocking || atomic_load(&rd->exempt))
				continue;
			if (atomic_load(&rd->pos) > need) {
				rd->deadline_ns = 0;
				continue;
			}
			if (rd->deadline_ns == 0)
				rd->deadline_ns =
				    rd->block_ms > (INT64_MAX - now) / 1000000
					? INT64_MAX /* saturated */
					: now + rd->block_ms * 1000000;
			if (now >= rd->deadline_ns) {
				atomic_store(&rd->exempt, true);
				rd->deadline_ns = 0;
				atomic_fetch_add_explicit(&r->st_block_expiry,
							  1,
							  memory_order_relaxed);
				kfi_log(KF_LOG_WARNING, "KF-RING-BLOCK-EXPIRED",
					"blocking subscriber missed its "
					"deadline; it will lag");
				continue;
			}
			if (slow == NULL || rd->deadline_ns < slow->deadline_ns)
				slow = rd;
		}
		if (slow == NULL)
			break;
		waited = true;
		atomic_store(&r->producer_waiting, true);
		if (atomic_load(&slow->pos) > need)
			continue;

		struct timespec ts = {
		    .tv_sec = slow->deadline_ns / 1000000000,
		    .tv_nsec = slow->deadline_ns % 1000000000,
		};
		pthread_cond_timedwait(&r->space_cv, &r->mu, &ts);
	}
	atomic_store(&r->producer_waiting, false);
	pthread_mutex_unlock(&r->mu);
	if (waited)
		atomic_fetch_add_explicit(&r->st_block_waits, 1,
					  memory_order_relaxed);
}

/* ---- wake-ups (see the theory block) ---- */

static void
ring_count(_Atomic uint64_t *c, uint64_t *mine, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
	if (mine != NULL)
		*mine += n;
}

/* Release or wake one listed node that the caller holds. A sleeping node
 * is woken and takes over `share` (true); any other node is released here
 * (false), its eventfd written first when it asked for that. *sys counts
 * the system calls made. */
static bool
ring_wake_one(struct kfi_ring *r, struct kfi_ring_reader *n,
	      struct kfi_ring_reader *share, uint64_t *sys)
{
	/* Bounded: the owner moves ws among LISTED, FD and SLEEP only a few
	 * times per call of wait or arm; each failed CAS is one such move. */
	for (;;) {
		uint32_t s = atomic_load(&n->ws);

		switch (s) {
		case WS_SLEEP:
			n->share = share;
			atomic_fetch_add(&r->nrelay, 1); /* n's count */
			if (atomic_compare_exchange_strong(&n->ws, &s,
							   WS_WAKING)) {
				ring_futex_wake(&n->ws, 1);
				ring_count(&r->st_wakes, sys, 1);
				return true;
			}
			/* We hold our own count, so nrelay stays > 0. */
			atomic_fetch_sub(&r->nrelay, 1);
			n->share = NULL;
			break;
		case WS_LISTED:
			if (atomic_compare_exchange_strong(&n->ws, &s, WS_IDLE))
				return false;
			break;
		case WS_FD:
			if (!atomic_compare_exchange_strong(&n->ws, &s,
							    WS_WAKING))
				break;
			ring_efd_signal(n->efd);
			ring_count(&r->st_wakes, sys, 1);
			atomic_store(&n->ws, WS_IDLE);
			return false;
		default:
			/* IDLE or WAKING: not on a list (a bug). */
			return false;
		}
	}
}

static bool
ring_sleeps(struct kfi_ring_reader *n)
{
	return atomic_load_explicit(&n->ws, memory_order_relaxed) == WS_SLEEP;
}

/* Take every other node out of *l (O(length)). */
static struct kfi_ring_reader *
ring_split(struct kfi_ring_reader **l)
{
	struct kfi_ring_reader *half = NULL, **keep = l;

	/* Bounded by the list's length. */
	while (*keep != NULL) {
		struct kfi_ring_reader *n = (*keep)->wnext;

		if (n == NULL)
			break;
		(*keep)->wnext = n->wnext;
		n->wnext = half;
		half = n;
		keep = &(*keep)->wnext;
	}
	return half;
}

static struct kfi_ring_reader *
ring_concat(struct kfi_ring_reader *a, struct kfi_ring_reader *b)
{
	struct kfi_ring_reader **t = &a;

	while (*t != NULL) /* bounded by a's length */
		t = &(*t)->wnext;
	*t = b;
	return a;
}

/* Wake or release every node of l, which the caller holds, holding one
 * nrelay count. At most `fanout` sleeping nodes are woken here, each
 * taking over a part of the list together with the non-sleeping nodes
 * met before it; only when no sleeper is left are nodes released here.
 * So the producer (fanout 1) usually reads one node and makes one
 * system call, whatever the list holds. */
static void
ring_relay(struct kfi_ring *r, struct kfi_ring_reader *l, int fanout,
	   uint64_t *sys)
{
	struct kfi_ring_reader *defer = NULL;

	/* Each turn hands over the rest of the list, or defers a node, or
	 * (after a hand-over lost a race with that node's owner) puts the
	 * share back: bounded by the list's length. */
	while (l != NULL && fanout > 0) {
		struct kfi_ring_reader *n = l, *share;

		l = n->wnext;
		if (!ring_sleeps(n)) {
			n->wnext = defer;
			defer = n;
			continue;
		}
		share = fanout > 1 ? ring_split(&l) : l;
		if (fanout == 1)
			l = NULL;
		share = ring_concat(defer, share);
		defer = NULL;
		if (ring_wake_one(r, n, share, sys)) {
			fanout--;
			continue;
		}
		l = ring_concat(share, l);
	}
	/* No sleeper left to take them. Bounded by the lists' lengths. */
	l = ring_concat(defer, l);
	while (l != NULL) {
		struct kfi_ring_reader *n = l;

		l = n->wnext;
		ring_wake_one(r, n, NULL, sys);
	}
}

/* Give back the caller's nrelay count. A request the producer left while
 * relayers were at work is taken here: detach the stack and relay it. */
static void
ring_relay_exit(struct kfi_ring *r, uint64_t *sys)
{
	/* Each turn serves one request; a request needs a publish (or a
	 * close or free) since the previous turn. */
	for (;;) {
		struct kfi_ring_reader *l;

		atomic_fetch_sub(&r->nrelay, 1);
		if (atomic_load(&r->wake_req) == 0 ||
		    atomic_exchange(&r->wake_req, 0) == 0)
			return;
		atomic_fetch_add(&r->nrelay, 1);
		l = atomic_exchange(&r->listed, NULL);
		ring_relay(r, l, 2, sys);
	}
}

/* Take the whole stack and relay it, as the producer (fanout 1: one
 * wake-up system call at most) or on close/free (fanout 2). */
static void
ring_relay_stack(struct kfi_ring *r, int fanout, uint64_t *sys)
{
	struct kfi_ring_reader *l;

	atomic_fetch_add(&r->nrelay, 1);
	atomic_store(&r->wake_req, 0);
	l = atomic_exchange(&r->listed, NULL);
	ring_relay(r, l, fanout, sys);
	ring_relay_exit(r, sys);
}

/* The producer is the only writer of these counters. */
static void
ring_count_producer(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* After a publish found the stack non-empty. */
static void
ring_wake(struct kfi_ring *r)
{
	uint64_t sys = 0;

	/* A request still standing will be taken by a relayer that was
	 * counted when it was made, and it takes the stack as it is then:
	 * nothing more to do (the load is on the line of `listed`). */
	if (atomic_load(&r->wake_req) != 0) {
		ring_count_producer(&r->st_deferred, 1);
		return;
	}
	if (atomic_load(&r->nrelay) > 0) {
		atomic_store(&r->wake_req, 1);
		if (atomic_load(&r->nrelay) > 0) {
			ring_count_producer(&r->st_deferred, 1);
			return; /* a relayer will take the stack */
		}
	}
	ring_relay_stack(r, 1, &sys);
	if (sys > 0)
		ring_count_producer(&r->st_pub_wakes, sys);
}

void
kfi_ring_publish(struct kfi_ring *r, const kf_event *ev)
{
	uint64_t s = atomic_load_explicit(&r->head, memory_order_relaxed);
	struct ring_slot *sl = &r->slots[s & r->mask];
	kf_object *old;

	if (s > r->cap && atomic_load(&r->nblocking) > 0)
		ring_wait_blocking(r, s - r->cap);

	old = atomic_load_explicit(&sl->obj, memory_order_relaxed);
	atomic_store_explicit(&sl->seq, RING_BUSY, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&sl->obj, ev->obj ? kf_object_ref(ev->obj) : NULL,
			      memory_order_relaxed);
	if (ev->obj != NULL)
		ring_held_add(r, 1);
	atomic_store_explicit(&sl->meta,
			      (uint32_t)ev->type | (uint32_t)ev->flags << 8,
			      memory_order_relaxed);
	atomic_store_explicit(&sl->seq, s, memory_order_release);
	atomic_store_explicit(&r->head, s + 1, memory_order_release);

	if (old != NULL) {
		r->retired[r->nretired++] = old;
		if (r->nretired == r->batch)
			ring_scan(r);
	}

	/* Pairs with the fence a reader issues after listing itself. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->listed, memory_order_relaxed) != NULL)
		ring_wake(r);
}

void
kfi_ring_close(struct kfi_ring *r)
{
	atomic_store(&r->closed, true);
	atomic_thread_fence(memory_order_seq_cst);
	ring_relay_stack(r, 2, NULL);
	pthread_mutex_lock(&r->mu);
	for (struct kfi_ring_reader *rd = r->readers; rd; rd = rd->next)
		ring_efd_signal(rd->efd);
	pthread_cond_broadcast(&r->space_cv);
	pthread_mutex_unlock(&r->mu);
}

void
kfi_ring_stats(struct kfi_ring *r, struct kfi_ring_stats *out)
{
	out->published = kfi_ring_head(r) - 1;
	out->scans = atomic_load(&r->st_scans);
	out->block_waits = atomic_load(&r->st_block_waits);
	out->block_expiry = atomic_load(&r->st_block_expiry);
	out->wakes = atomic_load(&r->st_wakes);
	out->publish_wakes = atomic_load(&r->st_pub_wakes);
	out->deferred = atomic_load(&r->st_deferred);
	out->held = atomic_load_explicit(&r->st_held, memory_order_relaxed);
}

/* ---- readers ---- */

/* Make room in the scan arrays for one more reader. Caller holds mu. */
static kf_err
ring_grow_locked(struct kfi_ring *r)
{
	size_t ncap = r->hz_cap * 2;
	struct ring_hz *hz;
	kf_object **kept;

	if (r->nreaders + 1 <= r->hz_cap)
		return KF_OK;
	kept = realloc(r->kept, ncap * sizeof(*kept));
	if (kept == NULL)
		return KF_ENOMEM;
	r->kept = kept;
	hz = calloc(2 * ncap, sizeof(*hz)); /* empty between scans */
	if (hz == NULL)
		return KF_ENOMEM;
	free(r->hz);
	r->hz = hz;
	r->hz_cap = ncap;
	return KF_OK;
}

kf_err
kfi_ring_reader_alloc(struct kfi_ring *r, const kf_sub_opts *opts,
		      struct kfi_ring_reader **out)
{
	struct kfi_ring_reader *rd;
	kf_err err;

	if (opts != NULL && opts->policy != KF_SUB_DROP &&
	    opts->policy != KF_SUB_BLOCK) {
		kfi_log(KF_LOG_ERR, "KF-SUB-OPTS",
			"subscribe: policy %d is neither KF_SUB_DROP nor "
			"KF_SUB_BLOCK",
			(int)opts->policy);
		return KF_EINVAL;
	}
	if (opts != NULL && opts->block_timeout_ms < 0) {
		kfi_log(KF_LOG_ERR, "KF-SUB-OPTS",
			"subscribe: block_timeout_ms %lld is negative (0 "
			"means the default)",
			(long long)opts->block_timeout_ms);
		return KF_EINVAL;
	}
	rd = aligned_alloc(64, (sizeof(*rd) + 63) / 64 * 64);
	if (rd == NULL)
		return KF_ENOMEM;
	memset(rd, 0, sizeof(*rd));
	rd->ring = r;
	rd->blocking = opts != NULL && opts->policy == KF_SUB_BLOCK;
	rd->block_ms = opts != NULL && opts->block_timeout_ms > 0
			   ? opts->block_timeout_ms
			   : 1000;
	rd->spin = RING_SPIN_MIN;
	rd->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rd->efd < 0) {
		free(rd);
		return KF_EIO;
	}

	pthread_mutex_lock(&r->mu);
	err = ring_grow_locked(r);
	if (err != KF_OK) {
		pthread_mutex_unlock(&r->mu);
		close(rd->efd);
		free(rd);
		return err;
	}
	/* Under mu the producer cannot be scanning, so the position we take
	 * and the first protection we publish cannot race a release. */
	rd->cur = kfi_ring_head(r);
	atomic_init(&rd->pos, rd->cur);
	rd->attached = true;
	rd->next = r->readers;
	if (r->readers != NULL)
		r->readers->prev = rd;
	r->readers = rd;
	r->nreaders++;
	if (rd->blocking)
		atomic_fetch_add(&r->nblocking, 1);
	pthread_mutex_unlock(&r->mu);
	*out = rd;
	return KF_OK;
}

void
kfi_ring_reader_close(struct kfi_ring_reader *rd)
{
	struct kfi_ring *r = rd->ring;
	uint32_t s = WS_SLEEP;

	pthread_mutex_lock(&r->mu);
	if (rd->attached) {
		rd->attached = false;
		if (rd->prev != NULL)
			rd->prev->next = rd->next;
		else
			r->readers = rd->next;
		if (rd->next != NULL)
			rd->next->prev = rd->prev;
		r->nreaders--;
		if (rd->blocking)
			atomic_fetch_sub(&r->nblocking, 1);
		atomic_store(&rd->closed, true);
		pthread_cond_broadcast(&r->space_cv);
	}
	pthread_mutex_unlock(&r->mu);

	/* After closed (seq_cst): a sleeper either sees it on its re-check
	 * or is in SLEEP here; moving ws makes its FUTEX_WAIT fail or wakes
	 * it. The node stays listed. */
	if (atomic_compare_exchange_strong(&rd->ws, &s, WS_LISTED))
		ring_futex_wake(&rd->ws, 1);
	ring_efd_signal(rd->efd);
}

bool
kfi_ring_reader_closed(const struct kfi_ring_reader *rd)
{
	return atomic_load(&rd->closed) || atomic_load(&rd->ring->closed);
}

void
kfi_ring_reader_free(struct kfi_ring_reader *rd)
{
	if (rd == NULL)
		return;
	kfi_ring_reader_close(rd);
	/* Wait until no list holds the node: take the stack, or let the
	 * relayer that holds it finish (it is running ring code). */
	while (atomic_load(&rd->ws) != WS_IDLE) {
		ring_relay_stack(rd->ring, 2, NULL);
		if (atomic_load(&rd->ws) != WS_IDLE)
			sched_yield();
	}
	close(rd->efd);
	free(rd);
}

uint64_t
kfi_ring_reader_pos(const struct kfi_ring_reader *rd)
{
	return atomic_load_explicit(&rd->pos, memory_order_acquire);
}

/* Publish the reader's position; a blocking reader also wakes a producer
 * waiting for it. */
static void
ring_reader_set_pos(struct kfi_ring_reader *rd, uint64_t pos)
{
	struct kfi_ring *r = rd->ring;

	rd->cur = pos;
	if (!rd->blocking) {
		atomic_store_explicit(&rd->pos, pos, memory_order_release);
		return;
	}
	atomic_store(&rd->pos, pos);
	if (atomic_load(&r->producer_waiting)) {
		pthread_mutex_lock(&r->mu);
		pthread_cond_broadcast(&r->space_cv);
		pthread_mutex_unlock(&r->mu);
	}
}

void
kfi_ring_reader_seek(struct kfi_ring_reader *rd, uint64_t seq)
{
	ring_reader_set_pos(rd, seq);
}

void
kfi_ring_reader_unpin(struct kfi_ring_reader *rd)
{
	atomic_store_explicit(&rd->hazard, NULL, memory_order_release);
}

static kf_err
ring_read_lagged(struct kfi_ring_reader *rd, uint64_t *missed)
{
	struct kfi_ring *r = rd->ring;
	uint64_t h = kfi_ring_head(r);
	uint64_t np = rd->cur + 1;

	if (h - r->cap > np)
		np = h - r->cap;
	*missed = np - rd->cur;
	kfi_ring_reader_unpin(rd);
	atomic_store(&rd->exempt, false);
	ring_reader_set_pos(rd, np);
	return KF_ELAGGED;
}

kf_err
kfi_ring_read(struct kfi_ring_reader *rd, kf_event *ev, uint64_t *seq,
	      uint64_t *missed)
{
	struct kfi_ring *r = rd->ring;
	uint64_t pos = rd->cur;
	struct ring_slot *sl = &r->slots[pos & r->mask];
	uint64_t v1, v2;
	kf_object *p;
	uint32_t meta;

	if (atomic_load_explicit(&rd->closed, memory_order_relaxed)) {
		kfi_ring_reader_unpin(rd);
		return KF_ECLOSED;
	}
again:
	v1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
	if (v1 != pos) {
		uint64_t h;

		if (v1 != RING_BUSY && v1 < pos)
			goto empty; /* an older lap: pos not published */
		/* BUSY may be the write of pos itself, finished by now: read
		 * head first, then the slot again. With pos < head, event
		 * pos was complete before this second load, so anything but
		 * pos there is an overwrite. Bounded: a retry needs the
		 * producer to have completed pos meanwhile. */
		h = kfi_ring_head(r);
		v1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
		if (v1 == pos)
			goto again;
		if (pos >= h)
			goto empty;
		return ring_read_lagged(rd, missed);
	}
	p = atomic_load_explicit(&sl->obj, memory_order_relaxed);
	meta = atomic_load_explicit(&sl->meta, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	atomic_store(&rd->hazard, p);
	v2 = atomic_load(&sl->seq);
	if (v2 != pos)
		return ring_read_lagged(rd, missed);

	ring_reader_set_pos(rd, pos + 1);
	ev->type = (kf_event_type)(meta & 0xff);
	ev->flags = meta >> 8;
	ev->obj = p;
	ev->missed = 0;
	*seq = pos;
	return KF_OK;

empty:
	kfi_ring_reader_unpin(rd);
	return atomic_load(&r->closed) ? KF_ECLOSED : KF_EAGAIN;
}

static bool
ring_reader_ready(struct kfi_ring_reader *rd)
{
	return rd->cur < kfi_ring_head(rd->ring);
}

/* Spin a little while an event may be about to come, if few enough
 * readers spin already. True when one came (or a close). */
static bool
ring_spin(struct kfi_ring_reader *rd)
{
	struct kfi_ring *r = rd->ring;
	uint32_t i, limit = rd->spin;
	bool got = false;

	if (atomic_load_explicit(&r->nspin, memory_order_relaxed) >=
	    r->max_spin)
		return false;
	if (atomic_fetch_add(&r->nspin, 1) >= r->max_spin) {
		atomic_fetch_sub(&r->nspin, 1);
		return false;
	}
	for (i = 0; i < limit && !got; i++) { /* bounded by limit */
		ring_cpu_relax();
		got = ring_reader_ready(rd) ||
		      atomic_load_explicit(&rd->closed, memory_order_relaxed);
	}
	atomic_fetch_sub(&r->nspin, 1);
	if (got)
		rd->spin = i * 2 > RING_SPIN_MAX   ? RING_SPIN_MAX
			   : i * 2 < RING_SPIN_MIN ? RING_SPIN_MIN
						   : i * 2;
	else if (rd->spin / 2 >= RING_SPIN_MIN)
		rd->spin /= 2;
	return got;
}

/* Make ws `want` (SLEEP or FD) with the node on a list: pushed on the
 * stack when it was IDLE. Reader thread. */
static void
ring_list(struct kfi_ring_reader *rd, uint32_t want)
{
	struct kfi_ring *r = rd->ring;

	/* Bounded: a failed CAS means a waker released the node (then it
	 * is pushed) or a closer moved it; WAKING lasts one eventfd write. */
	for (;;) {
		uint32_t s = atomic_load(&rd->ws);
		struct kfi_ring_reader *top;

		if (s == WS_WAKING) {
			sched_yield();
			continue;
		}
		if (s != WS_IDLE) {
			if (s == want ||
			    atomic_compare_exchange_strong(&rd->ws, &s, want))
				return;
			continue;
		}
		atomic_store(&rd->ws, want);
		top = atomic_load(&r->listed);
		do
			rd->wnext = top;
		while (!atomic_compare_exchange_weak(&r->listed, &top, rd));
		return;
	}
}

/* The reader was handed over a share of a list (ws is WAKING): take it,
 * relay it, give back the count. */
static void
ring_take_share(struct kfi_ring_reader *rd)
{
	struct kfi_ring_reader *share = rd->share;

	rd->share = NULL;
	atomic_store(&rd->ws, WS_IDLE);
	ring_relay(rd->ring, share, 2, NULL);
	ring_relay_exit(rd->ring, NULL);
}

/* Leave SLEEP: back to LISTED, or take the share a waker handed over. */
static void
ring_unsleep(struct kfi_ring_reader *rd)
{
	/* Bounded: from SLEEP only a waker (WAKING) or a closer (LISTED)
	 * moves ws. */
	for (;;) {
		uint32_t s = WS_SLEEP;

		if (atomic_compare_exchange_strong(&rd->ws, &s, WS_LISTED))
			return;
		if (s == WS_WAKING) {
			ring_take_share(rd);
			return;
		}
		if (s != WS_SLEEP)
			return; /* a closer moved it */
	}
}

kf_err
kfi_ring_reader_wait(struct kfi_ring_reader *rd, int64_t timeout_ms)
{
	struct timespec ts, *tsp = NULL;
	long rc = 0;
	int e = 0;

	if (kfi_ring_reader_closed(rd))
		return KF_ECLOSED;
	if (timeout_ms == 0)
		return ring_reader_ready(rd) ? KF_OK : KF_ETIMEDOUT;
	if (ring_reader_ready(rd) || ring_spin(rd))
		return kfi_ring_reader_closed(rd) ? KF_ECLOSED : KF_OK;
	ring_list(rd, WS_SLEEP);
	atomic_thread_fence(memory_order_seq_cst);
	if (!ring_reader_ready(rd) && !kfi_ring_reader_closed(rd)) {
		if (timeout_ms > 0) {
			ts.tv_sec = timeout_ms / 1000;
			ts.tv_nsec = (timeout_ms % 1000) * 1000000;
			tsp = &ts;
		}
		rc = ring_futex_wait(&rd->ws, WS_SLEEP, tsp);
		e = errno;
	}
	ring_unsleep(rd);
	if (kfi_ring_reader_closed(rd))
		return KF_ECLOSED;
	if (rc != 0 && e == ETIMEDOUT && !ring_reader_ready(rd))
		return KF_ETIMEDOUT;
	return KF_OK;
}

int
kfi_ring_reader_fd(const struct kfi_ring_reader *rd)
{
	return rd->efd;
}

void
kfi_ring_reader_arm(struct kfi_ring_reader *rd)
{
	ring_efd_drain(rd->efd);
	if (!kfi_ring_reader_closed(rd))
		ring_list(rd, WS_FD);
	atomic_thread_fence(memory_order_seq_cst);
	/* The caller reads again after arming; a publish that raced the
	 * arming is then either seen or writes the fd. A closed reader's
	 * fd must stay readable. */
	if (kfi_ring_reader_closed(rd))
		ring_efd_signal(rd->efd);
}

void
kfi_ring_reader_kick(struct kfi_ring_reader *rd)
{
	ring_efd_signal(rd->efd);
}

/*
 * bench_ring: the in-process broadcast ring.
 *
 *  1. CPU per (subscriber, event) delivered through kf_subscriber_next()
 *     at 1, 10 and 100 subscriber threads, and the writer's CPU per
 *     publish at each count (goal: flat within 1.2x from 1 to 100).
 *  2. Baseline in the same run: the same threads doing an atomic
 *     increment and decrement on one shared counter (what handing each
 *     subscriber its own object reference would cost).
 *  3. One stalled subscriber: wall-clock throughput of 10 readers with and
 *     without an 11th that never reads (goal: < 5 % change).
 *
 * The writer publishes in bursts of half the ring and waits (off the
 * clock) until the active readers caught up, so nobody lags; CPU times
 * are per-thread (CLOCK_THREAD_CPUTIME_ID). Prints a table and one
 * `RESULT {json}` line.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/object.h"
#include "kubefan/subscriber.h"
#include "ring.h"

#define CAP  4096
#define NOBJ 1024

static kf_object *objs[NOBJ];

static double
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* An empty, synced source: the subscribers' first frame is empty. */
static kf_err
src_snapshot(void *arg, void **snap, uint64_t *h0, uint64_t *h1)
{
	*h0 = *h1 = kfi_ring_head(arg);
	*snap = NULL;
	return KF_OK;
}
static size_t
src_len(void *snap)
{
	return 0;
}
static kf_object *
src_at(void *snap, size_t i)
{
	return NULL;
}
static uint64_t
src_seq_at(void *snap, size_t i)
{
	return 0;
}
static void
src_snap_free(void *snap)
{
}
static bool
src_synced(void *arg)
{
	return true;
}
static kf_err
src_get(void *arg, const kf_objref *ref, kf_object **out)
{
	return KF_ENOTFOUND;
}
static void
src_release(void *arg)
{
}
static const struct kfi_sub_source_ops src_ops = {
    src_snapshot,  src_len,    src_at,	src_seq_at,
    src_snap_free, src_synced, src_get, src_release,
};

struct reader {
	kf_subscriber *sub;
	uint64_t want;
	double cpu;
	pthread_t t;
};

static void *
reader_main(void *p)
{
	struct reader *r = p;
	uint64_t got = 0;
	double c0 = cpu_ns();
	kf_event ev;

	while (got < r->want) {
		if (kf_subscriber_next(r->sub, -1, &ev) != KF_OK)
			break;
		if (ev.type == KF_EV_APPLY)
			got++;
	}
	r->cpu = cpu_ns() - c0;
	return NULL;
}

struct run {
	double pub_ns;	  /* writer CPU per publish */
	double sub_ns;	  /* reader CPU per (reader, event) */
	double wall_s;	  /* wall time of the run */
	double events_ps; /* events per second delivered to each reader */
};

/* n active readers (+ stalled ones that never read), m events. */
static struct run
run_ring(int n, int stalled, uint64_t m)
{
	struct kfi_ring *ring;
	struct reader *rd = calloc((size_t)n, sizeof(*rd));
	kf_subscriber **st = calloc((size_t)stalled + 1, sizeof(*st));
	struct kfi_sub_source src = {.ops = &src_ops};
	double pub = 0, w0, total_cpu = 0;
	struct run out;
	kf_event ev = {.type = KF_EV_APPLY};

	kfi_ring_alloc(CAP, &ring);
	src.ring = ring;
	src.arg = ring;
	for (int i = 0; i < stalled; i++)
		kfi_subscriber_alloc(&src, NULL, &st[i]);
	for (int i = 0; i < n; i++) {
		kf_event e;

		rd[i].want = m;
		kfi_subscriber_alloc(&src, NULL, &rd[i].sub);
		/* The (empty) first frame before anything is published. */
		kf_subscriber_try_next(rd[i].sub, &e);
		kf_subscriber_try_next(rd[i].sub, &e);
	}
	w0 = wall_ns();
	for (int i = 0; i < n; i++)
		pthread_create(&rd[i].t, NULL, reader_main, &rd[i]);
	for (uint64_t done = 0; done < m;) {
		uint64_t burst = m - done < CAP / 2 ? m - done : CAP / 2;
		double c0 = cpu_ns();

		for (uint64_t k = 0; k < burst; k++) {
			ev.obj = objs[(done + k) % NOBJ];
			kfi_ring_publish(ring, &ev);
		}
		pub += cpu_ns() - c0;
		done += burst;
		/* Off the clock: wait until every active reader is within
		 * half a ring, so none lags. */
		for (int i = 0; i < n; i++) {
			kf_sub_stats s;

			for (;;) {
				kf_subscriber_stats(rd[i].sub, &s);
				if (s.lag <= CAP / 2)
					break;
				sched_yield();
			}
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_join(rd[i].t, NULL);
		total_cpu += rd[i].cpu;
	}
	out.wall_s = (wall_ns() - w0) / 1e9;
	out.pub_ns = pub / (double)m;
	out.sub_ns = total_cpu / ((double)m * n);
	out.events_ps = (double)m / out.wall_s;
	for (int i = 0; i < n; i++)
		kf_subscriber_free(rd[i].sub);
	for (int i = 0; i < stalled; i++) {
		kf_sub_stats s;

		kf_subscriber_stats(st[i], &s);
		if (s.lag < m)
			fprintf(stderr, "stalled reader read?\n");
		kf_subscriber_free(st[i]);
	}
	kfi_ring_free(ring);
	free(rd);
	free(st);
	return out;
}

static _Atomic uint64_t shared_count;

struct pair_arg {
	uint64_t n;
	double cpu;
	pthread_t t;
};

static void *
pair_main(void *p)
{
	struct pair_arg *a = p;
	double c0 = cpu_ns();

	for (uint64_t i = 0; i < a->n; i++) {
		atomic_fetch_add(&shared_count, 1);
		atomic_fetch_sub(&shared_count, 1);
	}
	a->cpu = cpu_ns() - c0;
	return NULL;
}

/* CPU per inc+dec pair with n threads on one counter. */
static double
run_pairs(int n, uint64_t per_thread)
{
	struct pair_arg *a = calloc((size_t)n, sizeof(*a));
	double total = 0;

	for (int i = 0; i < n; i++) {
		a[i].n = per_thread;
		pthread_create(&a[i].t, NULL, pair_main, &a[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(a[i].t, NULL);
		total += a[i].cpu;
	}
	free(a);
	return total / ((double)per_thread * n);
}

int
main(void)
{
	int counts[] = {1, 10, 100};
	uint64_t events[] = {400000, 100000, 20000};
	struct run r[3];
	double pairs[3], with = 0, without = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < NOBJ; i++) {
		char buf[200];
		int len = snprintf(buf, sizeof(buf),
				   "{\"kind\":\"ConfigMap\",\"metadata\":{"
				   "\"name\":\"o%d\",\"namespace\":\"b\","
				   "\"resourceVersion\":\"%d\"}}",
				   i, i + 1);

		if (kf_object_parse(buf, (size_t)len, NULL, NULL, 0,
				    &objs[i]) != KF_OK)
			return 1;
	}

	printf("%-12s %14s %16s %16s %12s\n", "subscribers", "publish ns",
	       "ns/(sub,event)", "atomic pair ns", "ev/s each");
	for (int i = 0; i < 3; i++) {
		r[i] = run_ring(counts[i], 0, events[i]);
		pairs[i] = run_pairs(counts[i], events[i]);
		printf("%-12d %14.1f %16.1f %16.1f %12.0f\n", counts[i],
		       r[i].pub_ns, r[i].sub_ns, pairs[i], r[i].events_ps);
	}

	/* Stalled subscriber: best of three alternating runs each. */
	for (int k = 0; k < 3; k++) {
		struct run a = run_ring(10, 0, 200000);
		struct run b = run_ring(10, 1, 200000);

		if (a.events_ps > without)
			without = a.events_ps;
		if (b.events_ps > with)
			with = b.events_ps;
	}
	printf("\nstalled subscriber: 10 readers %.0f ev/s each without, "
	       "%.0f with one stalled (%+.1f %%)\n",
	       without, with, (with / without - 1) * 100);
	printf("publish cost 100 vs 1 subscriber: %.2fx\n",
	       r[2].pub_ns / r[0].pub_ns);

	printf("RESULT {\"bench\":\"ring\",\"capacity\":%d,", CAP);
	for (int i = 0; i < 3; i++)
		printf("\"subs_%d\":{\"publish_ns\":%.1f,\"per_sub_event_ns\":"
		       "%.1f,\"atomic_pair_ns\":%.1f,\"events_per_s\":%.0f},",
		       counts[i], r[i].pub_ns, r[i].sub_ns, pairs[i],
		       r[i].events_ps);
	printf("\"publish_ratio_100_vs_1\":%.3f,\"stalled_change_pct\":%.2f}"
	       "\n",
	       r[2].pub_ns / r[0].pub_ns, (with / without - 1) * 100);
	for (int i = 0; i < NOBJ; i++)
		kf_object_unref(objs[i]);
	return 0;
}

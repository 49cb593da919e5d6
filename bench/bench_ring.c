/*
 * bench_ring: the in-process broadcast ring.
 *
 *  1. Readers that keep up: the writer publishes in bursts of half the
 *     ring and waits (off the clock) until every reader is within half a
 *     ring, so nobody lags; readers sleep between bursts and whenever
 *     they run dry. Writer CPU per publish and reader CPU per (reader,
 *     event) at 1, 10 and 100 reader threads.
 *  2. Readers that sleep: the writer publishes one event, waits (off the
 *     clock) until every reader has read it, then pauses 300 us so that
 *     every reader is asleep again; each publish must wake them all.
 *     Writer CPU per publish (measured around each call, less the cost
 *     of the clock reads), fan-out latency from publish to the last
 *     reader having read it (p50/p99), reader CPU per (reader, event).
 *     Controls: 1 reader next to 99 subscribers that never read (the
 *     ring's own per-subscriber costs without 100 threads on the cores),
 *     and the readers that keep up with the writer alone on CPU 0.
 *  3. Baseline in the same run: the same threads doing an atomic
 *     increment and decrement on one shared counter (what handing each
 *     subscriber its own object reference would cost).
 *  4. One stalled subscriber: 10 readers with and without an 11th that
 *     never reads (goal: < 5 % change), STALL_PAIRS pairs of runs of
 *     400 000 events, the two runs of a pair back to back and the one
 *     going first alternating. Two figures, each the median over pairs
 *     of the pair's ratio (slow drift in the machine's load cancels in a
 *     pair): wall-clock events per second each reader got, and the CPU
 *     the writer and the 10 readers spent per event (what bounds their
 *     throughput when the cores are busy; far less noisy on a shared
 *     machine than the wall clock).
 *
 * Wake-up costs are paid inside publish or inside the readers' next(),
 * so they are in these CPU times: the writer's thread CPU includes the
 * system calls it makes, and the readers' includes the wake-ups they
 * pass on. The ring's counters give the system calls per publish made
 * by the writer and in total. CPU times are per thread
 * (CLOCK_THREAD_CPUTIME_ID). Each figure is the run with the median
 * publish cost of REPS, the counts interleaved; the 100-vs-1 ratios are
 * the median over the REPS of the ratio within one repetition (the runs
 * of one repetition are minutes closer than those of two), and are also
 * given for the lowest of the REPS (on a shared machine noise only adds).
 * Prints tables and one `RESULT {json}` line.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kubefan/object.h"
#include "kubefan/subscriber.h"
#include "ring.h"

#define CAP	    4096
#define NOBJ	    1024
#define REPS	    11 /* each figure is the median of REPS runs */
#define STALL_PAIRS 11 /* stalled subscriber: alternating pairs */

static kf_object *objs[NOBJ];

/* When set (and there are 2+ CPUs): the writer alone on CPU 0, the
 * readers on the other CPUs, so that no reader thread shares the writer's
 * core and caches. */
static bool pin_writer;

static void
pin_to(pthread_t t, int first, int last)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = first; c <= last; c++)
		CPU_SET(c, &set);
	pthread_setaffinity_np(t, sizeof(set), &set);
}

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
	double pub_sys;	  /* wake-up system calls per publish, writer */
	double all_sys;	  /* wake-up system calls per publish, all threads */
	double deferred;  /* share of publishes left to a relayer */
	double lat_p50_us, lat_p99_us; /* paced: publish -> last reader */
	double ctl_ns;	   /* paced: an empty futex wake in the same state */
	double pub_min_ns; /* the lowest publish cost of the repetitions */
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
sleep_us(long us)
{
	struct timespec ts = {us / 1000000, us % 1000000 * 1000};

	nanosleep(&ts, NULL);
}

/* Off the clock: until every reader's lag is at most `max`. */
static void
wait_readers(struct reader *rd, int n, uint64_t max)
{
	for (int i = 0; i < n; i++) {
		kf_sub_stats s;

		for (;;) {
			kf_subscriber_stats(rd[i].sub, &s);
			if (s.lag <= max)
				break;
			sched_yield();
		}
	}
}

/* n active readers (+ stalled ones that never read), m events; paced:
 * one event at a time with every reader asleep before it. */
static struct run
run_ring(int n, int stalled, uint64_t m, bool paced)
{
	struct kfi_ring *ring;
	struct reader *rd = calloc((size_t)n, sizeof(*rd));
	kf_subscriber **st = calloc((size_t)stalled + 1, sizeof(*st));
	double *lat = paced ? calloc(m, sizeof(*lat)) : NULL;
	struct kfi_sub_source src = {.ops = &src_ops};
	double pub = 0, ctl = 0, w0, total_cpu = 0, clock_cost = 0;
	_Atomic uint32_t nobody = 0;
	struct kfi_ring_stats rs0, rs1;
	struct run out = {0};
	kf_event ev = {.type = KF_EV_APPLY};
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

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
	if (paced) {
		/* What two clock reads cost, to take off each publish. */
		double c0 = cpu_ns();

		for (int i = 0; i < 1000; i++)
			(void)cpu_ns();
		clock_cost = (cpu_ns() - c0) / 1000;
	}
	kfi_ring_stats(ring, &rs0);
	w0 = wall_ns();
	for (int i = 0; i < n; i++) {
		pthread_create(&rd[i].t, NULL, reader_main, &rd[i]);
		if (pin_writer)
			pin_to(rd[i].t, 1, ncpu - 1);
	}
	if (pin_writer)
		pin_to(pthread_self(), 0, 0);
	if (paced) {
		/* Each turn: every reader asleep, one publish, all read it. */
		for (uint64_t k = 0; k < m; k++) {
			double c0, c1, t0;

			sleep_us(300);
			/* Control: one system call nobody waits on, made in
			 * the same state as the publish that follows. */
			c0 = cpu_ns();
			syscall(SYS_futex, &nobody, FUTEX_WAKE_PRIVATE, 1, NULL,
				NULL, 0);
			c1 = cpu_ns();
			ctl += c1 - c0 - clock_cost;
			ev.obj = objs[k % NOBJ];
			t0 = wall_ns();
			c0 = cpu_ns();
			kfi_ring_publish(ring, &ev);
			c1 = cpu_ns();
			pub += c1 - c0 - clock_cost;
			wait_readers(rd, n, 0);
			lat[k] = (wall_ns() - t0) / 1e3;
		}
	}
	for (uint64_t done = 0; !paced && done < m;) {
		uint64_t burst = m - done < CAP / 2 ? m - done : CAP / 2;
		double c0 = cpu_ns();

		for (uint64_t k = 0; k < burst; k++) {
			ev.obj = objs[(done + k) % NOBJ];
			kfi_ring_publish(ring, &ev);
		}
		pub += cpu_ns() - c0;
		done += burst;
		/* Off the clock: every active reader within half a ring, so
		 * none lags. */
		wait_readers(rd, n, CAP / 2);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(rd[i].t, NULL);
		total_cpu += rd[i].cpu;
	}
	if (pin_writer)
		pin_to(pthread_self(), 0, ncpu - 1);
	kfi_ring_stats(ring, &rs1);
	out.wall_s = (wall_ns() - w0) / 1e9;
	out.pub_ns = pub / (double)m;
	out.sub_ns = total_cpu / ((double)m * n);
	out.events_ps = (double)m / out.wall_s;
	out.pub_sys = (double)(rs1.publish_wakes - rs0.publish_wakes) / m;
	out.all_sys = (double)(rs1.wakes - rs0.wakes) / m;
	out.deferred = (double)(rs1.deferred - rs0.deferred) / m;
	if (paced) {
		out.ctl_ns = ctl / (double)m;
		qsort(lat, m, sizeof(*lat), cmp_double);
		out.lat_p50_us = lat[m / 2];
		out.lat_p99_us = lat[m * 99 / 100];
	}
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
	free(lat);
	return out;
}

static int
cmp_run(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	return x->pub_ns < y->pub_ns ? -1 : x->pub_ns > y->pub_ns;
}

/* The run with the median publish cost of `reps` (sorts runs). */
static struct run
median_run(struct run *runs, int reps)
{
	struct run m;

	qsort(runs, (size_t)reps, sizeof(*runs), cmp_run);
	m = runs[reps / 2];
	m.pub_min_ns = runs[0].pub_ns;
	return m;
}

/* The median of n values (sorts them). */
static double
median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median over repetitions of hi's publish cost over lo's. */
static double
paired_ratio(struct run rows[][3], int reps, int hi, int lo)
{
	double v[REPS];

	for (int k = 0; k < reps; k++)
		v[k] = rows[k][hi].pub_ns / rows[k][lo].pub_ns;
	return median_of(v, reps);
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
	uint64_t paced_events[] = {1000, 1000, 300};
	struct run r[3], q[3], p[3] = {{0}}, idle, keep[REPS][3],
			       asleep[REPS][3];
	struct run idles[REPS], col[REPS];
	double pairs[3], ratio_keep, ratio_pinned = 0, ratio_asleep;
	double st_wall[STALL_PAIRS], st_cpu[STALL_PAIRS], stall_wall, stall_cpu;

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

	printf("readers that keep up (bursts of %d)\n", CAP / 2);
	printf("%-8s %11s %9s %9s %9s %14s %14s %11s\n", "readers",
	       "publish ns", "pub sys", "all sys", "deferred", "ns/(sub,event)",
	       "atomic pair ns", "ev/s each");
	/* Repetitions interleave the counts, so that drift in the load of
	 * the machine hits them alike; each row is the median run. */
	for (int k = 0; k < REPS; k++) {
		for (int i = 0; i < 3; i++)
			keep[k][i] = run_ring(counts[i], 0, events[i], false);
		idles[k] = run_ring(1, 99, events[0], false);
	}
	ratio_keep = paired_ratio(keep, REPS, 2, 0);
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < REPS; k++)
			col[k] = keep[k][i];
		r[i] = median_run(col, REPS);
		pairs[i] = run_pairs(counts[i], events[i]);
		printf("%-8d %11.1f %9.4f %9.4f %9.3f %14.1f %14.1f %11.0f\n",
		       counts[i], r[i].pub_ns, r[i].pub_sys, r[i].all_sys,
		       r[i].deferred, r[i].sub_ns, pairs[i], r[i].events_ps);
	}

	/* Control: 100 subscribers of which 99 never read (no threads):
	 * the ring's own per-subscriber costs without 100 threads sharing
	 * the cores with the writer. */
	idle = median_run(idles, REPS);
	printf("%-8s %11.1f %9.4f %9.4f %9.3f %14.1f\n", "1+99idle",
	       idle.pub_ns, idle.pub_sys, idle.all_sys, idle.deferred,
	       idle.sub_ns);

	/* The same with the writer alone on CPU 0 (2+ CPUs only). */
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		pin_writer = true;
		for (int k = 0; k < REPS; k++)
			for (int i = 0; i < 3; i++)
				keep[k][i] =
				    run_ring(counts[i], 0, events[i], false);
		pin_writer = false;
		ratio_pinned = paired_ratio(keep, REPS, 2, 0);
		printf("\nreaders that keep up, writer alone on CPU 0\n");
		for (int i = 0; i < 3; i++) {
			for (int k = 0; k < REPS; k++)
				col[k] = keep[k][i];
			p[i] = median_run(col, REPS);
			printf("%-8d %11.1f %9.4f %9.4f %9.3f %14.1f %14s "
			       "%11.0f\n",
			       counts[i], p[i].pub_ns, p[i].pub_sys,
			       p[i].all_sys, p[i].deferred, p[i].sub_ns, "",
			       p[i].events_ps);
		}
	}

	printf("\nreaders that sleep (one event, all asleep before it)\n");
	printf("%-8s %11s %11s %9s %9s %14s %10s %10s\n", "readers",
	       "publish ns", "ctl sys ns", "pub sys", "all sys",
	       "ns/(sub,event)", "p50 us", "p99 us");
	for (int k = 0; k < REPS; k++)
		for (int i = 0; i < 3; i++)
			asleep[k][i] =
			    run_ring(counts[i], 0, paced_events[i], true);
	ratio_asleep = paired_ratio(asleep, REPS, 2, 0);
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < REPS; k++)
			col[k] = asleep[k][i];
		q[i] = median_run(col, REPS);
		printf("%-8d %11.1f %11.1f %9.4f %9.4f %14.1f %10.1f %10.1f\n",
		       counts[i], q[i].pub_ns, q[i].ctl_ns, q[i].pub_sys,
		       q[i].all_sys, q[i].sub_ns, q[i].lat_p50_us,
		       q[i].lat_p99_us);
	}

	/* Stalled subscriber: pairs, the side going first alternating. */
	for (int k = 0; k < STALL_PAIRS; k++) {
		struct run a, b;

		if (k % 2) {
			b = run_ring(10, 1, 400000, false);
			a = run_ring(10, 0, 400000, false);
		} else {
			a = run_ring(10, 0, 400000, false);
			b = run_ring(10, 1, 400000, false);
		}
		st_wall[k] = b.events_ps / a.events_ps;
		st_cpu[k] =
		    (a.pub_ns + 10 * a.sub_ns) / (b.pub_ns + 10 * b.sub_ns);
	}
	stall_wall = (median_of(st_wall, STALL_PAIRS) - 1) * 100;
	stall_cpu = (median_of(st_cpu, STALL_PAIRS) - 1) * 100;
	printf("\nstalled subscriber, 10 readers, median of %d pairs: "
	       "wall-clock events/s each %+.1f %% (pairs from %+.1f to "
	       "%+.1f %%), events per CPU-second %+.1f %% (from %+.1f to "
	       "%+.1f %%)\n",
	       STALL_PAIRS, stall_wall, (st_wall[0] - 1) * 100,
	       (st_wall[STALL_PAIRS - 1] - 1) * 100, stall_cpu,
	       (st_cpu[0] - 1) * 100, (st_cpu[STALL_PAIRS - 1] - 1) * 100);
	printf("publish cost 100 vs 1 reader (median of paired ratios; "
	       "minima): %.2fx (%.2fx) keeping up, %.2fx (%.2fx) with the "
	       "writer alone on a CPU, %.2fx (%.2fx) asleep; 1 reader + 99 "
	       "idle subscribers vs 1: %.2fx (%.2fx)\n",
	       ratio_keep, r[2].pub_min_ns / r[0].pub_min_ns, ratio_pinned,
	       p[0].pub_ns > 0 ? p[2].pub_min_ns / p[0].pub_min_ns : 0,
	       ratio_asleep, q[2].pub_min_ns / q[0].pub_min_ns,
	       idle.pub_ns / r[0].pub_ns, idle.pub_min_ns / r[0].pub_min_ns);

	printf("RESULT {\"bench\":\"ring\",\"capacity\":%d,", CAP);
	for (int i = 0; i < 3; i++)
		printf("\"subs_%d\":{\"publish_ns\":%.1f,\"publish_syscalls\":"
		       "%.4f,\"all_syscalls\":%.4f,\"per_sub_event_ns\":%.1f,"
		       "\"atomic_pair_ns\":%.1f,\"events_per_s\":%.0f,"
		       "\"asleep_publish_ns\":%.1f,\"asleep_publish_syscalls\":"
		       "%.4f,\"asleep_per_sub_event_ns\":%.1f,"
		       "\"asleep_p50_us\":%.1f,\"asleep_p99_us\":%.1f,"
		       "\"asleep_control_syscall_ns\":%.1f},",
		       counts[i], r[i].pub_ns, r[i].pub_sys, r[i].all_sys,
		       r[i].sub_ns, pairs[i], r[i].events_ps, q[i].pub_ns,
		       q[i].pub_sys, q[i].sub_ns, q[i].lat_p50_us,
		       q[i].lat_p99_us, q[i].ctl_ns);
	printf("\"subs_1_plus_99_idle\":{\"publish_ns\":%.1f},", idle.pub_ns);
	printf("\"writer_pinned\":{\"publish_ns_1\":%.1f,\"publish_ns_10\":"
	       "%.1f,\"publish_ns_100\":%.1f},",
	       p[0].pub_ns, p[1].pub_ns, p[2].pub_ns);
	printf("\"publish_min_ns\":[%.1f,%.1f,%.1f],", r[0].pub_min_ns,
	       r[1].pub_min_ns, r[2].pub_min_ns);
	printf("\"publish_ratio_100_vs_1\":%.3f,"
	       "\"publish_ratio_100_vs_1_writer_alone\":%.3f,"
	       "\"asleep_publish_ratio_100_vs_1\":%.3f,"
	       "\"stalled_change_pct\":%.2f,"
	       "\"stalled_cpu_change_pct\":%.2f}\n",
	       ratio_keep, ratio_pinned, ratio_asleep, stall_wall, stall_cpu);
	for (int i = 0; i < NOBJ; i++)
		kf_object_unref(objs[i]);
	return 0;
}

/*
 * bench_store: the store against its baselines, measured in the same run.
 *
 *   memory     bytes held per stored Pod / its JSON bytes (10 000 and N)
 *   get        ns per get() on a hot (128 keys, KF_BENCH_HOT) and a cold
 *              (all N) key set, 1 and 2 threads, vs the same ck_hs
 *              look-up under a pthread rwlock
 *   ingest     parse + store + publish (APPLY into a shared store) vs a
 *              bare json-c parse of the same bytes, as throughput
 *   relist     a re-list of N Pods (10% changed) vs a bare json-c parse of
 *              the same bytes; reader get() p99 while INIT_DONE swaps vs
 *              idle; peak vs steady store memory
 *
 * N is 150 000 unless KF_BENCH_PODS says otherwise. Prints a table and one
 * line `RESULT {json}`.
 */
#include <ck_hs.h>
#include <json-c/json.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kubefan/store.h"
#include "object_int.h"
#include "pods.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: on a shared 2-core machine wall time
 * mostly measures the neighbours; CPU time measures our work. */
static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t
heap_inuse(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static size_t
rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_store: %s\n", what);
	exit(1);
}

/* ---- the Pod corpus, in mmap'd memory outside the heap ---- */

struct corpus {
	size_t n, bytes;
	const char **p;
	size_t *len;
	char *arena;
	size_t arena_len;
};

static void
corpus_make(struct corpus *c, size_t n, const struct corpus *base,
	    unsigned every)
{
	size_t used = 0;
	size_t *off = malloc(n * sizeof(*off));

	c->n = n;
	c->bytes = 0;
	c->p = malloc(n * sizeof(*c->p));
	c->len = malloc(n * sizeof(*c->len));
	c->arena_len = (base != NULL ? n / every + 1 : n) * 10000;
	c->arena = mmap(NULL, c->arena_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->p == NULL || c->len == NULL || off == NULL ||
	    c->arena == MAP_FAILED)
		die("no memory for the corpus");
	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *j;

		off[i] = SIZE_MAX;
		if (base != NULL && i % every != 0) {
			c->p[i] = base->p[i];
			c->len[i] = base->len[i];
			c->bytes += c->len[i];
			continue;
		}
		j = kfb_pod_json(i, base != NULL ? 1 : 0, &len);
		if (j == NULL)
			die("no memory for a pod");
		if (used + len > c->arena_len) {
			char *a = mremap(c->arena, c->arena_len,
					 c->arena_len * 2, MREMAP_MAYMOVE);

			if (a == MAP_FAILED)
				die("mremap");
			c->arena = a;
			c->arena_len *= 2;
		}
		memcpy(c->arena + used, j, len);
		off[i] = used;
		c->len[i] = len;
		c->bytes += len;
		used += len;
		free(j);
	}
	for (size_t i = 0; i < n; i++)
		if (off[i] != SIZE_MAX)
			c->p[i] = c->arena + off[i];
	free(off);
}

static void
corpus_free(struct corpus *c)
{
	munmap(c->arena, c->arena_len);
	free(c->p);
	free(c->len);
}

/* ---- bare json-c parse: the baseline for ingest and re-list ---- */

static double
bare_parse(const struct corpus *c)
{
	struct json_tokener *tok = json_tokener_new();
	double t0 = cpu_now();

	for (size_t i = 0; i < c->n; i++) {
		struct json_object *o;

		json_tokener_reset(tok);
		o = json_tokener_parse_ex(tok, c->p[i], (int)c->len[i]);
		if (o == NULL)
			die("json-c rejected a pod");
		json_object_put(o);
	}
	json_tokener_free(tok);
	return cpu_now() - t0;
}

static kf_object *
parse(const struct corpus *c, size_t i)
{
	kf_object *o;
	char err[128];

	if (kf_object_parse(c->p[i], c->len[i], NULL, err, sizeof(err), &o) !=
	    KF_OK)
		die(err);
	return o;
}

static void
apply(kf_writer *w, kf_event_type t, kf_object *o)
{
	kf_event e = {.type = t, .obj = o};

	if (kf_writer_apply(w, &e) != KF_OK)
		die("apply failed");
}

/* A first list of the corpus into a plain store. */
static void
list_into(kf_writer *w, const struct corpus *c)
{
	apply(w, KF_EV_INIT, NULL);
	for (size_t i = 0; i < c->n; i++) {
		kf_object *o = parse(c, i);

		apply(w, KF_EV_INIT_APPLY, o);
		kf_object_unref(o);
	}
	apply(w, KF_EV_INIT_DONE, NULL);
}

/* ---- memory per object ---- */

struct mem_result {
	size_t n;
	double json_avg, held_avg, ratio, rss_ratio;
};

static struct mem_result
bench_memory(const struct corpus *c)
{
	struct mem_result r = {.n = c->n};
	size_t h0, h1, r0, r1;
	kf_writer *w;
	kf_store *s;

	malloc_trim(0);
	h0 = heap_inuse();
	r0 = rss_bytes();
	if (kf_store_alloc(&w, &s) != KF_OK)
		die("store");
	list_into(w, c);
	h1 = heap_inuse();
	r1 = rss_bytes();
	r.json_avg = (double)c->bytes / (double)c->n;
	r.held_avg = (double)(h1 - h0) / (double)c->n;
	r.ratio = (double)(h1 - h0) / (double)c->bytes;
	r.rss_ratio = (double)(r1 - r0) / (double)c->bytes;
	kf_writer_free(w);
	kf_store_free(s);
	return r;
}

/* ---- get(): kubefan vs a rwlock-protected ck_hs ---- */

struct rw_map {
	pthread_rwlock_t lock;
	ck_hs_t hs;
};

static void *
rw_malloc(size_t n)
{
	return malloc(n);
}

static void
rw_free(void *p, size_t n, bool defer)
{
	(void)n;
	(void)defer;
	free(p);
}

static struct ck_malloc rw_alloc = {.malloc = rw_malloc, .free = rw_free};

/* Elements are kf_object *; a probe is a tagged pointer to a ref. */
static unsigned long
rw_hash(const void *p, unsigned long seed)
{
	(void)seed;
	return (unsigned long)kfi_object_hash(p);
}

static bool
rw_cmp(const void *stored, const void *key)
{
	const kf_object *o = stored;
	uintptr_t k = (uintptr_t)key;

	if (k & 1)
		return kfi_object_ident_eq(
		    o, (const struct kfi_ident *)(k & ~(uintptr_t)1));
	return kfi_object_same_identity(o, key);
}

static kf_object *
rw_get(struct rw_map *m, const kf_objref *ref)
{
	struct kfi_ident id;
	kf_object *o;

	kfi_ident_init(&id, ref->kind, ref->namespace_, ref->name);
	pthread_rwlock_rdlock(&m->lock);
	o = ck_hs_get(&m->hs, (unsigned long)id.hash,
		      (const void *)((uintptr_t)&id | 1));
	kf_object_ref(o);
	pthread_rwlock_unlock(&m->lock);
	return o;
}

/* A key's identity as the store builds it from a kf_store_key. */
static struct kfi_ident
rw_ident(const kf_store_key *k)
{
	struct kfi_ident id = {
	    .kind = k->ref.kind,
	    .ns = k->ref.namespace_,
	    .name = k->ref.name,
	    .kind_len = k->kind_len,
	    .ns_len = k->namespace_len,
	    .name_len = k->name_len,
	    .hash = k->hash,
	};

	return id;
}

/* The same look-up with the hash computed beforehand (as a key holds it),
 * with a reference taken inside the lock, or the object borrowed. */
static kf_object *
rw_get_key(struct rw_map *m, const kf_store_key *k, bool ref)
{
	struct kfi_ident id = rw_ident(k);
	kf_object *o;

	pthread_rwlock_rdlock(&m->lock);
	o = ck_hs_get(&m->hs, (unsigned long)id.hash,
		      (const void *)((uintptr_t)&id | 1));
	if (ref)
		kf_object_ref(o);
	pthread_rwlock_unlock(&m->lock);
	return o;
}

/* What a look-up does with the object: both sides alike. */
enum get_mode {
	GM_GET,	    /* kf_store_get(ref) | rdlock, hash, probe, ref */
	GM_GET_KEY, /* kf_store_get_key(key) | rdlock, probe, ref */
	GM_READ,    /* kf_store_read(key, fn) | rdlock, probe, borrow */
	GM_PIN,	    /* pin, 16 x get_borrowed, unpin | rdlock, 16 x probe */
	GM_COUNT,
};

#define PIN_BATCH 16

static const char *const gm_names[GM_COUNT] = {
    "get()", "get_key()", "read() borrowed", "pinned borrowed x16"};

struct get_job {
	kf_store *s;	  /* kubefan, or */
	struct rw_map *m; /* the baseline */
	enum get_mode mode;
	const kf_objref *refs;
	const kf_store_key *keys;
	const size_t *order;
	size_t norder;
	double secs;
	atomic_int *go;
	int cpu; /* pinned to this CPU, or -1 */
	double ns_per_op;
	size_t misses;
};

static void
read_fn(void *arg, const kf_object *obj)
{
	*(const kf_object **)arg = obj;
}

/* 4096 look-ups from position *k of the job's order. */
static void
get_batch(struct get_job *j, size_t *k)
{
	for (int b = 0; b < 4096;) {
		size_t i = j->order[*k];
		const kf_object *o = NULL;
		kf_object *ro = NULL;

		if (++*k == j->norder)
			*k = 0;
		switch (j->mode) {
		case GM_GET:
			if (j->s != NULL)
				kf_store_get(j->s, &j->refs[i], &ro);
			else
				ro = rw_get(j->m, &j->refs[i]);
			o = ro;
			break;
		case GM_GET_KEY:
			if (j->s != NULL)
				kf_store_get_key(j->s, &j->keys[i], &ro);
			else
				ro = rw_get_key(j->m, &j->keys[i], true);
			o = ro;
			break;
		case GM_READ:
			if (j->s != NULL)
				kf_store_read(j->s, &j->keys[i], read_fn, &o);
			else
				o = rw_get_key(j->m, &j->keys[i], false);
			break;
		default: /* GM_PIN: a batch of PIN_BATCH */
			if (j->s != NULL)
				kf_store_pin(j->s);
			else
				pthread_rwlock_rdlock(&j->m->lock);
			for (int q = 0; q < PIN_BATCH; q++) {
				const kf_store_key *key =
				    &j->keys[j->order[*k]];
				struct kfi_ident id = rw_ident(key);

				if (q > 0 && ++*k == j->norder)
					*k = 0;
				if (j->s != NULL)
					kf_store_get_borrowed(j->s, key, &o);
				else
					o = ck_hs_get(
					    &j->m->hs, (unsigned long)id.hash,
					    (const void *)((uintptr_t)&id | 1));
				if (o == NULL)
					j->misses++;
			}
			if (j->s != NULL)
				kf_store_unpin(j->s);
			else
				pthread_rwlock_unlock(&j->m->lock);
			b += PIN_BATCH;
			continue;
		}
		if (o == NULL)
			j->misses++;
		kf_object_unref(ro);
		b++;
	}
}

static void *
get_worker(void *arg)
{
	struct get_job *j = arg;
	size_t ops = 0, k = 0;
	double t0, t, c0;

	if (j->cpu >= 0) {
		/* With 2 threads, one per CPU: two threads of a pair on one
		 * CPU (the scheduler does that on a busy machine) would never
		 * contend, and the baseline's lock word would look free. */
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(j->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	while (!atomic_load(j->go))
		;
	t0 = now();
	c0 = cpu_now();
	do {
		/* Bound: 4096 look-ups between clock reads. */
		get_batch(j, &k);
		ops += 4096;
		t = now();
	} while (t - t0 < j->secs);
	j->ns_per_op = (cpu_now() - c0) * 1e9 / (double)ops;
	return NULL;
}

static double
run_gets(kf_store *s, struct rw_map *m, enum get_mode mode,
	 const kf_objref *refs, const kf_store_key *keys,
	 const size_t *const *orders, size_t norder, int threads, double secs)
{
	struct get_job jobs[2];
	pthread_t th[2];
	atomic_int go = 0;
	double sum = 0;

	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct get_job){
		    .s = s != NULL ? kf_store_clone(s) : NULL,
		    .m = m,
		    .mode = mode,
		    .refs = refs,
		    .keys = keys,
		    .order = orders[i],
		    .norder = norder,
		    .secs = secs,
		    .go = &go,
		    .cpu = threads > 1 && sysconf(_SC_NPROCESSORS_ONLN) >= 2
			       ? i
			       : -1,
		};
		pthread_create(&th[i], NULL, get_worker, &jobs[i]);
	}
	atomic_store(&go, 1);
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		sum += jobs[i].ns_per_op;
		if (jobs[i].misses > 0)
			die("a get() missed");
		kf_store_free(jobs[i].s);
	}
	return sum / threads;
}

static void
shuffle(size_t *v, size_t n, unsigned *seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rand_r(seed) % i;
		size_t t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* The get() rows of the table. */
static void
print_gets(double ga[GM_COUNT][2][2][2])
{
	for (int md = 0; md < GM_COUNT; md++)
		for (int k = 0; k < 2; k++)
			for (int t = 0; t < 2; t++) {
				double(*x)[2][2] = ga[md];
				char label[64];

				snprintf(label, sizeof(label),
					 "%s %s set, %d thread%s", gm_names[md],
					 k ? "cold" : "hot", t + 1,
					 t ? "s" : "");
				printf("%-44s %9.1f ns %9.1f ns %7.2fx %6s\n",
				       label, x[0][k][t], x[1][k][t],
				       x[0][k][t] / x[1][k][t],
				       k == 0 && t == 1 ? "<=0.6" : "");
			}
}

/* ---- reader latency during a re-list ---- */

#define LAT_BUCKETS 200000 /* 1 ns buckets up to 200 us */

struct lat {
	uint64_t idle[LAT_BUCKETS + 1];
	uint64_t swap[LAT_BUCKETS + 1];
	uint64_t relist[LAT_BUCKETS + 1];
};

struct reader_job {
	kf_store *s;
	const kf_objref *refs;
	size_t n;
	atomic_int phase; /* 0 idle, 1 relisting, 2 swapping, 3 stop */
	struct lat *lat;
};

static void *
latency_reader(void *arg)
{
	struct reader_job *j = arg;
	unsigned seed = 7;
	int ph;

	while ((ph = atomic_load_explicit(&j->phase, memory_order_relaxed)) !=
	       3) {
		const kf_objref *r = &j->refs[(size_t)rand_r(&seed) % j->n];
		kf_object *o;
		uint64_t t0 = now_ns(), d;

		kf_store_get(j->s, r, &o);
		d = now_ns() - t0;
		kf_object_unref(o);
		if (d > LAT_BUCKETS)
			d = LAT_BUCKETS;
		if (ph == 0)
			j->lat->idle[d]++;
		else if (ph == 2)
			j->lat->swap[d]++;
		if (ph != 0)
			j->lat->relist[d]++;
	}
	return NULL;
}

static double
pct(const uint64_t *h, double p, uint64_t *count)
{
	uint64_t n = 0, acc = 0;

	for (size_t i = 0; i <= LAT_BUCKETS; i++)
		n += h[i];
	*count = n;
	for (size_t i = 0; i <= LAT_BUCKETS; i++) {
		acc += h[i];
		if ((double)acc >= p * (double)n)
			return (double)i;
	}
	return (double)LAT_BUCKETS;
}

int
main(void)
{
	size_t big = getenv("KF_BENCH_PODS")
			 ? strtoul(getenv("KF_BENCH_PODS"), NULL, 10)
			 : 150000;
	struct corpus small, c, re;
	struct mem_result m10 = {0}, mbig = {0};
	double t_gen, t_bare, t_ingest, t_bare_re, t_relist, t0;
	kf_writer *w;
	kf_store *s;
	kf_state *st;
	kf_objref *refs;
	size_t *order, hot = 128, h_base, h_steady, h_peak, h_pre;

	if (getenv("KF_BENCH_HOT") != NULL)
		hot = strtoul(getenv("KF_BENCH_HOT"), NULL, 10);
	struct rw_map map;
	/* [mode][kubefan, rwlock][hot, cold][1, 2 threads] */
	static double ga[GM_COUNT][2][2][2];
	double(*g)[2][2] = ga[GM_GET];
	double gsecs = getenv("KF_BENCH_GET_SECS")
			   ? strtod(getenv("KF_BENCH_GET_SECS"), NULL)
			   : 0.5;
	kf_store_key *keys;
	unsigned seed = 42;
	struct reader_job rj;
	double p99_idle, p99_swap, p99_relist, p50_idle;
	uint64_t n_idle, n_swap, n_relist;

	if (big < 20000)
		big = 20000;
	printf("bench_store: corpus of %zu realistic Pods ...\n", big);
	fflush(stdout);
	t0 = now();
	corpus_make(&small, 10000, NULL, 0);
	corpus_make(&c, big, NULL, 0);
	corpus_make(&re, big, &c, 10); /* every 10th Pod changed */
	t_gen = now() - t0;

	/* KF_BENCH_GET_ONLY=1: the get() table alone, for work on the read
	 * path (scripts/bench always runs everything). */
	bool get_only = getenv("KF_BENCH_GET_ONLY") != NULL;

	/* Memory per object. */
	if (!get_only) {
		m10 = bench_memory(&small);
		mbig = bench_memory(&c);
	}

	/* Ingest: bare json-c vs parse + store + publish. */
	t_bare = get_only ? 1 : bare_parse(&c);
	malloc_trim(0);
	h_base = heap_inuse();
	if (kf_store_shared_alloc(4096, &w, &s) != KF_OK)
		die("store");
	apply(w, KF_EV_INIT, NULL);
	apply(w, KF_EV_INIT_DONE, NULL);
	t0 = cpu_now();
	for (size_t i = 0; i < c.n; i++) {
		kf_object *o = parse(&c, i);

		apply(w, KF_EV_APPLY, o);
		kf_object_unref(o);
	}
	t_ingest = cpu_now() - t0;

	/* get(): refs borrowed from the stored objects. */
	if (kf_store_state(s, &st) != KF_OK)
		die("state");
	refs = malloc(c.n * sizeof(*refs));
	keys = malloc(c.n * sizeof(*keys));
	order = malloc(c.n * sizeof(*order));
	pthread_rwlock_init(&map.lock, NULL);
	ck_hs_init(&map.hs, CK_HS_MODE_OBJECT, rw_hash, rw_cmp, &rw_alloc,
		   c.n * 2, 0);
	for (size_t i = 0; i < c.n; i++) {
		kf_object *o = kf_state_at(st, i);

		refs[i] = kf_object_objref(o);
		keys[i] = kf_store_key_make(&refs[i]);
		order[i] = i;
		ck_hs_put(&map.hs, (unsigned long)kfi_object_hash(o), o);
	}
	shuffle(order, c.n, &seed);
	/* The second thread walks its own permutation of the same sets. */
	size_t *order2 = malloc(c.n * sizeof(*order2));
	const size_t *orders[2] = {order, order2};

	memcpy(order2, order, c.n * sizeof(*order2));
	shuffle(order2, hot, &seed);
	shuffle(order2 + hot, c.n - hot, &seed);
	/* Each pair runs back to back, the side going first alternating. */
	for (int md = 0; md < GM_COUNT; md++)
		for (int t = 0; t < 2; t++)
			for (int k = 0; k < 2; k++) {
				size_t n = k ? c.n : hot;
				int first = (md + t + k) & 1;

				for (int q = 0; q < 2; q++) {
					int side = first ^ q;

					ga[md][side][k][t] = run_gets(
					    side ? NULL : s, side ? &map : NULL,
					    md, refs, keys, orders, n, t + 1,
					    gsecs);
				}
			}
	ck_hs_destroy(&map.hs);
	free(order);
	free(order2);
	if (get_only) {
		print_gets(ga);
		return 0;
	}

	/* Re-list: bare json-c vs the store; a reader measures get(). */
	t_bare_re = bare_parse(&re);
	malloc_trim(0);
	h_steady = heap_inuse() - h_base;
	rj = (struct reader_job){.s = kf_store_clone(s),
				 .refs = refs,
				 .n = c.n,
				 .lat = calloc(1, sizeof(struct lat))};
	if (rj.lat == NULL)
		die("no memory for the histogram");
	pthread_t rth;

	pthread_create(&rth, NULL, latency_reader, &rj);
	usleep(800000);
	atomic_store(&rj.phase, 1);
	h_peak = 0;
	t0 = cpu_now();
	double w0 = now();
	apply(w, KF_EV_INIT, NULL);
	for (size_t i = 0; i < re.n; i++) {
		kf_object *o = parse(&re, i);

		apply(w, KF_EV_INIT_APPLY, o);
		kf_object_unref(o);
		if (i % 20000 == 19999) {
			size_t h = heap_inuse() - h_base;

			h_peak = h > h_peak ? h : h_peak;
		}
	}
	h_pre = heap_inuse() - h_base;
	h_peak = h_pre > h_peak ? h_pre : h_peak;
	atomic_store(&rj.phase, 2);
	apply(w, KF_EV_INIT_DONE, NULL);
	atomic_store(&rj.phase, 1);
	t_relist = cpu_now() - t0;
	double t_relist_wall = now() - w0;
	usleep(200000);
	atomic_store(&rj.phase, 3);
	pthread_join(rth, NULL);
	malloc_trim(0);
	h_steady =
	    heap_inuse() - h_base > h_steady ? heap_inuse() - h_base : h_steady;
	p50_idle = pct(rj.lat->idle, 0.50, &n_idle);
	p99_idle = pct(rj.lat->idle, 0.99, &n_idle);
	p99_swap = pct(rj.lat->swap, 0.99, &n_swap);
	p99_relist = pct(rj.lat->relist, 0.99, &n_relist);

	double mb = (double)c.bytes / 1e6;
	double r_ingest = t_bare / t_ingest;
	double r_get = g[0][0][1] / g[1][0][1];
	double r_relist = t_relist / t_bare_re;
	double r_p99 = p99_swap / p99_idle;
	double r_peak = (double)h_peak / (double)h_steady;

	printf("\n%-44s %12s %12s %8s %6s\n", "measure", "kubefan", "baseline",
	       "ratio", "goal");
	printf("%-44s %9.0f B  %9.0f B  %7.2fx %6s\n",
	       "memory per Pod, 10 000 (held vs JSON)", m10.held_avg,
	       m10.json_avg, m10.ratio, "<=1.5");
	printf("%-44s %9.0f B  %9.0f B  %7.2fx %6s\n", "memory per Pod, N",
	       mbig.held_avg, mbig.json_avg, mbig.ratio, "<=1.5");
	print_gets(ga);
	printf("%-44s %7.0f MB/s %7.0f MB/s %7.2fx %6s\n",
	       "ingest (parse+store+publish) vs json-c", mb / t_ingest,
	       mb / t_bare, r_ingest, ">=0.85");
	printf("%-44s %10.2f s %10.2f s %7.2fx %6s\n",
	       "re-list of N Pods (10% changed) vs json-c", t_relist, t_bare_re,
	       r_relist, "<=1.2");
	printf("%-44s %9.0f ns %9.0f ns %7.2fx %6s\n",
	       "reader get() p99 during swap vs idle", p99_swap, p99_idle,
	       r_p99, "<=2");
	printf("%-44s %9.0f ns %9s    %7s\n",
	       "reader get() p99 during whole re-list", p99_relist, "", "");
	printf("%-44s %10.2f s\n", "re-list wall time (reader running)",
	       t_relist_wall);
	printf("%-44s %8.0f MB %8.0f MB  %7.2fx %6s\n",
	       "store memory peak vs steady (re-list)", (double)h_peak / 1e6,
	       (double)h_steady / 1e6, r_peak, "<=1.3");
	printf("(times are per-thread CPU time; latencies are wall time; "
	       "hot set %zu keys)\n",
	       hot);
	printf("(N = %zu Pods, %.0f MB of JSON, avg %.0f B; corpus built in "
	       "%.1f s; reader samples idle %llu swap %llu; idle p50 %.0f ns; "
	       "RSS ratio at N %.2fx)\n",
	       c.n, mb, mbig.json_avg, t_gen, (unsigned long long)n_idle,
	       (unsigned long long)n_swap, p50_idle, mbig.rss_ratio);

	/* The RESULT line: the fields of get() as before, then per mode. */
	char gx[4096];
	size_t gl = 0;
	static const char *const gm_keys[GM_COUNT] = {"get", "get_key", "read",
						      "pin"};

	for (int md = 0; md < GM_COUNT; md++)
		for (int k = 0; k < 2; k++)
			for (int t = 0; t < 2; t++) {
				double(*x)[2][2] = ga[md];
				const char *set = k ? "cold" : "hot";

				if (md == GM_GET) {
					/* ns fields and the hot 2t ratio are
					 * the original ones, printed below. */
					if (k == 0 && t == 1)
						continue;
					gl += (size_t)snprintf(
					    gx + gl, sizeof(gx) - gl,
					    "\"get_%s_%dt_ratio\":%.3f,", set,
					    t + 1, x[0][k][t] / x[1][k][t]);
					continue;
				}
				gl += (size_t)snprintf(
				    gx + gl, sizeof(gx) - gl,
				    "\"%s_%s_%dt_ns\":%.1f,"
				    "\"%s_%s_%dt_rwlock_ns\":%.1f,"
				    "\"%s_%s_%dt_ratio\":%.3f,",
				    gm_keys[md], set, t + 1, x[0][k][t],
				    gm_keys[md], set, t + 1, x[1][k][t],
				    gm_keys[md], set, t + 1,
				    x[0][k][t] / x[1][k][t]);
			}
	printf(
	    "RESULT {\"bench\":\"store\",\"pods\":%zu,\"json_avg_bytes\":%.0f,"
	    "\"mem_ratio_10k\":%.3f,\"mem_ratio_n\":%.3f,"
	    "\"get_hot_1t_ns\":%.1f,\"get_hot_1t_rwlock_ns\":%.1f,"
	    "\"get_hot_2t_ns\":%.1f,\"get_hot_2t_rwlock_ns\":%.1f,"
	    "\"get_cold_1t_ns\":%.1f,\"get_cold_1t_rwlock_ns\":%.1f,"
	    "\"get_cold_2t_ns\":%.1f,\"get_cold_2t_rwlock_ns\":%.1f,"
	    "\"get_hot_keys\":%zu,\"get_hot_2t_ratio\":%.3f,"
	    "\"ingest_mbps\":%.1f,\"jsonc_mbps\":%.1f,\"ingest_ratio\":%.3f,"
	    "\"relist_s\":%.3f,\"relist_jsonc_s\":%.3f,"
	    "\"relist_ratio\":%.3f,\"relist_wall_s\":%.3f,"
	    "\"p99_idle_ns\":%.0f,"
	    "\"p99_swap_ns\":%.0f,\"p99_relist_ns\":%.0f,"
	    "\"p99_ratio\":%.3f,\"peak_mb\":%.1f,\"steady_mb\":%.1f,"
	    "%s\"pin_batch\":%d,\"get_secs\":%.2f,"
	    "\"peak_ratio\":%.3f}\n",
	    c.n, mbig.json_avg, m10.ratio, mbig.ratio, g[0][0][0], g[1][0][0],
	    g[0][0][1], g[1][0][1], g[0][1][0], g[1][1][0], g[0][1][1],
	    g[1][1][1], hot, r_get, mb / t_ingest, mb / t_bare, r_ingest,
	    t_relist, t_bare_re, r_relist, t_relist_wall, p99_idle, p99_swap,
	    p99_relist, r_p99, (double)h_peak / 1e6, (double)h_steady / 1e6, gx,
	    PIN_BATCH, gsecs, r_peak);

	kf_store_free(rj.s);
	free(rj.lat);
	kf_state_free(st);
	free(refs);
	free(keys);
	kf_writer_free(w);
	kf_store_free(s);
	corpus_free(&re);
	corpus_free(&c);
	corpus_free(&small);
	return 0;
}

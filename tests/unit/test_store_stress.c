/*
 * One writer re-lists N objects in a loop while reader threads call get,
 * state and index look-ups. Every object of re-list g carries label
 * gen=g; a reader must see one generation at a time, never a mix, and
 * never go back to an older one.
 *
 * Size: KF_STRESS_OBJECTS (default 50 000, 5 000 under sanitizers) and
 * KF_STRESS_SECONDS (default 3).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/store.h"
#include "store_int.h"
#include "clock.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEFAULT_OBJECTS 5000
#else
#define DEFAULT_OBJECTS 50000
#endif

static int
env_int(const char *name, int dflt)
{
	const char *v = getenv(name);

	return v != NULL && atoi(v) > 0 ? atoi(v) : dflt;
}

static kf_object *
pod(const char *ns, int i, long gen)
{
	char json[512], lab[64];
	kf_object *o;

	/* Only the re-listed namespace carries the gen and slot labels. */
	if (strcmp(ns, "g") == 0)
		snprintf(lab, sizeof(lab), "\"gen\":\"%ld\",\"slot\":\"s%d\"",
			 gen, i % 7);
	else
		snprintf(lab, sizeof(lab), "\"live\":\"yes\"");
	snprintf(json, sizeof(json),
		 "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p%d\","
		 "\"namespace\":\"%s\",\"uid\":\"u%d\","
		 "\"resourceVersion\":\"%ld\",\"labels\":{%s}},"
		 "\"spec\":{\"n\":%d}}",
		 i, ns, i, gen, lab, i);
	cr_assert_eq(kf_object_parse(json, strlen(json), NULL, NULL, 0, &o),
		     KF_OK);
	return o;
}

static long
gen_of(const kf_object *o)
{
	return atol(kf_object_label(o, "gen"));
}

struct shared {
	kf_store *s;
	int n;
	atomic_bool stop;
	atomic_long generation; /* last generation swapped in */
	atomic_long checks;
};

/* One generation, whole: all n objects of namespace "g" carry one gen. */
static long
check_state(struct shared *sh, kf_state *st, const char *what)
{
	long g = -1;
	size_t n = 0;

	for (size_t i = 0; i < kf_state_len(st); i++) {
		kf_object *o = kf_state_at(st, i);

		if (strcmp(kf_object_namespace(o), "g") != 0)
			continue;
		if (g < 0)
			g = gen_of(o);
		cr_assert_eq(gen_of(o), g, "%s mixes generations %ld and %ld",
			     what, g, gen_of(o));
		n++;
	}
	cr_assert_eq(n, (size_t)sh->n, "%s has %zu of %d objects", what, n,
		     sh->n);
	return g;
}

static void *
reader(void *arg)
{
	struct shared *sh = arg;
	kf_store *s = kf_store_clone(sh->s);
	unsigned seed = (unsigned)(uintptr_t)&s;
	long last = 0;
	char name[32], key[32];

	cr_assert_eq(kf_store_wait_until_ready(s, 10000), KF_OK);
	while (!atomic_load(&sh->stop)) {
		kf_state *st;
		kf_object *o;
		long g, seen;
		int i = rand_r(&seed) % sh->n;
		kf_objref r = {"Pod", "g", name, NULL, NULL};

		/* get: present, and never older than what we saw. */
		snprintf(name, sizeof(name), "p%d", i);
		cr_assert_eq(kf_store_get(s, &r, &o), KF_OK, "p%d", i);
		g = gen_of(o);
		cr_assert_geq(g, last, "went back from %ld to %ld", last, g);
		last = g;
		kf_object_unref(o);

		/* state: exactly one generation. */
		if (rand_r(&seed) % 8 == 0) {
			cr_assert_eq(kf_store_state(s, &st), KF_OK);
			g = check_state(sh, st, "state()");
			cr_assert_geq(g, last);
			last = g;
			kf_state_free(st);
		}

		/* by_namespace: the same whole generation. */
		if (rand_r(&seed) % 8 == 1) {
			cr_assert_eq(kf_store_by_namespace(s, "g", &st), KF_OK);
			g = check_state(sh, st, "by_namespace()");
			cr_assert_geq(g, last);
			last = g;
			kf_state_free(st);
		}

		/* Sequence brackets: no entry is newer than `started`. */
		if (rand_r(&seed) % 8 == 2) {
			uint64_t before, after;

			cr_assert_eq(
			    kfi_store_snapshot_seq(s, &st, &before, &after),
			    KF_OK);
			cr_assert_leq(before, after);
			for (size_t k = 0; k < kf_state_len(st); k++)
				cr_assert_lt(
				    kfi_state_seq_at(st, k), after,
				    "entry seq %lu, started %lu",
				    (unsigned long)kfi_state_seq_at(st, k),
				    (unsigned long)after);
			g = check_state(sh, st, "snapshot_seq()");
			cr_assert_geq(g, last);
			last = g;
			kf_state_free(st);
		}

		/* by_label gen=<the one we saw>: all or (swapped) nothing. */
		seen = last;
		snprintf(key, sizeof(key), "%ld", seen);
		cr_assert_eq(kf_store_by_label(s, "gen", key, &st), KF_OK);
		cr_assert(
		    kf_state_len(st) == (size_t)sh->n || kf_state_len(st) == 0,
		    "gen=%ld has %zu of %d", seen, kf_state_len(st), sh->n);
		kf_state_free(st);

		/* by_label slot=sK: one generation, n/7-ish objects. */
		snprintf(key, sizeof(key), "s%d", i % 7);
		cr_assert_eq(kf_store_by_label(s, "slot", key, &st), KF_OK);
		g = -1;
		for (size_t k = 0; k < kf_state_len(st); k++) {
			long gk = gen_of(kf_state_at(st, k));

			if (g < 0)
				g = gk;
			cr_assert_eq(gk, g, "slot index mixes %ld and %ld", g,
				     gk);
		}
		kf_state_free(st);
		atomic_fetch_add(&sh->checks, 1);
	}
	kf_store_free(s);
	return NULL;
}

static void
relist(kf_writer *w, int n, long gen)
{
	kf_event e = {.type = KF_EV_INIT};

	cr_assert_eq(kf_writer_apply(w, &e), KF_OK);
	e.type = KF_EV_INIT_APPLY;
	for (int i = 0; i < n; i++) {
		e.obj = pod("g", i, gen);
		cr_assert_eq(kf_writer_apply(w, &e), KF_OK);
		kf_object_unref(e.obj);
	}
	e.type = KF_EV_INIT_DONE;
	e.obj = NULL;
	cr_assert_eq(kf_writer_apply(w, &e), KF_OK);
}

/* Live watch traffic in another namespace between re-lists. */
static void
churn(kf_writer *w, long gen)
{
	kf_event e;

	for (int i = 0; i < 200; i++) {
		e.type = (i + gen) % 3 == 0 ? KF_EV_DELETE : KF_EV_APPLY;
		e.flags = 0;
		e.obj = pod("live", i % 50, gen);
		cr_assert_eq(kf_writer_apply(w, &e), KF_OK);
		kf_object_unref(e.obj);
	}
}

static void
run(bool shared, size_t ring_cap)
{
	struct shared sh = {.n = env_int("KF_STRESS_OBJECTS", DEFAULT_OBJECTS)};
	double secs = env_int("KF_STRESS_SECONDS", 3), t0;
	kf_writer *w;
	pthread_t th[2];
	long gen = 1;

	if (shared)
		cr_assert_eq(kf_store_shared_alloc(ring_cap, &w, &sh.s), KF_OK);
	else
		cr_assert_eq(kf_store_alloc(&w, &sh.s), KF_OK);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &sh);
	relist(w, sh.n, gen);
	t0 = kt_now_s();
	/* At least three swaps under the readers, then until time is up. */
	while (gen < 4 || kt_now_s() - t0 < secs) {
		churn(w, gen);
		relist(w, sh.n, ++gen);
	}
	atomic_store(&sh.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_log_info("%ld re-lists of %d objects, %ld reader rounds", gen, sh.n,
		    atomic_load(&sh.checks));
	cr_assert_gt(atomic_load(&sh.checks), 0);
	kf_writer_free(w);
	kf_store_free(sh.s);
}

Test(store_stress, readers_see_one_generation_while_the_writer_relists,
     .timeout = 300)
{
	run(false, 0);
}

Test(store_stress, the_same_with_a_ring_taking_every_difference, .timeout = 300)
{
	run(true, 1024);
}

struct same_handle {
	kf_store *s;
	atomic_bool stop;
	atomic_long gets;
};

static void *
hammer(void *arg)
{
	struct same_handle *h = arg;
	kf_objref r = {"Pod", "g", "p1", NULL, NULL};
	kf_object *o;

	while (!atomic_load(&h->stop)) {
		cr_assert_eq(kf_store_get(h->s, &r, &o), KF_OK);
		kf_object_unref(o);
		atomic_fetch_add(&h->gets, 1);
	}
	return NULL;
}

/* The contract allows any thread to use a handle; two at once borrow a
 * spare record instead of corrupting the handle's own. */
Test(store_stress, one_handle_shared_by_two_threads_stays_correct,
     .timeout = 120)
{
	struct same_handle h = {0};
	kf_writer *w;
	pthread_t th[2];

	cr_assert_eq(kf_store_alloc(&w, &h.s), KF_OK);
	relist(w, 100, 1);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, hammer, &h);
	for (long g = 2; g < 40; g++)
		relist(w, 100, g);
	atomic_store(&h.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_gt(atomic_load(&h.gets), 0);
	kf_writer_free(w);
	kf_store_free(h.s);
}

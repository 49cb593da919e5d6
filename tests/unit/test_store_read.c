/* Borrowed reads: kf_store_key_make, kf_store_get_key, kf_store_read and
 * pinned sections (kf_store_pin/unpin, kf_store_get_borrowed); answers
 * like get(), lifetime of borrowed objects, and readers racing a writer
 * that re-lists in a loop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kubefan/store.h"
#include "store_int.h"

static kf_object *
mk(const char *ns, const char *name, const char *uid, const char *rv)
{
	char json[512];
	kf_object *o;

	snprintf(json, sizeof(json),
		 "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
		 "\"namespace\":\"%s\",\"uid\":\"%s\","
		 "\"resourceVersion\":\"%s\"}}",
		 name, ns, uid, rv);
	cr_assert_eq(kf_object_parse(json, strlen(json), NULL, NULL, 0, &o),
		     KF_OK);
	return o;
}

static void
ev1(kf_writer *w, kf_event_type t, kf_object *o)
{
	kf_event e = {.type = t, .obj = o};

	cr_assert_eq(kf_writer_apply(w, &e), KF_OK, "event %d", t);
	kf_object_unref(o);
}

static kf_store_key
key(const char *ns, const char *name)
{
	kf_objref r = {"Pod", ns, name, NULL, NULL};

	return kf_store_key_make(&r);
}

struct seen {
	int calls;
	const kf_object *obj;
	char rv[32];
};

static void
remember(void *arg, const kf_object *obj)
{
	struct seen *s = arg;

	s->calls++;
	s->obj = obj;
	snprintf(s->rv, sizeof(s->rv), "%s", kf_object_resource_version(obj));
}

Test(store_read, a_key_hashes_like_the_ref)
{
	char ns[] = "default", name[] = "a";
	kf_objref r = {"Pod", ns, name, "u", "1"};
	kf_objref nul = {"Pod", NULL, "x", NULL, NULL};
	kf_objref empty = {"Pod", "", "x", NULL, NULL};
	kf_store_key k = kf_store_key_make(&r);

	cr_assert_eq(k.hash, kf_objref_hash(&r));
	cr_assert_eq(k.ref.name, name); /* borrowed, not copied */
	cr_assert_eq(kf_store_key_make(&nul).hash,
		     kf_store_key_make(&empty).hash);
}

Test(store_read, read_and_get_key_answer_like_get)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("default", "a"), kz = key("default", "zz");
	kf_store_key kc = key("", "a");
	struct seen sn = {0};
	kf_object *o, *g;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	/* Not ready: no answer, fn not called. */
	cr_assert_eq(kf_store_read(s, &ka, remember, &sn), KF_ENOTREADY);
	cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_ENOTREADY);
	cr_assert_null(o);
	cr_assert_eq(sn.calls, 0);

	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("default", "a", "u1", "7"));
	ev1(w, KF_EV_INIT_DONE, NULL);

	cr_assert_eq(kf_store_read(s, &ka, remember, &sn), KF_OK);
	cr_assert_eq(sn.calls, 1);
	cr_assert_str_eq(sn.rv, "7");
	cr_assert_eq(kf_store_get_key(s, &ka, &g), KF_OK);
	cr_assert_eq(g, sn.obj, "the same stored object");
	kf_object_unref(g);

	/* Not found: fn not called; the cluster-scoped "a" is another. */
	cr_assert_eq(kf_store_read(s, &kz, remember, &sn), KF_ENOTFOUND);
	cr_assert_eq(kf_store_read(s, &kc, remember, &sn), KF_ENOTFOUND);
	cr_assert_eq(kf_store_get_key(s, &kz, &o), KF_ENOTFOUND);
	cr_assert_null(o);
	cr_assert_eq(sn.calls, 1);

	/* Stale: not authoritative, but the object is still handed out. */
	kf_writer_mark_stale(w, "watch broken");
	cr_assert_eq(kf_store_read(s, &ka, remember, &sn), KF_ENOTREADY);
	cr_assert_eq(sn.calls, 2);
	cr_assert_eq(kf_store_read(s, &kz, remember, &sn), KF_ENOTREADY);
	cr_assert_eq(sn.calls, 2);
	cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_ENOTREADY);
	cr_assert_not_null(o);
	kf_object_unref(o);
	kf_writer_mark_fresh(w);

	/* An APPLY is seen by the next read. */
	ev1(w, KF_EV_APPLY, mk("default", "a", "u1", "8"));
	cr_assert_eq(kf_store_read(s, &ka, remember, &sn), KF_OK);
	cr_assert_str_eq(sn.rv, "8");

	cr_assert_eq(kf_store_read(s, NULL, remember, &sn), KF_EINVAL);
	cr_assert_eq(kf_store_read(s, &ka, NULL, &sn), KF_EINVAL);
	cr_assert_eq(kf_store_get_key(s, NULL, &o), KF_EINVAL);
	cr_assert_null(o);
	kf_writer_free(w);
	kf_store_free(s);
}

struct del_job {
	kf_writer *w;
	kf_object *obj;
	atomic_int done;
};

static void *
delete_it(void *arg)
{
	struct del_job *j = arg;
	kf_event e = {.type = KF_EV_DELETE, .obj = j->obj};

	cr_assert_eq(kf_writer_apply(j->w, &e), KF_OK);
	/* Many more writer calls: each hands its batch to the epoch and
	 * every 16th polls, which frees whatever no section can see. */
	for (int i = 0; i < 200; i++) {
		char rv[16];

		snprintf(rv, sizeof(rv), "%d", i);
		ev1(j->w, KF_EV_APPLY, mk("ns", "other", "u2", rv));
	}
	atomic_store(&j->done, 1);
	return NULL;
}

Test(store_read, a_pinned_object_outlives_its_delete_until_unpin)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("ns", "a");
	const kf_object *b, *held;
	kf_object *a = mk("ns", "a", "u1", "1"), *o;
	struct del_job j = {0};
	pthread_t th;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_EINVAL,
		     "not pinned");
	cr_assert_null(b);
	cr_assert_eq(kf_store_pin(s), KF_OK);
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_ENOTREADY);
	kf_store_unpin(s);

	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, kf_object_ref(a));
	ev1(w, KF_EV_INIT_DONE, NULL);
	j.w = w;
	j.obj = a; /* our reference; the store holds the other */

	cr_assert_eq(kf_store_pin(s), KF_OK);
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_OK);
	cr_assert_eq(b, a);
	held = b;
	kf_object_unref(a); /* now only the store keeps it alive */
	pthread_create(&th, NULL, delete_it, &j);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&j.done), 1);
	/* Gone from the store, still readable here (ASan would object). */
	cr_assert_str_eq(kf_object_name(held), "a");
	cr_assert_str_eq(kf_object_uid(held), "u1");
	cr_assert_eq(kf_store_get(s, &ka.ref, &o), KF_ENOTFOUND);
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_ENOTFOUND);
	cr_assert_null(b);
	kf_store_unpin(s);
	kf_writer_free(w); /* waits out every section, frees the object */
	kf_store_free(s);
}

struct pin_try {
	kf_store *s;
	kf_err got;
	kf_err borrowed;
};

static void *
pin_elsewhere(void *arg)
{
	struct pin_try *p = arg;
	kf_store_key ka = key("ns", "a");
	const kf_object *b;

	p->got = kf_store_pin(p->s);
	p->borrowed = kf_store_get_borrowed(p->s, &ka, &b);
	kf_store_unpin(p->s); /* not ours: does nothing */
	return NULL;
}

Test(store_read, pins_nest_and_belong_to_one_thread)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("ns", "a");
	const kf_object *b;
	kf_object *o;
	kf_state *st;
	struct pin_try p;
	pthread_t th;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "1"));
	ev1(w, KF_EV_INIT_DONE, NULL);

	cr_assert_eq(kf_store_pin(s), KF_OK);
	cr_assert_eq(kf_store_pin(s), KF_OK); /* nested */
	p = (struct pin_try){.s = s};
	pthread_create(&th, NULL, pin_elsewhere, &p);
	pthread_join(th, NULL);
	cr_assert_eq(p.got, KF_EAGAIN);
	cr_assert_eq(p.borrowed, KF_EINVAL);

	/* Other reader calls from the pinning thread work inside. */
	cr_assert_eq(kf_store_get(s, &ka.ref, &o), KF_OK);
	kf_object_unref(o);
	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	cr_assert_eq(kf_state_len(st), 1);
	kf_state_free(st);
	cr_assert_eq(kf_store_len(s), 1);

	kf_store_unpin(s); /* inner */
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_OK,
		     "still pinned after the inner unpin");
	kf_store_unpin(s);
	cr_assert_eq(kf_store_get_borrowed(s, &ka, &b), KF_EINVAL);
	kf_store_unpin(s); /* without a pin: nothing */

	/* Unpinned, another thread may pin the handle. */
	p = (struct pin_try){.s = s};
	pthread_create(&th, NULL, pin_elsewhere, &p);
	pthread_join(th, NULL);
	cr_assert_eq(p.got, KF_OK);
	cr_assert_eq(p.borrowed, KF_OK);
	/* Its unpin ended its section: we can pin again. */
	cr_assert_eq(kf_store_pin(s), KF_OK);
	kf_store_free(s); /* freed while pinned: the section ends */
	kf_writer_free(w);
}

/* ---- an unpin inside a read on a spare record ---- */

/* A thread that is not the handle's first pins it (the pin runs on a
 * spare record), reads through it (the read nests in the pin's section,
 * on the same record) and, inside fn, unpins: a reader call from the
 * pinning thread, allowed inside fn. The read's section goes on, so the
 * object fn holds must outlive a writer that re-lists it away meanwhile. */
struct unpin_job {
	kf_writer *w;
	kf_store *s;
	atomic_int relisted;
	int relisted_inside; /* the re-list ended while fn still ran */
	char name[16];
	kf_err pinned, read;
};

static void *
relist_without_a(void *arg)
{
	struct unpin_job *j = arg;

	ev1(j->w, KF_EV_INIT, NULL);
	ev1(j->w, KF_EV_INIT_APPLY, mk("ns", "b", "u2", "2"));
	ev1(j->w, KF_EV_INIT_DONE, NULL); /* waits for fn's section */
	atomic_store(&j->relisted, 1);
	return NULL;
}

static pthread_t unpin_writer;

static void
unpin_inside(void *arg, const kf_object *obj)
{
	struct unpin_job *j = arg;

	kf_store_unpin(j->s);
	pthread_create(&unpin_writer, NULL, relist_without_a, j);
	/* Bound: 300 ms; the re-list must not end before fn does. */
	for (int i = 0; i < 30 && !atomic_load(&j->relisted); i++)
		usleep(10000);
	j->relisted_inside = atomic_load(&j->relisted);
	snprintf(j->name, sizeof(j->name), "%s", kf_object_name(obj));
}

static void *
pin_then_read(void *arg)
{
	struct unpin_job *j = arg;
	kf_store_key ka = key("ns", "a");

	j->pinned = kf_store_pin(j->s);
	j->read = kf_store_read(j->s, &ka, unpin_inside, j);
	return NULL;
}

Test(store_read, an_unpin_inside_a_read_keeps_the_read_section)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("ns", "a");
	kf_object *o;
	struct unpin_job j = {0};
	pthread_t th;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "1"));
	ev1(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_OK); /* binds to us */
	kf_object_unref(o);

	j.w = w;
	j.s = s;
	pthread_create(&th, NULL, pin_then_read, &j);
	pthread_join(th, NULL);
	pthread_join(unpin_writer, NULL);
	cr_assert_eq(j.pinned, KF_OK);
	cr_assert_eq(j.read, KF_OK);
	cr_assert_eq(j.relisted_inside, 0,
		     "the re-list freed what fn held while fn ran");
	cr_assert_str_eq(j.name, "a");
	cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_ENOTFOUND);

	kf_store_free(s);
	kf_writer_free(w);
}

/* ---- readers racing a writer that re-lists ---- */

#define NOBJ	 600
#define NRELIST	 40
#define NREADERS 2

struct race {
	kf_writer *w;
	kf_store *s;
	kf_store_key keys[NOBJ];
	char names[NOBJ][16];
	atomic_int stop;
};

struct reader {
	struct race *r;
	int mode; /* 0 read(), 1 pinned */
	long looks, max_gen;
	int bad;
};

/* rv "g.i": generation g of object i. */
static int
gen_of(const kf_object *o, int i)
{
	int g, k;

	if (sscanf(kf_object_resource_version(o), "%d.%d", &g, &k) != 2 ||
	    k != i)
		return -1;
	return g;
}

struct rd {
	int i, gen;
};

static void
check_fn(void *arg, const kf_object *obj)
{
	struct rd *d = arg;

	d->gen = gen_of(obj, d->i);
}

static void *
race_reader(void *arg)
{
	struct reader *rd = arg;
	kf_store *s = kf_store_clone(rd->r->s);
	unsigned seed = (unsigned)rd->mode + 1;

	while (!atomic_load(&rd->r->stop)) {
		if (rd->mode == 0) {
			struct rd d = {.i = rand_r(&seed) % NOBJ, .gen = -2};

			if (kf_store_read(s, &rd->r->keys[d.i], check_fn, &d) !=
				KF_OK ||
			    d.gen < rd->max_gen)
				rd->bad++;
			else
				rd->max_gen = d.gen;
			rd->looks++;
			continue;
		}
		if (kf_store_pin(s) != KF_OK) {
			rd->bad++;
			continue;
		}
		/* Bound: 32 look-ups per section. */
		for (int q = 0; q < 32; q++) {
			int i = rand_r(&seed) % NOBJ, g;
			const kf_object *o;

			if (kf_store_get_borrowed(s, &rd->r->keys[i], &o) !=
				KF_OK ||
			    (g = gen_of(o, i)) < rd->max_gen) {
				rd->bad++;
				continue;
			}
			rd->max_gen = g;
			rd->looks++;
		}
		kf_store_unpin(s);
	}
	kf_store_free(s);
	return NULL;
}

static void
list_gen(kf_writer *w, int g)
{
	ev1(w, KF_EV_INIT, NULL);
	for (int i = 0; i < NOBJ; i++) {
		char name[16], rv[32];

		snprintf(name, sizeof(name), "p%d", i);
		snprintf(rv, sizeof(rv), "%d.%d", g, i);
		ev1(w, KF_EV_INIT_APPLY, mk("ns", name, name, rv));
	}
	ev1(w, KF_EV_INIT_DONE, NULL);
}

Test(store_read, borrowed_readers_race_a_relisting_writer, .timeout = 120)
{
	static struct race r;
	struct reader rds[NREADERS];
	pthread_t th[NREADERS];

	cr_assert_eq(kf_store_alloc(&r.w, &r.s), KF_OK);
	for (int i = 0; i < NOBJ; i++) {
		kf_objref ref = {"Pod", "ns", r.names[i], NULL, NULL};

		snprintf(r.names[i], sizeof(r.names[i]), "p%d", i);
		r.keys[i] = kf_store_key_make(&ref); /* hashed after */
	}
	list_gen(r.w, 0);
	for (int t = 0; t < NREADERS; t++) {
		rds[t] = (struct reader){.r = &r, .mode = t % 2};
		pthread_create(&th[t], NULL, race_reader, &rds[t]);
	}
	/* Every re-list changes every object: all entries are retired. */
	for (int g = 1; g <= NRELIST; g++)
		list_gen(r.w, g);
	atomic_store(&r.stop, 1);
	for (int t = 0; t < NREADERS; t++) {
		pthread_join(th[t], NULL);
		cr_assert_eq(rds[t].bad, 0, "reader %d: %d bad look-ups", t,
			     rds[t].bad);
		cr_assert_gt(rds[t].looks, 0);
		cr_assert_leq(rds[t].max_gen, NRELIST);
	}
	cr_assert_eq(kf_store_len(r.s), NOBJ);
	kf_writer_free(r.w);
	kf_store_free(r.s);
}

/* ---- identities the look-up compares ---- */

/* Names that share a prefix and differ in length or in one byte at each
 * position a word compare splits on (4, 8, 9, 16 and 17 bytes), and one
 * longer than the 16-bit length field: each is found, and only itself. */
Test(store_read, near_identities_are_told_apart)
{
	static const char *const names[] = {
	    "a",
	    "ab",
	    "abc",
	    "abcd",
	    "abce",
	    "abcdefgh",
	    "abcdefgi",
	    "abcdefghi",
	    "abcdefghj",
	    "bbcdefghi",
	    "0123456789abcdef",
	    "0123456789abcdeg",
	    "0123456789abcdefg",
	    "0123456789abcdefh",
	    "1123456789abcdefg",
	};
	size_t n = sizeof(names) / sizeof(names[0]);
	size_t biglen = 70000;
	char *big = malloc(biglen + 1), *bigjson = malloc(biglen + 200);
	char *near = malloc(biglen + 1);
	kf_writer *w;
	kf_store *s;
	kf_object *o, *bo;
	char err[128];

	cr_assert_not_null(big);
	memset(big, 'x', biglen);
	big[biglen] = '\0';
	memcpy(near, big, biglen + 1);
	near[biglen - 1] = 'y';
	snprintf(
	    bigjson, biglen + 200,
	    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
	    "\"namespace\":\"ns\",\"uid\":\"ub\",\"resourceVersion\":\"1\"}}",
	    big);
	cr_assert_eq(kf_object_parse(bigjson, strlen(bigjson), NULL, err,
				     sizeof(err), &bo),
		     KF_OK, "%s", err);

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev1(w, KF_EV_INIT, NULL);
	for (size_t i = 0; i < n; i++)
		ev1(w, KF_EV_INIT_APPLY, mk("ns", names[i], names[i], "1"));
	ev1(w, KF_EV_INIT_APPLY, bo);
	ev1(w, KF_EV_INIT_DONE, NULL);

	for (size_t i = 0; i < n; i++) {
		kf_store_key k = key("ns", names[i]);
		kf_objref other = {"Pod", "ns2", names[i], NULL, NULL};

		cr_assert_eq(kf_store_get_key(s, &k, &o), KF_OK, "%s",
			     names[i]);
		cr_assert_str_eq(kf_object_name(o), names[i]);
		kf_object_unref(o);
		cr_assert_eq(kf_store_get(s, &other, &o), KF_ENOTFOUND, "%s",
			     names[i]);
	}
	kf_store_key kb = key("ns", big), kn = key("ns", near);

	cr_assert_eq(kf_store_get_key(s, &kb, &o), KF_OK);
	cr_assert_eq(strlen(kf_object_name(o)), biglen);
	kf_object_unref(o);
	cr_assert_eq(kf_store_get_key(s, &kn, &o), KF_ENOTFOUND);
	/* A key whose lengths were not made by kf_store_key_make(). */
	kf_store_key bad = kb;

	bad.name_len = 3;
	cr_assert_eq(kf_store_get_key(s, &bad, &o), KF_ENOTFOUND);

	kf_store_free(s);
	kf_writer_free(w);
	free(big);
	free(near);
	free(bigjson);
}

/* ---- a handle used from threads other than its first ---- */

struct other_reader {
	kf_store *s;
	int found;
	int pinned;
};

static void *
read_from_other_thread(void *arg)
{
	struct other_reader *r = arg;
	kf_store_key ka = key("ns", "a");
	const kf_object *b;
	kf_object *o;

	for (int i = 0; i < 1000; i++) {
		if (kf_store_get_key(r->s, &ka, &o) == KF_OK &&
		    strcmp(kf_object_name(o), "a") == 0)
			r->found++;
		kf_object_unref(o);
	}
	if (kf_store_pin(r->s) == KF_OK) {
		if (kf_store_get_borrowed(r->s, &ka, &b) == KF_OK)
			r->pinned++;
		kf_store_unpin(r->s);
	}
	return NULL;
}

/* The handle's own record belongs to the first thread that read through
 * it; the others borrow spare records, call after call, and give them
 * back. */
Test(store_read, a_handle_serves_threads_after_its_first)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("ns", "a");
	kf_object *o;
	struct other_reader r[2];
	pthread_t th[2];
	size_t records;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "1"));
	ev1(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_OK); /* binds to us */
	kf_object_unref(o);
	records = kfi_store_record_count(s);

	for (int i = 0; i < 2; i++) {
		r[i] = (struct other_reader){.s = s};
		pthread_create(&th[i], NULL, read_from_other_thread, &r[i]);
	}
	for (int k = 0; k < 1000; k++) {
		cr_assert_eq(kf_store_get_key(s, &ka, &o), KF_OK);
		kf_object_unref(o);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(r[i].found, 1000);
		cr_assert_eq(r[i].pinned, 1);
	}
	/* At most one spare per thread at a time, all recycled. */
	cr_assert_leq(kfi_store_record_count(s), records + 2);
	kf_store_free(s);
	kf_writer_free(w);
}

/* ---- a child forked after the first store ---- */

/* The child writes enough to make the writer scan the reader records
 * (polls every 16 calls with something to free, and a swap), which is
 * where the membarrier of the parent's registration is issued. */
static int
child_writes(void)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key ka = key("ns", "a");
	kf_object *o;
	char rv[16];

	if (kf_store_alloc(&w, &s) != KF_OK)
		return 2;
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "0"));
	ev1(w, KF_EV_INIT_DONE, NULL);
	for (int i = 1; i <= 100; i++) {
		snprintf(rv, sizeof(rv), "%d", i);
		ev1(w, KF_EV_APPLY, mk("ns", "a", "u1", rv));
		if (kf_store_get_key(s, &ka, &o) != KF_OK)
			return 3;
		kf_object_unref(o);
	}
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "101"));
	ev1(w, KF_EV_INIT_DONE, NULL);
	kf_store_free(s);
	kf_writer_free(w);
	return 0;
}

Test(store_read, a_forked_child_can_use_stores)
{
	kf_writer *w;
	kf_store *s;
	int status;
	pid_t pid;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK); /* registers, if so */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(child_writes());
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the child died (signal %d)",
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0);
	kf_store_free(s);
	kf_writer_free(w);
}

Test(store_read, a_key_of_no_ref_finds_nothing)
{
	kf_writer *w;
	kf_store *s;
	kf_store_key k = kf_store_key_make(NULL);
	kf_object *o;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev1(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("ns", "a", "u1", "1"));
	ev1(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(k.hash, 0);
	cr_assert_eq(kf_store_get_key(s, &k, &o), KF_ENOTFOUND);
	cr_assert_null(o);
	kf_store_free(s);
	kf_writer_free(w);
}

/* Subscriber handles: fd readiness, timeouts, close from another thread,
 * subscribing before the first list (K11), late subscribe while events
 * flow (no gap, no duplicate), on the fake store and on the real one. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "kubefan/store.h"
#include "ring_fake.h"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000};

	nanosleep(&ts, NULL);
}

static bool
readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	cr_assert_geq(poll(&p, 1, timeout_ms), 0);
	return (p.revents & POLLIN) != 0;
}

Test(subscriber, fd_is_readable_exactly_when_events_wait)
{
	struct fake *f = fk_alloc(64, 8);
	kf_subscriber *s;
	struct view v = {0};
	int fd;

	fk_first_list(f, 2);
	s = fk_subscribe(f, NULL);
	fd = kf_subscriber_fd(s);
	cr_assert_geq(fd, 0);
	cr_assert(readable(fd, 1000), "the INIT frame is waiting");
	view_drain(&v, s);
	cr_assert_eq(v.frames, 1);
	cr_assert_not(readable(fd, 0), "drained: not readable");
	cr_assert_not(readable(fd, 50));

	fk_apply(f, 3);
	cr_assert(readable(fd, 1000));
	fk_apply(f, 4); /* a second event before reading: still one wake */
	cr_assert(readable(fd, 0));
	view_drain(&v, s);
	cr_assert_eq(v.events, 4 + 2);
	cr_assert_not(readable(fd, 0));
	view_assert_equals(&v, f);

	kf_subscriber_close(s);
	cr_assert(readable(fd, 1000), "close makes the fd readable");
	kf_subscriber_free(s);
	fk_unref(f);
}

Test(subscriber, next_times_out_when_nothing_comes)
{
	struct fake *f = fk_alloc(64, 8);
	kf_subscriber *s;
	kf_event ev;
	int64_t t0;

	fk_first_list(f, 0);
	s = fk_subscribe(f, NULL);
	cr_assert_eq(kf_subscriber_next(s, 0, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT);
	cr_assert_eq(kf_subscriber_next(s, 0, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT_DONE);
	cr_assert_eq(kf_subscriber_next(s, 0, &ev), KF_ETIMEDOUT);
	t0 = now_ms();
	cr_assert_eq(kf_subscriber_next(s, 60, &ev), KF_ETIMEDOUT);
	cr_assert_geq(now_ms() - t0, 55);
	cr_assert_lt(now_ms() - t0, 2000);
	kf_subscriber_free(s);
	fk_unref(f);
}

struct blocked {
	kf_subscriber *sub;
	kf_err err;
	int64_t at;
};

static void *
blocked_next(void *p)
{
	struct blocked *b = p;
	kf_event ev;

	do
		b->err = kf_subscriber_next(b->sub, -1, &ev);
	while (b->err == KF_OK);
	b->at = now_ms();
	return NULL;
}

Test(subscriber, close_from_another_thread_wakes_next_and_spares_the_others)
{
	struct fake *f = fk_alloc(64, 8);
	struct blocked b = {0};
	kf_subscriber *other;
	struct view v = {0};
	pthread_t t;
	int64_t t0;

	fk_first_list(f, 1);
	b.sub = fk_subscribe(f, NULL);
	other = fk_subscribe(f, NULL);
	view_drain(&v, other);
	pthread_create(&t, NULL, blocked_next, &b);
	sleep_ms(80);
	t0 = now_ms();
	kf_subscriber_close(b.sub);
	pthread_join(t, NULL);
	cr_assert_eq(b.err, KF_ECLOSED);
	cr_assert_lt(b.at - t0, 1000);
	kf_subscriber_close(b.sub); /* twice is fine */

	fk_apply(f, 1);
	fk_delete(f, 0);
	view_drain(&v, other);
	view_assert_equals(&v, f);
	kf_subscriber_free(b.sub);
	fk_apply(f, 2);
	view_drain(&v, other);
	view_assert_equals(&v, f);
	kf_subscriber_free(other);
	fk_unref(f);
}

struct huge_wait {
	kf_subscriber *sub;
	kf_err err;
	kf_event ev;
};

static void *
huge_next(void *p)
{
	struct huge_wait *h = p;

	h->err = kf_subscriber_next(h->sub, INT64_MAX, &h->ev);
	return NULL;
}

/* Found by a newcomer's attack: now + INT64_MAX overflowed, so the
 * longest timeout returned KF_ETIMEDOUT at once (UBSan: signed overflow). */
Test(subscriber, a_huge_timeout_waits_for_the_event)
{
	struct fake *f = fk_alloc(64, 8);
	struct huge_wait h = {0};
	kf_event ev;
	pthread_t t;

	fk_first_list(f, 0);
	h.sub = fk_subscribe(f, NULL);
	cr_assert_eq(kf_subscriber_next(h.sub, 0, &ev), KF_OK);
	cr_assert_eq(kf_subscriber_next(h.sub, 0, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT_DONE);
	pthread_create(&t, NULL, huge_next, &h);
	sleep_ms(100);
	fk_apply(f, 1);
	pthread_join(t, NULL);
	cr_assert_eq(h.err, KF_OK);
	cr_assert_eq(h.ev.type, KF_EV_APPLY);
	kf_subscriber_free(h.sub);
	fk_unref(f);
}

/* K11, subscriber side: attached before the list completes. */
Test(subscriber, before_the_first_list_init_comes_at_once_then_the_frame)
{
	struct fake *f = fk_alloc(64, 8);
	kf_subscriber *s = fk_subscribe(f, NULL);
	struct view v = {0};
	kf_event ev;

	cr_assert_eq(kf_subscriber_next(s, 0, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT);
	view_apply(&v, &ev);
	cr_assert_eq(kf_subscriber_next(s, 100, &ev), KF_ETIMEDOUT);
	fk_first_list(f, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(kf_subscriber_next(s, 1000, &ev), KF_OK);
		cr_assert_eq(ev.type, KF_EV_INIT_APPLY);
		view_apply(&v, &ev);
	}
	cr_assert_eq(kf_subscriber_next(s, 1000, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT_DONE, "one sync-done marker");
	view_apply(&v, &ev);
	fk_apply(f, 1);
	cr_assert_eq(kf_subscriber_next(s, 1000, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	view_apply(&v, &ev);
	view_drain(&v, s);
	view_assert_equals(&v, f);
	kf_subscriber_free(s);
	fk_unref(f);
}

/* A source whose first snapshot races three publishes: h0 is read
 * before them, the copy and h1 after, so [h0, h1) holds events the frame
 * already shows. */
static bool race_done;

static kf_err
racing_snapshot(void *arg, void **snap, uint64_t *h0, uint64_t *h1)
{
	struct fake *f = arg;
	uint64_t first;

	if (race_done)
		return fk_snapshot(arg, snap, h0, h1);
	race_done = true;
	first = kfi_ring_head(f->ring);
	fk_apply(f, 0);
	fk_apply(f, 0);
	fk_apply(f, 1);
	cr_assert_eq(fk_snapshot(arg, snap, h0, h1), KF_OK);
	*h0 = first;
	return KF_OK;
}

static void
expect_ev(kf_subscriber *s, struct view *v, kf_event_type type, size_t id,
	  uint64_t rv)
{
	kf_event ev;

	cr_assert_eq(kf_subscriber_try_next(s, &ev), KF_OK);
	cr_assert_eq(ev.type, type, "want %s, got %s", kf_event_type_name(type),
		     kf_event_type_name(ev.type));
	if (rv != 0) {
		cr_assert_eq(fk_id(ev.obj), id);
		cr_assert_eq(fk_rv(ev.obj), rv, "k%zu rv %llu, want %llu", id,
			     (unsigned long long)fk_rv(ev.obj),
			     (unsigned long long)rv);
	}
	view_apply(v, &ev);
}

/* A lag right after a frame whose catch-up had events the frame already
 * showed: the drain skips them (k1 rv 5 is not delivered twice), then
 * the events past h1, then the re-sync frame. */
Test(subscriber, a_lag_during_the_catch_up_never_sends_an_apply_back)
{
	static const struct kfi_sub_source_ops ops = {
	    .snapshot = racing_snapshot,
	    .snap_len = fk_snap_len,
	    .snap_at = fk_snap_at,
	    .snap_seq_at = fk_snap_seq_at,
	    .snap_free = fk_snap_free,
	    .synced = fk_synced,
	    .get = fk_get,
	    .release = fk_release,
	};
	struct fake *f = fk_alloc(8, 4);
	struct kfi_sub_source src = {.ring = f->ring, .ops = &ops, .arg = f};
	struct view *v = calloc(1, sizeof(*v));
	kf_subscriber *s;
	kf_event ev;

	fk_first_list(f, 2); /* k0 rv 1, k1 rv 2; marker = event 1 */
	atomic_fetch_add(&f->refs, 1);
	cr_assert_eq(kfi_subscriber_alloc(&src, NULL, &s), KF_OK);
	/* INIT takes the snapshot: events 2..4 (k0 rv 3, k0 rv 4, k1 rv 5)
	 * are published meanwhile; h0 = 2, h1 = 5. */
	expect_ev(s, v, KF_EV_INIT, 0, 0);
	expect_ev(s, v, KF_EV_INIT_APPLY, 0, 4);
	expect_ev(s, v, KF_EV_INIT_APPLY, 1, 5);
	expect_ev(s, v, KF_EV_INIT_DONE, 0, 0);
	/* Events 5..11 (k2 rv 6..12) overwrite 2 and 3: the reader at 2
	 * lags by 2 and resumes at 4, which the frame already showed. */
	for (int i = 0; i < 7; i++)
		fk_apply(f, 2);
	cr_assert_eq(kf_subscriber_try_next(s, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(ev.missed, 2);
	view_apply(v, &ev);
	for (uint64_t rv = 6; rv <= 12; rv++)
		expect_ev(s, v, KF_EV_APPLY, 2, rv);
	expect_ev(s, v, KF_EV_INIT, 0, 0);
	for (int i = 0; i < 3; i++)
		expect_ev(s, v, KF_EV_INIT_APPLY, 0, 0);
	expect_ev(s, v, KF_EV_INIT_DONE, 0, 0);
	view_drain(v, s);
	view_assert_equals(v, f);
	kf_subscriber_free(s);
	fk_unref(f);
	free(v);
}

/* ---- late subscribe while the writer publishes ---- */

#define LATE_KEYS 64
#define LATE_SUBS 12

struct late_writer {
	struct fake *f;
	int events;
	_Atomic bool done;
};

static void *
late_writer_main(void *p)
{
	struct late_writer *w = p;
	unsigned seed = 7;

	for (int i = 0; i < w->events; i++) {
		size_t id = (size_t)rand_r(&seed) % LATE_KEYS;

		if (rand_r(&seed) % 5 == 0)
			fk_delete(w->f, id);
		else
			fk_apply(w->f, id);
	}
	atomic_store(&w->done, true);
	return NULL;
}

Test(subscriber, late_subscribe_while_publishing_has_no_gap_and_no_dup)
{
	struct fake *f = fk_alloc(1024, LATE_KEYS);
	struct late_writer w = {.f = f, .events = 30000};
	kf_sub_opts block = {.policy = KF_SUB_BLOCK, .block_timeout_ms = 30000};
	kf_subscriber *subs[LATE_SUBS] = {0};
	struct view *views = calloc(LATE_SUBS, sizeof(*views));
	int nsubs = 0;
	unsigned seed = 11;
	pthread_t t;
	kf_event ev;

	fk_first_list(f, LATE_KEYS / 2);
	pthread_create(&t, NULL, late_writer_main, &w);
	/* Subscribe at random moments while the writer runs; every turn
	 * reads a little from each subscriber so none stalls the writer. */
	while (!atomic_load(&w.done)) {
		if (nsubs < LATE_SUBS && rand_r(&seed) % 50 == 0) {
			subs[nsubs] = fk_subscribe(f, &block);
			/* The first call takes the snapshot right now. */
			cr_assert_eq(kf_subscriber_try_next(subs[nsubs], &ev),
				     KF_OK);
			view_apply(&views[nsubs], &ev);
			nsubs++;
		}
		for (int i = 0; i < nsubs; i++)
			for (int k = 0; k < 64; k++) {
				if (kf_subscriber_try_next(subs[i], &ev) !=
				    KF_OK)
					break;
				view_apply(&views[i], &ev);
			}
	}
	pthread_join(t, NULL);
	cr_assert_geq(nsubs, 2, "subscribed while publishing");
	for (int i = 0; i < nsubs; i++) {
		kf_sub_stats st;

		view_drain(&views[i], subs[i]);
		view_assert_equals(&views[i], f);
		kf_subscriber_stats(subs[i], &st);
		cr_assert_eq(st.lagged, 0, "blocking subscribers never lag");
		cr_assert_eq(views[i].frames, 1);
		kf_subscriber_free(subs[i]);
	}
	free(views);
	fk_unref(f);
}

/* ---- the real store ---- */

static void
writer_event(kf_writer *w, kf_event_type type, kf_object *o)
{
	kf_event ev = {.type = type, .obj = o};

	cr_assert_eq(kf_writer_apply(w, &ev), KF_OK);
}

/* The store's contents as key -> rv. */
static void
store_rvs(kf_store *s, uint64_t *rv)
{
	kf_state *st;

	memset(rv, 0, FK_MAXKEYS * sizeof(*rv));
	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	for (size_t i = 0; i < kf_state_len(st); i++) {
		kf_object *o = kf_state_at(st, i);

		rv[fk_id(o)] = fk_rv(o);
	}
	kf_state_free(st);
}

Test(store_subscribe, a_plain_store_has_no_ring)
{
	kf_writer *w;
	kf_store *s;
	kf_subscriber *sub = NULL;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_eq(kf_store_subscribe(s, NULL, &sub), KF_EINVAL);
	cr_assert_null(sub);
	kf_store_free(s);
	kf_writer_free(w);
}

struct real_writer {
	kf_writer *w;
	int events;
	uint64_t rv;
	_Atomic bool done;
};

static void *
real_writer_main(void *p)
{
	struct real_writer *rw = p;
	unsigned seed = 3;
	bool present[LATE_KEYS] = {0};

	for (int i = 0; i < rw->events; i++) {
		size_t id = (size_t)rand_r(&seed) % LATE_KEYS;
		kf_object *o = fk_make(id, ++rw->rv);

		if (present[id] && rand_r(&seed) % 5 == 0) {
			writer_event(rw->w, KF_EV_DELETE, o);
			present[id] = false;
		} else {
			writer_event(rw->w, KF_EV_APPLY, o);
			present[id] = true;
		}
		kf_object_unref(o);
	}
	atomic_store(&rw->done, true);
	return NULL;
}

Test(store_subscribe, k11_early_subscriber_then_late_ones_while_applying)
{
	struct real_writer rw = {.events = 20000};
	kf_sub_opts block = {.policy = KF_SUB_BLOCK, .block_timeout_ms = 30000};
	kf_store *s;
	kf_subscriber *subs[LATE_SUBS] = {0};
	struct view *views = calloc(LATE_SUBS, sizeof(*views));
	uint64_t *want = calloc(FK_MAXKEYS, sizeof(*want));
	int nsubs = 1;
	unsigned seed = 5;
	pthread_t t;
	kf_event ev;

	cr_assert_eq(kf_store_shared_alloc(1024, &rw.w, &s), KF_OK);
	/* Early subscriber: INIT at once, nothing else before the list. */
	cr_assert_eq(kf_store_subscribe(s, &block, &subs[0]), KF_OK);
	cr_assert_eq(kf_subscriber_next(subs[0], 0, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT);
	view_apply(&views[0], &ev);
	cr_assert_eq(kf_subscriber_next(subs[0], 50, &ev), KF_ETIMEDOUT);

	writer_event(rw.w, KF_EV_INIT, NULL);
	for (size_t id = 0; id < LATE_KEYS / 2; id++) {
		kf_object *o = fk_make(id, ++rw.rv);

		writer_event(rw.w, KF_EV_INIT_APPLY, o);
		kf_object_unref(o);
	}
	cr_assert_eq(kf_subscriber_next(subs[0], 50, &ev), KF_ETIMEDOUT,
		     "nothing before the list completes");
	writer_event(rw.w, KF_EV_INIT_DONE, NULL);
	for (size_t i = 0; i < LATE_KEYS / 2; i++) {
		cr_assert_eq(kf_subscriber_next(subs[0], 1000, &ev), KF_OK);
		cr_assert_eq(ev.type, KF_EV_INIT_APPLY);
		view_apply(&views[0], &ev);
	}
	cr_assert_eq(kf_subscriber_next(subs[0], 1000, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_INIT_DONE);
	view_apply(&views[0], &ev);

	pthread_create(&t, NULL, real_writer_main, &rw);
	while (!atomic_load(&rw.done)) {
		if (nsubs < LATE_SUBS && rand_r(&seed) % 50 == 0) {
			cr_assert_eq(
			    kf_store_subscribe(s, &block, &subs[nsubs]), KF_OK);
			cr_assert_eq(kf_subscriber_try_next(subs[nsubs], &ev),
				     KF_OK);
			view_apply(&views[nsubs], &ev);
			nsubs++;
		}
		for (int i = 0; i < nsubs; i++)
			for (int k = 0; k < 64; k++) {
				if (kf_subscriber_try_next(subs[i], &ev) !=
				    KF_OK)
					break;
				view_apply(&views[i], &ev);
			}
	}
	pthread_join(t, NULL);
	store_rvs(s, want);
	for (int i = 0; i < nsubs; i++) {
		kf_sub_stats st;

		view_drain(&views[i], subs[i]);
		cr_assert_eq(
		    memcmp(views[i].rv, want, FK_MAXKEYS * sizeof(*want)), 0,
		    "subscriber %d's view differs", i);
		kf_subscriber_stats(subs[i], &st);
		cr_assert_eq(st.lagged, 0);
		kf_subscriber_free(subs[i]);
	}
	cr_assert_geq(nsubs, 3);

	/* Writer gone: subscribers end with KF_ECLOSED. */
	cr_assert_eq(kf_store_subscribe(s, NULL, &subs[0]), KF_OK);
	kf_writer_free(rw.w);
	{
		kf_err e;

		while ((e = kf_subscriber_next(subs[0], 1000, &ev)) == KF_OK)
			;
		cr_assert_eq(e, KF_ECLOSED, "%s", kf_strerror(e));
	}
	kf_subscriber_free(subs[0]);
	kf_store_free(s);
	free(views);
	free(want);
}

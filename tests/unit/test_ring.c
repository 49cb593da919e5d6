/* The broadcast ring: sequence numbers, exact lag counts (K12), a stalled
 * subscriber stalls nobody (K13), the blocking policy. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "ring_fake.h"

static void
sleep_ms_ring(int64_t ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000};

	nanosleep(&ts, NULL);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
expect(kf_subscriber *sub, kf_event_type type, int64_t rv)
{
	kf_event ev;
	kf_err err = kf_subscriber_try_next(sub, &ev);

	cr_assert_eq(err, KF_OK, "want %s, got %s", kf_event_type_name(type),
		     kf_strerror(err));
	cr_assert_eq(ev.type, type, "want %s, got %s", kf_event_type_name(type),
		     kf_event_type_name(ev.type));
	if (rv >= 0)
		cr_assert_eq(fk_rv(ev.obj), (uint64_t)rv);
}

static void
expect_lagged(kf_subscriber *sub, uint64_t missed)
{
	kf_event ev;

	cr_assert_eq(kf_subscriber_try_next(sub, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_LAGGED, "got %s",
		     kf_event_type_name(ev.type));
	cr_assert_eq(ev.missed, missed, "missed %llu, want %llu",
		     (unsigned long long)ev.missed, (unsigned long long)missed);
	cr_assert_null(ev.obj);
}

static void
expect_empty(kf_subscriber *sub)
{
	kf_event ev;
	kf_err err = kf_subscriber_try_next(sub, &ev);

	cr_assert_eq(err, KF_EAGAIN, "got %s (%s)", kf_strerror(err),
		     err == KF_OK ? kf_event_type_name(ev.type) : "");
}

/* A synced fake with no objects and a subscriber past its empty frame. */
static kf_subscriber *
synced_sub(struct fake *f)
{
	kf_subscriber *sub = fk_subscribe(f, NULL);

	expect(sub, KF_EV_INIT, -1);
	expect(sub, KF_EV_INIT_DONE, -1);
	expect_empty(sub);
	return sub;
}

Test(ring, capacity_must_be_a_power_of_two)
{
	struct kfi_ring *r;
	size_t bad[] = {0, 1, 3, 6, 12, 1000};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(kfi_ring_alloc(bad[i], &r), KF_EINVAL);
	cr_assert_eq(kfi_ring_alloc(2, &r), KF_OK);
	cr_assert_eq(kfi_ring_capacity(r), 2);
	kfi_ring_free(r);
}

Test(ring, sequence_numbers_start_at_one_and_readers_see_them_in_order)
{
	struct kfi_ring *r;
	struct kfi_ring_reader *rd;
	kf_object *o = fk_make(1, 1);
	kf_event ev = {.type = KF_EV_APPLY, .obj = o}, got;
	uint64_t seq, missed;

	cr_assert_eq(kfi_ring_alloc(4, &r), KF_OK);
	cr_assert_eq(kfi_ring_head(r), 1);
	cr_assert_eq(kfi_ring_reader_alloc(r, NULL, &rd), KF_OK);
	cr_assert_eq(kfi_ring_read(rd, &got, &seq, &missed), KF_EAGAIN);
	for (int i = 0; i < 3; i++)
		kfi_ring_publish(r, &ev);
	cr_assert_eq(kfi_ring_head(r), 4);
	for (uint64_t want = 1; want <= 3; want++) {
		cr_assert_eq(kfi_ring_read(rd, &got, &seq, &missed), KF_OK);
		cr_assert_eq(seq, want);
		cr_assert_eq(got.type, KF_EV_APPLY);
		cr_assert_eq(got.obj, o, "delivery hands out the same object");
	}
	cr_assert_eq(kfi_ring_read(rd, &got, &seq, &missed), KF_EAGAIN);
	kfi_ring_reader_free(rd);
	kfi_ring_free(r);
	kf_object_unref(o);
}

/* The reader sits at `at`; k more events than the ring holds arrive:
 * the lag is exactly k, for every k and every offset of the reader. */
Test(ring, lag_count_is_exact_wherever_the_write_position_wraps)
{
	kf_object *o = fk_make(1, 1);
	kf_event ev = {.type = KF_EV_APPLY, .obj = o}, got;

	for (uint64_t at = 0; at < 8; at++) {
		for (uint64_t k = 0; k <= 20; k++) {
			struct kfi_ring *r;
			struct kfi_ring_reader *rd;
			uint64_t seq, missed = 0;
			kf_err err;

			cr_assert_eq(kfi_ring_alloc(8, &r), KF_OK);
			cr_assert_eq(kfi_ring_reader_alloc(r, NULL, &rd),
				     KF_OK);
			for (uint64_t i = 0; i < at; i++) {
				kfi_ring_publish(r, &ev);
				cr_assert_eq(
				    kfi_ring_read(rd, &got, &seq, &missed),
				    KF_OK);
			}
			for (uint64_t i = 0; i < 8 + k; i++)
				kfi_ring_publish(r, &ev);
			err = kfi_ring_read(rd, &got, &seq, &missed);
			if (k == 0) {
				cr_assert_eq(err, KF_OK, "at %llu",
					     (unsigned long long)at);
				cr_assert_eq(seq, at + 1);
			} else {
				cr_assert_eq(err, KF_ELAGGED);
				cr_assert_eq(missed, k, "at %llu k %llu: %llu",
					     (unsigned long long)at,
					     (unsigned long long)k,
					     (unsigned long long)missed);
				cr_assert_eq(kfi_ring_reader_pos(rd),
					     at + 1 + k);
				cr_assert_eq(
				    kfi_ring_read(rd, &got, &seq, &missed),
				    KF_OK);
				cr_assert_eq(seq, at + 1 + k);
			}
			kfi_ring_reader_free(rd);
			kfi_ring_free(r);
		}
	}
	kf_object_unref(o);
}

static void
k12(size_t nevents)
{
	struct fake *f = fk_alloc(8, 4);
	kf_subscriber *fast, *slow;
	uint64_t missed = nevents > 8 ? nevents - 8 : 0;
	kf_sub_stats st;

	fk_first_list(f, 0);
	fast = synced_sub(f);
	slow = synced_sub(f);
	for (size_t i = 1; i <= nevents; i++) {
		fk_apply(f, 0); /* x@i */
		expect(fast, KF_EV_APPLY, (int64_t)i);
	}
	expect_empty(fast);

	if (missed > 0)
		expect_lagged(slow, missed);
	for (uint64_t i = missed + 1; i <= nevents; i++)
		expect(slow, KF_EV_APPLY, (int64_t)i);
	if (missed > 0) {
		expect(slow, KF_EV_INIT, -1);
		expect(slow, KF_EV_INIT_APPLY, (int64_t)nevents);
		expect(slow, KF_EV_INIT_DONE, -1);
	}
	expect_empty(slow);

	kf_subscriber_stats(slow, &st);
	cr_assert_eq(st.missed, missed);
	cr_assert_eq(st.lagged, missed > 0);
	cr_assert_eq(st.resyncs, missed > 0);
	cr_assert_eq(st.lag, 0);
	kf_subscriber_stats(fast, &st);
	cr_assert_eq(st.missed, 0);
	cr_assert_eq(st.delivered, 2 + nevents);

	/* Both are live again. */
	fk_apply(f, 0);
	expect(fast, KF_EV_APPLY, (int64_t)nevents + 1);
	expect(slow, KF_EV_APPLY, (int64_t)nevents + 1);
	kf_subscriber_free(fast);
	kf_subscriber_free(slow);
	fk_unref(f);
}

Test(ring, k12_overflow_is_never_silent_20_events_miss_12)
{
	k12(20);
}

Test(ring, k12_exactly_capacity_events_miss_nothing)
{
	k12(8);
}

Test(ring, k12_capacity_plus_one_misses_one)
{
	k12(9);
}

Test(ring, k12_many_laps_miss_all_but_the_last_capacity)
{
	k12(1003);
}

/* K13 with the reader keeping up on the writer's own thread. */
Test(ring, k13_a_stalled_subscriber_stalls_nobody)
{
	struct fake *f = fk_alloc(8, 4);
	kf_subscriber *s1, *s2;
	struct kfi_ring_stats rs;
	kf_sub_stats st;

	fk_first_list(f, 0);
	s1 = synced_sub(f);
	s2 = synced_sub(f);
	for (size_t i = 1; i <= 1000; i++) {
		fk_apply(f, i % 4);
		expect(s2, KF_EV_APPLY, (int64_t)i);
		kfi_ring_stats(f->ring, &rs);
		cr_assert_leq(rs.held, 8 + 16 + 2, "ring holds %llu objects",
			      (unsigned long long)rs.held);
	}
	kfi_ring_stats(f->ring, &rs);
	cr_assert_eq(rs.published, 1001); /* + the INIT_DONE marker */
	cr_assert_eq(rs.block_waits, 0);
	kf_subscriber_stats(s1, &st);
	cr_assert_eq(st.lag, 1000);

	/* Closing S1 does not disturb S2. */
	kf_subscriber_free(s1);
	fk_apply(f, 1);
	expect(s2, KF_EV_APPLY, 1001);
	expect_empty(s2);
	kf_subscriber_stats(s2, &st);
	cr_assert_eq(st.missed, 0);
	cr_assert_eq(st.lagged, 0);
	kf_subscriber_free(s2);
	fk_unref(f);
}

struct reader_arg {
	kf_subscriber *sub;
	uint64_t want;
	uint64_t got;
	bool in_order;
	uint64_t lagged;
};

static void *
reader_main(void *p)
{
	struct reader_arg *a = p;
	kf_event ev;

	a->in_order = true;
	while (a->got < a->want) {
		kf_err err = kf_subscriber_next(a->sub, 5000, &ev);

		cr_assert_eq(err, KF_OK, "%s", kf_strerror(err));
		if (ev.type == KF_EV_LAGGED)
			a->lagged++;
		if (ev.type != KF_EV_APPLY)
			continue;
		a->got++;
		if (fk_rv(ev.obj) != a->got)
			a->in_order = false;
	}
	return NULL;
}

/* K13 with S2 on its own thread: it asks for the blocking policy, S1
 * does not, so the writer waits only for S2. */
Test(ring, k13_blocking_reader_gets_all_while_the_stalled_one_lags)
{
	struct fake *f = fk_alloc(8, 4);
	kf_sub_opts block = {.policy = KF_SUB_BLOCK, .block_timeout_ms = 10000};
	kf_subscriber *s1, *s2;
	struct reader_arg a = {.want = 1000};
	pthread_t t;
	kf_sub_stats st;
	kf_event ev;

	fk_first_list(f, 0);
	s1 = synced_sub(f);
	s2 = fk_subscribe(f, &block);
	expect(s2, KF_EV_INIT, -1);
	expect(s2, KF_EV_INIT_DONE, -1);
	a.sub = s2;
	pthread_create(&t, NULL, reader_main, &a);
	for (size_t i = 1; i <= 1000; i++)
		fk_apply(f, i % 4);
	pthread_join(t, NULL);
	cr_assert_eq(a.got, 1000);
	cr_assert(a.in_order);
	cr_assert_eq(a.lagged, 0);

	cr_assert_eq(kf_subscriber_try_next(s1, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(ev.missed, 1000 - 8);
	kf_subscriber_stats(s2, &st);
	cr_assert_eq(st.missed, 0);
	kf_subscriber_free(s1);
	kf_subscriber_free(s2);
	fk_unref(f);
}

Test(ring, blocking_policy_waits_until_the_deadline_then_lags)
{
	struct fake *f = fk_alloc(4, 4);
	kf_sub_opts block = {.policy = KF_SUB_BLOCK, .block_timeout_ms = 80};
	kf_subscriber *s;
	struct kfi_ring_stats rs;
	int64_t t0, waited;

	fk_first_list(f, 0);
	s = fk_subscribe(f, &block);
	expect(s, KF_EV_INIT, -1);
	expect(s, KF_EV_INIT_DONE, -1);
	t0 = now_ms();
	for (int i = 0; i < 4; i++)
		fk_apply(f, 0);
	cr_assert_lt(now_ms() - t0, 60, "a ring with room never waits");

	t0 = now_ms();
	fk_apply(f, 0); /* would overwrite what s has not read */
	waited = now_ms() - t0;
	cr_assert_geq(waited, 75, "waited %lld ms", (long long)waited);
	cr_assert_lt(waited, 2000);
	t0 = now_ms();
	for (int i = 0; i < 10; i++)
		fk_apply(f, 0);
	cr_assert_lt(now_ms() - t0, 60,
		     "a lagged subscriber is not waited "
		     "for again");
	kfi_ring_stats(f->ring, &rs);
	cr_assert_eq(rs.block_expiry, 1);

	expect_lagged(s, 11);
	for (int rv = 12; rv <= 15; rv++)
		expect(s, KF_EV_APPLY, rv);
	expect(s, KF_EV_INIT, -1);
	expect(s, KF_EV_INIT_APPLY, 15);
	expect(s, KF_EV_INIT_DONE, -1);
	expect_empty(s);

	/* Reading again makes it a blocking subscriber again. */
	for (int i = 0; i < 4; i++)
		fk_apply(f, 0);
	t0 = now_ms();
	fk_apply(f, 0);
	cr_assert_geq(now_ms() - t0, 75);
	kf_subscriber_free(s);
	fk_unref(f);
}

struct pub_arg {
	struct fake *f;
	_Atomic bool done;
};

static void *
publish_one(void *p)
{
	struct pub_arg *a = p;

	fk_apply(a->f, 0);
	atomic_store(&a->done, true);
	return NULL;
}

/* Found by a newcomer's attack: now + block_timeout_ms * 10^6 overflowed
 * (UBSan abort; in a release build the deadline wrapped into the past and
 * the writer did not wait at all). A huge deadline now saturates. */
Test(ring, blocking_policy_with_a_huge_deadline_keeps_waiting)
{
	struct fake *f = fk_alloc(2, 4);
	kf_sub_opts block = {.policy = KF_SUB_BLOCK,
			     .block_timeout_ms = INT64_MAX};
	struct pub_arg a = {.f = f};
	kf_subscriber *s;
	pthread_t t;

	fk_first_list(f, 0);
	s = fk_subscribe(f, &block);
	expect(s, KF_EV_INIT, -1);
	expect(s, KF_EV_INIT_DONE, -1);
	fk_apply(f, 0);
	fk_apply(f, 0);
	pthread_create(&t, NULL, publish_one, &a);
	sleep_ms_ring(150);
	cr_assert_not(atomic_load(&a.done), "the writer did not wait");
	expect(s, KF_EV_APPLY, 1);
	pthread_join(t, NULL);
	cr_assert(atomic_load(&a.done));
	expect(s, KF_EV_APPLY, 2);
	expect(s, KF_EV_APPLY, 3);
	kf_subscriber_free(s);
	fk_unref(f);
}

/* Found by a newcomer's attack: a negative block_timeout_ms silently
 * meant 1000 ms and an unknown policy silently meant KF_SUB_DROP. */
Test(ring, subscribe_refuses_an_unknown_policy_or_a_negative_deadline)
{
	struct fake *f = fk_alloc(2, 4);
	kf_sub_opts bad_policy = {.policy = (kf_sub_policy)7};
	kf_sub_opts negative = {.policy = KF_SUB_BLOCK, .block_timeout_ms = -1};
	struct kfi_sub_source src = {.ring = f->ring, .ops = &fk_ops, .arg = f};
	kf_subscriber *s = NULL;

	atomic_fetch_add(&f->refs, 1);
	cr_assert_eq(kfi_subscriber_alloc(&src, &bad_policy, &s), KF_EINVAL);
	cr_assert_null(s);
	atomic_fetch_add(&f->refs, 1);
	cr_assert_eq(kfi_subscriber_alloc(&src, &negative, &s), KF_EINVAL);
	cr_assert_null(s);
	fk_unref(f);
}

static void *
slow_consumer(void *p)
{
	kf_subscriber *s = p;
	kf_event ev;

	for (int i = 0; i < 6; i++) {
		struct timespec ts = {0, 20 * 1000000};

		nanosleep(&ts, NULL);
		cr_assert_eq(kf_subscriber_next(s, 5000, &ev), KF_OK);
		cr_assert_eq(ev.type, KF_EV_APPLY);
	}
	return NULL;
}

Test(ring, blocking_policy_producer_resumes_when_the_reader_moves)
{
	struct fake *f = fk_alloc(2, 4);
	kf_sub_opts block = {.policy = KF_SUB_BLOCK, .block_timeout_ms = 10000};
	kf_subscriber *s;
	pthread_t t;
	struct kfi_ring_stats rs;
	int64_t t0, took;

	fk_first_list(f, 0);
	s = fk_subscribe(f, &block);
	expect(s, KF_EV_INIT, -1);
	expect(s, KF_EV_INIT_DONE, -1);
	pthread_create(&t, NULL, slow_consumer, s);
	t0 = now_ms();
	for (int i = 0; i < 6; i++)
		fk_apply(f, 0);
	took = now_ms() - t0;
	pthread_join(t, NULL);
	/* 6 events, ring of 2, reader takes one per 20 ms: the writer had
	 * to wait for about 4 of them, far below the 10 s deadline. */
	cr_assert_geq(took, 50, "took %lld", (long long)took);
	cr_assert_lt(took, 5000);
	kfi_ring_stats(f->ring, &rs);
	cr_assert_geq(rs.block_waits, 3);
	cr_assert_eq(rs.block_expiry, 0);
	kf_subscriber_free(s);
	fk_unref(f);
}

/* ---- wake-ups: many sleepers, one system call per publish at most ---- */

#define WAKE_READERS 40
#define WAKE_ROUNDS  30

struct wake_arg {
	kf_subscriber *sub;
	bool use_fd;
	_Atomic uint64_t got;
};

static void *
wake_reader_main(void *p)
{
	struct wake_arg *a = p;
	int fd = a->use_fd ? kf_subscriber_fd(a->sub) : -1;
	kf_event ev;

	while (atomic_load(&a->got) < WAKE_ROUNDS) {
		kf_err err;

		if (!a->use_fd) {
			err = kf_subscriber_next(a->sub, 10000, &ev);
			cr_assert_eq(err, KF_OK, "%s", kf_strerror(err));
		} else {
			struct pollfd pf = {.fd = fd, .events = POLLIN};

			err = kf_subscriber_try_next(a->sub, &ev);
			if (err == KF_EAGAIN) {
				cr_assert_eq(poll(&pf, 1, 10000), 1,
					     "the fd was never written");
				continue;
			}
			cr_assert_eq(err, KF_OK, "%s", kf_strerror(err));
		}
		if (ev.type == KF_EV_APPLY)
			atomic_fetch_add(&a->got, 1);
	}
	return NULL;
}

/* Readers asleep in next() and in poll() on their fd: each publish reaches
 * every one of them (the woken ones pass the wake-up on), and the writer
 * makes at most one wake-up system call per publish. */
Test(ring, one_publish_wakes_every_sleeper_with_at_most_one_system_call)
{
	struct fake *f = fk_alloc(64, 4);
	struct wake_arg *a = calloc(WAKE_READERS, sizeof(*a));
	pthread_t t[WAKE_READERS];
	struct kfi_ring_stats rs;

	fk_first_list(f, 0);
	for (int i = 0; i < WAKE_READERS; i++) {
		a[i].sub = synced_sub(f);
		a[i].use_fd = i % 4 == 3;
		pthread_create(&t[i], NULL, wake_reader_main, &a[i]);
	}
	for (uint64_t r = 1; r <= WAKE_ROUNDS; r++) {
		int64_t end;

		sleep_ms_ring(5); /* most readers fall asleep */
		fk_apply(f, r % 4);
		end = now_ms() + 10000;
		for (int i = 0; i < WAKE_READERS; i++)
			while (atomic_load(&a[i].got) < r) {
				cr_assert_lt(now_ms(), end,
					     "reader %d missed event %llu", i,
					     (unsigned long long)r);
				sleep_ms_ring(1);
			}
	}
	for (int i = 0; i < WAKE_READERS; i++)
		pthread_join(t[i], NULL);
	kfi_ring_stats(f->ring, &rs);
	cr_assert_leq(rs.publish_wakes, WAKE_ROUNDS, "%llu wake-ups in publish",
		      (unsigned long long)rs.publish_wakes);
	cr_log_info(
	    "%d readers, %d rounds: %llu wake-up calls, %llu in publish, "
	    "%llu publishes left to relayers",
	    WAKE_READERS, WAKE_ROUNDS, (unsigned long long)rs.wakes,
	    (unsigned long long)rs.publish_wakes,
	    (unsigned long long)rs.deferred);
	for (int i = 0; i < WAKE_READERS; i++)
		kf_subscriber_free(a[i].sub);
	free(a);
	fk_unref(f);
}

Test(ring, delete_reaches_subscribers_with_the_last_known_object)
{
	struct fake *f = fk_alloc(8, 4);
	kf_subscriber *s;
	kf_event ev;

	fk_first_list(f, 2);
	s = fk_subscribe(f, NULL);
	expect(s, KF_EV_INIT, -1);
	expect(s, KF_EV_INIT_APPLY, -1);
	expect(s, KF_EV_INIT_APPLY, -1);
	expect(s, KF_EV_INIT_DONE, -1);
	fk_apply(f, 1); /* rv 3 */
	fk_delete(f, 1);
	expect(s, KF_EV_APPLY, 3);
	cr_assert_eq(kf_subscriber_try_next(s, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_DELETE);
	cr_assert_str_eq(kf_object_name(ev.obj), "k1");
	cr_assert_eq(fk_rv(ev.obj), 3);
	expect_empty(s);
	kf_subscriber_free(s);
	fk_unref(f);
}

Test(ring, closing_the_ring_ends_every_subscriber_after_what_is_left)
{
	struct fake *f = fk_alloc(8, 4);
	kf_subscriber *s;
	kf_event ev;

	fk_first_list(f, 0);
	s = synced_sub(f);
	fk_apply(f, 0);
	kfi_ring_close(f->ring);
	cr_assert_eq(kf_subscriber_next(s, 1000, &ev), KF_OK);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_eq(kf_subscriber_next(s, 1000, &ev), KF_ECLOSED);
	cr_assert_eq(kf_subscriber_try_next(s, &ev), KF_ECLOSED);
	kf_subscriber_free(s);
	fk_unref(f);
}

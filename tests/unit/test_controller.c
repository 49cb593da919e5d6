/* The controller helper on a fake store: de-duplication, requeue, per-key
 * backoff, error policy, gone objects, graceful stop, two controllers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <time.h>

#include "kubefan/controller.h"
#include "ring_fake.h"

#define NK 8

struct rec {
	pthread_mutex_t mu;
	int calls[NK];
	int inflight[NK];
	int max_inflight;
	int nulls[NK];
	int64_t at[NK][16]; /* call times, ms */
	/* behaviour */
	int fail_first[NK];   /* fail this many calls */
	int64_t requeue_once; /* first OK call asks for this requeue */
	int64_t sleep_ms;     /* each call sleeps */
	pthread_mutex_t gate; /* held by the test to block k0's first call */
	bool use_gate;
	uint32_t pol_fail[16];
	int64_t pol_backoff[16];
	int npol;
	int64_t pol_return; /* 0: use the backoff */
	bool ended_after_stop;
	_Atomic bool stopping;
};

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

static size_t
ref_id(const kf_objref *ref)
{
	return (size_t)strtoull(ref->name + 1, NULL, 10);
}

static kf_err
reconcile(void *arg, const kf_objref *ref, kf_object *obj, int64_t *requeue_ms)
{
	struct rec *r = arg;
	size_t id = ref_id(ref);
	int n;
	kf_err err = KF_OK;

	cr_assert_str_eq(ref->kind, "ConfigMap");
	cr_assert_str_eq(ref->namespace_, "ns");
	if (obj != NULL)
		cr_assert_str_eq(kf_object_name(obj), ref->name);
	pthread_mutex_lock(&r->mu);
	n = r->calls[id]++;
	if (n < 16)
		r->at[id][n] = now_ms();
	if (++r->inflight[id] > r->max_inflight)
		r->max_inflight = r->inflight[id];
	if (obj == NULL)
		r->nulls[id]++;
	if (n < r->fail_first[id])
		err = KF_EIO;
	else if (n == r->fail_first[id] && r->requeue_once > 0)
		*requeue_ms = r->requeue_once;
	pthread_mutex_unlock(&r->mu);

	if (r->use_gate && id == 0 && n == 0) {
		pthread_mutex_lock(&r->gate);
		pthread_mutex_unlock(&r->gate);
	}
	if (r->sleep_ms > 0)
		sleep_ms(r->sleep_ms);

	pthread_mutex_lock(&r->mu);
	r->inflight[id]--;
	if (atomic_load(&r->stopping))
		r->ended_after_stop = true;
	pthread_mutex_unlock(&r->mu);
	return err;
}

static int64_t
policy(void *arg, const kf_objref *ref, kf_err err, uint32_t failures,
       int64_t backoff_ms)
{
	struct rec *r = arg;

	cr_assert_eq(err, KF_EIO);
	pthread_mutex_lock(&r->mu);
	if (r->npol < 16) {
		r->pol_fail[r->npol] = failures;
		r->pol_backoff[r->npol] = backoff_ms;
		r->npol++;
	}
	pthread_mutex_unlock(&r->mu);
	return r->pol_return != 0 ? r->pol_return : backoff_ms;
}

static struct rec *
rec_new(void)
{
	struct rec *r = calloc(1, sizeof(*r));

	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->gate, NULL);
	return r;
}

static int
calls(struct rec *r, size_t id)
{
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->calls[id];
	pthread_mutex_unlock(&r->mu);
	return n;
}

static bool
wait_calls(struct rec *r, size_t id, int want, int64_t ms)
{
	int64_t end = now_ms() + ms;

	while (calls(r, id) < want && now_ms() < end)
		sleep_ms(2);
	return calls(r, id) >= want;
}

static kf_controller *
ctl_new(struct fake *f, struct rec *r, unsigned workers, bool with_policy)
{
	kf_controller_opts o = {
	    .name = "test",
	    .workers = workers,
	    .reconcile = reconcile,
	    .error_policy = with_policy ? policy : NULL,
	    .arg = r,
	    .backoff_base_ms = 20,
	    .backoff_max_ms = 100,
	};
	kf_controller *c = NULL;

	cr_assert_eq(kfi_controller_alloc(fk_subscribe(f, NULL), &o, &c),
		     KF_OK);
	return c;
}

static void
wait_fed(kf_controller *c, uint64_t events)
{
	kf_ctl_stats st;
	int64_t end = now_ms() + 5000;

	do {
		kf_controller_stats(c, &st);
		if (st.sub.delivered >= events)
			return;
		sleep_ms(2);
	} while (now_ms() < end);
	cr_assert_fail("the feeder did not read %llu events",
		       (unsigned long long)events);
}

/* Wait until the feeder has read everything published so far. Events
 * published before it subscribed are folded into its first snapshot, so
 * how many it delivers depends on timing; its lag does not. */
static void
wait_caught_up(kf_controller *c)
{
	kf_ctl_stats st;
	int64_t end = now_ms() + 5000;

	do {
		kf_controller_stats(c, &st);
		if (st.sub.delivered >= 2 && st.sub.lag == 0)
			return;
		sleep_ms(2);
	} while (now_ms() < end);
	cr_assert_fail("the feeder is still %llu events behind",
		       (unsigned long long)st.sub.lag);
}

Test(controller, a_ref_is_queued_once_and_rerun_once_if_changed_meanwhile)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;
	kf_ctl_stats st;

	fk_first_list(f, 0);
	r->use_gate = true;
	pthread_mutex_lock(&r->gate);
	c = ctl_new(f, r, 1, false);
	cr_assert_eq(kf_controller_start(c), KF_OK);
	fk_apply(f, 0);
	cr_assert(wait_calls(r, 0, 1, 5000));
	/* The only worker is blocked in k0's reconcile. */
	for (int i = 0; i < 5; i++)
		fk_apply(f, 0);
	for (int i = 0; i < 3; i++)
		fk_apply(f, 1);
	wait_fed(c, 2 + 9); /* INIT, INIT_DONE and nine APPLY */
	kf_controller_stats(c, &st);
	cr_assert_eq(st.queued, 1, "k1 once; k0 is marked, not queued");
	pthread_mutex_unlock(&r->gate);
	cr_assert(wait_calls(r, 0, 2, 5000));
	cr_assert(wait_calls(r, 1, 1, 5000));
	sleep_ms(100);
	cr_assert_eq(calls(r, 0), 2, "five events during a run: one re-run");
	cr_assert_eq(calls(r, 1), 1, "three queued events: one run");
	kf_controller_stats(c, &st);
	cr_assert_eq(st.reconciles, 3);
	cr_assert_eq(st.queued, 0);
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, many_workers_never_hold_the_same_ref_at_once)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;

	fk_first_list(f, 0);
	r->sleep_ms = 3;
	c = ctl_new(f, r, 4, false);
	kf_controller_start(c);
	for (int i = 0; i < 200; i++) {
		fk_apply(f, (size_t)i % 2);
		if (i % 10 == 0)
			sleep_ms(1);
	}
	wait_caught_up(c);
	sleep_ms(100);
	cr_assert_geq(calls(r, 0), 2);
	cr_assert_eq(r->max_inflight, 1);
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, reconcile_can_ask_for_a_requeue_after_a_delay)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;

	fk_first_list(f, 0);
	r->requeue_once = 80;
	c = ctl_new(f, r, 1, false);
	kf_controller_start(c);
	fk_apply(f, 2);
	cr_assert(wait_calls(r, 2, 2, 5000));
	cr_assert_geq(r->at[2][1] - r->at[2][0], 75);
	sleep_ms(150);
	cr_assert_eq(calls(r, 2), 2, "requeued once only");
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, failures_back_off_exponentially_per_key)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;
	int64_t want[] = {20, 40, 80, 100};
	kf_ctl_stats st;

	fk_first_list(f, 0);
	r->fail_first[3] = 4;
	c = ctl_new(f, r, 2, true);
	kf_controller_start(c);
	fk_apply(f, 3);
	fk_apply(f, 4); /* another key is not held up */
	cr_assert(wait_calls(r, 4, 1, 5000));
	cr_assert(wait_calls(r, 3, 5, 5000));
	sleep_ms(150);
	cr_assert_eq(calls(r, 3), 5, "success ends the retries");
	cr_assert_eq(r->npol, 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(r->pol_fail[i], (uint32_t)i + 1);
		cr_assert_eq(r->pol_backoff[i], want[i], "try %d: %lld", i,
			     (long long)r->pol_backoff[i]);
		cr_assert_geq(r->at[3][i + 1] - r->at[3][i], want[i] - 5);
	}
	kf_controller_stats(c, &st);
	cr_assert_eq(st.errors, 4);
	cr_assert_eq(st.requeues, 4);
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, error_policy_can_drop_a_ref)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;

	fk_first_list(f, 0);
	r->fail_first[5] = 100;
	r->pol_return = -1;
	c = ctl_new(f, r, 1, true);
	kf_controller_start(c);
	fk_apply(f, 5);
	cr_assert(wait_calls(r, 5, 1, 5000));
	sleep_ms(150);
	cr_assert_eq(calls(r, 5), 1);
	fk_apply(f, 5); /* a new event queues it again */
	cr_assert(wait_calls(r, 5, 2, 5000));
	cr_assert_eq(r->pol_fail[1], 1, "dropping reset the failure count");
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, reconcile_gets_null_once_the_object_is_gone)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;

	fk_first_list(f, 2); /* k0, k1 in the initial frame */
	c = ctl_new(f, r, 2, false);
	kf_controller_start(c);
	cr_assert(wait_calls(r, 0, 1, 5000), "initial objects reconcile");
	cr_assert(wait_calls(r, 1, 1, 5000));
	cr_assert_eq(r->nulls[1], 0);
	fk_delete(f, 1);
	cr_assert(wait_calls(r, 1, 2, 5000));
	cr_assert_eq(r->nulls[1], 1);
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, stop_lets_running_reconciles_finish_and_starts_no_more)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;
	int before;

	fk_first_list(f, 0);
	r->sleep_ms = 150;
	c = ctl_new(f, r, 1, false);
	kf_controller_start(c);
	fk_apply(f, 6);
	fk_apply(f, 7);
	cr_assert(wait_calls(r, 6, 1, 5000));
	atomic_store(&r->stopping, true);
	kf_controller_stop(c);
	cr_assert(r->ended_after_stop, "stop returned before the run ended");
	pthread_mutex_lock(&r->mu);
	cr_assert_eq(r->inflight[6], 0);
	before = r->calls[7];
	pthread_mutex_unlock(&r->mu);
	cr_assert_eq(before, 0, "k7 was still queued: not started");
	sleep_ms(200);
	cr_assert_eq(calls(r, 7), 0);
	cr_assert_eq(kf_controller_enqueue(
			 c, &(kf_objref){"ConfigMap", "ns", "k7", NULL, NULL}),
		     KF_ECLOSED);
	kf_controller_stop(c); /* idempotent */
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

Test(controller, two_controllers_share_one_store)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *a = rec_new(), *b = rec_new();
	kf_controller *ca, *cb;

	fk_first_list(f, 3);
	ca = ctl_new(f, a, 1, false);
	cb = ctl_new(f, b, 2, false);
	kf_controller_start(ca);
	kf_controller_start(cb);
	for (size_t id = 0; id < 3; id++) {
		cr_assert(wait_calls(a, id, 1, 5000));
		cr_assert(wait_calls(b, id, 1, 5000));
	}
	kf_controller_free(ca); /* b goes on */
	fk_apply(f, 4);
	cr_assert(wait_calls(b, 4, 1, 5000));
	cr_assert_eq(calls(a, 4), 0);
	kf_controller_enqueue(
	    cb, &(kf_objref){"ConfigMap", "ns", "k5", NULL, NULL});
	cr_assert(wait_calls(b, 5, 1, 5000));
	cr_assert_eq(b->nulls[5], 1, "enqueued by hand, not in the store");
	kf_controller_free(cb);
	fk_unref(f);
	free(a);
	free(b);
}

/* Found by a newcomer's attack: now + requeue_ms overflowed (UBSan abort;
 * in a release build the due time wrapped into the past and the ref was
 * reconciled again at once, in a busy loop). */
Test(controller, a_huge_requeue_delay_is_not_a_busy_loop)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;
	kf_ctl_stats st;

	fk_first_list(f, 0);
	r->requeue_once = INT64_MAX;
	r->fail_first[2] = 1;
	c = ctl_new(f, r, 1, true);
	r->pol_return = INT64_MAX; /* the error policy asks for forever */
	cr_assert_eq(kf_controller_start(c), KF_OK);
	fk_apply(f, 1);
	fk_apply(f, 2);
	cr_assert(wait_calls(r, 1, 1, 5000));
	cr_assert(wait_calls(r, 2, 1, 5000));
	sleep_ms(200);
	cr_assert_eq(calls(r, 1), 1);
	cr_assert_eq(calls(r, 2), 1);
	kf_controller_stats(c, &st);
	cr_assert_eq(st.queued, 2, "both wait, delayed");
	fk_apply(f, 1); /* an event still runs it at once */
	cr_assert(wait_calls(r, 1, 2, 5000));
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

/* Found by a newcomer's attack: start after stop started threads that no
 * stop or free ever joined (free then freed what they still used). */
Test(controller, start_after_stop_is_refused)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	kf_controller *c;

	fk_first_list(f, 0);
	c = ctl_new(f, r, 2, false);
	kf_controller_stop(c);
	cr_assert_eq(kf_controller_start(c), KF_ECLOSED);
	kf_controller_stop(c);
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

/* Found by a newcomer's attack: a thread that could not start left the
 * controller "started" with threads never created, which stop then
 * joined. Now start undoes what it started and may be tried again. */
Test(controller, a_failed_start_can_be_retried)
{
	struct fake *f = fk_alloc(1024, NK);
	struct rec *r = rec_new();
	pthread_attr_t def, huge;
	kf_controller *c;

	fk_first_list(f, 0);
	c = ctl_new(f, r, 3, false);
	cr_assert_eq(pthread_getattr_default_np(&def), 0);
	pthread_attr_init(&huge);
	/* No thread can get a 16 TiB stack. */
	pthread_attr_setstacksize(&huge, (size_t)1 << 44);
	cr_assert_eq(pthread_setattr_default_np(&huge), 0);
	cr_assert_eq(kf_controller_start(c), KF_EIO);
	cr_assert_eq(pthread_setattr_default_np(&def), 0);
	cr_assert_eq(kf_controller_start(c), KF_OK);
	fk_apply(f, 1);
	cr_assert(wait_calls(r, 1, 1, 5000));
	kf_controller_free(c);
	pthread_attr_destroy(&huge);
	pthread_attr_destroy(&def);
	fk_unref(f);
	free(r);
}

struct self_stop {
	kf_controller *c;
	_Atomic bool stop_returned;
	_Atomic bool done;
};

static kf_err
stop_inside(void *arg, const kf_objref *ref, kf_object *obj,
	    int64_t *requeue_ms)
{
	struct self_stop *ss = arg;

	kf_controller_stop(ss->c);
	kf_controller_stop(ss->c); /* twice is fine */
	atomic_store(&ss->stop_returned, true);
	sleep_ms(100); /* the caller frees meanwhile */
	atomic_store(&ss->done, true);
	return KF_OK;
}

/* Found by a newcomer's attack: stop from inside reconcile tried to join
 * its own thread and marked the controller stopped, so a free right after
 * it freed the controller while that worker still ran. */
Test(controller, stop_from_a_callback_does_not_wait_and_free_joins)
{
	struct fake *f = fk_alloc(1024, NK);
	struct self_stop ss = {0};
	kf_controller_opts o = {
	    .name = "self-stop",
	    .workers = 2,
	    .reconcile = stop_inside,
	    .arg = &ss,
	};
	kf_objref ref = {.kind = "ConfigMap", .namespace_ = "ns", .name = "k1"};
	int64_t end = now_ms() + 5000;

	fk_first_list(f, 0);
	cr_assert_eq(kfi_controller_alloc(fk_subscribe(f, NULL), &o, &ss.c),
		     KF_OK);
	cr_assert_eq(kf_controller_start(ss.c), KF_OK);
	fk_apply(f, 1);
	while (!atomic_load(&ss.stop_returned) && now_ms() < end)
		sleep_ms(1);
	cr_assert(atomic_load(&ss.stop_returned), "stop did not return");
	cr_assert_eq(kf_controller_enqueue(ss.c, &ref), KF_ECLOSED);
	kf_controller_free(ss.c); /* waits for the callback */
	cr_assert(atomic_load(&ss.done));
	fk_unref(f);
}

/* Deletes made while the subscription lagged never arrive as DELETE
 * events: the re-sync frame after the lag lists only what exists. The
 * feeder queues every object it knew that the frame left out, so each
 * still gets its reconcile with NULL. The feeder is held inside the
 * re-sync's snapshot while k0..k3 are deleted. */
Test(controller, deletes_missed_during_a_lag_are_reconciled_as_gone)
{
	struct fake *f = fk_alloc(16, NK);
	struct rec *r = rec_new();
	pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
	kf_controller *c;
	kf_ctl_stats st;
	int64_t end;

	fk_first_list(f, 4); /* k0..k3 */
	c = ctl_new(f, r, 1, false);
	kf_controller_start(c);
	for (size_t id = 0; id < 4; id++)
		cr_assert(wait_calls(r, id, 1, 5000), "k%zu", id);
	wait_caught_up(c);

	/* Publish past the ring's 16 slots until the feeder lags and is
	 * held in its re-sync snapshot. */
	pthread_mutex_lock(&gate);
	atomic_store(&f->snap_gate, &gate);
	for (end = now_ms() + 5000;
	     atomic_load(&f->snap_waiting) == 0 && now_ms() < end;)
		for (int i = 0; i < 64; i++)
			fk_apply(f, 7);
	cr_assert_gt(atomic_load(&f->snap_waiting), 0,
		     "the feeder never "
		     "lagged");
	for (size_t id = 0; id < 4; id++)
		fk_delete(f, id);
	atomic_store(&f->snap_gate, NULL);
	pthread_mutex_unlock(&gate);
	wait_caught_up(c);
	kf_controller_stats(c, &st);
	cr_assert_gt(st.sub.lagged, 0);

	for (size_t id = 0; id < 4; id++) {
		end = now_ms() + 5000;
		while (now_ms() < end) {
			pthread_mutex_lock(&r->mu);
			if (r->nulls[id] > 0) {
				pthread_mutex_unlock(&r->mu);
				break;
			}
			pthread_mutex_unlock(&r->mu);
			sleep_ms(2);
		}
		cr_assert_eq(r->nulls[id], 1, "k%zu: %d reconciles saw it gone",
			     id, r->nulls[id]);
	}
	kf_controller_free(c);
	fk_unref(f);
	free(r);
}

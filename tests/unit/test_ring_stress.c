/* Stress: a million events through a small ring while reader threads
 * subscribe, read fast or slowly, block or not, and close at random. At
 * the end every live subscriber's view equals the store, and every
 * stream obeyed the rules checked by view_apply (no DELETE of an unknown
 * key, resourceVersions strictly rising on APPLY, frames well formed).
 * Sanitizer builds run a tenth of the events. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <time.h>

#include "ring_fake.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STRESS_EVENTS 100000
#else
#define STRESS_EVENTS 1000000
#endif
#define STRESS_KEYS    256
#define STRESS_READERS 4

struct stress_reader {
	struct fake *f;
	_Atomic bool *done;
	unsigned seed;
	uint64_t subs, closes, events, lagged, missed;
};

static void *
stress_reader_main(void *p)
{
	struct stress_reader *a = p;
	struct view *v = calloc(1, sizeof(*v));
	kf_subscriber *s = NULL;
	kf_event ev;

	/* Ends when the writer is done. */
	while (!atomic_load(a->done)) {
		int r = rand_r(&a->seed) % 100;

		if (s == NULL) {
			kf_sub_opts o = {0};

			if (r < 30) {
				o.policy = KF_SUB_BLOCK;
				o.block_timeout_ms = 1 + r % 5;
			}
			s = fk_subscribe(a->f, &o);
			memset(v, 0, sizeof(*v));
			a->subs++;
			continue;
		}
		if (r < 2) {
			a->lagged += v->lagged;
			a->missed += v->missed;
			kf_subscriber_free(s);
			s = NULL;
			a->closes++;
			continue;
		}
		if (r < 12) {
			struct timespec ts = {0, (r + 1) * 100000};

			nanosleep(&ts, NULL); /* a slow reader */
		}
		for (int k = rand_r(&a->seed) % 2000; k > 0; k--) {
			kf_err err = kf_subscriber_next(s, 5, &ev);

			if (err == KF_ETIMEDOUT)
				break;
			cr_assert_eq(err, KF_OK, "%s", kf_strerror(err));
			view_apply(v, &ev);
			a->events++;
		}
	}
	if (s == NULL)
		s = fk_subscribe(a->f, NULL);
	view_drain(v, s);
	view_assert_equals(v, a->f);
	a->lagged += v->lagged;
	a->missed += v->missed;
	kf_subscriber_free(s);
	free(v);
	return NULL;
}

Test(ring_stress, a_million_events_random_subscribers_views_converge)
{
	struct fake *f = fk_alloc(256, STRESS_KEYS);
	struct stress_reader rd[STRESS_READERS] = {0};
	pthread_t t[STRESS_READERS];
	_Atomic bool done = false;
	unsigned seed = 1;
	struct kfi_ring_stats rs;
	uint64_t subs = 0, events = 0, lagged = 0, missed = 0;

	fk_first_list(f, STRESS_KEYS / 2);
	for (int i = 0; i < STRESS_READERS; i++) {
		rd[i] = (struct stress_reader){
		    .f = f, .done = &done, .seed = 100 + (unsigned)i};
		pthread_create(&t[i], NULL, stress_reader_main, &rd[i]);
	}
	for (int i = 0; i < STRESS_EVENTS; i++) {
		size_t id = (size_t)rand_r(&seed) % STRESS_KEYS;

		if (rand_r(&seed) % 5 == 0)
			fk_delete(f, id);
		else
			fk_apply(f, id);
	}
	kfi_ring_stats(f->ring, &rs);
	cr_assert_leq(rs.held, 256 + 256 + STRESS_READERS, "ring holds %llu",
		      (unsigned long long)rs.held);
	atomic_store(&done, true);
	for (int i = 0; i < STRESS_READERS; i++) {
		pthread_join(t[i], NULL);
		subs += rd[i].subs;
		events += rd[i].events;
		lagged += rd[i].lagged;
		missed += rd[i].missed;
	}
	cr_log_info("%d events; %llu subscriptions, %llu events read, "
		    "%llu lags (%llu missed), %llu block waits, %llu expired",
		    STRESS_EVENTS, (unsigned long long)subs,
		    (unsigned long long)events, (unsigned long long)lagged,
		    (unsigned long long)missed,
		    (unsigned long long)rs.block_waits,
		    (unsigned long long)rs.block_expiry);
	cr_assert_gt(subs, STRESS_READERS, "subscribed and closed meanwhile");
	cr_assert_gt(events, 0);
	fk_unref(f);
}

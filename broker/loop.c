/*
 * kf_loop: one thread driving many watchers through curl's multi interface.
 *
 * Theory. Other threads never touch the multi handle or a watcher's
 * protocol state; they only queue requests under the loop's mutex (add a
 * watcher, stop a watcher, quit) and wake the thread with
 * curl_multi_wakeup(). Each turn the thread: takes the queued work, lets go
 * of watchers asked to stop (removing their handles, so nothing stays in
 * flight, and signalling the stoppers), runs the transfers, hands finished
 * ones to their watchers, starts requests that are due and drops those
 * past their idle deadline, then sleeps in curl_multi_poll() until the
 * nearest deadline or a socket or a wake-up.
 *
 * Bound per turn: each watcher is ticked once and starts at most one
 * request; curl_multi_perform() moves whatever bytes are ready. A stop
 * waits at most one turn, whose poll is cut short by the wake-up.
 */
#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "watcher_int.h"

#define LOOP_MAX_SLEEP_MS 1000

struct kf_loop {
	CURLM *multi;
	pthread_t thread;
	bool running;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	kf_watcher *pending; /* added, not yet seen by the thread */
	kf_watcher *active;  /* the thread's watchers */
	bool quit;
	bool stops; /* some watcher wants to stop */
};

static pthread_once_t loop_curl_once = PTHREAD_ONCE_INIT;

static void
loop_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

kf_err
kf_loop_alloc(kf_loop **out)
{
	kf_loop *l;

	pthread_once(&loop_curl_once, loop_curl_init);
	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return KF_ENOMEM;
	l->multi = curl_multi_init();
	if (l->multi == NULL) {
		free(l);
		return KF_ENOMEM;
	}
	curl_multi_setopt(l->multi, CURLMOPT_PIPELINING,
			  (long)CURLPIPE_MULTIPLEX);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	*out = l;
	return KF_OK;
}

static void
loop_release(kf_loop *l, kf_watcher *w)
{
	struct kfi_watcher_link *k = kfi_watcher_link(w);

	kfi_watcher_release(w, l->multi);
	pthread_mutex_lock(&l->mu);
	k->released = true;
	__atomic_store_n(&k->loop, NULL, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Take queued watchers and let go of those that want to stop. */
static void
loop_take(kf_loop *l)
{
	kf_watcher *w, *next, **pp, *gone = NULL;
	struct kfi_watcher_link *k;

	pthread_mutex_lock(&l->mu);
	for (w = l->pending; w != NULL; w = next) {
		k = kfi_watcher_link(w);
		next = k->next;
		k->next = l->active;
		l->active = w;
	}
	l->pending = NULL;
	if (l->stops || l->quit) {
		l->stops = false;
		for (pp = &l->active; *pp != NULL;) {
			k = kfi_watcher_link(*pp);
			if (k->want_stop || l->quit) {
				w = *pp;
				*pp = k->next;
				k->next = gone;
				gone = w;
			} else {
				pp = &k->next;
			}
		}
	}
	pthread_mutex_unlock(&l->mu);
	for (w = gone; w != NULL; w = next) {
		next = kfi_watcher_link(w)->next;
		loop_release(l, w);
	}
}

static void
loop_messages(kf_loop *l)
{
	CURLMsg *msg;
	int left;
	kf_watcher *w;

	/* Bounded by the transfers that finished in this turn. */
	while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		w = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&w);
		if (w != NULL)
			kfi_watcher_done(w, l->multi, msg->data.result,
					 kfi_now_ms());
	}
}

static void *
loop_main(void *arg)
{
	kf_loop *l = arg;
	int64_t now, next, d;
	kf_watcher *w;
	int running;
	bool quit;

	for (;;) {
		loop_take(l);
		pthread_mutex_lock(&l->mu);
		quit = l->quit;
		pthread_mutex_unlock(&l->mu);
		if (quit)
			break;
		curl_multi_perform(l->multi, &running);
		loop_messages(l);
		now = kfi_now_ms();
		next = now + LOOP_MAX_SLEEP_MS;
		for (w = l->active; w != NULL; w = kfi_watcher_link(w)->next) {
			if (__atomic_load_n(&kfi_watcher_link(w)->want_stop,
					    __ATOMIC_ACQUIRE))
				continue;
			kfi_watcher_tick(w, l->multi, now);
			d = kfi_watcher_deadline(w);
			if (d < next)
				next = d;
		}
		curl_multi_perform(l->multi, &running);
		loop_messages(l);
		d = next - kfi_now_ms();
		if (d < 0)
			d = 0;
		curl_multi_poll(l->multi, NULL, 0, (int)d, NULL);
	}
	return NULL;
}

kf_err
kf_loop_start(kf_loop *l)
{
	if (l->running)
		return KF_EINVAL;
	l->quit = false;
	if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
		return KF_EIO;
	l->running = true;
	return KF_OK;
}

void
kf_loop_stop(kf_loop *l)
{
	if (l == NULL || !l->running)
		return;
	pthread_mutex_lock(&l->mu);
	l->quit = true;
	pthread_mutex_unlock(&l->mu);
	curl_multi_wakeup(l->multi);
	pthread_join(l->thread, NULL);
	l->running = false;
}

void
kf_loop_free(kf_loop *l)
{
	kf_watcher *w, *next;

	if (l == NULL)
		return;
	kf_loop_stop(l);
	/* Watchers added but never run (loop never started). */
	loop_take(l);
	for (w = l->active; w != NULL; w = next) {
		next = kfi_watcher_link(w)->next;
		loop_release(l, w);
	}
	curl_multi_cleanup(l->multi);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

kf_err
kfi_loop_add(kf_loop *l, kf_watcher *w)
{
	struct kfi_watcher_link *k = kfi_watcher_link(w);

	pthread_mutex_lock(&l->mu);
	__atomic_store_n(&k->loop, l, __ATOMIC_RELEASE);
	k->started = true;
	k->next = l->pending;
	l->pending = w;
	pthread_mutex_unlock(&l->mu);
	curl_multi_wakeup(l->multi);
	return KF_OK;
}

bool
kfi_loop_on_thread(kf_loop *l)
{
	return l->running && pthread_equal(pthread_self(), l->thread);
}

void
kfi_loop_stop_watcher(kf_loop *l, kf_watcher *w)
{
	struct kfi_watcher_link *k = kfi_watcher_link(w);

	pthread_mutex_lock(&l->mu);
	if (k->released) {
		pthread_mutex_unlock(&l->mu);
		return;
	}
	__atomic_store_n(&k->want_stop, true, __ATOMIC_RELEASE);
	l->stops = true;
	if (!l->running) { /* no thread: let go of it here */
		kf_watcher **pp;

		for (pp = &l->pending; *pp != NULL && *pp != w;
		     pp = &kfi_watcher_link(*pp)->next)
			;
		if (*pp == NULL)
			for (pp = &l->active; *pp != NULL && *pp != w;
			     pp = &kfi_watcher_link(*pp)->next)
				;
		if (*pp != NULL)
			*pp = k->next;
		k->released = true;
		__atomic_store_n(&k->loop, NULL, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&l->mu);
		kfi_watcher_release(w, NULL);
		return;
	}
	pthread_mutex_unlock(&l->mu);
	curl_multi_wakeup(l->multi);
	if (kfi_loop_on_thread(l))
		return;
	pthread_mutex_lock(&l->mu);
	while (!k->released)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

/*
 * Internal: the watcher as the loop sees it. All kfi_watcher_* calls run on
 * the loop's thread; the loop owns the multi handle and the lists of
 * watchers, the watcher owns its easy handle and protocol state.
 */
#ifndef KF_BROKER_WATCHER_INT_H
#define KF_BROKER_WATCHER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "kubefan/watcher.h"
#include "mono.h"

/* Start the next request when it is due (adding its handle to m), or drop
 * one that passed its idle deadline. */
void kfi_watcher_tick(kf_watcher *w, CURLM *m, int64_t now);

/* When tick next has something to do (ms, monotonic). */
int64_t kfi_watcher_deadline(kf_watcher *w);

/* The transfer of w's handle ended with rc (from CURLMSG_DONE). */
void kfi_watcher_done(kf_watcher *w, CURLM *m, CURLcode rc, int64_t now);

/* Abort whatever is in flight and drop gathered state (stop). */
void kfi_watcher_release(kf_watcher *w, CURLM *m);

/* Loop bookkeeping kept on the watcher, guarded by the loop's mutex. */
struct kfi_watcher_link {
	kf_loop *loop;
	kf_watcher *next; /* on the loop's pending or active list */
	bool want_stop;	  /* read without the mutex by the loop thread */
	bool released;	  /* the loop has let go: stop may return */
	bool started;
};

struct kfi_watcher_link *kfi_watcher_link(kf_watcher *w);

/* Called by a watcher handler wanting to stop itself: true when on the
 * loop thread of l. */
bool kfi_loop_on_thread(kf_loop *l);

/* Ask the loop to stop w and wait for it (unless on the loop thread). */
void kfi_loop_stop_watcher(kf_loop *l, kf_watcher *w);

/* Hand w to the loop. */
kf_err kfi_loop_add(kf_loop *l, kf_watcher *w);

#endif

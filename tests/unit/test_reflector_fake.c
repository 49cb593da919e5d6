/*
 * The reflector (watcher + store writer) against the fake API server: the
 * store's side of K8 (re-list differences), K10 (stale readiness) and K11
 * (not ready means not ready).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fakeserver.h"
#include "kubefan/reflector.h"
#include "kubefan/subscriber.h"
#include "watcher_int.h"

struct rfx {
	struct fs_server *fs;
	kf_conn *conn;
	kf_loop *loop;
	kf_writer *writer;
	kf_store *store;
	kf_reflector *r;
};

static void
rfx_start(struct rfx *f, const char *transcript, unsigned idle_ms)
{
	char path[1024];
	kf_watcher_opts o;
	kf_watcher *w;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/transcripts/%s", KF_TEST_DATA_DIR,
		 transcript);
	f->fs = fs_start_file(path);
	cr_assert_not_null(f->fs);
	cr_assert_eq(
	    kf_conn_explicit(fs_url(f->fs), NULL, NULL, false, &f->conn),
	    KF_OK);
	cr_assert_eq(kf_store_shared_alloc(64, &f->writer, &f->store), KF_OK);
	kf_watcher_opts_init(&o);
	o.resource = "configmaps";
	o.namespace_ = "ns";
	o.list_mode = KF_LIST_PAGED;
	o.backoff_initial_ms = 40;
	o.backoff_max_ms = 200;
	o.idle_ms = idle_ms;
	cr_assert_eq(kf_watcher_alloc(f->conn, &o, &w), KF_OK);
	cr_assert_eq(kf_reflector_alloc(w, f->writer, &f->r), KF_OK);
	cr_assert_eq(kf_loop_alloc(&f->loop), KF_OK);
	cr_assert_eq(kf_loop_start(f->loop), KF_OK);
}

static void
rfx_stop(struct rfx *f)
{
	kf_reflector_free(f->r);
	kf_loop_free(f->loop);
	kf_store_free(f->store);
	kf_writer_free(f->writer);
	kf_conn_free(f->conn);
	fs_stop(f->fs);
}

static kf_objref
ref(const char *name)
{
	kf_objref r = {.kind = "ConfigMap", .namespace_ = "ns", .name = name};

	return r;
}

/* The next event's type and object name, "" when none in time. */
static kf_event_type
next_ev(kf_subscriber *s, int64_t ms, char *name, size_t len, char *rv,
	unsigned *flags)
{
	kf_event ev;

	name[0] = '\0';
	if (kf_subscriber_next(s, ms, &ev) != KF_OK)
		return 0;
	if (ev.obj != NULL) {
		snprintf(name, len, "%s", kf_object_name(ev.obj));
		if (rv != NULL)
			snprintf(rv, 32, "%s",
				 kf_object_resource_version(ev.obj));
	}
	if (flags != NULL)
		*flags = ev.flags;
	return ev.type;
}

Test(k8, a_relist_sends_only_its_differences_and_swaps_once)
{
	struct rfx f;
	kf_subscriber *sub;
	char name[64], rv[32];
	unsigned flags;
	bool got_a = false, got_b = false;
	kf_object *o;

	rfx_start(&f, "k8_relist_differences.txt", 5000);
	cr_assert_eq(kf_store_subscribe(f.store, NULL, &sub), KF_OK);
	cr_assert_eq(kf_reflector_start(f.r, f.loop), KF_OK);
	cr_assert_eq(next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
			     KF_EV_INIT_APPLY);
	cr_assert_eq(next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT_DONE);
	for (int i = 0; i < 2; i++) {
		kf_event_type t =
		    next_ev(sub, 3000, name, sizeof(name), rv, &flags);

		if (t == KF_EV_APPLY && strcmp(name, "a") == 0) {
			cr_assert_str_eq(rv, "200");
			got_a = true;
		} else if (t == KF_EV_DELETE && strcmp(name, "b") == 0) {
			cr_assert_str_eq(rv, "11"); /* b's last known state */
			cr_assert(flags & KF_EVF_RELIST);
			got_b = true;
		} else {
			cr_assert_fail("unexpected event %d %s", t, name);
		}
	}
	cr_assert(got_a && got_b);
	/* Nothing for c, which did not change. */
	cr_assert_eq(next_ev(sub, 300, name, sizeof(name), NULL, NULL), 0);
	cr_assert_eq(kf_store_len(f.store), 2);
	cr_assert_eq(kf_store_get(f.store,
				  &(kf_objref){.kind = "ConfigMap",
					       .namespace_ = "ns",
					       .name = "b"},
				  &o),
		     KF_ENOTFOUND);
	cr_assert_eq(kf_store_get(f.store,
				  &(kf_objref){.kind = "ConfigMap",
					       .namespace_ = "ns",
					       .name = "a"},
				  &o),
		     KF_OK);
	cr_assert_str_eq(kf_object_resource_version(o), "200");
	kf_object_unref(o);
	kf_subscriber_free(sub);
	rfx_stop(&f);
}

Test(k8, a_relist_that_changes_nothing_sends_nothing)
{
	struct rfx f;
	kf_subscriber *sub;
	char name[64];

	rfx_start(&f, "k7_resume_from_list_version.txt", 5000);
	cr_assert_eq(kf_store_subscribe(f.store, NULL, &sub), KF_OK);
	cr_assert_eq(kf_reflector_start(f.r, f.loop), KF_OK);
	cr_assert_eq(next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT);
	next_ev(sub, 3000, name, sizeof(name), NULL, NULL);
	next_ev(sub, 3000, name, sizeof(name), NULL, NULL);
	cr_assert_eq(next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT_DONE);
	cr_assert_geq(fs_wait_requests(f.fs, 3, 3000), 3);
	cr_assert_eq(next_ev(sub, 300, name, sizeof(name), NULL, NULL), 0);
	kf_subscriber_free(sub);
	rfx_stop(&f);
}

Test(k10, readiness_is_stale_while_the_watch_is_half_open)
{
	struct rfx f;
	char why[256] = "";
	bool saw_stale = false;

	rfx_start(&f, "k10_half_open.txt", 700);
	cr_assert_eq(kf_reflector_start(f.r, f.loop), KF_OK);
	cr_assert_eq(kf_store_wait_until_ready(f.store, 3000), KF_OK);
	for (int i = 0; i < 300 && !saw_stale; i++) {
		if (kf_store_readiness(f.store, why, sizeof(why)) ==
		    KF_READINESS_STALE)
			saw_stale = true;
		else
			usleep(5000);
	}
	cr_assert(saw_stale);
	cr_assert(strstr(why, "no data") != NULL, "%s", why);
	cr_assert_not(kf_store_is_ready(f.store));
	/* The resumed watch's bookmark: ready again. */
	cr_assert_eq(kf_store_wait_until_ready(f.store, 3000), KF_OK);
	cr_assert_eq(kf_store_readiness(f.store, why, sizeof(why)),
		     KF_READINESS_READY);
	rfx_stop(&f);
}

Test(k11, not_ready_means_not_ready)
{
	struct rfx f;
	kf_subscriber *early, *late;
	kf_object *o;
	kf_objref a = ref("a");
	char name[64];
	int64_t t0;

	rfx_start(&f, "k11_slow_list.txt", 5000);
	cr_assert_eq(kf_store_subscribe(f.store, NULL, &early), KF_OK);
	cr_assert_eq(kf_reflector_start(f.r, f.loop), KF_OK);
	t0 = kfi_now_ms();
	usleep(500000);
	cr_assert_not(kf_store_is_ready(f.store));
	cr_assert_eq(kf_store_get(f.store, &a, &o), KF_ENOTREADY);
	cr_assert_eq(kf_store_wait_until_ready(f.store, 200), KF_ETIMEDOUT);
	cr_assert_eq(kf_store_subscribe(f.store, NULL, &late), KF_OK);
	cr_assert_eq(kf_store_readiness(f.store, NULL, 0),
		     KF_READINESS_NOT_SYNCED);
	/* Both open the frame at once, then wait for the list. */
	cr_assert_eq(next_ev(early, 100, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT);
	cr_assert_eq(next_ev(late, 100, name, sizeof(name), NULL, NULL),
		     KF_EV_INIT);
	cr_assert_eq(next_ev(late, 200, name, sizeof(name), NULL, NULL), 0);
	cr_assert_eq(kf_store_wait_until_ready(f.store, 5000), KF_OK);
	cr_assert_geq(kfi_now_ms() - t0, 1900);
	cr_assert_eq(kf_store_len(f.store), 2); /* all at once */
	cr_assert_eq(kf_store_get(f.store, &a, &o), KF_OK);
	kf_object_unref(o);
	/* Each gets the state, one INIT_DONE, then live events: c exactly
	 * once, in the frame (if it was applied before the subscriber read
	 * the frame's rest) or as the first live event. The early one reads
	 * its frame before c can arrive, so c is live for it. */
	for (int s = 0; s < 2; s++) {
		kf_subscriber *sub = s ? late : early;
		char frame[256] = "";
		kf_event_type t;

		while ((t = next_ev(sub, 1000, name, sizeof(name), NULL,
				    NULL)) == KF_EV_INIT_APPLY) {
			strcat(frame, name);
			strcat(frame, " ");
		}
		cr_assert_eq(t, KF_EV_INIT_DONE, "sub %d: %d", s, t);
		cr_assert(strstr(frame, "a ") && strstr(frame, "b "), "%s",
			  frame);
		if (strlen(frame) == 4) {
			cr_assert_eq(
			    next_ev(sub, 3000, name, sizeof(name), NULL, NULL),
			    KF_EV_APPLY);
			cr_assert_str_eq(name, "c");
		} else {
			cr_assert_eq(s, 1, "early frame: %s", frame);
			cr_assert(strlen(frame) == 6 && strstr(frame, "c "),
				  "%s", frame);
		}
		cr_assert_eq(next_ev(sub, 200, name, sizeof(name), NULL, NULL),
			     0);
	}
	kf_subscriber_free(early);
	kf_subscriber_free(late);
	rfx_stop(&f);
}

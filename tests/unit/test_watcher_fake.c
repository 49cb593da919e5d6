/*
 * The watcher against the scripted fake API server: the field cases K1-K11
 * of CASES.md (the watcher's part; the store's part of K8 and K11 is in
 * test_reflector_fake.c), streaming lists, many watches on one loop, and
 * stopping from another thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fakeserver.h"
#include "kubefan/log.h"
#include "kubefan/watcher.h"
#include "watcher_int.h"

/* ---- recording what the watcher hands out ---- */

struct rec_ev {
	kf_event_type type;
	unsigned flags;
	char name[64];
	char rv[32];
	char *json;
	size_t len;
	int64_t at;
};

struct rec {
	pthread_mutex_t mu;
	struct rec_ev ev[64];
	int n;
	int health_n;
	bool healthy[16];
	char reason[16][512];
	int64_t health_at[16];
};

static void
rec_event(void *arg, const kf_event *e)
{
	struct rec *r = arg;
	struct rec_ev *x;

	pthread_mutex_lock(&r->mu);
	cr_assert_lt(r->n, 64, "too many events");
	x = &r->ev[r->n++];
	x->type = e->type;
	x->flags = e->flags;
	x->at = kfi_now_ms();
	if (e->obj != NULL) {
		const char *j = kf_object_json(e->obj, &x->len);

		snprintf(x->name, sizeof(x->name), "%s",
			 kf_object_name(e->obj));
		snprintf(x->rv, sizeof(x->rv), "%s",
			 kf_object_resource_version(e->obj));
		x->json = malloc(x->len);
		memcpy(x->json, j, x->len);
	}
	pthread_mutex_unlock(&r->mu);
}

static void
rec_health(void *arg, bool healthy, const char *reason)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->health_n < 16) {
		r->healthy[r->health_n] = healthy;
		snprintf(r->reason[r->health_n], sizeof(r->reason[0]), "%s",
			 reason);
		r->health_at[r->health_n] = kfi_now_ms();
		__atomic_store_n(&r->health_n, r->health_n + 1,
				 __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&r->mu);
}

static int
rec_count(struct rec *r)
{
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static bool
rec_wait(struct rec *r, int n, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 5) {
		if (rec_count(r) >= n)
			return true;
		usleep(5000);
	}
	return rec_count(r) >= n;
}

/* "I a I a D" style summary: the sequence of types and names. */
static void
rec_summary(struct rec *r, char *buf, size_t len)
{
	static const char *const t[] = {"?", "I", "IA", "ID", "A", "D", "L"};
	size_t at = 0;

	buf[0] = '\0';
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s%s%s",
				       i ? " " : "", t[r->ev[i].type],
				       r->ev[i].name[0] ? ":" : "",
				       r->ev[i].name);
	pthread_mutex_unlock(&r->mu);
}

/* ---- one watcher on one fake server ---- */

static void
log_to_stderr(void *arg, int level, const char *id, const char *msg)
{
	if (getenv("KF_TEST_LOG") != NULL)
		fprintf(stderr, "%s %s %s\n", kf_log_level_name(level), id,
			msg);
}

static void
quiet_setup(void)
{
	kf_log_set_sink(log_to_stderr, NULL, KF_LOG_DEBUG);
}

struct fx {
	struct fs_server *fs;
	kf_conn *conn;
	kf_loop *loop;
	kf_watcher *w;
	struct rec rec;
};

static void
fx_opts(kf_watcher_opts *o)
{
	kf_watcher_opts_init(o);
	o->resource = "configmaps";
	o->namespace_ = "ns";
	o->list_mode = KF_LIST_PAGED;
	o->backoff_initial_ms = 40;
	o->backoff_max_ms = 200;
	o->idle_ms = 5000;
	o->timeout_seconds = 30;
}

static void
fx_start(struct fx *f, const char *transcript, const kf_watcher_opts *o)
{
	char path[1024];

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->rec.mu, NULL);
	snprintf(path, sizeof(path), "%s/transcripts/%s", KF_TEST_DATA_DIR,
		 transcript);
	f->fs = fs_start_file(path);
	cr_assert_not_null(f->fs, "transcript %s", transcript);
	cr_assert_eq(
	    kf_conn_explicit(fs_url(f->fs), NULL, NULL, false, &f->conn),
	    KF_OK);
	cr_assert_eq(kf_loop_alloc(&f->loop), KF_OK);
	cr_assert_eq(kf_loop_start(f->loop), KF_OK);
	cr_assert_eq(kf_watcher_alloc(f->conn, o, &f->w), KF_OK);
	cr_assert_eq(
	    kf_watcher_set_handlers(f->w, rec_event, rec_health, &f->rec),
	    KF_OK);
	cr_assert_eq(kf_watcher_start(f->w, f->loop), KF_OK);
}

static void
fx_stop(struct fx *f)
{
	kf_watcher_free(f->w);
	kf_loop_free(f->loop);
	kf_conn_free(f->conn);
	fs_stop(f->fs);
	for (int i = 0; i < f->rec.n; i++)
		free(f->rec.ev[i].json);
	pthread_mutex_destroy(&f->rec.mu);
}

static const struct fs_request *
fx_req(struct fx *f, size_t i, int timeout_ms)
{
	cr_assert_geq(fs_wait_requests(f->fs, i + 1, timeout_ms), i + 1,
		      "request %zu never came", i);
	return fs_request(f->fs, i);
}

static void
assert_list(const struct fs_request *r, const char *limit)
{
	cr_assert_null(fs_param(r, "watch"), "a list, not a watch: %s",
		       r->query);
	cr_assert_null(fs_param(r, "resourceVersion"),
		       "a list never carries resourceVersion: %s", r->query);
	cr_assert_str_eq(fs_param(r, "limit"), limit);
}

static void
assert_watch(const struct fs_request *r, const char *rv)
{
	cr_assert_str_eq(fs_param(r, "watch") ? fs_param(r, "watch") : "", "1",
			 "a watch: %s", r->query);
	cr_assert_str_eq(fs_param(r, "resourceVersion")
			     ? fs_param(r, "resourceVersion")
			     : "(none)",
			 rv, "%s", r->query);
	cr_assert_str_eq(fs_param(r, "allowWatchBookmarks"), "true");
	cr_assert_not_null(fs_param(r, "timeoutSeconds"));
}

static kf_watcher_stats
fx_stats(struct fx *f)
{
	kf_watcher_stats s;

	kf_watcher_stats_get(f->w, &s);
	return s;
}

/* ---- K1 ---- */

Test(k1, gone_line_in_a_silent_stream_relists_at_once, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];
	const struct fs_request *r;
	int64_t t410;

	fx_opts(&o);
	fx_start(&f, "k1_gone_in_stream_silent.txt", &o);
	r = fx_req(&f, 0, 3000);
	cr_assert_str_eq(r->path, "/api/v1/namespaces/ns/configmaps");
	assert_list(r, "500");
	assert_watch(fx_req(&f, 1, 3000), "100");
	t410 = kfi_now_ms();
	r = fx_req(&f, 2, 3000);
	/* At once: well inside the 5 s idle deadline the stream holds. */
	cr_assert_lt(kfi_now_ms() - t410, 1500);
	assert_list(r, "500");
	assert_watch(fx_req(&f, 3, 3000), "300");
	rec_wait(&f.rec, 6, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a ID I IA:a ID");
	cr_assert_str_eq(f.rec.ev[4].rv, "250");
	cr_assert_eq(fx_stats(&f).gone, 1);
	cr_assert_eq(fx_stats(&f).relists, 1);
	for (size_t i = 2; i < fs_request_count(f.fs); i++)
		cr_assert_str_neq(
		    fs_param(fs_request(f.fs, i), "resourceVersion") ?: "",
		    "100");
	{
		char err[1024];

		cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)),
			     KF_EGONE);
		cr_assert(strstr(err, "410") && strstr(err, "Expired"), "%s",
			  err);
	}
	fx_stop(&f);
}

Test(k1, gone_line_then_close_for_a_cluster_scoped_named_group,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	o.group = "rbac.authorization.k8s.io";
	o.resource = "clusterroles";
	o.namespace_ = NULL;
	o.label_selector = "app in (a,b),tier!=x";
	o.field_selector = "metadata.name=r1";
	fx_start(&f, "k1_gone_in_stream_close_clusterroles.txt", &o);
	cr_assert_str_eq(fx_req(&f, 0, 3000)->path,
			 "/apis/rbac.authorization.k8s.io/v1/clusterroles");
	/* Selectors travel percent-encoded on every request. */
	for (size_t i = 0; i < 4; i++) {
		const struct fs_request *r = fx_req(&f, i, 3000);

		cr_assert_str_eq(fs_param(r, "labelSelector"),
				 "app in (a,b),tier!=x");
		cr_assert_str_eq(fs_param(r, "fieldSelector"),
				 "metadata.name=r1");
		cr_assert_null(strchr(r->query, ' '));
	}
	assert_watch(fx_req(&f, 1, 3000), "100");
	assert_list(fx_req(&f, 2, 3000), "500");
	assert_watch(fx_req(&f, 3, 3000), "300");
	rec_wait(&f.rec, 6, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:r1 ID I IA:r1 ID");
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_str_eq(f.rec.ev[1].name, "r1");
	pthread_mutex_unlock(&f.rec.mu);
	fx_stop(&f);
}

/* ---- K2 ---- */

Test(k2, error_lines_never_move_the_resume_point, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512], rv[64];

	fx_opts(&o);
	fx_start(&f, "k2_error_keeps_resume_point.txt", &o);
	assert_list(fx_req(&f, 0, 3000), "500");
	assert_watch(fx_req(&f, 1, 3000), "100");
	/* After ERROR 500 (with metadata.resourceVersion ""), after one with
	 * no metadata, after an empty object: always 101. */
	assert_watch(fx_req(&f, 2, 3000), "101");
	assert_watch(fx_req(&f, 3, 3000), "101");
	assert_watch(fx_req(&f, 4, 3000), "101");
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I ID A:c");
	kf_watcher_resource_version(f.w, rv, sizeof(rv));
	cr_assert_str_eq(rv, "101");
	cr_assert_eq(fx_stats(&f).errors, 3);
	cr_assert_eq(fx_stats(&f).relists, 0);
	fx_stop(&f);
}

/* ---- K3 ---- */

Test(k3, bytes_split_anywhere_give_the_same_events, .init = quiet_setup)
{
	static const char m1[] =
	    "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"m1\","
	    "\"namespace\":\"ns\",\"uid\":\"u1\",\"resourceVersion\":"
	    "\"101\"},\"data\":{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	    " \\u00e9 \\\"q\\\"\"}}";
	static const char m5[] =
	    "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"m5\","
	    "\"namespace\":\"ns\",\"uid\":\"u5\",\"resourceVersion\":"
	    "\"105\"},\"data\":{\"k\":\"\xc3\xa9\\\"\"}}";
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	fx_start(&f, "k3_split_anywhere.txt", &o);
	cr_assert(rec_wait(&f.rec, 7, 5000));
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I ID A:m1 A:m2 A:m3 A:m4 A:m5");
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_eq(f.rec.ev[2].len, strlen(m1));
	cr_assert_eq(memcmp(f.rec.ev[2].json, m1, strlen(m1)), 0);
	cr_assert_eq(f.rec.ev[6].len, strlen(m5));
	cr_assert_eq(memcmp(f.rec.ev[6].json, m5, strlen(m5)), 0);
	pthread_mutex_unlock(&f.rec.mu);
	cr_assert_eq(fx_stats(&f).parse_errors, 0);
	cr_assert_eq(fx_stats(&f).modified, 5);
	fx_stop(&f);
}

/* ---- K4 ---- */

Test(k4, a_three_mib_line_and_a_small_one_are_both_delivered,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	fx_start(&f, "k4_large_line.txt", &o);
	cr_assert(rec_wait(&f.rec, 4, 10000));
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I ID A:big A:small");
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_gt(f.rec.ev[2].len, 3u << 20);
	pthread_mutex_unlock(&f.rec.mu);
	cr_assert_eq(fx_stats(&f).oversize_lines, 0);
	fx_stop(&f);
}

Test(k4, an_over_limit_line_is_counted_and_relists, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512], err[1024];

	fx_opts(&o);
	o.max_line = 1u << 20;
	fx_start(&f, "k4_over_limit.txt", &o);
	assert_watch(fx_req(&f, 1, 3000), "100");
	assert_list(fx_req(&f, 2, 5000), "500");
	assert_watch(fx_req(&f, 3, 3000), "102");
	rec_wait(&f.rec, 5, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	/* Not skipped silently: the object comes back through the list. */
	cr_assert_str_eq(sum, "I ID I IA:small ID");
	cr_assert_eq(fx_stats(&f).oversize_lines, 1);
	cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)), KF_ETOOBIG);
	cr_assert(strstr(err, "limit") != NULL, "%s", err);
	fx_stop(&f);
}

/* ---- K5 ---- */

Test(k5, http_errors_are_not_event_streams, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512], err[1024];
	const struct fs_request *r;
	int64_t t429;

	fx_opts(&o);
	fx_start(&f, "k5_http_errors.txt", &o);
	assert_list(fx_req(&f, 0, 3000), "500");
	for (size_t i = 1; i <= 4; i++)
		assert_watch(fx_req(&f, i, 3000), "100");
	/* 403: unhealthy at once, with the reason. */
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_geq(f.rec.health_n, 1);
	cr_assert_not(f.rec.healthy[0]);
	cr_assert(strstr(f.rec.reason[0], "403") &&
		      strstr(f.rec.reason[0], "cannot watch resource"),
		  "%s", f.rec.reason[0]);
	pthread_mutex_unlock(&f.rec.mu);
	t429 = kfi_now_ms();
	r = fx_req(&f, 5, 5000);
	/* Retry-After: 2 honoured although the back-off is 40 ms. */
	cr_assert_geq(kfi_now_ms() - t429, 1800);
	assert_watch(r, "100");
	cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)), KF_EHTTP);
	cr_assert(strstr(err, "429") && strstr(err, "too many requests"), "%s",
		  err);
	cr_assert(rec_wait(&f.rec, 3, 2000));
	usleep(100000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a ID"); /* nothing from the error bodies */
	cr_assert_eq(fx_stats(&f).http_errors, 4);
	cr_assert_eq(fx_stats(&f).added, 0);
	/* The bookmark of the good watch made it healthy again. */
	pthread_mutex_lock(&f.rec.mu);
	cr_assert(f.rec.healthy[f.rec.health_n - 1]);
	pthread_mutex_unlock(&f.rec.mu);
	fx_stop(&f);
}

Test(k5, plain_text_and_wrong_content_type_name_status_and_message,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char err[1024];

	fx_opts(&o);
	o.backoff_initial_ms = 400; /* time to read each error */
	o.backoff_max_ms = 400;
	fx_start(&f, "k5_http_errors.txt", &o);
	fx_req(&f, 1, 3000);
	usleep(100000);
	cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)), KF_EAUTH);
	cr_assert(strstr(err, "HTTP 403") && strstr(err, "Forbidden"), "%s",
		  err);
	fx_req(&f, 2, 3000);
	usleep(100000);
	kf_watcher_last_error(f.w, err, sizeof(err));
	cr_assert(strstr(err, "HTTP 500") &&
		      strstr(err, "etcd cluster is unavailable"),
		  "%s", err);
	fx_req(&f, 3, 3000);
	usleep(100000);
	cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)), KF_EPROTO);
	cr_assert(strstr(err, "text/html") != NULL, "%s", err);
	fx_stop(&f);
}

Test(k5, http_410_with_a_multi_line_status_relists, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512], err[1024];

	fx_opts(&o);
	fx_start(&f, "k5_gone_status.txt", &o);
	assert_watch(fx_req(&f, 1, 3000), "100");
	assert_list(fx_req(&f, 2, 3000), "500");
	assert_watch(fx_req(&f, 3, 3000), "400");
	rec_wait(&f.rec, 6, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a ID I IA:a ID");
	cr_assert_eq(kf_watcher_last_error(f.w, err, sizeof(err)), KF_EGONE);
	cr_assert(strstr(err, "HTTP 410") &&
		      strstr(err, "too old resource version: 100 (400)"),
		  "%s", err);
	fx_stop(&f);
}

/* ---- K6 ---- */

Test(k6, an_expired_continue_restarts_from_page_one, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];
	const struct fs_request *r;

	fx_opts(&o);
	o.page_size = 2;
	fx_start(&f, "k6_expired_continue.txt", &o);
	r = fx_req(&f, 0, 3000);
	assert_list(r, "2");
	cr_assert_null(fs_param(r, "continue"));
	r = fx_req(&f, 1, 3000);
	assert_list(r, "2");
	cr_assert_str_eq(fs_param(r, "continue"), "C1");
	r = fx_req(&f, 2, 3000);
	assert_list(r, "2");
	cr_assert_null(fs_param(r, "continue"), "no token, not the fresh one");
	assert_watch(fx_req(&f, 3, 3000), "250");
	rec_wait(&f.rec, 4, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a IA:c ID"); /* one frame, no b */
	cr_assert_eq(fx_stats(&f).list_pages, 3);
	cr_assert_eq(fx_stats(&f).gone, 1);
	fx_stop(&f);
}

/* ---- K7 ---- */

Test(k7, the_resume_point_is_the_lists_version_not_an_items,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	fx_start(&f, "k7_resume_from_list_version.txt", &o);
	assert_watch(fx_req(&f, 1, 3000), "500");
	assert_watch(fx_req(&f, 2, 3000), "500");
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:x IA:y ID"); /* nothing on reconnect */
	fx_stop(&f);
}

/* ---- K8 (the watcher's part) ---- */

Test(k8, a_relist_after_gone_is_one_whole_frame, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	fx_start(&f, "k8_relist_differences.txt", &o);
	assert_watch(fx_req(&f, 3, 3000), "300");
	rec_wait(&f.rec, 9, 2000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a IA:b IA:c ID I IA:a IA:c ID");
	fx_stop(&f);
}

/* ---- K9 ---- */

Test(k9, a_bookmark_moves_the_resume_point_and_is_no_object,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	fx_start(&f, "k9_bookmarks.txt", &o);
	assert_watch(fx_req(&f, 1, 3000), "100");
	assert_watch(fx_req(&f, 2, 3000), "5000");
	cr_assert(rec_wait(&f.rec, 4, 3000));
	usleep(50000);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I ID A:p A:q");
	cr_assert_eq(fx_stats(&f).unknown_types, 1);
	cr_assert_eq(fx_stats(&f).bookmarks, 1);
	cr_assert_eq(fx_stats(&f).parse_errors, 0);
	fx_stop(&f);
}

/* ---- K10 ---- */

Test(k10, a_half_open_watch_is_dropped_and_resumed_stale_meanwhile,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];
	int64_t t1;

	fx_opts(&o);
	o.idle_ms = 700;
	fx_start(&f, "k10_half_open.txt", &o);
	assert_watch(fx_req(&f, 1, 3000), "100");
	t1 = kfi_now_ms();
	assert_watch(fx_req(&f, 2, 3000), "101");
	cr_assert_geq(kfi_now_ms() - t1, 600);
	cr_assert_lt(kfi_now_ms() - t1, 2000);
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_geq(f.rec.health_n, 1);
	cr_assert_not(f.rec.healthy[0]);
	cr_assert(strstr(f.rec.reason[0], "no data") != NULL, "%s",
		  f.rec.reason[0]);
	pthread_mutex_unlock(&f.rec.mu);
	/* The resumed watch's bookmark makes it fresh again. */
	for (int i = 0;
	     i < 200 && __atomic_load_n(&f.rec.health_n, __ATOMIC_ACQUIRE) < 2;
	     i++)
		usleep(10000);
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_eq(f.rec.health_n, 2);
	cr_assert(f.rec.healthy[1]);
	pthread_mutex_unlock(&f.rec.mu);
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I ID A:h");
	cr_assert_eq(fx_stats(&f).idle_timeouts, 1);
	fx_stop(&f);
}

/* ---- K11 (the watcher's part) ---- */

Test(k11, nothing_is_handed_out_before_the_slow_list_completes,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];
	int64_t t0 = kfi_now_ms();

	fx_opts(&o);
	fx_start(&f, "k11_slow_list.txt", &o);
	usleep(1500000);
	cr_assert_eq(rec_count(&f.rec), 0);
	cr_assert(rec_wait(&f.rec, 5, 3000));
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a IA:b ID A:c");
	pthread_mutex_lock(&f.rec.mu);
	cr_assert_geq(f.rec.ev[0].at - t0, 1900);
	pthread_mutex_unlock(&f.rec.mu);
	fx_stop(&f);
}

/* ---- streaming lists ---- */

Test(stream, a_streaming_list_ends_at_its_bookmark_and_goes_on_live,
     .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];
	const struct fs_request *r;

	fx_opts(&o);
	o.list_mode = KF_LIST_AUTO;
	fx_start(&f, "stream_list.txt", &o);
	r = fx_req(&f, 0, 3000);
	cr_assert_str_eq(fs_param(r, "watch"), "1");
	cr_assert_str_eq(fs_param(r, "sendInitialEvents"), "true");
	cr_assert_str_eq(fs_param(r, "resourceVersionMatch"), "NotOlderThan");
	cr_assert_str_eq(fs_param(r, "allowWatchBookmarks"), "true");
	cr_assert_null(fs_param(r, "resourceVersion"));
	assert_watch(fx_req(&f, 1, 3000), "101");
	cr_assert_null(fs_param(fs_request(f.fs, 1), "sendInitialEvents"));
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a IA:b ID A:a");
	cr_assert_eq(fx_stats(&f).stream_lists, 1);
	fx_stop(&f);
}

Test(stream, a_refused_streaming_list_falls_back_to_pages, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	char sum[512];

	fx_opts(&o);
	o.list_mode = KF_LIST_AUTO;
	fx_start(&f, "stream_refused.txt", &o);
	cr_assert_str_eq(fs_param(fx_req(&f, 0, 3000), "sendInitialEvents"),
			 "true");
	assert_list(fx_req(&f, 1, 3000), "500");
	assert_watch(fx_req(&f, 2, 3000), "100");
	/* The watch ended: the next step is a watch, never a stream. */
	assert_watch(fx_req(&f, 3, 3000), "100");
	rec_summary(&f.rec, sum, sizeof(sum));
	cr_assert_str_eq(sum, "I IA:a ID");
	fx_stop(&f);
}

/* ---- the loop ---- */

Test(loop, a_watch_stops_promptly_from_another_thread, .init = quiet_setup)
{
	kf_watcher_opts o;
	struct fx f;
	int64_t t0;

	fx_opts(&o);
	fx_start(&f, "k10_half_open.txt", &o);
	fx_req(&f, 1, 3000);
	usleep(50000);
	t0 = kfi_now_ms();
	cr_assert_eq(kf_watcher_stop(f.w), KF_OK);
	cr_assert_lt(kfi_now_ms() - t0, 300);
	cr_assert_eq(kf_watcher_stop(f.w), KF_OK); /* idempotent */
	usleep(100000);
	cr_assert_eq(fs_request_count(f.fs), 2); /* and nothing after */
	fx_stop(&f);
}

Test(loop, many_watches_on_one_loop, .init = quiet_setup)
{
	struct fs_server *fs[3];
	kf_conn *conn[3];
	kf_watcher *w[3];
	struct rec rec[3];
	kf_loop *loop;
	kf_watcher_opts o;
	char sum[512];

	cr_assert_eq(kf_loop_alloc(&loop), KF_OK);
	cr_assert_eq(kf_loop_start(loop), KF_OK);
	for (int i = 0; i < 3; i++) {
		memset(&rec[i], 0, sizeof(rec[i]));
		pthread_mutex_init(&rec[i].mu, NULL);
		fs[i] = fs_start_file(KF_TEST_DATA_DIR
				      "/transcripts/k9_bookmarks.txt");
		cr_assert_not_null(fs[i]);
		kf_conn_explicit(fs_url(fs[i]), NULL, NULL, false, &conn[i]);
		fx_opts(&o);
		cr_assert_eq(kf_watcher_alloc(conn[i], &o, &w[i]), KF_OK);
		kf_watcher_set_handlers(w[i], rec_event, NULL, &rec[i]);
		kf_watcher_start(w[i], loop);
	}
	for (int i = 0; i < 3; i++) {
		cr_assert(rec_wait(&rec[i], 4, 5000));
		rec_summary(&rec[i], sum, sizeof(sum));
		cr_assert_str_eq(sum, "I ID A:p A:q");
	}
	kf_loop_stop(loop); /* stops every watcher */
	for (int i = 0; i < 3; i++) {
		kf_watcher_free(w[i]);
		kf_conn_free(conn[i]);
		fs_stop(fs[i]);
		for (int k = 0; k < rec[i].n; k++)
			free(rec[i].ev[k].json);
	}
	kf_loop_free(loop);
}

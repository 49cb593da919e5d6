/*
 * kubefand and remote subscribers as separate processes against the real
 * API server: K14 (a burst of 1000 events over ipc:// to three subscriber
 * processes, one of them slow), a late subscriber, a subscriber killed and
 * restarted, and kubefand killed with SIGKILL and restarted while its
 * subscribers run. After each, every subscriber's mirror must equal a
 * fresh list from the API server.
 *
 * Processes are started with posix_spawn through support/proc.h (this
 * process never touches nng, and posix_spawn is safe anyway). Subscribers
 * are kubefan-remote-controller with --dump: they rewrite a file with
 * their counters and sorted mirror every 200 ms. Their logs, dumps and
 * ipc sockets are in a temporary folder (support/files.h), removed when
 * the test passes and kept, and named, when it fails.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube.h"
#include "proc.h"
#include "files.h"
#include "clock.h"

struct tb {
	char ns[64];
	char stream[80];
	char pub[200], rep[200];
	char dir[160];
	pid_t broker;
};

/* A subscriber hung in shutdown fails the test here. */
static void
stop_pid(pid_t pid, int sig)
{
	kt_proc_stop(pid, sig, 5);
}

static void
start_broker(struct tb *t, const char *batch_us)
{
	char res[256], log[256];
	char *argv[] = {KF_KUBEFAND,
			"--kubeconfig",
			(char *)kt_env("KUBEFAN_TEST_KUBECONFIG"),
			"--resource",
			res,
			"--listen",
			t->pub,
			"--rep",
			t->rep,
			"--log-level",
			"notice",
			"--batch-us",
			(char *)batch_us,
			"--http",
			"none",
			NULL};

	snprintf(res, sizeof(res), "configmaps,ns=%s,name=%s", t->ns,
		 t->stream);
	snprintf(log, sizeof(log), "%s/kubefand.log", t->dir);
	t->broker = kt_proc_spawn(argv, log, NULL, KT_PROC_APPEND);
}

static pid_t
start_sub(struct tb *t, const char *name, int sleep_ms, int recv_buffer)
{
	char dump[256], log[256], sl[16], rb[16];
	char *argv[] = {KF_REMOTE_CTL,
			"--pub",
			t->pub,
			"--rep",
			t->rep,
			"--stream",
			t->stream,
			"--name",
			(char *)name,
			"--dump",
			dump,
			"--quiet",
			"--sleep-ms",
			sl,
			"--recv-buffer",
			rb,
			NULL};

	snprintf(dump, sizeof(dump), "%s/%s.dump", t->dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", t->dir, name);
	snprintf(sl, sizeof(sl), "%d", sleep_ms);
	snprintf(rb, sizeof(rb), "%d", recv_buffer);
	unlink(dump);
	/* Appended: a restarted subscriber keeps its predecessor's lines. */
	return kt_proc_spawn(argv, log, NULL, KT_PROC_APPEND);
}

static void
setup(struct tb *t, const char *prefix)
{
	curl_global_init(CURL_GLOBAL_ALL);
	kt_unique(prefix, t->ns, sizeof(t->ns));
	kt_namespace(t->ns);
	snprintf(t->stream, sizeof(t->stream), "cm-%s", t->ns);
	cr_assert_eq(kt_tmpdir_make("kf-tb", t->dir, sizeof(t->dir)), 0,
		     "mkdtemp: %s", strerror(errno));
	snprintf(t->pub, sizeof(t->pub), "ipc://%s/broker.pub", t->dir);
	snprintf(t->rep, sizeof(t->rep), "ipc://%s/broker.rep", t->dir);
}

/* The test passed: its folder goes. */
static void
cleanup(struct tb *t)
{
	cr_assert_eq(kt_tmpdir_remove(t->dir), 0, "removing %s: %s", t->dir,
		     strerror(errno));
}

/* After any test: no process left, and the folder a failure kept named. */
static void
end_test(void)
{
	kt_proc_reap_all();
	kt_tmpdir_report_kept();
}

static int
cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The API server's view of the namespace, as dump lines. */
static char *
api_state(const char *ns)
{
	char path[256];
	struct kt_resp r;
	json_object *root, *items;
	char **lines;
	size_t n, cap = 1 << 20, len = 0;
	char *out;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	kt_request("GET", path, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "list: %ld", r.status);
	root = json_tokener_parse(r.body);
	cr_assert_not_null(root);
	items = json_object_object_get(root, "items");
	n = json_object_array_length(items);
	lines = calloc(n + 1, sizeof(*lines));
	for (size_t i = 0; i < n; i++) {
		json_object *md = json_object_object_get(
		    json_object_array_get_idx(items, i), "metadata");
		const char *nm =
		    json_object_get_string(json_object_object_get(md, "name"));
		const char *rv = json_object_get_string(
		    json_object_object_get(md, "resourceVersion"));

		cr_assert(asprintf(&lines[i], "%s/%s %s", ns, nm, rv) > 0);
	}
	qsort(lines, n, sizeof(*lines), cmp_lines);
	out = malloc(cap);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		len += (size_t)snprintf(out + len, cap - len, "%s\n", lines[i]);
		free(lines[i]);
	}
	free(lines);
	json_object_put(root);
	kt_resp_fini(&r);
	return out;
}

/* A dump's stats line and its body. */
static bool
read_dump(struct tb *t, const char *name, char *stats, size_t slen, char **body)
{
	char path[256];
	FILE *f;
	long sz;
	char *all, *nl;

	snprintf(path, sizeof(path), "%s/%s.dump", t->dir, name);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	all = calloc(1, (size_t)sz + 1);
	if (fread(all, 1, (size_t)sz, f) != (size_t)sz) {
		fclose(f);
		free(all);
		return false;
	}
	fclose(f);
	nl = strchr(all, '\n');
	if (nl == NULL) {
		free(all);
		return false;
	}
	*nl = '\0';
	snprintf(stats, slen, "%s", all);
	*body = strdup(nl + 1);
	free(all);
	return true;
}

static unsigned long long
stat_of(const char *stats, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(stats, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* Wait until the subscriber's mirror equals the API server's list;
 * returns the stats line. */
static void
converge(struct tb *t, const char *name, double timeout, char *stats,
	 size_t slen)
{
	double end = kt_now_s() + timeout;
	char *want = NULL, *got = NULL;

	for (;;) {
		bool ok;

		free(want);
		want = api_state(t->ns);
		ok = read_dump(t, name, stats, slen, &got) &&
		     strstr(stats, "ready=1") != NULL && strcmp(want, got) == 0;
		if (ok)
			break;
		if (kt_now_s() > end) {
			cr_assert(false,
				  "%s did not converge in %.0f s; stats: %s\n"
				  "api:\n%.600s\nmirror:\n%.600s",
				  name, timeout, stats, want, got ? got : "");
			break;
		}
		free(got);
		got = NULL;
		usleep(200 * 1000);
	}
	free(want);
	free(got);
}

struct burst {
	const char *ns;
	int id;
	int creates, updates;
	int failures;
};

static void *
burst_main(void *arg)
{
	struct burst *b = arg;
	char name[64], val[32];

	for (int i = 0; i < b->creates; i++) {
		snprintf(name, sizeof(name), "b%d-%d", b->id, i);
		if (kt_configmap_create(b->ns, name, "v", "0") != 201)
			b->failures++;
	}
	for (int i = 0; i < b->updates; i++) {
		snprintf(name, sizeof(name), "b%d-%d", b->id, i % b->creates);
		snprintf(val, sizeof(val), "%d", i + 1);
		if (kt_configmap_update(b->ns, name, "v", val) != 200)
			b->failures++;
	}
	return NULL;
}

/* 4 writers: 1000 events with no pause. */
static void
burst(const char *ns, int round, int creates, int updates)
{
	pthread_t th[4];
	struct burst b[4];

	for (int i = 0; i < 4; i++) {
		b[i] = (struct burst){ns, round * 10 + i, creates, updates, 0};
		pthread_create(&th[i], NULL, burst_main, &b[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(b[i].failures, 0, "writer %d failed %d requests",
			     i, b[i].failures);
	}
}

struct dump_of {
	struct tb *t;
	const char *name;
};

static bool
dump_ready(void *arg)
{
	struct dump_of *d = arg;
	char stats[512], *body = NULL;
	bool ok = read_dump(d->t, d->name, stats, sizeof(stats), &body) &&
		  strstr(stats, "ready=1") != NULL;

	free(body);
	return ok;
}

static void
wait_for_dump(struct tb *t, const char *name)
{
	struct dump_of d = {t, name};

	cr_assert(kt_proc_await(0, dump_ready, &d, 10), "%s never synced",
		  name);
}

Test(broker, k14_burst_to_three_processes_one_slow_and_a_late_one,
     .fini = end_test)
{
	struct tb t;
	char stats[512];
	pid_t fast1, fast2, slow, late;
	char path[256];
	struct kt_resp r;
	double t0;

	setup(&t, "k14");
	/* One message per event, so the burst is as many messages. */
	start_broker(&t, "0");
	fast1 = start_sub(&t, "fast1", 0, 0);
	fast2 = start_sub(&t, "fast2", 0, 0);
	slow = start_sub(&t, "slow", 10, 16);
	wait_for_dump(&t, "fast1");
	wait_for_dump(&t, "fast2");
	wait_for_dump(&t, "slow");

	/* 1000 events as fast as the API server takes them, then 200
	 * deletes in one request: a burst no 10 ms-per-event consumer with
	 * a 16-message queue can keep up with. Then 100 objects again. */
	burst(t.ns, 0, 50, 200);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", t.ns);
	kt_request("DELETE", path, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "deletecollection: %ld", r.status);
	kt_resp_fini(&r);
	burst(t.ns, 1, 25, 0);
	t0 = kt_now_s();
	converge(&t, "fast1", 20, stats, sizeof(stats));
	converge(&t, "fast2", 20, stats, sizeof(stats));
	cr_log_info("fast subscribers converged %.2f s after the burst",
		    kt_now_s() - t0);
	/* The slow subscriber is still working off its queue and its
	 * re-syncs: it does not hold the others (or the broker) back. */
	cr_assert_lt(kt_now_s() - t0, 10.0, "fast subscribers were held back");
	converge(&t, "slow", 60, stats, sizeof(stats));
	/* The slow one lost messages, noticed, counted and re-synced. */
	cr_assert_gt(stat_of(stats, "gaps"), 0, "slow: %s", stats);
	cr_assert_gt(stat_of(stats, "missed"), 0, "slow: %s", stats);
	cr_assert_gt(stat_of(stats, "resyncs"), 0, "slow: %s", stats);

	late = start_sub(&t, "late", 0, 0);
	converge(&t, "late", 20, stats, sizeof(stats));
	cr_assert_eq(stat_of(stats, "snapshots"), 1, "late: %s", stats);
	cr_assert_eq(stat_of(stats, "objects"), 100);

	stop_pid(fast1, SIGTERM);
	stop_pid(fast2, SIGTERM);
	stop_pid(slow, SIGTERM);
	stop_pid(late, SIGTERM);
	stop_pid(t.broker, SIGTERM);
	cleanup(&t);
}

Test(broker, subscriber_restart_and_broker_sigkill_converge, .fini = end_test)
{
	struct tb t;
	char stats[512];
	pid_t a, b;

	setup(&t, "brk");
	start_broker(&t, "2000");
	a = start_sub(&t, "a", 0, 0);
	b = start_sub(&t, "b", 0, 0);
	burst(t.ns, 0, 10, 10);
	converge(&t, "a", 20, stats, sizeof(stats));
	converge(&t, "b", 20, stats, sizeof(stats));

	/* A subscriber killed, changes it misses, then restarted. */
	stop_pid(b, SIGKILL);
	burst(t.ns, 1, 5, 5);
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "b0-%d", i);
		cr_assert_eq(kt_configmap_delete(t.ns, name), 200);
	}
	b = start_sub(&t, "b", 0, 0);
	converge(&t, "b", 20, stats, sizeof(stats));
	converge(&t, "a", 20, stats, sizeof(stats));

	/* kubefand SIGKILLed; changes while it is down; restarted at the
	 * same addresses. The running subscribers notice the new
	 * incarnation and re-sync. */
	stop_pid(t.broker, SIGKILL);
	burst(t.ns, 2, 5, 5);
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "b1-%d", i);
		cr_assert_eq(kt_configmap_delete(t.ns, name), 200);
	}
	start_broker(&t, "2000");
	converge(&t, "a", 30, stats, sizeof(stats));
	cr_assert_geq(stat_of(stats, "restarts"), 1, "a: %s", stats);
	converge(&t, "b", 30, stats, sizeof(stats));
	cr_assert_geq(stat_of(stats, "restarts"), 1, "b: %s", stats);

	stop_pid(a, SIGTERM);
	stop_pid(b, SIGTERM);
	stop_pid(t.broker, SIGTERM);
	cleanup(&t);
}

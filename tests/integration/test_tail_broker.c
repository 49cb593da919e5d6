/*
 * kubefan-tail in broker mode against a real kubefand on the real API
 * server: --snapshot prints exactly the namespace's objects (JSON, table,
 * reference-only, a namespace filter on an all-namespace stream); a live
 * tail prints a ConfigMap's create, update and delete in order and exits
 * 0 on SIGTERM; a wrong stream, a bad address and a missing broker end
 * with a non-zero status and a message naming what was wrong.
 *
 * kubefand and the tails are separate processes (support/proc.h);
 * each test has its own namespace, broker and ipc addresses in a temporary
 * folder (support/files.h), removed when the test passes and kept, and
 * named, when it fails. The tail's output is read as its consumers would
 * read it.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
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

struct tt {
	char ns[64];
	char dir[160];
	char pub[200];
	pid_t broker;
};

static char *
slurp(const char *path)
{
	char *s = kt_file_read(path, NULL);

	return s != NULL ? s : strdup("");
}

static void
setup(struct tt *t, const char *prefix)
{
	curl_global_init(CURL_GLOBAL_ALL);
	kt_unique(prefix, t->ns, sizeof(t->ns));
	kt_namespace(t->ns);
	cr_assert_eq(kt_tmpdir_make("kf-tt", t->dir, sizeof(t->dir)), 0,
		     "mkdtemp: %s", strerror(errno));
	snprintf(t->pub, sizeof(t->pub), "ipc://%s/broker.pub", t->dir);
}

/* The test passed: its folder goes. */
static void
cleanup(struct tt *t)
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

/* kubefand with one stream "configmaps": the test's namespace, or every
 * namespace. Returns when its request socket exists. */
static void
start_broker(struct tt *t, bool all_namespaces)
{
	char res[256], log[256], rep[256];
	char *argv[] = {KF_KUBEFAND,
			"--kubeconfig",
			(char *)kt_env("KUBEFAN_TEST_KUBECONFIG"),
			"--resource",
			res,
			"--listen",
			t->pub,
			"--log-level",
			"notice",
			"--http",
			"none",
			NULL};

	if (all_namespaces)
		snprintf(res, sizeof(res), "configmaps");
	else
		snprintf(res, sizeof(res), "configmaps,ns=%s", t->ns);
	snprintf(log, sizeof(log), "%s/kubefand.log", t->dir);
	snprintf(rep, sizeof(rep), "%s/broker.rep", t->dir);
	t->broker = kt_proc_spawn(argv, log, log, 0);
	cr_assert(kt_proc_await(t->broker, kt_proc_path_exists, rep, 10),
		  "kubefand did not start: %s", slurp(log));
}

/* name -> resourceVersion lines, sorted: the API server's list. */
static char *
api_state(const char *ns)
{
	char path[256], line[256];
	struct kt_resp r;
	json_object *root, *items;
	char *out = calloc(1, 1 << 16);
	size_t n;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	kt_request("GET", path, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "list: %ld %s", r.status, r.body);
	root = json_tokener_parse(r.body);
	items = json_object_object_get(root, "items");
	n = json_object_array_length(items);
	/* The API server lists a namespace sorted by name. */
	for (size_t i = 0; i < n; i++) {
		json_object *md = json_object_object_get(
		    json_object_array_get_idx(items, i), "metadata");

		snprintf(
		    line, sizeof(line), "%s %s\n",
		    json_object_get_string(json_object_object_get(md, "name")),
		    json_object_get_string(
			json_object_object_get(md, "resourceVersion")));
		strcat(out, line);
	}
	json_object_put(root);
	kt_resp_fini(&r);
	return out;
}

/* The same lines from `kubefan-tail -o json --snapshot` output, in the
 * tail's order; checks every line's shape on the way. full: objects carry
 * data.k. */
static char *
tail_state(const char *text, const char *ns, bool full)
{
	char *out = calloc(1, 1 << 16), *copy = strdup(text), *save = NULL;
	char line[256];

	for (char *l = strtok_r(copy, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		json_object *root = json_tokener_parse(l), *obj, *md, *data;

		cr_assert_not_null(root, "not JSON: %s", l);
		cr_assert_str_eq(json_object_get_string(
				     json_object_object_get(root, "type")),
				 "InitApply");
		obj = json_object_object_get(root, "object");
		cr_assert_str_eq(
		    json_object_get_string(json_object_object_get(obj, "kind")),
		    "ConfigMap");
		md = json_object_object_get(obj, "metadata");
		cr_assert_str_eq(json_object_get_string(
				     json_object_object_get(md, "namespace")),
				 ns);
		data = json_object_object_get(obj, "data");
		if (full)
			cr_assert_not_null(json_object_object_get(data, "k"),
					   "full object without data: %s", l);
		else
			cr_assert_null(data, "reference with data: %s", l);
		snprintf(
		    line, sizeof(line), "%s %s\n",
		    json_object_get_string(json_object_object_get(md, "name")),
		    json_object_get_string(
			json_object_object_get(md, "resourceVersion")));
		strcat(out, line);
		json_object_put(root);
	}
	free(copy);
	return out;
}

/* Run `kubefan-tail --broker PUB --resource configmaps --snapshot` plus
 * extra arguments until its state equals the API server's (the broker's
 * watch trails the writes a little). Returns stdout; *err gets stderr. */
static char *
snapshot_until_equal(struct tt *t, char *const extra[], bool full, char **err)
{
	char out[256], errp[256];
	char *argv[24] = {KF_TAIL,	"--broker",   t->pub, "--resource",
			  "configmaps", "--snapshot", "-o",   "json"};
	int argc = 8;
	double end = kt_now_s() + 15;
	char *want = NULL, *got = NULL, *text = NULL;

	for (int i = 0; extra[i] != NULL; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	snprintf(out, sizeof(out), "%s/snap.out", t->dir);
	snprintf(errp, sizeof(errp), "%s/snap.err", t->dir);
	for (;;) {
		int rc =
		    kt_proc_exit_code(kt_proc_spawn(argv, out, errp, 0), 20);

		cr_assert_eq(rc, 0, "snapshot exit %d: %s", rc, slurp(errp));
		free(want);
		free(got);
		free(text);
		want = api_state(t->ns);
		text = slurp(out);
		got = tail_state(text, t->ns, full);
		if (strcmp(want, got) == 0 || kt_now_s() > end)
			break;
		usleep(200 * 1000);
	}
	cr_assert_str_eq(got, want, "tail's snapshot differs from the list");
	free(want);
	free(got);
	*err = slurp(errp);
	return text;
}

static void
make_configmaps(const char *ns, int n)
{
	char name[64], val[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "cm-%02d", i);
		snprintf(val, sizeof(val), "v%d", i);
		cr_assert_eq(kt_configmap_create(ns, name, "k", val), 201);
	}
}

static void
stop_broker_ok(struct tt *t)
{
	cr_assert_eq(kt_proc_stop(t->broker, SIGTERM, 10), 0,
		     "kubefand exit status");
}

Test(tail_broker, snapshot_prints_exactly_the_namespace_objects,
     .fini = end_test)
{
	struct tt t;
	char *none[] = {NULL};
	char *refs[] = {"--ref-only", "--progress", NULL};
	char *text, *err, out[256], errp[256];
	char *argv[] = {KF_TAIL,      "--broker",   t.pub, "--resource",
			"configmaps", "--snapshot", NULL};
	char want[64];

	setup(&t, "kf-tailb");
	make_configmaps(t.ns, 7);
	start_broker(&t, false);

	/* JSON: every object, with its data, sorted by name, nothing
	 * else. */
	text = snapshot_until_equal(&t, none, true, &err);
	cr_assert_str_empty(err, "stderr: %s", err);
	free(text);
	free(err);

	/* References only, with the progress summary on stderr. */
	text = snapshot_until_equal(&t, refs, false, &err);
	cr_assert(strstr(err, "snapshot of 7 objects loaded") != NULL,
		  "stderr: %s", err);
	free(text);
	free(err);

	/* Table: the header and one row per object, in name order. */
	snprintf(out, sizeof(out), "%s/table.out", t.dir);
	snprintf(errp, sizeof(errp), "%s/table.err", t.dir);
	cr_assert_eq(kt_proc_exit_code(kt_proc_spawn(argv, out, errp, 0), 20),
		     0);
	text = slurp(out);
	cr_assert(strncmp(text, "EVENT ", 6) == 0, "%s", text);
	{
		const char *p = text;
		int rows = 0;

		for (int i = 0; i < 7; i++) {
			snprintf(want, sizeof(want), "cm-%02d", i);
			p = strstr(p, want);
			cr_assert_not_null(p,
					   "row %s missing or out of "
					   "order:\n%s",
					   want, text);
		}
		for (p = text; (p = strstr(p, "InitApply ")) != NULL; p++)
			rows++;
		cr_assert_eq(rows, 7, "%s", text);
		cr_assert(strstr(text, t.ns) != NULL);
	}
	free(text);
	stop_broker_ok(&t);
	cleanup(&t);
}

/* The JSON lines of a live tail so far, as (type, name, rv) triples. */
struct ev_line {
	char type[16], name[64], rv[32];
};

static int
read_events(const char *path, struct ev_line *v, int max)
{
	char *text = slurp(path), *save = NULL;
	int n = 0;

	for (char *l = strtok_r(text, "\n", &save); l != NULL && n < max;
	     l = strtok_r(NULL, "\n", &save)) {
		json_object *root = json_tokener_parse(l), *obj, *md;

		if (root == NULL)
			break; /* a line being written */
		snprintf(v[n].type, sizeof(v[n].type), "%s",
			 json_object_get_string(
			     json_object_object_get(root, "type")));
		obj = json_object_object_get(root, "object");
		md = obj ? json_object_object_get(obj, "metadata") : NULL;
		snprintf(v[n].name, sizeof(v[n].name), "%s",
			 md ? json_object_get_string(
				  json_object_object_get(md, "name"))
			    : "");
		snprintf(v[n].rv, sizeof(v[n].rv), "%s",
			 md ? json_object_get_string(
				  json_object_object_get(md, "resourceVersion"))
			    : "");
		n++;
		json_object_put(root);
	}
	free(text);
	return n;
}

static int
find_event(const struct ev_line *v, int n, int from, const char *type,
	   const char *name, const char *rv)
{
	for (int i = from; i < n; i++)
		if (strcmp(v[i].type, type) == 0 &&
		    strcmp(v[i].name, name) == 0 &&
		    (rv == NULL || strcmp(v[i].rv, rv) == 0))
			return i;
	return -1;
}

static char *
rv_of(struct kt_resp *r)
{
	json_object *root = json_tokener_parse(r->body);
	char *rv = strdup(json_object_get_string(json_object_object_get(
	    json_object_object_get(root, "metadata"), "resourceVersion")));

	json_object_put(root);
	return rv;
}

Test(tail_broker, live_tail_prints_create_update_delete_in_order,
     .fini = end_test)
{
	struct tt t;
	char out[256], errp[256], tout[256], terr[256], path[256], body[256];
	char *argv[] = {KF_TAIL,      "--broker", t.pub,  "--resource",
			"configmaps", "-o",	  "json", NULL};
	char *targv[] = {KF_TAIL,      "--broker",   t.pub,
			 "--resource", "configmaps", NULL};
	struct ev_line ev[64];
	struct kt_resp r;
	char *rv1, *rv2, *text = NULL;
	pid_t tail, table;
	int n = 0, a, b, c;
	double end;

	setup(&t, "kf-taill");
	make_configmaps(t.ns, 2);
	start_broker(&t, false);
	snprintf(out, sizeof(out), "%s/live.out", t.dir);
	snprintf(errp, sizeof(errp), "%s/live.err", t.dir);
	snprintf(tout, sizeof(tout), "%s/table.out", t.dir);
	snprintf(terr, sizeof(terr), "%s/table.err", t.dir);
	tail = kt_proc_spawn(argv, out, errp, 0);
	table = kt_proc_spawn(targv, tout, terr, 0);

	/* The first frame: Init, the two objects, InitDone. */
	for (end = kt_now_s() + 15; kt_now_s() < end; usleep(50 * 1000)) {
		n = read_events(out, ev, 64);
		if (find_event(ev, n, 0, "InitDone", "", NULL) >= 0)
			break;
	}
	cr_assert_geq(find_event(ev, n, 0, "InitDone", "", NULL), 0,
		      "no first frame: %s", slurp(errp));
	cr_assert_eq(n, 4, "frame of %d lines", n);
	for (end = kt_now_s() + 15; kt_now_s() < end; usleep(50 * 1000)) {
		text = slurp(tout);
		if (strstr(text, "InitDone") != NULL)
			break;
		free(text);
		text = NULL;
	}
	cr_assert_not_null(text, "table tail: no frame: %s", slurp(terr));
	free(text);
	text = NULL;
	cr_assert_str_eq(ev[0].type, "Init");
	cr_assert_str_eq(ev[1].type, "InitApply");
	cr_assert_str_eq(ev[2].type, "InitApply");

	/* Create, update, delete one ConfigMap. */
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", t.ns);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"live\"},"
		 "\"data\":{\"k\":\"1\"}}");
	kt_request("POST", path, body, 0, &r);
	cr_assert_eq(r.status, 201, "%s", r.body);
	rv1 = rv_of(&r);
	kt_resp_fini(&r);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/live",
		 t.ns);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"live\"},"
		 "\"data\":{\"k\":\"2\"}}");
	kt_request("PUT", path, body, 0, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	rv2 = rv_of(&r);
	kt_resp_fini(&r);
	cr_assert_eq(kt_configmap_delete(t.ns, "live"), 200);

	for (end = kt_now_s() + 15; kt_now_s() < end; usleep(50 * 1000)) {
		n = read_events(out, ev, 64);
		if (find_event(ev, n, 4, "Delete", "live", NULL) >= 0)
			break;
	}
	a = find_event(ev, n, 4, "Apply", "live", rv1);
	b = find_event(ev, n, 4, "Apply", "live", rv2);
	c = find_event(ev, n, 4, "Delete", "live", NULL);
	cr_assert(a >= 4 && b > a && c > b,
		  "create %s at %d, update %s at %d, delete at %d of %d", rv1,
		  a, rv2, b, c, n);
	cr_assert_eq(n, 7, "only those three events: %d lines", n);

	/* The table tail saw the same, in kubectl's columns. */
	for (end = kt_now_s() + 10; kt_now_s() < end; usleep(50 * 1000)) {
		text = slurp(tout);
		if (strstr(text, "Delete ") != NULL)
			break;
		free(text);
		text = NULL;
	}
	cr_assert_not_null(text, "table tail: %s", slurp(terr));
	{
		char l1[256], l2[256];
		char *p1, *p2, *p3;

		snprintf(l1, sizeof(l1), "%s", t.ns);
		p1 = strstr(text, rv1);
		p2 = strstr(text, rv2);
		p3 = strstr(text, "Delete ");
		cr_assert(strncmp(text, "EVENT ", 6) == 0, "%s", text);
		cr_assert(p1 != NULL && p2 > p1 && p3 > p2, "%s", text);
		snprintf(l2, sizeof(l2), "%.*s", 60, p3);
		cr_assert(strstr(l2, l1) != NULL && strstr(l2, "live") != NULL,
			  "%s", l2);
	}
	free(text);

	/* SIGTERM and SIGINT: a clean exit, status 0. */
	kill(tail, SIGTERM);
	kill(table, SIGINT);
	cr_assert_eq(kt_proc_exit_code(tail, 5), 0);
	cr_assert_eq(kt_proc_exit_code(table, 5), 0);
	free(rv1);
	free(rv2);
	stop_broker_ok(&t);
	cleanup(&t);
}

/* Run the tail with argv to its exit; status and stderr. */
static int
run_tail(struct tt *t, char *const argv[], double limit, char **err)
{
	char out[256], errp[256];
	double t0 = kt_now_s();
	int rc;

	snprintf(out, sizeof(out), "%s/err.out", t->dir);
	snprintf(errp, sizeof(errp), "%s/err.err", t->dir);
	rc = kt_proc_exit_code(kt_proc_spawn(argv, out, errp, 0), limit + 5);
	cr_assert_leq(kt_now_s() - t0, limit, "took %.1f s", kt_now_s() - t0);
	*err = slurp(errp);
	return rc;
}

Test(tail_broker, errors_name_what_was_wrong, .fini = end_test)
{
	struct tt t;
	char gone[256], *err;
	char *unknown[] = {KF_TAIL,
			   "--broker",
			   t.pub,
			   "--resource",
			   "apps/v1/deployments",
			   "--snapshot",
			   NULL};
	char *scheme[] = {KF_TAIL,	"--broker",   "http://127.0.0.1:1",
			  "--resource", "configmaps", NULL};
	char *noport[] = {KF_TAIL,	"--broker",   "tcp://127.0.0.1",
			  "--resource", "configmaps", NULL};
	char *missing[] = {KF_TAIL,	 "--broker",  gone, "--resource",
			   "configmaps", "--timeout", "1",  NULL};
	char *closed[] = {KF_TAIL,	"--broker",   "tcp://127.0.0.1:9",
			  "--resource", "configmaps", "--timeout",
			  "1",		NULL};
	char *mixed[] = {KF_TAIL,      "--broker", t.pub, "--resource",
			 "configmaps", "-l",	   "a=b", NULL};

	setup(&t, "kf-taile");
	start_broker(&t, false);
	snprintf(gone, sizeof(gone), "ipc://%s/nobody.pub", t.dir);

	cr_assert_eq(run_tail(&t, unknown, 10, &err), 1);
	cr_assert(strstr(err, "no stream 'deployments.apps'") != NULL &&
		      strstr(err, "it serves: configmaps") != NULL,
		  "%s", err);
	free(err);

	cr_assert_eq(run_tail(&t, scheme, 5, &err), 2);
	cr_assert(strstr(err, "bad broker address --broker "
			      "http://127.0.0.1:1: use ipc://PATH") != NULL,
		  "%s", err);
	free(err);

	cr_assert_eq(run_tail(&t, noport, 5, &err), 2);
	cr_assert(strstr(err, "a tcp address needs HOST:PORT") != NULL, "%s",
		  err);
	free(err);

	cr_assert_eq(run_tail(&t, missing, 4, &err), 1);
	cr_assert(strstr(err, "no broker at") != NULL &&
		      strstr(err, "nobody.rep") != NULL &&
		      strstr(err, "gave up after 1.0 s") != NULL,
		  "%s", err);
	free(err);

	cr_assert_eq(run_tail(&t, closed, 4, &err), 1);
	cr_assert(strstr(err, "no broker at tcp://127.0.0.1:9") != NULL, "%s",
		  err);
	free(err);

	cr_assert_eq(run_tail(&t, mixed, 5, &err), 2);
	cr_assert(strstr(err, "direct mode") != NULL, "%s", err);
	free(err);
	stop_broker_ok(&t);
	cleanup(&t);
}

Test(tail_broker, namespace_filter_on_an_all_namespace_stream, .fini = end_test)
{
	struct tt t;
	char *extra[] = {"-n", t.ns, NULL};
	char *text, *err;

	setup(&t, "kf-tailn");
	make_configmaps(t.ns, 3);
	start_broker(&t, true);
	text = snapshot_until_equal(&t, extra, true, &err);
	free(text);
	free(err);
	stop_broker_ok(&t);
	cleanup(&t);
}

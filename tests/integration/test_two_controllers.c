/*
 * subscribers/examples/two_controllers.c against the real control plane:
 * the example runs as its own process (posix_spawn) on a namespace of this
 * test; ConfigMaps are created, changed and deleted there, one change at a
 * time, and both controllers must print a reconcile of each change with
 * the right result (key count, label verdict, "gone"). At exit the example
 * prints its watch counters: both controllers shared one watch request.
 *
 * Needs `scripts/cluster up` and `eval "$(scripts/cluster env)"`.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube.h"
#include "files.h"
#include "clock.h"
#include "proc.h"

/* The whole log (malloc'd, NUL-terminated). */
static char *
slurp(const char *path)
{
	char *s = kt_file_read(path, NULL);

	return s != NULL ? s : strdup("");
}

/* Wait until the log holds `line` (as a whole line), up to 20 s. */
static bool
wait_line(const char *log, const char *line)
{
	size_t n = strlen(line);

	for (int64_t end = kt_now_ms() + 20000; kt_now_ms() < end;) {
		char *all = slurp(log);
		bool found = false;

		for (char *p = strstr(all, line); p != NULL && !found;
		     p = strstr(p + 1, line))
			found = (p == all || p[-1] == '\n') && p[n] == '\n';
		free(all);
		if (found)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/* POST or PUT a ConfigMap; returns its new resourceVersion. */
static long long
put_cm(const char *method, const char *ns, const char *name, const char *labels,
       const char *data)
{
	char path[512], body[1024];
	struct kt_resp r;
	long long rv;

	if (strcmp(method, "POST") == 0)
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps",
			 ns);
	else
		snprintf(path, sizeof(path),
			 "/api/v1/namespaces/%s/configmaps/%s", ns, name);
	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":{%s}},"
		 "\"data\":{%s}}",
		 name, ns, labels, data);
	kt_request(method, path, body, 0, &r);
	cr_assert(r.status == 200 || r.status == 201, "%s %s: %ld %s", method,
		  name, r.status, r.body ? r.body : "");
	rv = kt_json_int(r.body, "resourceVersion");
	cr_assert_gt(rv, 0);
	kt_resp_fini(&r);
	return rv;
}

/* Both controllers reconciled this version of ns/name. */
static void
expect_both(const char *log, const char *ns, const char *name, long long rv,
	    int keys, const char *verdict)
{
	char want[512];

	snprintf(want, sizeof(want), "[keys] reconcile %s/%s rv=%lld keys=%d",
		 ns, name, rv, keys);
	cr_assert(wait_line(log, want), "no line: %s (log %s)", want, log);
	snprintf(want, sizeof(want), "[policy] reconcile %s/%s rv=%lld %s", ns,
		 name, rv, verdict);
	cr_assert(wait_line(log, want), "no line: %s (log %s)", want, log);
}

static long long
stat_of(const char *all, const char *line_prefix, const char *key)
{
	const char *line = strstr(all, line_prefix);
	char k[64];
	const char *p;

	cr_assert_not_null(line, "no \"%s\" line", line_prefix);
	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	cr_assert(p != NULL && p < strchr(line, '\n'), "no %s in: %.200s", key,
		  line);
	return strtoll(p + strlen(k), NULL, 10);
}

Test(two_controllers, both_reconcile_every_change_on_one_watch,
     .fini = kt_proc_reap_all, .timeout = 120)
{
	char ns[128], log[256], want[512];
	long long rv_pre, rv_a1, rv_b1, rv_a2, rv_pre2;
	char *all;
	pid_t child;
	char *argv[] = {KF_TWO_CTL,
			"--kubeconfig",
			(char *)kt_env("KUBEFAN_TEST_KUBECONFIG"),
			"--namespace",
			ns,
			"--label",
			"team",
			"--duration",
			"90",
			NULL};

	kt_unique("kf-twoctl", ns, sizeof(ns));
	kt_namespace(ns);
	snprintf(log, sizeof(log), "/tmp/%s.log", ns);
	unlink(log);
	/* One object exists before the example starts: the first list. */
	rv_pre = put_cm("POST", ns, "pre", "\"team\":\"red\"", "\"k\":\"v\"");

	child = kt_proc_spawn(argv, log, NULL, 0);
	cr_assert(wait_line(log, "synced objects=1"),
		  "example did not sync (log %s)", log);
	expect_both(log, ns, "pre", rv_pre, 1, "ok team=red");

	/* One change at a time, each seen by both controllers. */
	rv_a1 = put_cm("POST", ns, "cm-a", "\"team\":\"blue\"",
		       "\"x\":\"1\",\"y\":\"{\\\"z\\\":2}\"");
	expect_both(log, ns, "cm-a", rv_a1, 2, "ok team=blue");
	rv_b1 = put_cm("POST", ns, "cm-b", "", "\"x\":\"1\"");
	expect_both(log, ns, "cm-b", rv_b1, 1, "violation: no label \"team\"");
	rv_a2 = put_cm("PUT", ns, "cm-a", "",
		       "\"x\":\"1\",\"y\":\"2\",\"w\":\"3\"");
	expect_both(log, ns, "cm-a", rv_a2, 3, "violation: no label \"team\"");
	rv_pre2 = put_cm("PUT", ns, "pre", "\"team\":\"green\"", "");
	expect_both(log, ns, "pre", rv_pre2, 0, "ok team=green");
	cr_assert_eq(kt_configmap_delete(ns, "cm-b"), 200);
	snprintf(want, sizeof(want), "[keys] reconcile %s/cm-b gone", ns);
	cr_assert(wait_line(log, want), "no line: %s (log %s)", want, log);
	snprintf(want, sizeof(want), "[policy] reconcile %s/cm-b gone", ns);
	cr_assert(wait_line(log, want), "no line: %s (log %s)", want, log);

	/* Graceful stop: the counters at exit. */
	cr_assert_eq(kt_proc_stop(child, SIGTERM, 10), 0,
		     "the example did not exit cleanly (log %s)", log);
	all = slurp(log);
	cr_assert_eq(stat_of(all, "watch ", "watchers"), 1);
	/* Both controllers on one watch request, unless the watch had to
	 * be re-opened (another test restarting the API server): then one
	 * per retry or re-list at most. */
	{
		long long reqs = stat_of(all, "watch ", "watch_requests");
		long long again = stat_of(all, "watch ", "retries") +
				  stat_of(all, "watch ", "relists");

		cr_assert_geq(reqs, 1);
		cr_assert_leq(reqs, 1 + again, "%lld watch requests: %.400s",
			      reqs, strstr(all, "watch "));
		if (again == 0)
			cr_assert_eq(reqs, 1);
	}
	/* 5 versions and 1 delete, each reconciled by each controller. */
	cr_assert_geq(stat_of(all, "controller keys", "reconciles"), 6);
	cr_assert_geq(stat_of(all, "controller policy", "reconciles"), 6);
	cr_assert_eq(stat_of(all, "controller keys", "errors"), 0);
	cr_assert_eq(stat_of(all, "controller policy", "errors"), 0);
	free(all);
	unlink(log);
}

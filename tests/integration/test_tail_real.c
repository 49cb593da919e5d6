/*
 * kubefan-tail in direct mode (its own reflector) against the real API
 * server, through an API server restart and an etcd compaction (which,
 * followed by a restart, makes its watch resume from a compacted
 * revision: 410, re-list). Its view is rebuilt from nothing but its
 * `-o json` output, as a consumer of that output would:
 *
 *   Init       start of a full state: forget everything
 *   InitApply  an object of that state
 *   Apply      an object was added or changed
 *   Delete     an object is gone
 *   Lagged     the next Init..InitDone frame replaces the view
 *
 * and must equal a fresh list (name -> resourceVersion) after each fault.
 * It restarts the API server twice; other suites tolerate that.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube.h"
#include "proc.h"

#define TT_MAX 256

/* The view rebuilt from the output: name -> resourceVersion. */
struct tt_view {
	char name[TT_MAX][64];
	char rv[TT_MAX][32];
	int n;
	int synced; /* an InitDone was seen */
	long lines; /* JSON lines read so far */
	long inits;
	long offset; /* bytes of the output consumed */
};

static pid_t tt_pid;

static int
tt_find(const struct tt_view *v, const char *name)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->name[i], name) == 0)
			return i;
	return -1;
}

static void
tt_apply(struct tt_view *v, const char *type, json_object *obj)
{
	json_object *md, *jn, *jrv;
	const char *name, *rv;
	int i;

	if (strcmp(type, "Init") == 0) {
		v->n = 0;
		v->synced = 0;
		v->inits++;
		return;
	}
	if (strcmp(type, "InitDone") == 0) {
		v->synced = 1;
		return;
	}
	if (strcmp(type, "Lagged") == 0)
		return;
	cr_assert(obj != NULL &&
		      json_object_object_get_ex(obj, "metadata", &md),
		  "%s without an object", type);
	cr_assert(json_object_object_get_ex(md, "name", &jn));
	cr_assert(json_object_object_get_ex(md, "resourceVersion", &jrv));
	name = json_object_get_string(jn);
	rv = json_object_get_string(jrv);
	i = tt_find(v, name);
	if (strcmp(type, "Delete") == 0) {
		cr_assert_geq(i, 0, "Delete of %s, which the view lacks", name);
		v->n--;
		memcpy(v->name[i], v->name[v->n], sizeof(v->name[i]));
		memcpy(v->rv[i], v->rv[v->n], sizeof(v->rv[i]));
		return;
	}
	cr_assert(strcmp(type, "InitApply") == 0 || strcmp(type, "Apply") == 0,
		  "unknown event type %s", type);
	if (i < 0) {
		cr_assert_lt(v->n, TT_MAX);
		i = v->n++;
	}
	snprintf(v->name[i], sizeof(v->name[i]), "%s", name);
	snprintf(v->rv[i], sizeof(v->rv[i]), "%s", rv);
}

/* Read the whole lines written since the last call. */
static void
tt_read(struct tt_view *v, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	cr_assert_not_null(f);
	fseek(f, v->offset, SEEK_SET);
	while ((len = getline(&line, &cap, f)) > 0) {
		json_object *root, *jt, *jo = NULL;

		if (line[len - 1] != '\n')
			break; /* a partial line: read it next time */
		v->offset += len;
		v->lines++;
		root = json_tokener_parse(line);
		cr_assert_not_null(root, "not JSON: %.200s", line);
		cr_assert(json_object_object_get_ex(root, "type", &jt));
		json_object_object_get_ex(root, "object", &jo);
		tt_apply(v, json_object_get_string(jt), jo);
		json_object_put(root);
	}
	free(line);
	fclose(f);
}

static int
tt_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "name=rv name=rv ..." sorted: the view's or a fresh list's. */
static void
tt_join(char **v, int n, char *out, size_t len)
{
	qsort(v, (size_t)n, sizeof(*v), tt_cmp);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		strncat(out, v[i], len - strlen(out) - 1);
		strncat(out, " ", len - strlen(out) - 1);
	}
}

static void
tt_view_text(const struct tt_view *v, char *out, size_t len)
{
	char *p[TT_MAX];

	for (int i = 0; i < v->n; i++) {
		p[i] = malloc(100);
		snprintf(p[i], 100, "%s=%s", v->name[i], v->rv[i]);
	}
	tt_join(p, v->n, out, len);
	for (int i = 0; i < v->n; i++)
		free(p[i]);
}

/* 0 when the API server did not answer (restarting). */
static int
tt_fresh_text(const char *ns, char *out, size_t len)
{
	char path[256], *p[TT_MAX];
	struct kt_resp r;
	json_object *root, *items;
	int n;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	kt_request("GET", path, NULL, 0, &r);
	if (r.status != 200) {
		kt_resp_fini(&r);
		return 0;
	}
	root = json_tokener_parse(r.body);
	cr_assert(json_object_object_get_ex(root, "items", &items));
	n = (int)json_object_array_length(items);
	cr_assert_leq(n, TT_MAX);
	for (int i = 0; i < n; i++) {
		json_object *md, *jn, *jrv;

		json_object_object_get_ex(json_object_array_get_idx(items, i),
					  "metadata", &md);
		json_object_object_get_ex(md, "name", &jn);
		json_object_object_get_ex(md, "resourceVersion", &jrv);
		p[i] = malloc(100);
		snprintf(p[i], 100, "%s=%s", json_object_get_string(jn),
			 json_object_get_string(jrv));
	}
	tt_join(p, n, out, len);
	for (int i = 0; i < n; i++)
		free(p[i]);
	json_object_put(root);
	kt_resp_fini(&r);
	return 1;
}

/* Wait until the view rebuilt from the output equals a fresh list. */
static void
tt_converge(struct tt_view *v, const char *out, const char *ns,
	    const char *what)
{
	static char a[TT_MAX * 100], b[TT_MAX * 100];

	for (int t = 0; t < 600; t++) {
		cr_assert_not(kt_proc_wait(tt_pid, 0, NULL),
			      "kubefan-tail exited (%s)", what);
		tt_read(v, out);
		if (v->synced && tt_fresh_text(ns, a, sizeof(a))) {
			tt_view_text(v, b, sizeof(b));
			if (strcmp(a, b) == 0)
				return;
		}
		usleep(100 * 1000);
	}
	cr_assert(false,
		  "%s: kubefan-tail's view\n  %s\ndiffers from a "
		  "fresh list\n  %s",
		  what, b, a);
}

static int
tt_file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

Test(tail_real, survives_a_restart_and_a_compaction_with_an_exact_view,
     .timeout = 300, .fini = kt_proc_reap_all)
{
	char ns[64], other[64], name[64], out[256], err[256];
	char *argv[] = {KF_TAIL,      "--kubeconfig", NULL, "--resource",
			"configmaps", "-n",	      ns,   "-o",
			"json",	      "-v",	      NULL};
	struct tt_view *v = calloc(1, sizeof(*v));
	long inits;

	kt_unique("kft-tail", ns, sizeof(ns));
	kt_unique("kft-bump", other, sizeof(other));
	kt_namespace(ns);
	kt_namespace(other);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "cm-%02d", i);
		cr_assert_eq(kt_configmap_create(ns, name, "k", "v"), 201);
	}
	snprintf(out, sizeof(out), "/tmp/%s.out", ns);
	snprintf(err, sizeof(err), "/tmp/%s.err", ns);
	argv[2] = (char *)kt_env("KUBEFAN_TEST_KUBECONFIG");
	tt_pid = kt_proc_spawn(argv, out, err, 0);

	tt_converge(v, out, ns, "first list");
	cr_assert_eq(v->n, 20);
	cr_assert_eq(v->inits, 1);

	/* A restart mid-watch, with changes while it is down and after. */
	kt_configmap_update(ns, "cm-01", "k", "before-restart");
	cr_assert_eq(kt_cluster("restart-apiserver"), 0);
	cr_assert_eq(kt_configmap_create(ns, "after-restart", "k", "v"), 201);
	kt_configmap_update(ns, "cm-02", "k", "after-restart");
	cr_assert_eq(kt_configmap_delete(ns, "cm-03"), 200);
	tt_converge(v, out, ns, "after an API server restart");
	cr_assert_eq(v->n, 20);

	/* Move the revision on elsewhere, compact, restart: the watch
	 * resumes from a compacted revision, gets 410 and lists again;
	 * the output shows only what changed (no new Init). */
	inits = v->inits;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "bump-%d", i);
		kt_configmap_create(other, name, "k", "v");
	}
	kt_configmap_update(ns, "cm-04", "k", "before-compaction");
	cr_assert_gt(kt_etcd_compact(), 0);
	cr_assert_eq(kt_cluster("restart-apiserver"), 0);
	cr_assert_eq(kt_configmap_delete(ns, "cm-05"), 200);
	kt_configmap_update(ns, "cm-06", "k", "after-compaction");
	cr_assert_eq(kt_configmap_create(ns, "after-compaction", "k", "v"),
		     201);
	tt_converge(v, out, ns, "after a compaction and restart");
	cr_assert_eq(v->n, 20);
	cr_assert_eq(v->inits, inits, "a re-list printed a new Init frame");
	cr_assert(tt_file_has(err, "KF-WATCH-GONE"),
		  "no 410 in kubefan-tail's log (%s): the fault did not bite",
		  err);

	cr_assert_eq(kt_proc_stop(tt_pid, SIGTERM, 10), 0,
		     "kubefan-tail did not exit cleanly");
	tt_read(v, out);
	unlink(out);
	unlink(err);
	free(v);
	kt_configmap_delete(other, "bump-0");
}

/*
 * The watcher and reflector against the real control plane of
 * scripts/cluster: paged and streaming lists of 2000 ConfigMaps, changes
 * seen in order, a cluster-scoped kind with a label selector, a client
 * certificate kubeconfig, and (in one test, run last and quickly, as it
 * disrupts everyone) a kube-apiserver restart and an etcd compaction.
 * Every test works in namespaces of its own.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube.h"
#include "kubefan/reflector.h"
#include "watcher_int.h"

/* ---- recording events ---- */

struct rec {
	pthread_mutex_t mu;
	int n, cap;
	kf_event_type *type;
	char (*name)[80];
	char (*rv)[24];
	int init_done;
};

static void
rec_event(void *arg, const kf_event *e)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4096;
		r->type = realloc(r->type, r->cap * sizeof(*r->type));
		r->name = realloc(r->name, r->cap * sizeof(*r->name));
		r->rv = realloc(r->rv, r->cap * sizeof(*r->rv));
	}
	r->type[r->n] = e->type;
	snprintf(r->name[r->n], 80, "%s", e->obj ? kf_object_name(e->obj) : "");
	snprintf(r->rv[r->n], 24, "%s",
		 e->obj ? kf_object_resource_version(e->obj) : "");
	r->n++;
	if (e->type == KF_EV_INIT_DONE)
		r->init_done++;
	pthread_mutex_unlock(&r->mu);
}

static bool
rec_wait(struct rec *r, int init_done, int n, int timeout_ms)
{
	bool ok = false;

	for (int t = 0; t < timeout_ms && !ok; t += 10) {
		pthread_mutex_lock(&r->mu);
		ok = r->init_done >= init_done && r->n >= n;
		pthread_mutex_unlock(&r->mu);
		if (!ok)
			usleep(10000);
	}
	return ok;
}

static void
rec_fini(struct rec *r)
{
	free(r->type);
	free(r->name);
	free(r->rv);
}

static kf_conn *
conn_token(void)
{
	char err[512];
	kf_conn *c;

	cr_assert_eq(kf_conn_from_kubeconfig(kt_env("KUBEFAN_TEST_KUBECONFIG"),
					     NULL, err, sizeof(err), &c),
		     KF_OK, "%s", err);
	return c;
}

struct fill {
	const char *ns;
	int from, to;
};

static void *
fill_main(void *arg)
{
	struct fill *f = arg;
	char name[64];

	for (int i = f->from; i < f->to; i++) {
		snprintf(name, sizeof(name), "cm-%05d", i);
		cr_assert_eq(kt_configmap_create(f->ns, name, "k", "v"), 201);
	}
	return NULL;
}

/* n ConfigMaps from two threads. */
static void
fill_namespace(const char *ns, int n)
{
	pthread_t t[2];
	struct fill f[2] = {{ns, 0, n / 2}, {ns, n / 2, n}};

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, fill_main, &f[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

static void
opts_for(kf_watcher_opts *o, const char *ns, kf_list_mode mode)
{
	kf_watcher_opts_init(o);
	o->resource = "configmaps";
	o->namespace_ = ns;
	o->list_mode = mode;
	o->backoff_initial_ms = 200;
	o->backoff_max_ms = 2000;
}

static void
run_list(kf_conn *c, const char *ns, kf_list_mode mode, unsigned page,
	 int expect, kf_watcher_stats *st)
{
	kf_watcher_opts o;
	struct rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
	kf_watcher *w;
	kf_loop *l;
	int applies = 0;

	opts_for(&o, ns, mode);
	o.page_size = page;
	cr_assert_eq(kf_loop_alloc(&l), KF_OK);
	cr_assert_eq(kf_loop_start(l), KF_OK);
	cr_assert_eq(kf_watcher_alloc(c, &o, &w), KF_OK);
	kf_watcher_set_handlers(w, rec_event, NULL, &r);
	kf_watcher_start(w, l);
	cr_assert(rec_wait(&r, 1, 0, 30000), "no list within 30 s");
	kf_watcher_stop(w);
	for (int i = 0; i < r.n; i++)
		applies += r.type[i] == KF_EV_INIT_APPLY;
	cr_assert_eq(r.type[0], KF_EV_INIT);
	cr_assert_eq(applies, expect);
	cr_assert_str_eq(r.name[1], "cm-00000");
	kf_watcher_stats_get(w, st);
	kf_watcher_free(w);
	kf_loop_free(l);
	rec_fini(&r);
}

Test(real, a_list_of_2000_configmaps_paged_and_streamed)
{
	char ns[64];
	kf_conn *c = conn_token();
	kf_watcher_stats st;

	kt_unique("kfw-list", ns, sizeof(ns));
	kt_namespace(ns);
	fill_namespace(ns, 2000);

	run_list(c, ns, KF_LIST_PAGED, 500, 2000, &st);
	cr_assert_eq(st.list_pages, 4);
	cr_assert_eq(st.lists, 1);
	cr_assert_eq(st.stream_lists, 0);

	run_list(c, ns, KF_LIST_PAGED, 300, 2000, &st);
	cr_assert_eq(st.list_pages, 7);

	/* v1.37 serves streaming lists (WatchList on by default). */
	run_list(c, ns, KF_LIST_AUTO, 0, 2000, &st);
	cr_assert_eq(st.stream_lists, 1);
	cr_assert_eq(st.list_pages, 0);
	kf_conn_free(c);
}

static void
changes_in_order(kf_conn *c, kf_list_mode mode)
{
	char ns[64];
	kf_watcher_opts o;
	struct rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
	kf_watcher *w;
	kf_loop *l;

	kt_unique("kfw-order", ns, sizeof(ns));
	kt_namespace(ns);
	kt_configmap_create(ns, "pre", "k", "v");
	opts_for(&o, ns, mode);
	kf_loop_alloc(&l);
	kf_loop_start(l);
	cr_assert_eq(kf_watcher_alloc(c, &o, &w), KF_OK);
	kf_watcher_set_handlers(w, rec_event, NULL, &r);
	kf_watcher_start(w, l);
	cr_assert(rec_wait(&r, 1, 3, 10000));
	cr_assert_eq(kt_configmap_create(ns, "x", "k", "1"), 201);
	cr_assert_eq(kt_configmap_update(ns, "x", "k", "2"), 200);
	cr_assert_eq(kt_configmap_create(ns, "y", "k", "1"), 201);
	cr_assert_eq(kt_configmap_delete(ns, "x"), 200);
	cr_assert(rec_wait(&r, 1, 7, 10000));
	pthread_mutex_lock(&r.mu);
	cr_assert_eq(r.n, 7);
	cr_assert_eq(r.type[3], KF_EV_APPLY);
	cr_assert_str_eq(r.name[3], "x");
	cr_assert_eq(r.type[4], KF_EV_APPLY);
	cr_assert_str_eq(r.name[4], "x");
	cr_assert_eq(r.type[5], KF_EV_APPLY);
	cr_assert_str_eq(r.name[5], "y");
	cr_assert_eq(r.type[6], KF_EV_DELETE);
	cr_assert_str_eq(r.name[6], "x");
	for (int i = 4; i < 7; i++)
		cr_assert_gt(atoll(r.rv[i]), atoll(r.rv[i - 1]));
	pthread_mutex_unlock(&r.mu);
	kf_watcher_free(w);
	kf_loop_free(l);
	rec_fini(&r);
}

Test(real, create_update_delete_are_seen_in_order)
{
	kf_conn *c = conn_token();

	changes_in_order(c, KF_LIST_PAGED);
	changes_in_order(c, KF_LIST_AUTO);
	kf_conn_free(c);
}

Test(real, a_client_certificate_kubeconfig_lists_and_watches)
{
	char err[512];
	kf_conn *c;

	cr_assert_eq(
	    kf_conn_from_kubeconfig(kt_env("KUBEFAN_TEST_KUBECONFIG_CERT"),
				    NULL, err, sizeof(err), &c),
	    KF_OK, "%s", err);
	changes_in_order(c, KF_LIST_AUTO);
	kf_conn_free(c);
}

static void
clusterrole(const char *method, const char *name, const char *label)
{
	char body[512], path[256];
	struct kt_resp r;

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":"
		 "\"ClusterRole\",\"metadata\":{\"name\":\"%s\",\"labels\":{"
		 "\"kfw\":\"%s\"}},\"rules\":[]}",
		 name, label);
	snprintf(path, sizeof(path),
		 "/apis/rbac.authorization.k8s.io/v1/clusterroles%s%s",
		 method[0] == 'D' ? "/" : "", method[0] == 'D' ? name : "");
	kt_request(method, path, method[0] == 'D' ? NULL : body, 0, &r);
	cr_assert(r.status == 200 || r.status == 201, "%s %s: %ld %s", method,
		  name, r.status, r.body);
	kt_resp_fini(&r);
}

Test(real, a_cluster_scoped_kind_with_a_label_selector)
{
	char tag[64], n1[80], n2[80], n3[80], sel[96];
	kf_conn *c = conn_token();
	kf_watcher_opts o;
	struct rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
	kf_watcher *w;
	kf_loop *l;

	kt_unique("t", tag, sizeof(tag));
	snprintf(n1, sizeof(n1), "kfw-%s-1", tag);
	snprintf(n2, sizeof(n2), "kfw-%s-2", tag);
	snprintf(n3, sizeof(n3), "kfw-%s-other", tag);
	clusterrole("POST", n1, tag);
	clusterrole("POST", n3, "other");
	kf_watcher_opts_init(&o);
	o.group = "rbac.authorization.k8s.io";
	o.resource = "clusterroles";
	snprintf(sel, sizeof(sel), "kfw=%s", tag);
	o.label_selector = sel;
	kf_loop_alloc(&l);
	kf_loop_start(l);
	cr_assert_eq(kf_watcher_alloc(c, &o, &w), KF_OK);
	kf_watcher_set_handlers(w, rec_event, NULL, &r);
	kf_watcher_start(w, l);
	cr_assert(rec_wait(&r, 1, 3, 10000));
	clusterrole("POST", n2, tag);
	clusterrole("DELETE", n1, tag);
	clusterrole("DELETE", n3, tag);
	cr_assert(rec_wait(&r, 1, 5, 10000));
	usleep(300000);
	pthread_mutex_lock(&r.mu);
	cr_assert_eq(r.n, 5, "the selector keeps %s out", n3);
	cr_assert_str_eq(r.name[1], n1);
	cr_assert_eq(r.type[3], KF_EV_APPLY);
	cr_assert_str_eq(r.name[3], n2);
	cr_assert_eq(r.type[4], KF_EV_DELETE);
	cr_assert_str_eq(r.name[4], n1);
	pthread_mutex_unlock(&r.mu);
	clusterrole("DELETE", n2, tag);
	kf_watcher_free(w);
	kf_loop_free(l);
	rec_fini(&r);
	kf_conn_free(c);
}

/* ---- restart and compaction ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "name@rv" of every ConfigMap in ns, sorted, joined by spaces. */
static char *
fresh_list(const char *ns)
{
	char path[256];
	struct kt_resp r;
	json_object *root, *items;
	char **v, *out;
	size_t n, len = 1;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	kt_request("GET", path, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	root = json_tokener_parse(r.body);
	json_object_object_get_ex(root, "items", &items);
	n = json_object_array_length(items);
	v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		json_object *md, *nm, *rv;

		json_object_object_get_ex(json_object_array_get_idx(items, i),
					  "metadata", &md);
		json_object_object_get_ex(md, "name", &nm);
		json_object_object_get_ex(md, "resourceVersion", &rv);
		v[i] = malloc(128);
		snprintf(v[i], 128, "%s@%s", json_object_get_string(nm),
			 json_object_get_string(rv));
		len += strlen(v[i]) + 1;
	}
	qsort(v, n, sizeof(*v), cmp_str);
	out = calloc(1, len);
	for (size_t i = 0; i < n; i++) {
		strcat(out, v[i]);
		strcat(out, " ");
		free(v[i]);
	}
	free(v);
	json_object_put(root);
	kt_resp_fini(&r);
	return out;
}

static char *
store_list(kf_store *s)
{
	kf_state *st;
	char **v, *out;
	size_t n, len = 1;

	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	n = kf_state_len(st);
	v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		kf_object *o = kf_state_at(st, i);

		v[i] = malloc(128);
		snprintf(v[i], 128, "%s@%s", kf_object_name(o),
			 kf_object_resource_version(o));
		len += strlen(v[i]) + 1;
	}
	qsort(v, n, sizeof(*v), cmp_str);
	out = calloc(1, len);
	for (size_t i = 0; i < n; i++) {
		strcat(out, v[i]);
		strcat(out, " ");
		free(v[i]);
	}
	free(v);
	kf_state_free(st);
	return out;
}

/* Wait until the store equals a fresh list. */
static bool
converges(kf_store *s, const char *ns, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 200) {
		char *a = fresh_list(ns), *b = store_list(s);
		bool eq = strcmp(a, b) == 0;

		free(a);
		free(b);
		if (eq)
			return true;
		usleep(200000);
	}
	return false;
}

Test(real, survives_an_apiserver_restart_and_an_etcd_compaction, .timeout = 240)
{
	char ns[64], other[64], name[64];
	kf_conn *c = conn_token();
	kf_watcher_opts o;
	kf_watcher *w;
	kf_writer *wr;
	kf_store *s;
	kf_reflector *r;
	kf_loop *l;
	kf_watcher_stats st0, st;

	kt_unique("kfw-fault", ns, sizeof(ns));
	kt_unique("kfw-bump", other, sizeof(other));
	kt_namespace(ns);
	kt_namespace(other);
	fill_namespace(ns, 50);
	opts_for(&o, ns, KF_LIST_AUTO);
	cr_assert_eq(kf_store_alloc(&wr, &s), KF_OK);
	cr_assert_eq(kf_watcher_alloc(c, &o, &w), KF_OK);
	cr_assert_eq(kf_reflector_alloc(w, wr, &r), KF_OK);
	kf_loop_alloc(&l);
	kf_loop_start(l);
	kf_reflector_start(r, l);
	cr_assert_eq(kf_store_wait_until_ready(s, 20000), KF_OK);
	cr_assert_eq(kf_store_len(s), 50);
	kf_watcher_stats_get(w, &st0);

	/* A restart in the middle of the watch: resume, lose nothing. */
	kt_configmap_update(ns, "cm-00001", "k", "before-restart");
	cr_assert_eq(kt_cluster("restart-apiserver"), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "after-%d", i);
		cr_assert_eq(kt_configmap_create(ns, name, "k", "v"), 201);
	}
	kt_configmap_update(ns, "cm-00002", "k", "after-restart");
	kt_configmap_delete(ns, "cm-00003");
	cr_assert(converges(s, ns, 60000), "store differs after restart");
	kf_watcher_stats_get(w, &st);
	cr_assert_gt(st.watches, st0.watches);

	/* Compaction: move the revision on elsewhere (this watch sees
	 * nothing of it), compact, and restart so the watch cache starts
	 * past our version: 410, re-list, same contents as a fresh list. */
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "bump-%d", i);
		kt_configmap_create(other, name, "k", "v");
	}
	cr_assert_gt(kt_etcd_compact(), 0);
	cr_assert_eq(kt_cluster("restart-apiserver"), 0);
	kt_configmap_delete(ns, "cm-00004");
	kt_configmap_update(ns, "cm-00005", "k", "after-compaction");
	cr_assert(converges(s, ns, 60000), "store differs after compaction");
	kf_watcher_stats_get(w, &st);
	cr_assert_geq(st.gone, 1, "no 410 seen");
	cr_assert_geq(st.relists, 1);
	cr_assert_eq(kf_store_wait_until_ready(s, 20000), KF_OK);

	kf_reflector_free(r);
	kf_loop_free(l);
	kf_store_free(s);
	kf_writer_free(wr);
	kf_conn_free(c);
}

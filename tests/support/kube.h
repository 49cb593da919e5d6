/*
 * Test helpers for the real control plane started by scripts/cluster: plain
 * libcurl requests as the admin user, object creation, etcd compaction and
 * control-plane restarts. Independent of the code under test, so a bug in
 * kubefan's HTTP side cannot hide itself.
 *
 * The settings come from `scripts/cluster env` (KUBEFAN_TEST_*); a helper
 * called without them aborts the test with a message saying so.
 */
#ifndef KF_TEST_KUBE_H
#define KF_TEST_KUBE_H

#include <stddef.h>

struct kt_resp {
	long status; /* HTTP status, or -1 when the request failed */
	char *body;  /* NUL-terminated; free with kt_resp_fini */
	size_t len;
};

/* The value of a KUBEFAN_TEST_* variable; aborts the test when unset. */
const char *kt_env(const char *name);

/* One request to the API server as admin. body may be NULL. With
 * max_ms > 0 the request is cut after that long (for watches) and the
 * body holds what arrived. */
void kt_request(const char *method, const char *path, const char *body,
		long max_ms, struct kt_resp *out);
void kt_resp_fini(struct kt_resp *r);

/* A name unique to this process and call: prefix-<pid>-<n>. */
void kt_unique(const char *prefix, char *buf, size_t len);

/* Create a namespace (ok if it exists); abort on failure. */
void kt_namespace(const char *name);

/* Create, replace (PUT), or delete a ConfigMap with one data key. Return
 * the HTTP status. */
long kt_configmap_create(const char *ns, const char *name, const char *key,
			 const char *value);
long kt_configmap_update(const char *ns, const char *name, const char *key,
			 const char *value);
long kt_configmap_delete(const char *ns, const char *name);

/* Compact etcd at its current revision; returns the revision. */
long kt_etcd_compact(void);

/* Run `scripts/cluster VERB` (restart-apiserver, stop-apiserver, ...);
 * returns its exit status. */
int kt_cluster(const char *verb);

/* Read an integer field "key": N (or "key":"N") from JSON text; -1 when
 * absent. Enough for resourceVersion and counters in test assertions. */
long long kt_json_int(const char *json, const char *key);

#endif

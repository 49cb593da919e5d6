/*
 * Proves the harness: the real API server answers through the kubeconfig
 * scripts/cluster wrote, and a ConfigMap can be created, listed and watched
 * with plain libcurl.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "kube.h"

Test(harness, api_server_reports_version_and_ready)
{
	struct kt_resp r;

	kt_request("GET", "/version", NULL, 0, &r);
	cr_assert_eq(r.status, 200, "GET /version: %ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"gitVersion\"") != NULL);
	kt_resp_fini(&r);

	kt_request("GET", "/readyz", NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	kt_resp_fini(&r);
}

Test(harness, configmap_is_created_listed_and_watched)
{
	char ns[64], a[64], b[64], path[512];
	struct kt_resp r;
	long long rv;

	kt_unique("harness", ns, sizeof(ns));
	kt_namespace(ns);
	kt_unique("cm-a", a, sizeof(a));
	kt_unique("cm-b", b, sizeof(b));
	cr_assert_eq(kt_configmap_create(ns, a, "k", "v1"), 201);

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	kt_request("GET", path, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, a) != NULL, "list lacks %s: %s", a, r.body);
	rv = kt_json_int(r.body, "resourceVersion");
	cr_assert_gt(rv, 0);
	kt_resp_fini(&r);

	/* A watch from the list's version sees only what came after it. */
	cr_assert_eq(kt_configmap_create(ns, b, "k", "v2"), 201);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/%s/configmaps?watch=1&"
		 "resourceVersion=%lld&timeoutSeconds=1",
		 ns, rv);
	kt_request("GET", path, NULL, 5000, &r);
	cr_assert_eq(r.status, 200, "watch: %ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"type\":\"ADDED\"") != NULL, "%s", r.body);
	cr_assert(strstr(r.body, b) != NULL);
	cr_assert(strstr(r.body, a) == NULL, "watch repeated %s", a);
	kt_resp_fini(&r);

	cr_assert_eq(kt_configmap_delete(ns, a), 200);
	cr_assert_eq(kt_configmap_delete(ns, a), 404);
}

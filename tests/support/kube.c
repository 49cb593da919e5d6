/* Test helpers for the real control plane; see kube.h. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kube.h"

const char *
kt_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0') {
		fprintf(stderr,
			"%s is not set: integration tests need the control "
			"plane; run scripts/test, or scripts/cluster up and "
			"eval \"$(scripts/cluster env)\"\n",
			name);
		abort();
	}
	return v;
}

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct kt_resp *r = arg;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, p, size * n);
	r->len += size * n;
	nb[r->len] = '\0';
	r->body = nb;
	return size * n;
}

void
kt_request(const char *method, const char *path, const char *body, long max_ms,
	   struct kt_resp *out)
{
	char url[2048], auth[512];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	out->status = -1;
	snprintf(url, sizeof(url), "%s%s", kt_env("KUBEFAN_TEST_SERVER"), path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		 kt_env("KUBEFAN_TEST_TOKEN"));
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CAINFO, kt_env("KUBEFAN_TEST_CA"));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, max_ms > 0 ? max_ms : 30000L);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK || (max_ms > 0 && rc == CURLE_OPERATION_TIMEDOUT))
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if (out->body == NULL)
		out->body = calloc(1, 1);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

void
kt_resp_fini(struct kt_resp *r)
{
	free(r->body);
	r->body = NULL;
}

void
kt_unique(const char *prefix, char *buf, size_t len)
{
	static int n;

	snprintf(buf, len, "%s-%d-%d", prefix, (int)getpid(),
		 __atomic_add_fetch(&n, 1, __ATOMIC_RELAXED));
}

void
kt_namespace(const char *name)
{
	char body[512];
	struct kt_resp r;

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
		 "\"metadata\":{\"name\":\"%s\"}}",
		 name);
	kt_request("POST", "/api/v1/namespaces", body, 0, &r);
	if (r.status != 201 && r.status != 409) {
		fprintf(stderr, "creating namespace %s: HTTP %ld %s\n", name,
			r.status, r.body);
		abort();
	}
	kt_resp_fini(&r);
}

static long
configmap_send(const char *method, const char *ns, const char *name,
	       const char *key, const char *value)
{
	char path[512], *body;
	struct kt_resp r;
	long status;
	size_t n = strlen(value) + strlen(name) + strlen(key) + 256;

	body = malloc(n);
	snprintf(body, n,
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
		 "\"data\":{\"%s\":\"%s\"}}",
		 name, ns, key, value);
	if (strcmp(method, "POST") == 0)
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps",
			 ns);
	else
		snprintf(path, sizeof(path),
			 "/api/v1/namespaces/%s/configmaps/%s", ns, name);
	kt_request(method, path, body, 0, &r);
	status = r.status;
	kt_resp_fini(&r);
	free(body);
	return status;
}

long
kt_configmap_create(const char *ns, const char *name, const char *key,
		    const char *value)
{
	return configmap_send("POST", ns, name, key, value);
}

long
kt_configmap_update(const char *ns, const char *name, const char *key,
		    const char *value)
{
	return configmap_send("PUT", ns, name, key, value);
}

long
kt_configmap_delete(const char *ns, const char *name)
{
	char path[512];
	struct kt_resp r;
	long status;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", ns,
		 name);
	kt_request("DELETE", path, NULL, 0, &r);
	status = r.status;
	kt_resp_fini(&r);
	return status;
}

long
kt_etcd_compact(void)
{
	char cmd[1024];
	FILE *p;
	long rev = -1;

	snprintf(cmd, sizeof(cmd), "'%s' compact",
		 kt_env("KUBEFAN_CLUSTER_SCRIPT"));
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	if (fscanf(p, "%ld", &rev) != 1)
		rev = -1;
	pclose(p);
	return rev;
}

int
kt_cluster(const char *verb)
{
	char cmd[1024];
	int rc;

	snprintf(cmd, sizeof(cmd), "'%s' %s >/dev/null",
		 kt_env("KUBEFAN_CLUSTER_SCRIPT"), verb);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

long long
kt_json_int(const char *json, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (p == NULL)
		return -1;
	p += strlen(pat);
	while (*p == ' ' || *p == '"')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	return strtoll(p, NULL, 10);
}

/*
 * kf_conn against the real API server of scripts/cluster: each credential
 * source applied with kfi_conn_apply() to a plain curl easy handle, and
 * the server's own view of who we are (SelfSubjectReview) checked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conn_int.h"
#include "files.h"
#include "kube.h"
#include "kubeconfig.h"
#include "kubefan/conn.h"

#define REVIEW                                                                 \
	"{\"apiVersion\":\"authentication.k8s.io/v1\","                        \
	"\"kind\":\"SelfSubjectReview\"}"

struct resp {
	long status;
	CURLcode rc;
	char *body;
	size_t len;
	char err[CURL_ERROR_SIZE];
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, p, size * n);
	r->len += size * n;
	nb[r->len] = '\0';
	r->body = nb;
	return size * n;
}

static bool
restarting(const struct resp *r)
{
	return r->rc == CURLE_COULDNT_CONNECT || r->rc == CURLE_GOT_NOTHING ||
	       r->rc == CURLE_RECV_ERROR || r->rc == CURLE_SEND_ERROR ||
	       r->status == 503;
}

/* One request through kfi_conn_apply; body NULL for GET. */
static void
request(kf_conn *c, const char *path, const char *body, struct resp *r)
{
	char url[1024], err[512] = "";
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	kf_err e;

	memset(r, 0, sizeof(*r));
	cr_assert_not_null(h);
	e = kfi_conn_apply(c, h, &hdrs, err, sizeof(err));
	cr_assert_eq(e, KF_OK, "apply: %s", err);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	snprintf(url, sizeof(url), "%s%s", kf_conn_server(c), path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	/* Other suites restart the API server: ride out a restart (refused
	 * connections, 503 while it starts) for up to a minute. */
	for (int tries = 0;; tries++) {
		r->rc = curl_easy_perform(h);
		r->status = -1;
		if (r->rc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE,
					  &r->status);
		if (tries == 300 || !restarting(r))
			break;
		free(r->body);
		r->body = NULL;
		r->len = 0;
		usleep(200 * 1000);
	}
	if (r->body == NULL)
		r->body = calloc(1, 1);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
}

static void
expect_status(kf_conn *c, const char *path, const char *body, long want,
	      const char *contains)
{
	struct resp r;

	request(c, path, body, &r);
	cr_assert_eq(r.rc, CURLE_OK, "%s: curl: %s (%s)", path,
		     curl_easy_strerror(r.rc), r.err);
	cr_assert_eq(r.status, want, "%s: HTTP %ld: %.300s", path, r.status,
		     r.body);
	if (contains != NULL)
		cr_assert(strstr(r.body, contains) != NULL,
			  "%s: no %s in %.300s", path, contains, r.body);
	free(r.body);
}

/* GET /version and /api/v1/namespaces, then ask who we are. */
static void
expect_admin(kf_conn *c, const char *username)
{
	char who[256];

	expect_status(c, "/version", NULL, 200, "\"gitVersion\"");
	expect_status(c, "/api/v1/namespaces", NULL, 200,
		      "\"name\":\"default\"");
	snprintf(who, sizeof(who), "\"username\":\"%s\"", username);
	expect_status(c, "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		      REVIEW, 201, who);
}

static kf_conn *
conn_from(const char *file, const char *context)
{
	char err[512] = "";
	kf_conn *c = NULL;
	kf_err e = kf_conn_from_kubeconfig(file, context, err, sizeof(err), &c);

	cr_assert_eq(e, KF_OK, "%s: %s", file, err);
	return c;
}

/* The test's folder (support/files.h), removed at the end of a test that
 * passed; after a failure it is kept, and named by the suite's .fini. */
static char tmpdir[64];

static void
make_tmpdir(void)
{
	cr_assert_eq(kt_tmpdir_make("kf-conn", tmpdir, sizeof(tmpdir)), 0,
		     "mkdtemp: %s", strerror(errno));
}

static void
remove_tmpdir(void)
{
	cr_assert_eq(kt_tmpdir_remove(tmpdir), 0, "removing %s: %s", tmpdir,
		     strerror(errno));
}

TestSuite(conn_real, .fini = kt_tmpdir_report_kept);

static const char *
tmp(const char *name)
{
	static char bufs[4][600];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
	return b;
}

static void
spit(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	cr_assert_not_null(fp, "create %s", path);
	fputs(text, fp);
	fclose(fp);
	cr_assert_eq(chmod(path, mode), 0);
}

static int
count_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	int n = 0, ch;

	if (fp == NULL)
		return 0;
	while ((ch = fgetc(fp)) != EOF)
		n += ch == '\n';
	fclose(fp);
	return n;
}

/* A kubeconfig in tmpdir for the test cluster; cluster_extra and user are
 * YAML lines indented for their mappings. */
static const char *
write_kubeconfig(const char *cluster_extra, const char *user)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Config\n"
		 "clusters:\n- name: c\n  cluster:\n    server: %s\n%s"
		 "users:\n- name: u\n  user:\n%s"
		 "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "current-context: x\n",
		 kt_env("KUBEFAN_TEST_SERVER"), cluster_extra, user);
	spit(tmp("config"), text, 0600);
	return tmp("config");
}

static const char *
ca_line(void)
{
	static char line[600];

	snprintf(line, sizeof(line), "    certificate-authority: %s\n",
		 kt_env("KUBEFAN_TEST_CA"));
	return line;
}

Test(conn_real, token_kubeconfig_lists_namespaces)
{
	kf_conn *c = conn_from(kt_env("KUBEFAN_TEST_KUBECONFIG"), NULL);

	cr_assert_str_eq(kf_conn_server(c), kt_env("KUBEFAN_TEST_SERVER"));
	expect_admin(c, "kubefan-admin");
	kf_conn_free(c);
}

Test(conn_real, client_certificate_kubeconfig_lists_namespaces)
{
	kf_conn *c = conn_from(kt_env("KUBEFAN_TEST_KUBECONFIG_CERT"), NULL);

	expect_admin(c, "kubefan-cert-admin");
	kf_conn_free(c);
}

Test(conn_real, restricted_token_file_user_is_forbidden_to_list)
{
	kf_conn *c = conn_from(kt_env("KUBEFAN_TEST_KUBECONFIG"), "restricted");

	cr_assert_str_eq(kf_conn_namespace(c), "default");
	expect_status(c, "/version", NULL, 200, "\"gitVersion\"");
	expect_status(c, "/api/v1/namespaces", NULL, 403,
		      "\"reason\":\"Forbidden\"");
	expect_status(c, "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		      REVIEW, 201, "\"username\":\"kubefan-restricted\"");
	kf_conn_free(c);
}

Test(conn_real, exec_plugin_token_is_used_and_cached, .init = make_tmpdir)
{
	char script[1024], user[1024];
	kf_conn *c;

	snprintf(script, sizeof(script),
		 "#!/bin/sh\necho run >>'%s'\n"
		 "printf '{\"kind\":\"ExecCredential\",\"apiVersion\":"
		 "\"client.authentication.k8s.io/v1\",\"status\":{\"token\":"
		 "\"%%s\"}}' \"$KUBEFAN_TEST_TOKEN\"\n",
		 tmp("count"));
	spit(tmp("plugin"), script, 0700);
	snprintf(user, sizeof(user),
		 "    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1\n"
		 "      command: ./plugin\n"
		 "      interactiveMode: Never\n");
	c = conn_from(write_kubeconfig(ca_line(), user), NULL);
	expect_admin(c, "kubefan-admin");
	cr_assert_eq(count_lines(tmp("count")), 1);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn_real, exec_plugin_is_rerun_after_a_401, .init = make_tmpdir)
{
	char script[1024], user[512];
	kf_conn *c;

	/* The first run answers a stale token, later runs the good one. */
	snprintf(script, sizeof(script),
		 "#!/bin/sh\necho run >>'%s'\n"
		 "tok=\"$KUBEFAN_TEST_TOKEN\"\n"
		 "[ \"$(wc -l <'%s')\" -eq 1 ] && tok=stale-token\n"
		 "printf '{\"kind\":\"ExecCredential\",\"apiVersion\":"
		 "\"client.authentication.k8s.io/v1beta1\",\"status\":"
		 "{\"token\":\"%%s\"}}' \"$tok\"\n",
		 tmp("count"), tmp("count"));
	spit(tmp("plugin"), script, 0700);
	snprintf(user, sizeof(user),
		 "    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1beta1\n"
		 "      command: %s\n",
		 tmp("plugin"));
	c = conn_from(write_kubeconfig(ca_line(), user), NULL);
	expect_status(c, "/version", NULL, 401, NULL);
	expect_status(c, "/version", NULL, 401, NULL); /* still cached */
	cr_assert_eq(count_lines(tmp("count")), 1);
	kfi_conn_invalidate(c);
	expect_admin(c, "kubefan-admin");
	cr_assert_eq(count_lines(tmp("count")), 2);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn_real, exec_plugin_client_certificate, .init = make_tmpdir)
{
	char script[2048], user[512];
	const char *dir = kt_env("KUBEFAN_CLUSTER_DIR");
	kf_conn *c;

	snprintf(script, sizeof(script),
		 "#!/bin/sh\n"
		 "pem() { awk '{ printf \"%%s\\\\n\", $0 }' \"$1\"; }\n"
		 "printf '{\"kind\":\"ExecCredential\",\"apiVersion\":"
		 "\"client.authentication.k8s.io/v1\",\"status\":{"
		 "\"clientCertificateData\":\"%%s\",\"clientKeyData\":"
		 "\"%%s\"}}' \"$(pem %s/pki/client.crt)\" "
		 "\"$(pem %s/pki/client.key)\"\n",
		 dir, dir);
	spit(tmp("plugin"), script, 0700);
	snprintf(user, sizeof(user),
		 "    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1\n"
		 "      command: %s\n",
		 tmp("plugin"));
	c = conn_from(write_kubeconfig(ca_line(), user), NULL);
	expect_admin(c, "kubefan-cert-admin");
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn_real, ca_data_is_enforced_and_insecure_skips_it, .init = make_tmpdir)
{
	char user[512], extra[8192];
	struct kfi_blob ca = {0};
	struct resp r;
	kf_conn *c;
	size_t n;
	FILE *fp;
	char *b64;

	snprintf(user, sizeof(user), "    token: %s\n",
		 kt_env("KUBEFAN_TEST_TOKEN"));

	/* A CA that did not sign the server's certificate: refused, even
	 * though the system store is irrelevant here. */
	fp = fopen(KF_TEST_DATA_DIR "/kubeconfig/certs/ca.crt", "rb");
	cr_assert_not_null(fp);
	ca.data = malloc(8192);
	ca.len = fread(ca.data, 1, 8192, fp);
	fclose(fp);
	b64 = malloc(ca.len * 2 + 4);
	{
		static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
					"klmnopqrstuvwxyz0123456789+/";
		size_t o = 0;

		for (size_t i = 0; i < ca.len; i += 3) {
			unsigned v = ca.data[i] << 16;

			v |= i + 1 < ca.len ? ca.data[i + 1] << 8 : 0;
			v |= i + 2 < ca.len ? ca.data[i + 2] : 0;
			b64[o++] = a[(v >> 18) & 63];
			b64[o++] = a[(v >> 12) & 63];
			b64[o++] = i + 1 < ca.len ? a[(v >> 6) & 63] : '=';
			b64[o++] = i + 2 < ca.len ? a[v & 63] : '=';
		}
		b64[o] = '\0';
	}
	n = (size_t)snprintf(extra, sizeof(extra),
			     "    certificate-authority-data: %s\n", b64);
	cr_assert_lt(n, sizeof(extra));
	c = conn_from(write_kubeconfig(extra, user), NULL);
	request(c, "/version", NULL, &r);
	cr_assert_eq(r.rc, CURLE_PEER_FAILED_VERIFICATION, "%s (%s)",
		     curl_easy_strerror(r.rc), r.err);
	free(r.body);
	kf_conn_free(c);

	/* No CA at all: the system store does not know the test CA. */
	c = conn_from(write_kubeconfig("", user), NULL);
	request(c, "/version", NULL, &r);
	cr_assert_eq(r.rc, CURLE_PEER_FAILED_VERIFICATION, "%s (%s)",
		     curl_easy_strerror(r.rc), r.err);
	free(r.body);
	kf_conn_free(c);

	c = conn_from(
	    write_kubeconfig("    insecure-skip-tls-verify: true\n", user),
	    NULL);
	expect_admin(c, "kubefan-admin");
	kf_conn_free(c);
	free(b64);
	free(ca.data);
	remove_tmpdir();
}

Test(conn_real, in_cluster_service_account, .init = make_tmpdir)
{
	char text[8192], port[16], err[512];
	const char *server = kt_env("KUBEFAN_TEST_SERVER");
	const char *colon = strrchr(server, ':');
	FILE *fp;
	size_t n;
	kf_conn *c = NULL;

	cr_assert_not_null(colon);
	snprintf(port, sizeof(port), "%s", colon + 1);
	fp = fopen(kt_env("KUBEFAN_TEST_CA"), "r");
	cr_assert_not_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	spit(tmp("ca.crt"), text, 0600);
	snprintf(text, sizeof(text), "%s\n", kt_env("KUBEFAN_TEST_TOKEN"));
	spit(tmp("token"), text, 0600);
	spit(tmp("namespace"), "kube-system\n", 0600);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	setenv("KUBEFAN_SA_DIR", tmpdir, 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_OK, "%s",
		     err);
	cr_assert_str_eq(kf_conn_server(c), server);
	cr_assert_str_eq(kf_conn_namespace(c), "kube-system");
	expect_admin(c, "kubefan-admin");

	/* The kubelet rotates the token by replacing the file. */
	snprintf(text, sizeof(text), "%s\n",
		 kt_env("KUBEFAN_TEST_RESTRICTED_TOKEN"));
	spit(tmp("token.new"), text, 0600);
	cr_assert_eq(rename(tmp("token.new"), tmp("token")), 0);
	expect_status(c, "/api/v1/namespaces", NULL, 403, NULL);
	kf_conn_free(c);
	remove_tmpdir();
}

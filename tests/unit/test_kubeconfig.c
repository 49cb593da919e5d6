/*
 * kubeconfig parsing, credential sources and kfi_conn_apply, from the
 * files in tests/data/kubeconfig/. The exec plugin there counts its runs
 * in a file named by $KF_EXEC_COUNT_FILE and puts the run number in the
 * token, so caching and refresh are seen from outside.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conn_int.h"
#include "kubeconfig.h"
#include "kubefan/conn.h"
#include "files.h"

#define KC_DIR KF_TEST_DATA_DIR "/kubeconfig"

static const char *
kpath(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", KC_DIR, name);
	return b;
}

static char *
slurp(const char *path, size_t *len)
{
	char *s = kt_file_read(path, len);

	cr_assert_not_null(s, "open %s", path);
	return s;
}

static void
spit(const char *path, const char *text)
{
	FILE *fp = fopen(path, "wb");

	cr_assert_not_null(fp, "create %s", path);
	fputs(text, fp);
	fclose(fp);
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

/* The test's folder (support/files.h), removed at the end of a test that
 * passed; after a failure it is kept, and named by the suite's .fini. */
static char tmpdir[64];

static void
make_tmpdir(void)
{
	cr_assert_eq(kt_tmpdir_make("kf-kc", tmpdir, sizeof(tmpdir)), 0,
		     "mkdtemp: %s", strerror(errno));
}

static void
remove_tmpdir(void)
{
	cr_assert_eq(kt_tmpdir_remove(tmpdir), 0, "removing %s: %s", tmpdir,
		     strerror(errno));
}

TestSuite(kubeconfig, .fini = kt_tmpdir_report_kept);
TestSuite(conn, .fini = kt_tmpdir_report_kept);

static const char *
tmp(const char *name)
{
	static char bufs[4][600];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
	return b;
}

/* Apply c to a fresh handle; return the Authorization header or NULL. */
static char *
apply_auth(kf_conn *c, kf_err *err, char *errbuf, size_t errlen)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *auth = NULL;

	cr_assert_not_null(h);
	*err = kfi_conn_apply(c, h, &hdrs, errbuf, errlen);
	for (struct curl_slist *l = hdrs; l != NULL; l = l->next) {
		cr_assert_null(auth, "more than one header appended");
		if (strncmp(l->data, "Authorization: ", 15) == 0)
			auth = strdup(l->data);
	}
	cr_assert(hdrs == NULL || auth != NULL, "a non-auth header: %s",
		  hdrs->data);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return auth;
}

static kf_conn *
conn_ok(const char *file, const char *context)
{
	char err[512] = "";
	kf_conn *c = NULL;
	kf_err e =
	    kf_conn_from_kubeconfig(kpath(file), context, err, sizeof(err), &c);

	cr_assert_eq(e, KF_OK, "%s [%s]: %s (%s)", file,
		     context ? context : "-", kf_strerror(e), err);
	return c;
}

static void
expect_auth(kf_conn *c, const char *want)
{
	char err[512] = "";
	kf_err e;
	char *got = apply_auth(c, &e, err, sizeof(err));

	cr_assert_eq(e, KF_OK, "apply: %s", err);
	if (want == NULL) {
		cr_assert_null(got, "unexpected %s", got);
		return;
	}
	cr_assert_not_null(got, "no Authorization header");
	cr_assert_str_eq(got, want);
	free(got);
}

/* ---- parsing valid files ---- */

Test(kubeconfig, current_context_selects_token_user_ca_data_and_namespace)
{
	struct kfi_kubeconfig kc;
	char err[512];
	size_t calen;
	char *ca = slurp(kpath("certs/ca.crt"), &calen);

	cr_assert_eq(kfi_kubeconfig_load(kpath("token.yaml"), NULL, &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.context, "dev");
	cr_assert_str_eq(kc.server, "https://dev.example.com");
	cr_assert_str_eq(kc.token, "alice-token-123");
	cr_assert_str_eq(kc.namespace, "team-a");
	cr_assert_str_eq(kc.proxy_url, "http://proxy.example.com:3128");
	cr_assert_eq(kc.ca_data.len, calen);
	cr_assert_eq(memcmp(kc.ca_data.data, ca, calen), 0);
	cr_assert_null(kc.ca_file);
	cr_assert_not(kc.insecure);
	cr_assert_str_eq(kc.source, kpath("token.yaml"));
	kfi_kubeconfig_fini(&kc);
	free(ca);
}

Test(kubeconfig, context_override_picks_another_context)
{
	struct kfi_kubeconfig kc;
	char err[512];

	cr_assert_eq(kfi_kubeconfig_load(kpath("token.yaml"), "prod", &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "https://prod.example.com:6443");
	cr_assert_str_eq(kc.token, "bob-token-456");
	cr_assert_null(kc.namespace);
	cr_assert_null(kc.proxy_url);
	kfi_kubeconfig_fini(&kc);

	/* An empty override means the current context, as kubectl does. */
	cr_assert_eq(
	    kfi_kubeconfig_load(kpath("token.yaml"), "", &kc, err, sizeof(err)),
	    KF_OK, "%s", err);
	cr_assert_str_eq(kc.context, "dev");
	kfi_kubeconfig_fini(&kc);
}

Test(kubeconfig, relative_paths_are_relative_to_the_file)
{
	struct kfi_kubeconfig kc;
	char err[512], want[512];

	cr_assert_eq(kfi_kubeconfig_load(kpath("relative.yaml"), NULL, &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "https://127.0.0.1:6443");
	snprintf(want, sizeof(want), "%s/certs/ca.crt", KC_DIR);
	cr_assert_str_eq(kc.ca_file, want);
	snprintf(want, sizeof(want), "%s/certs/client.crt", KC_DIR);
	cr_assert_str_eq(kc.cert_file, want);
	snprintf(want, sizeof(want), "%s/./certs/client.key", KC_DIR);
	cr_assert_str_eq(kc.key_file, want);
	cr_assert_null(kc.token);
	kfi_kubeconfig_fini(&kc);
}

Test(kubeconfig, relative_kubeconfig_path_resolves_against_cwd)
{
	struct kfi_kubeconfig kc;
	char err[512], want[512];

	cr_assert_eq(chdir(KC_DIR "/certs"), 0);
	cr_assert_eq(kfi_kubeconfig_load("../relative.yaml", NULL, &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	snprintf(want, sizeof(want), "%s/certs/../certs/ca.crt", KC_DIR);
	cr_assert_str_eq(kc.ca_file, want);
	kfi_kubeconfig_fini(&kc);
}

Test(kubeconfig, inline_client_certificate_and_insecure_flag)
{
	struct kfi_kubeconfig kc;
	char err[512];
	size_t clen, klen;
	char *crt = slurp(kpath("certs/client.crt"), &clen);
	char *key = slurp(kpath("certs/client.key"), &klen);

	cr_assert_eq(kfi_kubeconfig_load(kpath("inline-cert.yaml"), NULL, &kc,
					 err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert(kc.insecure);
	cr_assert_eq(kc.cert_data.len, clen);
	cr_assert_eq(memcmp(kc.cert_data.data, crt, clen), 0);
	cr_assert_eq(kc.key_data.len, klen);
	cr_assert_eq(memcmp(kc.key_data.data, key, klen), 0);
	cr_assert_null(kc.cert_file);
	kfi_kubeconfig_fini(&kc);
	free(crt);
	free(key);
}

Test(kubeconfig, anchors_aliases_flow_style_and_quotes)
{
	struct kfi_kubeconfig kc;
	char err[512];

	cr_assert_eq(kfi_kubeconfig_load(kpath("anchors.yaml"), NULL, &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.context, "x");
	cr_assert_str_eq(kc.server, "https://a.example.com");
	cr_assert_str_eq(kc.token, "quoted-token");
	cr_assert_str_eq(kc.namespace, "ns-x");
	cr_assert_gt(kc.ca_data.len, 100);
	kfi_kubeconfig_fini(&kc);

	cr_assert_eq(kfi_kubeconfig_load(kpath("anchors.yaml"), "y", &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert(kc.insecure, "yes is true");
	cr_assert_str_eq(kc.token, "quoted-token", "user v is an alias of u");
	kfi_kubeconfig_fini(&kc);
}

Test(kubeconfig, null_and_empty_fields_are_unset)
{
	struct kfi_kubeconfig kc;
	char err[512];
	kf_conn *c;

	cr_assert_eq(kfi_kubeconfig_load(kpath("nulls.yaml"), NULL, &kc, err,
					 sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "http://insecure.example.com:8080");
	cr_assert_null(kc.ca_file);
	cr_assert_null(kc.ca_data.data);
	cr_assert_not(kc.insecure);
	cr_assert_null(kc.token);
	cr_assert_null(kc.namespace);
	kfi_kubeconfig_fini(&kc);

	cr_assert_eq(kfi_kubeconfig_load(kpath("nulls.yaml"), "nulluser", &kc,
					 err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_null(kc.token);
	cr_assert_null(kc.exec);
	kfi_kubeconfig_fini(&kc);

	c = conn_ok("nulls.yaml", NULL);
	cr_assert_str_eq(kf_conn_namespace(c), "");
	expect_auth(c, NULL);
	kf_conn_free(c);
}

Test(kubeconfig, basic_auth_sets_no_bearer_header)
{
	struct kfi_kubeconfig kc;
	char err[512];
	kf_conn *c;

	cr_assert_eq(kfi_kubeconfig_load(kpath("basic-auth.yaml"), NULL, &kc,
					 err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.username, "admin");
	cr_assert_str_eq(kc.password, "s3cret");
	kfi_kubeconfig_fini(&kc);
	c = conn_ok("basic-auth.yaml", NULL);
	expect_auth(c, NULL);
	kf_conn_free(c);
}

Test(kubeconfig, kubeconfig_env_merges_files_first_wins)
{
	struct kfi_kubeconfig kc;
	char err[512], env[2048];

	snprintf(env, sizeof(env), "%s/absent.yaml:%s::%s:%s", KC_DIR,
		 kpath("merge-a.yaml"), kpath("merge-b.yaml"),
		 kpath("merge-a.yaml"));
	setenv("KUBECONFIG", env, 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	/* current-context and ctx-a from a; cluster "shared" from a; user
	 * ub only exists in b. */
	cr_assert_str_eq(kc.context, "ctx-a");
	cr_assert_str_eq(kc.server, "https://from-a.example.com");
	cr_assert_str_eq(kc.token, "token-b");
	cr_assert_str_eq(kc.source, kpath("merge-a.yaml"));
	kfi_kubeconfig_fini(&kc);

	cr_assert_eq(kfi_kubeconfig_load(NULL, "ctx-b", &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "https://only-b.example.com");
	cr_assert_str_eq(kc.namespace, "nb");
	cr_assert_str_eq(kc.source, kpath("merge-b.yaml"));
	kfi_kubeconfig_fini(&kc);

	snprintf(env, sizeof(env), "%s:%s", kpath("merge-b.yaml"),
		 kpath("merge-a.yaml"));
	setenv("KUBECONFIG", env, 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.context, "ctx-b");
	kfi_kubeconfig_fini(&kc);

	/* ctx-a from b now wins: cluster only-b, user ua from a. */
	cr_assert_eq(kfi_kubeconfig_load(NULL, "ctx-a", &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "https://only-b.example.com");
	cr_assert_str_eq(kc.token, "token-a");
	kfi_kubeconfig_fini(&kc);
}

Test(kubeconfig, kubeconfig_env_with_no_existing_file_is_an_error)
{
	struct kfi_kubeconfig kc;
	char err[512];

	setenv("KUBECONFIG", "/nonexistent/a:/nonexistent/b", 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_ECONFIG);
	cr_assert_str_eq(err, "kubeconfig: no file of $KUBECONFIG exists "
			      "(/nonexistent/a:/nonexistent/b)");
}

Test(kubeconfig, kubeconfig_env_reports_a_broken_file)
{
	struct kfi_kubeconfig kc;
	char err[512], env[1024];

	snprintf(env, sizeof(env), "%s:%s", kpath("merge-a.yaml"),
		 kpath("bad-syntax.yaml"));
	setenv("KUBECONFIG", env, 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_EPARSE);
	cr_assert(strstr(err, kpath("bad-syntax.yaml")) != NULL, "%s", err);
}

Test(kubeconfig, home_kube_config_is_the_default)
{
	struct kfi_kubeconfig kc;
	char err[512], want[600], *text;

	make_tmpdir();
	cr_assert_eq(mkdir(tmp(".kube"), 0700), 0);
	text = slurp(kpath("basic-auth.yaml"), NULL);
	spit(tmp(".kube/config"), text);
	free(text);
	unsetenv("KUBECONFIG");
	setenv("HOME", tmpdir, 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_str_eq(kc.server, "https://basic.example.com");
	cr_assert_str_eq(kc.source, tmp(".kube/config"));
	kfi_kubeconfig_fini(&kc);
	unlink(tmp(".kube/config"));
	rmdir(tmp(".kube"));
	/* Nothing named a file: the message says why that one was read. */
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_ECONFIG);
	snprintf(want, sizeof(want),
		 "no kubeconfig found: no path given (--kubeconfig), "
		 "$KUBECONFIG is unset and the default %s cannot be read: No "
		 "such file or directory",
		 tmp(".kube/config"));
	cr_assert_str_eq(err, want);
	setenv("KUBECONFIG", "", 1);
	cr_assert_eq(kfi_kubeconfig_load(NULL, NULL, &kc, err, sizeof(err)),
		     KF_ECONFIG);
	cr_assert(strstr(err, "$KUBECONFIG is empty and the default") != NULL,
		  "%s", err);
	unsetenv("KUBECONFIG");
	remove_tmpdir();
}

Test(kubeconfig, missing_file_and_unknown_context_are_config_errors)
{
	char err[512], want[700];
	kf_conn *c = NULL;

	cr_assert_eq(kf_conn_from_kubeconfig(kpath("absent.yaml"), NULL, err,
					     sizeof(err), &c),
		     KF_ECONFIG);
	snprintf(want, sizeof(want),
		 "kubeconfig %s: cannot read: No such file or directory",
		 kpath("absent.yaml"));
	cr_assert_str_eq(err, want);
	cr_assert_null(c);

	cr_assert_eq(kf_conn_from_kubeconfig(kpath("token.yaml"), "zzz", err,
					     sizeof(err), &c),
		     KF_ECONFIG);
	snprintf(want, sizeof(want), "kubeconfig %s: no context named \"zzz\"",
		 kpath("token.yaml"));
	cr_assert_str_eq(err, want);
	cr_assert_null(c);

	/* A directory is not a kubeconfig. */
	cr_assert_eq(
	    kf_conn_from_kubeconfig(KC_DIR, NULL, err, sizeof(err), &c),
	    KF_ECONFIG);
	cr_assert(strstr(err, "not a regular file") != NULL, "%s", err);
}

/* ---- malformed files ---- */

struct bad_case {
	const char *file;
	kf_err err;
	const char *text; /* expected after "kubeconfig PATH: " */
};

static const struct bad_case bad_cases[] = {
    {"bad-syntax.yaml", KF_EPARSE,
     "YAML syntax error at line 4 column 6: did not find expected ',' or "
     "']' while parsing a flow sequence"},
    {"bad-utf8.yaml", KF_EPARSE,
     "invalid text at line 4 column 10: invalid leading UTF-8 octet"},
    {"bad-root-list.yaml", KF_ECONFIG,
     "the document is a list, not a mapping (line 1)"},
    {"bad-clusters-mapping.yaml", KF_ECONFIG,
     "clusters: expected a list, found a mapping (line 3)"},
    {"bad-entry-scalar.yaml", KF_ECONFIG,
     "clusters[0]: expected a mapping with name and cluster (line 4)"},
    {"bad-missing-name.yaml", KF_ECONFIG, "users[0].name: missing"},
    {"bad-server-type.yaml", KF_ECONFIG,
     "clusters[0].cluster.server: expected a string, found a list "
     "(cluster \"c\", line 6)"},
    {"bad-insecure.yaml", KF_ECONFIG,
     "clusters[0].cluster.insecure-skip-tls-verify: expected true or "
     "false (cluster \"c\", line 7)"},
    {"bad-base64-cert.yaml", KF_ECONFIG,
     "users[0].user.client-certificate-data: invalid base64 (user \"u\", "
     "line 10)"},
    {"bad-base64-ca.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority-data: invalid base64"},
    {"bad-not-pem.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority-data: holds no PEM "
     "certificate (no -----BEGIN CERTIFICATE----- ... -----END "
     "CERTIFICATE----- block) (cluster \"c\", line 7)"},
    {"bad-ca-data-unpadded.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority-data: invalid base64 "
     "(cluster \"prod\", line 8)"},
    {"bad-key-data-urlsafe.yaml", KF_ECONFIG,
     "users[0].user.client-key-data: invalid base64 (user \"robot\", "
     "line 12)"},
    {"bad-ca-data-no-end.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority-data: holds no PEM "
     "certificate (no -----BEGIN CERTIFICATE----- ... -----END "
     "CERTIFICATE----- block) (cluster \"prod\", line 8)"},
    {"bad-cert-data-is-key.yaml", KF_ECONFIG,
     "users[0].user.client-certificate-data: holds no PEM certificate (no "
     "-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- block) "
     "(user \"robot\", line 11)"},
    {"bad-key-data-is-cert.yaml", KF_ECONFIG,
     "users[0].user.client-key-data: holds no PEM private key (no "
     "-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block "
     "with its -----END line) (user \"robot\", line 12)"},
    {"bad-missing-context.yaml", KF_ECONFIG,
     "current-context: no context named \"nope\""},
    {"bad-no-current.yaml", KF_ECONFIG,
     "current-context is not set and no context was given"},
    {"bad-empty.yaml", KF_ECONFIG,
     "current-context is not set and no context was given"},
    {"bad-unknown-user.yaml", KF_ECONFIG,
     "contexts[0].context.user: no user named \"ghost\" (line 12)"},
    {"bad-unknown-cluster.yaml", KF_ECONFIG,
     "contexts[0].context.cluster: no cluster named \"nowhere\""},
    {"bad-context-no-cluster.yaml", KF_ECONFIG,
     "contexts[0].context.cluster: missing"},
    {"bad-missing-server.yaml", KF_ECONFIG,
     "clusters[0].cluster.server: missing (line 4)"},
    {"bad-server-scheme.yaml", KF_ECONFIG,
     "clusters[0].cluster.server: not an http or https URL"},
    {"bad-ca-file-missing.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority: cannot read "},
    {"bad-ca-both.yaml", KF_ECONFIG,
     "clusters[0].cluster: certificate-authority and "
     "certificate-authority-data are both set"},
    {"bad-insecure-with-ca.yaml", KF_ECONFIG,
     "clusters[0].cluster: insecure-skip-tls-verify cannot be used with "
     "a certificate authority"},
    {"bad-cert-without-key.yaml", KF_ECONFIG,
     "users[0].user: a client certificate without a client key"},
    {"bad-duplicate-key.yaml", KF_ECONFIG,
     "clusters[0].cluster.server: given twice, at lines 6 and 7 (cluster "
     "\"c\")"},
    {"bad-duplicate-name.yaml", KF_ECONFIG,
     "clusters[1].name: name \"c\" is also used by clusters[0] (cluster "
     "\"c\", line 6)"},
    {"bad-exec-no-command.yaml", KF_ECONFIG,
     "users[0].user.exec.command: missing"},
    {"bad-exec-api-version.yaml", KF_ECONFIG,
     "users[0].user.exec.apiVersion: not supported (use "
     "client.authentication.k8s.io/v1 or v1beta1)"},
    {"bad-exec-args.yaml", KF_ECONFIG,
     "users[0].user.exec.args: expected a list, found a string"},
    {"bad-exec-env.yaml", KF_ECONFIG,
     "users[0].user.exec.env[0].name: missing"},
    {"bad-exec-interactive.yaml", KF_ECONFIG,
     "users[0].user.exec.interactiveMode: expected Never, IfAvailable "
     "or Always"},
    {"bad-auth-provider.yaml", KF_ECONFIG,
     "users[0].user: auth-provider is not supported"},
    {"bad-token-and-exec.yaml", KF_ECONFIG,
     "users[0].user: token and exec are both set"},
    {"bad-impersonate.yaml", KF_ECONFIG,
     "users[0].user: impersonation (as, as-groups, ...) is not "
     "supported"},
    {"bad-kind.yaml", KF_ECONFIG,
     "kind: expected Config, found \"Deployment\" (line 2)"},
    {"bad-token-file-missing.yaml", KF_ECONFIG,
     "users[0].user.tokenFile: cannot read "},
    {"bad-key-not-string.yaml", KF_ECONFIG,
     "contexts[0]: a key that is not a string"},
    {"bad-empty-ca-data.yaml", KF_ECONFIG,
     "clusters[0].cluster.certificate-authority-data: empty; give base64 "
     "PEM data or remove the field (cluster \"prod\", line 9)"},
    {"bad-empty-cert-data.yaml", KF_ECONFIG,
     "users[0].user.client-certificate-data: empty; give base64 PEM data "
     "or remove the field (user \"robot\", line 11)"},
    {"bad-empty-key-data.yaml", KF_ECONFIG,
     "users[1].user.client-key-data: empty; give base64 PEM data or "
     "remove the field (user \"unused\", line 16)"},
};

Test(kubeconfig, every_malformed_file_names_file_field_and_problem)
{
	char err[512], prefix[600];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		kf_conn *c = NULL;
		kf_err e;

		memset(err, 'X', sizeof(err));
		e = kf_conn_from_kubeconfig(kpath(b->file), NULL, err,
					    sizeof(err), &c);
		cr_expect_eq(e, b->err, "%s: got %s (%s)", b->file,
			     kf_strerror(e), err);
		cr_expect_null(c, "%s", b->file);
		snprintf(prefix, sizeof(prefix), "kubeconfig %s: %s",
			 kpath(b->file), b->text);
		cr_expect(strncmp(err, prefix, strlen(prefix)) == 0,
			  "%s:\n  got  %s\n  want %s...", b->file, err, prefix);
		kf_conn_free(c);
	}
}

/* A kubeconfig in tmpdir naming the files ca, crt and key there. */
static kf_err
load_with_files(const char *ca, const char *crt, const char *key, char *err,
		size_t errlen)
{
	struct kfi_kubeconfig kc;
	char text[1024];
	kf_err e;

	spit(tmp("ca"), ca);
	spit(tmp("crt"), crt);
	spit(tmp("key"), key);
	snprintf(text, sizeof(text),
		 "kind: Config\n"
		 "clusters:\n"
		 "- name: c\n"
		 "  cluster:\n"
		 "    server: https://x\n"
		 "    certificate-authority: ca\n"
		 "users:\n"
		 "- name: u\n"
		 "  user:\n"
		 "    client-certificate: crt\n"
		 "    client-key: key\n"
		 "contexts:\n"
		 "- name: ctx\n"
		 "  context: {cluster: c, user: u}\n"
		 "current-context: ctx\n");
	spit(tmp("config"), text);
	e = kfi_kubeconfig_load(tmp("config"), NULL, &kc, err, errlen);
	if (e == KF_OK)
		kfi_kubeconfig_fini(&kc);
	return e;
}

#define PEM(label, body)                                                       \
	"-----BEGIN " label "-----\n" body "\n-----END " label "-----\n"

Test(kubeconfig, ca_certificate_and_key_files_must_hold_their_pem_block,
     .init = make_tmpdir)
{
	static const char cert[] = "junk before\n" PEM("CERTIFICATE", "MIIB");
	char err[512], want[1200];

	cr_assert_eq(load_with_files(cert, cert, PEM("PRIVATE KEY", "MIIE"),
				     err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_eq(load_with_files(cert, cert, PEM("RSA PRIVATE KEY", "MIIE"),
				     err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_eq(load_with_files(cert, cert, PEM("EC PRIVATE KEY", "MHc"),
				     err, sizeof(err)),
		     KF_OK, "%s", err);

	/* DER bytes, or any text without the armor. */
	cr_assert_eq(load_with_files("0\x82\x01\n", cert,
				     PEM("PRIVATE KEY", "MIIE"), err,
				     sizeof(err)),
		     KF_ECONFIG);
	snprintf(want, sizeof(want),
		 "kubeconfig %s: clusters[0].cluster.certificate-authority: "
		 "%s holds no PEM certificate (no -----BEGIN CERTIFICATE----- "
		 "... -----END CERTIFICATE----- block) (line 3)",
		 tmp("config"), tmp("ca"));
	cr_assert_str_eq(err, want);

	/* A BEGIN line without its END. */
	cr_assert_eq(load_with_files("-----BEGIN CERTIFICATE-----\nMIIB\n",
				     cert, PEM("PRIVATE KEY", "MIIE"), err,
				     sizeof(err)),
		     KF_ECONFIG);
	cr_assert_str_eq(err, want);

	/* Certificate and key swapped. */
	cr_assert_eq(load_with_files(cert, PEM("PRIVATE KEY", "MIIE"), cert,
				     err, sizeof(err)),
		     KF_ECONFIG);
	snprintf(want, sizeof(want),
		 "kubeconfig %s: users[0].user.client-certificate: %s holds no "
		 "PEM certificate (no -----BEGIN CERTIFICATE----- ... -----END "
		 "CERTIFICATE----- block) (line 8)",
		 tmp("config"), tmp("crt"));
	cr_assert_str_eq(err, want);
	cr_assert_eq(load_with_files(cert, cert, cert, err, sizeof(err)),
		     KF_ECONFIG);
	snprintf(want, sizeof(want),
		 "kubeconfig %s: users[0].user.client-key: %s holds no PEM "
		 "private key (no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY "
		 "or EC PRIVATE KEY block with its -----END line) (line 8)",
		 tmp("config"), tmp("key"));
	cr_assert_str_eq(err, want);

	/* An encrypted key is not one curl can use without a passphrase. */
	cr_assert_eq(load_with_files(cert, cert,
				     PEM("ENCRYPTED PRIVATE KEY", "MIIF"), err,
				     sizeof(err)),
		     KF_ECONFIG);
	cr_assert_str_eq(err, want);
	remove_tmpdir();
}

Test(kubeconfig, a_fifo_as_ca_file_is_not_read, .init = make_tmpdir,
     .timeout = 10)
{
	static const char cert[] = PEM("CERTIFICATE", "MIIB");
	char err[512];

	cr_assert_eq(load_with_files(cert, cert, PEM("PRIVATE KEY", "MIIE"),
				     err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert_eq(unlink(tmp("ca")), 0);
	cr_assert_eq(mkfifo(tmp("ca"), 0600), 0);
	/* load_with_files would block writing the FIFO; load directly. */
	{
		struct kfi_kubeconfig kc;

		cr_assert_eq(kfi_kubeconfig_load(tmp("config"), NULL, &kc, err,
						 sizeof(err)),
			     KF_OK, "%s", err);
		kfi_kubeconfig_fini(&kc);
	}
	remove_tmpdir();
}

Test(kubeconfig, empty_ca_data_beside_insecure_skip_tls_verify_is_unset)
{
	struct kfi_kubeconfig kc;
	char err[512];

	cr_assert_eq(kfi_kubeconfig_load(kpath("empty-ca-insecure.yaml"), NULL,
					 &kc, err, sizeof(err)),
		     KF_OK, "%s", err);
	cr_assert(kc.insecure);
	cr_assert_null(kc.ca_data.data);
	cr_assert_null(kc.ca_file);
	kfi_kubeconfig_fini(&kc);
}

/* A kubeconfig whose current-context is n levels of flow lists deep:
 * the root mapping plus n lists. */
static char *
nested_kubeconfig(size_t n, size_t *len)
{
	static const char head[] = "kind: Config\ncurrent-context: ";
	char *s = malloc(sizeof(head) + 2 * n + 1);

	cr_assert_not_null(s);
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, '[', n);
	memset(s + sizeof(head) - 1 + n, ']', n);
	*len = sizeof(head) - 1 + 2 * n;
	s[*len] = '\n';
	(*len)++;
	return s;
}

Test(kubeconfig, deep_nesting_is_refused_before_loading)
{
	static const size_t depth[] = {63, 64, 100000};
	struct kfi_kubeconfig kc;
	char err[512];

	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *y = nested_kubeconfig(depth[i], &len);
		kf_err e =
		    kfi_kubeconfig_parse("deep", "/tmp", (uint8_t *)y, len,
					 NULL, false, &kc, err, sizeof(err));

		cr_assert_eq(e, KF_ECONFIG, "%zu: %s", depth[i], err);
		if (depth[i] == 63)
			/* 64 levels are within the limit: the list is
			 * refused as a context name. */
			cr_assert(strstr(err, "current-context: expected a "
					      "string, found a list") != NULL,
				  "%s", err);
		else
			cr_assert_str_eq(err,
					 "kubeconfig deep: YAML nested deeper "
					 "than 64 levels (the limit) at line 2 "
					 "column 81");
		free(y);
	}
}

/* Text of a kubeconfig whose users all alias one user body, whose token
 * aliases one scalar of tlen bytes; with anchors > 0, that many anchored
 * scalars in an ignored list too. */
static char *
aliased_kubeconfig(size_t users, size_t tlen, size_t anchors, size_t *len)
{
	size_t cap = 512 + tlen + users * 40 + anchors * 16, at;
	char *s = malloc(cap);

	cr_assert_not_null(s);
	at = (size_t)snprintf(s, cap,
			      "kind: Config\n"
			      "clusters:\n"
			      "- name: c\n"
			      "  cluster: {server: https://a.example.com}\n"
			      "contexts:\n"
			      "- name: x\n"
			      "  context: {cluster: c, user: u0}\n"
			      "current-context: x\n"
			      "users:\n"
			      "- name: u0\n"
			      "  user: &U {token: &S \"");
	memset(s + at, 't', tlen);
	at += tlen;
	at += (size_t)snprintf(s + at, cap - at, "\"}\n");
	for (size_t i = 1; i < users; i++)
		at += (size_t)snprintf(s + at, cap - at,
				       "- {name: u%zu, user: *U}\n", i);
	if (anchors > 0) {
		at += (size_t)snprintf(s + at, cap - at, "ignored: [");
		for (size_t i = 0; i < anchors; i++)
			at += (size_t)snprintf(s + at, cap - at, "%s&a%zu 1",
					       i > 0 ? "," : "", i);
		at += (size_t)snprintf(s + at, cap - at, "]\n");
	}
	*len = at;
	return s;
}

Test(kubeconfig, aliases_cannot_blow_the_walk_up)
{
	struct kfi_kubeconfig kc;
	char err[512];
	size_t len;
	char *y;
	kf_err e;

	/* A few users sharing one token: fine. */
	y = aliased_kubeconfig(4, 1000, 0, &len);
	e = kfi_kubeconfig_parse("ok", "/tmp", (uint8_t *)y, len, NULL, false,
				 &kc, err, sizeof(err));
	cr_assert_eq(e, KF_OK, "%s", err);
	cr_assert_eq(strlen(kc.token), 1000);
	kfi_kubeconfig_fini(&kc);
	free(y);

	/* 3 000 users naming one 64 KiB token: 200 KiB of file that made
	 * the walk copy 190 MiB (with exec args aliased too, a 120 KiB file
	 * took 4.6 GiB). */
	y = aliased_kubeconfig(3000, 64 * 1024, 0, &len);
	e = kfi_kubeconfig_parse("amp", "/tmp", (uint8_t *)y, len, NULL, false,
				 &kc, err, sizeof(err));
	cr_assert_eq(e, KF_ECONFIG, "%s", err);
	cr_assert(strstr(err, "YAML aliases expand the file past") != NULL,
		  "%s", err);
	free(y);

	/* Anchors: libyaml looks each up among all those before it. */
	y = aliased_kubeconfig(1, 10, 1025, &len);
	e = kfi_kubeconfig_parse("anchors", "/tmp", (uint8_t *)y, len, NULL,
				 false, &kc, err, sizeof(err));
	cr_assert_eq(e, KF_ECONFIG, "%s", err);
	cr_assert(strstr(err, "kubeconfig anchors: more than 1024 YAML "
			      "anchors (the limit) at line") != NULL,
		  "%s", err);
	free(y);
	y = aliased_kubeconfig(4098, 10, 0, &len);
	e = kfi_kubeconfig_parse("aliases", "/tmp", (uint8_t *)y, len, NULL,
				 false, &kc, err, sizeof(err));
	cr_assert_eq(e, KF_ECONFIG, "%s", err);
	cr_assert(strstr(err, "more than 4096 YAML aliases") != NULL, "%s",
		  err);
	free(y);
}

Test(kubeconfig, a_token_that_could_split_the_header_is_refused)
{
	char err[512];
	kf_conn *c = NULL;

	cr_assert_eq(kf_conn_from_kubeconfig(kpath("bad-token-newline.yaml"),
					     NULL, err, sizeof(err), &c),
		     KF_ECONFIG);
	cr_assert(strstr(err, "not a single word of visible ASCII") != NULL,
		  "%s", err);
	cr_assert_null(strstr(err, "abc"), "the token leaked: %s", err);
	cr_assert_null(strstr(err, "Evil"), "the token leaked: %s", err);
}

Test(kubeconfig, small_errbuf_is_truncated_not_overrun)
{
	char err[16];
	kf_conn *c = NULL;

	memset(err, 'Z', sizeof(err));
	cr_assert_eq(kf_conn_from_kubeconfig(kpath("bad-base64-cert.yaml"),
					     NULL, err, sizeof(err), &c),
		     KF_ECONFIG);
	cr_assert_eq(err[15], '\0');
	cr_assert_eq(strlen(err), 15);
	cr_assert_eq(kf_conn_from_kubeconfig(kpath("bad-base64-cert.yaml"),
					     NULL, NULL, 0, &c),
		     KF_ECONFIG);
}

/* ---- base64 and timestamps ---- */

Test(kubeconfig, base64_decoder_is_strict)
{
	static const struct {
		const char *in, *out;
	} ok[] = {{"", ""},
		  {"Zg==", "f"},
		  {"Zm8=", "fo"},
		  {"Zm9v", "foo"},
		  {"Zm9v\nYmFy", "foobar"},
		  {"Zm9vYg==\r\n", "foob"}};
	static const char *const bad[] = {"Zg=",      "Z===",	  "Zm9v!",
					  "Zg==Zg==", "=Zg=",	  "Zm 9v",
					  "Zm9",      "Zm9v-_==", "Zg=a"};
	struct kfi_blob b;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(kfi_base64_decode(ok[i].in, strlen(ok[i].in), &b),
			     KF_OK, "%s", ok[i].in);
		cr_assert_eq(b.len, strlen(ok[i].out), "%s", ok[i].in);
		cr_assert_eq(memcmp(b.data, ok[i].out, b.len), 0);
		cr_assert_eq(b.data[b.len], '\0');
		free(b.data);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(kfi_base64_decode(bad[i], strlen(bad[i]), &b),
			     KF_EPARSE, "%s", bad[i]);
}

Test(kubeconfig, rfc3339_timestamps)
{
	static const struct {
		const char *in;
		long long want;
	} ok[] = {
	    {"1970-01-01T00:00:00Z", 0},
	    {"2024-02-29T12:00:00Z", 1709208000},
	    {"2024-02-29T12:00:00.123456789Z", 1709208000},
	    {"2024-02-29T14:30:00+02:30", 1709208000},
	    {"2024-02-29t07:00:00-05:00", 1709208000},
	    {"2100-12-31T23:59:59Z", 4133980799},
	};
	static const char *const bad[] = {"yesterday",
					  "2024-13-01T00:00:00Z",
					  "2024-01-01 00:00:00Z",
					  "2024-01-01T00:00:00",
					  "2024-01-01T00:00:00.Z",
					  "2024-01-32T00:00:00Z",
					  "2024-01-01T24:00:00Z",
					  "2024-01-01T00:00:00+0200",
					  "2024-01-01T00:00:00Zjunk",
					  ""};
	long long t;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(kfi_rfc3339_parse(ok[i].in, &t), KF_OK, "%s",
			     ok[i].in);
		cr_assert_eq(t, ok[i].want, "%s: %lld", ok[i].in, t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(kfi_rfc3339_parse(bad[i], &t), KF_EPARSE, "%s",
			     bad[i]);
}

Test(kubeconfig, server_urls_are_normalised)
{
	char *s;

	cr_assert_eq(kfi_server_url("https://h:1/", &s), KF_OK);
	cr_assert_str_eq(s, "https://h:1");
	free(s);
	cr_assert_eq(kfi_server_url("h.example.com", &s), KF_OK);
	cr_assert_str_eq(s, "https://h.example.com");
	free(s);
	cr_assert_eq(kfi_server_url("http://h/prefix//", &s), KF_OK);
	cr_assert_str_eq(s, "http://h/prefix");
	free(s);
	cr_assert_eq(kfi_server_url("ftp://h", &s), KF_EINVAL);
	cr_assert_eq(kfi_server_url("https:///", &s), KF_EINVAL);
}

/* ---- applying static credentials ---- */

Test(conn, static_token_becomes_bearer_header)
{
	kf_conn *c = conn_ok("token.yaml", NULL);

	cr_assert_str_eq(kf_conn_server(c), "https://dev.example.com");
	cr_assert_str_eq(kf_conn_namespace(c), "team-a");
	expect_auth(c, "Authorization: Bearer alice-token-123");
	kf_conn_free(c);
}

Test(conn, client_certificates_apply_without_a_header)
{
	kf_conn *c = conn_ok("inline-cert.yaml", NULL);

	expect_auth(c, NULL);
	kf_conn_free(c);
	c = conn_ok("relative.yaml", NULL);
	expect_auth(c, NULL);
	kf_conn_free(c);
}

Test(conn, explicit_settings)
{
	kf_conn *c = NULL;

	cr_assert_eq(kf_conn_explicit("https://h.example.com:6443/", "tok-1",
				      NULL, true, &c),
		     KF_OK);
	cr_assert_str_eq(kf_conn_server(c), "https://h.example.com:6443");
	cr_assert_str_eq(kf_conn_namespace(c), "");
	expect_auth(c, "Authorization: Bearer tok-1");
	kf_conn_free(c);

	cr_assert_eq(kf_conn_explicit("https://h", NULL, kpath("certs/ca.crt"),
				      false, &c),
		     KF_OK);
	expect_auth(c, NULL);
	kf_conn_free(c);

	cr_assert_eq(kf_conn_explicit(NULL, "t", NULL, false, &c), KF_EINVAL);
	cr_assert_eq(
	    kf_conn_explicit("https://h", "two words", NULL, false, &c),
	    KF_EINVAL);
	cr_assert_eq(kf_conn_explicit("gopher://h", NULL, NULL, false, &c),
		     KF_EINVAL);
	cr_assert_eq(kf_conn_explicit("https://h", NULL, "/ca", true, &c),
		     KF_EINVAL);
	cr_assert_null(c);
}

/* ---- token files ---- */

Test(conn, token_file_is_read_trimmed)
{
	kf_conn *c = conn_ok("token-file.yaml", NULL);

	expect_auth(c, "Authorization: Bearer file-token-1");
	kf_conn_free(c);
	c = conn_ok("token-file.yaml", "both");
	expect_auth(c, "Authorization: Bearer static-wins");
	kf_conn_free(c);
}

Test(conn, empty_token_file_is_a_config_error)
{
	char err[512], want[700];
	kf_conn *c = NULL;

	cr_assert_eq(kf_conn_from_kubeconfig(kpath("token-file.yaml"), "empty",
					     err, sizeof(err), &c),
		     KF_ECONFIG);
	snprintf(want, sizeof(want), "token file %s: empty",
		 kpath("tokens/empty"));
	cr_assert_str_eq(err, want);
}

static void
write_token_kubeconfig(void)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "clusters: [{name: c, cluster: {server: https://h}}]\n"
		 "users: [{name: u, user: {tokenFile: tok}}]\n"
		 "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		 "current-context: x\n");
	spit(tmp("config"), text);
}

Test(conn, token_file_is_reread_when_it_changes)
{
	char err[512];
	struct timespec times[2];
	kf_conn *c = NULL;
	kf_err e;
	char *got;

	make_tmpdir();
	write_token_kubeconfig();
	spit(tmp("tok"), "first-token\n");
	cr_assert_eq(
	    kf_conn_from_kubeconfig(tmp("config"), NULL, err, sizeof(err), &c),
	    KF_OK, "%s", err);
	expect_auth(c, "Authorization: Bearer first-token");

	/* Same size, new content, an mtime set one second later. */
	spit(tmp("tok"), "other-token\n");
	clock_gettime(CLOCK_REALTIME, &times[0]);
	times[0].tv_sec += 1;
	times[1] = times[0];
	cr_assert_eq(utimensat(AT_FDCWD, tmp("tok"), times, 0), 0);
	expect_auth(c, "Authorization: Bearer other-token");

	/* Replaced by rename (a new inode), as the kubelet rotates. */
	spit(tmp("tok.new"), "third-token-longer");
	cr_assert_eq(rename(tmp("tok.new"), tmp("tok")), 0);
	expect_auth(c, "Authorization: Bearer third-token-longer");

	/* Gone: the last good token stays in use. */
	cr_assert_eq(unlink(tmp("tok")), 0);
	kfi_conn_invalidate(c); /* forces a read attempt */
	got = apply_auth(c, &e, err, sizeof(err));
	cr_assert_eq(e, KF_OK, "%s", err);
	cr_assert_str_eq(got, "Authorization: Bearer third-token-longer");
	free(got);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn, token_file_rewritten_in_place_is_seen_after_invalidate)
{
	char err[512];
	struct stat st;
	struct timespec times[2];
	kf_conn *c = NULL;

	make_tmpdir();
	write_token_kubeconfig();
	spit(tmp("tok"), "aaaa-token");
	cr_assert_eq(
	    kf_conn_from_kubeconfig(tmp("config"), NULL, err, sizeof(err), &c),
	    KF_OK, "%s", err);
	expect_auth(c, "Authorization: Bearer aaaa-token");
	/* Rewrite with the same size and the same mtime: invisible to
	 * stat, so the cached copy stays until the minute is up or a 401
	 * invalidates it. */
	cr_assert_eq(stat(tmp("tok"), &st), 0);
	spit(tmp("tok"), "bbbb-token");
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	cr_assert_eq(utimensat(AT_FDCWD, tmp("tok"), times, 0), 0);
	expect_auth(c, "Authorization: Bearer aaaa-token");
	kfi_conn_invalidate(c);
	expect_auth(c, "Authorization: Bearer bbbb-token");
	kf_conn_free(c);
	remove_tmpdir();
}

/* ---- exec plugins ---- */

static void
exec_env(void)
{
	make_tmpdir();
	setenv("KF_EXEC_COUNT_FILE", tmp("count"), 1);
	setenv("KF_EXEC_INFO_FILE", tmp("info"), 1);
	unsetenv("KF_EXEC_TTL");
}

Test(conn, exec_credential_is_cached_until_expiry, .init = exec_env)
{
	kf_conn *c = conn_ok("exec.yaml", NULL);
	char *info;

	for (int i = 0; i < 3; i++)
		expect_auth(c, "Authorization: Bearer exec-token-1-token");
	cr_assert_eq(count_lines(tmp("count")), 1);
	cr_assert_eq(kfi_conn_exec_runs(c), 1);

	/* The plugin saw KUBERNETES_EXEC_INFO with the cluster. */
	info = slurp(tmp("info"), NULL);
	cr_assert(strstr(info, "\"kind\":\"ExecCredential\"") != NULL, "%s",
		  info);
	cr_assert(strstr(info, "\"apiVersion\":\"client.authentication.k8s."
			       "io\\/v1\"") != NULL,
		  "%s", info);
	cr_assert(strstr(info, "\"interactive\":false") != NULL, "%s", info);
	cr_assert(strstr(info, "\"server\":\"https:\\/\\/exec.example.com:"
			       "8443\"") != NULL,
		  "%s", info);
	cr_assert(strstr(info, "\"certificate-authority-data\":\"LS0t") != NULL,
		  "%s", info);
	free(info);

	kfi_conn_invalidate(c);
	expect_auth(c, "Authorization: Bearer exec-token-2-token");
	expect_auth(c, "Authorization: Bearer exec-token-2-token");
	cr_assert_eq(count_lines(tmp("count")), 2);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn, expired_exec_credential_is_refreshed, .init = exec_env)
{
	kf_conn *c;

	/* Lifetime 3 s is inside the 5 s renewal margin: every apply runs
	 * the plugin again. */
	setenv("KF_EXEC_TTL", "3", 1);
	c = conn_ok("exec.yaml", NULL);
	expect_auth(c, "Authorization: Bearer exec-token-1-token");
	expect_auth(c, "Authorization: Bearer exec-token-2-token");
	kf_conn_free(c);

	/* Lifetime 7 s: cached now, renewed once 2 s have passed. */
	setenv("KF_EXEC_TTL", "7", 1);
	c = conn_ok("exec.yaml", NULL);
	expect_auth(c, "Authorization: Bearer exec-token-3-token");
	expect_auth(c, "Authorization: Bearer exec-token-3-token");
	sleep(3);
	expect_auth(c, "Authorization: Bearer exec-token-4-token");
	cr_assert_eq(count_lines(tmp("count")), 4);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn, exec_credential_without_expiry_is_kept, .init = exec_env)
{
	kf_conn *c = conn_ok("exec.yaml", "noexpiry");

	for (int i = 0; i < 4; i++)
		expect_auth(c, "Authorization: Bearer exec-token-1");
	cr_assert_eq(count_lines(tmp("count")), 1);
	kf_conn_free(c);
	remove_tmpdir();
}

Test(conn, exec_v1beta1_and_client_certificates, .init = exec_env)
{
	kf_conn *c = conn_ok("exec.yaml", "beta");

	expect_auth(c, "Authorization: Bearer exec-token-1");
	kf_conn_free(c);

	c = conn_ok("exec.yaml", "cert");
	expect_auth(c, NULL);
	expect_auth(c, NULL);
	cr_assert_eq(count_lines(tmp("count")), 2);
	kf_conn_free(c);
	remove_tmpdir();
}

static void
expect_exec_error(const char *context, kf_err want, const char *text)
{
	char err[1024] = "";
	kf_conn *c = conn_ok("exec.yaml", context);
	kf_err e;
	char *got = apply_auth(c, &e, err, sizeof(err));

	cr_assert_eq(e, want, "%s: got %s (%s)", context, kf_strerror(e), err);
	cr_assert_null(got);
	cr_assert(strstr(err, text) != NULL, "%s:\n  got  %s\n  want ...%s",
		  context, err, text);
	kf_conn_free(c);
}

Test(conn, failing_plugin_names_command_status_and_stderr_tail,
     .init = exec_env)
{
	char want[1024];

	snprintf(want, sizeof(want),
		 "exec plugin %s/./exec-plugin.sh: exited with status 3: "
		 "some earlier noise error: you must be logged in to the "
		 "server (run login first)",
		 KC_DIR);
	expect_exec_error("fail", KF_EAUTH, want);
	/* A failure is not cached: the next apply tries again. */
	expect_exec_error("fail", KF_EAUTH, "exited with status 3");
	cr_assert_eq(count_lines(tmp("count")), 2);
	remove_tmpdir();
}

Test(conn, malformed_plugin_output_is_refused, .init = exec_env)
{
	expect_exec_error("badjson", KF_EPARSE,
			  "output is not an ExecCredential: the JSON ends "
			  "early");
	expect_exec_error("wrongkind", KF_EPARSE,
			  "output is not an ExecCredential: kind is not "
			  "ExecCredential");
	expect_exec_error("mismatch", KF_EPARSE,
			  "apiVersion differs from the kubeconfig's");
	expect_exec_error("badtime", KF_EPARSE,
			  "status: expirationTimestamp is not an RFC 3339 "
			  "time");
	expect_exec_error("crlf", KF_EPARSE,
			  "status: the token is not a single word of visible "
			  "ASCII");
	expect_exec_error("big", KF_EAUTH,
			  "more than 1048576 bytes on stdout; killed");
	remove_tmpdir();
}

Test(conn, missing_plugin_and_interactive_plugin_fail_clearly, .init = exec_env)
{
	expect_exec_error("missing", KF_EAUTH,
			  "exec plugin kubefan-no-such-plugin: cannot run: No "
			  "such file or directory; install it with your "
			  "package manager");
	expect_exec_error("always", KF_EAUTH,
			  "interactiveMode Always needs a terminal");
	remove_tmpdir();
}

/* Whether the pid in file is gone (or a zombie awaiting its new
 * parent), within a second. */
static bool
child_gone(const char *file)
{
	char *text = slurp(file, NULL), path[64], stat[256];
	long pid = strtol(text, NULL, 10);

	free(text);
	cr_assert_gt(pid, 1);
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (int i = 0; i < 100; i++) {
		FILE *fp = fopen(path, "r");
		char *paren;

		if (fp == NULL)
			return true;
		stat[0] = '\0';
		if (fgets(stat, sizeof(stat), fp) == NULL)
			stat[0] = '\0';
		fclose(fp);
		paren = strrchr(stat, ')');
		if (paren != NULL && paren[1] == ' ' && paren[2] == 'Z')
			return true;
		usleep(10000);
	}
	return false;
}

Test(conn, slow_plugin_is_killed_at_the_deadline, .init = exec_env)
{
	char err[512];
	kf_conn *c = conn_ok("exec.yaml", "slow");
	struct timespec a, b;
	kf_err e;

	/* Orphans of the plugin come to this process, so whether they live
	 * does not depend on what init does with them. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	setenv("KF_EXEC_CHILD_FILE", tmp("child"), 1);
	kfi_conn_set_exec_timeout(c, 300);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_null(apply_auth(c, &e, err, sizeof(err)));
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_assert_eq(e, KF_ETIMEDOUT, "%s", err);
	cr_assert(strstr(err, "no answer within 300 ms; killed") != NULL, "%s",
		  err);
	cr_assert_lt(b.tv_sec - a.tv_sec, 3, "took %ld s",
		     (long)(b.tv_sec - a.tv_sec));
	kf_conn_free(c);
	cr_assert(child_gone(tmp("child")),
		  "the plugin's own child survived the kill");
	remove_tmpdir();
}

struct hammer {
	kf_conn *c;
	int bad;
	int done;
};

static void *
hammer_run(void *arg)
{
	struct hammer *hm = arg;
	char err[512];

	for (int i = 0; i < 25; i++) {
		CURL *h = curl_easy_init();
		struct curl_slist *hdrs = NULL;
		kf_err e = kfi_conn_apply(hm->c, h, &hdrs, err, sizeof(err));

		if (e != KF_OK || hdrs == NULL || hdrs->next != NULL ||
		    strncmp(hdrs->data, "Authorization: Bearer exec-token-",
			    33) != 0)
			__atomic_add_fetch(&hm->bad, 1, __ATOMIC_RELAXED);
		if (i % 10 == 0)
			kfi_conn_invalidate(hm->c);
		curl_slist_free_all(hdrs);
		curl_easy_cleanup(h);
	}
	__atomic_add_fetch(&hm->done, 1, __ATOMIC_RELAXED);
	return NULL;
}

Test(conn, concurrent_applies_share_one_plugin_run, .init = exec_env)
{
	struct hammer hm = {0};
	pthread_t t[6];
	int runs;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	hm.c = conn_ok("exec.yaml", NULL);
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, hammer_run, &hm);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(hm.bad, 0);
	cr_assert_eq(hm.done, 6);
	/* 150 applies; 18 invalidations; each run serves many applies. */
	runs = count_lines(tmp("count"));
	cr_assert_eq((unsigned)runs, kfi_conn_exec_runs(hm.c));
	cr_assert_geq(runs, 1);
	cr_assert_leq(runs, 19, "%d runs", runs);
	kf_conn_free(hm.c);
	curl_global_cleanup();
	remove_tmpdir();
}

/* ---- in-cluster ---- */

Test(conn, in_cluster_reads_the_service_account)
{
	char err[512];
	kf_conn *c = NULL;

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("KUBEFAN_SA_DIR", KC_DIR "/serviceaccount", 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_OK, "%s",
		     err);
	cr_assert_str_eq(kf_conn_server(c), "https://10.96.0.1:443");
	cr_assert_str_eq(kf_conn_namespace(c), "kube-team");
	expect_auth(c, "Authorization: Bearer sa-token-xyz");
	kf_conn_free(c);

	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_OK, "%s",
		     err);
	cr_assert_str_eq(kf_conn_server(c), "https://[fd00:10:96::1]:443");
	kf_conn_free(c);
}

Test(conn, in_cluster_outside_a_pod_is_a_config_error)
{
	char err[512];
	kf_conn *c = NULL;

	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_ECONFIG);
	cr_assert(strstr(err, "KUBERNETES_SERVICE_HOST") != NULL, "%s", err);

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "https", 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_ECONFIG);

	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("KUBEFAN_SA_DIR", "/nonexistent-kubefan-sa", 1);
	cr_assert_eq(kf_conn_in_cluster(err, sizeof(err), &c), KF_ECONFIG);
	cr_assert_str_eq(err, "in-cluster: cannot read "
			      "/nonexistent-kubefan-sa/ca.crt: No such file "
			      "or directory");
	cr_assert_null(c);
}

/* ---- the fuzz entry point ---- */

Test(kubeconfig, fuzz_entry_survives_every_data_file_and_its_prefixes)
{
	DIR *d = opendir(KC_DIR);
	struct dirent *ent;
	int files = 0;

	cr_assert_not_null(d);
	while ((ent = readdir(d)) != NULL) {
		size_t len, n = strlen(ent->d_name);
		uint8_t *copy;
		char *data;

		if (n < 5 || strcmp(ent->d_name + n - 5, ".yaml") != 0)
			continue;
		data = slurp(kpath(ent->d_name), &len);
		/* Each prefix in its own exact-size buffer, so ASan sees
		 * any read past the end. */
		for (size_t cut = 0; cut <= len; cut += cut < 64 ? 1 : 7) {
			copy = malloc(cut + 1);
			memcpy(copy, data, cut);
			cr_assert_eq(kfi_kubeconfig_fuzz_one(copy, cut), 0);
			free(copy);
		}
		cr_assert_eq(kfi_kubeconfig_fuzz_one((uint8_t *)data, len), 0);
		free(data);
		files++;
	}
	closedir(d);
	cr_assert_geq(files, 45, "only %d data files", files);
}

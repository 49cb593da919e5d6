/* kubefand's configuration: --resource syntax, the YAML file, checks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kubefan/log.h"

static char *
write_tmp(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/kf-cfg-%d.yaml", getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(config, resource_specs_name_group_version_and_options)
{
	struct kd_cfg c;
	char err[256] = "";

	kd_cfg_defaults(&c);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c, "configmaps", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c,
				     "apps/v1/deployments,ns=prod,labels=a=b,"
				     "transform=strip-managed-fields",
				     err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c, "v1/pods,name=p", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(c.res[0].group, "");
	cr_assert_str_eq(c.res[0].version, "v1");
	cr_assert_str_eq(c.res[0].stream, "configmaps");
	cr_assert_str_eq(c.res[1].group, "apps");
	cr_assert_str_eq(c.res[1].resource, "deployments");
	cr_assert_str_eq(c.res[1].ns, "prod");
	cr_assert_str_eq(c.res[1].labels, "a=b");
	cr_assert(c.res[1].strip);
	cr_assert_str_eq(c.res[1].stream, "deployments.apps");
	cr_assert_str_eq(c.res[2].stream, "p");

	cr_assert_neq(
	    kd_cfg_add_resource_spec(&c, "pods,color=red", err, sizeof(err)),
	    0);
	cr_assert(strstr(err, "unknown option color=red") != NULL, "%s", err);
	cr_assert_neq(kd_cfg_add_resource_spec(&c, "a/b/c/d", err, sizeof(err)),
		      0);
	cr_assert_eq(c.nres, 3);

	cr_assert_eq(kd_cfg_finish(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.rep, "ipc:///tmp/kubefand.rep");
	kd_cfg_fini(&c);
}

Test(config, a_yaml_file_sets_everything_and_flags_add_to_it)
{
	struct kd_cfg c;
	char err[256] = "";
	char *path = write_tmp("kubeconfig: /etc/kc\n"
			       "listen: tcp://127.0.0.1:7000\n"
			       "ipcMode: \"0660\"\n"
			       "ringCapacity: 1024\n"
			       "batchMicros: 0\n"
			       "heartbeatMs: 500\n"
			       "logFormat: json\n"
			       "logLevel: debug\n"
			       "resources:\n"
			       "  - resource: configmaps\n"
			       "    namespace: a\n"
			       "  - resource: apps/v1/deployments\n"
			       "    transform: strip-managed-fields\n"
			       "    name: deploys\n");

	kd_cfg_defaults(&c);
	cr_assert_eq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(kd_cfg_add_resource_spec(&c, "secrets", err, sizeof(err)),
		     0);
	cr_assert_eq(kd_cfg_finish(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.kubeconfig, "/etc/kc");
	cr_assert_eq(c.ipc_mode, 0660);
	cr_assert_eq(c.ring_capacity, 1024);
	cr_assert_eq(c.batch_us, 0);
	cr_assert_eq(c.heartbeat_ms, 500);
	cr_assert(c.log_json);
	cr_assert_eq(c.log_level, KF_LOG_DEBUG);
	cr_assert_eq(c.nres, 3);
	cr_assert_str_eq(c.res[0].ns, "a");
	cr_assert_str_eq(c.res[1].stream, "deploys");
	cr_assert(c.res[1].strip);
	cr_assert_str_eq(c.res[2].stream, "secrets");
	cr_assert_str_eq(c.rep, "tcp://127.0.0.1:7001");
	kd_cfg_fini(&c);
	unlink(path);
}

Test(config, errors_name_the_file_line_and_key)
{
	struct kd_cfg c;
	char err[256] = "";
	char *path;

	kd_cfg_defaults(&c);
	path = write_tmp("listen: ipc:///x\nringCapacty: 8\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, ":2: ringCapacty: unknown key") != NULL, "%s",
		  err);

	path = write_tmp("resources:\n  - namespace: a\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, "needs `resource:`") != NULL, "%s", err);

	path = write_tmp("heartbeatMs: -5\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, "heartbeatMs") != NULL, "%s", err);

	path = write_tmp("listen: [unclosed\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, path) != NULL, "%s", err);

	/* Two streams with one id, and a ring that is no power of two. */
	kd_cfg_add_resource_spec(&c, "pods", err, sizeof(err));
	kd_cfg_add_resource_spec(&c, "v1/pods", err, sizeof(err));
	cr_assert_neq(kd_cfg_finish(&c, err, sizeof(err)), 0);
	cr_assert(strstr(err, "stream id \"pods\"") != NULL, "%s", err);
	kd_cfg_fini(&c);
	kd_cfg_defaults(&c);
	kd_cfg_add_resource_spec(&c, "pods", err, sizeof(err));
	c.ring_capacity = 1000;
	cr_assert_neq(kd_cfg_finish(&c, err, sizeof(err)), 0);
	cr_assert(strstr(err, "ringCapacity (--ring-capacity) 1000:") != NULL,
		  "%s", err);
	kd_cfg_fini(&c);
	unlink(path);
}

/* Load text as a file into fresh defaults; the error, or "" when it
 * loaded. */
static const char *
load_err(const char *text)
{
	static char err[512];
	struct kd_cfg c;
	char *path = write_tmp(text);

	err[0] = '\0';
	kd_cfg_defaults(&c);
	if (kd_cfg_load_file(&c, path, err, sizeof(err)) == 0)
		err[0] = '\0';
	kd_cfg_fini(&c);
	unlink(path);
	return err;
}

Test(config, a_bad_value_in_the_file_is_named_with_its_key_and_line)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	    {"ringCapacity: lots\n", ":1: ringCapacity: \"lots\": expected"},
	    {"listen: x\nheartbeatMs: 0\n",
	     ":2: heartbeatMs: \"0\": expected 1 to 3600000"},
	    {"ipcMode: \"0999\"\n", "ipcMode: \"0999\": expected an octal"},
	    {"ipcMode: \"1777\"\n", "ipcMode: \"1777\": expected a mode"},
	    {"allowRemote: yes\n",
	     "allowRemote: \"yes\": expected true or false"},
	    {"logLevel: loud\n", "logLevel: \"loud\": expected err"},
	    {"logFormat: xml\n", "logFormat: \"xml\": expected text or json"},
	    {"backoffMaxMs: -1\n", "backoffMaxMs: \"-1\":"},
	    {"staleAfterFailures: 0\n", "staleAfterFailures: \"0\":"},
	    {"watchIdleMs: 500\n",
	     "watchIdleMs: \"500\": expected 1000 to 3600000"},
	    {"listen: \"\"\n", "listen: \"\": expected a non-empty string"},
	    {"resources: configmaps\n",
	     "resources: \"configmaps\": expected a list"},
	    {"resources:\n  - resource: pods\n    transform: gzip\n",
	     ":3: resources[0].transform: \"gzip\": expected "
	     "strip-managed-fields or none"},
	    {"resources:\n  - resource: pods\n  - resource: a/b/c/d\n",
	     ":3: resources[1].resource: \"a/b/c/d\": expected resource"},
	    {"resources:\n  - resource: pods\n    name: \"\"\n",
	     "resources[0].name: \"\": the stream id must not be empty"},
	    {"resources:\n  - resource: pods\n    colour: red\n",
	     ":3: resources[0].colour: unknown key"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = load_err(cases[i].yaml);

		cr_assert(strstr(err, cases[i].want) != NULL,
			  "case %zu: %s\nwant: %s", i, err, cases[i].want);
	}
	cr_assert_str_eq(load_err("backoffMaxMs: 2000\n"
				  "staleAfterFailures: 2\n"),
			 "");
}

/* "x: " then n '[' and n ']': the root mapping and n lists, n + 1
 * levels. */
static char *
nested(size_t n)
{
	char *s = malloc(n * 2 + 8);

	cr_assert_not_null(s);
	memcpy(s, "x: ", 3);
	memset(s + 3, '[', n);
	memset(s + 3 + n, ']', n);
	strcpy(s + 3 + 2 * n, "\n");
	return s;
}

Test(config, deep_nesting_is_refused_naming_the_line_and_the_limit)
{
	char *deep = nested(63), *deeper = nested(64);
	char *huge = malloc(100001);
	const char *err;

	/* 64 levels is the limit: that file fails only on its key. */
	err = load_err(deep);
	cr_assert(strstr(err, ":1: x: unknown key") != NULL, "%s", err);
	err = load_err(deeper);
	cr_assert(
	    strstr(err, ":1: YAML nested deeper than 64 levels (the limit)") !=
		NULL,
	    "%s", err);
	/* 100 000 '[' kept libyaml busy for half a minute when the whole
	 * document was loaded; the event pass stops at level 65. */
	cr_assert_not_null(huge);
	memset(huge, '[', 100000);
	huge[100000] = '\0';
	err = load_err(huge);
	cr_assert(
	    strstr(err, ":1: YAML nested deeper than 64 levels (the limit)") !=
		NULL,
	    "%s", err);
	free(deep);
	free(deeper);
	free(huge);
}

/* "x: [&a0 1,&a1 1,...]" with n anchors, or "x: [&a 1,*a,*a,...]" with n
 * aliases, on one line. */
static char *
anchored(size_t n, bool aliases)
{
	size_t cap = 32 + n * 12, at;
	char *s = malloc(cap);

	cr_assert_not_null(s);
	at = (size_t)snprintf(s, cap, "x: [%s", aliases ? "&a 1" : "");
	for (size_t i = 0; i < n; i++) {
		const char *sep = i > 0 || aliases ? "," : "";

		if (aliases)
			at += (size_t)snprintf(s + at, cap - at, "%s*a", sep);
		else
			at += (size_t)snprintf(s + at, cap - at, "%s&a%zu 1",
					       sep, i);
	}
	snprintf(s + at, cap - at, "]\n");
	return s;
}

Test(config, anchors_and_aliases_are_bounded_before_loading)
{
	char *few = anchored(1024, false), *many = anchored(1025, false);
	char *aliases = anchored(4097, true);
	char *lots = anchored(90000, false);
	const char *err;

	/* Within the limits the file fails only on its key. */
	err = load_err(few);
	cr_assert(strstr(err, ":1: x: unknown key") != NULL, "%s", err);
	err = load_err(many);
	cr_assert(strstr(err, ":1: more than 1024 YAML anchors (the limit)") !=
		      NULL,
		  "%s", err);
	err = load_err(aliases);
	cr_assert(strstr(err, ":1: more than 4096 YAML aliases (the limit)") !=
		      NULL,
		  "%s", err);
	/* 90 000 anchors (1 MiB) kept libyaml busy for 15 s: each is looked
	 * up in the list of those before it. */
	err = load_err(lots);
	cr_assert(strstr(err, "more than 1024 YAML anchors") != NULL, "%s",
		  err);
	free(few);
	free(many);
	free(aliases);
	free(lots);
}

Test(config, a_second_document_is_refused_not_ignored)
{
	const char *err = load_err("listen: ipc:///tmp/a\n---\n"
				   "listen: ipc:///tmp/b\n");

	cr_assert(strstr(err, ":2: a second YAML document; the file holds "
			      "one") != NULL,
		  "%s", err);
	/* One document with explicit markers is fine. */
	cr_assert_str_eq(load_err("---\nlisten: ipc:///tmp/a\n...\n"), "");
}

/* An empty file was reported at line 0 ("x.yaml:0: the file must be a
 * mapping"), and a syntax error as libyaml's bare words. */
Test(config, an_empty_file_and_bad_syntax_are_named_as_such)
{
	static const char *const empty[] = {"", "# only a comment\n", "---\n",
					    "~\n"};
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	    {"resources: [\n",
	     ":2: YAML syntax error: did not find expected node content "
	     "while parsing a flow node"},
	    {"listen: [unclosed\n",
	     ":2: YAML syntax error: did not find expected ',' or ']' while "
	     "parsing a flow sequence"},
	    {"- resource: pods\n", ":1: the file is a list, not a mapping of "
				   "settings"},
	    {"pods\n", ":1: the file is a string, not a mapping of settings"},
	    /* libyaml gives no line for bytes that are not text; the line
	     * is counted from its offset. */
	    {"listen: ipc:///tmp/a\nresources:\n  - resource: p\xff"
	     "ds\n",
	     ":3: invalid text: invalid leading UTF-8 octet"},
	    {"listen: ipc:///tmp/a\n\x01\n",
	     ":2: invalid text: control characters are not allowed"},
	};
	char want[128];

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		snprintf(want, sizeof(want),
			 "/tmp/kf-cfg-%d.yaml: the file is empty (it must be a "
			 "mapping of settings, such as resources:)",
			 getpid());
		cr_assert_str_eq(load_err(empty[i]), want, "case %zu", i);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = load_err(cases[i].yaml);

		snprintf(want, sizeof(want), "/tmp/kf-cfg-%d.yaml%s", getpid(),
			 cases[i].want);
		cr_assert_str_eq(err, want, "case %zu", i);
	}
}

Test(config, a_key_given_twice_is_refused_naming_both_lines)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	    {"listen: ipc:///tmp/a\nheartbeatMs: 5\nlisten: ipc:///tmp/b\n",
	     ":3: listen: given twice, at lines 1 and 3"},
	    {"resources:\n  - resource: pods\nresources:\n"
	     "  - resource: configmaps\n",
	     ":3: resources: given twice, at lines 1 and 3"},
	    {"resources:\n  - resource: pods\n    labels: a=b\n"
	     "    labels: a=c\n",
	     ":4: resources[0].labels: given twice, at lines 3 and 4"},
	    {"resources:\n  - resource: pods\n    resource: configmaps\n",
	     ":3: resources[0].resource: given twice, at lines 2 and 3"},
	    {"resources:\n  - resource: pods\n    ns: a\n    namespace: b\n",
	     ":4: resources[0].namespace: given twice, as ns at line 3 and "
	     "as namespace at line 4"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = load_err(cases[i].yaml);

		cr_assert(strstr(err, cases[i].want) != NULL,
			  "case %zu: %s\nwant: %s", i, err, cases[i].want);
	}
}

Test(config, the_file_sets_the_watch_retry_settings)
{
	struct kd_cfg c;
	char err[256] = "";
	char *path = write_tmp("backoffMaxMs: 2000\nstaleAfterFailures: 2\n"
			       "watchIdleMs: 90000\n");

	kd_cfg_defaults(&c);
	cr_assert_eq(c.backoff_max_ms, 0);
	cr_assert_eq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(c.backoff_max_ms, 2000);
	cr_assert_eq(c.stale_after_failures, 2);
	cr_assert_eq(c.watch_idle_ms, 90000);
	kd_cfg_fini(&c);
	unlink(path);
}

Test(config, an_empty_stream_id_flag_is_refused)
{
	struct kd_cfg c;
	char err[256] = "";

	kd_cfg_defaults(&c);
	cr_assert_neq(
	    kd_cfg_add_resource_spec(&c, "configmaps,name=", err, sizeof(err)),
	    0);
	cr_assert(strstr(err, "name=\"\": the stream id must not be empty") !=
		      NULL,
		  "%s", err);
	cr_assert_neq(kd_cfg_add_resource_spec(&c, "pods,transform=zip", err,
					       sizeof(err)),
		      0);
	cr_assert(strstr(err, "transform=\"zip\": expected") != NULL, "%s",
		  err);
	cr_assert_eq(c.nres, 0);
	kd_cfg_fini(&c);
}

/* kd_cfg_finish on defaults plus one resource and one change. */
static const char *
finish_err(void (*change)(struct kd_cfg *c))
{
	static char err[512];
	struct kd_cfg c;

	err[0] = '\0';
	kd_cfg_defaults(&c);
	cr_assert_eq(kd_cfg_add_resource_spec(&c, "pods", err, sizeof(err)), 0);
	change(&c);
	if (kd_cfg_finish(&c, err, sizeof(err)) == 0)
		err[0] = '\0';
	kd_cfg_fini(&c);
	return err;
}

static void
ch_listen_scheme(struct kd_cfg *c)
{
	kd_set(&c->listen, "udp://127.0.0.1:1");
}

static void
ch_tls_without_cert(struct kd_cfg *c)
{
	kd_set(&c->listen, "tls+tcp://127.0.0.1:7000");
}

static void
ch_tls_with_cert(struct kd_cfg *c)
{
	kd_set(&c->listen, "tls+tcp://127.0.0.1:7000");
	kd_set(&c->tls_cert_key, KF_SOURCE_DIR "/README.md"); /* readable */
}

static void
ch_tls_cert_missing(struct kd_cfg *c)
{
	kd_set(&c->listen, "tls+tcp://127.0.0.1:7000");
	kd_set(&c->tls_cert_key, "/nonexistent/cert.pem");
}

static void
ch_listen_off_loopback(struct kd_cfg *c)
{
	kd_set(&c->listen, "tcp://0.0.0.0:7000");
}

static void
ch_listen_off_loopback_allowed(struct kd_cfg *c)
{
	kd_set(&c->listen, "tcp://0.0.0.0:7000");
	c->allow_remote = true;
}

static void
ch_http_port_too_big(struct kd_cfg *c)
{
	kd_set(&c->http, "http://127.0.0.1:99999");
}

static void
ch_tcp_no_port(struct kd_cfg *c)
{
	kd_set(&c->refs, "tcp://127.0.0.1");
}

static void
ch_http(struct kd_cfg *c)
{
	kd_set(&c->http, "https://127.0.0.1:9090");
}

static void
ch_http_none(struct kd_cfg *c)
{
	kd_set(&c->http, "none");
}

static void
ch_ring_huge(struct kd_cfg *c)
{
	c->ring_capacity = (size_t)1 << 30;
}

static void
ch_ipc_no_rep(struct kd_cfg *c)
{
	kd_set(&c->listen, "tcp://127.0.0.1:65535");
}

Test(config, checks_after_reading_name_the_key_its_flag_and_the_value)
{
	cr_assert(strstr(finish_err(ch_listen_scheme),
			 "listen (--listen) \"udp://127.0.0.1:1\": expected "
			 "ipc://") != NULL,
		  "%s", finish_err(ch_listen_scheme));
	cr_assert(strstr(finish_err(ch_tls_without_cert),
			 "\"tls+tcp://127.0.0.1:7000\": tls+tcp:// needs "
			 "tlsCert") != NULL,
		  "%s", finish_err(ch_tls_without_cert));
	cr_assert_str_eq(finish_err(ch_tls_with_cert), "");
	cr_assert_str_eq(finish_err(ch_tls_cert_missing),
			 "tlsCert (--tls-cert) \"/nonexistent/cert.pem\": No "
			 "such file or directory");
	cr_assert(strstr(finish_err(ch_listen_off_loopback),
			 "listen (--listen) \"tcp://0.0.0.0:7000\": not a "
			 "loopback address") != NULL,
		  "%s", finish_err(ch_listen_off_loopback));
	cr_assert_str_eq(finish_err(ch_listen_off_loopback_allowed), "");
	cr_assert_str_eq(finish_err(ch_http_port_too_big),
			 "http (--http) \"http://127.0.0.1:99999\": the port "
			 "is outside 0..65535");
	cr_assert(strstr(finish_err(ch_tcp_no_port),
			 "refs (--refs) \"tcp://127.0.0.1\": expected "
			 "HOST:PORT") != NULL,
		  "%s", finish_err(ch_tcp_no_port));
	cr_assert(strstr(finish_err(ch_http),
			 "http (--http) \"https://127.0.0.1:9090\"") != NULL,
		  "%s", finish_err(ch_http));
	cr_assert_str_eq(finish_err(ch_http_none), "");
	cr_assert(strstr(finish_err(ch_ring_huge),
			 "ringCapacity (--ring-capacity) 1073741824") != NULL,
		  "%s", finish_err(ch_ring_huge));
	cr_assert(strstr(finish_err(ch_ipc_no_rep),
			 "rep (--rep): cannot be derived") != NULL,
		  "%s", finish_err(ch_ipc_no_rep));
}

Test(config, numbers_from_flags_are_whole_and_bounded)
{
	char err[256];
	unsigned long u = 7;

	cr_assert_eq(
	    kd_parse_uint("--batch-us", "250", 10, 1000, &u, err, sizeof(err)),
	    0);
	cr_assert_eq(u, 250);
	cr_assert_eq(
	    kd_parse_uint("--ipc-mode", "0660", 8, 0777, &u, err, sizeof(err)),
	    0);
	cr_assert_eq(u, 0660);
	cr_assert_neq(kd_parse_uint("--ring-capacity", "4k", 10, 1 << 20, &u,
				    err, sizeof(err)),
		      0);
	cr_assert_str_eq(err, "--ring-capacity \"4k\": expected a whole "
			      "number");
	cr_assert_neq(
	    kd_parse_uint("--batch-us", "-1", 10, 1000, &u, err, sizeof(err)),
	    0);
	cr_assert_neq(
	    kd_parse_uint("--batch-us", "", 10, 1000, &u, err, sizeof(err)), 0);
	cr_assert_neq(
	    kd_parse_uint("--batch-us", "1001", 10, 1000, &u, err, sizeof(err)),
	    0);
	cr_assert_str_eq(err, "--batch-us \"1001\": at most 1000");
	cr_assert_neq(
	    kd_parse_uint("--ipc-mode", "0999", 8, 0777, &u, err, sizeof(err)),
	    0);
	cr_assert_str_eq(err, "--ipc-mode \"0999\": expected an octal number");
}

/* strtoul alone took leading white space and a sign: " 16" was 16 and
 * " -1" wrapped to ULONG_MAX. A number is decimal (octal for ipcMode)
 * digits and nothing else. */
Test(config, numbers_in_the_file_are_plain_digits)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	    {"ringCapacity: \" 16\"\n",
	     ":1: ringCapacity: \" 16\": expected a whole number"},
	    {"ringCapacity: \"16 \"\n",
	     ":1: ringCapacity: \"16 \": expected a whole number"},
	    {"ringCapacity: \"+16\"\n",
	     ":1: ringCapacity: \"+16\": expected a whole number"},
	    {"ringCapacity: \"\\t16\"\n",
	     ":1: ringCapacity: \"\t16\": expected a whole number"},
	    {"ringCapacity: 0x10\n",
	     ":1: ringCapacity: \"0x10\": expected a whole number"},
	    {"listen: x\nheartbeatMs: \" -1\"\n",
	     ":2: heartbeatMs: \" -1\": expected a whole number"},
	    {"batchMicros: \"+5\"\n",
	     ":1: batchMicros: \"+5\": expected a whole number"},
	    {"watchIdleMs: \" 5000\"\n",
	     ":1: watchIdleMs: \" 5000\": expected a whole number"},
	    {"backoffMaxMs: \"-0\"\n",
	     ":1: backoffMaxMs: \"-0\": expected a whole number"},
	    {"staleAfterFailures: \" 3\"\n",
	     ":1: staleAfterFailures: \" 3\": expected a whole number"},
	    {"ipcMode: \" 0600\"\n",
	     ":1: ipcMode: \" 0600\": expected an octal number"},
	    {"ipcMode: \"+0600\"\n",
	     ":1: ipcMode: \"+0600\": expected an octal number"},
	    {"ringCapacity: 99999999999999999999999\n",
	     ":1: ringCapacity: \"99999999999999999999999\": too large a "
	     "number"},
	};
	char want[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), "/tmp/kf-cfg-%d.yaml%s", getpid(),
			 cases[i].want);
		cr_assert_str_eq(load_err(cases[i].yaml), want, "case %zu", i);
	}
	cr_assert_str_eq(load_err("ringCapacity: \"016\"\nipcMode: 0600\n"
				  "heartbeatMs: 5\n"),
			 "");
}

Test(config, numbers_from_flags_are_plain_digits)
{
	static const char *const bad[] = {" 16",  "16 ",  "+16", "\t16",
					  "16\n", "0x10", "-0",	 " -1"};
	char err[256], want[256];
	unsigned long u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_neq(kd_parse_uint("--ring-capacity", bad[i], 10,
					    1ul << 24, &u, err, sizeof(err)),
			      0, "%s", bad[i]);
		snprintf(want, sizeof(want),
			 "--ring-capacity \"%s\": expected a whole number",
			 bad[i]);
		cr_assert_str_eq(err, want);
	}
	cr_assert_neq(
	    kd_parse_uint("--ipc-mode", " 0600", 8, 0777, &u, err, sizeof(err)),
	    0);
	cr_assert_str_eq(err, "--ipc-mode \" 0600\": expected an octal number");
	cr_assert_neq(kd_parse_uint("--heartbeat-ms", "99999999999999999999",
				    10, 3600000, &u, err, sizeof(err)),
		      0);
	cr_assert_str_eq(err, "--heartbeat-ms \"99999999999999999999\": too "
			      "large a number");
}

/* finish_err's change for the port tests. */
static const char *port_listen;

static void
ch_port(struct kd_cfg *c)
{
	kd_set(&c->listen, port_listen);
	kd_set(&c->rep, "tcp://127.0.0.1:7001");
}

Test(config, a_listen_port_is_plain_digits)
{
	static const struct {
		const char *listen, *why;
	} cases[] = {
	    {"tcp://127.0.0.1: 7000", "the port is not a number"},
	    {"tcp://127.0.0.1:+7000", "the port is not a number"},
	    {"tcp://127.0.0.1:/x", "the port is not a number"},
	    {"tcp://127.0.0.1:0x10", "the port is not a number"},
	    {"tcp://127.0.0.1:0000001", "the port has leading zeros"},
	    {"tcp://127.0.0.1:99999999999999999999",
	     "the port is outside 0..65535"},
	    {"tcp://::1:7000",
	     "an IPv6 address needs brackets, as tcp://[::1]:PORT"},
	    {"tcp://[::1:7000",
	     "an IPv6 address needs brackets, as tcp://[::1]:PORT"},
	    {"tcp://[::1]x:7000",
	     "an IPv6 address needs brackets, as tcp://[::1]:PORT"},
	};
	char want[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		port_listen = cases[i].listen;
		snprintf(want, sizeof(want), "listen (--listen) \"%s\": %s",
			 cases[i].listen, cases[i].why);
		cr_assert_str_eq(finish_err(ch_port), want);
	}
	port_listen = "tcp://127.0.0.1:7000";
	cr_assert_str_eq(finish_err(ch_port), "");
	port_listen = "tcp://127.0.0.1:0";
	cr_assert_str_eq(finish_err(ch_port), "");
	port_listen = "tcp://[::1]:7000";
	cr_assert_str_eq(finish_err(ch_port), "");
}

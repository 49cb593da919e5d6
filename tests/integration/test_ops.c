/*
 * kubefand as an operator sees it, against the real API server (issue 7):
 *
 *   - /metrics scraped during a run must agree with what the test did: a
 *     known number of ConfigMaps created, replaced and deleted gives the
 *     objects gauge, the event counters by type, the ring's head, the
 *     publisher feed's delivered count; HELP and TYPE lines come with
 *     every family;
 *   - /readyz is 200 when synced, turns 503 naming the resource and why
 *     once the API server is stopped, and 200 again when it is back;
 *   - --check-config names the field and the value of a bad setting, and
 *     accepts docs/deploy/kubefand.yaml.
 *
 * kubefand runs as a process (support/proc.h) with its ipc sockets and
 * its log in a temporary folder (support/files.h), removed when the test
 * passes and kept when it fails, and its HTTP endpoint on a free loopback
 * port. The
 * API server stop is shared with everyone using the cluster: the window
 * is kept short, and the suite's .fini starts the server again whatever
 * happened.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kube.h"
#include "proc.h"
#include "files.h"
#include "clock.h"

static bool apiserver_stopped;

/* Whatever an assertion cut short: the API server runs again, and the
 * folders of a failed test are named. */
static void
restore_cluster(void)
{
	if (apiserver_stopped) {
		kt_cluster("start-apiserver");
		apiserver_stopped = false;
	}
	kt_proc_reap_all();
	kt_tmpdir_report_kept();
}

static char *
read_file(const char *path)
{
	char *s = kt_file_read(path, NULL);

	return s != NULL ? s : strdup("");
}

/* A loopback port nobody listens on right now. */
static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ---- HTTP ---- */

struct body {
	char *p;
	size_t len;
};

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	char *np = realloc(b->p, b->len + size * n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->len, p, size * n);
	b->len += size * n;
	np[b->len] = '\0';
	b->p = np;
	return size * n;
}

/* GET http://127.0.0.1:port/path: the status (-1 when no answer) and the
 * body in *out (malloc'd, "" at least). */
static long
http_get(int port, const char *path, char **out)
{
	CURL *h = curl_easy_init();
	struct body b = {calloc(1, 1), 0};
	char url[128];
	long status = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	*out = b.p;
	return status;
}

/* Poll path until it answers want; the seconds it took, or -1 after
 * max_s. The last body is left in *last (malloc'd). */
static double
await_status(int port, const char *path, long want, double max_s, char **last)
{
	double t0 = kt_now_s();

	*last = NULL;
	for (;;) {
		free(*last);
		if (http_get(port, path, last) == want)
			return kt_now_s() - t0;
		if (kt_now_s() - t0 > max_s)
			return -1;
		usleep(100 * 1000);
	}
}

/* ---- the exposition text ---- */

/* The value of the sample `series` (name with its label set, exactly as
 * rendered, e.g. `kubefan_resource_objects{resource="x"}`); NAN when
 * absent. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NAN;
}

static double
rsample(const char *text, const char *name, const char *stream)
{
	char series[256];

	snprintf(series, sizeof(series), "%s{resource=\"%s\"}", name, stream);
	return sample(text, series);
}

static double
events(const char *text, const char *stream, const char *type)
{
	char series[256];

	snprintf(series, sizeof(series),
		 "kubefan_watch_events_total{resource=\"%s\",type=\"%s\"}",
		 stream, type);
	return sample(text, series);
}

static double
feed(const char *text, const char *name, const char *stream)
{
	char series[256];

	snprintf(series, sizeof(series),
		 "%s{resource=\"%s\",subscriber=\"publisher\"}", name, stream);
	return sample(text, series);
}

/* Every sample line sits under "# HELP name" and "# TYPE name counter|gauge"
 * lines of its family, and every counter's name ends in _total. Returns
 * the number of families seen. */
static int
check_help_and_type(const char *text)
{
	char fam[128] = "", type[16] = "";
	bool help = false;
	int families = 0;

	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];

		cr_assert_lt(len, sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			cr_assert_eq(sscanf(line + 7, "%127s", fam), 1);
			cr_assert_gt(strlen(line), 8 + strlen(fam),
				     "empty help: %s", line);
			help = true;
			type[0] = '\0';
			families++;
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char tf[128];

			cr_assert_eq(sscanf(line + 7, "%127s %15s", tf, type),
				     2, "%s", line);
			cr_assert(help, "TYPE without HELP: %s", line);
			cr_assert_str_eq(tf, fam);
			cr_assert(strcmp(type, "counter") == 0 ||
				      strcmp(type, "gauge") == 0,
				  "%s", line);
		} else {
			size_t fl = strlen(fam);

			cr_assert(help && type[0] != '\0',
				  "sample before HELP/TYPE: %s", line);
			cr_assert(strncmp(line, fam, fl) == 0 &&
				      (line[fl] == ' ' || line[fl] == '{'),
				  "sample %s under family %s", line, fam);
			if (strcmp(type, "counter") == 0)
				cr_assert(fl > 6 && strcmp(fam + fl - 6,
							   "_total") == 0,
					  "counter %s", fam);
		}
		p += len + (nl ? 1 : 0);
	}
	return families;
}

/* ---- kubefand ---- */

struct kd {
	char ns[64], stream[96];
	char dir[128], log[192], pub[192], rep[192];
	int port;
	pid_t pid;
};

static void
kd_setup(struct kd *k, const char *prefix)
{
	curl_global_init(CURL_GLOBAL_ALL);
	kt_unique(prefix, k->ns, sizeof(k->ns));
	kt_namespace(k->ns);
	snprintf(k->stream, sizeof(k->stream), "cm-%s", k->ns);
	cr_assert_eq(kt_tmpdir_make("kf-ops", k->dir, sizeof(k->dir)), 0,
		     "mkdtemp: %s", strerror(errno));
	snprintf(k->log, sizeof(k->log), "%s/kubefand.log", k->dir);
	snprintf(k->pub, sizeof(k->pub), "ipc://%s/broker.pub", k->dir);
	snprintf(k->rep, sizeof(k->rep), "ipc://%s/broker.rep", k->dir);
}

/* extra: further arguments, NULL-terminated. */
static void
kd_start(struct kd *k, const char *const *extra)
{
	char res[256], http[64];
	char *argv[32] = {KF_KUBEFAND,
			  "--kubeconfig",
			  (char *)kt_env("KUBEFAN_TEST_KUBECONFIG"),
			  "--resource",
			  res,
			  "--listen",
			  k->pub,
			  "--rep",
			  k->rep,
			  "--http",
			  http,
			  "--log-format",
			  "json"};
	int n = 13;

	for (; extra != NULL && *extra != NULL && n < 31; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	snprintf(res, sizeof(res), "configmaps,ns=%s,name=%s", k->ns,
		 k->stream);
	k->port = free_port();
	snprintf(http, sizeof(http), "http://127.0.0.1:%d", k->port);
	k->pid = kt_proc_spawn(argv, k->log, NULL, 0);
}

/* The run passed: its folder goes. */
static void
kd_cleanup(struct kd *k)
{
	cr_assert_eq(kt_tmpdir_remove(k->dir), 0, "removing %s: %s", k->dir,
		     strerror(errno));
}

/* SIGTERM: exit 0 within the stop deadline, the last line KF-DAEMON-EXIT. */
static void
kd_stop(struct kd *k)
{
	char *log;

	cr_assert_eq(kt_proc_stop(k->pid, SIGTERM, 10), 0,
		     "kubefand did not exit 0 on SIGTERM");
	log = read_file(k->log);
	cr_assert(strstr(log, "\"id\":\"KF-DAEMON-SIGNAL\"") != NULL, "%s",
		  log);
	cr_assert(strstr(log, "\"id\":\"KF-DAEMON-EXIT\"") != NULL, "%s", log);
	free(log);
}

static void
must(long got, long want, const char *what)
{
	cr_assert_eq(got, want, "%s: HTTP %ld", what, got);
}

TestSuite(ops, .fini = restore_cluster, .timeout = 300);

/* The ConfigMap churn of one run: create 6, replace 4, delete 2. */
#define N_CREATE 6
#define N_UPDATE 4
#define N_DELETE 2

/* Other tests restart the API server and compact etcd on the shared
 * cluster. A run they disturbed (a request that had to be retried, a
 * re-list) cannot be held to exact event counts; it is repeated. */
static bool disturbed;

enum cm_op { CM_CREATE, CM_UPDATE, CM_DELETE };

/* One ConfigMap request, retried for up to 60 s while the API server does
 * not answer (an answer that got lost makes the retry 409 or 404). */
static void
cm(enum cm_op op, const char *ns, const char *name, const char *value)
{
	static const long ok[] = {201, 200, 200}, again[] = {409, 0, 404};
	double end = kt_now_s() + 60;
	long st;

	for (;;) {
		st = op == CM_CREATE ? kt_configmap_create(ns, name, "k", value)
		     : op == CM_UPDATE
			 ? kt_configmap_update(ns, name, "k", value)
			 : kt_configmap_delete(ns, name);
		if (st == ok[op] || (disturbed && st == again[op]))
			return;
		cr_assert(st < 0 || st >= 500, "%s %s/%s: HTTP %ld",
			  op == CM_CREATE   ? "create"
			  : op == CM_UPDATE ? "update"
					    : "delete",
			  ns, name, st);
		cr_assert_lt(kt_now_s(), end, "the API server did not answer");
		disturbed = true;
		usleep(250 * 1000);
	}
}

/* The API server answers /readyz (another test may be restarting it). */
static void
await_api_server(void)
{
	double end = kt_now_s() + 90;
	struct kt_resp r;

	for (;;) {
		kt_request("GET", "/readyz", NULL, 0, &r);
		kt_resp_fini(&r);
		if (r.status == 200)
			return;
		cr_assert_lt(kt_now_s(), end, "the API server is not ready");
		usleep(250 * 1000);
	}
}

static void
churn(const char *ns)
{
	char name[32];

	for (int i = 0; i < N_CREATE; i++) {
		snprintf(name, sizeof(name), "cm-%d", i);
		cm(CM_CREATE, ns, name, "v0");
	}
	for (int i = 0; i < N_UPDATE; i++) {
		snprintf(name, sizeof(name), "cm-%d", i);
		cm(CM_UPDATE, ns, name, "v1");
	}
	for (int i = 0; i < N_DELETE; i++) {
		snprintf(name, sizeof(name), "cm-%d", N_CREATE - 1 - i);
		cm(CM_DELETE, ns, name, NULL);
	}
}

/* Scrape until the churn shows (objects and DELETED); the last text. */
static char *
scrape_until_settled(struct kd *k, double max_s)
{
	double end = kt_now_s() + max_s;
	char *text = NULL, series[256];

	snprintf(series, sizeof(series),
		 "kubefan_publisher_stream_objects{stream=\"%s\"}", k->stream);
	while (kt_now_s() < end) {
		free(text);
		must(http_get(k->port, "/metrics", &text), 200, "/metrics");
		if (rsample(text, "kubefan_resource_objects", k->stream) ==
			N_CREATE - N_DELETE &&
		    events(text, k->stream, "DELETED") == N_DELETE &&
		    feed(text, "kubefan_subscriber_lag_events", k->stream) ==
			0 &&
		    sample(text, series) == N_CREATE - N_DELETE)
			return text;
		usleep(100 * 1000);
	}
	return text;
}

/* One run of the metrics scenario; false when others disturbed it. */
static bool
metrics_run(void)
{
	const char *extra[] = {"--ring-capacity", "256", NULL};
	struct kd k;
	char *text, *body, series[256];
	double t, seq;

	disturbed = false;
	await_api_server();
	kd_setup(&k, "kf-ops-m");
	kd_start(&k, extra);
	t = await_status(k.port, "/readyz", 200, 60, &body);
	cr_assert_geq(t, 0, "/readyz never 200: %s", body ? body : "");
	cr_assert_str_eq(body, "ok");
	free(body);
	must(http_get(k.port, "/healthz", &body), 200, "/healthz");
	cr_assert_str_eq(body, "ok");
	free(body);

	/* Synced on an empty namespace: one list, nothing yet. */
	must(http_get(k.port, "/metrics", &text), 200, "/metrics");
	cr_assert_eq(rsample(text, "kubefan_resource_objects", k.stream), 0);
	cr_assert_eq(rsample(text, "kubefan_resource_ready", k.stream), 1);
	cr_assert_eq(events(text, k.stream, "ADDED"), 0);
	cr_assert_geq(
	    rsample(text, "kubefan_list_last_duration_seconds", k.stream), 1e-6,
	    "%s", text);
	free(text);

	churn(k.ns);
	text = scrape_until_settled(&k, 30);
	cr_assert_eq(rsample(text, "kubefan_resource_objects", k.stream),
		     N_CREATE - N_DELETE, "%s", text);
	cr_assert_eq(rsample(text, "kubefan_resource_ready", k.stream), 1);
	if (disturbed ||
	    rsample(text, "kubefan_relists_total", k.stream) != 0 ||
	    rsample(text, "kubefan_watch_gone_total", k.stream) != 0) {
		cr_log_warn("run disturbed by another test (retried requests "
			    "or a re-list); repeating it");
		free(text);
		kd_stop(&k);
		kd_cleanup(&k);
		return false;
	}

	/* Per resource: the watch's counters. */
	cr_assert_eq(rsample(text, "kubefan_lists_total", k.stream), 1);
	cr_assert_eq(events(text, k.stream, "ADDED"), N_CREATE, "%s", text);
	cr_assert_eq(events(text, k.stream, "MODIFIED"), N_UPDATE, "%s", text);
	cr_assert_eq(events(text, k.stream, "DELETED"), N_DELETE, "%s", text);
	cr_assert_eq(events(text, k.stream, "ERROR"), 0);
	cr_assert_gt(
	    rsample(text, "kubefan_watch_received_bytes_total", k.stream), 0);
	t = rsample(text, "kubefan_watch_last_event_age_seconds", k.stream);
	cr_assert(t >= 0 && t < 10, "last event age %f", t);
	t = rsample(text, "kubefan_list_last_duration_seconds", k.stream);
	cr_assert(t > 0 && t < 30, "list duration %f", t);

	/* The ring: INIT_DONE of the first list, then one event per change. */
	cr_assert_eq(rsample(text, "kubefan_ring_capacity_events", k.stream),
		     256);
	cr_assert_eq(rsample(text, "kubefan_ring_head_sequence", k.stream),
		     1 + N_CREATE + N_UPDATE + N_DELETE, "%s", text);
	cr_assert_eq(
	    rsample(text, "kubefan_ring_published_events_total", k.stream),
	    1 + N_CREATE + N_UPDATE + N_DELETE);
	cr_assert_eq(rsample(text, "kubefan_ring_slowest_lag_events", k.stream),
		     0);

	/* The publisher's feed: INIT and INIT_DONE of the empty first list,
	 * then every change; nothing missed. */
	cr_assert_eq(
	    feed(text, "kubefan_subscriber_delivered_events_total", k.stream),
	    2 + N_CREATE + N_UPDATE + N_DELETE, "%s", text);
	cr_assert_eq(
	    feed(text, "kubefan_subscriber_missed_events_total", k.stream), 0);
	cr_assert_eq(feed(text, "kubefan_subscriber_resyncs_total", k.stream),
		     0);

	/* The remote publisher. */
	cr_assert_gt(sample(text, "kubefan_publisher_messages_total"), 0);
	cr_assert_gt(sample(text, "kubefan_publisher_sent_bytes_total"), 0);
	cr_assert_eq(sample(text, "kubefan_publisher_dropped_messages_total"),
		     0);
	snprintf(series, sizeof(series),
		 "kubefan_publisher_stream_objects{stream=\"%s\"}", k.stream);
	cr_assert_eq(sample(text, series), N_CREATE - N_DELETE, "%s", text);
	snprintf(series, sizeof(series),
		 "kubefan_publisher_stream_sequence{stream=\"%s\"}", k.stream);
	seq = sample(text, series);
	cr_assert_geq(seq, N_CREATE + N_UPDATE + N_DELETE, "%s", text);

	/* The process. */
	cr_assert_gt(sample(text, "process_resident_memory_bytes"), 0);
	cr_assert_gt(sample(text, "process_open_fds"), 0);
	cr_assert_gt(sample(text, "process_max_fds"), 0);
	cr_assert_gt(sample(text, "process_start_time_seconds"), 1.5e9);
	cr_assert(strstr(text, "kubefan_build_info{version=\"") != NULL);

	/* Format: every family announced, counters typed as counters. */
	cr_assert_geq(check_help_and_type(text), 30);
	cr_assert(strstr(text, "# TYPE kubefan_watch_events_total counter\n"));
	cr_assert(strstr(text, "# TYPE kubefan_resource_objects gauge\n"));
	cr_assert(strstr(text, "# HELP process_resident_memory_bytes "));
	free(text);

	kd_stop(&k);
	kd_cleanup(&k);
	return true;
}

Test(ops, metrics_agree_with_what_happened)
{
	int runs = 0;

	while (!metrics_run())
		cr_assert_lt(++runs, 3, "three runs in a row disturbed");
}

/* The API server answers within 2 s. */
static bool
api_server_answers(void)
{
	struct kt_resp r;

	kt_request("GET", "/readyz", NULL, 2000, &r);
	kt_resp_fini(&r);
	return r.status == 200;
}

/* After stop-apiserver: wait up to 30 s for /readyz to say 503; seconds
 * it took, or -1. Another test may start the API server again meanwhile:
 * then it is stopped again, up to *restops = 2 more times (-2 after). */
static double
await_stale(struct kd *k, char **body, int *restops)
{
	double t0 = kt_now_s(), checked = t0;

	*body = NULL;
	for (;;) {
		free(*body);
		if (http_get(k->port, "/readyz", body) == 503)
			return kt_now_s() - t0;
		if (kt_now_s() - t0 > 30)
			return -1;
		if (kt_now_s() - checked > 1 && api_server_answers()) {
			if (++*restops > 2)
				return -2;
			kt_cluster("stop-apiserver");
		}
		if (kt_now_s() - checked > 1)
			checked = kt_now_s();
		usleep(100 * 1000);
	}
}

/* Readiness follows the API server: 503 naming the resource and the reason
 * within the stale deadline, 200 again after it returns. */
Test(ops, readyz_turns_not_ready_without_the_api_server_and_back)
{
	/* Retries every 0.4-2 s at most while the server is away, so the
	 * recovery shows within a few seconds of its return. */
	const char *extra[] = {"--backoff-max-ms", "2000", NULL};
	struct kd k;
	char *body, *text, want[160];
	double t_stale, t_back, t0;
	int restops = 0;

	disturbed = false;
	await_api_server();
	kd_setup(&k, "kf-ops-r");
	kd_start(&k, extra);
	cr_assert_geq(await_status(k.port, "/readyz", 200, 60, &body), 0,
		      "/readyz never 200: %s", body ? body : "");
	free(body);
	cm(CM_CREATE, k.ns, "before", "v");

	/* The window others share: from here to start-apiserver. */
	apiserver_stopped = true;
	t0 = kt_now_s();
	cr_assert_eq(kt_cluster("stop-apiserver"), 0);
	t_stale = await_stale(&k, &body, &restops);
	cr_log_info("readyz 503 %.1f s after the stop began (the stop itself "
		    "takes up to 5 s; stopped %d more times)",
		    kt_now_s() - t0, restops);
	cr_assert_eq(kt_cluster("start-apiserver"), 0);
	apiserver_stopped = false;

	cr_assert_neq(t_stale, -2,
		      "the API server kept answering after stop-apiserver, "
		      "three times: another test is starting it, or its pid "
		      "file is out of step");
	cr_assert_geq(t_stale, 0,
		      "/readyz still not 503 30 s after the "
		      "API server stopped");
	snprintf(want, sizeof(want), "not ready\n%s: ", k.stream);
	cr_assert(strncmp(body, want, strlen(want)) == 0, "body: %s", body);
	/* The why: what failed talking to the API server. */
	cr_assert_gt(strlen(body), strlen(want) + 8, "body: %s", body);
	cr_assert(strstr(body, "127.0.0.1") != NULL ||
		      strstr(body, "onnect") != NULL ||
		      strstr(body, "HTTP") != NULL,
		  "the reason names no cause: %s", body);
	free(body);

	t_back = await_status(k.port, "/readyz", 200, 60, &body);
	cr_assert_geq(t_back, 0,
		      "/readyz not 200 60 s after the API server "
		      "returned: %s",
		      body);
	cr_assert_str_eq(body, "ok");
	free(body);
	cr_log_info("readyz 200 again %.1f s after start-apiserver returned",
		    t_back);

	/* The metrics saw it too; the data is still right afterwards. */
	cm(CM_CREATE, k.ns, "after", "v");
	t0 = kt_now_s();
	do {
		must(http_get(k.port, "/metrics", &text), 200, "/metrics");
		if (rsample(text, "kubefan_resource_objects", k.stream) == 2)
			break;
		free(text);
		text = NULL;
		usleep(100 * 1000);
	} while (kt_now_s() - t0 < 30);
	cr_assert_not_null(text, "the ConfigMap made after the return never "
				 "arrived");
	cr_assert_eq(rsample(text, "kubefan_resource_ready", k.stream), 1);
	cr_assert_gt(rsample(text, "kubefan_watch_retries_total", k.stream), 0);
	free(text);
	body = read_file(k.log);
	cr_assert(strstr(body, "\"id\":\"KF-WATCH-STALE\"") != NULL, "%s",
		  body);
	cr_assert(strstr(body, "\"id\":\"KF-WATCH-HEALTHY\"") != NULL, "%s",
		  body);
	free(body);
	kd_stop(&k);
	kd_cleanup(&k);
}

/* ---- --check-config ---- */

/* Run kubefand --check-config with a file of this text (and the test
 * cluster's kubeconfig); its exit status, and its output in *out. */
static int
check_config(const char *yaml, const char *path_in, char **out)
{
	char dir[64], path[128], log[128];
	char *argv[] = {KF_KUBEFAND,
			"--check-config",
			"--config",
			path,
			"--kubeconfig",
			(char *)kt_env("KUBEFAN_TEST_KUBECONFIG"),
			"--log-dest",
			"stderr",
			NULL};
	pid_t pid;
	int rc;

	kt_unique("/tmp/kf-ops-cc", dir, sizeof(dir));
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(log, sizeof(log), "%s/out", dir);
	if (path_in != NULL) {
		snprintf(path, sizeof(path), "%s", path_in);
	} else {
		FILE *f;

		snprintf(path, sizeof(path), "%s/kubefand.yaml", dir);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(yaml, f);
		fclose(f);
		unlink(log);
	}
	pid = kt_proc_spawn(argv, log, NULL, 0);
	rc = kt_proc_exit_code(pid, 30);
	*out = read_file(log);
	unlink(log);
	if (path_in == NULL)
		unlink(path);
	rmdir(dir);
	return rc;
}

Test(ops, check_config_names_the_field_and_the_value)
{
	static const struct {
		const char *yaml, *want;
	} bad[] = {
	    {"resources:\n  - resource: configmaps\nringCapacity: 1000\n",
	     "ringCapacity (--ring-capacity) 1000: expected a power of two"},
	    {"resources:\n  - resource: configmaps\nheartbeatMs: soon\n",
	     ":3: heartbeatMs: \"soon\": expected"},
	    {"resources:\n  - resource: configmaps\n    transform: zip\n",
	     ":3: resources[0].transform: \"zip\": expected "
	     "strip-managed-fields or none"},
	    {"resources:\n  - resource: configmaps\nlisten: udp://x:1\n",
	     "listen (--listen) \"udp://x:1\": expected ipc://, tcp:// or "
	     "tls+tcp://"},
	    {"resources:\n  - resource: configmaps\nhttp: "
	     "http://192.0.2.1:9090\n",
	     "192.0.2.1"},
	    {"resources:\n  - resource: configmaps\nlogLevel: loud\n",
	     ":3: logLevel: \"loud\": expected err, warning"},
	    {"resources:\n  - resource: configmaps\nringCapcity: 8\n",
	     ":3: ringCapcity: unknown key"},
	};
	char *out;
	int rc;

	curl_global_init(CURL_GLOBAL_ALL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = check_config(bad[i].yaml, NULL, &out);
		cr_assert_eq(rc, 2, "case %zu: exit %d: %s", i, rc, out);
		cr_assert(strstr(out, bad[i].want) != NULL,
			  "case %zu: %s\nwant: %s", i, out, bad[i].want);
		free(out);
	}

	/* A good file: usable, and nothing bound or connected but the
	 * credentials checked. */
	rc = check_config("resources:\n  - resource: configmaps\n"
			  "http: none\n",
			  NULL, &out);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "configuration is usable (1 resource(s)") != NULL,
		  "%s", out);
	free(out);

	/* The example configuration of docs/deploy. */
	rc = check_config(NULL, KF_SOURCE_DIR "/docs/deploy/kubefand.yaml",
			  &out);
	cr_assert_eq(rc, 0, "docs/deploy/kubefand.yaml: %s", out);
	free(out);
}

/* The HTTP endpoint over loopback (no cluster: labelled unit): exact
 * bodies and status codes of /healthz, /readyz and /metrics, readiness
 * flipping, address checks. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

struct reply {
	long status;
	char body[16384];
	size_t len;
	char type[128];
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t k = size * n;

	if (r->len + k >= sizeof(r->body))
		return 0;
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

/* method NULL is GET. */
static void
fetch(int port, const char *method, const char *path, struct reply *r)
{
	CURL *c = curl_easy_init();
	char url[128];
	char *type = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (method != NULL && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method != NULL) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	rc = curl_easy_perform(c);
	cr_assert_eq(rc, CURLE_OK, "%s: %s", url, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
	if (type != NULL)
		snprintf(r->type, sizeof(r->type), "%s", type);
	curl_easy_cleanup(c);
}

/* A readiness check whose state the test sets. */
struct check {
	bool ok;
	const char *why;
	int calls; /* atomic */
};

static bool
check_fn(void *arg, char *why, size_t len)
{
	struct check *c = arg;

	__atomic_add_fetch(&c->calls, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&c->ok, __ATOMIC_ACQUIRE))
		return true;
	snprintf(why, len, "%s", c->why);
	return false;
}

static uint64_t scrape_value = 5;

static void
collect(void *arg, kfi_mw *w)
{
	(void)arg;
	kfi_mw_u64(w, "t_scrapes_total", KFI_LABELS("who", "test"),
		   __atomic_add_fetch(&scrape_value, 1, __ATOMIC_RELAXED));
}

static kfi_metrics *
test_metrics(void)
{
	kfi_metrics *m;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_COUNTER,
					 "t_scrapes_total", "Scrapes seen."),
		     KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect, NULL), KF_OK);
	return m;
}

static kfi_httpd *
start(kfi_metrics *m, struct check *a, struct check *b, int *port)
{
	struct kfi_httpd_opts o = {.url = "http://127.0.0.1:0", .metrics = m};
	char err[256] = "";
	kfi_httpd *h;

	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_OK, "%s",
		     err);
	if (a != NULL)
		cr_assert_eq(kfi_httpd_add_check(h, "v1/pods", check_fn, a),
			     KF_OK);
	if (b != NULL)
		cr_assert_eq(
		    kfi_httpd_add_check(h, "apps/v1/deployments", check_fn, b),
		    KF_OK);
	cr_assert_eq(kfi_httpd_start(h, err, sizeof(err)), KF_OK, "%s", err);
	*port = kfi_httpd_port(h);
	cr_assert_gt(*port, 0);
	return h;
}

Test(httpd, healthz_is_ok_and_unknown_paths_are_404)
{
	struct reply r;
	int port;
	kfi_httpd *h = start(NULL, NULL, NULL, &port);

	fetch(port, NULL, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	cr_assert_str_eq(r.type, "text/plain; charset=utf-8");

	fetch(port, "HEAD", "/healthz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);

	fetch(port, NULL, "/", &r);
	cr_assert_eq(r.status, 404);
	fetch(port, NULL, "/healthz/x", &r);
	cr_assert_eq(r.status, 404);
	fetch(port, NULL, "/metricsx", &r);
	cr_assert_eq(r.status, 404);
	/* No registry given: /metrics is 404 too. */
	fetch(port, NULL, "/metrics", &r);
	cr_assert_eq(r.status, 404);
	/* A known path with another method. */
	fetch(port, "POST", "/healthz", &r);
	cr_assert_eq(r.status, 405);
	/* With no checks, ready. */
	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	kfi_httpd_free(h);
}

Test(httpd, readyz_names_each_resource_not_ready_and_why)
{
	struct check a = {.ok = false, .why = "not synced: first list running"};
	struct check b = {.ok = true, .why = "stale: watch failed"};
	struct reply r;
	int port;
	kfi_httpd *h = start(NULL, &a, &b, &port);

	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 503);
	cr_assert_str_eq(
	    r.body, "not ready\nv1/pods: not synced: first list running\n");
	cr_assert_str_eq(r.type, "text/plain; charset=utf-8");

	__atomic_store_n(&b.ok, false, __ATOMIC_RELEASE);
	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 503);
	cr_assert_str_eq(r.body, "not ready\n"
				 "v1/pods: not synced: first list running\n"
				 "apps/v1/deployments: stale: watch failed\n");

	__atomic_store_n(&a.ok, true, __ATOMIC_RELEASE);
	b.why = ""; /* no reason given */
	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 503);
	cr_assert_str_eq(r.body, "not ready\napps/v1/deployments: not ready\n");

	__atomic_store_n(&b.ok, true, __ATOMIC_RELEASE);
	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	cr_assert_eq(a.calls, 4);
	cr_assert_eq(b.calls, 4);

	/* Shutting down: not ready whatever the checks say; alive still. */
	kfi_httpd_set_stopping(h);
	fetch(port, NULL, "/readyz", &r);
	cr_assert_eq(r.status, 503);
	cr_assert_str_eq(r.body, "not ready\nkubefand: shutting down\n");
	fetch(port, NULL, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	kfi_httpd_free(h);
}

Test(httpd, metrics_serves_a_fresh_scrape_each_time)
{
	kfi_metrics *m = test_metrics();
	struct reply r;
	char want[256];
	int port;
	kfi_httpd *h = start(m, NULL, NULL, &port);

	__atomic_store_n(&scrape_value, 5, __ATOMIC_RELAXED);
	for (int i = 6; i <= 8; i++) {
		fetch(port, NULL, "/metrics", &r);
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.type,
				 "text/plain; version=0.0.4; charset=utf-8");
		snprintf(want, sizeof(want),
			 "# HELP t_scrapes_total Scrapes seen.\n"
			 "# TYPE t_scrapes_total counter\n"
			 "t_scrapes_total{who=\"test\"} %d\n",
			 i);
		cr_assert_str_eq(r.body, want);
	}
	kfi_httpd_free(h);
	kfi_metrics_free(m);
}

static int conc_port;

static void *
hammer(void *arg)
{
	struct reply *r = malloc(sizeof(*r));
	int fails = 0;

	(void)arg;
	for (int i = 0; i < 40; i++) {
		fetch(conc_port, NULL, i % 2 ? "/metrics" : "/readyz", r);
		if (r->status != 200 && r->status != 503)
			fails++;
	}
	free(r);
	return (void *)(intptr_t)fails;
}

Test(httpd, concurrent_scrapes_and_probes_while_readiness_flips)
{
	kfi_metrics *m = test_metrics();
	struct check a = {.ok = true, .why = "flipping"};
	pthread_t th[4];
	kfi_httpd *h = start(m, &a, NULL, &conc_port);

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, NULL);
	for (int i = 0; i < 200; i++) {
		__atomic_store_n(&a.ok, i % 2 == 0, __ATOMIC_RELEASE);
		usleep(500);
	}
	for (int i = 0; i < 4; i++) {
		void *fails;

		pthread_join(th[i], &fails);
		cr_assert_eq((intptr_t)fails, 0);
	}
	cr_assert_eq(a.calls, 4 * 20);
	kfi_httpd_free(h);
	kfi_metrics_free(m);
}

Test(httpd, addresses_are_checked_and_named_in_errors)
{
	struct kfi_httpd_opts o = {0};
	char err[256];
	kfi_httpd *h;

	o.url = "http://10.1.2.3:9090";
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_ECONFIG);
	cr_assert_null(h);
	cr_assert_str_eq(err, "http address http://10.1.2.3:9090: not a "
			      "loopback address (allow it explicitly)");
	o.allow_remote = true;
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_OK);
	kfi_httpd_free(h);

	o.url = "https://127.0.0.1:9090";
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_ECONFIG);
	cr_assert_str_eq(err, "http address https://127.0.0.1:9090: the "
			      "scheme must be http");
	o.url = "not a url";
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_ECONFIG);
	cr_assert_not_null(strstr(err, "http address not a url: "), "%s", err);

	/* The default is loopback port 9090 (not started here). */
	o.url = NULL;
	o.allow_remote = false;
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_OK);
	kfi_httpd_free(h);
	o.url = "http://localhost:1";
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_OK);
	cr_assert_eq(kfi_httpd_port(h), 0); /* not started */
	cr_assert_eq(kfi_httpd_add_check(h, "x", NULL, NULL), KF_EINVAL);
	kfi_httpd_free(h);
}

Test(httpd, a_port_in_use_fails_start_and_names_the_address)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct kfi_httpd_opts o = {0};
	char url[64], err[256] = "";
	kfi_httpd *h;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	o.url = url;
	cr_assert_eq(kfi_httpd_alloc(&o, err, sizeof(err), &h), KF_OK);
	cr_assert_eq(kfi_httpd_start(h, err, sizeof(err)), KF_ENNG);
	cr_assert_not_null(strstr(err, url), "%s", err);
	cr_assert_not_null(strstr(err, "in use"), "%s", err);
	kfi_httpd_free(h);
	close(fd);
}

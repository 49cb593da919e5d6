/*
 * The HTTP endpoint: three GET handlers on one nng HTTP server.
 *
 * Each handler builds its whole answer in the callback and completes the
 * aio at once, so nothing of ours is pending inside nng between requests.
 * nng's stop does not wait for a callback already running, so every
 * handler counts itself in and out (busy) and free waits for zero before
 * the memory goes.
 */
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "httpd.h"

#define HD_WHY_MAX 512

struct hd_check {
	char *name;
	kfi_ready_fn fn;
	void *arg;
};

struct kfi_httpd {
	char *url_text;
	nng_url *url;
	nng_http_server *srv;
	bool started;
	kfi_metrics *metrics;
	struct hd_check *checks;
	size_t nchecks;
	bool stopping; /* atomic */

	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned busy; /* handlers running, under mu */
};

static void
hd_err(char *buf, size_t len, const char *fmt, const char *a, const char *b)
{
	if (buf != NULL && len > 0)
		snprintf(buf, len, fmt, a, b);
}

static bool
hd_is_loopback(const char *host)
{
	struct in_addr a4;

	if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 &&
	       (ntohl(a4.s_addr) >> 24) == 127;
}

kf_err
kfi_httpd_alloc(const struct kfi_httpd_opts *o, char *errbuf, size_t errlen,
		kfi_httpd **out)
{
	const char *url = o->url != NULL ? o->url : KFI_HTTPD_DEFAULT_URL;
	kfi_httpd *h;
	int rv;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL || (h->url_text = strdup(url)) == NULL) {
		free(h);
		return KF_ENOMEM;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->idle, NULL);
	h->metrics = o->metrics;
	if ((rv = nng_url_parse(&h->url, url)) != 0) {
		hd_err(errbuf, errlen, "http address %s: %s", url,
		       nng_strerror(rv));
		goto config;
	}
	if (strcmp(h->url->u_scheme, "http") != 0) {
		hd_err(errbuf, errlen, "http address %s: %s", url,
		       "the scheme must be http");
		goto config;
	}
	if (!o->allow_remote && !hd_is_loopback(h->url->u_hostname)) {
		hd_err(errbuf, errlen, "http address %s: %s", url,
		       "not a loopback address (allow it explicitly)");
		goto config;
	}
	*out = h;
	return KF_OK;

config:
	kfi_httpd_free(h);
	return KF_ECONFIG;
}

kf_err
kfi_httpd_add_check(kfi_httpd *h, const char *name, kfi_ready_fn fn, void *arg)
{
	struct hd_check *p;
	char *copy;

	if (h->started || name == NULL || fn == NULL)
		return KF_EINVAL;
	copy = strdup(name);
	p = realloc(h->checks, (h->nchecks + 1) * sizeof(*p));
	if (copy == NULL || p == NULL) {
		free(copy);
		if (p != NULL)
			h->checks = p;
		return KF_ENOMEM;
	}
	h->checks = p;
	h->checks[h->nchecks++] = (struct hd_check){copy, fn, arg};
	return KF_OK;
}

/* ---- handlers ---- */

static kfi_httpd *
hd_enter(nng_aio *aio)
{
	nng_http_handler *hh = nng_aio_get_input(aio, 1);
	kfi_httpd *h = nng_http_handler_get_data(hh);

	pthread_mutex_lock(&h->mu);
	h->busy++;
	pthread_mutex_unlock(&h->mu);
	return h;
}

static void
hd_leave(kfi_httpd *h)
{
	pthread_mutex_lock(&h->mu);
	if (--h->busy == 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->mu);
}

/* Complete the request with status, content type and body (copied). */
static void
hd_reply(nng_aio *aio, uint16_t status, const char *type, const char *body,
	 size_t len)
{
	nng_http_res *res;
	int rv;

	if ((rv = nng_http_res_alloc(&res)) != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", type)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) !=
		0 ||
	    (rv = nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static const char hd_text[] = "text/plain; charset=utf-8";

static void
hd_healthz(nng_aio *aio)
{
	kfi_httpd *h = hd_enter(aio);

	hd_reply(aio, 200, hd_text, "ok", 2);
	hd_leave(h);
}

/* "not ready\n" then "<name>: <why>\n" per failing check. */
static void
hd_readyz(nng_aio *aio)
{
	kfi_httpd *h = hd_enter(aio);
	char why[HD_WHY_MAX];
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	bool ready = true;

	if (f == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM);
		hd_leave(h);
		return;
	}
	fputs("not ready\n", f);
	if (__atomic_load_n(&h->stopping, __ATOMIC_ACQUIRE)) {
		fputs("kubefand: shutting down\n", f);
		ready = false;
	}
	for (size_t i = 0; i < h->nchecks; i++) {
		why[0] = '\0';
		if (h->checks[i].fn(h->checks[i].arg, why, sizeof(why)))
			continue;
		why[sizeof(why) - 1] = '\0';
		fprintf(f, "%s: %s\n", h->checks[i].name,
			why[0] != '\0' ? why : "not ready");
		ready = false;
	}
	if (fclose(f) != 0 || body == NULL) {
		free(body);
		nng_aio_finish(aio, NNG_ENOMEM);
	} else if (ready) {
		hd_reply(aio, 200, hd_text, "ok", 2);
	} else {
		hd_reply(aio, 503, hd_text, body, len);
	}
	free(body);
	hd_leave(h);
}

static void
hd_metrics(nng_aio *aio)
{
	kfi_httpd *h = hd_enter(aio);
	char *text;
	size_t len;

	if (h->metrics == NULL) {
		hd_reply(aio, 404, hd_text, "no metrics\n", 11);
	} else if (kfi_metrics_render(h->metrics, &text, &len) != KF_OK) {
		nng_aio_finish(aio, NNG_ENOMEM);
	} else {
		hd_reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8",
			 text, len);
		free(text);
	}
	hd_leave(h);
}

/* ---- server ---- */

static int
hd_add(kfi_httpd *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hh;
	int rv;

	if ((rv = nng_http_handler_alloc(&hh, path, cb)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(hh, h, NULL)) != 0 ||
	    (rv = nng_http_handler_collect_body(hh, true, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(h->srv, hh)) != 0) {
		nng_http_handler_free(hh);
		return rv;
	}
	return 0; /* the server owns it now */
}

kf_err
kfi_httpd_start(kfi_httpd *h, char *errbuf, size_t errlen)
{
	int rv;

	if (h->started)
		return KF_EINVAL;
	if ((rv = nng_http_server_hold(&h->srv, h->url)) != 0)
		goto fail;
	if ((rv = hd_add(h, "/healthz", hd_healthz)) != 0 ||
	    (rv = hd_add(h, "/readyz", hd_readyz)) != 0 ||
	    (rv = hd_add(h, "/metrics", hd_metrics)) != 0 ||
	    (rv = nng_http_server_start(h->srv)) != 0) {
		nng_http_server_release(h->srv);
		h->srv = NULL;
		goto fail;
	}
	h->started = true;
	return KF_OK;

fail:
	hd_err(errbuf, errlen, "http address %s: %s", h->url_text,
	       nng_strerror(rv));
	return KF_ENNG;
}

int
kfi_httpd_port(kfi_httpd *h)
{
	nng_sockaddr sa;

	if (!h->started || nng_http_server_get_addr(h->srv, &sa) != 0)
		return 0;
	if (sa.s_family == NNG_AF_INET)
		return ntohs(sa.s_in.sa_port);
	if (sa.s_family == NNG_AF_INET6)
		return ntohs(sa.s_in6.sa_port);
	return 0;
}

void
kfi_httpd_set_stopping(kfi_httpd *h)
{
	__atomic_store_n(&h->stopping, true, __ATOMIC_RELEASE);
}

void
kfi_httpd_free(kfi_httpd *h)
{
	if (h == NULL)
		return;
	if (h->started) {
		nng_http_server_stop(h->srv);
		nng_http_server_release(h->srv);
	}
	pthread_mutex_lock(&h->mu);
	while (h->busy > 0)
		pthread_cond_wait(&h->idle, &h->mu);
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < h->nchecks; i++)
		free(h->checks[i].name);
	free(h->checks);
	if (h->url != NULL)
		nng_url_free(h->url);
	free(h->url_text);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

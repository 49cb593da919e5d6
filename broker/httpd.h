/*
 * kubefand's HTTP endpoint, on nng's supplemental HTTP server:
 *
 *   GET /metrics  200, the metrics registry rendered (Prometheus text
 *                 0.0.4); 404 when no registry was given
 *   GET /healthz  200 "ok" while the process runs
 *   GET /readyz   200 "ok" when every readiness check passes; else 503
 *                 with "not ready\n" and one "<name>: <why>\n" line per
 *                 failing check, in registration order
 *
 * HEAD works where GET does; any other path is 404 and any other method on
 * these paths 405 (both answered by nng). Plain http only.
 *
 * Life: alloc, add_check (any number), start, then free (which stops the
 * server and waits for handlers in flight). Handlers run on nng's threads,
 * possibly two at once: readiness checks and metrics collectors must be
 * thread-safe.
 */
#ifndef KF_BROKER_HTTPD_H
#define KF_BROKER_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "kubefan/err.h"
#include "metrics.h"

#define KFI_HTTPD_DEFAULT_URL "http://127.0.0.1:9090"

typedef struct kfi_httpd kfi_httpd;

struct kfi_httpd_opts {
	/* "http://host:port"; NULL means KFI_HTTPD_DEFAULT_URL. Port 0 picks
	 * a free port (read it with kfi_httpd_port). */
	const char *url;
	/* A host other than loopback (127.0.0.0/8, ::1, localhost) is
	 * KF_ECONFIG unless this is set. */
	bool allow_remote;
	/* Served on /metrics; borrowed, must outlive the server. */
	kfi_metrics *metrics;
};

/* Pass: return true. Fail: return false and write the reason into why
 * (len bytes, NUL-terminated; left empty, "not ready" is shown). Called on
 * every /readyz request, from nng's threads. */
typedef bool (*kfi_ready_fn)(void *arg, char *why, size_t len);

/* errbuf (may be NULL) names the address and what is wrong with it. */
kf_err kfi_httpd_alloc(const struct kfi_httpd_opts *opts, char *errbuf,
		       size_t errlen, kfi_httpd **out);

/* Before start. name (copied) labels the check in the /readyz body, e.g.
 * the resource. */
kf_err kfi_httpd_add_check(kfi_httpd *h, const char *name, kfi_ready_fn fn,
			   void *arg);

/* Bind and serve. KF_ENNG (the address is in use, say) names the address
 * and nng's reason in errbuf. */
kf_err kfi_httpd_start(kfi_httpd *h, char *errbuf, size_t errlen);

/* The bound TCP port after start (the chosen one for port 0), else 0. */
int kfi_httpd_port(kfi_httpd *h);

/* From now on /readyz answers 503 "not ready\nkubefand: shutting down\n"
 * (call it first on SIGTERM, so load balancers stop routing here). Any
 * thread. */
void kfi_httpd_set_stopping(kfi_httpd *h);

/* Stop serving, wait for handlers in flight, free. NULL is a no-op. */
void kfi_httpd_free(kfi_httpd *h);

#endif

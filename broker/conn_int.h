/*
 * Internal: applying a kf_conn to a libcurl easy handle. The watcher calls
 * kfi_conn_apply() before each request, so rotated token files and expired
 * exec credentials are picked up on the next request.
 */
#ifndef KF_BROKER_CONN_INT_H
#define KF_BROKER_CONN_INT_H

#include <curl/curl.h>

#include "kubefan/conn.h"

/* Set TLS options and client certificate on h, and append the
 * Authorization header (if any) to *headers. The caller owns *headers and
 * frees it after the request. On failure errbuf says why (never the token
 * itself). Thread-safe. */
kf_err kfi_conn_apply(kf_conn *c, CURL *h, struct curl_slist **headers,
		      char *errbuf, size_t errlen);

/* Forget a cached exec credential (after a 401), so the next apply runs
 * the plugin again. */
void kfi_conn_invalidate(kf_conn *c);

#endif

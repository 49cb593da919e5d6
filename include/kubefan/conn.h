/*
 * kf_conn: how to reach and authenticate to an API server: the server URL,
 * TLS trust (CA file or data, or insecure-skip-tls-verify), and the
 * credential (bearer token, token file re-read when it changes, client
 * certificate and key as files or inline data, or an exec credential
 * plugin whose token is cached until its expiry).
 *
 * Made once, read by any number of watchers on any thread; it is immutable
 * except for the cached exec/token-file credential, which it guards itself.
 * Freed with kf_conn_free() after every watcher using it is freed.
 */
#ifndef KUBEFAN_CONN_H
#define KUBEFAN_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_conn kf_conn;

/* From a kubeconfig. path NULL: $KUBECONFIG, a colon-separated list whose
 * files are merged as kubectl merges them (the first file to name a
 * cluster, user, context or current-context wins; missing files are
 * skipped), else ~/.kube/config. context NULL or "": the current-context.
 * On failure errbuf names the file, the field and what was wrong with it. */
KF_API kf_err kf_conn_from_kubeconfig(const char *path, const char *context,
				      char *errbuf, size_t errlen,
				      kf_conn **out);

/* From the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT and
 * /var/run/secrets/kubernetes.io/serviceaccount). */
KF_API kf_err kf_conn_in_cluster(char *errbuf, size_t errlen, kf_conn **out);

/* Explicit settings. token and ca_file may be NULL. */
KF_API kf_err kf_conn_explicit(const char *server, const char *token,
			       const char *ca_file, bool insecure,
			       kf_conn **out);

/* The server URL without a trailing slash, and the context's namespace
 * ("" when none). */
KF_API const char *kf_conn_server(const kf_conn *c);
KF_API const char *kf_conn_namespace(const kf_conn *c);

KF_API void kf_conn_free(kf_conn *c);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Internal: reading a kubeconfig into the settings of one context. The
 * result is plain data (strings and decoded bytes) that conn.c turns into a
 * kf_conn; nothing here talks to the network or runs a plugin.
 *
 * Every function is reentrant and keeps no global state. Errors are
 * KF_EPARSE for YAML that does not parse and KF_ECONFIG for YAML that parses
 * but is not a usable kubeconfig; errbuf then reads
 * "kubeconfig FILE: FIELD.PATH: PROBLEM (line N)" and never holds a secret.
 */
#ifndef KF_BROKER_KUBECONFIG_H
#define KF_BROKER_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/conn.h"
#include "kubefan/err.h"

/* Decoded bytes; NUL-terminated for convenience (len excludes the NUL). */
struct kfi_blob {
	uint8_t *data;
	size_t len;
};

enum kfi_exec_interactive {
	KFI_EXEC_IF_AVAILABLE = 0,
	KFI_EXEC_NEVER,
	KFI_EXEC_ALWAYS,
};

/* An exec credential plugin, ready to spawn. */
struct kfi_exec_cfg {
	char *command;	   /* as run: made absolute when it had a '/' */
	char **argv;	   /* argv[0] is the command; NULL-terminated */
	char **env;	   /* "NAME=VALUE" extras; NULL-terminated */
	char *api_version; /* client.authentication.k8s.io/v1 or v1beta1 */
	char *install_hint;
	bool provide_cluster_info;
	enum kfi_exec_interactive interactive;
};

/* The settings of one context, every path absolute. Fields a kubeconfig
 * did not give are NULL / empty. */
struct kfi_kubeconfig {
	char *source;  /* the file the context came from */
	char *context; /* its name */
	char *server;  /* no trailing slash */
	char *tls_server_name;
	char *proxy_url;
	bool insecure;
	char *ca_file;
	struct kfi_blob ca_data;
	char *token;
	char *token_file;
	char *cert_file;
	struct kfi_blob cert_data;
	char *key_file;
	struct kfi_blob key_data;
	char *username;
	char *password;
	struct kfi_exec_cfg *exec;
	char *namespace;
};

/* How kfi_kubeconfig_load's message starts when path and $KUBECONFIG
 * name nothing and ~/.kube/config cannot be opened: no kubeconfig at all
 * (a caller that has another source, as in-cluster, can say so). */
#define KFI_KUBECONFIG_NONE "no kubeconfig found"

/* Load a context. path NULL: every existing file of $KUBECONFIG, merged
 * (the first file to name a cluster, user or context, or to set
 * current-context, wins), or ~/.kube/config when $KUBECONFIG is unset or
 * empty. context NULL: the current-context. */
kf_err kfi_kubeconfig_load(const char *path, const char *context,
			   struct kfi_kubeconfig *out, char *errbuf,
			   size_t errlen);

/* The same from a buffer: label names it in errors, dir anchors relative
 * paths. With check_files false, referenced files are not opened (the
 * fuzzer's mode). */
kf_err kfi_kubeconfig_parse(const char *label, const char *dir,
			    const uint8_t *data, size_t len,
			    const char *context, bool check_files,
			    struct kfi_kubeconfig *out, char *errbuf,
			    size_t errlen);

void kfi_kubeconfig_fini(struct kfi_kubeconfig *kc);
void kfi_exec_cfg_free(struct kfi_exec_cfg *e);

/* A server URL as kf_conn keeps it: "https://" added when it has no
 * scheme, trailing slashes removed. KF_EINVAL when the scheme is not http
 * or https or no host follows it; KF_ENOMEM. */
kf_err kfi_server_url(const char *in, char **out);

/* Strict standard base64 (RFC 4648 alphabet, '=' padding required; CR
 * and LF are skipped as Go's decoder does). KF_EPARSE on anything else. */
kf_err kfi_base64_decode(const char *in, size_t len, struct kfi_blob *out);

/* RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions, +hh:mm offsets)
 * to seconds since the epoch. KF_EPARSE when it is not one. */
kf_err kfi_rfc3339_parse(const char *s, long long *out);

/* libFuzzer body: parse data as a kubeconfig, select each context, free
 * everything. Always returns 0. */
int kfi_kubeconfig_fuzz_one(const uint8_t *data, size_t len);

/* Test hooks for conn.c: the exec plugin deadline (default 30 s) and the
 * number of times the plugin ran for this connection. */
void kfi_conn_set_exec_timeout(kf_conn *c, int timeout_ms);
unsigned kfi_conn_exec_runs(kf_conn *c);

#endif

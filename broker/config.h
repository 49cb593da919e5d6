/*
 * kubefand's configuration: defaults, a YAML file (--config) and flags,
 * in that order, later ones overriding earlier ones; resources from the
 * file and from --resource flags add up. Strings in kd_cfg are owned
 * (kd_cfg_fini frees them). Errors name the file, line and key, or the
 * flag, and what was wrong. Part of the daemon, not of the library.
 */
#ifndef KF_BROKER_CONFIG_H
#define KF_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "kubefan/reflector.h"
#include "kubefan/store.h"

#define KD_MAX_RES 64

struct kd_res {
	char *spec; /* as given, for messages */
	char *group, *version, *resource;
	char *ns, *labels, *fields, *stream;
	bool strip;
	/* Filled while running. */
	kf_writer *w;
	kf_store *st;
	kf_reflector *refl;
};

struct kd_cfg {
	char *kubeconfig, *context;
	char *listen, *refs, *rep;
	char *tls_cert_key;
	char *http;	/* NULL: the default URL; "none": no HTTP */
	char *log_dest; /* NULL or "stderr", "syslog", or a file path */
	bool check_only;
	int ipc_mode;
	bool allow_remote;
	size_t ring_capacity;
	unsigned batch_us;
	unsigned heartbeat_ms;
	unsigned backoff_max_ms;       /* 0: the watcher's default */
	unsigned stale_after_failures; /* 0: the watcher's default */
	unsigned watch_idle_ms;	       /* 0: the watcher's default */
	bool log_json;
	int log_level;
	double duration;
	struct kd_res res[KD_MAX_RES];
	size_t nres;
};

void kd_cfg_defaults(struct kd_cfg *c);
void kd_cfg_fini(struct kd_cfg *c);

/* Replace *slot with a copy of v. */
void kd_set(char **slot, const char *v);

/* "R[,key=value...]" (the --resource flag) appended to c->res. */
int kd_cfg_add_resource_spec(struct kd_cfg *c, const char *spec, char *err,
			     size_t len);

/* Read a YAML configuration file into c (see docs/broker.md). */
int kd_cfg_load_file(struct kd_cfg *c, const char *path, char *err, size_t len);

/* Checks after everything was read (ring capacity, addresses and their
 * schemes, the TLS certificate a tls+tcp:// address needs, the HTTP URL,
 * unique stream ids); derives rep from listen if unset. Each error names
 * the key and its flag, and the value. */
int kd_cfg_finish(struct kd_cfg *c, char *err, size_t len);

/* A whole non-negative number in `base` (8 or 10), at most max, for
 * `field` (a flag like "--ring-capacity" or a key); the error names the
 * field and the value. */
int kd_parse_uint(const char *field, const char *s, int base, unsigned long max,
		  unsigned long *out, char *err, size_t len);

/* "err", "warning", ... to a KF_LOG_* level; -1 when unknown. */
int kd_log_level(const char *name);

#endif

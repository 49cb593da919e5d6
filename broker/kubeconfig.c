/*
 * kubeconfig: YAML to the settings of one context.
 *
 * Theory. A kubeconfig is read in two passes. The first walks the whole
 * libyaml document tree of each file and checks every entry it knows
 * (clusters, users, contexts, current-context), decoding base64 and making
 * relative paths absolute against that file's directory, into plain
 * structs; a field of the wrong type anywhere is an error even when the
 * chosen context does not use it, as kubectl also refuses such a file.
 * Unknown keys are ignored, like kubectl does. The second pass selects one
 * context and checks what only matters for the one in use: references
 * that resolve, a server, no contradictory settings, readable files.
 *
 * Files of $KUBECONFIG are merged the kubectl way: per name, the first
 * file that defines a cluster, user or context wins, and so does the first
 * file that sets current-context. Each entry remembers its file, so an
 * error names the file it is in.
 *
 * The walk has a fixed depth (root, list, entry, body, field, item), so
 * YAML aliases cannot make it recurse or loop; lists and mappings are
 * bounded by the document, which is bounded by KC_MAX_FILE, and what
 * aliases make the walk visit again by its budget (below). Error texts
 * name fields, and the cluster, user or context they are in, never values
 * that could be secrets.
 *
 * Before the document is loaded, a pass over libyaml's events refuses
 * nesting deeper than KF_YAML_MAX_DEPTH and more than KF_YAML_MAX_ANCHORS
 * anchors or KF_YAML_MAX_ALIASES aliases (libyaml looks each one up in a list
 * of all the anchors before it, so their numbers multiply). An alias is walked
 * again wherever it is named, so the walk has a budget of bytes visited and
 * copied (KC_WALK_BUDGET): a small file whose aliases name aliases cannot
 * make it copy gigabytes. libyaml's scanner and loader do work
 * proportional to the depth for each token (100 000 '[' take them tens of
 * seconds); the event pass stops at the first level too deep, so its own
 * work is bounded by the limit times the file's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pwd.h>

#include <yaml.h>

#include "kubeconfig.h"
#include "yamlbound.h"

#define KC_MAX_FILE	(16u << 20) /* bytes of one kubeconfig file */
#define KC_MAX_ENTRIES	4096	    /* entries of one list */
#define KC_MAX_FILES	64	    /* files of $KUBECONFIG */
#define KC_PATH		256	    /* field path text */
#define KC_FUZZ_CONTEXT 16	    /* contexts the fuzzer selects */
/* What the walk may visit and copy, in bytes: aliases can name one big
 * subtree from many places, and each place is walked (and its strings
 * copied) again. */
#define KC_WALK_BUDGET(len) ((size_t)KC_MAX_FILE + 8 * (size_t)(len))

struct kc_cluster {
	char *name;
	int idx;
	int line;
	char *server;
	char *tls_server_name;
	char *proxy_url;
	bool insecure;
	char *ca_file;
	struct kfi_blob ca;
	int ca_empty_line; /* > 0: certificate-authority-data is empty */
};

struct kc_user {
	char *name;
	int idx;
	int line;
	char *token;
	char *token_file;
	char *cert_file;
	struct kfi_blob cert;
	char *key_file;
	struct kfi_blob key;
	char *username;
	char *password;
	struct kfi_exec_cfg *exec;
	int auth_provider_line; /* > 0 when given */
	int impersonate_line;	/* > 0 when given */
};

struct kc_context {
	char *name;
	int idx;
	int line;
	char *cluster;
	char *user;
	char *ns;
};

struct kc_file {
	char *label;
	char *dir;
	char *current;
	struct kc_cluster *clusters;
	size_t nclusters;
	struct kc_user *users;
	size_t nusers;
	struct kc_context *contexts;
	size_t ncontexts;
};

/* One parse: where errors go and what anchors relative paths. */
struct kc_ctx {
	const char *label;
	const char *dir;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	/* The entry being walked, for errors: `cluster "prod"`, or "". */
	char entry[96];
	/* Bytes the walk may still visit and copy (KC_WALK_BUDGET). */
	size_t walk_left;
	size_t walk_budget;
};

typedef kf_err (*kc_field_fn)(struct kc_ctx *x, void *obj, int key,
			      yaml_node_t *val, const char *path);

/* "kubeconfig FILE: PATH: MSG (ENTRY, line LINE)"; line 0 is unknown. */
static kf_err __attribute__((format(printf, 5, 6)))
kc_fail_at(struct kc_ctx *x, kf_err e, size_t line, const char *path,
	   const char *fmt, ...)
{
	char msg[256];
	char where[160] = "";
	va_list ap;

	if (x->err == NULL || x->errlen == 0)
		return e;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0 && x->entry[0] != '\0')
		snprintf(where, sizeof(where), " (%s, line %zu)", x->entry,
			 line);
	else if (line > 0)
		snprintf(where, sizeof(where), " (line %zu)", line);
	else if (x->entry[0] != '\0')
		snprintf(where, sizeof(where), " (%s)", x->entry);
	if (path != NULL && path[0] != '\0')
		snprintf(x->err, x->errlen, "kubeconfig %s: %s: %s%s", x->label,
			 path, msg, where);
	else
		snprintf(x->err, x->errlen, "kubeconfig %s: %s%s", x->label,
			 msg, where);
	return e;
}

static size_t
kc_line(const yaml_node_t *n)
{
	return n != NULL ? n->start_mark.line + 1 : 0;
}

/* As kc_fail_at, at node n's line (n may be NULL). */
#define kc_fail(x, e, n, path, ...)                                            \
	kc_fail_at((x), (e), kc_line(n), (path), __VA_ARGS__)

/* A field path into buf. The walk's fixed depth and known keys keep every
 * path far below KC_PATH, but a path cut short would name the wrong
 * field, so one that does not fit is an error rather than a cut. */
static kf_err __attribute__((format(printf, 5, 6)))
kc_subpath(struct kc_ctx *x, const yaml_node_t *n, char *buf, size_t len,
	   const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (r >= 0 && (size_t)r < len)
		return KF_OK;
	return kc_fail(x, KF_ECONFIG, n, NULL,
		       "a field path longer than %zu bytes", len - 1);
}

static kf_err
kc_oom(struct kc_ctx *x)
{
	if (x->err != NULL && x->errlen > 0)
		snprintf(x->err, x->errlen, "kubeconfig %s: out of memory",
			 x->label);
	return KF_ENOMEM;
}

/* Charge n bytes of walking or copying to the budget; an error once the
 * file's aliases have made the walk that much larger than the file. */
static kf_err
kc_charge(struct kc_ctx *x, size_t n, const yaml_node_t *at, const char *path)
{
	if (n <= x->walk_left) {
		x->walk_left -= n;
		return KF_OK;
	}
	x->walk_left = 0;
	return kc_fail_at(x, KF_ECONFIG,
			  at != NULL ? at->start_mark.line + 1 : 0, path,
			  "YAML aliases expand the file past %zu bytes "
			  "(16 MiB + 8 times its size; the limit)",
			  x->walk_budget);
}

/* A name from the file, fit for an error text: at most 64 printable
 * characters. */
static const char *
kc_quote(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < len && i < 64; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && i + 4 <= len) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static char *
kc_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* ---- base64 and timestamps ---- */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

kf_err
kfi_base64_decode(const char *in, size_t len, struct kfi_blob *out)
{
	uint8_t *buf;
	size_t n = 0, quads = 0, pad = 0, o = 0;
	uint32_t acc = 0;

	out->data = NULL;
	out->len = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
		} else if (pad > 0 || b64_value(c) < 0) {
			return KF_EPARSE;
		}
		n++;
	}
	if (n % 4 != 0 || pad > 2)
		return KF_EPARSE;
	quads = n / 4;
	buf = malloc(quads * 3 + 1);
	if (buf == NULL)
		return KF_ENOMEM;
	n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\r' || c == '\n')
			continue;
		acc = (acc << 6) | (c == '=' ? 0 : (uint32_t)b64_value(c));
		if (++n % 4 != 0)
			continue;
		buf[o++] = (uint8_t)(acc >> 16);
		buf[o++] = (uint8_t)(acc >> 8);
		buf[o++] = (uint8_t)acc;
		acc = 0;
	}
	o -= pad;
	buf[o] = '\0';
	out->data = buf;
	out->len = o;
	return KF_OK;
}

static bool
ts_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long long
ts_days(long long y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

kf_err
kfi_rfc3339_parse(const char *s, long long *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p = s + 19;

	if (strlen(s) < 20 || !ts_digits(s, 4, &y) || s[4] != '-' ||
	    !ts_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !ts_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !ts_digits(s + 11, 2, &h) || s[13] != ':' ||
	    !ts_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !ts_digits(s + 17, 2, &sec))
		return KF_EPARSE;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || sec > 60)
		return KF_EPARSE;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return KF_EPARSE;
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		sign = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 &&
		   ts_digits(p + 1, 2, &oh) && p[3] == ':' &&
		   ts_digits(p + 4, 2, &om) && oh <= 23 && om <= 59) {
		sign = *p == '+' ? 1 : -1;
	} else {
		return KF_EPARSE;
	}
	*out = ts_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	       sign * (oh * 3600 + om * 60);
	return KF_OK;
}

/* ---- node helpers ---- */

static const char *
kc_type_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a string";
	}
}

/* A scalar as a string. Null leaves *out NULL; so does "", as kubectl
 * treats an empty field as unset. A scalar may be a number in YAML; like
 * kubectl, take its text. */
static kf_err
kc_string(struct kc_ctx *x, yaml_node_t *n, const char *path, char **out)
{
	if (kf_yaml_is_null(n))
		return KF_OK;
	if (n->type != YAML_SCALAR_NODE)
		return kc_fail(x, KF_ECONFIG, n, path,
			       "expected a string, found %s", kc_type_name(n));
	if (n->data.scalar.length != strlen((char *)n->data.scalar.value))
		return kc_fail(x, KF_ECONFIG, n, path,
			       "string contains a NUL character");
	if (n->data.scalar.length == 0)
		return KF_OK;
	if (kc_charge(x, n->data.scalar.length + 8, n, path) != KF_OK)
		return KF_ECONFIG;
	free(*out);
	*out = strdup((const char *)n->data.scalar.value);
	return *out != NULL ? KF_OK : kc_oom(x);
}

static kf_err
kc_bool(struct kc_ctx *x, yaml_node_t *n, const char *path, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "y"};
	static const char *const no[] = {"false", "no", "off", "n"};
	const char *v;

	if (kf_yaml_is_null(n)) {
		*out = false;
		return KF_OK;
	}
	if (n->type != YAML_SCALAR_NODE)
		return kc_fail(x, KF_ECONFIG, n, path,
			       "expected true or false, found %s",
			       kc_type_name(n));
	v = (const char *)n->data.scalar.value;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return KF_OK;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return KF_OK;
		}
	}
	return kc_fail(x, KF_ECONFIG, n, path, "expected true or false");
}

/* A file path, made absolute against the kubeconfig's directory. */
static kf_err
kc_path(struct kc_ctx *x, yaml_node_t *n, const char *path, char **out)
{
	char *rel = NULL, *abs;
	kf_err e;

	if ((e = kc_string(x, n, path, &rel)) != KF_OK || rel == NULL)
		return e;
	if (rel[0] == '/') {
		free(*out);
		*out = rel;
		return KF_OK;
	}
	if (asprintf(&abs, "%s/%s", x->dir, rel) < 0) {
		free(rel);
		return kc_oom(x);
	}
	free(rel);
	free(*out);
	*out = abs;
	return KF_OK;
}

#define KC_EMPTY_DATA "empty; give base64 PEM data or remove the field"

/* What a CA bundle or client certificate, or a client key, must hold. */
enum kc_pem_kind { KC_PEM_CERT, KC_PEM_KEY };

/* Whether buf holds "-----BEGIN label-----" and, after it,
 * "-----END label-----". */
static bool
kc_pem_block(const uint8_t *buf, size_t len, const char *label)
{
	char begin[48], end[48];
	int bl = snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	int el = snprintf(end, sizeof(end), "-----END %s-----", label);
	const uint8_t *b = memmem(buf, len, begin, (size_t)bl);

	if (b == NULL)
		return false;
	b += bl;
	return memmem(b, len - (size_t)(b - buf), end, (size_t)el) != NULL;
}

/* NULL when buf holds a PEM block of the kind, else what is wrong. Only
 * the armor is looked at: libcurl and OpenSSL parse the contents when
 * they connect. */
static const char *
kc_pem_missing(const uint8_t *buf, size_t len, enum kc_pem_kind kind)
{
	if (kind == KC_PEM_CERT)
		return kc_pem_block(buf, len, "CERTIFICATE")
			   ? NULL
			   : "holds no PEM certificate (no -----BEGIN "
			     "CERTIFICATE----- ... -----END CERTIFICATE----- "
			     "block)";
	return kc_pem_block(buf, len, "PRIVATE KEY") ||
		       kc_pem_block(buf, len, "RSA PRIVATE KEY") ||
		       kc_pem_block(buf, len, "EC PRIVATE KEY")
		   ? NULL
		   : "holds no PEM private key (no -----BEGIN PRIVATE "
		     "KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block with "
		     "its -----END line)";
}

/* Base64 of PEM text (a certificate, key or CA bundle). Given but empty
 * (null, "" or only line breaks) is an error, not "unset" as elsewhere:
 * a template that filled in nothing would otherwise leave the connection
 * without its CA or client certificate, and every TLS handshake would fail
 * far from the cause. With empty_line, an empty value is not an error
 * here: its line goes there for the caller to judge. */
static kf_err
kc_pem_data(struct kc_ctx *x, yaml_node_t *n, const char *path,
	    enum kc_pem_kind kind, struct kfi_blob *out, int *empty_line)
{
	const char *missing;
	char *text = NULL;
	kf_err e;

	if ((e = kc_string(x, n, path, &text)) != KF_OK)
		return e;
	free(out->data);
	out->data = NULL;
	out->len = 0;
	if (text != NULL) {
		e = kfi_base64_decode(text, strlen(text), out);
		free(text);
	}
	if (e == KF_ENOMEM)
		return kc_oom(x);
	if (e != KF_OK)
		return kc_fail(x, KF_ECONFIG, n, path, "invalid base64");
	if (out->len == 0) {
		free(out->data);
		out->data = NULL;
		if (empty_line == NULL)
			return kc_fail(x, KF_ECONFIG, n, path, KC_EMPTY_DATA);
		*empty_line = (int)kc_line(n);
		return KF_OK;
	}
	if ((missing = kc_pem_missing(out->data, out->len, kind)) != NULL)
		return kc_fail(x, KF_ECONFIG, n, path, "%s", missing);
	return KF_OK;
}

static yaml_node_t *
kc_node(struct kc_ctx *x, int id)
{
	return yaml_document_get_node(x->doc, id);
}

/* Walk a mapping, calling fn for each key found in keys (a NULL-ended
 * list of at most 32), refusing a known key given twice. Null is an empty
 * mapping. */
static kf_err
kc_walk_map(struct kc_ctx *x, yaml_node_t *map, const char *path,
	    const char *const *keys, kc_field_fn fn, void *obj)
{
	uint32_t seen = 0;
	size_t first[32];
	char sub[KC_PATH];

	if (kf_yaml_is_null(map))
		return KF_OK;
	if (map->type != YAML_MAPPING_NODE)
		return kc_fail(x, KF_ECONFIG, map, path,
			       "expected a mapping, found %s",
			       kc_type_name(map));
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = kc_node(x, p->key);
		yaml_node_t *v = kc_node(x, p->value);
		const char *name;
		int i;
		kf_err e;

		if (kc_charge(x, 8, map, path) != KF_OK)
			return KF_ECONFIG;
		if (k == NULL || k->type != YAML_SCALAR_NODE)
			return kc_fail(x, KF_ECONFIG, k, path,
				       "a key that is not a string");
		name = (const char *)k->data.scalar.value;
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(keys[i], name) == 0)
				break;
		if (keys[i] == NULL)
			continue;
		if ((e = kc_subpath(x, k, sub, sizeof(sub), "%s%s%s", path,
				    path[0] != '\0' ? "." : "", name)) != KF_OK)
			return e;
		if (seen & (1u << i))
			return kc_fail_at(x, KF_ECONFIG, 0, sub,
					  "given twice, at lines %zu and %zu",
					  first[i], kc_line(k));
		seen |= 1u << i;
		first[i] = kc_line(k);
		if ((e = fn(x, obj, i, v, sub)) != KF_OK)
			return e;
	}
	return KF_OK;
}

/* A list's length; null is empty. */
static kf_err
kc_list(struct kc_ctx *x, yaml_node_t *n, const char *path, size_t *len)
{
	*len = 0;
	if (kf_yaml_is_null(n))
		return KF_OK;
	if (n->type != YAML_SEQUENCE_NODE)
		return kc_fail(x, KF_ECONFIG, n, path,
			       "expected a list, found %s", kc_type_name(n));
	*len =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (*len > KC_MAX_ENTRIES)
		return kc_fail(x, KF_ECONFIG, n, path, "more than %d entries",
			       KC_MAX_ENTRIES);
	return kc_charge(x, 8 * *len, n, path);
}

static yaml_node_t *
kc_item(struct kc_ctx *x, yaml_node_t *list, size_t i)
{
	return kc_node(x, list->data.sequence.items.start[i]);
}

/* ---- exec ---- */

void
kfi_exec_cfg_free(struct kfi_exec_cfg *e)
{
	if (e == NULL)
		return;
	free(e->command);
	for (size_t i = 0; e->argv != NULL && e->argv[i] != NULL; i++)
		free(e->argv[i]);
	free(e->argv);
	for (size_t i = 0; e->env != NULL && e->env[i] != NULL; i++)
		free(e->env[i]);
	free(e->env);
	free(e->api_version);
	free(e->install_hint);
	free(e);
}

struct kc_env_var {
	char *name;
	char *value;
	bool has_value;
};

static const char *const env_keys[] = {"name", "value", NULL};

static kf_err
kc_env_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
	     const char *path)
{
	struct kc_env_var *ev = obj;

	if (key == 1)
		ev->has_value = true;
	return kc_string(x, v, path, key == 0 ? &ev->name : &ev->value);
}

static kf_err
kc_exec_args(struct kc_ctx *x, struct kfi_exec_cfg *ex, yaml_node_t *v,
	     const char *path)
{
	size_t n;
	char sub[KC_PATH];
	kf_err e;

	if ((e = kc_list(x, v, path, &n)) != KF_OK)
		return e;
	/* argv[0] holds "" until kc_exec() puts the command there. */
	ex->argv = calloc(n + 2, sizeof(char *));
	if (ex->argv == NULL || (ex->argv[0] = strdup("")) == NULL)
		return kc_oom(x);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = kc_item(x, v, i);
		char *s = NULL;

		if ((e = kc_subpath(x, it, sub, sizeof(sub), "%s[%zu]", path,
				    i)) != KF_OK)
			return e;
		if (it == NULL || it->type != YAML_SCALAR_NODE)
			return kc_fail(x, KF_ECONFIG, it, sub,
				       "expected a string");
		if ((e = kc_string(x, it, sub, &s)) != KF_OK)
			return e;
		/* An empty argument stays "". */
		ex->argv[i + 1] = s != NULL ? s : strdup("");
		if (ex->argv[i + 1] == NULL)
			return kc_oom(x);
	}
	return KF_OK;
}

static kf_err
kc_exec_env(struct kc_ctx *x, struct kfi_exec_cfg *ex, yaml_node_t *v,
	    const char *path)
{
	size_t n;
	char sub[KC_PATH], sub2[KC_PATH + 8];
	kf_err e;

	if ((e = kc_list(x, v, path, &n)) != KF_OK)
		return e;
	ex->env = calloc(n + 1, sizeof(char *));
	if (ex->env == NULL)
		return kc_oom(x);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = kc_item(x, v, i);
		struct kc_env_var ev = {0};
		int r = 0;

		if ((e = kc_subpath(x, it, sub, sizeof(sub), "%s[%zu]", path,
				    i)) != KF_OK)
			return e;
		if (kf_yaml_is_null(it) || it->type != YAML_MAPPING_NODE)
			return kc_fail(x, KF_ECONFIG, it, sub,
				       "expected a mapping with name and "
				       "value");
		e = kc_walk_map(x, it, sub, env_keys, kc_env_field, &ev);
		snprintf(sub2, sizeof(sub2), "%s.name", sub);
		if (e == KF_OK && ev.name == NULL)
			e = kc_fail(x, KF_ECONFIG, it, sub2, "missing");
		if (e == KF_OK && strchr(ev.name, '=') != NULL)
			e = kc_fail(x, KF_ECONFIG, it, sub2, "contains '='");
		if (e == KF_OK)
			r = asprintf(&ex->env[i], "%s=%s", ev.name,
				     ev.value != NULL ? ev.value : "");
		free(ev.name);
		free(ev.value);
		if (e != KF_OK)
			return e;
		if (r < 0) {
			ex->env[i] = NULL;
			return kc_oom(x);
		}
	}
	return KF_OK;
}

static const char *const exec_keys[] = {
    "command",	       "args",	      "env",
    "apiVersion",      "installHint", "provideClusterInfo",
    "interactiveMode", NULL};

static kf_err
kc_exec_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
	      const char *path)
{
	struct kfi_exec_cfg *ex = obj;
	char *mode = NULL;
	kf_err e;

	switch (key) {
	case 0:
		return kc_string(x, v, path, &ex->command);
	case 1:
		return kc_exec_args(x, ex, v, path);
	case 2:
		return kc_exec_env(x, ex, v, path);
	case 3:
		if ((e = kc_string(x, v, path, &ex->api_version)) != KF_OK)
			return e;
		if (ex->api_version == NULL ||
		    strcmp(ex->api_version,
			   "client.authentication.k8s.io/v1") == 0 ||
		    strcmp(ex->api_version,
			   "client.authentication.k8s.io/v1beta1") == 0)
			return KF_OK;
		return kc_fail(x, KF_ECONFIG, v, path,
			       "not supported (use "
			       "client.authentication.k8s.io/v1 or v1beta1)");
	case 4:
		return kc_string(x, v, path, &ex->install_hint);
	case 5:
		return kc_bool(x, v, path, &ex->provide_cluster_info);
	default:
		if ((e = kc_string(x, v, path, &mode)) != KF_OK || mode == NULL)
			return e;
		if (strcmp(mode, "Never") == 0)
			ex->interactive = KFI_EXEC_NEVER;
		else if (strcmp(mode, "IfAvailable") == 0)
			ex->interactive = KFI_EXEC_IF_AVAILABLE;
		else if (strcmp(mode, "Always") == 0)
			ex->interactive = KFI_EXEC_ALWAYS;
		else
			e = kc_fail(x, KF_ECONFIG, v, path,
				    "expected Never, IfAvailable or Always");
		free(mode);
		return e;
	}
}

static kf_err
kc_exec(struct kc_ctx *x, yaml_node_t *v, const char *path,
	struct kfi_exec_cfg **out)
{
	struct kfi_exec_cfg *ex;
	char sub[KC_PATH + 16];
	kf_err e;

	if (kf_yaml_is_null(v))
		return KF_OK;
	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return kc_oom(x);
	*out = ex;
	if ((e = kc_walk_map(x, v, path, exec_keys, kc_exec_field, ex)) !=
	    KF_OK)
		return e;
	snprintf(sub, sizeof(sub), "%s.command", path);
	if (ex->command == NULL)
		return kc_fail(x, KF_ECONFIG, v, sub, "missing");
	snprintf(sub, sizeof(sub), "%s.apiVersion", path);
	if (ex->api_version == NULL)
		return kc_fail(x, KF_ECONFIG, v, sub, "missing");
	if (ex->command[0] != '/' && strchr(ex->command, '/') != NULL) {
		/* A relative command with a directory part is relative to
		 * the kubeconfig; a bare name is looked up on $PATH. */
		char *abs;

		if (asprintf(&abs, "%s/%s", x->dir, ex->command) < 0)
			return kc_oom(x);
		free(ex->command);
		ex->command = abs;
	}
	if (ex->argv == NULL && (ex->argv = calloc(2, sizeof(char *))) == NULL)
		return kc_oom(x);
	free(ex->argv[0]);
	if ((ex->argv[0] = strdup(ex->command)) == NULL)
		return kc_oom(x);
	if (ex->env == NULL && (ex->env = calloc(1, sizeof(char *))) == NULL)
		return kc_oom(x);
	return KF_OK;
}

/* ---- clusters, users, contexts ---- */

static const char *const cluster_keys[] = {"server",
					   "certificate-authority",
					   "certificate-authority-data",
					   "insecure-skip-tls-verify",
					   "tls-server-name",
					   "proxy-url",
					   NULL};

static kf_err
kc_cluster_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
		 const char *path)
{
	struct kc_cluster *c = obj;

	switch (key) {
	case 0:
		return kc_string(x, v, path, &c->server);
	case 1:
		return kc_path(x, v, path, &c->ca_file);
	case 2:
		return kc_pem_data(x, v, path, KC_PEM_CERT, &c->ca,
				   &c->ca_empty_line);
	case 3:
		return kc_bool(x, v, path, &c->insecure);
	case 4:
		return kc_string(x, v, path, &c->tls_server_name);
	default:
		return kc_string(x, v, path, &c->proxy_url);
	}
}

static const char *const user_keys[] = {"token",
					"tokenFile",
					"client-certificate",
					"client-certificate-data",
					"client-key",
					"client-key-data",
					"username",
					"password",
					"exec",
					"auth-provider",
					"as",
					"as-uid",
					"as-groups",
					"as-user-extra",
					NULL};

static kf_err
kc_user_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
	      const char *path)
{
	struct kc_user *u = obj;

	switch (key) {
	case 0:
		return kc_string(x, v, path, &u->token);
	case 1:
		return kc_path(x, v, path, &u->token_file);
	case 2:
		return kc_path(x, v, path, &u->cert_file);
	case 3:
		return kc_pem_data(x, v, path, KC_PEM_CERT, &u->cert, NULL);
	case 4:
		return kc_path(x, v, path, &u->key_file);
	case 5:
		return kc_pem_data(x, v, path, KC_PEM_KEY, &u->key, NULL);
	case 6:
		return kc_string(x, v, path, &u->username);
	case 7:
		return kc_string(x, v, path, &u->password);
	case 8:
		return kc_exec(x, v, path, &u->exec);
	case 9:
		if (!kf_yaml_is_null(v))
			u->auth_provider_line = (int)v->start_mark.line + 1;
		return KF_OK;
	default:
		if (!kf_yaml_is_null(v) && u->impersonate_line == 0)
			u->impersonate_line = (int)v->start_mark.line + 1;
		return KF_OK;
	}
}

static const char *const context_keys[] = {"cluster", "user", "namespace",
					   NULL};

static kf_err
kc_context_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
		 const char *path)
{
	struct kc_context *c = obj;

	if (key == 0)
		return kc_string(x, v, path, &c->cluster);
	if (key == 1)
		return kc_string(x, v, path, &c->user);
	return kc_string(x, v, path, &c->ns);
}

/* Checks on one entry once all its fields are read; path is the entry's
 * ("clusters[0]"). */
typedef kf_err (*kc_done_fn)(struct kc_ctx *x, void *obj, const char *path);

/* One list of named entries: "- name: N\n  <body>: {...}". */
struct kc_named {
	const char *list;	 /* "clusters" */
	const char *body;	 /* "cluster" */
	const char *const *keys; /* of the body */
	kc_field_fn fn;
	kc_done_fn done; /* or NULL */
	size_t size;	 /* of one entry struct */
	size_t name_off, idx_off, line_off;
};

struct kc_entry_walk {
	const struct kc_named *kind;
	void *entry;
	char **name;
	bool has_body;
};

static kf_err
kc_entry_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
	       const char *path)
{
	struct kc_entry_walk *w = obj;

	if (key == 0)
		return kc_string(x, v, path, w->name);
	w->has_body = true;
	return kc_walk_map(x, v, path, w->kind->keys, w->kind->fn, w->entry);
}

/* Empty certificate-authority-data: harmless beside
 * insecure-skip-tls-verify (no CA is used; k0s writes such files), and
 * taken as unset there, as kubectl does; otherwise an error. */
static kf_err
kc_cluster_done(struct kc_ctx *x, void *obj, const char *path)
{
	struct kc_cluster *c = obj;
	char sub[KC_PATH + 40];

	if (c->ca_empty_line == 0 || c->insecure)
		return KF_OK;
	snprintf(sub, sizeof(sub), "%s.cluster.certificate-authority-data",
		 path);
	return kc_fail_at(x, KF_ECONFIG, (size_t)c->ca_empty_line, sub,
			  KC_EMPTY_DATA);
}

/* Name the entry in error texts (`cluster "prod"`) from its name, when
 * that is a non-empty string; the walk checks the name properly. */
static void
kc_entry_label(struct kc_ctx *x, const struct kc_named *kind, yaml_node_t *it)
{
	char q[80];

	x->entry[0] = '\0';
	if (kf_yaml_is_null(it) || it->type != YAML_MAPPING_NODE)
		return;
	for (yaml_node_pair_t *p = it->data.mapping.pairs.start;
	     p < it->data.mapping.pairs.top; p++) {
		yaml_node_t *k = kc_node(x, p->key);
		yaml_node_t *v = kc_node(x, p->value);

		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    strcmp((const char *)k->data.scalar.value, "name") != 0)
			continue;
		if (v != NULL && v->type == YAML_SCALAR_NODE &&
		    !kf_yaml_is_null(v) && v->data.scalar.length > 0)
			snprintf(x->entry, sizeof(x->entry), "%s \"%s\"",
				 kind->body,
				 kc_quote((const char *)v->data.scalar.value, q,
					  sizeof(q)));
		return;
	}
}

static kf_err
kc_entries(struct kc_ctx *x, yaml_node_t *list, const struct kc_named *kind,
	   void **out, size_t *count)
{
	const char *keys[3] = {"name", kind->body, NULL};
	char path[KC_PATH], sub[KC_PATH + 8], q[80];
	size_t n;
	kf_err e;

	if ((e = kc_list(x, list, kind->list, &n)) != KF_OK || n == 0)
		return e;
	if ((*out = calloc(n, kind->size)) == NULL)
		return kc_oom(x);
	*count = n;
	for (size_t i = 0; i < n; i++) {
		char *entry = (char *)*out + i * kind->size;
		char **name = (char **)(entry + kind->name_off);
		yaml_node_t *it = kc_item(x, list, i);
		struct kc_entry_walk w = {kind, entry, name, false};

		*(int *)(entry + kind->idx_off) = (int)i;
		*(int *)(entry + kind->line_off) =
		    it != NULL ? (int)it->start_mark.line + 1 : 0;
		snprintf(path, sizeof(path), "%s[%zu]", kind->list, i);
		if (kf_yaml_is_null(it) || it->type != YAML_MAPPING_NODE)
			return kc_fail(x, KF_ECONFIG, it, path,
				       "expected a mapping with name and %s",
				       kind->body);
		kc_entry_label(x, kind, it);
		if ((e = kc_walk_map(x, it, path, keys, kc_entry_field, &w)) !=
		    KF_OK)
			return e;
		snprintf(sub, sizeof(sub), "%s.name", path);
		if (*name == NULL)
			return kc_fail(x, KF_ECONFIG, it, sub, "missing");
		for (size_t j = 0; j < i; j++) {
			char *prev = (char *)*out + j * kind->size;

			if (strcmp(*(char **)(prev + kind->name_off), *name) ==
			    0)
				return kc_fail(x, KF_ECONFIG, it, sub,
					       "name \"%s\" is also used by "
					       "%s[%zu]",
					       kc_quote(*name, q, sizeof(q)),
					       kind->list, j);
		}
		if (kind->done != NULL &&
		    (e = kind->done(x, entry, path)) != KF_OK)
			return e;
	}
	x->entry[0] = '\0';
	return KF_OK;
}

static const struct kc_named kind_cluster = {"clusters",
					     "cluster",
					     cluster_keys,
					     kc_cluster_field,
					     kc_cluster_done,
					     sizeof(struct kc_cluster),
					     offsetof(struct kc_cluster, name),
					     offsetof(struct kc_cluster, idx),
					     offsetof(struct kc_cluster, line)};

static const struct kc_named kind_user = {"users",
					  "user",
					  user_keys,
					  kc_user_field,
					  NULL,
					  sizeof(struct kc_user),
					  offsetof(struct kc_user, name),
					  offsetof(struct kc_user, idx),
					  offsetof(struct kc_user, line)};

static const struct kc_named kind_context = {"contexts",
					     "context",
					     context_keys,
					     kc_context_field,
					     NULL,
					     sizeof(struct kc_context),
					     offsetof(struct kc_context, name),
					     offsetof(struct kc_context, idx),
					     offsetof(struct kc_context, line)};

static void
kc_file_free(struct kc_file *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nclusters; i++) {
		struct kc_cluster *c = &f->clusters[i];

		free(c->name);
		free(c->server);
		free(c->tls_server_name);
		free(c->proxy_url);
		free(c->ca_file);
		free(c->ca.data);
	}
	for (size_t i = 0; i < f->nusers; i++) {
		struct kc_user *u = &f->users[i];

		free(u->name);
		free(u->token);
		free(u->token_file);
		free(u->cert_file);
		free(u->cert.data);
		free(u->key_file);
		free(u->key.data);
		free(u->username);
		free(u->password);
		kfi_exec_cfg_free(u->exec);
	}
	for (size_t i = 0; i < f->ncontexts; i++) {
		free(f->contexts[i].name);
		free(f->contexts[i].cluster);
		free(f->contexts[i].user);
		free(f->contexts[i].ns);
	}
	free(f->clusters);
	free(f->users);
	free(f->contexts);
	free(f->current);
	free(f->label);
	free(f->dir);
	free(f);
}

static const char *const root_keys[] = {"kind",	    "clusters",	       "users",
					"contexts", "current-context", NULL};

static kf_err
kc_root_field(struct kc_ctx *x, void *obj, int key, yaml_node_t *v,
	      const char *path)
{
	struct kc_file *f = obj;
	char *kind = NULL;
	char q[80];
	kf_err e;

	switch (key) {
	case 0:
		if ((e = kc_string(x, v, path, &kind)) != KF_OK || kind == NULL)
			return e;
		if (strcmp(kind, "Config") != 0)
			e = kc_fail(x, KF_ECONFIG, v, path,
				    "expected Config, found \"%s\"",
				    kc_quote(kind, q, sizeof(q)));
		free(kind);
		return e;
	case 1:
		return kc_entries(x, v, &kind_cluster, (void **)&f->clusters,
				  &f->nclusters);
	case 2:
		return kc_entries(x, v, &kind_user, (void **)&f->users,
				  &f->nusers);
	case 3:
		return kc_entries(x, v, &kind_context, (void **)&f->contexts,
				  &f->ncontexts);
	default:
		return kc_string(x, v, path, &f->current);
	}
}

/* "YAML syntax error at line L column C: what libyaml says", as
 * kubefand's configuration says "path:L: YAML syntax error: ...". */
static kf_err
kc_yaml_error(struct kc_ctx *x, const yaml_parser_t *p, const uint8_t *data,
	      size_t len)
{
	const char *kind;
	char detail[200];
	size_t line, column;

	if (p->error == YAML_MEMORY_ERROR)
		return kc_oom(x);
	kf_yaml_problem(p, data, len, &kind, detail, sizeof(detail), &line,
			&column);
	return kc_fail(x, KF_EPARSE, NULL, NULL,
		       "%s at line %zu column %zu: %s", kind, line, column,
		       detail);
}

/* The event pass (see the top of the file): nesting within KF_YAML_MAX_DEPTH.
 * Only the first document is checked, as only it is loaded. */
static kf_err
kc_check_depth(struct kc_ctx *x, const uint8_t *data, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	kf_err e = KF_OK;
	struct kf_yaml_bound b = {0};
	char msg[64];
	bool done = false;

	if (!yaml_parser_initialize(&p))
		return kc_oom(x);
	yaml_parser_set_input_string(&p, data, len);
	/* One event per turn, until the first document or the stream ends
	 * or a check fails; the depth check keeps libyaml's work per event
	 * bounded. */
	while (!done) {
		yaml_event_type_t type;
		yaml_mark_t at;
		int bad;

		if (!yaml_parser_parse(&p, &ev)) {
			e = kc_yaml_error(x, &p, data, len);
			break;
		}
		type = ev.type;
		at = ev.start_mark;
		bad = kf_yaml_bound_step(&b, &ev, msg, sizeof(msg));
		yaml_event_delete(&ev);
		if (bad) {
			e = kc_fail(x, KF_ECONFIG, NULL, NULL,
				    "%s at line %zu column %zu", msg,
				    at.line + 1, at.column + 1);
			done = true;
		} else if (type == YAML_DOCUMENT_END_EVENT ||
			   type == YAML_STREAM_END_EVENT) {
			done = true;
		}
	}
	yaml_parser_delete(&p);
	return e;
}

/* Parse one file's bytes into a kc_file. */
static kf_err
kc_parse_file(const char *label, const char *dir, const uint8_t *data,
	      size_t len, char *errbuf, size_t errlen, struct kc_file **out)
{
	struct kc_ctx x = {.label = label,
			   .dir = dir,
			   .err = errbuf,
			   .errlen = errlen,
			   .walk_left = KC_WALK_BUDGET(len),
			   .walk_budget = KC_WALK_BUDGET(len)};
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct kc_file *f;
	kf_err e;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return kc_oom(&x);
	f->label = strdup(label);
	f->dir = strdup(dir);
	if (f->label == NULL || f->dir == NULL) {
		kc_file_free(f);
		return kc_oom(&x);
	}
	if ((e = kc_check_depth(&x, data, len)) != KF_OK) {
		kc_file_free(f);
		return e;
	}
	if (!yaml_parser_initialize(&parser)) {
		kc_file_free(f);
		return kc_oom(&x);
	}
	yaml_parser_set_input_string(&parser, data, len);
	if (!yaml_parser_load(&parser, &doc)) {
		e = kc_yaml_error(&x, &parser, data, len);
		yaml_parser_delete(&parser);
		kc_file_free(f);
		return e;
	}
	yaml_parser_delete(&parser);
	x.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	e = KF_OK;
	if (root != NULL && !kf_yaml_is_null(root) &&
	    root->type != YAML_MAPPING_NODE)
		e = kc_fail(&x, KF_ECONFIG, root, NULL,
			    "the document is %s, not a mapping",
			    kc_type_name(root));
	if (e == KF_OK)
		e = kc_walk_map(&x, root, "", root_keys, kc_root_field, f);
	yaml_document_delete(&doc);
	if (e != KF_OK) {
		kc_file_free(f);
		return e;
	}
	*out = f;
	return KF_OK;
}

/* ---- selecting a context ---- */

struct kc_set {
	struct kc_file **files;
	size_t n;
	const char *label; /* for messages not tied to one file */
};

static void *
kc_find(const struct kc_set *s, const char *name, const struct kc_named *k,
	struct kc_file **file)
{
	for (size_t i = 0; i < s->n; i++) {
		struct kc_file *f = s->files[i];
		char *base;
		size_t n;

		if (k == &kind_cluster) {
			base = (char *)f->clusters;
			n = f->nclusters;
		} else if (k == &kind_user) {
			base = (char *)f->users;
			n = f->nusers;
		} else {
			base = (char *)f->contexts;
			n = f->ncontexts;
		}
		for (size_t j = 0; j < n; j++) {
			char *entry = base + j * k->size;

			if (strcmp(*(char **)(entry + k->name_off), name) ==
			    0) {
				*file = f;
				return entry;
			}
		}
	}
	return NULL;
}

static kf_err __attribute__((format(printf, 6, 7)))
kc_sel_fail(char *errbuf, size_t errlen, const char *file, int line,
	    const char *path, const char *fmt, ...)
{
	char msg[256];
	char where[32] = "";
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return KF_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), " (line %d)", line);
	if (path != NULL)
		snprintf(errbuf, errlen, "kubeconfig %s: %s: %s%s", file, path,
			 msg, where);
	else
		snprintf(errbuf, errlen, "kubeconfig %s: %s%s", file, msg,
			 where);
	return KF_ECONFIG;
}

static kf_err
kc_readable(char *errbuf, size_t errlen, const char *file, int line,
	    const char *path, const char *target)
{
	struct stat st;

	if (access(target, R_OK) != 0)
		return kc_sel_fail(errbuf, errlen, file, line, path,
				   "cannot read %s: %s", target,
				   strerror(errno));
	if (stat(target, &st) == 0 && S_ISDIR(st.st_mode))
		return kc_sel_fail(errbuf, errlen, file, line, path,
				   "%s is a directory", target);
	return KF_OK;
}

/* A CA, certificate or key file of the context in use must hold a PEM
 * block of its kind, so that a file of the wrong kind is named now and not
 * at the first TLS handshake. Only a regular file is read (a FIFO could
 * block; a device is left to libcurl), at most KC_MAX_FILE bytes. */
static kf_err
kc_pem_file(char *errbuf, size_t errlen, const char *file, int line,
	    const char *path, const char *target, enum kc_pem_kind kind)
{
	int fd = open(target, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	const char *missing = NULL;
	struct stat st;
	uint8_t *buf = NULL;
	size_t n = 0;
	ssize_t r = 0;

	if (fd < 0)
		return kc_sel_fail(errbuf, errlen, file, line, path,
				   "cannot read %s: %s", target,
				   strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return KF_OK;
	}
	if ((uintmax_t)st.st_size > KC_MAX_FILE) {
		close(fd);
		return kc_sel_fail(errbuf, errlen, file, line, path,
				   "%s is larger than %u bytes", target,
				   KC_MAX_FILE);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		kc_sel_fail(errbuf, errlen, file, 0, NULL, "out of memory");
		return KF_ENOMEM;
	}
	/* Bounded by the size fstat gave; a file that grows meanwhile is
	 * read only that far. */
	while (n < (size_t)st.st_size &&
	       (r = read(fd, buf + n, (size_t)st.st_size - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return kc_sel_fail(errbuf, errlen, file, line, path,
				   "cannot read %s: %s", target,
				   strerror(errno));
	}
	missing = kc_pem_missing(buf, n, kind);
	free(buf);
	if (missing != NULL)
		return kc_sel_fail(errbuf, errlen, file, line, path, "%s %s",
				   target, missing);
	return KF_OK;
}

kf_err
kfi_server_url(const char *in, char **out)
{
	const char *sep = strstr(in, "://");
	size_t len, scheme;
	char *s;

	if (sep == NULL) {
		if (asprintf(&s, "https://%s", in) < 0)
			return KF_ENOMEM;
	} else if ((s = strdup(in)) == NULL) {
		return KF_ENOMEM;
	}
	if (strncasecmp(s, "https://", 8) != 0 &&
	    strncasecmp(s, "http://", 7) != 0) {
		free(s);
		return KF_EINVAL;
	}
	scheme = strncasecmp(s, "https://", 8) == 0 ? 8 : 7;
	len = strlen(s);
	while (len > scheme && s[len - 1] == '/')
		s[--len] = '\0';
	if (len == scheme) {
		free(s);
		return KF_EINVAL;
	}
	*out = s;
	return KF_OK;
}

static kf_err
kc_blob_dup(const struct kfi_blob *in, struct kfi_blob *out)
{
	if (in->data == NULL)
		return KF_OK;
	if ((out->data = malloc(in->len + 1)) == NULL)
		return KF_ENOMEM;
	memcpy(out->data, in->data, in->len + 1);
	out->len = in->len;
	return KF_OK;
}

static char **
kc_strv_dup(char **v)
{
	size_t n = 0;
	char **o;

	while (v[n] != NULL)
		n++;
	if ((o = calloc(n + 1, sizeof(char *))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((o[i] = strdup(v[i])) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(o[j]);
			free(o);
			return NULL;
		}
	}
	return o;
}

static struct kfi_exec_cfg *
kc_exec_dup(const struct kfi_exec_cfg *in)
{
	struct kfi_exec_cfg *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->command = kc_strdup(in->command);
	e->argv = kc_strv_dup(in->argv);
	e->env = kc_strv_dup(in->env);
	e->api_version = kc_strdup(in->api_version);
	e->install_hint = kc_strdup(in->install_hint);
	e->provide_cluster_info = in->provide_cluster_info;
	e->interactive = in->interactive;
	if (e->command == NULL || e->argv == NULL || e->env == NULL ||
	    e->api_version == NULL ||
	    (in->install_hint != NULL && e->install_hint == NULL)) {
		kfi_exec_cfg_free(e);
		return NULL;
	}
	return e;
}

/* Checks on the cluster in use. */
static kf_err
kc_check_cluster(const struct kc_file *f, const struct kc_cluster *c,
		 bool check_files, char *errbuf, size_t errlen)
{
	char path[KC_PATH];
	kf_err e;

	snprintf(path, sizeof(path), "clusters[%d].cluster.server", c->idx);
	if (c->server == NULL)
		return kc_sel_fail(errbuf, errlen, f->label, c->line, path,
				   "missing");
	snprintf(path, sizeof(path), "clusters[%d].cluster", c->idx);
	if (c->ca_file != NULL && c->ca.data != NULL)
		return kc_sel_fail(errbuf, errlen, f->label, c->line, path,
				   "certificate-authority and "
				   "certificate-authority-data are both set");
	if (c->insecure && (c->ca_file != NULL || c->ca.data != NULL))
		return kc_sel_fail(errbuf, errlen, f->label, c->line, path,
				   "insecure-skip-tls-verify cannot be used "
				   "with a certificate authority");
	snprintf(path, sizeof(path),
		 "clusters[%d].cluster.certificate-authority", c->idx);
	if (check_files && c->ca_file != NULL &&
	    (e = kc_readable(errbuf, errlen, f->label, c->line, path,
			     c->ca_file)) != KF_OK)
		return e;
	if (check_files && c->ca_file != NULL)
		return kc_pem_file(errbuf, errlen, f->label, c->line, path,
				   c->ca_file, KC_PEM_CERT);
	return KF_OK;
}

/* Checks on the user in use. */
static kf_err
kc_check_user(const struct kc_file *f, const struct kc_user *u,
	      bool check_files, char *errbuf, size_t errlen)
{
	char path[KC_PATH], sub[KC_PATH + 32];
	bool cert = u->cert_file != NULL || u->cert.data != NULL;
	bool key = u->key_file != NULL || u->key.data != NULL;
	kf_err e;

	snprintf(path, sizeof(path), "users[%d].user", u->idx);
	if (u->auth_provider_line > 0)
		return kc_sel_fail(errbuf, errlen, f->label,
				   u->auth_provider_line, path,
				   "auth-provider is not supported; use an "
				   "exec credential plugin");
	if (u->impersonate_line > 0)
		return kc_sel_fail(errbuf, errlen, f->label,
				   u->impersonate_line, path,
				   "impersonation (as, as-groups, ...) is "
				   "not supported");
	if (u->cert_file != NULL && u->cert.data != NULL)
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   "client-certificate and "
				   "client-certificate-data are both set");
	if (u->key_file != NULL && u->key.data != NULL)
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   "client-key and client-key-data are both "
				   "set");
	if (cert != key)
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   cert ? "a client certificate without a "
					  "client key"
					: "a client key without a client "
					  "certificate");
	if ((u->token != NULL || u->token_file != NULL) && u->exec != NULL)
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   "token and exec are both set; use one "
				   "authentication method");
	if ((u->token != NULL || u->token_file != NULL) &&
	    (u->username != NULL || u->password != NULL))
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   "token and username/password are both "
				   "set; use one authentication method");
	if ((u->username == NULL) != (u->password == NULL))
		return kc_sel_fail(errbuf, errlen, f->label, u->line, path,
				   "username and password must be given "
				   "together");
	if (!check_files)
		return KF_OK;
	snprintf(sub, sizeof(sub), "%s.client-certificate", path);
	if (u->cert_file != NULL &&
	    ((e = kc_readable(errbuf, errlen, f->label, u->line, sub,
			      u->cert_file)) != KF_OK ||
	     (e = kc_pem_file(errbuf, errlen, f->label, u->line, sub,
			      u->cert_file, KC_PEM_CERT)) != KF_OK))
		return e;
	snprintf(sub, sizeof(sub), "%s.client-key", path);
	if (u->key_file != NULL &&
	    ((e = kc_readable(errbuf, errlen, f->label, u->line, sub,
			      u->key_file)) != KF_OK ||
	     (e = kc_pem_file(errbuf, errlen, f->label, u->line, sub,
			      u->key_file, KC_PEM_KEY)) != KF_OK))
		return e;
	snprintf(sub, sizeof(sub), "%s.tokenFile", path);
	if (u->token == NULL && u->token_file != NULL &&
	    (e = kc_readable(errbuf, errlen, f->label, u->line, sub,
			     u->token_file)) != KF_OK)
		return e;
	return KF_OK;
}

static kf_err
kc_fill(const struct kc_file *cf, const struct kc_cluster *c,
	const struct kc_user *u, const struct kc_context *ctx,
	struct kfi_kubeconfig *out)
{
	bool oom = false;

	out->source = kc_strdup(cf->label);
	out->context = kc_strdup(ctx->name);
	out->tls_server_name = kc_strdup(c->tls_server_name);
	out->proxy_url = kc_strdup(c->proxy_url);
	out->insecure = c->insecure;
	out->ca_file = kc_strdup(c->ca_file);
	out->namespace = kc_strdup(ctx->ns);
	oom |= kc_blob_dup(&c->ca, &out->ca_data) != KF_OK;
	oom |= out->source == NULL || out->context == NULL;
	if (u != NULL) {
		/* A static token wins over a token file, as in kubectl. */
		out->token = kc_strdup(u->token);
		if (u->token == NULL)
			out->token_file = kc_strdup(u->token_file);
		out->cert_file = kc_strdup(u->cert_file);
		out->key_file = kc_strdup(u->key_file);
		out->username = kc_strdup(u->username);
		out->password = kc_strdup(u->password);
		oom |= kc_blob_dup(&u->cert, &out->cert_data) != KF_OK;
		oom |= kc_blob_dup(&u->key, &out->key_data) != KF_OK;
		if (u->exec != NULL)
			oom |= (out->exec = kc_exec_dup(u->exec)) == NULL;
		oom |= (u->token != NULL && out->token == NULL) ||
		       (u->username != NULL && out->username == NULL) ||
		       (u->password != NULL && out->password == NULL);
	}
	oom |= (c->ca_file != NULL && out->ca_file == NULL) ||
	       (ctx->ns != NULL && out->namespace == NULL);
	return oom ? KF_ENOMEM : KF_OK;
}

static kf_err
kc_select(const struct kc_set *s, const char *context, bool check_files,
	  struct kfi_kubeconfig *out, char *errbuf, size_t errlen)
{
	struct kc_file *xf = NULL, *cf = NULL, *uf = NULL;
	struct kc_context *ctx;
	struct kc_cluster *c;
	struct kc_user *u = NULL;
	char path[KC_PATH], q[80];
	const char *name = context;
	kf_err e;

	memset(out, 0, sizeof(*out));
	if (name != NULL && name[0] == '\0')
		name = context = NULL; /* "--context ''" means the default */
	for (size_t i = 0; name == NULL && i < s->n; i++)
		name = s->files[i]->current;
	if (name == NULL)
		return kc_sel_fail(errbuf, errlen, s->label, 0, NULL,
				   "current-context is not set and no "
				   "context was given");
	if ((ctx = kc_find(s, name, &kind_context, &xf)) == NULL)
		return kc_sel_fail(errbuf, errlen, s->label, 0,
				   context != NULL ? NULL : "current-context",
				   "no context named \"%s\"",
				   kc_quote(name, q, sizeof(q)));

	snprintf(path, sizeof(path), "contexts[%d].context.cluster", ctx->idx);
	if (ctx->cluster == NULL)
		return kc_sel_fail(errbuf, errlen, xf->label, ctx->line, path,
				   "missing");
	if ((c = kc_find(s, ctx->cluster, &kind_cluster, &cf)) == NULL)
		return kc_sel_fail(errbuf, errlen, xf->label, ctx->line, path,
				   "no cluster named \"%s\"",
				   kc_quote(ctx->cluster, q, sizeof(q)));
	snprintf(path, sizeof(path), "contexts[%d].context.user", ctx->idx);
	if (ctx->user != NULL &&
	    (u = kc_find(s, ctx->user, &kind_user, &uf)) == NULL)
		return kc_sel_fail(errbuf, errlen, xf->label, ctx->line, path,
				   "no user named \"%s\"",
				   kc_quote(ctx->user, q, sizeof(q)));

	if ((e = kc_check_cluster(cf, c, check_files, errbuf, errlen)) != KF_OK)
		return e;
	if (u != NULL &&
	    (e = kc_check_user(uf, u, check_files, errbuf, errlen)) != KF_OK)
		return e;
	snprintf(path, sizeof(path), "clusters[%d].cluster.server", c->idx);
	e = kfi_server_url(c->server, &out->server);
	if (e == KF_EINVAL)
		return kc_sel_fail(errbuf, errlen, cf->label, c->line, path,
				   "not an http or https URL");
	if (e == KF_OK)
		e = kc_fill(xf, c, u, ctx, out);
	if (e != KF_OK) {
		kfi_kubeconfig_fini(out);
		kc_sel_fail(errbuf, errlen, s->label, 0, NULL, "out of memory");
		return KF_ENOMEM;
	}
	return KF_OK;
}

void
kfi_kubeconfig_fini(struct kfi_kubeconfig *kc)
{
	free(kc->source);
	free(kc->context);
	free(kc->server);
	free(kc->tls_server_name);
	free(kc->proxy_url);
	free(kc->ca_file);
	free(kc->ca_data.data);
	if (kc->token != NULL)
		explicit_bzero(kc->token, strlen(kc->token));
	free(kc->token);
	free(kc->token_file);
	free(kc->cert_file);
	free(kc->cert_data.data);
	free(kc->key_file);
	if (kc->key_data.data != NULL)
		explicit_bzero(kc->key_data.data, kc->key_data.len);
	free(kc->key_data.data);
	free(kc->username);
	if (kc->password != NULL)
		explicit_bzero(kc->password, strlen(kc->password));
	free(kc->password);
	kfi_exec_cfg_free(kc->exec);
	free(kc->namespace);
	memset(kc, 0, sizeof(*kc));
}

kf_err
kfi_kubeconfig_parse(const char *label, const char *dir, const uint8_t *data,
		     size_t len, const char *context, bool check_files,
		     struct kfi_kubeconfig *out, char *errbuf, size_t errlen)
{
	struct kc_file *f;
	struct kc_set s;
	kf_err e;

	memset(out, 0, sizeof(*out));
	if ((e = kc_parse_file(label, dir, data, len, errbuf, errlen, &f)) !=
	    KF_OK)
		return e;
	s.files = &f;
	s.n = 1;
	s.label = label;
	e = kc_select(&s, context, check_files, out, errbuf, errlen);
	kc_file_free(f);
	return e;
}

/* ---- files ---- */

/* Read a whole file of at most KC_MAX_FILE bytes. ENOENT is reported
 * as KF_ENOTFOUND so $KUBECONFIG can skip missing files; *open_err is
 * the errno of a file that cannot be opened, else 0. */
static kf_err
kc_read(const char *path, char *errbuf, size_t errlen, uint8_t **data,
	size_t *len, int *open_err)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t n;
	int err;

	*open_err = 0;
	if (fp == NULL) {
		err = errno;
		*open_err = err;
		snprintf(errbuf, errlen, "kubeconfig %s: cannot read: %s", path,
			 strerror(err));
		return err == ENOENT ? KF_ENOTFOUND : KF_ECONFIG;
	}
	if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uintmax_t)st.st_size > KC_MAX_FILE) {
		snprintf(errbuf, errlen,
			 "kubeconfig %s: not a regular file of at most %u "
			 "bytes",
			 path, KC_MAX_FILE);
		fclose(fp);
		return KF_ECONFIG;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(fp);
		return KF_ENOMEM;
	}
	n = fread(buf, 1, (size_t)st.st_size + 1, fp);
	err = ferror(fp) ? errno : 0;
	fclose(fp);
	if (err != 0 || n > (size_t)st.st_size) {
		snprintf(errbuf, errlen, "kubeconfig %s: %s", path,
			 err != 0 ? strerror(err)
				  : "the file grew while being read");
		free(buf);
		return KF_ECONFIG;
	}
	*data = buf;
	*len = n;
	return KF_OK;
}

/* The absolute form of path and its directory. */
static kf_err
kc_abs(const char *path, char **abs, char **dir)
{
	char cwd[4096];
	char *slash;

	if (path[0] == '/') {
		*abs = strdup(path);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return KF_EIO;
		if (asprintf(abs, "%s/%s", cwd, path) < 0)
			*abs = NULL;
	}
	if (*abs == NULL)
		return KF_ENOMEM;
	slash = strrchr(*abs, '/');
	*dir =
	    slash == *abs ? strdup("/") : strndup(*abs, (size_t)(slash - *abs));
	if (*dir == NULL) {
		free(*abs);
		return KF_ENOMEM;
	}
	return KF_OK;
}

/* One file read and parsed; *open_err as kc_read's. */
static kf_err
kc_load_one(const char *path, char *errbuf, size_t errlen, int *open_err,
	    struct kc_file **out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	char *abs, *dir;
	kf_err e;

	*open_err = 0;

	if ((e = kc_abs(path, &abs, &dir)) != KF_OK) {
		snprintf(errbuf, errlen, "kubeconfig %s: %s", path,
			 e == KF_ENOMEM ? "out of memory"
					: "cannot find the current directory");
		return e == KF_ENOMEM ? e : KF_ECONFIG;
	}
	if ((e = kc_read(path, errbuf, errlen, &data, &len, open_err)) == KF_OK)
		e = kc_parse_file(path, dir, data, len, errbuf, errlen, out);
	free(data);
	free(abs);
	free(dir);
	return e;
}

static kf_err
kc_default_path(char *buf, size_t len, char *errbuf, size_t errlen)
{
	const char *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char pwbuf[4096];

	if ((home == NULL || home[0] == '\0') &&
	    getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 &&
	    res != NULL)
		home = pw.pw_dir;
	if (home == NULL || home[0] == '\0') {
		snprintf(errbuf, errlen,
			 "kubeconfig: $KUBECONFIG and $HOME are unset; give a "
			 "path");
		return KF_ECONFIG;
	}
	snprintf(buf, len, "%s/.kube/config", home);
	return KF_OK;
}

kf_err
kfi_kubeconfig_load(const char *path, const char *context,
		    struct kfi_kubeconfig *out, char *errbuf, size_t errlen)
{
	struct kc_file *files[KC_MAX_FILES];
	const char *env = getenv("KUBECONFIG");
	char def[4096], *list, *tok, *next;
	size_t n = 0;
	struct kc_set s;
	kf_err e = KF_OK;
	int open_err;

	memset(out, 0, sizeof(*out));
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (path == NULL && (env == NULL || env[0] == '\0')) {
		if ((e = kc_default_path(def, sizeof(def), errbuf, errlen)) !=
		    KF_OK)
			return e;
		path = def;
	}
	if (path != NULL) {
		e = kc_load_one(path, errbuf, errlen, &open_err, &files[0]);
		/* The default that cannot be opened: say why that file was
		 * looked for, since nobody named it. */
		if (e != KF_OK && open_err != 0 && path == def)
			snprintf(errbuf, errlen,
				 KFI_KUBECONFIG_NONE
				 ": no path given (--kubeconfig), $KUBECONFIG "
				 "is %s and the default %s cannot be read: %s",
				 env == NULL ? "unset" : "empty", def,
				 strerror(open_err));
		if (e != KF_OK)
			return e == KF_ENOTFOUND ? KF_ECONFIG : e;
		s.files = files;
		s.n = 1;
		s.label = path;
		e = kc_select(&s, context, true, out, errbuf, errlen);
		kc_file_free(files[0]);
		return e;
	}

	if ((list = strdup(env)) == NULL)
		return KF_ENOMEM;
	for (tok = list; tok != NULL && e == KF_OK; tok = next) {
		bool dup;

		if ((next = strchr(tok, ':')) != NULL)
			*next++ = '\0';
		dup = tok[0] == '\0';
		for (size_t i = 0; i < n; i++)
			dup |= strcmp(files[i]->label, tok) == 0;
		if (dup)
			continue;
		if (n == KC_MAX_FILES) {
			snprintf(errbuf, errlen,
				 "kubeconfig: $KUBECONFIG lists more than %d "
				 "files",
				 KC_MAX_FILES);
			e = KF_ECONFIG;
			break;
		}
		e = kc_load_one(tok, errbuf, errlen, &open_err, &files[n]);
		if (e == KF_OK)
			n++;
		else if (e == KF_ENOTFOUND)
			e = KF_OK; /* kubectl skips missing files */
	}
	free(list);
	if (e == KF_OK && n == 0) {
		snprintf(errbuf, errlen,
			 "kubeconfig: no file of $KUBECONFIG exists (%s)", env);
		e = KF_ECONFIG;
	}
	if (e == KF_OK) {
		s.files = files;
		s.n = n;
		s.label = n == 1 ? files[0]->label : env;
		e = kc_select(&s, context, true, out, errbuf, errlen);
	}
	for (size_t i = 0; i < n; i++)
		kc_file_free(files[i]);
	return e;
}

int
kfi_kubeconfig_fuzz_one(const uint8_t *data, size_t len)
{
	struct kfi_kubeconfig kc;
	struct kc_file *f;
	struct kc_set s;
	char err[512];

	if (kc_parse_file("fuzz", "/kubefan-fuzz", data, len, err, sizeof(err),
			  &f) != KF_OK)
		return 0;
	s.files = &f;
	s.n = 1;
	s.label = "fuzz";
	if (kc_select(&s, NULL, false, &kc, err, sizeof(err)) == KF_OK)
		kfi_kubeconfig_fini(&kc);
	for (size_t i = 0; i < f->ncontexts && i < KC_FUZZ_CONTEXT; i++)
		if (kc_select(&s, f->contexts[i].name, false, &kc, err,
			      sizeof(err)) == KF_OK)
			kfi_kubeconfig_fini(&kc);
	kc_file_free(f);
	return 0;
}

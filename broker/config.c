/*
 * kubefand configuration: the --resource syntax, the YAML file, checks.
 * The YAML file is read with libyaml's document API; every value is a
 * scalar except `resources`, a sequence of mappings. Unknown keys are
 * errors, so a typo cannot silently fall back to a default, and so is a
 * key given twice in one mapping, so neither copy silently wins.
 *
 * Before the document is loaded, a pass over libyaml's events checks the
 * file's shape: at most KF_YAML_MAX_DEPTH levels of nesting, one document, and
 * at most KF_YAML_MAX_ANCHORS anchors and KF_YAML_MAX_ALIASES aliases
 * (yamlbound.h). libyaml's scanner and loader do work proportional to the depth
 * for each token, so a file of 100 000 '[' would take them tens of seconds; the
 * event pass stops at the first level too deep, which bounds its own work
 * by the limit times the file's size.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "yamlbound.h"
#include "kubefan/remote.h"
#include "kubefan/log.h"

/* The longest time any millisecond or microsecond setting may take. */
#define KD_MAX_MS 3600000ul
/* The largest ring (slots per stream). */
#define KD_MAX_RING (1ul << 24)
/* The largest configuration file: 64 resources need a few KiB. */
#define KD_MAX_FILE (1u << 20)

void
kd_set(char **slot, const char *v)
{
	char *d = v ? strdup(v) : NULL;

	if (v != NULL && d == NULL) {
		fprintf(stderr, "kubefand: out of memory\n");
		exit(1);
	}
	free(*slot);
	*slot = d;
}

void
kd_cfg_defaults(struct kd_cfg *c)
{
	memset(c, 0, sizeof(*c));
	kd_set(&c->listen, "ipc:///tmp/kubefand.pub");
	c->ipc_mode = 0600;
	c->ring_capacity = 4096;
	c->batch_us = 2000;
	c->heartbeat_ms = 1000;
	c->log_level = KF_LOG_INFO;
}

static void
res_fini(struct kd_res *r)
{
	char **s[] = {&r->spec, &r->group,  &r->version, &r->resource,
		      &r->ns,	&r->labels, &r->fields,	 &r->stream};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		kd_set(s[i], NULL);
}

void
kd_cfg_fini(struct kd_cfg *c)
{
	char **s[] = {&c->kubeconfig, &c->context, &c->listen,
		      &c->refs,	      &c->rep,	   &c->tls_cert_key,
		      &c->http,	      &c->log_dest};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		kd_set(s[i], NULL);
	for (size_t i = 0; i < c->nres; i++)
		res_fini(&c->res[i]);
	c->nres = 0;
}

int
kd_log_level(const char *name)
{
	static const char *const names[] = {"err", "warning", "notice", "info",
					    "debug"};

	for (int i = 0; i < 5; i++)
		if (strcmp(name, names[i]) == 0)
			return KF_LOG_ERR + i;
	return -1;
}

/* Whether s is one or more digits of base (8 or 10) and nothing else:
 * strtoul alone would also take leading white space, a sign (wrapping
 * " -1" to ULONG_MAX) and, in base 10, stop before "x10". */
static bool
kd_digits(const char *s, int base)
{
	char top = base == 8 ? '7' : '9';

	if (s[0] == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > top)
			return false;
	return true;
}

/* s as a number when it is only digits of base; one too large for an
 * unsigned long reads as ULONG_MAX (past every setting's maximum). */
static bool
kd_number(const char *s, int base, unsigned long *out)
{
	if (!kd_digits(s, base))
		return false;
	*out = strtoul(s, NULL, base);
	return true;
}

int
kd_parse_uint(const char *field, const char *s, int base, unsigned long max,
	      unsigned long *out, char *err, size_t len)
{
	if (!kd_number(s, base, out)) {
		snprintf(err, len, "%s \"%.200s\": expected a%s number", field,
			 s, base == 8 ? "n octal" : " whole");
		return -1;
	}
	if (*out == ULONG_MAX) {
		snprintf(err, len, "%s \"%.200s\": too large a number", field,
			 s);
		return -1;
	}
	if (*out > max) {
		snprintf(err, len,
			 base == 8 ? "%s \"%.200s\": at most 0%lo"
				   : "%s \"%.200s\": at most %lu",
			 field, s, max);
		return -1;
	}
	return 0;
}

/* resource, version/resource or group/version/resource. */
static int
res_set_path(struct kd_res *r, const char *path)
{
	const char *a = strchr(path, '/'), *b = a ? strchr(a + 1, '/') : NULL;

	if (b != NULL && strchr(b + 1, '/') != NULL)
		return -1;
	if (a == NULL) {
		kd_set(&r->group, "");
		kd_set(&r->version, "v1");
		kd_set(&r->resource, path);
	} else if (b == NULL) {
		kd_set(&r->group, "");
		r->version = strndup(path, (size_t)(a - path));
		kd_set(&r->resource, a + 1);
	} else {
		r->group = strndup(path, (size_t)(a - path));
		r->version = strndup(a + 1, (size_t)(b - a - 1));
		kd_set(&r->resource, b + 1);
	}
	if (r->group == NULL || r->version == NULL || r->resource == NULL)
		return -1;
	return r->version[0] && r->resource[0] ? 0 : -1;
}

/* One option of a resource: 0; -1 for an unknown key; -2 for a bad value,
 * with the reason in *why. */
static int
res_set_opt(struct kd_res *r, const char *key, const char *val,
	    const char **why)
{
	if (strcmp(key, "ns") == 0 || strcmp(key, "namespace") == 0) {
		kd_set(&r->ns, val);
	} else if (strcmp(key, "labels") == 0) {
		kd_set(&r->labels, val);
	} else if (strcmp(key, "fields") == 0) {
		kd_set(&r->fields, val);
	} else if (strcmp(key, "name") == 0) {
		if (val[0] == '\0') {
			*why = "the stream id must not be empty";
			return -2;
		}
		kd_set(&r->stream, val);
	} else if (strcmp(key, "transform") == 0) {
		if (strcmp(val, "strip-managed-fields") == 0) {
			r->strip = true;
		} else if (strcmp(val, "none") == 0) {
			r->strip = false;
		} else {
			*why = "expected strip-managed-fields or none";
			return -2;
		}
	} else {
		return -1;
	}
	return 0;
}

/* The default stream id: resource, or resource.group. */
static void
res_default_stream(struct kd_res *r)
{
	char buf[512];

	if (r->stream != NULL)
		return;
	snprintf(buf, sizeof(buf), "%s%s%s", r->resource,
		 r->group[0] ? "." : "", r->group);
	kd_set(&r->stream, buf);
}

static struct kd_res *
new_res(struct kd_cfg *c, const char *spec, char *err, size_t len)
{
	struct kd_res *r;

	if (c->nres == KD_MAX_RES) {
		snprintf(err, len, "too many resources (at most %d)",
			 KD_MAX_RES);
		return NULL;
	}
	r = &c->res[c->nres];
	memset(r, 0, sizeof(*r));
	kd_set(&r->spec, spec);
	return r;
}

int
kd_cfg_add_resource_spec(struct kd_cfg *c, const char *spec, char *err,
			 size_t len)
{
	struct kd_res *r = new_res(c, spec, err, len);
	char *copy, *save = NULL, *tok;
	const char *why = "";
	int rc;

	if (r == NULL)
		return -1;
	copy = strdup(spec);
	if (copy == NULL)
		return -1;
	tok = strtok_r(copy, ",", &save);
	if (tok == NULL || res_set_path(r, tok) != 0) {
		snprintf(err, len,
			 "--resource %s: expected resource, version/resource "
			 "or group/version/resource",
			 spec);
		goto bad;
	}
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		char *eq = strchr(tok, '=');

		if (eq == NULL) {
			snprintf(err, len,
				 "--resource %s: option %s has no =", spec,
				 tok);
			goto bad;
		}
		*eq++ = '\0';
		rc = res_set_opt(r, tok, eq, &why);
		if (rc == -1) {
			snprintf(err, len,
				 "--resource %s: unknown option %s=%s", spec,
				 tok, eq);
			goto bad;
		}
		if (rc != 0) {
			snprintf(err, len, "--resource %s: %s=\"%s\": %s", spec,
				 tok, eq, why);
			goto bad;
		}
	}
	free(copy);
	res_default_stream(r);
	c->nres++;
	return 0;
bad:
	free(copy);
	res_fini(r);
	return -1;
}

/* ---- the YAML file ---- */

struct yload {
	yaml_document_t *doc;
	const char *path;
	char *err;
	size_t len;
};

static const char *
yscalar(yaml_node_t *n)
{
	return n != NULL && n->type == YAML_SCALAR_NODE
		   ? (const char *)n->data.scalar.value
		   : NULL;
}

/* "path:line: key: \"value\": what", for a bad value. */
static int
yfail_v(struct yload *y, yaml_node_t *n, const char *what, const char *key)
{
	const char *v = yscalar(n);

	if (v == NULL)
		v = n != NULL && n->type == YAML_SEQUENCE_NODE	? "[...]"
		    : n != NULL && n->type == YAML_MAPPING_NODE ? "{...}"
								: "";
	snprintf(y->err, y->len, "%s:%zu: %s: \"%.200s\": %s", y->path,
		 n ? n->start_mark.line + 1 : 0, key, v, what);
	return -1;
}

static int
yfail(struct yload *y, yaml_node_t *n, const char *what, const char *key)
{
	snprintf(y->err, y->len, "%s:%zu: %s%s%s", y->path,
		 n ? n->start_mark.line + 1 : 0, key ? key : "",
		 key ? ": " : "", what);
	return -1;
}

/* `ns` is a synonym of `namespace` in a resource; other keys are their
 * own. */
static const char *
ycanon(const char *k)
{
	return strcmp(k, "ns") == 0 ? "namespace" : k;
}

/* The key node of a pair before p in map with the key k (or a synonym),
 * or NULL. Every pair before p had a known key (an unknown one ends the
 * load), so this compares a bounded number of keys. */
static yaml_node_t *
yearlier(struct yload *y, yaml_node_t *map, yaml_node_pair_t *p, const char *k)
{
	for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
		yaml_node_t *kn = yaml_document_get_node(y->doc, q->key);
		const char *qk = yscalar(kn);

		if (qk != NULL && strcmp(ycanon(qk), ycanon(k)) == 0)
			return kn;
	}
	return NULL;
}

/* "path:line: key: given twice, at lines A and B". */
static int
ytwice(struct yload *y, yaml_node_t *first, yaml_node_t *again, const char *key)
{
	const char *a = yscalar(first), *b = yscalar(again);
	size_t la = first->start_mark.line + 1, lb = again->start_mark.line + 1;

	if (strcmp(a, b) == 0)
		snprintf(y->err, y->len,
			 "%s:%zu: %s: given twice, at lines %zu and %zu",
			 y->path, lb, key, la, lb);
	else
		snprintf(y->err, y->len,
			 "%s:%zu: %s: given twice, as %s at line %zu and as "
			 "%s at line %zu",
			 y->path, lb, key, a, la, b, lb);
	return -1;
}

static int
yuint(struct yload *y, yaml_node_t *n, const char *key, int base,
      unsigned long *out)
{
	const char *s = yscalar(n);

	if (s == NULL || !kd_number(s, base, out))
		return yfail_v(y, n,
			       base == 8 ? "expected an octal number"
					 : "expected a whole number",
			       key);
	if (*out == ULONG_MAX)
		return yfail_v(y, n, "too large a number", key);
	return 0;
}

static int
ybool(struct yload *y, yaml_node_t *n, const char *key, bool *out)
{
	const char *s = yscalar(n);

	if (s != NULL && strcmp(s, "true") == 0)
		*out = true;
	else if (s != NULL && strcmp(s, "false") == 0)
		*out = false;
	else
		return yfail_v(y, n, "expected true or false", key);
	return 0;
}

static int
yresource(struct yload *y, struct kd_cfg *c, yaml_node_t *n, size_t idx)
{
	yaml_node_pair_t *p;
	struct kd_res *r;
	yaml_node_t *pathn = NULL;
	const char *path;
	char key[64];

	snprintf(key, sizeof(key), "resources[%zu]", idx);
	if (n->type != YAML_MAPPING_NODE)
		return yfail(y, n, "each resource is a mapping", key);
	for (p = n->data.mapping.pairs.start;
	     pathn == NULL && p < n->data.mapping.pairs.top; p++) {
		const char *k = yscalar(yaml_document_get_node(y->doc, p->key));

		if (k != NULL && strcmp(k, "resource") == 0)
			pathn = yaml_document_get_node(y->doc, p->value);
	}
	if (pathn == NULL)
		return yfail(y, n, "a resource needs `resource:`", key);
	snprintf(key, sizeof(key), "resources[%zu].resource", idx);
	path = yscalar(pathn);
	if (path == NULL)
		return yfail_v(y, pathn, "expected a string", key);
	r = new_res(c, path, y->err, y->len);
	if (r == NULL)
		return -1;
	if (res_set_path(r, path) != 0) {
		res_fini(r);
		return yfail_v(y, pathn,
			       "expected resource, version/resource or "
			       "group/version/resource",
			       key);
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(y->doc, p->value);
		const char *k = yscalar(kn), *v = yscalar(vn);
		yaml_node_t *first = k ? yearlier(y, n, p, k) : NULL;
		const char *why = "expected a string";
		int rc;

		snprintf(key, sizeof(key), "resources[%zu].%.32s", idx,
			 k ? k : "?");
		if (first != NULL) {
			res_fini(r);
			return ytwice(y, first, kn, key);
		}
		if (k != NULL && strcmp(k, "resource") == 0)
			continue;
		rc = k == NULL	 ? -1
		     : v == NULL ? -2
				 : res_set_opt(r, k, v, &why);
		if (rc != 0) {
			res_fini(r);
			return rc == -1 ? yfail(y, kn, "unknown key", key)
					: yfail_v(y, vn, why, key);
		}
	}
	res_default_stream(r);
	c->nres++;
	return 0;
}

static int
ykey(struct yload *y, struct kd_cfg *c, const char *k, yaml_node_t *v)
{
	char **strs[] = {&c->kubeconfig, &c->context, &c->listen,
			 &c->rep,	 &c->refs,    &c->tls_cert_key,
			 &c->http,	 &c->log_dest};
	static const char *const names[] = {"kubeconfig", "context", "listen",
					    "rep",	  "refs",    "tlsCert",
					    "http",	  "logDest"};
	unsigned long u;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(k, names[i]) != 0)
			continue;
		if (yscalar(v) == NULL || yscalar(v)[0] == '\0')
			return yfail_v(y, v, "expected a non-empty string", k);
		kd_set(strs[i], yscalar(v));
		return 0;
	}
	if (strcmp(k, "ipcMode") == 0) {
		if (yuint(y, v, k, 8, &u) != 0)
			return -1;
		if (u > 0777)
			return yfail_v(y, v, "expected a mode up to 0777", k);
		c->ipc_mode = (int)u;
	} else if (strcmp(k, "allowRemote") == 0) {
		return ybool(y, v, k, &c->allow_remote);
	} else if (strcmp(k, "ringCapacity") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		c->ring_capacity = u;
	} else if (strcmp(k, "batchMicros") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		if (u > KD_MAX_MS)
			return yfail_v(y, v, "expected 0 to 3600000", k);
		c->batch_us = (unsigned)u;
	} else if (strcmp(k, "heartbeatMs") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		if (u == 0 || u > KD_MAX_MS)
			return yfail_v(y, v, "expected 1 to 3600000", k);
		c->heartbeat_ms = (unsigned)u;
	} else if (strcmp(k, "backoffMaxMs") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		if (u == 0 || u > KD_MAX_MS)
			return yfail_v(y, v, "expected 1 to 3600000", k);
		c->backoff_max_ms = (unsigned)u;
	} else if (strcmp(k, "watchIdleMs") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		if (u < 1000 || u > KD_MAX_MS)
			return yfail_v(y, v, "expected 1000 to 3600000", k);
		c->watch_idle_ms = (unsigned)u;
	} else if (strcmp(k, "staleAfterFailures") == 0) {
		if (yuint(y, v, k, 10, &u) != 0)
			return -1;
		if (u == 0 || u > 1000)
			return yfail_v(y, v, "expected 1 to 1000", k);
		c->stale_after_failures = (unsigned)u;
	} else if (strcmp(k, "logFormat") == 0) {
		const char *s = yscalar(v);

		if (s == NULL || (strcmp(s, "json") && strcmp(s, "text")))
			return yfail_v(y, v, "expected text or json", k);
		c->log_json = strcmp(s, "json") == 0;
	} else if (strcmp(k, "logLevel") == 0) {
		const char *s = yscalar(v);

		if (s == NULL || kd_log_level(s) < 0)
			return yfail_v(y, v,
				       "expected err, warning, notice, info or "
				       "debug",
				       k);
		c->log_level = kd_log_level(s);
	} else if (strcmp(k, "resources") == 0) {
		if (v->type != YAML_SEQUENCE_NODE)
			return yfail_v(y, v, "expected a list", k);
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     it < v->data.sequence.items.top; it++)
			if (yresource(
				y, c, yaml_document_get_node(y->doc, *it),
				(size_t)(it - v->data.sequence.items.start)) !=
			    0)
				return -1;
	} else {
		return yfail(y, v, "unknown key", k);
	}
	return 0;
}

/* The whole file at path, at most KD_MAX_FILE bytes, into *out (to be
 * freed). A pipe works too: it is read once. */
static int
read_file(const char *path, unsigned char **out, size_t *n, char *err,
	  size_t len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t got;
	int rc = 0;

	if (f == NULL) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(KD_MAX_FILE + 1)) == NULL) {
		fclose(f);
		snprintf(err, len, "%s: out of memory", path);
		return -1;
	}
	got = fread(buf, 1, KD_MAX_FILE + 1, f);
	if (ferror(f)) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		rc = -1;
	} else if (got > KD_MAX_FILE) {
		snprintf(err, len, "%s: larger than %u bytes", path,
			 KD_MAX_FILE);
		rc = -1;
	}
	fclose(f);
	if (rc != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*n = got;
	return 0;
}

/* "path:line: YAML syntax error: what libyaml says", as the kubeconfig's
 * "YAML syntax error at line L column C: ...". */
static void
yproblem(const char *path, const yaml_parser_t *p, const unsigned char *data,
	 size_t n, char *err, size_t len)
{
	const char *kind;
	char detail[256];
	size_t line, column;

	if (p->error == YAML_MEMORY_ERROR) {
		snprintf(err, len, "%s: out of memory", path);
		return;
	}
	kf_yaml_problem(p, data, n, &kind, detail, sizeof(detail), &line,
			&column);
	snprintf(err, len, "%s:%zu: %s: %s", path, line, kind, detail);
}

/* The event pass (see the top of the file): nesting within KF_YAML_MAX_DEPTH,
 * one document, and YAML that parses. */
static int
ycheck_shape(const char *path, const unsigned char *data, size_t n, char *err,
	     size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct kf_yaml_bound b = {0};
	char msg[64];
	int docs = 0, rc = 1;

	if (!yaml_parser_initialize(&p)) {
		snprintf(err, len, "%s: out of memory", path);
		return -1;
	}
	yaml_parser_set_input_string(&p, data, n);
	/* One event per turn, until the stream ends or a check fails; the
	 * depth check keeps libyaml's work per event bounded. */
	while (rc > 0) {
		yaml_event_type_t type;
		size_t line;
		int bad;

		if (!yaml_parser_parse(&p, &ev)) {
			yproblem(path, &p, data, n, err, len);
			rc = -1;
			break;
		}
		type = ev.type;
		line = ev.start_mark.line + 1;
		bad = kf_yaml_bound_step(&b, &ev, msg, sizeof(msg));
		yaml_event_delete(&ev);
		if (bad) {
			snprintf(err, len, "%s:%zu: %s", path, line, msg);
			rc = -1;
		} else if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
			snprintf(err, len,
				 "%s:%zu: a second YAML document; the file "
				 "holds one",
				 path, line);
			rc = -1;
		} else if (type == YAML_STREAM_END_EVENT) {
			rc = 0;
		}
	}
	yaml_parser_delete(&p);
	return rc;
}

int
kd_cfg_load_file(struct kd_cfg *c, const char *path, char *err, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct yload y = {&doc, path, err, len};
	unsigned char *data;
	size_t n;
	int rc = 0;

	if (read_file(path, &data, &n, err, len) != 0)
		return -1;
	if (ycheck_shape(path, data, n, err, len) != 0) {
		free(data);
		return -1;
	}
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, len, "%s: out of memory", path);
		free(data);
		return -1;
	}
	yaml_parser_set_input_string(&parser, data, n);
	if (!yaml_parser_load(&parser, &doc)) {
		yproblem(path, &parser, data, n, err, len);
		yaml_parser_delete(&parser);
		free(data);
		return -1;
	}
	root = yaml_document_get_root_node(&doc);
	if (kf_yaml_is_null(root)) { /* a file of comments, "---" or "~" */
		snprintf(err, len,
			 "%s: the file is empty (it must be a mapping of "
			 "settings, such as resources:)",
			 path);
		rc = -1;
	} else if (root->type != YAML_MAPPING_NODE) {
		rc = yfail(&y, root,
			   root->type == YAML_SEQUENCE_NODE
			       ? "the file is a list, not a mapping of settings"
			       : "the file is a string, not a mapping of "
				 "settings",
			   NULL);
	} else {
		for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
		     rc == 0 && p < root->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
			const char *k = yscalar(kn);
			yaml_node_t *first =
			    k ? yearlier(&y, root, p, k) : NULL;

			if (k == NULL)
				rc = yfail(&y, kn, "keys are strings", NULL);
			else if (first != NULL)
				rc = ytwice(&y, first, kn, k);
			else
				rc = ykey(
				    &y, c, k,
				    yaml_document_get_node(&doc, p->value));
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(data);
	return rc;
}

/* Is the host of HOST:PORT a loopback name or address? */
static bool
host_is_loopback(const char *hp)
{
	const char *loop[] = {"127.", "localhost:", "[::1]:"};

	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		if (strncmp(hp, loop[i], strlen(loop[i])) == 0)
			return true;
	return false;
}

/* HOST:PORT (the port may be 0: any free port). NULL when fine. */
static const char *
hostport_problem(const char *hp, bool allow_remote)
{
	const char *colon = strrchr(hp, ':');
	size_t digits;
	long port = 0;

	if (colon == NULL || colon[1] == '\0')
		return "expected HOST:PORT after the scheme";
	/* An IPv6 host has colons of its own: nng takes it in brackets. */
	if (hp[0] == '[' ? memchr(hp, ']', (size_t)(colon - hp)) == NULL ||
			       colon[-1] != ']'
			 : memchr(hp, ':', (size_t)(colon - hp)) != NULL)
		return "an IPv6 address needs brackets, as tcp://[::1]:PORT";
	digits = strcspn(colon + 1, "/");
	if (digits == 0 || strspn(colon + 1, "0123456789") != digits)
		return "the port is not a number";
	if (digits > 1 && colon[1] == '0')
		return "the port has leading zeros";
	/* More than 5 digits is out of range; fewer cannot overflow. */
	for (size_t i = 0; i < digits && i < 6; i++)
		port = port * 10 + (colon[1 + i] - '0');
	if (digits > 5 || port > 65535)
		return "the port is outside 0..65535";
	if (!allow_remote && !host_is_loopback(hp))
		return "not a loopback address; set allowRemote "
		       "(--allow-remote) to listen off loopback";
	return NULL;
}

/* A listen address: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT.
 * NULL when fine, else why not. */
static const char *
addr_problem(const char *a, bool tls_cert, bool allow_remote)
{
	const char *hp;

	if (strncmp(a, "ipc://", 6) == 0)
		return a[6] == '\0' ? "the ipc path is empty" : NULL;
	if (strncmp(a, "tcp://", 6) == 0)
		hp = a + 6;
	else if (strncmp(a, "tls+tcp://", 10) == 0)
		hp = a + 10;
	else
		return "expected ipc://, tcp:// or tls+tcp://";
	if (hp != a + 6 && !tls_cert)
		return "tls+tcp:// needs tlsCert (--tls-cert)";
	return hostport_problem(hp, allow_remote);
}

static int
check_addr(const struct kd_cfg *c, const char *key, const char *flag,
	   const char *a, char *err, size_t len)
{
	const char *why = a != NULL ? addr_problem(a, c->tls_cert_key != NULL,
						   c->allow_remote)
				    : NULL;

	if (why == NULL)
		return 0;
	snprintf(err, len, "%s (%s) \"%s\": %s", key, flag, a, why);
	return -1;
}

int
kd_cfg_finish(struct kd_cfg *c, char *err, size_t len)
{
	const char *why;

	if (c->nres == 0) {
		snprintf(err, len,
			 "no resource configured (--resource or "
			 "`resources:` in --config)");
		return -1;
	}
	for (size_t i = 0; i < c->nres; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->res[i].stream, c->res[j].stream) == 0) {
				snprintf(err, len,
					 "resources %s and %s: two resources "
					 "use the stream id \"%s\"; give one "
					 "a name",
					 c->res[j].spec, c->res[i].spec,
					 c->res[i].stream);
				return -1;
			}
	if (c->ring_capacity < 2 || c->ring_capacity > KD_MAX_RING ||
	    (c->ring_capacity & (c->ring_capacity - 1)) != 0) {
		snprintf(err, len,
			 "ringCapacity (--ring-capacity) %zu: expected a "
			 "power of two from 2 to %lu",
			 c->ring_capacity, KD_MAX_RING);
		return -1;
	}
	if (c->heartbeat_ms == 0) {
		snprintf(err, len,
			 "heartbeatMs (--heartbeat-ms) 0: expected 1 to "
			 "%lu",
			 KD_MAX_MS);
		return -1;
	}
	if (check_addr(c, "listen", "--listen", c->listen, err, len) != 0 ||
	    check_addr(c, "refs", "--refs", c->refs, err, len) != 0 ||
	    check_addr(c, "rep", "--rep", c->rep, err, len) != 0)
		return -1;
	if (c->tls_cert_key != NULL && access(c->tls_cert_key, R_OK) != 0) {
		snprintf(err, len, "tlsCert (--tls-cert) \"%s\": %s",
			 c->tls_cert_key, strerror(errno));
		return -1;
	}
	if (c->http != NULL && strcmp(c->http, "none") != 0 &&
	    strncmp(c->http, "http://", 7) != 0) {
		snprintf(err, len,
			 "http (--http) \"%s\": expected http://HOST:PORT or "
			 "none",
			 c->http);
		return -1;
	}
	if (c->http != NULL && strcmp(c->http, "none") != 0 &&
	    (why = hostport_problem(c->http + 7, c->allow_remote)) != NULL) {
		snprintf(err, len, "http (--http) \"%s\": %s", c->http, why);
		return -1;
	}
	if (c->log_dest != NULL && c->log_dest[0] == '\0') {
		snprintf(err, len,
			 "logDest (--log-dest) \"\": expected stderr, "
			 "syslog or a file path");
		return -1;
	}
	if (c->rep == NULL) {
		c->rep = kf_remote_rep_address(c->listen);
		if (c->rep == NULL) {
			snprintf(err, len,
				 "rep (--rep): cannot be derived from listen "
				 "\"%s\"; set it",
				 c->listen);
			return -1;
		}
	}
	return 0;
}

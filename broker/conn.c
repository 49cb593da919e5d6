/*
 * conn: a kf_conn and the per-request work of applying it to a curl handle.
 *
 * Theory. Everything in a kf_conn is fixed at creation except two cached
 * credentials, both under one mutex:
 *
 * - A token file (kubeconfig tokenFile, or the in-cluster service-account
 *   token, which the kubelet rotates). Each apply stats the file and
 *   re-reads it when its inode, size or mtime changed, or when the copy is
 *   a minute old (a rewrite within the mtime granularity). A file that
 *   cannot be read any more keeps the last good token, as a rotation in
 *   progress is the usual cause; the failure is logged without the token.
 *
 * - An exec credential plugin's output. The plugin runs under the mutex,
 *   so concurrent applies wait for one run instead of starting several. It
 *   is spawned with posix_spawn (fork would copy nng's threads' state into
 *   the child), stdin /dev/null, stdout and stderr on pipes read with
 *   poll() under a deadline, in a process group of its own so a kill at
 *   the deadline reaches its children too; stdout is bounded, stderr
 *   keeps a short tail for the error text. The credential is kept until five
 * seconds before its expirationTimestamp, or until kfi_conn_invalidate() (after
 * a 401).
 *
 * Secrets (tokens, keys, passwords) never enter an error text or a log
 * line, and are zeroed before their memory is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conn_int.h"
#include "kubeconfig.h"
#include "log.h"

#define CONN_EXEC_TIMEOUT_MS 30000
#define CONN_EXEC_MAX_OUT    (1u << 20)	 /* bytes of plugin stdout */
#define CONN_EXEC_ERR_TAIL   400	 /* bytes of stderr kept */
#define CONN_EXPIRY_SKEW     5		 /* seconds before expiry to renew */
#define CONN_TOKEN_MAX	     (64u << 10) /* bytes of a token file */
#define CONN_TOKEN_RECHECK   60		 /* seconds between forced reads */
#define CONN_SA_DIR	     "/var/run/secrets/kubernetes.io/serviceaccount"

extern char **environ;

struct kf_conn {
	struct kfi_kubeconfig cfg; /* immutable after creation */
	pthread_mutex_t mu;

	/* Token file cache, under mu. */
	char *tf_token;
	dev_t tf_dev;
	ino_t tf_ino;
	off_t tf_size;
	struct timespec tf_mtime;
	time_t tf_read_at; /* CLOCK_MONOTONIC seconds */
	bool tf_force;

	/* Exec credential cache, under mu. */
	int exec_timeout_ms;
	unsigned exec_runs;
	bool ex_valid;
	char *ex_token;
	struct kfi_blob ex_cert;
	struct kfi_blob ex_key;
	long long ex_expiry; /* epoch seconds; 0 when none was given */
};

static void
conn_secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
conn_blob_free(struct kfi_blob *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
}

static time_t
conn_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static long long
conn_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A bearer token must be one visible-ASCII word: anything else could
 * split the Authorization header. */
static bool
conn_token_ok(const char *t)
{
	if (t == NULL || t[0] == '\0')
		return false;
	for (; *t != '\0'; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return false;
	return true;
}

static void
conn_exec_forget_locked(kf_conn *c)
{
	conn_secret_free(c->ex_token);
	c->ex_token = NULL;
	conn_blob_free(&c->ex_cert);
	conn_blob_free(&c->ex_key);
	c->ex_expiry = 0;
	c->ex_valid = false;
}

/* ---- token file ---- */

/* Read a token file: at most CONN_TOKEN_MAX bytes, surrounding white
 * space removed, one visible word. */
static kf_err
conn_read_token(const char *path, char **out, struct stat *st, char *errbuf,
		size_t errlen)
{
	char *buf;
	ssize_t n;
	size_t len = 0, start = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(errbuf, errlen, "token file %s: cannot read: %s", path,
			 strerror(errno));
		return KF_EAUTH;
	}
	if (fstat(fd, st) != 0 || (buf = malloc(CONN_TOKEN_MAX + 1)) == NULL) {
		close(fd);
		snprintf(errbuf, errlen, "token file %s: out of memory", path);
		return KF_ENOMEM;
	}
	while (len <= CONN_TOKEN_MAX &&
	       (n = read(fd, buf + len, CONN_TOKEN_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(errbuf, errlen, "token file %s: %s", path,
				 strerror(errno));
			close(fd);
			buf[len] = '\0';
			conn_secret_free(buf);
			return KF_EAUTH;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len > CONN_TOKEN_MAX) {
		snprintf(errbuf, errlen, "token file %s: larger than %u bytes",
			 path, CONN_TOKEN_MAX);
		conn_secret_free(buf);
		return KF_EAUTH;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	while (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\n' ||
	       buf[start] == '\r')
		start++;
	memmove(buf, buf + start, len - start + 1);
	if (!conn_token_ok(buf)) {
		snprintf(errbuf, errlen, "token file %s: %s", path,
			 buf[0] == '\0' ? "empty"
					: "not a single word of visible ASCII");
		conn_secret_free(buf);
		return KF_EAUTH;
	}
	*out = buf;
	return KF_OK;
}

static bool
conn_tf_changed_locked(kf_conn *c, const struct stat *st)
{
	return st->st_dev != c->tf_dev || st->st_ino != c->tf_ino ||
	       st->st_size != c->tf_size ||
	       st->st_mtim.tv_sec != c->tf_mtime.tv_sec ||
	       st->st_mtim.tv_nsec != c->tf_mtime.tv_nsec;
}

/* Make c->tf_token current. */
static kf_err
conn_token_file_locked(kf_conn *c, char *errbuf, size_t errlen)
{
	const char *path = c->cfg.token_file;
	struct stat st;
	char *tok = NULL;
	kf_err e;

	if (c->tf_token != NULL && !c->tf_force &&
	    conn_mono() - c->tf_read_at < CONN_TOKEN_RECHECK &&
	    stat(path, &st) == 0 && !conn_tf_changed_locked(c, &st))
		return KF_OK;
	e = conn_read_token(path, &tok, &st, errbuf, errlen);
	if (e != KF_OK && c->tf_token != NULL) {
		kfi_log(KF_LOG_WARNING, "KF-CONN-TOKENFILE",
			"%s; keeping the token read before", errbuf);
		c->tf_read_at = conn_mono();
		c->tf_force = false;
		return KF_OK;
	}
	if (e != KF_OK)
		return e;
	conn_secret_free(c->tf_token);
	c->tf_token = tok;
	c->tf_dev = st.st_dev;
	c->tf_ino = st.st_ino;
	c->tf_size = st.st_size;
	c->tf_mtime = st.st_mtim;
	c->tf_read_at = conn_mono();
	c->tf_force = false;
	return KF_OK;
}

/* ---- exec plugin ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
conn_b64_encode(const uint8_t *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = b64_alphabet[(v >> 18) & 63];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static char *
conn_read_small(const char *path, size_t max, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;

	if (fp == NULL)
		return NULL;
	if ((buf = malloc(max + 1)) != NULL)
		*len = fread(buf, 1, max, fp);
	fclose(fp);
	return buf;
}

/* The KUBERNETES_EXEC_INFO value: the ExecCredential request object,
 * with the cluster when the plugin asked for it. */
static char *
conn_exec_info(const kf_conn *c)
{
	const struct kfi_kubeconfig *k = &c->cfg;
	json_object *root = json_object_new_object();
	json_object *spec = json_object_new_object();
	char *out = NULL;

	json_object_object_add(root, "kind",
			       json_object_new_string("ExecCredential"));
	json_object_object_add(root, "apiVersion",
			       json_object_new_string(k->exec->api_version));
	json_object_object_add(spec, "interactive",
			       json_object_new_boolean(false));
	if (k->exec->provide_cluster_info) {
		json_object *cl = json_object_new_object();
		char *ca = NULL, *file = NULL;
		size_t len = 0;

		json_object_object_add(cl, "server",
				       json_object_new_string(k->server));
		if (k->tls_server_name != NULL)
			json_object_object_add(
			    cl, "tls-server-name",
			    json_object_new_string(k->tls_server_name));
		if (k->insecure)
			json_object_object_add(cl, "insecure-skip-tls-verify",
					       json_object_new_boolean(true));
		if (k->ca_data.data != NULL)
			ca = conn_b64_encode(k->ca_data.data, k->ca_data.len);
		else if (k->ca_file != NULL &&
			 (file = conn_read_small(k->ca_file, 1u << 20, &len)) !=
			     NULL)
			ca = conn_b64_encode((uint8_t *)file, len);
		if (ca != NULL)
			json_object_object_add(cl, "certificate-authority-data",
					       json_object_new_string(ca));
		free(ca);
		free(file);
		json_object_object_add(spec, "cluster", cl);
	}
	json_object_object_add(root, "spec", spec);
	out = strdup(
	    json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}

/* The child's environment: ours, minus what the kubeconfig overrides,
 * plus the kubeconfig's variables and KUBERNETES_EXEC_INFO. */
static char **
conn_exec_envp(const struct kfi_exec_cfg *ex, char *info_var)
{
	size_t n = 0, m = 0, k = 0;
	char **envp;

	while (environ[n] != NULL)
		n++;
	while (ex->env[m] != NULL)
		m++;
	if ((envp = calloc(n + m + 2, sizeof(char *))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl =
		    eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool drop =
		    nl == 20 &&
		    strncmp(environ[i], "KUBERNETES_EXEC_INFO", 20) == 0;

		for (size_t j = 0; j < m && !drop; j++)
			drop = strncmp(ex->env[j], environ[i], nl) == 0 &&
			       ex->env[j][nl] == '=';
		if (!drop)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		envp[k++] = ex->env[j];
	envp[k++] = info_var;
	envp[k] = NULL;
	return envp;
}

struct conn_run {
	char *out; /* stdout, NUL-terminated */
	size_t out_len;
	char err[2 * CONN_EXEC_ERR_TAIL + 1]; /* stderr tail */
	size_t err_len;
	int status;	/* waitpid status */
	bool timed_out; /* killed at the deadline */
	bool too_big;	/* killed for stdout over the bound */
};

static void
conn_err_append(struct conn_run *r, const char *buf, size_t n)
{
	if (n > CONN_EXEC_ERR_TAIL) {
		buf += n - CONN_EXEC_ERR_TAIL;
		n = CONN_EXEC_ERR_TAIL;
	}
	if (r->err_len + n > 2 * CONN_EXEC_ERR_TAIL) {
		size_t keep = CONN_EXEC_ERR_TAIL - n;

		memmove(r->err, r->err + r->err_len - keep, keep);
		r->err_len = keep;
	}
	memcpy(r->err + r->err_len, buf, n);
	r->err_len += n;
}

/* Read the child's two pipes until both close or the deadline. Bounded
 * by the deadline and by CONN_EXEC_MAX_OUT bytes of stdout. */
static kf_err
conn_exec_drain(int outfd, int errfd, long long deadline, struct conn_run *r)
{
	struct pollfd pf[2] = {{outfd, POLLIN, 0}, {errfd, POLLIN, 0}};
	size_t cap = 4096;
	char buf[4096];

	if ((r->out = malloc(cap + 1)) == NULL)
		return KF_ENOMEM;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		long long left = deadline - conn_mono_ms();
		int rc;

		if (left <= 0) {
			r->timed_out = true;
			break;
		}
		rc = poll(pf, 2, (int)(left > 1000 ? 1000 : left));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return KF_EIO;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pf[i].fd < 0 || pf[i].revents == 0)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				pf[i].fd = -1;
				continue;
			}
			if (i == 1) {
				conn_err_append(r, buf, (size_t)n);
				continue;
			}
			if (r->out_len + (size_t)n > CONN_EXEC_MAX_OUT) {
				r->too_big = true;
				return KF_OK;
			}
			while (r->out_len + (size_t)n > cap) {
				char *nb = realloc(r->out, cap * 2 + 1);

				if (nb == NULL)
					return KF_ENOMEM;
				r->out = nb;
				cap *= 2;
			}
			memcpy(r->out + r->out_len, buf, (size_t)n);
			r->out_len += (size_t)n;
		}
	}
	r->out[r->out_len] = '\0';
	return KF_OK;
}

/* Reap the child, killing it when the deadline has passed or stop is
 * set. Bounded: after the deadline one SIGKILL and a blocking wait. */
static void
conn_exec_reap(pid_t pid, long long deadline, bool stop, struct conn_run *r)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	pid_t w;

	while (!stop && conn_mono_ms() < deadline) {
		w = waitpid(pid, &r->status, WNOHANG);
		if (w == pid)
			return;
		if (w < 0 && errno != EINTR) {
			r->status = 0; /* already reaped elsewhere */
			return;
		}
		nanosleep(&ts, NULL);
	}
	if (!stop)
		r->timed_out = true;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while ((w = waitpid(pid, &r->status, 0)) < 0 && errno == EINTR)
		;
}

/* Spawn the plugin and collect its output. */
static kf_err
conn_exec_spawn(kf_conn *c, struct conn_run *r, char *errbuf, size_t errlen)
{
	const struct kfi_exec_cfg *ex = c->cfg.exec;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
	char *info = conn_exec_info(c), *info_var = NULL, **envp = NULL;
	long long deadline;
	pid_t pid;
	kf_err e = KF_OK;

	if (info == NULL ||
	    asprintf(&info_var, "KUBERNETES_EXEC_INFO=%s", info) < 0 ||
	    (envp = conn_exec_envp(ex, info_var)) == NULL) {
		free(info);
		free(info_var);
		snprintf(errbuf, errlen, "exec plugin %s: out of memory",
			 ex->command);
		return KF_ENOMEM;
	}
	free(info);
	if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		snprintf(errbuf, errlen, "exec plugin %s: pipe: %s",
			 ex->command, strerror(errno));
		e = KF_EIO;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGCHLD);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	/* Its own process group, so a kill at the deadline also reaches
	 * what the plugin started. */
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF |
					    POSIX_SPAWN_SETPGROUP);
	if (strchr(ex->command, '/') != NULL)
		rc = posix_spawn(&pid, ex->command, &fa, &attr, ex->argv, envp);
	else
		rc =
		    posix_spawnp(&pid, ex->command, &fa, &attr, ex->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (rc != 0) {
		snprintf(errbuf, errlen, "exec plugin %s: cannot run: %s%s%s",
			 ex->command, strerror(rc),
			 ex->install_hint != NULL ? "; " : "",
			 ex->install_hint != NULL ? ex->install_hint : "");
		e = KF_EAUTH;
		goto out;
	}
	c->exec_runs++;
	deadline = conn_mono_ms() + c->exec_timeout_ms;
	e = conn_exec_drain(outp[0], errp[0], deadline, r);
	conn_exec_reap(pid, deadline, e != KF_OK || r->too_big, r);
	if (e != KF_OK)
		snprintf(errbuf, errlen,
			 "exec plugin %s: reading its output: "
			 "%s",
			 ex->command, kf_strerror(e));
out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	free(envp);
	free(info_var);
	return e;
}

/* The stderr tail as one printable line. */
static const char *
conn_err_tail(struct conn_run *r)
{
	size_t n = r->err_len;

	while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
		n--;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)r->err[i] < 0x20 || r->err[i] == 0x7f)
			r->err[i] = ' ';
	r->err[n] = '\0';
	return n > 0 ? r->err : "(no output on stderr)";
}

static const char *
conn_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Parse an ExecCredential into the cache. */
static kf_err
conn_exec_parse_locked(kf_conn *c, const char *out, size_t len, char *errbuf,
		       size_t errlen)
{
	const char *cmd = c->cfg.exec->command;
	json_tokener *tok = json_tokener_new();
	json_object *root = NULL, *status;
	const char *s, *tokstr, *cert, *key, *exp;
	long long expiry = 0;
	const char *why = NULL;
	size_t used;

	if (tok == NULL)
		return KF_ENOMEM;
	root = json_tokener_parse_ex(tok, out, (int)len);
	used = json_tokener_get_parse_end(tok);
	if (root == NULL)
		why =
		    json_tokener_get_error(tok) == json_tokener_continue
			? "the JSON ends early"
			: json_tokener_error_desc(json_tokener_get_error(tok));
	json_tokener_free(tok);
	while (why == NULL && used < len &&
	       strchr(" \t\r\n", out[used]) != NULL && out[used] != '\0')
		used++;
	if (why == NULL && used < len)
		why = "text after the JSON object";
	if (why == NULL && !json_object_is_type(root, json_type_object))
		why = "not a JSON object";
	if (why == NULL && ((s = conn_json_str(root, "kind")) == NULL ||
			    strcmp(s, "ExecCredential") != 0))
		why = "kind is not ExecCredential";
	if (why == NULL && ((s = conn_json_str(root, "apiVersion")) == NULL ||
			    strcmp(s, c->cfg.exec->api_version) != 0))
		why = "apiVersion differs from the kubeconfig's";
	if (why == NULL &&
	    (!json_object_object_get_ex(root, "status", &status) ||
	     !json_object_is_type(status, json_type_object)))
		why = "no status object";
	if (why != NULL) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: output is not an ExecCredential: %s",
			 cmd, why);
		json_object_put(root);
		return KF_EPARSE;
	}
	tokstr = conn_json_str(status, "token");
	cert = conn_json_str(status, "clientCertificateData");
	key = conn_json_str(status, "clientKeyData");
	exp = conn_json_str(status, "expirationTimestamp");
	if (tokstr != NULL && tokstr[0] == '\0')
		tokstr = NULL;
	if ((cert == NULL) != (key == NULL))
		why = "clientCertificateData and clientKeyData must come "
		      "together";
	else if (tokstr == NULL && cert == NULL)
		why = "neither a token nor a client certificate";
	else if (tokstr != NULL && !conn_token_ok(tokstr))
		why = "the token is not a single word of visible ASCII";
	else if (exp != NULL && kfi_rfc3339_parse(exp, &expiry) != KF_OK)
		why = "expirationTimestamp is not an RFC 3339 time";
	if (why != NULL) {
		snprintf(errbuf, errlen, "exec plugin %s: status: %s", cmd,
			 why);
		json_object_put(root);
		return KF_EPARSE;
	}
	conn_exec_forget_locked(c);
	c->ex_token = tokstr != NULL ? strdup(tokstr) : NULL;
	if (cert != NULL) {
		c->ex_cert.data = (uint8_t *)strdup(cert);
		c->ex_cert.len = strlen(cert);
		c->ex_key.data = (uint8_t *)strdup(key);
		c->ex_key.len = strlen(key);
	}
	json_object_put(root);
	if ((tokstr != NULL && c->ex_token == NULL) ||
	    (cert != NULL &&
	     (c->ex_cert.data == NULL || c->ex_key.data == NULL))) {
		conn_exec_forget_locked(c);
		return KF_ENOMEM;
	}
	c->ex_expiry = expiry;
	c->ex_valid = true;
	return KF_OK;
}

/* Make the exec credential current, running the plugin when needed. */
static kf_err
conn_exec_locked(kf_conn *c, char *errbuf, size_t errlen)
{
	const char *cmd = c->cfg.exec->command;
	struct conn_run r;
	kf_err e;

	if (c->ex_valid &&
	    (c->ex_expiry == 0 ||
	     (long long)time(NULL) + CONN_EXPIRY_SKEW < c->ex_expiry))
		return KF_OK;
	conn_exec_forget_locked(c);
	if (c->cfg.exec->interactive == KFI_EXEC_ALWAYS) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: interactiveMode Always needs a "
			 "terminal, which kubefan never has",
			 cmd);
		return KF_EAUTH;
	}
	memset(&r, 0, sizeof(r));
	e = conn_exec_spawn(c, &r, errbuf, errlen);
	if (e == KF_OK && r.timed_out) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: no answer within %d ms; killed", cmd,
			 c->exec_timeout_ms);
		e = KF_ETIMEDOUT;
	} else if (e == KF_OK && r.too_big) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: more than %u bytes on stdout; "
			 "killed",
			 cmd, CONN_EXEC_MAX_OUT);
		e = KF_EAUTH;
	} else if (e == KF_OK && WIFSIGNALED(r.status)) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: killed by signal %d: %s", cmd,
			 WTERMSIG(r.status), conn_err_tail(&r));
		e = KF_EAUTH;
	} else if (e == KF_OK && WEXITSTATUS(r.status) != 0) {
		snprintf(errbuf, errlen,
			 "exec plugin %s: exited with status %d: %s", cmd,
			 WEXITSTATUS(r.status), conn_err_tail(&r));
		e = KF_EAUTH;
	}
	if (e == KF_OK)
		e = conn_exec_parse_locked(c, r.out, r.out_len, errbuf, errlen);
	if (r.out != NULL) {
		explicit_bzero(r.out, r.out_len);
		free(r.out);
	}
	if (e != KF_OK)
		kfi_log(KF_LOG_WARNING, "KF-CONN-EXEC", "%s", errbuf);
	return e;
}

/* ---- applying ---- */

static kf_err
conn_setopt_fail(CURLcode cc, const char *what, char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "setting %s on the curl handle: %s", what,
		 curl_easy_strerror(cc));
	return KF_ECURL;
}

#define CONN_SET(h, opt, val, what)                                            \
	do {                                                                   \
		CURLcode cc_ = curl_easy_setopt((h), (opt), (val));            \
		if (cc_ != CURLE_OK)                                           \
			return conn_setopt_fail(cc_, (what), errbuf, errlen);  \
	} while (0)

static kf_err
conn_apply_tls(const kf_conn *c, CURL *h, char *errbuf, size_t errlen)
{
	const struct kfi_kubeconfig *k = &c->cfg;
	struct curl_blob blob;

	CONN_SET(h, CURLOPT_SSL_VERIFYPEER, k->insecure ? 0L : 1L,
		 "SSL_VERIFYPEER");
	CONN_SET(h, CURLOPT_SSL_VERIFYHOST, k->insecure ? 0L : 2L,
		 "SSL_VERIFYHOST");
	if (k->ca_file != NULL || k->ca_data.data != NULL) {
		/* Trust only the cluster's CA, not the system store. */
		CONN_SET(h, CURLOPT_CAPATH, (char *)NULL, "CAPATH");
		CONN_SET(h, CURLOPT_CAINFO, k->ca_file, "CAINFO");
	}
	if (k->ca_data.data != NULL) {
		blob = (struct curl_blob){k->ca_data.data, k->ca_data.len,
					  CURL_BLOB_COPY};
		CONN_SET(h, CURLOPT_CAINFO_BLOB, &blob, "CAINFO_BLOB");
	}
	/* The kubeconfig checks gave a certificate and a key, or neither;
	 * each may be a file or inline data. */
	if (k->cert_file != NULL)
		CONN_SET(h, CURLOPT_SSLCERT, k->cert_file, "SSLCERT");
	if (k->cert_data.data != NULL) {
		blob = (struct curl_blob){k->cert_data.data, k->cert_data.len,
					  CURL_BLOB_COPY};
		CONN_SET(h, CURLOPT_SSLCERT_BLOB, &blob, "SSLCERT_BLOB");
	}
	if (k->key_file != NULL)
		CONN_SET(h, CURLOPT_SSLKEY, k->key_file, "SSLKEY");
	if (k->key_data.data != NULL) {
		blob = (struct curl_blob){k->key_data.data, k->key_data.len,
					  CURL_BLOB_COPY};
		CONN_SET(h, CURLOPT_SSLKEY_BLOB, &blob, "SSLKEY_BLOB");
	}
	if (k->cert_file != NULL || k->cert_data.data != NULL) {
		CONN_SET(h, CURLOPT_SSLCERTTYPE, "PEM", "SSLCERTTYPE");
		CONN_SET(h, CURLOPT_SSLKEYTYPE, "PEM", "SSLKEYTYPE");
	}
	if (k->proxy_url != NULL)
		CONN_SET(h, CURLOPT_PROXY, k->proxy_url, "PROXY");
	if (k->username != NULL) {
		CONN_SET(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC, "HTTPAUTH");
		CONN_SET(h, CURLOPT_USERNAME, k->username, "USERNAME");
		CONN_SET(h, CURLOPT_PASSWORD, k->password, "PASSWORD");
	}
	return KF_OK;
}

/* The exec plugin's client certificate, set while the cache is locked
 * (curl copies the blobs). */
static kf_err
conn_apply_exec_cert_locked(const kf_conn *c, CURL *h, char *errbuf,
			    size_t errlen)
{
	struct curl_blob blob;

	if (c->ex_cert.data == NULL)
		return KF_OK;
	blob =
	    (struct curl_blob){c->ex_cert.data, c->ex_cert.len, CURL_BLOB_COPY};
	CONN_SET(h, CURLOPT_SSLCERT_BLOB, &blob, "SSLCERT_BLOB");
	blob =
	    (struct curl_blob){c->ex_key.data, c->ex_key.len, CURL_BLOB_COPY};
	CONN_SET(h, CURLOPT_SSLKEY_BLOB, &blob, "SSLKEY_BLOB");
	CONN_SET(h, CURLOPT_SSLCERTTYPE, "PEM", "SSLCERTTYPE");
	CONN_SET(h, CURLOPT_SSLKEYTYPE, "PEM", "SSLKEYTYPE");
	return KF_OK;
}

/* Append "Authorization: Bearer TOKEN" to *headers. */
static kf_err
conn_bearer(const char *token, struct curl_slist **headers, char *errbuf,
	    size_t errlen)
{
	struct curl_slist *l;
	char *line;

	if (asprintf(&line, "Authorization: Bearer %s", token) < 0) {
		snprintf(errbuf, errlen, "out of memory");
		return KF_ENOMEM;
	}
	l = curl_slist_append(*headers, line);
	conn_secret_free(line);
	if (l == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return KF_ENOMEM;
	}
	*headers = l;
	return KF_OK;
}

kf_err
kfi_conn_apply(kf_conn *c, CURL *h, struct curl_slist **headers, char *errbuf,
	       size_t errlen)
{
	char *token = NULL, dummy[1];
	kf_err e;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	errbuf[0] = '\0';
	if (c == NULL || h == NULL || headers == NULL) {
		snprintf(errbuf, errlen, "kfi_conn_apply: NULL argument");
		return KF_EINVAL;
	}
	if ((e = conn_apply_tls(c, h, errbuf, errlen)) != KF_OK)
		return e;
	if (c->cfg.exec == NULL && c->cfg.token_file == NULL)
		return c->cfg.token != NULL
			   ? conn_bearer(c->cfg.token, headers, errbuf, errlen)
			   : KF_OK;

	pthread_mutex_lock(&c->mu);
	if (c->cfg.exec != NULL) {
		e = conn_exec_locked(c, errbuf, errlen);
		if (e == KF_OK)
			e = conn_apply_exec_cert_locked(c, h, errbuf, errlen);
		if (e == KF_OK && c->ex_token != NULL &&
		    (token = strdup(c->ex_token)) == NULL)
			e = KF_ENOMEM;
	} else {
		e = conn_token_file_locked(c, errbuf, errlen);
		if (e == KF_OK && (token = strdup(c->tf_token)) == NULL)
			e = KF_ENOMEM;
	}
	pthread_mutex_unlock(&c->mu);
	if (e == KF_OK && token != NULL)
		e = conn_bearer(token, headers, errbuf, errlen);
	conn_secret_free(token);
	return e;
}

void
kfi_conn_invalidate(kf_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	conn_exec_forget_locked(c);
	c->tf_force = true;
	pthread_mutex_unlock(&c->mu);
}

void
kfi_conn_set_exec_timeout(kf_conn *c, int timeout_ms)
{
	pthread_mutex_lock(&c->mu);
	c->exec_timeout_ms = timeout_ms > 0 ? timeout_ms : CONN_EXEC_TIMEOUT_MS;
	pthread_mutex_unlock(&c->mu);
}

unsigned
kfi_conn_exec_runs(kf_conn *c)
{
	unsigned n;

	pthread_mutex_lock(&c->mu);
	n = c->exec_runs;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* ---- constructors ---- */

/* Take ownership of cfg (zeroed on return) and check what must hold for
 * any source of settings. */
static kf_err
conn_new(struct kfi_kubeconfig *cfg, char *errbuf, size_t errlen, kf_conn **out)
{
	kf_conn *c = calloc(1, sizeof(*c));
	kf_err e;

	if (c == NULL) {
		kfi_kubeconfig_fini(cfg);
		snprintf(errbuf, errlen, "out of memory");
		return KF_ENOMEM;
	}
	c->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	c->exec_timeout_ms = CONN_EXEC_TIMEOUT_MS;
	pthread_mutex_init(&c->mu, NULL);
	if (c->cfg.token != NULL && !conn_token_ok(c->cfg.token)) {
		snprintf(errbuf, errlen,
			 "kubeconfig %s: context %s: the user's token is not "
			 "a single word of visible ASCII",
			 c->cfg.source, c->cfg.context);
		kf_conn_free(c);
		return KF_ECONFIG;
	}
	if (c->cfg.token_file != NULL &&
	    (e = conn_token_file_locked(c, errbuf, errlen)) != KF_OK) {
		kf_conn_free(c);
		return e == KF_ENOMEM ? e : KF_ECONFIG;
	}
	if (c->cfg.tls_server_name != NULL)
		kfi_log(KF_LOG_WARNING, "KF-CONN-TLSNAME",
			"kubeconfig %s: tls-server-name is not supported and "
			"is ignored; the server's certificate must match %s",
			c->cfg.source, c->cfg.server);
	*out = c;
	return KF_OK;
}

kf_err
kf_conn_from_kubeconfig(const char *path, const char *context, char *errbuf,
			size_t errlen, kf_conn **out)
{
	struct kfi_kubeconfig cfg;
	char dummy[1];
	kf_err e;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	if (out == NULL)
		return KF_EINVAL;
	*out = NULL;
	if ((e = kfi_kubeconfig_load(path, context, &cfg, errbuf, errlen)) !=
	    KF_OK)
		return e;
	return conn_new(&cfg, errbuf, errlen, out);
}

/* Read a small text file, trimmed; NULL when absent or empty. */
static char *
conn_read_trimmed(const char *path)
{
	size_t len = 0;
	char *s = conn_read_small(path, 4096, &len);

	if (s == NULL)
		return NULL;
	while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
		len--;
	s[len] = '\0';
	if (len == 0) {
		free(s);
		return NULL;
	}
	return s;
}

kf_err
kf_conn_in_cluster(char *errbuf, size_t errlen, kf_conn **out)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("KUBEFAN_SA_DIR");
	struct kfi_kubeconfig cfg;
	char dummy[1];
	bool v6;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	if (out == NULL)
		return KF_EINVAL;
	*out = NULL;
	if (host == NULL || host[0] == '\0' || port == NULL ||
	    port[0] == '\0') {
		snprintf(errbuf, errlen,
			 "in-cluster: KUBERNETES_SERVICE_HOST and "
			 "KUBERNETES_SERVICE_PORT are not both set; not "
			 "running in a Pod?");
		return KF_ECONFIG;
	}
	if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    strchr(host, '/') != NULL || strchr(host, '[') != NULL) {
		snprintf(errbuf, errlen,
			 "in-cluster: KUBERNETES_SERVICE_HOST/PORT do not form "
			 "a host and port");
		return KF_ECONFIG;
	}
	if (dir == NULL || dir[0] == '\0')
		dir = CONN_SA_DIR;
	memset(&cfg, 0, sizeof(cfg));
	v6 = strchr(host, ':') != NULL;
	if (asprintf(&cfg.server, v6 ? "https://[%s]:%s" : "https://%s:%s",
		     host, port) < 0 ||
	    asprintf(&cfg.token_file, "%s/token", dir) < 0 ||
	    asprintf(&cfg.ca_file, "%s/ca.crt", dir) < 0 ||
	    asprintf(&cfg.source, "in-cluster %s", dir) < 0 ||
	    (cfg.context = strdup("in-cluster")) == NULL) {
		kfi_kubeconfig_fini(&cfg);
		snprintf(errbuf, errlen, "out of memory");
		return KF_ENOMEM;
	}
	if (access(cfg.ca_file, R_OK) != 0) {
		snprintf(errbuf, errlen, "in-cluster: cannot read %s: %s",
			 cfg.ca_file, strerror(errno));
		kfi_kubeconfig_fini(&cfg);
		return KF_ECONFIG;
	}
	{
		char *nsf;

		if (asprintf(&nsf, "%s/namespace", dir) >= 0) {
			cfg.namespace = conn_read_trimmed(nsf);
			free(nsf);
		}
	}
	return conn_new(&cfg, errbuf, errlen, out);
}

kf_err
kf_conn_explicit(const char *server, const char *token, const char *ca_file,
		 bool insecure, kf_conn **out)
{
	struct kfi_kubeconfig cfg;
	char err[256];
	kf_err e;

	if (out == NULL)
		return KF_EINVAL;
	*out = NULL;
	if (server == NULL || (token != NULL && !conn_token_ok(token)) ||
	    (insecure && ca_file != NULL))
		return KF_EINVAL;
	memset(&cfg, 0, sizeof(cfg));
	if ((e = kfi_server_url(server, &cfg.server)) != KF_OK)
		return e;
	cfg.insecure = insecure;
	cfg.source = strdup("explicit settings");
	cfg.context = strdup("explicit");
	cfg.token = token != NULL ? strdup(token) : NULL;
	cfg.ca_file = ca_file != NULL ? strdup(ca_file) : NULL;
	if (cfg.source == NULL || cfg.context == NULL ||
	    (token != NULL && cfg.token == NULL) ||
	    (ca_file != NULL && cfg.ca_file == NULL)) {
		kfi_kubeconfig_fini(&cfg);
		return KF_ENOMEM;
	}
	return conn_new(&cfg, err, sizeof(err), out);
}

const char *
kf_conn_server(const kf_conn *c)
{
	return c != NULL ? c->cfg.server : "";
}

const char *
kf_conn_namespace(const kf_conn *c)
{
	return c != NULL && c->cfg.namespace != NULL ? c->cfg.namespace : "";
}

void
kf_conn_free(kf_conn *c)
{
	if (c == NULL)
		return;
	conn_exec_forget_locked(c);
	conn_secret_free(c->tf_token);
	kfi_kubeconfig_fini(&c->cfg);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

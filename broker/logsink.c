/*
 * Log sinks: format, redact, escape, then one write(2) per line under the
 * sink's lock. The lock keeps lines whole and lets reopen swap the fd
 * while other threads log; the formatting happens before it, so a slow
 * disk holds writers only for the write itself.
 *
 * Lines are rare by design (per-event work is counted, not logged), so
 * each line builds its text in a malloc'd buffer instead of sharing a
 * static one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "logsink.h"

struct kfi_logsink {
	enum kfi_log_dest dest;
	enum kfi_log_format format;
	char *path;
	char *ident; /* syslog keeps the pointer, so it lives here */
	void (*now)(struct timespec *ts);
	pthread_mutex_t mu;
	int fd;		   /* stderr or the file; under mu */
	uint64_t failures; /* atomic */
};

/* ---- growable text ---- */

struct ls_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
ls_put(struct ls_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
ls_puts(struct ls_buf *b, const char *s)
{
	ls_put(b, s, strlen(s));
}

/* ---- redaction ---- */

static bool
ls_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '_' ||
	       c == '-';
}

static bool
ls_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

static bool
ls_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* RFC 6750 b64token characters, plus the '=' padding. */
static bool
ls_token(unsigned char c)
{
	return ls_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
	       c == '+' || c == '/' || c == '=';
}

#define LS_SECRET_MIN 32
#define LS_MASK	      "[REDACTED]"

/* "Bearer" at a word start, blanks, then a token: the length of
 * "Bearer<blanks>" in *keep and of the whole in the result; 0 if not. */
static size_t
ls_bearer(const unsigned char *s, bool word_start, size_t *keep)
{
	size_t i = 6, t;

	if (!word_start || strncasecmp((const char *)s, "bearer", 6) != 0 ||
	    (s[i] != ' ' && s[i] != '\t'))
		return 0;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	for (t = i; ls_token(s[t]); t++)
		;
	if (t == i)
		return 0;
	*keep = i;
	return t;
}

/* A maximal run of base64 characters (and '=' padding) from s: its length,
 * and whether it looks like a secret. */
static size_t
ls_run(const unsigned char *s, bool *secret)
{
	bool upper = false, lower = false, digit = false;
	size_t n, hexrun = 0, besthex = 0;

	for (n = 0; ls_b64(s[n]); n++) {
		upper |= s[n] >= 'A' && s[n] <= 'Z';
		lower |= s[n] >= 'a' && s[n] <= 'z';
		digit |= s[n] >= '0' && s[n] <= '9';
		hexrun = ls_hex(s[n]) ? hexrun + 1 : 0;
		if (hexrun > besthex)
			besthex = hexrun;
	}
	while (s[n] == '=')
		n++;
	*secret = (n >= LS_SECRET_MIN && upper && lower && digit) ||
		  besthex >= LS_SECRET_MIN;
	return n;
}

static void
ls_redact_into(struct ls_buf *b, const char *msg)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t i = 0;

	while (s[i] != '\0') {
		bool start = i == 0 || !ls_alnum(s[i - 1]);
		size_t keep, n = ls_bearer(s + i, start, &keep);
		bool secret;

		if (n > 0) {
			ls_put(b, (const char *)s + i, keep);
			ls_puts(b, LS_MASK);
			i += n;
		} else if (ls_b64(s[i])) {
			n = ls_run(s + i, &secret);
			if (secret)
				ls_puts(b, LS_MASK);
			else
				ls_put(b, (const char *)s + i, n);
			i += n;
		} else {
			ls_put(b, (const char *)s + i, 1);
			i++;
		}
	}
}

char *
kfi_log_redact(const char *msg)
{
	struct ls_buf b = {0};

	ls_put(&b, "", 0);
	ls_redact_into(&b, msg);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- escaping ---- */

/* Text lines: control characters as \n, \r, \t or \xNN; all else as is. */
static void
ls_text_escaped(struct ls_buf *b, const char *s)
{
	char hex[5];

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			ls_puts(b, "\\n");
		else if (c == '\r')
			ls_puts(b, "\\r");
		else if (c == '\t')
			ls_puts(b, "\\t");
		else if (c < 0x20 || c == 0x7f) {
			snprintf(hex, sizeof(hex), "\\x%02x", c);
			ls_puts(b, hex);
		} else
			ls_put(b, s, 1);
	}
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 if invalid:
 * no overlong forms, surrogates or code points past U+10FFFF. */
static size_t
ls_utf8(const unsigned char *s)
{
	unsigned cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* A JSON string body: ", \ and controls escaped, invalid UTF-8 bytes
 * replaced by U+FFFD, so the line is always valid JSON. */
static void
ls_json_escaped(struct ls_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	char u[8];

	while (*s != '\0') {
		size_t n = ls_utf8(s);

		if (n == 0) {
			ls_puts(b, "\\ufffd");
			s++;
			continue;
		}
		if (*s == '"')
			ls_puts(b, "\\\"");
		else if (*s == '\\')
			ls_puts(b, "\\\\");
		else if (*s == '\n')
			ls_puts(b, "\\n");
		else if (*s == '\r')
			ls_puts(b, "\\r");
		else if (*s == '\t')
			ls_puts(b, "\\t");
		else if (*s < 0x20) {
			snprintf(u, sizeof(u), "\\u%04x", *s);
			ls_puts(b, u);
		} else
			ls_put(b, (const char *)s, n);
		s += n;
	}
}

/* ---- lines ---- */

static const char *
ls_level_name(int level)
{
	static const char *const names[] = {"emerg", "alert",	"crit",
					    "err",   "warning", "notice",
					    "info",  "debug"};

	if (level < 0)
		return "emerg";
	return level <= 7 ? names[level] : "debug";
}

static void
ls_clock(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void
ls_timestamp(kfi_logsink *s, char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	s->now(&ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03ldZ", sec, ts.tv_nsec / 1000000);
}

static void
ls_format(kfi_logsink *s, struct ls_buf *b, int level, const char *id,
	  const char *msg)
{
	char ts[48];

	if (s->dest == KFI_LOG_SYSLOG) {
		ls_text_escaped(b, id);
		ls_puts(b, " ");
		ls_text_escaped(b, msg);
		return;
	}
	ls_timestamp(s, ts, sizeof(ts));
	if (s->format == KFI_LOG_JSON) {
		ls_puts(b, "{\"ts\":\"");
		ls_puts(b, ts);
		ls_puts(b, "\",\"level\":\"");
		ls_puts(b, ls_level_name(level));
		ls_puts(b, "\",\"id\":\"");
		ls_json_escaped(b, id);
		ls_puts(b, "\",\"msg\":\"");
		ls_json_escaped(b, msg);
		ls_puts(b, "\"}\n");
		return;
	}
	ls_puts(b, ts);
	ls_puts(b, " ");
	ls_puts(b, ls_level_name(level));
	ls_puts(b, " ");
	ls_text_escaped(b, id);
	ls_puts(b, " ");
	ls_text_escaped(b, msg);
	ls_puts(b, "\n");
}

static bool
ls_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

void
kfi_logsink_write(void *arg, int level, const char *id, const char *msg)
{
	kfi_logsink *s = arg;
	char *clean = kfi_log_redact(msg != NULL ? msg : "");
	struct ls_buf b = {0};
	bool ok = clean != NULL;

	if (ok)
		ls_format(s, &b, level, id != NULL ? id : "", clean);
	free(clean);
	if (!ok || b.oom || b.p == NULL) {
		free(b.p);
		__atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
		return;
	}
	if (s->dest == KFI_LOG_SYSLOG) {
		syslog(level < 0 ? 0 : level > 7 ? 7 : level, "%s", b.p);
		free(b.p);
		return;
	}
	pthread_mutex_lock(&s->mu);
	ok = ls_write_all(s->fd, b.p, b.len);
	pthread_mutex_unlock(&s->mu);
	if (!ok)
		__atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
	free(b.p);
}

uint64_t
kfi_logsink_failures(kfi_logsink *s)
{
	return __atomic_load_n(&s->failures, __ATOMIC_RELAXED);
}

/* ---- life ---- */

static int
ls_open(const char *path, char *errbuf, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0 && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "log file %s: %s", path,
			 strerror(errno));
	return fd;
}

kf_err
kfi_logsink_alloc(const struct kfi_logsink_opts *o, char *errbuf, size_t errlen,
		  kfi_logsink **out)
{
	kfi_logsink *s;

	*out = NULL;
	if (o->dest > KFI_LOG_SYSLOG || o->format > KFI_LOG_JSON ||
	    (o->dest == KFI_LOG_FILE && (o->path == NULL || !*o->path)))
		return KF_EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return KF_ENOMEM;
	s->dest = o->dest;
	s->format = o->format;
	s->now = o->now != NULL ? o->now : ls_clock;
	s->fd = STDERR_FILENO;
	pthread_mutex_init(&s->mu, NULL);
	if (o->dest == KFI_LOG_FILE) {
		if ((s->path = strdup(o->path)) == NULL) {
			kfi_logsink_free(s);
			return KF_ENOMEM;
		}
		if ((s->fd = ls_open(s->path, errbuf, errlen)) < 0) {
			s->fd = STDERR_FILENO;
			kfi_logsink_free(s);
			return KF_EIO;
		}
	}
	if (o->dest == KFI_LOG_SYSLOG) {
		s->ident = strdup(o->ident != NULL ? o->ident : "kubefand");
		if (s->ident == NULL) {
			kfi_logsink_free(s);
			return KF_ENOMEM;
		}
		openlog(s->ident, LOG_PID | LOG_NDELAY,
			o->facility != 0 ? o->facility : LOG_DAEMON);
	}
	*out = s;
	return KF_OK;
}

kf_err
kfi_logsink_reopen(kfi_logsink *s, char *errbuf, size_t errlen)
{
	int fd, old;

	if (s->dest != KFI_LOG_FILE)
		return KF_OK;
	if ((fd = ls_open(s->path, errbuf, errlen)) < 0)
		return KF_EIO;
	pthread_mutex_lock(&s->mu);
	old = s->fd;
	s->fd = fd;
	pthread_mutex_unlock(&s->mu);
	close(old);
	return KF_OK;
}

void
kfi_logsink_free(kfi_logsink *s)
{
	if (s == NULL)
		return;
	if (s->fd != STDERR_FILENO)
		close(s->fd);
	if (s->ident != NULL)
		closelog();
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s->ident);
	free(s);
}

/*
 * The fake API server; see fakeserver.h for the transcript language.
 *
 * One acceptor thread, one thread per connection. Responses are taken from
 * the transcript in the order requests arrive, under the server's mutex.
 * Every wait (sleep, hang, reading a request) ends when the server stops:
 * sleeps wait on a condition variable, and fs_stop() shuts the sockets
 * down so blocked reads return.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fakeserver.h"

enum op_kind {
	OP_STATUS,
	OP_HEADER,
	OP_LENGTH,
	OP_APPEND,
	OP_SEND,
	OP_CHUNKS,
	OP_SPLIT,
	OP_SLEEP,
	OP_HANG,
	OP_CLOSE,
	OP_END,
};

struct op {
	enum op_kind kind;
	char *text; /* STATUS text, HEADER line, APPEND bytes */
	size_t len; /* APPEND length */
	long n;	    /* STATUS code, CHUNKS size, SLEEP ms */
	long *cuts; /* SPLIT offsets */
	size_t ncuts;
};

struct resp {
	struct op *ops;
	size_t nops;
};

struct conn {
	int fd;
	int id;
	pthread_t thread;
	struct fs_server *s;
	struct conn *next;
};

struct fs_server {
	int lfd;
	char url[64];
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct resp *resps;
	size_t nresps, next_resp;
	struct fs_request **reqs;
	size_t nreqs, creqs;
	struct conn *conns;
	int nconns, open;
};

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz ? sz : 1);

	if (p == NULL)
		abort();
	return p;
}

static void *
xrealloc(void *p, size_t sz)
{
	p = realloc(p, sz);
	if (p == NULL)
		abort();
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *p = xcalloc(1, n + 1);

	memcpy(p, s, n);
	return p;
}

/* ---- the transcript ---- */

static struct op *
fs_new_op(struct resp *r, enum op_kind k)
{
	r->ops = xrealloc(r->ops, (r->nops + 1) * sizeof(*r->ops));
	memset(&r->ops[r->nops], 0, sizeof(r->ops[0]));
	r->ops[r->nops].kind = k;
	return &r->ops[r->nops++];
}

static int
fs_unescape(const char *s, char **out, size_t *outlen)
{
	size_t n = strlen(s), j = 0;
	char *b = xcalloc(1, n + 1);

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\' || i + 1 >= n) {
			b[j++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case 'n':
			b[j++] = '\n';
			break;
		case 'r':
			b[j++] = '\r';
			break;
		case 't':
			b[j++] = '\t';
			break;
		case '\\':
			b[j++] = '\\';
			break;
		case 'x': {
			char hex[3] = {0};

			if (i + 2 >= n) {
				free(b);
				return -1;
			}
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			b[j++] = (char)strtol(hex, NULL, 16);
			i += 2;
			break;
		}
		default:
			b[j++] = '\\';
			b[j++] = s[i];
		}
	}
	*out = b;
	*outlen = j;
	return 0;
}

static int
fs_parse(struct fs_server *s, const char *script)
{
	const char *p = script, *nl;
	struct resp *cur = NULL;
	int lineno = 0;

	while (*p) {
		char line[1 << 16], *arg;
		size_t n;
		struct op *op;

		lineno++;
		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		if (n >= sizeof(line)) {
			fprintf(stderr, "fakeserver: line %d too long\n",
				lineno);
			return -1;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		p = nl ? nl + 1 : p + n;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		arg = strchr(line, ' ');
		if (arg != NULL)
			*arg++ = '\0';
		else
			arg = line + n;
		if (strcmp(line, "request") == 0) {
			s->resps = xrealloc(s->resps, (s->nresps + 1) *
							  sizeof(*s->resps));
			cur = &s->resps[s->nresps++];
			memset(cur, 0, sizeof(*cur));
			continue;
		}
		if (cur == NULL) {
			fprintf(stderr,
				"fakeserver: line %d: `%s` before `request`\n",
				lineno, line);
			return -1;
		}
		if (strcmp(line, "status") == 0) {
			op = fs_new_op(cur, OP_STATUS);
			op->n = strtol(arg, &arg, 10);
			while (*arg == ' ')
				arg++;
			op->text = strdup(*arg ? arg : "Whatever");
		} else if (strcmp(line, "header") == 0) {
			op = fs_new_op(cur, OP_HEADER);
			op->text = strdup(arg);
		} else if (strcmp(line, "length") == 0) {
			fs_new_op(cur, OP_LENGTH);
		} else if (strcmp(line, "line") == 0) {
			op = fs_new_op(cur, OP_APPEND);
			op->len = strlen(arg) + 1;
			op->text = xcalloc(1, op->len + 1);
			memcpy(op->text, arg, op->len - 1);
			op->text[op->len - 1] = '\n';
		} else if (strcmp(line, "raw") == 0) {
			op = fs_new_op(cur, OP_APPEND);
			if (fs_unescape(arg, &op->text, &op->len) != 0)
				return -1;
		} else if (strcmp(line, "fill") == 0) {
			char *end;
			long k = strtol(arg, &end, 10);

			while (*end == ' ')
				end++;
			if (k <= 0 || *end == '\0') {
				fprintf(stderr,
					"fakeserver: line %d: fill N C\n",
					lineno);
				return -1;
			}
			op = fs_new_op(cur, OP_APPEND);
			op->len = (size_t)k;
			op->text = xcalloc(1, op->len + 1);
			memset(op->text, *end, op->len);
		} else if (strcmp(line, "send") == 0) {
			fs_new_op(cur, OP_SEND);
		} else if (strcmp(line, "chunks") == 0) {
			op = fs_new_op(cur, OP_CHUNKS);
			op->n = strtol(arg, NULL, 10);
			if (op->n <= 0)
				return -1;
		} else if (strcmp(line, "split") == 0) {
			char *q = arg, *end;

			op = fs_new_op(cur, OP_SPLIT);
			for (;;) {
				long v = strtol(q, &end, 10);

				if (end == q)
					break;
				op->cuts = xrealloc(op->cuts, (op->ncuts + 1) *
								  sizeof(long));
				op->cuts[op->ncuts++] = v;
				q = end;
			}
		} else if (strcmp(line, "sleep") == 0) {
			op = fs_new_op(cur, OP_SLEEP);
			op->n = strtol(arg, NULL, 10);
		} else if (strcmp(line, "hang") == 0) {
			fs_new_op(cur, OP_HANG);
		} else if (strcmp(line, "close") == 0) {
			fs_new_op(cur, OP_CLOSE);
		} else if (strcmp(line, "end") == 0) {
			fs_new_op(cur, OP_END);
		} else {
			fprintf(stderr,
				"fakeserver: line %d: unknown directive `%s`\n",
				lineno, line);
			return -1;
		}
	}
	return 0;
}

/* ---- serving ---- */

/* Sleep ms, or less if the server stops; true when it stops. */
static bool
fs_pause(struct fs_server *s, long ms)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->stop && ms >= 0) {
		if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
			break;
	}
	stop = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

static void
fs_hang(struct fs_server *s)
{
	pthread_mutex_lock(&s->mu);
	while (!s->stop)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static int
fs_write(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

struct out {
	int fd;
	long status;
	char *status_text;
	char *headers; /* "Name: value\r\n"... */
	size_t hlen;
	bool has_ctype;
	bool length_mode;
	bool head_sent;
	char *pend;
	size_t plen;
	char *body; /* length mode */
	size_t blen;
};

static int
out_head(struct out *o, size_t content_length)
{
	char buf[8192];
	int n;

	if (o->head_sent)
		return 0;
	o->head_sent = true;
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %ld %s\r\n%s%.*s", o->status,
		     o->status_text ? o->status_text : "OK",
		     o->has_ctype ? "" : "Content-Type: application/json\r\n",
		     (int)o->hlen, o->headers ? o->headers : "");
	if (o->length_mode)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
			      "Content-Length: %zu\r\n\r\n", content_length);
	else
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
			      "Transfer-Encoding: chunked\r\n\r\n");
	return fs_write(o->fd, buf, (size_t)n);
}

static int
out_chunk(struct out *o, const char *p, size_t n)
{
	char hdr[32];
	int k;

	if (n == 0)
		return 0;
	if (o->length_mode) {
		o->body = xrealloc(o->body, o->blen + n);
		memcpy(o->body + o->blen, p, n);
		o->blen += n;
		return 0;
	}
	if (out_head(o, 0) != 0)
		return -1;
	k = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
	if (fs_write(o->fd, hdr, (size_t)k) != 0 || fs_write(o->fd, p, n) ||
	    fs_write(o->fd, "\r\n", 2) != 0)
		return -1;
	return 0;
}

static int
out_end(struct out *o)
{
	if (o->length_mode) {
		if (out_head(o, o->blen) != 0)
			return -1;
		return o->blen ? fs_write(o->fd, o->body, o->blen) : 0;
	}
	if (out_head(o, 0) != 0)
		return -1;
	return fs_write(o->fd, "0\r\n\r\n", 5);
}

/* Play one response; 1 when the connection must close, 0 to keep it. */
static int
fs_play(struct fs_server *s, int fd, const struct resp *r)
{
	struct out o = {.fd = fd, .status = 200};
	int rc = 0;

	for (size_t i = 0; i < r->nops && rc == 0; i++) {
		const struct op *op = &r->ops[i];

		switch (op->kind) {
		case OP_STATUS:
			o.status = op->n;
			o.status_text = op->text;
			break;
		case OP_HEADER: {
			size_t k = strlen(op->text);

			o.headers = xrealloc(o.headers, o.hlen + k + 2);
			memcpy(o.headers + o.hlen, op->text, k);
			memcpy(o.headers + o.hlen + k, "\r\n", 2);
			o.hlen += k + 2;
			if (strncasecmp(op->text, "Content-Type:", 13) == 0)
				o.has_ctype = true;
			break;
		}
		case OP_LENGTH:
			o.length_mode = true;
			break;
		case OP_APPEND:
			o.pend = xrealloc(o.pend, o.plen + op->len);
			memcpy(o.pend + o.plen, op->text, op->len);
			o.plen += op->len;
			break;
		case OP_SEND:
			rc = out_chunk(&o, o.pend, o.plen) ? 1 : 0;
			o.plen = 0;
			break;
		case OP_CHUNKS:
			for (size_t at = 0; at < o.plen && rc == 0;
			     at += (size_t)op->n) {
				size_t k = o.plen - at < (size_t)op->n
					       ? o.plen - at
					       : (size_t)op->n;

				rc = out_chunk(&o, o.pend + at, k) ? 1 : 0;
			}
			o.plen = 0;
			break;
		case OP_SPLIT: {
			size_t at = 0;

			for (size_t c = 0; c <= op->ncuts && rc == 0; c++) {
				size_t to = c < op->ncuts ? (size_t)op->cuts[c]
							  : o.plen;

				if (to > o.plen)
					to = o.plen;
				if (to > at)
					rc = out_chunk(&o, o.pend + at, to - at)
						 ? 1
						 : 0;
				at = to > at ? to : at;
			}
			o.plen = 0;
			break;
		}
		case OP_SLEEP:
			if (fs_pause(s, op->n))
				rc = 1;
			break;
		case OP_HANG:
			fs_hang(s);
			rc = 1;
			break;
		case OP_CLOSE:
			rc = 1;
			break;
		case OP_END:
			if (o.plen) {
				out_chunk(&o, o.pend, o.plen);
				o.plen = 0;
			}
			rc = out_end(&o) ? 1 : 0;
			o.status = -1; /* ended */
			break;
		}
		if (op->kind == OP_END)
			break;
	}
	if (rc == 0 && o.status != -1) { /* implied end */
		if (o.plen)
			out_chunk(&o, o.pend, o.plen);
		rc = out_end(&o) ? 1 : 0;
	}
	free(o.headers);
	free(o.pend);
	free(o.body);
	return rc;
}

static int
fs_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *
fs_decode(const char *p, size_t n)
{
	char *b = xcalloc(1, n + 1);
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n && fs_hexval(p[i + 1]) >= 0 &&
		    fs_hexval(p[i + 2]) >= 0) {
			b[j++] = (char)(fs_hexval(p[i + 1]) * 16 +
					fs_hexval(p[i + 2]));
			i += 2;
		} else {
			b[j++] = p[i] == '+' ? ' ' : p[i];
		}
	}
	return b;
}

static struct fs_request *
fs_parse_request(const char *head, int conn)
{
	struct fs_request *r = xcalloc(1, sizeof(*r));
	const char *sp1 = strchr(head, ' '), *sp2, *q;

	r->conn = conn;
	if (sp1 == NULL)
		sp1 = head;
	snprintf(r->method, sizeof(r->method), "%.*s", (int)(sp1 - head), head);
	sp1++;
	sp2 = strchr(sp1, ' ');
	if (sp2 == NULL)
		sp2 = sp1 + strlen(sp1);
	q = memchr(sp1, '?', (size_t)(sp2 - sp1));
	r->path = xstrndup(sp1, (size_t)((q ? q : sp2) - sp1));
	r->query = q ? xstrndup(q + 1, (size_t)(sp2 - q - 1)) : strdup("");
	for (const char *p = q ? q + 1 : sp2; p < sp2;) {
		const char *amp = memchr(p, '&', (size_t)(sp2 - p));
		const char *end = amp ? amp : sp2;
		const char *eq = memchr(p, '=', (size_t)(end - p));

		r->keys = xrealloc(r->keys, (r->nparams + 1) * sizeof(char *));
		r->values =
		    xrealloc(r->values, (r->nparams + 1) * sizeof(char *));
		r->keys[r->nparams] =
		    fs_decode(p, (size_t)((eq ? eq : end) - p));
		r->values[r->nparams] =
		    eq ? fs_decode(eq + 1, (size_t)(end - eq - 1)) : strdup("");
		r->nparams++;
		p = end + 1;
	}
	return r;
}

static void *
fs_conn_main(void *arg)
{
	struct conn *c = arg;
	struct fs_server *s = c->s;
	char buf[16384];
	size_t len = 0;

	for (;;) {
		char *eoh;
		ssize_t k;

		buf[len] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
		if (eoh == NULL) {
			if (len >= sizeof(buf) - 1)
				break;
			k = recv(c->fd, buf + len, sizeof(buf) - 1 - len, 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			len += (size_t)k;
			continue;
		}
		*eoh = '\0';
		{
			struct fs_request *r = fs_parse_request(buf, c->id);
			const struct resp *resp = NULL;
			size_t used = (size_t)(eoh + 4 - buf);

			memmove(buf, buf + used, len - used);
			len -= used;
			pthread_mutex_lock(&s->mu);
			if (s->nreqs == s->creqs) {
				s->creqs = s->creqs ? s->creqs * 2 : 16;
				s->reqs = xrealloc(s->reqs,
						   s->creqs * sizeof(*s->reqs));
			}
			s->reqs[s->nreqs++] = r;
			if (s->next_resp < s->nresps)
				resp = &s->resps[s->next_resp++];
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
			if (resp == NULL) {
				fs_hang(s);
				break;
			}
			if (fs_play(s, c->fd, resp) != 0)
				break;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->open--;
	pthread_mutex_unlock(&s->mu);
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

static void *
fs_accept_main(void *arg)
{
	struct fs_server *s = arg;

	for (;;) {
		struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
		struct conn *c;
		int fd, one = 1;

		if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		pthread_mutex_unlock(&s->mu);
		if (!(pfd.revents & POLLIN))
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->s = s;
		pthread_mutex_lock(&s->mu);
		c->id = ++s->nconns;
		s->open++;
		c->next = s->conns;
		s->conns = c;
		pthread_mutex_unlock(&s->mu);
		pthread_create(&c->thread, NULL, fs_conn_main, c);
	}
	return NULL;
}

struct fs_server *
fs_start(const char *script)
{
	struct fs_server *s = xcalloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->lfd = -1;
	if (fs_parse(s, script) != 0) {
		fs_stop(s);
		return NULL;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s->lfd, 64) ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &alen)) {
		perror("fakeserver: listen");
		fs_stop(s);
		return NULL;
	}
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d",
		 ntohs(a.sin_port));
	pthread_create(&s->acceptor, NULL, fs_accept_main, s);
	return s;
}

struct fs_server *
fs_start_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct fs_server *s;
	char *text;
	long n;

	if (f == NULL) {
		fprintf(stderr, "fakeserver: cannot open %s\n", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = xcalloc(1, (size_t)n + 1);
	if (fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	s = fs_start(text);
	free(text);
	return s;
}

const char *
fs_url(struct fs_server *s)
{
	return s->url;
}

size_t
fs_request_count(struct fs_server *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->nreqs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t
fs_wait_requests(struct fs_server *s, size_t n, int timeout_ms)
{
	struct timespec until;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (s->nreqs < n && !s->stop) {
		if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
			break;
	}
	got = s->nreqs;
	pthread_mutex_unlock(&s->mu);
	return got;
}

const struct fs_request *
fs_request(struct fs_server *s, size_t i)
{
	const struct fs_request *r = NULL;

	pthread_mutex_lock(&s->mu);
	if (i < s->nreqs)
		r = s->reqs[i];
	pthread_mutex_unlock(&s->mu);
	return r;
}

const char *
fs_param(const struct fs_request *r, const char *key)
{
	for (size_t i = 0; r != NULL && i < r->nparams; i++)
		if (strcmp(r->keys[i], key) == 0)
			return r->values[i];
	return NULL;
}

int
fs_open_connections(struct fs_server *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->open;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void
fs_stop(struct fs_server *s)
{
	struct conn *c, *next;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->lfd >= 0) {
		pthread_join(s->acceptor, NULL);
		close(s->lfd);
	}
	pthread_mutex_lock(&s->mu);
	for (c = s->conns; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->mu);
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		pthread_join(c->thread, NULL);
		close(c->fd);
		free(c);
	}
	for (size_t i = 0; i < s->nreqs; i++) {
		struct fs_request *r = s->reqs[i];

		for (size_t k = 0; k < r->nparams; k++) {
			free(r->keys[k]);
			free(r->values[k]);
		}
		free(r->keys);
		free(r->values);
		free(r->path);
		free(r->query);
		free(r);
	}
	free(s->reqs);
	for (size_t i = 0; i < s->nresps; i++) {
		for (size_t k = 0; k < s->resps[i].nops; k++) {
			free(s->resps[i].ops[k].text);
			free(s->resps[i].ops[k].cuts);
		}
		free(s->resps[i].ops);
	}
	free(s->resps);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

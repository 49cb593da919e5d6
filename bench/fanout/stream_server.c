/*
 * bench_stream_server: the one input stream that the fan-out comparison
 * feeds to kubefan, kube-rs and client-go.
 *
 * A plain-HTTP imitation of the API server for one resource, the
 * ConfigMaps of namespace "bench", on loopback:
 *
 *   GET .../configmaps            a list of K objects at resourceVersion
 *                                 LIST_RV (no continue token, whatever the
 *                                 limit asked for)
 *   GET .../configmaps?watch=1    the first watch gets M MODIFIED events,
 *                                 written as fast as the client takes
 *                                 them, then stays open and idle; later
 *                                 watches (a client resuming) stay idle
 *   ...&sendInitialEvents=true    the K objects as ADDED, the bookmark
 *                                 that ends the initial events, then as
 *                                 above
 *
 * Every object carries two annotations: bench.kubefan.io/seq (the event
 * number, -1 for the listed state) and bench.kubefan.io/sent-ns, the
 * CLOCK_REALTIME nanoseconds at which the server produced the event. A
 * client's latency is its receive time minus sent-ns; all three peers read
 * the same realtime clock on the same machine.
 *
 * Events are produced into a buffer of at most BATCH_BYTES and written with
 * one write(); the stamp is taken when the event is produced, so the time
 * spent waiting for the client's socket counts as latency, as it would for
 * a real API server.
 *
 * The process prints "PORT n" on stdout once listening and exits by itself
 * after --max-seconds (default 600), or when killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LIST_RV	    1000
#define BATCH_BYTES (16 * 1024)
#define REQ_MAX	    (64 * 1024)
#define IDLE_MS	    1000

static struct {
	int objects;
	long events;
	int data_bytes;
	long rate; /* events per second, 0 = unpaced */
	int max_seconds;
	char *payload;
	atomic_int watches; /* watches that received the event stream */
} srv = {
    .objects = 100,
    .events = 100000,
    .data_bytes = 256,
    .max_seconds = 600,
};

static uint64_t
ss_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
ss_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One ConfigMap as JSON into buf; returns its length. */
static int
ss_object(char *buf, size_t len, int idx, long rv, long seq)
{
	return snprintf(buf, len,
			"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
			"\"metadata\":{\"name\":\"cm-%05d\",\"namespace\":"
			"\"bench\",\"uid\":\"00000000-0000-4000-8000-%012d\","
			"\"resourceVersion\":\"%ld\","
			"\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
			"\"labels\":{\"app\":\"bench\"},\"annotations\":{"
			"\"bench.kubefan.io/seq\":\"%ld\","
			"\"bench.kubefan.io/sent-ns\":\"%" PRIu64 "\"}},"
			"\"data\":{\"payload\":\"%s\"}}",
			idx, idx, rv, seq, ss_now_ns(), srv.payload);
}

static size_t
ss_object_max(void)
{
	return 512 + (size_t)srv.data_bytes;
}

static int
ss_send_head(int fd, int status, const char *ctype, long clen)
{
	char head[256];
	int n;

	if (clen >= 0)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			     "Content-Length: %ld\r\n\r\n",
			     status, status == 200 ? "OK" : "Not Found", ctype,
			     clen);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d OK\r\nContent-Type: %s\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n",
			     status, ctype);
	return ss_write_all(fd, head, (size_t)n);
}

static int
ss_send_body(int fd, int status, const char *body)
{
	size_t n = strlen(body);

	if (ss_send_head(fd, status, "application/json", (long)n) < 0)
		return -1;
	return ss_write_all(fd, body, n);
}

static int
ss_list(int fd)
{
	size_t cap = (size_t)srv.objects * ss_object_max() + 256;
	char *body = malloc(cap);
	size_t off;
	int rc;

	if (body == NULL)
		return -1;
	off = (size_t)snprintf(body, cap,
			       "{\"kind\":\"ConfigMapList\",\"apiVersion\":"
			       "\"v1\",\"metadata\":{\"resourceVersion\":"
			       "\"%d\"},\"items\":[",
			       LIST_RV);
	for (int i = 0; i < srv.objects; i++) {
		if (i > 0)
			body[off++] = ',';
		off += (size_t)ss_object(body + off, cap - off, i, i + 1, -1);
	}
	off += (size_t)snprintf(body + off, cap - off, "]}");
	rc = ss_send_head(fd, 200, "application/json", (long)off);
	if (rc == 0)
		rc = ss_write_all(fd, body, off);
	free(body);
	return rc;
}

/* A chunk of a chunked body: the hex length, the bytes, CRLF. */
static int
ss_chunk(int fd, const char *p, size_t n)
{
	char len[32];
	int k = snprintf(len, sizeof(len), "%zx\r\n", n);

	if (n == 0)
		return 0;
	if (ss_write_all(fd, len, (size_t)k) < 0 ||
	    ss_write_all(fd, p, n) < 0 || ss_write_all(fd, "\r\n", 2) < 0)
		return -1;
	return 0;
}

/* Wait until the client closes (or the server's time is up). */
static void
ss_hold(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char sink[4096];

	for (;;) {
		int r = poll(&pfd, 1, IDLE_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;
		if (r > 0 && read(fd, sink, sizeof(sink)) <= 0)
			return;
	}
}

static void
ss_pace(uint64_t start, long sent)
{
	uint64_t due, now;

	if (srv.rate <= 0)
		return;
	due = start + (uint64_t)((double)sent * 1e9 / (double)srv.rate);
	now = ss_now_ns();
	if (due > now) {
		struct timespec ts = {
		    .tv_sec = (time_t)((due - now) / 1000000000u),
		    .tv_nsec = (long)((due - now) % 1000000000u)};
		nanosleep(&ts, NULL);
	}
}

static int
ss_watch(int fd, bool initial)
{
	size_t cap = BATCH_BYTES + ss_object_max() + 64;
	char *buf = malloc(cap);
	size_t off = 0;
	uint64_t start;
	int rc = -1;

	if (buf == NULL || ss_send_head(fd, 200, "application/json", -1) < 0)
		goto out;
	for (int i = 0; initial && i < srv.objects; i++) {
		off += (size_t)snprintf(buf + off, cap - off,
					"{\"type\":\"ADDED\",\"object\":");
		off += (size_t)ss_object(buf + off, cap - off, i, i + 1, -1);
		off += (size_t)snprintf(buf + off, cap - off, "}\n");
		if (off >= BATCH_BYTES) {
			if (ss_chunk(fd, buf, off) < 0)
				goto out;
			off = 0;
		}
	}
	if (initial)
		off += (size_t)snprintf(
		    buf + off, cap - off,
		    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
		    "\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"
		    "\"resourceVersion\":\"%d\",\"annotations\":{"
		    "\"k8s.io/initial-events-end\":\"true\"}}}}\n",
		    LIST_RV);
	if (atomic_fetch_add(&srv.watches, 1) == 0) {
		/* Bounded by --events; each batch is one write(). */
		start = ss_now_ns();
		for (long s = 0; s < srv.events; s++) {
			int idx = (int)(s % srv.objects);

			off += (size_t)snprintf(buf + off, cap - off,
						"{\"type\":\"MODIFIED\","
						"\"object\":");
			off += (size_t)ss_object(buf + off, cap - off, idx,
						 LIST_RV + 1 + s, s);
			off += (size_t)snprintf(buf + off, cap - off, "}\n");
			if (off >= BATCH_BYTES || srv.rate > 0) {
				if (ss_chunk(fd, buf, off) < 0)
					goto out;
				off = 0;
				ss_pace(start, s + 1);
			}
		}
	}
	if (ss_chunk(fd, buf, off) < 0)
		goto out;
	ss_hold(fd);
	rc = 0;
out:
	free(buf);
	return rc;
}

static bool
ss_has(const char *query, const char *param)
{
	return query != NULL && strstr(query, param) != NULL;
}

/* Serve requests on one connection until it closes. */
static void *
ss_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *req = malloc(REQ_MAX);
	size_t have = 0;

	while (req != NULL) {
		char *end, *path, *query, *sp;
		size_t used;
		ssize_t r;

		end = have ? memmem(req, have, "\r\n\r\n", 4) : NULL;
		if (end == NULL) {
			if (have == REQ_MAX)
				break;
			r = read(fd, req + have, REQ_MAX - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			have += (size_t)r;
			continue;
		}
		*end = '\0';
		used = (size_t)(end - req) + 4;
		path = strchr(req, ' ');
		if (path == NULL)
			break;
		path++;
		sp = strchr(path, ' ');
		if (sp != NULL)
			*sp = '\0';
		query = strchr(path, '?');
		if (query != NULL)
			*query++ = '\0';

		if (strcmp(path, "/api/v1/namespaces/bench/configmaps") == 0) {
			if (ss_has(query, "watch=true") ||
			    ss_has(query, "watch=1")) {
				ss_watch(fd, ss_has(query,
						    "sendInitialEvents=true"));
				break;
			}
			if (ss_list(fd) < 0)
				break;
		} else if (strcmp(path, "/version") == 0) {
			ss_send_body(fd, 200,
				     "{\"major\":\"1\",\"minor\":\"37\","
				     "\"gitVersion\":\"v1.37.2-bench\"}");
		} else {
			ss_send_body(fd, 404,
				     "{\"kind\":\"Status\",\"apiVersion\":"
				     "\"v1\",\"status\":\"Failure\","
				     "\"reason\":\"NotFound\",\"code\":404}");
		}
		memmove(req, req + used, have - used);
		have -= used;
	}
	free(req);
	close(fd);
	return NULL;
}

static void
ss_usage(void)
{
	fprintf(stderr, "usage: bench_stream_server [--port P] [--objects K] "
			"[--events M] [--data-bytes B] [--rate R] "
			"[--max-seconds S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	int port = 0, lfd, one = 1;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			ss_usage();
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(v);
		else if (strcmp(argv[i], "--objects") == 0)
			srv.objects = atoi(v);
		else if (strcmp(argv[i], "--events") == 0)
			srv.events = atol(v);
		else if (strcmp(argv[i], "--data-bytes") == 0)
			srv.data_bytes = atoi(v);
		else if (strcmp(argv[i], "--rate") == 0)
			srv.rate = atol(v);
		else if (strcmp(argv[i], "--max-seconds") == 0)
			srv.max_seconds = atoi(v);
		else
			ss_usage();
		i++;
	}
	if (srv.objects < 1 || srv.events < 0 || srv.data_bytes < 0)
		ss_usage();
	srv.payload = malloc((size_t)srv.data_bytes + 1);
	if (srv.payload == NULL)
		return 1;
	for (int i = 0; i < srv.data_bytes; i++)
		srv.payload[i] = (char)('a' + i % 26);
	srv.payload[srv.data_bytes] = '\0';

	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 256) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
		perror("bench_stream_server: listen");
		return 1;
	}
	printf("PORT %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	alarm((unsigned)srv.max_seconds);

	for (;;) {
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("bench_stream_server: accept");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&t, NULL, ss_conn, (void *)(intptr_t)fd) !=
		    0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}

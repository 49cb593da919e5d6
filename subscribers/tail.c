/*
 * kubefan-tail: print what changes in one resource, like `kubectl get -w`,
 * or one JSON object per line with -o json:
 *
 *   {"type": "Apply", "object": {...the object as the server sent it...}}
 *
 * Type names are kf_event_type_name()'s: Init, InitApply, InitDone,
 * Apply, Delete, Lagged (which adds "missed": N). Two sources:
 *
 * Direct mode (default): a reflector of its own against the API server of
 * the kubeconfig. After the first list, a re-list (410, restart) prints
 * only what it changed, as Apply and Delete.
 *
 * Broker mode (--broker ADDR): a stream of a kubefand broker, read with
 * kf_remote_subscribe(). Before subscribing it asks the broker's request
 * socket HELLO itself (docs/protocol.md), within --timeout, so that a
 * wrong address, a broker that is not there and a stream the broker does
 * not serve are told apart and named; after that the remote library does
 * the protocol work. A re-sync after a gap prints Lagged and a fresh
 * Init..InitDone frame. --snapshot prints the first frame's objects,
 * sorted by namespace and name, and exits.
 *
 * Progress: while the first state loads, a progress thread draws one line
 * on stderr (when stderr is a terminal and loading takes over half a
 * second, or always with --progress, then as plain lines). It reads only
 * atomics and the remote handle's thread-safe counters; the main thread
 * joins it before it writes the frame to a terminal or closes the handle.
 *
 * It uses the public library (and nng for HELLO) only, as any program
 * would.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <kubefan/kubefan.h>
#include <kubefan/remote.h>
#include <kubefan/subscriber.h>

/* The longest stream id kubefand serves (half its 512-byte topic). */
#define KF_TAIL_MAX_STREAM 256

static volatile sig_atomic_t tail_stop;

static void
tail_on_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

static void
tail_log(void *arg, int level, const char *id, const char *msg)
{
	(void)arg;
	fprintf(stderr, "kubefan-tail: %s %s %s\n", kf_log_level_name(level),
		id, msg);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A message into why[len]. One that does not fit ends in "..." so a cut
 * is visible; with append, it goes after what why holds. */
static void __attribute__((format(printf, 4, 5)))
why_fmt(char *why, size_t len, bool append, const char *fmt, ...)
{
	size_t at = append ? strlen(why) : 0;
	va_list ap;
	int n;

	if (at >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(why + at, len - at, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < len - at)
		return;
	if (len >= 4)
		memcpy(why + len - 4, "...", 4);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: kubefan-tail [--kubeconfig FILE] [--context C] "
		"--resource RES\n"
		"                    [-n NS | -A] [-l SELECTOR] "
		"[--field-selector S] [-o json] [-v]\n"
		"       kubefan-tail --broker ADDR --resource RES [-n NS] "
		"[-o json]\n"
		"                    [--snapshot] [--ref-only] [--progress] "
		"[--timeout S]\n"
		"                    [--rep ADDR] [--refs ADDR] [--stream ID] "
		"[--tls-ca FILE]\n"
		"                    [--tls-server-name NAME] [-v]\n"
		"  RES is a plural (configmaps), version/plural (v1/pods) or\n"
		"  group/version/plural (apps/v1/deployments).\n"
		"Direct mode watches the API server itself. Without -n or -A "
		"the\n"
		"  context's namespace (else \"default\") is watched; "
		"cluster-scoped\n"
		"  kinds are watched cluster-wide whatever is given.\n"
		"--broker ADDR reads kubefand's stream instead (ADDR as its "
		"--listen:\n"
		"  ipc://PATH, tcp://HOST:PORT, tls+tcp://HOST:PORT). The "
		"stream id is\n"
		"  RES's plural, plural.group for other groups, or --stream. "
		"All\n"
		"  namespaces of the stream unless -n. --snapshot prints the "
		"current\n"
		"  state and exits; --ref-only prints references only (with "
		"--refs,\n"
		"  from the broker's reference-only address); --timeout "
		"(default 10)\n"
		"  bounds the wait for the broker and its first state.\n");
}

/* ---- output, both modes ---- */

/* Print bytes as a JSON string. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* The reference of an object as a minimal object: what a reference-only
 * feed carries. */
static void
json_ref(const kf_object *o)
{
	printf("{\"apiVersion\": ");
	json_str(kf_object_api_version(o));
	printf(", \"kind\": ");
	json_str(kf_object_kind(o));
	printf(", \"metadata\": {\"name\": ");
	json_str(kf_object_name(o));
	if (kf_object_namespace(o)[0] != '\0') {
		printf(", \"namespace\": ");
		json_str(kf_object_namespace(o));
	}
	printf(", \"uid\": ");
	json_str(kf_object_uid(o));
	printf(", \"resourceVersion\": ");
	json_str(kf_object_resource_version(o));
	printf("}}");
}

static void
print_header(void)
{
	printf("%-10s %-24s %-40s %s\n", "EVENT", "NAMESPACE", "NAME",
	       "RESOURCEVERSION");
}

static void
print_event(const kf_event *ev, bool json, bool ref_only)
{
	const char *type = kf_event_type_name(ev->type);

	if (json) {
		printf("{\"type\": ");
		json_str(type);
		printf(", \"object\": ");
		if (ev->obj != NULL && ref_only) {
			json_ref(ev->obj);
		} else if (ev->obj != NULL) {
			size_t len;
			const char *j = kf_object_json(ev->obj, &len);

			fwrite(j, 1, len, stdout);
		} else {
			printf("null");
		}
		if (ev->type == KF_EV_LAGGED)
			printf(", \"missed\": %llu",
			       (unsigned long long)ev->missed);
		printf("}\n");
	} else if (ev->obj != NULL) {
		const char *ns = kf_object_namespace(ev->obj);

		printf("%-10s %-24s %-40s %s\n", type, ns[0] ? ns : "-",
		       kf_object_name(ev->obj),
		       kf_object_resource_version(ev->obj));
	} else {
		printf("%-10s %-24s %-40s %s\n", type, "-", "-", "-");
	}
}

/* ---- direct mode ---- */

/* Cluster-scoped resources of the built-in API (no discovery here). */
static int
cluster_scoped(const char *group, const char *res)
{
	static const char *const core[] = {
	    "namespaces", "nodes", "persistentvolumes", "componentstatuses"};
	static const char *const named[] = {
	    "clusterroles",
	    "clusterrolebindings",
	    "customresourcedefinitions",
	    "storageclasses",
	    "priorityclasses",
	    "validatingwebhookconfigurations",
	    "mutatingwebhookconfigurations",
	    "apiservices",
	    "csidrivers",
	    "csinodes",
	    "volumeattachments",
	    "ingressclasses",
	    "runtimeclasses",
	    "certificatesigningrequests",
	    "flowschemas",
	    "prioritylevelconfigurations",
	};

	if (group[0] == '\0') {
		for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
			if (strcmp(core[i], res) == 0)
				return 1;
		return 0;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcmp(named[i], res) == 0)
			return 1;
	return 0;
}

struct tail_opts {
	/* both modes */
	const char *resource, *ns;
	char group[254], version[64], res[128]; /* DNS name lengths, + 1 */
	bool json, verbose;
	/* direct mode */
	const char *kubeconfig, *context, *lsel, *fsel;
	bool all;
	/* broker mode */
	const char *broker, *rep, *refs, *stream, *tls_ca, *tls_name;
	bool snapshot, ref_only, progress;
	double timeout_s;
};

static int
direct_main(struct tail_opts *t)
{
	const char *ns = t->ns;
	char err[1024];
	int rc = 0;
	kf_conn *conn = NULL;
	kf_watcher_opts o;
	kf_watcher *w = NULL;
	kf_writer *writer = NULL;
	kf_store *store = NULL;
	kf_reflector *refl = NULL;
	kf_subscriber *sub = NULL;
	kf_loop *loop = NULL;
	kf_err e;

	e = kf_conn_from_kubeconfig(t->kubeconfig, t->context, err, sizeof(err),
				    &conn);
	if (e != KF_OK) {
		fprintf(stderr, "kubefan-tail: %s: %s\n", kf_strerror(e), err);
		return 1;
	}
	if (cluster_scoped(t->group, t->res))
		ns = NULL;
	else if (t->all)
		ns = NULL;
	else if (ns == NULL)
		ns = kf_conn_namespace(conn)[0] ? kf_conn_namespace(conn)
						: "default";
	kf_watcher_opts_init(&o);
	o.group = t->group;
	o.version = t->version;
	o.resource = t->res;
	o.namespace_ = ns;
	o.label_selector = t->lsel;
	o.field_selector = t->fsel;
	if ((e = kf_watcher_alloc(conn, &o, &w)) != KF_OK ||
	    (e = kf_store_shared_alloc(4096, &writer, &store)) != KF_OK ||
	    (e = kf_reflector_alloc(w, writer, &refl)) != KF_OK ||
	    (e = kf_store_subscribe(store, NULL, &sub)) != KF_OK ||
	    (e = kf_loop_alloc(&loop)) != KF_OK ||
	    (e = kf_loop_start(loop)) != KF_OK ||
	    (e = kf_reflector_start(refl, loop)) != KF_OK) {
		fprintf(stderr, "kubefan-tail: cannot start: %s\n",
			kf_strerror(e));
		if (refl == NULL)
			kf_watcher_free(w);
		rc = 1;
		goto out;
	}
	if (!t->json)
		print_header();
	fflush(stdout);
	/* One event per turn; the 200 ms wait bounds the reaction to a
	 * signal. */
	while (!tail_stop) {
		kf_event ev;

		e = kf_subscriber_next(sub, 200, &ev);
		if (e == KF_ETIMEDOUT)
			continue;
		if (e != KF_OK)
			break;
		print_event(&ev, t->json, false);
		fflush(stdout);
		if (ferror(stdout))
			break;
	}
out:
	kf_subscriber_free(sub);
	kf_reflector_free(refl);
	kf_loop_free(loop);
	kf_store_free(store);
	kf_writer_free(writer);
	kf_conn_free(conn);
	return rc;
}

/* ---- broker mode: HELLO ---- */

/* A reader over a reply, per protocol.md's encoding (little-endian). */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
rd_uint(struct rd *r, size_t n)
{
	uint64_t v = 0;

	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

/* A str into buf, terminated; one that does not fit (no valid reply has
 * one) makes the reply bad. buf NULL skips it. */
static void
rd_str(struct rd *r, char *buf, size_t len)
{
	size_t n = (size_t)rd_uint(r, 2);

	if (buf != NULL)
		buf[0] = '\0';
	if (r->bad || (size_t)(r->end - r->p) < n ||
	    (buf != NULL && n >= len)) {
		r->bad = true;
		return;
	}
	if (buf != NULL) {
		memcpy(buf, r->p, n);
		buf[n] = '\0';
	}
	r->p += n;
}

struct hello {
	bool found;	   /* the stream is served */
	int readiness;	   /* its readiness, when found */
	char streams[512]; /* the names served, comma-separated */
};

static bool
is_scheme(const char *addr, const char *s)
{
	return strncmp(addr, s, strlen(s)) == 0;
}

/* Why nothing answered at a broker's request address, for the error
 * message. */
static void
explain_silence(const char *broker, const char *rep, char *why, size_t len)
{
	struct stat st;

	if (is_scheme(rep, "ipc://") && stat(rep + 6, &st) != 0)
		why_fmt(why, len, false,
			"no broker at %s: its request socket %s: %s (is "
			"kubefand running with --listen %s?)",
			broker, rep + 6, strerror(errno), broker);
	else if (is_scheme(rep, "ipc://"))
		why_fmt(why, len, false,
			"no broker at %s: nothing answers on %s (the socket "
			"file exists; a broker that exited uncleanly leaves "
			"it behind)",
			broker, rep);
	else
		why_fmt(why, len, false,
			"no broker at %s: nothing answers on %s (is kubefand "
			"running and listening there?)",
			broker, rep);
}

/* Ask HELLO on rep within timeout_s. 0 and *h filled, or 1 with a
 * message in why. */
static int
hello(const struct tail_opts *t, const char *rep, const char *stream,
      struct hello *h, char *why, size_t len)
{
	static const uint8_t req[16] = {'K', 'F', 1, 16};
	nng_socket s;
	nng_dialer d;
	nng_msg *m = NULL;
	nng_duration to = (nng_duration)(t->timeout_s * 1000);
	struct rd r;
	char name[KF_TAIL_MAX_STREAM + 1];
	uint32_t n;
	int rv;

	memset(h, 0, sizeof(*h));
	if ((rv = nng_req0_open(&s)) != 0) {
		why_fmt(why, len, false, "nng: %s", nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, to);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, to);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	rv = nng_dialer_create(&d, s, rep);
	if (rv == 0 && is_scheme(rep, "tls+tcp://") && t->tls_ca != NULL)
		rv = nng_dialer_set_string(d, NNG_OPT_TLS_CA_FILE, t->tls_ca);
	if (rv == 0 && is_scheme(rep, "tls+tcp://") && t->tls_name != NULL)
		rv = nng_dialer_set_string(d, NNG_OPT_TLS_SERVER_NAME,
					   t->tls_name);
	if (rv == 0)
		nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 100);
	if (rv == 0)
		nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 500);
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		why_fmt(why, len, false, "bad broker address %s: %s", rep,
			nng_strerror(rv));
		nng_close(s);
		return 1;
	}
	rv = nng_msg_alloc(&m, 0);
	if (rv == 0)
		rv = nng_msg_append(m, req, sizeof(req));
	if (rv == 0)
		rv = nng_sendmsg(s, m, 0);
	if (rv != 0 && m != NULL)
		nng_msg_free(m);
	if (rv == 0)
		rv = nng_recvmsg(s, &m, 0);
	if (rv == NNG_ETIMEDOUT) {
		explain_silence(t->broker, rep, why, len);
		why_fmt(why, len, true, "; gave up after %.1f s", t->timeout_s);
	} else if (rv != 0) {
		why_fmt(why, len, false, "%s: %s", rep, nng_strerror(rv));
	}
	nng_close(s);
	if (rv != 0)
		return 1;

	r = (struct rd){nng_msg_body(m),
			(const uint8_t *)nng_msg_body(m) + nng_msg_len(m),
			false};
	if (rd_uint(&r, 2) != 0x464b || rd_uint(&r, 1) != 1 ||
	    rd_uint(&r, 1) != 32) {
		why_fmt(why, len, false,
			"%s does not speak kubefan protocol version 1 (is it "
			"a kubefand request address?)",
			rep);
		nng_msg_free(m);
		return 1;
	}
	rd_uint(&r, 4);	     /* flags */
	rd_uint(&r, 8);	     /* incarnation */
	rd_uint(&r, 1);	     /* status */
	rd_str(&r, NULL, 0); /* broker_version */
	n = (uint32_t)rd_uint(&r, 4);
	/* Bounded by the reply's length: each entry takes >= 19 bytes. */
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		int ready;

		rd_str(&r, name, sizeof(name));
		ready = (int)rd_uint(&r, 1);
		rd_uint(&r, 8);
		rd_uint(&r, 8);
		if (ready > KF_READINESS_STALE)
			r.bad = true;
		if (r.bad)
			break;
		if (strcmp(name, stream) == 0) {
			h->found = true;
			h->readiness = ready;
		}
		/* A list too long for the message ends in "...". */
		why_fmt(h->streams, sizeof(h->streams), true, "%s%s",
			h->streams[0] ? ", " : "", name);
	}
	nng_msg_free(m);
	if (r.bad) {
		why_fmt(why, len, false, "%s: malformed HELLO reply", rep);
		return 1;
	}
	return 0;
}

/* ---- broker mode: progress ---- */

enum { PH_HELLO, PH_SUBSCRIBED, PH_FRAME, PH_DONE };

static struct {
	pthread_t thread;
	bool running;
	bool tty; /* draw one line with \r; else plain lines */
	double t0;
	const char *stream;
	_Atomic int phase;
	_Atomic(kf_remote *) remote;
	atomic_size_t got, total;
	atomic_bool quit;
	bool drawn;
} prog;

static void
prog_draw(void)
{
	double el = now_s() - prog.t0;
	int ph = atomic_load(&prog.phase);
	kf_remote *r = atomic_load(&prog.remote);
	char line[256];

	if (ph == PH_HELLO) {
		snprintf(line, sizeof(line), "connecting to the broker");
	} else if (ph == PH_SUBSCRIBED && r != NULL) {
		kf_remote_stats s;

		kf_remote_stats_get(r, &s);
		snprintf(line, sizeof(line), "%s the snapshot of %s",
			 s.messages == 0 ? "waiting to fetch" : "fetching",
			 prog.stream);
	} else {
		snprintf(line, sizeof(line), "%s: %zu/%zu objects", prog.stream,
			 atomic_load(&prog.got), atomic_load(&prog.total));
	}
	if (prog.tty)
		fprintf(stderr, "\rkubefan-tail: %s, %.1f s\033[K", line, el);
	else
		fprintf(stderr, "kubefan-tail: %s, %.1f s\n", line, el);
	prog.drawn = true;
}

static void *
prog_main(void *arg)
{
	int ticks = 0;

	(void)arg;
	/* 100 ms per turn until the main thread sets quit. */
	while (!atomic_load(&prog.quit)) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL);
		ticks++;
		if (prog.tty && ticks >= 5 && ticks % 2 == 0)
			prog_draw();
		else if (!prog.tty && ticks % 10 == 0)
			prog_draw();
	}
	return NULL;
}

static void
prog_start(bool forced, const char *stream)
{
	prog.tty = isatty(STDERR_FILENO);
	prog.t0 = now_s();
	prog.stream = stream;
	if (!prog.tty && !forced)
		return;
	prog.running = pthread_create(&prog.thread, NULL, prog_main, NULL) == 0;
}

/* Stop drawing; with done, say what was loaded (when a line was drawn or
 * progress was asked for). */
static void
prog_stop(bool done, bool forced)
{
	if (!prog.running)
		return;
	atomic_store(&prog.quit, true);
	pthread_join(prog.thread, NULL);
	prog.running = false;
	if (prog.tty && prog.drawn)
		fprintf(stderr, "\r\033[K");
	if (done && (prog.drawn || forced))
		fprintf(stderr,
			"kubefan-tail: snapshot of %zu objects loaded in "
			"%.1f s\n",
			atomic_load(&prog.got), now_s() - prog.t0);
}

/* ---- broker mode ---- */

static int
cmp_obj(const void *a, const void *b)
{
	const kf_object *x = *(kf_object *const *)a;
	const kf_object *y = *(kf_object *const *)b;
	int c = strcmp(kf_object_namespace(x), kf_object_namespace(y));

	return c ? c : strcmp(kf_object_name(x), kf_object_name(y));
}

/* Why no first state arrived before the deadline. */
static void
explain_no_state(kf_remote *r, const char *pub, const char *rep, char *why,
		 size_t len)
{
	kf_remote_stats s;

	kf_remote_stats_get(r, &s);
	if (s.messages == 0)
		why_fmt(why, len, false,
			"the broker answered on %s but nothing arrived on "
			"its events address %s (wrong --broker or --refs?)",
			rep, pub);
	else if (s.snapshots_dropped > 0)
		why_fmt(why, len, false,
			"the broker dropped the snapshot before it was read "
			"to the end, %llu times (it keeps 64 open at once; "
			"many requesters at the same time push it out)",
			(unsigned long long)s.snapshots_dropped);
	else if (s.request_errors > 0)
		why_fmt(why, len, false,
			"snapshot requests to %s failed or timed out (%llu "
			"times)",
			rep, (unsigned long long)s.request_errors);
	else
		why_fmt(why, len, false,
			"the stream has no state yet (the broker's first "
			"list has not completed)");
}

/* The objects of the first frame, sorted and printed; 0 or 1. */
static int
print_snapshot(kf_object **objs, size_t n, bool json, bool ref_only)
{
	qsort(objs, n, sizeof(*objs), cmp_obj);
	if (!json)
		print_header();
	for (size_t i = 0; i < n; i++) {
		kf_event ev = {.type = KF_EV_INIT_APPLY, .obj = objs[i]};

		print_event(&ev, json, ref_only);
	}
	fflush(stdout);
	return ferror(stdout) ? 1 : 0;
}

struct objs {
	kf_object **v;
	size_t n, cap;
};

static bool
objs_push(struct objs *o, kf_object *obj)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 256;
		kf_object **nv = realloc(o->v, nc * sizeof(*nv));

		if (nv == NULL)
			return false;
		o->v = nv;
		o->cap = nc;
	}
	o->v[o->n++] = kf_object_ref(obj);
	return true;
}

static void
objs_free(struct objs *o)
{
	for (size_t i = 0; i < o->n; i++)
		kf_object_unref(o->v[i]);
	free(o->v);
}

/* Broker-side stream id of RES: plural, or plural.group, or --stream;
 * 0, or 2 after saying why it cannot be one. */
static int
stream_of(const struct tail_opts *t, char *buf, size_t len)
{
	int n;

	if (t->stream != NULL)
		n = snprintf(buf, len, "%s", t->stream);
	else if (t->group[0] != '\0')
		n = snprintf(buf, len, "%s.%s", t->res, t->group);
	else
		n = snprintf(buf, len, "%s", t->res);
	if (n >= 0 && (size_t)n < len && buf[0] != '\0')
		return 0;
	if (t->stream != NULL)
		fprintf(stderr,
			"kubefan-tail: --stream %s: a stream id is 1 to %d "
			"bytes\n",
			t->stream, KF_TAIL_MAX_STREAM);
	else
		fprintf(
		    stderr,
		    "kubefan-tail: --resource %s: its stream id "
		    "(plural.group) is longer than %d bytes; give --stream\n",
		    t->resource, KF_TAIL_MAX_STREAM);
	return 2;
}

/* Why a broker address (as kubefand's --listen: ipc://PATH,
 * tcp://HOST:PORT or tls+tcp://HOST:PORT) cannot be dialed, into why;
 * NULL when it can. With derive, the request address PORT + 1 must exist
 * too. */
static const char *
addr_problem(const char *a, bool derive, char *why, size_t len)
{
	const char *hp, *host, *semi, *colon, *p;
	unsigned long port = 0;
	size_t digits;

	if (is_scheme(a, "ipc://"))
		return a[6] == '\0' ? "the ipc path is empty" : NULL;
	if (is_scheme(a, "tcp://"))
		hp = a + 6;
	else if (is_scheme(a, "tls+tcp://"))
		hp = a + 10;
	else
		return "use ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT";
	/* nng's dialer takes "SOURCE;HOST:PORT"; the host follows the ';'. */
	host = hp;
	semi = strchr(hp, ';');
	if (semi != NULL)
		host = semi + 1;
	if (host[0] == '[') {
		/* [IPv6]:PORT: the port follows the closing bracket. */
		const char *rb = strchr(host, ']');

		if (rb == NULL)
			return "an IPv6 address in [ needs its closing ], as "
			       "tcp://[::1]:PORT";
		colon = rb[1] == ':' && rb > host + 1 ? rb + 1 : NULL;
	} else {
		colon = strrchr(host, ':');
		/* nng takes the last colon for the port and fails to
		 * dial "::1" with "Address invalid" (exit 1): say why. */
		if (colon != NULL &&
		    memchr(host, ':', (size_t)(colon - host)) != NULL) {
			why_fmt(why, len, false,
				"an IPv6 address needs brackets, as "
				"%.*s[%.*s]%s",
				(int)(host - a), a, (int)(colon - host), host,
				colon);
			return why;
		}
	}
	if (colon == NULL || colon == host || colon[1] == '\0')
		return "a tcp address needs HOST:PORT";
	digits = strspn(colon + 1, "0123456789");
	if (digits == 0 || colon[1 + digits] != '\0') {
		why_fmt(why, len, false, "the port %s is not a number",
			colon + 1);
		return why;
	}
	if (digits > 1 && colon[1] == '0') {
		why_fmt(why, len, false, "the port %s has leading zeros",
			colon + 1);
		return why;
	}
	/* At most 6 digits are read: more is out of range anyway. */
	for (p = colon + 1; *p != '\0' && p - colon <= 6; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (digits > 6 || port == 0 || port > 65535) {
		why_fmt(why, len, false,
			"the port %s is out of range (1 to 65535)", colon + 1);
		return why;
	}
	if (derive && port == 65535)
		return "the request address would be port 65536 (PORT + 1); "
		       "give --rep";
	return NULL;
}

/* The broker addresses checked, each named when it cannot be dialed; 0 or
 * 2. */
static int
check_addrs(const struct tail_opts *t)
{
	const char *flag[] = {"--broker", "--rep", "--refs"};
	const char *addr[] = {t->broker, t->rep, t->refs};
	char buf[512];

	for (size_t i = 0; i < 3; i++) {
		const char *why;

		if (addr[i] == NULL)
			continue;
		why = addr_problem(addr[i], i == 0 && t->rep == NULL, buf,
				   sizeof(buf));
		if (why != NULL) {
			fprintf(stderr,
				"kubefan-tail: bad broker address %s %s: %s\n",
				flag[i], addr[i], why);
			return 2;
		}
	}
	return 0;
}

/* The host of a tcp:// or tls+tcp:// address that addr_problem accepted,
 * into buf without IPv6 brackets and without nng's "SOURCE;" prefix of a
 * dialer; false for ipc:// or a host longer than buf. */
static bool
tcp_host(const char *a, char *buf, size_t len)
{
	const char *hp, *colon, *semi;
	size_t n;

	if (is_scheme(a, "tcp://"))
		hp = a + 6;
	else if (is_scheme(a, "tls+tcp://"))
		hp = a + 10;
	else
		return false;
	colon = strrchr(hp, ':');
	semi = memchr(hp, ';', (size_t)(colon - hp));
	if (semi != NULL)
		hp = semi + 1;
	n = (size_t)(colon - hp);
	if (n >= 2 && hp[0] == '[' && hp[n - 1] == ']') {
		hp++;
		n -= 2;
	}
	if (n == 0 || n >= len)
		return false;
	memcpy(buf, hp, n);
	buf[n] = '\0';
	return true;
}

/* One name lookup in flight. Static: a lookup given up on at the timeout
 * may still be running in glibc's thread, which reads the name and hints
 * until it ends; the process exits soon after. */
static struct {
	char host[256];
	struct addrinfo hints;
	struct gaicb req;
} lookup;

/* Resolve host as nng's tcp dialer will (any family), waiting at most
 * timeout_s: 0, the getaddrinfo error, or EAI_AGAIN with *late set when
 * the time ran out. A signal ends the wait as a time-out does. */
static int
resolve(const char *host, double timeout_s, bool *late)
{
	struct gaicb *list[1] = {&lookup.req};
	double deadline = now_s() + timeout_s;
	int rv;

	*late = false;
	snprintf(lookup.host, sizeof(lookup.host), "%s", host);
	memset(&lookup.hints, 0, sizeof(lookup.hints));
	lookup.hints.ai_family = AF_UNSPEC;
	lookup.hints.ai_socktype = SOCK_STREAM;
	lookup.req =
	    (struct gaicb){.ar_name = lookup.host, .ar_request = &lookup.hints};
	if ((rv = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0)
		return rv;
	/* Each turn waits out the rest of the time; a signal that is not
	 * SIGINT or SIGTERM can cut a turn short. */
	while ((rv = gai_error(&lookup.req)) == EAI_INPROGRESS) {
		double left = deadline - now_s();
		struct timespec ts;

		if (left <= 0 || tail_stop) {
			gai_cancel(&lookup.req);
			*late = true;
			return EAI_AGAIN;
		}
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	if (rv == 0)
		freeaddrinfo(lookup.req.ar_result);
	return rv;
}

/* The tcp hosts of the broker addresses resolved before any is dialed,
 * so that a name that does not resolve is named as such rather than
 * reported as a broker that does not answer. 0; 2 when the resolver
 * says the name has no address (the argument is wrong); 1 when it could
 * not answer (no DNS server, a time-out: the environment is at fault). */
static int
resolve_addrs(const struct tail_opts *t)
{
	const char *flag[] = {"--broker", "--rep", "--refs"};
	const char *addr[] = {t->broker, t->rep, t->refs};
	char host[256];

	for (size_t i = 0; i < 3; i++) {
		bool late;
		int rv;

		if (addr[i] == NULL || !tcp_host(addr[i], host, sizeof(host)))
			continue;
		rv = resolve(host, t->timeout_s, &late);
		if (rv == 0)
			continue;
		if (tail_stop) /* a signal: broker_main ends with 0 */
			return 0;
		if (late)
			fprintf(stderr,
				"kubefan-tail: cannot resolve host \"%s\" in "
				"%s %s: no answer within %.1f s\n",
				host, flag[i], addr[i], t->timeout_s);
		else
			fprintf(stderr,
				"kubefan-tail: cannot resolve host \"%s\" in "
				"%s %s: %s\n",
				host, flag[i], addr[i], gai_strerror(rv));
		return rv == EAI_NONAME || rv == EAI_NODATA ||
			       rv == EAI_ADDRFAMILY
			   ? 2
			   : 1;
	}
	return 0;
}

/* One turn of the live loop after the first frame: notes on stderr when
 * the broker goes silent or restarts. */
static void
note_changes(kf_remote *r, kf_remote_stats *last)
{
	kf_remote_stats s;

	kf_remote_stats_get(r, &s);
	if (s.silences > last->silences)
		fprintf(stderr,
			"kubefan-tail: the broker is silent; the view may be "
			"stale (waiting for it)\n");
	if (s.restarts > last->restarts)
		fprintf(stderr,
			"kubefan-tail: the broker restarted; re-syncing\n");
	*last = s;
}

static int
broker_run(struct tail_opts *t, const char *stream, const char *rep)
{
	char why[1024];
	const char *pub = t->ref_only && t->refs ? t->refs : t->broker;
	struct objs snap = {0};
	struct hello h;
	kf_remote_opts o;
	kf_remote *r = NULL;
	kf_remote_stats last = {0};
	bool synced = false;
	double deadline;
	int rc = 0;
	kf_err e;

	prog_start(t->progress, stream);
	if (hello(t, rep, stream, &h, why, sizeof(why)) != 0) {
		prog_stop(false, false);
		fprintf(stderr, "kubefan-tail: %s\n", why);
		return 1;
	}
	if (!h.found) {
		prog_stop(false, false);
		fprintf(stderr,
			"kubefan-tail: the broker at %s has no stream '%s' "
			"(it serves: %s); give --resource as the broker "
			"names it, or --stream\n",
			rep, stream, h.streams[0] ? h.streams : "none");
		return 1;
	}

	kf_remote_opts_init(&o);
	o.pub_addr = pub;
	o.rep_addr = rep;
	o.stream = stream;
	o.namespace_ = t->ns;
	o.refs_only = t->ref_only;
	o.tls_ca_file = t->tls_ca;
	o.tls_server_name = t->tls_name;
	e = kf_remote_subscribe(&o, &r);
	if (e != KF_OK) {
		prog_stop(false, false);
		fprintf(stderr, "kubefan-tail: cannot subscribe to %s: %s\n",
			pub, kf_strerror(e));
		return 1;
	}
	atomic_store(&prog.remote, r);
	atomic_store(&prog.phase, PH_SUBSCRIBED);
	if (!t->snapshot && !t->json)
		print_header();
	deadline = now_s() + t->timeout_s;

	/* One event per turn; the 200 ms wait bounds the reaction to a
	 * signal (a snapshot fetch inside next can take longer). */
	while (!tail_stop) {
		kf_event ev;

		e = kf_remote_try_next(r, &ev);
		if (e == KF_EAGAIN) {
			fflush(stdout);
			e = kf_remote_next(r, 200, &ev);
		}
		if (e == KF_ETIMEDOUT) {
			if (!synced && now_s() > deadline) {
				explain_no_state(r, pub, rep, why, sizeof(why));
				prog_stop(false, false);
				fprintf(stderr,
					"kubefan-tail: no state of stream %s "
					"within %.1f s: %s\n",
					stream, t->timeout_s, why);
				rc = 1;
				break;
			}
			if (synced)
				note_changes(r, &last);
			continue;
		}
		if (e != KF_OK)
			break;
		if (!synced) {
			if (ev.type == KF_EV_INIT) {
				atomic_store(&prog.total,
					     kf_store_len(kf_remote_store(r)));
				atomic_store(&prog.phase, PH_FRAME);
				/* A terminal shows the frame itself. */
				if (!t->snapshot && isatty(STDOUT_FILENO))
					prog_stop(false, false);
			} else if (ev.type == KF_EV_INIT_APPLY) {
				atomic_fetch_add(&prog.got, 1);
			}
		}
		if (t->snapshot) {
			if (ev.type == KF_EV_INIT_APPLY &&
			    !objs_push(&snap, ev.obj)) {
				fprintf(stderr, "kubefan-tail: out of "
						"memory\n");
				rc = 1;
				break;
			}
			if (ev.type != KF_EV_INIT_DONE)
				continue;
			prog_stop(true, t->progress);
			if (!kf_store_is_ready(kf_remote_store(r)))
				fprintf(stderr,
					"kubefan-tail: the broker reports "
					"its watch stale; this state may be "
					"old\n");
			rc = print_snapshot(snap.v, snap.n, t->json,
					    t->ref_only);
			break;
		}
		if (!synced && ev.type == KF_EV_INIT_DONE) {
			synced = true;
			prog_stop(true, t->progress);
			kf_remote_stats_get(r, &last);
		}
		print_event(&ev, t->json, t->ref_only);
		if (ferror(stdout))
			break;
	}
	fflush(stdout);
	prog_stop(false, false);
	objs_free(&snap);
	kf_remote_close(r);
	return rc;
}

/* The addresses and the stream id checked, the hosts resolved, then the
 * stream read. */
static int
broker_main(struct tail_opts *t)
{
	char stream[KF_TAIL_MAX_STREAM + 1];
	char *derived = NULL;
	int rc;

	if ((rc = check_addrs(t)) != 0 ||
	    (rc = stream_of(t, stream, sizeof(stream))) != 0 ||
	    (rc = resolve_addrs(t)) != 0 || tail_stop)
		return rc;
	if (t->rep == NULL &&
	    (derived = kf_remote_rep_address(t->broker)) == NULL) {
		fprintf(stderr, "kubefan-tail: out of memory\n");
		return 1;
	}
	rc = broker_run(t, stream, t->rep != NULL ? t->rep : derived);
	free(derived);
	return rc;
}

/* ---- options ---- */

/* The longest --timeout: INT32_MAX milliseconds (nng_duration). */
#define KF_TAIL_MAX_TIMEOUT_S 2147483

#define RES_FORMS                                                              \
	"expected plural (configmaps), version/plural (v1/pods) or "           \
	"group/version/plural (apps/v1/deployments)"

/* --resource into group, version and res; 0, or 2 after saying what is
 * wrong with it. */
static int
split_resource(struct tail_opts *t)
{
	char *field[3] = {t->group, t->version, t->res};
	size_t size[3] = {sizeof(t->group), sizeof(t->version), sizeof(t->res)};
	static const char *const name[3] = {"group", "version", "plural"};
	const char *part[3], *p = t->resource;
	size_t len[3], n = 0, first;

	/* One turn per '/'-separated part; a fourth part ends the loop. */
	for (;;) {
		const char *slash = strchr(p, '/');

		if (n == 3) {
			fprintf(stderr,
				"kubefan-tail: --resource %s: too many parts; "
				"%s\n",
				t->resource, RES_FORMS);
			return 2;
		}
		part[n] = p;
		len[n++] = slash ? (size_t)(slash - p) : strlen(p);
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	/* The parts fill the last n fields: plural, version, group. */
	first = 3 - n;
	for (size_t i = 0; i < n; i++) {
		size_t f = first + i;

		if (len[i] == 0) {
			fprintf(stderr,
				"kubefan-tail: --resource %s: the %s is empty; "
				"%s\n",
				t->resource, name[f], RES_FORMS);
			return 2;
		}
		if (len[i] >= size[f]) {
			fprintf(stderr,
				"kubefan-tail: --resource %s: the %s is longer "
				"than %zu bytes\n",
				t->resource, name[f], size[f] - 1);
			return 2;
		}
		memcpy(field[f], part[i], len[i]);
		field[f][len[i]] = '\0';
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, 'k'},
	    {"context", required_argument, NULL, 'c'},
	    {"resource", required_argument, NULL, 'r'},
	    {"namespace", required_argument, NULL, 'n'},
	    {"all-namespaces", no_argument, NULL, 'A'},
	    {"selector", required_argument, NULL, 'l'},
	    {"field-selector", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"broker", required_argument, NULL, 'B'},
	    {"rep", required_argument, NULL, 'R'},
	    {"refs", required_argument, NULL, 'F'},
	    {"stream", required_argument, NULL, 'S'},
	    {"snapshot", no_argument, NULL, 's'},
	    {"ref-only", no_argument, NULL, 'O'},
	    {"progress", no_argument, NULL, 'P'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"tls-ca", required_argument, NULL, 'C'},
	    {"tls-server-name", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct tail_opts t = {.version = "v1", .timeout_s = 10};
	bool direct_only = false, broker_only = false;
	struct sigaction sa;
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "n:Al:o:vh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'k':
			t.kubeconfig = optarg;
			direct_only = true;
			break;
		case 'c':
			t.context = optarg;
			direct_only = true;
			break;
		case 'r':
			t.resource = optarg;
			break;
		case 'n':
			t.ns = optarg;
			break;
		case 'A':
			t.all = true;
			break;
		case 'l':
			t.lsel = optarg;
			direct_only = true;
			break;
		case 'f':
			t.fsel = optarg;
			direct_only = true;
			break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr,
					"kubefan-tail: -o takes json only\n");
				return 2;
			}
			t.json = true;
			break;
		case 'B':
			t.broker = optarg;
			break;
		case 'R':
			t.rep = optarg;
			broker_only = true;
			break;
		case 'F':
			t.refs = optarg;
			broker_only = true;
			break;
		case 'S':
			t.stream = optarg;
			broker_only = true;
			break;
		case 's':
			t.snapshot = true;
			broker_only = true;
			break;
		case 'O':
			t.ref_only = true;
			broker_only = true;
			break;
		case 'P':
			t.progress = true;
			broker_only = true;
			break;
		case 'T':
			t.timeout_s = strtod(optarg, &end);
			/* nng takes milliseconds as an int32: a larger value
			 * (or nan, inf) became a negative duration that nng
			 * refused, leaving the socket to wait forever; less
			 * than 1 ms became 0 (give up at once). */
			if (end == optarg || *end != '\0' ||
			    !(t.timeout_s >= 0.001 &&
			      t.timeout_s <= KF_TAIL_MAX_TIMEOUT_S)) {
				fprintf(stderr,
					"kubefan-tail: --timeout takes "
					"seconds from 0.001 to %d, not %s\n",
					KF_TAIL_MAX_TIMEOUT_S, optarg);
				return 2;
			}
			broker_only = true;
			break;
		case 'C':
			t.tls_ca = optarg;
			broker_only = true;
			break;
		case 'N':
			t.tls_name = optarg;
			broker_only = true;
			break;
		case 'v':
			t.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kubefan-tail: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (t.resource == NULL) {
		fprintf(stderr, "kubefan-tail: --resource is required\n");
		return 2;
	}
	if (t.ns != NULL && t.all) {
		fprintf(stderr, "kubefan-tail: -n and -A cannot be given "
				"together\n");
		return 2;
	}
	if (t.broker != NULL && direct_only) {
		fprintf(stderr, "kubefan-tail: --kubeconfig, --context and "
				"selectors are for direct mode; a broker's "
				"streams are set in kubefand's "
				"configuration\n");
		return 2;
	}
	if (t.broker == NULL && broker_only) {
		fprintf(stderr, "kubefan-tail: --rep, --refs, --stream, "
				"--snapshot, --ref-only, --progress, "
				"--timeout and --tls-* need --broker ADDR\n");
		return 2;
	}
	if (split_resource(&t) != 0)
		return 2;
	kf_log_set_sink(tail_log, NULL,
			t.verbose ? KF_LOG_DEBUG : KF_LOG_WARNING);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tail_on_signal;
	/* A second signal ends the process at once (a request to a hung
	 * broker can take request_timeout_ms). */
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (t.broker != NULL)
		return broker_main(&t);
	return direct_main(&t);
}

/*
 * kubefand: the broker daemon. It lists and watches each configured
 * resource once (one reflector each, all on one kf_loop thread), keeps each
 * in a shared store, and publishes every change over nng (docs/broker.md,
 * docs/protocol.md); /metrics, /healthz and /readyz are served over HTTP
 * and logs go to one sink (docs/operations.md). It links the public library
 * like any user, plus its own configuration and operations modules.
 *
 * Threads: the loop (all watches), one feeding thread per stream and the
 * REP thread (publisher), nng's HTTP threads, and this main thread, which
 * only waits for signals (SIGINT and SIGTERM stop, SIGHUP reopens the log
 * file) with those signals blocked everywhere else. Once a stop begins, a
 * watchdog thread ends the process with status 1 if the stop has not
 * finished within KD_STOP_DEADLINE_S.
 */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "httpd.h"
#include "kubeconfig.h"
#include "kubefan/conn.h"
#include "kubefan/log.h"
#include "kubefan/object.h"
#include "kubefan/publisher.h"
#include "kubefan/reflector.h"
#include "kubefan/store.h"
#include "kubefan/subscriber.h"
#include "kubefan/watcher.h"
#include "logsink.h"
#include "metrics.h"

struct kd {
	struct kd_cfg c;
	kfi_logsink *sink;
	kfi_metrics *metrics;
	kfi_httpd *httpd;
	kf_publisher *pub;
	kf_conn *conn;
	kf_loop *loop;
};

static void say(struct kd *d, int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
say(struct kd *d, int level, const char *id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > d->c.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->sink != NULL)
		kfi_logsink_write(d->sink, level, id, msg);
	else
		fprintf(stderr, "kubefand: %s %s %s\n",
			kf_log_level_name(level), id, msg);
}

static void
usage(FILE *f)
{
	fputs(
	    "usage: kubefand [options] --resource R [--resource R ...]\n"
	    "\n"
	    "  --config FILE         YAML configuration "
	    "(docs/operations.md); flags\n"
	    "                        override it\n"
	    "  --check-config        validate the configuration and exit\n"
	    "  --kubeconfig FILE     kubeconfig (default $KUBECONFIG, "
	    "~/.kube/config,\n"
	    "                        else in-cluster)\n"
	    "  --context NAME        kubeconfig context\n"
	    "  --resource R[,opt=v]  watch R: resource (core v1), "
	    "version/resource\n"
	    "                        or group/version/resource; options "
	    "ns=, labels=,\n"
	    "                        fields=, name= (stream id),\n"
	    "                        transform=strip-managed-fields\n"
	    "  --listen ADDR         PUB address (default "
	    "ipc:///tmp/kubefand.pub)\n"
	    "  --refs ADDR           reference-only PUB address (default "
	    "none)\n"
	    "  --rep ADDR            REP address (default: --listen with .rep "
	    "for .pub,\n"
	    "                        or port + 1 for tcp)\n"
	    "  --ipc-mode MODE       ipc socket file mode, octal (default "
	    "0600)\n"
	    "  --allow-remote        allow tcp and http listeners off "
	    "loopback\n"
	    "  --tls-cert FILE       certificate + key (PEM) for tls+tcp://\n"
	    "  --ring-capacity N     events per stream ring (power of two, "
	    "default 4096)\n"
	    "  --batch-us N          longest batching delay (default 2000; 0 "
	    "disables)\n"
	    "  --heartbeat-ms N      heartbeat interval (default 1000)\n"
	    "  --backoff-max-ms N    longest wait between retries of a "
	    "failing watch\n"
	    "                        (default 30000)\n"
	    "  --stale-after-failures N\n"
	    "                        failed requests in a row before a "
	    "resource is\n"
	    "                        reported not ready (default 3)\n"
	    "  --watch-idle-ms N     drop a request silent for this long "
	    "(default 305000)\n"
	    "  --http ADDR           /metrics, /healthz, /readyz (default\n"
	    "                        http://127.0.0.1:9090; none disables)\n"
	    "  --log-dest D          stderr, syslog or a file path (default "
	    "stderr)\n"
	    "  --log-format F        text or json (default text)\n"
	    "  --log-level L         err, warning, notice, info, debug "
	    "(default info)\n"
	    "  --duration SECONDS    exit after this long (default: run until "
	    "SIGTERM)\n"
	    "  -h, --help            this text\n",
	    f);
}

/* A numeric flag's value (optarg); the message names flag and value. */
static int
flag_uint(const char *flag, int base, unsigned long max, unsigned long *out)
{
	char err[512];

	if (kd_parse_uint(flag, optarg, base, max, out, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "kubefand: %s\n", err);
	return -1;
}

static int
flag_positive(const char *flag, unsigned long u)
{
	if (u > 0)
		return 0;
	fprintf(stderr, "kubefand: %s \"%s\": expected 1 or more\n", flag,
		optarg);
	return -1;
}

static int
parse_args(int argc, char **argv, struct kd_cfg *c)
{
	enum {
		O_KUBECONFIG = 256,
		O_CONTEXT,
		O_RESOURCE,
		O_LISTEN,
		O_REFS,
		O_REP,
		O_IPC_MODE,
		O_ALLOW_REMOTE,
		O_TLS_CERT,
		O_RING,
		O_BATCH,
		O_HB,
		O_BACKOFF_MAX,
		O_STALE_AFTER,
		O_WATCH_IDLE,
		O_HTTP,
		O_LOG_DEST,
		O_LOG_FORMAT,
		O_LOG_LEVEL,
		O_DURATION,
		O_CONFIG,
		O_CHECK,
		O_HELP,
	};
	static const struct option longs[] = {
	    {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
	    {"context", required_argument, NULL, O_CONTEXT},
	    {"resource", required_argument, NULL, O_RESOURCE},
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"refs", required_argument, NULL, O_REFS},
	    {"rep", required_argument, NULL, O_REP},
	    {"ipc-mode", required_argument, NULL, O_IPC_MODE},
	    {"allow-remote", no_argument, NULL, O_ALLOW_REMOTE},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"ring-capacity", required_argument, NULL, O_RING},
	    {"batch-us", required_argument, NULL, O_BATCH},
	    {"heartbeat-ms", required_argument, NULL, O_HB},
	    {"backoff-max-ms", required_argument, NULL, O_BACKOFF_MAX},
	    {"stale-after-failures", required_argument, NULL, O_STALE_AFTER},
	    {"watch-idle-ms", required_argument, NULL, O_WATCH_IDLE},
	    {"http", required_argument, NULL, O_HTTP},
	    {"log-dest", required_argument, NULL, O_LOG_DEST},
	    {"log-format", required_argument, NULL, O_LOG_FORMAT},
	    {"log-level", required_argument, NULL, O_LOG_LEVEL},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"config", required_argument, NULL, O_CONFIG},
	    {"check-config", no_argument, NULL, O_CHECK},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	char err[512];
	unsigned long u;
	int opt;

	kd_cfg_defaults(c);
	/* The file first, so that flags override it wherever they are. */
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 &&
		    kd_cfg_load_file(c, argv[i + 1], err, sizeof(err)) != 0) {
			fprintf(stderr, "kubefand: %s\n", err);
			return -1;
		}
	}
	while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (opt) {
		case O_KUBECONFIG:
			kd_set(&c->kubeconfig, optarg);
			break;
		case O_CONTEXT:
			kd_set(&c->context, optarg);
			break;
		case O_RESOURCE:
			if (kd_cfg_add_resource_spec(c, optarg, err,
						     sizeof(err)) != 0) {
				fprintf(stderr, "kubefand: %s\n", err);
				return -1;
			}
			break;
		case O_LISTEN:
			kd_set(&c->listen, optarg);
			break;
		case O_REFS:
			kd_set(&c->refs, optarg);
			break;
		case O_REP:
			kd_set(&c->rep, optarg);
			break;
		case O_IPC_MODE:
			if (flag_uint("--ipc-mode", 8, 0777, &u) != 0)
				return -1;
			c->ipc_mode = (int)u;
			break;
		case O_ALLOW_REMOTE:
			c->allow_remote = true;
			break;
		case O_TLS_CERT:
			kd_set(&c->tls_cert_key, optarg);
			break;
		case O_RING:
			if (flag_uint("--ring-capacity", 10, ULONG_MAX, &u) !=
			    0)
				return -1;
			c->ring_capacity = u;
			break;
		case O_BATCH:
			if (flag_uint("--batch-us", 10, 3600000, &u) != 0)
				return -1;
			c->batch_us = (unsigned)u;
			break;
		case O_HB:
			if (flag_uint("--heartbeat-ms", 10, 3600000, &u) != 0)
				return -1;
			c->heartbeat_ms = (unsigned)u;
			break;
		case O_BACKOFF_MAX:
			if (flag_uint("--backoff-max-ms", 10, 3600000, &u) !=
				0 ||
			    flag_positive("--backoff-max-ms", u) != 0)
				return -1;
			c->backoff_max_ms = (unsigned)u;
			break;
		case O_STALE_AFTER:
			if (flag_uint("--stale-after-failures", 10, 1000, &u) !=
				0 ||
			    flag_positive("--stale-after-failures", u) != 0)
				return -1;
			c->stale_after_failures = (unsigned)u;
			break;
		case O_WATCH_IDLE:
			if (flag_uint("--watch-idle-ms", 10, 3600000, &u) != 0)
				return -1;
			if (u < 1000) {
				fprintf(stderr,
					"kubefand: --watch-idle-ms \"%s\": "
					"expected 1000 or more\n",
					optarg);
				return -1;
			}
			c->watch_idle_ms = (unsigned)u;
			break;
		case O_HTTP:
			kd_set(&c->http, optarg);
			break;
		case O_LOG_DEST:
			kd_set(&c->log_dest, optarg);
			break;
		case O_LOG_FORMAT:
			if (strcmp(optarg, "json") != 0 &&
			    strcmp(optarg, "text") != 0) {
				fprintf(stderr,
					"kubefand: --log-format \"%s\": "
					"expected text or json\n",
					optarg);
				return -1;
			}
			c->log_json = strcmp(optarg, "json") == 0;
			break;
		case O_LOG_LEVEL:
			c->log_level = kd_log_level(optarg);
			if (c->log_level < 0) {
				fprintf(stderr,
					"kubefand: --log-level \"%s\": "
					"expected err, warning, notice, info "
					"or debug\n",
					optarg);
				return -1;
			}
			break;
		case O_DURATION: {
			char *end;

			c->duration = strtod(optarg, &end);
			if (end == optarg || *end != '\0' ||
			    !(c->duration >= 0)) {
				fprintf(stderr,
					"kubefand: --duration \"%s\": "
					"expected seconds, 0 or more\n",
					optarg);
				return -1;
			}
			break;
		}
		case O_CONFIG:
			break; /* read above */
		case O_CHECK:
			c->check_only = true;
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kubefand: unexpected argument %s\n",
			argv[optind]);
		usage(stderr);
		return -1;
	}
	if (kd_cfg_finish(c, err, sizeof(err)) != 0) {
		fprintf(stderr, "kubefand: %s\n", err);
		return -1;
	}
	return 0;
}

static kf_err
open_log(struct kd *d, char *err, size_t len)
{
	struct kfi_logsink_opts o = {0};
	const char *dest = d->c.log_dest;

	o.format = d->c.log_json ? KFI_LOG_JSON : KFI_LOG_TEXT;
	if (dest == NULL || strcmp(dest, "stderr") == 0) {
		o.dest = KFI_LOG_STDERR;
	} else if (strcmp(dest, "syslog") == 0) {
		o.dest = KFI_LOG_SYSLOG;
	} else {
		o.dest = KFI_LOG_FILE;
		o.path = dest;
	}
	return kfi_logsink_alloc(&o, err, len, &d->sink);
}

static kf_err
start_resource(struct kd *d, struct kd_res *r)
{
	kf_watcher_opts wo;
	kf_watcher *w;
	kf_err e;

	e = kf_store_shared_alloc(d->c.ring_capacity, &r->w, &r->st);
	if (e != KF_OK)
		return e;
	kf_watcher_opts_init(&wo);
	wo.group = r->group;
	wo.version = r->version;
	wo.resource = r->resource;
	wo.namespace_ = r->ns;
	wo.label_selector = r->labels;
	wo.field_selector = r->fields;
	wo.backoff_max_ms = d->c.backoff_max_ms;
	wo.stale_after_failures = d->c.stale_after_failures;
	wo.idle_ms = d->c.watch_idle_ms;
	if (r->strip)
		wo.transform = kf_transform_strip_managed_fields;
	e = kf_watcher_alloc(d->conn, &wo, &w);
	if (e != KF_OK)
		return e;
	e = kf_reflector_alloc(w, r->w, &r->refl);
	if (e != KF_OK) {
		kf_watcher_free(w);
		return e;
	}
	return kf_reflector_start(r->refl, d->loop);
}

/* ---- operations: metrics and readiness ---- */

/* Monotonic milliseconds, the clock of kf_watcher_stats.last_event_ms. */
static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One resource: its watcher, its store and the store's ring. The ring's
 * only reader in kubefand is the publisher's feed of the stream, so the
 * slowest lag is the feed's lag. */
static void
collect_resource(struct kd *d, size_t i, kfi_mw *w)
{
	struct kd_res *r = &d->c.res[i];
	struct kfi_resource_sample rs = {0};
	struct kfi_ring_sample ring = {0};
	kf_watcher_stats ws;
	kf_ring_stats rst;
	kf_sub_stats fs;
	bool feed;

	kf_watcher_stats_get(kf_reflector_watcher(r->refl), &ws);
	kfi_mw_watcher(w, r->stream, &ws);
	rs.objects = kf_store_len(r->st);
	rs.ready = kf_store_is_ready(r->st);
	rs.last_event_age_s = -1;
	if (ws.last_event_ms != 0) {
		uint64_t now = mono_ms();

		rs.last_event_age_s =
		    now > ws.last_event_ms
			? (double)(now - ws.last_event_ms) / 1e3
			: 0;
	}
	rs.last_list_s =
	    ws.last_list_us != 0 ? (double)ws.last_list_us / 1e6 : -1;
	kfi_mw_resource(w, r->stream, &rs);
	/* The publisher's streams are added in configuration order. */
	feed = d->pub != NULL &&
	       kf_publisher_stream_feed_stats(d->pub, i, &fs) == KF_OK;
	if (kf_store_ring_stats(r->st, &rst) == KF_OK) {
		ring.capacity = rst.capacity;
		ring.head = rst.head;
		ring.published = rst.head;
		ring.slowest_lag = feed ? fs.lag : 0;
		kfi_mw_ring(w, r->stream, &ring);
	}
	if (feed)
		kfi_mw_subscriber(w, r->stream, "publisher", &fs);
}

static void
collect(void *arg, kfi_mw *w)
{
	struct kd *d = arg;
	kf_publisher_stats ps;

	kfi_mw_build_info(w);
	for (size_t i = 0; i < d->c.nres; i++)
		if (d->c.res[i].refl != NULL)
			collect_resource(d, i, w);
	if (d->pub == NULL)
		return;
	kf_publisher_stats_get(d->pub, &ps);
	kfi_mw_publisher(w, &(struct kfi_publisher_sample){
				.messages = ps.messages,
				.bytes = ps.bytes,
				.batches = ps.batches,
				.drops = ps.send_errors,
				.heartbeats = ps.heartbeats,
				.resets = ps.resets,
				.lagged = ps.lagged,
				.requests = ps.requests,
				.bad_requests = ps.bad_requests,
				.snapshots = ps.snapshots,
				.stalled = ps.stalled_requesters,
			    });
	for (size_t i = 0; i < kf_publisher_stream_count(d->pub); i++) {
		kf_publisher_stream_stats ss;
		const char *name =
		    kf_publisher_stream_stats_get(d->pub, i, &ss);

		kfi_mw_publisher_stream(w, name, ss.seq, ss.objects);
	}
}

static bool
resource_ready(void *arg, char *why, size_t len)
{
	struct kd_res *r = arg;

	return kf_store_readiness(r->st, why, len) == KF_READINESS_READY;
}

static kf_err
start_http(struct kd *d, char *err, size_t len)
{
	struct kfi_httpd_opts ho = {0};
	kf_err e;

	if (d->c.http != NULL && strcmp(d->c.http, "none") == 0)
		return KF_OK;
	if ((e = kfi_metrics_alloc(&d->metrics)) != KF_OK ||
	    (e = kfi_metrics_add_process(d->metrics)) != KF_OK ||
	    (e = kfi_metrics_declare_kubefand(d->metrics, KF_VERSION_STRING)) !=
		KF_OK ||
	    (e = kfi_metrics_add_collector(d->metrics, collect, d)) != KF_OK) {
		snprintf(err, len, "metrics: %s", kf_strerror(e));
		return e;
	}
	ho.url = d->c.http;
	ho.allow_remote = d->c.allow_remote;
	ho.metrics = d->metrics;
	if ((e = kfi_httpd_alloc(&ho, err, len, &d->httpd)) != KF_OK)
		return e;
	for (size_t i = 0; i < d->c.nres; i++) {
		e = kfi_httpd_add_check(d->httpd, d->c.res[i].stream,
					resource_ready, &d->c.res[i]);
		if (e != KF_OK)
			return e;
	}
	return kfi_httpd_start(d->httpd, err, len);
}

static void
log_stats(struct kd *d)
{
	kf_publisher_stats ps;

	kf_publisher_stats_get(d->pub, &ps);
	say(d, KF_LOG_INFO, "KF-DAEMON-STATS",
	    "messages %llu events %llu bytes %llu heartbeats %llu resets "
	    "%llu lagged %llu requests %llu bad-requests %llu snapshots %llu",
	    (unsigned long long)ps.messages, (unsigned long long)ps.events,
	    (unsigned long long)ps.bytes, (unsigned long long)ps.heartbeats,
	    (unsigned long long)ps.resets, (unsigned long long)ps.lagged,
	    (unsigned long long)ps.requests,
	    (unsigned long long)ps.bad_requests,
	    (unsigned long long)ps.snapshots);
	for (size_t i = 0; i < kf_publisher_stream_count(d->pub); i++) {
		kf_publisher_stream_stats ss;
		const char *name =
		    kf_publisher_stream_stats_get(d->pub, i, &ss);

		say(d, KF_LOG_INFO, "KF-DAEMON-STREAM",
		    "stream %s: seq %llu objects %zu %s", name,
		    (unsigned long long)ss.seq, ss.objects,
		    ss.synced ? "synced" : "not synced");
	}
}

/* Wait for SIGINT/SIGTERM or the end of --duration; SIGHUP reopens the
 * log; stats every minute. */
static void
wait_for_end(struct kd *d, const sigset_t *set)
{
	struct timespec start, now, tick = {.tv_sec = 1};
	double next_stats = 60;
	char err[256];

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		double up;
		int sig = sigtimedwait(set, NULL, &tick);

		if (sig == SIGINT || sig == SIGTERM) {
			say(d, KF_LOG_NOTICE, "KF-DAEMON-SIGNAL",
			    "signal %d: stopping", sig);
			return;
		}
		if (sig == SIGHUP &&
		    kfi_logsink_reopen(d->sink, err, sizeof(err)) != KF_OK)
			say(d, KF_LOG_ERR, "KF-DAEMON-LOG",
			    "reopening the log: %s", err);
		clock_gettime(CLOCK_MONOTONIC, &now);
		up = (double)(now.tv_sec - start.tv_sec) +
		     (double)(now.tv_nsec - start.tv_nsec) / 1e9;
		if (d->c.duration > 0 && up >= d->c.duration) {
			say(d, KF_LOG_NOTICE, "KF-DAEMON-DURATION",
			    "ran %.0f s: stopping", up);
			return;
		}
		if (up >= next_stats) {
			log_stats(d);
			next_stats += 60;
		}
	}
}

static kf_err
open_conn(struct kd *d, char *err, size_t len)
{
	if (d->c.kubeconfig != NULL ||
	    getenv("KUBERNETES_SERVICE_HOST") == NULL)
		return kf_conn_from_kubeconfig(d->c.kubeconfig, d->c.context,
					       err, len, &d->conn);
	return kf_conn_in_cluster(err, len, &d->conn);
}

static kf_err
run(struct kd *d, const sigset_t *set)
{
	kf_publisher_opts po = {0};
	char err[1024] = "";
	kf_err e;

	po.pub_addr = d->c.listen;
	po.refs_addr = d->c.refs;
	po.rep_addr = d->c.rep;
	po.ipc_mode = d->c.ipc_mode;
	po.allow_remote = d->c.allow_remote;
	po.tls_cert_key_file = d->c.tls_cert_key;
	po.batch_delay_us = d->c.batch_us;
	po.heartbeat_ms = d->c.heartbeat_ms;
	if ((e = kf_publisher_alloc(&po, err, sizeof(err), &d->pub)) != KF_OK) {
		say(d, KF_LOG_ERR, "KF-DAEMON-LISTEN", "listen: %s: %s",
		    kf_strerror(e), err);
		return e;
	}
	if ((e = kf_loop_alloc(&d->loop)) != KF_OK ||
	    (e = kf_loop_start(d->loop)) != KF_OK) {
		say(d, KF_LOG_ERR, "KF-DAEMON-LOOP", "loop: %s",
		    kf_strerror(e));
		return e;
	}
	for (size_t i = 0; i < d->c.nres; i++) {
		struct kd_res *r = &d->c.res[i];

		e = start_resource(d, r);
		if (e == KF_OK)
			e = kf_publisher_add_stream(d->pub, r->stream, r->st);
		if (e != KF_OK) {
			say(d, KF_LOG_ERR, "KF-DAEMON-RESOURCE",
			    "resource %s: %s", r->spec, kf_strerror(e));
			return e;
		}
		say(d, KF_LOG_INFO, "KF-DAEMON-STREAM",
		    "stream %s: %s%s%s/%s%s%s", r->stream, r->group,
		    r->group[0] ? "/" : "", r->version, r->resource,
		    r->ns ? " in namespace " : "", r->ns ? r->ns : "");
	}
	if ((e = kf_publisher_start(d->pub)) != KF_OK) {
		say(d, KF_LOG_ERR, "KF-DAEMON-PUBLISH", "publisher: %s",
		    kf_strerror(e));
		return e;
	}
	if ((e = start_http(d, err, sizeof(err))) != KF_OK) {
		say(d, KF_LOG_ERR, "KF-DAEMON-HTTP", "http: %s", err);
		return e;
	}
	say(d, KF_LOG_NOTICE, "KF-DAEMON-READY",
	    "publishing %zu stream(s) on %s, requests on %s, http %s",
	    d->c.nres, d->c.listen, d->c.rep,
	    d->httpd ? d->c.http ? d->c.http : KFI_HTTPD_DEFAULT_URL : "off");
	wait_for_end(d, set);
	log_stats(d);
	return KF_OK;
}

/* How long the stop may take before kubefand gives up on it. */
#define KD_STOP_DEADLINE_S 10

static void *
stop_watchdog(void *arg)
{
	struct kd *d = arg;
	struct timespec t = {.tv_sec = KD_STOP_DEADLINE_S};

	while (nanosleep(&t, &t) != 0)
		;
	say(d, KF_LOG_ERR, "KF-DAEMON-STOP-TIMEOUT",
	    "stopping took more than %d s; exiting now", KD_STOP_DEADLINE_S);
	_exit(1);
	return NULL;
}

/* Bound the stop: a thread that ends the process if shutdown_all hangs. */
static void
arm_stop_deadline(struct kd *d)
{
	pthread_t t;

	if (pthread_create(&t, NULL, stop_watchdog, d) == 0)
		pthread_detach(t);
}

/* Readiness off first (load balancers stop routing), then the watches, so
 * nothing feeds the stores; the HTTP server (its collectors read the
 * reflectors); the publisher (its subscriptions); the stores. */
static void
shutdown_all(struct kd *d)
{
	if (d->httpd != NULL)
		kfi_httpd_set_stopping(d->httpd);
	for (size_t i = 0; i < d->c.nres; i++)
		if (d->c.res[i].refl != NULL)
			kf_reflector_stop(d->c.res[i].refl);
	if (d->loop != NULL)
		kf_loop_stop(d->loop);
	kfi_httpd_free(d->httpd);
	kfi_metrics_free(d->metrics);
	kf_publisher_free(d->pub);
	for (size_t i = 0; i < d->c.nres; i++) {
		struct kd_res *r = &d->c.res[i];

		kf_reflector_free(r->refl);
		if (r->st != NULL)
			kf_store_free(r->st);
		if (r->w != NULL)
			kf_writer_free(r->w);
	}
	kf_loop_free(d->loop);
	kf_conn_free(d->conn);
}

/* --check-config: the HTTP address as the server would take it, without
 * binding it. */
static kf_err
check_http(const struct kd_cfg *c, char *err, size_t len)
{
	struct kfi_httpd_opts ho = {0};
	kfi_httpd *h;
	kf_err e;

	if (c->http != NULL && strcmp(c->http, "none") == 0)
		return KF_OK;
	ho.url = c->http;
	ho.allow_remote = c->allow_remote;
	e = kfi_httpd_alloc(&ho, err, len, &h);
	if (e == KF_OK)
		kfi_httpd_free(h);
	return e;
}

int
main(int argc, char **argv)
{
	static struct kd d;
	sigset_t set;
	char err[1024] = "";
	kf_err e;
	int rc;

	if (parse_args(argc, argv, &d.c) != 0)
		return 2;
	if ((e = open_log(&d, err, sizeof(err))) != KF_OK) {
		fprintf(stderr, "kubefand: logDest (--log-dest): %s\n", err);
		return 2;
	}
	if ((e = open_conn(&d, err, sizeof(err))) != KF_OK) {
		/* Without any kubeconfig, the other source is not there
		 * either (open_conn tried the service account if it were). */
		if (strncmp(err, KFI_KUBECONFIG_NONE,
			    strlen(KFI_KUBECONFIG_NONE)) == 0)
			snprintf(err + strlen(err), sizeof(err) - strlen(err),
				 "; not in a cluster either "
				 "($KUBERNETES_SERVICE_HOST is unset, so no "
				 "service account)");
		/* --check-config prints its findings as plain lines. */
		if (d.c.check_only)
			fprintf(stderr, "kubefand: credentials: %s: %s\n",
				kf_strerror(e), err);
		else
			say(&d, KF_LOG_ERR, "KF-DAEMON-CONN",
			    "credentials: %s: %s", kf_strerror(e), err);
		return d.c.check_only ? 2 : 1;
	}
	if (d.c.check_only && check_http(&d.c, err, sizeof(err)) != KF_OK) {
		fprintf(stderr, "kubefand: http (--http): %s\n", err);
		kf_conn_free(d.conn);
		kd_cfg_fini(&d.c);
		kfi_logsink_free(d.sink);
		return 2;
	}
	if (d.c.check_only) {
		printf("kubefand: configuration is usable (%zu resource(s), "
		       "API server %s)\n",
		       d.c.nres, kf_conn_server(d.conn));
		kf_conn_free(d.conn);
		kd_cfg_fini(&d.c);
		kfi_logsink_free(d.sink);
		return 0;
	}
	kf_log_set_sink(kfi_logsink_write, d.sink, d.c.log_level);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	say(&d, KF_LOG_INFO, "KF-DAEMON-START", "kubefand %s, API server %s",
	    KF_VERSION_STRING, kf_conn_server(d.conn));

	rc = run(&d, &set) == KF_OK ? 0 : 1;
	arm_stop_deadline(&d);
	shutdown_all(&d);
	say(&d, KF_LOG_NOTICE, "KF-DAEMON-EXIT", "stopped");
	kf_log_set_sink(NULL, NULL, 0);
	kfi_logsink_free(d.sink);
	kd_cfg_fini(&d.c);
	return rc;
}

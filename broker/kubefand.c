/*
 * kubefand: the broker daemon. It lists and watches each configured
 * resource once (one reflector each, all on one kf_loop thread), keeps each
 * in a shared store, and publishes every change over nng (docs/broker.md,
 * docs/protocol.md). It links the public library like any user, plus the
 * publisher's internal header.
 *
 * Threads: the loop (all watches), one feeding thread per stream and the
 * REP thread (publisher.c), and this main thread, which only waits for a
 * signal or the end of --duration with SIGINT and SIGTERM blocked
 * everywhere else.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/conn.h"
#include "kubefan/log.h"
#include "kubefan/object.h"
#include "kubefan/publisher.h"
#include "kubefan/reflector.h"
#include "kubefan/store.h"
#include "kubefan/watcher.h"
#include "config.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void
log_sink(void *arg, int level, const char *id, const char *msg)
{
	struct kd_cfg *c = arg;
	struct timespec ts;
	struct tm tm;
	char when[40];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mu);
	if (c->log_json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "ts", json_object_new_string(when));
		json_object_object_add(
		    o, "level",
		    json_object_new_string(kf_log_level_name(level)));
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		fprintf(
		    stderr, "%s\n",
		    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		fprintf(stderr, "%s.%03ldZ %-7s %s %s\n", when,
			ts.tv_nsec / 1000000, kf_log_level_name(level), id,
			msg);
	}
	pthread_mutex_unlock(&log_mu);
}

static void say(struct kd_cfg *c, int level, const char *id, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

static void
say(struct kd_cfg *c, int level, const char *id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > c->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_sink(c, level, id, msg);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: kubefand [options] --resource R [--resource R ...]\n"
		"\n"
		"  --config FILE         YAML configuration (docs/broker.md); "
		"flags override it\n"
		"  --kubeconfig FILE     kubeconfig (default $KUBECONFIG, "
		"~/.kube/config,\n"
		"                        else in-cluster)\n"
		"  --context NAME        kubeconfig context\n"
		"  --resource R[,opt=v]  watch R: resource (core v1), "
		"version/resource\n"
		"                        or group/version/resource; options "
		"ns=, labels=,\n"
		"                        fields=, name= (stream id), "
		"transform=strip-managed-fields\n"
		"  --listen ADDR         PUB address (default "
		"ipc:///tmp/kubefand.pub)\n"
		"  --refs ADDR           reference-only PUB address (default "
		"none)\n"
		"  --rep ADDR            REP address (default: --listen with "
		".rep for .pub,\n"
		"                        or port + 1 for tcp)\n"
		"  --ipc-mode MODE       ipc socket file mode, octal (default "
		"0600)\n"
		"  --allow-remote        allow tcp listeners off loopback\n"
		"  --tls-cert FILE       certificate + key (PEM) for "
		"tls+tcp://\n"
		"  --ring-capacity N     events per stream ring (power of two, "
		"default 4096)\n"
		"  --batch-us N          longest batching delay (default "
		"2000; 0 disables)\n"
		"  --heartbeat-ms N      heartbeat interval (default 1000)\n"
		"  --log-format F        text or json (default text)\n"
		"  --log-level L         err, warning, notice, info, debug "
		"(default info)\n"
		"  --duration SECONDS    exit after this long (default: run "
		"until SIGTERM)\n");
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
		O_LOG_FORMAT,
		O_LOG_LEVEL,
		O_DURATION,
		O_CONFIG,
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
	    {"log-format", required_argument, NULL, O_LOG_FORMAT},
	    {"log-level", required_argument, NULL, O_LOG_LEVEL},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"config", required_argument, NULL, O_CONFIG},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	char err[512];
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
		case O_CONFIG:
			break; /* read above */
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
			c->ipc_mode = (int)strtol(optarg, NULL, 8);
			break;
		case O_ALLOW_REMOTE:
			c->allow_remote = true;
			break;
		case O_TLS_CERT:
			kd_set(&c->tls_cert_key, optarg);
			break;
		case O_RING:
			c->ring_capacity = strtoul(optarg, NULL, 10);
			break;
		case O_BATCH:
			c->batch_us = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case O_HB:
			c->heartbeat_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case O_LOG_FORMAT:
			if (strcmp(optarg, "json") != 0 &&
			    strcmp(optarg, "text") != 0) {
				fprintf(stderr, "kubefand: --log-format is "
						"text or json\n");
				return -1;
			}
			c->log_json = strcmp(optarg, "json") == 0;
			break;
		case O_LOG_LEVEL:
			c->log_level = kd_log_level(optarg);
			if (c->log_level < 0) {
				fprintf(stderr,
					"kubefand: unknown log level "
					"%s\n",
					optarg);
				return -1;
			}
			break;
		case O_DURATION:
			c->duration = strtod(optarg, NULL);
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
start_resource(struct kd_cfg *c, kf_conn *conn, kf_loop *loop, struct kd_res *r)
{
	kf_watcher_opts wo;
	kf_watcher *w;
	kf_err e;

	e = kf_store_shared_alloc(c->ring_capacity, &r->w, &r->st);
	if (e != KF_OK)
		return e;
	kf_watcher_opts_init(&wo);
	wo.group = r->group;
	wo.version = r->version;
	wo.resource = r->resource;
	wo.namespace_ = r->ns;
	wo.label_selector = r->labels;
	wo.field_selector = r->fields;
	if (r->strip)
		wo.transform = kf_transform_strip_managed_fields;
	e = kf_watcher_alloc(conn, &wo, &w);
	if (e != KF_OK)
		return e;
	e = kf_reflector_alloc(w, r->w, &r->refl);
	if (e != KF_OK) {
		kf_watcher_free(w);
		return e;
	}
	return kf_reflector_start(r->refl, loop);
}

static void
log_stats(struct kd_cfg *c, kf_publisher *p)
{
	kf_publisher_stats ps;

	kf_publisher_stats_get(p, &ps);
	say(c, KF_LOG_INFO, "KF-DAEMON-STATS",
	    "messages %llu events %llu bytes %llu heartbeats %llu resets "
	    "%llu lagged %llu requests %llu bad-requests %llu snapshots %llu",
	    (unsigned long long)ps.messages, (unsigned long long)ps.events,
	    (unsigned long long)ps.bytes, (unsigned long long)ps.heartbeats,
	    (unsigned long long)ps.resets, (unsigned long long)ps.lagged,
	    (unsigned long long)ps.requests,
	    (unsigned long long)ps.bad_requests,
	    (unsigned long long)ps.snapshots);
	for (size_t i = 0; i < kf_publisher_stream_count(p); i++) {
		kf_publisher_stream_stats ss;
		const char *name = kf_publisher_stream_stats_get(p, i, &ss);

		say(c, KF_LOG_INFO, "KF-DAEMON-STREAM",
		    "stream %s: seq %llu objects %zu %s", name,
		    (unsigned long long)ss.seq, ss.objects,
		    ss.synced ? "synced" : "not synced");
	}
}

/* Wait for SIGINT/SIGTERM or the end of --duration; stats every minute. */
static void
wait_for_end(struct kd_cfg *c, kf_publisher *p, const sigset_t *set)
{
	struct timespec start, now, tick = {.tv_sec = 1};
	double next_stats = 60;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		double up;
		int sig = sigtimedwait(set, NULL, &tick);

		if (sig == SIGINT || sig == SIGTERM) {
			say(c, KF_LOG_NOTICE, "KF-DAEMON-SIGNAL",
			    "signal %d: stopping", sig);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		up = (double)(now.tv_sec - start.tv_sec) +
		     (double)(now.tv_nsec - start.tv_nsec) / 1e9;
		if (c->duration > 0 && up >= c->duration) {
			say(c, KF_LOG_NOTICE, "KF-DAEMON-DURATION",
			    "ran %.0f s: stopping", up);
			return;
		}
		if (up >= next_stats) {
			log_stats(c, p);
			next_stats += 60;
		}
	}
}

int
main(int argc, char **argv)
{
	static struct kd_cfg c;
	kf_publisher_opts po = {0};
	kf_publisher *pub = NULL;
	kf_conn *conn = NULL;
	kf_loop *loop = NULL;
	sigset_t set;
	char err[1024] = "";
	kf_err e;
	int rc = 1;

	if (parse_args(argc, argv, &c) != 0)
		return 2;
	kf_log_set_sink(log_sink, &c, c.log_level);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (c.kubeconfig != NULL || getenv("KUBERNETES_SERVICE_HOST") == NULL)
		e = kf_conn_from_kubeconfig(c.kubeconfig, c.context, err,
					    sizeof(err), &conn);
	else
		e = kf_conn_in_cluster(err, sizeof(err), &conn);
	if (e != KF_OK) {
		say(&c, KF_LOG_ERR, "KF-DAEMON-CONN", "credentials: %s: %s",
		    kf_strerror(e), err);
		return 1;
	}
	say(&c, KF_LOG_INFO, "KF-DAEMON-START", "kubefand %s, API server %s",
	    KF_VERSION_STRING, kf_conn_server(conn));

	po.pub_addr = c.listen;
	po.refs_addr = c.refs;
	po.rep_addr = c.rep;
	po.ipc_mode = c.ipc_mode;
	po.allow_remote = c.allow_remote;
	po.tls_cert_key_file = c.tls_cert_key;
	po.batch_delay_us = c.batch_us;
	po.heartbeat_ms = c.heartbeat_ms;
	e = kf_publisher_alloc(&po, err, sizeof(err), &pub);
	if (e != KF_OK) {
		say(&c, KF_LOG_ERR, "KF-DAEMON-LISTEN", "listen: %s: %s",
		    kf_strerror(e), err);
		goto out;
	}
	if ((e = kf_loop_alloc(&loop)) != KF_OK ||
	    (e = kf_loop_start(loop)) != KF_OK) {
		say(&c, KF_LOG_ERR, "KF-DAEMON-LOOP", "loop: %s",
		    kf_strerror(e));
		goto out;
	}
	for (size_t i = 0; i < c.nres; i++) {
		struct kd_res *r = &c.res[i];

		e = start_resource(&c, conn, loop, r);
		if (e == KF_OK)
			e = kf_publisher_add_stream(pub, r->stream, r->st);
		if (e != KF_OK) {
			say(&c, KF_LOG_ERR, "KF-DAEMON-RESOURCE",
			    "--resource %s: %s", r->spec, kf_strerror(e));
			goto out;
		}
		say(&c, KF_LOG_INFO, "KF-DAEMON-STREAM",
		    "stream %s: %s%s%s/%s%s%s", r->stream, r->group,
		    r->group[0] ? "/" : "", r->version, r->resource,
		    r->ns ? " in namespace " : "", r->ns ? r->ns : "");
	}
	if ((e = kf_publisher_start(pub)) != KF_OK) {
		say(&c, KF_LOG_ERR, "KF-DAEMON-PUBLISH", "publisher: %s",
		    kf_strerror(e));
		goto out;
	}
	say(&c, KF_LOG_NOTICE, "KF-DAEMON-READY",
	    "publishing %zu stream(s) on %s, requests on %s", c.nres, c.listen,
	    c.rep);
	wait_for_end(&c, pub, &set);
	log_stats(&c, pub);
	rc = 0;
out:
	/* Watches first, so nothing feeds the stores; then the publisher
	 * (its subscriptions), then the stores. */
	for (size_t i = 0; i < c.nres; i++)
		if (c.res[i].refl != NULL)
			kf_reflector_stop(c.res[i].refl);
	if (loop != NULL)
		kf_loop_stop(loop);
	kf_publisher_free(pub);
	for (size_t i = 0; i < c.nres; i++) {
		struct kd_res *r = &c.res[i];

		kf_reflector_free(r->refl);
		if (r->st != NULL)
			kf_store_free(r->st);
		if (r->w != NULL)
			kf_writer_free(r->w);
	}
	kf_loop_free(loop);
	kf_conn_free(conn);
	say(&c, KF_LOG_NOTICE, "KF-DAEMON-EXIT", "stopped");
	kd_cfg_fini(&c);
	return rc;
}

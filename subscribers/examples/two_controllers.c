/*
 * kubefan-two-controllers: two controllers with different jobs on one
 * reflector. One watch of ConfigMaps fills one shared store; each
 * controller subscribes to that store (kf_controller_for_shared_stream)
 * and has its own work queue and workers:
 *
 *   keys     counts the data keys of each ConfigMap
 *   policy   checks that each ConfigMap carries a required label
 *
 * Each reconcile prints one line:
 *
 *   [keys] reconcile ns/name rv=123 keys=3
 *   [policy] reconcile ns/name rv=123 ok team=blue
 *   [policy] reconcile ns/name rv=123 violation: no label "team"
 *   [keys] reconcile ns/name gone
 *
 * "synced" once the store holds the first list, and at exit the counters of
 * the one watch both controllers share and of each controller:
 *
 *   watch watchers=1 watch_requests=1 lists=1 stream_lists=1 ...
 *   controller keys reconciles=5 errors=0
 *
 * Usage: kubefan-two-controllers [--kubeconfig PATH] [--context NAME]
 *        [--namespace NS] [--label KEY] [--duration SECONDS] [--workers N]
 * The kubeconfig defaults to $KUBECONFIG; without --namespace it watches
 * all namespaces; without --duration it runs until SIGINT or SIGTERM.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/conn.h"
#include "kubefan/controller.h"
#include "kubefan/object.h"
#include "kubefan/reflector.h"
#include "kubefan/store.h"
#include "kubefan/watcher.h"

static volatile sig_atomic_t stop;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* One whole line at a time: workers of both controllers print. */
static void
say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_mu);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

/* The number of members of the JSON object in `json` (0 when it is not an
 * object). Counts the strings followed by ':' at depth 1. */
static size_t
count_members(const char *json)
{
	size_t n = 0;
	int depth = 0;

	/* Bounded by the text's length; a string is skipped whole. */
	for (const char *p = json; *p != '\0'; p++) {
		if (*p == '"') {
			const char *q = p + 1;

			while (*q != '\0' && *q != '"')
				q += (q[0] == '\\' && q[1] != '\0') ? 2 : 1;
			if (*q == '\0')
				break;
			p = q;
			if (depth != 1)
				continue;
			while (q[1] == ' ' || q[1] == '\n' || q[1] == '\t' ||
			       q[1] == '\r')
				q++;
			if (q[1] == ':')
				n++;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		}
	}
	return n;
}

/* Controller A: count the keys under data and binaryData. */
static kf_err
keys_reconcile(void *arg, const kf_objref *ref, kf_object *obj,
	       int64_t *requeue_ms)
{
	const char *fields[] = {"data", "binaryData"};
	size_t keys = 0;

	(void)arg;
	(void)requeue_ms;
	if (obj == NULL) {
		say("[keys] reconcile %s/%s gone\n", ref->namespace_,
		    ref->name);
		return KF_OK;
	}
	for (size_t i = 0; i < 2; i++) {
		char *v = NULL;

		if (kf_object_field(obj, fields[i], &v) == KF_OK)
			keys += count_members(v);
		free(v);
	}
	say("[keys] reconcile %s/%s rv=%s keys=%zu\n", ref->namespace_,
	    ref->name, kf_object_resource_version(obj), keys);
	return KF_OK;
}

/* Controller B: every ConfigMap must carry the label named by arg. */
static kf_err
policy_reconcile(void *arg, const kf_objref *ref, kf_object *obj,
		 int64_t *requeue_ms)
{
	const char *label = arg;
	const char *v;

	(void)requeue_ms;
	if (obj == NULL) {
		say("[policy] reconcile %s/%s gone\n", ref->namespace_,
		    ref->name);
		return KF_OK;
	}
	v = kf_object_label(obj, label);
	if (v == NULL)
		say("[policy] reconcile %s/%s rv=%s violation: no label "
		    "\"%s\"\n",
		    ref->namespace_, ref->name, kf_object_resource_version(obj),
		    label);
	else
		say("[policy] reconcile %s/%s rv=%s ok %s=%s\n",
		    ref->namespace_, ref->name, kf_object_resource_version(obj),
		    label, v);
	return KF_OK;
}

struct opts {
	const char *kubeconfig, *context, *ns, *label;
	long duration_s; /* < 0: until a signal */
	unsigned workers;
};

static int
usage(void)
{
	fprintf(stderr,
		"usage: kubefan-two-controllers [--kubeconfig PATH] "
		"[--context NAME]\n"
		"       [--namespace NS] [--label KEY] [--duration SECONDS] "
		"[--workers N]\n");
	return 2;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"kubeconfig", required_argument, NULL, 'k'},
	    {"context", required_argument, NULL, 'c'},
	    {"namespace", required_argument, NULL, 'n'},
	    {"label", required_argument, NULL, 'l'},
	    {"duration", required_argument, NULL, 'd'},
	    {"workers", required_argument, NULL, 'w'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct opts){.label = "team", .duration_s = -1, .workers = 2};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k':
			o->kubeconfig = optarg;
			break;
		case 'c':
			o->context = optarg;
			break;
		case 'n':
			o->ns = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'd':
			o->duration_s = strtol(optarg, NULL, 10);
			break;
		case 'w':
			o->workers = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
print_stats(kf_reflector *refl, kf_controller *const *ctl,
	    const char *const *names)
{
	kf_watcher_stats ws;

	kf_watcher_stats_get(kf_reflector_watcher(refl), &ws);
	/* Watch requests: plain watches and streaming lists (a watch with
	 * sendInitialEvents that goes on as the watch). */
	say("watch watchers=1 watch_requests=%llu lists=%llu "
	    "stream_lists=%llu list_pages=%llu watches=%llu relists=%llu "
	    "retries=%llu events=%llu\n",
	    (unsigned long long)(ws.watches + ws.stream_lists),
	    (unsigned long long)ws.lists, (unsigned long long)ws.stream_lists,
	    (unsigned long long)ws.list_pages, (unsigned long long)ws.watches,
	    (unsigned long long)ws.relists, (unsigned long long)ws.retries,
	    (unsigned long long)(ws.added + ws.modified + ws.deleted));
	for (int i = 0; i < 2; i++) {
		kf_ctl_stats cs;

		kf_controller_stats(ctl[i], &cs);
		say("controller %s reconciles=%llu errors=%llu lagged=%llu\n",
		    names[i], (unsigned long long)cs.reconciles,
		    (unsigned long long)cs.errors,
		    (unsigned long long)cs.sub.lagged);
	}
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"keys", "policy"};
	struct opts o;
	char err[512] = "";
	kf_conn *conn = NULL;
	kf_watcher_opts wo;
	kf_watcher *w = NULL;
	kf_writer *writer = NULL;
	kf_store *store = NULL;
	kf_reflector *refl = NULL;
	kf_loop *loop = NULL;
	kf_controller *ctl[2] = {NULL, NULL};
	kf_controller_opts co[2];
	int64_t end;
	int rc = 0;
	kf_err e;

	if (parse(argc, argv, &o) != 0)
		return usage();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	e = kf_conn_from_kubeconfig(o.kubeconfig, o.context, err, sizeof(err),
				    &conn);
	if (e != KF_OK) {
		fprintf(stderr, "kubefan-two-controllers: %s: %s\n",
			kf_strerror(e), err);
		return 1;
	}

	/* One watcher, one reflector, one shared store. */
	kf_watcher_opts_init(&wo);
	wo.version = "v1";
	wo.resource = "configmaps";
	wo.namespace_ = o.ns;
	memset(co, 0, sizeof(co));
	co[0].name = names[0];
	co[0].reconcile = keys_reconcile;
	co[1].name = names[1];
	co[1].reconcile = policy_reconcile;
	co[1].arg = (void *)o.label;
	co[0].workers = co[1].workers = o.workers;
	if ((e = kf_watcher_alloc(conn, &wo, &w)) != KF_OK ||
	    (e = kf_store_shared_alloc(4096, &writer, &store)) != KF_OK ||
	    (e = kf_reflector_alloc(w, writer, &refl)) != KF_OK ||
	    (e = kf_controller_for_shared_stream(store, &co[0], &ctl[0])) !=
		KF_OK ||
	    (e = kf_controller_for_shared_stream(store, &co[1], &ctl[1])) !=
		KF_OK ||
	    (e = kf_controller_start(ctl[0])) != KF_OK ||
	    (e = kf_controller_start(ctl[1])) != KF_OK ||
	    (e = kf_loop_alloc(&loop)) != KF_OK ||
	    (e = kf_loop_start(loop)) != KF_OK ||
	    (e = kf_reflector_start(refl, loop)) != KF_OK) {
		fprintf(stderr, "kubefan-two-controllers: cannot start: %s\n",
			kf_strerror(e));
		if (refl == NULL)
			kf_watcher_free(w);
		rc = 1;
		goto out;
	}

	/* Each turn waits at most 100 ms, so a signal or the end of the
	 * duration is seen promptly. */
	end = o.duration_s >= 0 ? now_ms() + o.duration_s * 1000 : -1;
	for (bool synced = false; !stop && (end < 0 || now_ms() < end);) {
		if (!synced && kf_store_wait_until_ready(store, 100) == KF_OK) {
			synced = true;
			say("synced objects=%zu\n", kf_store_len(store));
			continue;
		}
		if (synced) {
			struct timespec ts = {0, 100 * 1000000};

			nanosleep(&ts, NULL);
		}
	}

	/* Graceful: the controllers finish what runs, then the watch. */
	kf_controller_stop(ctl[0]);
	kf_controller_stop(ctl[1]);
	kf_reflector_stop(refl);
	print_stats(refl, ctl, names);
out:
	kf_controller_free(ctl[0]);
	kf_controller_free(ctl[1]);
	kf_loop_stop(loop);
	kf_reflector_free(refl);
	kf_loop_free(loop);
	kf_store_free(store);
	kf_writer_free(writer);
	kf_conn_free(conn);
	return rc;
}

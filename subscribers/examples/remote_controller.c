/*
 * kubefan-remote-controller: an example controller in its own process. It
 * subscribes to one stream of a kubefand broker (kubefan/remote.h), keeps
 * the mirror, and "reconciles" each change by printing one line:
 *
 *   [NAME] reconcile Apply ns/name rv=123
 *
 * With --dump FILE it also rewrites FILE (atomically) every 200 ms with its
 * counters and the mirror's contents, sorted, one "ns/name rv" per line;
 * the integration tests and scripts/demo-run compare that with the API
 * server. --sleep-ms N makes it a deliberately slow consumer.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kubefan/object.h"
#include "kubefan/remote.h"
#include "kubefan/store.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
dump(kf_remote *r, const char *path)
{
	kf_remote_stats s;
	kf_state *st;
	char tmp[4096];
	char **lines;
	size_t n;
	FILE *f;

	if (kf_store_state(kf_remote_store(r), &st) != KF_OK)
		return;
	n = kf_state_len(st);
	lines = calloc(n ? n : 1, sizeof(*lines));
	for (size_t i = 0; lines != NULL && i < n; i++) {
		kf_object *o = kf_state_at(st, i);

		if (asprintf(&lines[i], "%s/%s %s", kf_object_namespace(o),
			     kf_object_name(o),
			     kf_object_resource_version(o)) < 0)
			lines[i] = NULL;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f != NULL && lines != NULL) {
		kf_remote_stats_get(r, &s);
		fprintf(
		    f,
		    "stats ready=%d delivered=%llu gaps=%llu missed=%llu "
		    "resyncs=%llu snapshots=%llu restarts=%llu "
		    "malformed=%llu seq=%llu objects=%zu\n",
		    kf_store_is_ready(kf_remote_store(r)),
		    (unsigned long long)s.delivered, (unsigned long long)s.gaps,
		    (unsigned long long)s.missed, (unsigned long long)s.resyncs,
		    (unsigned long long)s.snapshots,
		    (unsigned long long)s.restarts,
		    (unsigned long long)s.malformed, (unsigned long long)s.seq,
		    n);
		qsort(lines, n, sizeof(*lines), cmp_str);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s\n", lines[i] ? lines[i] : "?");
		fclose(f);
		rename(tmp, path);
	} else if (f != NULL) {
		fclose(f);
	}
	for (size_t i = 0; lines != NULL && i < n; i++)
		free(lines[i]);
	free(lines);
	kf_state_free(st);
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: kubefan-remote-controller --pub ADDR --rep ADDR "
		"--stream S\n"
		"       [--namespace NS] [--name NAME] [--dump FILE] "
		"[--sleep-ms N]\n"
		"       [--recv-buffer N] [--refs-only] [--quiet] "
		"[--duration S]\n");
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"pub", required_argument, NULL, 'p'},
	    {"rep", required_argument, NULL, 'r'},
	    {"stream", required_argument, NULL, 's'},
	    {"namespace", required_argument, NULL, 'n'},
	    {"name", required_argument, NULL, 'N'},
	    {"dump", required_argument, NULL, 'd'},
	    {"sleep-ms", required_argument, NULL, 'S'},
	    {"recv-buffer", required_argument, NULL, 'b'},
	    {"refs-only", no_argument, NULL, 'R'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"duration", required_argument, NULL, 'D'},
	    {NULL, 0, NULL, 0},
	};
	const char *name = "controller", *dump_path = NULL;
	kf_remote_opts o;
	kf_remote *r;
	int sleep_ms = 0, opt;
	bool quiet = false;
	double duration = 0;
	int64_t next_dump = 0, end;
	kf_err e;

	kf_remote_opts_init(&o);
	while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (opt) {
		case 'p':
			o.pub_addr = optarg;
			break;
		case 'r':
			o.rep_addr = optarg;
			break;
		case 's':
			o.stream = optarg;
			break;
		case 'n':
			o.namespace_ = optarg;
			break;
		case 'N':
			name = optarg;
			break;
		case 'd':
			dump_path = optarg;
			break;
		case 'S':
			sleep_ms = atoi(optarg);
			break;
		case 'b':
			o.recv_buffer = atoi(optarg);
			break;
		case 'R':
			o.refs_only = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'D':
			duration = atof(optarg);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (o.pub_addr == NULL || o.stream == NULL) {
		usage();
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	e = kf_remote_subscribe(&o, &r);
	if (e != KF_OK) {
		fprintf(stderr, "%s: subscribe: %s\n", name, kf_strerror(e));
		return 1;
	}
	end = duration > 0 ? now_ms() + (int64_t)(duration * 1000) : INT64_MAX;
	while (!stop && now_ms() < end) {
		kf_event ev;

		e = kf_remote_next(r, 100, &ev);
		if (e == KF_OK && !quiet) {
			if (ev.obj != NULL)
				printf("[%s] reconcile %s %s/%s rv=%s\n", name,
				       kf_event_type_name(ev.type),
				       kf_object_namespace(ev.obj),
				       kf_object_name(ev.obj),
				       kf_object_resource_version(ev.obj));
			else if (ev.type == KF_EV_LAGGED)
				printf("[%s] lagged: %llu events lost; "
				       "re-syncing\n",
				       name, (unsigned long long)ev.missed);
			else if (ev.type == KF_EV_INIT_DONE)
				printf("[%s] synced: %zu objects\n", name,
				       kf_store_len(kf_remote_store(r)));
		}
		if (e == KF_OK && sleep_ms > 0)
			usleep((useconds_t)sleep_ms * 1000);
		if (dump_path != NULL && now_ms() >= next_dump) {
			dump(r, dump_path);
			next_dump = now_ms() + 200;
		}
	}
	if (dump_path != NULL)
		dump(r, dump_path);
	kf_remote_close(r);
	return 0;
}

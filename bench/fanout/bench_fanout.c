/*
 * bench_fanout: the kubefan side of the in-process fan-out comparison
 * (bench/fanout/compare runs it next to bench/peers/kube-rs and
 * bench/peers/client-go, on the same fanout_stream_server input).
 *
 * One watcher on the ConfigMaps of namespace "bench" drives a reflector
 * into a shared store (kf_store_shared_alloc(capacity)); N subscribers,
 * each read by a thread of its own with kf_subscriber_next(), count the
 * APPLY events and measure each one's latency: the receive time minus the
 * server's send stamp (annotation bench.kubefan.io/sent-ns,
 * CLOCK_REALTIME). A subscriber is done once it has seen event M-1 (in an
 * APPLY, or in a re-sync frame after a lag, which is counted as missed).
 *
 * Rate: M events over the time from the earliest send stamp any
 * subscriber saw to the last subscriber's last receive, the same rule as
 * the two peers. Prints one `RESULT {json}` line.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kubefan/conn.h>
#include <kubefan/reflector.h>
#include <kubefan/store.h>
#include <kubefan/subscriber.h>
#include <kubefan/watcher.h>

static struct {
	const char *kubeconfig;
	int subscribers;
	long events;
	long objects;
	size_t capacity;
	int timeout_s;
	bool block; /* KF_SUB_BLOCK instead of the default KF_SUB_DROP */
} opt = {
    .subscribers = 1,
    .events = 100000,
    .objects = 100,
    .capacity = 4096,
    .timeout_s = 120,
};

#define BF_SEQ_UNKNOWN LLONG_MIN /* after a lag, until the next APPLY */

typedef struct bf_sub {
	pthread_t thread;
	kf_subscriber *sub;
	uint64_t deadline_ns;
	uint64_t *lat_ns; /* one per APPLY of a watch event */
	size_t nlat;
	uint64_t first_sent_ns;
	uint64_t last_recv_ns;
	uint64_t missed;
	long long frame_max_seq; /* newest event folded into a state frame */
	long long first_apply_seq;
	long long gaps; /* APPLY seq jumps not explained by a frame or lag */
	long long dups; /* APPLY seqs at or below one already seen */
	long long last_seq;
	bool done;
} bf_sub;

static uint64_t
bf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long long
bf_annotation(const kf_object *obj, const char *key)
{
	const char *v = kf_object_annotation(obj, key);

	return v != NULL ? strtoll(v, NULL, 10) : -1;
}

/* Bounded by the deadline: each wait is at most 200 ms. */
static void *
bf_read(void *arg)
{
	bf_sub *s = arg;

	s->first_sent_ns = UINT64_MAX;
	s->frame_max_seq = -1;
	s->first_apply_seq = -1;
	s->last_seq = -1;
	while (!s->done && bf_now_ns() < s->deadline_ns) {
		kf_event ev;
		kf_err rc = kf_subscriber_next(s->sub, 200, &ev);
		uint64_t recv = bf_now_ns();
		long long seq, sent;

		if (rc == KF_ETIMEDOUT)
			continue;
		if (rc != KF_OK)
			break;
		if (ev.type == KF_EV_LAGGED) {
			s->missed += ev.missed;
			s->last_seq = BF_SEQ_UNKNOWN;
		}
		if (ev.obj == NULL)
			continue;
		seq = bf_annotation(ev.obj, "bench.kubefan.io/seq");
		if (seq < 0)
			continue;
		if (ev.type == KF_EV_INIT_APPLY) {
			if (seq > s->frame_max_seq)
				s->frame_max_seq = seq;
			if (s->last_seq != BF_SEQ_UNKNOWN && seq > s->last_seq)
				s->last_seq = seq;
		}
		if (ev.type == KF_EV_APPLY) {
			if (s->first_apply_seq < 0)
				s->first_apply_seq = seq;
			if (s->last_seq != BF_SEQ_UNKNOWN &&
			    seq > s->last_seq + 1)
				s->gaps++;
			if (s->last_seq != BF_SEQ_UNKNOWN && seq <= s->last_seq)
				s->dups++;
			s->last_seq = seq;
		}
		if (ev.type == KF_EV_APPLY && s->nlat < (size_t)opt.events) {
			sent =
			    bf_annotation(ev.obj, "bench.kubefan.io/sent-ns");
			if ((uint64_t)sent < s->first_sent_ns)
				s->first_sent_ns = (uint64_t)sent;
			s->lat_ns[s->nlat++] = recv - (uint64_t)sent;
			s->last_recv_ns = recv;
		}
		if (seq == opt.events - 1) {
			s->last_recv_ns = recv;
			s->done = true;
		}
	}
	return NULL;
}

static int
bf_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
bf_pct_us(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	return (double)v[(size_t)((double)(n - 1) * p + 0.5)] / 1000.0;
}

static void
bf_usage(void)
{
	fprintf(stderr, "usage: bench_fanout --kubeconfig PATH "
			"[--subscribers N] [--events M] [--objects K] "
			"[--capacity C] [--timeout S] [--policy drop|block]\n");
	exit(2);
}

static void
bf_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			bf_usage();
		if (strcmp(argv[i], "--kubeconfig") == 0)
			opt.kubeconfig = v;
		else if (strcmp(argv[i], "--subscribers") == 0)
			opt.subscribers = atoi(v);
		else if (strcmp(argv[i], "--events") == 0)
			opt.events = atol(v);
		else if (strcmp(argv[i], "--objects") == 0)
			opt.objects = atol(v);
		else if (strcmp(argv[i], "--capacity") == 0)
			opt.capacity = (size_t)atol(v);
		else if (strcmp(argv[i], "--timeout") == 0)
			opt.timeout_s = atoi(v);
		else if (strcmp(argv[i], "--policy") == 0)
			opt.block = strcmp(v, "block") == 0;
		else
			bf_usage();
	}
	if (opt.kubeconfig == NULL || opt.subscribers < 1 || opt.events < 1)
		bf_usage();
}

static void
bf_report(bf_sub *subs)
{
	uint64_t first = UINT64_MAX, last = 0, missed = 0, delivered = 0;
	long long gaps = 0, dups = 0, folded = 0;
	size_t total = 0, off = 0;
	int complete = 0;
	uint64_t *all;
	double secs, rate;

	for (int i = 0; i < opt.subscribers; i++)
		total += subs[i].nlat;
	all = malloc((total ? total : 1) * sizeof(*all));
	for (int i = 0; all != NULL && i < opt.subscribers; i++) {
		bf_sub *s = &subs[i];

		complete += s->done;
		missed += s->missed;
		gaps += s->gaps;
		dups += s->dups;
		folded += s->first_apply_seq > 0 ? s->first_apply_seq : 0;
		delivered += s->nlat;
		if (s->first_sent_ns < first)
			first = s->first_sent_ns;
		if (s->last_recv_ns > last)
			last = s->last_recv_ns;
		memcpy(all + off, s->lat_ns, s->nlat * sizeof(*all));
		off += s->nlat;
	}
	if (all != NULL)
		qsort(all, total, sizeof(*all), bf_cmp);
	secs = last > first ? (double)(last - first) / 1e9 : 0;
	rate = secs > 0 ? (double)opt.events / secs : 0;
	printf("RESULT {\"bench\":\"fanout\",\"impl\":\"%s\","
	       "\"subscribers\":%d,\"events\":%ld,\"objects\":%ld,"
	       "\"buffer\":%zu,\"complete_subscribers\":%d,"
	       "\"delivered\":%" PRIu64 ",\"missed\":%" PRIu64 ","
	       "\"in_first_frame\":%lld,\"gaps\":%lld,\"dups\":%lld,"
	       "\"delivered_per_sec_total\":%.0f,"
	       "\"seconds\":%.4f,\"events_per_sec_per_sub\":%.0f,"
	       "\"events_per_sec_total\":%.0f,\"p50_us\":%.1f,"
	       "\"p99_us\":%.1f}\n",
	       opt.block ? "kubefan-block" : "kubefan", opt.subscribers,
	       opt.events, opt.objects, opt.capacity, complete, delivered,
	       missed, folded, gaps, dups,
	       secs > 0 ? (double)delivered / secs : 0, secs, rate,
	       rate * opt.subscribers, all ? bf_pct_us(all, total, 0.50) : 0,
	       all ? bf_pct_us(all, total, 0.99) : 0);
	free(all);
}

int
main(int argc, char **argv)
{
	char errbuf[512];
	kf_conn *conn = NULL;
	kf_writer *writer = NULL;
	kf_store *reader = NULL;
	kf_loop *loop = NULL;
	kf_watcher *w = NULL;
	kf_reflector *refl = NULL;
	kf_watcher_opts wo;
	kf_sub_opts so = {.policy = KF_SUB_DROP};
	bf_sub *subs;
	uint64_t deadline;
	int complete = 0;
	kf_err rc;

	bf_args(argc, argv);
	if (opt.block) {
		so.policy = KF_SUB_BLOCK;
		so.block_timeout_ms = 10000;
	}
	subs = calloc((size_t)opt.subscribers, sizeof(*subs));
	rc = kf_conn_from_kubeconfig(opt.kubeconfig, NULL, errbuf,
				     sizeof(errbuf), &conn);
	if (rc != KF_OK) {
		fprintf(stderr, "bench_fanout: %s: %s\n", kf_strerror(rc),
			errbuf);
		return 1;
	}
	rc = kf_store_shared_alloc(opt.capacity, &writer, &reader);
	if (rc != KF_OK || subs == NULL) {
		fprintf(stderr, "bench_fanout: store: %s\n", kf_strerror(rc));
		return 1;
	}
	deadline = bf_now_ns() + (uint64_t)opt.timeout_s * 1000000000u;
	for (int i = 0; i < opt.subscribers; i++) {
		subs[i].deadline_ns = deadline;
		subs[i].lat_ns = malloc((size_t)opt.events * sizeof(uint64_t));
		rc = kf_store_subscribe(reader, &so, &subs[i].sub);
		if (rc != KF_OK || subs[i].lat_ns == NULL) {
			fprintf(stderr, "bench_fanout: subscribe: %s\n",
				kf_strerror(rc));
			return 1;
		}
		if (pthread_create(&subs[i].thread, NULL, bf_read, &subs[i]) !=
		    0) {
			fprintf(stderr, "bench_fanout: thread %d failed\n", i);
			return 1;
		}
	}

	kf_watcher_opts_init(&wo);
	wo.version = "v1";
	wo.resource = "configmaps";
	wo.namespace_ = "bench";
	rc = kf_loop_alloc(&loop);
	if (rc == KF_OK)
		rc = kf_watcher_alloc(conn, &wo, &w);
	if (rc == KF_OK)
		rc = kf_reflector_alloc(w, writer, &refl);
	if (rc == KF_OK)
		rc = kf_loop_start(loop);
	if (rc == KF_OK)
		rc = kf_reflector_start(refl, loop);
	if (rc != KF_OK) {
		fprintf(stderr, "bench_fanout: watch: %s\n", kf_strerror(rc));
		return 1;
	}

	for (int i = 0; i < opt.subscribers; i++) {
		pthread_join(subs[i].thread, NULL);
		complete += subs[i].done;
	}
	if (complete != opt.subscribers && w != NULL) {
		kf_watcher_last_error(w, errbuf, sizeof(errbuf));
		fprintf(stderr, "bench_fanout: watcher's last error: %s\n",
			errbuf);
	}
	kf_reflector_stop(refl);
	bf_report(subs);

	kf_reflector_free(refl);
	kf_loop_stop(loop);
	kf_loop_free(loop);
	for (int i = 0; i < opt.subscribers; i++) {
		kf_subscriber_free(subs[i].sub);
		free(subs[i].lat_ns);
	}
	free(subs);
	kf_store_free(reader);
	kf_writer_free(writer);
	kf_conn_free(conn);
	if (complete != opt.subscribers) {
		fprintf(stderr,
			"bench_fanout: %d of %d subscribers did not "
			"see every event\n",
			opt.subscribers - complete, opt.subscribers);
		return 1;
	}
	return 0;
}

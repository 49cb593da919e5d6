/*
 * The watcher's threading without Criterion, so it also runs under TSan
 * (Criterion's runner cannot start under TSan on these machines): one
 * loop driving several watchers, counters and errors read from another
 * thread meanwhile, a watcher stopped from its own handler, the rest
 * stopped from the main thread. Exits non-zero on the first broken
 * expectation.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakeserver.h"
#include "kubefan/watcher.h"
#include "watcher_int.h"

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__,     \
				#c);                                           \
			exit(1);                                               \
		}                                                              \
	} while (0)

#define N 4

struct one {
	struct fs_server *fs;
	kf_conn *conn;
	kf_watcher *w;
	int events; /* loop thread only, read after stop */
	int stop_self;
};

static volatile int reading = 1;

static void
on_event(void *arg, const kf_event *ev)
{
	struct one *o = arg;

	o->events++;
	if (o->stop_self && ev->type == KF_EV_APPLY)
		kf_watcher_stop(o->w); /* from the handler: asks only */
}

static void *
reader(void *arg)
{
	struct one *all = arg;
	kf_watcher_stats st;
	char buf[256];
	unsigned long sum = 0;

	while (__atomic_load_n(&reading, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < N; i++) {
			kf_watcher_stats_get(all[i].w, &st);
			kf_watcher_last_error(all[i].w, buf, sizeof(buf));
			kf_watcher_resource_version(all[i].w, buf, sizeof(buf));
			sum += st.bytes;
		}
		usleep(1000);
	}
	return (void *)sum;
}

int
main(void)
{
	static struct one all[N];
	kf_watcher_opts o;
	kf_loop *loop;
	pthread_t t;

	CHECK(kf_loop_alloc(&loop) == KF_OK);
	CHECK(kf_loop_start(loop) == KF_OK);
	for (int i = 0; i < N; i++) {
		all[i].fs = fs_start_file(KF_TEST_DATA_DIR
					  "/transcripts/k9_bookmarks.txt");
		CHECK(all[i].fs != NULL);
		CHECK(kf_conn_explicit(fs_url(all[i].fs), NULL, NULL, false,
				       &all[i].conn) == KF_OK);
		kf_watcher_opts_init(&o);
		o.resource = "configmaps";
		o.namespace_ = "ns";
		o.list_mode = KF_LIST_PAGED;
		o.backoff_initial_ms = 20;
		o.backoff_max_ms = 50;
		o.idle_ms = 300;
		CHECK(kf_watcher_alloc(all[i].conn, &o, &all[i].w) == KF_OK);
		all[i].stop_self = i == 0;
		kf_watcher_set_handlers(all[i].w, on_event, NULL, &all[i]);
	}
	pthread_create(&t, NULL, reader, all);
	for (int i = 0; i < N; i++)
		CHECK(kf_watcher_start(all[i].w, loop) == KF_OK);
	for (int i = 0; i < N; i++)
		CHECK(fs_wait_requests(all[i].fs, 3, 5000) >= 3);
	usleep(700000); /* idle deadlines pass: drops and resumes */
	for (int i = 1; i < N; i++)
		CHECK(kf_watcher_stop(all[i].w) == KF_OK);
	__atomic_store_n(&reading, 0, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	CHECK(all[0].events == 3); /* I, ID, A:p, then it stopped itself */
	for (int i = 1; i < N; i++)
		CHECK(all[i].events == 4); /* I, ID, A:p, A:q */
	kf_loop_stop(loop);
	for (int i = 0; i < N; i++) {
		kf_watcher_free(all[i].w);
		kf_conn_free(all[i].conn);
		fs_stop(all[i].fs);
	}
	kf_loop_free(loop);
	puts("test_watcher_plain: ok");
	return 0;
}

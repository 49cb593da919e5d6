/*
 * The remote subscriber against a publisher driven by hand over ipc://:
 * snapshot then stream with no gap and no duplicate, lost messages
 * (middle and tail), broker resets and restarts, namespace filters,
 * chunked snapshots, reference-only feeds, malformed messages, and links
 * whose nng dialers stopped for good.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/req.h>

#include "kubefan/remote.h"
#include "kubefan/store.h"
#include "publisher.h"
#include "wire.h"
#include "clock.h"

static char pub_addr[128], rep_addr[128], refs_addr[128];

#if defined(__SANITIZE_THREAD__)
/* nng hands a sent message to mbedTLS on its own threads and frees it
 * after an atomic reference drop that TSan cannot see (neither library
 * is instrumented): reported as a race between free and mbedTLS's
 * memcpy. Only frames in mbedTLS are suppressed. */
const char *__tsan_default_suppressions(void);
const char *
__tsan_default_suppressions(void)
{
	return "race:libmbedtls.so\n";
}
#endif

static void
addrs(void)
{
	static int n;

	snprintf(pub_addr, sizeof(pub_addr), "ipc:///tmp/kf-trm-%d-%d.pub",
		 getpid(), n);
	snprintf(rep_addr, sizeof(rep_addr), "ipc:///tmp/kf-trm-%d-%d.rep",
		 getpid(), n);
	snprintf(refs_addr, sizeof(refs_addr), "ipc:///tmp/kf-trm-%d-%d.ref",
		 getpid(), n);
	n++;
}

static kf_object *
cm(const char *ns, const char *name, const char *rv, const char *val)
{
	char js[512];
	kf_object *o;

	snprintf(js, sizeof(js),
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"%s\",\"namespace\":\"%s\",\"uid\":\"uid-%s\","
		 "\"resourceVersion\":\"%s\"},\"data\":{\"k\":\"%s\"}}",
		 name, ns, name, rv, val);
	cr_assert_eq(kf_object_parse(js, strlen(js), NULL, NULL, 0, &o), KF_OK);
	return o;
}

static void
feed(struct kfi_pub_stream *s, kf_event_type t, kf_object *o)
{
	kf_event ev = {.type = t, .obj = o};

	kfi_pub_feed(s, &ev);
	if (o != NULL)
		kf_object_unref(o);
}

/* INIT, n objects ns1/o0.., INIT_DONE. */
static void
feed_frame(struct kfi_pub_stream *s, int n, const char *rv)
{
	char name[32];

	feed(s, KF_EV_INIT, NULL);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "o%d", i);
		feed(s, KF_EV_INIT_APPLY, cm("ns1", name, rv, "init"));
	}
	feed(s, KF_EV_INIT_DONE, NULL);
}

static kf_publisher *
start_pub(uint64_t inc, size_t chunk, bool refs, struct kfi_pub_stream **st)
{
	kf_publisher_opts o = {0};
	kf_publisher *p;
	char err[256];

	o.pub_addr = pub_addr;
	o.rep_addr = rep_addr;
	o.refs_addr = refs ? refs_addr : NULL;
	o.incarnation = inc;
	o.snapshot_chunk_bytes = chunk;
	o.batch_delay_us = 0;
	cr_assert_eq(kf_publisher_alloc(&o, err, sizeof(err), &p), KF_OK, "%s",
		     err);
	cr_assert_eq(kfi_pub_add_stream(p, "configmaps", NULL, st), KF_OK);
	cr_assert_eq(kf_publisher_start(p), KF_OK);
	return p;
}

static kf_remote *
subscribe(const char *ns, bool refs)
{
	kf_remote_opts o;
	kf_remote *r;

	kf_remote_opts_init(&o);
	o.pub_addr = refs ? refs_addr : pub_addr;
	o.rep_addr = rep_addr;
	o.stream = "configmaps";
	o.namespace_ = ns;
	o.refs_only = refs;
	o.request_timeout_ms = 2000;
	cr_assert_eq(kf_remote_subscribe(&o, &r), KF_OK);
	return r;
}

static kf_event
next(kf_remote *r)
{
	kf_event ev;
	kf_err e = kf_remote_next(r, 5000, &ev);

	cr_assert_eq(e, KF_OK, "next: %s", kf_strerror(e));
	return ev;
}

/* Read the INIT frame; return its object count. */
static int
read_frame(kf_remote *r)
{
	kf_event ev = next(r);
	int n = 0;

	cr_assert_eq(ev.type, KF_EV_INIT, "got %s",
		     kf_event_type_name(ev.type));
	for (ev = next(r); ev.type == KF_EV_INIT_APPLY; ev = next(r))
		n++;
	cr_assert_eq(ev.type, KF_EV_INIT_DONE);
	return n;
}

/* Wait until the subscriber's link is up: the PUB side must know the pipe
 * before anything it sends reaches the subscriber. */
static void
settle(void)
{
	usleep(100 * 1000);
}

static void
assert_rv(kf_remote *r, const char *ns, const char *name, const char *rv)
{
	kf_objref ref = {.kind = "ConfigMap", .namespace_ = ns, .name = name};
	kf_object *o;

	cr_assert_eq(kf_store_get(kf_remote_store(r), &ref, &o), KF_OK,
		     "%s/%s missing", ns, name);
	cr_assert_str_eq(kf_object_resource_version(o), rv);
	kf_object_unref(o);
}

Test(remote, snapshot_then_stream_without_gap_or_duplicate)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	kf_event ev;

	addrs();
	p = start_pub(0, 0, false, &st);
	feed_frame(st, 3, "1");
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 3);
	cr_assert(kf_store_is_ready(kf_remote_store(r)));
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 3);

	feed(st, KF_EV_APPLY, cm("ns1", "o1", "2", "changed"));
	feed(st, KF_EV_DELETE, cm("ns1", "o0", "3", "gone"));
	feed(st, KF_EV_APPLY, cm("ns2", "new", "4", "x"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_str_eq(kf_object_name(ev.obj), "o1");
	cr_assert_str_eq(kf_object_resource_version(ev.obj), "2");
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_DELETE);
	cr_assert_str_eq(kf_object_name(ev.obj), "o0");
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_str_eq(kf_object_namespace(ev.obj), "ns2");
	cr_assert_eq(kf_remote_next(r, 200, &ev), KF_ETIMEDOUT);

	assert_rv(r, "ns1", "o1", "2");
	assert_rv(r, "ns2", "new", "4");
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 3);
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.gaps, 0);
	cr_assert_eq(rs.snapshots, 1);
	cr_assert_eq(rs.applied, 3);
	cr_assert_eq(rs.seq, 4); /* RESET took 1, then three events */
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_lost_message_is_a_gap_healed_by_a_snapshot)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	kf_event ev;

	addrs();
	p = start_pub(0, 0, false, &st);
	feed_frame(st, 2, "1");
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 2);

	kfi_pub_drop_next(st);
	feed(st, KF_EV_APPLY, cm("ns1", "lost", "5", "x"));
	feed(st, KF_EV_APPLY, cm("ns1", "o0", "6", "y"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(ev.missed, 1);
	cr_assert_eq(read_frame(r), 3);
	assert_rv(r, "ns1", "lost", "5");
	assert_rv(r, "ns1", "o0", "6");
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.gaps, 1);
	cr_assert_eq(rs.missed, 1);
	cr_assert_eq(rs.resyncs, 1);
	/* The event after the snapshot point was skipped, not repeated. */
	cr_assert_eq(kf_remote_next(r, 200, &ev), KF_ETIMEDOUT);
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_lost_tail_message_is_noticed_from_the_heartbeat)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_event ev;

	addrs();
	p = start_pub(0, 0, false, &st);
	feed_frame(st, 1, "1");
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 1);
	kfi_pub_drop_next(st);
	feed(st, KF_EV_APPLY, cm("ns1", "tail", "9", "x"));
	cr_assert_eq(kf_remote_next(r, 300, &ev), KF_ETIMEDOUT);
	kfi_pub_heartbeat(st);
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(ev.missed, 1);
	cr_assert_eq(read_frame(r), 2);
	assert_rv(r, "ns1", "tail", "9");
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_publisher_reset_and_a_broker_restart_resync)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	kf_event ev;

	addrs();
	p = start_pub(111, 0, false, &st);
	feed_frame(st, 2, "1");
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 2);

	/* The publisher's own subscription lagged: a new frame, a RESET. */
	feed(st, KF_EV_LAGGED, NULL);
	feed_frame(st, 4, "7");
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(read_frame(r), 4);
	assert_rv(r, "ns1", "o3", "7");

	/* The broker restarts with another incarnation and less state. */
	kf_publisher_free(p);
	p = start_pub(222, 0, false, &st);
	feed_frame(st, 1, "8");
	settle();
	kfi_pub_heartbeat(st);
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(read_frame(r), 1);
	assert_rv(r, "ns1", "o0", "8");
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 1);
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.resets, 1);
	cr_assert_geq(rs.restarts, 1);
	cr_assert_eq(rs.incarnation, 222);
	kf_remote_close(r);
	kf_publisher_free(p);
}

/* A plain listener on an ipc:// address, not nng. */
static int
raw_listen(const char *addr)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 6);
	unlink(sa.sun_path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	return fd;
}

/* Play a dying broker at both addresses: take each connection and close
 * it before it is read, so the dialer's SP header meets EPIPE, until no
 * dialer has come back for quiet_ms. nng 1.5.2's dialer gives up after
 * that error; a dialer that keeps coming back is met again, up to a
 * bound. True when both dialers stopped. */
static bool
kill_dialers(int64_t quiet_ms)
{
	struct pollfd pf[2] = {{.fd = raw_listen(pub_addr), .events = POLLIN},
			       {.fd = raw_listen(rep_addr), .events = POLLIN}};
	int64_t last = kt_now_ms();
	int taken = 0;

	/* Bounded: 200 connections, or quiet_ms without one. */
	while (taken < 200 && kt_now_ms() - last < quiet_ms) {
		if (poll(pf, 2, 50) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			int c;

			if (!(pf[i].revents & POLLIN))
				continue;
			c = accept(pf[i].fd, NULL, NULL);
			if (c >= 0)
				close(c);
			taken++;
			last = kt_now_ms();
		}
	}
	for (int i = 0; i < 2; i++)
		close(pf[i].fd);
	unlink(pub_addr + 6);
	unlink(rep_addr + 6);
	return taken < 200;
}

/* The link survives a crash that leaves nng's dialers dead: a silent
 * broker has the SUB socket re-dialed, and a request that finds no
 * connection re-dials the REQ socket. Without that, the restarted
 * publisher is never heard from (or never answers) and no frame comes. */
Test(remote, dialers_that_nng_gave_up_on_are_replaced)
{
	struct kfi_pub_stream *st;
	kf_remote_stats rs;
	kf_remote_opts o;
	kf_publisher *p;
	kf_remote *r;
	kf_event ev;
	bool dead, lagged = false;
	int64_t end;

	addrs();
	p = start_pub(111, 0, false, &st);
	feed_frame(st, 2, "1");
	kf_remote_opts_init(&o);
	o.pub_addr = pub_addr;
	o.rep_addr = rep_addr;
	o.stream = "configmaps";
	o.request_timeout_ms = 500;
	o.heartbeat_timeout_ms = 300;
	o.backoff_max_ms = 100; /* a live dialer is back within 100 ms */
	cr_assert_eq(kf_remote_subscribe(&o, &r), KF_OK);
	cr_assert_eq(read_frame(r), 2);

	/* The broker goes; its sockets reset what they queued; the
	 * handle is not called meanwhile, so only nng acts. */
	kf_publisher_free(p);
	dead = kill_dialers(1000);
	if (!dead)
		cr_log_warn("this nng re-dials after EPIPE: nothing to heal");

	p = start_pub(222, 0, false, &st);
	feed_frame(st, 1, "8");
	/* Heartbeats as a running broker sends them, until the re-sync. */
	end = kt_now_ms() + 10000;
	while (!lagged && kt_now_ms() < end) {
		kfi_pub_heartbeat(st);
		if (kf_remote_next(r, 100, &ev) == KF_OK)
			lagged = ev.type == KF_EV_LAGGED;
	}
	cr_assert(lagged, "the restarted publisher was never heard from");
	cr_assert_eq(read_frame(r), 1);
	assert_rv(r, "ns1", "o0", "8");
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.incarnation, 222);
	if (dead)
		cr_assert_geq(rs.redials, 2, "sub and req: %llu",
			      (unsigned long long)rs.redials);
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_namespace_filter_sees_only_its_namespace_and_its_gaps)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	kf_event ev;

	addrs();
	p = start_pub(0, 0, false, &st);
	feed(st, KF_EV_INIT, NULL);
	feed(st, KF_EV_INIT_APPLY, cm("ns1", "a", "1", "x"));
	feed(st, KF_EV_INIT_APPLY, cm("ns2", "b", "1", "x"));
	feed(st, KF_EV_INIT_DONE, NULL);
	r = subscribe("ns2", false);
	cr_assert_eq(read_frame(r), 1);
	settle();

	/* Lost records of another namespace are no gap for us. */
	kfi_pub_drop_next(st);
	feed(st, KF_EV_APPLY, cm("ns1", "a", "2", "y"));
	feed(st, KF_EV_APPLY, cm("ns1", "a", "3", "y"));
	feed(st, KF_EV_APPLY, cm("ns2", "b", "4", "y"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_str_eq(kf_object_resource_version(ev.obj), "4");
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.gaps, 0);

	/* A heartbeat naming events of other namespaces: STATUS shows
	 * nothing of ours is missing. */
	feed(st, KF_EV_APPLY, cm("ns1", "a", "5", "y"));
	kfi_pub_heartbeat(st);
	cr_assert_eq(kf_remote_next(r, 300, &ev), KF_ETIMEDOUT);
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.gaps, 0);

	/* A lost record of ours: the next one's topic_prev shows it. */
	kfi_pub_drop_next(st);
	feed(st, KF_EV_APPLY, cm("ns2", "c", "6", "y"));
	feed(st, KF_EV_APPLY, cm("ns2", "b", "7", "y"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(read_frame(r), 2);
	assert_rv(r, "ns2", "c", "6");
	assert_rv(r, "ns2", "b", "7");

	/* A lost tail record of ours: the heartbeat plus STATUS show it. */
	kfi_pub_drop_next(st);
	feed(st, KF_EV_APPLY, cm("ns2", "d", "8", "y"));
	kfi_pub_heartbeat(st);
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_LAGGED);
	cr_assert_eq(read_frame(r), 3);
	kf_remote_stats_get(r, &rs);
	cr_assert_eq(rs.gaps, 2);
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_large_snapshot_arrives_in_chunks)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_publisher_stats ps;
	kf_remote *r;

	addrs();
	p = start_pub(0, 1500, false, &st);
	feed_frame(st, 200, "1");
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 200);
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 200);
	kf_publisher_stats_get(p, &ps);
	cr_assert_eq(ps.snapshots, 1);
	cr_assert_gt(ps.requests, 10, "only %llu requests",
		     (unsigned long long)ps.requests);
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, a_reference_only_feed_carries_metadata_only)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote *r;
	kf_event ev;
	char *v = NULL;

	addrs();
	p = start_pub(0, 0, true, &st);
	feed_frame(st, 1, "1");
	r = subscribe(NULL, true);
	cr_assert_eq(read_frame(r), 1);
	feed(st, KF_EV_APPLY, cm("ns1", "o0", "2", "secret"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_str_eq(kf_object_name(ev.obj), "o0");
	cr_assert_str_eq(kf_object_uid(ev.obj), "uid-o0");
	cr_assert_str_eq(kf_object_resource_version(ev.obj), "2");
	cr_assert_eq(kf_object_field(ev.obj, "data", &v), KF_ENOTFOUND);
	free(v);
	kf_remote_close(r);
	kf_publisher_free(p);
}

/* A publisher of incarnation 77 holding one object (the subscriber's
 * snapshots come from it), and a subscriber that takes its events from
 * *raw, a PUB socket the test writes by hand; the snapshot is read. */
static kf_publisher *
start_raw(nng_socket *raw, kf_remote **r)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote_opts o;
	char raw_addr[160];

	addrs();
	p = start_pub(77, 0, false, &st);
	feed_frame(st, 1, "1");
	snprintf(raw_addr, sizeof(raw_addr), "%s.raw", pub_addr);
	cr_assert_eq(nng_pub0_open(raw), 0);
	cr_assert_eq(nng_socket_set_int(*raw, NNG_OPT_SENDBUF, 8192), 0);
	cr_assert_eq(nng_listen(*raw, raw_addr, NULL, 0), 0);
	kf_remote_opts_init(&o);
	o.pub_addr = raw_addr;
	o.rep_addr = rep_addr;
	o.stream = "configmaps";
	cr_assert_eq(kf_remote_subscribe(&o, r), KF_OK);
	cr_assert_eq(read_frame(*r), 1);
	settle();
	return p;
}

Test(remote, malformed_messages_are_counted_and_never_applied)
{
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	nng_socket raw;
	struct kfw_buf b;
	kf_event ev;

	p = start_raw(&raw, &r);

	kfw_buf_init(&b);
	srand(7);
	for (int i = 0; i < 300; i++) {
		struct kfw_objdesc d = {"v1", "ConfigMap", "ns1",	"zz",
					"u",  "2",	   "{\"a\":1}", 7};
		size_t cut;

		kfw_buf_reset(&b);
		kfw_put_topic(&b, "configmaps", "ns1");
		kfw_put_hdr(&b, KFW_EVENTS, 0, 77);
		kfw_put_u32(&b, 1);
		kfw_put_event(&b, 5, 1, KF_EV_APPLY, 0, &d, true);
		/* Truncate, or flip a bit in the header or lengths. */
		cut = b.len - 1 - (size_t)(rand() % 20);
		if (i % 2 == 0)
			b.p[(size_t)rand() % 40] ^=
			    (uint8_t)(1u << (rand() % 8));
		nng_send(raw, b.p, i % 2 ? cut : b.len, 0);
	}
	kfw_buf_fini(&b);
	/* Drain what arrived. The intact record (sequence 5 after 1) is a
	 * gap, so even a flip that still decodes can only cause a re-sync,
	 * never an APPLY. */
	while (kf_remote_next(r, 300, &ev) == KF_OK)
		cr_assert_neq(ev.type, KF_EV_APPLY,
			      "a corrupted record was applied");
	kf_remote_stats_get(r, &rs);
	cr_assert_geq(rs.malformed, 150, "malformed %llu",
		      (unsigned long long)rs.malformed);
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 1);
	assert_rv(r, "ns1", "o0", "1");
	kf_remote_close(r);
	nng_close(raw);
	kf_publisher_free(p);
}

/* Send a HEARTBEAT of incarnation 77 with this readiness byte on raw and
 * drive r until it has received one more message; r's stats after. */
static kf_remote_stats
heartbeat_with(kf_remote *r, nng_socket raw, uint8_t readiness)
{
	kf_remote_stats before, after;
	struct kfw_buf b;
	kf_event ev;

	kf_remote_stats_get(r, &before);
	kfw_buf_init(&b);
	kfw_put_topic(&b, "configmaps", KFW_CONTROL_NS);
	kfw_put_hdr(&b, KFW_HEARTBEAT, 0, 77);
	kfw_put_u64(&b, 0); /* last_seq: nothing new, no gap */
	kfw_put_u64(&b, 0);
	kfw_put_u8(&b, readiness);
	kfw_put_u32(&b, 1000);
	cr_assert_eq(nng_send(raw, b.p, b.len, 0), 0);
	kfw_buf_fini(&b);
	/* Each turn waits 100 ms for an event; 50 turns at most. */
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(kf_remote_next(r, 100, &ev), KF_ETIMEDOUT);
		kf_remote_stats_get(r, &after);
		if (after.messages > before.messages)
			return after;
	}
	cr_assert_fail("the heartbeat did not arrive");
	return after;
}

Test(remote, a_heartbeat_with_an_unknown_readiness_is_malformed)
{
	kf_publisher *p;
	kf_remote *r;
	kf_remote_stats rs;
	nng_socket raw;

	p = start_raw(&raw, &r);

	/* 3 is past "stale" (2): counted, and not taken as any readiness. */
	rs = heartbeat_with(r, raw, 3);
	cr_assert_eq(rs.malformed, 1, "malformed %llu",
		     (unsigned long long)rs.malformed);
	rs = heartbeat_with(r, raw, 255);
	cr_assert_eq(rs.malformed, 2);
	cr_assert(kf_store_is_ready(kf_remote_store(r)));
	/* A valid one after them is taken as before. */
	rs = heartbeat_with(r, raw, KF_READINESS_READY);
	cr_assert_eq(rs.malformed, 2);
	cr_assert_eq(rs.resyncs, 0);
	cr_assert_eq(kf_store_len(kf_remote_store(r)), 1);
	kf_remote_close(r);
	nng_close(raw);
	kf_publisher_free(p);
}

Test(remote, get_and_status_answer_from_the_publisher_mirror)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_publisher_stream_stats ss;
	nng_socket req;
	struct kfw_buf b;
	struct kfw_rep rep;
	struct kfw_obj o;
	void *reply;
	size_t len;

	addrs();
	p = start_pub(5, 0, false, &st);
	feed_frame(st, 2, "3");
	kfi_pub_stream_stats_get(st, &ss);
	cr_assert_eq(ss.seq, 1);
	cr_assert_eq(ss.objects, 2);
	cr_assert_eq(nng_req0_open(&req), 0);
	cr_assert_eq(nng_dial(req, rep_addr, NULL, 0), 0);
	kfw_buf_init(&b);
	kfw_put_hdr(&b, KFW_GET_REQ, 0, 0);
	kfw_put_str(&b, "configmaps");
	kfw_put_str(&b, "ns1");
	kfw_put_str(&b, "o1");
	kfw_put_u8(&b, 1);
	cr_assert_eq(nng_send(req, b.p, b.len, 0), 0);
	cr_assert_eq(nng_recv(req, &reply, &len, NNG_FLAG_ALLOC), 0);
	cr_assert_eq(kfw_parse_rep(reply, len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.status, KFW_ST_OK);
	cr_assert_eq(rep.count, 1);
	kfw_get_obj(&rep.items, &o);
	cr_assert(o.has_json);
	cr_assert_eq(o.name.len, 2);
	nng_free(reply, len);

	/* Garbage gets an error reply, and the service keeps answering. */
	cr_assert_eq(nng_send(req, "garbage", 7, 0), 0);
	cr_assert_eq(nng_recv(req, &reply, &len, NNG_FLAG_ALLOC), 0);
	cr_assert_eq(kfw_parse_rep(reply, len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.hdr.type, KFW_ERROR_REP);
	cr_assert_eq(rep.status, KFW_ST_BADREQ);
	nng_free(reply, len);

	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_STATUS_REQ, 0, 0);
	kfw_put_str(&b, "nosuch");
	kfw_put_str(&b, "");
	cr_assert_eq(nng_send(req, b.p, b.len, 0), 0);
	cr_assert_eq(nng_recv(req, &reply, &len, NNG_FLAG_ALLOC), 0);
	cr_assert_eq(kfw_parse_rep(reply, len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.status, KFW_ST_NOSTREAM);
	nng_free(reply, len);
	kfw_buf_fini(&b);
	nng_close(req);
	kf_publisher_free(p);
}

/* A raw SP connection to an ipc:// REP address, as a REQ peer. */
static int
raw_req_connect(void)
{
	static const unsigned char sp[8] = {0, 'S', 'P', 0, 0, 48, 0, 0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_lt(strlen(rep_addr + 6), sizeof(sa.sun_path));
	memcpy(sa.sun_path, rep_addr + 6, strlen(rep_addr + 6) + 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(write(fd, sp, sizeof(sp)), (ssize_t)sizeof(sp));
	return fd;
}

/* One SP message over ipc: the byte 1, a u64 big-endian length, the REQ
 * request id, the body. */
static void
raw_req_send(int fd, uint32_t id, const struct kfw_buf *body)
{
	unsigned char h[13] = {1};
	uint64_t len = 4 + body->len;

	for (int i = 0; i < 8; i++)
		h[1 + i] = (unsigned char)(len >> (56 - 8 * i));
	id |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		h[9 + i] = (unsigned char)(id >> (24 - 8 * i));
	cr_assert_eq(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	cr_assert_eq(write(fd, body->p, body->len), (ssize_t)body->len);
}

Test(remote, a_requester_that_never_reads_does_not_stall_the_others)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_publisher_stats ps;
	nng_socket req;
	struct kfw_buf b;
	struct kfw_rep rep;
	void *reply;
	size_t len;
	int fd;

	addrs();
	p = start_pub(5, 0, false, &st);
	feed_frame(st, 3000, "1"); /* a snapshot of about 600 KB */
	fd = raw_req_connect();
	kfw_buf_init(&b);
	kfw_put_hdr(&b, KFW_SNAPSHOT_REQ, 0, 0);
	kfw_put_str(&b, "configmaps");
	kfw_put_str(&b, "");
	kfw_put_u8(&b, 1);
	kfw_put_u32(&b, 0);
	/* Whole snapshots, none of them read: the first fills the socket
	 * buffers, the next replies have nowhere to go. */
	for (uint32_t i = 1; i <= 8; i++)
		raw_req_send(fd, i, &b);

	cr_assert_eq(nng_req0_open(&req), 0);
	cr_assert_eq(nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_dial(req, rep_addr, NULL, 0), 0);
	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_HELLO_REQ, 0, 0);
	cr_assert_eq(nng_send(req, b.p, b.len, 0), 0);
	cr_assert_eq(nng_recv(req, &reply, &len, NNG_FLAG_ALLOC), 0,
		     "the request service stalled behind a peer that never "
		     "reads");
	cr_assert_eq(kfw_parse_rep(reply, len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.hdr.type, KFW_HELLO_REP);
	nng_free(reply, len);
	kf_publisher_stats_get(p, &ps);
	cr_assert_eq(ps.stalled_requesters, 1);
	kfw_buf_fini(&b);
	nng_close(req);
	close(fd);
	kf_publisher_free(p);
}

/* A snapshot request with one-object chunks on req; its reply. */
static struct kfw_rep
snap_req(nng_socket req, struct kfw_buf *b, bool next, uint64_t id,
	 uint32_t offset)
{
	struct kfw_rep rep;
	void *reply;
	size_t len;

	kfw_buf_reset(b);
	kfw_put_hdr(b, next ? KFW_SNAPSHOT_NEXT_REQ : KFW_SNAPSHOT_REQ, 0, 0);
	if (next) {
		kfw_put_u64(b, id);
		kfw_put_u32(b, offset);
	} else {
		kfw_put_str(b, "configmaps");
		kfw_put_str(b, "");
		kfw_put_u8(b, 1);
	}
	kfw_put_u32(b, 1); /* max_bytes: one object per chunk */
	cr_assert_eq(nng_send(req, b->p, b->len, 0), 0);
	cr_assert_eq(nng_recv(req, &reply, &len, NNG_FLAG_ALLOC), 0);
	cr_assert_eq(kfw_parse_rep(reply, len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.hdr.type, KFW_SNAPSHOT_REP);
	nng_free(reply, len);
	return rep;
}

/* The broker keeps 64 snapshots open: a 65th evicts the least recently
 * used, whose next chunk is answered "expired" (the requester starts
 * again; kf_remote counts it in snapshots_dropped). */
Test(remote, the_65th_open_snapshot_evicts_the_least_recently_used)
{
	struct kfi_pub_stream *st;
	kf_publisher *p;
	nng_socket req;
	struct kfw_buf b;
	struct kfw_rep first, rep;

	addrs();
	p = start_pub(5, 0, false, &st);
	feed_frame(st, 3, "1");
	cr_assert_eq(nng_req0_open(&req), 0);
	cr_assert_eq(nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_dial(req, rep_addr, NULL, 0), 0);
	kfw_buf_init(&b);
	first = snap_req(req, &b, false, 0, 0);
	cr_assert_eq(first.status, KFW_ST_OK);
	cr_assert_eq(first.total, 3);
	cr_assert_eq(first.count, 1);
	/* 63 more: all 64 open, the first still readable. */
	for (int i = 0; i < 63; i++)
		cr_assert_eq(snap_req(req, &b, false, 0, 0).status, KFW_ST_OK);
	rep = snap_req(req, &b, true, first.snap_id, 1);
	cr_assert_eq(rep.status, KFW_ST_OK);
	cr_assert_eq(rep.offset, 1);
	/* 64 snapshots opened after its last use push it out. */
	for (int i = 0; i < 64; i++)
		cr_assert_eq(snap_req(req, &b, false, 0, 0).status, KFW_ST_OK);
	rep = snap_req(req, &b, true, first.snap_id, 2);
	cr_assert_eq(rep.status, KFW_ST_EXPIRED);
	kfw_buf_fini(&b);
	nng_close(req);
	kf_publisher_free(p);
}

Test(remote, tcp_listeners_off_loopback_are_refused)
{
	kf_publisher_opts o = {0};
	kf_publisher *p;
	char err[256];

	o.pub_addr = "tcp://0.0.0.0:0";
	o.rep_addr = "tcp://127.0.0.1:0";
	cr_assert_eq(kf_publisher_alloc(&o, err, sizeof(err), &p), KF_ECONFIG);
	cr_assert(strstr(err, "loopback") != NULL, "%s", err);
}

/* A publisher fed by its own in-process subscription of a shared store
 * whose ring is tiny: the writer outruns it, it re-syncs (RESET), and the
 * remote mirror still ends equal to the writer's store. */
Test(remote, a_publisher_on_a_small_ring_keeps_its_subscribers_converging)
{
	kf_publisher_opts o = {0};
	kf_publisher_stats ps;
	kf_publisher *p;
	kf_writer *w;
	kf_store *st;
	kf_remote *r;
	kf_event ev;
	char err[256], name[32], rv[32];
	int64_t end;

	addrs();
	cr_assert_eq(kf_store_shared_alloc(4, &w, &st), KF_OK);
	o.pub_addr = pub_addr;
	o.rep_addr = rep_addr;
	o.batch_delay_us = 2000;
	o.heartbeat_ms = 100;
	cr_assert_eq(kf_publisher_alloc(&o, err, sizeof(err), &p), KF_OK, "%s",
		     err);
	cr_assert_eq(kf_publisher_add_stream(p, "configmaps", st), KF_OK);
	cr_assert_eq(kf_publisher_start(p), KF_OK);

	ev = (kf_event){.type = KF_EV_INIT};
	cr_assert_eq(kf_writer_apply(w, &ev), KF_OK);
	ev = (kf_event){.type = KF_EV_INIT_DONE};
	cr_assert_eq(kf_writer_apply(w, &ev), KF_OK);
	r = subscribe(NULL, false);
	cr_assert_eq(read_frame(r), 0);

	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "o%d", i % 300);
		snprintf(rv, sizeof(rv), "%d", i + 10);
		ev = (kf_event){.type = KF_EV_APPLY,
				.obj = cm("ns1", name, rv, "x")};
		cr_assert_eq(kf_writer_apply(w, &ev), KF_OK);
		kf_object_unref(ev.obj);
	}
	/* Read until the mirror holds the last version of every object. */
	end = 0;
	for (int i = 0; i < 600 && end == 0; i++) {
		while (kf_remote_next(r, 50, &ev) == KF_OK)
			;
		if (kf_store_len(kf_remote_store(r)) == 300) {
			kf_objref ref = {.kind = "ConfigMap",
					 .namespace_ = "ns1",
					 .name = "o199"};
			kf_object *ob;

			if (kf_store_get(kf_remote_store(r), &ref, &ob) ==
			    KF_OK) {
				end = strcmp(kf_object_resource_version(ob),
					     "20009") == 0;
				kf_object_unref(ob);
			}
		}
	}
	cr_assert(end, "the remote mirror did not converge");
	kf_publisher_stats_get(p, &ps);
	cr_log_info("publisher lagged %llu times, %llu resets, %llu messages",
		    (unsigned long long)ps.lagged,
		    (unsigned long long)ps.resets,
		    (unsigned long long)ps.messages);
	/* Four slots cannot hold 20 000 events: the publisher lagged and
	 * each completed re-sync frame became a RESET. */
	cr_assert_gt(ps.lagged, 0);
	cr_assert_geq(ps.resets, 2);
	kf_remote_close(r);
	kf_publisher_free(p);
	kf_store_free(st);
	kf_writer_free(w);
}

/* The same protocol over tcp:// and tls+tcp:// on loopback. */
static void
over_transport(const char *scheme, const char *cert)
{
	kf_publisher_opts o = {0};
	struct kfi_pub_stream *st;
	kf_publisher *p;
	kf_remote_opts ro;
	kf_remote *r;
	kf_event ev;
	char err[256];
	/* Two ports per process: consecutive test processes never share. */
	int port = 20000 + 2 * (int)(getpid() % 20000);

	snprintf(pub_addr, sizeof(pub_addr), "%s://127.0.0.1:%d", scheme, port);
	snprintf(rep_addr, sizeof(rep_addr), "%s://127.0.0.1:%d", scheme,
		 port + 1);
	o.pub_addr = pub_addr;
	o.rep_addr = rep_addr;
	o.tls_cert_key_file = cert;
	cr_assert_eq(kf_publisher_alloc(&o, err, sizeof(err), &p), KF_OK, "%s",
		     err);
	cr_assert_eq(kfi_pub_add_stream(p, "configmaps", NULL, &st), KF_OK);
	cr_assert_eq(kf_publisher_start(p), KF_OK);
	feed_frame(st, 2, "1");

	kf_remote_opts_init(&ro);
	ro.pub_addr = pub_addr; /* REP derived: port + 1 */
	ro.stream = "configmaps";
	ro.tls_ca_file = KF_TEST_DATA_DIR "/broker/ca.pem";
	ro.tls_server_name = "localhost";
	cr_assert_eq(kf_remote_subscribe(&ro, &r), KF_OK);
	cr_assert_eq(read_frame(r), 2);
	settle();
	feed(st, KF_EV_APPLY, cm("ns1", "o1", "2", "y"));
	ev = next(r);
	cr_assert_eq(ev.type, KF_EV_APPLY);
	cr_assert_str_eq(kf_object_resource_version(ev.obj), "2");
	kf_remote_close(r);
	kf_publisher_free(p);
}

Test(remote, the_protocol_runs_over_tcp_on_loopback)
{
	over_transport("tcp", NULL);
}

Test(remote, the_protocol_runs_over_tls_with_the_brokers_certificate)
{
	over_transport("tls+tcp", KF_TEST_DATA_DIR "/broker/tls.pem");
}

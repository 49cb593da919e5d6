/*
 * The nng publisher: events out over PUB, snapshots and status over REP.
 *
 * Theory. nng PUB is lossy (a slow or late peer loses messages and nobody
 * is told), so every published change carries a per-stream sequence number
 * and the publisher must be able to say, at any moment, "this is the whole
 * state as of sequence S". It does so by keeping its own mirror of each
 * stream: a plain store that the stream's feeding thread updates under the
 * stream mutex in the same step that assigns the next sequence number. A
 * snapshot request takes that mutex, reads a store snapshot (pointer
 * copies of shared, immutable objects) and the current sequence, and lets
 * go: the pair is consistent by construction, and the feeding thread is
 * held for the length of one kf_store_state() only.
 *
 * Every INIT..INIT_DONE frame the feeding thread receives (the stream's
 * first state, or a re-sync after its in-process subscription lagged)
 * replaces the mirror in one swap and is published as a RESET that takes
 * a sequence number of its own; remote subscribers answer it with a fresh
 * snapshot. Namespace-filtered subscribers cannot see the stream's
 * sequence contiguously, so each record also carries topic_prev: the
 * sequence of the previous record of the same namespace since the last
 * RESET (the RESET's own sequence when none), kept in a small map.
 *
 * Batching: records of one topic accumulate into one message, sent when
 * the topic changes, when it reaches batch_max_bytes, or when its first
 * record has waited batch_delay_us. Heartbeats follow a flush on the same
 * thread, so on every subscriber's pipe a heartbeat's last_seq never runs
 * ahead of records still queued before it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "kubefan/subscriber.h"
#include "log.h"
#include "publisher.h"
#include "wire.h"

#define PUB_MAX_STREAMS 256
#define PUB_MAX_SNAPS	64
#define PUB_REQ_MAX	(64 * 1024)
/* How long a reply may wait for the requester's connection to take it:
 * a connection is busy only while an earlier reply is still being
 * written, that is when its peer sent again without reading. */
#define PUB_REP_SEND_MS 500

#ifndef KF_VERSION_STRING
#define KF_VERSION_STRING "unknown"
#endif

struct topic_ent {
	char *ns;
	uint64_t last;
};

/* Namespace -> last sequence of that topic; open addressing. */
struct topic_map {
	struct topic_ent *v;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

struct kfi_pub_stream {
	kf_publisher *pub;
	char *name;
	kf_store *src;
	kf_subscriber *sub;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mu; /* guards everything down to `topics` */
	kf_writer *mw;
	kf_store *mr;
	char *kind; /* of the stream's objects, from the first one */
	bool synced;
	uint64_t seq;
	uint64_t base;
	struct topic_map topics;

	/* Feeding thread only. */
	uint8_t reset_reason;
	bool drop_next;
	struct kfw_buf full, refs;
	char *batch_ns;
	uint32_t batch_n;
	size_t count_off_full, count_off_refs;
	uint64_t batch_t0;
	uint64_t next_hb;
};

struct snap {
	uint64_t id; /* 0: free slot */
	kf_state *st;
	uint64_t seq, topic_last;
	uint8_t readiness;
	bool json;
	uint64_t used;
};

struct kf_publisher {
	kf_publisher_opts o;
	nng_socket pub, refs, rep;
	bool has_refs;
	uint64_t incarnation;

	struct kfi_pub_stream *streams[PUB_MAX_STREAMS];
	size_t nstreams;
	bool started;
	atomic_bool stopping;
	pthread_t rep_thread;
	bool rep_started;

	/* REP thread only. */
	struct snap snaps[PUB_MAX_SNAPS];
	uint64_t next_snap_id;

	_Atomic uint64_t messages, batches, events, bytes, heartbeats, resets,
	    lagged, send_errors, requests, bad_requests, nsnapshots, stalled;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the topic map ---- */

static uint64_t
tm_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static struct topic_ent *
tm_find(struct topic_map *m, const char *ns)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	/* Bounded by cap: the map is never full (load <= 1/2). */
	for (i = tm_hash(ns) & (m->cap - 1); m->v[i].ns != NULL;
	     i = (i + 1) & (m->cap - 1))
		if (strcmp(m->v[i].ns, ns) == 0)
			return &m->v[i];
	return &m->v[i];
}

static bool
tm_grow(struct topic_map *m)
{
	struct topic_map nm = {0};

	nm.cap = m->cap ? m->cap * 2 : 16;
	nm.v = calloc(nm.cap, sizeof(*nm.v));
	if (nm.v == NULL)
		return false;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->v[i].ns != NULL) {
			*tm_find(&nm, m->v[i].ns) = m->v[i];
			nm.n++;
		}
	}
	free(m->v);
	*m = nm;
	return true;
}

static uint64_t
tm_get(struct topic_map *m, const char *ns, uint64_t dflt)
{
	struct topic_ent *e = tm_find(m, ns);

	return e != NULL && e->ns != NULL ? e->last : dflt;
}

/* On allocation failure the entry is lost; the next record of that
 * namespace then names the base as its predecessor, which filtered
 * subscribers see as a gap and heal by re-snapshotting. */
static void
tm_set(struct topic_map *m, const char *ns, uint64_t seq)
{
	struct topic_ent *e;

	if ((m->n + 1) * 2 > m->cap && !tm_grow(m))
		return;
	e = tm_find(m, ns);
	if (e->ns == NULL) {
		e->ns = strdup(ns);
		if (e->ns == NULL)
			return;
		m->n++;
	}
	e->last = seq;
}

static void
tm_clear(struct topic_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].ns);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- sending ---- */

static void
pub_send(kf_publisher *p, nng_socket s, const struct kfw_buf *b)
{
	nng_msg *m;
	int rv;

	if (b->oom || b->len == 0) {
		atomic_fetch_add(&p->send_errors, 1);
		return;
	}
	rv = nng_msg_alloc(&m, 0);
	if (rv == 0)
		rv = nng_msg_append(m, b->p, b->len);
	if (rv == 0)
		rv = nng_sendmsg(s, m, 0);
	if (rv != 0) {
		if (m != NULL)
			nng_msg_free(m);
		atomic_fetch_add(&p->send_errors, 1);
		return;
	}
	atomic_fetch_add(&p->messages, 1);
}

static void
send_both(struct kfi_pub_stream *s)
{
	kf_publisher *p = s->pub;

	pub_send(p, p->pub, &s->full);
	atomic_fetch_add(&p->bytes, s->full.len);
	if (p->has_refs)
		pub_send(p, p->refs, &s->refs);
}

void
kfi_pub_flush(struct kfi_pub_stream *s)
{
	if (s->batch_n == 0)
		return;
	kfw_patch_u32(&s->full, s->count_off_full, s->batch_n);
	kfw_patch_u32(&s->refs, s->count_off_refs, s->batch_n);
	send_both(s);
	atomic_fetch_add(&s->pub->batches, 1);
	s->batch_n = 0;
	free(s->batch_ns);
	s->batch_ns = NULL;
	kfw_buf_reset(&s->full);
	kfw_buf_reset(&s->refs);
}

static uint8_t
stream_readiness(struct kfi_pub_stream *s, char *why, size_t len)
{
	if (why != NULL && len > 0)
		why[0] = '\0';
	if (!s->synced)
		return KF_READINESS_NOT_SYNCED;
	if (s->src != NULL)
		return (uint8_t)kf_store_readiness(s->src, why, len);
	return KF_READINESS_READY;
}

/* A control message (heartbeat or reset) on both feeds. */
static void
send_control(struct kfi_pub_stream *s, uint8_t type, uint64_t a, uint64_t b,
	     uint8_t c)
{
	kf_publisher *p = s->pub;
	struct kfw_buf *bufs[2] = {&s->full, &s->refs};

	for (int i = 0; i < 2; i++) {
		kfw_buf_reset(bufs[i]);
		kfw_put_topic(bufs[i], s->name, KFW_CONTROL_NS);
		kfw_put_hdr(bufs[i], type, i ? KFW_HF_REFS_ONLY : 0,
			    p->incarnation);
		kfw_put_u64(bufs[i], a);
		if (type == KFW_HEARTBEAT) {
			kfw_put_u64(bufs[i], b);
			kfw_put_u8(bufs[i], c);
			kfw_put_u32(bufs[i], p->o.heartbeat_ms);
		} else {
			kfw_put_u8(bufs[i], c);
		}
	}
	send_both(s);
	kfw_buf_reset(&s->full);
	kfw_buf_reset(&s->refs);
}

void
kfi_pub_heartbeat(struct kfi_pub_stream *s)
{
	uint64_t seq, base;
	uint8_t ready;

	kfi_pub_flush(s);
	pthread_mutex_lock(&s->mu);
	seq = s->seq;
	base = s->base;
	ready = stream_readiness(s, NULL, 0);
	pthread_mutex_unlock(&s->mu);
	send_control(s, KFW_HEARTBEAT, seq, base, ready);
	atomic_fetch_add(&s->pub->heartbeats, 1);
	s->next_hb = now_ns() + (uint64_t)s->pub->o.heartbeat_ms * 1000000u;
}

void
kfi_pub_drop_next(struct kfi_pub_stream *s)
{
	s->drop_next = true;
}

static void
objdesc_of(const kf_object *obj, struct kfw_objdesc *d)
{
	d->api_version = kf_object_api_version(obj);
	d->kind = kf_object_kind(obj);
	d->ns = kf_object_namespace(obj);
	d->name = kf_object_name(obj);
	d->uid = kf_object_uid(obj);
	d->rv = kf_object_resource_version(obj);
	d->json = kf_object_json(obj, &d->json_len);
}

static void
mirror_apply_locked(struct kfi_pub_stream *s, const kf_event *ev)
{
	kf_err e = kf_writer_apply(s->mw, ev);

	if (e != KF_OK)
		kfi_log(KF_LOG_WARNING, "KF-PUB-MIRROR",
			"stream %s: mirror refused a %s event: %s", s->name,
			kf_event_type_name(ev->type), kf_strerror(e));
	if (s->kind == NULL && ev->obj != NULL &&
	    kf_object_kind(ev->obj)[0] != '\0')
		s->kind = strdup(kf_object_kind(ev->obj));
}

static void
batch_open(struct kfi_pub_stream *s, const char *ns)
{
	kf_publisher *p = s->pub;

	kfw_put_topic(&s->full, s->name, ns);
	kfw_put_hdr(&s->full, KFW_EVENTS, 0, p->incarnation);
	s->count_off_full = s->full.len;
	kfw_put_u32(&s->full, 0);
	if (p->has_refs) {
		kfw_put_topic(&s->refs, s->name, ns);
		kfw_put_hdr(&s->refs, KFW_EVENTS, KFW_HF_REFS_ONLY,
			    p->incarnation);
		s->count_off_refs = s->refs.len;
		kfw_put_u32(&s->refs, 0);
	}
	s->batch_ns = strdup(ns);
	s->batch_t0 = now_ns();
}

static void
publish_change(struct kfi_pub_stream *s, const kf_event *ev)
{
	kf_publisher *p = s->pub;
	const char *ns = kf_object_namespace(ev->obj);
	struct kfw_objdesc d;
	uint64_t seq, prev;

	pthread_mutex_lock(&s->mu);
	mirror_apply_locked(s, ev);
	seq = ++s->seq;
	prev = tm_get(&s->topics, ns, s->base);
	tm_set(&s->topics, ns, seq);
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&p->events, 1);

	if (s->drop_next) {
		s->drop_next = false;
		return;
	}
	if (s->batch_n > 0 &&
	    (s->batch_ns == NULL || strcmp(s->batch_ns, ns) != 0))
		kfi_pub_flush(s);
	if (s->batch_n == 0)
		batch_open(s, ns);
	objdesc_of(ev->obj, &d);
	kfw_put_event(&s->full, seq, prev, (uint8_t)ev->type,
		      (uint8_t)ev->flags, &d, true);
	if (p->has_refs)
		kfw_put_event(&s->refs, seq, prev, (uint8_t)ev->type,
			      (uint8_t)ev->flags, &d, false);
	s->batch_n++;
	if (p->o.batch_delay_us == 0 || s->full.len >= p->o.batch_max_bytes)
		kfi_pub_flush(s);
}

void
kfi_pub_feed(struct kfi_pub_stream *s, const kf_event *ev)
{
	uint64_t seq;

	switch (ev->type) {
	case KF_EV_LAGGED:
		kfi_pub_flush(s);
		s->reset_reason = KFW_RESET_LAGGED;
		atomic_fetch_add(&s->pub->lagged, 1);
		kfi_log(KF_LOG_WARNING, "KF-PUB-LAGGED",
			"stream %s: publisher missed %llu events; re-syncing "
			"and resetting remote subscribers",
			s->name, (unsigned long long)ev->missed);
		break;
	case KF_EV_INIT:
		kfi_pub_flush(s);
		/* fall through */
	case KF_EV_INIT_APPLY:
		pthread_mutex_lock(&s->mu);
		mirror_apply_locked(s, ev);
		pthread_mutex_unlock(&s->mu);
		break;
	case KF_EV_INIT_DONE:
		pthread_mutex_lock(&s->mu);
		mirror_apply_locked(s, ev);
		s->synced = true;
		seq = ++s->seq;
		s->base = seq;
		tm_clear(&s->topics);
		pthread_mutex_unlock(&s->mu);
		send_control(s, KFW_RESET, seq, 0,
			     s->reset_reason ? s->reset_reason
					     : KFW_RESET_SYNC);
		s->reset_reason = 0;
		atomic_fetch_add(&s->pub->resets, 1);
		break;
	case KF_EV_APPLY:
	case KF_EV_DELETE:
		if (ev->obj != NULL)
			publish_change(s, ev);
		break;
	}
}

/* ---- the feeding thread of a stream with a source store ---- */

static void *
stream_main(void *arg)
{
	struct kfi_pub_stream *s = arg;
	kf_publisher *p = s->pub;
	kf_event ev;
	kf_err e;

	s->next_hb = now_ns();
	/* Each turn handles at most one event, then the batch deadline and
	 * the heartbeat: a busy stream cannot starve either. */
	while (!atomic_load(&p->stopping)) {
		uint64_t now = now_ns(), until = s->next_hb;
		int64_t wait_ms;

		if (s->batch_n > 0) {
			uint64_t due =
			    s->batch_t0 + (uint64_t)p->o.batch_delay_us * 1000u;
			if (due < until)
				until = due;
		}
		wait_ms = until > now
			      ? (int64_t)((until - now + 999999) / 1000000)
			      : 0;
		if (wait_ms > 100)
			wait_ms = 100; /* notice `stopping` */
		e = kf_subscriber_next(s->sub, wait_ms, &ev);
		if (e == KF_OK)
			kfi_pub_feed(s, &ev);
		else if (e == KF_ECLOSED)
			break;
		now = now_ns();
		if (s->batch_n > 0 &&
		    now >= s->batch_t0 + (uint64_t)p->o.batch_delay_us * 1000u)
			kfi_pub_flush(s);
		if (now >= s->next_hb)
			kfi_pub_heartbeat(s);
	}
	kfi_pub_flush(s);
	return NULL;
}

/* ---- the REP service ---- */

static struct kfi_pub_stream *
find_stream(kf_publisher *p, struct kfw_str name)
{
	for (size_t i = 0; i < p->nstreams; i++) {
		const char *n = p->streams[i]->name;

		if (strlen(n) == name.len && memcmp(n, name.p, name.len) == 0)
			return p->streams[i];
	}
	return NULL;
}

static char *
str_dup(struct kfw_str s)
{
	char *c = malloc(s.len + 1);

	if (c != NULL) {
		memcpy(c, s.p, s.len);
		c[s.len] = '\0';
	}
	return c;
}

static void
rep_hello(kf_publisher *p, struct kfw_buf *b)
{
	kfw_put_hdr(b, KFW_HELLO_REP, 0, p->incarnation);
	kfw_put_u8(b, KFW_ST_OK);
	kfw_put_str(b, KF_VERSION_STRING);
	kfw_put_u32(b, (uint32_t)p->nstreams);
	for (size_t i = 0; i < p->nstreams; i++) {
		struct kfi_pub_stream *s = p->streams[i];

		pthread_mutex_lock(&s->mu);
		kfw_put_str(b, s->name);
		kfw_put_u8(b, stream_readiness(s, NULL, 0));
		kfw_put_u64(b, s->seq);
		kfw_put_u64(b, s->base);
		pthread_mutex_unlock(&s->mu);
	}
}

static void
put_snap_head(kf_publisher *p, struct kfw_buf *b, uint8_t status,
	      const struct snap *sn)
{
	kfw_put_hdr(b, KFW_SNAPSHOT_REP, 0, p->incarnation);
	kfw_put_u8(b, status);
	kfw_put_u8(b, sn ? sn->readiness : 0);
	kfw_put_u64(b, sn ? sn->id : 0);
	kfw_put_u64(b, sn ? sn->seq : 0);
	kfw_put_u64(b, sn ? sn->topic_last : 0);
}

static void
snap_free(struct snap *sn)
{
	if (sn->st != NULL)
		kf_state_free(sn->st);
	memset(sn, 0, sizeof(*sn));
}

/* One chunk from `offset`: at least one object, then as many as fit in
 * max_bytes. A chunk that reaches the end frees the snapshot. */
static void
put_snap_chunk(kf_publisher *p, struct kfw_buf *b, struct snap *sn,
	       uint32_t offset, uint32_t max_bytes)
{
	size_t total = kf_state_len(sn->st), at;
	uint32_t n = 0;
	size_t start;

	if (max_bytes == 0)
		max_bytes = (uint32_t)p->o.snapshot_chunk_bytes;
	put_snap_head(p, b, KFW_ST_OK, sn);
	kfw_put_u32(b, (uint32_t)total);
	kfw_put_u32(b, offset);
	at = b->len;
	kfw_put_u32(b, 0);
	start = b->len;
	for (size_t i = offset; i < total; i++) {
		struct kfw_objdesc d;

		objdesc_of(kf_state_at(sn->st, i), &d);
		if (n > 0 && b->len - start + d.json_len + 256 > max_bytes)
			break;
		kfw_put_obj(b, &d, sn->json);
		n++;
	}
	kfw_patch_u32(b, at, n);
	sn->used = now_ns();
	if (offset + n >= total)
		snap_free(sn);
}

static struct snap *
snap_slot(kf_publisher *p)
{
	struct snap *old = &p->snaps[0];

	for (size_t i = 0; i < PUB_MAX_SNAPS; i++) {
		if (p->snaps[i].id == 0)
			return &p->snaps[i];
		if (p->snaps[i].used < old->used)
			old = &p->snaps[i];
	}
	snap_free(old); /* the least recently used one is evicted */
	return old;
}

static bool
stream_synced(struct kfi_pub_stream *s)
{
	bool v;

	pthread_mutex_lock(&s->mu);
	v = s->synced;
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void
rep_snapshot(kf_publisher *p, const struct kfw_req *q, struct kfw_buf *b)
{
	struct kfi_pub_stream *s = find_stream(p, q->stream);
	struct snap *sn;
	char *ns;
	kf_err e;

	if (s == NULL) {
		put_snap_head(p, b, KFW_ST_NOSTREAM, NULL);
		goto empty;
	}
	ns = str_dup(q->ns);
	if (ns == NULL) {
		put_snap_head(p, b, KFW_ST_NOTREADY, NULL);
		goto empty;
	}
	if (!stream_synced(s)) {
		free(ns);
		put_snap_head(p, b, KFW_ST_NOTREADY, NULL);
		goto empty;
	}
	/* Once synced, a stream stays synced: the slot is not wasted. */
	sn = snap_slot(p);
	pthread_mutex_lock(&s->mu);
	if (ns[0] == '\0')
		e = kf_store_state(s->mr, &sn->st);
	else
		e = kf_store_by_namespace(s->mr, ns, &sn->st);
	sn->seq = s->seq;
	sn->topic_last = ns[0] ? tm_get(&s->topics, ns, s->base) : s->seq;
	sn->readiness = stream_readiness(s, NULL, 0);
	pthread_mutex_unlock(&s->mu);
	free(ns);
	if (e != KF_OK) {
		sn->st = NULL;
		put_snap_head(p, b, KFW_ST_NOTREADY, NULL);
		goto empty;
	}
	sn->id = ++p->next_snap_id;
	sn->json = q->want_json != 0;
	atomic_fetch_add(&p->nsnapshots, 1);
	put_snap_chunk(p, b, sn, 0, q->max_bytes);
	return;
empty:
	kfw_put_u32(b, 0);
	kfw_put_u32(b, 0);
	kfw_put_u32(b, 0);
}

static void
rep_snapshot_next(kf_publisher *p, const struct kfw_req *q, struct kfw_buf *b)
{
	for (size_t i = 0; i < PUB_MAX_SNAPS; i++) {
		struct snap *sn = &p->snaps[i];

		if (sn->id != 0 && sn->id == q->snap_id &&
		    q->offset <= kf_state_len(sn->st)) {
			put_snap_chunk(p, b, sn, q->offset, q->max_bytes);
			return;
		}
	}
	put_snap_head(p, b, KFW_ST_EXPIRED, NULL);
	kfw_put_u32(b, 0);
	kfw_put_u32(b, 0);
	kfw_put_u32(b, 0);
}

static void
rep_status(kf_publisher *p, const struct kfw_req *q, struct kfw_buf *b)
{
	struct kfi_pub_stream *s = find_stream(p, q->stream);
	char why[256] = "", *ns = str_dup(q->ns);
	uint64_t seq = 0, base = 0, tl = 0;
	uint8_t ready = 0;

	if (s != NULL && ns != NULL) {
		pthread_mutex_lock(&s->mu);
		ready = stream_readiness(s, why, sizeof(why));
		seq = s->seq;
		base = s->base;
		tl = ns[0] ? tm_get(&s->topics, ns, s->base) : s->seq;
		pthread_mutex_unlock(&s->mu);
	}
	free(ns);
	kfw_put_hdr(b, KFW_STATUS_REP, 0, p->incarnation);
	kfw_put_u8(b, s == NULL ? KFW_ST_NOSTREAM : KFW_ST_OK);
	kfw_put_u8(b, ready);
	kfw_put_u64(b, seq);
	kfw_put_u64(b, base);
	kfw_put_u64(b, tl);
	kfw_put_str(b, why);
}

static void
rep_get(kf_publisher *p, const struct kfw_req *q, struct kfw_buf *b)
{
	struct kfi_pub_stream *s = find_stream(p, q->stream);
	char *ns = str_dup(q->ns), *name = str_dup(q->name);
	uint8_t status = KFW_ST_NOSTREAM;
	kf_object *obj = NULL;
	uint64_t seq = 0;

	if (s != NULL && ns != NULL && name != NULL) {
		pthread_mutex_lock(&s->mu);
		seq = s->seq;
		if (!s->synced) {
			status = KFW_ST_NOTREADY;
		} else {
			kf_objref ref = {.kind = s->kind ? s->kind : "",
					 .namespace_ = ns,
					 .name = name};
			kf_err e = kf_store_get(s->mr, &ref, &obj);

			status = e == KF_OK	     ? KFW_ST_OK
				 : e == KF_ENOTREADY ? KFW_ST_NOTREADY
						     : KFW_ST_NOTFOUND;
		}
		pthread_mutex_unlock(&s->mu);
	}
	free(ns);
	free(name);
	kfw_put_hdr(b, KFW_GET_REP, 0, p->incarnation);
	kfw_put_u8(b, status);
	kfw_put_u64(b, seq);
	kfw_put_u8(b, obj != NULL ? 1 : 0);
	if (obj != NULL) {
		struct kfw_objdesc d;

		objdesc_of(obj, &d);
		kfw_put_obj(b, &d, q->want_json != 0);
		kf_object_unref(obj);
	}
}

static void
rep_answer(kf_publisher *p, const void *body, size_t len, struct kfw_buf *b)
{
	struct kfw_req q;
	const char *why = NULL;

	if (kfw_parse_req(body, len, &q, &why) != KF_OK) {
		atomic_fetch_add(&p->bad_requests, 1);
		kfi_log(KF_LOG_DEBUG, "KF-PUB-BADREQ",
			"malformed request (%zu bytes): %s", len, why);
		kfw_put_hdr(b, KFW_ERROR_REP, 0, p->incarnation);
		kfw_put_u8(b, KFW_ST_BADREQ);
		kfw_put_str(b, why);
		return;
	}
	switch (q.hdr.type) {
	case KFW_HELLO_REQ:
		rep_hello(p, b);
		break;
	case KFW_SNAPSHOT_REQ:
		rep_snapshot(p, &q, b);
		break;
	case KFW_SNAPSHOT_NEXT_REQ:
		rep_snapshot_next(p, &q, b);
		break;
	case KFW_STATUS_REQ:
		rep_status(p, &q, b);
		break;
	case KFW_GET_REQ:
		rep_get(p, &q, b);
		break;
	}
}

/* Send a reply, waiting at most PUB_REP_SEND_MS. Without the bound, a
 * peer that sends requests without reading the replies (its earlier
 * reply filling the socket buffers) would hold this thread, and with it
 * every other requester, for as long as it likes. Such a peer is cut
 * off; an honest REQ socket re-dials and asks again. */
static void
rep_send(kf_publisher *p, nng_msg *m)
{
	nng_pipe pipe = nng_msg_get_pipe(m);
	int rv = nng_sendmsg(p->rep, m, 0);

	if (rv == 0)
		return;
	nng_msg_free(m);
	if (rv == NNG_ETIMEDOUT) {
		atomic_fetch_add(&p->stalled, 1);
		nng_pipe_close(pipe);
	}
}

static void
expire_snaps(kf_publisher *p)
{
	uint64_t now = now_ns(),
		 ttl = (uint64_t)p->o.snapshot_ttl_ms * 1000000u;

	for (size_t i = 0; i < PUB_MAX_SNAPS; i++)
		if (p->snaps[i].id != 0 && now - p->snaps[i].used > ttl)
			snap_free(&p->snaps[i]);
}

static void *
rep_main(void *arg)
{
	kf_publisher *p = arg;
	struct kfw_buf b;

	kfw_buf_init(&b);
	/* One request per turn; the receive timeout bounds how long a stop
	 * waits for this thread. */
	while (!atomic_load(&p->stopping)) {
		nng_msg *m;
		int rv = nng_recvmsg(p->rep, &m, 0);

		if (rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN) {
			expire_snaps(p);
			continue;
		}
		if (rv != 0)
			break;
		kfw_buf_reset(&b);
		rep_answer(p, nng_msg_body(m), nng_msg_len(m), &b);
		atomic_fetch_add(&p->requests, 1);
		nng_msg_clear(m);
		if (b.oom || nng_msg_append(m, b.p, b.len) != 0)
			nng_msg_free(m);
		else
			rep_send(p, m);
		expire_snaps(p);
	}
	kfw_buf_fini(&b);
	for (size_t i = 0; i < PUB_MAX_SNAPS; i++)
		snap_free(&p->snaps[i]);
	return NULL;
}

/* ---- setup ---- */

static bool
is_loopback_host(const char *addr)
{
	const char *h = strstr(addr, "://");
	const char *loop[] = {"127.", "localhost:", "[::1]:"};

	if (h == NULL)
		return false;
	h += 3;
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		if (strncmp(h, loop[i], strlen(loop[i])) == 0)
			return true;
	return false;
}

static kf_err
pub_listen(kf_publisher *p, nng_socket s, const char *addr, char *errbuf,
	   size_t errlen)
{
	nng_listener l;
	int rv;
	bool tcp = strncmp(addr, "tcp://", 6) == 0 ||
		   strncmp(addr, "tls+tcp://", 10) == 0;

	if (tcp && !p->o.allow_remote && !is_loopback_host(addr)) {
		snprintf(errbuf, errlen,
			 "%s: refusing to listen off loopback (allow remote "
			 "listeners explicitly)",
			 addr);
		return KF_ECONFIG;
	}
	if (strncmp(addr, "tls+tcp://", 10) == 0 &&
	    p->o.tls_cert_key_file == NULL) {
		snprintf(errbuf, errlen, "%s: tls+tcp needs a certificate file",
			 addr);
		return KF_ECONFIG;
	}
	rv = nng_listener_create(&l, s, addr);
	if (rv == 0 && strncmp(addr, "ipc://", 6) == 0)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
					  p->o.ipc_mode);
	if (rv == 0 && strncmp(addr, "tls+tcp://", 10) == 0)
		rv = nng_listener_set_string(l, NNG_OPT_TLS_CERT_KEY_FILE,
					     p->o.tls_cert_key_file);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0) {
		snprintf(errbuf, errlen, "%s: %s", addr, nng_strerror(rv));
		return KF_ENNG;
	}
	return KF_OK;
}

static void
opts_defaults(kf_publisher_opts *o)
{
	if (o->ipc_mode == 0)
		o->ipc_mode = 0600;
	if (o->batch_max_bytes == 0)
		o->batch_max_bytes = 64 * 1024;
	if (o->heartbeat_ms == 0)
		o->heartbeat_ms = 1000;
	if (o->snapshot_chunk_bytes == 0)
		o->snapshot_chunk_bytes = 1024 * 1024;
	if (o->snapshot_ttl_ms == 0)
		o->snapshot_ttl_ms = 30000;
}

kf_err
kf_publisher_alloc(const kf_publisher_opts *opts, char *errbuf, size_t errlen,
		   kf_publisher **out)
{
	kf_publisher *p;
	char dummy[8];
	kf_err e = KF_ENNG;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	errbuf[0] = '\0';
	if (opts->pub_addr == NULL || opts->rep_addr == NULL)
		return KF_EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return KF_ENOMEM;
	p->o = *opts;
	opts_defaults(&p->o);
	p->incarnation = opts->incarnation;
	while (p->incarnation == 0)
		if (getrandom(&p->incarnation, sizeof(p->incarnation), 0) !=
		    sizeof(p->incarnation))
			p->incarnation =
			    (uint64_t)now_ns() ^ (uint64_t)getpid();

	if (nng_pub0_open(&p->pub) != 0 || nng_rep0_open(&p->rep) != 0)
		goto fail;
	nng_socket_set_int(p->pub, NNG_OPT_SENDBUF, 8192);
	nng_socket_set_size(p->rep, NNG_OPT_RECVMAXSZ, PUB_REQ_MAX);
	nng_socket_set_ms(p->rep, NNG_OPT_RECVTIMEO, 100);
	nng_socket_set_ms(p->rep, NNG_OPT_SENDTIMEO, PUB_REP_SEND_MS);
	if ((e = pub_listen(p, p->pub, opts->pub_addr, errbuf, errlen)) != 0)
		goto fail;
	if ((e = pub_listen(p, p->rep, opts->rep_addr, errbuf, errlen)) != 0)
		goto fail;
	if (opts->refs_addr != NULL) {
		p->has_refs = true;
		e = KF_ENNG;
		if (nng_pub0_open(&p->refs) != 0)
			goto fail;
		nng_socket_set_int(p->refs, NNG_OPT_SENDBUF, 8192);
		e = pub_listen(p, p->refs, opts->refs_addr, errbuf, errlen);
		if (e != KF_OK)
			goto fail;
	}
	kfi_log(KF_LOG_INFO, "KF-PUB-LISTEN",
		"publishing on %s, replying on %s, incarnation %016llx",
		opts->pub_addr, opts->rep_addr,
		(unsigned long long)p->incarnation);
	*out = p;
	return KF_OK;
fail:
	nng_close(p->pub);
	nng_close(p->rep);
	if (p->has_refs)
		nng_close(p->refs);
	free(p);
	return e;
}

kf_err
kfi_pub_add_stream(kf_publisher *p, const char *name, kf_store *src,
		   struct kfi_pub_stream **out)
{
	struct kfi_pub_stream *s;
	kf_err e;

	if (p->started || p->nstreams == PUB_MAX_STREAMS || name == NULL ||
	    name[0] == '\0' || strlen(name) > KFW_MAX_TOPIC / 2 ||
	    find_stream(p, (struct kfw_str){name, strlen(name)}) != NULL)
		return KF_EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return KF_ENOMEM;
	s->pub = p;
	s->src = src;
	s->name = strdup(name);
	pthread_mutex_init(&s->mu, NULL);
	kfw_buf_init(&s->full);
	kfw_buf_init(&s->refs);
	e = s->name ? kf_store_alloc(&s->mw, &s->mr) : KF_ENOMEM;
	if (e != KF_OK) {
		free(s->name);
		free(s);
		return e;
	}
	p->streams[p->nstreams++] = s;
	if (out != NULL)
		*out = s;
	return KF_OK;
}

kf_err
kf_publisher_start(kf_publisher *p)
{
	kf_err e;

	if (p->started)
		return KF_EINVAL;
	p->started = true;
	for (size_t i = 0; i < p->nstreams; i++) {
		struct kfi_pub_stream *s = p->streams[i];

		if (s->src == NULL)
			continue;
		e = kf_store_subscribe(s->src, NULL, &s->sub);
		if (e != KF_OK)
			return e;
		if (pthread_create(&s->thread, NULL, stream_main, s) != 0)
			return KF_ENOMEM;
		s->thread_started = true;
	}
	if (pthread_create(&p->rep_thread, NULL, rep_main, p) != 0)
		return KF_ENOMEM;
	p->rep_started = true;
	return KF_OK;
}

static void
stream_free(struct kfi_pub_stream *s)
{
	if (s->sub != NULL)
		kf_subscriber_free(s->sub);
	kfw_buf_fini(&s->full);
	kfw_buf_fini(&s->refs);
	free(s->batch_ns);
	tm_clear(&s->topics);
	kf_store_free(s->mr);
	kf_writer_free(s->mw);
	pthread_mutex_destroy(&s->mu);
	free(s->kind);
	free(s->name);
	free(s);
}

void
kf_publisher_free(kf_publisher *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stopping, true);
	for (size_t i = 0; i < p->nstreams; i++)
		if (p->streams[i]->sub != NULL)
			kf_subscriber_close(p->streams[i]->sub);
	for (size_t i = 0; i < p->nstreams; i++)
		if (p->streams[i]->thread_started)
			pthread_join(p->streams[i]->thread, NULL);
	if (p->rep_started)
		pthread_join(p->rep_thread, NULL);
	nng_close(p->pub);
	nng_close(p->rep);
	if (p->has_refs)
		nng_close(p->refs);
	for (size_t i = 0; i < p->nstreams; i++)
		stream_free(p->streams[i]);
	free(p);
}

void
kf_publisher_stats_get(kf_publisher *p, kf_publisher_stats *o)
{
	o->incarnation = p->incarnation;
	o->messages = atomic_load(&p->messages);
	o->batches = atomic_load(&p->batches);
	o->events = atomic_load(&p->events);
	o->bytes = atomic_load(&p->bytes);
	o->heartbeats = atomic_load(&p->heartbeats);
	o->resets = atomic_load(&p->resets);
	o->lagged = atomic_load(&p->lagged);
	o->send_errors = atomic_load(&p->send_errors);
	o->requests = atomic_load(&p->requests);
	o->bad_requests = atomic_load(&p->bad_requests);
	o->snapshots = atomic_load(&p->nsnapshots);
	o->stalled_requesters = atomic_load(&p->stalled);
}

void
kfi_pub_stream_stats_get(struct kfi_pub_stream *s, kf_publisher_stream_stats *o)
{
	pthread_mutex_lock(&s->mu);
	o->seq = s->seq;
	o->base = s->base;
	o->synced = s->synced;
	o->objects = kf_store_len(s->mr);
	pthread_mutex_unlock(&s->mu);
}

size_t
kf_publisher_stream_count(kf_publisher *p)
{
	return p->nstreams;
}

struct kfi_pub_stream *
kfi_pub_stream_at(kf_publisher *p, size_t i)
{
	return i < p->nstreams ? p->streams[i] : NULL;
}

const char *
kfi_pub_stream_name(struct kfi_pub_stream *s)
{
	return s->name;
}

kf_err
kf_publisher_add_stream(kf_publisher *p, const char *name, kf_store *src)
{
	if (src == NULL)
		return KF_EINVAL;
	return kfi_pub_add_stream(p, name, src, NULL);
}

const char *
kf_publisher_stream_stats_get(kf_publisher *p, size_t i,
			      kf_publisher_stream_stats *out)
{
	struct kfi_pub_stream *s = kfi_pub_stream_at(p, i);

	if (s == NULL)
		return NULL;
	kfi_pub_stream_stats_get(s, out);
	return s->name;
}

kf_err
kf_publisher_stream_feed_stats(kf_publisher *p, size_t i, kf_sub_stats *out)
{
	struct kfi_pub_stream *s = kfi_pub_stream_at(p, i);

	if (s == NULL || s->sub == NULL || out == NULL)
		return KF_EINVAL;
	kf_subscriber_stats(s->sub, out);
	return KF_OK;
}

/*
 * The remote subscriber: a kubefand stream over nng SUB + REQ, delivered
 * with the in-process subscriber's event shape, mirrored into a store.
 *
 * Theory. nng PUB drops messages for slow or late peers and says nothing,
 * so correctness rests on three numbers the broker puts on the wire
 * (docs/protocol.md): its incarnation id, the stream sequence of each
 * record, and (for a namespace-filtered subscription, which cannot see the
 * stream's sequence contiguously) topic_prev, the sequence of the previous
 * record of the same namespace. The handle keeps `seq`, the sequence its
 * mirror is consistent with, and `tlast`, the last record of its
 * namespace. Then:
 *
 *   record s <= seq                  already covered: skip (duplicate)
 *   all namespaces, s == seq + 1     apply
 *   filtered, topic_prev == tlast    apply
 *   anything else                    gap: re-sync
 *   RESET r > seq                    re-sync
 *   heartbeat last > seq             all namespaces: the tail was lost,
 *                                    re-sync; filtered: ask STATUS
 *   other incarnation                the broker restarted: re-sync
 *
 * A re-sync asks SNAPSHOT over REQ (chunked), gets the objects and the
 * sequence S they are consistent with, swaps the mirror in one step, and
 * then keeps reading the SUB queue, where messages kept arriving during
 * the request: those at or below S are skipped, S + 1 follows. Nothing is
 * buffered by hand; nng's SUB queue is the buffer (recv_buffer messages),
 * and when it overflows the result is one more gap, healed the same way.
 *
 * Links. nng re-dials a lost connection by itself, with one exception
 * that a broker crash provokes: in nng 1.5.2, when the first write of a
 * fresh connection (the SP header) fails with EPIPE, the dialer never
 * dials again. A SIGKILLed kubefand closes its sockets one by one, so a
 * subscriber whose connection dropped first can re-dial into a listener
 * that still takes connections into its backlog and then resets them.
 * Nothing reports such a dead dialer, so the handle acts on what it sees:
 * a request that found no connection for request_timeout_ms re-dials the
 * REQ socket, and a silent broker has the SUB socket re-dialed once per
 * silence period for as long as the silence lasts. A new dialer starts
 * with an immediate attempt, so re-dialing a live one costs nothing.
 *
 * All protocol work runs inside next/try_next on the caller's thread; the
 * sockets' own nng threads only queue. Every loop here is bounded by the
 * messages already queued or by a deadline.
 */
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "kubefan/remote.h"
#include "log.h"
#include "wire.h"

enum rm_state {
	RM_WAIT_LINK, /* dialed; waiting for the first message */
	RM_NEED_SNAP, /* a snapshot is due at retry_at */
	RM_LIVE,
};

struct rm_item {
	kf_event_type type;
	unsigned flags;
	kf_object *obj; /* owned reference, NULL for markers */
	uint64_t missed;
};

struct kf_remote {
	char *pub_addr, *rep_addr, *stream, *ns;
	kf_remote_opts o;
	nng_socket sub, req;
	nng_dialer sub_d, req_d;
	nng_duration reconn_max; /* nng's re-dial cap, as the caller set it */
	bool closed;

	kf_writer *mw;
	kf_store *mr;

	enum rm_state state;
	uint64_t inc;		 /* incarnation of the mirror's snapshot */
	uint64_t seq;		 /* sequence the mirror is consistent with */
	uint64_t tlast;		 /* filtered: last record of our namespace */
	uint64_t status_checked; /* filtered: heartbeat last already asked */
	bool have_snapshot;
	bool silent;
	uint64_t pending_missed; /* LAGGED count for the next frame */
	int64_t retry_at;	 /* ms, RM_NEED_SNAP */
	int64_t backoff_ms;
	int64_t link_deadline;
	int64_t redial_at;   /* ms: next SUB re-dial while silent */
	int64_t last_msg;    /* ms of the last message */
	int64_t hb_interval; /* ms, from heartbeats */
	char *kind;	     /* the stream's kind, from the first object */

	struct rm_item *q;
	size_t qhead, qlen, qcap;
	kf_object *lent; /* the object of the last delivered event */

	struct kfw_buf buf;

	_Atomic uint64_t delivered, messages, applied, duplicates, gaps, missed,
	    resyncs, snapshots, resets, restarts, silences, malformed,
	    request_errors, redials, st_seq, st_inc, snapshots_dropped;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void
kf_remote_opts_init(kf_remote_opts *o)
{
	memset(o, 0, sizeof(*o));
}

/* ---- the delivery queue ---- */

static bool
q_push(kf_remote *r, kf_event_type type, unsigned flags, kf_object *obj,
       uint64_t missed)
{
	if (r->qhead + r->qlen == r->qcap) {
		if (r->qhead > 0) {
			memmove(r->q, r->q + r->qhead, r->qlen * sizeof(*r->q));
			r->qhead = 0;
		} else {
			size_t nc = r->qcap ? r->qcap * 2 : 64;
			struct rm_item *nq = realloc(r->q, nc * sizeof(*nq));

			if (nq == NULL)
				return false;
			r->q = nq;
			r->qcap = nc;
		}
	}
	r->q[r->qhead + r->qlen++] = (struct rm_item){type, flags, obj, missed};
	return true;
}

static void
q_clear(kf_remote *r)
{
	for (size_t i = 0; i < r->qlen; i++)
		if (r->q[r->qhead + i].obj != NULL)
			kf_object_unref(r->q[r->qhead + i].obj);
	r->qhead = r->qlen = 0;
}

static void
release_lent(kf_remote *r)
{
	if (r->lent != NULL) {
		kf_object_unref(r->lent);
		r->lent = NULL;
	}
}

static bool
q_pop(kf_remote *r, kf_event *ev)
{
	struct rm_item it;

	if (r->qlen == 0)
		return false;
	it = r->q[r->qhead++];
	r->qlen--;
	if (r->qlen == 0)
		r->qhead = 0;
	r->lent = it.obj;
	ev->type = it.type;
	ev->flags = it.flags;
	ev->obj = it.obj;
	ev->missed = it.missed;
	bump(&r->delivered, 1);
	return true;
}

/* ---- objects from records ---- */

static void
jset(json_object *o, const char *k, struct kfw_str v)
{
	if (v.len > 0)
		json_object_object_add(
		    o, k, json_object_new_string_len(v.p, (int)v.len));
}

/* A reference-only record becomes a minimal object: apiVersion, kind and
 * the metadata the record names. */
static kf_err
obj_from_ref(const struct kfw_obj *w, kf_object **out)
{
	json_object *o = json_object_new_object();
	json_object *md = json_object_new_object();
	const char *txt;
	size_t len;
	kf_err e;

	jset(o, "apiVersion", w->api_version);
	jset(o, "kind", w->kind);
	jset(md, "name", w->name);
	jset(md, "namespace", w->ns);
	jset(md, "uid", w->uid);
	jset(md, "resourceVersion", w->rv);
	json_object_object_add(o, "metadata", md);
	txt =
	    json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	e = kf_object_parse(txt, len, NULL, NULL, 0, out);
	json_object_put(o);
	return e;
}

static kf_err
obj_from_wire(kf_remote *r, const struct kfw_obj *w, kf_object **out)
{
	char kind[256];
	kf_err e;

	if (!w->has_json)
		return obj_from_ref(w, out);
	snprintf(kind, sizeof(kind), "%.*s", (int)w->kind.len, w->kind.p);
	e = kf_object_parse(w->json.p, w->json.len, kind[0] ? kind : NULL, NULL,
			    0, out);
	if (e == KF_OK && r->kind == NULL)
		r->kind = strdup(kf_object_kind(*out));
	return e;
}

/* ---- links ---- */

static int
dial(kf_remote *r, nng_socket s, const char *addr, nng_dialer *out)
{
	nng_dialer d = NNG_DIALER_INITIALIZER;
	int rv = nng_dialer_create(&d, s, addr);

	if (rv == 0 && strncmp(addr, "tls+tcp://", 10) == 0) {
		if (r->o.tls_ca_file != NULL)
			rv = nng_dialer_set_string(d, NNG_OPT_TLS_CA_FILE,
						   r->o.tls_ca_file);
		if (rv == 0 && r->o.tls_server_name != NULL)
			rv = nng_dialer_set_string(d, NNG_OPT_TLS_SERVER_NAME,
						   r->o.tls_server_name);
	}
	if (rv == 0)
		nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 100);
	if (rv == 0)
		nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, r->reconn_max);
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		*out = d;
	else if (nng_dialer_id(d) > 0)
		nng_dialer_close(d);
	return rv;
}

/* Replace a dialer that may have stopped for good (see Links above). On
 * failure the socket is left without one, and the next trigger tries
 * again. */
static void
redial(kf_remote *r, nng_socket s, nng_dialer *d, const char *addr)
{
	int rv;

	if (nng_dialer_id(*d) > 0)
		nng_dialer_close(*d);
	*d = (nng_dialer)NNG_DIALER_INITIALIZER;
	rv = dial(r, s, addr, d);
	bump(&r->redials, 1);
	if (rv != 0)
		kfi_log(KF_LOG_WARNING, "KF-REMOTE-REDIAL",
			"stream %s: re-dialing %s failed: %s", r->stream, addr,
			nng_strerror(rv));
	else
		kfi_log(KF_LOG_DEBUG, "KF-REMOTE-REDIAL",
			"stream %s: re-dialed %s", r->stream, addr);
}

/* ---- requests ---- */

/* Send the request in r->buf and receive its reply (the caller frees
 * *msg). */
static kf_err
request(kf_remote *r, nng_msg **msg, struct kfw_rep *rep)
{
	nng_msg *m = NULL;
	const char *why = NULL;
	int rv;

	if (r->buf.oom)
		return KF_ENOMEM;
	rv = nng_msg_alloc(&m, 0);
	if (rv == 0)
		rv = nng_msg_append(m, r->buf.p, r->buf.len);
	if (rv == 0)
		rv = nng_sendmsg(r->req, m, 0);
	if (rv != 0) {
		if (m != NULL)
			nng_msg_free(m);
		bump(&r->request_errors, 1);
		/* REQ sends as soon as it has a connection: a timeout means
		 * none for request_timeout_ms. */
		if (rv == NNG_ETIMEDOUT)
			redial(r, r->req, &r->req_d, r->rep_addr);
		return rv == NNG_ETIMEDOUT ? KF_ETIMEDOUT : KF_ENNG;
	}
	rv = nng_recvmsg(r->req, &m, 0);
	if (rv != 0) {
		bump(&r->request_errors, 1);
		return rv == NNG_ETIMEDOUT ? KF_ETIMEDOUT : KF_ENNG;
	}
	if (kfw_parse_rep(nng_msg_body(m), nng_msg_len(m), rep, &why) !=
	    KF_OK) {
		kfi_log(KF_LOG_WARNING, "KF-REMOTE-BADREPLY",
			"stream %s: malformed reply: %s", r->stream, why);
		bump(&r->malformed, 1);
		bump(&r->request_errors, 1);
		nng_msg_free(m);
		return KF_EPROTO;
	}
	*msg = m;
	return KF_OK;
}

static void
retry_later(kf_remote *r)
{
	int64_t jitter = r->backoff_ms > 4 ? rand() % (r->backoff_ms / 4) : 0;

	r->state = RM_NEED_SNAP;
	r->retry_at = now_ms() + r->backoff_ms + jitter;
	r->backoff_ms *= 2;
	if (r->backoff_ms > r->o.backoff_max_ms)
		r->backoff_ms = r->o.backoff_max_ms;
}

/* Collected snapshot objects, owned. */
struct objvec {
	kf_object **v;
	size_t n, cap;
};

static void
ov_free(struct objvec *ov)
{
	for (size_t i = 0; i < ov->n; i++)
		kf_object_unref(ov->v[i]);
	free(ov->v);
	memset(ov, 0, sizeof(*ov));
}

static kf_err
chunk_objects(kf_remote *r, struct kfw_rep *rep, struct objvec *ov)
{
	for (uint32_t i = 0; i < rep->count; i++) {
		struct kfw_obj w;
		kf_object *o;

		kfw_get_obj(&rep->items, &w);
		if (obj_from_wire(r, &w, &o) != KF_OK) {
			bump(&r->malformed, 1);
			return KF_EPARSE;
		}
		if (ov->n == ov->cap) {
			size_t nc = ov->cap ? ov->cap * 2 : 256;
			kf_object **nv = realloc(ov->v, nc * sizeof(*nv));

			if (nv == NULL) {
				kf_object_unref(o);
				return KF_ENOMEM;
			}
			ov->v = nv;
			ov->cap = nc;
		}
		ov->v[ov->n++] = o;
	}
	return KF_OK;
}

static void
mirror_apply(kf_remote *r, kf_event_type type, unsigned flags, kf_object *o)
{
	kf_event ev = {.type = type, .flags = flags, .obj = o};
	kf_err e = kf_writer_apply(r->mw, &ev);

	if (e != KF_OK)
		kfi_log(KF_LOG_WARNING, "KF-REMOTE-MIRROR",
			"stream %s: mirror refused %s: %s", r->stream,
			kf_event_type_name(type), kf_strerror(e));
}

/* Swap the snapshot into the mirror and queue its frame (after a LAGGED
 * marker when this is a re-sync). Takes the objects' references. */
static void
install_snapshot(kf_remote *r, struct objvec *ov, const struct kfw_rep *rep)
{
	if (r->have_snapshot) {
		q_push(r, KF_EV_LAGGED, 0, NULL, r->pending_missed);
		bump(&r->resyncs, 1);
	}
	r->pending_missed = 0;
	mirror_apply(r, KF_EV_INIT, 0, NULL);
	q_push(r, KF_EV_INIT, 0, NULL, 0);
	for (size_t i = 0; i < ov->n; i++) {
		mirror_apply(r, KF_EV_INIT_APPLY, 0, ov->v[i]);
		if (!q_push(r, KF_EV_INIT_APPLY, 0, ov->v[i], 0))
			kf_object_unref(ov->v[i]);
	}
	ov->n = 0;
	mirror_apply(r, KF_EV_INIT_DONE, 0, NULL);
	q_push(r, KF_EV_INIT_DONE, 0, NULL, 0);
	if (rep->readiness == KF_READINESS_STALE)
		kf_writer_mark_stale(r->mw,
				     "the broker reports its watch stale");
	else
		kf_writer_mark_fresh(r->mw);
	r->have_snapshot = true;
	r->silent = false;
	r->inc = rep->hdr.incarnation;
	r->seq = rep->seq;
	r->tlast = rep->topic_last;
	r->status_checked = 0;
	r->state = RM_LIVE;
	r->backoff_ms = 100;
	bump(&r->snapshots, 1);
	atomic_store(&r->st_seq, r->seq);
	atomic_store(&r->st_inc, r->inc);
}

static bool
same_snapshot(const struct kfw_rep *a, const struct kfw_rep *b)
{
	return a->hdr.incarnation == b->hdr.incarnation && a->seq == b->seq &&
	       a->snap_id == b->snap_id && a->total == b->total;
}

/* One snapshot, all chunks. On failure, schedules a retry. */
static void
do_snapshot(kf_remote *r)
{
	struct objvec ov = {0};
	struct kfw_rep first, rep;
	nng_msg *m = NULL;
	kf_err e;

	kfw_buf_reset(&r->buf);
	kfw_put_hdr(&r->buf, KFW_SNAPSHOT_REQ, 0, 0);
	kfw_put_str(&r->buf, r->stream);
	kfw_put_str(&r->buf, r->ns);
	kfw_put_u8(&r->buf, r->o.refs_only ? 0 : 1);
	kfw_put_u32(&r->buf, 0);
	e = request(r, &m, &first);
	if (e != KF_OK)
		goto retry;
	if (first.hdr.type != KFW_SNAPSHOT_REP || first.status != KFW_ST_OK) {
		if (first.status != KFW_ST_NOTREADY)
			kfi_log(KF_LOG_WARNING, "KF-REMOTE-SNAPSHOT",
				"stream %s: snapshot refused (status %u)",
				r->stream, first.status);
		goto retry;
	}
	rep = first;
	/* Bounded by total: each chunk carries at least one object. */
	for (;;) {
		uint32_t next;

		if (chunk_objects(r, &rep, &ov) != KF_OK)
			goto retry;
		next = rep.offset + rep.count;
		nng_msg_free(m);
		m = NULL;
		if (next >= rep.total)
			break;
		if (rep.count == 0)
			goto retry;
		kfw_buf_reset(&r->buf);
		kfw_put_hdr(&r->buf, KFW_SNAPSHOT_NEXT_REQ, 0, 0);
		kfw_put_u64(&r->buf, first.snap_id);
		kfw_put_u32(&r->buf, next);
		kfw_put_u32(&r->buf, 0);
		if (request(r, &m, &rep) != KF_OK)
			goto retry;
		if (rep.hdr.type == KFW_SNAPSHOT_REP &&
		    rep.status == KFW_ST_EXPIRED)
			bump(&r->snapshots_dropped, 1); /* evicted mid-read */
		if (rep.hdr.type != KFW_SNAPSHOT_REP ||
		    rep.status != KFW_ST_OK || !same_snapshot(&first, &rep) ||
		    rep.offset != next)
			goto retry;
	}
	install_snapshot(r, &ov, &first);
	ov_free(&ov);
	return;
retry:
	if (m != NULL)
		nng_msg_free(m);
	ov_free(&ov);
	retry_later(r);
}

/* Filtered subscriptions: is anything of our namespace at or below the
 * heartbeat's last sequence missing? */
static void
check_status(kf_remote *r, uint64_t last)
{
	struct kfw_rep rep;
	nng_msg *m = NULL;

	r->status_checked = last;
	kfw_buf_reset(&r->buf);
	kfw_put_hdr(&r->buf, KFW_STATUS_REQ, 0, 0);
	kfw_put_str(&r->buf, r->stream);
	kfw_put_str(&r->buf, r->ns);
	if (request(r, &m, &rep) != KF_OK)
		return;
	if (rep.hdr.type == KFW_STATUS_REP && rep.status == KFW_ST_OK &&
	    rep.hdr.incarnation == r->inc) {
		if (rep.topic_last == r->tlast && r->seq < last)
			r->seq = last; /* nothing of ours up to `last` */
		else if (rep.topic_last > r->tlast && rep.topic_last <= last)
			r->state = RM_NEED_SNAP; /* our tail was lost */
	}
	nng_msg_free(m);
	if (r->state == RM_NEED_SNAP) {
		bump(&r->gaps, 1);
		bump(&r->missed, 1);
		r->pending_missed = 1;
		r->retry_at = 0;
	}
}

/* ---- live messages ---- */

static void
need_resync(kf_remote *r, uint64_t missed)
{
	r->state = RM_NEED_SNAP;
	r->retry_at = 0;
	r->pending_missed += missed;
}

static void
on_events(kf_remote *r, struct kfw_pub *m)
{
	struct kfw_event ev;
	bool filtered = r->ns[0] != '\0';

	/* Bounded by the record count the decoder checked. */
	while (r->state == RM_LIVE && kfw_events_next(m, &ev)) {
		kf_object *o;

		if (ev.seq <= r->seq) {
			bump(&r->duplicates, 1);
			continue;
		}
		if ((!filtered && ev.seq != r->seq + 1) ||
		    (filtered && ev.topic_prev != r->tlast)) {
			uint64_t lost = filtered ? 1 : ev.seq - r->seq - 1;

			bump(&r->gaps, 1);
			bump(&r->missed, lost);
			need_resync(r, lost);
			return;
		}
		if (obj_from_wire(r, &ev.obj, &o) != KF_OK) {
			bump(&r->malformed, 1);
			need_resync(r, 1);
			return;
		}
		mirror_apply(r, ev.type, ev.flags, o);
		if (!q_push(r, ev.type, ev.flags, o, 0))
			kf_object_unref(o);
		r->seq = ev.seq;
		r->tlast = ev.seq;
		bump(&r->applied, 1);
	}
	atomic_store(&r->st_seq, r->seq);
}

static void
on_heartbeat(kf_remote *r, struct kfw_pub *m)
{
	uint64_t last = m->u.heartbeat.last_seq;

	if (m->u.heartbeat.interval_ms > 0)
		r->hb_interval = m->u.heartbeat.interval_ms;
	if (m->u.heartbeat.readiness == KF_READINESS_STALE)
		kf_writer_mark_stale(r->mw,
				     "the broker reports its watch stale");
	else if (m->u.heartbeat.readiness == KF_READINESS_READY)
		kf_writer_mark_fresh(r->mw);
	if (last <= r->seq)
		return;
	if (r->ns[0] == '\0') {
		bump(&r->gaps, 1);
		bump(&r->missed, last - r->seq);
		need_resync(r, last - r->seq);
	} else if (last != r->status_checked) {
		check_status(r, last);
	}
}

static void
on_message(kf_remote *r, nng_msg *msg)
{
	struct kfw_pub m;
	const char *why = NULL;

	bump(&r->messages, 1);
	r->last_msg = now_ms();
	if (kfw_parse_pub(nng_msg_body(msg), nng_msg_len(msg), &m, &why) !=
	    KF_OK) {
		bump(&r->malformed, 1);
		kfi_log(KF_LOG_DEBUG, "KF-REMOTE-MALFORMED",
			"stream %s: message of %zu bytes rejected: %s",
			r->stream, nng_msg_len(msg), why);
		return;
	}
	if (m.stream.len != strlen(r->stream) ||
	    memcmp(m.stream.p, r->stream, m.stream.len) != 0)
		return;
	if (r->state == RM_WAIT_LINK) {
		/* The link is up; anything before the snapshot is covered. */
		r->state = RM_NEED_SNAP;
		r->retry_at = 0;
		return;
	}
	if (r->state == RM_NEED_SNAP && m.hdr.type == KFW_RESET) {
		/* A (restarted) broker has its state now: no need to wait
		 * out the back-off of a "not ready" answer. */
		r->retry_at = 0;
		return;
	}
	if (r->silent && r->state == RM_LIVE && m.hdr.incarnation == r->inc) {
		r->silent = false;
		kf_writer_mark_fresh(r->mw);
	}
	if (r->state != RM_LIVE)
		return;
	if (m.hdr.incarnation != r->inc) {
		bump(&r->restarts, 1);
		kfi_log(KF_LOG_NOTICE, "KF-REMOTE-RESTART",
			"stream %s: broker incarnation %016llx replaced "
			"%016llx; re-syncing",
			r->stream, (unsigned long long)m.hdr.incarnation,
			(unsigned long long)r->inc);
		need_resync(r, 0);
		return;
	}
	switch (m.hdr.type) {
	case KFW_EVENTS:
		on_events(r, &m);
		break;
	case KFW_HEARTBEAT:
		on_heartbeat(r, &m);
		break;
	case KFW_RESET:
		if (m.u.reset.seq > r->seq) {
			bump(&r->resets, 1);
			need_resync(r, 0);
		}
		break;
	}
}

static void
check_silence(kf_remote *r, int64_t now)
{
	int64_t limit = r->o.heartbeat_timeout_ms ? r->o.heartbeat_timeout_ms
						  : 3 * r->hb_interval;

	if (!r->have_snapshot || now - r->last_msg < limit)
		return;
	if (now >= r->redial_at) {
		redial(r, r->sub, &r->sub_d, r->pub_addr);
		r->redial_at = now + limit;
	}
	if (r->silent)
		return;
	r->silent = true;
	bump(&r->silences, 1);
	kf_writer_mark_stale(r->mw, "the broker is silent");
	kfi_log(KF_LOG_WARNING, "KF-REMOTE-SILENT",
		"stream %s: no message from the broker for %lld ms", r->stream,
		(long long)(now - r->last_msg));
}

/* One step of work, waiting up to wait_ms for a message. False when
 * nothing happened (no message, no snapshot due). */
static bool
step(kf_remote *r, int64_t wait_ms)
{
	int64_t now = now_ms();
	nng_msg *msg;
	int rv;

	if (r->state == RM_WAIT_LINK && now >= r->link_deadline) {
		r->state = RM_NEED_SNAP;
		r->retry_at = 0;
	}
	if (r->state == RM_NEED_SNAP && now >= r->retry_at) {
		do_snapshot(r);
		return true;
	}
	if (r->state == RM_NEED_SNAP && r->retry_at - now < wait_ms)
		wait_ms = r->retry_at - now;
	if (r->state == RM_WAIT_LINK && r->link_deadline - now < wait_ms)
		wait_ms = r->link_deadline - now;
	if (wait_ms < 0)
		wait_ms = 0;
	if (wait_ms == 0) {
		rv = nng_recvmsg(r->sub, &msg, NNG_FLAG_NONBLOCK);
	} else {
		nng_socket_set_ms(r->sub, NNG_OPT_RECVTIMEO,
				  (nng_duration)wait_ms);
		rv = nng_recvmsg(r->sub, &msg, 0);
	}
	if (rv == 0) {
		on_message(r, msg);
		nng_msg_free(msg);
	}
	check_silence(r, now_ms());
	return rv == 0;
}

kf_err
kf_remote_next(kf_remote *r, int64_t timeout_ms, kf_event *ev)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;

	if (r->closed)
		return KF_ECLOSED;
	release_lent(r);
	/* Each step waits at most 200 ms, so silence is checked. */
	for (;;) {
		int64_t now, wait;

		if (q_pop(r, ev))
			return KF_OK;
		now = now_ms();
		if (now >= deadline && timeout_ms >= 0) {
			if (timeout_ms == 0) {
				step(r, 0);
				if (q_pop(r, ev))
					return KF_OK;
			}
			return KF_ETIMEDOUT;
		}
		wait = deadline - now;
		step(r, wait > 200 ? 200 : wait);
	}
}

kf_err
kf_remote_try_next(kf_remote *r, kf_event *ev)
{
	if (r->closed)
		return KF_ECLOSED;
	release_lent(r);
	/* Bounded: at most the messages queued right now, each handled
	 * once, and one snapshot per gap. */
	for (int i = 0; i < 1024; i++) {
		if (q_pop(r, ev))
			return KF_OK;
		if (!step(r, 0))
			break;
	}
	return q_pop(r, ev) ? KF_OK : KF_EAGAIN;
}

int
kf_remote_fd(kf_remote *r)
{
	int fd = -1;

	nng_socket_get_int(r->sub, NNG_OPT_RECVFD, &fd);
	return fd;
}

kf_store *
kf_remote_store(kf_remote *r)
{
	return r->mr;
}

void
kf_remote_stats_get(kf_remote *r, kf_remote_stats *o)
{
	o->delivered = atomic_load(&r->delivered);
	o->messages = atomic_load(&r->messages);
	o->applied = atomic_load(&r->applied);
	o->duplicates = atomic_load(&r->duplicates);
	o->gaps = atomic_load(&r->gaps);
	o->missed = atomic_load(&r->missed);
	o->resyncs = atomic_load(&r->resyncs);
	o->snapshots = atomic_load(&r->snapshots);
	o->resets = atomic_load(&r->resets);
	o->restarts = atomic_load(&r->restarts);
	o->silences = atomic_load(&r->silences);
	o->malformed = atomic_load(&r->malformed);
	o->request_errors = atomic_load(&r->request_errors);
	o->redials = atomic_load(&r->redials);
	o->snapshots_dropped = atomic_load(&r->snapshots_dropped);
	o->seq = atomic_load(&r->st_seq);
	o->incarnation = atomic_load(&r->st_inc);
}

/* ---- setup ---- */

static kf_err
sub_topics(kf_remote *r)
{
	char topic[KFW_MAX_TOPIC];
	size_t sl = strlen(r->stream), nl;
	int rv;

	memcpy(topic, r->stream, sl + 1);
	if (r->ns[0] == '\0')
		return nng_socket_set(r->sub, NNG_OPT_SUB_SUBSCRIBE, topic,
				      sl + 1)
			   ? KF_ENNG
			   : KF_OK;
	nl = strlen(r->ns);
	memcpy(topic + sl + 1, r->ns, nl + 1);
	rv = nng_socket_set(r->sub, NNG_OPT_SUB_SUBSCRIBE, topic, sl + nl + 2);
	memcpy(topic + sl + 1, KFW_CONTROL_NS, sizeof(KFW_CONTROL_NS));
	if (rv == 0)
		rv = nng_socket_set(r->sub, NNG_OPT_SUB_SUBSCRIBE, topic,
				    sl + 1 + sizeof(KFW_CONTROL_NS));
	return rv ? KF_ENNG : KF_OK;
}

kf_err
kf_remote_subscribe(const kf_remote_opts *o, kf_remote **out)
{
	kf_remote *r;
	kf_err e = KF_ENNG;

	if (o->pub_addr == NULL || o->stream == NULL || o->stream[0] == '\0' ||
	    strlen(o->stream) + (o->namespace_ ? strlen(o->namespace_) : 0) +
		    2 >
		KFW_MAX_TOPIC)
		return KF_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return KF_ENOMEM;
	r->o = *o;
	r->reconn_max = (nng_duration)o->backoff_max_ms;
	if (r->o.request_timeout_ms <= 0)
		r->o.request_timeout_ms = 5000;
	if (r->o.backoff_max_ms <= 0)
		r->o.backoff_max_ms = 5000;
	if (r->o.recv_buffer <= 0 || r->o.recv_buffer > 8192)
		r->o.recv_buffer = 8192;
	r->pub_addr = strdup(o->pub_addr);
	r->rep_addr = o->rep_addr ? strdup(o->rep_addr)
				  : kf_remote_rep_address(o->pub_addr);
	r->stream = strdup(o->stream);
	r->ns = strdup(o->namespace_ ? o->namespace_ : "");
	r->hb_interval = 1000;
	r->backoff_ms = 100;
	r->state = RM_WAIT_LINK;
	r->last_msg = now_ms();
	kfw_buf_init(&r->buf);
	if (r->pub_addr == NULL || r->rep_addr == NULL || r->stream == NULL ||
	    r->ns == NULL) {
		e = KF_ENOMEM;
		goto fail_mem;
	}
	if ((e = kf_store_alloc(&r->mw, &r->mr)) != KF_OK)
		goto fail_mem;
	e = KF_ENNG;
	if (nng_sub0_open(&r->sub) != 0)
		goto fail_store;
	if (nng_req0_open(&r->req) != 0)
		goto fail_sub;
	nng_socket_set_int(r->sub, NNG_OPT_RECVBUF, r->o.recv_buffer);
	nng_socket_set_size(r->sub, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_size(r->req, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(r->req, NNG_OPT_RECVTIMEO,
			  (nng_duration)r->o.request_timeout_ms);
	nng_socket_set_ms(r->req, NNG_OPT_SENDTIMEO,
			  (nng_duration)r->o.request_timeout_ms);
	nng_socket_set_ms(r->req, NNG_OPT_REQ_RESENDTIME,
			  (nng_duration)r->o.request_timeout_ms);
	if (sub_topics(r) != KF_OK ||
	    dial(r, r->sub, r->pub_addr, &r->sub_d) != 0 ||
	    dial(r, r->req, r->rep_addr, &r->req_d) != 0)
		goto fail_req;
	r->link_deadline = now_ms() + 1000;
	*out = r;
	return KF_OK;
fail_req:
	nng_close(r->req);
fail_sub:
	nng_close(r->sub);
fail_store:
	kf_store_free(r->mr);
	kf_writer_free(r->mw);
fail_mem:
	kfw_buf_fini(&r->buf);
	free(r->pub_addr);
	free(r->rep_addr);
	free(r->stream);
	free(r->ns);
	free(r);
	return e;
}

void
kf_remote_close(kf_remote *r)
{
	if (r == NULL)
		return;
	r->closed = true;
	nng_close(r->sub);
	nng_close(r->req);
	release_lent(r);
	q_clear(r);
	free(r->q);
	kfw_buf_fini(&r->buf);
	kf_store_free(r->mr);
	kf_writer_free(r->mw);
	free(r->kind);
	free(r->pub_addr);
	free(r->rep_addr);
	free(r->stream);
	free(r->ns);
	free(r);
}

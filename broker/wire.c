/*
 * The kubefan wire protocol, version 1: encoders and strict decoders.
 *
 * Theory. Every message is little-endian, length-prefixed throughout, and
 * carries a 16-byte header ("KF", version, type, flags, incarnation); PUB
 * messages put a topic (stream NUL namespace NUL) in front of it so nng's
 * prefix subscriptions can select them. Decoding never trusts a length:
 * each read checks the bytes that remain and the first failure sticks in
 * the reader (kfw_rd.err), so a chain of reads needs one check at its end.
 * A message is walked whole before anything in it is used, which is why
 * kfw_events_next() and the item readers cannot fail afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/remote.h"
#include "kubefan/store.h"
#include "wire.h"

#define WIRE_MIN_EVENT 18 /* seq, topic_prev, type, flags */
#define WIRE_MIN_OBJ   13 /* has_json + six empty strings */

/* ---- encoding ---- */

void
kfw_buf_init(struct kfw_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
kfw_buf_fini(struct kfw_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void
kfw_buf_reset(struct kfw_buf *b)
{
	b->len = 0;
	b->oom = false;
}

static bool
buf_reserve(struct kfw_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *np;

	if (b->oom)
		return false;
	if (b->len + more <= b->cap)
		return true;
	while (cap < b->len + more)
		cap *= 2;
	np = realloc(b->p, cap);
	if (np == NULL) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

void
kfw_put_bytes(struct kfw_buf *b, const void *p, size_t len)
{
	if (len == 0 || !buf_reserve(b, len))
		return;
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void
put_le(struct kfw_buf *b, uint64_t v, int n)
{
	uint8_t tmp[8];

	for (int i = 0; i < n; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	kfw_put_bytes(b, tmp, (size_t)n);
}

void
kfw_put_u8(struct kfw_buf *b, uint8_t v)
{
	put_le(b, v, 1);
}

void
kfw_put_u16(struct kfw_buf *b, uint16_t v)
{
	put_le(b, v, 2);
}

void
kfw_put_u32(struct kfw_buf *b, uint32_t v)
{
	put_le(b, v, 4);
}

void
kfw_put_u64(struct kfw_buf *b, uint64_t v)
{
	put_le(b, v, 8);
}

void
kfw_patch_u32(struct kfw_buf *b, size_t off, uint32_t v)
{
	if (b->oom || off + 4 > b->len)
		return;
	for (int i = 0; i < 4; i++)
		b->p[off + i] = (uint8_t)(v >> (8 * i));
}

void
kfw_put_strn(struct kfw_buf *b, const char *s, size_t len)
{
	if (len > KFW_MAX_STR)
		len = KFW_MAX_STR;
	kfw_put_u16(b, (uint16_t)len);
	kfw_put_bytes(b, s, len);
}

void
kfw_put_str(struct kfw_buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	kfw_put_strn(b, s, strlen(s));
}

void
kfw_put_topic(struct kfw_buf *b, const char *stream, const char *ns)
{
	kfw_put_bytes(b, stream, strlen(stream) + 1);
	kfw_put_bytes(b, ns ? ns : "", strlen(ns ? ns : "") + 1);
}

void
kfw_put_hdr(struct kfw_buf *b, uint8_t type, uint32_t flags,
	    uint64_t incarnation)
{
	kfw_put_bytes(b, "KF", 2);
	kfw_put_u8(b, KFW_VERSION);
	kfw_put_u8(b, type);
	kfw_put_u32(b, flags);
	kfw_put_u64(b, incarnation);
}

void
kfw_put_obj(struct kfw_buf *b, const struct kfw_objdesc *o, bool with_json)
{
	bool js = with_json && o->json != NULL && o->json_len > 0;

	kfw_put_u8(b, js ? 1 : 0);
	kfw_put_str(b, o->api_version);
	kfw_put_str(b, o->kind);
	kfw_put_str(b, o->ns);
	kfw_put_str(b, o->name);
	kfw_put_str(b, o->uid);
	kfw_put_str(b, o->rv);
	if (js) {
		kfw_put_u32(b, (uint32_t)o->json_len);
		kfw_put_bytes(b, o->json, o->json_len);
	}
}

void
kfw_put_event(struct kfw_buf *b, uint64_t seq, uint64_t topic_prev,
	      uint8_t type, uint8_t flags, const struct kfw_objdesc *o,
	      bool with_json)
{
	kfw_put_u64(b, seq);
	kfw_put_u64(b, topic_prev);
	kfw_put_u8(b, type);
	kfw_put_u8(b, flags);
	kfw_put_obj(b, o, with_json);
}

/* ---- decoding ---- */

void
kfw_rd_init(struct kfw_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = NULL;
}

static const uint8_t *
rd_take(struct kfw_rd *r, size_t n, const char *what)
{
	const uint8_t *at;

	if (r->err != NULL)
		return NULL;
	if (n > r->len - r->off) {
		r->err = what;
		return NULL;
	}
	at = r->p + r->off;
	r->off += n;
	return at;
}

static uint64_t
get_le(struct kfw_rd *r, int n)
{
	const uint8_t *at = rd_take(r, (size_t)n, "truncated integer");
	uint64_t v = 0;

	if (at == NULL)
		return 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)at[i] << (8 * i);
	return v;
}

uint8_t
kfw_get_u8(struct kfw_rd *r)
{
	return (uint8_t)get_le(r, 1);
}

uint16_t
kfw_get_u16(struct kfw_rd *r)
{
	return (uint16_t)get_le(r, 2);
}

uint32_t
kfw_get_u32(struct kfw_rd *r)
{
	return (uint32_t)get_le(r, 4);
}

uint64_t
kfw_get_u64(struct kfw_rd *r)
{
	return get_le(r, 8);
}

struct kfw_str
kfw_get_str(struct kfw_rd *r)
{
	struct kfw_str s = {"", 0};
	size_t n = kfw_get_u16(r);
	const uint8_t *at = rd_take(r, n, "truncated string");

	if (at == NULL)
		return s;
	if (memchr(at, '\0', n) != NULL) {
		r->err = "NUL inside a string";
		return s;
	}
	s.p = (const char *)at;
	s.len = n;
	return s;
}

struct kfw_str
kfw_get_blob(struct kfw_rd *r)
{
	struct kfw_str s = {"", 0};
	size_t n = kfw_get_u32(r);
	const uint8_t *at = rd_take(r, n, "truncated object JSON");

	if (at == NULL)
		return s;
	s.p = (const char *)at;
	s.len = n;
	return s;
}

kf_err
kfw_parse_hdr(struct kfw_rd *r, struct kfw_hdr *out)
{
	const uint8_t *m = rd_take(r, 2, "truncated header");

	if (m == NULL)
		return KF_EPARSE;
	if (m[0] != 'K' || m[1] != 'F') {
		r->err = "bad magic";
		return KF_EPARSE;
	}
	out->version = kfw_get_u8(r);
	out->type = kfw_get_u8(r);
	out->flags = kfw_get_u32(r);
	out->incarnation = kfw_get_u64(r);
	if (r->err != NULL) {
		r->err = "truncated header";
		return KF_EPARSE;
	}
	if (out->version != KFW_VERSION) {
		r->err = "unsupported protocol version";
		return KF_EPARSE;
	}
	return KF_OK;
}

void
kfw_get_obj(struct kfw_rd *r, struct kfw_obj *out)
{
	uint8_t hj = kfw_get_u8(r);

	out->api_version = kfw_get_str(r);
	out->kind = kfw_get_str(r);
	out->ns = kfw_get_str(r);
	out->name = kfw_get_str(r);
	out->uid = kfw_get_str(r);
	out->rv = kfw_get_str(r);
	out->has_json = hj == 1;
	out->json.p = "";
	out->json.len = 0;
	if (r->err != NULL)
		return;
	if (hj > 1) {
		r->err = "bad has_json byte";
		return;
	}
	if (out->name.len == 0) {
		r->err = "object without a name";
		return;
	}
	if (hj) {
		out->json = kfw_get_blob(r);
		if (r->err == NULL &&
		    (out->json.len < 2 || out->json.p[0] != '{'))
			r->err = "object JSON is not a JSON object";
	}
}

static void
get_event(struct kfw_rd *r, struct kfw_event *ev)
{
	ev->seq = kfw_get_u64(r);
	ev->topic_prev = kfw_get_u64(r);
	ev->type = kfw_get_u8(r);
	ev->flags = kfw_get_u8(r);
	kfw_get_obj(r, &ev->obj);
	if (r->err != NULL)
		return;
	if (ev->seq == 0 || ev->topic_prev >= ev->seq)
		r->err = "bad sequence numbers";
	else if (ev->type != KF_EV_APPLY && ev->type != KF_EV_DELETE)
		r->err = "bad event type";
}

static bool
parse_topic(struct kfw_rd *r, struct kfw_pub *out)
{
	size_t lim = r->len < KFW_MAX_TOPIC ? r->len : KFW_MAX_TOPIC;
	const uint8_t *z1 = memchr(r->p, '\0', lim);
	const uint8_t *z2;

	if (z1 == NULL || z1 == r->p)
		return false;
	z2 = memchr(z1 + 1, '\0', lim - (size_t)(z1 + 1 - r->p));
	if (z2 == NULL)
		return false;
	out->stream.p = (const char *)r->p;
	out->stream.len = (size_t)(z1 - r->p);
	out->ns.p = (const char *)z1 + 1;
	out->ns.len = (size_t)(z2 - z1 - 1);
	r->off = (size_t)(z2 + 1 - r->p);
	return true;
}

static bool
str_is(struct kfw_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static const char *
parse_events(struct kfw_rd *r, struct kfw_pub *out)
{
	struct kfw_event ev;
	struct kfw_rd walk;
	uint32_t n = kfw_get_u32(r);

	if (r->err != NULL)
		return "truncated event count";
	if (n == 0)
		return "empty event batch";
	if (n > kfw_rd_left(r) / (WIRE_MIN_EVENT + WIRE_MIN_OBJ))
		return "event count exceeds the message";
	out->u.events.count = n;
	out->u.events.records = *r;
	walk = *r;
	for (uint32_t i = 0; i < n; i++) {
		get_event(&walk, &ev);
		if (walk.err != NULL)
			return walk.err;
		if (ev.obj.ns.len != out->ns.len ||
		    memcmp(ev.obj.ns.p, out->ns.p, out->ns.len) != 0)
			return "record namespace differs from the topic";
		if (((out->hdr.flags & KFW_HF_REFS_ONLY) != 0) &&
		    ev.obj.has_json)
			return "JSON in a reference-only message";
	}
	if (kfw_rd_left(&walk) != 0)
		return "trailing bytes after the last record";
	return NULL;
}

kf_err
kfw_parse_pub(const void *p, size_t len, struct kfw_pub *out, const char **why)
{
	struct kfw_rd r;
	const char *err = NULL;

	memset(out, 0, sizeof(*out));
	kfw_rd_init(&r, p, len);
	if (!parse_topic(&r, out)) {
		err = "no topic";
		goto bad;
	}
	if (kfw_parse_hdr(&r, &out->hdr) != KF_OK) {
		err = r.err;
		goto bad;
	}
	switch (out->hdr.type) {
	case KFW_EVENTS:
		if (str_is(out->ns, KFW_CONTROL_NS))
			err = "events on the control topic";
		else
			err = parse_events(&r, out);
		break;
	case KFW_HEARTBEAT:
		out->u.heartbeat.last_seq = kfw_get_u64(&r);
		out->u.heartbeat.base_seq = kfw_get_u64(&r);
		out->u.heartbeat.readiness = kfw_get_u8(&r);
		out->u.heartbeat.interval_ms = kfw_get_u32(&r);
		if (r.err != NULL)
			err = "truncated heartbeat";
		else if (out->u.heartbeat.base_seq > out->u.heartbeat.last_seq)
			err = "heartbeat base after last";
		else if (out->u.heartbeat.readiness > KF_READINESS_STALE)
			err = "heartbeat readiness out of range";
		break;
	case KFW_RESET:
		out->u.reset.seq = kfw_get_u64(&r);
		out->u.reset.reason = kfw_get_u8(&r);
		if (r.err != NULL)
			err = "truncated reset";
		else if (out->u.reset.seq == 0)
			err = "reset at sequence 0";
		else if (out->u.reset.reason != KFW_RESET_SYNC &&
			 out->u.reset.reason != KFW_RESET_LAGGED)
			err = "reset reason out of range";
		break;
	default:
		err = "not a PUB message type";
	}
	if (err == NULL && out->hdr.type != KFW_EVENTS &&
	    !str_is(out->ns, KFW_CONTROL_NS))
		err = "control message outside the control topic";
	if (err == NULL && out->hdr.type != KFW_EVENTS && kfw_rd_left(&r) != 0)
		err = "trailing bytes";
	if (err == NULL)
		return KF_OK;
bad:
	if (why != NULL)
		*why = err;
	return KF_EPARSE;
}

bool
kfw_events_next(struct kfw_pub *m, struct kfw_event *ev)
{
	if (m->hdr.type != KFW_EVENTS || m->u.events.count == 0)
		return false;
	get_event(&m->u.events.records, ev);
	m->u.events.count--;
	return m->u.events.records.err == NULL;
}

kf_err
kfw_parse_req(const void *p, size_t len, struct kfw_req *out, const char **why)
{
	struct kfw_rd r;

	memset(out, 0, sizeof(*out));
	kfw_rd_init(&r, p, len);
	if (kfw_parse_hdr(&r, &out->hdr) != KF_OK)
		goto bad;
	switch (out->hdr.type) {
	case KFW_HELLO_REQ:
		break;
	case KFW_SNAPSHOT_REQ:
		out->stream = kfw_get_str(&r);
		out->ns = kfw_get_str(&r);
		out->want_json = kfw_get_u8(&r);
		out->max_bytes = kfw_get_u32(&r);
		break;
	case KFW_SNAPSHOT_NEXT_REQ:
		out->snap_id = kfw_get_u64(&r);
		out->offset = kfw_get_u32(&r);
		out->max_bytes = kfw_get_u32(&r);
		break;
	case KFW_STATUS_REQ:
		out->stream = kfw_get_str(&r);
		out->ns = kfw_get_str(&r);
		break;
	case KFW_GET_REQ:
		out->stream = kfw_get_str(&r);
		out->ns = kfw_get_str(&r);
		out->name = kfw_get_str(&r);
		out->want_json = kfw_get_u8(&r);
		break;
	default:
		r.err = "not a request type";
	}
	if (r.err == NULL && kfw_rd_left(&r) != 0)
		r.err = "trailing bytes";
	if (r.err == NULL && out->want_json > 1)
		r.err = "bad want_json byte";
	if (r.err == NULL)
		return KF_OK;
bad:
	if (why != NULL)
		*why = r.err;
	return KF_EPARSE;
}

void
kfw_get_stream_info(struct kfw_rd *r, struct kfw_stream_info *out)
{
	out->name = kfw_get_str(r);
	out->readiness = kfw_get_u8(r);
	out->last_seq = kfw_get_u64(r);
	out->base_seq = kfw_get_u64(r);
}

static void
walk_items(struct kfw_rd *r, struct kfw_rep *out, bool streams)
{
	struct kfw_rd walk;

	if (r->err != NULL)
		return;
	if (out->count > kfw_rd_left(r) / (streams ? 19 : WIRE_MIN_OBJ)) {
		r->err = "item count exceeds the message";
		return;
	}
	out->items = *r;
	walk = *r;
	for (uint32_t i = 0; i < out->count && walk.err == NULL; i++) {
		struct kfw_stream_info si;
		struct kfw_obj o;

		if (streams) {
			kfw_get_stream_info(&walk, &si);
			if (walk.err == NULL &&
			    si.readiness > KF_READINESS_STALE)
				walk.err = "stream readiness out of range";
		} else {
			kfw_get_obj(&walk, &o);
		}
	}
	r->err = walk.err;
	r->off = walk.off;
}

kf_err
kfw_parse_rep(const void *p, size_t len, struct kfw_rep *out, const char **why)
{
	struct kfw_rd r;

	memset(out, 0, sizeof(*out));
	kfw_rd_init(&r, p, len);
	if (kfw_parse_hdr(&r, &out->hdr) != KF_OK)
		goto bad;
	out->status = kfw_get_u8(&r);
	switch (out->hdr.type) {
	case KFW_HELLO_REP:
		out->broker_version = kfw_get_str(&r);
		out->nstreams = kfw_get_u32(&r);
		out->count = out->nstreams;
		walk_items(&r, out, true);
		break;
	case KFW_SNAPSHOT_REP:
		out->readiness = kfw_get_u8(&r);
		out->snap_id = kfw_get_u64(&r);
		out->seq = kfw_get_u64(&r);
		out->topic_last = kfw_get_u64(&r);
		out->total = kfw_get_u32(&r);
		out->offset = kfw_get_u32(&r);
		out->count = kfw_get_u32(&r);
		if (r.err == NULL && (out->offset > out->total ||
				      out->count > out->total - out->offset))
			r.err = "snapshot chunk outside its total";
		walk_items(&r, out, false);
		break;
	case KFW_STATUS_REP:
		out->readiness = kfw_get_u8(&r);
		out->seq = kfw_get_u64(&r);
		out->base_seq = kfw_get_u64(&r);
		out->topic_last = kfw_get_u64(&r);
		out->reason = kfw_get_str(&r);
		break;
	case KFW_GET_REP:
		out->seq = kfw_get_u64(&r);
		out->count = kfw_get_u8(&r);
		if (r.err == NULL && out->count > 1)
			r.err = "bad found byte";
		walk_items(&r, out, false);
		break;
	case KFW_ERROR_REP:
		out->reason = kfw_get_str(&r);
		break;
	default:
		r.err = "not a reply type";
	}
	if (r.err == NULL && kfw_rd_left(&r) != 0)
		r.err = "trailing bytes";
	if (r.err == NULL && out->status > KFW_ST_EXPIRED)
		r.err = "unknown status";
	if (r.err == NULL && out->readiness > KF_READINESS_STALE)
		r.err = "readiness out of range";
	if (r.err == NULL)
		return KF_OK;
bad:
	if (why != NULL)
		*why = r.err ? r.err : "malformed reply";
	return KF_EPARSE;
}

const char *
kfw_type_name(uint8_t type)
{
	switch (type) {
	case KFW_EVENTS:
		return "events";
	case KFW_HEARTBEAT:
		return "heartbeat";
	case KFW_RESET:
		return "reset";
	case KFW_HELLO_REQ:
		return "hello";
	case KFW_SNAPSHOT_REQ:
		return "snapshot";
	case KFW_SNAPSHOT_NEXT_REQ:
		return "snapshot-next";
	case KFW_STATUS_REQ:
		return "status";
	case KFW_GET_REQ:
		return "get";
	case KFW_HELLO_REP:
		return "hello-reply";
	case KFW_SNAPSHOT_REP:
		return "snapshot-reply";
	case KFW_STATUS_REP:
		return "status-reply";
	case KFW_GET_REP:
		return "get-reply";
	case KFW_ERROR_REP:
		return "error-reply";
	}
	return "unknown";
}

/* The request/reply address kubefand pairs with a PUB address. */
char *
kf_remote_rep_address(const char *pub)
{
	size_t l = strlen(pub);
	const char *colon = strrchr(pub, ':');
	char *rep = malloc(l + 8);

	if (rep == NULL)
		return NULL;
	if (strncmp(pub, "ipc://", 6) == 0) {
		if (l > 4 && strcmp(pub + l - 4, ".pub") == 0)
			snprintf(rep, l + 8, "%.*s.rep", (int)(l - 4), pub);
		else
			snprintf(rep, l + 8, "%s.rep", pub);
		return rep;
	}
	if (colon != NULL && colon[1] != '\0') {
		long port = strtol(colon + 1, NULL, 10);

		if (port > 0 && port < 65535) {
			snprintf(rep, l + 8, "%.*s:%ld", (int)(colon - pub),
				 pub, port + 1);
			return rep;
		}
	}
	free(rep);
	return NULL;
}

/*
 * The wire protocol: every message type round-trips, and every truncation,
 * bit flip and lie about a length is rejected with a reason, never a crash
 * (run under ASan+UBSan).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/event.h"
#include "wire.h"

static const char *cm_json =
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
    "{\"name\":\"a\",\"namespace\":\"ns1\",\"uid\":\"u-1\","
    "\"resourceVersion\":\"42\"},\"data\":{\"k\":\"v\"}}";

static struct kfw_objdesc
desc(const char *ns, const char *name, const char *rv)
{
	struct kfw_objdesc d = {
	    .api_version = "v1",
	    .kind = "ConfigMap",
	    .ns = ns,
	    .name = name,
	    .uid = "u-1",
	    .rv = rv,
	    .json = cm_json,
	    .json_len = strlen(cm_json),
	};
	return d;
}

static bool
str_eq(struct kfw_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* An EVENTS message of n records in namespace ns1. */
static void
make_events(struct kfw_buf *b, uint32_t n, bool json)
{
	struct kfw_objdesc d = desc("ns1", "a", "42");
	size_t at;

	kfw_put_topic(b, "configmaps", "ns1");
	kfw_put_hdr(b, KFW_EVENTS, json ? 0 : KFW_HF_REFS_ONLY, 0x1122334455);
	at = b->len;
	kfw_put_u32(b, 0);
	for (uint32_t i = 0; i < n; i++)
		kfw_put_event(b, 100 + i, i == 0 ? 7 : 99 + i,
			      i % 2 ? KF_EV_DELETE : KF_EV_APPLY, 0, &d, json);
	kfw_patch_u32(b, at, n);
}

static void
make_heartbeat(struct kfw_buf *b)
{
	kfw_put_topic(b, "configmaps", KFW_CONTROL_NS);
	kfw_put_hdr(b, KFW_HEARTBEAT, 0, 9);
	kfw_put_u64(b, 500);
	kfw_put_u64(b, 3);
	kfw_put_u8(b, 1);
	kfw_put_u32(b, 1000);
}

static void
make_reset(struct kfw_buf *b)
{
	kfw_put_topic(b, "pods", KFW_CONTROL_NS);
	kfw_put_hdr(b, KFW_RESET, 0, 9);
	kfw_put_u64(b, 17);
	kfw_put_u8(b, KFW_RESET_LAGGED);
}

Test(wire, events_batch_round_trips_with_topic_and_records)
{
	struct kfw_buf b;
	struct kfw_pub m;
	struct kfw_event ev;
	const char *why = NULL;

	kfw_buf_init(&b);
	make_events(&b, 3, true);
	cr_assert_eq(memcmp(b.p, "configmaps\0ns1\0", 15), 0);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_OK, "%s", why);
	cr_assert(str_eq(m.stream, "configmaps"));
	cr_assert(str_eq(m.ns, "ns1"));
	cr_assert_eq(m.hdr.type, KFW_EVENTS);
	cr_assert_eq(m.hdr.incarnation, 0x1122334455);
	cr_assert_eq(m.u.events.count, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert(kfw_events_next(&m, &ev));
		cr_assert_eq(ev.seq, 100 + i);
		cr_assert_eq(ev.topic_prev, i == 0 ? 7 : 99 + i);
		cr_assert_eq(ev.type, i % 2 ? KF_EV_DELETE : KF_EV_APPLY);
		cr_assert(ev.obj.has_json);
		cr_assert(str_eq(ev.obj.kind, "ConfigMap"));
		cr_assert(str_eq(ev.obj.api_version, "v1"));
		cr_assert(str_eq(ev.obj.name, "a"));
		cr_assert(str_eq(ev.obj.uid, "u-1"));
		cr_assert(str_eq(ev.obj.rv, "42"));
		cr_assert(str_eq(ev.obj.json, cm_json));
	}
	cr_assert_not(kfw_events_next(&m, &ev));
	kfw_buf_fini(&b);
}

Test(wire, reference_only_records_carry_no_json)
{
	struct kfw_buf b;
	struct kfw_pub m;
	struct kfw_event ev;

	kfw_buf_init(&b);
	make_events(&b, 2, false);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, NULL), KF_OK);
	cr_assert(m.hdr.flags & KFW_HF_REFS_ONLY);
	cr_assert(kfw_events_next(&m, &ev));
	cr_assert_not(ev.obj.has_json);
	cr_assert_eq(ev.obj.json.len, 0);
	cr_assert(str_eq(ev.obj.name, "a"));
	kfw_buf_fini(&b);
}

Test(wire, heartbeat_and_reset_round_trip)
{
	struct kfw_buf b;
	struct kfw_pub m;

	kfw_buf_init(&b);
	make_heartbeat(&b);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, NULL), KF_OK);
	cr_assert_eq(m.hdr.type, KFW_HEARTBEAT);
	cr_assert(str_eq(m.ns, "!"));
	cr_assert_eq(m.u.heartbeat.last_seq, 500);
	cr_assert_eq(m.u.heartbeat.base_seq, 3);
	cr_assert_eq(m.u.heartbeat.readiness, 1);
	cr_assert_eq(m.u.heartbeat.interval_ms, 1000);

	kfw_buf_reset(&b);
	make_reset(&b);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, NULL), KF_OK);
	cr_assert(str_eq(m.stream, "pods"));
	cr_assert_eq(m.u.reset.seq, 17);
	cr_assert_eq(m.u.reset.reason, KFW_RESET_LAGGED);
	kfw_buf_fini(&b);
}

static void
make_snapshot_rep(struct kfw_buf *b)
{
	struct kfw_objdesc d = desc("ns1", "a", "5");
	struct kfw_objdesc e = desc("ns1", "bb", "6");

	kfw_put_hdr(b, KFW_SNAPSHOT_REP, 0, 77);
	kfw_put_u8(b, KFW_ST_OK);
	kfw_put_u8(b, 1);
	kfw_put_u64(b, 3);   /* snap id */
	kfw_put_u64(b, 900); /* seq */
	kfw_put_u64(b, 850); /* topic last */
	kfw_put_u32(b, 5);   /* total */
	kfw_put_u32(b, 2);   /* offset */
	kfw_put_u32(b, 2);   /* count */
	kfw_put_obj(b, &d, true);
	kfw_put_obj(b, &e, false);
}

Test(wire, snapshot_reply_round_trips_its_items)
{
	struct kfw_buf b;
	struct kfw_rep rep;
	struct kfw_obj o;
	const char *why = NULL;

	kfw_buf_init(&b);
	make_snapshot_rep(&b);
	cr_assert_eq(kfw_parse_rep(b.p, b.len, &rep, &why), KF_OK, "%s", why);
	cr_assert_eq(rep.hdr.incarnation, 77);
	cr_assert_eq(rep.snap_id, 3);
	cr_assert_eq(rep.seq, 900);
	cr_assert_eq(rep.topic_last, 850);
	cr_assert_eq(rep.total, 5);
	cr_assert_eq(rep.offset, 2);
	cr_assert_eq(rep.count, 2);
	kfw_get_obj(&rep.items, &o);
	cr_assert(o.has_json);
	cr_assert(str_eq(o.name, "a"));
	kfw_get_obj(&rep.items, &o);
	cr_assert_not(o.has_json);
	cr_assert(str_eq(o.name, "bb"));
	cr_assert(kfw_rd_ok(&rep.items));
	cr_assert_eq(kfw_rd_left(&rep.items), 0);
	kfw_buf_fini(&b);
}

Test(wire, requests_round_trip)
{
	struct kfw_buf b;
	struct kfw_req q;

	kfw_buf_init(&b);
	kfw_put_hdr(&b, KFW_GET_REQ, 0, 0);
	kfw_put_str(&b, "configmaps");
	kfw_put_str(&b, "ns1");
	kfw_put_str(&b, "a");
	kfw_put_u8(&b, 1);
	cr_assert_eq(kfw_parse_req(b.p, b.len, &q, NULL), KF_OK);
	cr_assert_eq(q.hdr.type, KFW_GET_REQ);
	cr_assert(str_eq(q.stream, "configmaps"));
	cr_assert(str_eq(q.ns, "ns1"));
	cr_assert(str_eq(q.name, "a"));
	cr_assert_eq(q.want_json, 1);

	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_SNAPSHOT_NEXT_REQ, 0, 0);
	kfw_put_u64(&b, 12);
	kfw_put_u32(&b, 1000);
	kfw_put_u32(&b, 65536);
	cr_assert_eq(kfw_parse_req(b.p, b.len, &q, NULL), KF_OK);
	cr_assert_eq(q.snap_id, 12);
	cr_assert_eq(q.offset, 1000);
	cr_assert_eq(q.max_bytes, 65536);
	kfw_buf_fini(&b);
}

Test(wire, hello_reply_lists_streams)
{
	struct kfw_buf b;
	struct kfw_rep rep;
	struct kfw_stream_info si;

	kfw_buf_init(&b);
	kfw_put_hdr(&b, KFW_HELLO_REP, 0, 5);
	kfw_put_u8(&b, KFW_ST_OK);
	kfw_put_str(&b, "0.1.0");
	kfw_put_u32(&b, 2);
	kfw_put_str(&b, "configmaps");
	kfw_put_u8(&b, 1);
	kfw_put_u64(&b, 10);
	kfw_put_u64(&b, 1);
	kfw_put_str(&b, "pods");
	kfw_put_u8(&b, 0);
	kfw_put_u64(&b, 0);
	kfw_put_u64(&b, 0);
	cr_assert_eq(kfw_parse_rep(b.p, b.len, &rep, NULL), KF_OK);
	cr_assert_eq(rep.nstreams, 2);
	cr_assert(str_eq(rep.broker_version, "0.1.0"));
	kfw_get_stream_info(&rep.items, &si);
	cr_assert(str_eq(si.name, "configmaps"));
	cr_assert_eq(si.last_seq, 10);
	kfw_get_stream_info(&rep.items, &si);
	cr_assert(str_eq(si.name, "pods"));
	cr_assert_eq(si.readiness, 0);
	kfw_buf_fini(&b);
}

/* Every strict prefix of a valid message is rejected. */
static void
assert_truncations_rejected(const struct kfw_buf *b, int kind)
{
	for (size_t n = 0; n < b->len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		const char *why = NULL;
		kf_err e;

		memcpy(cut, b->p, n);
		if (kind == 0) {
			struct kfw_pub m;
			e = kfw_parse_pub(cut, n, &m, &why);
		} else if (kind == 1) {
			struct kfw_rep r;
			e = kfw_parse_rep(cut, n, &r, &why);
		} else {
			struct kfw_req q;
			e = kfw_parse_req(cut, n, &q, &why);
		}
		cr_assert_eq(e, KF_EPARSE, "prefix %zu of %zu accepted", n,
			     b->len);
		cr_assert_not_null(why, "no reason for prefix %zu", n);
		free(cut);
	}
}

/* The message in b with the byte at `at` from the end set to v: rejected
 * by the PUB (or reply) decoder with the reason `want`. */
static void
assert_byte_rejected(struct kfw_buf *b, size_t from_end, uint8_t v, bool reply,
		     const char *want)
{
	struct kfw_pub m;
	struct kfw_rep r;
	const char *why = NULL;
	kf_err e;

	b->p[b->len - from_end] = v;
	e = reply ? kfw_parse_rep(b->p, b->len, &r, &why)
		  : kfw_parse_pub(b->p, b->len, &m, &why);
	cr_assert_eq(e, KF_EPARSE, "byte %u accepted", v);
	cr_assert_str_eq(why, want);
}

Test(wire, readiness_and_reset_reason_outside_their_values_are_rejected)
{
	struct kfw_buf b;
	struct kfw_pub m;

	kfw_buf_init(&b);
	/* HEARTBEAT: readiness is 0, 1 or 2 (then interval_ms, 4 bytes). */
	for (unsigned v = 0; v <= 2; v++) {
		kfw_buf_reset(&b);
		make_heartbeat(&b);
		b.p[b.len - 5] = (uint8_t)v;
		cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, NULL), KF_OK);
	}
	assert_byte_rejected(&b, 5, 3, false,
			     "heartbeat readiness out of range");
	assert_byte_rejected(&b, 5, 255, false,
			     "heartbeat readiness out of range");
	/* RESET: reason 1 or 2, the last byte. */
	kfw_buf_reset(&b);
	make_reset(&b);
	assert_byte_rejected(&b, 1, 0, false, "reset reason out of range");
	assert_byte_rejected(&b, 1, 3, false, "reset reason out of range");
	/* STATUS_REP: readiness right after status. */
	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_STATUS_REP, 0, 9);
	kfw_put_u8(&b, KFW_ST_OK);
	kfw_put_u8(&b, 2);
	kfw_put_u64(&b, 5);
	kfw_put_u64(&b, 1);
	kfw_put_u64(&b, 5);
	kfw_put_str(&b, "");
	cr_assert_eq(kfw_parse_rep(b.p, b.len, &(struct kfw_rep){0}, NULL),
		     KF_OK);
	assert_byte_rejected(&b, 2 + 24 + 1, 3, true, "readiness out of range");
	/* HELLO_REP: each stream's readiness. */
	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_HELLO_REP, 0, 9);
	kfw_put_u8(&b, KFW_ST_OK);
	kfw_put_str(&b, "1.0");
	kfw_put_u32(&b, 1);
	kfw_put_str(&b, "configmaps");
	kfw_put_u8(&b, 1);
	kfw_put_u64(&b, 5);
	kfw_put_u64(&b, 1);
	cr_assert_eq(kfw_parse_rep(b.p, b.len, &(struct kfw_rep){0}, NULL),
		     KF_OK);
	assert_byte_rejected(&b, 17, 7, true, "stream readiness out of range");
	kfw_buf_fini(&b);
}

Test(wire, every_truncation_is_rejected_with_a_reason)
{
	struct kfw_buf b;

	kfw_buf_init(&b);
	make_events(&b, 4, true);
	assert_truncations_rejected(&b, 0);
	kfw_buf_reset(&b);
	make_heartbeat(&b);
	assert_truncations_rejected(&b, 0);
	kfw_buf_reset(&b);
	make_reset(&b);
	assert_truncations_rejected(&b, 0);
	kfw_buf_reset(&b);
	make_snapshot_rep(&b);
	assert_truncations_rejected(&b, 1);
	kfw_buf_reset(&b);
	kfw_put_hdr(&b, KFW_SNAPSHOT_REQ, 0, 0);
	kfw_put_str(&b, "configmaps");
	kfw_put_str(&b, "");
	kfw_put_u8(&b, 1);
	kfw_put_u32(&b, 0);
	assert_truncations_rejected(&b, 2);
	kfw_buf_fini(&b);
}

/* Decode whatever parses, walking every record, so ASan sees any read
 * outside the buffer. */
static void
decode_all(const uint8_t *p, size_t len, int *accepted)
{
	struct kfw_pub m;
	struct kfw_rep r;
	struct kfw_event ev;
	struct kfw_obj o;

	if (kfw_parse_pub(p, len, &m, NULL) == KF_OK) {
		(*accepted)++;
		while (kfw_events_next(&m, &ev))
			cr_assert_gt(ev.seq, ev.topic_prev);
	}
	if (kfw_parse_rep(p, len, &r, NULL) == KF_OK &&
	    r.hdr.type == KFW_SNAPSHOT_REP) {
		(*accepted)++;
		for (uint32_t i = 0; i < r.count; i++) {
			kfw_get_obj(&r.items, &o);
			cr_assert(kfw_rd_ok(&r.items));
		}
	}
}

Test(wire, random_bit_flips_never_crash_and_mostly_fail)
{
	struct kfw_buf b;
	int accepted = 0, trials = 0;

	srand(12345);
	kfw_buf_init(&b);
	for (int kind = 0; kind < 2; kind++) {
		kfw_buf_reset(&b);
		if (kind == 0)
			make_events(&b, 5, true);
		else
			make_snapshot_rep(&b);
		for (int t = 0; t < 4000; t++) {
			uint8_t *m = malloc(b.len);
			int flips = 1 + rand() % 4;

			memcpy(m, b.p, b.len);
			for (int f = 0; f < flips; f++)
				m[rand() % b.len] ^=
				    (uint8_t)(1u << (rand() % 8));
			decode_all(m, b.len, &accepted);
			decode_all(m, (size_t)rand() % b.len, &accepted);
			free(m);
			trials++;
		}
	}
	/* Flips inside JSON or string bytes may stay valid; flips in the
	 * structure must not. */
	cr_assert_lt(accepted, trials, "%d of %d accepted", accepted, trials);
	kfw_buf_fini(&b);
}

Test(wire, lies_about_lengths_and_counts_are_rejected)
{
	struct kfw_buf b;
	struct kfw_pub m;
	const char *why = NULL;
	size_t hdr_end = strlen("configmaps") + 1 + 4 + KFW_HDR_LEN;

	kfw_buf_init(&b);
	make_events(&b, 1, true);
	kfw_patch_u32(&b, hdr_end, 0xffffffffu);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "event count exceeds the message");

	kfw_patch_u32(&b, hdr_end, 0);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "empty event batch");

	/* A JSON length larger than the message. */
	kfw_patch_u32(&b, hdr_end, 1);
	kfw_patch_u32(&b, b.len - strlen(cm_json) - 4, 1u << 30);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "truncated object JSON");

	/* Trailing garbage. */
	kfw_patch_u32(&b, b.len - strlen(cm_json) - 4,
		      (uint32_t)strlen(cm_json));
	kfw_put_u8(&b, 0);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "trailing bytes after the last record");
	kfw_buf_fini(&b);
}

Test(wire, wrong_magic_version_topic_and_namespace_are_rejected)
{
	struct kfw_buf b;
	struct kfw_pub m;
	struct kfw_objdesc d = desc("other", "a", "1");
	const char *why = NULL;
	size_t at = strlen("configmaps") + 1 + 2;

	kfw_buf_init(&b);
	make_heartbeat(&b);
	b.p[at] = 'X';
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "bad magic");
	b.p[at] = 'K';
	b.p[at + 2] = 2;
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "unsupported protocol version");

	/* No NUL: no topic. */
	cr_assert_eq(kfw_parse_pub("configmaps", 10, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "no topic");

	/* A record whose namespace is not the topic's. */
	kfw_buf_reset(&b);
	kfw_put_topic(&b, "configmaps", "ns1");
	kfw_put_hdr(&b, KFW_EVENTS, 0, 1);
	kfw_put_u32(&b, 1);
	kfw_put_event(&b, 2, 1, KF_EV_APPLY, 0, &d, true);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "record namespace differs from the topic");

	/* Sequence that does not move forward. */
	kfw_buf_reset(&b);
	d.ns = "ns1";
	kfw_put_topic(&b, "configmaps", "ns1");
	kfw_put_hdr(&b, KFW_EVENTS, 0, 1);
	kfw_put_u32(&b, 1);
	kfw_put_event(&b, 5, 5, KF_EV_APPLY, 0, &d, true);
	cr_assert_eq(kfw_parse_pub(b.p, b.len, &m, &why), KF_EPARSE);
	cr_assert_str_eq(why, "bad sequence numbers");
	kfw_buf_fini(&b);
}

/*
 * libFuzzer target: one nng message as a kubefan wire protocol v1 message
 * (docs/protocol.md), read by each of the three decoders: PUB (what a
 * remote subscriber receives), request (what the broker's REP thread
 * receives) and reply (what a subscriber's REQ receives).
 *
 * Checked beyond the sanitizers:
 * - an accepted PUB message re-encodes, with the library's encoder, to
 *   exactly the bytes received (the decoder accepts nothing the encoder
 *   would not produce, and reads every field where the encoder put it);
 *   kfw_events_next() yields `count` records and never fails;
 * - an accepted request re-encodes to the same bytes;
 * - an accepted reply's items all read back without error, and the item
 *   reader consumes the message exactly;
 * - a rejected message always comes with a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NUL-terminated copies of views (they hold no NUL: checked on decode). */
struct fz_strs {
	char *s[8];
	int n;
};

static const char *
fz_cstr(struct fz_strs *k, struct kfw_str v)
{
	char *c = malloc(v.len + 1);

	KFF_CHECK(c != NULL && k->n < 8);
	memcpy(c, v.p, v.len);
	c[v.len] = '\0';
	KFF_CHECK(strlen(c) == v.len);
	k->s[k->n++] = c;
	return c;
}

static void
fz_free(struct fz_strs *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->s[i]);
	k->n = 0;
}

static void
fz_desc(struct fz_strs *k, const struct kfw_obj *o, struct kfw_objdesc *d)
{
	memset(d, 0, sizeof(*d));
	d->api_version = fz_cstr(k, o->api_version);
	d->kind = fz_cstr(k, o->kind);
	d->ns = fz_cstr(k, o->ns);
	d->name = fz_cstr(k, o->name);
	d->uid = fz_cstr(k, o->uid);
	d->rv = fz_cstr(k, o->rv);
	if (o->has_json) {
		d->json = o->json.p;
		d->json_len = o->json.len;
	}
}

static void
fz_same(const struct kfw_buf *b, const uint8_t *data, size_t size)
{
	KFF_CHECK(!b->oom);
	KFF_CHECK(b->len == size);
	KFF_CHECK(memcmp(b->p, data, size) == 0);
}

static void
fz_pub(const uint8_t *data, size_t size)
{
	struct kfw_pub m;
	struct kfw_event ev;
	struct kfw_buf b;
	struct fz_strs k = {0};
	const char *why = NULL;
	uint32_t count, got = 0;

	if (kfw_parse_pub(data, size, &m, &why) != KF_OK) {
		KFF_CHECK(why != NULL);
		return;
	}
	kfw_buf_init(&b);
	kfw_put_topic(&b, fz_cstr(&k, m.stream), fz_cstr(&k, m.ns));
	fz_free(&k);
	kfw_put_hdr(&b, m.hdr.type, m.hdr.flags, m.hdr.incarnation);
	switch (m.hdr.type) {
	case KFW_EVENTS:
		count = m.u.events.count;
		KFF_CHECK(count >= 1);
		kfw_put_u32(&b, count);
		while (m.u.events.count > 0) {
			struct kfw_objdesc d;

			KFF_CHECK(kfw_events_next(&m, &ev));
			got++;
			KFF_CHECK(ev.seq > ev.topic_prev);
			KFF_CHECK(ev.type == KF_EV_APPLY ||
				  ev.type == KF_EV_DELETE);
			fz_desc(&k, &ev.obj, &d);
			kfw_put_event(&b, ev.seq, ev.topic_prev, ev.type,
				      ev.flags, &d, ev.obj.has_json);
			fz_free(&k);
		}
		KFF_CHECK(got == count);
		KFF_CHECK(!kfw_events_next(&m, &ev));
		break;
	case KFW_HEARTBEAT:
		kfw_put_u64(&b, m.u.heartbeat.last_seq);
		kfw_put_u64(&b, m.u.heartbeat.base_seq);
		kfw_put_u8(&b, m.u.heartbeat.readiness);
		kfw_put_u32(&b, m.u.heartbeat.interval_ms);
		break;
	case KFW_RESET:
		kfw_put_u64(&b, m.u.reset.seq);
		kfw_put_u8(&b, m.u.reset.reason);
		break;
	default:
		KFF_CHECK(!"accepted an unknown PUB type");
	}
	fz_same(&b, data, size);
	kfw_buf_fini(&b);
}

static void
fz_req(const uint8_t *data, size_t size)
{
	struct kfw_req q;
	struct kfw_buf b;
	struct fz_strs k = {0};
	const char *why = NULL;

	if (kfw_parse_req(data, size, &q, &why) != KF_OK) {
		KFF_CHECK(why != NULL);
		return;
	}
	kfw_buf_init(&b);
	kfw_put_hdr(&b, q.hdr.type, q.hdr.flags, q.hdr.incarnation);
	switch (q.hdr.type) {
	case KFW_HELLO_REQ:
		break;
	case KFW_SNAPSHOT_REQ:
		kfw_put_str(&b, fz_cstr(&k, q.stream));
		kfw_put_str(&b, fz_cstr(&k, q.ns));
		kfw_put_u8(&b, q.want_json);
		kfw_put_u32(&b, q.max_bytes);
		break;
	case KFW_SNAPSHOT_NEXT_REQ:
		kfw_put_u64(&b, q.snap_id);
		kfw_put_u32(&b, q.offset);
		kfw_put_u32(&b, q.max_bytes);
		break;
	case KFW_STATUS_REQ:
		kfw_put_str(&b, fz_cstr(&k, q.stream));
		kfw_put_str(&b, fz_cstr(&k, q.ns));
		break;
	case KFW_GET_REQ:
		kfw_put_str(&b, fz_cstr(&k, q.stream));
		kfw_put_str(&b, fz_cstr(&k, q.ns));
		kfw_put_str(&b, fz_cstr(&k, q.name));
		kfw_put_u8(&b, q.want_json);
		break;
	default:
		KFF_CHECK(!"accepted an unknown request type");
	}
	fz_free(&k);
	fz_same(&b, data, size);
	kfw_buf_fini(&b);
}

static void
fz_rep(const uint8_t *data, size_t size)
{
	struct kfw_rep p;
	const char *why = NULL;

	if (kfw_parse_rep(data, size, &p, &why) != KF_OK) {
		KFF_CHECK(why != NULL);
		return;
	}
	KFF_CHECK(p.status <= KFW_ST_EXPIRED);
	if (p.hdr.type == KFW_HELLO_REP || p.hdr.type == KFW_SNAPSHOT_REP ||
	    p.hdr.type == KFW_GET_REP) {
		struct kfw_rd r = p.items;

		for (uint32_t i = 0; i < p.count; i++) {
			if (p.hdr.type == KFW_HELLO_REP) {
				struct kfw_stream_info si;

				kfw_get_stream_info(&r, &si);
			} else {
				struct kfw_obj o;

				kfw_get_obj(&r, &o);
				KFF_CHECK(!kfw_rd_ok(&r) || o.name.len > 0);
				KFF_CHECK(!o.has_json || (o.json.len >= 2 &&
							  o.json.p[0] == '{'));
			}
			KFF_CHECK(kfw_rd_ok(&r));
		}
		KFF_CHECK(kfw_rd_left(&r) == 0);
	}
	if (p.hdr.type == KFW_SNAPSHOT_REP)
		KFF_CHECK(p.offset <= p.total && p.count <= p.total - p.offset);
	KFF_CHECK(strlen(kfw_type_name(p.hdr.type)) > 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_pub(data, size);
	fz_req(data, size);
	fz_rep(data, size);
	return 0;
}

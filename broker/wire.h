/*
 * Internal: the kubefan wire protocol, version 1 (docs/protocol.md is the
 * normative description; this header and wire.c implement it).
 *
 * Encoding is into a growable kfw_buf that the caller owns; decoding reads
 * a byte range that the caller owns and returns views (kfw_str) into it, so
 * nothing decoded outlives the message it came from. Every decoder checks
 * every length against the bytes that remain and returns KF_EPARSE with a
 * static reason (kfw_errmsg) for anything malformed or truncated: a bad
 * message is rejected whole, never applied in part. All functions are pure
 * and safe from any thread.
 */
#ifndef KF_BROKER_WIRE_H
#define KF_BROKER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/err.h"
#include "kubefan/event.h"
#include "kubefan/object.h"

#define KFW_VERSION    1
#define KFW_HDR_LEN    16
#define KFW_CONTROL_NS "!" /* never a valid namespace name */
#define KFW_MAX_TOPIC  512 /* stream + namespace + 2 NULs */
#define KFW_MAX_STR    65535

/* Message types (header byte 3). */
enum kfw_type {
	KFW_EVENTS = 1,	   /* PUB: a batch of events of one topic */
	KFW_HEARTBEAT = 2, /* PUB: stream liveness and last sequence */
	KFW_RESET = 3,	   /* PUB: the stream restarted; re-snapshot */

	KFW_HELLO_REQ = 16,
	KFW_SNAPSHOT_REQ = 17,
	KFW_SNAPSHOT_NEXT_REQ = 18,
	KFW_STATUS_REQ = 19,
	KFW_GET_REQ = 20,

	KFW_HELLO_REP = 32,
	KFW_SNAPSHOT_REP = 33,
	KFW_STATUS_REP = 35,
	KFW_GET_REP = 36,
	KFW_ERROR_REP = 47, /* any request the broker could not parse */
};

/* Header flags. */
enum kfw_hdr_flags {
	KFW_HF_REFS_ONLY = 1u << 0, /* records carry no JSON (ref feed) */
};

/* Reply status (first body byte of every reply). */
enum kfw_status {
	KFW_ST_OK = 0,
	KFW_ST_NOTFOUND = 1,
	KFW_ST_NOTREADY = 2,
	KFW_ST_NOSTREAM = 3,
	KFW_ST_BADREQ = 4,
	KFW_ST_EXPIRED = 5, /* snapshot id unknown or evicted */
};

/* RESET reasons. */
enum kfw_reset_reason {
	KFW_RESET_SYNC = 1,   /* the stream's first (or a new) full state */
	KFW_RESET_LAGGED = 2, /* the publisher fell behind and re-synced */
};

/* A view of bytes inside a message: not NUL-terminated. */
struct kfw_str {
	const char *p;
	size_t len;
};

/* ---- encoding ---- */

struct kfw_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool oom; /* an append failed; the contents are unusable */
};

void kfw_buf_init(struct kfw_buf *b);
void kfw_buf_fini(struct kfw_buf *b);
void kfw_buf_reset(struct kfw_buf *b);
void kfw_put_u8(struct kfw_buf *b, uint8_t v);
void kfw_put_u16(struct kfw_buf *b, uint16_t v);
void kfw_put_u32(struct kfw_buf *b, uint32_t v);
void kfw_put_u64(struct kfw_buf *b, uint64_t v);
/* u16 length + bytes; longer strings are cut to KFW_MAX_STR (never
 * happens for Kubernetes names). NULL is "". */
void kfw_put_str(struct kfw_buf *b, const char *s);
void kfw_put_strn(struct kfw_buf *b, const char *s, size_t len);
void kfw_put_bytes(struct kfw_buf *b, const void *p, size_t len);
/* Overwrite a u32 at byte offset off (for counts patched at the end). */
void kfw_patch_u32(struct kfw_buf *b, size_t off, uint32_t v);

/* The topic (stream NUL namespace NUL), for PUB messages only. */
void kfw_put_topic(struct kfw_buf *b, const char *stream, const char *ns);
void kfw_put_hdr(struct kfw_buf *b, uint8_t type, uint32_t flags,
		 uint64_t incarnation);

/* An object record: what an event, a snapshot item and a GET reply carry.
 * json NULL (or with_json false) sends the reference only. */
struct kfw_objdesc {
	const char *api_version, *kind, *ns, *name, *uid, *rv;
	const char *json;
	size_t json_len;
};
void kfw_put_obj(struct kfw_buf *b, const struct kfw_objdesc *o,
		 bool with_json);

/* One EVENTS record (after the u32 count the caller writes/patches). */
void kfw_put_event(struct kfw_buf *b, uint64_t seq, uint64_t topic_prev,
		   uint8_t type, uint8_t flags, const struct kfw_objdesc *o,
		   bool with_json);

/* ---- decoding ---- */

struct kfw_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	const char *err; /* first problem found; NULL while fine */
};

void kfw_rd_init(struct kfw_rd *r, const void *p, size_t len);
uint8_t kfw_get_u8(struct kfw_rd *r);
uint16_t kfw_get_u16(struct kfw_rd *r);
uint32_t kfw_get_u32(struct kfw_rd *r);
uint64_t kfw_get_u64(struct kfw_rd *r);
struct kfw_str kfw_get_str(struct kfw_rd *r);
struct kfw_str kfw_get_blob(struct kfw_rd *r); /* u32 length + bytes */
static inline bool
kfw_rd_ok(const struct kfw_rd *r)
{
	return r->err == NULL;
}
static inline size_t
kfw_rd_left(const struct kfw_rd *r)
{
	return r->len - r->off;
}

struct kfw_hdr {
	uint8_t version;
	uint8_t type;
	uint32_t flags;
	uint64_t incarnation;
};

struct kfw_obj {
	bool has_json;
	struct kfw_str api_version, kind, ns, name, uid, rv;
	struct kfw_str json;
};

struct kfw_event {
	uint64_t seq;
	uint64_t topic_prev;
	uint8_t type; /* KF_EV_APPLY or KF_EV_DELETE */
	uint8_t flags;
	struct kfw_obj obj;
};

/* A decoded PUB message. For EVENTS, `count` records follow at `records`;
 * iterate them with kfw_events_next(), which cannot fail on a message
 * kfw_parse_pub() accepted. */
struct kfw_pub {
	struct kfw_str stream, ns; /* from the topic */
	struct kfw_hdr hdr;
	union {
		struct {
			uint32_t count;
			struct kfw_rd records;
		} events;
		struct {
			uint64_t last_seq;
			uint64_t base_seq;
			uint8_t readiness;
			uint32_t interval_ms;
		} heartbeat;
		struct {
			uint64_t seq;
			uint8_t reason;
		} reset;
	} u;
};

kf_err kfw_parse_pub(const void *p, size_t len, struct kfw_pub *out,
		     const char **why);
bool kfw_events_next(struct kfw_pub *m, struct kfw_event *ev);

/* Header of a request or reply (no topic). */
kf_err kfw_parse_hdr(struct kfw_rd *r, struct kfw_hdr *out);
/* An object record; sets r->err when malformed. */
void kfw_get_obj(struct kfw_rd *r, struct kfw_obj *out);

/* Requests. */
struct kfw_req {
	struct kfw_hdr hdr;
	struct kfw_str stream, ns, name; /* as the type uses them */
	uint8_t want_json;
	uint32_t max_bytes;
	uint64_t snap_id;
	uint32_t offset;
};
kf_err kfw_parse_req(const void *p, size_t len, struct kfw_req *out,
		     const char **why);

/* Replies. Snapshot items and the GET object are read from `items` with
 * kfw_get_obj(), count times; kfw_parse_rep() checked them all. */
struct kfw_stream_info {
	struct kfw_str name;
	uint8_t readiness;
	uint64_t last_seq;
	uint64_t base_seq;
};
struct kfw_rep {
	struct kfw_hdr hdr;
	uint8_t status;
	/* HELLO */
	struct kfw_str broker_version;
	uint32_t nstreams;
	/* SNAPSHOT */
	uint64_t snap_id;
	uint64_t seq; /* also STATUS last_seq, GET seq */
	uint64_t topic_last;
	uint32_t total;
	uint32_t offset;
	uint32_t count; /* also GET: 1 when found */
	uint8_t readiness;
	/* STATUS */
	uint64_t base_seq;
	struct kfw_str reason;
	struct kfw_rd items; /* HELLO: stream infos; else object records */
};
kf_err kfw_parse_rep(const void *p, size_t len, struct kfw_rep *out,
		     const char **why);
void kfw_get_stream_info(struct kfw_rd *r, struct kfw_stream_info *out);

/* Strings for logs and tests. */
const char *kfw_type_name(uint8_t type);

#endif

/*
 * The store: one writer, any number of lock-free readers.
 *
 * kf_store_alloc() ("store()" in kube-rs) returns the one kf_writer and a
 * first kf_store reader. The writer applies the watcher's events (usually
 * through a kf_reflector) from one thread at a time. Readers are cheap
 * handles: kf_store_clone() makes another for another thread or component;
 * every call on a reader is safe from any thread and never waits for the
 * writer, also not while a re-list of 100 000 objects is swapped in.
 *
 * INIT..INIT_DONE build the next contents aside; INIT_DONE swaps them in
 * with one pointer exchange, so a reader sees the old or the new contents,
 * never a mix. Objects whose uid and resourceVersion did not change are
 * shared with the old contents, not copied.
 *
 * Readiness: not ready until the first INIT_DONE; it can go back to not
 * ready (stale) with a reason, when the writer is told the watch is broken
 * or a re-list keeps failing, and comes back when it recovers. While not
 * ready, kf_store_get() answers KF_ENOTREADY, never an authoritative
 * KF_ENOTFOUND.
 *
 * kf_store_shared_alloc() ("store_shared(capacity)") also publishes every
 * change into a bounded broadcast ring that subscribers read; see
 * subscriber.h. Lifetimes: the writer and each reader are freed on their
 * own, in any order; the memory goes when the last of them is freed.
 */
#ifndef KUBEFAN_STORE_H
#define KUBEFAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"
#include "export.h"
#include "object.h"

typedef struct kf_writer kf_writer;
typedef struct kf_store kf_store;
typedef struct kf_state kf_state;

/* A user index: call emit(ctx, key) once per index key of obj (zero or
 * more times). Runs on the writer's thread at apply time. */
typedef void (*kf_index_emit_fn)(void *ctx, const char *key);
typedef void (*kf_index_fn)(void *arg, const kf_object *obj,
			    kf_index_emit_fn emit, void *ctx);

typedef enum kf_readiness {
	KF_READINESS_NOT_SYNCED = 0, /* no list has completed yet */
	KF_READINESS_READY,
	KF_READINESS_STALE, /* was synced, but the data may be old */
} kf_readiness;

/* store(): a plain store with no ring. */
KF_API kf_err kf_store_alloc(kf_writer **writer, kf_store **reader);

/* store_shared(capacity): a store whose writer also publishes every change
 * into a broadcast ring of `capacity` events (a power of two, >= 2). */
KF_API kf_err kf_store_shared_alloc(size_t capacity, kf_writer **writer,
				    kf_store **reader);

/* ---- writer (one thread at a time) ---- */

/* Apply one event. INIT_APPLY outside INIT..INIT_DONE, or an event with no
 * object where one is needed, is KF_EINVAL and changes nothing. */
KF_API kf_err kf_writer_apply(kf_writer *w, const kf_event *ev);

/* Register an index before the first event; `name` is copied. The indexes
 * "namespace" and "label" exist already. */
KF_API kf_err kf_writer_add_index(kf_writer *w, const char *name,
				  kf_index_fn fn, void *arg);

/* Readiness reports from the reflector: the data may be stale (reason is
 * copied and shown to readers), or fresh again. */
KF_API void kf_writer_mark_stale(kf_writer *w, const char *reason);
KF_API void kf_writer_mark_fresh(kf_writer *w);

/* A reader handle on the writer's store. */
KF_API kf_store *kf_writer_reader(kf_writer *w);

KF_API void kf_writer_free(kf_writer *w);

/* ---- readers (any thread) ---- */

KF_API kf_store *kf_store_clone(kf_store *s);
KF_API void kf_store_free(kf_store *s);

/* A snapshot of every object; later changes do not touch it. */
KF_API kf_err kf_store_state(kf_store *s, kf_state **out);

/* The object with ref's identity: KF_OK and a new reference in *out (the
 * caller unrefs it), KF_ENOTFOUND, or KF_ENOTREADY before the first sync
 * (and while stale: then *out is still filled when found). */
KF_API kf_err kf_store_get(kf_store *s, const kf_objref *ref, kf_object **out);

/* Index look-ups, as snapshots. `index` is "namespace", "label" (key is
 * "name=value") or a name given to kf_writer_add_index(). KF_EINVAL for an
 * unknown index. */
KF_API kf_err kf_store_by_index(kf_store *s, const char *index, const char *key,
				kf_state **out);
KF_API kf_err kf_store_by_namespace(kf_store *s, const char *ns,
				    kf_state **out);
KF_API kf_err kf_store_by_label(kf_store *s, const char *key, const char *value,
				kf_state **out);

/* Number of objects in the current contents. */
KF_API size_t kf_store_len(kf_store *s);

KF_API bool kf_store_is_ready(kf_store *s);

/* Readiness with its reason copied into why (may be NULL). */
KF_API kf_readiness kf_store_readiness(kf_store *s, char *why, size_t len);

/* Block until ready: KF_OK, or KF_ETIMEDOUT after timeout_ms (< 0 waits
 * forever). */
KF_API kf_err kf_store_wait_until_ready(kf_store *s, int64_t timeout_ms);

/* ---- snapshots ---- */

KF_API size_t kf_state_len(const kf_state *st);
/* The i-th object, borrowed from the snapshot (ref it to keep it). */
KF_API kf_object *kf_state_at(const kf_state *st, size_t i);
KF_API void kf_state_free(kf_state *st);

#endif

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

#ifdef __cplusplus
extern "C" {
#endif

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

/* ---- readers (any thread) ----
 *
 * A handle's fast path belongs to the first thread that reads through it
 * (a get, read, state, index look-up or pin): its calls write only the
 * handle's own record. Calls from other threads are just as correct but
 * borrow a spare record per call (a few atomic operations more). So give
 * each thread its own handle with kf_store_clone(), and clone before
 * handing a handle to another thread rather than after using it. */

KF_API kf_store *kf_store_clone(kf_store *s);
KF_API void kf_store_free(kf_store *s);

/* A snapshot of every object; later changes do not touch it. */
KF_API kf_err kf_store_state(kf_store *s, kf_state **out);

/* The object with ref's identity: KF_OK and a new reference in *out (the
 * caller unrefs it), KF_ENOTFOUND, or KF_ENOTREADY before the first sync
 * (and while stale: then *out is still filled when found). */
KF_API kf_err kf_store_get(kf_store *s, const kf_objref *ref, kf_object **out);

/* ---- borrowed reads: no reference count ----
 *
 * kf_store_get() takes a reference on the object it returns: one atomic
 * add on the object's header, a cache line every thread that gets the
 * same hot object writes. The calls below hand the object out borrowed
 * instead, valid only inside a read-side section of the handle; they
 * write nothing shared (only the handle's own epoch record), so any
 * number of threads reading the same objects do not slow each other.
 *
 * A key carries the identity hash computed once (hashing the kind,
 * namespace and name strings is a good part of a look-up); make it with
 * kf_store_key_make() and reuse it. Its strings are the ref's, borrowed;
 * the hash and lengths must stay as kf_store_key_make() left them.
 *
 * While a section is open the writer cannot free anything a reader could
 * have seen; in particular an INIT_DONE waits for it to end. So a section
 * must be short, and must not block, wait for the writer, or call a
 * kf_writer_* function (on the writer's own thread that deadlocks). */
typedef struct kf_store_key {
	kf_objref ref;
	uint64_t hash; /* kf_objref_hash(&ref) */
	/* strlen() of ref.kind, ref.namespace_ and ref.name (NULL is ""). */
	uint32_t kind_len, namespace_len, name_len;
} kf_store_key;

/* The key of ref: ref copied (its strings still borrowed) and hashed. A
 * NULL ref gives a key that finds nothing. */
KF_API kf_store_key kf_store_key_make(const kf_objref *ref);

/* kf_store_get() with a precomputed key: the same answers. */
KF_API kf_err kf_store_get_key(kf_store *s, const kf_store_key *key,
			       kf_object **out);

/* Calls fn(arg, obj) with the object of key's identity, borrowed: obj is
 * valid only until fn returns (kf_object_ref() it to keep it). Answers
 * like kf_store_get(): KF_OK (fn was called), KF_ENOTFOUND (fn was not),
 * KF_ENOTREADY before the first sync (fn not called) and while stale (fn
 * called when found). KF_EINVAL for a NULL key or fn. fn runs inside the
 * read-side section: see the rules above; it may call other reader
 * functions on any handle. */
typedef void (*kf_store_read_fn)(void *arg, const kf_object *obj);
KF_API kf_err kf_store_read(kf_store *s, const kf_store_key *key,
			    kf_store_read_fn fn, void *arg);

/* A pinned section: between kf_store_pin(s) and kf_store_unpin(s), on
 * one thread, kf_store_get_borrowed() looks objects up without reference
 * counts and without entering a section per call. Objects it returned
 * stay valid until the matching unpin; successive look-ups may see newer
 * contents (each reads the current contents, a re-list is seen whole or
 * not at all per look-up). Pins nest on the pinning thread (the section
 * ends at the last unpin). Other reader calls on the handle from the
 * pinning thread are fine inside the section; other threads' calls on s
 * go on as usual. kf_store_pin() answers KF_OK, KF_EAGAIN when another
 * thread has s pinned (use one handle per thread: kf_store_clone()), or
 * KF_ENOMEM. Unpin from the pinning thread only; an unpin without a pin
 * does nothing. */
KF_API kf_err kf_store_pin(kf_store *s);
KF_API void kf_store_unpin(kf_store *s);

/* The object of key's identity, borrowed until kf_store_unpin(); answers
 * like kf_store_get(). KF_EINVAL (and *out NULL) when the calling thread
 * has not pinned s. */
KF_API kf_err kf_store_get_borrowed(kf_store *s, const kf_store_key *key,
				    const kf_object **out);

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

/* Block until ready: KF_OK, KF_ETIMEDOUT after timeout_ms (< 0 waits
 * forever), or KF_ECLOSED when the writer was freed before the store
 * became ready (it never can then). */
KF_API kf_err kf_store_wait_until_ready(kf_store *s, int64_t timeout_ms);

/* ---- snapshots ---- */

KF_API size_t kf_state_len(const kf_state *st);
/* The i-th object, borrowed from the snapshot (ref it to keep it). */
KF_API kf_object *kf_state_at(const kf_state *st, size_t i);
KF_API void kf_state_free(kf_state *st);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Internal interface of the broadcast ring (ring.c), the contract between
 * the store's writer (the one producer) and subscribers (subscriber.c).
 *
 * Sequence numbers: every published event gets the next sequence number,
 * starting at 1; kfi_ring_head() is the number the next publish will get.
 * The writer stamps each store entry with the sequence number of the event
 * that last set it (read kfi_ring_head() just before publishing), so a
 * subscriber can take a store snapshot and skip ring events the snapshot
 * already reflects (see kfi_store_snapshot_seq in store_int.h).
 *
 * The ring carries APPLY and DELETE (flags as in event.h) and one
 * INIT_DONE marker, published when the store completes its first list.
 *
 * Readers (struct kfi_ring_reader) each have their own position. A read
 * hands out the slot's object without taking a reference: the reader
 * publishes it as its hazard pointer, and the producer releases an
 * overwritten object only once no reader's hazard names it. The pointer
 * stays valid until the reader's next read, kfi_ring_reader_unpin(), or
 * close. See docs/ring.md for the proof sketch.
 */
#ifndef KF_BROKER_RING_H
#define KF_BROKER_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kubefan/err.h"
#include "kubefan/event.h"
#include "kubefan/subscriber.h"

struct kfi_ring;
struct kfi_ring_reader;

/* capacity: a power of two, >= 2. */
kf_err kfi_ring_alloc(size_t capacity, struct kfi_ring **out);
/* Every reader must have been freed first. */
void kfi_ring_free(struct kfi_ring *r);

size_t kfi_ring_capacity(const struct kfi_ring *r);

/* The sequence number the next publish will get. Exact on the writer's
 * thread; from any other thread a value that was current at some moment
 * during the call (every event below it is published). */
uint64_t kfi_ring_head(const struct kfi_ring *r);

/* Publish one event (the ring takes its own reference on ev->obj). Never
 * waits for a subscriber unless one asked for the blocking policy, and
 * then at most until that subscriber's deadline. Writer thread only. */
void kfi_ring_publish(struct kfi_ring *r, const kf_event *ev);

/* Wake every subscriber and fail their waits with KF_ECLOSED. Events
 * already published can still be read. */
void kfi_ring_close(struct kfi_ring *r);

/* Producer-side counters (any thread, approximate while publishing). */
struct kfi_ring_stats {
	uint64_t published;
	uint64_t scans;	       /* hazard scans (one per retire batch) */
	uint64_t block_waits;  /* publishes that waited for a blocking reader */
	uint64_t block_expiry; /* blocking readers given up on at a deadline */
	uint64_t wakes;	       /* wake-up system calls, by any thread */
	/* Of those, made on the producer's thread inside publish: at most
	 * one per publish, none while woken readers are still relaying. */
	uint64_t publish_wakes;
	uint64_t deferred; /* publishes that left the wake-up to a relayer */
	/* Object references the ring holds now: filled slots, the retire
	 * batch and kept objects. At most capacity + max(capacity, 16) +
	 * the number of readers. */
	uint64_t held;
};
void kfi_ring_stats(struct kfi_ring *r, struct kfi_ring_stats *out);

/* ---- readers ---- */

/* A reader positioned at the current head. With policy KF_SUB_BLOCK the
 * producer waits for it up to block_timeout_ms per event. */
kf_err kfi_ring_reader_alloc(struct kfi_ring *r, const kf_sub_opts *opts,
			     struct kfi_ring_reader **out);
/* Close (if not yet) and free; no other thread may use rd any more. */
void kfi_ring_reader_free(struct kfi_ring_reader *rd);

/* Any thread, idempotent: detach from the ring and wake a waiting
 * kfi_ring_reader_wait() with KF_ECLOSED. Objects handed out by this
 * reader are no longer protected. */
void kfi_ring_reader_close(struct kfi_ring_reader *rd);
bool kfi_ring_reader_closed(const struct kfi_ring_reader *rd);

/* Position: the sequence number of the next event to read. Reading it is
 * safe from any thread; seek only from the reader's thread, forward
 * only (a seek back may find the events overwritten: a lag). */
uint64_t kfi_ring_reader_pos(const struct kfi_ring_reader *rd);
void kfi_ring_reader_seek(struct kfi_ring_reader *rd, uint64_t seq);

/*
 * Read the event at the reader's position (reader thread only):
 *   KF_OK       *ev filled, ev->obj protected (not referenced) until the
 *               next read, unpin or close; *seq its number; pos advances
 *   KF_EAGAIN   nothing published past pos yet
 *   KF_ELAGGED  pos was overwritten; *missed is how many events were
 *               skipped and pos now names the oldest event still held
 *   KF_ECLOSED  reader or ring closed and nothing left to read
 */
kf_err kfi_ring_read(struct kfi_ring_reader *rd, kf_event *ev, uint64_t *seq,
		     uint64_t *missed);

/* Drop the protection of the last object read. */
void kfi_ring_reader_unpin(struct kfi_ring_reader *rd);

/* Block until an event may be readable at pos, the reader or ring is
 * closed (KF_ECLOSED), or timeout_ms passes (KF_ETIMEDOUT; < 0 waits
 * forever). Spurious KF_OK returns are possible: read again. May spin
 * briefly first, and a woken reader first passes the wake-up on to other
 * sleeping readers (a few system calls) before it returns. */
kf_err kfi_ring_reader_wait(struct kfi_ring_reader *rd, int64_t timeout_ms);

/* An eventfd that becomes readable once after each kfi_ring_reader_arm()
 * when an event is published (or on close). The write is made by the
 * producer or by a woken blocking reader, once per arming. */
int kfi_ring_reader_fd(const struct kfi_ring_reader *rd);
/* Drain the fd's counter and ask for a wake-up at the next publish. */
void kfi_ring_reader_arm(struct kfi_ring_reader *rd);
/* Make the fd readable now (e.g. when work is pending that is not in the
 * ring). */
void kfi_ring_reader_kick(struct kfi_ring_reader *rd);

/* ---- the snapshot source a subscriber re-syncs from ---- */

/*
 * What subscriber.c needs from a store, as a table so that tests can
 * drive subscribers with a small fake store. snapshot() must read the ring
 * head (kfi_ring_head) before taking the snapshot into *h0 and after it
 * into *h1; every entry carries the sequence number of the event that last
 * set it. get() answers like kf_store_get().
 */
struct kfi_sub_source_ops {
	kf_err (*snapshot)(void *arg, void **snap, uint64_t *h0, uint64_t *h1);
	size_t (*snap_len)(void *snap);
	kf_object *(*snap_at)(void *snap, size_t i);
	uint64_t (*snap_seq_at)(void *snap, size_t i);
	void (*snap_free)(void *snap);
	bool (*synced)(void *arg);
	kf_err (*get)(void *arg, const kf_objref *ref, kf_object **out);
	void (*release)(void *arg); /* the subscriber is done with arg */
};

struct kfi_sub_source {
	struct kfi_ring *ring;
	const struct kfi_sub_source_ops *ops;
	void *arg;
};

/* A subscriber on an arbitrary source (kf_store_subscribe uses the
 * store's). Takes over src->arg: release() is called at free, also when
 * this fails. */
kf_err kfi_subscriber_alloc(const struct kfi_sub_source *src,
			    const kf_sub_opts *opts, kf_subscriber **out);

/* The store look-up behind a subscriber (used by the controller). */
kf_err kfi_subscriber_get(kf_subscriber *sub, const kf_objref *ref,
			  kf_object **out);

/* A controller on an existing subscription (tests drive it with a fake
 * source). Takes over sub, also when it fails. */
struct kf_controller;
struct kf_controller_opts;
kf_err kfi_controller_alloc(kf_subscriber *sub,
			    const struct kf_controller_opts *opts,
			    struct kf_controller **out);

#endif

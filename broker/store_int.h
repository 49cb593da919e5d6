/*
 * Internal interface of the store (store.c) for the subscriber side
 * (subscriber.c) and the benchmarks.
 *
 * Sequence numbers. Every downstream event the writer produces (APPLY and
 * DELETE from the watch, the APPLY/DELETE differences of a re-list, and
 * the one INIT_DONE marker of the first completed list) gets the next
 * sequence number: in shared mode the ring's (kfi_ring_head() just before
 * kfi_ring_publish()), in plain mode a writer-local counter that counts
 * the same way, starting at 1. Each store entry carries the number of the
 * event that last set it; entries a re-list found unchanged keep theirs.
 * The entries of the first list carry the number of the INIT_DONE marker.
 *
 * The writer keeps two published counters, both "the number the next
 * event will get":
 *   started  raised before the contents are touched for an event;
 *   done     raised after the event was applied and published to the ring.
 * For one watch event that is: started = s+1, change the table, publish
 * s, done = s+1. A re-list swap with differences s..t stamps the new
 * entries, raises started to t+1, swaps the contents in one pointer
 * exchange, publishes s..t in order, then raises done to t+1.
 */
#ifndef KF_BROKER_STORE_INT_H
#define KF_BROKER_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "kubefan/store.h"
#include "ring.h"

/* The ring of a shared store (NULL for a plain store). It lives as long as
 * the store's memory (the last of writer and readers); kf_writer_free()
 * closes it with kfi_ring_close() but does not free it. */
struct kfi_ring *kfi_store_ring(kf_store *s);

/* A snapshot of every object with the sequence number of each entry, and
 * the two counters around it:
 *   *head_before  `done` read before the snapshot: every event with a
 *                 number below it is reflected in the snapshot;
 *   *head_after   `started` read after the snapshot: no event with a
 *                 number at or above it is reflected.
 * Events in [head_before, head_after) may or may not be: an object whose
 * entry number is >= an event's number already reflects that event. A
 * DELETE in the window may already have removed its object. Never waits
 * for the writer; safe from any thread, like every reader call. */
kf_err kfi_store_snapshot_seq(kf_store *s, kf_state **out,
			      uint64_t *head_before, uint64_t *head_after);

/* The sequence number of the i-th entry of a snapshot taken with
 * kfi_store_snapshot_seq() (0 for snapshots from other calls). */
uint64_t kfi_state_seq_at(const kf_state *st, size_t i);

/* True once the first list has been swapped in (stays true when the store
 * goes stale later). */
bool kfi_store_synced_once(kf_store *s);

/* Number of reader epoch records the store has registered (for tests). */
size_t kfi_store_record_count(kf_store *s);

#endif

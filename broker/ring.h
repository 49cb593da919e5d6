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
 */
#ifndef KF_BROKER_RING_H
#define KF_BROKER_RING_H

#include <stdint.h>

#include "kubefan/err.h"
#include "kubefan/event.h"

struct kfi_ring;

/* capacity: a power of two, >= 2. */
kf_err kfi_ring_alloc(size_t capacity, struct kfi_ring **out);
void kfi_ring_free(struct kfi_ring *r);

/* The sequence number the next publish will get. Writer thread only. */
uint64_t kfi_ring_head(const struct kfi_ring *r);

/* Publish one event (the ring takes its own reference on ev->obj). Never
 * waits for a subscriber unless one asked for the blocking policy, and
 * then at most until that subscriber's deadline. Writer thread only. */
void kfi_ring_publish(struct kfi_ring *r, const kf_event *ev);

/* Wake every subscriber and fail their waits with KF_ECLOSED. */
void kfi_ring_close(struct kfi_ring *r);

#endif

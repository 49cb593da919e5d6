/*
 * kf_store_ring_stats (subscriber.h): a shared store's ring as monitoring
 * sees it. Two atomic loads, no lock: the figures may be a moment old.
 */
#include "kubefan/subscriber.h"
#include "ring.h"
#include "store_int.h"

kf_err
kf_store_ring_stats(kf_store *s, kf_ring_stats *out)
{
	struct kfi_ring *r = s != NULL ? kfi_store_ring(s) : NULL;

	if (r == NULL || out == NULL)
		return KF_EINVAL;
	out->capacity = kfi_ring_capacity(r);
	out->head = kfi_ring_head(r) - 1;
	return KF_OK;
}

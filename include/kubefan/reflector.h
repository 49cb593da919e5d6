/*
 * kf_reflector: a watcher feeding a store's writer ("reflector(writer,
 * watcher)" in kube-rs, the Reflector of client-go's informers).
 *
 * It takes the watcher (freed with the reflector) and borrows the writer
 * (which must outlive it). Every event of the watcher goes to
 * kf_writer_apply(); the watch's health goes to kf_writer_mark_stale() and
 * kf_writer_mark_fresh(), so readers see "stale" while the watch is idle
 * past its deadline or failing, and "ready" again once data flows.
 *
 * The writer is used only on the loop's thread, between start and stop.
 */
#ifndef KUBEFAN_REFLECTOR_H
#define KUBEFAN_REFLECTOR_H

#include <stdint.h>

#include "err.h"
#include "export.h"
#include "store.h"
#include "watcher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_reflector kf_reflector;

/* Takes ownership of w (not started yet); sets its handlers. */
KF_API kf_err kf_reflector_alloc(kf_watcher *w, kf_writer *writer,
				 kf_reflector **out);

KF_API kf_err kf_reflector_start(kf_reflector *r, kf_loop *l);
/* As kf_watcher_stop(). */
KF_API kf_err kf_reflector_stop(kf_reflector *r);
/* Stops and frees the reflector and its watcher; not the writer. */
KF_API void kf_reflector_free(kf_reflector *r);

KF_API kf_watcher *kf_reflector_watcher(kf_reflector *r);

/* Events the writer refused (counted and logged, never silent). */
KF_API uint64_t kf_reflector_apply_errors(kf_reflector *r);

#ifdef __cplusplus
}
#endif

#endif

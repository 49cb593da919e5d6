/*
 * The event algebra. A watcher turns list+watch into these five events; the
 * writer applies them to a store; subscribers receive them.
 *
 *   KF_EV_INIT        a (re-)list starts; the store keeps its old contents
 *   KF_EV_INIT_APPLY  one object of that list
 *   KF_EV_INIT_DONE   the list is complete; the store swaps to it at once
 *   KF_EV_APPLY       an object was added or changed
 *   KF_EV_DELETE      an object was removed (last known state attached)
 *
 * What subscribers see: a subscriber's stream starts with the current
 * state, framed as INIT, INIT_APPLY..., INIT_DONE (also when the store is
 * not synced yet: then the frame opens at once and closes after the first
 * list). After that, APPLY and DELETE only: a re-list reaches subscribers as
 * its differences (KF_EVF_RELIST marks them), never as a second frame. A
 * subscriber that fell behind gets KF_EV_LAGGED with the exact count it
 * missed, then a fresh INIT..INIT_DONE frame from the store.
 */
#ifndef KUBEFAN_EVENT_H
#define KUBEFAN_EVENT_H

#include <stdint.h>

#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kf_event_type {
	KF_EV_INIT = 1,
	KF_EV_INIT_APPLY,
	KF_EV_INIT_DONE,
	KF_EV_APPLY,
	KF_EV_DELETE,
	KF_EV_LAGGED, /* subscribers only: `missed` events were lost */
} kf_event_type;

enum kf_event_flags {
	/* A difference found by a re-list rather than seen on the watch:
	 * a DELETE of an object that vanished, or the DELETE+APPLY pair of a
	 * name that came back with a new uid, or the APPLY of a change. */
	KF_EVF_RELIST = 1u << 0,
};

typedef struct kf_event {
	kf_event_type type;
	unsigned flags;
	kf_object *obj;	 /* borrowed; NULL for INIT, INIT_DONE, LAGGED */
	uint64_t missed; /* KF_EV_LAGGED only */
} kf_event;

/* The name of an event type as the docs and the tail tool print it:
 * "Init", "InitApply", "InitDone", "Apply", "Delete", "Lagged". */
KF_API const char *kf_event_type_name(kf_event_type type);

#ifdef __cplusplus
}
#endif

#endif

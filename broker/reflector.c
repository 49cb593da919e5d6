/*
 * kf_reflector: a watcher's events applied to a writer, and its health
 * turned into the store's readiness. Everything here runs on the loop's
 * thread (the watcher's handlers); the counter is read from any thread.
 */
#include <stdlib.h>

#include "kubefan/reflector.h"
#include "log.h"

struct kf_reflector {
	kf_watcher *w;
	kf_writer *writer;
	uint64_t apply_errors;
};

const char *
kf_event_type_name(kf_event_type type)
{
	switch (type) {
	case KF_EV_INIT:
		return "Init";
	case KF_EV_INIT_APPLY:
		return "InitApply";
	case KF_EV_INIT_DONE:
		return "InitDone";
	case KF_EV_APPLY:
		return "Apply";
	case KF_EV_DELETE:
		return "Delete";
	case KF_EV_LAGGED:
		return "Lagged";
	}
	return "Unknown";
}

static void
refl_event(void *arg, const kf_event *ev)
{
	kf_reflector *r = arg;
	kf_err e = kf_writer_apply(r->writer, ev);

	if (e != KF_OK) {
		__atomic_fetch_add(&r->apply_errors, 1, __ATOMIC_RELAXED);
		kfi_log(KF_LOG_ERR, "KF-REFLECT-APPLY",
			"the store refused a %s event: %s",
			kf_event_type_name(ev->type), kf_strerror(e));
	}
}

static void
refl_health(void *arg, bool healthy, const char *reason)
{
	kf_reflector *r = arg;

	if (healthy)
		kf_writer_mark_fresh(r->writer);
	else
		kf_writer_mark_stale(r->writer, reason);
}

kf_err
kf_reflector_alloc(kf_watcher *w, kf_writer *writer, kf_reflector **out)
{
	kf_reflector *r;
	kf_err e;

	*out = NULL;
	if (w == NULL || writer == NULL)
		return KF_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return KF_ENOMEM;
	r->w = w;
	r->writer = writer;
	e = kf_watcher_set_handlers(w, refl_event, refl_health, r);
	if (e != KF_OK) {
		free(r);
		return e;
	}
	*out = r;
	return KF_OK;
}

kf_err
kf_reflector_start(kf_reflector *r, kf_loop *l)
{
	return kf_watcher_start(r->w, l);
}

kf_err
kf_reflector_stop(kf_reflector *r)
{
	return kf_watcher_stop(r->w);
}

void
kf_reflector_free(kf_reflector *r)
{
	if (r == NULL)
		return;
	kf_watcher_free(r->w);
	free(r);
}

kf_watcher *
kf_reflector_watcher(kf_reflector *r)
{
	return r->w;
}

uint64_t
kf_reflector_apply_errors(kf_reflector *r)
{
	return __atomic_load_n(&r->apply_errors, __ATOMIC_RELAXED);
}

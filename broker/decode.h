/*
 * Internal: decoding what the API server sends, without parsing any byte
 * into a tree twice.
 *
 * A watch line is {"type": T, "object": O}. The decoder finds the spans of
 * T and O with a small byte scanner (strings and nesting only; no values
 * are built), then hands O's exact bytes to kf_object_parse() (after the
 * optional ingest transform), so the object keeps the server's bytes. Only
 * the small objects of BOOKMARK and ERROR lines are parsed with json-c here.
 *
 * A list body is {"kind": ..., "metadata": {...}, "items": [...]}: the
 * scanner finds the three, json-c reads the small metadata, and each item's
 * span goes to kf_object_parse() in order. The kind hint for items is the
 * list's kind without its "List" suffix.
 *
 * All functions are pure: no globals, safe from any thread.
 */
#ifndef KF_BROKER_DECODE_H
#define KF_BROKER_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "kubefan/err.h"
#include "kubefan/object.h"

#define KFI_RV_MAX 128 /* longest resourceVersion accepted, with its NUL */

enum kfi_wtype {
	KFI_W_ADDED = 1,
	KFI_W_MODIFIED,
	KFI_W_DELETED,
	KFI_W_BOOKMARK,
	KFI_W_ERROR,
	KFI_W_UNKNOWN, /* a type this client does not know: skip it */
};

/* A metav1.Status, as far as operators need it. */
struct kfi_status {
	long code;	   /* 0 when absent */
	char reason[64];   /* "Expired", "Forbidden", ... or "" */
	char message[512]; /* the server's message, or "" */
};

/* What the objects of a stream need at ingest. */
struct kfi_ingest {
	const char *kind_hint;	   /* for objects without "kind"; may be NULL */
	kf_transform_fn transform; /* may be NULL */
	void *transform_arg;
};

struct kfi_wevent {
	enum kfi_wtype type;
	char type_name[32];  /* the type as sent (truncated), for logs */
	kf_object *obj;	     /* ADDED/MODIFIED/DELETED: a reference to unref */
	char rv[KFI_RV_MAX]; /* the object's or bookmark's resourceVersion */
	bool initial_events_end;  /* BOOKMARK ending a streaming list */
	struct kfi_status status; /* ERROR */
};

/* Decode one watch line. On KF_EPARSE (or KF_ENOMEM) errbuf says what was
 * wrong and ev->obj is NULL. An ERROR line whose object is not a Status
 * (or has no metadata) still decodes, with status.code 0. */
kf_err kfi_decode_event(const char *line, size_t len,
			const struct kfi_ingest *ing, char *errbuf,
			size_t errlen, struct kfi_wevent *ev);

/* Read a Status from an HTTP error body. KF_EPARSE when the body is not a
 * JSON object of kind Status (plain text, HTML): st is then cleared. */
kf_err kfi_decode_status(const char *body, size_t len, struct kfi_status *st);

struct kfi_list_meta {
	char rv[KFI_RV_MAX]; /* metadata.resourceVersion */
	char *cont;	     /* metadata.continue, malloc'd, or NULL */
	char kind[128];	     /* the list's kind ("ConfigMapList") */
	size_t items;	     /* items handed to the callback */
	size_t bad_items;    /* items that failed to parse (skipped) */
};

/* Takes the object reference; a non-KF_OK return stops the decode. */
typedef kf_err (*kfi_item_fn)(void *arg, kf_object *obj);

/* Decode one list page. Items that are not valid objects are skipped and
 * counted in meta->bad_items (errbuf keeps the first reason); a body that
 * is not a list, or has no metadata.resourceVersion, is KF_EPARSE. The
 * caller frees meta->cont. */
kf_err kfi_decode_list(const char *body, size_t len,
		       const struct kfi_ingest *ing, kfi_item_fn fn, void *arg,
		       char *errbuf, size_t errlen, struct kfi_list_meta *meta);

/* Compare two resourceVersions when both are decimal integers (etcd's):
 * -1, 0, 1; 2 when they cannot be compared (opaque versions). */
int kfi_rv_compare(const char *a, const char *b);

#endif

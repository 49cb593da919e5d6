/*
 * kf_object: one Kubernetes object as the API server sent it.
 *
 * An object is immutable once made and reference-counted: every holder
 * (store, ring slot, subscriber, controller) takes its own reference with
 * kf_object_ref() and gives it back with kf_object_unref(); the last unref
 * frees it. Both are safe from any thread.
 *
 * It keeps the exact JSON bytes the server sent (after the optional ingest
 * transform), so publishing it to a remote subscriber needs no re-encoding,
 * and the metadata a controller reaches for, parsed once at ingest. No
 * json-c tree is kept: kf_object_field() parses on demand.
 *
 * kf_objref names an object: kind, namespace ("" for cluster-scoped) and
 * name. uid and resource_version ride along as extras and take no part in
 * hashing or equality. It is a plain value; its strings are borrowed (from
 * an object, or from the caller) and must outlive the ref.
 */
#ifndef KUBEFAN_OBJECT_H
#define KUBEFAN_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_object kf_object;

typedef struct kf_objref {
	const char *kind;
	const char *namespace_; /* "" for cluster-scoped */
	const char *name;
	const char *uid;	      /* extra: not part of identity */
	const char *resource_version; /* extra: not part of identity */
} kf_objref;

/* Parse `len` bytes of one object's JSON. The bytes are copied. Fails with
 * KF_EPARSE (and a text in errbuf, if given) when the bytes are not a JSON
 * object or lack metadata.name. `kind_hint` fills kind when the JSON has
 * none (list items often omit it); NULL for none. */
KF_API kf_err kf_object_parse(const char *json, size_t len,
			      const char *kind_hint, char *errbuf,
			      size_t errlen, kf_object **out);

KF_API kf_object *kf_object_ref(kf_object *obj);
KF_API void kf_object_unref(kf_object *obj);

/* The JSON bytes (not NUL-terminated in general; len is exact). */
KF_API const char *kf_object_json(const kf_object *obj, size_t *len);

/* Metadata. Strings live as long as the object; absent ones are "". */
KF_API const char *kf_object_api_version(const kf_object *obj);
KF_API const char *kf_object_kind(const kf_object *obj);
KF_API const char *kf_object_namespace(const kf_object *obj);
KF_API const char *kf_object_name(const kf_object *obj);
KF_API const char *kf_object_uid(const kf_object *obj);
KF_API const char *kf_object_resource_version(const kf_object *obj);
KF_API const char *kf_object_deletion_timestamp(const kf_object *obj);
KF_API int64_t kf_object_generation(const kf_object *obj);

/* Labels and annotations: a value by key (NULL when absent), or the i-th
 * pair in the server's order. */
KF_API const char *kf_object_label(const kf_object *obj, const char *key);
KF_API size_t kf_object_label_count(const kf_object *obj);
KF_API void kf_object_label_at(const kf_object *obj, size_t i, const char **key,
			       const char **value);
KF_API const char *kf_object_annotation(const kf_object *obj, const char *key);
KF_API size_t kf_object_annotation_count(const kf_object *obj);
KF_API void kf_object_annotation_at(const kf_object *obj, size_t i,
				    const char **key, const char **value);

/* Owner references: count, and kind/name/uid/controller of the i-th. */
KF_API size_t kf_object_owner_count(const kf_object *obj);
KF_API void kf_object_owner_at(const kf_object *obj, size_t i,
			       const char **kind, const char **name,
			       const char **uid, bool *controller);

/* The JSON text of the value at a dotted path ("spec.nodeName",
 * "spec.containers.0.image"), parsed on demand. *out is malloc'd; the
 * caller frees it. KF_ENOTFOUND when the path does not exist. */
KF_API kf_err kf_object_field(const kf_object *obj, const char *path,
			      char **out);

/* The ref of an object; its strings are borrowed from obj. */
KF_API kf_objref kf_object_objref(const kf_object *obj);

/* Identity of refs: kind, namespace and name only. */
KF_API bool kf_objref_equal(const kf_objref *a, const kf_objref *b);
KF_API uint64_t kf_objref_hash(const kf_objref *ref);

/* An ingest transform: given the server's bytes, write the bytes to keep
 * into a malloc'd buffer (*out, *outlen), or leave *out NULL to keep the
 * input as is. Runs once per object, on the watcher's thread, before any
 * subscriber sees it. */
typedef kf_err (*kf_transform_fn)(void *arg, const char *json, size_t len,
				  char **out, size_t *outlen);

/* Built-in transform: drops metadata.managedFields; with arg != NULL
 * (any non-NULL pointer) also the
 * kubectl.kubernetes.io/last-applied-configuration annotation. */
KF_API kf_err kf_transform_strip_managed_fields(void *arg, const char *json,
						size_t len, char **out,
						size_t *outlen);

#ifdef __cplusplus
}
#endif

#endif

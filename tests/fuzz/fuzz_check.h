/*
 * Shared by the fuzz targets: an invariant check that aborts (so libFuzzer
 * and the corpus replay both report it as a crash, with the input saved),
 * and a walk over every reader of a parsed object.
 */
#ifndef KF_FUZZ_CHECK_H
#define KF_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/object.h"

#define KFF_CHECK(cond)                                                        \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/* Read everything an object offers; every string must be a C string. */
static inline void
kff_touch_object(const kf_object *o)
{
	size_t len, n;
	const char *j = kf_object_json(o, &len);
	const char *k, *v, *ki, *na, *ui;
	bool ctl;
	char *field = NULL;

	KFF_CHECK(j != NULL);
	KFF_CHECK(kf_object_name(o) != NULL && kf_object_name(o)[0] != '\0');
	(void)strlen(kf_object_api_version(o));
	(void)strlen(kf_object_kind(o));
	(void)strlen(kf_object_namespace(o));
	(void)strlen(kf_object_uid(o));
	(void)strlen(kf_object_resource_version(o));
	(void)strlen(kf_object_deletion_timestamp(o));
	(void)kf_object_generation(o);
	n = kf_object_label_count(o);
	for (size_t i = 0; i < n; i++) {
		kf_object_label_at(o, i, &k, &v);
		KFF_CHECK(k != NULL && v != NULL);
		KFF_CHECK(kf_object_label(o, k) != NULL);
	}
	n = kf_object_annotation_count(o);
	for (size_t i = 0; i < n; i++) {
		kf_object_annotation_at(o, i, &k, &v);
		KFF_CHECK(k != NULL && v != NULL);
		KFF_CHECK(kf_object_annotation(o, k) != NULL);
	}
	n = kf_object_owner_count(o);
	for (size_t i = 0; i < n; i++) {
		kf_object_owner_at(o, i, &ki, &na, &ui, &ctl);
		KFF_CHECK(ki != NULL && na != NULL && ui != NULL);
	}
	if (kf_object_field(o, "metadata.name", &field) == KF_OK)
		free(field);
	field = NULL;
	if (kf_object_field(o, "data", &field) == KF_OK)
		free(field);
}

#endif

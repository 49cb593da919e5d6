/*
 * Synthetic but realistic Pod JSON for the benchmarks: the shape the API
 * server sends (metadata with labels, annotations, an owner reference and
 * managedFields; a spec with one to three containers, env, volumes,
 * probes and resources; a status with conditions and container statuses),
 * 4 to 16 KB per Pod with a spread, deterministic for a given index.
 */
#ifndef KF_BENCH_PODS_H
#define KF_BENCH_PODS_H

#include <stddef.h>

/* Pod number i of a cluster; `version` bumps resourceVersion and a few
 * status fields (an update of the same Pod, same uid). *len is the byte
 * count; the buffer is malloc'd and NUL-terminated. NULL on no memory. */
char *kfb_pod_json(size_t i, unsigned version, size_t *len);

#endif

/*
 * libFuzzer target: arbitrary bytes as a kubeconfig. The body lives in the
 * library (kfi_kubeconfig_fuzz_one: parse from memory, select each
 * context without touching the file system, free everything), so the unit
 * suite runs the same code over the data files under ASan.
 */
#include <stddef.h>
#include <stdint.h>

#include "kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return kfi_kubeconfig_fuzz_one(data, size);
}

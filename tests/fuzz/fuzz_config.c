/*
 * libFuzzer target: kubefand's configuration (broker/config.c). The input
 * is read twice: as a YAML configuration file (kd_cfg_load_file reads a
 * path, so the bytes go into a memfd opened through /proc/self/fd) and,
 * up to its first NUL or newline, as a --resource flag. Then the checks
 * that run after everything was read, and the free.
 *
 * Checked beyond the sanitizers (leaks included): a refusal always says
 * why; the resource table never overflows; every accepted resource has a
 * resource, a version and a stream id.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fc_check(const struct kd_cfg *c, int rc, const char *err)
{
	KFF_CHECK(c->nres <= KD_MAX_RES);
	if (rc != 0)
		KFF_CHECK(err[0] != '\0' && strlen(err) < 512);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct kd_cfg c;
	char path[64], err[512], spec[1024];
	size_t sl = 0;
	int rc;

	if (fd < 0) {
		fd = memfd_create("kf-fuzz-config", 0);
		KFF_CHECK(fd >= 0);
	}
	KFF_CHECK(ftruncate(fd, 0) == 0);
	KFF_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	kd_cfg_defaults(&c);
	err[0] = '\0';
	rc = kd_cfg_load_file(&c, path, err, sizeof(err));
	fc_check(&c, rc, err);
	while (sl < size && sl < sizeof(spec) - 1 && data[sl] != '\0' &&
	       data[sl] != '\n')
		sl++;
	memcpy(spec, data, sl);
	spec[sl] = '\0';
	err[0] = '\0';
	rc = kd_cfg_add_resource_spec(&c, spec, err, sizeof(err));
	fc_check(&c, rc, err);
	err[0] = '\0';
	rc = kd_cfg_finish(&c, err, sizeof(err));
	fc_check(&c, rc, err);
	if (rc == 0) {
		for (size_t i = 0; i < c.nres; i++) {
			KFF_CHECK(c.res[i].resource && c.res[i].resource[0]);
			KFF_CHECK(c.res[i].version && c.res[i].version[0]);
			KFF_CHECK(c.res[i].stream && c.res[i].stream[0]);
		}
		KFF_CHECK(c.listen != NULL && c.rep != NULL);
	}
	kd_cfg_fini(&c);
	return 0;
}

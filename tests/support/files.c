#include "files.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *
kt_file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *nb;
	size_t n = 0, cap = 0, got;

	if (f == NULL)
		return NULL;
	/* Bound: the file's size, read in growing chunks. */
	do {
		if (cap - n < 4097) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* ---- temporary folders ---- */

/* Folders made and not removed yet. A test makes one or two; a folder
 * beyond the table is still made, only not reported. */
#define MAX_TMPDIRS 16
static char tmpdirs[MAX_TMPDIRS][256];

int
kt_tmpdir_make(const char *prefix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "/tmp/%s-XXXXXX", prefix);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(buf) == NULL)
		return -1;
	for (int i = 0; i < MAX_TMPDIRS; i++) {
		if (tmpdirs[i][0] == '\0') {
			snprintf(tmpdirs[i], sizeof(tmpdirs[i]), "%s", buf);
			break;
		}
	}
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

int
kt_tmpdir_remove(const char *path)
{
	/* Depth first: a folder's entries go before the folder. Bounded by
	 * what the test put there; 16 descriptors at most. */
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return -1;
	for (int i = 0; i < MAX_TMPDIRS; i++)
		if (strcmp(tmpdirs[i], path) == 0)
			tmpdirs[i][0] = '\0';
	return 0;
}

void
kt_tmpdir_report_kept(void)
{
	for (int i = 0; i < MAX_TMPDIRS; i++) {
		if (tmpdirs[i][0] == '\0')
			continue;
		fprintf(stderr, "kept for debugging: %s\n", tmpdirs[i]);
		tmpdirs[i][0] = '\0';
	}
}

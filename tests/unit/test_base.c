/* kf_err texts and the log sink. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kubefan/err.h"
#include "kubefan/log.h"
#include "log.h"

Test(err, every_code_has_its_own_text)
{
	for (int a = 0; a < KF_ERR_COUNT; a++) {
		cr_assert_str_neq(kf_strerror(a), "unknown error", "code %d",
				  a);
		for (int b = a + 1; b < KF_ERR_COUNT; b++)
			cr_assert_str_neq(kf_strerror(a), kf_strerror(b));
	}
	cr_assert_str_eq(kf_strerror(KF_ERR_COUNT), "unknown error");
	cr_assert_str_eq(kf_strerror(-1), "unknown error");
}

struct seen {
	int n;
	int level;
	char id[64];
	char msg[256];
};

static void
capture(void *arg, int level, const char *id, const char *msg)
{
	struct seen *s = arg;

	s->n++;
	s->level = level;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->msg, sizeof(s->msg), "%s", msg);
}

Test(log, lines_reach_the_sink_only_up_to_its_level)
{
	struct seen s = {0};

	kf_log_set_sink(capture, &s, KF_LOG_NOTICE);
	kfi_log(KF_LOG_WARNING, "KF-TEST-ONE", "value %d", 42);
	kfi_log(KF_LOG_DEBUG, "KF-TEST-TWO", "dropped");
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.level, KF_LOG_WARNING);
	cr_assert_str_eq(s.id, "KF-TEST-ONE");
	cr_assert_str_eq(s.msg, "value 42");

	kf_log_set_sink(NULL, NULL, KF_LOG_DEBUG);
	kfi_log(KF_LOG_ERR, "KF-TEST-THREE", "nowhere");
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(kf_log_level_name(KF_LOG_ERR), "err");
}

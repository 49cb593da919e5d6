/* Log sinks: exact text and JSON lines, escaping, the redaction guard,
 * reopen after rotation, stderr, and whole lines from many threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "kubefan/log.h"
#include "logsink.h"
#include "files.h"

/* 2026-12-03T16:00:00.123Z */
static void
fixed_clock(struct timespec *ts)
{
	struct tm tm = {
	    .tm_year = 126, .tm_mon = 11, .tm_mday = 3, .tm_hour = 16};

	ts->tv_sec = timegm(&tm);
	ts->tv_nsec = 123456789;
}

/* Each test's folder (support/files.h): made by the suite's .init,
 * removed at the end of a test that passed, kept and named by the suite's
 * .fini after a failure. */
static char dir[64];

static void
mkdir_tmp(void)
{
	cr_assert_eq(kt_tmpdir_make("kf_logsink", dir, sizeof(dir)), 0,
		     "mkdtemp: %s", strerror(errno));
}

static void
rm_tmp(void)
{
	cr_assert_eq(kt_tmpdir_remove(dir), 0, "removing %s: %s", dir,
		     strerror(errno));
}

static char *
slurp(const char *path)
{
	char *s = kt_file_read(path, NULL);

	cr_assert_not_null(s, "%s", path);
	return s;
}

static kfi_logsink *
file_sink(const char *name, enum kfi_log_format fmt, char *path, size_t len)
{
	struct kfi_logsink_opts o = {.dest = KFI_LOG_FILE,
				     .format = fmt,
				     .path = path,
				     .now = fixed_clock};
	kfi_logsink *s;
	char err[256] = "";

	snprintf(path, len, "%s/%s", dir, name);
	cr_assert_eq(kfi_logsink_alloc(&o, err, sizeof(err), &s), KF_OK, "%s",
		     err);
	return s;
}

TestSuite(logsink, .init = mkdir_tmp, .fini = kt_tmpdir_report_kept);

Test(logsink, text_lines_have_utc_millis_level_id_and_message)
{
	char path[128], *got;
	kfi_logsink *s = file_sink("a.log", KFI_LOG_TEXT, path, sizeof(path));

	kfi_logsink_write(s, KF_LOG_WARNING, "KF-WATCH-GONE",
			  "resource version too old, re-listing v1/pods");
	kfi_logsink_write(s, KF_LOG_INFO, "KF-LIST-PROGRESS",
			  "two\nlines\tand\x01 a bell");
	kfi_logsink_write(s, KF_LOG_ERR, "KF-X", "");
	kfi_logsink_write(s, 2, "KF-Y", "crit");
	kfi_logsink_free(s);

	got = slurp(path);
	cr_assert_str_eq(got, "2026-12-03T16:00:00.123Z warning KF-WATCH-GONE "
			      "resource version too old, re-listing v1/pods\n"
			      "2026-12-03T16:00:00.123Z info KF-LIST-PROGRESS "
			      "two\\nlines\\tand\\x01 a bell\n"
			      "2026-12-03T16:00:00.123Z err KF-X \n"
			      "2026-12-03T16:00:00.123Z crit KF-Y crit\n");
	free(got);
	rm_tmp();
}

Test(logsink, json_lines_escape_quotes_controls_and_bad_utf8)
{
	char path[128], *got;
	kfi_logsink *s = file_sink("a.json", KFI_LOG_JSON, path, sizeof(path));

	kfi_logsink_write(s, KF_LOG_NOTICE, "KF-START", "kubefand 0.1.0");
	kfi_logsink_write(s, KF_LOG_DEBUG, "KF-Q",
			  "say \"hi\" \\ back\nnext\x1f"
			  " caf\xc3\xa9 bad\xff\xc0\xaf end");
	kfi_logsink_free(s);

	got = slurp(path);
	cr_assert_str_eq(
	    got, "{\"ts\":\"2026-12-03T16:00:00.123Z\",\"level\":\"notice\","
		 "\"id\":\"KF-START\",\"msg\":\"kubefand 0.1.0\"}\n"
		 "{\"ts\":\"2026-12-03T16:00:00.123Z\",\"level\":\"debug\","
		 "\"id\":\"KF-Q\",\"msg\":\"say \\\"hi\\\" \\\\ back\\nnext"
		 "\\u001f caf\xc3\xa9 bad\\ufffd\\ufffd\\ufffd end\"}\n");
	free(got);
	rm_tmp();
}

static void
assert_redacted(const char *in, const char *want)
{
	char *got = kfi_log_redact(in);

	cr_assert_not_null(got);
	cr_assert_str_eq(got, want, "for input %s", in);
	free(got);
}

Test(logsink, redaction_masks_bearer_tokens_and_long_secrets)
{
	assert_redacted("Authorization: Bearer abc.DEF-123_x~+/==",
			"Authorization: Bearer [REDACTED]");
	assert_redacted("header \"bearer\t\tq\" sent",
			"header \"bearer\t\t[REDACTED]\" sent");
	assert_redacted("BEARER xyz and Bearer  abc",
			"BEARER [REDACTED] and Bearer  [REDACTED]");
	/* A JWT: each long segment goes. */
	assert_redacted("token eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQ0RFRiJ9."
			"eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0."
			"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u rest",
			"token [REDACTED].[REDACTED].[REDACTED] rest");
	/* Base64 with padding, and 40 hex digits. */
	assert_redacted("key=MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIB=",
			"key=[REDACTED]");
	assert_redacted("sha1 0123456789abcdef0123456789ABCDEF01234567.",
			"sha1 [REDACTED].");
	rm_tmp();
}

Test(logsink, redaction_keeps_names_paths_uids_and_versions)
{
	static const char *const keep[] = {
	    "GET /apis/apps/v1/namespaces/kube-system/deployments?watch=1",
	    "uid 3f2a1b4c-1234-5678-9abc-def012345678 rv 123456789",
	    "kube-controller-manager-node-1234567890 restarted",
	    "notbearer abc, Bearer",
	    "a short Bearer",
	    "AbCdEfGh1234567 is 15 long",
	    "",
	};

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		assert_redacted(keep[i], keep[i]);
	rm_tmp();
}

Test(logsink, the_sink_redacts_before_writing)
{
	char path[128], *got;
	kfi_logsink *s = file_sink("r.log", KFI_LOG_JSON, path, sizeof(path));

	kfi_logsink_write(s, KF_LOG_ERR, "KF-AUTH",
			  "rejected: Bearer sk-live-0123456789");
	kfi_logsink_free(s);
	got = slurp(path);
	cr_assert_str_eq(got, "{\"ts\":\"2026-12-03T16:00:00.123Z\",\"level\":"
			      "\"err\",\"id\":\"KF-AUTH\",\"msg\":\"rejected: "
			      "Bearer [REDACTED]\"}\n");
	free(got);
	rm_tmp();
}

Test(logsink, reopen_follows_a_rotated_file)
{
	char path[128], old[160], err[256] = "", *got;
	kfi_logsink *s = file_sink("rot.log", KFI_LOG_TEXT, path, sizeof(path));

	kfi_logsink_write(s, KF_LOG_INFO, "KF-A", "before");
	snprintf(old, sizeof(old), "%s.1", path);
	cr_assert_eq(rename(path, old), 0);
	kfi_logsink_write(s, KF_LOG_INFO, "KF-A", "still the old file");
	cr_assert_eq(kfi_logsink_reopen(s, err, sizeof(err)), KF_OK, "%s", err);
	kfi_logsink_write(s, KF_LOG_INFO, "KF-A", "after");

	got = slurp(old);
	cr_assert_str_eq(got, "2026-12-03T16:00:00.123Z info KF-A before\n"
			      "2026-12-03T16:00:00.123Z info KF-A still the "
			      "old file\n");
	free(got);
	got = slurp(path);
	cr_assert_str_eq(got, "2026-12-03T16:00:00.123Z info KF-A after\n");
	free(got);
	cr_assert_eq(kfi_logsink_failures(s), 0);
	kfi_logsink_free(s);
	rm_tmp();
}

Test(logsink, a_failed_reopen_keeps_the_old_file)
{
	char path[160], sub[128], err[256] = "", *got;
	struct kfi_logsink_opts o = {
	    .dest = KFI_LOG_FILE, .path = path, .now = fixed_clock};
	kfi_logsink *s;

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/x.log", sub);
	cr_assert_eq(kfi_logsink_alloc(&o, err, sizeof(err), &s), KF_OK);
	kfi_logsink_write(s, KF_LOG_INFO, "KF-A", "one");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(sub), 0);
	cr_assert_eq(kfi_logsink_reopen(s, err, sizeof(err)), KF_EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	kfi_logsink_write(s, KF_LOG_INFO, "KF-A", "two");
	cr_assert_eq(kfi_logsink_failures(s), 0);
	kfi_logsink_free(s);

	/* The file itself cannot be opened: alloc says which and why. */
	cr_assert_eq(kfi_logsink_alloc(&o, err, sizeof(err), &s), KF_EIO);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "log file "), "%s", err);
	got = err;
	cr_assert_not_null(strstr(got, path));
	rm_tmp();
}

Test(logsink, bad_options_are_rejected)
{
	struct kfi_logsink_opts o = {.dest = KFI_LOG_FILE};
	kfi_logsink *s;

	cr_assert_eq(kfi_logsink_alloc(&o, NULL, 0, &s), KF_EINVAL);
	o.dest = 7;
	cr_assert_eq(kfi_logsink_alloc(&o, NULL, 0, &s), KF_EINVAL);
	o.dest = KFI_LOG_STDERR;
	o.format = 9;
	cr_assert_eq(kfi_logsink_alloc(&o, NULL, 0, &s), KF_EINVAL);
	rm_tmp();
}

Test(logsink, stderr_sink_writes_to_fd_2)
{
	struct kfi_logsink_opts o = {.dest = KFI_LOG_STDERR,
				     .now = fixed_clock};
	char path[128], *got;
	kfi_logsink *s;
	int saved, fd;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	saved = dup(2);
	cr_assert_eq(dup2(fd, 2), 2);
	cr_assert_eq(kfi_logsink_alloc(&o, NULL, 0, &s), KF_OK);
	kfi_logsink_write(s, KF_LOG_NOTICE, "KF-STOP", "bye");
	kfi_logsink_free(s); /* leaves fd 2 open */
	cr_assert_eq(write(2, "x", 1), 1);
	dup2(saved, 2);
	close(saved);
	close(fd);
	got = slurp(path);
	cr_assert_str_eq(got, "2026-12-03T16:00:00.123Z notice KF-STOP bye\nx");
	free(got);
	rm_tmp();
}

Test(logsink, syslog_sink_opens_and_takes_lines)
{
	struct kfi_logsink_opts o = {.dest = KFI_LOG_SYSLOG,
				     .ident = "kubefan-test",
				     .facility = LOG_USER};
	kfi_logsink *s;

	/* The system logger may be absent here; the line must still be
	 * accepted without a failure of the sink's own. */
	cr_assert_eq(kfi_logsink_alloc(&o, NULL, 0, &s), KF_OK);
	kfi_logsink_write(s, KF_LOG_DEBUG, "KF-TEST", "syslog Bearer x");
	cr_assert_eq(kfi_logsink_failures(s), 0);
	kfi_logsink_free(s);
	rm_tmp();
}

/* ---- many threads, one file, rotated under them ---- */

#define T_THREADS 4
#define T_LINES	  400

struct writer {
	kfi_logsink *s;
	int n;
};

static void *
write_lines(void *arg)
{
	struct writer *w = arg;
	char msg[160];

	for (int i = 0; i < T_LINES; i++) {
		snprintf(msg, sizeof(msg),
			 "thread %d line %04d "
			 "padding-padding-padding-padding-padding-padding",
			 w->n, i);
		kfi_logsink_write(w->s, KF_LOG_INFO, "KF-T", msg);
	}
	return NULL;
}

static int
count_whole_lines(const char *text, int seen[T_THREADS][T_LINES])
{
	int n = 0;

	for (const char *p = text; *p != '\0';) {
		int t, i;
		const char *nl = strchr(p, '\n');

		cr_assert_not_null(nl);
		cr_assert_eq(sscanf(p,
				    "2026-12-03T16:00:00.123Z info KF-T "
				    "thread %d line %d",
				    &t, &i),
			     2, "torn line: %.*s", (int)(nl - p), p);
		cr_assert_eq(nl - p, 35 + 19 + 47, "%.*s", (int)(nl - p), p);
		cr_assert(t >= 0 && t < T_THREADS && i >= 0 && i < T_LINES);
		seen[t][i]++;
		n++;
		p = nl + 1;
	}
	return n;
}

Test(logsink, lines_from_many_threads_stay_whole_across_a_reopen)
{
	static int seen[T_THREADS][T_LINES];
	struct writer w[T_THREADS];
	pthread_t th[T_THREADS];
	char path[128], old[160], *a, *b;
	kfi_logsink *s = file_sink("mt.log", KFI_LOG_TEXT, path, sizeof(path));

	snprintf(old, sizeof(old), "%s.1", path);
	for (int i = 0; i < T_THREADS; i++) {
		w[i] = (struct writer){s, i};
		pthread_create(&th[i], NULL, write_lines, &w[i]);
	}
	usleep(2000);
	cr_assert_eq(rename(path, old), 0);
	cr_assert_eq(kfi_logsink_reopen(s, NULL, 0), KF_OK);
	for (int i = 0; i < T_THREADS; i++)
		pthread_join(th[i], NULL);
	kfi_logsink_free(s);

	a = slurp(old);
	b = slurp(path);
	cr_assert_eq(count_whole_lines(a, seen) + count_whole_lines(b, seen),
		     T_THREADS * T_LINES);
	for (int t = 0; t < T_THREADS; t++)
		for (int i = 0; i < T_LINES; i++)
			cr_assert_eq(seen[t][i], 1, "thread %d line %d", t, i);
	free(a);
	free(b);
	rm_tmp();
}

/*
 * The runner for suites built against the TSan stand-in of Criterion:
 * one forked child per test (the parent never starts a thread or touches
 * nng, so forking is safe), a per-test deadline, and Criterion's synthesis
 * line at the end. Arguments: an optional substring of "suite/name" to run
 * only matching tests; flags Criterion takes (--jobs N, -S) are ignored.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criterion/criterion.h"

static struct kfs_test *tests, **tests_tail = &tests;
static struct kfs_suite *suites;
static int expect_failures;

void
kfs_register(struct kfs_test *t)
{
	t->next = NULL;
	*tests_tail = t;
	tests_tail = &t->next;
}

void
kfs_register_suite(struct kfs_suite *s)
{
	s->next = suites;
	suites = s;
}

void
kfs_fail(bool fatal, const char *file, int line, const char *expr,
	 const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[FAIL] %s:%d: %s", file, line, expr);
	fmt++; /* the leading space; see criterion.h */
	if (fmt[0] != '\0') {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	if (fatal)
		_exit(1);
	expect_failures++;
}

static const struct kfs_suite *
suite_of(const struct kfs_test *t)
{
	for (const struct kfs_suite *s = suites; s != NULL; s = s->next)
		if (strcmp(s->name, t->suite) == 0)
			return s;
	return NULL;
}

static void
run_child(const struct kfs_test *t)
{
	const struct kfs_suite *s = suite_of(t);
	double timeout = t->opts.timeout;

	if (timeout <= 0 && s != NULL)
		timeout = s->opts.timeout;
	alarm(timeout > 0 ? (unsigned)timeout + 1 : 600);
	if (s != NULL && s->opts.init != NULL)
		s->opts.init();
	if (t->opts.init != NULL)
		t->opts.init();
	t->fn();
	if (t->opts.fini != NULL)
		t->opts.fini();
	if (s != NULL && s->opts.fini != NULL)
		s->opts.fini();
	_exit(expect_failures > 0 ? 1 : 0);
}

int
main(int argc, char **argv)
{
	const char *only = NULL;
	int n = 0, pass = 0, fail = 0, crash = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--jobs") == 0 ||
		    strcmp(argv[i], "-j") == 0)
			i++; /* Criterion's flag and its value */
		else if (argv[i][0] != '-')
			only = argv[i];
	}
	for (struct kfs_test *t = tests; t != NULL; t = t->next) {
		char id[256];
		int st;
		pid_t pid;

		snprintf(id, sizeof(id), "%s/%s", t->suite, t->name);
		if (t->opts.disabled || (only && strstr(id, only) == NULL))
			continue;
		n++;
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0)
			run_child(t);
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == t->opts.exit_code) {
			pass++;
			fprintf(stderr, "[PASS] %s\n", id);
		} else if (WIFEXITED(st)) {
			fail++;
			fprintf(stderr, "[FAIL] %s: exit %d\n", id,
				WEXITSTATUS(st));
		} else {
			crash++;
			fprintf(stderr, "[FAIL] %s: crashed (signal %d)\n", id,
				WTERMSIG(st));
		}
	}
	fprintf(stderr,
		"[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | "
		"Crashing: %d\n",
		n, pass, fail, crash);
	return fail + crash > 0 ? 1 : 0;
}

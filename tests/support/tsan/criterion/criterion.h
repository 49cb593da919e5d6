/*
 * A stand-in for <criterion/criterion.h> in the ThreadSanitizer build.
 *
 * Criterion cannot start under TSan (its inheritable arena collides with
 * TSan's address-space layout), so the TSan build compiles the very same
 * suites against this header and runner.c instead: each Test() registers
 * itself, and the runner forks one child per test, as Criterion does, and
 * prints Criterion's synthesis line. Only the subset of Criterion the
 * suites use is here; a suite that needs more fails to compile in the TSan
 * build, which says what to add.
 */
#ifndef KF_TSAN_CRITERION_H
#define KF_TSAN_CRITERION_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct kfs_opts {
	void (*init)(void);
	void (*fini)(void);
	double timeout;
	int exit_code;
	int signal;
	bool disabled;
	const char *description;
};

struct kfs_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct kfs_opts opts;
	struct kfs_test *next;
};

struct kfs_suite {
	const char *name;
	struct kfs_opts opts;
	struct kfs_suite *next;
};

void kfs_register(struct kfs_test *t);
void kfs_register_suite(struct kfs_suite *s);
/* fmt is " " followed by the user's format (possibly empty), so that an
 * assertion without a message still passes a non-empty format. */
void kfs_fail(bool fatal, const char *file, int line, const char *expr,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define KFS_CAT_(a, b) a##b
#define KFS_CAT(a, b)  KFS_CAT_(a, b)

#define Test(suite, name, ...)                                                 \
	static void suite##_##name##_fn(void);                                 \
	static struct kfs_test suite##_##name##_t = {                          \
	    #suite, #name, suite##_##name##_fn, {__VA_ARGS__}, NULL};          \
	__attribute__((constructor)) static void suite##_##name##_reg(void)    \
	{                                                                      \
		kfs_register(&suite##_##name##_t);                             \
	}                                                                      \
	static void suite##_##name##_fn(void)

#define TestSuite(suite, ...)                                                  \
	static struct kfs_suite suite##_suite_s = {                            \
	    #suite, {__VA_ARGS__}, NULL};                                      \
	__attribute__((constructor)) static void suite##_suite_reg(void)       \
	{                                                                      \
		kfs_register_suite(&suite##_suite_s);                          \
	}

/* Criterion compares through typed temporaries and so never warns on a
 * signed/unsigned pair; the plain comparison here is told not to either. */
/* clang-format off */
#define KFS_CHECK(fatal, cond, expr, ...)                                     \
	do {                                                                  \
		_Pragma("GCC diagnostic push")                                \
		_Pragma("GCC diagnostic ignored \"-Wsign-compare\"")        \
		if (!(cond))                                                  \
			kfs_fail((fatal), __FILE__, __LINE__, (expr),         \
				 " " __VA_ARGS__);                             \
		_Pragma("GCC diagnostic pop")                                 \
	} while (0)
/* clang-format on */

#define cr_assert(c, ...)     KFS_CHECK(true, (c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) KFS_CHECK(true, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)                                                \
	KFS_CHECK(true, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)                                               \
	KFS_CHECK(true, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)                                                \
	KFS_CHECK(true, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)                                               \
	KFS_CHECK(true, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)                                                \
	KFS_CHECK(true, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)                                               \
	KFS_CHECK(true, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...)                                                 \
	KFS_CHECK(true, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...)                                             \
	KFS_CHECK(true, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                            \
	KFS_CHECK(true, strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                           \
	KFS_CHECK(true, strcmp((a), (b)) != 0, #a " neq " #b, __VA_ARGS__)
#define cr_assert_str_empty(a, ...)                                            \
	KFS_CHECK(true, (a)[0] == '\0', #a " is empty", __VA_ARGS__)
#define cr_assert_str_not_empty(a, ...)                                        \
	KFS_CHECK(true, (a)[0] != '\0', #a " is not empty", __VA_ARGS__)
#define cr_assert_fail(...) KFS_CHECK(true, false, "fail", __VA_ARGS__)
#define cr_fatal(...)	    KFS_CHECK(true, false, "fatal", __VA_ARGS__)

#define cr_expect(c, ...) KFS_CHECK(false, (c), #c, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)                                                \
	KFS_CHECK(false, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...)                                               \
	KFS_CHECK(false, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)                                                \
	KFS_CHECK(false, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...)                                               \
	KFS_CHECK(false, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)                                            \
	KFS_CHECK(false, strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_expect_null(p, ...)                                                 \
	KFS_CHECK(false, (p) == NULL, #p " == NULL", __VA_ARGS__)

#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn(...) cr_log_info(__VA_ARGS__)

#endif

/*
 * Child processes of a test: kubefand, subscribers, tails. They are
 * started with posix_spawn, never fork (a process that has used nng must
 * not fork, and the helper cannot know whether the test did), with their
 * output in files, and every one is remembered until it is reaped, so a
 * test cut short by an assertion still leaves nothing running: name
 * kt_proc_reap_all as the test's or the suite's .fini, or call it from
 * the .fini the suite has.
 *
 * The calls fail the running test through Criterion's asserts (a program
 * that cannot start, one that outlives its deadline). One test thread
 * uses them; the table of processes is not locked.
 */
#ifndef KF_TEST_PROC_H
#define KF_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Append to the output files instead of truncating them. */
#define KT_PROC_APPEND 1u

/* Start argv[0] (a path) with argv and the test's environment; stdout to
 * the file out, stderr to err, or to out as well when err is NULL or the
 * same path. */
pid_t kt_proc_spawn(char *const argv[], const char *out, const char *err,
		    unsigned flags);

/* Wait up to timeout_s for pid to exit and reap it. True when it did, with
 * its waitpid status in *status (NULL: not wanted); false when it still
 * runs. */
bool kt_proc_wait(pid_t pid, double timeout_s, int *status);

/* pid's exit status; fails the test when pid still runs after timeout_s
 * or was ended by a signal. */
int kt_proc_exit_code(pid_t pid, double timeout_s);

/* Send sig to pid and reap it: its exit status, or -1 when a signal ended
 * it. When it still runs deadline_s later it is killed with SIGKILL,
 * reaped, and the test fails. */
int kt_proc_stop(pid_t pid, int sig, double deadline_s);

/* Poll ready(arg) every 50 ms until it holds (true). False after
 * timeout_s, or at once when pid (if > 0) has exited; pid is not reaped
 * then, so its exit can still be asked for. */
bool kt_proc_await(pid_t pid, bool (*ready)(void *arg), void *arg,
		   double timeout_s);

/* A condition for kt_proc_await: the file at path (a char *) exists, such
 * as the ipc socket of a listener. */
bool kt_proc_path_exists(void *path);

/* Run cmd with /bin/sh and wait for it; its exit status, and what it
 * wrote to stdout (and to stderr, with "2>&1" in cmd) in out, cut to
 * len - 1 bytes and NUL-terminated. Fails the test when cmd did not exit
 * (a signal ended it). */
int kt_proc_output(const char *cmd, char *out, size_t len);

/* Kill (SIGKILL) and reap every process started and not reaped yet. */
void kt_proc_reap_all(void);

#endif

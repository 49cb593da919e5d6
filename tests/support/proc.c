/* Child processes of a test; see proc.h. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "clock.h"

extern char **environ;

#define MAX_PROCS 64

/* Started and not reaped yet; 0 marks a free slot. */
static pid_t procs[MAX_PROCS];

static void
forget(pid_t pid)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
}

static void
remember(pid_t pid)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] == 0) {
			procs[i] = pid;
			return;
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert(false, "more than %d processes running", MAX_PROCS);
}

pid_t
kt_proc_spawn(char *const argv[], const char *out, const char *err,
	      unsigned flags)
{
	int mode =
	    O_WRONLY | O_CREAT | (flags & KT_PROC_APPEND ? O_APPEND : O_TRUNC);
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, mode, 0644);
	if (err == NULL || strcmp(err, out) == 0)
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, err, mode, 0644);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], strerror(rc));
	remember(pid);
	return pid;
}

bool
kt_proc_wait(pid_t pid, double timeout_s, int *status)
{
	double end = kt_now_s() + timeout_s;
	int st;

	/* Bounded by timeout_s, in 20 ms steps. */
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			forget(pid);
			if (status != NULL)
				*status = st;
			return true;
		}
		if (kt_now_s() >= end)
			return false;
		usleep(20 * 1000);
	}
}

int
kt_proc_exit_code(pid_t pid, double timeout_s)
{
	int st;

	cr_assert(kt_proc_wait(pid, timeout_s, &st),
		  "process %d still runs after %.1f s", (int)pid, timeout_s);
	cr_assert(WIFEXITED(st), "process %d died of signal %d", (int)pid,
		  WTERMSIG(st));
	return WEXITSTATUS(st);
}

int
kt_proc_stop(pid_t pid, int sig, double deadline_s)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	if (kt_proc_wait(pid, deadline_s, &st))
		return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	forget(pid);
	cr_assert(false, "process %d did not exit within %.1f s of signal %d",
		  (int)pid, deadline_s, sig);
	return -1;
}

bool
kt_proc_await(pid_t pid, bool (*ready)(void *arg), void *arg, double timeout_s)
{
	double end = kt_now_s() + timeout_s;

	/* Bounded by timeout_s, in 50 ms steps. */
	for (;;) {
		siginfo_t si = {0};

		if (ready(arg))
			return true;
		/* WNOWAIT: look, and leave the exit to be reaped. */
		if (pid > 0 &&
		    waitid(P_PID, (id_t)pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return false;
		if (kt_now_s() >= end)
			return false;
		usleep(50 * 1000);
	}
}

bool
kt_proc_path_exists(void *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

void
kt_proc_reap_all(void)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] > 0 && kill(procs[i], SIGKILL) == 0)
			waitpid(procs[i], NULL, 0);
		procs[i] = 0;
	}
}

int
kt_proc_output(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int st;

	cr_assert_not_null(p, "popen %s", cmd);
	/* Bounded by len: the rest of the output is read and dropped. */
	while (!feof(p) && !ferror(p)) {
		char buf[512];
		size_t got = fread(buf, 1, sizeof(buf), p);
		size_t take = got < len - 1 - n ? got : len - 1 - n;

		memcpy(out + n, buf, take);
		n += take;
	}
	out[n] = '\0';
	st = pclose(p);
	cr_assert(WIFEXITED(st), "%s: no exit status", cmd);
	return WEXITSTATUS(st);
}

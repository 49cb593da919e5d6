/*
 * kubefand --check-config's messages for credentials, run as the program:
 * each is one plain "kubefand: ..." line like the other configuration
 * errors (not a log line), with exit status 2. No kubeconfig given here
 * can be read, so nothing reaches a cluster.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "proc.h"

/* Run kubefand with env (shell assignments before it) and args; its exit
 * status, and its stdout and stderr in out. */
static int
run_kubefand(const char *env, const char *args, char *out, size_t len)
{
	char cmd[4096];

	cr_assert_lt(snprintf(cmd, sizeof(cmd), "env %s '%s' %s 2>&1", env,
			      KF_KUBEFAND, args),
		     (int)sizeof(cmd));
	return kt_proc_output(cmd, out, len);
}

/* A good configuration file in a fresh folder (support/files.h); the
 * folder in dir. remove_config at the end of the test removes it, so a
 * failed test keeps it, named by the suite's .fini. */
static void
make_config(char *dir, size_t len)
{
	char path[256];
	FILE *f;

	cr_assert_eq(kt_tmpdir_make("kf-kdargs", dir, len), 0, "mkdtemp: %s",
		     strerror(errno));
	snprintf(path, sizeof(path), "%s/kubefand.yaml", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("resources:\n  - resource: configmaps\nhttp: none\n", f);
	fclose(f);
}

static void
remove_config(const char *dir)
{
	cr_assert_eq(kt_tmpdir_remove(dir), 0, "removing %s: %s", dir,
		     strerror(errno));
}

TestSuite(kubefand_args, .fini = kt_tmpdir_report_kept);

/* A credentials error went to the log (a timestamped "err KF-DAEMON-CONN"
 * line) while every other --check-config finding is a plain line. */
Test(kubefand_args, check_config_prints_a_credentials_error_plainly)
{
	char dir[64], args[512], want[512], out[4096];
	int rc;

	make_config(dir, sizeof(dir));
	snprintf(args, sizeof(args),
		 "--check-config --config %s/kubefand.yaml --kubeconfig "
		 "%s/nokc",
		 dir, dir);
	rc = run_kubefand("-u KUBERNETES_SERVICE_HOST", args, out, sizeof(out));
	snprintf(want, sizeof(want),
		 "kubefand: credentials: invalid configuration: kubeconfig "
		 "%s/nokc: cannot read: No such file or directory\n",
		 dir);
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert_str_eq(out, want);
	remove_config(dir);
}

/* With no kubeconfig anywhere, the message named only ~/.kube/config. */
Test(kubefand_args, check_config_says_no_kubeconfig_was_found)
{
	char dir[64], env[256], args[512], want[1024], out[4096];
	int rc;

	make_config(dir, sizeof(dir));
	snprintf(env, sizeof(env),
		 "-u KUBECONFIG -u KUBERNETES_SERVICE_HOST HOME=%s", dir);
	snprintf(args, sizeof(args), "--check-config --config %s/kubefand.yaml",
		 dir);
	rc = run_kubefand(env, args, out, sizeof(out));
	snprintf(want, sizeof(want),
		 "kubefand: credentials: invalid configuration: no kubeconfig "
		 "found: no path given (--kubeconfig), $KUBECONFIG is unset "
		 "and the default %s/.kube/config cannot be read: No such "
		 "file or directory; not in a cluster either "
		 "($KUBERNETES_SERVICE_HOST is unset, so no service "
		 "account)\n",
		 dir);
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert_str_eq(out, want);
	remove_config(dir);
}

/* A number in the file or on the command line is digits only: " 16"
 * was taken as 16, since strtoul skips white space. */
Test(kubefand_args, a_number_with_a_space_is_refused_naming_key_and_line)
{
	char dir[64], path[256], args[512], want[512], out[4096];
	FILE *f;
	int rc;

	make_config(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/kubefand.yaml", dir);
	f = fopen(path, "a");
	cr_assert_not_null(f);
	fputs("ringCapacity: \" 16\"\n", f);
	fclose(f);
	snprintf(args, sizeof(args), "--check-config --config %s", path);
	rc = run_kubefand("-u KUBERNETES_SERVICE_HOST", args, out, sizeof(out));
	snprintf(want, sizeof(want),
		 "kubefand: %s:4: ringCapacity: \" 16\": expected a whole "
		 "number\n",
		 path);
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert_str_eq(out, want);
	remove_config(dir);

	make_config(dir, sizeof(dir));
	snprintf(args, sizeof(args),
		 "--check-config --config %s/kubefand.yaml --heartbeat-ms ' 5'",
		 dir);
	rc = run_kubefand("-u KUBERNETES_SERVICE_HOST", args, out, sizeof(out));
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert_str_eq(out, "kubefand: --heartbeat-ms \" 5\": expected a "
			      "whole number\n");
	remove_config(dir);
}

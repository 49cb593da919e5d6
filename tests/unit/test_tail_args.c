/*
 * kubefan-tail's checks of its arguments, run as the program: each bad
 * --broker, --rep, --stream or --resource, and a missing --resource, is
 * refused with exit status 2 and a message naming the flag, the value and
 * what is wrong, before any connection is tried. KUBECONFIG points nowhere, so
 * nothing here can reach a cluster even when a check is missing.
 */
#include <criterion/criterion.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proc.h"

/* Run kubefan-tail with args (shell words); its exit status, and its
 * stdout and stderr in out. Broker-mode cases pass --timeout 0.2, so a
 * check that is missing fails fast instead of waiting for a broker. */
static int
run_tail(const char *args, char *out, size_t len)
{
	char cmd[4096];

	cr_assert_lt(snprintf(cmd, sizeof(cmd),
			      "KUBECONFIG=/nonexistent/kubeconfig '%s' %s 2>&1",
			      KF_TAIL, args),
		     (int)sizeof(cmd));
	return kt_proc_output(cmd, out, len);
}

static void
expect_refused(const char *args, const char *want)
{
	char out[4096];
	int rc = run_tail(args, out, sizeof(out));

	cr_assert_eq(rc, 2, "%s: exit %d: %s", args, rc, out);
	cr_assert(strstr(out, want) != NULL, "%s:\n  got  %s  want %s", args,
		  out, want);
}

Test(tail_args, a_port_out_of_range_is_named_as_such)
{
	expect_refused("--timeout 0.2 --broker tcp://127.0.0.1:99999 "
		       "--resource configmaps",
		       "kubefan-tail: bad broker address --broker "
		       "tcp://127.0.0.1:99999: the port 99999 is out of "
		       "range (1 to 65535)\n");
	expect_refused(
	    "--timeout 0.2 --broker tcp://127.0.0.1:0 --resource configmaps",
	    "the port 0 is out of range (1 to 65535)");
	expect_refused(
	    "--timeout 0.2 --broker tls+tcp://127.0.0.1:12345678 --resource "
	    "configmaps",
	    "the port 12345678 is out of range (1 to 65535)");
	expect_refused(
	    "--timeout 0.2 --broker ipc:///tmp/x --rep tcp://127.0.0.1:70000 "
	    "--resource configmaps",
	    "bad broker address --rep tcp://127.0.0.1:70000: the "
	    "port 70000 is out of range");
	expect_refused(
	    "--timeout 0.2 --broker tcp://127.0.0.1:7x --resource configmaps",
	    "--broker tcp://127.0.0.1:7x: the port 7x is not a "
	    "number");
	expect_refused(
	    "--timeout 0.2 --broker tcp://127.0.0.1 --resource configmaps",
	    "--broker tcp://127.0.0.1: a tcp address needs "
	    "HOST:PORT");
	/* The request address is PORT + 1 unless --rep gives it. */
	expect_refused("--timeout 0.2 --broker tcp://127.0.0.1:65535 "
		       "--resource configmaps",
		       "the request address would be port 65536 (PORT + 1); "
		       "give --rep");
}

/* "0000001" was called out of range; it is port 1 written with leading
 * zeros, which are refused as such. */
Test(tail_args, a_port_with_leading_zeros_is_named_as_such)
{
	expect_refused("--timeout 0.2 --broker tcp://127.0.0.1:0000001 "
		       "--resource configmaps",
		       "kubefan-tail: bad broker address --broker "
		       "tcp://127.0.0.1:0000001: the port 0000001 has leading "
		       "zeros\n");
	expect_refused("--timeout 0.2 --broker ipc:///tmp/x --rep "
		       "tcp://127.0.0.1:07001 --resource configmaps",
		       "kubefan-tail: bad broker address --rep "
		       "tcp://127.0.0.1:07001: the port 07001 has leading "
		       "zeros\n");
	/* Digits first: "01x" is not a number at all. */
	expect_refused(
	    "--timeout 0.2 --broker tcp://127.0.0.1:01x --resource configmaps",
	    "kubefan-tail: bad broker address --broker tcp://127.0.0.1:01x: "
	    "the port 01x is not a number\n");
	expect_refused("--timeout 0.2 --broker tcp://127.0.0.1:1234567x "
		       "--resource configmaps",
		       "the port 1234567x is not a number\n");
}

/* nng took the last colon of "::1:5" for the port and failed to dial
 * with "Address invalid" and exit 1. */
Test(tail_args, an_ipv6_address_without_brackets_is_refused_up_front)
{
	expect_refused(
	    "--timeout 0.2 --broker tcp://::1:5 --resource configmaps",
	    "kubefan-tail: bad broker address --broker tcp://::1:5: an IPv6 "
	    "address needs brackets, as tcp://[::1]:5\n");
	expect_refused("--timeout 0.2 --broker tcp://127.0.0.1:5 --rep "
		       "tls+tcp://fe80::1:7001 --resource configmaps",
		       "kubefan-tail: bad broker address --rep "
		       "tls+tcp://fe80::1:7001: an IPv6 address needs "
		       "brackets, as tls+tcp://[fe80::1]:7001\n");
	expect_refused(
	    "--timeout 0.2 --broker 'tcp://[::1:5' --resource configmaps",
	    "kubefan-tail: bad broker address --broker tcp://[::1:5: an IPv6 "
	    "address in [ needs its closing ], as tcp://[::1]:PORT\n");
	expect_refused(
	    "--timeout 0.2 --broker 'tcp://[::1]' --resource configmaps",
	    "kubefan-tail: bad broker address --broker tcp://[::1]: a tcp "
	    "address needs HOST:PORT\n");
}

Test(tail_args, a_resource_of_more_than_three_parts_is_refused)
{
	static const char forms[] =
	    "expected plural (configmaps), version/plural (v1/pods) or "
	    "group/version/plural (apps/v1/deployments)";
	char want[256];

	snprintf(want, sizeof(want),
		 "kubefan-tail: --resource a/b/c/d: too many parts; %s\n",
		 forms);
	/* Direct mode and broker mode alike. */
	expect_refused("--resource a/b/c/d", want);
	expect_refused(
	    "--timeout 0.2 --broker ipc:///tmp/kf-none --resource a/b/c/d",
	    want);
	expect_refused("--resource apps/v1/deployments/x/y", "too many parts");
	snprintf(want, sizeof(want),
		 "--resource apps//deployments: the version is empty; %s",
		 forms);
	expect_refused("--resource apps//deployments", want);
	expect_refused("--resource v1/", "--resource v1/: the plural is empty");
	expect_refused("--resource ''", "--resource : the plural is empty");
}

Test(tail_args, names_too_long_to_hold_are_refused_not_cut)
{
	char args[1024], name[400];

	memset(name, 'a', 300);
	name[300] = '\0';
	/* A stream id over the broker's limit was cut to 255 bytes and then
	 * looked for under the cut name. */
	snprintf(args, sizeof(args),
		 "--timeout 0.2 --broker ipc:///tmp/kf-none --resource "
		 "configmaps --stream "
		 "%s",
		 name);
	expect_refused(args, "a stream id is 1 to 256 bytes");
	snprintf(args, sizeof(args), "--resource %s", name);
	expect_refused(args, "the plural is longer than 127 bytes");
	snprintf(args, sizeof(args), "--resource %.254s/v1/pods", name);
	expect_refused(args, "the group is longer than 253 bytes");
	snprintf(args, sizeof(args),
		 "--timeout 0.2 --broker ipc:///tmp/kf-none --resource "
		 "%.200s/v1/%.100s",
		 name, name);
	expect_refused(args, "its stream id (plural.group) is longer than "
			     "256 bytes; give --stream");
}

/* --timeout beyond nng's int32 milliseconds (or nan, inf) became a
 * negative duration that nng refused, so a silent broker was waited for
 * forever (and SIGTERM did not end the wait); below 1 ms it became 0. */
Test(tail_args, a_timeout_nng_cannot_hold_is_refused, .timeout = 60)
{
	/* The one that failed fast first, then those that waited forever. */
	static const char *const bad[] = {
	    "1e-9", "0", "", "5x", "-inf", "2147484", "1e12", "nan", "inf"};
	char args[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(args, sizeof(args),
			 "--timeout '%s' --broker tcp://127.0.0.1:9 "
			 "--resource configmaps",
			 bad[i]);
		expect_refused(args, "--timeout takes seconds from 0.001 to "
				     "2147483, not");
	}
}

/* A missing --resource (and a stray word, or -n with -A) printed only the
 * usage, with no line saying what was wrong. */
Test(tail_args, a_missing_resource_is_named)
{
	expect_refused("--timeout 0.2 --broker ipc:///tmp/kf-none.pub",
		       "kubefan-tail: --resource is required\n");
	expect_refused("", "kubefan-tail: --resource is required\n");
	expect_refused("--resource configmaps extra",
		       "kubefan-tail: unexpected argument 'extra'\n");
	expect_refused("--resource configmaps -n demo -A",
		       "kubefan-tail: -n and -A cannot be given together\n");
}

/* A host name that does not resolve was reported as a broker that does
 * not answer on it, after the whole --timeout. The resolver's own verdict
 * on the name is the expected text: "Name or service not known" (exit 2)
 * where a DNS server answers, a temporary failure (exit 1) where none
 * can be reached. */
Test(tail_args, a_host_that_does_not_resolve_is_named)
{
	static const char *const flag[] = {"--broker", "--rep", "--refs"};
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo("nonexistent.invalid", NULL, &hints, &res);
	int want_rc = gai == EAI_NONAME || gai == EAI_NODATA ? 2 : 1;
	char args[512], want[512], out[4096];

	cr_assert_neq(gai, 0, "nonexistent.invalid resolves here");
	for (size_t i = 0; i < 3; i++) {
		const char *scheme = i == 1 ? "tls+tcp" : "tcp";
		int rc;

		snprintf(args, sizeof(args),
			 "--timeout 5 --broker %s "
			 "--resource configmaps",
			 i == 0 ? "tcp://nonexistent.invalid:7000"
				: "tcp://127.0.0.1:7000");
		if (i > 0)
			snprintf(args + strlen(args),
				 sizeof(args) - strlen(args),
				 " %s %s://nonexistent.invalid:7001", flag[i],
				 scheme);
		snprintf(want, sizeof(want),
			 "kubefan-tail: cannot resolve host "
			 "\"nonexistent.invalid\" in %s "
			 "%s://nonexistent.invalid:%d: %s\n",
			 flag[i], scheme, i == 0 ? 7000 : 7001,
			 gai_strerror(gai));
		rc = run_tail(args, out, sizeof(out));
		cr_assert_eq(rc, want_rc, "%s: exit %d: %s", args, rc, out);
		cr_assert_str_eq(out, want, "%s", args);
	}
}

/* Hosts that resolve still reach the dial: nothing listens on port 9 of
 * the loopback, so each ends in "nothing answers" (exit 1). */
Test(tail_args, hosts_that_resolve_are_dialed, .timeout = 30)
{
	static const char *const host[] = {"127.0.0.1", "localhost"};
	char args[256], want[256], out[4096];

	for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++) {
		int rc;

		snprintf(args, sizeof(args),
			 "--timeout 0.2 --broker tcp://%s:8 "
			 "--resource configmaps",
			 host[i]);
		snprintf(want, sizeof(want),
			 "kubefan-tail: no broker at tcp://%s:8: nothing "
			 "answers on tcp://%s:9",
			 host[i], host[i]);
		rc = run_tail(args, out, sizeof(out));
		cr_assert_eq(rc, 1, "%s: exit %d: %s", args, rc, out);
		cr_assert(strstr(out, want) != NULL, "%s:\n  got  %s  want %s",
			  args, out, want);
	}
}

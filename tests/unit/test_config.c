/* kubefand's configuration: --resource syntax, the YAML file, checks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kubefan/log.h"

static char *
write_tmp(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/kf-cfg-%d.yaml", getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(config, resource_specs_name_group_version_and_options)
{
	struct kd_cfg c;
	char err[256] = "";

	kd_cfg_defaults(&c);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c, "configmaps", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c,
				     "apps/v1/deployments,ns=prod,labels=a=b,"
				     "transform=strip-managed-fields",
				     err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(
	    kd_cfg_add_resource_spec(&c, "v1/pods,name=p", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(c.res[0].group, "");
	cr_assert_str_eq(c.res[0].version, "v1");
	cr_assert_str_eq(c.res[0].stream, "configmaps");
	cr_assert_str_eq(c.res[1].group, "apps");
	cr_assert_str_eq(c.res[1].resource, "deployments");
	cr_assert_str_eq(c.res[1].ns, "prod");
	cr_assert_str_eq(c.res[1].labels, "a=b");
	cr_assert(c.res[1].strip);
	cr_assert_str_eq(c.res[1].stream, "deployments.apps");
	cr_assert_str_eq(c.res[2].stream, "p");

	cr_assert_neq(
	    kd_cfg_add_resource_spec(&c, "pods,color=red", err, sizeof(err)),
	    0);
	cr_assert(strstr(err, "unknown option color=red") != NULL, "%s", err);
	cr_assert_neq(kd_cfg_add_resource_spec(&c, "a/b/c/d", err, sizeof(err)),
		      0);
	cr_assert_eq(c.nres, 3);

	cr_assert_eq(kd_cfg_finish(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.rep, "ipc:///tmp/kubefand.rep");
	kd_cfg_fini(&c);
}

Test(config, a_yaml_file_sets_everything_and_flags_add_to_it)
{
	struct kd_cfg c;
	char err[256] = "";
	char *path = write_tmp("kubeconfig: /etc/kc\n"
			       "listen: tcp://127.0.0.1:7000\n"
			       "ipcMode: \"0660\"\n"
			       "ringCapacity: 1024\n"
			       "batchMicros: 0\n"
			       "heartbeatMs: 500\n"
			       "logFormat: json\n"
			       "logLevel: debug\n"
			       "resources:\n"
			       "  - resource: configmaps\n"
			       "    namespace: a\n"
			       "  - resource: apps/v1/deployments\n"
			       "    transform: strip-managed-fields\n"
			       "    name: deploys\n");

	kd_cfg_defaults(&c);
	cr_assert_eq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(kd_cfg_add_resource_spec(&c, "secrets", err, sizeof(err)),
		     0);
	cr_assert_eq(kd_cfg_finish(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.kubeconfig, "/etc/kc");
	cr_assert_eq(c.ipc_mode, 0660);
	cr_assert_eq(c.ring_capacity, 1024);
	cr_assert_eq(c.batch_us, 0);
	cr_assert_eq(c.heartbeat_ms, 500);
	cr_assert(c.log_json);
	cr_assert_eq(c.log_level, KF_LOG_DEBUG);
	cr_assert_eq(c.nres, 3);
	cr_assert_str_eq(c.res[0].ns, "a");
	cr_assert_str_eq(c.res[1].stream, "deploys");
	cr_assert(c.res[1].strip);
	cr_assert_str_eq(c.res[2].stream, "secrets");
	cr_assert_str_eq(c.rep, "tcp://127.0.0.1:7001");
	kd_cfg_fini(&c);
	unlink(path);
}

Test(config, errors_name_the_file_line_and_key)
{
	struct kd_cfg c;
	char err[256] = "";
	char *path;

	kd_cfg_defaults(&c);
	path = write_tmp("listen: ipc:///x\nringCapacty: 8\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, ":2: ringCapacty: unknown key") != NULL, "%s",
		  err);

	path = write_tmp("resources:\n  - namespace: a\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, "needs `resource:`") != NULL, "%s", err);

	path = write_tmp("heartbeatMs: -5\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, "heartbeatMs") != NULL, "%s", err);

	path = write_tmp("listen: [unclosed\n");
	cr_assert_neq(kd_cfg_load_file(&c, path, err, sizeof(err)), 0);
	cr_assert(strstr(err, path) != NULL, "%s", err);

	/* Two streams with one id, and a ring that is no power of two. */
	kd_cfg_add_resource_spec(&c, "pods", err, sizeof(err));
	kd_cfg_add_resource_spec(&c, "v1/pods", err, sizeof(err));
	cr_assert_neq(kd_cfg_finish(&c, err, sizeof(err)), 0);
	cr_assert(strstr(err, "stream id pods") != NULL, "%s", err);
	kd_cfg_fini(&c);
	kd_cfg_defaults(&c);
	kd_cfg_add_resource_spec(&c, "pods", err, sizeof(err));
	c.ring_capacity = 1000;
	cr_assert_neq(kd_cfg_finish(&c, err, sizeof(err)), 0);
	kd_cfg_fini(&c);
	unlink(path);
}

/*
 * kubefan-tail, direct mode: watch one resource on an API server with a
 * reflector of its own and print what changes, like `kubectl get -w`, or
 * one JSON object per line with -o json:
 *
 *   {"type": "Apply", "object": {...the object as the server sent it...}}
 *
 * Type names are kf_event_type_name()'s: Init, InitApply, InitDone,
 * Apply, Delete, Lagged. After the first list, a re-list (410, restart)
 * prints only what it changed, as Apply and Delete.
 *
 * It uses the public library only, as any program would.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kubefan/kubefan.h>
#include <kubefan/subscriber.h>

static volatile sig_atomic_t tail_stop;

static void
tail_on_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

static void
tail_log(void *arg, int level, const char *id, const char *msg)
{
	(void)arg;
	fprintf(stderr, "kubefan-tail: %s %s %s\n", kf_log_level_name(level),
		id, msg);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: kubefan-tail [--kubeconfig FILE] [--context C] "
		"--resource RES\n"
		"                    [-n NS | -A] [-l SELECTOR] "
		"[--field-selector S] [-o json] [-v]\n"
		"  RES is a plural (configmaps), version/plural (v1/pods) or\n"
		"  group/version/plural (apps/v1/deployments). Without -n or "
		"-A the\n"
		"  context's namespace (else \"default\") is watched; "
		"cluster-scoped\n"
		"  kinds are watched cluster-wide whatever is given.\n");
}

/* Cluster-scoped resources of the built-in API (no discovery here). */
static int
cluster_scoped(const char *group, const char *res)
{
	static const char *const core[] = {
	    "namespaces", "nodes", "persistentvolumes", "componentstatuses"};
	static const char *const named[] = {
	    "clusterroles",
	    "clusterrolebindings",
	    "customresourcedefinitions",
	    "storageclasses",
	    "priorityclasses",
	    "validatingwebhookconfigurations",
	    "mutatingwebhookconfigurations",
	    "apiservices",
	    "csidrivers",
	    "csinodes",
	    "volumeattachments",
	    "ingressclasses",
	    "runtimeclasses",
	    "certificatesigningrequests",
	    "flowschemas",
	    "prioritylevelconfigurations",
	};

	if (group[0] == '\0') {
		for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
			if (strcmp(core[i], res) == 0)
				return 1;
		return 0;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcmp(named[i], res) == 0)
			return 1;
	return 0;
}

/* Print bytes as a JSON string. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
print_event(const kf_event *ev, int json)
{
	const char *type = kf_event_type_name(ev->type);

	if (json) {
		printf("{\"type\": ");
		json_str(type);
		printf(", \"object\": ");
		if (ev->obj != NULL) {
			size_t len;
			const char *j = kf_object_json(ev->obj, &len);

			fwrite(j, 1, len, stdout);
		} else {
			printf("null");
		}
		if (ev->type == KF_EV_LAGGED)
			printf(", \"missed\": %llu",
			       (unsigned long long)ev->missed);
		printf("}\n");
	} else if (ev->obj != NULL) {
		const char *ns = kf_object_namespace(ev->obj);

		printf("%-10s %-24s %-40s %s\n", type, ns[0] ? ns : "-",
		       kf_object_name(ev->obj),
		       kf_object_resource_version(ev->obj));
	} else {
		printf("%-10s %-24s %-40s %s\n", type, "-", "-", "-");
	}
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, 'k'},
	    {"context", required_argument, NULL, 'c'},
	    {"resource", required_argument, NULL, 'r'},
	    {"namespace", required_argument, NULL, 'n'},
	    {"all-namespaces", no_argument, NULL, 'A'},
	    {"selector", required_argument, NULL, 'l'},
	    {"field-selector", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *kubeconfig = NULL, *context = NULL, *resource = NULL;
	const char *ns = NULL, *lsel = NULL, *fsel = NULL;
	char group[128] = "", version[64] = "v1", res[128] = "", err[1024];
	int all = 0, json = 0, verbose = 0, opt, rc = 0;
	kf_conn *conn = NULL;
	kf_watcher_opts o;
	kf_watcher *w = NULL;
	kf_writer *writer = NULL;
	kf_store *store = NULL;
	kf_reflector *refl = NULL;
	kf_subscriber *sub = NULL;
	kf_loop *loop = NULL;
	kf_err e;

	while ((opt = getopt_long(argc, argv, "n:Al:o:vh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'k':
			kubeconfig = optarg;
			break;
		case 'c':
			context = optarg;
			break;
		case 'r':
			resource = optarg;
			break;
		case 'n':
			ns = optarg;
			break;
		case 'A':
			all = 1;
			break;
		case 'l':
			lsel = optarg;
			break;
		case 'f':
			fsel = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr,
					"kubefan-tail: -o takes json only\n");
				return 2;
			}
			json = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (resource == NULL || (ns != NULL && all)) {
		usage(stderr);
		return 2;
	}
	{
		const char *s1 = strchr(resource, '/');
		const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

		if (s2 != NULL)
			sscanf(resource, "%127[^/]/%63[^/]/%127s", group,
			       version, res);
		else if (s1 != NULL)
			sscanf(resource, "%63[^/]/%127s", version, res);
		else
			snprintf(res, sizeof(res), "%s", resource);
	}
	kf_log_set_sink(tail_log, NULL,
			verbose ? KF_LOG_DEBUG : KF_LOG_WARNING);
	e = kf_conn_from_kubeconfig(kubeconfig, context, err, sizeof(err),
				    &conn);
	if (e != KF_OK) {
		fprintf(stderr, "kubefan-tail: %s: %s\n", kf_strerror(e), err);
		return 1;
	}
	if (cluster_scoped(group, res))
		ns = NULL;
	else if (all)
		ns = NULL;
	else if (ns == NULL)
		ns = kf_conn_namespace(conn)[0] ? kf_conn_namespace(conn)
						: "default";
	kf_watcher_opts_init(&o);
	o.group = group;
	o.version = version;
	o.resource = res;
	o.namespace_ = ns;
	o.label_selector = lsel;
	o.field_selector = fsel;
	if ((e = kf_watcher_alloc(conn, &o, &w)) != KF_OK ||
	    (e = kf_store_shared_alloc(4096, &writer, &store)) != KF_OK ||
	    (e = kf_reflector_alloc(w, writer, &refl)) != KF_OK ||
	    (e = kf_store_subscribe(store, NULL, &sub)) != KF_OK ||
	    (e = kf_loop_alloc(&loop)) != KF_OK ||
	    (e = kf_loop_start(loop)) != KF_OK ||
	    (e = kf_reflector_start(refl, loop)) != KF_OK) {
		fprintf(stderr, "kubefan-tail: cannot start: %s\n",
			kf_strerror(e));
		if (refl == NULL)
			kf_watcher_free(w);
		rc = 1;
		goto out;
	}
	signal(SIGINT, tail_on_signal);
	signal(SIGTERM, tail_on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (!json)
		printf("%-10s %-24s %-40s %s\n", "EVENT", "NAMESPACE", "NAME",
		       "RESOURCEVERSION");
	/* One event per turn; the 200 ms wait bounds the reaction to a
	 * signal. */
	while (!tail_stop) {
		kf_event ev;

		e = kf_subscriber_next(sub, 200, &ev);
		if (e == KF_ETIMEDOUT)
			continue;
		if (e != KF_OK)
			break;
		print_event(&ev, json);
		if (ferror(stdout))
			break;
	}
out:
	kf_subscriber_free(sub);
	kf_reflector_free(refl);
	kf_loop_free(loop);
	kf_store_free(store);
	kf_writer_free(writer);
	kf_conn_free(conn);
	return rc;
}

/* The metrics registry: exact Prometheus text, escaping, order, process
 * metrics from /proc, and kubefand's families. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

static char *
scrape(kfi_metrics *m)
{
	char *text;
	size_t len;

	cr_assert_eq(kfi_metrics_render(m, &text, &len), KF_OK);
	cr_assert_eq(strlen(text), len);
	return text;
}

struct two {
	uint64_t a, b;
};

static void
collect_two(void *arg, kfi_mw *w)
{
	struct two *t = arg;

	/* Emitted out of family order on purpose. */
	kfi_mw_u64(w, "t_items", KFI_LABELS("res", "pods"), t->b);
	kfi_mw_u64(w, "t_events_total",
		   KFI_LABELS("res", "pods", "type", "ADDED"), t->a);
	kfi_mw_u64(w, "t_events_total",
		   KFI_LABELS("res", "pods", "type", "DELETED"), t->a + 1);
	kfi_mw_u64(w, "t_items", KFI_LABELS("res", "nodes"), 7);
}

Test(metrics, renders_families_in_declaration_order_with_help_and_type)
{
	kfi_metrics *m;
	struct two t = {3, 12};
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_COUNTER,
					 "t_events_total", "Events by type."),
		     KF_OK);
	cr_assert_eq(
	    kfi_metrics_declare(m, KFI_METRIC_GAUGE, "t_items", "Items held."),
	    KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "t_unused",
					 "Never emitted."),
		     KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect_two, &t), KF_OK);

	text = scrape(m);
	cr_assert_str_eq(text,
			 "# HELP t_events_total Events by type.\n"
			 "# TYPE t_events_total counter\n"
			 "t_events_total{res=\"pods\",type=\"ADDED\"} 3\n"
			 "t_events_total{res=\"pods\",type=\"DELETED\"} 4\n"
			 "# HELP t_items Items held.\n"
			 "# TYPE t_items gauge\n"
			 "t_items{res=\"pods\"} 12\n"
			 "t_items{res=\"nodes\"} 7\n");
	free(text);

	/* The next scrape reads the values again and keeps nothing. */
	t.a = 100;
	t.b = 0;
	text = scrape(m);
	cr_assert_str_eq(text,
			 "# HELP t_events_total Events by type.\n"
			 "# TYPE t_events_total counter\n"
			 "t_events_total{res=\"pods\",type=\"ADDED\"} 100\n"
			 "t_events_total{res=\"pods\",type=\"DELETED\"} 101\n"
			 "# HELP t_items Items held.\n"
			 "# TYPE t_items gauge\n"
			 "t_items{res=\"pods\"} 0\n"
			 "t_items{res=\"nodes\"} 7\n");
	free(text);
	cr_assert_eq(kfi_metrics_dropped(m), 0);
	kfi_metrics_free(m);
}

static void
collect_escapes(void *arg, kfi_mw *w)
{
	(void)arg;
	kfi_mw_u64(w, "t_x", KFI_LABELS("v", "a\\b\"c\nd"), 1);
	kfi_mw_u64(w, "t_x", NULL, 2);
	kfi_mw_u64(w, "t_x", KFI_LABELS("v", ""), 3);
}

Test(metrics, escapes_label_values_and_help_text)
{
	kfi_metrics *m;
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "t_x",
					 "Back\\slash \"quoted\"\nsecond"),
		     KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect_escapes, NULL),
		     KF_OK);
	text = scrape(m);
	/* HELP escapes \ and newline only; label values also escape ". */
	cr_assert_str_eq(text, "# HELP t_x Back\\\\slash \"quoted\"\\nsecond\n"
			       "# TYPE t_x gauge\n"
			       "t_x{v=\"a\\\\b\\\"c\\nd\"} 1\n"
			       "t_x 2\n"
			       "t_x{v=\"\"} 3\n");
	free(text);
	kfi_metrics_free(m);
}

static void
collect_floats(void *arg, kfi_mw *w)
{
	(void)arg;
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "half"), 0.5);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "tenth"), 0.1);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "int"), 3.0);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "big"), 1e21);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "third"), 1.0 / 3.0);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "nan"), NAN);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "inf"), INFINITY);
	kfi_mw_f64(w, "t_f", KFI_LABELS("k", "-inf"), -INFINITY);
	kfi_mw_u64(w, "t_f", KFI_LABELS("k", "max"), UINT64_MAX);
}

Test(metrics, writes_numbers_exactly_and_special_values_by_name)
{
	kfi_metrics *m;
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "t_f", "F."),
		     KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect_floats, NULL), KF_OK);
	text = scrape(m);
	cr_assert_str_eq(text, "# HELP t_f F.\n"
			       "# TYPE t_f gauge\n"
			       "t_f{k=\"half\"} 0.5\n"
			       "t_f{k=\"tenth\"} 0.1\n"
			       "t_f{k=\"int\"} 3\n"
			       "t_f{k=\"big\"} 1e+21\n"
			       "t_f{k=\"third\"} 0.3333333333333333\n"
			       "t_f{k=\"nan\"} NaN\n"
			       "t_f{k=\"inf\"} +Inf\n"
			       "t_f{k=\"-inf\"} -Inf\n"
			       "t_f{k=\"max\"} 18446744073709551615\n");
	free(text);
	kfi_metrics_free(m);
}

Test(metrics, rejects_bad_names_counters_without_total_and_duplicates)
{
	kfi_metrics *m;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(
	    kfi_metrics_declare(m, KFI_METRIC_COUNTER, "t_events", "h"),
	    KF_EINVAL);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "9lives", "h"),
		     KF_EINVAL);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "a-b", "h"),
		     KF_EINVAL);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "", "h"),
		     KF_EINVAL);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "ns:t_ok", "h"),
		     KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "ns:t_ok", "h"),
		     KF_EINVAL);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_COUNTER, "ns:t_ok", "h"),
		     KF_EINVAL);
	kfi_metrics_free(m);
}

static void
collect_bad(void *arg, kfi_mw *w)
{
	(void)arg;
	kfi_mw_u64(w, "t_undeclared", NULL, 1);
	kfi_mw_u64(w, "t_ok", KFI_LABELS("bad-name", "x"), 1);
	kfi_mw_u64(w, "t_ok", KFI_LABELS("__reserved", "x"), 1);
	kfi_mw_u64(w, "t_ok", KFI_LABELS("k", NULL), 1);
	kfi_mw_u64(w, "t_ok", KFI_LABELS("k", "good"), 5);
}

Test(metrics, drops_and_counts_samples_a_collector_got_wrong)
{
	kfi_metrics *m;
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare(m, KFI_METRIC_GAUGE, "t_ok", "ok"),
		     KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect_bad, NULL), KF_OK);
	text = scrape(m);
	cr_assert_str_eq(text, "# HELP t_ok ok\n"
			       "# TYPE t_ok gauge\n"
			       "t_ok{k=\"good\"} 5\n");
	free(text);
	cr_assert_eq(kfi_metrics_dropped(m), 4);
	kfi_metrics_free(m);
}

Test(metrics, an_empty_registry_renders_an_empty_text)
{
	kfi_metrics *m;
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	text = scrape(m);
	cr_assert_str_eq(text, "");
	free(text);
	kfi_metrics_free(m);
}

/* The value of the first sample line starting with `prefix`. */
static double
sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	cr_assert_fail("no sample %s in:\n%s", prefix, text);
	return -1;
}

Test(metrics, process_metrics_follow_open_fds_and_memory)
{
	kfi_metrics *m;
	char *text;
	double fds, rss, start, cpu;
	int f[3];

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_add_process(m), KF_OK);
	text = scrape(m);
	cr_assert(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	cr_assert(strstr(text, "# TYPE process_open_fds gauge\n"));
	fds = sample(text, "process_open_fds");
	rss = sample(text, "process_resident_memory_bytes");
	start = sample(text, "process_start_time_seconds");
	cpu = sample(text, "process_cpu_seconds_total");
	cr_assert_gt(rss, 1 << 20, "rss %f", rss);
	cr_assert_geq(sample(text, "process_virtual_memory_bytes"), rss);
	cr_assert_geq(cpu, 0);
	cr_assert_leq(start, (double)time(NULL) + 1);
	cr_assert_gt(start, (double)time(NULL) - 3600, "start %f", start);
	free(text);

	for (int i = 0; i < 3; i++)
		cr_assert_geq(f[i] = open("/dev/null", O_RDONLY), 0);
	text = scrape(m);
	cr_assert_eq(sample(text, "process_open_fds"), fds + 3);
	free(text);
	for (int i = 0; i < 3; i++)
		close(f[i]);
	text = scrape(m);
	cr_assert_eq(sample(text, "process_open_fds"), fds);
	free(text);
	kfi_metrics_free(m);
}

/* ---- kubefand's families ---- */

static void
collect_daemon(void *arg, kfi_mw *w)
{
	kf_watcher_stats ws = {.lists = 2,
			       .list_pages = 5,
			       .relists = 1,
			       .watches = 4,
			       .gone = 1,
			       .bytes = 9000,
			       .added = 10,
			       .modified = 20,
			       .deleted = 3,
			       .bookmarks = 6,
			       .errors = 1,
			       .http_errors = 2,
			       .retries = 7};
	struct kfi_resource_sample rs = {.objects = 42,
					 .ready = true,
					 .last_event_age_s = 1.5,
					 .last_list_s = -1};
	struct kfi_ring_sample ring = {1024, 77, 3, 77};
	kf_sub_stats ss = {
	    .delivered = 70, .lag = 3, .missed = 4, .resyncs = 1};
	struct kfi_publisher_sample ps = {
	    .messages = 11, .bytes = 2048, .batches = 5, .drops = 1};

	(void)arg;
	kfi_mw_build_info(w);
	kfi_mw_watcher(w, "v1/pods", &ws);
	kfi_mw_resource(w, "v1/pods", &rs);
	kfi_mw_ring(w, "v1/pods", &ring);
	kfi_mw_subscriber(w, "v1/pods", "controller", &ss);
	kfi_mw_publisher(w, &ps);
	kfi_mw_publisher_stream(w, "pods", 77, 42);
}

/* Every line is a comment or a sample of the family whose HELP and TYPE
 * came just before it, and no family appears twice. */
static void
assert_well_formed(const char *text)
{
	char fam[128] = "", seen[8192] = " ";
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		char name[128];

		cr_assert_not_null(nl, "unterminated line");
		if (strncmp(p, "# HELP ", 7) == 0) {
			cr_assert_eq(sscanf(p + 7, "%127s", fam), 1);
			cr_assert_null(strstr(seen, fam), "twice: %s", fam);
			strcat(seen, fam);
			strcat(seen, " ");
		} else if (strncmp(p, "# TYPE ", 7) == 0) {
			cr_assert_eq(sscanf(p + 7, "%127s", name), 1);
			cr_assert_str_eq(name, fam);
		} else {
			size_t n = strcspn(p, "{ ");

			cr_assert_eq(n, strlen(fam), "%.*s", (int)(nl - p), p);
			cr_assert_eq(strncmp(p, fam, n), 0);
		}
		p = nl + 1;
	}
}

Test(metrics, kubefand_families_map_the_stats_structs)
{
	kfi_metrics *m;
	char *text;

	cr_assert_eq(kfi_metrics_alloc(&m), KF_OK);
	cr_assert_eq(kfi_metrics_declare_kubefand(m, "0.1.0"), KF_OK);
	cr_assert_eq(kfi_metrics_add_collector(m, collect_daemon, NULL), KF_OK);
	text = scrape(m);
	assert_well_formed(text);
	cr_assert_eq(kfi_metrics_dropped(m), 0);

	static const char *const want[] = {
	    "kubefan_build_info{version=\"0.1.0\"} 1\n",
	    "kubefan_resource_objects{resource=\"v1/pods\"} 42\n",
	    "kubefan_resource_ready{resource=\"v1/pods\"} 1\n",
	    "kubefan_watch_last_event_age_seconds{resource=\"v1/pods\"} "
	    "1.5\n",
	    "kubefan_watch_events_total{resource=\"v1/pods\","
	    "type=\"ADDED\"} 10\n",
	    "kubefan_watch_events_total{resource=\"v1/pods\","
	    "type=\"MODIFIED\"} 20\n",
	    "kubefan_watch_events_total{resource=\"v1/pods\","
	    "type=\"DELETED\"} 3\n",
	    "kubefan_watch_events_total{resource=\"v1/pods\","
	    "type=\"BOOKMARK\"} 6\n",
	    "kubefan_watch_events_total{resource=\"v1/pods\","
	    "type=\"ERROR\"} 1\n",
	    "kubefan_lists_total{resource=\"v1/pods\"} 2\n",
	    "kubefan_relists_total{resource=\"v1/pods\"} 1\n",
	    "kubefan_list_pages_total{resource=\"v1/pods\"} 5\n",
	    "kubefan_watch_gone_total{resource=\"v1/pods\"} 1\n",
	    "kubefan_watch_restarts_total{resource=\"v1/pods\"} 3\n",
	    "kubefan_watch_received_bytes_total{resource=\"v1/pods\"} 9000\n",
	    "kubefan_watch_errors_total{resource=\"v1/pods\",kind=\"http\"} "
	    "2\n",
	    "kubefan_watch_retries_total{resource=\"v1/pods\"} 7\n",
	    "kubefan_ring_capacity_events{resource=\"v1/pods\"} 1024\n",
	    "kubefan_ring_head_sequence{resource=\"v1/pods\"} 77\n",
	    "kubefan_ring_slowest_lag_events{resource=\"v1/pods\"} 3\n",
	    "kubefan_subscriber_delivered_events_total{resource=\"v1/pods\","
	    "subscriber=\"controller\"} 70\n",
	    "kubefan_subscriber_missed_events_total{resource=\"v1/pods\","
	    "subscriber=\"controller\"} 4\n",
	    "kubefan_subscriber_resyncs_total{resource=\"v1/pods\","
	    "subscriber=\"controller\"} 1\n",
	    "kubefan_subscriber_lag_events{resource=\"v1/pods\","
	    "subscriber=\"controller\"} 3\n",
	    "kubefan_publisher_messages_total 11\n",
	    "kubefan_publisher_sent_bytes_total 2048\n",
	    "kubefan_publisher_batches_total 5\n",
	    "kubefan_publisher_dropped_messages_total 1\n",
	    "kubefan_publisher_stream_sequence{stream=\"pods\"} 77\n",
	    "kubefan_publisher_stream_objects{stream=\"pods\"} 42\n",
	    "# TYPE kubefan_watch_events_total counter\n",
	    "# TYPE kubefan_resource_objects gauge\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert_not_null(strstr(text, want[i]), "missing %s in:\n%s",
				   want[i], text);
	/* A duration not known yet leaves its sample (and family) out. */
	cr_assert_null(strstr(text, "kubefan_list_last_duration_seconds"));
	free(text);
	kfi_metrics_free(m);
}

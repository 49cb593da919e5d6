/*
 * The metrics registry and the Prometheus text renderer.
 *
 * A scrape runs the collectors, which emit samples one at a time in any
 * family order; the text format wants each family's samples together under
 * its HELP and TYPE lines. So each family keeps a text buffer that is
 * filled during the scrape and emptied after it, and the render walks the
 * families in declaration order. The buffers keep their capacity, so a
 * steady scrape allocates only its result.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics.h"

struct mt_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

struct mt_family {
	char *name;
	char *help;
	enum kfi_metric_type type;
	struct mt_buf samples; /* this scrape's sample lines */
};

struct mt_collector {
	kfi_metrics_collect_fn fn;
	void *arg;
};

struct kfi_mw {
	kfi_metrics *m;
	size_t hint; /* the family found last: collectors emit in runs */
};

struct kfi_metrics {
	pthread_mutex_t mu; /* serialises scrapes */
	struct mt_family *fam;
	size_t nfam, capfam;
	struct mt_collector *col;
	size_t ncol, capcol;
	char *version; /* for kubefan_build_info */
	uint64_t dropped;
};

/* ---- text buffer ---- */

static bool
mt_reserve(struct mt_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void
mt_put(struct mt_buf *b, const char *s, size_t n)
{
	if (!mt_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
mt_puts(struct mt_buf *b, const char *s)
{
	mt_put(b, s, strlen(s));
}

static void
mt_printf(struct mt_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !mt_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Label values escape \, " and newline; HELP text escapes \ and newline. */
static void
mt_escaped(struct mt_buf *b, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			mt_puts(b, "\\\\");
		else if (*s == '\n')
			mt_puts(b, "\\n");
		else if (*s == '"' && quote)
			mt_puts(b, "\\\"");
		else
			mt_put(b, s, 1);
	}
}

/* ---- registry ---- */

kf_err
kfi_metrics_alloc(kfi_metrics **out)
{
	kfi_metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (m == NULL)
		return KF_ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	return KF_OK;
}

void
kfi_metrics_free(kfi_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfam; i++) {
		free(m->fam[i].name);
		free(m->fam[i].help);
		free(m->fam[i].samples.p);
	}
	free(m->fam);
	free(m->col);
	free(m->version);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static bool
mt_name_ok(const char *s, bool colon)
{
	if (*s == '\0' || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s != '\0'; s++) {
		bool alnum = (*s >= 'a' && *s <= 'z') ||
			     (*s >= 'A' && *s <= 'Z') ||
			     (*s >= '0' && *s <= '9') || *s == '_';

		if (!alnum && !(colon && *s == ':'))
			return false;
	}
	return true;
}

static bool
mt_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static struct mt_family *
mt_find(kfi_metrics *m, const char *name, size_t *hint)
{
	size_t h = *hint;

	if (h < m->nfam && strcmp(m->fam[h].name, name) == 0)
		return &m->fam[h];
	for (size_t i = 0; i < m->nfam; i++) {
		if (strcmp(m->fam[i].name, name) == 0) {
			*hint = i;
			return &m->fam[i];
		}
	}
	return NULL;
}

kf_err
kfi_metrics_declare(kfi_metrics *m, enum kfi_metric_type type, const char *name,
		    const char *help)
{
	struct mt_family *f;
	size_t hint = 0;

	if (name == NULL || help == NULL || !mt_name_ok(name, true) ||
	    (type != KFI_METRIC_COUNTER && type != KFI_METRIC_GAUGE))
		return KF_EINVAL;
	if (type == KFI_METRIC_COUNTER && !mt_ends_with(name, "_total"))
		return KF_EINVAL;
	if (mt_find(m, name, &hint) != NULL)
		return KF_EINVAL;
	if (m->nfam == m->capfam) {
		size_t cap = m->capfam ? m->capfam * 2 : 16;
		struct mt_family *p = realloc(m->fam, cap * sizeof(*p));

		if (p == NULL)
			return KF_ENOMEM;
		m->fam = p;
		m->capfam = cap;
	}
	f = &m->fam[m->nfam];
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help);
	if (f->name == NULL || f->help == NULL) {
		free(f->name);
		free(f->help);
		return KF_ENOMEM;
	}
	m->nfam++;
	return KF_OK;
}

kf_err
kfi_metrics_add_collector(kfi_metrics *m, kfi_metrics_collect_fn fn, void *arg)
{
	if (fn == NULL)
		return KF_EINVAL;
	if (m->ncol == m->capcol) {
		size_t cap = m->capcol ? m->capcol * 2 : 8;
		struct mt_collector *p = realloc(m->col, cap * sizeof(*p));

		if (p == NULL)
			return KF_ENOMEM;
		m->col = p;
		m->capcol = cap;
	}
	m->col[m->ncol++] = (struct mt_collector){fn, arg};
	return KF_OK;
}

uint64_t
kfi_metrics_dropped(kfi_metrics *m)
{
	return __atomic_load_n(&m->dropped, __ATOMIC_RELAXED);
}

/* ---- samples ---- */

static void
mt_drop(kfi_metrics *m)
{
	__atomic_add_fetch(&m->dropped, 1, __ATOMIC_RELAXED);
}

/* Write "name{labels} " into the family's buffer; false drops the sample
 * (and leaves the buffer as it was). */
static bool
mt_sample_head(kfi_mw *w, const char *name, const char *const *labels,
	       struct mt_family **fout)
{
	struct mt_family *f = mt_find(w->m, name, &w->hint);

	if (f == NULL) {
		mt_drop(w->m);
		return false;
	}
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (!mt_name_ok(labels[i], false) || labels[i + 1] == NULL ||
		    strncmp(labels[i], "__", 2) == 0) {
			mt_drop(w->m);
			return false;
		}
	}
	mt_puts(&f->samples, name);
	if (labels != NULL && labels[0] != NULL) {
		mt_puts(&f->samples, "{");
		for (size_t i = 0; labels[i] != NULL; i += 2) {
			if (i > 0)
				mt_puts(&f->samples, ",");
			mt_puts(&f->samples, labels[i]);
			mt_puts(&f->samples, "=\"");
			mt_escaped(&f->samples, labels[i + 1], true);
			mt_puts(&f->samples, "\"");
		}
		mt_puts(&f->samples, "}");
	}
	mt_puts(&f->samples, " ");
	*fout = f;
	return true;
}

void
kfi_mw_u64(kfi_mw *w, const char *name, const char *const *labels, uint64_t v)
{
	struct mt_family *f;

	if (mt_sample_head(w, name, labels, &f))
		mt_printf(&f->samples, "%llu\n", (unsigned long long)v);
}

/* The shortest of %.15g..%.17g that reads back as the same double. */
static void
mt_double(struct mt_buf *b, double v)
{
	char s[40];

	if (isnan(v)) {
		mt_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		mt_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	mt_puts(b, s);
}

void
kfi_mw_f64(kfi_mw *w, const char *name, const char *const *labels, double v)
{
	struct mt_family *f;

	if (!mt_sample_head(w, name, labels, &f))
		return;
	mt_double(&f->samples, v);
	mt_puts(&f->samples, "\n");
}

/* ---- render ---- */

kf_err
kfi_metrics_render(kfi_metrics *m, char **out, size_t *len)
{
	struct mt_buf b = {0};
	kfi_mw w = {.m = m};
	kf_err err = KF_OK;

	*out = NULL;
	*len = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->ncol; i++)
		m->col[i].fn(m->col[i].arg, &w);
	mt_reserve(&b, 4096);
	for (size_t i = 0; i < m->nfam; i++) {
		struct mt_family *f = &m->fam[i];

		if (f->samples.oom)
			b.oom = true;
		if (f->samples.len == 0)
			continue;
		mt_puts(&b, "# HELP ");
		mt_puts(&b, f->name);
		mt_puts(&b, " ");
		mt_escaped(&b, f->help, false);
		mt_puts(&b, "\n# TYPE ");
		mt_puts(&b, f->name);
		mt_puts(&b, f->type == KFI_METRIC_COUNTER ? " counter\n"
							  : " gauge\n");
		mt_put(&b, f->samples.p, f->samples.len);
	}
	for (size_t i = 0; i < m->nfam; i++) {
		m->fam[i].samples.len = 0;
		m->fam[i].samples.oom = false;
	}
	pthread_mutex_unlock(&m->mu);
	if (b.oom) {
		free(b.p);
		return KF_ENOMEM;
	}
	if (b.p == NULL) /* no family had a sample */
		err = mt_reserve(&b, 0) ? KF_OK : KF_ENOMEM;
	if (err == KF_OK) {
		b.p[b.len] = '\0';
		*out = b.p;
		*len = b.len;
	}
	return err;
}

/* ---- process metrics from /proc/self ---- */

struct mt_proc {
	double cpu_s, start_s;
	uint64_t vsize, rss;
	bool ok;
};

/* /proc/self/stat: after the ')' that closes comm, field 3 (state) on;
 * utime 14, stime 15, starttime 22, vsize 23, rss 24 (pages). */
static void
mt_proc_stat(struct mt_proc *p)
{
	char buf[1024], *s, *end;
	unsigned long long f[25] = {0};
	long tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	unsigned long long btime = 0;
	FILE *fp = fopen("/proc/self/stat", "re");
	size_t n;

	if (fp == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	if (s == NULL || s[1] != ' ' || tick <= 0 || page <= 0)
		return;
	s += 3; /* past ") " and the one-letter state */
	for (int i = 4; i <= 24; i++) {
		f[i] = strtoull(s, &end, 10);
		if (end == s)
			return;
		s = end;
	}
	fp = fopen("/proc/stat", "re");
	if (fp != NULL) {
		while (fgets(buf, sizeof(buf), fp) != NULL)
			if (sscanf(buf, "btime %llu", &btime) == 1)
				break;
		fclose(fp);
	}
	p->cpu_s = (double)(f[14] + f[15]) / (double)tick;
	p->start_s = (double)btime + (double)f[22] / (double)tick;
	p->vsize = f[23];
	p->rss = f[24] * (unsigned long long)page;
	p->ok = true;
}

/* Open fds: entries of /proc/self/fd, less the one reading it. */
static int64_t
mt_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int64_t n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static void
mt_process_collect(void *arg, kfi_mw *w)
{
	struct mt_proc p = {0};
	struct rlimit rl;
	int64_t fds = mt_open_fds();

	(void)arg;
	mt_proc_stat(&p);
	if (p.ok) {
		kfi_mw_f64(w, "process_cpu_seconds_total", NULL, p.cpu_s);
		kfi_mw_f64(w, "process_start_time_seconds", NULL, p.start_s);
		kfi_mw_u64(w, "process_resident_memory_bytes", NULL, p.rss);
		kfi_mw_u64(w, "process_virtual_memory_bytes", NULL, p.vsize);
	}
	if (fds >= 0)
		kfi_mw_u64(w, "process_open_fds", NULL, (uint64_t)fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		kfi_mw_u64(w, "process_max_fds", NULL, rl.rlim_cur);
}

static const struct mt_decl {
	enum kfi_metric_type type;
	const char *name, *help;
} mt_process_decls[] = {
    {KFI_METRIC_COUNTER, "process_cpu_seconds_total",
     "User and system CPU time spent, in seconds."},
    {KFI_METRIC_GAUGE, "process_start_time_seconds",
     "Start time of the process since the Unix epoch, in seconds."},
    {KFI_METRIC_GAUGE, "process_resident_memory_bytes",
     "Resident memory size, in bytes."},
    {KFI_METRIC_GAUGE, "process_virtual_memory_bytes",
     "Virtual memory size, in bytes."},
    {KFI_METRIC_GAUGE, "process_open_fds", "Open file descriptors."},
    {KFI_METRIC_GAUGE, "process_max_fds",
     "The soft limit on open file descriptors."},
};

static kf_err
mt_declare_all(kfi_metrics *m, const struct mt_decl *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kf_err err =
		    kfi_metrics_declare(m, d[i].type, d[i].name, d[i].help);

		if (err != KF_OK)
			return err;
	}
	return KF_OK;
}

kf_err
kfi_metrics_add_process(kfi_metrics *m)
{
	kf_err err = mt_declare_all(m, mt_process_decls,
				    sizeof(mt_process_decls) /
					sizeof(mt_process_decls[0]));

	if (err != KF_OK)
		return err;
	return kfi_metrics_add_collector(m, mt_process_collect, NULL);
}

/* ---- kubefand's families ---- */

static const struct mt_decl mt_kubefand_decls[] = {
    {KFI_METRIC_GAUGE, "kubefan_build_info",
     "Always 1; the version label names the running build."},
    /* per resource */
    {KFI_METRIC_GAUGE, "kubefan_resource_objects",
     "Objects in the resource's store."},
    {KFI_METRIC_GAUGE, "kubefan_resource_ready",
     "1 when the resource's store is synced and fresh, else 0."},
    {KFI_METRIC_GAUGE, "kubefan_watch_last_event_age_seconds",
     "Seconds since the last watch event or bookmark of the resource."},
    {KFI_METRIC_GAUGE, "kubefan_list_last_duration_seconds",
     "Duration of the resource's last complete list, in seconds."},
    {KFI_METRIC_COUNTER, "kubefan_watch_events_total",
     "Watch events received, by type."},
    {KFI_METRIC_COUNTER, "kubefan_lists_total",
     "Lists started (paged or streaming), the first included."},
    {KFI_METRIC_COUNTER, "kubefan_relists_total", "Lists after the first one."},
    {KFI_METRIC_COUNTER, "kubefan_list_pages_total", "List page requests."},
    {KFI_METRIC_COUNTER, "kubefan_watch_gone_total",
     "410 Gone answers (resource version too old), as status or event."},
    {KFI_METRIC_COUNTER, "kubefan_watch_restarts_total",
     "Watch requests after the first one."},
    {KFI_METRIC_COUNTER, "kubefan_watch_received_bytes_total",
     "Response body bytes received from the API server."},
    {KFI_METRIC_COUNTER, "kubefan_watch_errors_total",
     "Failures by kind: http, transport, parse, oversize, unknown_type, "
     "idle_timeout."},
    {KFI_METRIC_COUNTER, "kubefan_watch_retries_total",
     "Back-off waits before a retried request."},
    /* per ring */
    {KFI_METRIC_GAUGE, "kubefan_ring_capacity_events",
     "Slots in the resource's broadcast ring."},
    {KFI_METRIC_GAUGE, "kubefan_ring_head_sequence",
     "Sequence number of the newest event in the ring."},
    {KFI_METRIC_GAUGE, "kubefan_ring_slowest_lag_events",
     "Events the slowest subscriber of the ring has not read yet."},
    {KFI_METRIC_COUNTER, "kubefan_ring_published_events_total",
     "Events published into the ring."},
    /* per subscriber */
    {KFI_METRIC_COUNTER, "kubefan_subscriber_delivered_events_total",
     "Events returned to the subscriber."},
    {KFI_METRIC_COUNTER, "kubefan_subscriber_missed_events_total",
     "Events overwritten before the subscriber read them."},
    {KFI_METRIC_COUNTER, "kubefan_subscriber_resyncs_total",
     "Re-syncs of the subscriber after it lagged."},
    {KFI_METRIC_GAUGE, "kubefan_subscriber_lag_events",
     "Events published and not yet read by the subscriber."},
    /* remote publisher */
    {KFI_METRIC_COUNTER, "kubefan_publisher_messages_total",
     "Messages sent to remote subscribers, all kinds."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_sent_bytes_total",
     "Bytes sent to remote subscribers."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_batches_total",
     "Event batches sent to remote subscribers."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_dropped_messages_total",
     "Messages the publisher failed to send."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_heartbeats_total",
     "Heartbeats sent."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_resets_total",
     "RESET messages sent (a stream started over)."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_lagged_total",
     "Times a stream's feed fell behind its ring."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_requests_total",
     "Requests answered on the request socket."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_bad_requests_total",
     "Malformed requests on the request socket."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_snapshots_total",
     "Snapshots opened for remote subscribers."},
    {KFI_METRIC_COUNTER, "kubefan_publisher_stalled_requesters_total",
     "Request connections closed for not reading their replies."},
    {KFI_METRIC_GAUGE, "kubefan_publisher_stream_sequence",
     "Sequence number of the stream's last published event."},
    {KFI_METRIC_GAUGE, "kubefan_publisher_stream_objects",
     "Objects in the publisher's mirror of the stream."},
};

kf_err
kfi_metrics_declare_kubefand(kfi_metrics *m, const char *version)
{
	free(m->version);
	m->version = strdup(version != NULL ? version : "");
	if (m->version == NULL)
		return KF_ENOMEM;
	return mt_declare_all(m, mt_kubefand_decls,
			      sizeof(mt_kubefand_decls) /
				  sizeof(mt_kubefand_decls[0]));
}

void
kfi_mw_build_info(kfi_mw *w)
{
	const char *v = w->m->version != NULL ? w->m->version : "";

	kfi_mw_u64(w, "kubefan_build_info", KFI_LABELS("version", v), 1);
}

void
kfi_mw_watcher(kfi_mw *w, const char *r, const kf_watcher_stats *s)
{
	static const char ev[] = "kubefan_watch_events_total";
	static const char er[] = "kubefan_watch_errors_total";

	kfi_mw_u64(w, ev, KFI_LABELS("resource", r, "type", "ADDED"), s->added);
	kfi_mw_u64(w, ev, KFI_LABELS("resource", r, "type", "MODIFIED"),
		   s->modified);
	kfi_mw_u64(w, ev, KFI_LABELS("resource", r, "type", "DELETED"),
		   s->deleted);
	kfi_mw_u64(w, ev, KFI_LABELS("resource", r, "type", "BOOKMARK"),
		   s->bookmarks);
	kfi_mw_u64(w, ev, KFI_LABELS("resource", r, "type", "ERROR"),
		   s->errors);
	kfi_mw_u64(w, "kubefan_lists_total", KFI_LABELS("resource", r),
		   s->lists);
	kfi_mw_u64(w, "kubefan_relists_total", KFI_LABELS("resource", r),
		   s->relists);
	kfi_mw_u64(w, "kubefan_list_pages_total", KFI_LABELS("resource", r),
		   s->list_pages);
	kfi_mw_u64(w, "kubefan_watch_gone_total", KFI_LABELS("resource", r),
		   s->gone);
	kfi_mw_u64(w, "kubefan_watch_restarts_total", KFI_LABELS("resource", r),
		   s->watches > 0 ? s->watches - 1 : 0);
	kfi_mw_u64(w, "kubefan_watch_received_bytes_total",
		   KFI_LABELS("resource", r), s->bytes);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "http"),
		   s->http_errors);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "transport"),
		   s->transport_errors);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "parse"),
		   s->parse_errors);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "oversize"),
		   s->oversize_lines);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "unknown_type"),
		   s->unknown_types);
	kfi_mw_u64(w, er, KFI_LABELS("resource", r, "kind", "idle_timeout"),
		   s->idle_timeouts);
	kfi_mw_u64(w, "kubefan_watch_retries_total", KFI_LABELS("resource", r),
		   s->retries);
}

void
kfi_mw_resource(kfi_mw *w, const char *r, const struct kfi_resource_sample *s)
{
	kfi_mw_u64(w, "kubefan_resource_objects", KFI_LABELS("resource", r),
		   s->objects);
	kfi_mw_u64(w, "kubefan_resource_ready", KFI_LABELS("resource", r),
		   s->ready ? 1 : 0);
	if (s->last_event_age_s >= 0)
		kfi_mw_f64(w, "kubefan_watch_last_event_age_seconds",
			   KFI_LABELS("resource", r), s->last_event_age_s);
	if (s->last_list_s >= 0)
		kfi_mw_f64(w, "kubefan_list_last_duration_seconds",
			   KFI_LABELS("resource", r), s->last_list_s);
}

void
kfi_mw_ring(kfi_mw *w, const char *r, const struct kfi_ring_sample *s)
{
	kfi_mw_u64(w, "kubefan_ring_capacity_events", KFI_LABELS("resource", r),
		   s->capacity);
	kfi_mw_u64(w, "kubefan_ring_head_sequence", KFI_LABELS("resource", r),
		   s->head);
	kfi_mw_u64(w, "kubefan_ring_slowest_lag_events",
		   KFI_LABELS("resource", r), s->slowest_lag);
	kfi_mw_u64(w, "kubefan_ring_published_events_total",
		   KFI_LABELS("resource", r), s->published);
}

void
kfi_mw_subscriber(kfi_mw *w, const char *r, const char *sub,
		  const kf_sub_stats *s)
{
	kfi_mw_u64(w, "kubefan_subscriber_delivered_events_total",
		   KFI_LABELS("resource", r, "subscriber", sub), s->delivered);
	kfi_mw_u64(w, "kubefan_subscriber_missed_events_total",
		   KFI_LABELS("resource", r, "subscriber", sub), s->missed);
	kfi_mw_u64(w, "kubefan_subscriber_resyncs_total",
		   KFI_LABELS("resource", r, "subscriber", sub), s->resyncs);
	kfi_mw_u64(w, "kubefan_subscriber_lag_events",
		   KFI_LABELS("resource", r, "subscriber", sub), s->lag);
}

void
kfi_mw_publisher(kfi_mw *w, const struct kfi_publisher_sample *s)
{
	kfi_mw_u64(w, "kubefan_publisher_messages_total", NULL, s->messages);
	kfi_mw_u64(w, "kubefan_publisher_sent_bytes_total", NULL, s->bytes);
	kfi_mw_u64(w, "kubefan_publisher_batches_total", NULL, s->batches);
	kfi_mw_u64(w, "kubefan_publisher_dropped_messages_total", NULL,
		   s->drops);
	kfi_mw_u64(w, "kubefan_publisher_heartbeats_total", NULL,
		   s->heartbeats);
	kfi_mw_u64(w, "kubefan_publisher_resets_total", NULL, s->resets);
	kfi_mw_u64(w, "kubefan_publisher_lagged_total", NULL, s->lagged);
	kfi_mw_u64(w, "kubefan_publisher_requests_total", NULL, s->requests);
	kfi_mw_u64(w, "kubefan_publisher_bad_requests_total", NULL,
		   s->bad_requests);
	kfi_mw_u64(w, "kubefan_publisher_snapshots_total", NULL, s->snapshots);
	kfi_mw_u64(w, "kubefan_publisher_stalled_requesters_total", NULL,
		   s->stalled);
}

void
kfi_mw_publisher_stream(kfi_mw *w, const char *stream, uint64_t seq,
			uint64_t objects)
{
	kfi_mw_u64(w, "kubefan_publisher_stream_sequence",
		   KFI_LABELS("stream", stream), seq);
	kfi_mw_u64(w, "kubefan_publisher_stream_objects",
		   KFI_LABELS("stream", stream), objects);
}

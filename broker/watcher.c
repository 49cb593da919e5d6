/*
 * The watcher: list+watch as a state machine on the loop's thread.
 *
 * Theory. A watcher is always in one of two places: waiting until
 * `next_at` to send its next request, or with one request in flight. The
 * next request is a list when there is no resume point (rv empty) and a
 * watch from rv otherwise. A list is either paged (limit/continue) or
 * streamed (a watch with sendInitialEvents); either way its objects are
 * gathered aside and only handed out, as INIT, INIT_APPLY..., INIT_DONE,
 * once the list is whole, so a list that fails half way (expired continue,
 * cut connection) leaves nothing behind and the store keeps its contents.
 *
 * The resume point moves only forward and only from: a completed list's
 * metadata.resourceVersion, the object of an ADDED/MODIFIED/DELETED line,
 * and a BOOKMARK, in stream order. Never from list items (they carry their
 * own older versions) and never from an ERROR line (its Status has no
 * version worth resuming from, or an empty one).
 *
 * What ends a request, and what follows:
 *   - 200 watch closed by the server: watch again from rv at once.
 *   - 410 (HTTP, or in-stream ERROR acted on at that line): rv cleared,
 *     list again at once (a second 410 in a row backs off).
 *   - 410 on a continue page: the pages are dropped, the list restarts
 *     from page 1 with no token.
 *   - other HTTP errors, ERROR lines, transport errors, the idle deadline:
 *     back off (800 ms doubling to 30 s, jittered, at least Retry-After),
 *     then retry the same step from the same rv.
 *   - over-limit or unparsable lines: list again after a back-off; the
 *     object cannot be skipped without the store going wrong silently.
 *   - a streaming list refused (400/422/501/404) or ended without its
 *     initial-events-end bookmark: paged lists from then on (AUTO mode).
 *
 * Never back in time: lists carry no resourceVersion, so the API server
 * serves them as consistent reads at its newest version. As a guard, a
 * list whose version is older than the newest version already applied
 * (both decimal) is refused and retried; after stale_after_failures such
 * refusals it is taken, with a warning (the server really went back, e.g.
 * etcd restored from a backup).
 *
 * The HTTP status and content type are checked at the first body byte;
 * only a 200 with a JSON content type is read as a list or as events.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conn_int.h"
#include "decode.h"
#include "framer.h"
#include "log.h"
#include "watcher_int.h"

#define W_ERRBODY_MAX	 65536
#define W_SHORT_WATCH_MS 1000

enum w_phase { PH_NONE, PH_PAGE, PH_STREAM, PH_WATCH };

enum w_abort {
	AB_NONE,
	AB_GONE,     /* in-stream 410 */
	AB_ERROREV,  /* in-stream ERROR, not 410 */
	AB_OVERSIZE, /* line over max_line */
	AB_PARSE,    /* line that did not decode */
	AB_CTYPE,    /* 200 that is not JSON */
	AB_TOOBIG,   /* list page over max_body */
	AB_NOMEM,
	AB_HANDLED, /* already dealt with (a list refused as older) */
	AB_STOP,
};

#define ST_ADD(w, f, n) __atomic_fetch_add(&(w)->st.f, (n), __ATOMIC_RELAXED)

struct kf_watcher {
	/* settings, fixed at alloc */
	kf_conn *conn;
	kf_watcher_opts o;
	char *s_group, *s_version, *s_resource, *s_ns, *s_lsel, *s_fsel,
	    *s_kind;
	char *base_url;
	char what[256]; /* "configmaps in ns" for logs */
	kf_watcher_event_fn on_event;
	kf_watcher_health_fn on_health;
	void *arg;
	struct kfi_watcher_link link;

	/* protocol state: loop thread only */
	char rv[KFI_RV_MAX];	 /* resume point; "" = list next */
	char newest[KFI_RV_MAX]; /* newest version handed out */
	char *cont;		 /* continue token of the next page */
	kf_object **items;	 /* the list being gathered */
	size_t nitems, citems;
	bool stream_unsupported;
	bool stream_done; /* initial events ended on this request */
	bool synced;
	bool unhealthy;
	bool last_gone; /* the previous failure was a 410 */
	unsigned attempts;
	unsigned fails;	    /* failures in a row */
	unsigned backwards; /* lists refused in a row as older */
	int64_t healthy_since;
	int64_t list_start_us; /* first request of the list in progress */
	int64_t next_at;
	uint64_t rng;

	/* the request in flight */
	enum w_phase phase;
	CURL *h;
	struct curl_slist *hdrs;
	char curl_err[CURL_ERROR_SIZE];
	long status;
	bool head_checked;
	bool readable; /* 200 with a JSON content type */
	long retry_after_s;
	struct kfi_framer fr;
	char *body;
	size_t blen, bcap;
	enum w_abort ab;
	char ab_detail[1024];
	int64_t req_start, last_rx;
	uint64_t req_events;
	struct kfi_ingest ing;
	char kind_hint[128];

	/* shared with other threads */
	pthread_mutex_t mu;
	kf_err err;
	char detail[1024];
	char pub_rv[KFI_RV_MAX];
	kf_watcher_stats st;
};

static int64_t
w_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
kf_watcher_opts_init(kf_watcher_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = "v1";
}

struct kfi_watcher_link *
kfi_watcher_link(kf_watcher *w)
{
	return &w->link;
}

/* ---- small helpers ---- */

static char *
w_dup(const char *s)
{
	return (s != NULL && s[0] != '\0') ? strdup(s) : NULL;
}

static void
w_set_rv(kf_watcher *w, const char *rv)
{
	snprintf(w->rv, sizeof(w->rv), "%s", rv);
	if (rv[0] != '\0' &&
	    (w->newest[0] == '\0' || kfi_rv_compare(rv, w->newest) != -1))
		snprintf(w->newest, sizeof(w->newest), "%s", rv);
	pthread_mutex_lock(&w->mu);
	snprintf(w->pub_rv, sizeof(w->pub_rv), "%s", rv);
	pthread_mutex_unlock(&w->mu);
}

static void w_error(kf_watcher *w, kf_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
w_error(kf_watcher *w, kf_err e, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->mu);
	w->err = e;
	va_start(ap, fmt);
	vsnprintf(w->detail, sizeof(w->detail), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&w->mu);
}

static uint64_t
w_rand(kf_watcher *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static void
w_emit(kf_watcher *w, kf_event_type t, unsigned flags, kf_object *obj)
{
	kf_event ev = {.type = t, .flags = flags, .obj = obj};

	if (w->on_event != NULL)
		w->on_event(w->arg, &ev);
}

static void
w_drop_items(kf_watcher *w)
{
	for (size_t i = 0; i < w->nitems; i++)
		kf_object_unref(w->items[i]);
	w->nitems = 0;
}

static kf_err
w_keep_item(void *arg, kf_object *obj)
{
	kf_watcher *w = arg;
	kf_object **ni;

	if (w->nitems == w->citems) {
		size_t nc = w->citems ? w->citems * 2 : 256;

		ni = realloc(w->items, nc * sizeof(*ni));
		if (ni == NULL) {
			kf_object_unref(obj);
			return KF_ENOMEM;
		}
		w->items = ni;
		w->citems = nc;
	}
	w->items[w->nitems++] = obj;
	return KF_OK;
}

/* Forget the resume point and any partial list: the next step lists. */
static void
w_relist(kf_watcher *w)
{
	w_drop_items(w);
	free(w->cont);
	w->cont = NULL;
	w_set_rv(w, "");
}

static void
w_health(kf_watcher *w, bool healthy, const char *why)
{
	if (healthy == !w->unhealthy)
		return;
	w->unhealthy = !healthy;
	if (healthy)
		kfi_log(KF_LOG_NOTICE, "KF-WATCH-HEALTHY",
			"%s: data flows again", w->what);
	else
		kfi_log(KF_LOG_WARNING, "KF-WATCH-STALE", "%s: %s", w->what,
			why);
	if (w->on_health != NULL)
		w->on_health(w->arg, healthy, healthy ? "" : why);
}

/* Data arrived: the watch is live. */
static void
w_fresh(kf_watcher *w)
{
	w->fails = 0;
	w->last_gone = false;
	w_health(w, true, NULL);
}

static void
w_schedule(kf_watcher *w, int64_t now, int64_t delay)
{
	w->next_at = now + delay;
}

/* A failure: count it, maybe report stale, and wait before the retry. */
static void
w_backoff(kf_watcher *w, int64_t now, long retry_after_s, bool unhealthy_now)
{
	uint64_t d;
	int64_t ra;

	w->fails++;
	if (w->healthy_since != 0 &&
	    now - w->healthy_since >= (int64_t)w->o.backoff_reset_ms)
		w->attempts = 0;
	w->healthy_since = 0;
	d = w->o.backoff_initial_ms;
	for (unsigned i = 0; i < w->attempts && d < w->o.backoff_max_ms; i++)
		d *= 2;
	if (d > w->o.backoff_max_ms)
		d = w->o.backoff_max_ms;
	if (w->attempts < 64)
		w->attempts++;
	d = d / 2 + w_rand(w) % (d / 2 + 1); /* jitter: [d/2, d] */
	ra = retry_after_s > 0 ? retry_after_s * 1000 : 0;
	if (ra > 600000)
		ra = 600000;
	if ((int64_t)d < ra)
		d = (uint64_t)ra;
	ST_ADD(w, retries, 1);
	if (unhealthy_now || w->fails >= w->o.stale_after_failures) {
		char why[1024];

		pthread_mutex_lock(&w->mu);
		snprintf(why, sizeof(why), "%s", w->detail);
		pthread_mutex_unlock(&w->mu);
		w_health(w, false, why);
	}
	w_schedule(w, now, (int64_t)d);
}

/* After a 410: at once, unless the previous failure was a 410 too. */
static void
w_gone(kf_watcher *w, int64_t now)
{
	ST_ADD(w, gone, 1);
	if (w->last_gone) {
		w_backoff(w, now, 0, false);
	} else {
		w->fails++;
		w_schedule(w, now, 0);
	}
	w->last_gone = true;
}

/* ---- a completed list ---- */

static bool
w_list_done(kf_watcher *w, const char *rv, int64_t now)
{
	if (w->newest[0] != '\0' && kfi_rv_compare(rv, w->newest) == -1) {
		if (++w->backwards < w->o.stale_after_failures) {
			kfi_log(KF_LOG_WARNING, "KF-WATCH-BACKWARDS",
				"%s: list at %s is older than %s already "
				"seen; listing again",
				w->what, rv, w->newest);
			w_error(w, KF_EPROTO,
				"list at resourceVersion %s is older than %s",
				rv, w->newest);
			w_relist(w);
			w_backoff(w, now, 0, false);
			return false;
		}
		kfi_log(KF_LOG_WARNING, "KF-WATCH-BACKWARDS",
			"%s: taking list at %s although %s was seen", w->what,
			rv, w->newest);
		w->newest[0] = '\0';
	}
	w->backwards = 0;
	if (w->list_start_us != 0) {
		int64_t us = w_now_us() - w->list_start_us;

		__atomic_store_n(&w->st.last_list_us, us > 0 ? (uint64_t)us : 1,
				 __ATOMIC_RELAXED);
	}
	w_emit(w, KF_EV_INIT, 0, NULL);
	for (size_t i = 0; i < w->nitems; i++)
		w_emit(w, KF_EV_INIT_APPLY, 0, w->items[i]);
	w_emit(w, KF_EV_INIT_DONE, 0, NULL);
	kfi_log(KF_LOG_DEBUG, "KF-WATCH-LISTED", "%s: %zu objects at %s",
		w->what, w->nitems, rv);
	w_drop_items(w);
	w_set_rv(w, rv);
	w->synced = true;
	w_fresh(w);
	return true;
}

/* ---- the stream ---- */

/* For the age of the last event: the time its chunk arrived (no clock
 * read per line). */
static void
w_event_seen(kf_watcher *w)
{
	__atomic_store_n(&w->st.last_event_ms, (uint64_t)w->last_rx,
			 __ATOMIC_RELAXED);
}

static int
w_line(void *arg, const char *line, size_t len)
{
	kf_watcher *w = arg;
	struct kfi_wevent ev;
	char err[256];
	kf_err e;

	if (line == NULL) {
		ST_ADD(w, oversize_lines, 1);
		kfi_log(KF_LOG_ERR, "KF-WATCH-OVERSIZE",
			"%s: watch line over %zu bytes; discarding it and "
			"listing again",
			w->what, w->o.max_line);
		w->ab = AB_OVERSIZE;
		snprintf(w->ab_detail, sizeof(w->ab_detail),
			 "watch line over the limit of %zu bytes (%zu seen)",
			 w->o.max_line, len);
		return 1;
	}
	e = kfi_decode_event(line, len, &w->ing, err, sizeof(err), &ev);
	if (e != KF_OK) {
		ST_ADD(w, parse_errors, 1);
		kfi_log(KF_LOG_ERR, "KF-WATCH-PARSE", "%s: %s", w->what, err);
		w->ab = e == KF_ENOMEM ? AB_NOMEM : AB_PARSE;
		snprintf(w->ab_detail, sizeof(w->ab_detail),
			 "bad watch line: %s", err);
		return 1;
	}
	switch (ev.type) {
	case KFI_W_ADDED:
	case KFI_W_MODIFIED:
	case KFI_W_DELETED:
		if (ev.type == KFI_W_ADDED)
			ST_ADD(w, added, 1);
		else if (ev.type == KFI_W_MODIFIED)
			ST_ADD(w, modified, 1);
		else
			ST_ADD(w, deleted, 1);
		w_event_seen(w);
		w->req_events++;
		if (w->phase == PH_STREAM && !w->stream_done) {
			if (w_keep_item(w, ev.obj) != KF_OK) {
				w->ab = AB_NOMEM;
				return 1;
			}
			break;
		}
		w_emit(w, ev.type == KFI_W_DELETED ? KF_EV_DELETE : KF_EV_APPLY,
		       0, ev.obj);
		kf_object_unref(ev.obj);
		w_set_rv(w, ev.rv);
		w_fresh(w);
		break;
	case KFI_W_BOOKMARK:
		ST_ADD(w, bookmarks, 1);
		w_event_seen(w);
		w->req_events++;
		if (w->phase == PH_STREAM && !w->stream_done) {
			if (!ev.initial_events_end)
				break;
			w->stream_done = true;
			ST_ADD(w, stream_lists, 1);
			if (!w_list_done(w, ev.rv, kfi_now_ms())) {
				w->ab = AB_HANDLED; /* and scheduled */
				return 1;
			}
			break;
		}
		w_set_rv(w, ev.rv);
		w_fresh(w);
		break;
	case KFI_W_ERROR:
		ST_ADD(w, errors, 1);
		w->ab = ev.status.code == 410 ? AB_GONE : AB_ERROREV;
		snprintf(w->ab_detail, sizeof(w->ab_detail),
			 "ERROR event: code %ld, reason \"%s\": %s",
			 ev.status.code, ev.status.reason, ev.status.message);
		return 1;
	case KFI_W_UNKNOWN:
		ST_ADD(w, unknown_types, 1);
		kfi_log(KF_LOG_DEBUG, "KF-WATCH-UNKNOWN-TYPE",
			"%s: skipped an event of type \"%s\"", w->what,
			ev.type_name);
		break;
	}
	return __atomic_load_n(&w->link.want_stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}

/* ---- libcurl callbacks ---- */

static void
w_head(kf_watcher *w)
{
	char *ct = NULL;

	w->head_checked = true;
	curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
	curl_easy_getinfo(w->h, CURLINFO_CONTENT_TYPE, &ct);
	w->readable = w->status == 200 && ct != NULL &&
		      strncasecmp(ct, "application/json", 16) == 0;
	if (w->readable) {
		w->fails = 0;
		if (w->healthy_since == 0)
			w->healthy_since = w->last_rx;
	}
	if (w->status == 200 && !w->readable) {
		w->ab = AB_CTYPE;
		snprintf(w->ab_detail, sizeof(w->ab_detail),
			 "HTTP 200 with content type \"%s\", not JSON",
			 ct ? ct : "(none)");
	}
}

static bool
w_append(kf_watcher *w, const char *p, size_t n, size_t max)
{
	char *nb;
	size_t nc;

	if (w->blen + n > max)
		return false;
	if (w->blen + n > w->bcap) {
		nc = w->bcap ? w->bcap : 65536;
		while (nc < w->blen + n)
			nc *= 2;
		nb = realloc(w->body, nc);
		if (nb == NULL)
			return false;
		w->body = nb;
		w->bcap = nc;
	}
	memcpy(w->body + w->blen, p, n);
	w->blen += n;
	return true;
}

static size_t
w_write(char *p, size_t size, size_t n, void *ud)
{
	kf_watcher *w = ud;
	size_t len = size * n;

	if (__atomic_load_n(&w->link.want_stop, __ATOMIC_ACQUIRE)) {
		w->ab = AB_STOP;
		return 0;
	}
	ST_ADD(w, bytes, len);
	w->last_rx = kfi_now_ms();
	if (!w->head_checked)
		w_head(w);
	if (w->ab != AB_NONE)
		return 0;
	if (!w->readable) { /* an error body: keep its start for the text */
		if (w->blen < W_ERRBODY_MAX)
			w_append(w, p,
				 len < W_ERRBODY_MAX - w->blen
				     ? len
				     : W_ERRBODY_MAX - w->blen,
				 W_ERRBODY_MAX);
		return len;
	}
	if (w->phase == PH_PAGE) {
		if (!w_append(w, p, len, w->o.max_body)) {
			w->ab = AB_TOOBIG;
			snprintf(w->ab_detail, sizeof(w->ab_detail),
				 "list page over the limit of %zu bytes",
				 w->o.max_body);
			return 0;
		}
		return len;
	}
	if (kfi_framer_feed(&w->fr, p, len, w_line, w) != 0) {
		if (w->ab == AB_NONE)
			w->ab = AB_STOP;
		return 0;
	}
	return len;
}

static size_t
w_header(char *p, size_t size, size_t n, void *ud)
{
	kf_watcher *w = ud;
	size_t len = size * n;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		w->retry_after_s = 0; /* a new header block */
	} else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char tmp[32];
		size_t k =
		    len - 12 < sizeof(tmp) - 1 ? len - 12 : sizeof(tmp) - 1;
		char *end;
		long v;

		memcpy(tmp, p + 12, k);
		tmp[k] = '\0';
		v = strtol(tmp, &end, 10);
		if (end != tmp && v > 0)
			w->retry_after_s = v;
	}
	return len;
}

/* ---- starting a request ---- */

struct w_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
wb_add(struct w_buf *b, const char *s, size_t n)
{
	char *np;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 256;

		while (nc < b->len + n + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
wb_str(struct w_buf *b, const char *s)
{
	wb_add(b, s, strlen(s));
}

/* Append &key=value with value percent-encoded. */
static void
wb_param(struct w_buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	char enc[3] = {'%'};

	wb_str(b, b->len && strchr(b->p, '?') ? "&" : "?");
	wb_str(b, key);
	wb_str(b, "=");
	for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		    *s == '.' || *s == '~') {
			wb_add(b, (const char *)s, 1);
		} else {
			enc[1] = hex[*s >> 4];
			enc[2] = hex[*s & 15];
			wb_add(b, enc, 3);
		}
	}
}

static char *
w_url(kf_watcher *w, enum w_phase ph)
{
	struct w_buf b = {0};
	char num[32];

	wb_str(&b, w->base_url);
	if (ph == PH_PAGE) {
		snprintf(num, sizeof(num), "%u", w->o.page_size);
		wb_param(&b, "limit", num);
		if (w->cont != NULL)
			wb_param(&b, "continue", w->cont);
	} else {
		wb_param(&b, "watch", "1");
		if (ph == PH_STREAM) {
			wb_param(&b, "sendInitialEvents", "true");
			wb_param(&b, "resourceVersionMatch", "NotOlderThan");
		} else {
			wb_param(&b, "resourceVersion", w->rv);
		}
		wb_param(&b, "allowWatchBookmarks", "true");
		snprintf(num, sizeof(num), "%u", w->o.timeout_seconds);
		wb_param(&b, "timeoutSeconds", num);
	}
	if (w->s_lsel != NULL)
		wb_param(&b, "labelSelector", w->s_lsel);
	if (w->s_fsel != NULL)
		wb_param(&b, "fieldSelector", w->s_fsel);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static void
w_request_free(kf_watcher *w, CURLM *m)
{
	if (w->h != NULL) {
		if (m != NULL)
			curl_multi_remove_handle(m, w->h);
		curl_easy_cleanup(w->h);
		w->h = NULL;
	}
	curl_slist_free_all(w->hdrs);
	w->hdrs = NULL;
	w->blen = 0;
	if (w->bcap > (1u << 20)) { /* give a big list page back */
		free(w->body);
		w->body = NULL;
		w->bcap = 0;
	}
	kfi_framer_reset(&w->fr);
	w->phase = PH_NONE;
}

static void
w_begin(kf_watcher *w, CURLM *m, int64_t now)
{
	enum w_phase ph;
	char err[256] = "";
	char *url;
	struct curl_slist *nh;
	kf_err e;

	if (w->rv[0] != '\0')
		ph = PH_WATCH;
	else if (w->o.list_mode == KF_LIST_STREAM ||
		 (w->o.list_mode == KF_LIST_AUTO && !w->stream_unsupported &&
		  w->cont == NULL && w->nitems == 0))
		ph = PH_STREAM;
	else
		ph = PH_PAGE;
	url = w_url(w, ph);
	w->h = curl_easy_init();
	if (url == NULL || w->h == NULL) {
		free(url);
		w_error(w, KF_ENOMEM, "out of memory starting a request");
		w_request_free(w, NULL);
		w_backoff(w, now, 0, false);
		return;
	}
	nh = curl_slist_append(NULL, "Accept: application/json");
	w->hdrs = nh;
	e = kfi_conn_apply(w->conn, w->h, &w->hdrs, err, sizeof(err));
	if (nh == NULL || e != KF_OK) {
		free(url);
		w_error(w, e != KF_OK ? e : KF_ENOMEM, "credentials for %s: %s",
			w->what, err);
		kfi_log(KF_LOG_ERR, "KF-WATCH-CREDENTIALS", "%s: %s", w->what,
			err);
		w_request_free(w, NULL);
		w_backoff(w, now, 0, true);
		return;
	}
	curl_easy_setopt(w->h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, w_write);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->h, CURLOPT_HEADERFUNCTION, w_header);
	curl_easy_setopt(w->h, CURLOPT_HEADERDATA, w);
	curl_easy_setopt(w->h, CURLOPT_PRIVATE, w);
	curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, w->curl_err);
	curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->h, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->h, CURLOPT_USERAGENT, "kubefan/0.1");
	w->curl_err[0] = '\0';
	w->phase = ph;
	w->status = 0;
	w->head_checked = false;
	w->readable = false;
	w->retry_after_s = 0;
	w->ab = AB_NONE;
	w->ab_detail[0] = '\0';
	w->req_start = now;
	w->last_rx = now;
	w->req_events = 0;
	w->stream_done = false;
	w->blen = 0;
	kfi_framer_reset(&w->fr);
	if (ph == PH_WATCH) {
		ST_ADD(w, watches, 1);
	} else {
		if (ph == PH_STREAM || w->cont == NULL) {
			if (__atomic_fetch_add(&w->st.lists, 1,
					       __ATOMIC_RELAXED) > 0)
				ST_ADD(w, relists, 1);
			w->list_start_us = w_now_us();
		}
		if (ph == PH_PAGE)
			ST_ADD(w, list_pages, 1);
	}
	if (curl_multi_add_handle(m, w->h) != CURLM_OK) {
		w_error(w, KF_ECURL, "curl_multi_add_handle failed");
		w_request_free(w, NULL);
		w_backoff(w, now, 0, false);
	}
}

/* ---- a request ended ---- */

static void
w_http_error(kf_watcher *w, enum w_phase ph, int64_t now)
{
	struct kfi_status st;
	char text[640];
	long code = w->status;

	ST_ADD(w, http_errors, 1);
	if (kfi_decode_status(w->body, w->blen, &st) == KF_OK) {
		snprintf(text, sizeof(text), "reason \"%s\": %s", st.reason,
			 st.message);
	} else {
		size_t k = w->blen < 200 ? w->blen : 200;

		snprintf(text, sizeof(text), "body: %.*s", (int)k,
			 w->body ? w->body : "");
		for (char *c = text; *c; c++)
			if (*c == '\n' || *c == '\r' || (unsigned char)*c < 32)
				*c = ' ';
	}
	w_error(w,
		code == 410		       ? KF_EGONE
		: (code == 401 || code == 403) ? KF_EAUTH
					       : KF_EHTTP,
		"%s %s: HTTP %ld, %s", w->what,
		ph == PH_WATCH ? "watch" : "list", code, text);
	kfi_log(KF_LOG_WARNING, code == 410 ? "KF-WATCH-GONE" : "KF-WATCH-HTTP",
		"%s %s: HTTP %ld, %s", w->what,
		ph == PH_WATCH ? "watch" : "list", code, text);
	if (code == 410) {
		w_relist(w); /* also drops a paged list's token and pages */
		w_gone(w, now);
		return;
	}
	if (ph == PH_STREAM && w->o.list_mode == KF_LIST_AUTO &&
	    (code == 400 || code == 404 || code == 422 || code == 501)) {
		w->stream_unsupported = true;
		kfi_log(KF_LOG_NOTICE, "KF-WATCH-STREAM-FALLBACK",
			"%s: streaming list refused (HTTP %ld); using paged "
			"lists",
			w->what, code);
		w_schedule(w, now, 0);
		return;
	}
	if (code == 401)
		kfi_conn_invalidate(w->conn);
	w_backoff(w, now, w->retry_after_s, code == 401 || code == 403);
}

static void
w_page_done(kf_watcher *w, int64_t now)
{
	struct kfi_list_meta meta;
	char err[512] = "";
	kf_err e;

	e = kfi_decode_list(w->body, w->blen, &w->ing, w_keep_item, w, err,
			    sizeof(err), &meta);
	if (meta.bad_items > 0) {
		ST_ADD(w, parse_errors, meta.bad_items);
		kfi_log(KF_LOG_ERR, "KF-WATCH-PARSE",
			"%s: %zu list items skipped: %s", w->what,
			meta.bad_items, err);
	}
	if (e != KF_OK) {
		ST_ADD(w, parse_errors, 1);
		w_error(w, e, "%s list: %s", w->what, err);
		kfi_log(KF_LOG_ERR, "KF-WATCH-PARSE", "%s list: %s", w->what,
			err);
		w_relist(w);
		w_backoff(w, now, 0, false);
		return;
	}
	if (w->o.kind == NULL && meta.kind[0] != '\0' &&
	    w->kind_hint[0] == '\0') {
		size_t kl = strlen(meta.kind);

		snprintf(w->kind_hint, sizeof(w->kind_hint), "%.*s",
			 (int)(kl > 4 ? kl - 4 : kl), meta.kind);
		w->ing.kind_hint = w->kind_hint;
	}
	free(w->cont);
	w->cont = meta.cont;
	if (w->cont != NULL) {
		w_schedule(w, now, 0); /* the next page */
		return;
	}
	if (w_list_done(w, meta.rv, now))
		w_schedule(w, now, 0);
}

static void
w_finish(kf_watcher *w, CURLM *m, CURLcode rc, bool idle, int64_t now)
{
	enum w_phase ph = w->phase;
	enum w_abort ab = w->ab;

	if (w->h != NULL && !w->head_checked && rc == CURLE_OK)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
	if (ab == AB_NONE && rc == CURLE_OK && w->status == 200 &&
	    ph != PH_PAGE) /* a last line without a newline */
		kfi_framer_finish(&w->fr, w_line, w);
	ab = w->ab;
	if (w->h != NULL) {
		curl_multi_remove_handle(m, w->h);
		curl_easy_cleanup(w->h);
		w->h = NULL;
	}
	if (ph == PH_STREAM && !w->stream_done)
		w_drop_items(w);

	if (ab == AB_STOP || ab == AB_HANDLED) {
		/* stopped, or a list refused as older (already scheduled) */
	} else if (idle) {
		ST_ADD(w, idle_timeouts, 1);
		ST_ADD(w, transport_errors, 1);
		w_error(w, KF_ETIMEDOUT,
			"%s: no data for %u ms; connection dropped", w->what,
			w->o.idle_ms);
		kfi_log(KF_LOG_WARNING, "KF-WATCH-IDLE",
			"%s: no data for %u ms; dropping the connection and "
			"resuming",
			w->what, w->o.idle_ms);
		w_health(w, false, w->detail);
		w_backoff(w, now, 0, false);
		if (w->fails == 1)
			w_schedule(w, now, 0); /* the first one: at once */
	} else if (ab == AB_GONE) {
		w_error(w, KF_EGONE, "%s watch from %s: %s", w->what, w->rv,
			w->ab_detail);
		kfi_log(KF_LOG_NOTICE, "KF-WATCH-GONE", "%s: %s", w->what,
			w->ab_detail);
		w_relist(w);
		w_gone(w, now);
	} else if (ab != AB_NONE) {
		kf_err e = ab == AB_ERROREV ? KF_EHTTP
			   : ab == AB_CTYPE ? KF_EPROTO
			   : ab == AB_NOMEM ? KF_ENOMEM
			   : ab == AB_PARSE ? KF_EPARSE
					    : KF_ETOOBIG;

		w_error(w, e, "%s: %s", w->what, w->ab_detail);
		if (ab == AB_ERROREV)
			kfi_log(KF_LOG_WARNING, "KF-WATCH-ERROR-EVENT",
				"%s: %s", w->what, w->ab_detail);
		if (ab == AB_CTYPE) {
			ST_ADD(w, http_errors, 1);
			kfi_log(KF_LOG_WARNING, "KF-WATCH-HTTP", "%s: %s",
				w->what, w->ab_detail);
		}
		if (ab == AB_OVERSIZE || ab == AB_PARSE || ab == AB_TOOBIG ||
		    ab == AB_NOMEM || ph == PH_STREAM)
			w_relist(w);
		w_backoff(w, now, 0, false);
	} else if (rc != CURLE_OK) {
		ST_ADD(w, transport_errors, 1);
		w_error(w, KF_ECURL, "%s %s: %s", w->what,
			ph == PH_WATCH ? "watch" : "list",
			w->curl_err[0] ? w->curl_err : curl_easy_strerror(rc));
		kfi_log(KF_LOG_WARNING, "KF-WATCH-CURL", "%s", w->detail);
		w_backoff(w, now, 0, false);
	} else if (w->status != 200) {
		w_http_error(w, ph, now);
	} else if (ph == PH_PAGE) {
		w_page_done(w, now);
	} else if (ph == PH_STREAM && !w->stream_done) {
		if (w->o.list_mode == KF_LIST_AUTO) {
			w->stream_unsupported = true;
			kfi_log(KF_LOG_NOTICE, "KF-WATCH-STREAM-FALLBACK",
				"%s: streaming list ended without its "
				"initial-events-end bookmark; using paged "
				"lists",
				w->what);
			w_schedule(w, now, 0);
		} else {
			w_error(w, KF_EPROTO,
				"%s: streaming list ended before its end",
				w->what);
			w_backoff(w, now, 0, false);
		}
	} else if (w->req_events == 0 &&
		   now - w->req_start < W_SHORT_WATCH_MS) {
		/* Closed at once with nothing: do not spin on it. */
		w_backoff(w, now, 0, false);
	} else {
		w_schedule(w, now, 0); /* timeoutSeconds passed: resume */
	}
	w_request_free(w, NULL);
}

/* ---- the loop's calls ---- */

void
kfi_watcher_tick(kf_watcher *w, CURLM *m, int64_t now)
{
	if (w->h == NULL) {
		if (now >= w->next_at)
			w_begin(w, m, now);
		return;
	}
	if (now - w->last_rx >= (int64_t)w->o.idle_ms)
		w_finish(w, m, CURLE_OK, true, now);
}

int64_t
kfi_watcher_deadline(kf_watcher *w)
{
	if (w->h == NULL)
		return w->next_at;
	return w->last_rx + w->o.idle_ms;
}

void
kfi_watcher_done(kf_watcher *w, CURLM *m, CURLcode rc, int64_t now)
{
	w_finish(w, m, rc, false, now);
}

void
kfi_watcher_release(kf_watcher *w, CURLM *m)
{
	w_request_free(w, m);
	w_drop_items(w);
}

/* ---- public calls ---- */

static kf_err
w_build_url(kf_watcher *w)
{
	struct w_buf b = {0};

	wb_str(&b, kf_conn_server(w->conn));
	if (w->s_group == NULL) {
		wb_str(&b, "/api/");
	} else {
		wb_str(&b, "/apis/");
		wb_str(&b, w->s_group);
		wb_str(&b, "/");
	}
	wb_str(&b, w->s_version);
	if (w->s_ns != NULL) {
		wb_str(&b, "/namespaces/");
		wb_str(&b, w->s_ns);
	}
	wb_str(&b, "/");
	wb_str(&b, w->s_resource);
	if (b.oom) {
		free(b.p);
		return KF_ENOMEM;
	}
	w->base_url = b.p;
	return KF_OK;
}

static bool
w_name_ok(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

kf_err
kf_watcher_alloc(kf_conn *conn, const kf_watcher_opts *opts, kf_watcher **out)
{
	kf_watcher *w;

	*out = NULL;
	if (conn == NULL || opts == NULL || !w_name_ok(opts->version) ||
	    !w_name_ok(opts->resource) ||
	    (opts->group && opts->group[0] && !w_name_ok(opts->group)) ||
	    (opts->namespace_ && opts->namespace_[0] &&
	     !w_name_ok(opts->namespace_)))
		return KF_EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return KF_ENOMEM;
	w->conn = conn;
	w->o = *opts;
	w->s_group = w_dup(opts->group);
	w->s_version = w_dup(opts->version);
	w->s_resource = w_dup(opts->resource);
	w->s_ns = w_dup(opts->namespace_);
	w->s_lsel = w_dup(opts->label_selector);
	w->s_fsel = w_dup(opts->field_selector);
	w->s_kind = w_dup(opts->kind);
	w->o.group = w->s_group;
	w->o.version = w->s_version;
	w->o.resource = w->s_resource;
	w->o.namespace_ = w->s_ns;
	w->o.label_selector = w->s_lsel;
	w->o.field_selector = w->s_fsel;
	w->o.kind = w->s_kind;
	if (w->o.page_size == 0)
		w->o.page_size = 500;
	if (w->o.timeout_seconds == 0)
		w->o.timeout_seconds = 290;
	if (w->o.idle_ms == 0)
		w->o.idle_ms = (w->o.timeout_seconds + 15) * 1000u;
	if (w->o.max_line == 0)
		w->o.max_line = 16u << 20;
	if (w->o.max_body == 0)
		w->o.max_body = (size_t)512 << 20;
	if (w->o.backoff_initial_ms == 0)
		w->o.backoff_initial_ms = 800;
	if (w->o.backoff_max_ms == 0)
		w->o.backoff_max_ms = 30000;
	if (w->o.backoff_max_ms < w->o.backoff_initial_ms)
		w->o.backoff_max_ms = w->o.backoff_initial_ms;
	if (w->o.backoff_reset_ms == 0)
		w->o.backoff_reset_ms = 120000;
	if (w->o.stale_after_failures == 0)
		w->o.stale_after_failures = 3;
	if (w->s_kind != NULL)
		snprintf(w->kind_hint, sizeof(w->kind_hint), "%s", w->s_kind);
	w->ing.kind_hint = w->kind_hint[0] ? w->kind_hint : NULL;
	w->ing.transform = opts->transform;
	w->ing.transform_arg = opts->transform_arg;
	snprintf(w->what, sizeof(w->what), "%s%s%s%s%s", w->s_resource,
		 w->s_group ? "." : "", w->s_group ? w->s_group : "",
		 w->s_ns ? " in " : "", w->s_ns ? w->s_ns : "");
	w->rng = (uint64_t)kfi_now_ms() * 2654435761u ^ (uintptr_t)w;
	if (w->rng == 0)
		w->rng = 88172645463325252ull;
	kfi_framer_init(&w->fr, w->o.max_line);
	pthread_mutex_init(&w->mu, NULL);
	if (w->s_version == NULL || w->s_resource == NULL ||
	    (opts->group && opts->group[0] && !w->s_group) ||
	    (opts->label_selector && opts->label_selector[0] && !w->s_lsel) ||
	    (opts->field_selector && opts->field_selector[0] && !w->s_fsel) ||
	    (opts->namespace_ && opts->namespace_[0] && !w->s_ns) ||
	    w_build_url(w) != KF_OK) {
		kf_watcher_free(w);
		return KF_ENOMEM;
	}
	*out = w;
	return KF_OK;
}

kf_err
kf_watcher_set_handlers(kf_watcher *w, kf_watcher_event_fn ev,
			kf_watcher_health_fn health, void *arg)
{
	if (w->link.started)
		return KF_EINVAL;
	w->on_event = ev;
	w->on_health = health;
	w->arg = arg;
	return KF_OK;
}

kf_err
kf_watcher_start(kf_watcher *w, kf_loop *l)
{
	if (w == NULL || l == NULL || w->link.started)
		return KF_EINVAL;
	return kfi_loop_add(l, w);
}

kf_err
kf_watcher_stop(kf_watcher *w)
{
	if (w == NULL)
		return KF_EINVAL;
	kf_loop *l = __atomic_load_n(&w->link.loop, __ATOMIC_ACQUIRE);

	if (l != NULL)
		kfi_loop_stop_watcher(l, w);
	return KF_OK;
}

void
kf_watcher_free(kf_watcher *w)
{
	if (w == NULL)
		return;
	kf_watcher_stop(w);
	kfi_watcher_release(w, NULL);
	free(w->items);
	free(w->cont);
	free(w->body);
	kfi_framer_fini(&w->fr);
	free(w->base_url);
	free(w->s_group);
	free(w->s_version);
	free(w->s_resource);
	free(w->s_ns);
	free(w->s_lsel);
	free(w->s_fsel);
	free(w->s_kind);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

kf_err
kf_watcher_last_error(kf_watcher *w, char *buf, size_t len)
{
	kf_err e;

	pthread_mutex_lock(&w->mu);
	e = w->err;
	if (buf != NULL && len > 0)
		snprintf(buf, len, "%s", w->detail);
	pthread_mutex_unlock(&w->mu);
	return e;
}

void
kf_watcher_resource_version(kf_watcher *w, char *buf, size_t len)
{
	pthread_mutex_lock(&w->mu);
	snprintf(buf, len, "%s", w->pub_rv);
	pthread_mutex_unlock(&w->mu);
}

void
kf_watcher_stats_get(kf_watcher *w, kf_watcher_stats *out)
{
	const uint64_t *src = (const uint64_t *)&w->st;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

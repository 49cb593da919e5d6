/*
 * kf-churn: ConfigMap churn against the real API server for the fault
 * campaign (scripts/faults). Creates, updates (merge patch) and deletes
 * ConfigMaps named PREFIX-0 .. PREFIX-(N-1) in one namespace, either as
 * fast as K parallel requests allow until a number of changes succeeded
 * (a burst), or at a steady rate until told to stop (SIGTERM/SIGINT) or a
 * duration passed. Independent of kubefan: plain libcurl, so a bug in the
 * code under test cannot hide itself here.
 *
 * Settings from `scripts/cluster env`: KUBEFAN_TEST_SERVER, _CA, _TOKEN.
 *
 *   kf-churn --ns NS [--prefix P] [--names N] [--parallel K]
 *            (--changes C | --rate R [--duration S]) [--seed S]
 *
 * The state of each name is tracked from the replies (201/200/404/409),
 * so a name has one request in flight at most and requests rarely fail.
 * A request that fails without a reply (the API server restarting, the
 * connection cut) leaves the name "unknown"; its next change is a DELETE,
 * which settles it either way. On exit one line of figures goes to stdout:
 *
 *   churn: changes=C created=A updated=U deleted=D failed=F seconds=S
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum ch_state { CH_ABSENT, CH_PRESENT, CH_UNKNOWN };
enum ch_op { CH_CREATE, CH_UPDATE, CH_DELETE };

struct ch_req {
	CURL *easy;
	struct curl_slist *hdrs;
	int name;
	enum ch_op op;
	char url[512];
	char body[256];
	char rbody[512];
	size_t rlen;
};

struct ch_name {
	unsigned char state;
	unsigned char busy;
};

static volatile sig_atomic_t ch_stop;

static void
ch_on_signal(int sig)
{
	(void)sig;
	ch_stop = 1;
}

static double
ch_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *
ch_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0') {
		fprintf(stderr,
			"kf-churn: %s is not set (eval \"$(scripts/"
			"cluster env)\")\n",
			name);
		exit(2);
	}
	return v;
}

/* Keep the start of a reply (for error messages); drop the rest. */
static size_t
ch_write(char *p, size_t sz, size_t n, void *arg)
{
	struct ch_req *r = arg;
	size_t len = sz * n, room = sizeof(r->rbody) - 1 - r->rlen;

	if (len < room)
		room = len;
	memcpy(r->rbody + r->rlen, p, room);
	r->rlen += room;
	r->rbody[r->rlen] = '\0';
	return len;
}

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"ns", required_argument, NULL, 'n'},
	    {"prefix", required_argument, NULL, 'p'},
	    {"names", required_argument, NULL, 'N'},
	    {"parallel", required_argument, NULL, 'k'},
	    {"changes", required_argument, NULL, 'c'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"seed", required_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	const char *ns = NULL, *prefix = "churn", *server, *ca, *token;
	long names = 300, parallel = 8, changes = 0, seed = 0;
	double rate = 0, duration = 0, start, next_at;
	long created = 0, updated = 0, deleted = 0, failed = 0, done = 0;
	long counter = 0, inflight = 0;
	struct ch_name *st;
	struct ch_req *reqs;
	char auth[512];
	CURLM *multi;
	int opt;

	while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (opt) {
		case 'n':
			ns = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'N':
			names = atol(optarg);
			break;
		case 'k':
			parallel = atol(optarg);
			break;
		case 'c':
			changes = atol(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 's':
			seed = atol(optarg);
			break;
		default:
			fprintf(stderr, "usage: kf-churn --ns NS [--prefix P] "
					"[--names N] [--parallel K]\n"
					"  (--changes C | --rate R "
					"[--duration S]) [--seed S]\n");
			return 2;
		}
	}
	if (ns == NULL || names < 1 || parallel < 1 ||
	    parallel > names / 2 + 1 || (changes <= 0 && rate <= 0)) {
		fprintf(stderr, "kf-churn: need --ns, --names >= 2 * "
				"--parallel, and --changes or --rate\n");
		return 2;
	}
	server = ch_env("KUBEFAN_TEST_SERVER");
	ca = ch_env("KUBEFAN_TEST_CA");
	token = ch_env("KUBEFAN_TEST_TOKEN");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	srand((unsigned)(seed ? seed : (long)time(NULL) ^ (long)getpid()));
	signal(SIGTERM, ch_on_signal);
	signal(SIGINT, ch_on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	st = calloc((size_t)names, sizeof(*st));
	reqs = calloc((size_t)parallel, sizeof(*reqs));
	multi = curl_multi_init();
	if (st == NULL || reqs == NULL || multi == NULL)
		return 1;
	/* Start with every name unknown: a previous run may have left it. */
	for (long i = 0; i < names; i++)
		st[i].state = CH_UNKNOWN;
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	start = ch_now();
	next_at = start;
	for (;;) {
		int running, left;
		CURLMsg *m;
		double now = ch_now();
		int go = !ch_stop &&
			 (changes <= 0 || done + inflight < changes) &&
			 (duration <= 0 || now - start < duration);

		if (!go && inflight == 0)
			break;
		/* Start requests into free slots. */
		for (long s = 0; go && s < parallel; s++) {
			struct ch_req *r = &reqs[s];
			long i;
			int tries = 0;

			if (r->easy != NULL)
				continue;
			if (rate > 0 && now < next_at)
				break;
			/* After a pause (SIGSTOP), do not catch up. */
			if (rate > 0 && next_at < now - 1.0)
				next_at = now;
			do
				i = rand() % names;
			while (st[i].busy && ++tries < 1000);
			if (st[i].busy)
				break;
			if (rate > 0)
				next_at += 1.0 / rate;
			st[i].busy = 1;
			r->name = (int)i;
			r->rlen = 0;
			r->rbody[0] = '\0';
			r->easy = curl_easy_init();
			r->hdrs = curl_slist_append(NULL, auth);
			counter++;
			if (st[i].state == CH_ABSENT) {
				r->op = CH_CREATE;
				snprintf(r->url, sizeof(r->url),
					 "%s/api/v1/namespaces/%s/configmaps",
					 server, ns);
				snprintf(
				    r->body, sizeof(r->body),
				    "{\"apiVersion\":\"v1\",\"kind\":"
				    "\"ConfigMap\",\"metadata\":{\"name\":"
				    "\"%s-%ld\"},\"data\":{\"v\":\"%ld\"}}",
				    prefix, i, counter);
				r->hdrs = curl_slist_append(
				    r->hdrs, "Content-Type: application/json");
				curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS,
						 r->body);
			} else {
				snprintf(r->url, sizeof(r->url),
					 "%s/api/v1/namespaces/%s/configmaps/"
					 "%s-%ld",
					 server, ns, prefix, i);
				if (st[i].state == CH_PRESENT &&
				    rand() % 4 != 0) {
					r->op = CH_UPDATE;
					snprintf(r->body, sizeof(r->body),
						 "{\"data\":{\"v\":\"%ld\"}}",
						 counter);
					r->hdrs = curl_slist_append(
					    r->hdrs, "Content-Type: "
						     "application/"
						     "merge-patch+json");
					curl_easy_setopt(r->easy,
							 CURLOPT_CUSTOMREQUEST,
							 "PATCH");
					curl_easy_setopt(r->easy,
							 CURLOPT_POSTFIELDS,
							 r->body);
				} else {
					r->op = CH_DELETE;
					curl_easy_setopt(r->easy,
							 CURLOPT_CUSTOMREQUEST,
							 "DELETE");
				}
			}
			curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
			curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
			curl_easy_setopt(r->easy, CURLOPT_CAINFO, ca);
			curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
					 (long)CURL_HTTP_VERSION_2TLS);
			curl_easy_setopt(r->easy, CURLOPT_PIPEWAIT, 1L);
			curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, 20L);
			curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, 5L);
			curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION,
					 ch_write);
			curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
			curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
			curl_multi_add_handle(multi, r->easy);
			inflight++;
		}
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct ch_req *r;
			struct ch_name *n;
			long code = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&r);
			n = &st[r->name];
			if (m->data.result == CURLE_OK)
				curl_easy_getinfo(m->easy_handle,
						  CURLINFO_RESPONSE_CODE,
						  &code);
			if (code == 201 && r->op == CH_CREATE) {
				n->state = CH_PRESENT;
				created++;
				done++;
			} else if (code == 200 && r->op == CH_UPDATE) {
				updated++;
				done++;
			} else if ((code == 200 || code == 202) &&
				   r->op == CH_DELETE) {
				n->state = CH_ABSENT;
				deleted++;
				done++;
			} else if (code == 404) {
				n->state = CH_ABSENT;
			} else if (code == 409 && r->op == CH_CREATE) {
				n->state = CH_PRESENT;
			} else {
				/* Transport error, 5xx, 429: not known. */
				n->state = CH_UNKNOWN;
				if (failed++ < 5)
					fprintf(
					    stderr,
					    "kf-churn: %s %s-%d: %s %ld "
					    "%.120s\n",
					    r->op == CH_CREATE	 ? "create"
					    : r->op == CH_UPDATE ? "update"
								 : "delete",
					    prefix, r->name,
					    curl_easy_strerror(m->data.result),
					    code, r->rbody);
			}
			n->busy = 0;
			curl_multi_remove_handle(multi, r->easy);
			curl_easy_cleanup(r->easy);
			curl_slist_free_all(r->hdrs);
			r->easy = NULL;
			r->hdrs = NULL;
			inflight--;
		}
		/* Wait for a reply, or until the next paced request. */
		{
			int ms = 100;

			if (rate > 0 && go) {
				double d = (next_at - ch_now()) * 1000;

				ms = d < 0 ? 0 : d > 100 ? 100 : (int)d;
			}
			curl_multi_poll(multi, NULL, 0, ms, NULL);
		}
	}
	printf("churn: changes=%ld created=%ld updated=%ld deleted=%ld "
	       "failed=%ld seconds=%.1f\n",
	       done, created, updated, deleted, failed, ch_now() - start);
	curl_multi_cleanup(multi);
	free(reqs);
	free(st);
	curl_global_cleanup();
	return 0;
}

/* Synthetic Pod JSON; see pods.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pods.h"

struct pb {
	char *buf;
	size_t len, cap;
	int fail;
};

static void
pb_add(struct pb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->fail = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len)
			break;
		size_t cap = b->cap * 2 + (size_t)n;
		char *nb = realloc(b->buf, cap);

		if (nb == NULL) {
			b->fail = 1;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	b->len += (size_t)n;
}

/* A small deterministic mixer: the same i gives the same Pod. */
static uint64_t
pb_rand(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	uint64_t z = *s;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *apps[] = {
    "checkout",	 "cart", "search",	"payments", "frontend",
    "inventory", "auth", "recommender", "shipping", "ledger",
};

static void
pb_container(struct pb *b, const char *app, int c, int nenv, uint64_t *rs)
{
	pb_add(b,
	       "%s{\"name\":\"%s-%d\",\"image\":\"registry.example.com/"
	       "%s/%s:v1.%d.%d\",\"command\":[\"/bin/%s\"],\"args\":["
	       "\"--port=8080\",\"--log-level=info\",\"--metrics-addr=:9090\"]"
	       ",\"ports\":[{\"name\":\"http\",\"containerPort\":8080,"
	       "\"protocol\":\"TCP\"},{\"name\":\"metrics\",\"containerPort\":"
	       "9090,\"protocol\":\"TCP\"}],\"env\":[",
	       c ? "," : "", app, c, app, app, (int)(pb_rand(rs) % 40),
	       (int)(pb_rand(rs) % 10), app);
	for (int e = 0; e < nenv; e++)
		pb_add(
		    b,
		    "%s{\"name\":\"%s_SETTING_%d\",\"value\":\"value-%llx\"}",
		    e ? "," : "", app, e,
		    (unsigned long long)(pb_rand(rs) & 0xffffffffff));
	pb_add(
	    b,
	    ",{\"name\":\"POD_NAME\",\"valueFrom\":{\"fieldRef\":{"
	    "\"apiVersion\":\"v1\",\"fieldPath\":\"metadata.name\"}}}],"
	    "\"resources\":{\"limits\":{\"cpu\":\"%dm\",\"memory\":\"%dMi\"},"
	    "\"requests\":{\"cpu\":\"%dm\",\"memory\":\"%dMi\"}},"
	    "\"volumeMounts\":[{\"name\":\"config\",\"mountPath\":"
	    "\"/etc/%s\",\"readOnly\":true},{\"name\":\"kube-api-access\","
	    "\"mountPath\":\"/var/run/secrets/kubernetes.io/"
	    "serviceaccount\",\"readOnly\":true}],\"livenessProbe\":{"
	    "\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,\"scheme\":"
	    "\"HTTP\"},\"initialDelaySeconds\":10,\"timeoutSeconds\":1,"
	    "\"periodSeconds\":10,\"successThreshold\":1,"
	    "\"failureThreshold\":3},\"readinessProbe\":{\"httpGet\":{"
	    "\"path\":\"/ready\",\"port\":8080,\"scheme\":\"HTTP\"},"
	    "\"timeoutSeconds\":1,\"periodSeconds\":5,\"successThreshold\":1,"
	    "\"failureThreshold\":3},\"terminationMessagePath\":\"/dev/"
	    "termination-log\",\"terminationMessagePolicy\":\"File\","
	    "\"imagePullPolicy\":\"IfNotPresent\"}",
	    500 + (int)(pb_rand(rs) % 1500), 256 + (int)(pb_rand(rs) % 2048),
	    100 + (int)(pb_rand(rs) % 400), 128 + (int)(pb_rand(rs) % 512),
	    app);
}

static void
pb_managed(struct pb *b, int ncont, int nenv)
{
	pb_add(b, "\"managedFields\":[{\"manager\":\"kube-controller-manager\","
		  "\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":"
		  "\"2026-11-30T10:12:44Z\",\"fieldsType\":\"FieldsV1\","
		  "\"fieldsV1\":{\"f:metadata\":{\"f:generateName\":{},"
		  "\"f:labels\":{\".\":{},\"f:app\":{},\"f:pod-template-hash\":"
		  "{}},\"f:ownerReferences\":{\".\":{},\"k:{\\\"uid\\\":\\\""
		  "9a1f3c2e\\\"}\":{}}},\"f:spec\":{\"f:containers\":{");
	for (int c = 0; c < ncont; c++) {
		pb_add(b,
		       "%s\"k:{\\\"name\\\":\\\"c-%d\\\"}\":{\".\":{},"
		       "\"f:args\":{},\"f:env\":{\".\":{}",
		       c ? "," : "", c);
		for (int e = 0; e < nenv; e++)
			pb_add(b,
			       ",\"k:{\\\"name\\\":\\\"SETTING_%d\\\"}\":{"
			       "\".\":{},\"f:name\":{},\"f:value\":{}}",
			       e);
		pb_add(b, "},\"f:image\":{},\"f:imagePullPolicy\":{},"
			  "\"f:livenessProbe\":{\".\":{},\"f:httpGet\":{\".\":"
			  "{},\"f:path\":{},\"f:port\":{}}},\"f:name\":{},"
			  "\"f:ports\":{},\"f:resources\":{\".\":{},"
			  "\"f:limits\":{},\"f:requests\":{}}}");
	}
	pb_add(b,
	       "},\"f:dnsPolicy\":{},\"f:restartPolicy\":{},"
	       "\"f:schedulerName\":{},\"f:volumes\":{}}}},{\"manager\":"
	       "\"kubelet\",\"operation\":\"Update\",\"apiVersion\":\"v1\","
	       "\"time\":\"2026-11-30T10:13:02Z\",\"fieldsType\":\"FieldsV1\","
	       "\"fieldsV1\":{\"f:status\":{\"f:conditions\":{},"
	       "\"f:containerStatuses\":{},\"f:hostIP\":{},\"f:phase\":{},"
	       "\"f:podIP\":{},\"f:podIPs\":{},\"f:startTime\":{}}},"
	       "\"subresource\":\"status\"}]");
}

char *
kfb_pod_json(size_t i, unsigned version, size_t *len)
{
	uint64_t rs = i * 7919 + 17;
	const char *app = apps[pb_rand(&rs) % 10];
	int ncont = 1 + (int)(pb_rand(&rs) % 3);
	int nenv = 2 + (int)(pb_rand(&rs) % 14);
	unsigned hash = (unsigned)(pb_rand(&rs) & 0xfffffff);
	struct pb b = {malloc(8192), 0, 8192, 0};

	if (b.buf == NULL)
		return NULL;
	pb_add(&b,
	       "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{"
	       "\"name\":\"%s-%07x-%zu\",\"generateName\":\"%s-%07x-\","
	       "\"namespace\":\"team-%zu\",\"uid\":\"%08zx-5f0e-4a8e-9d3c-"
	       "%012zx\",\"resourceVersion\":\"%zu\",\"creationTimestamp\":"
	       "\"2026-11-30T10:12:44Z\",\"labels\":{\"app\":\"%s\","
	       "\"pod-template-hash\":\"%07x\",\"tier\":\"%s\"},"
	       "\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":"
	       "\"2026-11-29T08:00:00Z\",\"prometheus.io/scrape\":\"true\"},"
	       "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":"
	       "\"ReplicaSet\",\"name\":\"%s-%07x\",\"uid\":\"9a1f3c2e-1111-"
	       "4e2b-8c7d-%012zx\",\"controller\":true,"
	       "\"blockOwnerDeletion\":true}],",
	       app, hash, i, app, hash, i % 50, i, i, 1000 + i * 4 + version,
	       app, hash, i % 3 ? "backend" : "frontend", app, hash, i / 10);
	pb_managed(&b, ncont, nenv);
	pb_add(&b,
	       "},\"spec\":{\"volumes\":[{\"name\":\"config\","
	       "\"configMap\":{\"name\":\"app-config\",\"defaultMode\":420}},"
	       "{\"name\":\"kube-api-access\",\"projected\":{\"sources\":[{"
	       "\"serviceAccountToken\":{\"expirationSeconds\":3607,"
	       "\"path\":\"token\"}},{\"configMap\":{\"name\":"
	       "\"kube-root-ca.crt\",\"items\":[{\"key\":\"ca.crt\","
	       "\"path\":\"ca.crt\"}]}}],\"defaultMode\":420}}],"
	       "\"containers\":[");
	for (int c = 0; c < ncont; c++)
		pb_container(&b, app, c, nenv, &rs);
	pb_add(
	    &b,
	    "],\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\""
	    ":30,\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":"
	    "\"default\",\"nodeName\":\"node-%zu\",\"securityContext\":{},"
	    "\"schedulerName\":\"default-scheduler\",\"tolerations\":[{"
	    "\"key\":\"node.kubernetes.io/not-ready\",\"operator\":"
	    "\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300}"
	    ",{\"key\":\"node.kubernetes.io/unreachable\",\"operator\":"
	    "\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300}"
	    "],\"priority\":0,\"enableServiceLinks\":true,"
	    "\"preemptionPolicy\":\"PreemptLowerPriority\"},\"status\":{"
	    "\"phase\":\"Running\",\"conditions\":[",
	    i % 500);
	static const char *conds[] = {"Initialized", "Ready", "ContainersReady",
				      "PodScheduled"};
	for (int c = 0; c < 4; c++)
		pb_add(&b,
		       "%s{\"type\":\"%s\",\"status\":\"True\","
		       "\"lastProbeTime\":null,\"lastTransitionTime\":"
		       "\"2026-11-30T10:%02u:00Z\"}",
		       c ? "," : "", conds[c], (version + (unsigned)c) % 60);
	pb_add(&b,
	       "],\"hostIP\":\"10.0.%zu.%zu\",\"podIP\":\"10.%zu.%zu.%zu\","
	       "\"podIPs\":[{\"ip\":\"10.%zu.%zu.%zu\"}],\"startTime\":"
	       "\"2026-11-30T10:12:44Z\",\"containerStatuses\":[",
	       i % 250, i % 200, 100 + i % 100, i / 256 % 256, i % 256,
	       100 + i % 100, i / 256 % 256, i % 256);
	for (int c = 0; c < ncont; c++)
		pb_add(&b,
		       "%s{\"name\":\"%s-%d\",\"state\":{\"running\":{"
		       "\"startedAt\":\"2026-11-30T10:12:50Z\"}},"
		       "\"lastState\":{},\"ready\":true,\"restartCount\":%u,"
		       "\"image\":\"registry.example.com/%s/%s:v1\","
		       "\"imageID\":\"registry.example.com/%s/%s@sha256:"
		       "%016llx%016llx%016llx%016llx\",\"containerID\":"
		       "\"containerd://%016llx%016llx%016llx%016llx\","
		       "\"started\":true}",
		       c ? "," : "", app, c, version, app, app, app, app,
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs),
		       (unsigned long long)pb_rand(&rs));
	pb_add(&b, "],\"qosClass\":\"Burstable\"}}");
	if (b.fail) {
		free(b.buf);
		return NULL;
	}
	*len = b.len;
	return b.buf;
}

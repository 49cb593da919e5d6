/*
 * A program outside the tree: it includes <kubefan/kubefan.h> from an
 * installed prefix and links with `pkg-config --libs kubefan`, as a user
 * would. It feeds a shared store by hand (a list of two ConfigMaps, a
 * change, a delete), reads a subscription after each step, and prints
 * every event it read and the store's contents. The same file compiles
 * as C and as C++. tests/install/run checks the output line by line.
 */
#include <kubefan/kubefan.h>
#include <stdio.h>
#include <string.h>

static kf_object *
configmap(const char *name, const char *uid, const char *rv)
{
	char json[256], err[128];
	kf_object *o = NULL;

	snprintf(json, sizeof(json),
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"%s\",\"namespace\":\"demo\",\"uid\":\"%s\","
		 "\"resourceVersion\":\"%s\"}}",
		 name, uid, rv);
	if (kf_object_parse(json, strlen(json), NULL, err, sizeof(err), &o) !=
	    KF_OK)
		fprintf(stderr, "parse: %s\n", err);
	return o;
}

/* Apply one event; the writer takes its own reference to the object. */
static int
feed(kf_writer *w, kf_event_type type, kf_object *o)
{
	kf_event ev;
	kf_err err;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.obj = o;
	err = kf_writer_apply(w, &ev);
	if (o != NULL)
		kf_object_unref(o);
	if (err != KF_OK)
		fprintf(stderr, "apply %s: %s\n", kf_event_type_name(type),
			kf_strerror(err));
	return err == KF_OK ? 0 : 1;
}

/* Print what the subscription holds now. */
static void
drain(kf_subscriber *sub)
{
	kf_event ev;

	while (kf_subscriber_try_next(sub, &ev) == KF_OK)
		printf("event %s %s\n", kf_event_type_name(ev.type),
		       ev.obj != NULL ? kf_object_name(ev.obj) : "-");
}

int
main(void)
{
	kf_writer *w;
	kf_store *s;
	kf_subscriber *sub;
	kf_state *st;
	int bad = 0;

	if (kf_store_shared_alloc(64, &w, &s) != KF_OK ||
	    kf_store_subscribe(s, NULL, &sub) != KF_OK)
		return 1;
	bad |= feed(w, KF_EV_INIT, NULL);
	bad |= feed(w, KF_EV_INIT_APPLY, configmap("a", "ua", "1"));
	bad |= feed(w, KF_EV_INIT_APPLY, configmap("b", "ub", "2"));
	bad |= feed(w, KF_EV_INIT_DONE, NULL);
	drain(sub);
	bad |= feed(w, KF_EV_APPLY, configmap("a", "ua", "3"));
	drain(sub);
	bad |= feed(w, KF_EV_DELETE, configmap("b", "ub", "2"));
	drain(sub);
	printf("ready %d\n", kf_store_is_ready(s));
	if (kf_store_state(s, &st) == KF_OK) {
		for (size_t i = 0; i < kf_state_len(st); i++)
			printf("stored %s rv=%s\n",
			       kf_object_name(kf_state_at(st, i)),
			       kf_object_resource_version(kf_state_at(st, i)));
		kf_state_free(st);
	}
	kf_subscriber_free(sub);
	kf_writer_free(w);
	kf_store_free(s);
	return bad;
}

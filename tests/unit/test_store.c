/* The store: every reader call, the swap, K8, identity across re-lists,
 * indexes, readiness, and the sequence numbers the ring sees. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubefan/store.h"
#include "ring.h"
#include "store_int.h"

/* An object from a compact description; labels as "k=v,k=v". */
static kf_object *
mk(const char *kind, const char *ns, const char *name, const char *uid,
   const char *rv, const char *labels)
{
	char json[1024], lab[512] = "";
	size_t n = 0;
	kf_object *o;
	char err[128];

	if (labels != NULL) {
		char tmp[256];
		char *save, *tok;

		snprintf(tmp, sizeof(tmp), "%s", labels);
		for (tok = strtok_r(tmp, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');

			*eq = '\0';
			n += (size_t)snprintf(lab + n, sizeof(lab) - n,
					      "%s\"%s\":\"%s\"", n ? "," : "",
					      tok, eq + 1);
		}
	}
	snprintf(json, sizeof(json),
		 "{\"kind\":\"%s\",\"metadata\":{\"name\":\"%s\","
		 "\"namespace\":\"%s\",\"uid\":\"%s\",\"resourceVersion\":"
		 "\"%s\",\"labels\":{%s}},\"spec\":{}}",
		 kind, name, ns, uid, rv, lab);
	cr_assert_eq(
	    kf_object_parse(json, strlen(json), NULL, err, sizeof(err), &o),
	    KF_OK, "%s", err);
	return o;
}

static void
ev(kf_writer *w, kf_event_type t, kf_object *o)
{
	kf_event e = {.type = t, .obj = o};

	cr_assert_eq(kf_writer_apply(w, &e), KF_OK, "event %d", t);
}

/* Apply and drop the caller's reference. */
static void
ev1(kf_writer *w, kf_event_type t, kf_object *o)
{
	ev(w, t, o);
	kf_object_unref(o);
}

static kf_objref
ref(const char *kind, const char *ns, const char *name)
{
	kf_objref r = {kind, ns, name, NULL, NULL};

	return r;
}

static kf_object *
get_ok(kf_store *s, const char *ns, const char *name)
{
	kf_objref r = ref("Pod", ns, name);
	kf_object *o;

	cr_assert_eq(kf_store_get(s, &r, &o), KF_OK, "%s/%s", ns, name);
	kf_object_unref(o); /* the store still holds it */
	return o;
}

static void
get_none(kf_store *s, const char *ns, const char *name)
{
	kf_objref r = ref("Pod", ns, name);
	kf_object *o;

	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTFOUND, "%s/%s", ns, name);
	cr_assert_null(o);
}

/* Names in a snapshot, sorted, joined by ' '. */
static void
names(kf_state *st, char *buf, size_t len)
{
	const char *v[256];
	size_t n = kf_state_len(st), off = 0;

	cr_assert_lt(n, 256);
	for (size_t i = 0; i < n; i++)
		v[i] = kf_object_name(kf_state_at(st, i));
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			const char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? " " : "", v[i]);
	kf_state_free(st);
}

static const char *
state_names(kf_store *s)
{
	static char buf[1024];
	kf_state *st;

	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	names(st, buf, sizeof(buf));
	return buf;
}

static const char *
index_names(kf_store *s, const char *index, const char *key)
{
	static char buf[1024];
	kf_state *st;

	cr_assert_eq(kf_store_by_index(s, index, key, &st), KF_OK);
	names(st, buf, sizeof(buf));
	return buf;
}

/* ---- a shared store with one ring reader that records events ---- */

struct rig {
	kf_writer *w;
	kf_store *s;
	struct kfi_ring_reader *rd;
};

static void
rig_up(struct rig *r)
{
	cr_assert_eq(kf_store_shared_alloc(1024, &r->w, &r->s), KF_OK);
	cr_assert_not_null(kfi_store_ring(r->s));
	cr_assert_eq(kfi_ring_reader_alloc(kfi_store_ring(r->s), NULL, &r->rd),
		     KF_OK);
}

static void
rig_down(struct rig *r)
{
	kfi_ring_reader_free(r->rd);
	kf_writer_free(r->w);
	kf_store_free(r->s);
}

/* Every event since the last call, as "Apply a uid rv" lines with 'R'
 * for the re-list flag, and the first sequence number seen. */
static const char *
drain(struct rig *r, uint64_t *first)
{
	static char buf[4096];
	size_t off = 0;
	kf_event e;
	uint64_t seq, missed;
	kf_err err;

	buf[0] = '\0';
	if (first != NULL)
		*first = 0;
	while ((err = kfi_ring_read(r->rd, &e, &seq, &missed)) == KF_OK) {
		if (first != NULL && *first == 0)
			*first = seq;
		off += (size_t)snprintf(
		    buf + off, sizeof(buf) - off, "%s%s%s%s%s%s%s%s",
		    off ? "; " : "", kf_event_type_name(e.type),
		    e.flags & KF_EVF_RELIST ? "R" : "", e.obj ? " " : "",
		    e.obj ? kf_object_name(e.obj) : "", e.obj ? " " : "",
		    e.obj ? kf_object_uid(e.obj) : "",
		    e.obj ? kf_object_resource_version(e.obj) : "");
	}
	cr_assert_eq(err, KF_EAGAIN);
	return buf;
}

/* The seq of the entry named name in a fresh seq snapshot. */
static uint64_t
entry_seq(kf_store *s, const char *name)
{
	kf_state *st;
	uint64_t b, a, seq = 0;

	cr_assert_eq(kfi_store_snapshot_seq(s, &st, &b, &a), KF_OK);
	cr_assert_eq(b, a, "quiescent store: before %lu after %lu",
		     (unsigned long)b, (unsigned long)a);
	for (size_t i = 0; i < kf_state_len(st); i++)
		if (strcmp(kf_object_name(kf_state_at(st, i)), name) == 0)
			seq = kfi_state_seq_at(st, i);
	kf_state_free(st);
	return seq;
}

/* ---- tests ---- */

Test(store, nothing_is_authoritative_before_the_first_list)
{
	kf_writer *w;
	kf_store *s;
	kf_objref r = ref("Pod", "ns", "a");
	kf_object *o = (kf_object *)1;
	kf_state *st;
	char why[64] = "x";

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_null(kfi_store_ring(s));
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTREADY);
	cr_assert_null(o);
	cr_assert_not(kf_store_is_ready(s));
	cr_assert_eq(kf_store_readiness(s, why, sizeof(why)),
		     KF_READINESS_NOT_SYNCED);
	cr_assert_str_eq(why, "");
	cr_assert_eq(kf_store_wait_until_ready(s, 30), KF_ETIMEDOUT);
	cr_assert_eq(kf_store_len(s), 0);
	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	cr_assert_eq(kf_state_len(st), 0);
	cr_assert_null(kf_state_at(st, 0));
	kf_state_free(st);
	cr_assert_not(kfi_store_synced_once(s));

	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u1", "1", NULL));
	cr_assert_eq(kf_store_len(s), 0, "the list is built aside");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTREADY);
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert(kf_store_is_ready(s));
	cr_assert(kfi_store_synced_once(s));
	cr_assert_eq(kf_store_wait_until_ready(s, 0), KF_OK);
	cr_assert_eq(kf_store_readiness(s, NULL, 0), KF_READINESS_READY);
	get_ok(s, "ns", "a");
	get_none(s, "ns", "b");
	kf_writer_free(w);
	kf_store_free(s);
}

Test(store, the_first_list_swaps_in_at_once_and_shares_nothing_twice)
{
	struct rig g;
	kf_object *a = mk("Pod", "ns", "a", "u1", "1", NULL);
	uint64_t first;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev(g.w, KF_EV_INIT_APPLY, a);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "u2", "1", NULL));
	cr_assert_str_eq(drain(&g, NULL), "", "a list publishes nothing");
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, &first), "InitDone");
	cr_assert_eq(first, 1);
	cr_assert_eq(get_ok(g.s, "ns", "a"), a, "the very object applied");
	cr_assert_str_eq(state_names(g.s), "a b");
	cr_assert_eq(entry_seq(g.s, "a"), 1, "stamped with the marker");
	cr_assert_eq(entry_seq(g.s, "b"), 1);
	kf_object_unref(a);
	rig_down(&g);
}

Test(store, watch_events_change_the_contents_and_pass_through)
{
	struct rig g;
	kf_object *a2 = mk("Pod", "ns", "a", "u1", "2", NULL);
	uint64_t first;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u1", "1", NULL));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	drain(&g, NULL);

	ev(g.w, KF_EV_APPLY, a2);
	ev1(g.w, KF_EV_APPLY, mk("Pod", "ns", "c", "u3", "3", NULL));
	cr_assert_eq(get_ok(g.s, "ns", "a"), a2);
	get_ok(g.s, "ns", "c");
	cr_assert_eq(kf_store_len(g.s), 2);
	cr_assert_eq(entry_seq(g.s, "a"), 2);
	cr_assert_eq(entry_seq(g.s, "c"), 3);
	ev(g.w, KF_EV_DELETE, a2);
	get_none(g.s, "ns", "a");
	cr_assert_eq(kf_store_len(g.s), 1);
	/* A delete of something unknown still passes through. */
	ev1(g.w, KF_EV_DELETE, mk("Pod", "ns", "zz", "u9", "9", NULL));
	cr_assert_str_eq(drain(&g, &first),
			 "Apply a u12; Apply c u33; Delete a u12; "
			 "Delete zz u99");
	cr_assert_eq(first, 2);
	cr_assert_str_eq(kf_object_resource_version(a2), "2");
	kf_object_unref(a2);
	rig_down(&g);
}

Test(store, a_snapshot_is_untouched_by_later_changes)
{
	kf_writer *w;
	kf_store *s;
	kf_state *st;
	kf_object *a = mk("Pod", "ns", "a", "u1", "1", NULL);

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_APPLY, a);
	ev(w, KF_EV_INIT_DONE, NULL);
	kf_object_unref(a);
	cr_assert_eq(kf_store_state(s, &st), KF_OK);
	ev1(w, KF_EV_APPLY, mk("Pod", "ns", "b", "u2", "1", NULL));
	ev(w, KF_EV_DELETE, kf_state_at(st, 0));
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(kf_store_len(s), 0);
	cr_assert_eq(kf_state_len(st), 1);
	cr_assert_str_eq(kf_object_uid(kf_state_at(st, 0)), "u1");
	kf_writer_free(w);
	cr_assert_str_eq(kf_object_name(kf_state_at(st, 0)), "a");
	kf_state_free(st);
	kf_store_free(s);
}

/* CASES.md K8: list {a,b,c}; 410; list {a', c}: the store becomes {a', c}
 * in one swap; one Apply for a, one Delete (re-list) for b with its last
 * known state, nothing for c. */
Test(store, k8_deletes_seen_only_by_a_relist)
{
	struct rig g;
	kf_object *c = mk("Pod", "ns", "c", "uc", "100", NULL);
	kf_object *c_again = mk("Pod", "ns", "c", "uc", "100", NULL);
	uint64_t first, b_seq;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "ua", "100", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "ub", "100", NULL));
	ev(g.w, KF_EV_INIT_APPLY, c);
	ev(g.w, KF_EV_INIT_DONE, NULL);
	drain(&g, NULL);
	b_seq = entry_seq(g.s, "c");

	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "ua", "300", NULL));
	ev(g.w, KF_EV_INIT_APPLY, c_again);
	cr_assert_str_eq(state_names(g.s), "a b c", "old contents meanwhile");
	ev(g.w, KF_EV_INIT_DONE, NULL);

	cr_assert_str_eq(state_names(g.s), "a c");
	cr_assert_str_eq(kf_object_resource_version(get_ok(g.s, "ns", "a")),
			 "300");
	cr_assert_eq(get_ok(g.s, "ns", "c"), c, "unchanged c is shared");
	get_none(g.s, "ns", "b");
	cr_assert_str_eq(drain(&g, &first), "DeleteR b ub100; ApplyR a ua300");
	cr_assert_eq(first, 2);
	cr_assert_eq(entry_seq(g.s, "a"), 3);
	cr_assert_eq(entry_seq(g.s, "c"), b_seq, "unchanged keeps its seq");

	/* The same list again changes nothing and sends nothing. */
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "ua", "300", NULL));
	ev(g.w, KF_EV_INIT_APPLY, c_again);
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, NULL), "");
	cr_assert_str_eq(state_names(g.s), "a c");
	cr_assert_eq(get_ok(g.s, "ns", "c"), c);
	kf_object_unref(c);
	kf_object_unref(c_again);
	rig_down(&g);
}

Test(store, a_name_back_with_a_new_uid_is_delete_then_apply)
{
	struct rig g;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "old", "5", NULL));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	drain(&g, NULL);

	ev(g.w, KF_EV_INIT, NULL);
	/* Same resourceVersion text, other uid: still a new object. */
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "new", "5", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "d", "ud", "6", NULL));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, NULL),
			 "DeleteR a old5; ApplyR a new5; ApplyR d ud6");
	cr_assert_str_eq(kf_object_uid(get_ok(g.s, "ns", "a")), "new");
	rig_down(&g);
}

Test(store, the_same_name_twice_in_one_list_keeps_the_last)
{
	struct rig g;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u", "1", "x=1"));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	drain(&g, NULL);
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u", "2", "x=2"));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u", "1", "x=1"));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, NULL), "", "back to what it was");
	cr_assert_str_eq(index_names(g.s, "label", "x=1"), "a");
	cr_assert_str_eq(index_names(g.s, "label", "x=2"), "");
	ev(g.w, KF_EV_INIT, NULL);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u", "1", "x=1"));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "u", "3", "x=3"));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, NULL), "ApplyR a u3");
	cr_assert_str_eq(index_names(g.s, "label", "x=1"), "");
	cr_assert_str_eq(index_names(g.s, "label", "x=3"), "a");
	cr_assert_eq(kf_store_len(g.s), 1);
	rig_down(&g);
}

Test(store, cluster_scoped_and_namespaced_objects_with_one_name_differ)
{
	kf_writer *w;
	kf_store *s;
	kf_object *node = mk("Node", "", "shop", "n1", "1", NULL);
	kf_object *ns = mk("Namespace", "", "shop", "s1", "1", NULL);
	kf_object *pod = mk("Pod", "shop", "shop", "p1", "1", NULL);
	kf_objref r;
	kf_object *o;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_APPLY, node);
	ev(w, KF_EV_INIT_APPLY, ns);
	ev(w, KF_EV_INIT_APPLY, pod);
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(kf_store_len(s), 3);
	r = ref("Node", "", "shop");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_OK);
	cr_assert_eq(o, node);
	kf_object_unref(o);
	r = ref("Node", NULL, "shop");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_OK, "NULL namespace is \"\"");
	kf_object_unref(o);
	r = ref("Pod", "shop", "shop");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_OK);
	cr_assert_eq(o, pod);
	kf_object_unref(o);
	r = ref("Pod", "", "shop");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTFOUND);
	cr_assert_str_eq(index_names(s, "namespace", ""), "shop shop");
	cr_assert_str_eq(index_names(s, "namespace", "shop"), "shop");
	ev(w, KF_EV_DELETE, node);
	r = ref("Namespace", "", "shop");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_OK);
	cr_assert_eq(o, ns);
	kf_object_unref(o);
	kf_object_unref(node);
	kf_object_unref(ns);
	kf_object_unref(pod);
	kf_writer_free(w);
	kf_store_free(s);
}

/* A user index: the value of label "team", upper-cased, if present. */
static void
team_index(void *arg, const kf_object *obj, kf_index_emit_fn emit, void *ctx)
{
	const char *t = kf_object_label(obj, "team");
	char up[64];
	size_t i;

	(*(int *)arg)++;
	if (t == NULL)
		return;
	for (i = 0; t[i] != '\0' && i < sizeof(up) - 1; i++)
		up[i] = (char)(t[i] >= 'a' && t[i] <= 'z' ? t[i] - 32 : t[i]);
	up[i] = '\0';
	emit(ctx, up);
	emit(ctx, up); /* duplicates count once */
}

Test(store, indexes_follow_applies_deletes_and_relists)
{
	kf_writer *w;
	kf_store *s;
	kf_state *st;
	int calls = 0;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_eq(kf_writer_add_index(w, "team", team_index, &calls), KF_OK);
	cr_assert_eq(kf_writer_add_index(w, "team", team_index, &calls),
		     KF_EINVAL);
	cr_assert_eq(kf_writer_add_index(w, "label", team_index, &calls),
		     KF_EINVAL);
	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY,
	    mk("Pod", "n1", "a", "ua", "1", "app=web,team=red"));
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "n1", "b", "ub", "1", "app=db"));
	ev1(w, KF_EV_INIT_APPLY,
	    mk("Pod", "n2", "c", "uc", "1", "app=web,team=blue"));
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert_gt(calls, 0);
	cr_assert_eq(kf_writer_add_index(w, "late", team_index, &calls),
		     KF_EINVAL, "indexes come before the first event");

	cr_assert_str_eq(index_names(s, "namespace", "n1"), "a b");
	cr_assert_str_eq(index_names(s, "label", "app=web"), "a c");
	cr_assert_str_eq(index_names(s, "team", "RED"), "a");
	cr_assert_str_eq(index_names(s, "team", "red"), "");
	cr_assert_eq(kf_store_by_label(s, "app", "db", &st), KF_OK);
	cr_assert_eq(kf_state_len(st), 1);
	cr_assert_str_eq(kf_object_name(kf_state_at(st, 0)), "b");
	kf_state_free(st);
	cr_assert_eq(kf_store_by_namespace(s, "n2", &st), KF_OK);
	cr_assert_eq(kf_state_len(st), 1);
	kf_state_free(st);
	cr_assert_eq(kf_store_by_index(s, "nope", "x", &st), KF_EINVAL);
	cr_assert_null(st);

	/* a moves team and app; b goes; c keeps its keys. */
	ev1(w, KF_EV_APPLY,
	    mk("Pod", "n1", "a", "ua", "2", "app=api,team=blue"));
	ev1(w, KF_EV_DELETE, mk("Pod", "n1", "b", "ub", "2", "app=db"));
	ev1(w, KF_EV_APPLY,
	    mk("Pod", "n2", "c", "uc", "2", "app=web,team=blue"));
	cr_assert_str_eq(index_names(s, "label", "app=web"), "c");
	cr_assert_str_eq(index_names(s, "label", "app=api"), "a");
	cr_assert_str_eq(index_names(s, "label", "app=db"), "");
	cr_assert_str_eq(index_names(s, "team", "BLUE"), "a c");
	cr_assert_str_eq(index_names(s, "team", "RED"), "");
	cr_assert_str_eq(index_names(s, "namespace", "n1"), "a");
	cr_assert_str_eq(
	    kf_object_resource_version(kf_state_at(
		(kf_store_by_label(s, "team", "blue", &st), st), 0)),
	    "2");
	kf_state_free(st);

	/* A re-list rebuilds every index aside. */
	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY,
	    mk("Pod", "n2", "c", "uc", "2", "app=web,team=blue"));
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "n3", "d", "ud", "1", "app=web"));
	cr_assert_str_eq(index_names(s, "namespace", "n1"), "a");
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(index_names(s, "namespace", "n1"), "");
	cr_assert_str_eq(index_names(s, "namespace", "n3"), "d");
	cr_assert_str_eq(index_names(s, "label", "app=web"), "c d");
	cr_assert_str_eq(index_names(s, "team", "BLUE"), "c");
	kf_writer_free(w);
	kf_store_free(s);
}

struct waiter {
	kf_store *s;
	kf_err got;
};

static void *
wait_ready(void *arg)
{
	struct waiter *wt = arg;

	wt->got = kf_store_wait_until_ready(wt->s, 5000);
	return NULL;
}

Test(store, readiness_goes_stale_with_a_reason_and_comes_back)
{
	kf_writer *w;
	kf_store *s;
	kf_objref r = ref("Pod", "ns", "a");
	kf_object *o;
	char why[64];
	struct waiter wt;
	pthread_t th;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	kf_writer_mark_stale(w, "list failing: 503");
	cr_assert_eq(kf_store_readiness(s, why, sizeof(why)),
		     KF_READINESS_NOT_SYNCED, "never synced stays so");
	cr_assert_str_eq(why, "list failing: 503");
	kf_writer_mark_fresh(w);
	cr_assert_not(kf_store_is_ready(s));

	wt.s = kf_store_clone(s);
	wt.got = KF_EINVAL;
	pthread_create(&th, NULL, wait_ready, &wt);
	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "ua", "1", NULL));
	ev(w, KF_EV_INIT_DONE, NULL);
	pthread_join(th, NULL);
	cr_assert_eq(wt.got, KF_OK);

	kf_writer_mark_stale(w, "watch broken for 90s");
	cr_assert_not(kf_store_is_ready(s));
	cr_assert_eq(kf_store_readiness(s, why, sizeof(why)),
		     KF_READINESS_STALE);
	cr_assert_str_eq(why, "watch broken for 90s");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTREADY);
	cr_assert_not_null(o, "stale still answers what it has");
	kf_object_unref(o);
	r.name = "zz";
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTREADY,
		     "never an authoritative not-found while stale");
	cr_assert_null(o);
	cr_assert_eq(kf_store_wait_until_ready(wt.s, 20), KF_ETIMEDOUT);

	pthread_create(&th, NULL, wait_ready, &wt);
	kf_writer_mark_fresh(w);
	pthread_join(th, NULL);
	cr_assert_eq(wt.got, KF_OK);
	cr_assert_eq(kf_store_readiness(s, why, sizeof(why)),
		     KF_READINESS_READY);
	cr_assert_str_eq(why, "");
	cr_assert_eq(kf_store_get(s, &r, &o), KF_ENOTFOUND);

	/* A completed re-list also makes it fresh. */
	kf_writer_mark_stale(w, "relist failing");
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert(kf_store_is_ready(s));
	kf_store_free(wt.s);
	kf_writer_free(w);
	kf_store_free(s);
}

Test(store, bad_calls_change_nothing)
{
	kf_writer *w;
	kf_store *s;
	kf_object *a = mk("Pod", "ns", "a", "ua", "1", NULL);
	kf_event e = {.type = KF_EV_INIT_APPLY, .obj = a};

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_eq(kf_writer_apply(w, &e), KF_EINVAL, "outside a list");
	e.type = KF_EV_INIT_DONE;
	cr_assert_eq(kf_writer_apply(w, &e), KF_EINVAL, "done without init");
	e.type = KF_EV_APPLY;
	e.obj = NULL;
	cr_assert_eq(kf_writer_apply(w, &e), KF_EINVAL);
	e.type = KF_EV_LAGGED;
	cr_assert_eq(kf_writer_apply(w, &e), KF_EINVAL);
	cr_assert_eq(kf_writer_apply(w, NULL), KF_EINVAL);
	cr_assert_not(kfi_store_synced_once(s));
	cr_assert_eq(kf_store_len(s), 0);
	kf_writer_free(w);
	kf_store_free(s);
	cr_assert_eq(kf_store_shared_alloc(3, &w, &s), KF_EINVAL);
	cr_assert_null(w);
	cr_assert_null(s);
	kf_object_unref(a);
}

Test(store, handles_and_the_writer_go_in_any_order)
{
	kf_writer *w;
	kf_store *s, *s2, *s3;
	kf_object *a = mk("Pod", "ns", "a", "ua", "1", NULL);

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	s2 = kf_store_clone(s);
	s3 = kf_writer_reader(w);
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_APPLY, a);
	ev(w, KF_EV_INIT_DONE, NULL);
	kf_store_free(s);
	kf_writer_free(w);
	cr_assert_eq(get_ok(s2, "ns", "a"), a, "readers outlive the writer");
	cr_assert_eq(kf_store_len(s3), 1);
	kf_store_free(s3);
	kf_store_free(s2);
	cr_assert_str_eq(kf_object_name(a), "a");
	kf_object_unref(a);
}

Test(store, records_are_recycled_across_clones)
{
	kf_writer *w;
	kf_store *s, *c;
	size_t n;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	c = kf_store_clone(s);
	kf_store_free(c);
	n = kfi_store_record_count(s);
	for (int i = 0; i < 50; i++)
		kf_store_free(kf_store_clone(s));
	cr_assert_eq(kfi_store_record_count(s), n);
	kf_writer_free(w);
	kf_store_free(s);
}

Test(store, a_plain_store_counts_sequence_numbers_like_the_ring)
{
	kf_writer *w;
	kf_store *s;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "ns", "a", "ua", "1", NULL));
	ev(w, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(entry_seq(s, "a"), 1);
	ev1(w, KF_EV_APPLY, mk("Pod", "ns", "b", "ub", "1", NULL));
	cr_assert_eq(entry_seq(s, "b"), 2);
	ev(w, KF_EV_INIT, NULL);
	ev1(w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "ub", "2", NULL));
	ev(w, KF_EV_INIT_DONE, NULL);
	/* Delete a (3), Apply b (4). */
	cr_assert_eq(entry_seq(s, "b"), 4);
	ev1(w, KF_EV_APPLY, mk("Pod", "ns", "c", "uc", "1", NULL));
	cr_assert_eq(entry_seq(s, "c"), 5);
	kf_writer_free(w);
	kf_store_free(s);
}

Test(store, a_large_relist_grows_and_shrinks_the_tables)
{
	kf_writer *w;
	kf_store *s;
	char name[32];
	kf_state *st;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	for (int round = 0; round < 3; round++) {
		int n = round == 1 ? 3000 : 500;

		ev(w, KF_EV_INIT, NULL);
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "p%d", i);
			ev1(w, KF_EV_INIT_APPLY,
			    mk("Pod", i % 2 ? "odd" : "even", name, name, "1",
			       i % 3 ? "g=x" : "g=y"));
		}
		ev(w, KF_EV_INIT_DONE, NULL);
		cr_assert_eq(kf_store_len(s), (size_t)n);
		cr_assert_eq(kf_store_by_namespace(s, "odd", &st), KF_OK);
		cr_assert_eq(kf_state_len(st), (size_t)n / 2);
		kf_state_free(st);
	}
	/* Deleting most of it one by one leaves tombstones behind. */
	for (int i = 0; i < 480; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		ev1(w, KF_EV_DELETE,
		    mk("Pod", i % 2 ? "odd" : "even", name, name, "1", NULL));
	}
	cr_assert_eq(kf_store_len(s), 20);
	cr_assert_str_eq(state_names(s), "p480 p481 p482 p483 p484 p485 "
					 "p486 p487 p488 p489 p490 p491 "
					 "p492 p493 p494 p495 p496 p497 "
					 "p498 p499");
	cr_assert_str_eq(index_names(s, "label", "g=y"),
			 "p480 p483 p486 p489 p492 p495 p498");
	kf_writer_free(w);
	kf_store_free(s);
}

Test(store, one_object_in_two_stores_and_applied_twice_keeps_each_number)
{
	kf_writer *wa, *wb;
	kf_store *sa, *sb;
	kf_object *x = mk("Pod", "ns", "x", "ux", "1", "k=v");

	cr_assert_eq(kf_store_alloc(&wa, &sa), KF_OK);
	cr_assert_eq(kf_store_alloc(&wb, &sb), KF_OK);
	ev(wa, KF_EV_INIT, NULL);
	/* Numbers in a: marker 1, y 2, x 3. */
	ev(wa, KF_EV_INIT_DONE, NULL);
	ev1(wa, KF_EV_APPLY, mk("Pod", "ns", "y", "uy", "1", NULL));
	ev(wa, KF_EV_APPLY, x);
	ev(wb, KF_EV_INIT, NULL);
	ev(wb, KF_EV_INIT_APPLY, x);
	ev(wb, KF_EV_INIT_DONE, NULL); /* b's marker: 1 */
	cr_assert_eq(entry_seq(sa, "x"), 3);
	cr_assert_eq(entry_seq(sb, "x"), 1);
	ev(wa, KF_EV_APPLY, x); /* the same pointer again: 4 */
	cr_assert_eq(entry_seq(sa, "x"), 4);
	cr_assert_eq(entry_seq(sb, "x"), 1);
	cr_assert_eq(get_ok(sa, "ns", "x"), x);
	cr_assert_eq(get_ok(sb, "ns", "x"), x);
	/* Re-lists that keep x share it, in both stores. */
	ev(wa, KF_EV_INIT, NULL);
	ev(wa, KF_EV_INIT_APPLY, x);
	ev(wa, KF_EV_INIT_DONE, NULL);
	ev(wb, KF_EV_INIT, NULL);
	ev(wb, KF_EV_INIT_APPLY, x);
	ev(wb, KF_EV_INIT_DONE, NULL);
	cr_assert_eq(entry_seq(sa, "x"), 4);
	cr_assert_eq(entry_seq(sb, "x"), 1);
	cr_assert_str_eq(index_names(sa, "label", "k=v"), "x");
	cr_assert_str_eq(index_names(sb, "label", "k=v"), "x");
	ev(wa, KF_EV_DELETE, x);
	get_none(sa, "ns", "x");
	cr_assert_eq(get_ok(sb, "ns", "x"), x);
	kf_writer_free(wa);
	kf_store_free(sa);
	kf_writer_free(wb);
	kf_store_free(sb);
	cr_assert_str_eq(kf_object_name(x), "x");
	kf_object_unref(x);
}

/* The "; "-separated events of drain(), sorted. */
static const char *
sorted_events(const char *events)
{
	static char buf[4096];
	char tmp[4096], *v[64], *save, *tok;
	size_t n = 0, off = 0;

	snprintf(tmp, sizeof(tmp), "%s", events);
	for (tok = strtok_r(tmp, ";", &save); tok != NULL && n < 64;
	     tok = strtok_r(NULL, ";", &save))
		v[n++] = tok[0] == ' ' ? tok + 1 : tok;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
					i ? "; " : "", v[i]);
	return buf;
}

/* Watch events between INIT and INIT_DONE change the current contents;
 * the differences published at INIT_DONE must take them into account,
 * so that what subscribers saw adds up to what the store holds. */
Test(store, watch_events_during_a_relist_keep_subscribers_in_step)
{
	struct rig g;
	kf_object *a = mk("Pod", "ns", "a", "ua", "1", NULL);
	kf_object *a2 = mk("Pod", "ns", "a", "ua", "2", NULL);

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev(g.w, KF_EV_INIT_APPLY, a);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "ub", "1", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "c", "uc", "1", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "d", "ud", "1", NULL));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	drain(&g, NULL);

	/* A re-list that names a (unchanged), b with a new uid and c
	 * (unchanged); meanwhile the watch deletes b and c and changes a. */
	ev(g.w, KF_EV_INIT, NULL);
	ev(g.w, KF_EV_INIT_APPLY, a);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "ub2", "5", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "c", "uc", "1", NULL));
	ev1(g.w, KF_EV_DELETE, mk("Pod", "ns", "b", "ub", "1", NULL));
	ev1(g.w, KF_EV_DELETE, mk("Pod", "ns", "c", "uc", "1", NULL));
	ev(g.w, KF_EV_APPLY, a2);
	cr_assert_str_eq(drain(&g, NULL),
			 "Delete b ub1; Delete c uc1; Apply a ua2");
	ev(g.w, KF_EV_INIT_DONE, NULL);

	cr_assert_str_eq(state_names(g.s), "a b c");
	cr_assert_eq(get_ok(g.s, "ns", "a"), a);
	/* The deletes first, then the applies in no particular order. */
	cr_assert_str_eq(sorted_events(drain(&g, NULL)),
			 "ApplyR a ua1; ApplyR b ub25; ApplyR c uc1; "
			 "DeleteR d ud1");
	cr_assert_gt(entry_seq(g.s, "a"), 0);
	cr_assert_neq(entry_seq(g.s, "a"), entry_seq(g.s, "b"));
	cr_assert_neq(entry_seq(g.s, "b"), entry_seq(g.s, "c"));
	cr_assert_neq(entry_seq(g.s, "a"), entry_seq(g.s, "c"));

	/* The same list again is no change at all. */
	ev(g.w, KF_EV_INIT, NULL);
	ev(g.w, KF_EV_INIT_APPLY, a);
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "b", "ub2", "5", NULL));
	ev1(g.w, KF_EV_INIT_APPLY, mk("Pod", "ns", "c", "uc", "1", NULL));
	ev(g.w, KF_EV_INIT_DONE, NULL);
	cr_assert_str_eq(drain(&g, NULL), "");
	kf_object_unref(a);
	kf_object_unref(a2);
	rig_down(&g);
}

struct long_waiter {
	kf_store *s;
	int64_t timeout;
	kf_err got;
};

static void *
long_wait(void *arg)
{
	struct long_waiter *wt = arg;

	wt->got = kf_store_wait_until_ready(wt->s, wt->timeout);
	return NULL;
}

/* pthread_join() for at most secs seconds: 0, or ETIMEDOUT. */
static int
join_within(pthread_t t, int secs)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += secs;
	return pthread_timedjoin_np(t, NULL, &dl);
}

/* wait_until_ready() cannot come true once the writer is gone: a waiter
 * then gets KF_ECLOSED rather than waiting forever. A huge timeout waits
 * like any other. */
Test(store, waiting_for_readiness_ends_when_the_writer_goes)
{
	kf_writer *w;
	kf_store *s;
	struct long_waiter wt;
	pthread_t t;
	struct timespec pause = {0, 50 * 1000000};

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	wt.s = kf_store_clone(s);
	wt.timeout = INT64_MAX;
	cr_assert_eq(pthread_create(&t, NULL, long_wait, &wt), 0);
	nanosleep(&pause, NULL);
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_DONE, NULL);
	pthread_join(t, NULL);
	cr_assert_eq(wt.got, KF_OK, "INT64_MAX ms is a long wait, not none");

	kf_writer_mark_stale(w, "watch broken");
	wt.timeout = -1;
	cr_assert_eq(pthread_create(&t, NULL, long_wait, &wt), 0);
	nanosleep(&pause, NULL);
	kf_writer_free(w);
	cr_assert_eq(join_within(t, 5), 0, "the waiter still waits");
	cr_assert_eq(wt.got, KF_ECLOSED);
	cr_assert_eq(kf_store_wait_until_ready(s, -1), KF_ECLOSED);
	cr_assert_eq(kf_store_wait_until_ready(s, 0), KF_ECLOSED);
	kf_store_free(wt.s);
	kf_store_free(s);
}

/* Emits "k0".."k39", each twice, a NULL and an empty key. */
static void
dup_index(void *arg, const kf_object *obj, kf_index_emit_fn emit, void *ctx)
{
	char key[16];

	(void)arg;
	(void)obj;
	for (int i = 0; i < 80; i++) {
		snprintf(key, sizeof(key), "k%d", i % 40);
		emit(ctx, key);
	}
	emit(ctx, NULL);
	emit(ctx, "");
}

/* An object may carry tens of thousands of labels (Kubernetes limits
 * their syntax, not their number): applying it must cost about its size,
 * not its label count squared (32 000 labels took 50 s). */
Test(store, many_index_keys_per_object_stay_linear, .timeout = 60)
{
	enum { N = 100000 };
	size_t cap = (size_t)N * 24 + 256, off = 0;
	char *json = malloc(cap), err[128];
	kf_writer *w;
	kf_store *s;
	kf_object *o[2];
	kf_state *st;

	cr_assert_eq(kf_store_alloc(&w, &s), KF_OK);
	cr_assert_eq(kf_writer_add_index(w, "dup", dup_index, NULL), KF_OK);
	for (int v = 0; v < 2; v++) {
		off = (size_t)snprintf(json, cap,
				       "{\"kind\":\"Pod\",\"metadata\":{"
				       "\"name\":\"a\",\"namespace\":\"n\","
				       "\"uid\":\"u\",\"labels\":{");
		for (int i = 0; i < N; i++)
			off += (size_t)snprintf(
			    json + off, cap - off, "%s\"l%d\":\"%d\"",
			    i ? "," : "", i + v * (N / 2), v);
		off += (size_t)snprintf(json + off, cap - off, "}}}");
		cr_assert_eq(
		    kf_object_parse(json, off, NULL, err, sizeof(err), &o[v]),
		    KF_OK, "%s", err);
	}
	ev(w, KF_EV_INIT, NULL);
	ev(w, KF_EV_INIT_APPLY, o[0]);
	ev(w, KF_EV_INIT_DONE, NULL);
	ev(w, KF_EV_APPLY, o[1]);
	ev(w, KF_EV_APPLY, o[0]);
	ev(w, KF_EV_APPLY, o[1]);
	cr_assert_str_eq(index_names(s, "label", "l0=0"), "");
	cr_assert_str_eq(index_names(s, "label", "l50000=1"), "a");
	cr_assert_str_eq(index_names(s, "label", "l149999=1"), "a");
	cr_assert_str_eq(index_names(s, "dup", "k39"), "a");
	cr_assert_str_eq(index_names(s, "dup", ""), "a");
	ev(w, KF_EV_DELETE, o[1]);
	cr_assert_str_eq(index_names(s, "label", "l50000=1"), "");
	cr_assert_eq(kf_store_by_index(s, "dup", "k0", &st), KF_OK);
	cr_assert_eq(kf_state_len(st), 0);
	kf_state_free(st);
	kf_object_unref(o[0]);
	kf_object_unref(o[1]);
	free(json);
	kf_writer_free(w);
	kf_store_free(s);
}

/* ---- re-lists and watch events in random order, against a model ---- */

#define MODEL_KEYS 12

/* What a subscriber knows of one name, from the events alone. */
struct model_view {
	char uid[MODEL_KEYS][16];
	char rv[MODEL_KEYS][16];
	bool has[MODEL_KEYS];
};

static int
model_key(const kf_object *o)
{
	return atoi(kf_object_name(o) + 1);
}

/* Read every event since the last call into v; none may be missed (a lag
 * ends the loop with KF_ELAGGED). */
static void
model_drain(struct rig *g, struct model_view *v)
{
	kf_event e;
	uint64_t seq, missed;
	kf_err err;

	while ((err = kfi_ring_read(g->rd, &e, &seq, &missed)) == KF_OK) {
		int k;

		if (e.obj == NULL)
			continue;
		k = model_key(e.obj);
		if (e.type == KF_EV_APPLY) {
			v->has[k] = true;
			snprintf(v->uid[k], sizeof(v->uid[k]), "%s",
				 kf_object_uid(e.obj));
			snprintf(v->rv[k], sizeof(v->rv[k]), "%s",
				 kf_object_resource_version(e.obj));
		} else if (e.type == KF_EV_DELETE) {
			/* A re-list's delete names an object the subscriber
			 * was told about, with the uid it was told. */
			if (e.flags & KF_EVF_RELIST)
				cr_assert(v->has[k] &&
					      strcmp(v->uid[k],
						     kf_object_uid(e.obj)) == 0,
					  "DeleteR of %s it never had",
					  kf_object_name(e.obj));
			v->has[k] = false;
		}
	}
	cr_assert_eq(err, KF_EAGAIN);
}

/* The view equals the store, name by name. */
static void
model_check(struct rig *g, const struct model_view *v, int round)
{
	kf_state *st;
	int n = 0;

	cr_assert_eq(kf_store_state(g->s, &st), KF_OK);
	for (size_t i = 0; i < kf_state_len(st); i++) {
		const kf_object *o = kf_state_at(st, i);
		int k = model_key(o);

		cr_assert(v->has[k],
			  "round %d: %s in the store, not in the view", round,
			  kf_object_name(o));
		cr_assert_str_eq(v->uid[k], kf_object_uid(o), "round %d: %s",
				 round, kf_object_name(o));
		cr_assert_str_eq(v->rv[k], kf_object_resource_version(o),
				 "round %d: %s", round, kf_object_name(o));
	}
	for (int k = 0; k < MODEL_KEYS; k++)
		n += v->has[k];
	cr_assert_eq((size_t)n, kf_state_len(st), "round %d", round);
	kf_state_free(st);
}

/* One watch event on a random name: a change, a new uid, a delete of
 * what the store holds, or a delete of a name it does not hold. */
static void
model_live(struct rig *g, unsigned *seed, int *rv)
{
	char name[16], uid[16], rvs[16];
	int k = rand_r(seed) % MODEL_KEYS;
	int what = rand_r(seed) % 4;
	kf_objref r;
	kf_object *cur;

	snprintf(name, sizeof(name), "k%d", k);
	r = ref("Pod", "ns", name);
	if (kf_store_get(g->s, &r, &cur) != KF_OK)
		cur = NULL;
	snprintf(rvs, sizeof(rvs), "%d", ++*rv);
	if (what < 2) {
		snprintf(uid, sizeof(uid), "%s",
			 cur != NULL && what == 0 ? kf_object_uid(cur) : "");
		if (uid[0] == '\0')
			snprintf(uid, sizeof(uid), "u%d", *rv);
		ev1(g->w, KF_EV_APPLY, mk("Pod", "ns", name, uid, rvs, NULL));
	} else if (cur != NULL) {
		ev(g->w, KF_EV_DELETE, cur);
	} else {
		ev1(g->w, KF_EV_DELETE,
		    mk("Pod", "ns", name, "gone", rvs, NULL));
	}
	kf_object_unref(cur);
}

/* A re-list of a random part of the names, each as the store holds it,
 * changed, or with a new uid, with watch events between its objects. */
static void
model_relist(struct rig *g, unsigned *seed, int *rv)
{
	ev(g->w, KF_EV_INIT, NULL);
	for (int k = 0; k < MODEL_KEYS; k++) {
		char name[16], uid[16], rvs[16];
		int what = rand_r(seed) % 4;
		kf_objref r;
		kf_object *cur;

		while (rand_r(seed) % 3 == 0)
			model_live(g, seed, rv);
		if (what == 0)
			continue; /* not listed: gone */
		snprintf(name, sizeof(name), "k%d", k);
		r = ref("Pod", "ns", name);
		if (kf_store_get(g->s, &r, &cur) == KF_OK && what == 1) {
			ev(g->w, KF_EV_INIT_APPLY, cur); /* unchanged */
		} else {
			snprintf(rvs, sizeof(rvs), "%d", ++*rv);
			snprintf(uid, sizeof(uid), "%s",
				 cur != NULL && what == 2 ? kf_object_uid(cur)
							  : "");
			if (uid[0] == '\0')
				snprintf(uid, sizeof(uid), "u%d", *rv);
			ev1(g->w, KF_EV_INIT_APPLY,
			    mk("Pod", "ns", name, uid, rvs, NULL));
		}
		kf_object_unref(cur);
	}
	ev(g->w, KF_EV_INIT_DONE, NULL);
}

Test(store, random_relists_and_watch_events_keep_a_subscriber_equal)
{
	struct rig g;
	struct model_view v = {0};
	unsigned seed = 20261204;
	int rv = 0;

	rig_up(&g);
	ev(g.w, KF_EV_INIT, NULL);
	ev(g.w, KF_EV_INIT_DONE, NULL);
	for (int round = 0; round < 3000; round++) {
		if (rand_r(&seed) % 3 == 0)
			model_relist(&g, &seed, &rv);
		else
			model_live(&g, &seed, &rv);
		model_drain(&g, &v);
		model_check(&g, &v, round);
	}
	rig_down(&g);
}

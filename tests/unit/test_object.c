/* kf_object parsing, accessors, field paths, identity, and the built-in
 * transform; the scanner is cross-checked against json-c. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubefan/object.h"
#include "object_int.h"
#include "files.h"

static char *
slurp(const char *name, size_t *len)
{
	char path[512];
	char *s;

	snprintf(path, sizeof(path), "%s/pods/%s", KF_TEST_DATA_DIR, name);
	s = kt_file_read(path, len);
	cr_assert_not_null(s, "open %s", path);
	return s;
}

static kf_object *
parse_ok(const char *json, const char *hint)
{
	char err[128] = "";
	kf_object *obj = NULL;
	kf_err rc =
	    kf_object_parse(json, strlen(json), hint, err, sizeof(err), &obj);

	cr_assert_eq(rc, KF_OK, "%s: %s", json, err);
	return obj;
}

Test(object, pod_metadata_is_parsed_once_and_exactly)
{
	size_t len, jlen;
	char *json = slurp("pod-web.json", &len);
	char err[128];
	kf_object *obj;
	const char *k, *v, *kind, *name, *uid;
	bool ctl;

	cr_assert_eq(
	    kf_object_parse(json, len, "Ignored", err, sizeof(err), &obj),
	    KF_OK, "%s", err);
	cr_assert_eq(memcmp(kf_object_json(obj, &jlen), json, len), 0);
	cr_assert_eq(jlen, len);
	cr_assert_str_eq(kf_object_api_version(obj), "v1");
	cr_assert_str_eq(kf_object_kind(obj), "Pod");
	cr_assert_str_eq(kf_object_namespace(obj), "shop");
	cr_assert_str_eq(kf_object_name(obj), "web-7d4b9c8f6d-x2k9p");
	cr_assert_str_eq(kf_object_uid(obj),
			 "0c6e2b0a-5f0e-4a8e-9d3c-2f1b7a6e4c11");
	cr_assert_str_eq(kf_object_resource_version(obj), "48213");
	cr_assert_str_eq(kf_object_deletion_timestamp(obj), "");
	cr_assert_eq(kf_object_generation(obj), 3);

	cr_assert_eq(kf_object_label_count(obj), 3);
	kf_object_label_at(obj, 2, &k, &v);
	cr_assert_str_eq(k, "tier");
	cr_assert_str_eq(v, "front/end");
	cr_assert_str_eq(kf_object_label(obj, "app"), "web");
	cr_assert_null(kf_object_label(obj, "missing"));
	kf_object_label_at(obj, 3, &k, &v);
	cr_assert_null(k);

	cr_assert_eq(kf_object_annotation_count(obj), 2);
	cr_assert_str_eq(kf_object_annotation(obj, "note"),
			 "caf\xc3\xa9 \xf0\x9f\x98\x80 \"quoted\"");
	cr_assert_str_eq(kf_object_annotation(obj,
					      "kubectl.kubernetes.io/"
					      "last-applied-configuration"),
			 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}\n");

	cr_assert_eq(kf_object_owner_count(obj), 2);
	kf_object_owner_at(obj, 0, &kind, &name, &uid, &ctl);
	cr_assert_str_eq(kind, "ReplicaSet");
	cr_assert_str_eq(name, "web-7d4b9c8f6d");
	cr_assert_str_eq(uid, "9a1f3c2e-1111-4e2b-8c7d-0a9b8c7d6e5f");
	cr_assert(ctl);
	kf_object_owner_at(obj, 1, &kind, &name, &uid, &ctl);
	cr_assert_str_eq(kind, "ConfigMap");
	cr_assert_not(ctl);
	kf_object_unref(obj);
	free(json);
}

Test(object, kind_hint_fills_a_missing_kind_only)
{
	kf_object *a = parse_ok("{\"metadata\":{\"name\":\"x\"}}", "Secret");
	kf_object *b = parse_ok("{\"metadata\":{\"name\":\"x\"}}", NULL);

	cr_assert_str_eq(kf_object_kind(a), "Secret");
	cr_assert_str_eq(kf_object_kind(b), "");
	cr_assert_str_eq(kf_object_namespace(b), "");
	cr_assert_str_eq(kf_object_uid(b), "");
	cr_assert_eq(kf_object_label_count(b), 0);
	cr_assert_eq(kf_object_owner_count(b), 0);
	kf_object_unref(a);
	kf_object_unref(b);
}

Test(object, duplicate_keys_take_the_last_value)
{
	kf_object *o = parse_ok("{\"metadata\":{\"name\":\"a\",\"name\":\"b\","
				"\"labels\":{\"x\":\"1\",\"x\":\"2\"}}}",
				"K");

	const char *k, *v;
	char *buf = malloc(8192), key[16];
	size_t n = 0;

	cr_assert_str_eq(kf_object_name(o), "b");
	cr_assert_str_eq(kf_object_label(o, "x"), "2");
	/* One label, not two: the indexes file the object under x=2 only. */
	cr_assert_eq(kf_object_label_count(o), 1);
	kf_object_label_at(o, 0, &k, &v);
	cr_assert_str_eq(k, "x");
	cr_assert_str_eq(v, "2");
	kf_object_unref(o);

	/* Past 16 pairs (the table path): each key once, at its first
	 * place, with its last value; "\u0061" is the key "a". */
	n += (size_t)sprintf(buf + n, "{\"metadata\":{\"name\":\"m\","
				      "\"annotations\":{\"a\":\"first\"");
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(buf + n, ",\"k%d\":\"%d\"", i % 20, i);
	n += (size_t)sprintf(buf + n, ",\"\\u0061\":\"last\"}}}");
	cr_assert_eq(kf_object_parse(buf, n, "K", NULL, 0, &o), KF_OK);
	cr_assert_eq(kf_object_annotation_count(o), 21);
	kf_object_annotation_at(o, 0, &k, &v);
	cr_assert_str_eq(k, "a");
	cr_assert_str_eq(v, "last");
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		kf_object_annotation_at(o, (size_t)i + 1, &k, &v);
		cr_assert_str_eq(k, key);
		cr_assert_eq(atoi(v), i + 20, "%s=%s", k, v);
	}
	kf_object_unref(o);
	free(buf);

	/* A second metadata replaces the whole first one. */
	o = parse_ok("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
		     "\"uid\":\"u\",\"resourceVersion\":\"7\","
		     "\"generation\":3,\"labels\":{\"x\":\"1\"}},"
		     "\"metadata\":{\"name\":\"b\"}}",
		     "K");
	cr_assert_str_eq(kf_object_name(o), "b");
	cr_assert_str_eq(kf_object_namespace(o), "");
	cr_assert_str_eq(kf_object_uid(o), "");
	cr_assert_str_eq(kf_object_resource_version(o), "");
	cr_assert_eq(kf_object_generation(o), 0);
	cr_assert_eq(kf_object_label_count(o), 0);
	kf_object_unref(o);
}

Test(object, references_keep_the_object_alive)
{
	kf_object *o = parse_ok("{\"metadata\":{\"name\":\"a\"}}", "K");

	cr_assert_eq(kf_object_ref(o), o);
	kf_object_unref(o);
	cr_assert_str_eq(kf_object_name(o), "a");
	kf_object_unref(o);
	kf_object_unref(NULL);
	cr_assert_null(kf_object_ref(NULL));
}

Test(object, bad_input_is_a_parse_error_with_a_reason)
{
	static const char *bad[] = {
	    "",
	    "[]",
	    "{\"metadata\":{\"name\":\"a\"}} x",
	    "{\"metadata\":{\"name\":\"a\",}}",
	    "{\"metadata\":{\"name\":\"a\"}",
	    "{\"metadata\":{\"name\":\"a\\q\"}}",
	    "{\"metadata\":{\"name\":\"a\tb\"}}",
	    "{\"metadata\":{\"name\":\"a\"},\"n\":01}",
	    "{\"metadata\":{\"name\":\"a\"},\"n\":tru}",
	    "{\"metadata\":{\"name\":\"a\"},\"n\":'x'}",
	    "{\"metadata\":{\"name\":\"a\"},\"n\":[1 2]}",
	    "{\"metadata\":{\"name\":\"a\\u12\"}}",
	    "{'metadata':{}}",
	};
	static const char *nameless[] = {
	    "{}",
	    "{\"metadata\":{}}",
	    "{\"metadata\":null}",
	    "{\"metadata\":{\"name\":7}}",
	    "{\"metadata\":{\"name\":\"\"}}",
	    "{\"name\":\"a\"}",
	};
	char err[128];
	kf_object *o = (kf_object *)1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(kf_object_parse(bad[i], strlen(bad[i]), "K", err,
					     sizeof(err), &o),
			     KF_EPARSE, "%s", bad[i]);
		cr_assert_null(o);
		cr_assert(strstr(err, "invalid JSON at byte") != NULL, "%s",
			  err);
	}
	for (size_t i = 0; i < sizeof(nameless) / sizeof(nameless[0]); i++) {
		cr_assert_eq(kf_object_parse(nameless[i], strlen(nameless[i]),
					     "K", err, sizeof(err), &o),
			     KF_EPARSE, "%s", nameless[i]);
		cr_assert_str_eq(err, "object has no metadata.name");
	}
	cr_assert_eq(kf_object_parse(NULL, 0, NULL, NULL, 0, &o), KF_EINVAL);
}

Test(object, deep_nesting_is_bounded)
{
	size_t n = KFI_JSON_MAX_DEPTH + 10, len = 0;
	char *buf = malloc(2 * n + 64);
	kf_object *o;

	len += (size_t)sprintf(buf, "{\"metadata\":{\"name\":\"a\"},\"x\":");
	for (size_t i = 0; i < n; i++)
		buf[len++] = '[';
	for (size_t i = 0; i < n; i++)
		buf[len++] = ']';
	buf[len++] = '}';
	cr_assert_eq(kf_object_parse(buf, len, "K", NULL, 0, &o), KF_EPARSE);
	free(buf);
}

Test(object, field_paths_return_the_exact_json_text)
{
	size_t len;
	char *json = slurp("pod-web.json", &len);
	kf_object *o;
	char *v;

	cr_assert_eq(kf_object_parse(json, len, NULL, NULL, 0, &o), KF_OK);
	cr_assert_eq(kf_object_field(o, "spec.nodeName", &v), KF_OK);
	cr_assert_str_eq(v, "\"node-3\"");
	free(v);
	cr_assert_eq(kf_object_field(o, "spec.containers.1.image", &v), KF_OK);
	cr_assert_str_eq(v, "\"registry.local/proxy:2.0\"");
	free(v);
	cr_assert_eq(kf_object_field(o, "spec.containers.0.ports.0", &v),
		     KF_OK);
	cr_assert_str_eq(v, "{\"containerPort\": 8080, \"protocol\": \"TCP\"}");
	free(v);
	cr_assert_eq(kf_object_field(o, "spec.priority", &v), KF_OK);
	cr_assert_str_eq(v, "-1.5e2");
	free(v);
	cr_assert_eq(kf_object_field(o, "status.message", &v), KF_OK);
	cr_assert_str_eq(v, "null");
	free(v);
	cr_assert_eq(kf_object_field(o, "status.ready", &v), KF_OK);
	cr_assert_str_eq(v, "true");
	free(v);
	cr_assert_eq(kf_object_field(o, "spec.containers.2", &v), KF_ENOTFOUND);
	cr_assert_null(v);
	cr_assert_eq(kf_object_field(o, "spec.nodeName.x", &v), KF_ENOTFOUND);
	cr_assert_eq(kf_object_field(o, "spec.containers.x", &v), KF_ENOTFOUND);
	cr_assert_eq(kf_object_field(o, "nope", &v), KF_ENOTFOUND);
	kf_object_unref(o);
	free(json);
}

Test(object, identity_is_kind_namespace_and_name_only)
{
	kf_object *a =
	    parse_ok("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\","
		     "\"namespace\":\"n\",\"uid\":\"1\"}}",
		     NULL);
	kf_object *b =
	    parse_ok("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\","
		     "\"namespace\":\"n\",\"uid\":\"2\"}}",
		     NULL);
	kf_object *c =
	    parse_ok("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"}}", NULL);
	kf_objref ra = kf_object_objref(a), rb = kf_object_objref(b);
	kf_objref rc = kf_object_objref(c);
	kf_objref hand = {"Pod", "n", "x", NULL, NULL};
	kf_objref nul = {"Pod", NULL, "x", NULL, NULL};

	cr_assert_str_eq(ra.uid, "1");
	cr_assert(kf_objref_equal(&ra, &rb));
	cr_assert_eq(kf_objref_hash(&ra), kf_objref_hash(&rb));
	cr_assert(kf_objref_equal(&ra, &hand));
	cr_assert_eq(kf_objref_hash(&ra), kf_objref_hash(&hand));
	cr_assert_eq(kfi_object_hash(a), kf_objref_hash(&hand));
	cr_assert_not(kf_objref_equal(&ra, &rc));
	cr_assert_neq(kf_objref_hash(&ra), kf_objref_hash(&rc));
	cr_assert(kf_objref_equal(&rc, &nul));
	cr_assert_eq(kf_objref_hash(&rc), kf_objref_hash(&nul));
	cr_assert(kfi_object_same_identity(a, b));
	cr_assert_not(kfi_object_same_identity(a, c));
	kf_object_unref(a);
	kf_object_unref(b);
	kf_object_unref(c);
}

/* ---- the scanner against json-c ---- */

static bool
jsonc_accepts(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(KFI_JSON_MAX_DEPTH);
	struct json_object *o;
	bool ok;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	ok = o != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	     (size_t)json_tokener_get_parse_end(tok) == len;
	if (ok && o == NULL)
		ok = false;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static bool
scanner_accepts(const char *s, size_t len)
{
	struct kfi_json js = {s, s + len, NULL, NULL};
	const char *p = kfi_json_value(&js, s);

	return p != NULL && kfi_json_ws(&js, p) == js.end;
}

Test(object, scanner_agrees_with_json_c_on_mutated_input)
{
	static const char alphabet[] = "{}[]\",:\\ 0123456789.eE+-tfnulrasx/";
	size_t len, agree = 0, accepted = 0;
	char *json = slurp("pod-web.json", &len);
	char *buf = malloc(len + 8);
	unsigned seed = 12345;

	cr_assert(scanner_accepts(json, len));
	cr_assert(jsonc_accepts(json, len));
	for (int round = 0; round < 4000; round++) {
		size_t n = len;

		memcpy(buf, json, len);
		for (int k = 0; k < 1 + round % 3; k++) {
			size_t at = (size_t)rand_r(&seed) % n;
			char c =
			    alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];

			switch (rand_r(&seed) % 3) {
			case 0:
				buf[at] = c;
				break;
			case 1:
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
				break;
			default:
				memmove(buf + at + 1, buf + at, n - at);
				buf[at] = c;
				n++;
			}
		}
		/* json-c reads the tail as a truncated literal where it can;
		 * compare on what both can decide: a NUL ends its input. */
		buf[n] = '\0';
		bool a = scanner_accepts(buf, n), b = jsonc_accepts(buf, n);

		cr_assert_eq(a, b, "round %d: scanner %d json-c %d:\n%.*s",
			     round, a, b, (int)n, buf);
		agree++;
		accepted += a;
	}
	cr_assert_eq(agree, 4000);
	cr_assert(accepted > 50, "too few mutations stayed valid: %zu",
		  accepted);
	free(buf);
	free(json);
}

/* ---- the transform ---- */

static struct json_object *
tree(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, s, (int)len);

	cr_assert_not_null(o, "json-c rejects: %.*s", (int)len, s);
	json_tokener_free(tok);
	return o;
}

static void
check_strip(const char *json, size_t len, void *arg)
{
	struct json_object *want = tree(json, len), *meta, *ann;
	struct json_object *got;
	char *out;
	size_t outlen;

	if (json_object_object_get_ex(want, "metadata", &meta) &&
	    json_object_is_type(meta, json_type_object)) {
		json_object_object_del(meta, "managedFields");
		if (arg != NULL &&
		    json_object_object_get_ex(meta, "annotations", &ann))
			json_object_object_del(ann,
					       "kubectl.kubernetes.io/"
					       "last-applied-configuration");
	}
	cr_assert_eq(
	    kf_transform_strip_managed_fields(arg, json, len, &out, &outlen),
	    KF_OK);
	if (out == NULL) {
		got = tree(json, len);
	} else {
		cr_assert_lt(outlen, len);
		got = tree(out, outlen);
	}
	cr_assert(json_object_equal(want, got), "got %.*s",
		  (int)(out ? outlen : len), out ? out : json);
	json_object_put(want);
	json_object_put(got);
	free(out);
}

Test(transform, strip_drops_managed_fields_and_keeps_the_rest)
{
	size_t len;
	char *json = slurp("pod-web.json", &len);
	char *out;
	size_t outlen;

	check_strip(json, len, NULL);
	check_strip(json, len, (void *)1);
	cr_assert_eq(
	    kf_transform_strip_managed_fields(NULL, json, len, &out, &outlen),
	    KF_OK);
	cr_assert_null(memmem(out, outlen, "managedFields", 13));
	cr_assert_not_null(memmem(out, outlen, "last-applied", 12));
	free(out);
	free(json);

	json = slurp("node-a.json", &len);
	check_strip(json, len, NULL);
	free(json);
}

Test(transform, strip_handles_every_member_position)
{
	static const char *docs[] = {
	    "{\"metadata\":{\"managedFields\":[]}}",
	    "{\"metadata\":{\"managedFields\":[],\"name\":\"a\"}}",
	    "{\"metadata\":{\"name\":\"a\", \"managedFields\":[1]}}",
	    "{ \"metadata\" : { \"a\":1 ,\"managedFields\" : {} , \"b\":2 } }",
	    "{\"metadata\":{\"managedFields\":1,\"managedFields\":2}}",
	    "{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/"
	    "last-applied-configuration\":\"x\"}}}",
	    "{\"metadata\":{\"annotations\":{\"a\":\"b\",\"kubectl."
	    "kubernetes.io/last-applied-configuration\":\"x\"},"
	    "\"managedFields\":[]}}",
	    "{\"spec\":{\"managedFields\":[]},\"metadata\":{}}",
	    "{\"metadata\":null}",
	};
	char *out;
	size_t outlen;
	const char *same = "{\"spec\":{\"managedFields\":[]},\"metadata\":{}}";

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		check_strip(docs[i], strlen(docs[i]), NULL);
		check_strip(docs[i], strlen(docs[i]), (void *)1);
	}
	cr_assert_eq(kf_transform_strip_managed_fields(
			 NULL, docs[3], strlen(docs[3]), &out, &outlen),
		     KF_OK);
	cr_assert_eq(outlen,
		     strlen("{ \"metadata\" : { \"a\":1 , \"b\":2 } }"));
	cr_assert_eq(
	    memcmp(out, "{ \"metadata\" : { \"a\":1 , \"b\":2 } }", outlen), 0);
	free(out);
	cr_assert_eq(kf_transform_strip_managed_fields(NULL, same, strlen(same),
						       &out, &outlen),
		     KF_OK);
	cr_assert_null(out);
	cr_assert_eq(kf_transform_strip_managed_fields(NULL, "{\"a\":", 5, &out,
						       &outlen),
		     KF_EPARSE);
	cr_assert_null(out);
}

Test(object, many_labels_annotations_and_owners_grow_past_the_stack)
{
	char *buf = malloc(65536), k[32], v[32];
	size_t n = 0;
	kf_object *o;
	const char *kind, *name, *uid, *key, *val;
	bool ctl;

	n += (size_t)sprintf(buf + n, "{\"metadata\":{\"name\":\"big\","
				      "\"labels\":{");
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(buf + n, "%s\"l%d\":\"v%d\"", i ? "," : "",
				     i, i);
	n += (size_t)sprintf(buf + n, "},\"annotations\":{");
	for (int i = 0; i < 33; i++)
		n += (size_t)sprintf(buf + n, "%s\"a%d\":\"w%d\"", i ? "," : "",
				     i, i);
	n += (size_t)sprintf(buf + n, "},\"ownerReferences\":[");
	for (int i = 0; i < 9; i++)
		n += (size_t)sprintf(buf + n,
				     "%s{\"kind\":\"K\",\"name\":\"o%d\","
				     "\"uid\":\"u%d\",\"controller\":%s}",
				     i ? "," : "", i, i,
				     i == 8 ? "true" : "false");
	n += (size_t)sprintf(buf + n, "]}}");
	cr_assert_eq(kf_object_parse(buf, n, "K", NULL, 0, &o), KF_OK);
	cr_assert_eq(kf_object_label_count(o), 40);
	cr_assert_eq(kf_object_annotation_count(o), 33);
	cr_assert_eq(kf_object_owner_count(o), 9);
	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "l%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		cr_assert_str_eq(kf_object_label(o, k), v);
		kf_object_label_at(o, (size_t)i, &key, &val);
		cr_assert_str_eq(key, k);
	}
	cr_assert_str_eq(kf_object_annotation(o, "a32"), "w32");
	kf_object_owner_at(o, 8, &kind, &name, &uid, &ctl);
	cr_assert_str_eq(name, "o8");
	cr_assert(ctl);
	kf_object_owner_at(o, 9, &kind, &name, &uid, &ctl);
	cr_assert_null(name);
	cr_assert_not(ctl);
	kf_object_unref(o);
	free(buf);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

Test(object, identity_hash_spreads_similar_names)
{
	enum { N = 100000, B = 1 << 12 };
	uint64_t *h = malloc(N * sizeof(*h));
	unsigned *bucket = calloc(B, sizeof(*bucket)), top = 0, hi = 0;
	char name[64], ns[32];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "web-7d4b9c8f6d-%05d", i);
		snprintf(ns, sizeof(ns), "team-%d", i % 7);
		h[i] = kfi_identity_hash("Pod", ns, name);
		bucket[h[i] & (B - 1)]++;
		hi += (unsigned)(h[i] >> 63);
	}
	for (int i = 0; i < B; i++)
		top = bucket[i] > top ? bucket[i] : top;
	/* About 24 per bucket; a poor mix piles them up. */
	cr_assert_lt(top, 60, "fullest low-bits bucket holds %u", top);
	cr_assert(hi > N * 45 / 100 && hi < N * 55 / 100, "top bit %u", hi);
	qsort(h, N, sizeof(*h), cmp_u64);
	for (int i = 1; i < N; i++)
		cr_assert_neq(h[i], h[i - 1], "64-bit collision");
	cr_assert_neq(kfi_identity_hash("a", "b", "c"),
		      kfi_identity_hash("b", "a", "c"));
	cr_assert_neq(kfi_identity_hash("", "", "abcdefgh"),
		      kfi_identity_hash("", "abcdefgh", ""));
	cr_assert_neq(kfi_identity_hash("Pod", "", "abcdefghi"),
		      kfi_identity_hash("Pod", "", "abcdefghj"));
	free(h);
	free(bucket);
}

/* kfi_object_ident_eq() with the hash forced equal, as in a collision:
 * the lengths and then every byte decide, and a key longer than the
 * stored string is never read against memory past it. */
static kf_object *
named(const char *ns, const char *name)
{
	size_t len = strlen(name) + 200;
	char *json = malloc(len);
	kf_object *o;
	char err[128];

	snprintf(json, len,
		 "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
		 "\"namespace\":\"%s\"}}",
		 name, ns);
	cr_assert_eq(
	    kf_object_parse(json, strlen(json), NULL, err, sizeof(err), &o),
	    KF_OK, "%s", err);
	free(json);
	return o;
}

static bool
eq_forced(const kf_object *o, const char *ns, const char *name)
{
	struct kfi_ident id;

	kfi_ident_init(&id, "Pod", ns, name);
	id.hash = kfi_object_hash(o);
	return kfi_object_ident_eq(o, &id);
}

Test(object, identity_compare_decides_on_bytes_when_hashes_collide)
{
	static const char *const pairs[][2] = {
	    {"abc", "abd"},
	    {"abcd", "abce"},
	    {"abcd", "bbcd"},
	    {"abcdefgh", "abcdefgi"},
	    {"abcdefgh", "bbcdefgh"},
	    {"abcdefghi", "abcdefghj"},
	    {"0123456789abcdefg", "0123456789abcdefh"},
	    {"0123456789abcdefg", "0123456789abcdeFg"},
	    {"0123456789abcdefg", "0123456789abcdef"},
	};
	size_t big = 70000, huge = 300000;
	char *b = malloc(huge + 1);
	kf_object *o;

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		o = named("ns", pairs[i][0]);
		cr_assert(eq_forced(o, "ns", pairs[i][0]), "%s", pairs[i][0]);
		cr_assert_not(eq_forced(o, "ns", pairs[i][1]), "%s vs %s",
			      pairs[i][0], pairs[i][1]);
		cr_assert_not(eq_forced(o, "nt", pairs[i][0]));
		kf_object_unref(o);
	}

	/* Longer than the 16-bit length field: measured again. */
	memset(b, 'x', huge);
	b[big] = '\0';
	o = named("ns", b);
	cr_assert(eq_forced(o, "ns", b));
	b[big - 1] = 'y';
	cr_assert_not(eq_forced(o, "ns", b));
	b[big - 1] = 'x';
	b[big] = 'x';
	b[huge] = '\0';
	cr_assert_not(eq_forced(o, "ns", b), "a longer key: no overread");
	kf_object_unref(o);
	/* A stored name one byte longer than the key, both past 16 bits. */
	b[big + 1] = '\0';
	o = named("ns", b);
	b[big] = '\0';
	cr_assert_not(eq_forced(o, "ns", b), "a shorter key");
	kf_object_unref(o);
	free(b);
}

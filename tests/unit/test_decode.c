/*
 * Decoding watch lines, list pages and Status bodies: exact bytes kept,
 * types recognised, resume versions read from the right place.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define LINE(s) s, sizeof(s) - 1

static struct kfi_ingest no_hint = {0};

Test(decode, an_added_line_keeps_the_objects_exact_bytes)
{
	static const char obj[] =
	    "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\","
	    "\"namespace\":\"n\",\"resourceVersion\":\"101\"},"
	    "\"data\":{\"k\":\"caf\xc3\xa9 \\u00e9 \\\"q\\\" "
	    "\xf0\x9f\x98\x80\"}}";
	char line[512], err[256];
	struct kfi_wevent ev;
	const char *json;
	size_t len;

	snprintf(line, sizeof(line), "{\"type\":\"ADDED\",\"object\":%s}", obj);
	cr_assert_eq(kfi_decode_event(line, strlen(line), &no_hint, err,
				      sizeof(err), &ev),
		     KF_OK, "%s", err);
	cr_assert_eq(ev.type, KFI_W_ADDED);
	cr_assert_str_eq(ev.rv, "101");
	json = kf_object_json(ev.obj, &len);
	cr_assert_eq(len, strlen(obj));
	cr_assert_eq(memcmp(json, obj, len), 0);
	cr_assert_str_eq(kf_object_name(ev.obj), "a");
	cr_assert_str_eq(kf_object_kind(ev.obj), "ConfigMap");
	kf_object_unref(ev.obj);
}

Test(decode, key_order_and_whitespace_do_not_matter)
{
	char err[256];
	struct kfi_wevent ev;
	struct kfi_ingest hint = {.kind_hint = "Secret"};

	cr_assert_eq(
	    kfi_decode_event(LINE(" { \"object\" : {\"metadata\":{\"name\":"
				  "\"s\",\"resourceVersion\":\"7\"}} , "
				  "\"type\" : \"DELETED\" } "),
			     &hint, err, sizeof(err), &ev),
	    KF_OK, "%s", err);
	cr_assert_eq(ev.type, KFI_W_DELETED);
	cr_assert_str_eq(ev.rv, "7");
	cr_assert_str_eq(kf_object_kind(ev.obj), "Secret");
	kf_object_unref(ev.obj);
}

Test(decode, a_bookmark_gives_its_version_and_no_object)
{
	char err[256];
	struct kfi_wevent ev;

	cr_assert_eq(
	    kfi_decode_event(LINE("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
				  "\"ConfigMap\",\"metadata\":{"
				  "\"resourceVersion\":\"5000\"}}}"),
			     &no_hint, err, sizeof(err), &ev),
	    KF_OK, "%s", err);
	cr_assert_eq(ev.type, KFI_W_BOOKMARK);
	cr_assert_null(ev.obj);
	cr_assert_str_eq(ev.rv, "5000");
	cr_assert_not(ev.initial_events_end);

	cr_assert_eq(
	    kfi_decode_event(LINE("{\"type\":\"BOOKMARK\",\"object\":{"
				  "\"metadata\":{\"resourceVersion\":\"9\","
				  "\"annotations\":{\"k8s.io/"
				  "initial-events-end\":\"true\"}}}}"),
			     &no_hint, err, sizeof(err), &ev),
	    KF_OK);
	cr_assert(ev.initial_events_end);
	cr_assert_str_eq(ev.rv, "9");
}

Test(decode, error_lines_give_the_status_and_never_a_version)
{
	char err[256];
	struct kfi_wevent ev;

	cr_assert_eq(
	    kfi_decode_event(LINE("{\"type\":\"ERROR\",\"object\":{\"kind\":"
				  "\"Status\",\"apiVersion\":\"v1\","
				  "\"metadata\":{},\"status\":\"Failure\","
				  "\"message\":\"too old resource version: "
				  "100 (250)\",\"reason\":\"Expired\","
				  "\"code\":410}}"),
			     &no_hint, err, sizeof(err), &ev),
	    KF_OK);
	cr_assert_eq(ev.type, KFI_W_ERROR);
	cr_assert_eq(ev.status.code, 410);
	cr_assert_str_eq(ev.status.reason, "Expired");
	cr_assert_str_eq(ev.status.message,
			 "too old resource version: 100 (250)");
	cr_assert_str_eq(ev.rv, "");

	/* No metadata at all, and code 500. */
	cr_assert_eq(kfi_decode_event(
			 LINE("{\"type\":\"ERROR\",\"object\":{\"code\":500,"
			      "\"message\":\"boom\"}}"),
			 &no_hint, err, sizeof(err), &ev),
		     KF_OK);
	cr_assert_eq(ev.status.code, 500);
	cr_assert_str_eq(ev.rv, "");
}

Test(decode, unknown_types_are_recognised_as_unknown)
{
	char err[256];
	struct kfi_wevent ev;

	cr_assert_eq(kfi_decode_event(LINE("{\"type\":\"SYNC\",\"object\":{}}"),
				      &no_hint, err, sizeof(err), &ev),
		     KF_OK);
	cr_assert_eq(ev.type, KFI_W_UNKNOWN);
	cr_assert_str_eq(ev.type_name, "SYNC");
	cr_assert_null(ev.obj);
}

Test(decode, malformed_lines_say_what_was_wrong)
{
	static const struct {
		const char *line;
		const char *why;
	} bad[] = {
	    {"not json", "not one JSON object"},
	    {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"",
	     "not one JSON object"},
	    {"{\"object\":{}}", "without a string \"type\""},
	    {"{\"type\":\"ADDED\"}", "without an \"object\""},
	    {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}",
	     "metadata.name"},
	    {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
	     "resourceVersion"},
	    {"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
	     "resourceVersion"},
	    {"{\"type\":\"ADDED\",\"object\":{}} trailing",
	     "not one JSON object"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct kfi_wevent ev;

		cr_assert_eq(kfi_decode_event(bad[i].line, strlen(bad[i].line),
					      &no_hint, err, sizeof(err), &ev),
			     KF_EPARSE, "line %zu", i);
		cr_assert_null(ev.obj);
		cr_assert(strstr(err, bad[i].why) != NULL, "line %zu: %s", i,
			  err);
	}
}

struct items {
	kf_object *objs[16];
	size_t n;
};

static kf_err
keep(void *arg, kf_object *obj)
{
	struct items *it = arg;

	it->objs[it->n++] = obj;
	return KF_OK;
}

static void
items_free(struct items *it)
{
	for (size_t i = 0; i < it->n; i++)
		kf_object_unref(it->objs[i]);
}

Test(decode, a_list_page_gives_items_version_and_continue)
{
	static const char body[] =
	    "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\","
	    "\"metadata\":{\"resourceVersion\":\"500\",\"continue\":\"C1\"},"
	    "\"items\":[{\"metadata\":{\"name\":\"x\",\"resourceVersion\":"
	    "\"480\"}},\n {\"metadata\":{\"name\":\"y\","
	    "\"resourceVersion\":\"20\"},\"data\":{\"a\":\"]}\"}}]}";
	struct kfi_list_meta m;
	struct items it = {0};
	char err[256];

	cr_assert_eq(kfi_decode_list(LINE(body), &no_hint, keep, &it, err,
				     sizeof(err), &m),
		     KF_OK, "%s", err);
	cr_assert_str_eq(m.rv, "500");
	cr_assert_str_eq(m.cont, "C1");
	cr_assert_str_eq(m.kind, "ConfigMapList");
	cr_assert_eq(m.items, 2);
	cr_assert_eq(it.n, 2);
	cr_assert_str_eq(kf_object_name(it.objs[1]), "y");
	cr_assert_str_eq(kf_object_kind(it.objs[0]), "ConfigMap");
	cr_assert_str_eq(kf_object_resource_version(it.objs[1]), "20");
	free(m.cont);
	items_free(&it);
}

Test(decode, bad_items_are_skipped_and_counted_and_bad_lists_refused)
{
	struct kfi_list_meta m;
	struct items it = {0};
	char err[256];

	cr_assert_eq(
	    kfi_decode_list(LINE("{\"metadata\":{\"resourceVersion\":\"3\"},"
				 "\"items\":[{\"metadata\":{}},{\"metadata\":"
				 "{\"name\":\"ok\"}}]}"),
			    &no_hint, keep, &it, err, sizeof(err), &m),
	    KF_OK);
	cr_assert_eq(m.items, 1);
	cr_assert_eq(m.bad_items, 1);
	cr_assert(strstr(err, "list item 0") != NULL, "%s", err);
	cr_assert_null(m.cont);
	items_free(&it);

	it.n = 0;
	cr_assert_eq(kfi_decode_list(LINE("{\"items\":[]}"), &no_hint, keep,
				     &it, err, sizeof(err), &m),
		     KF_EPARSE);
	cr_assert(strstr(err, "metadata") != NULL, "%s", err);
	cr_assert_eq(kfi_decode_list(LINE("{\"metadata\":{\"resourceVersion\""
					  ":\"1\"},\"items\":{}}"),
				     &no_hint, keep, &it, err, sizeof(err), &m),
		     KF_EPARSE);
	cr_assert_eq(kfi_decode_list(LINE("<html>"), &no_hint, keep, &it, err,
				     sizeof(err), &m),
		     KF_EPARSE);
	cr_assert_eq(kfi_decode_list(LINE("{\"metadata\":{\"resourceVersion\""
					  ":\"1\"},\"items\":null}"),
				     &no_hint, keep, &it, err, sizeof(err), &m),
		     KF_OK);
	cr_assert_eq(it.n, 0);
}

Test(decode, status_bodies_and_plain_text)
{
	struct kfi_status st;

	cr_assert_eq(
	    kfi_decode_status(LINE("{\n\"kind\": \"Status\",\n\"code\": 403,\n"
				   "\"reason\": \"Forbidden\",\n\"message\": "
				   "\"no\"\n}\n"),
			      &st),
	    KF_OK);
	cr_assert_eq(st.code, 403);
	cr_assert_str_eq(st.reason, "Forbidden");
	cr_assert_str_eq(st.message, "no");
	cr_assert_eq(kfi_decode_status(LINE("Internal Server Error\n"), &st),
		     KF_EPARSE);
	cr_assert_eq(st.code, 0);
}

Test(decode, resource_versions_compare_only_when_decimal)
{
	cr_assert_eq(kfi_rv_compare("100", "99"), 1);
	cr_assert_eq(kfi_rv_compare("99", "100"), -1);
	cr_assert_eq(kfi_rv_compare("5", "5"), 0);
	cr_assert_eq(kfi_rv_compare("abc", "5"), 2);
	cr_assert_eq(kfi_rv_compare("", "5"), 2);
}

/*
 * Newline framing: the same lines come out whatever the chunking, and an
 * over-limit line costs bounded memory.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"

struct got {
	char *lines[64];
	size_t lens[64];
	int n;
	int oversize;
	size_t oversize_len;
	int stop_after; /* stop the feed after this many lines, 0: never */
};

static int
collect(void *arg, const char *line, size_t len)
{
	struct got *g = arg;

	if (line == NULL) {
		g->oversize++;
		g->oversize_len = len;
		return 0;
	}
	cr_assert_lt(g->n, 64);
	g->lines[g->n] = malloc(len + 1);
	memcpy(g->lines[g->n], line, len);
	g->lines[g->n][len] = '\0';
	g->lens[g->n] = len;
	g->n++;
	return (g->stop_after && g->n == g->stop_after) ? 7 : 0;
}

static void
got_free(struct got *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->lines[i]);
}

/* A MODIFIED line with 2-, 3- and 4-byte UTF-8, an escape and an escaped
 * quote, followed by a second event. */
static const char two_events[] =
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\"},"
    "\"data\":{\"k\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
    "\\u00e9 \\\"q\\\"\"}}}\n"
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\n";

static void
feed_in_pieces(struct kfi_framer *f, const char *data, size_t len, size_t piece,
	       struct got *g)
{
	for (size_t at = 0; at < len; at += piece) {
		size_t k = len - at < piece ? len - at : piece;

		cr_assert_eq(kfi_framer_feed(f, data + at, k, collect, g), 0);
	}
}

Test(framer, every_chunking_gives_the_same_byte_identical_lines)
{
	size_t len = strlen(two_events);
	const char *nl = strchr(two_events, '\n');
	size_t first = (size_t)(nl - two_events);

	for (size_t piece = 1; piece <= len; piece++) {
		struct kfi_framer f;
		struct got g = {0};

		kfi_framer_init(&f, 1 << 20);
		feed_in_pieces(&f, two_events, len, piece, &g);
		cr_assert_eq(g.n, 2, "piece %zu", piece);
		cr_assert_eq(g.lens[0], first);
		cr_assert_eq(memcmp(g.lines[0], two_events, first), 0,
			     "piece %zu", piece);
		cr_assert_str_eq(g.lines[1],
				 "{\"type\":\"ADDED\",\"object\":"
				 "{\"metadata\":{\"name\":\"b\"}}}");
		cr_assert_eq(kfi_framer_pending(&f), 0);
		got_free(&g);
		kfi_framer_fini(&f);
	}
}

Test(framer, splits_at_every_offset_of_two_events)
{
	size_t len = strlen(two_events);

	/* Two pieces cut at every offset: inside each UTF-8 sequence,
	 * inside the escapes, and at the end of one event with the start
	 * of the next. */
	for (size_t cut = 0; cut <= len; cut++) {
		struct kfi_framer f;
		struct got g = {0};

		kfi_framer_init(&f, 1 << 20);
		kfi_framer_feed(&f, two_events, cut, collect, &g);
		kfi_framer_feed(&f, two_events + cut, len - cut, collect, &g);
		cr_assert_eq(g.n, 2, "cut %zu", cut);
		cr_assert_eq(strlen(g.lines[0]) + strlen(g.lines[1]) + 2, len);
		got_free(&g);
		kfi_framer_fini(&f);
	}
}

Test(framer, carriage_returns_and_blank_lines_are_dropped)
{
	struct kfi_framer f;
	struct got g = {0};
	const char in[] = "\n\r\n{\"a\":1}\r\n\n{\"b\":2}\n";

	kfi_framer_init(&f, 1024);
	kfi_framer_feed(&f, in, strlen(in), collect, &g);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.lines[0], "{\"a\":1}");
	cr_assert_str_eq(g.lines[1], "{\"b\":2}");
	got_free(&g);
	kfi_framer_fini(&f);
}

Test(framer, a_three_mib_line_in_16_kib_chunks_then_a_small_one)
{
	size_t big = 3u << 20, len = big + 1 + 8 + 1;
	char *data = malloc(len);
	struct kfi_framer f;
	struct got g = {0};

	memset(data, 'A', big);
	data[big] = '\n';
	memcpy(data + big + 1, "{\"x\":1}", 7);
	data[big + 8] = '\n';
	len = big + 9;
	kfi_framer_init(&f, 16u << 20);
	feed_in_pieces(&f, data, len, 16384, &g);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(g.lens[0], big);
	cr_assert_eq(memcmp(g.lines[0], data, big), 0);
	cr_assert_str_eq(g.lines[1], "{\"x\":1}");
	cr_assert_eq(f.oversize, 0);
	got_free(&g);
	kfi_framer_fini(&f);
	free(data);
}

Test(framer, an_over_limit_line_is_reported_once_and_never_buffered)
{
	struct kfi_framer f;
	struct got g = {0};
	char chunk[4096];

	memset(chunk, 'B', sizeof(chunk));
	kfi_framer_init(&f, 10000);
	kfi_framer_feed(&f, "{\"ok\":1}\n", 9, collect, &g);
	/* 1 MiB of one line: the buffer never grows past the limit. */
	for (int i = 0; i < 256; i++) {
		kfi_framer_feed(&f, chunk, sizeof(chunk), collect, &g);
		cr_assert_leq(f.cap, 10000);
		cr_assert_leq(kfi_framer_pending(&f), 10000);
		if (i >= 2) /* past the limit: nothing kept */
			cr_assert_eq(kfi_framer_pending(&f), 0);
	}
	cr_assert_eq(g.oversize, 1);
	cr_assert_gt(g.oversize_len, 10000);
	cr_assert_eq(f.oversize, 1);
	kfi_framer_feed(&f, "BBB\n{\"after\":2}\n", 16, collect, &g);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.lines[0], "{\"ok\":1}");
	cr_assert_str_eq(g.lines[1], "{\"after\":2}");
	got_free(&g);
	kfi_framer_fini(&f);
}

Test(framer, a_whole_over_limit_line_in_one_feed_is_reported)
{
	struct kfi_framer f;
	struct got g = {0};
	const char in[] = "{\"a\":\"0123456789\"}\n{\"b\":1}\n";

	kfi_framer_init(&f, 12);
	kfi_framer_feed(&f, in, strlen(in), collect, &g);
	cr_assert_eq(g.oversize, 1);
	cr_assert_eq(g.oversize_len, 18);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.lines[0], "{\"b\":1}");
	got_free(&g);
	kfi_framer_fini(&f);
}

Test(framer, a_line_at_exactly_the_limit_passes)
{
	struct kfi_framer f;
	struct got g = {0};

	kfi_framer_init(&f, 7);
	kfi_framer_feed(&f, "{\"a\":", 5, collect, &g);
	kfi_framer_feed(&f, "1}\n", 3, collect, &g);
	kfi_framer_feed(&f, "{\"a\":12}\n", 9, collect, &g);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.lines[0], "{\"a\":1}");
	cr_assert_eq(g.oversize, 1);
	got_free(&g);
	kfi_framer_fini(&f);
}

Test(framer, a_callback_can_stop_the_feed_and_finish_flushes_the_tail)
{
	struct kfi_framer f;
	struct got g = {.stop_after = 1};
	const char in[] = "{\"a\":1}\n{\"b\":2}\n";

	kfi_framer_init(&f, 100);
	cr_assert_eq(kfi_framer_feed(&f, in, strlen(in), collect, &g), 7);
	cr_assert_eq(g.n, 1);
	g.stop_after = 0;
	kfi_framer_reset(&f);
	kfi_framer_feed(&f, "{\"c\":3}", 7, collect, &g);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(kfi_framer_finish(&f, collect, &g), 0);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.lines[1], "{\"c\":3}");
	got_free(&g);
	kfi_framer_fini(&f);
}

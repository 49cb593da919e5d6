/*
 * A scriptable fake API server for exact protocol tests: a thread in the
 * test process listening on 127.0.0.1 (a free port), speaking HTTP/1.1,
 * answering each request, in arrival order, with the next response of its
 * transcript, and logging every request (method, path, query parameters).
 * When the transcript runs out, further requests get no answer (they hang
 * silently until the server stops).
 *
 * Transcript syntax, one directive per line ('#' starts a comment line):
 *
 *   request            starts the response to the next request
 *   status CODE [TEXT] status line (default 200 OK)
 *   header NAME: VALUE  a response header (Content-Type defaults to
 *                      application/json)
 *   length             send the body with Content-Length at `end`
 *                      (default: chunked, each send is one or more chunks)
 *   line TEXT          append TEXT and a newline to the pending bytes
 *   raw TEXT           append TEXT with escapes \n \r \t \\ \xHH
 *   fill N C           append N copies of the character C
 *   send               send the pending bytes as one chunk
 *   chunks N           send the pending bytes in chunks of N bytes
 *   split A B ...      send the pending bytes cut at those offsets
 *   sleep MS           pause
 *   hang               send nothing more, keep the connection open
 *   close              close the connection now (a chunked body is left
 *                      unfinished)
 *   end                finish the response (the last chunk, or the whole
 *                      length body); implied at the end of a request
 *
 * Headers go out with the first send (or at end). All calls are safe from
 * any thread.
 */
#ifndef KF_TEST_FAKESERVER_H
#define KF_TEST_FAKESERVER_H

#include <stdbool.h>
#include <stddef.h>

struct fs_server;

struct fs_request {
	char method[16];
	char *path;  /* without the query */
	char *query; /* raw, "" when none */
	size_t nparams;
	char **keys; /* decoded */
	char **values;
	int conn; /* connection number, from 1 */
};

/* Start a server for a transcript given as text, or read from a file.
 * NULL (and a message on stderr) when the transcript is malformed. */
struct fs_server *fs_start(const char *script);
struct fs_server *fs_start_file(const char *path);

/* A transcript of tests/data/transcripts/. */
#define fs_start_transcript(name)                                              \
	fs_start_file(KF_TEST_DATA_DIR "/transcripts/" name)

/* "http://127.0.0.1:PORT". */
const char *fs_url(struct fs_server *s);

/* Wait until at least n requests arrived; returns the count then (less
 * than n after timeout_ms). */
size_t fs_wait_requests(struct fs_server *s, size_t n, int timeout_ms);
size_t fs_request_count(struct fs_server *s);

/* The i-th request; valid until fs_stop(). */
const struct fs_request *fs_request(struct fs_server *s, size_t i);

/* A query parameter's decoded value, or NULL when absent. */
const char *fs_param(const struct fs_request *r, const char *key);

/* Connections currently open. */
int fs_open_connections(struct fs_server *s);

/* Stop every connection and free the server. */
void fs_stop(struct fs_server *s);

#endif

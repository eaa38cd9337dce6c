/* snapshot.h: the config snapshot served to data planes (docs/snapshot.md), and the long-poll
 * plumbing between the /dp/v1 handler (sync.c), the HTTP server (http.c) and the notifier thread
 * (sync.c) that LISTENs for config changes. */
#ifndef CP_SNAPSHOT_H
#define CP_SNAPSHOT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "tg_buf.h"

/* Reads the config version in one repeatable-read, read-only transaction and, when out is not
 * NULL, appends the whole snapshot document to out in that same transaction. Returns 0, or a
 * negative TG_E* code (out may then hold a partial document; the caller resets it). */
int cp_snapshot_build(PGconn *c, tg_buf_t *out, int64_t *version);

/* ---- long poll (implemented in http.c) ---- */
enum cp_poll_result {
    CP_POLL_SUSPENDED = 1, /* the handler returns without replying; it runs again when woken */
    CP_POLL_TIMED_OUT = 0, /* the deadline passed: answer 304 */
    CP_POLL_STOPPING = -1, /* the server is shutting down: answer 503 */
};
/* Called by a handler with nothing new to say: suspends the current MHD connection until
 * cp_http_wake() or its deadline (set at the first call, timeout_ms from then). MHD worker thread
 * only, from inside a handler. */
int cp_http_long_poll(int64_t timeout_ms);
/* Resumes suspended requests: all of them, or only those whose deadline has passed. They run
 * their handler again on an MHD worker. Any thread. */
void cp_http_wake(int all);

/* ---- notifier (sync.c) ---- */
/* Starts the thread that LISTENs on tollgate_config and wakes the long polls; stops and joins it.
 */
int cp_sync_start(void);
void cp_sync_stop(void);

#endif

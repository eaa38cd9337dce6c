/* conn.h: one client HTTP/1.1 connection: the reader that parses requests one at a time and the
 * writer that answers them. The writer owns the response head (status line, reason phrases,
 * framing, connection: close), chunk framing and the one function that writes an error body.
 * Loop thread only. */
#ifndef DP_CONN_H
#define DP_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "dp.h"
#include "tg_err.h"

/* What a response head says besides its framing. */
typedef struct dp_head {
    int status;
    const char *ctype; /* NUL-terminated, static or borrowed */
    const char *extra; /* header lines, each ending in \r\n; borrowed, may be NULL */
    size_t extra_len;
} dp_head_t;

/* Events the connection reports to the request in flight through its watch. */
enum {
    DP_CONN_EV_DRAINED = 1, /* the write queue fell below DP_WQ_LOW: resume a paused upstream */
    DP_CONN_EV_GONE,        /* the connection closed: the request must not touch it again and
                             * must not call dp_conn_end; it frees itself */
};

typedef struct dp_conn_watch {
    void (*cb)(struct dp_conn_watch *watch, int ev);
} dp_conn_watch_t;

/* What the connection hands its requests to; the worker holds one (set by the server). */
typedef struct dp_conn_handler {
    /* The head of a request is in, its body is not. Returns true after answering a request the
     * head already refuses (the connection then closes with the body unread); head stays the
     * connection's. Never calls dp_conn_end. */
    bool (*on_head)(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head);
    /* A complete request. msg stays the connection's: valid until dp_conn_end or the watch's
     * DP_CONN_EV_GONE, so what the request needs longer it copies (or moves out with
     * dp_http_msg_move). The request ends with dp_conn_end, at once or later, unless its watch
     * got DP_CONN_EV_GONE first. */
    void (*on_request)(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg);
} dp_conn_handler_t;

/* The worker's write corking (dp_conn_cork): set up with the loop, closed with it. The bytes
 * held in one loop iteration, for every connection, are at most DP_CORK_MAX: a burst of reads
 * (thousands of streams that fell behind, each read carrying many events) must not grow a
 * buffer the heap keeps for good; past it, writes leave as they come. */
#define DP_CORK_MAX (64u * 1024u)
void dp_conn_worker_init(dp_worker_t *w);
void dp_conn_worker_close(dp_worker_t *w);

void dp_conn_accept(dp_worker_t *w, uv_stream_t *listener);
/* Starts closing every connection with no request in flight (drain); the rest close after
 * their response. force also aborts requests in flight. */
void dp_conn_close_idle(dp_worker_t *w, bool force);

/* The request in flight wants DP_CONN_EV_* events; watch is borrowed until dp_conn_end or GONE. */
void dp_conn_watch(dp_conn_t *c, dp_conn_watch_t *watch);
/* The request in flight has queued its whole response: the connection reads the next one (from
 * the loop, never from inside this call). */
void dp_conn_end(dp_conn_t *c);

/* Writes a complete response with content-length; head and body are copied when the socket
 * cannot take them at once. */
int dp_conn_respond(dp_conn_t *c, const dp_head_t *h, const char *body, size_t len);
/* Writes the head of a chunked response (transfer-encoding: chunked, cache-control: no-cache). */
int dp_conn_start_chunked(dp_conn_t *c, const dp_head_t *h);
/* Writes one chunk of a chunked response body; len 0 writes the terminating chunk. */
int dp_conn_write_chunk(dp_conn_t *c, const char *data, size_t len);
/* The head and, when len > 0, the first chunk, in one write (one system call, one packet). */
int dp_conn_start_chunked_with(dp_conn_t *c, const dp_head_t *h, const char *data, size_t len);
/* The last chunk, when len > 0, and the terminating chunk, in one write. */
int dp_conn_end_chunked(dp_conn_t *c, const char *data, size_t len);
/* Writes an error response: err's status and message as JSON in the shape of the client's
 * endpoint (DP_EP_*; 0 is OpenAI's), with extra header lines (may be NULL). The only writer of
 * error bodies on the data plane. */
int dp_conn_respond_error(dp_conn_t *c, int endpoint, const tg_err_t *err, const char *extra,
                          size_t extra_len);
/* Holds what is written to c until the end of this loop iteration's I/O, then sends it in one
 * write: the events, end and terminator that one upstream read completes leave together (one
 * system call, one wake-up of the client) instead of one write each. Order is kept; closing
 * sends what is held first. */
void dp_conn_cork(dp_conn_t *c);
/* Bytes queued or held for the client, for back-pressure against DP_WQ_HIGH. */
size_t dp_conn_write_queue(const dp_conn_t *c);
/* The reason phrase of a status ("OK", "Not Found"; a class name for others). */
const char *dp_conn_reason(int status);

#endif

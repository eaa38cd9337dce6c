/* upstream.h: upstream exchanges. One libcurl multi handle per loop, driven by that loop
 * (curl_multi_socket_action with uv_poll and uv_timer), and the exchanges that run on it: each
 * owns a curl easy handle with all its options, the request's URL, headers and body, the answer's
 * buffer, the first-byte and idle deadlines, and reports to its owner through on_head, on_data and
 * on_done. Nothing else in the request path touches curl. Idle exchanges are pooled per loop and
 * keep their handle, options and buffers for the next request. Loop thread only. */
#ifndef DP_UPSTREAM_H
#define DP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tg_buf.h"
#include "tg_err.h"

typedef struct dp_upstream dp_upstream_t;
typedef struct dp_exchange dp_exchange_t;

/* How an exchange ended. */
enum {
    DP_X_OK = 0,
    DP_X_TIMEOUT,   /* curl's connect or total timeout, or the first-byte or idle deadline */
    DP_X_TOO_LARGE, /* a buffered answer passed the response limit */
    DP_X_REFUSED,   /* on_data refused the bytes (they could not be read or relayed) */
    DP_X_FAILED,    /* the provider could not be reached or the transfer broke */
};

/* on_data's answer to pause the transfer: the same bytes come again after dp_exchange_resume. */
#define DP_X_PAUSE 1

typedef struct dp_exchange_cbs {
    /* The answer's first byte arrived: status and content type are known (dp_exchange_status,
     * dp_exchange_ctype). true: the body goes to on_data as it arrives; false: it is buffered up
     * to the response limit and read with dp_exchange_answer once done. */
    bool (*on_head)(void *ud, dp_exchange_t *x);
    /* Streamed body bytes, borrowed for the call: 0 taken, DP_X_PAUSE, or negative to abort
     * (the exchange then ends with DP_X_REFUSED). */
    int (*on_data)(void *ud, const char *p, size_t n);
    /* The exchange ended with DP_X_*; runs once, outside any curl callback. The owner puts it
     * back (dp_exchange_put) when it has read what it needs. */
    void (*on_done)(void *ud, int result);
} dp_exchange_cbs_t;

typedef struct dp_exchange_limits {
    const char *req_id; /* for log lines, borrowed until on_done */
    size_t req_id_len;
    const char *provider; /* likewise */
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;            /* the whole exchange */
    uint32_t first_byte_timeout_ms; /* 0: none */
    uint32_t idle_timeout_ms; /* longest silence between bytes, not counting pauses; 0: none */
} dp_exchange_limits_t;

/* libcurl's process-wide setup and teardown; main thread, before and after every loop. */
int dp_upstream_global_init(void) TG_WUR;
void dp_upstream_global_cleanup(void);

/* max_request: bytes of an upstream request body; max_response: of a buffered answer. */
dp_upstream_t *dp_upstream_create(uv_loop_t *loop, size_t max_request, size_t max_response);
/* Cleans up the multi and the idle exchanges and closes their handles; run the loop afterwards to
 * let them close. Every exchange must have been put back. */
void dp_upstream_destroy(dp_upstream_t *u);

/* An idle exchange (from the pool or new), empty, or NULL when out of memory. */
dp_exchange_t *dp_exchange_get(dp_upstream_t *u);
/* Adds a request header line ("name: value"); a dp_header_add_fn. */
int dp_exchange_add_header(void *x, const char *line) TG_WUR;
/* The request's URL and body, for the caller to write before dp_exchange_start. */
tg_buf_t *dp_exchange_url(dp_exchange_t *x);
tg_buf_t *dp_exchange_body(dp_exchange_t *x);
/* Sends the request (POST) and runs it on the loop; cbs and ud stay borrowed until on_done or
 * dp_exchange_cancel. A 503 in err when curl refuses it. */
int dp_exchange_start(dp_exchange_t *x, const dp_exchange_limits_t *lim,
                      const dp_exchange_cbs_t *cbs, void *ud, tg_err_t *err) TG_WUR;
/* Stops a running exchange at once: the connection is closed and on_done is not called. */
void dp_exchange_cancel(dp_exchange_t *x);
/* Resumes an exchange whose on_data paused it; nothing when it is not paused. */
void dp_exchange_resume(dp_exchange_t *x);
/* Gives an ended or cancelled exchange back to the pool. NULL-safe. */
void dp_exchange_put(dp_exchange_t *x);

/* The answer's HTTP status (0 before any answer). */
int dp_exchange_status(dp_exchange_t *x);
/* The answer's Content-Type, or NULL; valid until the exchange is put back. */
const char *dp_exchange_ctype(dp_exchange_t *x);
/* The answer's retry-after in whole seconds as digits, or "" when it sent none. */
const char *dp_exchange_retry_after(const dp_exchange_t *x);
/* A buffered answer's bytes (never NULL). */
const char *dp_exchange_answer(const dp_exchange_t *x, size_t *len);
/* Why the exchange ended as it did, for logs and messages ("Timeout was reached"). */
const char *dp_exchange_reason(const dp_exchange_t *x);

#endif

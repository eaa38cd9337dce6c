/* http.h: the HTTP/1.1 request front: llhttp driven over untrusted bytes with limits checked
 * before anything is stored. Pure (no I/O), so unit tests and the fuzzer drive it directly. */
#ifndef DP_HTTP_H
#define DP_HTTP_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "tg_buf.h"

typedef struct dp_http_limits {
    size_t max_url;          /* bytes; 414 beyond */
    size_t max_header_bytes; /* all names and values together; 431 beyond */
    size_t max_headers;      /* count; 431 beyond */
    size_t max_body;         /* decoded body bytes; 413 beyond */
} dp_http_limits_t;

#define DP_HTTP_LIMITS_DEFAULT                                                                     \
    {                                                                                              \
        8192, 32768, 100, 4u << 20                                                                 \
    }

/* One parsed request. Buffers are owned; dp_http_take moves them to the caller. */
typedef struct dp_http_msg {
    int method; /* llhttp_method_t */
    tg_buf_t url;
    tg_buf_t authorization;
    tg_buf_t api_key; /* x-api-key */
    tg_buf_t request_id;
    tg_buf_t fallbacks;      /* x-tollgate-fallbacks: aliases to try after the model's own */
    tg_buf_t cache_control;  /* cache-control */
    tg_buf_t anthropic_beta; /* anthropic-beta: passed to Anthropic on native /v1/messages */
    tg_buf_t body;
    bool keep_alive;
    bool expect_continue;
} dp_http_msg_t;

typedef struct dp_http_parser {
    llhttp_t p;
    dp_http_limits_t lim;
    dp_http_msg_t msg;
    char field[32]; /* the current header name, if short enough to be one we read */
    size_t field_len;
    bool field_long;
    tg_buf_t *cur; /* the buffer collecting the current header's value, or NULL */
    size_t header_bytes;
    size_t nheaders;
    bool started;      /* a byte of the current message has arrived */
    bool headers_done; /* the current message's headers are complete */
    bool done;         /* the current message is complete and the parser paused */
    int error_status;  /* when dp_http_feed fails: 400, 413, 414, 431 */
    const char *error_msg;
} dp_http_parser_t;

enum { DP_HTTP_MORE = 0, DP_HTTP_DONE = 1 };

void dp_http_init(dp_http_parser_t *hp, const dp_http_limits_t *lim);
void dp_http_dispose(dp_http_parser_t *hp);
/* Feeds n bytes. DP_HTTP_MORE: all consumed, the message is not complete. DP_HTTP_DONE: a message
 * is complete after *used bytes; take it, then call dp_http_next before feeding the rest.
 * TG_EINVAL/TG_ETOOBIG: the request is bad; error_status and error_msg say why, and the
 * connection must be closed after answering. */
int dp_http_feed(dp_http_parser_t *hp, const char *data, size_t n, size_t *used);
/* Moves the completed message to *out (the caller disposes it with dp_http_msg_dispose). */
void dp_http_take(dp_http_parser_t *hp, dp_http_msg_t *out);
/* Readies the parser for the next request on the same connection. */
void dp_http_next(dp_http_parser_t *hp);
void dp_http_msg_dispose(dp_http_msg_t *m);
/* The request path without its query string. */
void dp_http_path(const dp_http_msg_t *m, const char **path, size_t *len);

#endif

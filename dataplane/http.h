/* http.h: the HTTP/1.1 request front: llhttp driven over untrusted bytes with limits checked
 * before anything is stored. Pure (no I/O), so unit tests and the fuzzer drive it directly.
 * Framing is RFC 9112's, strictly: llhttp runs without any lenient flag, and what llhttp 8.1
 * still lets through (a chunk not followed by CRLF, obs-fold, HTTP/0.9 and HTTP/2.0 request
 * lines, a missing or doubled Host, transfer codings other than chunked) is refused here. */
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

/* One parsed request. Buffers are owned: the parser's message keeps its small header buffers
 * (up to 256 bytes each) from one message to the next on a connection, so a keep-alive request
 * allocates nothing for them; dp_http_take or dp_http_msg_move moves them to the caller. */
typedef struct dp_http_msg {
    int method; /* llhttp_method_t */
    tg_buf_t url;
    tg_buf_t authorization;
    tg_buf_t api_key; /* x-api-key */
    tg_buf_t request_id;
    tg_buf_t fallbacks;      /* x-tollgate-fallbacks: aliases to try after the model's own */
    tg_buf_t cache_control;  /* cache-control */
    tg_buf_t anthropic_beta; /* anthropic-beta: passed to Anthropic on native /v1/messages */
    tg_buf_t host;
    tg_buf_t transfer_encoding;
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
    unsigned nhost;         /* Host field lines in the current message */
    unsigned nte;           /* Transfer-Encoding field lines */
    bool started;           /* a byte of the current message has arrived */
    bool headers_done;      /* the current message's headers are complete */
    bool done;              /* the current message is complete and the parser paused */
    int pause;              /* why llhttp paused: one of the PAUSE_* in http.c */
    bool head_paused;       /* stopped after the headers (DP_HTTP_HEAD) */
    bool lf;                /* the last header byte scanned was LF (obs-fold check) */
    bool in_chunk;          /* inside a chunk's data */
    bool last_chunk;        /* the zero-size chunk has been seen: trailers follow */
    unsigned crlf_seen;     /* 0-2: bytes of the CRLF after a chunk's data checked */
    size_t pos;             /* stream offset of the bytes being fed */
    size_t chunk_line;      /* stream offset where the current chunk header began */
    const char *base, *end; /* the bytes being fed, while dp_http_feed runs */
    int error_status;       /* when dp_http_feed fails: 400, 413, 414, 431, 501, 505 */
    const char *error_msg;  /* static, or error_buf */
    char error_buf[128];
} dp_http_parser_t;

/* DP_HTTP_HEAD: the headers are complete and a body follows; its bytes are not read yet. The
 * caller may refuse the request now (then close the connection) or feed the rest. */
enum { DP_HTTP_MORE = 0, DP_HTTP_DONE = 1, DP_HTTP_HEAD = 2 };

#define DP_HTTP_MAX_CHUNK_LINE 4096 /* a chunk's size line with its extensions, and the CRLF */

void dp_http_init(dp_http_parser_t *hp, const dp_http_limits_t *lim);
void dp_http_dispose(dp_http_parser_t *hp);
/* Feeds n bytes. DP_HTTP_MORE: all consumed, the message is not complete. DP_HTTP_HEAD: the
 * headers end after *used bytes and a body follows; feed the rest to go on. DP_HTTP_DONE: a
 * message is complete after *used bytes; take it, then call dp_http_next before feeding the rest.
 * TG_EINVAL/TG_ETOOBIG: the request is bad; error_status and error_msg say why,
 * and the connection must be closed after answering. */
int dp_http_feed(dp_http_parser_t *hp, const char *data, size_t n, size_t *used);
/* Moves the completed message to *out (the caller disposes it with dp_http_msg_dispose). */
void dp_http_take(dp_http_parser_t *hp, dp_http_msg_t *out);
/* Readies the parser for the next request on the same connection: the message is emptied (its
 * body freed, small header buffers kept for reuse), so what the last request borrowed from it is
 * gone. */
void dp_http_next(dp_http_parser_t *hp);
/* Moves src's buffers to *dst (the caller disposes it with dp_http_msg_dispose) and leaves src
 * empty, with its limits, ready to be filled again. */
void dp_http_msg_move(dp_http_msg_t *dst, dp_http_msg_t *src);
void dp_http_msg_dispose(dp_http_msg_t *m);
/* The request path without its query string; of an absolute-form target
 * ("http://host/v1/models"), the path part (RFC 9112 3.2.2). */
void dp_http_path(const dp_http_msg_t *m, const char **path, size_t *len);

#endif

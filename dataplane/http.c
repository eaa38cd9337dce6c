/* http.c: request front over llhttp; owned by one connection, so loop thread only. Limits are
 * checked in the callbacks before bytes are copied; only the headers the gateway reads are kept. */
#include "http.h"

#include <string.h>

#include "tg_banned.h"

#define MAX_HEADER_VALUE 8192

static int fail(dp_http_parser_t *hp, int status, const char *msg)
{
    hp->error_status = status;
    hp->error_msg = msg;
    return HPE_USER;
}

static void msg_init(dp_http_msg_t *m, const dp_http_limits_t *lim)
{
    memset(m, 0, sizeof(*m));
    tg_buf_init(&m->url, lim->max_url);
    tg_buf_init(&m->authorization, MAX_HEADER_VALUE);
    tg_buf_init(&m->api_key, MAX_HEADER_VALUE);
    tg_buf_init(&m->request_id, MAX_HEADER_VALUE);
    tg_buf_init(&m->fallbacks, MAX_HEADER_VALUE);
    tg_buf_init(&m->cache_control, MAX_HEADER_VALUE);
    tg_buf_init(&m->anthropic_beta, MAX_HEADER_VALUE);
    tg_buf_init(&m->body, lim->max_body);
}

void dp_http_msg_dispose(dp_http_msg_t *m)
{
    tg_buf_dispose(&m->url);
    tg_buf_dispose(&m->authorization);
    tg_buf_dispose(&m->api_key);
    tg_buf_dispose(&m->request_id);
    tg_buf_dispose(&m->fallbacks);
    tg_buf_dispose(&m->cache_control);
    tg_buf_dispose(&m->anthropic_beta);
    tg_buf_dispose(&m->body);
}

static dp_http_parser_t *hp_of(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    hp->started = true;
    return 0;
}

static int count_header_bytes(dp_http_parser_t *hp, size_t len)
{
    if (len > hp->lim.max_header_bytes - hp->header_bytes)
        return fail(hp, 431, "request headers are too large");
    hp->header_bytes += len;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    dp_http_parser_t *hp = hp_of(p);
    if (tg_buf_append(&hp->msg.url, at, len) != 0)
        return fail(hp, 414, "request URL is too long");
    return count_header_bytes(hp, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    dp_http_parser_t *hp = hp_of(p);
    int rc = count_header_bytes(hp, len);
    if (rc != 0)
        return rc;
    /* llhttp 8 accepts SP/HTAB inside a name ("Authorization : x"); RFC 9112 5.1 says reject */
    if (memchr(at, ' ', len) || memchr(at, '\t', len))
        return fail(hp, 400, "invalid request header name");
    /* `at` points into the read buffer and may come in pieces: copy what we may need */
    if (len > sizeof(hp->field) - hp->field_len) {
        hp->field_long = true;
        return 0;
    }
    memcpy(hp->field + hp->field_len, at, len);
    hp->field_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    dp_http_msg_t *m = &hp->msg;
    hp->cur = NULL;
    if (++hp->nheaders > hp->lim.max_headers)
        return fail(hp, 431, "too many request headers");
    if (hp->field_long)
        return 0;
    if (tg_mem_caseeq(hp->field, hp->field_len, "authorization", 13))
        hp->cur = &m->authorization;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "x-api-key", 9))
        hp->cur = &m->api_key;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "x-request-id", 12))
        hp->cur = &m->request_id;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "x-tollgate-fallbacks", 20))
        hp->cur = &m->fallbacks;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "cache-control", 13))
        hp->cur = &m->cache_control;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "anthropic-beta", 14))
        hp->cur = &m->anthropic_beta;
    else if (tg_mem_caseeq(hp->field, hp->field_len, "expect", 6))
        m->expect_continue = true; /* 100-continue is the only expectation HTTP/1.1 defines */
    /* two credentials in one request is ambiguous: refuse rather than pick one */
    if (hp->cur && (hp->cur == &m->authorization || hp->cur == &m->api_key) && hp->cur->len > 0)
        return fail(hp, 400, "duplicate authentication header");
    if (hp->cur)
        tg_buf_reset(hp->cur);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    dp_http_parser_t *hp = hp_of(p);
    int rc = count_header_bytes(hp, len);
    if (rc != 0)
        return rc;
    if (hp->cur && tg_buf_append(hp->cur, at, len) != 0)
        return fail(hp, 431, "a request header value is too large");
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    hp->field_len = 0;
    hp->field_long = false;
    hp->cur = NULL;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    hp->headers_done = true;
    hp->msg.method = p->method;
    hp->msg.keep_alive = llhttp_should_keep_alive(p) != 0;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > hp->lim.max_body)
        return fail(hp, 413, "request body is too large");
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    dp_http_parser_t *hp = hp_of(p);
    int rc = tg_buf_append(&hp->msg.body, at, len);
    if (rc == TG_ETOOBIG)
        return fail(hp, 413, "request body is too large");
    if (rc != 0)
        return fail(hp, 503, "out of memory");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    hp->done = true;
    /* keep-alive is known only now for HTTP/1.0 and Connection headers after the body */
    hp->msg.keep_alive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED; /* one request at a time: pipelined bytes wait their turn */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
};

void dp_http_init(dp_http_parser_t *hp, const dp_http_limits_t *lim)
{
    memset(hp, 0, sizeof(*hp));
    hp->lim = *lim;
    llhttp_init(&hp->p, HTTP_REQUEST, &settings);
    hp->p.data = hp;
    msg_init(&hp->msg, lim);
}

void dp_http_dispose(dp_http_parser_t *hp)
{
    dp_http_msg_dispose(&hp->msg);
}

int dp_http_feed(dp_http_parser_t *hp, const char *data, size_t n, size_t *used)
{
    llhttp_errno_t e = llhttp_execute(&hp->p, data, n);
    if (e == HPE_OK) {
        *used = n;
        return DP_HTTP_MORE;
    }
    if (e == HPE_PAUSED && hp->done) {
        *used = (size_t)(llhttp_get_error_pos(&hp->p) - data);
        return DP_HTTP_DONE;
    }
    *used = 0;
    /* a callback that refused sets error_status; llhttp reports some refusals under its own
     * codes (HPE_CB_HEADERS_COMPLETE for on_headers_complete), so the status decides */
    if (hp->error_status == 0) {
        hp->error_status = 400;
        hp->error_msg = "malformed HTTP request";
    }
    return hp->error_status == 413 || hp->error_status == 431 || hp->error_status == 414
               ? TG_ETOOBIG
               : TG_EINVAL;
}

void dp_http_take(dp_http_parser_t *hp, dp_http_msg_t *out)
{
    *out = hp->msg;
    msg_init(&hp->msg, &hp->lim);
}

void dp_http_next(dp_http_parser_t *hp)
{
    dp_http_msg_dispose(&hp->msg);
    msg_init(&hp->msg, &hp->lim);
    hp->field_len = 0;
    hp->field_long = false;
    hp->cur = NULL;
    hp->header_bytes = 0;
    hp->nheaders = 0;
    hp->started = false;
    hp->headers_done = false;
    hp->done = false;
    llhttp_resume(&hp->p);
}

void dp_http_path(const dp_http_msg_t *m, const char **path, size_t *len)
{
    const char *q = m->url.base ? memchr(m->url.base, '?', m->url.len) : NULL;
    *path = m->url.base ? m->url.base : "";
    *len = q ? (size_t)(q - m->url.base) : m->url.len;
}

/* http.c: request front over llhttp; owned by one connection, so loop thread only. Limits are
 * checked in the callbacks before bytes are copied; only the headers the gateway reads are kept.
 * llhttp (8.1, Debian's node-llhttp) runs with no lenient flag set, so it refuses on its own a
 * Content-Length with Transfer-Encoding, two Content-Lengths, a bad chunk size, bare CR, NUL and
 * bare LF in headers. What it lets through is checked here: see http.h. */
#include "http.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tg_banned.h"

#define MAX_HEADER_VALUE 8192
#define MAX_HOST 1024
#define MAX_TRANSFER_ENCODING 256
/* a header buffer up to this size stays with the parser for the connection's next message, so a
 * keep-alive request allocates nothing for its headers; a larger one is freed */
#define KEEP_VALUE 256

/* Why llhttp stopped with HPE_PAUSED: set by the callback that returned it. */
enum { PAUSE_NONE = 0, PAUSE_HEAD, PAUSE_CHUNK, PAUSE_DONE };

static int fail(dp_http_parser_t *hp, int status, const char *msg)
{
    hp->error_status = status;
    hp->error_msg = msg;
    return HPE_USER;
}

/* A 413 names the limit and the flag that sets it. */
static int fail_body_limit(dp_http_parser_t *hp)
{
    size_t max = hp->lim.max_body;
    const char *unit = "bytes";
    if (max >= (1u << 20) && max % (1u << 20) == 0) {
        max >>= 20;
        unit = "MiB";
    } else if (max >= 1024 && max % 1024 == 0) {
        max >>= 10;
        unit = "KiB";
    }
    snprintf(hp->error_buf, sizeof(hp->error_buf),
             "request body is larger than the %zu %s limit (--max-body-bytes)", max, unit);
    return fail(hp, 413, hp->error_buf);
}

/* The stream offset of a byte of the buffer being fed. */
static size_t stream_off(const dp_http_parser_t *hp, const char *at)
{
    return hp->pos + (size_t)(at - hp->base);
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
    tg_buf_init(&m->host, MAX_HOST);
    tg_buf_init(&m->transfer_encoding, MAX_TRANSFER_ENCODING);
    tg_buf_init(&m->body, lim->max_body);
}

/* Every buffer of a message, the body last: what disposing, moving and emptying one go over. */
static const size_t msg_bufs[] = {
    offsetof(dp_http_msg_t, url),
    offsetof(dp_http_msg_t, authorization),
    offsetof(dp_http_msg_t, api_key),
    offsetof(dp_http_msg_t, request_id),
    offsetof(dp_http_msg_t, fallbacks),
    offsetof(dp_http_msg_t, cache_control),
    offsetof(dp_http_msg_t, anthropic_beta),
    offsetof(dp_http_msg_t, host),
    offsetof(dp_http_msg_t, transfer_encoding),
    offsetof(dp_http_msg_t, body),
};
#define MSG_NBUFS (sizeof(msg_bufs) / sizeof(msg_bufs[0]))

static tg_buf_t *msg_buf(dp_http_msg_t *m, size_t i)
{
    return (tg_buf_t *)((char *)m + msg_bufs[i]);
}

void dp_http_msg_dispose(dp_http_msg_t *m)
{
    for (size_t i = 0; i < MSG_NBUFS; i++)
        tg_buf_dispose(msg_buf(m, i));
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

static int on_url_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    /* "GET /" and a line end: llhttp reads it as HTTP/0.9 (it sets the version before this
     * callback, which a versioned line reaches before its version) and goes on to read headers,
     * while the client waits for an answer */
    if (p->http_major == 0 && p->http_minor == 9)
        return fail(hp, 400, "the request line has no HTTP version: send METHOD /path HTTP/1.1");
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    /* llhttp accepts 0.9, 1.0, 1.1 and 2.0 here; HTTP/2 does not start with a request line */
    if (p->http_major != 1 || p->http_minor > 1)
        return fail(hp, 505, "HTTP version not supported: use HTTP/1.1");
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
    if (hp->field_long || hp->headers_done)
        return 0; /* trailers of a chunked body are not read: they cannot carry a credential */
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
    else if (tg_mem_caseeq(hp->field, hp->field_len, "host", 4)) {
        /* RFC 9112 3.2: more than one Host is a 400, whatever the version */
        if (++hp->nhost > 1)
            return fail(hp, 400, "more than one Host header");
        hp->cur = &m->host;
    } else if (tg_mem_caseeq(hp->field, hp->field_len, "transfer-encoding", 17)) {
        if (++hp->nte > 1)
            return fail(hp, 400, "more than one Transfer-Encoding header");
        hp->cur = &m->transfer_encoding;
    }
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

/* RFC 3986 host [":" port]: reg-name, IPv4 or an IP literal; no space, '/', '?', '#' or '@' */
static bool host_ok(const tg_buf_t *h)
{
    static const char extra[] = "-._~%!$&'()*+,;=:[]";
    for (size_t i = 0; i < h->len; i++) {
        char c = h->base[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == '\0' || !memchr(extra, c, sizeof(extra) - 1)))
            return false;
    }
    return true;
}

static bool is_chunked(const tg_buf_t *te)
{
    const char *s = te->base;
    size_t n = te->len;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    return tg_mem_caseeq(s, n, "chunked", 7);
}

static int on_headers_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    dp_http_msg_t *m = &hp->msg;
    hp->headers_done = true;
    m->method = p->method;
    m->keep_alive = llhttp_should_keep_alive(p) != 0;
    if (hp->nhost == 0 && p->http_minor == 1)
        return fail(hp, 400, "missing Host header: HTTP/1.1 requires one");
    if (hp->nhost == 1 && !host_ok(&m->host))
        return fail(hp, 400, "invalid Host header");
    if (hp->nte > 0 && p->http_minor == 0)
        return fail(hp, 400, "Transfer-Encoding is not allowed in HTTP/1.0");
    /* RFC 9112 6.1: a coding the server does not understand is a 501; chunked is the only one
     * we read (llhttp would take "gzip, chunked" and hand over gzip bytes as the body) */
    if (hp->nte > 0 && !is_chunked(&m->transfer_encoding))
        return fail(hp, 501, "the only transfer coding accepted is chunked");
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > hp->lim.max_body)
        return fail_body_limit(hp);
    hp->pause = PAUSE_HEAD; /* dp_http_feed stops here when a body follows */
    return HPE_PAUSED;
}

/* llhttp 8.1 skips the two bytes after a chunk's data without looking at them (RFC 9112 7.1
 * wants CRLF there): check them, from `from` on, as far as the bytes being fed reach. */
static int check_chunk_crlf(dp_http_parser_t *hp, const char *from)
{
    while (hp->crlf_seen < 2 && from < hp->end) {
        if (*from != "\r\n"[hp->crlf_seen])
            return fail(hp, 400, "chunk data must be followed by CRLF");
        from++;
        hp->crlf_seen++;
    }
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    if (p->content_length == 0)
        hp->last_chunk = true; /* trailers follow, counted as headers */
    else
        hp->in_chunk = true;
    hp->pause = PAUSE_CHUNK; /* dp_http_feed measures the chunk header where it ends */
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    dp_http_parser_t *hp = hp_of(p);
    int rc = tg_buf_append(&hp->msg.body, at, len);
    if (rc == TG_ETOOBIG)
        return fail_body_limit(hp);
    if (rc != 0)
        return fail(hp, 503, "out of memory");
    /* llhttp counts a chunk down in content_length: 0 is the end of this chunk's data */
    if (hp->in_chunk && p->content_length == 0) {
        hp->in_chunk = false;
        hp->chunk_line = stream_off(hp, at + len);
        hp->crlf_seen = 0;
        if (check_chunk_crlf(hp, at + len) != 0)
            return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    dp_http_parser_t *hp = hp_of(p);
    hp->done = true;
    /* keep-alive is known only now for HTTP/1.0 and Connection headers after the body */
    hp->msg.keep_alive = llhttp_should_keep_alive(p) != 0;
    hp->pause = PAUSE_DONE;
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
    .on_url_complete = on_url_complete,
    .on_version_complete = on_version_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_chunk_header = on_chunk_header,
};

static void message_reset(dp_http_parser_t *hp)
{
    hp->field_len = 0;
    hp->field_long = false;
    hp->cur = NULL;
    hp->header_bytes = 0;
    hp->nheaders = 0;
    hp->nhost = 0;
    hp->nte = 0;
    hp->started = false;
    hp->headers_done = false;
    hp->done = false;
    hp->pause = PAUSE_NONE;
    hp->head_paused = false;
    hp->lf = false;
    hp->in_chunk = false;
    hp->last_chunk = false;
    hp->crlf_seen = 2;
}

void dp_http_init(dp_http_parser_t *hp, const dp_http_limits_t *lim)
{
    memset(hp, 0, sizeof(*hp));
    hp->lim = *lim;
    /* no llhttp_set_lenient_*: every leniency is off by default and stays off */
    llhttp_init(&hp->p, HTTP_REQUEST, &settings);
    hp->p.data = hp;
    msg_init(&hp->msg, lim);
    message_reset(hp);
}

void dp_http_dispose(dp_http_parser_t *hp)
{
    dp_http_msg_dispose(&hp->msg);
}

/* obs-fold (RFC 9112 5.2): a header line that starts with SP or HTAB continues the previous
 * one. llhttp 8.1 accepts it and hands over the pieces as one value; we refuse it. */
static int scan_obs_fold(dp_http_parser_t *hp, const char *from, const char *to)
{
    for (const char *q = from; q < to; q++) {
        if (hp->lf && (*q == ' ' || *q == '\t'))
            return fail(hp, 400, "a header line starts with whitespace (obs-fold is not accepted)");
        hp->lf = *q == '\n';
    }
    return 0;
}

static int feed_fail(dp_http_parser_t *hp, llhttp_errno_t e)
{
    if (hp->error_status == 0 && e == HPE_INVALID_VERSION) {
        hp->error_status = 505;
        hp->error_msg = "HTTP version not supported: use HTTP/1.1";
    } else if (hp->error_status == 0) {
        /* llhttp's reasons are short static English without quotes ("Invalid header value
         * char"); say which rule the request broke */
        const char *why = llhttp_get_error_reason(&hp->p);
        if (why && !strpbrk(why, "\"\\")) {
            snprintf(hp->error_buf, sizeof(hp->error_buf), "malformed HTTP request: %s", why);
            (void)fail(hp, 400, hp->error_buf);
        } else {
            (void)fail(hp, 400, "malformed HTTP request");
        }
    }
    hp->base = hp->end = NULL;
    return hp->error_status == 413 || hp->error_status == 431 || hp->error_status == 414
               ? TG_ETOOBIG
               : TG_EINVAL;
}

static int fail_chunk_line(dp_http_parser_t *hp)
{
    (void)fail(hp, 400, "a chunk header is too long (chunk extensions are not read)");
    return feed_fail(hp, HPE_USER);
}

int dp_http_feed(dp_http_parser_t *hp, const char *data, size_t n, size_t *used)
{
    llhttp_t *p = &hp->p;
    size_t off = 0;
    int rc;
    *used = 0;
    hp->base = data;
    hp->end = data + n;
    if (hp->head_paused) {
        hp->head_paused = false;
        llhttp_resume(p);
    }
    if (hp->crlf_seen < 2 && check_chunk_crlf(hp, data) != 0)
        return feed_fail(hp, HPE_USER);
    for (;;) {
        bool in_head = !hp->headers_done;
        hp->pause = PAUSE_NONE;
        llhttp_errno_t e = llhttp_execute(p, data + off, n - off);
        if (e != HPE_OK && (e != HPE_PAUSED || hp->pause == PAUSE_NONE))
            return feed_fail(hp, e);
        const char *to = e == HPE_OK ? data + n : llhttp_get_error_pos(p);
        /* the pause after the headers keeps body bytes out of this scan */
        if (in_head && scan_obs_fold(hp, data + off, to) != 0)
            return feed_fail(hp, HPE_USER);
        off = (size_t)(to - data);
        if (e == HPE_OK) {
            /* a chunk header still arriving (an endless extension, say) is bounded too */
            if ((p->flags & F_CHUNKED) && hp->headers_done && !hp->in_chunk && !hp->last_chunk &&
                stream_off(hp, to) - hp->chunk_line > DP_HTTP_MAX_CHUNK_LINE)
                return fail_chunk_line(hp);
            rc = DP_HTTP_MORE;
            break;
        }
        if (hp->pause == PAUSE_DONE) {
            rc = DP_HTTP_DONE;
            break;
        }
        if (hp->pause == PAUSE_HEAD && ((p->flags & F_CHUNKED) || p->content_length > 0)) {
            hp->head_paused = true;
            hp->chunk_line = stream_off(hp, to);
            rc = DP_HTTP_HEAD;
            break;
        }
        if (hp->pause == PAUSE_CHUNK &&
            stream_off(hp, to) - hp->chunk_line > DP_HTTP_MAX_CHUNK_LINE)
            return fail_chunk_line(hp);
        llhttp_resume(p); /* a head without a body, or a chunk header that fits */
    }
    *used = off;
    hp->pos += off;
    hp->base = hp->end = NULL;
    return rc;
}

void dp_http_msg_move(dp_http_msg_t *dst, dp_http_msg_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < MSG_NBUFS; i++) { /* src keeps its limits; the storage went to dst */
        tg_buf_t *b = msg_buf(src, i);
        b->base = NULL;
        b->len = 0;
        b->cap = 0;
    }
}

void dp_http_take(dp_http_parser_t *hp, dp_http_msg_t *out)
{
    dp_http_msg_move(out, &hp->msg);
}

void dp_http_next(dp_http_parser_t *hp)
{
    dp_http_msg_t *m = &hp->msg;
    for (size_t i = 0; i < MSG_NBUFS; i++) {
        /* a small header buffer keeps its storage; a larger one and the body (megabytes,
         * perhaps) are freed */
        tg_buf_t *b = msg_buf(m, i);
        if (b->cap > KEEP_VALUE || b == &m->body)
            tg_buf_dispose(b);
        else
            tg_buf_reset(b);
    }
    m->method = 0;
    m->keep_alive = false;
    m->expect_continue = false;
    message_reset(hp);
    llhttp_resume(&hp->p);
}

void dp_http_path(const dp_http_msg_t *m, const char **path, size_t *len)
{
    const char *u = m->url.base ? m->url.base : "";
    size_t n = m->url.len;
    /* absolute-form, "http://host:port/path?query": the path starts after the authority; an
     * empty one is "/" (RFC 9112 3.2.2, RFC 3986 6.2.3) */
    size_t skip = n >= 7 && tg_mem_caseeq(u, 7, "http://", 7)    ? 7
                  : n >= 8 && tg_mem_caseeq(u, 8, "https://", 8) ? 8
                                                                 : 0;
    if (skip) {
        size_t i = skip;
        while (i < n && u[i] != '/' && u[i] != '?' && u[i] != '#')
            i++;
        if (i == n || u[i] != '/') {
            *path = "/";
            *len = 1;
            return;
        }
        u += i;
        n -= i;
    }
    const char *q = memchr(u, '?', n);
    *path = u;
    *len = q ? (size_t)(q - u) : n;
}

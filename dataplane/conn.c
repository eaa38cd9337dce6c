/* conn.c: one client HTTP/1.1 connection: reads and parses requests one at a time (pipelined
 * requests wait, in order), arms the header/body/idle timeouts, and writes responses: heads,
 * bodies, chunks and error bodies. Owns its socket, timer, parser and unparsed bytes; hands each
 * request to the worker's handler and hears back from it only through dp_conn_end. Loop thread
 * only. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "tg_fmt.h"
#include "tg_log.h"
#include "xlate.h"

#include "tg_banned.h"

enum {
    DP_CONN_IDLE = 0, /* keep-alive, waiting for a request */
    DP_CONN_READING,  /* a request has started arriving */
    DP_CONN_BUSY,     /* a request is being answered */
    DP_CONN_SHUTDOWN, /* the last response is leaving; no more input is read */
    DP_CONN_CLOSING,  /* closed; waiting for handles to close */
};

/* Separate runs of held bytes a connection may have before they leave at once; writes for one
 * connection are usually adjacent in the buffer and held as one run. */
enum { DP_CORK_PARTS = 8 };

struct dp_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_timer_t timer;
    dp_worker_t *w;
    dp_conn_t *prev, *next;
    dp_http_parser_t hp;
    tg_buf_t pending;       /* bytes read but not yet parsed (behind a request in flight) */
    dp_conn_watch_t *watch; /* the request in flight's, borrowed; NULL when none */
    int state;
    int open_handles;
    bool reading;
    bool close_after; /* close once the current response is written */
    bool corked;      /* writes are held in the worker's cork_buf (dp_conn_cork) */
    uint8_t ncork;
    dp_conn_t *cork_next;
    struct {
        uint32_t off, len; /* in w->cork_buf */
    } cork[DP_CORK_PARTS];
};

typedef struct dp_write {
    uv_write_t wr;
    dp_conn_t *c;
    size_t len;
    char data[];
} dp_write_t;

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void process_input(dp_conn_t *c);
static void uncork(dp_conn_t *c);
static void cork_unlink(dp_conn_t *c);

static const char *conn_states[] = {"idle", "reading", "busy", "shutdown", "closing"};

static void conn_set_state(dp_conn_t *c, int st)
{
    tg_log_debug("dp_conn", "state", "conn=%p from=%s to=%s", (void *)c, conn_states[c->state],
                 conn_states[st]);
    c->state = st;
}

/* Bytes a client may queue behind a request in flight (pipelining) before reading pauses. It is
 * also what may be read of a next request before its head is checked, so it stays at 64 KiB: a
 * caller without a valid key never sends more than that (the handler's on_head). */
#define DP_CONN_QUEUE_MAX (64u * 1024u)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dp_conn_t *c = (dp_conn_t *)h;
    (void)suggested;
    buf->base = c->w->read_buf;
    buf->len = sizeof(c->w->read_buf);
    /* behind a request in flight, read no further than the queue bound */
    if (c->state == DP_CONN_BUSY && c->pending.len < DP_CONN_QUEUE_MAX &&
        DP_CONN_QUEUE_MAX - c->pending.len < buf->len)
        buf->len = DP_CONN_QUEUE_MAX - c->pending.len;
}

static void on_handle_closed(uv_handle_t *h)
{
    dp_conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    dp_http_dispose(&c->hp);
    tg_buf_dispose(&c->pending);
    free(c);
}

static void conn_close(dp_conn_t *c)
{
    if (c->state == DP_CONN_CLOSING)
        return;
    conn_set_state(c, DP_CONN_CLOSING);
    dp_worker_t *w = c->w;
    cork_unlink(c); /* what it held goes nowhere now */
    if (c->watch) {
        dp_conn_watch_t *watch = c->watch;
        c->watch = NULL;
        watch->cb(watch, DP_CONN_EV_GONE);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    dp_conn_t *c = sr->data;
    (void)status;
    free(sr);
    conn_close(c);
}

/* Closes after the queued writes have left (uv_close alone would cancel them). */
static void conn_close_after_writes(dp_conn_t *c)
{
    if (c->state == DP_CONN_CLOSING || c->state == DP_CONN_SHUTDOWN)
        return;
    uncork(c); /* the shutdown goes behind what is held */
    if (c->state == DP_CONN_CLOSING)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    uv_timer_stop(&c->timer);
    uv_shutdown_t *sr = malloc(sizeof(*sr));
    if (!sr || uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sr);
        conn_close(c);
        return;
    }
    sr->data = c;
    c->close_after = true;
    conn_set_state(c, DP_CONN_SHUTDOWN); /* no more input is processed */
}

static void on_timeout(uv_timer_t *t)
{
    dp_conn_t *c = t->data;
    if (c->state == DP_CONN_READING)
        tg_log(TG_LOG_INFO, "dp_conn", "read_timeout", "worker=%d", c->w->id);
    conn_close(c);
}

static void arm_timer(dp_conn_t *c, uint32_t ms)
{
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_write(uv_write_t *wr, int status)
{
    dp_write_t *dw = (dp_write_t *)wr;
    dp_conn_t *c = dw->c;
    free(dw);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->watch && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < DP_WQ_LOW)
        c->watch->cb(c->watch, DP_CONN_EV_DRAINED);
}

/* Sends parts now: what the socket takes at once leaves without a copy, the rest is queued. */
static int send_bufs(dp_conn_t *c, const uv_buf_t *parts, int n)
{
    if (c->state == DP_CONN_CLOSING)
        return TG_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += parts[i].len;
    size_t skip = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        /* most answers fit the socket buffer: write now, with no request to allocate, copy or
         * complete later (uv_write would also re-arm the socket in epoll for each answer) */
        int w = uv_try_write((uv_stream_t *)&c->tcp, parts, (unsigned int)n);
        if (w >= 0 && (size_t)w == total)
            return 0;
        if (w >= 0)
            skip = (size_t)w;
        else if (w != UV_EAGAIN)
            return TG_ECLOSED; /* the read side sees the end and closes the connection */
    }
    total -= skip;
    dp_write_t *dw = malloc(sizeof(*dw) + total);
    if (!dw)
        return TG_ENOMEM;
    dw->c = c;
    dw->len = total;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t len = parts[i].len;
        const char *base = parts[i].base;
        if (skip >= len) { /* this part left with uv_try_write */
            skip -= len;
            continue;
        }
        base += skip;
        len -= skip;
        skip = 0;
        memcpy(dw->data + at, base, len);
        at += len;
    }
    uv_buf_t b = uv_buf_init(dw->data, (unsigned int)total);
    int rc = uv_write(&dw->wr, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(dw);
        return TG_ECLOSED;
    }
    return 0;
}

/* ---- corking: a connection's writes in one loop iteration leave in one system call ---- */

static void cork_unlink(dp_conn_t *c)
{
    if (!c->corked)
        return;
    for (dp_conn_t **pp = &c->w->corked; *pp; pp = &(*pp)->cork_next) {
        if (*pp == c) {
            *pp = c->cork_next;
            break;
        }
    }
    c->corked = false;
    c->ncork = 0;
    c->cork_next = NULL;
}

/* Sends what c holds, now, and stops holding. */
static void uncork(dp_conn_t *c)
{
    if (!c->corked)
        return;
    uv_buf_t parts[DP_CORK_PARTS];
    int n = c->ncork;
    for (int i = 0; i < n; i++)
        parts[i] = uv_buf_init(c->w->cork_buf.base + c->cork[i].off, c->cork[i].len);
    cork_unlink(c);
    int rc = n > 0 ? send_bufs(c, parts, n) : 0;
    if (rc == TG_ENOMEM)
        conn_close(c); /* a response with a hole in it must not go on */
}

/* Sends what every corked connection holds. Runs from the check phase, right after the loop's
 * I/O callbacks (where most corks start), or from the idle phase before the loop waits for I/O
 * (a cork started in a timer callback, e.g. curl's, must not wait for the next I/O event). */
static void cork_flush(dp_worker_t *w)
{
    while (w->corked)
        uncork(w->corked);
    uv_check_stop(&w->cork_check);
    uv_idle_stop(&w->cork_idle);
    tg_buf_reset(&w->cork_buf);
}

static void on_cork_check(uv_check_t *h)
{
    cork_flush(h->data);
}

static void on_cork_idle(uv_idle_t *h)
{
    cork_flush(h->data);
}

void dp_conn_worker_init(dp_worker_t *w)
{
    uv_check_init(&w->loop, &w->cork_check);
    w->cork_check.data = w;
    uv_idle_init(&w->loop, &w->cork_idle);
    w->cork_idle.data = w;
    tg_buf_init(&w->cork_buf, DP_CORK_MAX);
    w->corked = NULL;
}

void dp_conn_worker_close(dp_worker_t *w)
{
    cork_flush(w);
    uv_close((uv_handle_t *)&w->cork_check, NULL);
    uv_close((uv_handle_t *)&w->cork_idle, NULL);
    tg_buf_dispose(&w->cork_buf);
}

void dp_conn_cork(dp_conn_t *c)
{
    if (c->corked || c->state == DP_CONN_CLOSING)
        return;
    dp_worker_t *w = c->w;
    if (!w->corked) {
        uv_check_start(&w->cork_check, on_cork_check);
        uv_idle_start(&w->cork_idle, on_cork_idle); /* and the loop does not block before it */
    }
    c->corked = true;
    c->ncork = 0;
    c->cork_next = w->corked;
    w->corked = c;
}

/* Holds parts behind what c already holds; false when they cannot be held: too many runs, or
 * the worker's buffer is full (the caller undoes what this write added, then sends everything
 * c held and this write after it; the connections that cork after that write directly until
 * the flush). */
static bool hold_bufs(dp_conn_t *c, const uv_buf_t *parts, int n)
{
    tg_buf_t *b = &c->w->cork_buf;
    for (int i = 0; i < n; i++) {
        if (parts[i].len == 0)
            continue;
        size_t off = b->len;
        if (tg_buf_append(b, parts[i].base, parts[i].len) != 0)
            return false;
        if (c->ncork > 0 && c->cork[c->ncork - 1].off + c->cork[c->ncork - 1].len == off) {
            c->cork[c->ncork - 1].len += (uint32_t)parts[i].len; /* adjacent: one run */
        } else if (c->ncork < DP_CORK_PARTS) {
            c->cork[c->ncork].off = (uint32_t)off;
            c->cork[c->ncork].len = (uint32_t)parts[i].len;
            c->ncork++;
        } else {
            return false;
        }
    }
    return true;
}

/* Every write goes through here: held while c is corked, sent otherwise. */
static int write_bufs(dp_conn_t *c, const uv_buf_t *parts, int n)
{
    if (c->state == DP_CONN_CLOSING)
        return TG_ECLOSED;
    if (c->corked) {
        uint8_t ncork = c->ncork;
        uint32_t last = ncork ? c->cork[ncork - 1].len : 0;
        if (hold_bufs(c, parts, n))
            return 0;
        c->ncork = ncork; /* this write leaves whole, below, behind what was held before it */
        if (ncork)
            c->cork[ncork - 1].len = last;
        uncork(c);
    }
    return send_bufs(c, parts, n);
}

const char *dp_conn_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The longest head: status line, framing, the caller's extra lines (a request's ids, rate-limit
 * and retry headers stay well under 2 KiB). */
#define DP_HEAD_MAX 4096

typedef struct head_buf {
    char *p;
    size_t len;
    bool full;
} head_buf_t;

static void head_put(head_buf_t *hb, const char *s, size_t n)
{
    if (hb->full || n > DP_HEAD_MAX - hb->len) {
        hb->full = true;
        return;
    }
    memcpy(hb->p + hb->len, s, n);
    hb->len += n;
}

static void head_puts(head_buf_t *hb, const char *s)
{
    head_put(hb, s, strlen(s));
}

/* content_length < 0: chunked. */
static int build_head(const dp_conn_t *c, const dp_head_t *h, long long content_length, char *out,
                      size_t *len)
{
    head_buf_t hb = {out, 0, false};
    char num[TG_FMT_U64_MAX];
    int status = h->status >= 100 && h->status <= 999 ? h->status : 500;
    head_put(&hb, "HTTP/1.1 ", 9);
    head_put(&hb, num, tg_fmt_u64(num, (uint64_t)status));
    head_put(&hb, " ", 1);
    head_puts(&hb, dp_conn_reason(status));
    head_put(&hb, "\r\ncontent-type: ", 16);
    head_puts(&hb, h->ctype);
    if (content_length >= 0) {
        head_put(&hb, "\r\ncontent-length: ", 18);
        head_put(&hb, num, tg_fmt_u64(num, (uint64_t)content_length));
        head_put(&hb, "\r\n", 2);
    } else {
        head_puts(&hb, "\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\n");
    }
    if (h->extra_len)
        head_put(&hb, h->extra, h->extra_len);
    if (c->close_after || c->w->draining)
        head_put(&hb, "connection: close\r\n", 19);
    head_put(&hb, "\r\n", 2);
    *len = hb.len;
    return hb.full ? TG_ETOOBIG : 0;
}

int dp_conn_respond(dp_conn_t *c, const dp_head_t *h, const char *body, size_t len)
{
    char head[DP_HEAD_MAX];
    size_t hlen;
    int rc = build_head(c, h, (long long)len, head, &hlen);
    if (rc != 0)
        return rc;
    uv_buf_t parts[2] = {uv_buf_init(head, (unsigned int)hlen),
                         uv_buf_init((char *)body, (unsigned int)len)};
    return write_bufs(c, parts, len ? 2 : 1);
}

int dp_conn_start_chunked(dp_conn_t *c, const dp_head_t *h)
{
    char head[DP_HEAD_MAX];
    size_t hlen;
    int rc = build_head(c, h, -1, head, &hlen);
    if (rc != 0)
        return rc;
    uv_buf_t part = uv_buf_init(head, (unsigned int)hlen);
    return write_bufs(c, &part, 1);
}

/* A chunk's size line, "<hex>\r\n", into out (at least 18 bytes); returns its length. */
static size_t chunk_size_line(char *out, size_t len)
{
    size_t n = tg_fmt_hex(out, len);
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

int dp_conn_write_chunk(dp_conn_t *c, const char *data, size_t len)
{
    char size_line[24];
    size_t n = chunk_size_line(size_line, len);
    uv_buf_t parts[3] = {uv_buf_init(size_line, (unsigned int)n),
                         uv_buf_init((char *)data, (unsigned int)len),
                         uv_buf_init((char *)"\r\n", 2)};
    return write_bufs(c, parts, 3);
}

int dp_conn_start_chunked_with(dp_conn_t *c, const dp_head_t *h, const char *data, size_t len)
{
    char head[DP_HEAD_MAX], size_line[24];
    size_t hlen;
    int rc = build_head(c, h, -1, head, &hlen);
    if (rc != 0)
        return rc;
    size_t n = chunk_size_line(size_line, len);
    uv_buf_t parts[4] = {
        uv_buf_init(head, (unsigned int)hlen), uv_buf_init(size_line, (unsigned int)n),
        uv_buf_init((char *)data, (unsigned int)len), uv_buf_init((char *)"\r\n", 2)};
    return write_bufs(c, parts, len > 0 ? 4 : 1);
}

int dp_conn_end_chunked(dp_conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return dp_conn_write_chunk(c, NULL, 0);
    char size_line[24];
    size_t n = chunk_size_line(size_line, len);
    uv_buf_t parts[3] = {uv_buf_init(size_line, (unsigned int)n),
                         uv_buf_init((char *)data, (unsigned int)len),
                         uv_buf_init((char *)"\r\n0\r\n\r\n", 7)};
    return write_bufs(c, parts, 3);
}

int dp_conn_respond_error(dp_conn_t *c, int endpoint, const tg_err_t *err, const char *extra,
                          size_t extra_len)
{
    tg_buf_t body = TG_BUF_INIT(16384);
    int rc = dp_xlate_error_body(endpoint, err, &body);
    if (rc == 0) {
        dp_head_t h = {err->status, "application/json", extra, extra ? extra_len : 0};
        rc = dp_conn_respond(c, &h, body.base, body.len);
    }
    tg_buf_dispose(&body);
    return rc;
}

size_t dp_conn_write_queue(const dp_conn_t *c)
{
    size_t held = 0;
    for (int i = 0; c->corked && i < c->ncork; i++)
        held += c->cork[i].len;
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + held;
}

/* Answers what the parser refused, in OpenAI's shape, and closes after it. */
static void refuse_input(dp_conn_t *c)
{
    tg_err_t err;
    tg_err_set(&err, TG_EINVAL, c->hp.error_status, "%s", c->hp.error_msg);
    tg_log(TG_LOG_INFO, "dp_conn", "bad_request", "worker=%d status=%d reason=\"%s\"", c->w->id,
           c->hp.error_status, c->hp.error_msg);
    c->close_after = true; /* the answer says it closes */
    (void)dp_conn_respond_error(c, 0, &err, NULL, 0);
    tg_buf_reset(&c->pending);
    conn_close_after_writes(c);
}

/* Parses what is buffered until one request is complete and hands it to the worker's handler.
 * Runs from on_read and, after a request ends with bytes already queued behind it, from the
 * connection's timer: never from inside a request, so nothing here re-enters. */
/* Keeps the n bytes at *p that were read and not parsed in c->pending, for the next request. */
static bool keep_rest(dp_conn_t *c, const char **p, size_t *n)
{
    if (tg_buf_append(&c->pending, *p, *n) != 0) {
        conn_close(c);
        return false;
    }
    *p = NULL;
    *n = 0;
    return true;
}

/* Parses requests from p (n bytes of the loop's read buffer, with nothing pending before them)
 * or, when p is NULL, from c->pending. What is not parsed when this stops is kept in pending:
 * a connection copies bytes only when a read holds more than the request it completes. */
static void process_input_from(dp_conn_t *c, const char *p, size_t n)
{
    while ((c->state == DP_CONN_IDLE || c->state == DP_CONN_READING) && !c->close_after &&
           (p ? n : c->pending.len) > 0) {
        size_t used = 0;
        int rc = dp_http_feed(&c->hp, p ? p : c->pending.base, p ? n : c->pending.len, &used);
        if (rc < 0) {
            refuse_input(c);
            return;
        }
        if (p) {
            p += used;
            n -= used;
        } else {
            tg_buf_consume(&c->pending, used);
        }
        if (rc == DP_HTTP_HEAD) {
            /* the head is in, its body is not: what the head already refuses (no valid key,
             * unknown path, wrong method) is answered now and the body never read */
            if (c->state == DP_CONN_IDLE)
                conn_set_state(c, DP_CONN_READING);
            c->close_after = true; /* a refusal's answer says it closes */
            bool refused = c->w->handler->on_head(c->w, c, &c->hp.msg);
            c->close_after = false;
            if (refused) {
                tg_buf_reset(&c->pending);
                conn_close_after_writes(c);
                return;
            }
            if (c->hp.msg.expect_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                uv_buf_t part = uv_buf_init((char *)cont, sizeof(cont) - 1);
                c->hp.msg.expect_continue = false;
                (void)write_bufs(c, &part, 1);
            }
            arm_timer(c, c->w->opts->body_timeout_ms);
            continue;
        }
        if (rc == DP_HTTP_MORE) {
            if (c->hp.started && c->state == DP_CONN_IDLE) {
                conn_set_state(c, DP_CONN_READING);
                arm_timer(c, c->w->opts->header_timeout_ms);
            } else if (c->hp.headers_done) {
                /* the body is arriving: each read buys another body interval */
                arm_timer(c, c->w->opts->body_timeout_ms);
            }
            break;
        }
        /* a complete request: what follows it in this read waits in pending (the handler may
         * end the request at once, and dp_conn_end looks there for the next) */
        if (p && n > 0 && !keep_rest(c, &p, &n))
            return;
        /* the handler answers it now or later, and dp_conn_end brings the connection back
         * here for the next one */
        if (!c->hp.msg.keep_alive)
            c->close_after = true;
        uv_timer_stop(&c->timer);
        conn_set_state(c, DP_CONN_BUSY);
        /* lent, not moved: the parser keeps the header buffers for the connection's next request */
        c->w->handler->on_request(c->w, c, &c->hp.msg);
        break;
    }
    if (c->state == DP_CONN_CLOSING || c->state == DP_CONN_SHUTDOWN)
        return;
    if (p && n > 0 && !c->close_after && !keep_rest(c, &p, &n))
        return;
    /* bound what a client may queue behind a request in flight */
    bool want_read = c->pending.len < DP_CONN_QUEUE_MAX;
    if (want_read && !c->reading && !c->close_after) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
    }
}

static void process_input(dp_conn_t *c)
{
    process_input_from(c, NULL, 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    dp_conn_t *c = (dp_conn_t *)s;
    (void)buf;
    if (nread < 0) {
        /* EOF or error: a client that leaves mid-request cancels it */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->close_after)
        return; /* closing: ignore what else arrives */
    if (c->pending.len == 0 && (c->state == DP_CONN_IDLE || c->state == DP_CONN_READING)) {
        /* the usual case: parsed where it was read, nothing copied */
        process_input_from(c, c->w->read_buf, (size_t)nread);
        return;
    }
    if (tg_buf_append(&c->pending, c->w->read_buf, (size_t)nread) != 0) {
        conn_close(c);
        return;
    }
    if (c->pending.len >= DP_CONN_QUEUE_MAX && c->state == DP_CONN_BUSY) {
        uv_read_stop(s); /* resumed by process_input when the request is done */
        c->reading = false;
    }
    process_input(c);
}

/* Bytes of a next request arrived while one was in flight: parse them from the loop. */
static void on_resume(uv_timer_t *t)
{
    dp_conn_t *c = t->data;
    if (c->state == DP_CONN_IDLE) /* process_input re-arms it if a head starts */
        arm_timer(c, c->w->opts->idle_timeout_ms);
    process_input(c);
}

void dp_conn_watch(dp_conn_t *c, dp_conn_watch_t *watch)
{
    c->watch = watch;
}

void dp_conn_end(dp_conn_t *c)
{
    c->watch = NULL;
    if (c->state != DP_CONN_BUSY)
        return;
    dp_http_next(&c->hp);
    if (c->close_after || c->w->draining) {
        conn_close_after_writes(c);
        return;
    }
    conn_set_state(c, DP_CONN_IDLE);
    if (c->pending.len > 0) {
        uv_timer_start(&c->timer, on_resume, 0, 0);
        return;
    }
    arm_timer(c, c->w->opts->idle_timeout_ms);
    if (!c->reading) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
    }
}

void dp_conn_accept(dp_worker_t *w, uv_stream_t *listener)
{
    dp_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    dp_http_init(&c->hp, &w->opts->limits);
    tg_buf_init(&c->pending, DP_CONN_QUEUE_MAX + sizeof(w->read_buf));
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_set_state(c, DP_CONN_IDLE);
    arm_timer(c, w->opts->idle_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = true;
}

void dp_conn_close_idle(dp_worker_t *w, bool force)
{
    dp_conn_t *next;
    for (dp_conn_t *c = w->conns; c; c = next) {
        next = c->next;
        if (force || (c->state != DP_CONN_BUSY && c->state != DP_CONN_CLOSING))
            conn_close(c);
    }
}

/* conn.c: one client HTTP/1.1 connection: reads and parses requests one at a time (pipelined
 * requests wait, in order), arms the header/body/idle timeouts, writes responses. Owns its
 * socket, timer, parser and unparsed bytes; loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "tg_errors.h"
#include "tg_log.h"

#include "tg_banned.h"

enum {
    DP_CONN_IDLE = 0, /* keep-alive, waiting for a request */
    DP_CONN_READING,  /* a request has started arriving */
    DP_CONN_BUSY,     /* a request is being answered */
    DP_CONN_CLOSING,  /* shutting down; waiting for handles to close */
};

struct dp_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_timer_t timer;
    dp_worker_t *w;
    dp_conn_t *prev, *next;
    dp_http_parser_t hp;
    tg_buf_t pending; /* bytes read but not yet parsed (behind a request in flight) */
    dp_req_t *req;    /* the request in flight, or NULL */
    int state;
    int open_handles;
    bool reading;
    bool close_after; /* close once the current response is written */
    bool processing;  /* inside process_input: re-entry only sets `again` */
    bool again;
};

typedef struct dp_write {
    uv_write_t wr;
    dp_conn_t *c;
    size_t len;
    char data[];
} dp_write_t;

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void finish_request(dp_conn_t *c);

static const char *conn_states[] = {"idle", "reading", "busy", "closing"};

static void conn_set_state(dp_conn_t *c, int st)
{
    tg_log_debug("dp_conn", "state", "conn=%p from=%s to=%s", (void *)c, conn_states[c->state],
                 conn_states[st]);
    c->state = st;
}

/* Bytes a client may queue behind a request in flight (pipelining) before reading pauses. It is
 * also what may be read of a next request before its head is checked, so it stays at 64 KiB: a
 * caller without a valid key never sends more than that (dp_proxy_refuse_head). */
#define DP_CONN_QUEUE_MAX (64u * 1024u)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dp_conn_t *c = (dp_conn_t *)h;
    (void)suggested;
    buf->base = c->w->read_buf;
    buf->len = sizeof(c->w->read_buf);
    /* behind a request in flight, read no further than the queue bound */
    if (c->req && c->pending.len < DP_CONN_QUEUE_MAX &&
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
    if (c->req) {
        dp_req_t *r = c->req;
        c->req = NULL;
        dp_proxy_client_gone(r);
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
    c->state = DP_CONN_BUSY; /* no more input is processed */
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
    if (c->req && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < DP_WQ_LOW)
        dp_proxy_client_drained(c->req);
}

static int write_bufs(dp_conn_t *c, const uv_buf_t *parts, int n)
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

int dp_conn_write(dp_conn_t *c, const char *head, size_t hlen, const char *body, size_t blen)
{
    uv_buf_t parts[2] = {uv_buf_init((char *)head, (unsigned int)hlen),
                         uv_buf_init((char *)body, (unsigned int)blen)};
    return write_bufs(c, parts, blen ? 2 : 1);
}

int dp_conn_write_chunk(dp_conn_t *c, const char *data, size_t len)
{
    char size_line[24];
    int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
    uv_buf_t parts[3] = {uv_buf_init(size_line, (unsigned int)n),
                         uv_buf_init((char *)data, (unsigned int)len),
                         uv_buf_init((char *)"\r\n", 2)};
    return write_bufs(c, parts, 3);
}

size_t dp_conn_write_queue(const dp_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

bool dp_conn_must_close(const dp_conn_t *c)
{
    return c->close_after || c->w->draining;
}

static void write_error(dp_conn_t *c, int status, const char *msg)
{
    static const char *reasons[] = {[400] = "Bad Request",
                                    [408] = "Request Timeout",
                                    [413] = "Payload Too Large",
                                    [414] = "URI Too Long",
                                    [431] = "Request Header Fields Too Large",
                                    [501] = "Not Implemented",
                                    [503] = "Service Unavailable",
                                    [505] = "HTTP Version Not Supported"};
    char head[256];
    tg_buf_t body = TG_BUF_INIT(1024);
    if (tg_error_body(&body, status, NULL, msg, strlen(msg), NULL, NULL) != 0) {
        tg_buf_dispose(&body);
        return;
    }
    const char *reason = status < 600 && reasons[status] ? reasons[status] : "Error";
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: "
                      "%zu\r\nconnection: close\r\n\r\n",
                      status, reason, body.len);
    (void)dp_conn_write(c, head, (size_t)hl, body.base, body.len);
    tg_buf_dispose(&body);
}

/* Parses what is buffered and dispatches complete requests, one at a time. */
static void process_input(dp_conn_t *c)
{
    if (c->processing) {
        c->again = true;
        return;
    }
    c->processing = true;
    do {
        c->again = false;
        while (c->state != DP_CONN_CLOSING && !c->req && !c->close_after && c->pending.len > 0) {
            size_t used = 0;
            int rc = dp_http_feed(&c->hp, c->pending.base, c->pending.len, &used);
            if (rc < 0) {
                tg_log(TG_LOG_INFO, "dp_conn", "bad_request", "worker=%d status=%d reason=\"%s\"",
                       c->w->id, c->hp.error_status, c->hp.error_msg);
                write_error(c, c->hp.error_status, c->hp.error_msg);
                tg_buf_reset(&c->pending);
                conn_close_after_writes(c);
                break;
            }
            tg_buf_consume(&c->pending, used);
            if (rc == DP_HTTP_HEAD) {
                /* the head is in, its body is not: what the head already refuses (no valid key,
                 * unknown path, wrong method) is answered now and the body never read */
                if (c->state == DP_CONN_IDLE)
                    conn_set_state(c, DP_CONN_READING);
                c->close_after = true; /* a refusal's answer says it closes */
                bool refused = dp_proxy_refuse_head(c->w, c, &c->hp.msg);
                c->close_after = false;
                if (refused) {
                    tg_buf_reset(&c->pending);
                    conn_close_after_writes(c);
                    break;
                }
                if (c->hp.msg.expect_continue) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                    c->hp.msg.expect_continue = false;
                    (void)dp_conn_write(c, cont, sizeof(cont) - 1, NULL, 0);
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
            /* a complete request */
            dp_http_msg_t msg;
            dp_http_take(&c->hp, &msg);
            if (!msg.keep_alive)
                c->close_after = true;
            uv_timer_stop(&c->timer);
            conn_set_state(c, DP_CONN_BUSY);
            c->req = dp_proxy_handle(c->w, c, &msg);
            if (!c->req)
                finish_request(c); /* answered at once */
        }
    } while (c->again && c->state != DP_CONN_CLOSING);
    c->processing = false;
    if (c->state == DP_CONN_CLOSING)
        return;
    /* bound what a client may queue behind a request in flight */
    bool want_read = c->pending.len < DP_CONN_QUEUE_MAX;
    if (want_read && !c->reading && !c->close_after) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
    }
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
    if (tg_buf_append(&c->pending, c->w->read_buf, (size_t)nread) != 0) {
        conn_close(c);
        return;
    }
    if (c->pending.len >= DP_CONN_QUEUE_MAX && c->req) {
        uv_read_stop(s); /* resumed by process_input when the request is done */
        c->reading = false;
    }
    process_input(c);
}

void dp_conn_request_done(dp_conn_t *c)
{
    c->req = NULL;
    if (c->state == DP_CONN_CLOSING)
        return;
    finish_request(c);
    process_input(c);
}

/* The response to the current request is queued: ready the connection for the next one. */
static void finish_request(dp_conn_t *c)
{
    if (c->state == DP_CONN_CLOSING)
        return;
    dp_http_next(&c->hp);
    if (c->close_after || c->w->draining) {
        conn_close_after_writes(c);
        return;
    }
    conn_set_state(c, DP_CONN_IDLE);
    arm_timer(c, c->w->opts->idle_timeout_ms);
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
        if (force || (!c->req && c->state != DP_CONN_CLOSING))
            conn_close(c);
    }
}

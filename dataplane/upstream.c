/* upstream.c: libcurl multi driven by libuv, after curl's docs/examples/multi-uv.c, and the
 * exchanges that run on it. The multi keeps a connection cache, so upstream connections are
 * reused across requests of this loop; the exchange pool keeps easy handles with their constant
 * options set, so a request sets only what differs (URL, headers, body, timeouts). Loop thread
 * only; no curl handle is touched by another thread. */
#include "upstream.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_log.h"
#include "tg_pool.h"

#include "tg_banned.h"

#define DP_X_POOL_MAX 64      /* idle exchanges kept per loop */
#define DP_X_KEEP_BYTES 65536 /* a pooled exchange's buffer larger than this is freed */
#define DP_X_URL_MAX 8192
/* curl's receive buffer, one per easy handle for its whole life (so one per stream in flight). A
 * provider's read is an event or a few (a few hundred bytes) or a JSON answer. Every page of it a
 * read reaches stays in memory: with 8,000 streams that fall behind their cadence, reads of many
 * events at once touched up to four pages of a 16 KiB buffer (bench/RESULTS.md, memory per
 * stream); one page holds a typical read, and a larger answer costs a read per 4 KiB. */
#define DP_X_READ_BYTES 4096L
/* The arena of a request's header lines: a provider's lines take a few hundred bytes; more get
 * a second chunk. */
#define DP_X_HEADER_CHUNK 1024

struct dp_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int running;
    struct sock_ctx **byfd; /* poll handles by socket, kept while curl keeps the connection */
    size_t nfd;
    size_t max_request, max_response;
    dp_exchange_t *pool[DP_X_POOL_MAX]; /* idle exchanges */
    int npool;
};

struct dp_exchange {
    dp_upstream_t *u;
    CURL *easy;     /* constant options set once, at creation */
    tg_pool_t pool; /* the request's header lines and their list nodes; reset when put back */
    struct curl_slist *headers, *headers_tail; /* in pool: curl only reads the list */
    tg_buf_t url, body;                        /* the request */
    tg_buf_t resp;                             /* a buffered answer */
    uv_timer_t timer;                          /* first-byte and idle deadlines */
    dp_exchange_cbs_t cbs;
    void *ud;
    dp_exchange_limits_t lim;
    uint32_t set_connect_ms, set_timeout_ms; /* what the handle has now, to skip equal setopts */
    bool running;
    bool have_head; /* on_head ran */
    bool stream;    /* the body goes to on_data */
    bool paused;
    bool too_large;
    bool refused;
    uint64_t start_ms, last_byte_ms; /* loop ms */
    long status;
    CURLcode rc;
    char retry_after[32];
};

static void exchange_done(dp_exchange_t *x, CURLcode rc);

/* A poll handle outlives the transfers on its connection: curl says CURL_POLL_REMOVE after each
 * transfer and CURL_POLL_IN at the next one on the same socket, and stopping and restarting the
 * handle cost an epoll_ctl each, twice per request. An idle handle keeps watching for readable
 * (the server closing the connection) and is dropped when curl closes the socket. */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    dp_upstream_t *u;
    int events; /* UV_READABLE | UV_WRITABLE being watched, 0 when stopped */
    bool idle;  /* no transfer uses the socket now */
} sock_ctx_t;

static void check_done(dp_upstream_t *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        dp_exchange_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(u->multi, easy);
        if (x)
            exchange_done(x, result);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *s = h->data;
    dp_upstream_t *u = s->u;
    if (s->idle) {
        /* the server closed (or wrote to) a connection in the cache: stop watching it, curl finds
         * it dead before the next reuse and closes it through on_close_socket */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(u->multi, s->fd, flags, &u->running);
    check_done(u);
}

static void on_timer(uv_timer_t *t)
{
    dp_upstream_t *u = t->data;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &u->running);
    check_done(u);
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

static sock_ctx_t *ctx_of(dp_upstream_t *u, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < u->nfd ? u->byfd[fd] : NULL;
}

static int ctx_store(dp_upstream_t *u, curl_socket_t fd, sock_ctx_t *s)
{
    if ((size_t)fd >= u->nfd) {
        size_t n = u->nfd ? u->nfd : 64;
        while (n <= (size_t)fd)
            n *= 2;
        sock_ctx_t **p = realloc(u->byfd, n * sizeof(*p));
        if (!p)
            return -1;
        memset(p + u->nfd, 0, (n - u->nfd) * sizeof(*p));
        u->byfd = p;
        u->nfd = n;
    }
    u->byfd[fd] = s;
    return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    dp_upstream_t *u = userp;
    sock_ctx_t *s = socketp ? socketp : ctx_of(u, fd);
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            s->idle = true;
            if (s->events != UV_READABLE) {
                s->events = UV_READABLE;
                uv_poll_start(&s->poll, s->events, on_poll);
            }
            curl_multi_assign(u->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->u = u;
        if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0 || ctx_store(u, fd, s) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
    }
    s->idle = false;
    curl_multi_assign(u->multi, fd, s);
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events != s->events) { /* unchanged interest costs no system call */
        s->events = events;
        uv_poll_start(&s->poll, events, on_poll);
    }
    return 0;
}

/* curl closes a socket: forget its poll handle first, so the descriptor is out of epoll before
 * its number can be reused. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    dp_upstream_t *u = clientp;
    sock_ctx_t *s = ctx_of(u, fd);
    if (s) {
        u->byfd[fd] = NULL;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, free_sock);
    }
    return close(fd);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    dp_upstream_t *u = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else /* 0 means "now": the next loop iteration, never a call back into curl from here */
        uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int dp_upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : TG_EIO;
}

void dp_upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

dp_upstream_t *dp_upstream_create(uv_loop_t *loop, size_t max_request, size_t max_response)
{
    dp_upstream_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->loop = loop;
    u->max_request = max_request;
    u->max_response = max_response;
    u->multi = curl_multi_init();
    if (!u->multi) {
        free(u);
        return NULL;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 512L);
    return u;
}

static void free_upstream(uv_handle_t *h)
{
    dp_upstream_t *u = h->data;
    free(u->byfd);
    free(u);
}

static void free_exchange(uv_handle_t *h)
{
    free(h->data);
}

/* Frees an idle exchange; its timer closes on the loop. */
static void exchange_destroy(dp_exchange_t *x)
{
    curl_easy_cleanup(x->easy);
    tg_pool_dispose(&x->pool);
    tg_buf_dispose(&x->url);
    tg_buf_dispose(&x->body);
    tg_buf_dispose(&x->resp);
    x->timer.data = x;
    uv_close((uv_handle_t *)&x->timer, free_exchange);
}

void dp_upstream_destroy(dp_upstream_t *u)
{
    if (!u)
        return;
    curl_multi_cleanup(u->multi); /* closes its connections through on_close_socket */
    while (u->npool > 0)
        exchange_destroy(u->pool[--u->npool]);
    for (size_t fd = 0; fd < u->nfd; fd++) {
        sock_ctx_t *s = u->byfd[fd];
        if (s) { /* not closed by curl: should not happen, but never leave a handle open */
            u->byfd[fd] = NULL;
            uv_close((uv_handle_t *)&s->poll, free_sock);
        }
    }
    uv_close((uv_handle_t *)&u->timer, free_upstream);
}

/* ---- an exchange's curl callbacks ---- */

/* retry-after in whole seconds; an HTTP date is ignored (the backoff applies instead). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    dp_exchange_t *x = ud;
    size_t len = size * n;
    if (len > 12 && tg_mem_caseeq(p, 12, "retry-after:", 12)) {
        const char *v = p + 12;
        size_t vl = len - 12;
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl > 0 && vl < sizeof(x->retry_after)) {
            bool digits = true;
            for (size_t i = 0; i < vl; i++)
                digits = digits && v[i] >= '0' && v[i] <= '9';
            if (digits) {
                memcpy(x->retry_after, v, vl);
                x->retry_after[vl] = '\0';
            }
        }
    }
    return len;
}

/* A streamed answer is under way: once curl has sent the whole request it never reads its body
 * or its header list again (it resends a request only on a reused connection that died before
 * any answer byte; redirects and authentication are off), so both are freed rather than held
 * for the stream's minutes. A retry builds new ones. */
static void release_body(dp_exchange_t *x)
{
    curl_off_t sent = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK ||
        sent < (curl_off_t)x->body.len)
        return;
    size_t max = x->body.max;
    tg_buf_dispose(&x->body);
    tg_buf_init(&x->body, max);
    x->headers = x->headers_tail = NULL;
    tg_pool_dispose(&x->pool);
    tg_pool_init(&x->pool, DP_X_HEADER_CHUNK);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    dp_exchange_t *x = ud;
    size_t len = size * n;
    if (!x->have_head) {
        x->have_head = true;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        x->stream = x->cbs.on_head(x->ud, x);
    }
    x->last_byte_ms = uv_now(x->u->loop);
    if (!x->stream) {
        if (tg_buf_append(&x->resp, p, len) != 0) {
            x->too_large = true;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (x->body.base)
        release_body(x);
    int rc = x->cbs.on_data(x->ud, p, len);
    if (rc == DP_X_PAUSE) {
        x->paused = true; /* dp_exchange_resume unpauses; curl delivers this again */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc < 0) {
        x->refused = true;
        return 0;
    }
    return len;
}

static int result_of(const dp_exchange_t *x, CURLcode rc)
{
    if (rc == CURLE_OK)
        return DP_X_OK;
    if (x->too_large)
        return DP_X_TOO_LARGE;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return DP_X_TIMEOUT;
    if (rc == CURLE_WRITE_ERROR)
        return DP_X_REFUSED;
    return DP_X_FAILED;
}

static void exchange_done(dp_exchange_t *x, CURLcode rc)
{
    x->running = false;
    x->rc = rc;
    uv_timer_stop(&x->timer);
    if (!x->have_head) /* no body at all: still read the status */
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    x->cbs.on_done(x->ud, result_of(x, rc));
}

/* ms until the next deadline (first byte, idle between bytes); 0 when one has passed, UINT64_MAX
 * when there is none. */
static uint64_t deadline_in(const dp_exchange_t *x, uint64_t now)
{
    const dp_exchange_limits_t *l = &x->lim;
    uint64_t best = UINT64_MAX;
    if (!x->have_head && l->first_byte_timeout_ms) {
        uint64_t due = x->start_ms + l->first_byte_timeout_ms;
        best = due <= now ? 0 : due - now;
    }
    if (!x->have_head && l->idle_timeout_ms) {
        /* idle time counts from the first byte: look again by then */
        best = l->idle_timeout_ms < best ? l->idle_timeout_ms : best;
    } else if (x->have_head && l->idle_timeout_ms && x->paused) {
        /* the client is slow, not the provider: look again later */
        best = l->idle_timeout_ms < best ? l->idle_timeout_ms : best;
    } else if (x->have_head && l->idle_timeout_ms) {
        uint64_t due = x->last_byte_ms + l->idle_timeout_ms;
        uint64_t in = due <= now ? 0 : due - now;
        best = in < best ? in : best;
    }
    return best;
}

static void on_deadline(uv_timer_t *t)
{
    dp_exchange_t *x = t->data;
    if (!x->running)
        return;
    uint64_t in = deadline_in(x, uv_now(x->u->loop));
    if (in == UINT64_MAX)
        return;
    if (in > 0) {
        uv_timer_start(&x->timer, on_deadline, in, 0);
        return;
    }
    tg_log(TG_LOG_WARN, "dp_upstream", "upstream_deadline", "req_id=%.*s provider=%s first_byte=%d",
           (int)x->lim.req_id_len, x->lim.req_id, x->lim.provider, x->have_head);
    curl_multi_remove_handle(x->u->multi, x->easy);
    exchange_done(x, CURLE_OPERATION_TIMEDOUT);
}

/* ---- exchanges ---- */

/* A new exchange: the handle's options that never change are set here, once. */
static dp_exchange_t *exchange_create(dp_upstream_t *u)
{
    dp_exchange_t *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return NULL;
    }
    x->u = u;
    tg_pool_init(&x->pool, DP_X_HEADER_CHUNK);
    uv_timer_init(u->loop, &x->timer);
    x->timer.data = x;
    tg_buf_init(&x->url, DP_X_URL_MAX);
    tg_buf_init(&x->body, u->max_request);
    tg_buf_init(&x->resp, u->max_response);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* upstream URLs come only from config */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* bytes pass through as sent */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, DP_X_READ_BYTES);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    /* the connection a transfer opens keeps the close callback of the handle that opened it */
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
    return x;
}

dp_exchange_t *dp_exchange_get(dp_upstream_t *u)
{
    if (u->npool > 0)
        return u->pool[--u->npool];
    return exchange_create(u);
}

int dp_exchange_add_header(void *ud, const char *line)
{
    dp_exchange_t *x = ud;
    struct curl_slist *l = tg_pool_alloc(&x->pool, sizeof(*l));
    if (!l)
        return TG_ENOMEM;
    l->data = tg_pool_strndup(&x->pool, line, strlen(line));
    if (!l->data)
        return TG_ENOMEM;
    l->next = NULL;
    if (x->headers_tail)
        x->headers_tail->next = l;
    else
        x->headers = l;
    x->headers_tail = l;
    return 0;
}

tg_buf_t *dp_exchange_url(dp_exchange_t *x)
{
    return &x->url;
}

tg_buf_t *dp_exchange_body(dp_exchange_t *x)
{
    return &x->body;
}

int dp_exchange_start(dp_exchange_t *x, const dp_exchange_limits_t *lim,
                      const dp_exchange_cbs_t *cbs, void *ud, tg_err_t *err)
{
    CURL *e = x->easy;
    x->cbs = *cbs;
    x->ud = ud;
    x->lim = *lim;
    if (tg_buf_append(&x->url, "", 1) != 0) { /* curl reads the URL up to its NUL */
        tg_err_set(err, TG_ETOOBIG, 503, "could not start the upstream request");
        return TG_ETOOBIG;
    }
    curl_easy_setopt(e, CURLOPT_URL, x->url.base);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body.base ? x->body.base : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    if (x->set_connect_ms != lim->connect_timeout_ms) {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)lim->connect_timeout_ms);
        x->set_connect_ms = lim->connect_timeout_ms;
    }
    if (x->set_timeout_ms != lim->timeout_ms) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)lim->timeout_ms);
        x->set_timeout_ms = lim->timeout_ms;
    }
    CURLMcode mc = curl_multi_add_handle(x->u->multi, e);
    if (mc != CURLM_OK) {
        tg_log(TG_LOG_ERROR, "dp_upstream", "add_failed", "reason=\"%s\"", curl_multi_strerror(mc));
        tg_err_set(err, TG_EUPSTREAM, 503, "could not start the upstream request");
        return TG_EUPSTREAM;
    }
    x->running = true;
    x->start_ms = x->last_byte_ms = uv_now(x->u->loop);
    uint64_t in = deadline_in(x, x->start_ms);
    if (in != UINT64_MAX)
        uv_timer_start(&x->timer, on_deadline, in, 0);
    return 0;
}

void dp_exchange_cancel(dp_exchange_t *x)
{
    if (!x->running)
        return;
    x->running = false;
    uv_timer_stop(&x->timer);
    curl_multi_remove_handle(x->u->multi, x->easy);
}

void dp_exchange_resume(dp_exchange_t *x)
{
    if (!x->paused || !x->running)
        return;
    x->paused = false;
    x->last_byte_ms = uv_now(x->u->loop);
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

/* Empties a buffer for the next exchange, freeing it when it grew large. */
static void buf_recycle(tg_buf_t *b)
{
    if (b->cap > DP_X_KEEP_BYTES) {
        size_t max = b->max;
        tg_buf_dispose(b);
        tg_buf_init(b, max);
    }
    tg_buf_reset(b);
}

void dp_exchange_put(dp_exchange_t *x)
{
    if (!x)
        return;
    dp_upstream_t *u = x->u;
    dp_exchange_cancel(x);
    x->headers = x->headers_tail = NULL;
    tg_pool_reset(&x->pool);
    buf_recycle(&x->url);
    buf_recycle(&x->body);
    buf_recycle(&x->resp);
    x->cbs = (dp_exchange_cbs_t){0};
    x->ud = NULL;
    x->have_head = x->stream = x->paused = x->too_large = x->refused = false;
    x->status = 0;
    x->rc = CURLE_OK;
    x->retry_after[0] = '\0';
    if (u->npool < DP_X_POOL_MAX)
        u->pool[u->npool++] = x;
    else
        exchange_destroy(x);
}

int dp_exchange_status(dp_exchange_t *x)
{
    return (int)x->status;
}

const char *dp_exchange_ctype(dp_exchange_t *x)
{
    char *ct = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    return ct;
}

const char *dp_exchange_retry_after(const dp_exchange_t *x)
{
    return x->retry_after;
}

const char *dp_exchange_answer(const dp_exchange_t *x, size_t *len)
{
    *len = x->resp.len;
    return x->resp.base ? x->resp.base : "";
}

const char *dp_exchange_reason(const dp_exchange_t *x)
{
    return curl_easy_strerror(x->rc);
}

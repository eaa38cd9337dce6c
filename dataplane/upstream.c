/* upstream.c: libcurl multi driven by libuv, after curl's docs/examples/multi-uv.c. The multi
 * keeps a connection cache, so upstream connections are reused across requests of this loop.
 * Loop thread only; no curl handle is touched by another thread. */
#include "upstream.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_log.h"

#include "tg_banned.h"

struct dp_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int running;
    struct sock_ctx **byfd; /* poll handles by socket, kept while curl keeps the connection */
    size_t nfd;
};

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
        dp_upstream_xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(u->multi, easy);
        if (x && x->done)
            x->done(x, result);
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

dp_upstream_t *dp_upstream_create(uv_loop_t *loop)
{
    dp_upstream_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->loop = loop;
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

void dp_upstream_destroy(dp_upstream_t *u)
{
    if (!u)
        return;
    curl_multi_cleanup(u->multi); /* closes its connections through on_close_socket */
    for (size_t fd = 0; fd < u->nfd; fd++) {
        sock_ctx_t *s = u->byfd[fd];
        if (s) { /* not closed by curl: should not happen, but never leave a handle open */
            u->byfd[fd] = NULL;
            uv_close((uv_handle_t *)&s->poll, free_sock);
        }
    }
    uv_close((uv_handle_t *)&u->timer, free_upstream);
}

int dp_upstream_add(dp_upstream_t *u, CURL *easy)
{
    /* the connection a transfer opens keeps the close callback of the handle that opened it */
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, u);
    CURLMcode mc = curl_multi_add_handle(u->multi, easy);
    if (mc != CURLM_OK) {
        tg_log(TG_LOG_ERROR, "dp_upstream", "add_failed", "reason=\"%s\"", curl_multi_strerror(mc));
        return TG_EUPSTREAM;
    }
    return 0;
}

void dp_upstream_remove(dp_upstream_t *u, CURL *easy)
{
    curl_multi_remove_handle(u->multi, easy);
}

void dp_upstream_easy_defaults(CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L); /* upstream URLs come only from config */
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, NULL); /* bytes pass through as sent */
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 65536L);
}

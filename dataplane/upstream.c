/* upstream.c: libcurl multi driven by libuv, after curl's docs/examples/multi-uv.c. The multi
 * keeps a connection cache, so upstream connections are reused across requests of this loop.
 * Loop thread only; no curl handle is touched by another thread. */
#include "upstream.h"

#include <stdlib.h>

#include "tg_log.h"

#include "tg_banned.h"

struct dp_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int running;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    dp_upstream_t *u;
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

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    dp_upstream_t *u = userp;
    sock_ctx_t *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, free_sock);
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
        if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(u->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
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
    free(h->data);
}

void dp_upstream_destroy(dp_upstream_t *u)
{
    if (!u)
        return;
    curl_multi_cleanup(u->multi); /* removes its sockets through on_socket */
    uv_close((uv_handle_t *)&u->timer, free_upstream);
}

int dp_upstream_add(dp_upstream_t *u, CURL *easy)
{
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

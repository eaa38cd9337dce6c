/* server.c: process structure. The main thread owns signals and snapshot loading (disk I/O stays
 * off the loops); each worker thread owns one loop with its listener, connections, curl multi and
 * counters. Across threads only: snapshot refs handed over under a worker's mutex and announced
 * with uv_async_send, atomics, and the usage sink's queue. */
#define _DEFAULT_SOURCE /* SO_REUSEPORT */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cache.h"
#include "conn.h"
#include "endpoints.h"
#include "ledger.h"
#include "metrics.h"
#include "request.h"
#include "rstore.h"
#include "sync.h"
#include "tg_log.h"
#include "upstream.h"

#include "tg_banned.h"

static struct {
    dp_worker_t **workers;
    int n;
    atomic_llong version;
    atomic_bool ready;
    const dp_opts_t *opts;
    uv_signal_t sighup, sigterm, sigint;
    atomic_bool draining;
} srv;

int64_t dp_server_snapshot_version(void)
{
    return atomic_load_explicit(&srv.version, memory_order_relaxed);
}

bool dp_server_ready(void)
{
    return atomic_load_explicit(&srv.ready, memory_order_relaxed);
}

dp_worker_t **dp_server_workers(int *n)
{
    *n = srv.n;
    return srv.workers;
}

/* /metrics: every worker's counters, summed; a worker's endpoints reach it through the worker. */
static int render_metrics(tg_buf_t *out)
{
    return dp_metrics_render(out, srv.workers, srv.n, dp_server_snapshot_version());
}

static void on_connection(uv_stream_t *listener, int status)
{
    dp_worker_t *w = listener->data;
    if (status < 0) {
        tg_log(TG_LOG_WARN, "dp_server", "accept_failed", "worker=%d reason=\"%s\"", w->id,
               uv_strerror(status));
        return;
    }
    dp_conn_accept(w, listener);
}

#define DP_USAGE_HANDOVER_MS 100

static void on_usage_timer(uv_timer_t *t)
{
    dp_req_flush_usage(t->data);
}

static void worker_shutdown(dp_worker_t *w)
{
    dp_req_flush_usage(w);
    uv_close((uv_handle_t *)&w->usage_timer, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
    dp_conn_worker_close(w);
    dp_rstore_worker_close(w);
    if (!w->listener_closed) {
        w->listener_closed = true;
        uv_close((uv_handle_t *)&w->listener, NULL);
    }
    dp_upstream_destroy(w->up);
    w->up = NULL;
}

/* Every 20 ms while draining: force what outlived the grace period, stop when all is closed. */
static void on_drain_timer(uv_timer_t *t)
{
    dp_worker_t *w = t->data;
    if (w->nconns > 0 && uv_now(&w->loop) - w->drain_started >= w->opts->drain_timeout_ms) {
        tg_log(TG_LOG_WARN, "dp_server", "drain_deadline", "worker=%d open_connections=%zu", w->id,
               w->nconns);
        dp_conn_close_idle(w, true);
    }
    if (w->nconns == 0)
        worker_shutdown(w);
}

static void on_wake(uv_async_t *a)
{
    dp_worker_t *w = a->data;
    pthread_mutex_lock(&w->mu);
    tg_snap_t *s = w->pending_snap;
    w->pending_snap = NULL;
    bool drain = w->drain_requested;
    pthread_mutex_unlock(&w->mu);
    if (s) {
        tg_snap_t *old = w->snap;
        w->snap = s; /* requests in flight keep their own ref to the old one */
        tg_snap_unref(old);
    }
    if (drain && !w->draining) {
        w->draining = true;
        if (!w->listener_closed) {
            w->listener_closed = true;
            uv_close((uv_handle_t *)&w->listener, NULL);
        }
        dp_conn_close_idle(w, false);
        w->drain_started = uv_now(&w->loop);
        uv_timer_start(&w->drain_timer, on_drain_timer, 0, 20);
    }
}

static void *worker_main(void *arg)
{
    dp_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return TG_EINVAL;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return TG_EINVAL;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p > 65535)
        return TG_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int dp_server_parse_listen(const char *s, dp_opts_t *o)
{
    return split_hostport(s, o->listen_host, sizeof(o->listen_host), &o->listen_port);
}

static int bind_listener(dp_worker_t *w, const dp_opts_t *o, int *port)
{
    struct sockaddr_storage ss;
    int af = AF_INET;
    if (uv_ip4_addr(o->listen_host, *port, (struct sockaddr_in *)&ss) != 0) {
        af = AF_INET6;
        if (uv_ip6_addr(o->listen_host, *port, (struct sockaddr_in6 *)&ss) != 0) {
            tg_log(TG_LOG_ERROR, "dp_server", "bad_listen_address", "host=\"%s\"", o->listen_host);
            return TG_EINVAL;
        }
    }
    int rc = uv_tcp_init_ex(&w->loop, &w->listener, (unsigned int)af);
    if (rc != 0)
        return TG_EIO;
    w->listener.data = w;
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&w->listener, &fd);
    int one = 1;
    /* each worker has its own listening socket; the kernel spreads connections over them */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        tg_log(TG_LOG_ERROR, "dp_server", "reuseport_failed", "reason=\"%s\"", strerror(errno));
        return TG_EIO;
    }
    rc = uv_tcp_bind(&w->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 511, on_connection);
    if (rc != 0) {
        tg_log(TG_LOG_ERROR, "dp_server", "listen_failed", "addr=%s:%d reason=\"%s\"",
               o->listen_host, *port, uv_strerror(rc));
        return TG_EIO;
    }
    if (*port == 0) {
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        uv_tcp_getsockname(&w->listener, (struct sockaddr *)&bound, &len);
        *port = ntohs(af == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                    : ((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return 0;
}

static int worker_init(dp_worker_t *w, int id, const dp_opts_t *o, tg_snap_t *snap, int *port)
{
    w->id = id;
    w->opts = o;
    w->handler = &dp_endpoints_handler;
    w->render_metrics = render_metrics;
    pthread_mutex_init(&w->mu, NULL);
    if (uv_loop_init(&w->loop) != 0)
        return TG_EIO;
    if (tg_rand_seed(&w->rand) != 0)
        return TG_EIO;
    tg_buf_init(&w->usage, 256u << 20);
    w->metrics = dp_metrics_create();
    w->up = dp_upstream_create(&w->loop, o->limits.max_body * 2 + 65536, o->max_response_bytes);
    w->health = dp_health_create(&o->health);
    if (o->cache_max_bytes)
        w->cache = dp_cache_create(o->cache_max_bytes);
    if (!w->metrics || !w->up || !w->health)
        return TG_ENOMEM;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    dp_conn_worker_init(w);
    if (dp_rstore_worker_init(w) != 0)
        return TG_EIO;
    uv_timer_init(&w->loop, &w->usage_timer);
    w->usage_timer.data = w;
    /* A record waits in the loop's buffer at most this long before the writer has it. It is in
     * the worker's mapped journal meanwhile (with --control-url or --usage-file alike), so a
     * SIGKILL loses nothing. One cheap wakeup per 100 ms, not one per request. */
    uv_timer_start(&w->usage_timer, on_usage_timer, DP_USAGE_HANDOVER_MS, DP_USAGE_HANDOVER_MS);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->snap = snap ? tg_snap_ref(snap) : NULL;
    return bind_listener(w, o, port);
}

static void hand_snapshot(tg_snap_t *s)
{
    dp_ledger_bind(s); /* before any loop sees it */
    for (int i = 0; i < srv.n; i++) {
        dp_worker_t *w = srv.workers[i];
        pthread_mutex_lock(&w->mu);
        tg_snap_unref(w->pending_snap);
        w->pending_snap = tg_snap_ref(s);
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->wake);
    }
    atomic_store_explicit(&srv.version, s->version, memory_order_relaxed);
    atomic_store_explicit(&srv.ready, true, memory_order_relaxed);
}

/* Called on the sync thread with one ref of a new snapshot. */
static void hand_from_sync(tg_snap_t *s)
{
    if (!atomic_load(&srv.draining))
        hand_snapshot(s);
    tg_snap_unref(s);
}

static void on_sighup(uv_signal_t *h, int sig)
{
    tg_err_t err;
    tg_snap_t *s;
    (void)h;
    (void)sig;
    if (atomic_load(&srv.draining))
        return; /* shutting down: nothing will be served with it */
    if (!srv.opts->snapshot_path) {
        tg_log(TG_LOG_WARN, "dp_server", "reload_skipped", "reason=\"no --snapshot file\"");
        return;
    }
    tg_err_clear(&err);
    if (tg_snap_load_file(srv.opts->snapshot_path, &s, &err) != 0) {
        /* the old snapshot keeps serving */
        tg_log(TG_LOG_ERROR, "dp_server", "reload_refused", "file=\"%s\" reason=\"%s\"",
               srv.opts->snapshot_path, err.msg);
        return;
    }
    hand_snapshot(s);
    tg_log(TG_LOG_INFO, "dp_server", "snapshot_loaded", "version=%lld keys=%zu routes=%zu",
           (long long)s->version, s->nkeys, s->nroutes);
    tg_snap_unref(s);
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    (void)h;
    if (atomic_load(&srv.draining))
        return;
    atomic_store(&srv.draining, true);
    tg_log(TG_LOG_INFO, "dp_server", "draining", "signal=%d grace_ms=%u", sig,
           srv.opts->drain_timeout_ms);
    for (int i = 0; i < srv.n; i++) {
        dp_worker_t *w = srv.workers[i];
        pthread_mutex_lock(&w->mu);
        w->drain_requested = true;
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->wake);
    }
    /* Unref, not close: a closed signal handle restores the default action, and a SIGHUP or a
     * second SIGTERM/SIGINT during the drain would kill the process with requests in flight and
     * usage unwritten. Unref'd, they still catch signals but let the main loop return. */
    uv_unref((uv_handle_t *)&srv.sighup);
    uv_unref((uv_handle_t *)&srv.sigterm);
    uv_unref((uv_handle_t *)&srv.sigint);
}

static void worker_dispose(dp_worker_t *w)
{
    uv_loop_close(&w->loop);
    dp_req_cache_free(w);
    tg_snap_unref(w->snap);
    tg_snap_unref(w->pending_snap);
    tg_buf_dispose(&w->usage);
    dp_metrics_destroy(w->metrics);
    dp_health_destroy(w->health);
    dp_cache_destroy(w->cache);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int dp_server_run(const dp_opts_t *o, tg_snap_t *initial)
{
    int port = o->listen_port;
    int started = 0;
    int rc = 0;
    srv.opts = o;
    srv.n = o->workers;
    srv.workers = calloc((size_t)o->workers, sizeof(*srv.workers));
    if (!srv.workers)
        return 1;
    if (initial) {
        dp_ledger_bind(initial);
        atomic_store(&srv.version, initial->version);
        atomic_store(&srv.ready, true);
    }
    for (int i = 0; i < o->workers; i++) {
        srv.workers[i] = calloc(1, sizeof(dp_worker_t));
        if (!srv.workers[i] || worker_init(srv.workers[i], i, o, initial, &port) != 0) {
            tg_log(TG_LOG_ERROR, "dp_server", "start_failed", "worker=%d", i);
            exit(1); /* nothing is serving yet: there is nothing to drain */
        }
    }
    tg_snap_unref(initial);
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_init(main_loop, &srv.sighup);
    uv_signal_init(main_loop, &srv.sigterm);
    uv_signal_init(main_loop, &srv.sigint);
    uv_signal_start(&srv.sighup, on_sighup, SIGHUP);
    uv_signal_start(&srv.sigterm, on_sigterm, SIGTERM);
    uv_signal_start(&srv.sigint, on_sigterm, SIGINT);
    for (int i = 0; i < o->workers; i++) {
        if (pthread_create(&srv.workers[i]->thread, NULL, worker_main, srv.workers[i]) != 0) {
            tg_log(TG_LOG_ERROR, "dp_server", "thread_failed", "worker=%d", i);
            exit(1);
        }
        started++;
    }
    tg_log(TG_LOG_INFO, "dp_server", "listening", "addr=%s:%d workers=%d snapshot_version=%lld",
           o->listen_host, port, o->workers, (long long)dp_server_snapshot_version());
    if (o->control_url && dp_sync_start(o, dp_server_snapshot_version(), hand_from_sync) != 0) {
        tg_log(TG_LOG_ERROR, "dp_server", "sync_failed", "reason=\"cannot start the sync thread\"");
        exit(1);
    }
    uv_run(main_loop, UV_RUN_DEFAULT);
    dp_sync_stop();
    for (int i = 0; i < started; i++)
        pthread_join(srv.workers[i]->thread, NULL);
    for (int i = 0; i < o->workers; i++)
        worker_dispose(srv.workers[i]);
    free(srv.workers);
    /* EBUSY: the signal handles stay open (unref'd) to the end, so a late signal cannot cut the
     * final usage flush short */
    uv_loop_close(main_loop);
    tg_log(TG_LOG_INFO, "dp_server", "stopped", "workers=%d", o->workers);
    return rc;
}

/* dp.h: the data plane's shared internals: options and the worker that owns one loop (server.c
 * runs it; conn.c, endpoints.c and request.c work inside it). */
#ifndef DP_H
#define DP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "health.h"
#include "http.h"
#include "tg_rand.h"
#include "tg_snap.h"

typedef struct dp_opts {
    char listen_host[256];
    int listen_port;
    int workers;
    const char *snapshot_path;
    const char *control_url; /* pull snapshots from the control plane (sync.c) */
    const char *state_dir;
    const char *usage_path;
    dp_http_limits_t limits;
    uint32_t header_timeout_ms;   /* first byte of a request to the end of its headers */
    uint32_t body_timeout_ms;     /* longest pause between body reads */
    uint32_t idle_timeout_ms;     /* keep-alive connection with no request */
    uint32_t drain_timeout_ms;    /* SIGTERM grace period for requests in flight */
    size_t max_response_bytes;    /* non-streamed upstream answer */
    dp_health_opts_t health;      /* circuit breakers */
    size_t cache_max_bytes;       /* response cache per worker; 0 = none */
    size_t responses_cache_bytes; /* stored responses kept per worker (rstore.h) */
    /* how long a worker trusts a cached stored response (rstore.h) */
    uint32_t responses_cache_ttl_s;
} dp_opts_t;

typedef struct dp_upstream dp_upstream_t; /* upstream.h */
typedef struct dp_metrics dp_metrics_t;
typedef struct dp_conn dp_conn_t;
typedef struct dp_req dp_req_t;
struct dp_conn_handler;

typedef struct dp_worker {
    int id;
    const dp_opts_t *opts; /* borrowed from main, read-only once threads run */
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t usage_timer;
    uv_timer_t drain_timer;
    pthread_t thread;
    pthread_mutex_t mu;      /* guards the two fields below, written by the main thread */
    tg_snap_t *pending_snap; /* a ref handed over by main; swapped in on wake */
    bool drain_requested;
    /* loop thread only from here */
    const struct dp_conn_handler *handler; /* where connections hand requests (static) */
    int (*render_metrics)(tg_buf_t *out);  /* every worker's counters, summed (server.c) */
    tg_snap_t *snap;                       /* current snapshot, one ref */
    dp_upstream_t *up;
    dp_metrics_t *metrics;
    dp_health_t *health;    /* targets' circuits and balancing statistics */
    struct dp_cache *cache; /* exact-match response cache, or NULL */
    tg_rand_t rand;
    tg_buf_t usage; /* NDJSON lines not yet handed to the sink */
    size_t usage_count;
    dp_conn_t *conns; /* all open connections, for drain */
    size_t nconns;
    uv_check_t cork_check; /* flush corked connections after the loop's I/O (conn.c) */
    uv_idle_t cork_idle;   /* ...or before it, when they corked in a timer: never block first */
    tg_buf_t cork_buf;     /* their bytes, until then */
    dp_conn_t *corked;     /* connections with bytes in cork_buf */
    bool draining;
    uint64_t drain_started; /* loop time */
    bool listener_closed;
    atomic_long inflight;
    dp_req_t *req_free; /* ended requests kept for reuse (request.c) */
    int nreq_free;
    char read_buf[65536]; /* every read of this loop lands here; parsed before the next */
} dp_worker_t;

#define DP_WQ_HIGH (256u * 1024u) /* pause the upstream above this many queued bytes */
#define DP_WQ_LOW (64u * 1024u)   /* and resume below this */

#endif

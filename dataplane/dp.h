/* dp.h: the data plane's shared internals: options, workers, connections and the calls between
 * conn.c (HTTP/1.1 connections), proxy.c (requests) and server.c (workers, signals). */
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
    uint32_t header_timeout_ms; /* first byte of a request to the end of its headers */
    uint32_t body_timeout_ms;   /* longest pause between body reads */
    uint32_t idle_timeout_ms;   /* keep-alive connection with no request */
    uint32_t drain_timeout_ms;  /* SIGTERM grace period for requests in flight */
    size_t max_response_bytes;  /* non-streamed upstream answer */
    dp_health_opts_t health;    /* circuit breakers */
    size_t cache_max_bytes;     /* response cache per worker; 0 = none */
} dp_opts_t;

typedef struct dp_upstream dp_upstream_t;
typedef struct dp_metrics dp_metrics_t;
typedef struct dp_conn dp_conn_t;
typedef struct dp_req dp_req_t;

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
    tg_snap_t *snap; /* current snapshot, one ref */
    dp_upstream_t *up;
    void *easy_pool[64]; /* idle curl handles kept for reuse (CURL *) */
    int neasy;
    dp_metrics_t *metrics;
    dp_health_t *health;    /* targets' circuits and balancing statistics */
    struct dp_cache *cache; /* exact-match response cache, or NULL */
    tg_rand_t rand;
    tg_buf_t usage; /* NDJSON lines not yet handed to the sink */
    size_t usage_count;
    dp_conn_t *conns; /* all open connections, for drain */
    size_t nconns;
    bool draining;
    uint64_t drain_started; /* loop time */
    bool listener_closed;
    atomic_long inflight;
    char read_buf[65536]; /* every read of this loop lands here; parsed before the next */
} dp_worker_t;

/* conn.c */
void dp_conn_accept(dp_worker_t *w, uv_stream_t *listener);
/* Starts closing every connection with no request in flight (drain); the rest close after
 * their response. force also aborts requests in flight. */
void dp_conn_close_idle(dp_worker_t *w, bool force);
/* Writes a complete response (copying head and body). */
int dp_conn_write(dp_conn_t *c, const char *head, size_t hlen, const char *body, size_t blen);
/* Writes one chunk of a chunked response body; len 0 writes the terminating chunk. */
int dp_conn_write_chunk(dp_conn_t *c, const char *data, size_t len);
size_t dp_conn_write_queue(const dp_conn_t *c);
/* Whether the response must say Connection: close. */
bool dp_conn_must_close(const dp_conn_t *c);
/* The request in flight has finished its response: the connection reads the next one. */
void dp_conn_request_done(dp_conn_t *c);

/* proxy.c */
/* Handles one complete request; takes msg. Returns NULL when it answered at once, else the
 * request now in flight, which calls dp_conn_request_done when its response is queued. */
dp_req_t *dp_proxy_handle(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg);
/* Answers, before the body is read, a request its head already refuses (unknown path, wrong
 * method, no configuration, a missing or invalid API key; a body sent to a probe path) and
 * returns true: the connection then closes with the body unread, so a caller without a valid key
 * never gets more than one read of its body in. false: read the body. head stays the caller's. */
bool dp_proxy_refuse_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head);
/* The client went away (or the drain grace ran out): cancel the upstream, record usage, free
 * the request. Never called from inside a curl callback. */
void dp_proxy_client_gone(dp_req_t *r);
/* The client's write queue fell below the low-water mark: resume a paused upstream. */
void dp_proxy_client_drained(dp_req_t *r);
/* Hands the worker's buffered usage lines to the sink. */
void dp_proxy_flush_usage(dp_worker_t *w);
/* Frees what the proxy keeps per worker (idle curl handles); at worker exit. */
void dp_proxy_worker_dispose(dp_worker_t *w);

/* server.c */
/* The current snapshot version, for /metrics (any thread). */
int64_t dp_server_snapshot_version(void);
bool dp_server_ready(void);
/* All workers, for /metrics (their counters are read with atomics or under their locks). */
dp_worker_t **dp_server_workers(int *n);

#define DP_WQ_HIGH (256u * 1024u) /* pause the upstream above this many queued bytes */
#define DP_WQ_LOW (64u * 1024u)   /* and resume below this */

#endif

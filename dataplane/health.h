/* health.h: passive health of upstream targets, per worker: a circuit breaker per target (open
 * after N consecutive failures or an error rate over a window; after a cool-down one probe is let
 * through, half-open; its success closes the circuit) and what the balancing strategies read
 * (requests in flight, moving average of time to first byte). A target is a provider id and a
 * model, so its health survives snapshot swaps. Written by its worker's loop thread only; other
 * threads (a /metrics scrape) read entries through dp_health_at, whose fields they read are
 * atomics. Pure (no I/O). */
#ifndef DP_HEALTH_H
#define DP_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dp_health_opts {
    uint32_t failures;       /* consecutive failures that open the circuit (default 5) */
    uint32_t window_ms;      /* error-rate window (default 10000) */
    uint32_t min_requests;   /* the error rate counts from this many requests a window (20) */
    uint32_t error_rate_pct; /* open above this failure percentage (default 50) */
    uint32_t open_ms;        /* cool-down before a half-open probe (default 10000) */
} dp_health_opts_t;

#define DP_HEALTH_OPTS_DEFAULT                                                                     \
    {                                                                                              \
        5, 10000, 20, 50, 10000                                                                    \
    }

enum { DP_CIRCUIT_CLOSED = 0, DP_CIRCUIT_HALF_OPEN = 1, DP_CIRCUIT_OPEN = 2 };

typedef struct dp_tstate {
    char *provider; /* owned */
    char *model;    /* owned */
    uint64_t hash;
    atomic_int state;     /* DP_CIRCUIT_* */
    atomic_ulong opens;   /* times the circuit opened */
    uint32_t consecutive; /* failures in a row */
    uint64_t opened_at_ms;
    bool probing; /* the half-open probe is in flight */
    uint64_t win_start_ms;
    uint32_t win_total, win_failed;
    int64_t inflight;    /* attempts in flight on this worker */
    double ewma_ttfb_ms; /* < 0 until the first sample */
} dp_tstate_t;

typedef struct dp_health dp_health_t;

dp_health_t *dp_health_create(const dp_health_opts_t *o);
void dp_health_destroy(dp_health_t *h);
/* The state of a target, created on first use; NULL when the table is full (the target is then
 * treated as healthy and untracked). */
dp_tstate_t *dp_health_get(dp_health_t *h, const char *provider, const char *model);
/* Whether an attempt may go to the target now: closed, or open past its cool-down with no probe
 * in flight (that attempt becomes the probe). NULL-safe (true). */
bool dp_health_available(const dp_health_t *h, const dp_tstate_t *t, uint64_t now_ms);
/* An attempt starts on the target (takes the probe when half-open). */
void dp_health_start(dp_health_t *h, dp_tstate_t *t, uint64_t now_ms);
/* The attempt ended: ok, or a failure (connect error, timeout, 5xx, 429). ttfb_ms < 0 when no
 * byte came. */
void dp_health_end(dp_health_t *h, dp_tstate_t *t, bool ok, double ttfb_ms, uint64_t now_ms);
/* The attempt was abandoned (the client left): no verdict on the target; a probe is released
 * so that the next attempt probes. */
void dp_health_cancel(dp_health_t *h, dp_tstate_t *t);
/* Entries for a scrape from any thread: index < dp_health_count. */
size_t dp_health_count(const dp_health_t *h);
const dp_tstate_t *dp_health_at(const dp_health_t *h, size_t i);

#endif

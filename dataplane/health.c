/* health.c: per-worker target health: circuit breakers and balancing statistics. */
#include "health.h"

#include <stdlib.h>
#include <string.h>

#include "tg_hash.h"

#include "tg_banned.h"

#define HEALTH_MAX 1024 /* targets tracked per worker; entries never move (scrapes read them) */
#define EWMA_ALPHA 0.2

struct dp_health {
    dp_health_opts_t o;
    dp_tstate_t *entries; /* HEALTH_MAX, filled in order */
    atomic_size_t count;
    uint32_t slots[HEALTH_MAX * 2]; /* open addressing: index + 1, 0 = empty */
};

dp_health_t *dp_health_create(const dp_health_opts_t *o)
{
    dp_health_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->entries = calloc(HEALTH_MAX, sizeof(*h->entries));
    if (!h->entries) {
        free(h);
        return NULL;
    }
    h->o = *o;
    return h;
}

void dp_health_destroy(dp_health_t *h)
{
    if (!h)
        return;
    size_t n = atomic_load(&h->count);
    for (size_t i = 0; i < n; i++) {
        free(h->entries[i].provider);
        free(h->entries[i].model);
    }
    free(h->entries);
    free(h);
}

static uint64_t target_hash(const char *provider, const char *model)
{
    uint64_t a = tg_fnv1a(provider, strlen(provider));
    uint64_t b = tg_fnv1a(model, strlen(model));
    return a * 1099511628211ull ^ b;
}

dp_tstate_t *dp_health_get(dp_health_t *h, const char *provider, const char *model)
{
    if (!h)
        return NULL;
    uint64_t hv = target_hash(provider, model);
    size_t mask = HEALTH_MAX * 2 - 1;
    size_t at = hv & mask;
    for (;;) {
        uint32_t s = h->slots[at];
        if (s == 0)
            break;
        dp_tstate_t *t = &h->entries[s - 1];
        if (t->hash == hv && strcmp(t->provider, provider) == 0 && strcmp(t->model, model) == 0)
            return t;
        at = (at + 1) & mask;
    }
    size_t n = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (n == HEALTH_MAX)
        return NULL;
    dp_tstate_t *t = &h->entries[n];
    t->provider = strdup(provider);
    t->model = strdup(model);
    if (!t->provider || !t->model) {
        free(t->provider);
        free(t->model);
        t->provider = t->model = NULL;
        return NULL;
    }
    t->hash = hv;
    t->ewma_ttfb_ms = -1;
    h->slots[at] = (uint32_t)n + 1;
    /* release: a scrape that sees the count sees the names */
    atomic_store_explicit(&h->count, n + 1, memory_order_release);
    return t;
}

bool dp_health_available(const dp_health_t *h, const dp_tstate_t *t, uint64_t now_ms)
{
    if (!h || !t)
        return true;
    switch (atomic_load_explicit(&t->state, memory_order_relaxed)) {
    case DP_CIRCUIT_CLOSED:
        return true;
    case DP_CIRCUIT_HALF_OPEN:
        return !t->probing;
    default:
        return now_ms - t->opened_at_ms >= h->o.open_ms;
    }
}

void dp_health_start(dp_health_t *h, dp_tstate_t *t, uint64_t now_ms)
{
    if (!h || !t)
        return;
    t->inflight++;
    int st = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (st == DP_CIRCUIT_OPEN && now_ms - t->opened_at_ms >= h->o.open_ms) {
        atomic_store_explicit(&t->state, DP_CIRCUIT_HALF_OPEN, memory_order_relaxed);
        st = DP_CIRCUIT_HALF_OPEN;
    }
    if (st == DP_CIRCUIT_HALF_OPEN)
        t->probing = true;
}

static void trip(dp_tstate_t *t, uint64_t now_ms)
{
    atomic_store_explicit(&t->state, DP_CIRCUIT_OPEN, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->opens, 1, memory_order_relaxed);
    t->opened_at_ms = now_ms;
    t->probing = false;
    t->consecutive = 0;
    t->win_start_ms = now_ms;
    t->win_total = t->win_failed = 0;
}

void dp_health_end(dp_health_t *h, dp_tstate_t *t, bool ok, double ttfb_ms, uint64_t now_ms)
{
    if (!h || !t)
        return;
    if (t->inflight > 0)
        t->inflight--;
    if (ttfb_ms >= 0)
        t->ewma_ttfb_ms = t->ewma_ttfb_ms < 0
                              ? ttfb_ms
                              : t->ewma_ttfb_ms + EWMA_ALPHA * (ttfb_ms - t->ewma_ttfb_ms);
    int st = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (st == DP_CIRCUIT_HALF_OPEN) {
        if (!t->probing)
            return; /* an attempt started before the circuit opened: the probe decides */
        t->probing = false;
        if (ok) {
            atomic_store_explicit(&t->state, DP_CIRCUIT_CLOSED, memory_order_relaxed);
            t->consecutive = 0;
            t->win_start_ms = now_ms;
            t->win_total = t->win_failed = 0;
        } else {
            trip(t, now_ms);
        }
        return;
    }
    if (st == DP_CIRCUIT_OPEN)
        return; /* late results of attempts started before it opened */
    if (now_ms - t->win_start_ms >= h->o.window_ms) {
        t->win_start_ms = now_ms;
        t->win_total = t->win_failed = 0;
    }
    t->win_total++;
    if (ok) {
        t->consecutive = 0;
        return;
    }
    t->win_failed++;
    t->consecutive++;
    bool rate = t->win_total >= h->o.min_requests &&
                (uint64_t)t->win_failed * 100 > (uint64_t)t->win_total * h->o.error_rate_pct;
    if (t->consecutive >= h->o.failures || rate)
        trip(t, now_ms);
}

void dp_health_cancel(dp_health_t *h, dp_tstate_t *t)
{
    if (!h || !t)
        return;
    if (t->inflight > 0)
        t->inflight--;
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == DP_CIRCUIT_HALF_OPEN)
        t->probing = false;
}

size_t dp_health_count(const dp_health_t *h)
{
    return h ? atomic_load_explicit(&h->count, memory_order_acquire) : 0;
}

const dp_tstate_t *dp_health_at(const dp_health_t *h, size_t i)
{
    return &h->entries[i];
}

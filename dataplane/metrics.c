/* metrics.c: counters for /metrics. Request counts by (status, model, provider) live in a small
 * table per worker behind that worker's own mutex, which only a scrape contends for; the
 * histogram is atomics. */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "rstore.h"
#include "shipper.h"

#include "tg_banned.h"

#define MAX_SERIES 512
#define NAME_MAX_LEN 96

static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60,   300};
#define NBUCKETS (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

typedef struct series {
    int status;
    char model[NAME_MAX_LEN];
    char provider[NAME_MAX_LEN];
    uint64_t count;
} series_t;

struct dp_metrics {
    pthread_mutex_t mu;
    series_t series[MAX_SERIES];
    size_t nseries;
    atomic_uint_fast64_t lat_buckets[NBUCKETS];
    atomic_uint_fast64_t lat_count;
    atomic_uint_fast64_t lat_sum_us;
};

dp_metrics_t *dp_metrics_create(void)
{
    dp_metrics_t *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void dp_metrics_destroy(dp_metrics_t *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= NAME_MAX_LEN)
        n = NAME_MAX_LEN - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void dp_metrics_request(dp_metrics_t *m, int status, const char *model, const char *provider)
{
    pthread_mutex_lock(&m->mu);
    size_t i;
    for (i = 0; i < m->nseries; i++) {
        series_t *s = &m->series[i];
        if (s->status == status && strncmp(s->model, model, NAME_MAX_LEN - 1) == 0 &&
            strncmp(s->provider, provider, NAME_MAX_LEN - 1) == 0)
            break;
    }
    if (i == m->nseries) {
        if (m->nseries == MAX_SERIES) {
            i = MAX_SERIES - 1; /* the table is full: fold into the last series */
        } else {
            m->nseries++;
            m->series[i].status = status;
            copy_name(m->series[i].model, model);
            copy_name(m->series[i].provider, provider);
        }
    }
    m->series[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void dp_metrics_upstream(dp_metrics_t *m, double seconds)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= lat_bounds[i]) {
            atomic_fetch_add_explicit(&m->lat_buckets[i], 1, memory_order_relaxed);
            break;
        }
    atomic_fetch_add_explicit(&m->lat_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

static int append_label(tg_buf_t *out, const char *v);

/* One series per worker and target: the circuit's state, or how often it opened. */
static int render_circuit_series(tg_buf_t *out, dp_worker_t **workers, int n, const char *name,
                                 bool opens)
{
    int rc = 0;
    for (int w = 0; rc == 0 && w < n; w++) {
        const dp_health_t *h = workers[w]->health;
        for (size_t i = 0; rc == 0 && i < dp_health_count(h); i++) {
            const dp_tstate_t *t = dp_health_at(h, i);
            rc = tg_buf_appendf(out, "%s{worker=\"%d\",provider=\"", name, w);
            if (rc == 0)
                rc = append_label(out, t->provider);
            if (rc == 0)
                rc = tg_buf_appendf(out, "\",model=\"");
            if (rc == 0)
                rc = append_label(out, t->model);
            if (rc == 0)
                rc = opens ? tg_buf_appendf(out, "\"} %lu\n", atomic_load(&t->opens))
                           : tg_buf_appendf(out, "\"} %d\n", atomic_load(&t->state));
        }
    }
    return rc;
}

/* Each worker's circuit breakers: they learn on their own (no lock between loops). */
static int render_circuits(tg_buf_t *out, dp_worker_t **workers, int n)
{
    int rc = tg_buf_appendf(out, "# HELP tollgate_circuit_state Circuit of an upstream target per "
                                 "worker: 0 closed, 1 half-open, 2 open.\n"
                                 "# TYPE tollgate_circuit_state gauge\n");
    if (rc == 0)
        rc = render_circuit_series(out, workers, n, "tollgate_circuit_state", false);
    if (rc == 0)
        rc = tg_buf_appendf(out, "# HELP tollgate_circuit_opens_total Times a target's circuit "
                                 "opened, per worker.\n"
                                 "# TYPE tollgate_circuit_opens_total counter\n");
    if (rc == 0)
        rc = render_circuit_series(out, workers, n, "tollgate_circuit_opens_total", true);
    return rc;
}

static int append_label(tg_buf_t *out, const char *v)
{
    int rc = 0;
    for (const char *p = v; rc == 0 && *p; p++) {
        if (*p == '\\' || *p == '"')
            rc = tg_buf_append(out, "\\", 1);
        if (rc == 0)
            rc = *p == '\n' ? tg_buf_append(out, "\\n", 2) : tg_buf_append(out, p, 1);
    }
    return rc;
}

/* The Responses API's store (rstore.h); docs/responses.md lists these. */
static int render_rstore(tg_buf_t *out)
{
    dp_rstore_stats_t st;
    dp_rstore_stats(&st);
    if (!st.started)
        return 0;
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"tollgate_responses_stored_total", "counter",
         "Stored responses the control plane acknowledged (without one: the data plane's "
         "process-wide store took)."},
        {"tollgate_responses_spooled_total", "counter",
         "Stored responses written to the spool because the control plane did not take them."},
        {"tollgate_responses_spool_depth", "gauge",
         "Stored responses in the spool waiting for the control plane."},
        {"tollgate_responses_ship_failures_total", "counter",
         "Hand-overs and spool resends of stored responses the control plane did not take."},
        {"tollgate_responses_dropped_total", "counter",
         "Stored responses never stored: refused as too large (413) or larger than the store."},
        {"tollgate_responses_spool_failures_total", "counter",
         "Stored responses the spool could not write (kept in one worker's cache only)."},
        {"tollgate_responses_fetches_total", "counter",
         "Stored responses a worker asked for because its cache did not hold them (from the "
         "control plane, or the process-wide store without one)."},
        {"tollgate_responses_fetch_failures_total", "counter",
         "Fetches of stored responses that could not be answered (not counting not found)."},
        {"tollgate_responses_cache_hits_total", "counter",
         "Lookups of a stored response (previous_response_id, item_reference, GET) a worker's "
         "cache answered."},
        {"tollgate_responses_cache_misses_total", "counter",
         "Lookups of a stored response a worker's cache did not answer."},
    };
    const long long v[] = {(long long)st.stored,      (long long)st.spooled,
                           (long long)st.spool_depth, (long long)st.ship_failures,
                           (long long)st.dropped,     (long long)st.spool_failures,
                           (long long)st.fetches,     (long long)st.fetch_failures,
                           (long long)st.cache_hits,  (long long)st.cache_misses};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(m) / sizeof(m[0]); i++)
        rc = tg_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", m[i].name, m[i].help,
                            m[i].name, m[i].type, m[i].name, v[i]);
    return rc;
}

int dp_metrics_render(tg_buf_t *out, dp_worker_t **workers, int n, int64_t snapshot_version)
{
    series_t *all = calloc((size_t)n * MAX_SERIES, sizeof(*all));
    size_t nall = 0;
    long inflight = 0;
    uint64_t buckets[NBUCKETS] = {0}, count = 0, sum_us = 0;
    int rc;
    if (!all)
        return TG_ENOMEM;
    for (int w = 0; w < n; w++) {
        dp_metrics_t *m = workers[w]->metrics;
        inflight += atomic_load_explicit(&workers[w]->inflight, memory_order_relaxed);
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->nseries; i++) {
            size_t j;
            for (j = 0; j < nall; j++)
                if (all[j].status == m->series[i].status &&
                    strcmp(all[j].model, m->series[i].model) == 0 &&
                    strcmp(all[j].provider, m->series[i].provider) == 0)
                    break;
            if (j == nall)
                all[nall++] = m->series[i];
            else
                all[j].count += m->series[i].count;
        }
        pthread_mutex_unlock(&m->mu);
        for (size_t b = 0; b < NBUCKETS; b++)
            buckets[b] += atomic_load_explicit(&m->lat_buckets[b], memory_order_relaxed);
        count += atomic_load_explicit(&m->lat_count, memory_order_relaxed);
        sum_us += atomic_load_explicit(&m->lat_sum_us, memory_order_relaxed);
    }
    rc = tg_buf_appendf(out, "# HELP tollgate_requests_total Requests answered, by status, model "
                             "alias and provider.\n# TYPE tollgate_requests_total counter\n");
    for (size_t i = 0; rc == 0 && i < nall; i++) {
        rc = tg_buf_appendf(out, "tollgate_requests_total{status=\"%d\",model=\"", all[i].status);
        if (rc == 0)
            rc = append_label(out, all[i].model);
        if (rc == 0)
            rc = tg_buf_appendf(out, "\",provider=\"");
        if (rc == 0)
            rc = append_label(out, all[i].provider);
        if (rc == 0)
            rc = tg_buf_appendf(out, "\"} %" PRIu64 "\n", all[i].count);
    }
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            "# HELP tollgate_upstream_duration_seconds Upstream exchange time.\n"
                            "# TYPE tollgate_upstream_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; rc == 0 && b < NBUCKETS; b++) {
        cum += buckets[b];
        rc = tg_buf_appendf(out,
                            "tollgate_upstream_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            lat_bounds[b], cum);
    }
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            "tollgate_upstream_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                            "tollgate_upstream_duration_seconds_sum %.6f\n"
                            "tollgate_upstream_duration_seconds_count %" PRIu64 "\n",
                            count, (double)sum_us / 1e6, count);
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            "# HELP tollgate_requests_in_flight Requests being answered.\n"
                            "# TYPE tollgate_requests_in_flight gauge\n"
                            "tollgate_requests_in_flight %ld\n"
                            "# HELP tollgate_snapshot_version Version of the config snapshot "
                            "served.\n# TYPE tollgate_snapshot_version gauge\n"
                            "tollgate_snapshot_version %" PRId64 "\n",
                            inflight, snapshot_version);
    dp_shipper_stats_t us;
    dp_shipper_stats(&us);
    if (rc == 0 && us.enabled)
        rc = tg_buf_appendf(
            out,
            "# HELP tollgate_usage_spooled_events Usage events in the spool not yet acknowledged "
            "by the control plane.\n# TYPE tollgate_usage_spooled_events gauge\n"
            "tollgate_usage_spooled_events %lld\n"
            "# HELP tollgate_usage_written_events_total Usage events appended to the spool.\n"
            "# TYPE tollgate_usage_written_events_total counter\n"
            "tollgate_usage_written_events_total %" PRIu64 "\n"
            "# HELP tollgate_usage_shipped_events_total Usage events the control plane "
            "acknowledged.\n# TYPE tollgate_usage_shipped_events_total counter\n"
            "tollgate_usage_shipped_events_total %" PRIu64 "\n"
            "# HELP tollgate_usage_rejected_events_total Usage events the control plane refused "
            "as invalid.\n# TYPE tollgate_usage_rejected_events_total counter\n"
            "tollgate_usage_rejected_events_total %" PRIu64 "\n"
            "# HELP tollgate_usage_ship_failures_total Usage deliveries that failed and were "
            "retried.\n# TYPE tollgate_usage_ship_failures_total counter\n"
            "tollgate_usage_ship_failures_total %" PRIu64 "\n",
            (long long)us.pending, us.spooled_total, us.shipped_total, us.rejected_total,
            us.failures_total);
    if (rc == 0)
        rc = render_rstore(out);
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            "# HELP tollgate_ratelimit_dataplanes Live data planes sharing every "
                            "rate limit; this one enforces 1/N of each.\n"
                            "# TYPE tollgate_ratelimit_dataplanes gauge\n"
                            "tollgate_ratelimit_dataplanes %d\n",
                            dp_ledger_live_dataplanes());
    if (rc == 0)
        rc = render_circuits(out, workers, n);
    free(all);
    return rc;
}

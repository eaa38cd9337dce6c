/* ingest.c: POST /dp/v1/usage (docs/usage.md). A batch of NDJSON usage events is validated line by
 * line (tg_usage_event_parse: the format's one reader, shared with the data plane), the valid
 * events go in with one COPY into a per-connection temp table and one INSERT ... ON CONFLICT DO
 * NOTHING, and what was new is added to spend and the usage rollups in the same statement and
 * transaction. The answer (after COMMIT) carries every budget's current spend. Runs on MHD worker
 * threads with the thread's PGconn; the counters are _Atomic. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "tg_log.h"
#include "tg_time.h"
#include "tg_usage_event.h"

#include "tg_banned.h"

#define INGEST_MAX_EVENTS 5000
#define INGEST_ATTEMPTS 5                /* deadlock / serialization failure: run the batch again */
#define PARTITION_CHECK_MS (3600 * 1000) /* how often usage_ensure_partitions runs */

typedef struct rejection {
    int line;
    char msg[96];
} rejection_t;

static atomic_ulong n_accepted, n_duplicate, n_rejected, n_batches_ok, n_batches_failed;
static atomic_llong next_partition_check_ms;

/* This thread's connection has the temp table and the prepared statements (its backend pid tells
 * a reconnect apart). */
static _Thread_local PGconn *ready_conn;
static _Thread_local int ready_pid;

static int copy_row(tg_buf_t *o, const tg_usage_event_t *e);
static int conn_setup(PGconn *c, char *state);
static int insert_batch(cp_req_t *r, const tg_buf_t *copy, long long *inserted, char *state);
static int reply_answer(cp_req_t *r, long long accepted, long long duplicates,
                        const rejection_t *rej, size_t nrej);
static void ensure_partitions(PGconn *c);
static int64_t wall_ms(void);
static int64_t mono_ms(void);

void cp_dp_usage(cp_req_t *r)
{
    if (!cp__dp_token_ok(r)) {
        cp_reply_error(r, 401, "unauthenticated", NULL, "a valid data-plane token is required");
        return;
    }
    tg_buf_t copy = TG_BUF_INIT(64u << 20);
    rejection_t *rej = NULL;
    char *scratch = NULL;
    size_t nrej = 0, nvalid = 0;

    /* limits first: count the events before reading any */
    size_t nlines = 0;
    for (size_t i = 0, start = 0; i <= r->body_len; i++) {
        if (i < r->body_len && r->body[i] != '\n')
            continue;
        for (size_t k = start; k < i; k++) {
            char c = r->body[k];
            if (c != ' ' && c != '\t' && c != '\r') {
                nlines++;
                break;
            }
        }
        start = i + 1;
    }
    if (nlines > INGEST_MAX_EVENTS) {
        cp_reply_error(r, 413, "payload_too_large", NULL,
                       "a batch holds at most %d events; this one has %zu", INGEST_MAX_EVENTS,
                       nlines);
        return;
    }
    if (!r->db) {
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return;
    }
    cp__dp_register(r, -1);
    ensure_partitions(r->db);
    char state[6] = "";
    if (conn_setup(r->db, state) != 0) {
        atomic_fetch_add(&n_batches_failed, 1);
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return;
    }

    if (nlines > 0) {
        rej = calloc(nlines, sizeof(*rej));
        scratch = malloc(r->body_len + 1);
        if (!rej || !scratch) {
            cp_reply_error(r, 503, "out_of_memory", NULL, "could not read the batch; retry");
            goto done;
        }
    }
    tg_usage_event_t e;
    int lineno = 0;
    for (size_t i = 0, start = 0; i < r->body_len; i = start) {
        const char *nl = memchr(r->body + start, '\n', r->body_len - start);
        size_t end = nl ? (size_t)(nl - r->body) : r->body_len;
        const char *line = r->body + start;
        size_t n = end - start;
        start = end + 1;
        lineno++;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        size_t lead = 0;
        while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (lead == n)
            continue; /* blank */
        char msg[96];
        if (tg_usage_event_parse(line + lead, n - lead, (int64_t)time(NULL), scratch, &e, msg,
                                 sizeof(msg)) != 0) {
            rej[nrej].line = lineno;
            memcpy(rej[nrej].msg, msg, sizeof(msg));
            nrej++;
            continue;
        }
        if (copy_row(&copy, &e) != 0) {
            cp_reply_error(r, 503, "out_of_memory", NULL, "could not read the batch; retry");
            goto done;
        }
        nvalid++;
    }

    long long inserted = 0;
    if (nvalid > 0) {
        int64_t t0 = mono_ms();
        int rc = -1;
        for (int attempt = 1; attempt <= INGEST_ATTEMPTS; attempt++) {
            rc = insert_batch(r, &copy, &inserted, state);
            if (rc == 0)
                break;
            PQclear(cp_db_exec(r->db, "ROLLBACK", 0, NULL));
            bool again = strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 ||
                         strcmp(state, "42P01") == 0; /* the temp table went away */
            if (!again || PQstatus(r->db) != CONNECTION_OK)
                break;
            tg_log(TG_LOG_WARN, "cp_ingest", "batch_retry", "sqlstate=%s attempt=%d events=%zu",
                   state, attempt, nvalid);
            /* a short, growing, jittered pause lets the other transaction finish first */
            struct timespec ts = {0, (long)(attempt * 5 + rand() % 10) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (rc != 0) {
            atomic_fetch_add(&n_batches_failed, 1);
            tg_log(TG_LOG_ERROR, "cp_ingest", "batch_failed", "sqlstate=%s events=%zu",
                   state[0] ? state : "none", nvalid);
            cp_reply_error(r, 503, "database_unavailable", NULL,
                           "the database could not store the batch; retry shortly");
            goto done;
        }
        tg_log_debug("cp_ingest", "batch_stored", "events=%zu inserted=%lld rejected=%zu ms=%lld",
                     nvalid, inserted, nrej, (long long)(mono_ms() - t0));
    }
    atomic_fetch_add(&n_batches_ok, 1);
    atomic_fetch_add(&n_accepted, (unsigned long)inserted);
    atomic_fetch_add(&n_duplicate, (unsigned long)((long long)nvalid - inserted));
    atomic_fetch_add(&n_rejected, (unsigned long)nrej);
    if (nrej > 0)
        tg_log(TG_LOG_WARN, "cp_ingest", "events_rejected", "count=%zu first_line=%d reason=\"%s\"",
               nrej, rej[0].line, rej[0].msg);
    reply_answer(r, inserted, (long long)nvalid - inserted, rej, nrej);
done:
    tg_buf_dispose(&copy);
    free(rej);
    free(scratch);
}

int cp_ingest_metrics(tg_buf_t *out)
{
    return tg_buf_appendf(
        out,
        "# HELP tollgate_control_usage_events_total Usage events received from data planes: "
        "accepted (stored), duplicate (already stored), rejected (invalid).\n"
        "# TYPE tollgate_control_usage_events_total counter\n"
        "tollgate_control_usage_events_total{result=\"accepted\"} %lu\n"
        "tollgate_control_usage_events_total{result=\"duplicate\"} %lu\n"
        "tollgate_control_usage_events_total{result=\"rejected\"} %lu\n"
        "# HELP tollgate_control_usage_batches_total Usage batches: ok (answered 200) or failed "
        "(the database could not store them; answered 503).\n"
        "# TYPE tollgate_control_usage_batches_total counter\n"
        "tollgate_control_usage_batches_total{result=\"ok\"} %lu\n"
        "tollgate_control_usage_batches_total{result=\"failed\"} %lu\n",
        atomic_load(&n_accepted), atomic_load(&n_duplicate), atomic_load(&n_rejected),
        atomic_load(&n_batches_ok), atomic_load(&n_batches_failed));
}

/* ---- the COPY row (text format: \N is null; backslash, tab, newline and CR are escaped) ---- */

static int copy_text(tg_buf_t *o, const tg_usage_val_t *v)
{
    if (v->type != TG_UV_STRING)
        return tg_buf_append(o, "\\N", 2);
    if (!v->decoded) /* JSON forbids raw control characters and escapes every backslash */
        return tg_buf_append(o, v->p, v->n);
    int rc = tg_buf_reserve(o, 2 * v->n);
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        char c = v->p[i];
        const char *esc = c == '\\'   ? "\\\\"
                          : c == '\t' ? "\\t"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                                      : NULL;
        if (esc)
            rc = tg_buf_append(o, esc, 2);
        else
            o->base[o->len++] = c;
    }
    return rc;
}

static int copy_num(tg_buf_t *o, const tg_usage_val_t *v)
{
    if (v->type != TG_UV_NUMBER)
        return tg_buf_append(o, "0", 1);
    if (v->n == 2 && v->p[0] == '-' && v->p[1] == '0')
        return tg_buf_append(o, "0", 1);
    return tg_buf_append(o, v->p, v->n);
}

static int copy_opt(tg_buf_t *o, const char *s)
{
    return s[0] ? tg_buf_append(o, s, strlen(s)) : tg_buf_append(o, "\\N", 2);
}

/* Columns in tg_usage_in's order. */
static int copy_row(tg_buf_t *o, const tg_usage_event_t *e)
{
    const tg_usage_val_t *v = e->v;
    int rc = tg_buf_append(o, e->id, 36);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : tg_buf_append(o, e->ts, e->ts_len);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_text(o, &v[TG_UF_REQUEST_ID]);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_opt(o, v[TG_UF_TENANT_ID].type == TG_UV_STRING ? e->tenant_id : "");
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_opt(o, v[TG_UF_KEY_ID].type == TG_UV_STRING ? e->key_id : "");
    static const enum tg_usage_field texts[] = {TG_UF_MODEL, TG_UF_PROVIDER, TG_UF_UPSTREAM_MODEL,
                                                TG_UF_ENDPOINT};
    for (size_t i = 0; i < 4; i++) {
        rc = rc ? rc : tg_buf_append(o, "\t", 1);
        rc = rc ? rc : copy_text(o, &v[texts[i]]);
    }
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_num(o, &v[TG_UF_STATUS]);
    rc = rc ? rc : tg_buf_append(o, v[TG_UF_STREAMED].type == TG_UV_TRUE ? "\tt" : "\tf", 2);
    static const enum tg_usage_field tokens[] = {TG_UF_PROMPT_TOKENS, TG_UF_COMPLETION_TOKENS,
                                                 TG_UF_CACHED_TOKENS, TG_UF_REASONING_TOKENS};
    for (size_t i = 0; i < 4; i++) {
        rc = rc ? rc : tg_buf_append(o, "\t", 1);
        rc = rc ? rc : copy_num(o, &v[tokens[i]]);
    }
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_opt(o, e->cost);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_opt(o, e->latency);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_opt(o, e->ttfb);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_text(o, &v[TG_UF_USAGE_SOURCE]);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_text(o, &v[TG_UF_ERROR]);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_num(o, &v[TG_UF_CACHE_WRITE_TOKENS]);
    rc = rc ? rc : tg_buf_append(o, "\t", 1);
    rc = rc ? rc : copy_num(o, &v[TG_UF_CACHE_WRITE_1H_TOKENS]);
    rc = rc ? rc : tg_buf_append(o, v[TG_UF_UNPRICED].type == TG_UV_TRUE ? "\tt" : "\tf", 2);
    rc = rc ? rc : tg_buf_append(o, "\n", 1);
    return rc;
}

/* ---- the transaction ---- */

static const char temp_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS tg_usage_in (id uuid, ts timestamptz, request_id text, "
    "tenant_id uuid, key_id uuid, model text, provider text, upstream_model text, endpoint text, "
    "status integer, streamed boolean, prompt_tokens bigint, completion_tokens bigint, "
    "cached_tokens bigint, reasoning_tokens bigint, cost_usd numeric(20, 12), "
    "latency_ms double precision, ttfb_ms double precision, usage_source text, error text, "
    "cache_write_tokens bigint, cache_write_1h_tokens bigint, unpriced boolean) "
    "ON COMMIT DELETE ROWS";

/* One statement: the new events (sorted, so that two batches sharing events wait on each other in
 * one order), then spend and the four usage rollups, each one aggregated upsert in its primary
 * key's order. usage_hourly's rows are summed in two steps (hb: per latency bucket too; hr: per
 * row, the bucket counts becoming its latency histogram, migrations/0007_dashboard.sql); the
 * coarser rollups (migrations/0008_usage_rollups_coarse.sql) are summed from hb the same way: hd
 * per day, then dr (usage_daily) per row; hn without the key, then hnr (usage_hourly_nokey); dn
 * per day without the key, then dnr (usage_daily_nokey); ha and da without the tenant either, then
 * har (usage_hourly_all) and dar (usage_daily_all); bq per day and prompt-size band, then br
 * (usage_daily_bands, migrations/0013_catalog_rows_usage_bands.sql), for a tenant's events whose
 * prompt is above some long-context threshold (band 0, most events, is read from
 * usage_daily_nokey, which keeps cache writes for it, less the other bands). Being
 * in this statement, a new event is added to each rollup exactly once, and a duplicate to none.
 * The outer SELECT reads the sub-statements one after the other: first the events' insert and
 * every aggregation (each upsert's rows, hrq ... darq, materialized), then the upserts, so that
 * the upserts, whose rows concurrent batches share and wait on until COMMIT, hold their locks for
 * as short a time as can be (on the ingest bench this took the four extra rollups from 0.5 to 0.9
 * of the old throughput). Every batch locks events, then spend rows, then hourly, daily,
 * hourly-without-key, daily-without-key, hourly-all, daily-all and band rows, each in key order: no
 * deadlock cycles.
 * Longer than the 4095 bytes ISO C requires compilers to take in one literal; GCC and Clang take
 * it, and one literal keeps it one statement that bench/dashboard/run can read. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char insert_sql[] =
    "WITH ins AS ("
    " INSERT INTO usage_events (id, ts, request_id, tenant_id, key_id, model, provider,"
    "  upstream_model, endpoint, status, streamed, prompt_tokens, completion_tokens, cached_tokens,"
    "  reasoning_tokens, cost_usd, latency_ms, ttfb_ms, usage_source, error, cache_write_tokens,"
    "  cache_write_1h_tokens, unpriced)"
    " SELECT id, ts, request_id, tenant_id, key_id, model, provider, upstream_model, endpoint,"
    "  status, streamed, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,"
    "  cost_usd, latency_ms, ttfb_ms, usage_source, error, cache_write_tokens,"
    "  cache_write_1h_tokens, unpriced FROM tg_usage_in ORDER BY id, ts"
    " ON CONFLICT (id, ts) DO NOTHING"
    " RETURNING ts, tenant_id, key_id, model, provider, status, prompt_tokens, completion_tokens,"
    "  cached_tokens, reasoning_tokens, cost_usd, latency_ms, cache_write_tokens,"
    "  cache_write_1h_tokens),"
    " d AS ("
    " SELECT tenant_id, key_id, (ts AT TIME ZONE 'UTC')::date AS day, sum(cost_usd) AS cost,"
    "  count(*) AS n FROM ins WHERE tenant_id IS NOT NULL GROUP BY 1, 2, 3),"
    " sp AS ("
    " INSERT INTO spend AS s (tenant_id, key_id, period, period_start, cost_usd, requests)"
    " SELECT d.tenant_id, sc.key_id, pe.period, pe.start, sum(d.cost), sum(d.n)"
    " FROM d"
    " CROSS JOIN LATERAL (VALUES (CASE WHEN d.key_id <> '00000000-0000-0000-0000-000000000000'"
    "  THEN d.key_id END), ('00000000-0000-0000-0000-000000000000'::uuid)) sc (key_id)"
    " CROSS JOIN LATERAL (VALUES ('daily', d.day),"
    "  ('monthly', date_trunc('month', d.day::timestamp)::date),"
    "  ('total', date '1970-01-01')) pe (period, start)"
    " WHERE sc.key_id IS NOT NULL"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (tenant_id, key_id, period, period_start) DO UPDATE SET"
    "  cost_usd = s.cost_usd + excluded.cost_usd, requests = s.requests + excluded.requests"
    " RETURNING 1),"
    " hb AS ("
    " SELECT coalesce(tenant_id, '00000000-0000-0000-0000-000000000000') AS tenant_id,"
    "  date_trunc('hour', ts, 'UTC') AS hour,"
    "  coalesce(key_id, '00000000-0000-0000-0000-000000000000') AS key_id,"
    "  coalesce(model, '') AS model, coalesce(provider, '') AS provider,"
    "  tg_latency_bucket(latency_ms) AS lb, count(*) AS n, count(*) FILTER (WHERE status >= 400) "
    "AS e,"
    "  sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cached_tokens) AS kt,"
    "  sum(reasoning_tokens) AS rt, sum(cost_usd) AS c, sum(cache_write_tokens) AS wt,"
    "  sum(cache_write_1h_tokens) AS w1t"
    " FROM ins GROUP BY 1, 2, 3, 4, 5, 6),"
    " hrq AS MATERIALIZED ("
    " SELECT tenant_id, hour, key_id, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt),"
    "  sum(rt), sum(c), array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM hb GROUP BY 1, 2, 3, 4, 5),"
    " hr AS ("
    " INSERT INTO usage_hourly AS h (tenant_id, hour, key_id, model, provider, requests, errors,"
    "  prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)"
    " SELECT * FROM hrq ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (tenant_id, hour, key_id, model, provider) DO UPDATE SET"
    "  requests = h.requests + excluded.requests, errors = h.errors + excluded.errors,"
    "  prompt_tokens = h.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = h.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = h.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = h.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = h.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(h.latency_hist, excluded.latency_hist)"
    " RETURNING 1),"
    " hd AS ("
    " SELECT tenant_id, date_trunc('day', hour, 'UTC') AS day, key_id, model, provider, lb,"
    "  sum(n)::bigint AS n, sum(e) AS e, sum(pt) AS pt, sum(ct) AS ct, sum(kt) AS kt,"
    "  sum(rt) AS rt, sum(c) AS c, sum(wt) AS wt, sum(w1t) AS w1t"
    " FROM hb GROUP BY 1, 2, 3, 4, 5, 6),"
    " drq AS MATERIALIZED ("
    " SELECT tenant_id, day, key_id, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt),"
    "  sum(rt), sum(c), array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM hd GROUP BY 1, 2, 3, 4, 5),"
    " dr AS ("
    " INSERT INTO usage_daily AS dy (tenant_id, day, key_id, model, provider, requests, errors,"
    "  prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)"
    " SELECT * FROM drq ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (tenant_id, day, key_id, model, provider) DO UPDATE SET"
    "  requests = dy.requests + excluded.requests, errors = dy.errors + excluded.errors,"
    "  prompt_tokens = dy.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = dy.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = dy.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = dy.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = dy.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(dy.latency_hist, excluded.latency_hist)"
    " RETURNING 1),"
    " hn AS ("
    " SELECT tenant_id, hour, model, provider, lb, sum(n)::bigint AS n, sum(e) AS e,"
    "  sum(pt) AS pt, sum(ct) AS ct, sum(kt) AS kt, sum(rt) AS rt, sum(c) AS c"
    " FROM hb GROUP BY 1, 2, 3, 4, 5),"
    " hnrq AS MATERIALIZED ("
    " SELECT tenant_id, hour, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt),"
    "  sum(rt), sum(c), array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM hn GROUP BY 1, 2, 3, 4),"
    " hnr AS ("
    " INSERT INTO usage_hourly_nokey AS hk (tenant_id, hour, model, provider, requests, errors,"
    "  prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)"
    " SELECT * FROM hnrq ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (tenant_id, hour, model, provider) DO UPDATE SET"
    "  requests = hk.requests + excluded.requests, errors = hk.errors + excluded.errors,"
    "  prompt_tokens = hk.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = hk.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = hk.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = hk.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = hk.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(hk.latency_hist, excluded.latency_hist)"
    " RETURNING 1),"
    " dn AS ("
    " SELECT tenant_id, day, model, provider, lb, sum(n)::bigint AS n, sum(e) AS e,"
    "  sum(pt) AS pt, sum(ct) AS ct, sum(kt) AS kt, sum(rt) AS rt, sum(c) AS c,"
    "  sum(wt) AS wt, sum(w1t) AS w1t"
    " FROM hd GROUP BY 1, 2, 3, 4, 5),"
    " dnrq AS MATERIALIZED ("
    " SELECT tenant_id, day, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt),"
    "  sum(rt), sum(c), sum(wt), sum(w1t),"
    "  array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM dn GROUP BY 1, 2, 3, 4),"
    " dnr AS ("
    " INSERT INTO usage_daily_nokey AS dk (tenant_id, day, model, provider, requests, errors,"
    "  prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_usd,"
    "  cache_write_tokens, cache_write_1h_tokens, latency_hist)"
    " SELECT * FROM dnrq ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (tenant_id, day, model, provider) DO UPDATE SET"
    "  requests = dk.requests + excluded.requests, errors = dk.errors + excluded.errors,"
    "  prompt_tokens = dk.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = dk.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = dk.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = dk.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = dk.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(dk.latency_hist, excluded.latency_hist),"
    "  cache_write_tokens = dk.cache_write_tokens + excluded.cache_write_tokens,"
    "  cache_write_1h_tokens = dk.cache_write_1h_tokens + excluded.cache_write_1h_tokens"
    " RETURNING 1),"
    " ha AS ("
    " SELECT hour, model, provider, lb, sum(n)::bigint AS n, sum(e) AS e, sum(pt) AS pt,"
    "  sum(ct) AS ct, sum(kt) AS kt, sum(rt) AS rt, sum(c) AS c"
    " FROM hn GROUP BY 1, 2, 3, 4),"
    " harq AS MATERIALIZED ("
    " SELECT hour, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt), sum(rt), sum(c),"
    "  array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM ha GROUP BY 1, 2, 3),"
    " har AS ("
    " INSERT INTO usage_hourly_all AS ha_ (hour, model, provider, requests, errors, prompt_tokens,"
    "  completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)"
    " SELECT * FROM harq ORDER BY 1, 2, 3"
    " ON CONFLICT (hour, model, provider) DO UPDATE SET"
    "  requests = ha_.requests + excluded.requests, errors = ha_.errors + excluded.errors,"
    "  prompt_tokens = ha_.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = ha_.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = ha_.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = ha_.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = ha_.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(ha_.latency_hist, excluded.latency_hist)"
    " RETURNING 1),"
    " da AS ("
    " SELECT day, model, provider, lb, sum(n)::bigint AS n, sum(e) AS e, sum(pt) AS pt,"
    "  sum(ct) AS ct, sum(kt) AS kt, sum(rt) AS rt, sum(c) AS c"
    " FROM dn GROUP BY 1, 2, 3, 4),"
    " darq AS MATERIALIZED ("
    " SELECT day, model, provider, sum(n), sum(e), sum(pt), sum(ct), sum(kt), sum(rt), sum(c),"
    "  array_agg((lb::bigint << 40) + n ORDER BY lb) FILTER (WHERE lb IS NOT NULL)"
    " FROM da GROUP BY 1, 2, 3),"
    " dar AS ("
    " INSERT INTO usage_daily_all AS da_ (day, model, provider, requests, errors, prompt_tokens,"
    "  completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_hist)"
    " SELECT * FROM darq ORDER BY 1, 2, 3"
    " ON CONFLICT (day, model, provider) DO UPDATE SET"
    "  requests = da_.requests + excluded.requests, errors = da_.errors + excluded.errors,"
    "  prompt_tokens = da_.prompt_tokens + excluded.prompt_tokens,"
    "  completion_tokens = da_.completion_tokens + excluded.completion_tokens,"
    "  cached_tokens = da_.cached_tokens + excluded.cached_tokens,"
    "  reasoning_tokens = da_.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = da_.cost_usd + excluded.cost_usd,"
    "  latency_hist = tg_latency_hist_add(da_.latency_hist, excluded.latency_hist)"
    " RETURNING 1),"
    " bq AS MATERIALIZED ("
    " SELECT date_trunc('day', ts, 'UTC') AS day, tenant_id, coalesce(model, '') AS model,"
    "  coalesce(provider, '') AS provider, usage_prompt_band(prompt_tokens) AS above, count(*),"
    "  sum(prompt_tokens), sum(cached_tokens), sum(cache_write_tokens),"
    "  sum(cache_write_1h_tokens), sum(completion_tokens), sum(reasoning_tokens), sum(cost_usd)"
    " FROM ins WHERE tenant_id IS NOT NULL"
    "  AND prompt_tokens > (SELECT min(above) FROM usage_prompt_bounds WHERE above > 0)"
    " GROUP BY 1, 2, 3, 4, 5),"
    " br AS ("
    " INSERT INTO usage_daily_bands AS ub (day, tenant_id, model, provider, above, requests,"
    "  prompt_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens, completion_tokens,"
    "  reasoning_tokens, cost_usd)"
    " SELECT * FROM bq ORDER BY 2, 1, 3, 4, 5"
    " ON CONFLICT (tenant_id, day, model, provider, above) DO UPDATE SET"
    "  requests = ub.requests + excluded.requests,"
    "  prompt_tokens = ub.prompt_tokens + excluded.prompt_tokens,"
    "  cached_tokens = ub.cached_tokens + excluded.cached_tokens,"
    "  cache_write_tokens = ub.cache_write_tokens + excluded.cache_write_tokens,"
    "  cache_write_1h_tokens = ub.cache_write_1h_tokens + excluded.cache_write_1h_tokens,"
    "  completion_tokens = ub.completion_tokens + excluded.completion_tokens,"
    "  reasoning_tokens = ub.reasoning_tokens + excluded.reasoning_tokens,"
    "  cost_usd = ub.cost_usd + excluded.cost_usd"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM d), (SELECT count(*) FROM hb),"
    "  (SELECT count(*) FROM hd), (SELECT count(*) FROM hn), (SELECT count(*) FROM dn),"
    "  (SELECT count(*) FROM ha), (SELECT count(*) FROM da), (SELECT count(*) FROM hrq),"
    "  (SELECT count(*) FROM drq), (SELECT count(*) FROM hnrq), (SELECT count(*) FROM dnrq),"
    "  (SELECT count(*) FROM harq), (SELECT count(*) FROM darq), (SELECT count(*) FROM sp),"
    "  (SELECT count(*) FROM hr), (SELECT count(*) FROM dr), (SELECT count(*) FROM hnr),"
    "  (SELECT count(*) FROM dnr), (SELECT count(*) FROM har), (SELECT count(*) FROM dar),"
    "  (SELECT count(*) FROM bq), (SELECT count(*) FROM br)";
#pragma GCC diagnostic pop

static void keep_state(PGresult *res, char *state)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(state, 6, "%s", s ? s : "");
    if (res && PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
        PQresultStatus(res) != PGRES_COPY_IN)
        tg_log(TG_LOG_WARN, "cp_ingest", "statement_failed", "sqlstate=%s reason=\"%.200s\"",
               s ? s : "none", PQresultErrorMessage(res));
}

static int run(PGconn *c, const char *sql, char *state)
{
    PGresult *res = cp_db_exec(c, sql, 0, NULL);
    bool ok = cp_db_ok(res);
    if (!ok)
        keep_state(res, state);
    PQclear(res);
    return ok ? 0 : -1;
}

/* BEGIN, COPY, the insert statement, COMMIT. On failure state holds the SQLSTATE (may be ""); the
 * caller rolls back. */
static int conn_setup(PGconn *c, char *state);
static int insert_batch(cp_req_t *r, const tg_buf_t *copy, long long *inserted, char *state)
{
    PGconn *c = r->db;
    state[0] = '\0';
    if (conn_setup(c, state) != 0)
        return -1;
    if (run(c, "BEGIN", state) != 0)
        return -1;
    PGresult *res = PQexec(c, "COPY tg_usage_in FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        keep_state(res, state);
        PQclear(res);
        if (strcmp(state, "42P01") == 0)
            ready_conn = NULL; /* made again on the next attempt */
        return -1;
    }
    PQclear(res);
    /* libpq buffers what it cannot send at once; 1 MiB pieces keep that bounded */
    int rc = 1;
    for (size_t off = 0; rc == 1 && off < copy->len;) {
        size_t n = copy->len - off < (1u << 20) ? copy->len - off : (1u << 20);
        rc = PQputCopyData(c, copy->base + off, (int)n);
        off += n;
    }
    if (rc == 1)
        rc = PQputCopyEnd(c, NULL);
    bool copied = rc == 1;
    while ((res = PQgetResult(c)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            copied = false;
            keep_state(res, state);
        }
        PQclear(res);
    }
    if (!copied)
        return -1;
    res = PQexecPrepared(c, "tg_ingest", 0, NULL, NULL, NULL, 0);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        keep_state(res, state);
        PQclear(res);
        return -1;
    }
    *inserted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return run(c, "COMMIT", state);
}

/* ---- the answer ---- */

static const char spend_sql[] =
    "SELECT coalesce(json_agg(json_build_object('budget', b.id, 'tenant', b.tenant_id, 'key',"
    " b.key_id, 'period', b.period, 'period_start', p.start, 'limit_usd', trim_scale(b.limit_usd),"
    " 'spent_usd', trim_scale(coalesce(s.cost_usd, 0))) ORDER BY b.id), '[]'::json),"
    " (SELECT greatest(count(*), 1) FROM dataplanes WHERE last_seen > now() - interval '10 "
    "seconds')"
    " FROM budgets b"
    " CROSS JOIN LATERAL (SELECT CASE b.period"
    "  WHEN 'daily' THEN (now() AT TIME ZONE 'UTC')::date"
    "  WHEN 'monthly' THEN date_trunc('month', now() AT TIME ZONE 'UTC')::date"
    "  ELSE date '1970-01-01' END AS start) p"
    " LEFT JOIN spend s ON s.tenant_id = b.tenant_id"
    "  AND s.key_id = coalesce(b.key_id, '00000000-0000-0000-0000-000000000000')"
    "  AND s.period = b.period AND s.period_start = p.start";

static int reply_answer(cp_req_t *r, long long accepted, long long duplicates,
                        const rejection_t *rej, size_t nrej)
{
    int64_t as_of = wall_ms();
    PGresult *res = PQexecPrepared(r->db, "tg_ingest_spend", 0, NULL, NULL, NULL, 0);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    tg_buf_t *o = &r->out;
    tg_buf_reset(o);
    int rc = tg_buf_appendf(o, "{\"accepted\":%lld,\"duplicates\":%lld,\"rejected\":[", accepted,
                            duplicates);
    for (size_t i = 0; rc == 0 && i < nrej; i++) {
        rc = tg_buf_appendf(o, "%s{\"line\":%d,\"message\":", i ? "," : "", rej[i].line);
        rc = rc ? rc : tg_buf_append_json_str(o, rej[i].msg, strlen(rej[i].msg));
        rc = rc ? rc : tg_buf_append(o, "}", 1);
    }
    rc = rc ? rc
            : tg_buf_appendf(o, "],\"live_dataplanes\":%s,\"spend_as_of\":%lld,\"spend\":",
                             PQgetvalue(res, 0, 1), (long long)as_of);
    rc = rc ? rc : cp_json_append_compact(o, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    rc = rc ? rc : tg_buf_append(o, "}", 1);
    PQclear(res);
    if (rc != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not build the answer");
        return -1;
    }
    r->status = 200;
    r->content_type = "application/json";
    return 0;
}

/* Once per connection: the temp table the COPY fills (emptied at every commit) and the two big
 * statements, planned once. */
static int conn_setup(PGconn *c, char *state)
{
    if (ready_conn == c && ready_pid == PQbackendPID(c))
        return 0;
    if (run(c, temp_sql, state) != 0)
        return -1;
    static const char *const names[2] = {"tg_ingest", "tg_ingest_spend"};
    const char *const sqls[2] = {insert_sql, spend_sql};
    for (int i = 0; i < 2; i++) {
        PGresult *res = PQprepare(c, names[i], sqls[i], 0, NULL);
        bool ok = cp_db_ok(res) || cp_db_sqlstate_is(res, "42P05"); /* prepared before a failure */
        if (!ok)
            keep_state(res, state);
        PQclear(res);
        if (!ok)
            return -1;
    }
    ready_conn = c;
    ready_pid = PQbackendPID(c);
    return 0;
}

/* Months ahead get their partitions even when the control plane runs for months without a
 * restart (migrate makes them at start); at most once an hour per process. */
static void ensure_partitions(PGconn *c)
{
    long long now = mono_ms();
    long long next = atomic_load(&next_partition_check_ms);
    if (now < next ||
        !atomic_compare_exchange_strong(&next_partition_check_ms, &next, now + PARTITION_CHECK_MS))
        return;
    if (next == 0)
        return; /* just started: migrate made them */
    PGresult *res = cp_db_exec(c, "SELECT usage_ensure_partitions(2)", 0, NULL);
    if (!cp_db_ok(res))
        tg_log(TG_LOG_WARN, "cp_ingest", "partitions_failed", "reason=\"%.200s\"",
               res ? PQresultErrorMessage(res) : "no result");
    PQclear(res);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

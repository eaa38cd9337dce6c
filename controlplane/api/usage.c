/* usage.c: GET /api/v1/usage, totals and time series for the dashboard, from the rollups that
 * POST /dp/v1/usage writes (usage_hourly, usage_daily and both without the key; the coarsest that
 * answers the report) and never from raw usage_events, so a report costs the same however many
 * requests it covers; group_by=endpoint alone, which no rollup holds, sums the events themselves
 * (bounded like the rest: refused past USAGE_ROWS_MAX events). Platform admins read every tenant;
 * anyone with a role in a tenant (viewers too) reads that tenant; another tenant answers 404 like
 * an id that never existed. Runs on MHD worker threads.
 *
 * Counters and cost are summed in Postgres and come back as the JSON text it writes, so cost_usd
 * is the exact decimal sum (0.3, not 0.30000000000000004). */
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "tg_time.h"

#include "tg_banned.h"

#define USAGE_HOUR 3600
#define USAGE_DAY 86400
#define USAGE_DEFAULT_RANGE USAGE_DAY
#define USAGE_RANGE_DAYS_MAX 400
/* 400 days of hours is 9600 points; a grouped report past this must narrow itself */
#define USAGE_POINTS_MAX 20000
/* rollup rows a report may read (about a second of aggregating on the bench machine): 90 days of
 * the daily rollup without the key for ~90 tenants x models x providers is ~72,000 */
#define USAGE_ROWS_MAX 1000000

/* The counters of one bucket (b is one aggregated row) and of the whole range (sums over b), as
 * json_build_object arguments; cost_usd is exact (trim_scale: 0.5, not 0.500000000000). The
 * latency percentiles come from the merged histograms (lp per bucket, lt for the range). */
#define USAGE_POINT                                                                                \
    "'requests', b.requests, 'errors', b.errors, 'prompt_tokens', b.prompt_tokens, "               \
    "'completion_tokens', b.completion_tokens, 'cached_tokens', b.cached_tokens, "                 \
    "'reasoning_tokens', b.reasoning_tokens, 'cost_usd', trim_scale(b.cost_usd), "                 \
    "'latency_p50_ms', b.p50, 'latency_p95_ms', b.p95"
#define USAGE_TOTALS                                                                               \
    "'requests', coalesce(sum(b.requests), 0), 'errors', coalesce(sum(b.errors), 0), "             \
    "'prompt_tokens', coalesce(sum(b.prompt_tokens), 0), 'completion_tokens', "                    \
    "coalesce(sum(b.completion_tokens), 0), 'cached_tokens', coalesce(sum(b.cached_tokens), 0), "  \
    "'reasoning_tokens', coalesce(sum(b.reasoning_tokens), 0), 'cost_usd', "                       \
    "trim_scale(coalesce(sum(b.cost_usd), 0)), 'latency_p50_ms', (SELECT p50 FROM lt), "           \
    "'latency_p95_ms', (SELECT p95 FROM lt)"

#define USAGE_NONE "'00000000-0000-0000-0000-000000000000'::uuid"

/* The latency percentiles of histograms counted per bucket k (n requests) with running counts
 * (cum) and totals (tot) per `by`: the latency of the first bucket where the running count
 * reaches 50 % (95 %) of the requests with a latency (nearest rank), as tg_latency_bucket_ms
 * states it. */
#define USAGE_PCT                                                                                  \
    "tg_latency_bucket_ms(min(k) FILTER (WHERE cum >= 0.5 * tot)) AS p50, "                        \
    "tg_latency_bucket_ms(min(k) FILTER (WHERE cum >= 0.95 * tot)) AS p95"

/* The rollup rows a report reads: $1 from and $2 to (unix seconds, aligned), $4 the tenants
 * (uuid[]; NULL: every tenant and none), $5 key. The tenants are a constant array, not a
 * subquery, so that each is an index range of the primary key. `tbl` is the rollup, `col` its
 * time column, `kf` the key filter (a table without the key is only read without key_id). */
#define USAGE_FROM                                                                                 \
    " h WHERE h.t >= to_timestamp($1::bigint) AND h.t < to_timestamp($2::bigint) AND ($4::uuid[] " \
    "IS NULL OR h.tenant_id = ANY($4::uuid[])) AND "
#define USAGE_KF "($5::uuid IS NULL OR h.key_id = $5::uuid)"
#define USAGE_KF_NONE "$5::uuid IS NULL"
#define USAGE_KEY "nullif(h.key_id, " USAGE_NONE ")::text"

/* A row's bucket ($3) and group ($6), `key` the key's expression. The zero uuid and '' mean
 * "none" in the rollups; they answer null as a group (and '' in the joins on it, which no real
 * group is). */
#define USAGE_TS                                                                                   \
    "(CASE $3::text WHEN 'total' THEN to_timestamp($1::bigint) ELSE date_trunc($3::text, h.t, "   \
    "'UTC') END)"
#define USAGE_G1 "(CASE $6::text WHEN 'key' THEN "
#define USAGE_G2                                                                                   \
    " WHEN 'model' THEN nullif(h.model, '') WHEN 'provider' THEN nullif(h.provider, '') WHEN "     \
    "'tenant' THEN nullif(h.tenant_id, " USAGE_NONE ")::text END) COLLATE \"C\""

/* The rollup `tbl` is read through a subquery that names its time column t; the rollups of every
 * tenant at once have no tenant (and are read only for every tenant: $4 NULL). */
#define USAGE_TBL(tbl, col) "(SELECT *, " col " AS t FROM " tbl ")"
#define USAGE_TBL_ALL(tbl, col) "(SELECT *, " col " AS t, NULL::uuid AS tenant_id FROM " tbl ")"

/* The usage events as a rollup of one event per row, for group_by=endpoint, which no rollup
 * holds: counted as POST /dp/v1/usage counts them into the rollups (an error is a status from
 * 400, a latency one histogram bucket), so that its sums and percentiles are those the rollups
 * answer for the same events. tenant_id, key_id and t are the table's own columns, so that a
 * tenant's range is its (tenant_id, ts) index (migrations/0007_dashboard.sql). The rollups have
 * no endpoint: its group is added to the key's arm of the groups' CASE (USAGE_G1 key USAGE_G2)
 * for these rows only. */
#define USAGE_EVENTS                                                                               \
    "(SELECT e.tenant_id, e.key_id, e.ts AS t, coalesce(e.model, '') AS model, "                   \
    "coalesce(e.provider, '') AS provider, coalesce(e.endpoint, '') AS endpoint, 1 AS requests, "  \
    "(e.status >= 400)::int AS errors, e.prompt_tokens, e.completion_tokens, e.cached_tokens, "    \
    "e.reasoning_tokens, e.cost_usd, CASE WHEN e.latency_ms IS NOT NULL THEN "                     \
    "ARRAY[(tg_latency_bucket(e.latency_ms)::bigint << 40) + 1] END AS latency_hist "              \
    "FROM usage_events e)"
#define USAGE_EVENTS_KEY USAGE_KEY " WHEN 'endpoint' THEN nullif(h.endpoint, '')"

/* The order of the points: by time, then group; with bucket=total (one point per group), the
 * groups that cost the most first, as the dashboard ranks them. */
#define USAGE_ORDER                                                                                \
    "b.ts, CASE $3::text WHEN 'total' THEN b.cost_usd END DESC NULLS LAST, CASE $3::text WHEN "    \
    "'total' THEN b.requests END DESC NULLS LAST, b.g NULLS FIRST"

/* $1..$6 as above, $7 at most this many points. */
#define USAGE_SQL(tbl, kf, key, point)                                                             \
    "WITH r AS (SELECT " USAGE_TS " AS ts, " USAGE_G1 key USAGE_G2 " AS g, h.requests, h.errors, " \
    "h.prompt_tokens, h.completion_tokens, h.cached_tokens, h.reasoning_tokens, h.cost_usd, "      \
    "h.latency_hist FROM " tbl USAGE_FROM kf "), "                                                 \
    "lh AS (SELECT r.ts, coalesce(r.g, '') AS g, (x >> 40)::int AS k, sum(x & 1099511627775) AS "  \
    "n "                                                                                           \
    "FROM r, unnest(r.latency_hist) x GROUP BY 1, 2, 3), "                                         \
    "lp AS (SELECT ts, g, " USAGE_PCT " FROM (SELECT ts, g, k, sum(n) OVER (PARTITION BY ts, g "   \
    "ORDER BY k) AS cum, sum(n) OVER (PARTITION BY ts, g) AS tot FROM lh) c GROUP BY 1, 2), "      \
    "lt AS (SELECT " USAGE_PCT " FROM (SELECT k, sum(n) OVER (ORDER BY k) AS cum, sum(n) OVER () " \
    "AS tot FROM (SELECT k, sum(n) AS n FROM lh GROUP BY k) t) c), "                               \
    "b AS (SELECT s.*, lp.p50, lp.p95 FROM (SELECT r.ts, r.g, sum(r.requests) AS requests, "       \
    "sum(r.errors) AS errors, sum(r.prompt_tokens) AS prompt_tokens, sum(r.completion_tokens) AS " \
    "completion_tokens, sum(r.cached_tokens) AS cached_tokens, sum(r.reasoning_tokens) AS "        \
    "reasoning_tokens, sum(r.cost_usd) AS cost_usd FROM r GROUP BY 1, 2) s LEFT JOIN lp ON "       \
    "lp.ts = s.ts AND lp.g = coalesce(s.g, '')) "                                                  \
    "SELECT (SELECT count(*) FROM b), json_build_object('from', to_timestamp($1::bigint), 'to', "  \
    "to_timestamp($2::bigint), 'bucket', $3::text, 'group_by', $6::text, 'totals', (SELECT "       \
    "json_build_object(" USAGE_TOTALS ") FROM b), 'series', coalesce((SELECT "                     \
    "json_agg(json_build_object(" point ") ORDER BY " USAGE_ORDER ") FROM (SELECT * FROM b ORDER "  \
    "BY " USAGE_ORDER " LIMIT $7::int) b), '[]'::json))"

/* The planner's estimates, before anything is aggregated: the rollup rows the report reads, and
 * its points (buckets x groups). The first "Plan Rows" of EXPLAIN's JSON is the top node's. */
#define USAGE_EST_ROWS(tbl, kf)                                                                    \
    "EXPLAIN (FORMAT JSON) SELECT $3::text, $6::text FROM " tbl USAGE_FROM kf
#define USAGE_EST_POINTS(tbl, kf, key)                                                             \
    "EXPLAIN (FORMAT JSON) SELECT " USAGE_TS ", " USAGE_G1 key USAGE_G2 " FROM " tbl USAGE_FROM kf \
    " GROUP BY 1, 2"

#define USAGE_PLAIN "'ts', b.ts, " USAGE_POINT
#define USAGE_GROUPED "'ts', b.ts, 'group', b.g, " USAGE_POINT

/* The rollups, finest first (migrations 0003 and 0008): each holds the same counters and latency
 * histograms per (time[, tenant][, key], model, provider). A report reads the coarsest one that
 * answers it exactly: by day from a daily one (the range is widened to whole days), without
 * key_id or group_by=key from one without the key, for every tenant at once (a platform admin
 * without tenant_id) and not by tenant from one without the tenant. The answers are the same sums
 * either way. */
typedef struct usage_table {
    bool daily, keyed;
    const char *sql, *sql_grouped, *est_rows, *est_points;
} usage_table_t;

#define USAGE_TABLE(tbl, daily, keyed, kf, key)                                                    \
    {                                                                                              \
        daily, keyed, USAGE_SQL(tbl, kf, key, USAGE_PLAIN),                                        \
            USAGE_SQL(tbl, kf, key, USAGE_GROUPED), USAGE_EST_ROWS(tbl, kf),                       \
            USAGE_EST_POINTS(tbl, kf, key)                                                         \
    }

static const usage_table_t usage_tables[] = {
    USAGE_TABLE(USAGE_TBL("usage_hourly", "hour"), false, true, USAGE_KF, USAGE_KEY),
    USAGE_TABLE(USAGE_TBL("usage_hourly_nokey", "hour"), false, false, USAGE_KF_NONE, "NULL::text"),
    USAGE_TABLE(USAGE_TBL("usage_daily", "day"), true, true, USAGE_KF, USAGE_KEY),
    USAGE_TABLE(USAGE_TBL("usage_daily_nokey", "day"), true, false, USAGE_KF_NONE, "NULL::text"),
    USAGE_TABLE(USAGE_TBL_ALL("usage_hourly_all", "hour"), false, false, USAGE_KF_NONE,
                "NULL::text"),
    USAGE_TABLE(USAGE_TBL_ALL("usage_daily_all", "day"), true, false, USAGE_KF_NONE, "NULL::text"),
    /* group_by=endpoint, whatever the bucket (USAGE_EVENTS_AT) */
    USAGE_TABLE(USAGE_EVENTS, false, true, USAGE_KF, USAGE_EVENTS_KEY),
};
#define USAGE_EVENTS_AT 6

/* bucket=total&top=N ($7 = N): the groups' counters are summed first and the N that cost the most
 * kept; only their histograms are merged. The totals' counters are the sums of every group, their
 * percentiles come from `ttbl`, the coarsest rollup holding the same rows (without the key when no
 * key_id is given), so that a tenant with 10,000 keys does not merge 10,000 keys' histograms to
 * rank five of them. */
#define USAGE_TOP_SQL(tbl, kf, key, rows, ttbl, tkf)                                                   \
    "WITH s AS (SELECT " USAGE_G1 key USAGE_G2 " AS g, sum(h.requests) AS requests, "              \
    "sum(h.errors) AS errors, sum(h.prompt_tokens) AS prompt_tokens, sum(h.completion_tokens) AS " \
    "completion_tokens, sum(h.cached_tokens) AS cached_tokens, sum(h.reasoning_tokens) AS "        \
    "reasoning_tokens, sum(h.cost_usd) AS cost_usd FROM " tbl USAGE_FROM kf " GROUP BY 1), "       \
    "t AS (SELECT * FROM s ORDER BY cost_usd DESC NULLS LAST, requests DESC NULLS LAST, g NULLS "  \
    "FIRST LIMIT $7::int), "                                                                       \
    "lh AS (SELECT q.g, (x >> 40)::int AS k, sum(x & 1099511627775) AS n FROM (SELECT coalesce(" \
    USAGE_G1 key USAGE_G2 ", '') AS g, h.latency_hist FROM " tbl USAGE_FROM kf " AND " rows ") q, " \
    "unnest(q.latency_hist) x GROUP BY 1, 2), "                                                    \
    "lp AS (SELECT g, " USAGE_PCT " FROM (SELECT g, k, sum(n) OVER (PARTITION BY g ORDER BY k) AS " \
    "cum, sum(n) OVER (PARTITION BY g) AS tot FROM lh) c GROUP BY 1), "                            \
    "lt AS (SELECT " USAGE_PCT " FROM (SELECT k, sum(n) OVER (ORDER BY k) AS cum, sum(n) OVER () " \
    "AS tot FROM (SELECT (x >> 40)::int AS k, sum(x & 1099511627775) AS n FROM (SELECT "           \
    "h.latency_hist FROM " ttbl USAGE_FROM tkf ") q, unnest(q.latency_hist) x GROUP BY 1) u) c), " \
    "b AS (SELECT to_timestamp($1::bigint) AS ts, t.*, lp.p50, lp.p95 FROM t LEFT JOIN lp ON "     \
    "lp.g = coalesce(t.g, '')) "                                                                   \
    "SELECT (SELECT count(*) FROM s), json_build_object('from', to_timestamp($1::bigint), 'to', "  \
    "to_timestamp($2::bigint), 'bucket', $3::text, 'group_by', $6::text, 'totals', (SELECT "       \
    "json_build_object(" USAGE_TOTALS ") FROM s b), 'series', coalesce((SELECT "                   \
    "json_agg(json_build_object(" USAGE_GROUPED ") ORDER BY " USAGE_ORDER ") FROM b), '[]'::json))"
/* The rows of the kept groups, whose histograms are merged: by key, through the key's index (the
 * planner folds the CASE, $6 being known when it plans); grouped otherwise, the keyed rollup is
 * read for one key (key_id) and all its rows are few. */
#define USAGE_TOP_ANY(key)                                                                         \
    "coalesce(" USAGE_G1 key USAGE_G2 ", '') IN (SELECT coalesce(t.g, '') FROM t)"
#define USAGE_TOP_KEYED                                                                            \
    "(CASE WHEN $6::text = 'key' THEN h.key_id IN (SELECT coalesce(t.g::uuid, " USAGE_NONE        \
    ") FROM t) ELSE true END)"

#define USAGE_DAILY USAGE_TBL("usage_daily", "day")
#define USAGE_DAILY_NOKEY USAGE_TBL("usage_daily_nokey", "day")
#define USAGE_DAILY_ALL USAGE_TBL_ALL("usage_daily_all", "day")

/* The pairs a top report reads: its groups' rollup (an index of usage_tables) and its totals'.
 * The events' one is longer than the 4095 bytes ISO C requires compilers to take in one literal;
 * GCC and Clang take it (as controlplane/ingest.c's). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const struct usage_top {
    int groups, totals;
    const char *sql;
} usage_tops[] = {
    {2, 2, USAGE_TOP_SQL(USAGE_DAILY, USAGE_KF, USAGE_KEY, USAGE_TOP_KEYED, USAGE_DAILY, USAGE_KF)},
    {2, 3,
     USAGE_TOP_SQL(USAGE_DAILY, USAGE_KF, USAGE_KEY, USAGE_TOP_KEYED, USAGE_DAILY_NOKEY,
                   USAGE_KF_NONE)},
    {2, 5,
     USAGE_TOP_SQL(USAGE_DAILY, USAGE_KF, USAGE_KEY, USAGE_TOP_KEYED, USAGE_DAILY_ALL,
                   USAGE_KF_NONE)},
    {3, 3,
     USAGE_TOP_SQL(USAGE_DAILY_NOKEY, USAGE_KF_NONE, "NULL::text", USAGE_TOP_ANY("NULL::text"),
                   USAGE_DAILY_NOKEY, USAGE_KF_NONE)},
    {3, 5,
     USAGE_TOP_SQL(USAGE_DAILY_NOKEY, USAGE_KF_NONE, "NULL::text", USAGE_TOP_ANY("NULL::text"),
                   USAGE_DAILY_ALL, USAGE_KF_NONE)},
    {5, 5,
     USAGE_TOP_SQL(USAGE_DAILY_ALL, USAGE_KF_NONE, "NULL::text", USAGE_TOP_ANY("NULL::text"),
                   USAGE_DAILY_ALL, USAGE_KF_NONE)},
    {USAGE_EVENTS_AT, USAGE_EVENTS_AT,
     USAGE_TOP_SQL(USAGE_EVENTS, USAGE_KF, USAGE_EVENTS_KEY, USAGE_TOP_ANY(USAGE_EVENTS_KEY),
                   USAGE_EVENTS, USAGE_KF)},
};
#pragma GCC diagnostic pop

static const char *const usage_params[] = {"tenant_id", "key_id",   "from", "to",
                                           "bucket",    "group_by", "top",  NULL};
/* bucket=total&top=N: the N groups that cost the most */
#define USAGE_TOP_MAX 100

typedef struct usage_query_check {
    const char *const *known;
    const char *bad;   /* the first parameter not in known, borrowed from MHD */
    const char *twice; /* the first one given twice */
    const char *empty; /* the first one given without '=' */
    unsigned seen;     /* bit i: known[i] was seen */
} usage_query_check_t;

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    usage_query_check_t *c = cls;
    (void)kind;
    for (unsigned i = 0; c->known[i]; i++) {
        if (strcmp(c->known[i], key) != 0)
            continue;
        if (!value && !c->empty)
            c->empty = c->known[i];
        if ((c->seen & (1u << i)) && !c->twice)
            c->twice = c->known[i];
        c->seen |= 1u << i;
        return MHD_YES;
    }
    if (!c->bad)
        c->bad = key;
    return MHD_YES;
}

/* A misspelt parameter (start_date, group) would otherwise be ignored and answer the wrong
 * report; one given twice is ambiguous, one without a value (?bucket) a mistake. All are
 * refused. */
int cp__query_check(cp_req_t *r, const char *const *known, const char *list)
{
    usage_query_check_t c = {known, NULL, NULL, NULL, 0};
    MHD_get_connection_values(r->mhd, MHD_GET_ARGUMENT_KIND, check_param, &c);
    if (c.bad) {
        int n = (int)strlen(c.bad);
        if (n > 64) {
            n = 64;
            while (n > 0 && ((unsigned char)c.bad[n] & 0xC0) == 0x80)
                n--;
        }
        cp_reply_error(r, 400, "invalid_query", NULL, "unknown query parameter \"%.*s\"; known: %s",
                       n, c.bad, list);
        return -1;
    }
    if (c.empty) {
        cp_reply_error(r, 400, "invalid_query", c.empty, "%s needs a value", c.empty);
        return -1;
    }
    if (c.twice) {
        cp_reply_error(r, 400, "invalid_query", c.twice, "%s is given more than once", c.twice);
        return -1;
    }
    return 0;
}

/* Reads the query parameter `name` as RFC 3339 into *t (rounded up to a whole second when
 * round_up); absent leaves *t. Returns -1 after replying. */
int cp__query_time(cp_req_t *r, const char *name, bool round_up, int64_t *t, bool *given)
{
    const char *v = cp_query(r, name);
    bool frac;
    *given = v != NULL;
    if (!v)
        return 0;
    if (!tg_rfc3339_parse(v, strlen(v), false, t, &frac)) {
        /* a '+' left unescaped in a URL arrives as a space */
        cp_reply_error(r, 400, "invalid_query", name,
                       "%s must be an RFC 3339 time with an offset, such as 2030-01-31T12:00:00Z "
                       "(write '+' as %%2B in a URL)",
                       name);
        return -1;
    }
    if (round_up && frac)
        (*t)++;
    return 0;
}

static int64_t floor_to(int64_t t, int64_t step)
{
    int64_t q = t / step;
    if (t % step != 0 && t < 0)
        q--;
    return q * step;
}

static int64_t ceil_to(int64_t t, int64_t step)
{
    return -floor_to(-t, step);
}

/* One of values (NULL-terminated), or absent. Returns -1 after replying. */
static int read_enum(cp_req_t *r, const char *name, const char *const *values, const char *list,
                     const char **out)
{
    *out = cp_query(r, name);
    if (!*out)
        return 0;
    for (const char *const *v = values; *v; v++) {
        if (strcmp(*v, *out) == 0) {
            *out = *v;
            return 0;
        }
    }
    cp_reply_error(r, 400, "invalid_query", name, "%s must be one of: %s", name, list);
    return -1;
}

int cp__query_uuid(cp_req_t *r, const char *name, const char **out)
{
    *out = cp_query(r, name);
    if (*out && !cp_is_uuid(*out)) {
        cp_reply_error(r, 400, "invalid_query", name, "%s must be a uuid", name);
        return -1;
    }
    return 0;
}

/* A tenant the caller may read: any role in it, or platform admin and the tenant exists.
 * Anything else is the same 404, whether or not the tenant exists. */
int cp__query_tenant(cp_req_t *r, const char *tenant_id)
{
    if (cp_require_role(r, tenant_id, CP_ROLE_VIEWER) < 0)
        return -1;
    const char *p[1] = {tenant_id};
    PGresult *res = cp_db_exec(r->db, "SELECT 1 FROM tenants WHERE id = $1", 1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    PQclear(res);
    if (rows != 1) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return -1;
    }
    return 0;
}

/* The tenants a report covers, as a Postgres uuid[] literal in *tenants; NULL for every tenant
 * (platform admins without tenant_id). *keep holds the text when it comes from the database; the
 * caller clears it. Returns -1 after replying. */
static int report_scope(cp_req_t *r, const char *tenant_id, char *one, size_t onelen,
                        PGresult **keep, const char **tenants)
{
    *keep = NULL;
    *tenants = NULL;
    if (tenant_id) {
        if (cp__query_tenant(r, tenant_id) != 0)
            return -1;
        snprintf(one, onelen, "{%s}", tenant_id);
        *tenants = one;
        return 0;
    }
    if (r->who.via_token && r->who.token_tenant[0]) {
        /* a tenant-scoped API token reads its tenant only, whatever else its user may read */
        bool reach = cp_role_in(r, r->who.token_tenant) >= CP_ROLE_VIEWER;
        snprintf(one, onelen, reach ? "{%s}" : "{}", r->who.token_tenant);
        *tenants = one;
        return 0;
    }
    if (r->who.platform_admin)
        return 0;
    const char *p[1] = {r->who.user_id[0] ? r->who.user_id : NULL};
    PGresult *res = cp_db_exec(r->db,
                               "SELECT coalesce(array_agg(m.tenant_id ORDER BY m.tenant_id), "
                               "'{}')::text FROM memberships m WHERE m.user_id = $1::uuid",
                               1, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    *keep = res;
    *tenants = PQgetvalue(res, 0, 0);
    return 0;
}

/* The planner's row estimate of an EXPLAIN (FORMAT JSON) (its top node), or -1 after replying. */
static double plan_rows(cp_req_t *r, const char *sql, const char *const *p)
{
    PGresult *res = cp_db_exec(r->db, sql, 6, p);
    if (!cp_db_ok(res) || PQntuples(res) < 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    const char *at = strstr(PQgetvalue(res, 0, 0), "\"Plan Rows\":");
    double n = at ? strtod(at + strlen("\"Plan Rows\":"), NULL) : 0;
    PQclear(res);
    return n;
}

/* A report that would read too many rollup rows, or answer too many points, is refused before
 * anything is aggregated, from the planner's estimates (the points are counted exactly after
 * aggregating as well). Returns -1 after replying. */
static int too_large(cp_req_t *r, const usage_table_t *t, const char *const *p,
                     const char *group_by, int64_t step, bool top)
{
    double rows = plan_rows(r, t->est_rows, p);
    if (rows < 0)
        return -1;
    bool events = t == &usage_tables[USAGE_EVENTS_AT]; /* the bucket reads no fewer */
    if (rows > USAGE_ROWS_MAX) {
        cp_reply_error(r, 400, "invalid_query", step == USAGE_DAY || events ? "from" : "bucket",
                       "this range and bucket would read about %.0f %s, more than %d; "
                       "use %sa shorter range, tenant_id or key_id",
                       rows, events ? "usage events" : "rollup rows", USAGE_ROWS_MAX,
                       step == USAGE_DAY || events ? "" : "bucket=day, ");
        return -1;
    }
    /* without group_by a report has one point per bucket (at most 9600); a point reads a row at
     * least */
    if (!group_by || top || rows <= USAGE_POINTS_MAX)
        return 0; /* `top` bounds the answer whatever the groups */
    double points = plan_rows(r, t->est_points, p);
    if (points < 0)
        return -1;
    if (points > USAGE_POINTS_MAX) {
        cp_reply_error(r, 400, "invalid_query", "group_by",
                       "grouped by %s, this range and bucket would hold about %.0f points, more "
                       "than %d; use %sa shorter range, tenant_id or key_id",
                       group_by, points, USAGE_POINTS_MAX, step == USAGE_DAY ? "" : "bucket=day, ");
        return -1;
    }
    return 0;
}

/* ?top=N, 1 to USAGE_TOP_MAX; 0 when absent. -1 after replying. */
static int read_top(cp_req_t *r, long *top)
{
    const char *v = cp_query(r, "top");
    if (!v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || v[0] < '0' || v[0] > '9' || n < 1 || n > USAGE_TOP_MAX) {
        cp_reply_error(r, 400, "invalid_query", "top", "top must be a whole number from 1 to %d",
                       USAGE_TOP_MAX);
        return -1;
    }
    *top = n;
    return 0;
}

void cp_api_usage_get(cp_req_t *r)
{
    static const char *const buckets[] = {"hour", "day", "total", NULL};
    static const char *const groups[] = {"key", "model", "provider", "tenant", "endpoint", NULL};
    const char *tenant_id, *key_id, *bucket, *group_by;
    long top = 0;
    int64_t from = 0, to = tg_wall_ms() / 1000;
    bool has_from, has_to;
    if (cp__query_check(r, usage_params, "tenant_id, key_id, from, to, bucket, group_by, top") !=
            0 ||
        cp__query_uuid(r, "tenant_id", &tenant_id) != 0 ||
        cp__query_uuid(r, "key_id", &key_id) != 0 ||
        read_enum(r, "bucket", buckets, "hour, day, total", &bucket) != 0 ||
        read_enum(r, "group_by", groups, "key, model, provider, tenant, endpoint", &group_by) !=
            0 ||
        cp__query_time(r, "from", false, &from, &has_from) != 0 ||
        cp__query_time(r, "to", true, &to, &has_to) != 0 || read_top(r, &top) != 0)
        return;
    if (!bucket)
        bucket = "hour";
    bool total = strcmp(bucket, "total") == 0;
    if (top && (!total || !group_by)) {
        cp_reply_error(r, 400, "invalid_query", "top",
                       "top ranks the groups of one total: use it with bucket=total and group_by");
        return;
    }
    if (!has_from)
        from = to - USAGE_DEFAULT_RANGE;
    if (from >= to) {
        cp_reply_error(r, 400, "invalid_query", has_from ? "from" : "to",
                       has_to ? "from must be before to" : "from must be in the past");
        return;
    }
    if (to - from > (int64_t)USAGE_RANGE_DAYS_MAX * USAGE_DAY) {
        cp_reply_error(r, 400, "invalid_query", has_from ? "from" : "to",
                       "from and to must be at most %d days apart", USAGE_RANGE_DAYS_MAX);
        return;
    }
    /* rollups are hourly: a report covers whole buckets, and says which */
    int64_t step = strcmp(bucket, "hour") != 0 ? USAGE_DAY : USAGE_HOUR; /* total: whole days */
    from = floor_to(from, step);
    to = ceil_to(to, step);
    char one[48], from_s[24], to_s[24], cap[16];
    const char *tenants;
    PGresult *keep;
    if (report_scope(r, tenant_id, one, sizeof(one), &keep, &tenants) != 0)
        return;
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(cap, sizeof(cap), "%ld", top ? top : (long)USAGE_POINTS_MAX + 1);
    const char *p[7] = {from_s, to_s, bucket, tenants, key_id, group_by, cap};
    bool keyed = key_id || (group_by && strcmp(group_by, "key") == 0);
    bool all = !tenants && !keyed && !(group_by && strcmp(group_by, "tenant") == 0);
    const usage_table_t *t = &usage_tables[all ? (step == USAGE_DAY ? 5 : 4)
                                               : (step == USAGE_DAY ? 2 : 0) + (keyed ? 0 : 1)];
    bool by_endpoint = group_by && strcmp(group_by, "endpoint") == 0;
    if (by_endpoint)
        t = &usage_tables[USAGE_EVENTS_AT];
    if (too_large(r, t, p, group_by, step, top > 0) != 0) {
        PQclear(keep);
        return;
    }
    const char *sql = group_by ? t->sql_grouped : t->sql;
    if (top) {
        /* the totals' rollup: the groups' own for one key, else one without the key */
        int at = (int)(t - usage_tables);
        int totals = key_id || by_endpoint ? at : tenants ? 3 : 5;
        for (size_t i = 0; i < sizeof(usage_tops) / sizeof(usage_tops[0]); i++)
            if (usage_tops[i].groups == at && usage_tops[i].totals == totals)
                sql = usage_tops[i].sql;
    }
    PGresult *res = cp_db_exec(r->db, sql, 7, p);
    PQclear(keep);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    long long points = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    if (points > USAGE_POINTS_MAX && !top)
        cp_reply_error(r, 400, "invalid_query", group_by ? "group_by" : "bucket",
                       "the report would hold %lld points, more than %d; use bucket=day, a "
                       "shorter range, or key_id",
                       points, USAGE_POINTS_MAX);
    else
        cp_reply_json_text(r, 200, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    PQclear(res);
}

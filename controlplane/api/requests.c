/* requests.c: GET /api/v1/requests, the request log: one row per usage event, newest first, with
 * the key's name. Viewers and up of a tenant read it (tenant_id is required unless platform
 * admin); another tenant answers 404 like a random id. Every filter has an index on usage_events
 * that yields its rows in (ts, id) order (migrations/0007_dashboard.sql), and the page is a
 * keyset: the cursor is the last row's (ts, id), so a page costs about `limit` index entries
 * however deep it is and however many events the table holds. Runs on MHD worker threads.
 *
 * A cache hit is an event whose usage_source is "cache" (the data plane sets it for an answer
 * replayed from its response cache; docs/usage.md). */
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

/* model and provider are stored as the data plane sent them, at most 512 bytes */
#define REQUESTS_TEXT_MAX 512

static const char *const requests_params[] = {"tenant_id", "key_id", "model", "provider",
                                              "endpoint",  "status", "from",  "to",
                                              "limit",     "cursor", NULL};

/* The endpoints the data plane records (dataplane/gate.c, docs/usage.md) */
static const char *const requests_endpoints[] = {"chat.completions", "completions", "embeddings",
                                                 "messages", "responses", NULL};
#define REQUESTS_ENDPOINTS "chat.completions, completions, embeddings, messages, responses"

/* $1 tenant, $2 key, $3 model, $4 provider, $5 status, $6 status class (4 for 4xx: a range of
 * statuses, which the planner estimates from its statistics), $7 from, $8 to (RFC 3339, as
 * given), $9 cursor ts (unix microseconds) and $10 cursor id, $11 the page size, $12 true when
 * the status asked for is not 2xx: it adds usage_events_tenant_errors_ts's predicate word for
 * word, so that the planner may read that partial index (migrations/0007_dashboard.sql), $13 the
 * endpoint (read like model: the tenant's (ts, id) index, the rows of others skipped). The
 * statement is planned with its
 * values (an unnamed statement), so the filters that are NULL fold away and the rest pick their
 * index. The page (and one row more, to know whether another follows) is read first and joined to
 * virtual_keys after, so the join costs one lookup per row shown. The answer is written by
 * Postgres, so cost_usd is the stored decimal (0.029, not 0.028999999999999998). */
static const char requests_sql[] =
    "SELECT json_build_object('data', coalesce(json_agg(p.row ORDER BY p.n) FILTER (WHERE p.n <= "
    "$11::int), '[]'::json), 'next_cursor', max(p.cursor) FILTER (WHERE p.n = $11::int AND "
    "p.more))::text FROM (SELECT row_number() OVER (ORDER BY e.ts DESC, e.id DESC) AS n, "
    "count(*) OVER () > $11::int AS more, json_build_object('id', e.id, 'ts', e.ts, "
    "'request_id', e.request_id, 'tenant_id', e.tenant_id, 'key_id', e.key_id, 'key_name', "
    "k.name, 'model', e.model, 'provider', e.provider, 'upstream_model', e.upstream_model, "
    "'endpoint', e.endpoint, 'status', e.status, 'streamed', e.streamed, 'cache_hit', "
    "coalesce(e.usage_source = 'cache', false), 'latency_ms', e.latency_ms, 'ttfb_ms', "
    "e.ttfb_ms, 'prompt_tokens', e.prompt_tokens, 'completion_tokens', e.completion_tokens, "
    "'cached_tokens', e.cached_tokens, 'reasoning_tokens', e.reasoning_tokens, 'cost_usd', "
    "trim_scale(e.cost_usd), 'cache_write_tokens', e.cache_write_tokens, "
    "'cache_write_1h_tokens', e.cache_write_1h_tokens, 'unpriced', e.unpriced, 'error', "
    "e.error) AS row, "
    "(extract(epoch FROM e.ts) * 1000000)::bigint || '_' || e.id AS cursor "
    "FROM (SELECT * FROM usage_events u WHERE ($1::uuid IS NULL OR u.tenant_id = $1::uuid) "
    "AND ($2::uuid IS NULL OR u.key_id = $2::uuid) AND ($3::text IS NULL OR u.model = $3::text) "
    "AND ($4::text IS NULL OR u.provider = $4::text) AND ($5::int IS NULL OR u.status = $5::int) "
    "AND ($6::int IS NULL OR (u.status >= $6::int * 100 AND u.status < $6::int * 100 + 100)) "
    "AND ($12::boolean IS NULL OR (u.status < 200 OR u.status > 299)) "
    "AND ($13::text IS NULL OR u.endpoint = $13::text) "
    "AND ($7::timestamptz IS NULL OR u.ts >= $7::timestamptz) "
    "AND ($8::timestamptz IS NULL OR u.ts < $8::timestamptz) "
    "AND ($9::bigint IS NULL OR (u.ts, u.id) < ('epoch'::timestamptz + $9::bigint * interval "
    "'1 microsecond', $10::uuid)) ORDER BY u.ts DESC, u.id DESC LIMIT $11::int + 1) e "
    "LEFT JOIN virtual_keys k ON k.id = e.key_id AND k.tenant_id = e.tenant_id) p";

/* A text filter: absent, or 1 to REQUESTS_TEXT_MAX bytes. */
static int read_text(cp_req_t *r, const char *name, const char **out)
{
    *out = cp_query(r, name);
    if (*out && (!**out || strlen(*out) > REQUESTS_TEXT_MAX)) {
        cp_reply_error(r, 400, "invalid_query", name, "%s must be 1 to %d bytes", name,
                       REQUESTS_TEXT_MAX);
        return -1;
    }
    return 0;
}

/* endpoint: absent or one the data plane records. */
static int read_endpoint(cp_req_t *r, const char **out)
{
    *out = cp_query(r, "endpoint");
    if (!*out)
        return 0;
    for (const char *const *e = requests_endpoints; *e; e++)
        if (strcmp(*e, *out) == 0)
            return 0;
    cp_reply_error(r, 400, "invalid_query", "endpoint", "endpoint must be one of: %s",
                   REQUESTS_ENDPOINTS);
    return -1;
}

/* status: an exact status (0-999) into exact, or a class 1xx-5xx into class ("4"). */
static int read_status(cp_req_t *r, char *exact, char *class)
{
    const char *v = cp_query(r, "status");
    exact[0] = class[0] = '\0';
    if (!v)
        return 0;
    size_t n = strlen(v);
    bool digits = n >= 1 && n <= 3;
    for (size_t i = 0; digits && i < n; i++)
        digits = v[i] >= '0' && v[i] <= '9';
    if (digits) {
        /* only the exact status: adding its class (a range) or the non-2xx predicate made the
         * planner multiply their selectivities, estimate 3 rows and read every 429 of the tenant
         * before sorting for the newest page (bench/RESULTS.md, "Dashboard on a big database") */
        snprintf(exact, 4, "%d", (int)strtol(v, NULL, 10));
        return 0;
    }
    if (n == 3 && v[0] >= '1' && v[0] <= '5' && (v[1] == 'x' || v[1] == 'X') &&
        (v[2] == 'x' || v[2] == 'X')) {
        class[0] = v[0];
        class[1] = '\0';
        return 0;
    }
    cp_reply_error(r, 400, "invalid_query", "status",
                   "status must be a status code (200) or a class: 1xx, 2xx, 3xx, 4xx, 5xx");
    return -1;
}

/* The cursor a page answered: "<unix microseconds>_<event id>". Split into ts and id. */
static int read_cursor(cp_req_t *r, const char *cursor, char *ts, size_t tslen, const char **id)
{
    const char *sep = cursor ? strchr(cursor, '_') : NULL;
    if (!cursor)
        return 0;
    size_t n = sep ? (size_t)(sep - cursor) : 0;
    /* at most 18 digits: always a bigint, and a time Postgres can hold */
    bool ok = sep && n >= 1 && n <= 18 && n < tslen && cp_is_uuid(sep + 1);
    for (size_t i = 0; ok && i < n; i++)
        ok = (cursor[i] >= '0' && cursor[i] <= '9') || (i == 0 && cursor[i] == '-' && n > 1);
    if (!ok) {
        cp_reply_error(r, 400, "invalid_query", "cursor",
                       "cursor is not valid: pass back a next_cursor as it was answered");
        return -1;
    }
    memcpy(ts, cursor, n);
    ts[n] = '\0';
    *id = sep + 1;
    return 0;
}

void cp_api_requests_list(cp_req_t *r)
{
    const char *tenant_id, *key_id, *model, *provider, *endpoint, *cursor, *cursor_id = NULL;
    char status[4], class[2], cursor_ts[24], lim[16];
    int64_t from = 0, to = 0;
    bool has_from, has_to;
    int limit;
    if (cp__query_check(r, requests_params,
                        "tenant_id, key_id, model, provider, endpoint, status, from, to, "
                        "limit, cursor") != 0 ||
        cp__query_uuid(r, "tenant_id", &tenant_id) != 0 ||
        cp__query_uuid(r, "key_id", &key_id) != 0 || read_text(r, "model", &model) != 0 ||
        read_text(r, "provider", &provider) != 0 || read_endpoint(r, &endpoint) != 0 ||
        read_status(r, status, class) != 0 ||
        cp__query_time(r, "from", false, &from, &has_from) != 0 ||
        cp__query_time(r, "to", false, &to, &has_to) != 0 ||
        cp_page_params(r, &limit, &cursor) != 0 ||
        read_cursor(r, cursor, cursor_ts, sizeof(cursor_ts), &cursor_id) != 0)
        return;
    if (has_from && has_to && from > to) {
        cp_reply_error(r, 400, "invalid_query", "from", "from must be before to");
        return;
    }
    if (!tenant_id && !r->who.platform_admin) {
        cp_reply_error(r, 400, "missing_query", "tenant_id",
                       "tenant_id is required unless you are a platform admin");
        return;
    }
    if (tenant_id && cp__query_tenant(r, tenant_id) != 0)
        return;
    PGresult *keep = NULL;
    if (!tenant_id && key_id) {
        /* a platform admin asking for one key: its tenant's indexes serve it. A key that is gone
         * (or never was) has no rows to show here; its events stay listable with tenant_id. */
        const char *kp[1] = {key_id};
        keep = cp_db_exec(r->db, "SELECT tenant_id FROM virtual_keys WHERE id = $1", 1, kp);
        if (!cp_db_ok(keep)) {
            cp_reply_db_error(r, keep);
            PQclear(keep);
            return;
        }
        if (PQntuples(keep) != 1) {
            PQclear(keep);
            static const char empty[] = "{\"data\":[],\"next_cursor\":null}";
            cp_reply_json_text(r, 200, empty, sizeof(empty) - 1);
            return;
        }
        tenant_id = PQgetvalue(keep, 0, 0);
    }
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[13] = {tenant_id,
                         key_id,
                         model,
                         provider,
                         status[0] ? status : NULL,
                         class[0] ? class : NULL,
                         has_from ? cp_query(r, "from") : NULL,
                         has_to ? cp_query(r, "to") : NULL,
                         cursor_id ? cursor_ts : NULL,
                         cursor_id,
                         lim,
                         class[0] && class[0] != '2' ? "t" : NULL,
                         endpoint};
    PGresult *res = cp_db_exec(r->db, requests_sql, 13, p);
    PQclear(keep);
    cp_reply_json_row(r, res);
}

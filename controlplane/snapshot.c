/* snapshot.c: builds the config snapshot that data planes load (docs/snapshot.md) from one
 * repeatable-read, read-only transaction, so the document and its version agree. Only what the
 * data plane accepts goes in (common/tg_snap.c is the contract): platform-wide providers of every
 * kind with the credentials and settings their kind needs, platform routes whose targets all use
 * such providers, their prices, and active keys. A provider the data plane would refuse is left
 * out with a warning, and its routes with it, so that one bad row never stops the whole snapshot.
 * Provider credentials are opened here and sent (the snapshot is for data planes only); they are
 * never logged. Runs on whichever thread owns the PGconn passed in. */
#include "snapshot.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "tg_err.h"
#include "tg_hash.h"
#include "tg_log.h"
#include "tg_snap.h"

#include "tg_banned.h"

/* The data plane's limits (common/tg_snap.c) */
#define CRED_PLAIN_MAX (16u << 10)
#define SECRET_MAX 4096 /* SNAP_MAX_SECRET: api_key, aws_session_token, header values */
#define URL_MAX 2048    /* SNAP_MAX_URL */
#define SHORT_MAX 64    /* api_version, region */
#define AWS_KEY_MAX 256 /* aws_access_key_id, aws_secret_access_key */
#define HEADERS_MAX 64
#define RETRY_STATUS_MAX 32 /* TG_RETRY_STATUS_MAX */

/* One platform provider row, as read. */
typedef struct prov_row {
    const char *id, *kind, *base_url, *headers, *settings, *cred_hex;
} prov_row_t;

static int exec_ok(PGconn *c, const char *sql);
static int read_version(PGconn *c, int64_t *version);
static int append_providers(PGconn *c, tg_buf_t *out, tg_buf_t *ids);
static int append_provider(tg_buf_t *out, const prov_row_t *row);
static int append_rest(PGconn *c, tg_buf_t *out, const char *ids);
static void warn_retry(PGconn *c, const char *ids);

int cp_snapshot_build(PGconn *c, tg_buf_t *out, int64_t *version)
{
    tg_buf_t ids = TG_BUF_INIT(1u << 20);
    int rc = TG_EIO;
    if (!c || exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0)
        goto out;
    /* the first statement takes the transaction's snapshot: the version and every table below
     * are read as of the same instant */
    rc = read_version(c, version);
    if (rc != 0 || !out)
        goto done;
    rc = tg_buf_appendf(out, "{\"version\":%lld,\"providers\":", (long long)*version);
    if (rc == 0)
        rc = append_providers(c, out, &ids);
    if (rc == 0)
        rc = append_rest(c, out, ids.base);
    if (rc == 0)
        rc = tg_buf_append(out, "}", 1);
done:
    if (exec_ok(c, rc == 0 ? "COMMIT" : "ROLLBACK") != 0 && rc == 0)
        rc = TG_EIO;
out:
    tg_buf_dispose(&ids);
    return rc;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = cp_db_exec(c, sql, 0, NULL);
    int rc = cp_db_ok(res) ? 0 : TG_EIO;
    if (rc != 0)
        tg_log(TG_LOG_WARN, "cp_snapshot", "query_failed", "reason=\"%.200s\"", PQerrorMessage(c));
    PQclear(res);
    return rc;
}

static int read_version(PGconn *c, int64_t *version)
{
    PGresult *res = cp_db_exec(c, "SELECT v FROM config_version", 0, NULL);
    int rc = TG_EIO;
    if (cp_db_ok(res) && PQntuples(res) == 1) {
        *version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = 0;
    } else {
        tg_log(TG_LOG_WARN, "cp_snapshot", "query_failed", "reason=\"%.200s\"", PQerrorMessage(c));
    }
    PQclear(res);
    return rc;
}

/* Appends the providers array; ids receives their uuids as a Postgres array literal. */
static int append_providers(PGconn *c, tg_buf_t *out, tg_buf_t *ids)
{
    PGresult *res = cp_db_exec(c,
                               "SELECT p.id, p.kind, p.base_url, p.headers::text, "
                               "p.settings::text, encode(p.credentials_enc, 'hex') FROM "
                               "providers p WHERE p.tenant_id IS NULL ORDER BY p.id",
                               0, NULL);
    int rc = TG_EIO;
    if (!cp_db_ok(res)) {
        tg_log(TG_LOG_WARN, "cp_snapshot", "query_failed", "reason=\"%.200s\"", PQerrorMessage(c));
        goto out;
    }
    rc = tg_buf_append(out, "[", 1);
    if (rc == 0)
        rc = tg_buf_append(ids, "{", 1);
    bool first = true;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        prov_row_t row = {
            PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
            PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
            PQgetvalue(res, i, 4), PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5)};
        size_t mark = out->len;
        if (!first)
            rc = tg_buf_append(out, ",", 1);
        if (rc != 0)
            break;
        int prc = append_provider(out, &row);
        if (prc == TG_EINVAL) {
            out->len = mark; /* left out; its routes are left out with it */
            continue;
        }
        rc = prc;
        if (rc == 0)
            rc = tg_buf_appendf(ids, "%s%s", first ? "" : ",", row.id);
        first = false;
    }
    if (rc == 0)
        rc = tg_buf_append(out, "]", 1);
    if (rc == 0)
        rc = tg_buf_append(ids, "}", 2); /* with the NUL: ids->base is a C string */
out:
    PQclear(res);
    return rc;
}

/* ---- what the data plane accepts of a provider (tg_snap.c parse_providers) ---- */

/* printable ASCII on one line: what goes into a header line or a signature */
static bool token_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    return true;
}

static bool url_ok(const char *u)
{
    size_t n = strlen(u);
    size_t skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0 || n > URL_MAX || !token_ok(u, n) || strchr(u, ' '))
        return false;
    return u[skip] != '\0' && u[skip] != '/';
}

static bool header_ok(const char *name, json_t *v)
{
    return json_is_string(v) && json_string_length(v) <= SECRET_MAX &&
           strlen(json_string_value(v)) == json_string_length(v) &&
           tg_snap_header_ok(name, json_string_value(v));
}

/* Copies the string member `name` of src into o as `as`. Absent (or null) is fine unless
 * required; anything else must be a string of 1..max bytes, printable ASCII when token is set
 * (else without CR, LF or NUL). Returns false when the data plane would refuse it. */
static bool copy_str(json_t *o, const char *as, json_t *src, const char *name, bool required,
                     size_t max, bool token)
{
    json_t *v = json_object_get(src, name);
    if (!v || json_is_null(v))
        return !required;
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > max || memchr(s, '\0', n))
        return false;
    if (token ? !token_ok(s, n) : (memchr(s, '\r', n) || memchr(s, '\n', n)))
        return false;
    return json_object_set(o, as, v) == 0;
}

static bool region_ok(json_t *o)
{
    const char *r = json_string_value(json_object_get(o, "region"));
    for (; r && *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
            return false;
    return r != NULL;
}

/* Fills o from the row's headers, settings and opened credentials. NULL, or why the data plane
 * would refuse the provider (for the log: never a value). */
static const char *provider_fill(json_t *o, const prov_row_t *row, json_t *creds, json_t *settings)
{
    bool bedrock = strcmp(row->kind, "bedrock") == 0;
    json_t *h = json_loads(row->headers, 0, NULL);
    const char *why = NULL;
    if (!json_is_object(h) || json_object_size(h) > HEADERS_MAX) {
        why = "headers are not an object of at most 64 strings";
    } else if (json_object_size(h) > 0) {
        const char *k;
        json_t *v;
        json_object_foreach(h, k, v)
        {
            if (!why && !header_ok(k, v))
                why = "a header is reserved, too long or has control characters";
        }
        if (!why)
            json_object_set(o, "headers", h);
    }
    json_decref(h);
    if (why)
        return why;
    if (creds && !copy_str(o, "api_key", creds, "api_key", false, SECRET_MAX, false))
        return "credentials.api_key is not a string of 1-4096 bytes without line breaks";
    if (!json_is_object(settings))
        return "settings is not an object";
    if (!copy_str(o, "api_version", settings, "api_version", false, SHORT_MAX, true))
        return "settings.api_version is not a string of 1-64 printable ASCII characters";
    if (!copy_str(o, "responses_api", settings, "responses_api", false, SHORT_MAX, true))
        return "settings.responses_api is not \"native\", \"chat\" or \"responses\"";
    if (!bedrock)
        return NULL;
    if (!copy_str(o, "region", settings, "region", true, SHORT_MAX, true) || !region_ok(o))
        return "a bedrock provider needs settings.region, 1-64 of a-z, 0-9 and '-'";
    if (!creds ||
        !copy_str(o, "aws_access_key_id", creds, "aws_access_key_id", true, AWS_KEY_MAX, true) ||
        !copy_str(o, "aws_secret_access_key", creds, "aws_secret_access_key", true, AWS_KEY_MAX,
                  true))
        return "a bedrock provider needs credentials aws_access_key_id and "
               "aws_secret_access_key, 1-256 printable ASCII characters each";
    if (!copy_str(o, "aws_session_token", creds, "aws_session_token", false, SECRET_MAX, true))
        return "credentials.aws_session_token is not 1-4096 printable ASCII characters";
    return NULL;
}

/* One provider object. TG_EINVAL: the data plane would refuse the provider (or its credentials
 * cannot be opened), so it is left out. */
static int append_provider(tg_buf_t *out, const prov_row_t *row)
{
    int rc = TG_ENOMEM;
    uint8_t *sealed = NULL;
    tg_buf_t plain = TG_BUF_INIT(CRED_PLAIN_MAX);
    json_t *creds = NULL;
    json_t *settings = json_loads(row->settings, 0, NULL);
    char *text = NULL;
    const char *why = NULL;
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "id", row->id, "kind", row->kind, "base_url", row->base_url);
    if (!o)
        goto out;
    if (!url_ok(row->base_url)) {
        why = "base_url is not an http:// or https:// URL the data plane accepts";
    } else if (row->cred_hex) {
        size_t hlen = strlen(row->cred_hex);
        sealed = malloc(hlen / 2 + 1);
        if (!sealed)
            goto out;
        if (hlen % 2 != 0 || tg_hex_decode(row->cred_hex, hlen, sealed, hlen / 2) != 0 ||
            cp_open(sealed, hlen / 2, &plain) != 0) {
            why = "cannot open credentials_enc with the master key";
        } else {
            creds = json_loadb(plain.base, plain.len, 0, NULL);
            if (!json_is_object(creds))
                why = "the credentials are not a JSON object";
        }
    }
    if (!why)
        why = provider_fill(o, row, creds, settings);
    if (why) {
        tg_log(TG_LOG_WARN, "cp_snapshot", "provider_left_out",
               "provider_id=%s kind=%s reason=\"%s\"", row->id, row->kind, why);
        rc = TG_EINVAL;
        goto out;
    }
    text = json_dumps(o, JSON_COMPACT);
    if (!text)
        goto out;
    rc = tg_buf_append(out, text, strlen(text));
out:
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    if (plain.base)
        OPENSSL_cleanse(plain.base, plain.cap);
    tg_buf_dispose(&plain);
    free(sealed);
    json_decref(creds);
    json_decref(settings);
    json_decref(o);
    return rc;
}

/* The stored retry policy of route r as the data plane accepts it: only max_attempts, backoff_ms
 * and on_status, and only values in its ranges; anything else is left to its defaults. CASE fixes
 * the order of evaluation: casting a value that is no number would fail the whole query. */
#define RETRY_INT(m, lo, hi)                                                                       \
    "CASE WHEN jsonb_typeof(r.retry->'" m "') = 'number' THEN CASE WHEN scale((r.retry->>'" m      \
    "')::numeric) = 0 AND (r.retry->>'" m "')::numeric BETWEEN " lo " AND " hi                     \
    " THEN (r.retry->>'" m "')::int END END"
/* on_status: its integer statuses from 400 to 599, sorted, without repeats */
#define RETRY_STATUSES                                                                             \
    "coalesce((SELECT array_agg(DISTINCT q.s ORDER BY q.s) FROM (SELECT CASE WHEN "                \
    "jsonb_typeof(e) = 'number' THEN CASE WHEN scale((e #>> '{}')::numeric) = 0 AND "              \
    "(e #>> '{}')::numeric BETWEEN 400 AND 599 THEN (e #>> '{}')::int END END AS s FROM "          \
    "jsonb_array_elements(CASE WHEN jsonb_typeof(r.retry->'on_status') = 'array' THEN "            \
    "r.retry->'on_status' END) e) q WHERE q.s IS NOT NULL), '{}')"

/* tenants, routes, prices, keys and budgets, built by Postgres (prices stay exact decimals). A
 * route is served when every target uses a provider in $1 and the data plane's limits hold (1-64
 * targets, positive total weight); a key's models are its aliases among those routes. A route whose
 * on_status holds more than 32 statuses (the API allowed 200 before 0004) gets the data plane's
 * default statuses (warned about in warn_retry). */
static const char REST_SQL[] =
    "WITH inc AS (SELECT unnest($1::uuid[]) AS id), "
    "rt AS (SELECT r.id, r.alias, r.strategy, r.connect_timeout_ms, r.timeout_ms, "
    "  r.first_byte_timeout_ms, r.idle_timeout_ms, r.cache_ttl_s, r.allow_unpriced, "
    "  " RETRY_INT(
        "max_attempts", "1",
        "10") " AS max_attempts, "
              "  " RETRY_INT(
                  "backoff_ms", "0",
                  "60000") " AS backoff_ms, "
                           "  jsonb_typeof(r.retry->'on_status') = 'array' AS "
                           "has_st, " RETRY_STATUSES " AS st "
                           "  FROM routes r "
                           "  WHERE r.tenant_id IS NULL AND (SELECT count(*) BETWEEN 1 AND 64 AND "
                           "sum(t.weight) > 0 "
                           "  AND bool_and(t.provider_id IN (SELECT id FROM inc)) "
                           "  FROM route_targets t WHERE t.route_id = r.id)), "
                           "ak AS (SELECT * FROM virtual_keys WHERE revoked_at IS NULL "
                           "  AND (expires_at IS NULL OR expires_at > now())) "
                           "SELECT "
                           "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', "
                           "t.id, 'name', t.slug, "
                           "  'rpm_limit', t.rpm_limit, 'tpm_limit', t.tpm_limit)) ORDER BY t.id), "
                           "'[]') "
                           "  FROM tenants t), "
                           "(SELECT coalesce(json_agg(json_build_object('alias', rt.alias, "
                           "'targets', "
                           "  (SELECT json_agg(json_strip_nulls(json_build_object('provider', "
                           "x.provider_id, 'model', x.model, "
                           "  'weight', x.weight, 'info', x.info)) ORDER BY x.position) FROM "
                           /* the catalog's model info, or an admin's, left out when neither
                            * knows the model (migrations/0012) */
                           "route_target_info x WHERE x.route_id = rt.id), "
                           "  'strategy', rt.strategy, 'retry', "
                           "json_strip_nulls(json_build_object('max_attempts', "
                           "  rt.max_attempts, 'backoff_ms', rt.backoff_ms, 'on_status', CASE WHEN "
                           "rt.has_st AND "
                           "  cardinality(rt.st) <= 32 THEN to_json(rt.st) END)), "
                           "  'connect_timeout_ms', rt.connect_timeout_ms, "
                           "'first_byte_timeout_ms', "
                           "  rt.first_byte_timeout_ms, 'idle_timeout_ms', rt.idle_timeout_ms, "
                           "'timeout_ms', "
                           "  rt.timeout_ms, 'cache_ttl_s', rt.cache_ttl_s, 'allow_unpriced', "
                           "  rt.allow_unpriced) ORDER BY rt.alias), "
                           "'[]') FROM rt), "
                           /* admins' prices, then the catalog's for served targets no admin
                            * priced (migrations/0009_model_catalog.sql) */
                           "snapshot_prices($1::uuid[], ARRAY(SELECT id FROM rt)), "
                           "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', "
                           "k.id, 'tenant', "
                           "  k.tenant_id, 'sha256', encode(k.key_hash, 'hex'), 'models', "
                           "  (SELECT coalesce(json_agg(u.m ORDER BY u.n), '[]') FROM "
                           "unnest(k.models) "
                           "  WITH ORDINALITY AS u(m, n) WHERE u.m IN (SELECT alias FROM rt)), "
                           "  'expires_at', floor(extract(epoch FROM k.expires_at))::bigint, "
                           "'rpm_limit', k.rpm_limit, "
                           "  'tpm_limit', k.tpm_limit)) ORDER BY k.id), '[]') FROM ak k), "
                           /* budgets of tenants and of served keys, with the spend of their current
                            * period (running aggregates kept by POST /dp/v1/usage; never summed
                            * from raw events) */
                           "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', "
                           "b.id, 'tenant', "
                           "  b.tenant_id, 'key', b.key_id, 'period', b.period, 'limit_usd', "
                           "least(b.limit_usd, "
                           "  9000000), 'spent_usd', least(coalesce(sp.cost_usd, 0), 9000000), "
                           "'period_start', "
                           "  p.ps::text)) ORDER BY b.id), '[]') FROM budgets b "
                           "  CROSS JOIN LATERAL (SELECT CASE b.period "
                           "    WHEN 'daily' THEN (now() AT TIME ZONE 'UTC')::date "
                           "    WHEN 'monthly' THEN date_trunc('month', now() AT TIME ZONE "
                           "'UTC')::date "
                           "    ELSE date '1970-01-01' END AS ps) p "
                           "  LEFT JOIN spend sp ON sp.tenant_id = b.tenant_id AND sp.key_id = "
                           "coalesce(b.key_id, "
                           "  '00000000-0000-0000-0000-000000000000') AND sp.period = b.period "
                           "  AND sp.period_start = p.ps "
                           "  WHERE b.key_id IS NULL OR b.key_id IN (SELECT id FROM ak)), "
                           "floor(extract(epoch FROM now()) * 1000)::bigint";

/* Logs the served routes whose on_status the data plane cannot take (more than 32 statuses):
 * they go out with its default statuses. Runs after the snapshot's own queries: a failure here
 * only costs the warning. */
static void warn_retry(PGconn *c, const char *ids)
{
    const char *p[1] = {ids};
    PGresult *res =
        cp_db_exec(c,
                   "SELECT r.id FROM routes r WHERE r.tenant_id IS NULL AND "
                   "jsonb_typeof(r.retry->'on_status') = 'array' AND cardinality(" RETRY_STATUSES
                   ") > 32 AND NOT EXISTS (SELECT 1 FROM route_targets t WHERE t.route_id = r.id "
                   "AND t.provider_id <> ALL ($1::uuid[])) ORDER BY r.id LIMIT 100",
                   1, p);
    for (int i = 0; cp_db_ok(res) && i < PQntuples(res); i++)
        tg_log(TG_LOG_WARN, "cp_snapshot", "route_retry_statuses_dropped",
               "route_id=%s reason=\"retry.on_status holds more than %d statuses; the data "
               "plane's default statuses apply\"",
               PQgetvalue(res, i, 0), RETRY_STATUS_MAX);
    PQclear(res);
}

static int append_rest(PGconn *c, tg_buf_t *out, const char *ids)
{
    static const char *const names[] = {"tenants", "routes",  "prices",
                                        "keys",    "budgets", "spend_as_of"};
    const char *p[1] = {ids};
    PGresult *res = cp_db_exec(c, REST_SQL, 1, p);
    int rc = TG_EIO;
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        tg_log(TG_LOG_WARN, "cp_snapshot", "query_failed", "reason=\"%.200s\"", PQerrorMessage(c));
        goto out;
    }
    rc = 0;
    for (int i = 0; rc == 0 && i < 6; i++) {
        const char *v = PQgetvalue(res, 0, i);
        rc = tg_buf_appendf(out, ",\"%s\":", names[i]);
        if (rc == 0)
            rc = cp_json_append_compact(out, v, (size_t)PQgetlength(res, 0, i));
    }
    if (rc == 0)
        warn_retry(c, ids);
out:
    PQclear(res);
    return rc;
}

/* snapshot.c: builds the config snapshot that data planes load (docs/snapshot.md) from one
 * repeatable-read, read-only transaction, so the document and its version agree. Only what the
 * data plane accepts today goes in: platform-wide providers of kind openai, platform routes whose
 * targets all use such providers, their prices, and active keys. Provider credentials are opened
 * here and sent (the snapshot is for data planes only); they are never logged. Runs on whichever
 * thread owns the PGconn passed in. */
#include "snapshot.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "tg_err.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

#define CRED_PLAIN_MAX (16u << 10)
#define API_KEY_MAX 4096 /* the data plane's SNAP_MAX_SECRET */

static int exec_ok(PGconn *c, const char *sql);
static int read_version(PGconn *c, int64_t *version);
static int append_providers(PGconn *c, tg_buf_t *out, tg_buf_t *ids);
static int append_provider(tg_buf_t *out, const char *id, const char *base_url, const char *headers,
                           const char *cred_hex);
static int append_rest(PGconn *c, tg_buf_t *out, const char *ids);

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
    PGresult *res = cp_db_exec(
        c, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM config_version_seq", 0,
        NULL);
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
                               "SELECT p.id, p.base_url, p.headers::text, "
                               "encode(p.credentials_enc, 'hex') FROM providers p "
                               "WHERE p.tenant_id IS NULL AND p.kind = 'openai' ORDER BY p.id",
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
        const char *id = PQgetvalue(res, i, 0);
        size_t mark = out->len;
        if (!first)
            rc = tg_buf_append(out, ",", 1);
        if (rc != 0)
            break;
        int prc = append_provider(out, id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                                  PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3));
        if (prc == TG_EINVAL) {
            out->len = mark; /* left out; its routes are left out with it */
            continue;
        }
        rc = prc;
        if (rc == 0)
            rc = tg_buf_appendf(ids, "%s%s", first ? "" : ",", id);
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

/* One provider object. TG_EINVAL: the provider cannot be served (its credentials cannot be
 * opened or hold an api_key the data plane would refuse) and is left out. */
static int append_provider(tg_buf_t *out, const char *id, const char *base_url, const char *headers,
                           const char *cred_hex)
{
    int rc = TG_ENOMEM;
    uint8_t *sealed = NULL;
    tg_buf_t plain = TG_BUF_INIT(CRED_PLAIN_MAX);
    json_t *creds = NULL;
    char *text = NULL;
    json_t *o = json_pack("{s:s,s:s,s:s}", "id", id, "kind", "openai", "base_url", base_url);
    if (!o)
        goto out;
    json_t *h = json_loads(headers, 0, NULL);
    if (json_is_object(h) && json_object_size(h) > 0)
        json_object_set(o, "headers", h);
    json_decref(h);
    if (cred_hex) {
        size_t hlen = strlen(cred_hex);
        sealed = malloc(hlen / 2 + 1);
        if (!sealed)
            goto out;
        if (hlen % 2 != 0 || tg_hex_decode(cred_hex, hlen, sealed, hlen / 2) != 0 ||
            cp_open(sealed, hlen / 2, &plain) != 0) {
            tg_log(TG_LOG_WARN, "cp_snapshot", "provider_left_out",
                   "provider_id=%s reason=\"cannot open credentials_enc with the master key\"", id);
            rc = TG_EINVAL;
            goto out;
        }
        creds = json_loadb(plain.base, plain.len, 0, NULL);
        json_t *k = json_object_get(creds, "api_key");
        if (json_is_string(k)) {
            if (json_string_length(k) == 0 || json_string_length(k) > API_KEY_MAX ||
                strpbrk(json_string_value(k), "\r\n")) {
                tg_log(TG_LOG_WARN, "cp_snapshot", "provider_left_out",
                       "provider_id=%s reason=\"api_key is empty, too long or has a line break\"",
                       id);
                rc = TG_EINVAL;
                goto out;
            }
            json_object_set(o, "api_key", k);
        }
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
    json_decref(o);
    return rc;
}

/* tenants, routes, prices, keys and budgets, built by Postgres (prices stay exact decimals). A route is
 * served when every target uses a provider in $1 and the data plane's limits hold (1-64 targets,
 * positive total weight); a key's models are its aliases among those routes. */
static const char REST_SQL[] =
    "WITH inc AS (SELECT unnest($1::uuid[]) AS id), "
    "rt AS (SELECT r.id, r.alias, r.connect_timeout_ms, r.timeout_ms FROM routes r "
    "  WHERE r.tenant_id IS NULL AND (SELECT count(*) BETWEEN 1 AND 64 AND sum(t.weight) > 0 "
    "  AND bool_and(t.provider_id IN (SELECT id FROM inc)) "
    "  FROM route_targets t WHERE t.route_id = r.id)), "
    "ak AS (SELECT * FROM virtual_keys WHERE revoked_at IS NULL "
    "  AND (expires_at IS NULL OR expires_at > now())) "
    "SELECT "
    "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', t.id, 'name', t.slug, "
    "  'rpm_limit', t.rpm_limit, 'tpm_limit', t.tpm_limit)) ORDER BY t.id), '[]') "
    "  FROM tenants t), "
    "(SELECT coalesce(json_agg(json_build_object('alias', rt.alias, 'targets', "
    "  (SELECT json_agg(json_build_object('provider', x.provider_id, 'model', x.model, "
    "  'weight', x.weight) ORDER BY x.position) FROM route_targets x WHERE x.route_id = rt.id), "
    "  'connect_timeout_ms', rt.connect_timeout_ms, 'timeout_ms', rt.timeout_ms) "
    "  ORDER BY rt.alias), '[]') FROM rt), "
    "(SELECT coalesce(json_agg(json_build_object('provider', p.provider_id, 'model', p.model, "
    "  'input_per_mtok', p.input_per_mtok, 'cached_input_per_mtok', "
    "  coalesce(p.cached_input_per_mtok, p.input_per_mtok), 'output_per_mtok', "
    "  p.output_per_mtok) ORDER BY p.provider_id, p.model), '[]') FROM prices p "
    "  WHERE p.provider_id IN (SELECT id FROM inc) AND p.input_per_mtok <= 1000000 "
    "  AND p.output_per_mtok <= 1000000 "
    "  AND coalesce(p.cached_input_per_mtok, 0) <= 1000000), "
    "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', k.id, 'tenant', "
    "  k.tenant_id, 'sha256', encode(k.key_hash, 'hex'), 'models', "
    "  (SELECT coalesce(json_agg(u.m ORDER BY u.n), '[]') FROM unnest(k.models) "
    "  WITH ORDINALITY AS u(m, n) WHERE u.m IN (SELECT alias FROM rt)), "
    "  'expires_at', floor(extract(epoch FROM k.expires_at))::bigint, 'rpm_limit', k.rpm_limit, "
    "  'tpm_limit', k.tpm_limit)) ORDER BY k.id), '[]') FROM ak k), "
    /* budgets of tenants and of served keys, with the spend of their current period (running
     * aggregates kept by POST /dp/v1/usage; never summed from raw events) */
    "(SELECT coalesce(json_agg(json_strip_nulls(json_build_object('id', b.id, 'tenant', "
    "  b.tenant_id, 'key', b.key_id, 'period', b.period, 'limit_usd', least(b.limit_usd, "
    "  9000000), 'spent_usd', least(coalesce(sp.cost_usd, 0), 9000000), 'period_start', "
    "  p.ps::text)) ORDER BY b.id), '[]') FROM budgets b "
    "  CROSS JOIN LATERAL (SELECT CASE b.period "
    "    WHEN 'daily' THEN (now() AT TIME ZONE 'UTC')::date "
    "    WHEN 'monthly' THEN date_trunc('month', now() AT TIME ZONE 'UTC')::date "
    "    ELSE date '1970-01-01' END AS ps) p "
    "  LEFT JOIN spend sp ON sp.tenant_id = b.tenant_id AND sp.key_id = coalesce(b.key_id, "
    "  '00000000-0000-0000-0000-000000000000') AND sp.period = b.period "
    "  AND sp.period_start = p.ps "
    "  WHERE b.key_id IS NULL OR b.key_id IN (SELECT id FROM ak)), "
    "floor(extract(epoch FROM now()) * 1000)::bigint";

static int append_rest(PGconn *c, tg_buf_t *out, const char *ids)
{
    static const char *const names[] = {"tenants", "routes", "prices",
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
out:
    PQclear(res);
    return rc;
}

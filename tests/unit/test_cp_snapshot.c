/* test_cp_snapshot.c: the config snapshot (snapshot.c, docs/snapshot.md) built from a real
 * Postgres. Each test gets a fresh database in the test Postgres (TOLLGATE_TEST_PG_HOST, which
 * scripts/test exports; run by hand, the test starts the one under .tollgate/test-pg the way
 * tests/integration/lib/control.mjs does), migrated as the control plane does at start
 * (cp_migrate), seeded through SQL with two tenants, platform providers with sealed credentials, a
 * tenant's own provider, routes (one deleted, one through a provider the data plane would refuse),
 * admin prices over a catalog, keys (active, revoked, expired) and budgets with their spend; it is
 * dropped at the end. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp.h"
#include "handler.h"
#include "snapshot.h"
#include "tg_hash.h"
#include "tg_log.h"

#ifndef TG_SOURCE_DIR
#error "TG_SOURCE_DIR: the checkout, for scripts/lib/pg.sh (set by CMakeLists.txt)"
#endif

static cp_opts_t test_opts;
static char pg_host[512];
static char db_name[64];
static PGconn *db;

/* what the fixture made */
static char tenant_a[37], tenant_b[37], prov_openai[37], prov_claude[37], prov_own[37],
    prov_bedrock[37], key_a[37], key_b[37], key_revoked[37], key_expired[37], budget_a[37],
    budget_b[37], budget_revoked[37], route_mix[37];

#define OPENAI_SECRET "sk-openai-unit-secret-0123456789"
#define CLAUDE_SECRET "sk-ant-unit-secret-9876543210"
#define OWN_SECRET "sk-tenant-own-secret-5555"
#define BEDROCK_SECRET "aws-secret-unit-4444"

/* ---- the database ---- */

/* The test Postgres's socket directory: TOLLGATE_TEST_PG_HOST, else the checkout's, started. */
static void find_pg_host(void)
{
    const char *h = getenv("TOLLGATE_TEST_PG_HOST");
    if (h && *h) {
        snprintf(pg_host, sizeof(pg_host), "%s", h);
        return;
    }
    FILE *p = popen("'" TG_SOURCE_DIR "/scripts/lib/pg.sh' start '" TG_SOURCE_DIR
                    "/.tollgate/test-pg' --fast",
                    "r");
    cr_assert_not_null(p, "cannot run scripts/lib/pg.sh");
    char line[512];
    pg_host[0] = '\0';
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(pg_host, sizeof(pg_host), "%s", line); /* the last line */
    }
    cr_assert_eq(pclose(p), 0, "scripts/lib/pg.sh start failed (TOLLGATE_TEST_PG_HOST unset)");
    cr_assert(pg_host[0], "scripts/lib/pg.sh printed no socket directory");
}

static PGconn *connect_to(const char *name)
{
    char conninfo[800];
    snprintf(conninfo, sizeof(conninfo), "host='%s' user=postgres dbname=%s", pg_host, name);
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect to %s: %s", name, PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void admin_exec(const char *sql)
{
    PGconn *c = connect_to("postgres");
    PGresult *res = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

/* Runs one statement with text parameters; the first value of its only row, copied into out
 * (when given). Q: with a uuid's room in out. */
static void q(char *out, size_t outlen, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(db));
    if (out) {
        cr_assert_eq(PQntuples(res), 1, "%s: one row", sql);
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
}
#define Q(out, ...)                                                                                \
    do {                                                                                           \
        const char *const p_[] = {__VA_ARGS__};                                                    \
        q(out, 37, p_[0], (int)(sizeof(p_) / sizeof(p_[0])) - 1, p_ + 1);                          \
    } while (0)

/* The credentials JSON sealed with the master key, as bytea hex input ("\x..."). */
static char *sealed_hex(const char *creds)
{
    tg_buf_t sealed = TG_BUF_INIT(1u << 16);
    cr_assert_eq(cp_seal(creds, strlen(creds), &sealed), 0);
    char *hex = malloc(2 * sealed.len + 3);
    cr_assert_not_null(hex);
    memcpy(hex, "\\x", 2);
    tg_hex_encode((const uint8_t *)sealed.base, sealed.len, hex + 2);
    tg_buf_dispose(&sealed);
    return hex;
}

static void add_provider(char id[37], const char *tenant, const char *name, const char *kind,
                         const char *url, const char *creds, const char *headers,
                         const char *settings)
{
    char *hex = sealed_hex(creds);
    Q(id,
      "INSERT INTO providers (tenant_id, name, kind, base_url, credentials_enc, headers, "
      "settings) VALUES ($1, $2, $3, $4, $5::bytea, $6::jsonb, $7::jsonb) RETURNING id",
      tenant, name, kind, url, hex, headers, settings);
    free(hex);
}

static void add_key(char id[37], const char *tenant, const char *text, const char *models,
                    const char *extra_cols, const char *extra_vals)
{
    uint8_t h[TG_SHA256_LEN];
    char hex[2 + 2 * TG_SHA256_LEN + 1] = "\\x";
    tg_sha256(text, strlen(text), h);
    tg_hex_encode(h, sizeof(h), hex + 2);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO virtual_keys (tenant_id, name, key_hash, last4, models%s) VALUES ($1, "
             "$2, $3::bytea, 'last', $4::text[]%s) RETURNING id",
             extra_cols, extra_vals);
    Q(id, sql, tenant, text, hex, models);
}

/* A catalog newer than the built-in one (so it is the effective catalog) that prices two
 * anthropic models; an admin prices one of them too. */
static const char CATALOG[] =
    "{\"version\":\"unit\",\"generated_on\":\"2999-01-01\",\"vendors\":{},\"models\":["
    "{\"kind\":\"anthropic\",\"model\":\"claude-x\",\"context_window\":100000,"
    "\"prices\":{\"input\":\"3\",\"output\":\"15\",\"cache_write\":{\"5m\":\"3.75\"}}},"
    "{\"kind\":\"anthropic\",\"model\":\"claude-z\",\"context_window\":200000,"
    "\"max_output_tokens\":8192,\"capabilities\":{\"tools\":true,\"vision\":false},"
    "\"prices\":{\"input\":\"1\",\"cached_input\":\"0.1\",\"output\":\"5\","
    "\"cache_write\":{\"5m\":\"1.25\"},\"reasoning\":\"6\"}}]}";

static void seed(void)
{
    Q(tenant_a, "INSERT INTO tenants (slug, name, rpm_limit, tpm_limit) VALUES ('acme', 'Acme', "
                "600, 1000000) RETURNING id");
    Q(tenant_b, "INSERT INTO tenants (slug, name) VALUES ('beta', 'Beta') RETURNING id");
    add_provider(prov_openai, NULL, "openai", "openai", "https://api.openai.com/v1",
                 "{\"api_key\":\"" OPENAI_SECRET "\"}", "{\"OpenAI-Organization\":\"org-unit\"}",
                 "{}");
    add_provider(prov_claude, NULL, "claude", "anthropic", "https://api.anthropic.com/v1",
                 "{\"api_key\":\"" CLAUDE_SECRET "\"}", "{}",
                 "{\"api_version\":\"2023-06-01\",\"region\":\"eu-west-1\"}");
    /* a tenant's own provider is not the platform's: never in the snapshot */
    add_provider(prov_own, tenant_a, "own", "openai", "https://own.example.com/v1",
                 "{\"api_key\":\"" OWN_SECRET "\"}", "{}", "{}");
    /* bedrock without settings.region: the data plane would refuse it, so it is left out */
    add_provider(
        prov_bedrock, NULL, "bedrock", "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com",
        "{\"aws_access_key_id\":\"AKIAUNIT\",\"aws_secret_access_key\":\"" BEDROCK_SECRET "\"}",
        "{}", "{}");
    Q(NULL,
      "INSERT INTO model_catalogs (origin, version, generated_on, sha256, doc) VALUES "
      "('import', 'unit', '2999-01-01', repeat('a', 64), $1::jsonb)",
      CATALOG);

    Q(route_mix,
      "INSERT INTO routes (alias, strategy, retry, connect_timeout_ms, timeout_ms, "
      "first_byte_timeout_ms, idle_timeout_ms, cache_ttl_s, allow_unpriced) VALUES ('mix', "
      "'least_busy', '{\"max_attempts\":3,\"backoff_ms\":250,\"on_status\":[503,429,429,200],"
      "\"other\":1}', 5000, 120000, 30000, 60000, 300, true) RETURNING id");
    Q(NULL,
      "INSERT INTO route_targets (route_id, position, provider_id, model, weight) VALUES "
      "($1, 0, $2, 'gpt-4o-mini', 3), ($1, 1, $3, 'claude-x', 1)",
      route_mix, prov_openai, prov_claude);
    char solo[37], gone[37], via_bedrock[37], own_route[37];
    Q(solo, "INSERT INTO routes (alias) VALUES ('solo') RETURNING id");
    Q(NULL,
      "INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ($1, 0, $2, "
      "'claude-z')",
      solo, prov_claude);
    Q(gone, "INSERT INTO routes (alias) VALUES ('gone') RETURNING id");
    Q(NULL,
      "INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ($1, 0, $2, "
      "'gpt-4o')",
      gone, prov_openai);
    Q(NULL, "DELETE FROM routes WHERE id = $1", gone);
    Q(via_bedrock, "INSERT INTO routes (alias) VALUES ('via-bedrock') RETURNING id");
    Q(NULL,
      "INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ($1, 0, $2, "
      "'anthropic.claude-v2')",
      via_bedrock, prov_bedrock);
    Q(own_route, "INSERT INTO routes (tenant_id, alias) VALUES ($1, 'own-route') RETURNING id",
      tenant_a);
    Q(NULL,
      "INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ($1, 0, $2, "
      "'gpt-4o')",
      own_route, prov_own);

    Q(NULL,
      "INSERT INTO prices (provider_id, model, input_per_mtok, cached_input_per_mtok, "
      "output_per_mtok) VALUES ($1, 'gpt-4o-mini', 0.15, 0.075, 0.6), ($2, 'claude-x', 2.5, "
      "NULL, 12.5), ($3, 'x', 1, 1, 1)",
      prov_openai, prov_claude, prov_own);

    add_key(key_a, tenant_a, "tg-unit-key-a", "{solo,gone,via-bedrock,nope,mix}",
            ", rpm_limit, tpm_limit, expires_at", ", 60, 100000, '2030-01-01 00:00:00+00'");
    add_key(key_b, tenant_b, "tg-unit-key-b", "{mix}", "", "");
    add_key(key_revoked, tenant_a, "tg-unit-key-revoked", "{mix}", ", revoked_at", ", now()");
    add_key(key_expired, tenant_a, "tg-unit-key-expired", "{mix}", ", expires_at",
            ", now() - interval '1 hour'");

    Q(budget_a,
      "INSERT INTO budgets (tenant_id, key_id, period, limit_usd) VALUES ($1, $2, 'daily', 10) "
      "RETURNING id",
      tenant_a, key_a);
    Q(budget_b,
      "INSERT INTO budgets (tenant_id, period, limit_usd) VALUES ($1, 'monthly', 50) "
      "RETURNING id",
      tenant_b);
    Q(budget_revoked,
      "INSERT INTO budgets (tenant_id, key_id, period, limit_usd) VALUES ($1, $2, 'total', 5) "
      "RETURNING id",
      tenant_a, key_revoked);
    /* today's spend counts; yesterday's is another period */
    Q(NULL,
      "INSERT INTO spend (tenant_id, key_id, period, period_start, cost_usd) VALUES "
      "($1, $2, 'daily', (now() AT TIME ZONE 'UTC')::date, 2.5), "
      "($1, $2, 'daily', (now() AT TIME ZONE 'UTC')::date - 1, 7), "
      "($3, DEFAULT, 'monthly', date_trunc('month', now() AT TIME ZONE 'UTC')::date, 4.25)",
      tenant_a, key_a, tenant_b);
    Q(NULL, CP_CONFIG_BUMP_SQL);
}

static void setup(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    for (int i = 0; i < 32; i++)
        test_opts.master_key[i] = (uint8_t)(0xa0 + i);
    test_opts.have_master_key = true;
    cp_opts = &test_opts;
    tg_log_set_level(TG_LOG_WARN); /* not each migration applied */
    find_pg_host();
    uint8_t rnd[6];
    char hex[13];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long seed_v = (long long)ts.tv_nsec ^ ((long long)getpid() << 20) ^ ts.tv_sec;
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(&seed_v, sizeof(seed_v), h);
    memcpy(rnd, h, sizeof(rnd));
    tg_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(db_name, sizeof(db_name), "tg_snap_%s", hex);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db_name);
    admin_exec(sql);
    char conninfo[800];
    snprintf(conninfo, sizeof(conninfo), "host='%s' user=postgres dbname=%s", pg_host, db_name);
    cr_assert_eq(cp_migrate(conninfo), 0, "cp_migrate");
    db = connect_to(db_name);
    seed();
}

static void teardown(void)
{
    if (db)
        PQfinish(db);
    db = NULL;
    if (db_name[0]) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
        admin_exec(sql);
    }
}

TestSuite(cp_snapshot, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the document ---- */

static tg_buf_t doc_text;

/* Builds the snapshot; its parsed document (the text stays in doc_text until the next build). */
static json_t *build(int64_t *version)
{
    tg_buf_dispose(&doc_text);
    tg_buf_init(&doc_text, 16u << 20);
    cr_assert_eq(cp_snapshot_build(db, &doc_text, version), 0);
    json_error_t err;
    json_t *doc = json_loadb(doc_text.base, doc_text.len, 0, &err);
    cr_assert_not_null(doc, "not JSON: %s: %.*s", err.text, (int)doc_text.len, doc_text.base);
    cr_assert_eq(json_integer_value(json_object_get(doc, "version")), *version);
    return doc;
}

/* The member of array `name` of doc whose `key` is the string `value`, or NULL. */
static json_t *find(json_t *doc, const char *name, const char *key, const char *value)
{
    json_t *arr = json_object_get(doc, name), *e;
    size_t i;
    cr_assert(json_is_array(arr), "%s is an array", name);
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(json_object_get(e, key)) &&
            strcmp(json_string_value(json_object_get(e, key)), value) == 0)
            return e;
    }
    return NULL;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "%s is a string", k);
    return json_string_value(v);
}

static json_int_t num_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "%s is an integer", k);
    return json_integer_value(v);
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_number(v), "%s is a number", k);
    return json_number_value(v);
}

/* The names of o's members, sorted, comma-separated: what a member list is compared with. */
static void members(json_t *o, char *out, size_t outlen)
{
    const char *names[32];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        cr_assert_lt(n, 32);
        names[n++] = k;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? "," : "", names[i]);
}

static void expect_members(json_t *o, const char *want)
{
    char got[512];
    members(o, got, sizeof(got));
    cr_assert_str_eq(got, want);
}

/* How often needle occurs in the document's text. */
static int occurrences(const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = doc_text.base, *end = doc_text.base + doc_text.len;
         (p = tg_memmem(p, (size_t)(end - p), needle, len)) != NULL; p += len)
        n++;
    return n;
}

/* ---- tests ---- */

Test(cp_snapshot, version_counts_config_changes_and_is_read_with_the_document)
{
    int64_t v0 = -1, v_only = -1, v1 = -1;
    json_t *doc = build(&v0);
    cr_assert_gt(v0, 0, "the fixture's change bumped the version");
    cr_assert_eq(num_int(find(doc, "routes", "alias", "mix"), "timeout_ms"), 120000);
    json_decref(doc);

    /* the version alone (the long poll's check) is the same version */
    cr_assert_eq(cp_snapshot_build(db, NULL, &v_only), 0);
    cr_assert_eq(v_only, v0);

    /* a change committed with its bump is exactly the next version, with the change */
    Q(NULL, "BEGIN");
    Q(NULL, "UPDATE routes SET timeout_ms = 90000 WHERE id = $1", route_mix);
    Q(NULL, CP_CONFIG_BUMP_SQL);
    Q(NULL, "COMMIT");
    doc = build(&v1);
    cr_assert_eq(v1, v0 + 1);
    cr_assert_eq(num_int(find(doc, "routes", "alias", "mix"), "timeout_ms"), 90000);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, tenants_and_platform_providers_appear_with_their_fields)
{
    int64_t v;
    json_t *doc = build(&v);
    expect_members(doc, "budgets,keys,prices,providers,routes,spend_as_of,tenants,version");

    cr_assert_eq(json_array_size(json_object_get(doc, "tenants")), 2);
    json_t *a = find(doc, "tenants", "id", tenant_a), *b = find(doc, "tenants", "id", tenant_b);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    expect_members(a, "id,name,rpm_limit,tpm_limit");
    cr_assert_str_eq(str(a, "name"), "acme");
    cr_assert_eq(num_int(a, "rpm_limit"), 600);
    cr_assert_eq(num_int(a, "tpm_limit"), 1000000);
    expect_members(b, "id,name"); /* no limits: none sent */
    cr_assert_str_eq(str(b, "name"), "beta");

    /* the platform's providers the data plane accepts; not a tenant's own, not the bedrock
     * provider without a region */
    cr_assert_eq(json_array_size(json_object_get(doc, "providers")), 2);
    json_t *o = find(doc, "providers", "id", prov_openai);
    cr_assert_not_null(o);
    expect_members(o, "api_key,base_url,headers,id,kind");
    cr_assert_str_eq(str(o, "kind"), "openai");
    cr_assert_str_eq(str(o, "base_url"), "https://api.openai.com/v1");
    cr_assert_str_eq(str(o, "api_key"), OPENAI_SECRET);
    cr_assert_str_eq(str(json_object_get(o, "headers"), "OpenAI-Organization"), "org-unit");
    json_t *c = find(doc, "providers", "id", prov_claude);
    cr_assert_not_null(c);
    /* settings.region goes to bedrock providers only; empty headers are not sent */
    expect_members(c, "api_key,api_version,base_url,id,kind");
    cr_assert_str_eq(str(c, "kind"), "anthropic");
    cr_assert_str_eq(str(c, "api_key"), CLAUDE_SECRET);
    cr_assert_str_eq(str(c, "api_version"), "2023-06-01");
    cr_assert_null(find(doc, "providers", "id", prov_own));
    cr_assert_null(find(doc, "providers", "id", prov_bedrock));
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, served_routes_carry_their_targets_and_policy)
{
    int64_t v;
    json_t *doc = build(&v);
    /* 'gone' was deleted, 'via-bedrock' goes through a provider left out, 'own-route' is a
     * tenant's */
    cr_assert_eq(json_array_size(json_object_get(doc, "routes")), 2, "%.*s", (int)doc_text.len,
                 doc_text.base);
    cr_assert_null(find(doc, "routes", "alias", "gone"));
    cr_assert_null(find(doc, "routes", "alias", "via-bedrock"));
    cr_assert_null(find(doc, "routes", "alias", "own-route"));

    json_t *mix = find(doc, "routes", "alias", "mix");
    cr_assert_not_null(mix);
    expect_members(mix, "alias,allow_unpriced,cache_ttl_s,connect_timeout_ms,"
                        "first_byte_timeout_ms,idle_timeout_ms,retry,strategy,targets,timeout_ms");
    cr_assert_str_eq(str(mix, "strategy"), "least_busy");
    cr_assert_eq(num_int(mix, "connect_timeout_ms"), 5000);
    cr_assert_eq(num_int(mix, "timeout_ms"), 120000);
    cr_assert_eq(num_int(mix, "first_byte_timeout_ms"), 30000);
    cr_assert_eq(num_int(mix, "idle_timeout_ms"), 60000);
    cr_assert_eq(num_int(mix, "cache_ttl_s"), 300);
    cr_assert(json_is_true(json_object_get(mix, "allow_unpriced")));
    /* only the members and values the data plane takes: on_status sorted, without repeats or
     * statuses outside 400-599 */
    json_t *retry = json_object_get(mix, "retry");
    expect_members(retry, "backoff_ms,max_attempts,on_status");
    cr_assert_eq(num_int(retry, "max_attempts"), 3);
    cr_assert_eq(num_int(retry, "backoff_ms"), 250);
    char *st = json_dumps(json_object_get(retry, "on_status"), JSON_COMPACT);
    cr_assert_str_eq(st, "[429,503]");
    free(st);

    json_t *targets = json_object_get(mix, "targets");
    cr_assert_eq(json_array_size(targets), 2);
    json_t *t0 = json_array_get(targets, 0), *t1 = json_array_get(targets, 1);
    expect_members(t0, "model,provider,weight"); /* no catalog info for it: none sent */
    cr_assert_str_eq(str(t0, "provider"), prov_openai);
    cr_assert_str_eq(str(t0, "model"), "gpt-4o-mini");
    cr_assert_eq(num_int(t0, "weight"), 3);
    cr_assert_str_eq(str(t1, "provider"), prov_claude);
    cr_assert_str_eq(str(t1, "model"), "claude-x");
    cr_assert_eq(num_int(t1, "weight"), 1);
    cr_assert_eq(num_int(json_object_get(t1, "info"), "context_window"), 100000);

    /* defaults, and the catalog's model info */
    json_t *solo = find(doc, "routes", "alias", "solo");
    cr_assert_not_null(solo);
    cr_assert_str_eq(str(solo, "strategy"), "weighted");
    cr_assert_eq(num_int(solo, "timeout_ms"), 600000);
    cr_assert(json_is_false(json_object_get(solo, "allow_unpriced")));
    expect_members(json_object_get(solo, "retry"), "");
    json_t *info = json_object_get(json_array_get(json_object_get(solo, "targets"), 0), "info");
    char *is = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(is, "{\"capabilities\":{\"tools\":true,\"vision\":false},"
                         "\"context_window\":200000,\"max_output_tokens\":8192}");
    free(is);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, keys_are_the_active_ones_each_in_its_own_tenant)
{
    int64_t v;
    json_t *doc = build(&v);
    cr_assert_eq(json_array_size(json_object_get(doc, "keys")), 2);
    cr_assert_null(find(doc, "keys", "id", key_revoked), "a revoked key is served");
    cr_assert_null(find(doc, "keys", "id", key_expired), "an expired key is served");

    json_t *a = find(doc, "keys", "id", key_a), *b = find(doc, "keys", "id", key_b);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    expect_members(a, "expires_at,id,models,rpm_limit,sha256,tenant,tpm_limit");
    cr_assert_str_eq(str(a, "tenant"), tenant_a);
    uint8_t h[TG_SHA256_LEN];
    char hex[2 * TG_SHA256_LEN + 1];
    tg_sha256("tg-unit-key-a", 13, h);
    tg_hex_encode(h, sizeof(h), hex);
    cr_assert_str_eq(str(a, "sha256"), hex);
    /* its aliases among the served routes, in its order */
    char *m = json_dumps(json_object_get(a, "models"), JSON_COMPACT);
    cr_assert_str_eq(m, "[\"solo\",\"mix\"]");
    free(m);
    cr_assert_eq(num_int(a, "expires_at"), 1893456000); /* 2030-01-01T00:00:00Z */
    cr_assert_eq(num_int(a, "rpm_limit"), 60);
    cr_assert_eq(num_int(a, "tpm_limit"), 100000);

    expect_members(b, "id,models,sha256,tenant");
    cr_assert_str_eq(str(b, "tenant"), tenant_b);
    tg_sha256("tg-unit-key-b", 13, h);
    tg_hex_encode(h, sizeof(h), hex);
    cr_assert_str_eq(str(b, "sha256"), hex);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, an_admin_price_wins_over_the_catalog)
{
    int64_t v;
    json_t *doc = build(&v);
    json_t *arr = json_object_get(doc, "prices"), *e;
    size_t i;
    int openai = 0, claude_x = 0, claude_z = 0;
    json_array_foreach(arr, i, e)
    {
        const char *p = str(e, "provider"), *model = str(e, "model");
        cr_assert(strcmp(p, prov_own) != 0, "a tenant provider's price is served");
        if (strcmp(p, prov_openai) == 0 && strcmp(model, "gpt-4o-mini") == 0) {
            openai++;
            expect_members(e, "cached_input_per_mtok,input_per_mtok,model,output_per_mtok,"
                              "provider");
            cr_assert_eq(num(e, "input_per_mtok"), 0.15);
            cr_assert_eq(num(e, "cached_input_per_mtok"), 0.075);
            cr_assert_eq(num(e, "output_per_mtok"), 0.6);
        } else if (strcmp(p, prov_claude) == 0 && strcmp(model, "claude-x") == 0) {
            /* the admin's, whole: none of the catalog's members (its cache-write price) */
            claude_x++;
            expect_members(e, "cached_input_per_mtok,input_per_mtok,model,output_per_mtok,"
                              "provider");
            cr_assert_eq(num(e, "input_per_mtok"), 2.5);
            cr_assert_eq(num(e, "cached_input_per_mtok"), 2.5, "defaults to the input price");
            cr_assert_eq(num(e, "output_per_mtok"), 12.5);
        } else if (strcmp(p, prov_claude) == 0 && strcmp(model, "claude-z") == 0) {
            /* no admin price: the catalog's */
            claude_z++;
            expect_members(e, "cache_write_per_mtok,cached_input_per_mtok,input_per_mtok,model,"
                              "output_per_mtok,provider,reasoning_per_mtok");
            cr_assert_eq(num(e, "input_per_mtok"), 1);
            cr_assert_eq(num(e, "cached_input_per_mtok"), 0.1);
            cr_assert_eq(num(e, "output_per_mtok"), 5);
            cr_assert_eq(num(e, "cache_write_per_mtok"), 1.25);
            cr_assert_eq(num(e, "reasoning_per_mtok"), 6);
        } else {
            cr_assert_fail("unexpected price %s %s", p, model);
        }
    }
    cr_assert_eq(openai, 1);
    cr_assert_eq(claude_x, 1, "one price per provider and model");
    cr_assert_eq(claude_z, 1);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, a_provider_secret_is_only_in_its_api_key)
{
    int64_t v;
    json_t *doc = build(&v);
    cr_assert_eq(occurrences(OPENAI_SECRET), 1);
    cr_assert_eq(occurrences(CLAUDE_SECRET), 1);
    cr_assert_str_eq(str(find(doc, "providers", "id", prov_openai), "api_key"), OPENAI_SECRET);
    cr_assert_str_eq(str(find(doc, "providers", "id", prov_claude), "api_key"), CLAUDE_SECRET);
    /* the providers left out take their credentials with them */
    cr_assert_eq(occurrences(OWN_SECRET), 0);
    cr_assert_eq(occurrences(BEDROCK_SECRET), 0);
    cr_assert_eq(occurrences("AKIAUNIT"), 0);
    /* nor is the sealed form sent */
    char sealed[8192];
    const char *p[] = {prov_openai};
    q(sealed, sizeof(sealed), "SELECT encode(credentials_enc, 'hex') FROM providers WHERE id = $1",
      1, p);
    cr_assert_eq(occurrences(sealed), 0);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

Test(cp_snapshot, budgets_carry_their_limit_and_the_current_periods_spend)
{
    int64_t v;
    json_t *doc = build(&v);
    cr_assert_eq(json_array_size(json_object_get(doc, "budgets")), 2);
    cr_assert_null(find(doc, "budgets", "id", budget_revoked), "a revoked key's budget is served");
    char today[16], month[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    strftime(month, sizeof(month), "%Y-%m-01", &tm);

    json_t *a = find(doc, "budgets", "id", budget_a);
    cr_assert_not_null(a);
    expect_members(a, "id,key,limit_usd,period,period_start,spent_usd,tenant");
    cr_assert_str_eq(str(a, "tenant"), tenant_a);
    cr_assert_str_eq(str(a, "key"), key_a);
    cr_assert_str_eq(str(a, "period"), "daily");
    cr_assert_eq(num(a, "limit_usd"), 10);
    cr_assert_eq(num(a, "spent_usd"), 2.5, "today's spend, not yesterday's");
    cr_assert_str_eq(str(a, "period_start"), today);

    json_t *b = find(doc, "budgets", "id", budget_b);
    cr_assert_not_null(b);
    expect_members(b, "id,limit_usd,period,period_start,spent_usd,tenant"); /* the whole tenant's */
    cr_assert_str_eq(str(b, "tenant"), tenant_b);
    cr_assert_str_eq(str(b, "period"), "monthly");
    cr_assert_eq(num(b, "limit_usd"), 50);
    cr_assert_eq(num(b, "spent_usd"), 4.25);
    cr_assert_str_eq(str(b, "period_start"), month);

    int64_t ms = num_int(doc, "spend_as_of");
    cr_assert(ms >= ((int64_t)now - 60) * 1000 && ms <= ((int64_t)now + 60) * 1000,
              "spend_as_of %lld is when it was read", (long long)ms);
    json_decref(doc);
    tg_buf_dispose(&doc_text);
}

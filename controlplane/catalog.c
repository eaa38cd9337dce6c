/* catalog.c: the model catalog (docs/catalog.md). Checks a catalog document with the rules the
 * file's test holds it to (tests/integration/catalog_file.test.mjs), stores the built-in copy at
 * start, and runs `tollgate-control catalog import|diff FILE`. Main thread only; Postgres does the
 * comparing, so that amounts stay exact decimals. */
#include "catalog.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "handler.h"
#include "tg_hash.h"
#include "tg_log.h"
#include "tg_snap.h"

#include "tg_banned.h"

#define CATALOG_MAX_BYTES (16u << 20)
#define CATALOG_MAX_MODELS 20000
#define PRICE_MAX_USD 1000.0 /* per million tokens: anything above is a typo */

static const char *const caps[] = {"tools",     "parallel_tool_calls", "vision", "json_schema",
                                   "reasoning", "streaming_usage",     NULL};

/* The cache-write retention tiers providers price: Anthropic's 5 minutes and 1 hour, OpenAI's 30
 * minutes and 12 hours. */
static const char *const cache_ttls[] = {"5m", "30m", "1h", "12h", NULL};

static bool cache_ttl_known(const char *ttl)
{
    for (int k = 0; cache_ttls[k]; k++)
        if (strcmp(ttl, cache_ttls[k]) == 0)
            return true;
    return false;
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fail(char *msg, size_t n, const char *where, const char *what)
{
    snprintf(msg, n, "%s %s", where, what);
    return -1;
}

static bool date_ok(json_t *v)
{
    return json_is_string(v) && tg_date_parse(json_string_value(v)) > 0;
}

/* A decimal string: digits, at most one point and 9 decimals, 0 to PRICE_MAX_USD. */
static int decimal(json_t *v, const char *where, double *out, char *msg, size_t n)
{
    if (!json_is_string(v))
        return fail(msg, n, where, "must be a decimal string (USD per million tokens)");
    const char *s = json_string_value(v);
    size_t len = strlen(s), digits = 0, decimals = 0;
    bool point = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' && !point && digits > 0) {
            point = true;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (point)
                decimals++;
            else
                digits++;
        } else {
            return fail(msg, n, where, "is not a plain decimal");
        }
    }
    if (digits == 0 || digits > 7 || (point && (decimals == 0 || decimals > 9)))
        return fail(msg, n, where, "is not a plain decimal");
    *out = strtod(s, NULL);
    if (!(*out >= 0 && *out <= PRICE_MAX_USD))
        return fail(msg, n, where, "is outside 0 to 1000 USD per million tokens");
    return 0;
}

static int check_model(json_t *doc, json_t *m, size_t i, char *msg, size_t n)
{
    char at[320];
    json_t *model = json_object_get(m, "model");
    snprintf(at, sizeof(at), "models[%zu]", i);
    if (!json_is_object(m))
        return fail(msg, n, at, "must be an object");
    const char *kind = json_string_value(json_object_get(m, "kind"));
    if (!kind || tg_provider_kind_parse(kind) == 0)
        return fail(msg, n, at, "has a kind Tollgate has no provider for");
    if (!json_is_string(model) || json_string_length(model) < 1 || json_string_length(model) > 256)
        return fail(msg, n, at, "needs a model of 1 to 256 characters");
    snprintf(at, sizeof(at), "models[%zu] (%.256s)", i, json_string_value(model));
    json_t *vendor = json_object_get(m, "vendor");
    if (strcmp(kind, "openai") == 0) {
        json_t *v = json_is_string(vendor) ? json_object_get(json_object_get(doc, "vendors"),
                                                             json_string_value(vendor))
                                           : NULL;
        if (!v || !json_is_string(json_object_get(v, "kind")) ||
            strcmp(json_string_value(json_object_get(v, "kind")), kind) != 0)
            return fail(msg, n, at, "must name a vendor of kind openai from vendors");
    } else if (vendor) {
        return fail(msg, n, at, "has a vendor, which only openai-compatible entries have");
    }
    const char *mode = json_string_value(json_object_get(m, "mode"));
    if (!mode || (strcmp(mode, "chat") != 0 && strcmp(mode, "embedding") != 0))
        return fail(msg, n, at, "mode must be chat or embedding");
    json_t *ctx = json_object_get(m, "context_window"),
           *mo = json_object_get(m, "max_output_tokens");
    if (!json_is_integer(ctx) || json_integer_value(ctx) <= 0)
        return fail(msg, n, at, "context_window must be a positive integer");
    /* null when the provider publishes no output limit */
    if (!json_is_null(mo) && (!json_is_integer(mo) || json_integer_value(mo) <= 0 ||
                              json_integer_value(mo) > json_integer_value(ctx)))
        return fail(msg, n, at,
                    "max_output_tokens must be null or a positive integer within the context "
                    "window");
    json_t *p = json_object_get(m, "prices");
    if (!json_is_object(p))
        return fail(msg, n, at, "needs prices");
    double in, out, x;
    if (decimal(json_object_get(p, "input"), "prices.input", &in, msg, n) != 0)
        goto where;
    if (strcmp(mode, "chat") == 0) {
        if (decimal(json_object_get(p, "output"), "prices.output", &out, msg, n) != 0)
            goto where;
        if (out < in / 100)
            return fail(msg, n, at, "has an output price under a hundredth of its input price");
    }
    if (json_object_get(p, "cached_input")) {
        if (decimal(json_object_get(p, "cached_input"), "prices.cached_input", &x, msg, n) != 0)
            goto where;
        if (x > in)
            return fail(msg, n, at, "has a cached input price above its input price");
    }
    json_t *cw = json_object_get(p, "cache_write");
    if (cw) {
        const char *ttl;
        json_t *v;
        if (!json_is_object(cw))
            return fail(msg, n, at, "prices.cache_write must be an object of TTL tiers");
        json_object_foreach(cw, ttl, v)
        {
            if (!cache_ttl_known(ttl))
                return fail(msg, n, at, "prices.cache_write tiers are 5m, 30m, 1h and 12h");
            if (decimal(v, "prices.cache_write", &x, msg, n) != 0)
                goto where;
        }
    }
    if (json_object_get(p, "reasoning") &&
        decimal(json_object_get(p, "reasoning"), "prices.reasoning", &x, msg, n) != 0)
        goto where;
    json_t *lc = json_object_get(m, "long_context");
    if (lc) {
        size_t k;
        json_t *t;
        json_int_t prev = 0;
        if (!json_is_array(lc))
            return fail(msg, n, at, "long_context must be an array of tiers");
        json_array_foreach(lc, k, t)
        {
            json_t *from = json_object_get(t, "from_input_tokens");
            if (!json_is_integer(from) || json_integer_value(from) <= prev ||
                json_integer_value(from) >= json_integer_value(ctx))
                return fail(msg, n, at,
                            "long_context tiers need ascending from_input_tokens within the "
                            "context window");
            prev = json_integer_value(from);
            if (decimal(json_object_get(t, "input"), "long_context input", &x, msg, n) != 0)
                goto where;
            if (x < in)
                return fail(msg, n, at, "has a long-context input price below its input price");
            if (strcmp(mode, "chat") == 0 &&
                decimal(json_object_get(t, "output"), "long_context output", &x, msg, n) != 0)
                goto where;
            if (json_object_get(t, "cached_input") &&
                decimal(json_object_get(t, "cached_input"), "long_context cached_input", &x, msg,
                        n) != 0)
                goto where;
        }
    }
    json_t *c = json_object_get(m, "capabilities");
    if (!json_is_object(c) || json_object_size(c) != 6)
        return fail(msg, n, at, "capabilities must hold exactly the six known flags");
    for (int k = 0; caps[k]; k++)
        if (!json_is_boolean(json_object_get(c, caps[k])))
            return fail(msg, n, at, "capabilities must hold booleans");
    json_t *dep = json_object_get(m, "deprecation_date");
    if (dep && !json_is_null(dep) && !date_ok(dep))
        return fail(msg, n, at, "deprecation_date must be YYYY-MM-DD or null");
    const char *src = json_string_value(json_object_get(m, "source"));
    if (!src || strncmp(src, "https://", 8) != 0 || strlen(src) > 2048)
        return fail(msg, n, at, "needs source, the https URL of the provider's page");
    if (!date_ok(json_object_get(m, "read_on")))
        return fail(msg, n, at, "needs read_on, the date its source was read (YYYY-MM-DD)");
    return 0;
where : {
    char inner[256];
    snprintf(inner, sizeof(inner), "%s", msg);
    snprintf(msg, n, "%s %s", at, inner);
    return -1;
}
}

int cp_catalog_check(json_t *doc, char *msg, size_t n)
{
    if (!json_is_object(doc))
        return fail(msg, n, "the catalog", "must be a JSON object");
    json_t *ver = json_object_get(doc, "version");
    if (!json_is_string(ver) || json_string_length(ver) < 1 || json_string_length(ver) > 64)
        return fail(msg, n, "version", "must be a string of 1 to 64 characters");
    if (!date_ok(json_object_get(doc, "generated_on")))
        return fail(msg, n, "generated_on", "must be a date (YYYY-MM-DD)");
    json_t *vendors = json_object_get(doc, "vendors");
    if (!json_is_object(vendors))
        return fail(msg, n, "vendors", "must be an object");
    const char *name;
    json_t *v;
    int defaults = 0;
    json_object_foreach(vendors, name, v)
    {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        json_t *hosts = json_object_get(v, "hosts");
        if (!kind || tg_provider_kind_parse(kind) == 0 || !json_is_array(hosts) ||
            json_array_size(hosts) == 0)
            return fail(msg, n, "vendors", "need a known kind and hosts each");
        if (json_is_true(json_object_get(v, "default_for_kind")))
            defaults++;
    }
    if (defaults > 1)
        return fail(msg, n, "vendors", "may mark one default_for_kind");
    json_t *models = json_object_get(doc, "models");
    if (!json_is_array(models) || json_array_size(models) == 0 ||
        json_array_size(models) > CATALOG_MAX_MODELS)
        return fail(msg, n, "models", "must be an array of 1 to 20000 entries");
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        if (check_model(doc, m, i, msg, n) != 0)
            return -1;
    }
    /* no (kind, vendor, model) twice: sorted keys make it one pass */
    size_t nm = json_array_size(models);
    char **keys = calloc(nm, sizeof(*keys));
    int rc = keys ? 0 : fail(msg, n, "the catalog", "is too large");
    for (i = 0; rc == 0 && i < nm; i++) {
        m = json_array_get(models, i);
        const char *vd = json_string_value(json_object_get(m, "vendor"));
        size_t need = strlen(json_string_value(json_object_get(m, "kind"))) +
                      (vd ? strlen(vd) : 0) +
                      strlen(json_string_value(json_object_get(m, "model"))) + 3;
        keys[i] = malloc(need);
        if (!keys[i]) {
            rc = fail(msg, n, "the catalog", "is too large");
            break;
        }
        snprintf(keys[i], need, "%s/%s/%s", json_string_value(json_object_get(m, "kind")),
                 vd ? vd : "", json_string_value(json_object_get(m, "model")));
    }
    if (rc == 0) {
        qsort(keys, nm, sizeof(*keys), strcmp_ptr);
        for (i = 1; i < nm; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                snprintf(msg, n, "models list %.300s twice", keys[i]);
                rc = -1;
                break;
            }
    }
    for (i = 0; keys && i < nm; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

/* ---- storing ---- */

static void sha256_hex(const char *p, size_t n, char out[65])
{
    uint8_t h[TG_SHA256_LEN];
    static const char hx[] = "0123456789abcdef";
    tg_sha256(p, n, h);
    for (int i = 0; i < TG_SHA256_LEN; i++) {
        out[2 * i] = hx[h[i] >> 4];
        out[2 * i + 1] = hx[h[i] & 15];
    }
    out[64] = '\0';
}

static bool exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

/* Inserts the document unless (origin, sha256) is stored; *inserted says which. In the caller's
 * transaction. */
static int store(PGconn *c, const char *origin, const char *text, size_t len, json_t *doc,
                 bool *inserted)
{
    char sha[65];
    sha256_hex(text, len, sha);
    const char *p[5] = {origin, json_string_value(json_object_get(doc, "version")),
                        json_string_value(json_object_get(doc, "generated_on")), sha, NULL};
    char *compact = json_dumps(doc, JSON_COMPACT);
    if (!compact)
        return -1;
    p[4] = compact;
    PGresult *res = cp_db_exec(c,
                               "INSERT INTO model_catalogs (origin, version, generated_on, sha256, "
                               "doc) VALUES ($1, $2, $3::date, $4, $5::jsonb) ON CONFLICT (origin, "
                               "sha256) DO NOTHING RETURNING id",
                               5, p);
    free(compact);
    int rc = cp_db_ok(res) ? 0 : -1;
    if (rc != 0)
        tg_log(TG_LOG_ERROR, "cp_catalog", "store_failed", "reason=\"%.200s\"",
               PQresultErrorMessage(res));
    *inserted = rc == 0 && PQntuples(res) == 1;
    PQclear(res);
    return rc;
}

static bool bump(PGconn *c)
{
    return exec_ok(c, CP_CONFIG_BUMP_SQL);
}

int cp_catalog_store_builtin(PGconn *c)
{
    if (!c)
        return -1;
    char msg[512];
    json_error_t jerr;
    json_t *doc =
        json_loadb(cp_catalog_builtin, cp_catalog_builtin_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || cp_catalog_check(doc, msg, sizeof(msg)) != 0) {
        /* the build's own file: its test keeps this from happening */
        tg_log(TG_LOG_ERROR, "cp_catalog", "builtin_invalid", "reason=\"%.300s\"",
               doc ? msg : jerr.text);
        json_decref(doc);
        return -1;
    }
    bool inserted = false;
    int rc = -1;
    if (!exec_ok(c, "BEGIN"))
        goto out;
    if (store(c, "builtin", cp_catalog_builtin, cp_catalog_builtin_len, doc, &inserted) != 0 ||
        (inserted && !bump(c)) || !exec_ok(c, "COMMIT")) {
        exec_ok(c, "ROLLBACK");
        goto out;
    }
    rc = 0;
    if (inserted)
        tg_log(TG_LOG_INFO, "cp_catalog", "builtin_stored", "version=%s models=%zu",
               json_string_value(json_object_get(doc, "version")),
               json_array_size(json_object_get(doc, "models")));
out:
    json_decref(doc);
    return rc;
}

/* ---- the command line ---- */

/* What changes between the effective catalog and doc, one line each, sorted. */
static const char DIFF_SQL[] =
    "WITH n AS (SELECT m->>'kind' AS kind, coalesce(m->>'vendor', '') AS vendor, m->>'model' AS "
    "model, (m#>>'{prices,input}')::numeric AS i, (m#>>'{prices,cached_input}')::numeric AS ci, "
    "(m#>>'{prices,output}')::numeric AS o, (m#>>'{prices,cache_write,5m}')::numeric AS w5, "
    "(m#>>'{prices,cache_write,1h}')::numeric AS w1, (m#>>'{prices,reasoning}')::numeric AS r "
    "FROM jsonb_array_elements($1::jsonb->'models') m), "
    "o AS (SELECT kind, vendor, model, input_per_mtok AS i, cached_input_per_mtok AS ci, "
    "output_per_mtok AS o, cache_write_per_mtok AS w5, cache_write_1h_per_mtok AS w1, "
    "reasoning_per_mtok AS r FROM catalog_models) "
    "SELECT CASE WHEN o.model IS NULL THEN 'added' WHEN n.model IS NULL THEN 'removed' ELSE "
    "'changed' END, coalesce(n.kind, o.kind), nullif(coalesce(n.vendor, o.vendor), ''), "
    "coalesce(n.model, o.model), CASE WHEN o.model IS NOT NULL AND n.model IS NOT NULL THEN "
    "concat_ws(', ', "
    "CASE WHEN n.i IS DISTINCT FROM o.i THEN 'input ' || coalesce(trim_scale(o.i)::text, '-') || "
    "' -> ' || coalesce(trim_scale(n.i)::text, '-') END, "
    "CASE WHEN n.ci IS DISTINCT FROM o.ci THEN 'cached_input ' || coalesce(trim_scale(o.ci)::text, "
    "'-') || ' -> ' || coalesce(trim_scale(n.ci)::text, '-') END, "
    "CASE WHEN n.o IS DISTINCT FROM o.o THEN 'output ' || coalesce(trim_scale(o.o)::text, '-') || "
    "' -> ' || coalesce(trim_scale(n.o)::text, '-') END, "
    "CASE WHEN n.w5 IS DISTINCT FROM o.w5 THEN 'cache_write.5m ' || "
    "coalesce(trim_scale(o.w5)::text, '-') || ' -> ' || coalesce(trim_scale(n.w5)::text, '-') END, "
    "CASE WHEN n.w1 IS DISTINCT FROM o.w1 THEN 'cache_write.1h ' || "
    "coalesce(trim_scale(o.w1)::text, '-') || ' -> ' || coalesce(trim_scale(n.w1)::text, '-') END, "
    "CASE WHEN n.r IS DISTINCT FROM o.r THEN 'reasoning ' || coalesce(trim_scale(o.r)::text, '-') "
    "|| ' -> ' || coalesce(trim_scale(n.r)::text, '-') END) END AS detail "
    "FROM n FULL JOIN o ON o.kind = n.kind AND o.vendor = n.vendor AND o.model = n.model "
    "WHERE o.model IS NULL OR n.model IS NULL OR (n.i, n.ci, n.o, n.w5, n.w1, n.r) IS DISTINCT "
    "FROM (o.i, o.ci, o.o, o.w5, o.w1, o.r) ORDER BY 2, 3, 4";

static int print_diff(PGconn *c, json_t *doc, int *nadd, int *nrem, int *nchg, json_t *summary)
{
    char *compact = json_dumps(doc, JSON_COMPACT);
    const char *p[1] = {compact};
    PGresult *res = compact ? cp_db_exec(c, DIFF_SQL, 1, p) : NULL;
    free(compact);
    if (!cp_db_ok(res)) {
        fprintf(stderr, "tollgate-control: could not compare catalogs: %s",
                res ? PQresultErrorMessage(res) : "out of memory\n");
        PQclear(res);
        return -1;
    }
    *nadd = *nrem = *nchg = 0;
    json_t *changed = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *what = PQgetvalue(res, i, 0);
        const char *vendor = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        printf("%-7s %s%s%s %s%s%s\n", what, PQgetvalue(res, i, 1), vendor ? "/" : "",
               vendor ? vendor : "", PQgetvalue(res, i, 3), what[0] == 'c' ? ": " : "",
               what[0] == 'c' ? PQgetvalue(res, i, 4) : "");
        if (what[0] == 'a')
            (*nadd)++;
        else if (what[0] == 'r')
            (*nrem)++;
        else
            (*nchg)++;
        if (i < 1000)
            json_array_append_new(changed,
                                  json_pack("{s:s,s:s,s:s?,s:s,s:s?}", "change", what, "kind",
                                            PQgetvalue(res, i, 1), "vendor", vendor, "model",
                                            PQgetvalue(res, i, 3), "detail",
                                            what[0] == 'c' ? PQgetvalue(res, i, 4) : NULL));
    }
    PQclear(res);
    printf("%d added, %d removed, %d with price changes\n", *nadd, *nrem, *nchg);
    json_object_set_new(summary, "added", json_integer(*nadd));
    json_object_set_new(summary, "removed", json_integer(*nrem));
    json_object_set_new(summary, "price_changes", json_integer(*nchg));
    json_object_set_new(summary, "changes", changed);
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(CATALOG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CATALOG_MAX_BYTES + 1, f) : 0;
    bool bad = !buf || ferror(f) || n > CATALOG_MAX_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int cp_catalog_cli(const char *verb, const char *file)
{
    bool import = strcmp(verb, "import") == 0;
    size_t len = 0;
    char msg[512];
    char *text = read_file(file, &len);
    if (!text) {
        fprintf(stderr, "tollgate-control: could not read \"%s\" (or it is over 16 MiB)\n", file);
        return 1;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int status = 1;
    json_t *summary = NULL;
    PGconn *c = NULL;
    if (!doc) {
        fprintf(stderr, "tollgate-control: %s is not JSON: %s (line %d)\n", file, jerr.text,
                jerr.line);
        goto out;
    }
    if (cp_catalog_check(doc, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "tollgate-control: %s is not a valid catalog: %s\n", file, msg);
        goto out;
    }
    c = cp_db();
    if (!c) {
        fprintf(stderr, "tollgate-control: could not connect to the database\n");
        goto out;
    }
    /* the built-in catalog is what the diff compares with until one is imported */
    if (cp_catalog_store_builtin(c) != 0) {
        fprintf(stderr, "tollgate-control: could not store the built-in catalog\n");
        goto out;
    }
    summary = json_pack("{s:s,s:s}", "version", json_string_value(json_object_get(doc, "version")),
                        "generated_on", json_string_value(json_object_get(doc, "generated_on")));
    int nadd, nrem, nchg;
    if (!exec_ok(c, "BEGIN") || print_diff(c, doc, &nadd, &nrem, &nchg, summary) != 0)
        goto rollback;
    if (!import) {
        exec_ok(c, "ROLLBACK");
        status = 0;
        goto out;
    }
    bool inserted = false;
    if (store(c, "import", text, len, doc, &inserted) != 0)
        goto rollback;
    if (!inserted) {
        printf("this catalog was imported before; nothing stored\n");
        exec_ok(c, "ROLLBACK");
        status = 0;
        goto out;
    }
    cp_req_t r;
    memset(&r, 0, sizeof(r));
    r.db = c;
    r.out = (tg_buf_t)TG_BUF_INIT(1u << 16);
    snprintf(r.who.label, sizeof(r.who.label), "system:tollgate-control catalog import");
    char target[80];
    snprintf(target, sizeof(target), "%.64s", json_string_value(json_object_get(doc, "version")));
    /* as an admin change commits: audit row, config bump, commit, and a checkpoint the audit
     * row completed goes to the log once it is stored */
    cp_change_t chg = {NULL, "catalog.import", "catalog", target, false};
    int crc = cp_change_commit(&r, &chg, NULL, summary);
    tg_buf_dispose(&r.out);
    if (crc != 0) {
        /* rolled back; the log line above says why (PQerrorMessage is the rollback's now) */
        fprintf(stderr, "tollgate-control: could not store the catalog; nothing was stored\n");
        goto out;
    }
    PGresult *res = cp_db_exec(c, "SELECT origin, version FROM catalog_effective", 0, NULL);
    if (cp_db_ok(res) && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "import") != 0)
        printf("stored; the built-in catalog %s is newer and stays in effect\n",
               PQgetvalue(res, 0, 1));
    else
        printf("stored; catalog %s is in effect\n",
               json_string_value(json_object_get(doc, "version")));
    PQclear(res);
    status = 0;
    goto out;
rollback:
    exec_ok(c, "ROLLBACK");
out:
    json_decref(summary);
    json_decref(doc);
    free(text);
    return status;
}

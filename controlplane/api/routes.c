/* routes.c: /api/v1/routes, model aliases and the provider targets they send to (in fallback
 * order, with weights, retry and timeout policy). Platform-wide config (tenant_id NULL): any
 * signed-in user reads routes (tenants pick models from them), only platform admins change them.
 * Runs on MHD worker threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

#define TARGETS_MAX 64
#define ON_STATUS_MAX 32 /* the data plane's TG_RETRY_STATUS_MAX */
#define TIMEOUT_MAX 3600000
#define CACHE_TTL_MAX 2678400 /* 31 days */
#define MODEL_MAX 256

#define ROUTE_JSON                                                                                 \
    "json_build_object('id', ro.id, 'alias', ro.alias, 'strategy', ro.strategy, 'targets', "       \
    "coalesce((SELECT json_agg(json_strip_nulls(json_build_object('provider_id', t.provider_id, "  \
    "'provider', p.name, 'model', t.model, 'weight', t.weight, 'info', t.info, 'unpriced', "       \
    "(SELECT x.price_source = 'none' FROM route_target_prices x WHERE x.route_id = t.route_id "    \
    "AND x.position = t.position))) ORDER BY t.position) FROM route_targets t "                    \
    "JOIN providers p ON p.id = t.provider_id WHERE t.route_id = ro.id), '[]'::json), 'retry', "   \
    "ro.retry, 'connect_timeout_ms', ro.connect_timeout_ms, 'timeout_ms', ro.timeout_ms, "         \
    "'first_byte_timeout_ms', ro.first_byte_timeout_ms, 'idle_timeout_ms', ro.idle_timeout_ms, "   \
    "'cache_ttl_s', ro.cache_ttl_s, 'allow_unpriced', ro.allow_unpriced, 'created_at', "           \
    "ro.created_at, 'updated_at', ro.updated_at)"

static const char *const strategies[] = {"weighted", "least_busy", "lowest_latency", "cheapest",
                                         NULL};

#define ROUTE_BY_ID "SELECT " ROUTE_JSON " FROM routes ro WHERE ro.id = $1 AND ro.tenant_id IS NULL"

/* ---- validation of nested members (the field in an error names the whole path) ---- */

static int nested_int(cp_req_t *r, json_t *o, const char *key, const char *path, int64_t min,
                      int64_t max, bool *present, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    *present = false;
    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        cp_reply_error(r, 400, "invalid_type", path, "\"%s\" must be an integer", path);
        return -1;
    }
    int64_t i = json_integer_value(v);
    if (i < min || i > max) {
        cp_reply_error(r, 422, "out_of_range", path, "\"%s\" must be from %lld to %lld", path,
                       (long long)min, (long long)max);
        return -1;
    }
    *present = true;
    *out = i;
    return 0;
}

static int nested_unknown(cp_req_t *r, json_t *o, const char *const *allowed, const char *prefix)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok = ok || strcmp(*a, k) == 0;
        if (!ok) {
            char path[128];
            snprintf(path, sizeof(path), "%s.%.64s", prefix, k);
            cp_reply_error(r, 400, "unknown_field", path, "unknown field \"%s\"", path);
            return -1;
        }
    }
    return 0;
}

/* A target's "info": an admin's override of the catalog's model info, member by member
 * (docs/routing.md). Returns it normalized (NULL when absent or null) in *out; -1 after replying.
 */
static int check_info(cp_req_t *r, json_t *t, const char *prefix, json_t **out)
{
    static const char *const fields[] = {"context_window", "max_output_tokens", "capabilities",
                                         NULL};
    static const char *const caps[] = {"tools",     "parallel_tool_calls", "vision", "json_schema",
                                       "reasoning", "streaming_usage",     NULL};
    char path[96];
    json_t *v = json_object_get(t, "info");
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    snprintf(path, sizeof(path), "%s.info", prefix);
    if (!json_is_object(v)) {
        cp_reply_error(r, 400, "invalid_type", path, "\"%s\" must be an object", path);
        return -1;
    }
    if (nested_unknown(r, v, fields, path) != 0)
        return -1;
    json_t *o = json_object();
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "max_output_tokens" : "context_window";
        char ipath[128];
        bool present;
        int64_t x;
        snprintf(ipath, sizeof(ipath), "%s.%s", path, name);
        if (nested_int(r, v, name, ipath, 1, 1000000000, &present, &x) != 0)
            goto fail;
        if (present)
            json_object_set_new(o, name, json_integer((json_int_t)x));
    }
    json_t *c = json_object_get(v, "capabilities");
    if (c && !json_is_null(c)) {
        char cpath[128];
        snprintf(cpath, sizeof(cpath), "%s.capabilities", path);
        if (!json_is_object(c)) {
            cp_reply_error(r, 400, "invalid_type", cpath, "\"%s\" must be an object", cpath);
            goto fail;
        }
        if (nested_unknown(r, c, caps, cpath) != 0)
            goto fail;
        const char *k;
        json_t *b;
        json_object_foreach(c, k, b)
        {
            if (!json_is_boolean(b)) {
                cp_reply_error(r, 400, "invalid_type", cpath, "\"%s.%s\" must be true or false",
                               cpath, k);
                goto fail;
            }
        }
        json_object_set(o, "capabilities", c);
    }
    *out = o;
    return 0;
fail:
    json_decref(o);
    return -1;
}

/* Checks "targets" and returns them normalized ([{provider_id, model, weight, info}]), or NULL
 * after replying. */
static json_t *check_targets(cp_req_t *r, json_t *v)
{
    static const char *const fields[] = {"provider_id", "model", "weight", "info", NULL};
    if (!json_is_array(v)) {
        cp_reply_error(r, 400, "invalid_type", "targets", "\"targets\" must be an array");
        return NULL;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > TARGETS_MAX) {
        cp_reply_error(r, 422, "invalid_length", "targets", "\"targets\" must hold 1 to %d targets",
                       TARGETS_MAX);
        return NULL;
    }
    json_t *out = json_array();
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        char prefix[32], path[64];
        snprintf(prefix, sizeof(prefix), "targets[%zu]", i);
        if (!json_is_object(t)) {
            cp_reply_error(r, 400, "invalid_type", prefix, "\"%s\" must be an object", prefix);
            goto fail;
        }
        if (nested_unknown(r, t, fields, prefix) != 0)
            goto fail;
        json_t *pid = json_object_get(t, "provider_id");
        snprintf(path, sizeof(path), "%s.provider_id", prefix);
        if (!pid) {
            cp_reply_error(r, 400, "missing_field", path, "\"%s\" is required", path);
            goto fail;
        }
        if (!json_is_string(pid)) {
            cp_reply_error(r, 400, "invalid_type", path, "\"%s\" must be a string", path);
            goto fail;
        }
        if (!cp_is_uuid(json_string_value(pid))) {
            cp_reply_error(r, 422, "invalid_value", path, "\"%s\" must be a provider id (a UUID)",
                           path);
            goto fail;
        }
        json_t *model = json_object_get(t, "model");
        snprintf(path, sizeof(path), "%s.model", prefix);
        if (!model) {
            cp_reply_error(r, 400, "missing_field", path, "\"%s\" is required", path);
            goto fail;
        }
        if (!json_is_string(model)) {
            cp_reply_error(r, 400, "invalid_type", path, "\"%s\" must be a string", path);
            goto fail;
        }
        const char *m = json_string_value(model);
        size_t mn = json_string_length(model);
        if (mn < 1 || mn > MODEL_MAX) {
            cp_reply_error(r, 422, "invalid_length", path, "\"%s\" must be 1 to %d bytes long",
                           path, MODEL_MAX);
            goto fail;
        }
        for (size_t j = 0; j < mn; j++) {
            unsigned char c = (unsigned char)m[j];
            if (c < 0x20 || c == 0x7f) {
                cp_reply_error(r, 422, "invalid_characters", path,
                               "\"%s\" must not contain control characters", path);
                goto fail;
            }
        }
        bool present;
        int64_t weight = 1;
        snprintf(path, sizeof(path), "%s.weight", prefix);
        if (nested_int(r, t, "weight", path, 0, 1000000, &present, &weight) != 0)
            goto fail;
        total += weight;
        json_t *info;
        if (check_info(r, t, prefix, &info) != 0)
            goto fail;
        json_array_append_new(out, json_pack("{s:O,s:O,s:I,s:o*}", "provider_id", pid, "model",
                                             model, "weight", (json_int_t)weight, "info", info));
    }
    if (total <= 0) {
        cp_reply_error(r, 422, "invalid_value", "targets",
                       "the weights of \"targets\" must add up to more than 0");
        goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static int cmp_int(const void *a, const void *b)
{
    json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;
    return (x > y) - (x < y);
}

/* Checks "retry" and returns it normalized (on_status sorted, without repeats). */
static json_t *check_retry(cp_req_t *r, json_t *v)
{
    static const char *const fields[] = {"max_attempts", "on_status", "backoff_ms", NULL};
    if (!json_is_object(v)) {
        cp_reply_error(r, 400, "invalid_type", "retry", "\"retry\" must be an object");
        return NULL;
    }
    if (nested_unknown(r, v, fields, "retry") != 0)
        return NULL;
    bool present;
    int64_t i;
    json_t *out = json_object();
    if (nested_int(r, v, "max_attempts", "retry.max_attempts", 1, 10, &present, &i) != 0)
        goto fail;
    if (present)
        json_object_set_new(out, "max_attempts", json_integer(i));
    if (nested_int(r, v, "backoff_ms", "retry.backoff_ms", 0, 60000, &present, &i) != 0)
        goto fail;
    if (present)
        json_object_set_new(out, "backoff_ms", json_integer(i));
    json_t *st = json_object_get(v, "on_status");
    if (st) {
        if (!json_is_array(st)) {
            cp_reply_error(r, 400, "invalid_type", "retry.on_status",
                           "\"retry.on_status\" must be an array of HTTP status codes");
            goto fail;
        }
        size_t n = json_array_size(st);
        if (n > ON_STATUS_MAX) {
            cp_reply_error(r, 422, "invalid_length", "retry.on_status",
                           "\"retry.on_status\" holds at most %d codes", ON_STATUS_MAX);
            goto fail;
        }
        json_int_t codes[ON_STATUS_MAX];
        for (size_t k = 0; k < n; k++) {
            json_t *c = json_array_get(st, k);
            if (!json_is_integer(c)) {
                cp_reply_error(r, 400, "invalid_type", "retry.on_status",
                               "\"retry.on_status\" must hold integers");
                goto fail;
            }
            codes[k] = json_integer_value(c);
            if (codes[k] < 400 || codes[k] > 599) {
                cp_reply_error(r, 422, "out_of_range", "retry.on_status",
                               "\"retry.on_status\" codes must be from 400 to 599");
                goto fail;
            }
        }
        qsort(codes, n, sizeof(codes[0]), cmp_int);
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++)
            if (k == 0 || codes[k] != codes[k - 1])
                json_array_append_new(arr, json_integer(codes[k]));
        json_object_set_new(out, "on_status", arr);
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* What a create or update asked for, validated; absent members are NULL. */
typedef struct route_in {
    const char *alias, *strategy;
    json_t *targets; /* owned */
    json_t *retry;   /* owned */
    bool have_connect, have_timeout, have_first_byte, have_idle, have_ttl;
    bool have_allow_unpriced, allow_unpriced;
    int64_t connect_ms, timeout_ms, first_byte_ms, idle_ms, cache_ttl_s;
} route_in_t;

static void route_in_dispose(route_in_t *in)
{
    json_decref(in->targets);
    json_decref(in->retry);
}

static int route_in_parse(cp_req_t *r, json_t *o, bool partial, route_in_t *in)
{
    memset(in, 0, sizeof(*in));
    if (partial) {
        if (json_object_size(o) == 0) {
            cp_reply_error(r, 400, "missing_field", NULL, "send at least one field to change");
            return -1;
        }
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            if (json_is_null(v)) {
                cp_reply_error(r, 400, "invalid_type", k, "\"%s\" cannot be null", k);
                return -1;
            }
        }
    }
    if (cp_body_str(r, o, "alias", !partial, 256, &in->alias) != 0 ||
        cp_body_enum(r, o, "strategy", false, strategies, &in->strategy) != 0 ||
        cp_body_int(r, o, "connect_timeout_ms", false, 1, TIMEOUT_MAX, &in->have_connect,
                    &in->connect_ms) != 0 ||
        cp_body_int(r, o, "timeout_ms", false, 1, TIMEOUT_MAX, &in->have_timeout,
                    &in->timeout_ms) != 0)
        return -1;
    /* 0 = none (cache off) */
    if (cp_body_int(r, o, "first_byte_timeout_ms", false, 0, TIMEOUT_MAX, &in->have_first_byte,
                    &in->first_byte_ms) != 0 ||
        cp_body_int(r, o, "idle_timeout_ms", false, 0, TIMEOUT_MAX, &in->have_idle, &in->idle_ms) !=
            0 ||
        cp_body_int(r, o, "cache_ttl_s", false, 0, CACHE_TTL_MAX, &in->have_ttl,
                    &in->cache_ttl_s) != 0 ||
        cp_body_bool(r, o, "allow_unpriced", &in->have_allow_unpriced, &in->allow_unpriced) != 0)
        return -1;
    json_t *t = json_object_get(o, "targets");
    if (!t && !partial) {
        cp_reply_error(r, 400, "missing_field", "targets", "\"targets\" is required");
        return -1;
    }
    if (t && !(in->targets = check_targets(r, t)))
        return -1;
    json_t *rt = json_object_get(o, "retry");
    if (rt && !json_is_null(rt) && !(in->retry = check_retry(r, rt)))
        return -1;
    return 0;
}

/* One attempt's timeouts nest inside its whole: connect, first byte and idle (0 = none) cannot
 * exceed timeout_ms. Replies 422 naming the first that does. */
static int check_timeouts(cp_req_t *r, int64_t connect_ms, int64_t timeout_ms,
                          int64_t first_byte_ms, int64_t idle_ms)
{
    const char *field = NULL;
    if (connect_ms > timeout_ms)
        field = "connect_timeout_ms";
    else if (first_byte_ms > timeout_ms)
        field = "first_byte_timeout_ms";
    else if (idle_ms > timeout_ms)
        field = "idle_timeout_ms";
    if (!field)
        return 0;
    cp_reply_error(r, 422, "invalid_value", field, "\"%s\" must not exceed \"timeout_ms\"", field);
    return -1;
}

/* Replies 422 naming the first target whose provider does not exist. */
static int check_providers_exist(cp_req_t *r, const char *targets)
{
    const char *p[1] = {targets};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT e.i - 1 FROM json_array_elements($1::json) WITH ORDINALITY e(v, i) WHERE NOT "
        "EXISTS (SELECT 1 FROM providers p WHERE p.id = (e.v->>'provider_id')::uuid AND "
        "p.tenant_id IS NULL) ORDER BY e.i LIMIT 1",
        1, p);
    int rc = 0;
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        rc = -1;
    } else if (PQntuples(res) > 0) {
        char path[64];
        snprintf(path, sizeof(path), "targets[%.8s].provider_id", PQgetvalue(res, 0, 0));
        cp_reply_error(r, 422, "invalid_value", path, "\"%s\" names no provider", path);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* A provider deleted since check_providers_exist makes this fail: 422. */
static int insert_targets(cp_req_t *r, const char *id, const char *targets)
{
    const char *p[2] = {id, targets};
    return cp_exec_ok(r,
                      "INSERT INTO route_targets (route_id, position, provider_id, model, weight, "
                      "info) SELECT $1, (e.i - 1)::int, (e.v->>'provider_id')::uuid, "
                      "e.v->>'model', (e.v->>'weight')::int, (e.v->'info')::jsonb FROM "
                      "json_array_elements($2::json) WITH ORDINALITY e(v, i)",
                      2, p);
}

static void conflict_alias(cp_req_t *r, const char *alias)
{
    cp_reply_error(r, 409, "conflict", "alias", "a route with alias \"%.200s\" exists",
                   alias ? alias : "");
}

/* ---- handlers ---- */

static bool alias_ok(const char *a)
{
    return strlen(a) <= MODEL_MAX;
}

void cp_api_routes_list(cp_req_t *r)
{
    cp_list_t l;
    const char *alias;
    if (cp_list_params(r, true, &l) != 0 ||
        cp_list_filter(r, "alias", alias_ok, "is at most 256 bytes", &alias) != 0)
        return;
    const char *p[3] = {l.cursor, alias, l.fetch};
    cp_list_reply(r, &l,
                  "SELECT " ROUTE_JSON " FROM routes ro WHERE ro.tenant_id IS NULL AND ($1::uuid "
                  "IS NULL OR ro.id > $1::uuid) AND ($2::text IS NULL OR ro.alias = $2) ORDER BY "
                  "ro.id LIMIT $3::int",
                  3, p, "id");
}

/* The members a route's body may have, when created and when changed. */
static const char *const route_fields[] = {"alias",
                                           "strategy",
                                           "targets",
                                           "retry",
                                           "connect_timeout_ms",
                                           "timeout_ms",
                                           "first_byte_timeout_ms",
                                           "idle_timeout_ms",
                                           "cache_ttl_s",
                                           "allow_unpriced",
                                           NULL};

void cp_api_routes_create(cp_req_t *r)
{
    if (!cp_require_platform(r, "change routes"))
        return;
    json_t *o = cp_body_object(r, route_fields);
    if (!o)
        return;
    route_in_t in;
    char *targets = NULL, *retry = NULL;
    json_t *after = NULL;
    if (route_in_parse(r, o, false, &in) != 0)
        goto out;
    int64_t connect_ms = in.have_connect ? in.connect_ms : 10000;
    int64_t timeout_ms = in.have_timeout ? in.timeout_ms : 600000;
    if (check_timeouts(r, connect_ms, timeout_ms, in.first_byte_ms, in.idle_ms) != 0)
        goto out;
    char cbuf[24], tbuf[24], fbuf[24], ibuf[24], cache[24];
    snprintf(cbuf, sizeof(cbuf), "%lld", (long long)connect_ms);
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)timeout_ms);
    snprintf(fbuf, sizeof(fbuf), "%lld", (long long)in.first_byte_ms);
    snprintf(ibuf, sizeof(ibuf), "%lld", (long long)in.idle_ms);
    snprintf(cache, sizeof(cache), "%lld", (long long)in.cache_ttl_s);
    targets = json_dumps(in.targets, JSON_COMPACT);
    retry = in.retry ? json_dumps(in.retry, JSON_COMPACT) : NULL;
    if (!targets || (in.retry && !retry)) {
        cp_reply_error(r, 500, "internal", NULL, "out of memory");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    if (check_providers_exist(r, targets) != 0)
        goto rollback;
    const char *p[9] = {
        in.alias, in.strategy, retry, cbuf, tbuf, fbuf, ibuf, cache, in.allow_unpriced ? "t" : "f"};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO routes (alias, strategy, retry, connect_timeout_ms, "
                               "timeout_ms, first_byte_timeout_ms, idle_timeout_ms, cache_ttl_s, "
                               "allow_unpriced) VALUES ($1, coalesce($2, 'weighted'), "
                               "coalesce($3::jsonb, '{}'), $4::int, $5::int, $6::int, $7::int, "
                               "$8::int, $9::boolean) RETURNING id",
                               9, p);
    if (!cp_db_ok(res)) {
        if (cp_db_sqlstate_is(res, "23505"))
            conflict_alias(r, in.alias);
        else
            cp_reply_db_error(r, res);
        PQclear(res);
        goto rollback;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *k[1] = {id};
    if (insert_targets(r, id, targets) != 0 || !(after = cp_change_row(r, ROUTE_BY_ID, 1, k, 0)))
        goto rollback;
    cp_change_t c = {NULL, "route.create", "route", id, false};
    cp_change_reply(r, &c, 201, NULL, after);
    after = NULL;
    goto out;
rollback:
    cp_db_rollback(r);
out:
    json_decref(after);
    free(targets);
    free(retry);
    route_in_dispose(&in);
    json_decref(o);
}

void cp_api_routes_get(cp_req_t *r)
{
    if (cp_path_id(r, 0, "route") != 0)
        return;
    const char *p[1] = {r->params[0]};
    cp_reply_object(r, ROUTE_BY_ID, 1, p, "route");
}

void cp_api_routes_update(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_require_platform(r, "change routes") || cp_path_id(r, 0, "route") != 0)
        return;
    json_t *o = cp_body_object(r, route_fields);
    if (!o)
        return;
    route_in_t in;
    char *targets = NULL, *retry = NULL;
    json_t *before = NULL, *after = NULL;
    if (route_in_parse(r, o, true, &in) != 0)
        goto out;
    char cbuf[24], tbuf[24], fbuf[24], ibuf[24], cache[24];
    snprintf(cbuf, sizeof(cbuf), "%lld", (long long)in.connect_ms);
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)in.timeout_ms);
    snprintf(fbuf, sizeof(fbuf), "%lld", (long long)in.first_byte_ms);
    snprintf(ibuf, sizeof(ibuf), "%lld", (long long)in.idle_ms);
    snprintf(cache, sizeof(cache), "%lld", (long long)in.cache_ttl_s);
    targets = in.targets ? json_dumps(in.targets, JSON_COMPACT) : NULL;
    retry = in.retry ? json_dumps(in.retry, JSON_COMPACT) : NULL;
    if ((in.targets && !targets) || (in.retry && !retry)) {
        cp_reply_error(r, 500, "internal", NULL, "out of memory");
        goto out;
    }
    const char *k[1] = {id};
    if (!(before = cp_change_lock_json(r, ROUTE_BY_ID " FOR UPDATE", 1, k, "route")))
        goto out;
    if (targets && check_providers_exist(r, targets) != 0)
        goto rollback;
    const char *p[10] = {id,
                         in.alias,
                         in.strategy,
                         retry,
                         in.have_connect ? cbuf : NULL,
                         in.have_timeout ? tbuf : NULL,
                         in.have_first_byte ? fbuf : NULL,
                         in.have_idle ? ibuf : NULL,
                         in.have_ttl ? cache : NULL,
                         in.have_allow_unpriced ? (in.allow_unpriced ? "t" : "f") : NULL};
    PGresult *res = cp_db_exec(
        r->db,
        "UPDATE routes SET alias = coalesce($2, alias), strategy = coalesce($3, strategy), retry = "
        "coalesce($4::jsonb, retry), connect_timeout_ms = coalesce($5::int, connect_timeout_ms), "
        "timeout_ms = coalesce($6::int, timeout_ms), first_byte_timeout_ms = coalesce($7::int, "
        "first_byte_timeout_ms), idle_timeout_ms = coalesce($8::int, idle_timeout_ms), "
        "cache_ttl_s = coalesce($9::int, cache_ttl_s), allow_unpriced = coalesce($10::boolean, "
        "allow_unpriced), updated_at = now() WHERE id = $1 "
        "RETURNING connect_timeout_ms, timeout_ms, first_byte_timeout_ms, idle_timeout_ms",
        10, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        if (cp_db_sqlstate_is(res, "23505"))
            conflict_alias(r, in.alias);
        else
            cp_reply_db_error(r, res);
        PQclear(res);
        goto rollback;
    }
    /* checked on the row as it now is: a patch of one timeout meets the others as stored */
    int64_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
    PQclear(res);
    if (check_timeouts(r, t[0], t[1], t[2], t[3]) != 0)
        goto rollback;
    if (targets) {
        /* replaced wholesale, in this transaction: a data plane never sees half a list */
        if (cp_exec_ok(r, "DELETE FROM route_targets WHERE route_id = $1", 1, k) != 0 ||
            insert_targets(r, id, targets) != 0)
            goto rollback;
    }
    if (!(after = cp_change_row(r, ROUTE_BY_ID, 1, k, 0)))
        goto rollback;
    cp_change_t c = {NULL, "route.update", "route", id, false};
    cp_change_reply(r, &c, 200, before, after);
    after = NULL;
    goto out;
rollback:
    cp_db_rollback(r);
out:
    json_decref(before);
    json_decref(after);
    free(targets);
    free(retry);
    route_in_dispose(&in);
    json_decref(o);
}

void cp_api_routes_delete(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_require_platform(r, "change routes") || cp_path_id(r, 0, "route") != 0)
        return;
    const char *p[1] = {id};
    json_t *before = cp_change_lock_json(r, ROUTE_BY_ID " FOR UPDATE", 1, p, "route");
    if (!before)
        return;
    cp_change_t c = {NULL, "route.delete", "route", id, false};
    cp_change_delete(r, &c, "DELETE FROM routes WHERE id = $1", 1, p, before);
    json_decref(before);
}

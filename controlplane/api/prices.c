/* prices.c: /api/v1/prices, what a provider charges per million tokens of a model (the data plane
 * prices usage with it). Platform-wide config: any signed-in user reads prices, only platform
 * admins put or delete them. Amounts travel as decimal text between here and Postgres (numeric),
 * never through a double on the way out, so 0.15 reads back as 0.15. Runs on MHD worker threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

#define MODEL_MAX 256
#define PRICE_MAX 1e6

/* As the API shows a price: amounts are JSON numbers. */
#define PRICE_JSON                                                                                 \
    "json_build_object('provider_id', pr.provider_id, 'provider', p.name, 'model', pr.model, "     \
    "'input_per_mtok', trim_scale(pr.input_per_mtok), 'cached_input_per_mtok', "                   \
    "trim_scale(pr.cached_input_per_mtok), 'output_per_mtok', trim_scale(pr.output_per_mtok), "    \
    "'updated_at', pr.updated_at)"

/* As the audit log keeps it: amounts are decimal strings, because the audit row is written
 * through jansson, whose doubles would turn 0.15 into 0.14999999999999999. */
#define PRICE_AUDIT_JSON                                                                           \
    "json_build_object('provider_id', pr.provider_id, 'provider', p.name, 'model', pr.model, "     \
    "'input_per_mtok', trim_scale(pr.input_per_mtok)::text, 'cached_input_per_mtok', "             \
    "trim_scale(pr.cached_input_per_mtok)::text, 'output_per_mtok', "                              \
    "trim_scale(pr.output_per_mtok)::text)"

static bool model_ok(const char *m)
{
    size_t n = strlen(m);
    if (n < 1 || n > MODEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Reads an amount (a JSON number, 0 to 1e6) as decimal text for Postgres. */
static int price_field(cp_req_t *r, json_t *o, const char *name, bool required, char out[40],
                       bool *present)
{
    json_t *v = json_object_get(o, name);
    *present = false;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        cp_reply_error(r, 400, "missing_field", name, "\"%s\" is required", name);
        return -1;
    }
    if (!json_is_number(v)) {
        cp_reply_error(r, 400, "invalid_type", name, "\"%s\" must be a number", name);
        return -1;
    }
    double d = json_number_value(v);
    if (!(d >= 0 && d <= PRICE_MAX)) {
        cp_reply_error(r, 422, "out_of_range", name,
                       "\"%s\" must be from 0 to 1000000 (USD per million tokens)", name);
        return -1;
    }
    if (json_is_integer(v)) {
        snprintf(out, 40, "%lld", (long long)json_integer_value(v));
    } else {
        /* the shortest spelling that reads back as the same double: 0.15, not 0.1499...; Postgres
         * then rounds to numeric(20, 9) */
        snprintf(out, 40, "%.15g", d);
        if (strtod(out, NULL) != d)
            snprintf(out, 40, "%.17g", d);
    }
    *present = true;
    return 0;
}

/* ---- handlers ---- */

void cp_api_prices_list(cp_req_t *r)
{
    int limit;
    const char *cursor;
    if (cp_page_params(r, &limit, &cursor) != 0)
        return;
    const char *provider = cp_query(r, "provider_id");
    const char *model = cp_query(r, "model");
    if (provider && !cp_is_uuid(provider)) {
        cp_reply_error(r, 400, "invalid_query", "provider_id", "provider_id must be a UUID");
        return;
    }
    if (model && !model_ok(model)) {
        cp_reply_error(r, 400, "invalid_query", "model",
                       "model must be 1 to %d bytes without control characters", MODEL_MAX);
        return;
    }
    /* the cursor is "<provider_id>:<md5 of the model>", the sort key of the last row (a model
     * name can be longer than a cursor may be) */
    char cur_provider[37] = "", cur_model[33] = "";
    if (cursor) {
        bool ok = strlen(cursor) == 69 && cursor[36] == ':';
        if (ok) {
            memcpy(cur_provider, cursor, 36);
            memcpy(cur_model, cursor + 37, 32);
            ok = cp_is_uuid(cur_provider);
            for (int i = 0; ok && i < 32; i++)
                ok = (cur_model[i] >= '0' && cur_model[i] <= '9') ||
                     (cur_model[i] >= 'a' && cur_model[i] <= 'f');
        }
        if (!ok) {
            cp_reply_error(r, 400, "invalid_query", "cursor", "cursor is not valid");
            return;
        }
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *p[5] = {provider, model, cursor ? cur_provider : NULL, cursor ? cur_model : NULL,
                        lim};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT " PRICE_JSON "::text, pr.provider_id::text || ':' || md5(pr.model) FROM prices pr "
        "JOIN providers p ON p.id = pr.provider_id AND p.tenant_id IS NULL WHERE ($1::uuid IS "
        "NULL OR pr.provider_id = $1::uuid) AND ($2::text IS NULL OR pr.model = $2) AND "
        "($3::uuid IS NULL OR (pr.provider_id, md5(pr.model)) > ($3::uuid, $4::text)) ORDER BY "
        "pr.provider_id, md5(pr.model) LIMIT $5::int",
        5, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    tg_buf_t b = TG_BUF_INIT(32u << 20);
    int n = PQntuples(res);
    int rc = tg_buf_append(&b, "{\"data\":[", 9);
    for (int i = 0; rc == 0 && i < n && i < limit; i++) {
        if (i > 0)
            rc = tg_buf_append(&b, ",", 1);
        if (rc == 0)
            rc = tg_buf_append(&b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    }
    if (rc == 0 && n > limit)
        rc = tg_buf_appendf(&b, "],\"next_cursor\":\"%s\"}", PQgetvalue(res, limit - 1, 1));
    else if (rc == 0)
        rc = tg_buf_appendf(&b, "],\"next_cursor\":null}");
    PQclear(res);
    if (rc != 0)
        cp_reply_error(r, 500, "internal", NULL, "could not build the response");
    else
        cp_reply_json_text(r, 200, b.base, b.len);
    tg_buf_dispose(&b);
}

void cp_api_prices_put(cp_req_t *r)
{
    static const char *const fields[] = {
        "provider_id", "model", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", NULL};
    if (!cp_require_platform(r, "change prices"))
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    const char *provider, *model;
    char in[40], outp[40], cached[40];
    bool have_in, have_out, have_cached;
    json_t *before = NULL, *after = NULL;
    PGresult *res = NULL;
    if (cp_body_str(r, o, "provider_id", true, 36, &provider) != 0 ||
        cp_body_str(r, o, "model", true, MODEL_MAX, &model) != 0)
        goto out;
    if (!cp_is_uuid(provider)) {
        cp_reply_error(r, 422, "invalid_value", "provider_id",
                       "\"provider_id\" must be a provider id (a UUID)");
        goto out;
    }
    if (!model_ok(model)) {
        cp_reply_error(r, 422, "invalid_characters", "model",
                       "\"model\" must not contain control characters");
        goto out;
    }
    if (price_field(r, o, "input_per_mtok", true, in, &have_in) != 0 ||
        price_field(r, o, "output_per_mtok", true, outp, &have_out) != 0 ||
        price_field(r, o, "cached_input_per_mtok", false, cached, &have_cached) != 0)
        goto out;
    if (cp_db_begin(r) != 0)
        goto out;
    const char *k[2] = {provider, model};
    /* KEY SHARE: the provider cannot be deleted under this price */
    res = cp_db_exec(
        r->db, "SELECT 1 FROM providers WHERE id = $1 AND tenant_id IS NULL FOR KEY SHARE", 1, k);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        goto rollback;
    }
    if (PQntuples(res) != 1) {
        cp_reply_error(r, 422, "invalid_value", "provider_id", "\"provider_id\" names no provider");
        goto rollback;
    }
    PQclear(res);
    res = cp_db_exec(r->db,
                     "SELECT " PRICE_AUDIT_JSON " FROM prices pr JOIN providers p ON p.id = "
                     "pr.provider_id WHERE pr.provider_id = $1 AND pr.model = $2 FOR UPDATE OF pr",
                     2, k);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        goto rollback;
    }
    before = cp_db_json_row(res, 0, 0);
    PQclear(res);
    const char *p[5] = {provider, model, in, outp, have_cached ? cached : NULL};
    res = cp_db_exec(
        r->db,
        "WITH pr AS (INSERT INTO prices AS x (provider_id, model, input_per_mtok, output_per_mtok, "
        "cached_input_per_mtok) VALUES ($1, $2, $3::numeric, $4::numeric, $5::numeric) ON "
        "CONFLICT (provider_id, model) DO UPDATE SET input_per_mtok = EXCLUDED.input_per_mtok, "
        "output_per_mtok = EXCLUDED.output_per_mtok, cached_input_per_mtok = "
        "EXCLUDED.cached_input_per_mtok, updated_at = now() RETURNING *) "
        "SELECT " PRICE_JSON "::text, " PRICE_AUDIT_JSON " FROM pr JOIN providers p ON p.id = "
        "pr.provider_id",
        5, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        goto rollback;
    }
    after = cp_db_json_row(res, 0, 1);
    char target[300];
    snprintf(target, sizeof(target), "%s/%s", provider, model);
    if (!after || cp_commit_change(r, NULL, "price.put", "price", target, before, after) != 0)
        goto rollback;
    const char *text = PQgetvalue(res, 0, 0);
    cp_reply_json_text(r, before ? 200 : 201, text, strlen(text));
    goto out;
rollback:
    cp_db_rollback(r);
out:
    PQclear(res);
    json_decref(before);
    json_decref(after);
    json_decref(o);
}

void cp_api_prices_delete(cp_req_t *r)
{
    if (!cp_require_platform(r, "change prices"))
        return;
    const char *provider = cp_query(r, "provider_id");
    const char *model = cp_query(r, "model");
    if (!provider || !model) {
        cp_reply_error(r, 400, "missing_query", provider ? "model" : "provider_id",
                       "provider_id and model are required in the query string");
        return;
    }
    if (!cp_is_uuid(provider) || !model_ok(model)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such price");
        return;
    }
    if (cp_db_begin(r) != 0)
        return;
    const char *p[2] = {provider, model};
    PGresult *res = cp_db_exec(r->db,
                               "WITH pr AS (DELETE FROM prices WHERE provider_id = $1 AND model = "
                               "$2 RETURNING *) SELECT " PRICE_AUDIT_JSON " FROM pr JOIN "
                               "providers p ON p.id = pr.provider_id",
                               2, p);
    json_t *before = NULL;
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        goto fail;
    }
    before = cp_db_json_row(res, 0, 0);
    if (!before) {
        cp_reply_error(r, 404, "not_found", NULL, "no such price");
        goto fail;
    }
    char target[300];
    snprintf(target, sizeof(target), "%s/%s", provider, model);
    if (cp_commit_change(r, NULL, "price.delete", "price", target, before, NULL) != 0)
        goto fail;
    PQclear(res);
    json_decref(before);
    r->status = 204;
    tg_buf_reset(&r->out);
    return;
fail:
    PQclear(res);
    cp_db_rollback(r);
    json_decref(before);
}

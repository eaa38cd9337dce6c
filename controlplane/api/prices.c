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

/* An amount (a JSON number, 0 to 1e6) as decimal text for Postgres; Postgres rounds it to
 * numeric(20, 9). */
static int price_field(cp_req_t *r, json_t *o, const char *name, bool required, char out[40],
                       bool *present)
{
    return cp_body_amount(r, o, name, required, 0, PRICE_MAX,
                          "from 0 to 1000000 (USD per million tokens)", present, out, 40);
}

/* ---- handlers ---- */

void cp_api_prices_list(cp_req_t *r)
{
    cp_list_t l;
    const char *provider, *model;
    if (cp_list_params(r, false, &l) != 0 ||
        cp_list_filter(r, "provider_id", cp_is_uuid, "must be a UUID", &provider) != 0 ||
        cp_list_filter(r, "model", model_ok, "must be 1 to 256 bytes without control characters",
                       &model) != 0)
        return;
    const char *cursor = l.cursor;
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
    const char *p[5] = {provider, model, cursor ? cur_provider : NULL, cursor ? cur_model : NULL,
                        l.fetch};
    cp_list_reply_rows(
        r, &l,
        "SELECT " PRICE_JSON "::text, pr.provider_id::text || ':' || md5(pr.model) FROM prices pr "
        "JOIN providers p ON p.id = pr.provider_id AND p.tenant_id IS NULL WHERE ($1::uuid IS "
        "NULL OR pr.provider_id = $1::uuid) AND ($2::text IS NULL OR pr.model = $2) AND "
        "($3::uuid IS NULL OR (pr.provider_id, md5(pr.model)) > ($3::uuid, $4::text)) ORDER BY "
        "pr.provider_id, md5(pr.model) LIMIT $5::int",
        5, p, 1, NULL);
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
    if (cp_change_need(r,
                       "SELECT 1 FROM providers WHERE id = $1 AND tenant_id IS NULL FOR KEY SHARE",
                       1, k, 422, "provider_id", "\"provider_id\" names no provider") != 0)
        goto rollback;
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
    cp_change_t c = {NULL, "price.put", "price", target, false};
    if (!after) {
        cp_reply_error(r, 500, "internal", NULL, "could not read the price");
        goto rollback;
    }
    if (cp_change_commit(r, &c, before, after) != 0)
        goto out;
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
    const char *p[2] = {provider, model};
    json_t *before = cp_change_lock_json(r,
                                         "SELECT " PRICE_AUDIT_JSON " FROM prices pr JOIN "
                                         "providers p ON p.id = pr.provider_id WHERE "
                                         "pr.provider_id = $1 AND pr.model = $2 FOR UPDATE OF pr",
                                         2, p, "price");
    if (!before)
        return;
    char target[300];
    snprintf(target, sizeof(target), "%s/%s", provider, model);
    cp_change_t c = {NULL, "price.delete", "price", target, false};
    cp_change_delete(r, &c, "DELETE FROM prices WHERE provider_id = $1 AND model = $2", 2, p,
                     before);
    json_decref(before);
}

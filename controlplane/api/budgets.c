/* budgets.c: /api/v1/tenants/{tid}/budgets: spend limits per tenant or per key and period. The
 * tenant's admins and owners set them; anyone with a role in the tenant reads them. Enforcement
 * is the data plane's, from the snapshot. Runs on MHD worker threads.
 *
 * Amounts are Postgres numerics. They go in as text and come back as the JSON text Postgres
 * writes (trim_scale: 12.5, not 12.500000000), not through jansson's doubles, which would print
 * 0.1 as 0.10000000000000001. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

/* The budget as configured: what the audit log records. Kept in step with KEY_BUDGET_JSON in
 * keys.c. */
#define BUDGET_FIELDS                                                                              \
    "'id', b.id, 'tenant_id', b.tenant_id, 'key_id', b.key_id, 'period', b.period, 'limit_usd', "  \
    "trim_scale(b.limit_usd), 'alert_threshold', trim_scale(b.alert_threshold), 'created_at', "    \
    "b.created_at, 'updated_at', b.updated_at"
#define BUDGET_JSON "json_build_object(" BUDGET_FIELDS ")"

/* The first day of the budget's current period (UTC calendar periods; a total's is 1970-01-01),
 * as POST /dp/v1/usage keys the spend table and answers data planes. */
#define BUDGET_PERIOD_START                                                                        \
    "(CASE b.period WHEN 'daily' THEN (now() AT TIME ZONE 'UTC')::date WHEN 'monthly' THEN "       \
    "date_trunc('month', now() AT TIME ZONE 'UTC')::date ELSE date '1970-01-01' END)"

/* What the API answers: the budget and its current period's spend (one primary-key lookup in
 * spend; 0 when nothing was spent yet), not audited: it changes with every request. */
#define BUDGET_VIEW_JSON                                                                           \
    "json_build_object(" BUDGET_FIELDS ", 'period_start', " BUDGET_PERIOD_START ", 'spent_usd', "  \
    "trim_scale(coalesce((SELECT s.cost_usd FROM spend s WHERE s.tenant_id = b.tenant_id AND "     \
    "s.key_id = coalesce(b.key_id, '00000000-0000-0000-0000-000000000000') AND s.period = "        \
    "b.period AND s.period_start = " BUDGET_PERIOD_START "), 0)))"

#define BUDGET_LIMIT_MAX 1e9
/* alert_threshold is numeric(5, 4): below this it would round to 0, which the schema refuses */
#define BUDGET_ALERT_MIN 0.00005

static const char *const periods[] = {"daily", "monthly", "total", NULL};

static void reply_no_budget(cp_req_t *r)
{
    cp_reply_error(r, 404, "not_found", NULL, "no such budget");
}

/* Checks the tenant path parameter and the caller's role in it, then the budget id when there is
 * one. Returns the role, or -1 after replying. */
static int budget_scope(cp_req_t *r, int min, bool with_budget)
{
    if (!cp_is_uuid(r->params[0])) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return -1;
    }
    int role = cp_require_role(r, r->params[0], min);
    if (role < 0)
        return -1;
    if (with_budget && !cp_is_uuid(r->params[1])) {
        reply_no_budget(r);
        return -1;
    }
    return role;
}

/* The budget in the path, searched only in the tenant in the path: col 0 is its JSON text (for
 * update: as configured, for the audit log; else as answered, with its spend). Returns NULL after
 * replying. */
static PGresult *budget_load(cp_req_t *r, bool for_update)
{
    const char *p[2] = {r->params[1], r->params[0]};
    PGresult *res =
        cp_db_exec(r->db,
                   for_update ? "SELECT " BUDGET_JSON " FROM budgets b WHERE b.id = $1 "
                                "AND b.tenant_id = $2 FOR UPDATE"
                              : "SELECT " BUDGET_VIEW_JSON " FROM budgets b WHERE b.id = $1 "
                                "AND b.tenant_id = $2",
                   2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return NULL;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        reply_no_budget(r);
        return NULL;
    }
    return res;
}

/* A JSON number in [min, max], as text for a numeric parameter.
 * Reals are printed with the fewest digits that read back as the same double. */
static int read_amount(cp_req_t *r, json_t *o, const char *name, bool required, double min,
                       double max, const char *range, bool *present, char *out, size_t outlen)
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
    if (d < min || d > max) {
        cp_reply_error(r, 422, "out_of_range", name, "\"%s\" must be %s", name, range);
        return -1;
    }
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, d);
            if (strtod(out, NULL) == d)
                break;
        }
    }
    *present = true;
    return 0;
}

static int read_threshold(cp_req_t *r, json_t *o, bool *present, char *out, size_t outlen)
{
    return read_amount(r, o, "alert_threshold", false, BUDGET_ALERT_MIN, 1.0,
                       "greater than 0 and at most 1 (4 decimal places)", present, out, outlen);
}

static int read_limit(cp_req_t *r, json_t *o, bool required, bool *present, char *out,
                      size_t outlen)
{
    return read_amount(r, o, "limit_usd", required, 0.0, BUDGET_LIMIT_MAX, "from 0 to 1000000000",
                       present, out, outlen);
}

void cp_api_budgets_list(cp_req_t *r)
{
    int limit;
    const char *cursor;
    if (budget_scope(r, CP_ROLE_VIEWER, false) < 0 || cp_page_params_uuid(r, &limit, &cursor) != 0)
        return;
    const char *key = cp_query(r, "key_id");
    if (key && !cp_is_uuid(key)) {
        cp_reply_error(r, 400, "invalid_query", "key_id", "key_id must be a key id");
        return;
    }
    const char *period = cp_query(r, "period");
    if (period) {
        bool ok = false;
        for (const char *const *s = periods; *s; s++)
            ok = ok || strcmp(*s, period) == 0;
        if (!ok) {
            cp_reply_error(r, 400, "invalid_query", "period",
                           "period must be one of: daily, monthly, total");
            return;
        }
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *p[5] = {r->params[0], cursor, key, period, lim};
    PGresult *res =
        cp_db_exec(r->db,
                   "SELECT b.id, " BUDGET_VIEW_JSON " FROM budgets b WHERE b.tenant_id = "
                   "$1 AND ($2::uuid IS NULL OR b.id > $2::uuid) AND ($3::uuid IS "
                   "NULL OR b.key_id = $3::uuid) AND ($4::text IS NULL OR b.period = "
                   "$4) ORDER BY b.id LIMIT $5::int",
                   5, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    int n = PQntuples(res);
    tg_buf_reset(&r->out);
    int rc = tg_buf_appendf(&r->out, "{\"data\":[");
    for (int i = 0; i < n && i < limit && rc == 0; i++) {
        if (i > 0)
            rc = tg_buf_append(&r->out, ",", 1);
        if (rc == 0)
            rc = cp_json_append_compact(&r->out, PQgetvalue(res, i, 1),
                                        (size_t)PQgetlength(res, i, 1));
    }
    if (rc == 0 && n > limit)
        rc = tg_buf_appendf(&r->out, "],\"next_cursor\":\"%s\"}", PQgetvalue(res, limit - 1, 0));
    else if (rc == 0)
        rc = tg_buf_appendf(&r->out, "],\"next_cursor\":null}");
    PQclear(res);
    if (rc != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not encode the response");
        return;
    }
    r->status = 200;
    r->content_type = "application/json";
}

void cp_api_budgets_create(cp_req_t *r)
{
    static const char *const fields[] = {"key_id", "period", "limit_usd", "alert_threshold", NULL};
    const char *key, *period;
    char amount[64], alert[64];
    bool has_amount, has_alert;
    if (budget_scope(r, CP_ROLE_ADMIN, false) < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (cp_body_str(r, o, "key_id", false, 64, &key) != 0 ||
        cp_body_enum(r, o, "period", true, periods, &period) != 0 ||
        read_limit(r, o, true, &has_amount, amount, sizeof(amount)) != 0 ||
        read_threshold(r, o, &has_alert, alert, sizeof(alert)) != 0)
        goto out;
    if (key && !cp_is_uuid(key)) {
        cp_reply_error(r, 422, "invalid_value", "key_id", "\"key_id\" is not a key of this tenant");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    if (key) {
        /* FOR SHARE: the key cannot be deleted under us before the budget is in */
        const char *p[2] = {key, r->params[0]};
        PGresult *res = cp_db_exec(
            r->db, "SELECT 1 FROM virtual_keys WHERE id = $1 AND tenant_id = $2 FOR SHARE", 2, p);
        bool ok = cp_db_ok(res);
        int rows = ok ? PQntuples(res) : 0;
        if (!ok)
            cp_reply_db_error(r, res);
        else if (rows != 1)
            cp_reply_error(r, 422, "invalid_value", "key_id",
                           "\"key_id\" is not a key of this tenant");
        PQclear(res);
        if (!ok || rows != 1) {
            cp_db_rollback(r);
            goto out;
        }
    }
    const char *p[5] = {r->params[0], key, period, amount, has_alert ? alert : NULL};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO budgets AS b (tenant_id, key_id, period, limit_usd, "
                               "alert_threshold) VALUES ($1, $2::uuid, $3, $4::numeric, "
                               "$5::numeric) RETURNING b.id, " BUDGET_JSON ", " BUDGET_VIEW_JSON,
                               5, p);
    if (!cp_db_ok(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23505") == 0)
            cp_reply_error(r, 409, "conflict", NULL, "a %s budget for this %s already exists",
                           period, key ? "key" : "tenant");
        else
            cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        goto out;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    json_t *after = cp_db_json_row(res, 0, 1);
    if (cp_commit_change(r, r->params[0], "budget.create", "budget", id, NULL, after) != 0) {
        cp_db_rollback(r);
        json_decref(after);
        PQclear(res);
        goto out;
    }
    json_decref(after);
    cp_reply_json_text(r, 201, PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
    PQclear(res);
out:
    json_decref(o);
}

void cp_api_budgets_get(cp_req_t *r)
{
    if (budget_scope(r, CP_ROLE_VIEWER, true) < 0)
        return;
    PGresult *res = budget_load(r, false);
    if (!res)
        return;
    cp_reply_json_text(r, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
}

void cp_api_budgets_update(cp_req_t *r)
{
    static const char *const fields[] = {"limit_usd", "alert_threshold", NULL};
    char amount[64], alert[64];
    bool has_amount, has_alert;
    if (budget_scope(r, CP_ROLE_ADMIN, true) < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    json_t *alert_v = json_object_get(o, "alert_threshold");
    json_t *limit_v = json_object_get(o, "limit_usd");
    if (limit_v && json_is_null(limit_v)) {
        cp_reply_error(r, 400, "invalid_type", "limit_usd", "\"limit_usd\" must be a number");
        goto out;
    }
    if (read_limit(r, o, false, &has_amount, amount, sizeof(amount)) != 0 ||
        read_threshold(r, o, &has_alert, alert, sizeof(alert)) != 0)
        goto out;
    if (!has_amount && !alert_v) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "send at least one of: limit_usd, alert_threshold");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    PGresult *res = budget_load(r, true);
    if (!res) {
        cp_db_rollback(r);
        goto out;
    }
    json_t *before = cp_db_json_row(res, 0, 0);
    PQclear(res);
    /* alert_threshold: null clears it */
    const char *p[5] = {r->params[1], r->params[0], has_amount ? amount : NULL, alert_v ? "t" : "f",
                        has_alert ? alert : NULL};
    res = cp_db_exec(r->db,
                     "UPDATE budgets AS b SET limit_usd = coalesce($3::numeric, b.limit_usd), "
                     "alert_threshold = CASE WHEN $4::boolean THEN $5::numeric ELSE "
                     "b.alert_threshold END, updated_at = now() WHERE b.id = $1 AND b.tenant_id = "
                     "$2 RETURNING " BUDGET_JSON ", " BUDGET_VIEW_JSON,
                     5, p);
    json_t *after = cp_db_json_row(res, 0, 0);
    if (!after) {
        cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        json_decref(before);
        goto out;
    }
    int rc = cp_audit(r, r->params[0], "budget.update", "budget", r->params[1], before, after);
    json_decref(before);
    json_decref(after);
    if (rc != 0 || cp_config_bump(r) != 0 || cp_db_commit(r) != 0) {
        cp_db_rollback(r);
        PQclear(res);
        goto out;
    }
    cp_reply_json_text(r, 200, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    PQclear(res);
out:
    json_decref(o);
}

void cp_api_budgets_delete(cp_req_t *r)
{
    if (budget_scope(r, CP_ROLE_ADMIN, true) < 0 || cp_db_begin(r) != 0)
        return;
    PGresult *res = budget_load(r, true);
    if (!res) {
        cp_db_rollback(r);
        return;
    }
    json_t *before = cp_db_json_row(res, 0, 0);
    PQclear(res);
    const char *p[2] = {r->params[1], r->params[0]};
    res = cp_db_exec(r->db, "DELETE FROM budgets WHERE id = $1 AND tenant_id = $2", 2, p);
    bool ok = cp_db_ok(res);
    if (!ok)
        cp_reply_db_error(r, res);
    PQclear(res);
    if (!ok || cp_commit_change(r, r->params[0], "budget.delete", "budget", r->params[1], before,
                                NULL) != 0) {
        cp_db_rollback(r);
        json_decref(before);
        return;
    }
    json_decref(before);
    r->status = 204;
    tg_buf_reset(&r->out);
}

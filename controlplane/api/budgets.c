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

#define BUDGET_RANGE "from 0 to 1000000000"
#define ALERT_RANGE "greater than 0 and at most 1 (4 decimal places)"

void cp_api_budgets_list(cp_req_t *r)
{
    cp_list_t l;
    const char *key, *period;
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, NULL) < 0 || cp_list_params(r, true, &l) != 0 ||
        cp_list_filter(r, "key_id", cp_is_uuid, "must be a key id", &key) != 0 ||
        cp_list_filter_enum(r, "period", periods, &period) != 0)
        return;
    const char *p[5] = {r->params[0], l.cursor, key, period, l.fetch};
    cp_list_reply_rows(r, &l,
                       "SELECT " BUDGET_VIEW_JSON ", b.id FROM budgets b WHERE b.tenant_id = $1 "
                       "AND ($2::uuid IS NULL OR b.id > $2::uuid) AND ($3::uuid IS NULL OR "
                       "b.key_id = $3::uuid) AND ($4::text IS NULL OR b.period = $4) ORDER BY "
                       "b.id LIMIT $5::int",
                       5, p, 1, NULL);
}

void cp_api_budgets_create(cp_req_t *r)
{
    static const char *const fields[] = {"key_id", "period", "limit_usd", "alert_threshold", NULL};
    const char *key, *period;
    char amount[64], alert[64];
    bool has_amount, has_alert;
    if (cp_tenant_scope(r, CP_ROLE_ADMIN, NULL) < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (cp_body_str(r, o, "key_id", false, 64, &key) != 0 ||
        cp_body_enum(r, o, "period", true, periods, &period) != 0 ||
        cp_body_amount(r, o, "limit_usd", true, 0.0, BUDGET_LIMIT_MAX, BUDGET_RANGE, &has_amount,
                       amount, sizeof(amount)) != 0 ||
        cp_body_amount(r, o, "alert_threshold", false, BUDGET_ALERT_MIN, 1.0, ALERT_RANGE,
                       &has_alert, alert, sizeof(alert)) != 0)
        goto out;
    if (key && !cp_is_uuid(key)) {
        cp_reply_error(r, 422, "invalid_value", "key_id", "\"key_id\" is not a key of this tenant");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    /* FOR SHARE: the key cannot be deleted under us before the budget is in */
    const char *k[2] = {key, r->params[0]};
    if (key && cp_change_need(r,
                              "SELECT 1 FROM virtual_keys WHERE id = $1 AND tenant_id = $2 FOR "
                              "SHARE",
                              2, k, 422, "key_id", "\"key_id\" is not a key of this tenant") != 0) {
        cp_db_rollback(r);
        goto out;
    }
    const char *p[5] = {r->params[0], key, period, amount, has_alert ? alert : NULL};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO budgets AS b (tenant_id, key_id, period, limit_usd, "
                               "alert_threshold) VALUES ($1, $2::uuid, $3, $4::numeric, "
                               "$5::numeric) RETURNING " BUDGET_JSON ", " BUDGET_VIEW_JSON,
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
    json_t *after = cp_db_json_row(res, 0, 0);
    cp_change_t c = {r->params[0], "budget.create", "budget",
                     json_string_value(json_object_get(after, "id")), false};
    if (cp_change_commit(r, &c, NULL, after) == 0)
        cp_reply_json_text(r, 201, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    json_decref(after);
    PQclear(res);
out:
    json_decref(o);
}

void cp_api_budgets_get(cp_req_t *r)
{
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, "budget") < 0)
        return;
    const char *p[2] = {r->params[1], r->params[0]};
    cp_reply_object(r,
                    "SELECT " BUDGET_VIEW_JSON " FROM budgets b WHERE b.id = $1 AND "
                    "b.tenant_id = $2",
                    2, p, "budget");
}

/* Begins a change to the budget in the path: the budget as configured (for the audit log), or
 * NULL after replying and rolling back. */
static json_t *budget_lock(cp_req_t *r)
{
    const char *p[2] = {r->params[1], r->params[0]};
    return cp_change_lock_json(r,
                               "SELECT " BUDGET_JSON " FROM budgets b WHERE b.id = $1 AND "
                               "b.tenant_id = $2 FOR UPDATE",
                               2, p, "budget");
}

void cp_api_budgets_update(cp_req_t *r)
{
    static const char *const fields[] = {"limit_usd", "alert_threshold", NULL};
    char amount[64], alert[64];
    bool has_amount, has_alert;
    if (cp_tenant_scope(r, CP_ROLE_ADMIN, "budget") < 0)
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
    if (cp_body_amount(r, o, "limit_usd", false, 0.0, BUDGET_LIMIT_MAX, BUDGET_RANGE, &has_amount,
                       amount, sizeof(amount)) != 0 ||
        cp_body_amount(r, o, "alert_threshold", false, BUDGET_ALERT_MIN, 1.0, ALERT_RANGE,
                       &has_alert, alert, sizeof(alert)) != 0)
        goto out;
    if (!has_amount && !alert_v) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "send at least one of: limit_usd, alert_threshold");
        goto out;
    }
    json_t *before = budget_lock(r);
    if (!before)
        goto out;
    /* alert_threshold: null clears it */
    const char *p[5] = {r->params[1], r->params[0], has_amount ? amount : NULL, alert_v ? "t" : "f",
                        has_alert ? alert : NULL};
    PGresult *res =
        cp_db_exec(r->db,
                   "UPDATE budgets AS b SET limit_usd = coalesce($3::numeric, "
                   "b.limit_usd), alert_threshold = CASE WHEN $4::boolean THEN "
                   "$5::numeric ELSE b.alert_threshold END, updated_at = now() WHERE "
                   "b.id = $1 AND b.tenant_id = $2 RETURNING " BUDGET_JSON ", " BUDGET_VIEW_JSON,
                   5, p);
    json_t *after = cp_db_json_row(res, 0, 0);
    cp_change_t c = {r->params[0], "budget.update", "budget", r->params[1], false};
    if (!after) {
        cp_reply_db_error(r, res);
        cp_db_rollback(r);
    } else if (cp_change_commit(r, &c, before, after) == 0) {
        cp_reply_json_text(r, 200, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    }
    PQclear(res);
    json_decref(before);
    json_decref(after);
out:
    json_decref(o);
}

void cp_api_budgets_delete(cp_req_t *r)
{
    if (cp_tenant_scope(r, CP_ROLE_ADMIN, "budget") < 0)
        return;
    json_t *before = budget_lock(r);
    if (!before)
        return;
    const char *p[2] = {r->params[1], r->params[0]};
    cp_change_t c = {r->params[0], "budget.delete", "budget", r->params[1], false};
    cp_change_delete(r, &c, "DELETE FROM budgets WHERE id = $1 AND tenant_id = $2", 2, p, before);
    json_decref(before);
}

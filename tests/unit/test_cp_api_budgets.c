/* test_cp_api_budgets.c: what creating a budget checks before the database (api/budgets.c): the
 * period, the limit from 0 to 1000000000 USD, the alert threshold above 0 and at most 1, the key
 * id; and who may. A tenant admin's valid request gets as far as the transaction, which answers
 * 503 here: there is no database. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define KEY "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

static cp_req_t req;

static void setup(void)
{
    memset(&req, 0, sizeof(req));
    tg_buf_init(&req.out, 1u << 20);
}

static void teardown(void)
{
    tg_buf_dispose(&req.out);
}

TestSuite(cp_api_budgets, .init = setup, .fini = teardown);

/* POSTs body to /tenants/{tenant}/budgets as a platform admin's token capped at role. */
static int create(const char *tenant, int role, const char *body, char *code, char *field,
                  char *message)
{
    tg_buf_reset(&req.out);
    req.status = 0;
    req.who.authenticated = true;
    req.who.user_platform_admin = true;
    req.who.via_token = true;
    req.who.token_role = role;
    req.method = "POST";
    snprintf(req.param_buf[0], sizeof(req.param_buf[0]), "%s", tenant);
    req.params[0] = req.param_buf[0];
    req.body = body;
    req.body_len = strlen(body);
    cp_api_budgets_create(&req);
    json_t *v = json_loadb(req.out.base, req.out.len, 0, NULL);
    cr_assert_not_null(v, "%.*s", (int)req.out.len, req.out.base);
    json_t *e = json_object_get(v, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *f = json_string_value(json_object_get(e, "field"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(code, 64, "%s", c ? c : "");
    snprintf(field, 64, "%s", f ? f : "");
    snprintf(message, 512, "%s", m ? m : "");
    json_decref(v);
    return req.status;
}

static void passes(const char *body)
{
    char code[64], field[64], message[512];
    int status = create(TENANT, CP_ROLE_ADMIN, body, code, field, message);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, field, message);
    cr_assert_str_eq(code, "database_unavailable", "%s", body);
}

static void refused(const char *body, int status, const char *code, const char *field,
                    const char *message)
{
    char c[64], f[64], m[512];
    cr_assert_eq(create(TENANT, CP_ROLE_ADMIN, body, c, f, m), status, "%s: %s", body, m);
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(f, field, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

Test(cp_api_budgets, a_tenant_admin_creates_budgets_in_a_tenant_by_id)
{
    char c[64], f[64], m[512];
    const char *body = "{\"period\":\"daily\",\"limit_usd\":5}";
    cr_assert_eq(create(TENANT, CP_ROLE_MEMBER, body, c, f, m), 403);
    cr_assert_str_eq(m, "this needs the admin role in the tenant; you have member");
    cr_assert_eq(create("acme", CP_ROLE_ADMIN, body, c, f, m), 404);
    cr_assert_str_eq(m, "no such tenant");
    passes(body);
}

Test(cp_api_budgets, a_period_and_a_limit_are_required)
{
    refused("{\"limit_usd\":5}", 400, "missing_field", "period", "\"period\" is required");
    refused("{\"period\":\"weekly\",\"limit_usd\":5}", 422, "invalid_value", "period",
            "\"period\" must be one of: daily, monthly, total");
    refused("{\"period\":\"total\"}", 400, "missing_field", "limit_usd",
            "\"limit_usd\" is required");
    refused("{\"period\":\"total\",\"limit_usd\":\"5\"}", 400, "invalid_type", "limit_usd",
            "\"limit_usd\" must be a number");
    refused("{\"period\":\"total\",\"limit_usd\":5,\"hard\":true}", 400, "unknown_field", "hard",
            "unknown field \"hard\"");
}

Test(cp_api_budgets, the_limit_is_0_to_a_billion_usd)
{
    const char *range = "\"limit_usd\" must be from 0 to 1000000000";
    passes("{\"period\":\"monthly\",\"limit_usd\":0}");
    passes("{\"period\":\"monthly\",\"limit_usd\":1000000000}");
    passes("{\"period\":\"monthly\",\"limit_usd\":0.01}");
    refused("{\"period\":\"monthly\",\"limit_usd\":1000000000.01}", 422, "out_of_range",
            "limit_usd", range);
    refused("{\"period\":\"monthly\",\"limit_usd\":-0.01}", 422, "out_of_range", "limit_usd",
            range);
}

Test(cp_api_budgets, the_alert_threshold_is_above_0_and_at_most_1)
{
    const char *range = "\"alert_threshold\" must be greater than 0 and at most 1 (4 decimal "
                        "places)";
    passes("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":1}");
    passes("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0.00005}");
    passes("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":null}");
    refused("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0.00004}", 422,
            "out_of_range", "alert_threshold", range);
    refused("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0}", 422, "out_of_range",
            "alert_threshold", range);
    refused("{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":1.0001}", 422,
            "out_of_range", "alert_threshold", range);
}

Test(cp_api_budgets, a_key_budget_names_a_key_by_id)
{
    passes("{\"key_id\":\"" KEY "\",\"period\":\"daily\",\"limit_usd\":5}");
    refused("{\"key_id\":\"tg-key\",\"period\":\"daily\",\"limit_usd\":5}", 422, "invalid_value",
            "key_id", "\"key_id\" is not a key of this tenant");
}

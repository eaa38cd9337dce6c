/* test_cp_api_budgets.c: what creating a budget checks before the database (api/budgets.c): the
 * period, the limit from 0 to 1000000000 USD, the alert threshold above 0 and at most 1, the key
 * id; and who may. A tenant admin's valid request gets as far as the transaction, which answers
 * 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define KEY "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

static const char *tenant = TENANT;
static int role = CP_ROLE_ADMIN;

/* POSTs to /tenants/{tenant}/budgets as a platform admin's token capped at role. */
static void prep(cp_req_t *r)
{
    r->who.user_platform_admin = true;
    r->who.via_token = true;
    r->who.token_role = role;
    snprintf(r->param_buf[0], sizeof(r->param_buf[0]), "%s", tenant);
    r->params[0] = r->param_buf[0];
}

static const api_target_t budgets = {cp_api_budgets_create, "POST", prep};

TestSuite(cp_api_budgets, .init = api_setup, .fini = api_teardown);

Test(cp_api_budgets, a_tenant_admin_creates_budgets_in_a_tenant_by_id)
{
    api_answer_t a;
    const char *body = "{\"period\":\"daily\",\"limit_usd\":5}";
    role = CP_ROLE_MEMBER;
    cr_assert_eq(api_call(&budgets, body, &a), 403);
    cr_assert_str_eq(a.message, "this needs the admin role in the tenant; you have member");
    role = CP_ROLE_ADMIN;
    tenant = "acme";
    cr_assert_eq(api_call(&budgets, body, &a), 404);
    cr_assert_str_eq(a.message, "no such tenant");
    tenant = TENANT;
    api_passes(&budgets, body);
}

Test(cp_api_budgets, a_period_and_a_limit_are_required)
{
    api_refused(&budgets, "{\"limit_usd\":5}", 400, "missing_field", "period",
                "\"period\" is required");
    api_refused(&budgets, "{\"period\":\"weekly\",\"limit_usd\":5}", 422, "invalid_value", "period",
                "\"period\" must be one of: daily, monthly, total");
    api_refused(&budgets, "{\"period\":\"total\"}", 400, "missing_field", "limit_usd",
                "\"limit_usd\" is required");
    api_refused(&budgets, "{\"period\":\"total\",\"limit_usd\":\"5\"}", 400, "invalid_type",
                "limit_usd", "\"limit_usd\" must be a number");
    api_refused(&budgets, "{\"period\":\"total\",\"limit_usd\":5,\"hard\":true}", 400,
                "unknown_field", "hard", "unknown field \"hard\"");
}

Test(cp_api_budgets, the_limit_is_0_to_a_billion_usd)
{
    const char *range = "\"limit_usd\" must be from 0 to 1000000000";
    api_passes(&budgets, "{\"period\":\"monthly\",\"limit_usd\":0}");
    api_passes(&budgets, "{\"period\":\"monthly\",\"limit_usd\":1000000000}");
    api_passes(&budgets, "{\"period\":\"monthly\",\"limit_usd\":0.01}");
    api_refused(&budgets, "{\"period\":\"monthly\",\"limit_usd\":1000000000.01}", 422,
                "out_of_range", "limit_usd", range);
    api_refused(&budgets, "{\"period\":\"monthly\",\"limit_usd\":-0.01}", 422, "out_of_range",
                "limit_usd", range);
}

Test(cp_api_budgets, the_alert_threshold_is_above_0_and_at_most_1)
{
    const char *range = "\"alert_threshold\" must be greater than 0 and at most 1 (4 decimal "
                        "places)";
    api_passes(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":1}");
    api_passes(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0.00005}");
    api_passes(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":null}");
    api_refused(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0.00004}", 422,
                "out_of_range", "alert_threshold", range);
    api_refused(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":0}", 422,
                "out_of_range", "alert_threshold", range);
    api_refused(&budgets, "{\"period\":\"daily\",\"limit_usd\":5,\"alert_threshold\":1.0001}", 422,
                "out_of_range", "alert_threshold", range);
}

Test(cp_api_budgets, a_key_budget_names_a_key_by_id)
{
    api_passes(&budgets, "{\"key_id\":\"" KEY "\",\"period\":\"daily\",\"limit_usd\":5}");
    api_refused(&budgets, "{\"key_id\":\"tg-key\",\"period\":\"daily\",\"limit_usd\":5}", 422,
                "invalid_value", "key_id", "\"key_id\" is not a key of this tenant");
}

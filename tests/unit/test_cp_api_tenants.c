/* test_cp_api_tenants.c: what creating a tenant checks before the database (api/tenants.c): only
 * platform admins, a slug of 1 to 63 lower-case letters, digits and '-', a name, rate limits. A
 * valid request gets as far as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

static bool platform = true;

/* POSTs as a platform admin, or (platform false) as a user who is not one. */
static void prep(cp_req_t *r)
{
    r->who.platform_admin = platform;
}

static const api_target_t tenants = {cp_api_tenants_create, "POST", prep};

TestSuite(cp_api_tenants, .init = api_setup, .fini = api_teardown);

Test(cp_api_tenants, only_platform_admins_create_tenants)
{
    api_answer_t a;
    platform = false;
    cr_assert_eq(api_call(&tenants, "{\"slug\":\"acme\",\"name\":\"Acme\"}", &a), 403);
    cr_assert_str_eq(a.message, "only platform admins create tenants");
    platform = true;
    api_passes(&tenants, "{\"slug\":\"acme\",\"name\":\"Acme\"}");
}

Test(cp_api_tenants, a_slug_is_1_to_63_lower_case_letters_digits_and_dashes)
{
    const char *rule = "\"slug\" must be lower-case letters, digits and '-', not starting with '-'";
    api_passes(&tenants, "{\"slug\":\"a\",\"name\":\"A\"}");
    api_passes(&tenants, "{\"slug\":\"0-a-\",\"name\":\"A\"}");
    api_refused(&tenants, "{\"slug\":\"-a\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    api_refused(&tenants, "{\"slug\":\"Acme\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    api_refused(&tenants, "{\"slug\":\"a_b\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    api_refused(&tenants, "{\"slug\":\"a.b\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    api_refused(&tenants, "{\"slug\":\"\",\"name\":\"A\"}", 422, "invalid_length", "slug",
                "\"slug\" must be 1 to 63 bytes long");
    char body[200], s[65];
    memset(s, 's', 63);
    s[63] = '\0';
    snprintf(body, sizeof(body), "{\"slug\":\"%s\",\"name\":\"A\"}", s);
    api_passes(&tenants, body);
    snprintf(body, sizeof(body), "{\"slug\":\"%ss\",\"name\":\"A\"}", s);
    api_refused(&tenants, body, 422, "invalid_length", "slug",
                "\"slug\" must be 1 to 63 bytes long");
}

Test(cp_api_tenants, a_name_of_1_to_200_bytes_and_limits)
{
    api_refused(&tenants, "{\"slug\":\"a\"}", 400, "missing_field", "name", "\"name\" is required");
    char body[400], n[202];
    memset(n, 'n', 200);
    n[200] = '\0';
    snprintf(body, sizeof(body), "{\"slug\":\"a\",\"name\":\"%s\"}", n);
    api_passes(&tenants, body);
    snprintf(body, sizeof(body), "{\"slug\":\"a\",\"name\":\"%sn\"}", n);
    api_refused(&tenants, body, 422, "invalid_length", "name",
                "\"name\" must be 1 to 200 bytes long");
    api_passes(&tenants, "{\"slug\":\"a\",\"name\":\"A\",\"rpm_limit\":1,\"tpm_limit\":null}");
    api_refused(&tenants, "{\"slug\":\"a\",\"name\":\"A\",\"tpm_limit\":2147483648}", 422,
                "out_of_range", "tpm_limit", "\"tpm_limit\" must be from 1 to 2147483647");
    api_refused(&tenants, "{\"slug\":\"a\",\"name\":\"A\",\"owner\":\"x\"}", 400, "unknown_field",
                "owner", "unknown field \"owner\"");
}

/* test_cp_api_users.c: what creating a user checks before the database (api/users.c): the email's
 * form, the password's length in characters, service accounts, and who may create a user where
 * with which role. A valid request gets as far as the transaction, which answers 503 here: there
 * is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define PW "\"password\":\"correct horse\""
/* a user in TENANT with a role (%s) */
#define IN "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"" TENANT "\",\"role\":\"%s\"}"

/* The caller: a platform admin, or (tenant_role > 0) a token of a platform admin scoped to TENANT
 * with that role, which is how a tenant admin looks without a membership row. */
static int tenant_role;

static void prep(cp_req_t *r)
{
    if (tenant_role == 0) {
        r->who.platform_admin = true;
    } else {
        r->who.user_platform_admin = true;
        r->who.via_token = true;
        r->who.token_role = tenant_role;
        snprintf(r->who.token_tenant, sizeof(r->who.token_tenant), "%s", TENANT);
    }
}

static const api_target_t users = {cp_api_users_create, "POST", prep};

/* users, called by a platform admin (0) or with tenant_role. */
static const api_target_t *as(int role)
{
    tenant_role = role;
    return &users;
}

TestSuite(cp_api_users, .init = api_setup, .fini = api_teardown);

Test(cp_api_users, an_email_has_one_at_with_text_on_both_sides)
{
    const char *rule = "\"email\" must have one '@' with text on both sides and no spaces";
    api_passes(as(0), "{\"email\":\"a@b\"," PW "}");
    api_refused(as(0), "{\"email\":\"@ab\"," PW "}", 422, "invalid_value", "email", rule);
    api_refused(as(0), "{\"email\":\"ab@\"," PW "}", 422, "invalid_value", "email", rule);
    api_refused(as(0), "{\"email\":\"a@b@c\"," PW "}", 422, "invalid_value", "email", rule);
    api_refused(as(0), "{\"email\":\"a b@c\"," PW "}", 422, "invalid_value", "email", rule);
    api_refused(as(0), "{\"email\":\"abc\"," PW "}", 422, "invalid_value", "email", rule);
    api_refused(as(0), "{" PW "}", 400, "missing_field", "email", "\"email\" is required");
}

Test(cp_api_users, a_password_is_at_least_12_characters_not_bytes)
{
    const char *len = "\"password\" must be at least 12 characters long";
    api_passes(as(0), "{\"email\":\"a@b\",\"password\":\"123456789012\"}");
    api_refused(as(0), "{\"email\":\"a@b\",\"password\":\"12345678901\"}", 422, "invalid_length",
                "password", len);
    /* 11 two-byte characters are 22 bytes and still too short; 12 are enough */
    api_refused(as(0), "{\"email\":\"a@b\",\"password\":\"ééééééééééé\"}", 422, "invalid_length",
                "password", len);
    api_passes(as(0), "{\"email\":\"a@b\",\"password\":\"éééééééééééé\"}");
    api_refused(as(0), "{\"email\":\"a@b\"}", 400, "missing_field", "password",
                "\"password\" is required unless \"is_service\" is true");
}

Test(cp_api_users, a_service_account_has_no_password)
{
    api_passes(as(0), "{\"email\":\"ci@svc\",\"is_service\":true}");
    api_refused(as(0), "{\"email\":\"ci@svc\",\"is_service\":true," PW "}", 422, "invalid_value",
                "password", "service accounts have no password; they act through API tokens");
}

Test(cp_api_users, outside_a_tenant_only_platform_admins_create_users)
{
    api_refused(as(CP_ROLE_ADMIN), "{\"email\":\"a@b\"," PW "}", 403, "forbidden", "tenant_id",
                "only platform admins create users outside a tenant; give \"tenant_id\" and "
                "\"role\" to create one in a tenant you administer");
    api_refused(as(0), "{\"email\":\"a@b\"," PW ",\"role\":\"member\"}", 422, "invalid_value",
                "role", "\"role\" is the new user's role in \"tenant_id\"; give both or neither");
    api_refused(as(CP_ROLE_ADMIN),
                "{\"email\":\"a@b\"," PW ",\"is_platform_admin\":true,\"tenant_id\":\"" TENANT
                "\",\"role\":\"member\"}",
                403, "forbidden", "is_platform_admin",
                "only platform admins create platform admins");
    api_passes(as(0), "{\"email\":\"a@b\"," PW ",\"is_platform_admin\":true}");
}

Test(cp_api_users, in_a_tenant_admins_grant_roles_up_to_admin_and_owners_owner)
{
    char body[300];
    snprintf(body, sizeof(body), IN, "admin");
    api_passes(as(CP_ROLE_ADMIN), body);
    snprintf(body, sizeof(body), IN, "owner");
    api_refused(as(CP_ROLE_ADMIN), body, 403, "forbidden", "role",
                "only owners grant the owner role; you have admin");
    api_passes(as(CP_ROLE_OWNER), body);
    snprintf(body, sizeof(body), IN, "viewer");
    api_answer_t a;
    cr_assert_eq(api_call(as(CP_ROLE_MEMBER), body, &a), 403);
    cr_assert_str_eq(a.message, "this needs the admin role in the tenant; you have member");
    snprintf(body, sizeof(body), IN, "platform");
    api_refused(as(CP_ROLE_ADMIN), body, 422, "invalid_value", "role",
                "\"role\" must be one of: owner, admin, member, viewer");
    api_refused(as(CP_ROLE_ADMIN), "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"" TENANT "\"}", 400,
                "missing_field", "role", "\"role\" is required with \"tenant_id\"");
    api_refused(as(CP_ROLE_ADMIN),
                "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"acme\",\"role\":\"member\"}", 404,
                "not_found", "tenant_id", "no such tenant");
}

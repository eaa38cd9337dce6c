/* test_cp_api_users.c: what creating a user checks before the database (api/users.c): the email's
 * form, the password's length in characters, service accounts, and who may create a user where
 * with which role. A valid request gets as far as the transaction, which answers 503 here: there
 * is no database. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define PW "\"password\":\"correct horse\""
/* a user in TENANT with a role (%s) */
#define IN "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"" TENANT "\",\"role\":\"%s\"}"

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

TestSuite(cp_api_users, .init = setup, .fini = teardown);

/* The caller: a platform admin, or (tenant_role > 0) a token of a platform admin scoped to TENANT
 * with that role, which is how a tenant admin looks without a membership row. */
static int create(int tenant_role, const char *body, char *code, char *field, char *message)
{
    tg_buf_reset(&req.out);
    req.status = 0;
    memset(&req.who, 0, sizeof(req.who));
    req.who.authenticated = true;
    if (tenant_role == 0) {
        req.who.platform_admin = true;
    } else {
        req.who.user_platform_admin = true;
        req.who.via_token = true;
        req.who.token_role = tenant_role;
        snprintf(req.who.token_tenant, sizeof(req.who.token_tenant), "%s", TENANT);
    }
    req.method = "POST";
    req.body = body;
    req.body_len = strlen(body);
    cp_api_users_create(&req);
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

static void passes_as(int tenant_role, const char *body)
{
    char code[64], field[64], message[512];
    int status = create(tenant_role, body, code, field, message);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, field, message);
    cr_assert_str_eq(code, "database_unavailable", "%s", body);
}

static void refused_as(int tenant_role, const char *body, int status, const char *code,
                       const char *field, const char *message)
{
    char c[64], f[64], m[512];
    cr_assert_eq(create(tenant_role, body, c, f, m), status, "%s: %s", body, m);
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(f, field, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

static void passes(const char *body)
{
    passes_as(0, body);
}

static void refused(const char *body, int status, const char *code, const char *field,
                    const char *message)
{
    refused_as(0, body, status, code, field, message);
}

Test(cp_api_users, an_email_has_one_at_with_text_on_both_sides)
{
    const char *rule = "\"email\" must have one '@' with text on both sides and no spaces";
    passes("{\"email\":\"a@b\"," PW "}");
    refused("{\"email\":\"@ab\"," PW "}", 422, "invalid_value", "email", rule);
    refused("{\"email\":\"ab@\"," PW "}", 422, "invalid_value", "email", rule);
    refused("{\"email\":\"a@b@c\"," PW "}", 422, "invalid_value", "email", rule);
    refused("{\"email\":\"a b@c\"," PW "}", 422, "invalid_value", "email", rule);
    refused("{\"email\":\"abc\"," PW "}", 422, "invalid_value", "email", rule);
    refused("{" PW "}", 400, "missing_field", "email", "\"email\" is required");
}

Test(cp_api_users, a_password_is_at_least_12_characters_not_bytes)
{
    const char *len = "\"password\" must be at least 12 characters long";
    passes("{\"email\":\"a@b\",\"password\":\"123456789012\"}");
    refused("{\"email\":\"a@b\",\"password\":\"12345678901\"}", 422, "invalid_length", "password",
            len);
    /* 11 two-byte characters are 22 bytes and still too short; 12 are enough */
    refused("{\"email\":\"a@b\",\"password\":\"ééééééééééé\"}", 422, "invalid_length", "password",
            len);
    passes("{\"email\":\"a@b\",\"password\":\"éééééééééééé\"}");
    refused("{\"email\":\"a@b\"}", 400, "missing_field", "password",
            "\"password\" is required unless \"is_service\" is true");
}

Test(cp_api_users, a_service_account_has_no_password)
{
    passes("{\"email\":\"ci@svc\",\"is_service\":true}");
    refused("{\"email\":\"ci@svc\",\"is_service\":true," PW "}", 422, "invalid_value", "password",
            "service accounts have no password; they act through API tokens");
}

Test(cp_api_users, outside_a_tenant_only_platform_admins_create_users)
{
    refused_as(CP_ROLE_ADMIN, "{\"email\":\"a@b\"," PW "}", 403, "forbidden", "tenant_id",
               "only platform admins create users outside a tenant; give \"tenant_id\" and "
               "\"role\" to create one in a tenant you administer");
    refused("{\"email\":\"a@b\"," PW ",\"role\":\"member\"}", 422, "invalid_value", "role",
            "\"role\" is the new user's role in \"tenant_id\"; give both or neither");
    refused_as(CP_ROLE_ADMIN,
               "{\"email\":\"a@b\"," PW ",\"is_platform_admin\":true,\"tenant_id\":\"" TENANT
               "\",\"role\":\"member\"}",
               403, "forbidden", "is_platform_admin",
               "only platform admins create platform admins");
    passes("{\"email\":\"a@b\"," PW ",\"is_platform_admin\":true}");
}

Test(cp_api_users, in_a_tenant_admins_grant_roles_up_to_admin_and_owners_owner)
{
    char body[300];
    snprintf(body, sizeof(body), IN, "admin");
    passes_as(CP_ROLE_ADMIN, body);
    snprintf(body, sizeof(body), IN, "owner");
    refused_as(CP_ROLE_ADMIN, body, 403, "forbidden", "role",
               "only owners grant the owner role; you have admin");
    passes_as(CP_ROLE_OWNER, body);
    snprintf(body, sizeof(body), IN, "viewer");
    char c[64], f[64], m[512];
    cr_assert_eq(create(CP_ROLE_MEMBER, body, c, f, m), 403);
    cr_assert_str_eq(m, "this needs the admin role in the tenant; you have member");
    snprintf(body, sizeof(body), IN, "platform");
    refused_as(CP_ROLE_ADMIN, body, 422, "invalid_value", "role",
               "\"role\" must be one of: owner, admin, member, viewer");
    refused_as(CP_ROLE_ADMIN, "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"" TENANT "\"}", 400,
               "missing_field", "role", "\"role\" is required with \"tenant_id\"");
    refused_as(CP_ROLE_ADMIN,
               "{\"email\":\"a@b\"," PW ",\"tenant_id\":\"acme\",\"role\":\"member\"}", 404,
               "not_found", "tenant_id", "no such tenant");
}

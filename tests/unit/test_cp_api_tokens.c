/* test_cp_api_tokens.c: what creating an admin API token checks before the database
 * (api/tokens.c): name and role, ids, the expiry's forms and range, and that a token is never
 * wider than its creator (the caller's role in the tenant, or the token the caller uses). A valid
 * request gets as far as the database, which answers 503 here: there is none. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define OTHER "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define ME "2b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define SVC "3b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

/* The caller: a user (ME, no platform admin) through a token of token_role, scoped to
 * token_tenant ("" for any); a platform admin's token, so that its role in a tenant needs no
 * membership row. */
static int token_role = CP_ROLE_OWNER;
static const char *token_tenant = "";

static void prep(cp_req_t *r)
{
    r->who.user_platform_admin = true;
    r->who.via_token = true;
    r->who.token_role = token_role;
    snprintf(r->who.token_tenant, sizeof(r->who.token_tenant), "%s", token_tenant);
    snprintf(r->who.user_id, sizeof(r->who.user_id), "%s", ME);
}

static const api_target_t tokens = {cp_api_tokens_create, "POST", prep};

TestSuite(cp_api_tokens, .init = api_setup, .fini = api_teardown);

Test(cp_api_tokens, a_name_a_role_and_ids_that_are_uuids)
{
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"member\"}");
    api_refused(&tokens, "{\"role\":\"member\"}", 400, "missing_field", "name",
                "\"name\" is required");
    api_refused(&tokens, "{\"name\":\"ci\"}", 400, "missing_field", "role", "\"role\" is required");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"platform\"}", 422, "invalid_value", "role",
                "\"role\" must be one of: admin, owner, member, viewer");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"tenant_id\":\"acme\"}", 422,
                "invalid_value", "tenant_id", "\"tenant_id\" must be a uuid");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"user_id\":\"bob\"}", 422,
                "invalid_value", "user_id", "\"user_id\" must be a uuid");
}

Test(cp_api_tokens, expires_at_is_rfc_3339_with_an_offset_or_unix_seconds_to_year_9999)
{
    const char *range = "\"expires_at\" in unix seconds must be from 1 to 253402300799";
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":0}", 422,
                "out_of_range", "expires_at", range);
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":253402300800}", 422,
                "out_of_range", "expires_at", range);
    api_refused(
        &tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":\"2030-01-31T12:00:00\"}",
        422, "invalid_value", "expires_at",
        "\"expires_at\" must be an RFC 3339 time with an offset, such as 2030-01-31T12:00:00Z, "
        "or unix seconds");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":true}", 400,
                "invalid_type", "expires_at",
                "\"expires_at\" must be a string (RFC 3339) or an integer (unix seconds)");
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":null}");
}

/* Whether the time is in the future is the database's to say; when it cannot, that is its
 * outage (503), not the client's mistake. */
Test(cp_api_tokens, a_well_formed_expiry_without_a_database_is_a_503)
{
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":253402300799}");
    api_passes(&tokens,
               "{\"name\":\"ci\",\"role\":\"member\",\"expires_at\":\"2030-01-31T12:00:00Z\"}");
}

Test(cp_api_tokens, without_a_tenant_a_token_is_no_wider_than_the_callers)
{
    api_refused(
        &tokens, "{\"name\":\"ci\",\"role\":\"admin\"}", 403, "forbidden", "role",
        "role \"admin\" without \"tenant_id\" is platform scope, which only platform admins "
        "grant; give \"tenant_id\" for a tenant admin token");
    token_role = CP_ROLE_MEMBER;
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"member\"}");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"owner\"}", 403, "forbidden", "role",
                "a token cannot be wider than the one you use (member)");
    token_tenant = TENANT;
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"viewer\"}", 403, "forbidden", "tenant_id",
                "this token is limited to one tenant; tokens it creates need its \"tenant_id\"");
}

Test(cp_api_tokens, in_a_tenant_a_token_is_no_wider_than_the_callers_role_there)
{
    token_role = CP_ROLE_ADMIN;
    token_tenant = TENANT;
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"admin\",\"tenant_id\":\"" TENANT "\"}");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"owner\",\"tenant_id\":\"" TENANT "\"}", 403,
                "forbidden", "role",
                "a token cannot be wider than you: you have admin in the tenant");
    api_refused(&tokens, "{\"name\":\"ci\",\"role\":\"viewer\",\"tenant_id\":\"" OTHER "\"}", 404,
                "not_found", "tenant_id", "no such tenant");
}

Test(cp_api_tokens, a_token_for_someone_else_needs_a_platform_or_tenant_admin)
{
    token_role = CP_ROLE_MEMBER;
    token_tenant = TENANT;
    api_refused(
        &tokens,
        "{\"name\":\"ci\",\"role\":\"viewer\",\"tenant_id\":\"" TENANT "\",\"user_id\":\"" SVC
        "\"}",
        403, "forbidden", "user_id",
        "only platform admins, or a tenant's admins for a token scoped to that tenant, create "
        "tokens for service accounts");
    /* one's own id, in any case, is a token for oneself */
    api_passes(&tokens, "{\"name\":\"ci\",\"role\":\"viewer\",\"tenant_id\":\"" TENANT
                        "\",\"user_id\":\"2B5C3F1E-8A2D-4C6B-9E7F-1A2B3C4D5E6F\"}");
}

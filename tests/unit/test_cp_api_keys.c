/* test_cp_api_keys.c: what creating a virtual key checks before the database (api/keys.c): its
 * name, the route aliases it may use, rate limits, the expiry's form and range, and whose key a
 * member may create. A valid request gets as far as the database, which answers 503 here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define ME "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define OTHER "2b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

static int role = CP_ROLE_ADMIN;

/* POSTs to /tenants/{TENANT}/keys as user ME through a token capped at `role`. */
static void prep(cp_req_t *r)
{
    r->who.user_platform_admin = true;
    r->who.via_token = true;
    r->who.token_role = role;
    snprintf(r->who.user_id, sizeof(r->who.user_id), "%s", ME);
    snprintf(r->param_buf[0], sizeof(r->param_buf[0]), "%s", TENANT);
    r->params[0] = r->param_buf[0];
}

static const api_target_t keys = {cp_api_keys_create, "POST", prep};

TestSuite(cp_api_keys, .init = api_setup, .fini = api_teardown);

Test(cp_api_keys, a_name_of_1_to_200_bytes_is_all_a_key_needs)
{
    api_passes(&keys, "{\"name\":\"ci\"}");
    api_refused(&keys, "{}", 400, "missing_field", "name", "\"name\" is required");
    char body[300], n[202];
    memset(n, 'n', 200);
    n[200] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", n);
    api_passes(&keys, body);
    snprintf(body, sizeof(body), "{\"name\":\"%sn\"}", n);
    api_refused(&keys, body, 422, "invalid_length", "name", "\"name\" must be 1 to 200 bytes long");
    api_refused(&keys, "{\"name\":\"ci\",\"rpm_limit\":0}", 422, "out_of_range", "rpm_limit",
                "\"rpm_limit\" must be from 1 to 2147483647");
    api_passes(&keys, "{\"name\":\"ci\",\"rpm_limit\":null,\"tpm_limit\":2147483647}");
}

Test(cp_api_keys, models_are_up_to_256_distinct_aliases)
{
    api_passes(&keys, "{\"name\":\"k\",\"models\":[\"fast\",\"smart\"]}");
    api_passes(&keys, "{\"name\":\"k\",\"models\":null}");
    api_refused(&keys, "{\"name\":\"k\",\"models\":\"fast\"}", 400, "invalid_type", "models",
                "\"models\" must be an array of route aliases");
    api_refused(&keys, "{\"name\":\"k\",\"models\":[1]}", 400, "invalid_type", "models",
                "\"models\" entries must be strings (route aliases)");
    api_refused(&keys, "{\"name\":\"k\",\"models\":[\"\"]}", 422, "invalid_length", "models",
                "\"models\" entries must be 1 to 256 bytes long");
    api_refused(&keys, "{\"name\":\"k\",\"models\":[\"a\\tb\"]}", 422, "invalid_characters",
                "models", "\"models\" entries must not contain control characters");
    api_refused(&keys, "{\"name\":\"k\",\"models\":[\"fast\",\"smart\",\"fast\"]}", 422,
                "duplicate_value", "models", "\"models\" lists \"fast\" twice");
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(tg_buf_appendf(&b, "{\"name\":\"k\",\"models\":["), 0);
    for (int i = 0; i < 256; i++)
        cr_assert_eq(tg_buf_appendf(&b, "%s\"m%d\"", i ? "," : "", i), 0);
    cr_assert_eq(tg_buf_appendf(&b, "]}%c", '\0'), 0);
    api_passes(&keys, b.base);
    b.len -= 3;
    cr_assert_eq(tg_buf_appendf(&b, ",\"m256\"]}%c", '\0'), 0);
    api_refused(&keys, b.base, 422, "invalid_length", "models",
                "\"models\" holds at most 256 aliases");
    tg_buf_dispose(&b);
    char body[700], a[258];
    memset(a, 'a', 256);
    a[256] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"k\",\"models\":[\"%s\"]}", a);
    api_passes(&keys, body);
    snprintf(body, sizeof(body), "{\"name\":\"k\",\"models\":[\"%sa\"]}", a);
    api_refused(&keys, body, 422, "invalid_length", "models",
                "\"models\" entries must be 1 to 256 bytes long");
}

Test(cp_api_keys, expires_at_is_rfc_3339_or_unix_seconds_up_to_year_9999)
{
    const char *future = "\"expires_at\" must be a time in the future";
    api_refused(&keys, "{\"name\":\"k\",\"expires_at\":0}", 422, "invalid_value", "expires_at",
                future);
    api_refused(&keys, "{\"name\":\"k\",\"expires_at\":253402300800}", 422, "invalid_value",
                "expires_at", future);
    api_refused(
        &keys, "{\"name\":\"k\",\"expires_at\":\"tomorrow\"}", 422, "invalid_value", "expires_at",
        "\"expires_at\" must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or unix seconds");
    api_refused(
        &keys, "{\"name\":\"k\",\"expires_at\":\"2030-02-30T00:00:00Z\"}", 422, "invalid_value",
        "expires_at",
        "\"expires_at\" must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or unix seconds");
    api_refused(&keys, "{\"name\":\"k\",\"expires_at\":1.5}", 400, "invalid_type", "expires_at",
                "\"expires_at\" must be an RFC 3339 string or unix seconds");
    /* the comparison with now is the database's; null clears the expiry */
    api_passes(&keys, "{\"name\":\"k\",\"expires_at\":253402300799}");
    api_passes(&keys, "{\"name\":\"k\",\"expires_at\":\"2030-01-31 12:00:00.123456789+05:30\"}");
    api_passes(&keys, "{\"name\":\"k\",\"expires_at\":null}");
}

Test(cp_api_keys, a_member_creates_keys_for_themselves_only)
{
    api_refused(&keys, "{\"name\":\"k\",\"owner_user_id\":\"bob\"}", 422, "invalid_value",
                "owner_user_id", "\"owner_user_id\" must be the id of a user in this tenant");
    api_passes(&keys,
               "{\"name\":\"k\",\"owner_user_id\":\"" OTHER "\"}"); /* an admin, for another */
    role = CP_ROLE_MEMBER;
    api_refused(&keys, "{\"name\":\"k\",\"owner_user_id\":\"" OTHER "\"}", 403, "forbidden",
                "owner_user_id",
                "members create keys only for themselves; this needs the admin role");
    api_passes(&keys, "{\"name\":\"k\"}");
    api_passes(&keys,
               "{\"name\":\"k\",\"owner_user_id\":\"1B5C3F1E-8A2D-4C6B-9E7F-1A2B3C4D5E6F\"}");
    role = CP_ROLE_VIEWER;
    api_answer_t a;
    cr_assert_eq(api_call(&keys, "{\"name\":\"k\"}", &a), 403);
    cr_assert_str_eq(a.message, "this needs the member role in the tenant; you have viewer");
}

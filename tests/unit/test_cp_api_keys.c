/* test_cp_api_keys.c: what creating a virtual key checks before the database (api/keys.c): its
 * name, the route aliases it may use, rate limits, the expiry's form and range, and whose key a
 * member may create. A valid request gets as far as the database, which answers 503 here. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"

#define TENANT "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define ME "1b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define OTHER "2b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

static cp_req_t req;
static int role = CP_ROLE_ADMIN;

static void setup(void)
{
    memset(&req, 0, sizeof(req));
    tg_buf_init(&req.out, 1u << 20);
}

static void teardown(void)
{
    tg_buf_dispose(&req.out);
}

TestSuite(cp_api_keys, .init = setup, .fini = teardown);

/* POSTs body to /tenants/{TENANT}/keys as user ME through a token capped at `role`. */
static int create(const char *body, char *code, char *field, char *message)
{
    tg_buf_reset(&req.out);
    req.status = 0;
    req.who.authenticated = true;
    req.who.user_platform_admin = true;
    req.who.via_token = true;
    req.who.token_role = role;
    snprintf(req.who.user_id, sizeof(req.who.user_id), "%s", ME);
    req.method = "POST";
    snprintf(req.param_buf[0], sizeof(req.param_buf[0]), "%s", TENANT);
    req.params[0] = req.param_buf[0];
    req.body = body;
    req.body_len = strlen(body);
    cp_api_keys_create(&req);
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
    int status = create(body, code, field, message);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, field, message);
    cr_assert_str_eq(code, "database_unavailable", "%s", body);
}

static void refused(const char *body, int status, const char *code, const char *field,
                    const char *message)
{
    char c[64], f[64], m[512];
    cr_assert_eq(create(body, c, f, m), status, "%s: %s", body, m);
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(f, field, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

Test(cp_api_keys, a_name_of_1_to_200_bytes_is_all_a_key_needs)
{
    passes("{\"name\":\"ci\"}");
    refused("{}", 400, "missing_field", "name", "\"name\" is required");
    char body[300], n[202];
    memset(n, 'n', 200);
    n[200] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", n);
    passes(body);
    snprintf(body, sizeof(body), "{\"name\":\"%sn\"}", n);
    refused(body, 422, "invalid_length", "name", "\"name\" must be 1 to 200 bytes long");
    refused("{\"name\":\"ci\",\"rpm_limit\":0}", 422, "out_of_range", "rpm_limit",
            "\"rpm_limit\" must be from 1 to 2147483647");
    passes("{\"name\":\"ci\",\"rpm_limit\":null,\"tpm_limit\":2147483647}");
}

Test(cp_api_keys, models_are_up_to_256_distinct_aliases)
{
    passes("{\"name\":\"k\",\"models\":[\"fast\",\"smart\"]}");
    passes("{\"name\":\"k\",\"models\":null}");
    refused("{\"name\":\"k\",\"models\":\"fast\"}", 400, "invalid_type", "models",
            "\"models\" must be an array of route aliases");
    refused("{\"name\":\"k\",\"models\":[1]}", 400, "invalid_type", "models",
            "\"models\" entries must be strings (route aliases)");
    refused("{\"name\":\"k\",\"models\":[\"\"]}", 422, "invalid_length", "models",
            "\"models\" entries must be 1 to 256 bytes long");
    refused("{\"name\":\"k\",\"models\":[\"a\\tb\"]}", 422, "invalid_characters", "models",
            "\"models\" entries must not contain control characters");
    refused("{\"name\":\"k\",\"models\":[\"fast\",\"smart\",\"fast\"]}", 422, "duplicate_value",
            "models", "\"models\" lists \"fast\" twice");
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(tg_buf_appendf(&b, "{\"name\":\"k\",\"models\":["), 0);
    for (int i = 0; i < 256; i++)
        cr_assert_eq(tg_buf_appendf(&b, "%s\"m%d\"", i ? "," : "", i), 0);
    cr_assert_eq(tg_buf_appendf(&b, "]}%c", '\0'), 0);
    passes(b.base);
    b.len -= 3;
    cr_assert_eq(tg_buf_appendf(&b, ",\"m256\"]}%c", '\0'), 0);
    refused(b.base, 422, "invalid_length", "models", "\"models\" holds at most 256 aliases");
    tg_buf_dispose(&b);
    char body[700], a[258];
    memset(a, 'a', 256);
    a[256] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"k\",\"models\":[\"%s\"]}", a);
    passes(body);
    snprintf(body, sizeof(body), "{\"name\":\"k\",\"models\":[\"%sa\"]}", a);
    refused(body, 422, "invalid_length", "models",
            "\"models\" entries must be 1 to 256 bytes long");
}

Test(cp_api_keys, expires_at_is_rfc_3339_or_unix_seconds_up_to_year_9999)
{
    const char *future = "\"expires_at\" must be a time in the future";
    refused("{\"name\":\"k\",\"expires_at\":0}", 422, "invalid_value", "expires_at", future);
    refused("{\"name\":\"k\",\"expires_at\":253402300800}", 422, "invalid_value", "expires_at",
            future);
    refused(
        "{\"name\":\"k\",\"expires_at\":\"tomorrow\"}", 422, "invalid_value", "expires_at",
        "\"expires_at\" must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or unix seconds");
    refused(
        "{\"name\":\"k\",\"expires_at\":\"2030-02-30T00:00:00Z\"}", 422, "invalid_value",
        "expires_at",
        "\"expires_at\" must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or unix seconds");
    refused("{\"name\":\"k\",\"expires_at\":1.5}", 400, "invalid_type", "expires_at",
            "\"expires_at\" must be an RFC 3339 string or unix seconds");
    /* the comparison with now is the database's; null clears the expiry */
    passes("{\"name\":\"k\",\"expires_at\":253402300799}");
    passes("{\"name\":\"k\",\"expires_at\":\"2030-01-31 12:00:00.123456789+05:30\"}");
    passes("{\"name\":\"k\",\"expires_at\":null}");
}

Test(cp_api_keys, a_member_creates_keys_for_themselves_only)
{
    refused("{\"name\":\"k\",\"owner_user_id\":\"bob\"}", 422, "invalid_value", "owner_user_id",
            "\"owner_user_id\" must be the id of a user in this tenant");
    passes("{\"name\":\"k\",\"owner_user_id\":\"" OTHER "\"}"); /* an admin, for another */
    role = CP_ROLE_MEMBER;
    refused("{\"name\":\"k\",\"owner_user_id\":\"" OTHER "\"}", 403, "forbidden", "owner_user_id",
            "members create keys only for themselves; this needs the admin role");
    passes("{\"name\":\"k\"}");
    passes("{\"name\":\"k\",\"owner_user_id\":\"1B5C3F1E-8A2D-4C6B-9E7F-1A2B3C4D5E6F\"}");
    role = CP_ROLE_VIEWER;
    char c[64], f[64], m[512];
    cr_assert_eq(create("{\"name\":\"k\"}", c, f, m), 403);
    cr_assert_str_eq(m, "this needs the member role in the tenant; you have viewer");
}

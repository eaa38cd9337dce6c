/* test_cp_api_tenants.c: what creating a tenant checks before the database (api/tenants.c): only
 * platform admins, a slug of 1 to 63 lower-case letters, digits and '-', a name, rate limits. A
 * valid request gets as far as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"

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

TestSuite(cp_api_tenants, .init = setup, .fini = teardown);

static int create(bool platform, const char *body, char *code, char *field, char *message)
{
    tg_buf_reset(&req.out);
    req.status = 0;
    req.who.authenticated = true;
    req.who.platform_admin = platform;
    req.method = "POST";
    req.body = body;
    req.body_len = strlen(body);
    cp_api_tenants_create(&req);
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
    int status = create(true, body, code, field, message);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, field, message);
    cr_assert_str_eq(code, "database_unavailable", "%s", body);
}

static void refused(const char *body, int status, const char *code, const char *field,
                    const char *message)
{
    char c[64], f[64], m[512];
    cr_assert_eq(create(true, body, c, f, m), status, "%s: %s", body, m);
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(f, field, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

Test(cp_api_tenants, only_platform_admins_create_tenants)
{
    char c[64], f[64], m[512];
    cr_assert_eq(create(false, "{\"slug\":\"acme\",\"name\":\"Acme\"}", c, f, m), 403);
    cr_assert_str_eq(m, "only platform admins create tenants");
    passes("{\"slug\":\"acme\",\"name\":\"Acme\"}");
}

Test(cp_api_tenants, a_slug_is_1_to_63_lower_case_letters_digits_and_dashes)
{
    const char *rule = "\"slug\" must be lower-case letters, digits and '-', not starting with '-'";
    passes("{\"slug\":\"a\",\"name\":\"A\"}");
    passes("{\"slug\":\"0-a-\",\"name\":\"A\"}");
    refused("{\"slug\":\"-a\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    refused("{\"slug\":\"Acme\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    refused("{\"slug\":\"a_b\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    refused("{\"slug\":\"a.b\",\"name\":\"A\"}", 422, "invalid_value", "slug", rule);
    refused("{\"slug\":\"\",\"name\":\"A\"}", 422, "invalid_length", "slug",
            "\"slug\" must be 1 to 63 bytes long");
    char body[200], s[65];
    memset(s, 's', 63);
    s[63] = '\0';
    snprintf(body, sizeof(body), "{\"slug\":\"%s\",\"name\":\"A\"}", s);
    passes(body);
    snprintf(body, sizeof(body), "{\"slug\":\"%ss\",\"name\":\"A\"}", s);
    refused(body, 422, "invalid_length", "slug", "\"slug\" must be 1 to 63 bytes long");
}

Test(cp_api_tenants, a_name_of_1_to_200_bytes_and_limits)
{
    refused("{\"slug\":\"a\"}", 400, "missing_field", "name", "\"name\" is required");
    char body[400], n[202];
    memset(n, 'n', 200);
    n[200] = '\0';
    snprintf(body, sizeof(body), "{\"slug\":\"a\",\"name\":\"%s\"}", n);
    passes(body);
    snprintf(body, sizeof(body), "{\"slug\":\"a\",\"name\":\"%sn\"}", n);
    refused(body, 422, "invalid_length", "name", "\"name\" must be 1 to 200 bytes long");
    passes("{\"slug\":\"a\",\"name\":\"A\",\"rpm_limit\":1,\"tpm_limit\":null}");
    refused("{\"slug\":\"a\",\"name\":\"A\",\"tpm_limit\":2147483648}", 422, "out_of_range",
            "tpm_limit", "\"tpm_limit\" must be from 1 to 2147483647");
    refused("{\"slug\":\"a\",\"name\":\"A\",\"owner\":\"x\"}", 400, "unknown_field", "owner",
            "unknown field \"owner\"");
}

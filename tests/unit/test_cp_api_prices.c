/* test_cp_api_prices.c: what setting a price checks before the database (api/prices.c): platform
 * admins only, a provider id, a model of 1 to 256 bytes without control characters, and amounts
 * from 0 to 1000000 USD per million tokens (cached input optional). A valid request gets as far
 * as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"

#define PID "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define PRICE(extra)                                                                               \
    "{\"provider_id\":\"" PID                                                                      \
    "\",\"model\":\"m\",\"input_per_mtok\":1,\"output_per_mtok\":2" extra "}"

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

TestSuite(cp_api_prices, .init = setup, .fini = teardown);

static int put(bool platform, const char *body, char *code, char *field, char *message)
{
    tg_buf_reset(&req.out);
    req.status = 0;
    req.who.authenticated = true;
    req.who.platform_admin = platform;
    req.method = "PUT";
    req.body = body;
    req.body_len = strlen(body);
    cp_api_prices_put(&req);
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
    int status = put(true, body, code, field, message);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, field, message);
    cr_assert_str_eq(code, "database_unavailable", "%s", body);
}

static void refused(const char *body, int status, const char *code, const char *field,
                    const char *message)
{
    char c[64], f[64], m[512];
    cr_assert_eq(put(true, body, c, f, m), status, "%s: %s", body, m);
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(f, field, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

Test(cp_api_prices, only_platform_admins_change_prices)
{
    char c[64], f[64], m[512];
    cr_assert_eq(put(false, PRICE(""), c, f, m), 403);
    cr_assert_str_eq(m, "only platform admins change prices");
    passes(PRICE(""));
}

Test(cp_api_prices, a_price_names_a_provider_by_id_and_a_model)
{
    refused("{\"provider_id\":\"openai\",\"model\":\"m\",\"input_per_mtok\":1,\"output_per_mtok\":"
            "2}",
            422, "invalid_value", "provider_id", "\"provider_id\" must be a provider id (a UUID)");
    refused("{\"provider_id\":\"" PID "\",\"input_per_mtok\":1,\"output_per_mtok\":2}", 400,
            "missing_field", "model", "\"model\" is required");
    refused("{\"provider_id\":\"" PID "\",\"model\":\"a\\tb\",\"input_per_mtok\":1,"
            "\"output_per_mtok\":2}",
            422, "invalid_characters", "model", "\"model\" must not contain control characters");
    char body[700], m[258];
    memset(m, 'm', 256);
    m[256] = '\0';
    snprintf(body, sizeof(body),
             "{\"provider_id\":\"" PID "\",\"model\":\"%s\",\"input_per_mtok\":1,"
             "\"output_per_mtok\":2}",
             m);
    passes(body);
    snprintf(body, sizeof(body),
             "{\"provider_id\":\"" PID "\",\"model\":\"%sm\",\"input_per_mtok\":1,"
             "\"output_per_mtok\":2}",
             m);
    refused(body, 422, "invalid_length", "model", "\"model\" must be 1 to 256 bytes long");
}

Test(cp_api_prices, amounts_are_0_to_a_million_usd_per_million_tokens)
{
    const char *range = "\"output_per_mtok\" must be from 0 to 1000000 (USD per million tokens)";
    passes("{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
           "\"output_per_mtok\":1000000,\"cached_input_per_mtok\":0.000000001}");
    refused("{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
            "\"output_per_mtok\":1000000.001}",
            422, "out_of_range", "output_per_mtok", range);
    refused("{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
            "\"output_per_mtok\":-1}",
            422, "out_of_range", "output_per_mtok", range);
    refused("{\"provider_id\":\"" PID "\",\"model\":\"m\",\"output_per_mtok\":1}", 400,
            "missing_field", "input_per_mtok", "\"input_per_mtok\" is required");
    refused(PRICE(",\"cached_input_per_mtok\":\"0.5\""), 400, "invalid_type",
            "cached_input_per_mtok", "\"cached_input_per_mtok\" must be a number");
    passes(PRICE(",\"cached_input_per_mtok\":null"));
}

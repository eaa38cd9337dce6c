/* test_cp_api_prices.c: what setting a price checks before the database (api/prices.c): platform
 * admins only, a provider id, a model of 1 to 256 bytes without control characters, and amounts
 * from 0 to 1000000 USD per million tokens (cached input optional). A valid request gets as far
 * as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

#define PID "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define PRICE(extra)                                                                               \
    "{\"provider_id\":\"" PID                                                                      \
    "\",\"model\":\"m\",\"input_per_mtok\":1,\"output_per_mtok\":2" extra "}"

static bool platform = true;

/* PUTs as a platform admin, or (platform false) as a user who is not one. */
static void prep(cp_req_t *r)
{
    r->who.platform_admin = platform;
}

static const api_target_t prices = {cp_api_prices_put, "PUT", prep};

TestSuite(cp_api_prices, .init = api_setup, .fini = api_teardown);

Test(cp_api_prices, only_platform_admins_change_prices)
{
    api_answer_t a;
    platform = false;
    cr_assert_eq(api_call(&prices, PRICE(""), &a), 403);
    cr_assert_str_eq(a.message, "only platform admins change prices");
    platform = true;
    api_passes(&prices, PRICE(""));
}

Test(cp_api_prices, a_price_names_a_provider_by_id_and_a_model)
{
    api_refused(
        &prices,
        "{\"provider_id\":\"openai\",\"model\":\"m\",\"input_per_mtok\":1,\"output_per_mtok\":"
        "2}",
        422, "invalid_value", "provider_id", "\"provider_id\" must be a provider id (a UUID)");
    api_refused(&prices, "{\"provider_id\":\"" PID "\",\"input_per_mtok\":1,\"output_per_mtok\":2}",
                400, "missing_field", "model", "\"model\" is required");
    api_refused(&prices,
                "{\"provider_id\":\"" PID "\",\"model\":\"a\\tb\",\"input_per_mtok\":1,"
                "\"output_per_mtok\":2}",
                422, "invalid_characters", "model",
                "\"model\" must not contain control characters");
    char body[700], m[258];
    memset(m, 'm', 256);
    m[256] = '\0';
    snprintf(body, sizeof(body),
             "{\"provider_id\":\"" PID "\",\"model\":\"%s\",\"input_per_mtok\":1,"
             "\"output_per_mtok\":2}",
             m);
    api_passes(&prices, body);
    snprintf(body, sizeof(body),
             "{\"provider_id\":\"" PID "\",\"model\":\"%sm\",\"input_per_mtok\":1,"
             "\"output_per_mtok\":2}",
             m);
    api_refused(&prices, body, 422, "invalid_length", "model",
                "\"model\" must be 1 to 256 bytes long");
}

Test(cp_api_prices, amounts_are_0_to_a_million_usd_per_million_tokens)
{
    const char *range = "\"output_per_mtok\" must be from 0 to 1000000 (USD per million tokens)";
    api_passes(&prices, "{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
                        "\"output_per_mtok\":1000000,\"cached_input_per_mtok\":0.000000001}");
    api_refused(&prices,
                "{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
                "\"output_per_mtok\":1000000.001}",
                422, "out_of_range", "output_per_mtok", range);
    api_refused(&prices,
                "{\"provider_id\":\"" PID "\",\"model\":\"m\",\"input_per_mtok\":0,"
                "\"output_per_mtok\":-1}",
                422, "out_of_range", "output_per_mtok", range);
    api_refused(&prices, "{\"provider_id\":\"" PID "\",\"model\":\"m\",\"output_per_mtok\":1}", 400,
                "missing_field", "input_per_mtok", "\"input_per_mtok\" is required");
    api_refused(&prices, PRICE(",\"cached_input_per_mtok\":\"0.5\""), 400, "invalid_type",
                "cached_input_per_mtok", "\"cached_input_per_mtok\" must be a number");
    api_passes(&prices, PRICE(",\"cached_input_per_mtok\":null"));
}

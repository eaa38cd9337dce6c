/* test_cp_api_routes.c: what POST /api/v1/routes checks before it stores anything
 * (api/routes.c): the alias, strategy, targets (provider id, model, weight, info), retry and the
 * timeouts that must nest inside timeout_ms. A platform admin's request with a valid body gets as
 * far as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

/* POSTs as a platform admin. */
static void prep(cp_req_t *r)
{
    r->who.platform_admin = true;
}

static const api_target_t routes = {cp_api_routes_create, "POST", prep};

TestSuite(cp_api_routes, .init = api_setup, .fini = api_teardown);

#define PID "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"
#define T(extra) "{\"provider_id\":\"" PID "\",\"model\":\"gpt-x\"" extra "}"
#define R(extra) "{\"alias\":\"fast\",\"targets\":[" T("") "]" extra "}"

Test(cp_api_routes, only_platform_admins_change_routes)
{
    api_req.body = R("");
    api_req.body_len = strlen(api_req.body);
    cp_api_routes_create(&api_req);
    cr_assert_eq(api_req.status, 403);
}

Test(cp_api_routes, a_complete_route_passes_every_check)
{
    api_passes(&routes, R(""));
    static const char every[] =
        "{\"alias\":\"a\",\"strategy\":\"cheapest\",\"targets\":["
        "{\"provider_id\":\"" PID "\",\"model\":\"m1\",\"weight\":0},"
        "{\"provider_id\":\"" PID "\",\"model\":\"m2\",\"weight\":1000000,\"info\":{"
        "\"context_window\":1000000000,\"max_output_tokens\":1,"
        "\"capabilities\":{\"tools\":true,\"vision\":false}}}],"
        "\"retry\":{\"max_attempts\":10,\"backoff_ms\":60000,\"on_status\":[429,500,429]},"
        "\"connect_timeout_ms\":3600000,\"timeout_ms\":3600000,\"first_byte_timeout_ms\":0,"
        "\"idle_timeout_ms\":3600000,\"cache_ttl_s\":2678400,\"allow_unpriced\":true}";
    api_passes(&routes, every);
}

Test(cp_api_routes, the_alias_strategy_and_route_members)
{
    api_refused(&routes, "{\"targets\":[" T("") "]}", 400, "missing_field", "alias",
                "\"alias\" is required");
    api_refused(&routes, "{\"alias\":\"a\"}", 400, "missing_field", "targets",
                "\"targets\" is required");
    api_refused(&routes, R(",\"strategy\":\"random\""), 422, "invalid_value", "strategy",
                "\"strategy\" must be one of: weighted, least_busy, lowest_latency, cheapest");
    api_refused(&routes, R(",\"priority\":1"), 400, "unknown_field", "priority",
                "unknown field \"priority\"");
    api_refused(&routes, R(",\"timeout_ms\":0"), 422, "out_of_range", "timeout_ms",
                "\"timeout_ms\" must be from 1 to 3600000");
    api_refused(&routes, R(",\"timeout_ms\":3600001"), 422, "out_of_range", "timeout_ms",
                "\"timeout_ms\" must be from 1 to 3600000");
    api_refused(&routes, R(",\"cache_ttl_s\":2678401"), 422, "out_of_range", "cache_ttl_s",
                "\"cache_ttl_s\" must be from 0 to 2678400");
    api_refused(&routes, R(",\"cache_ttl_s\":-1"), 422, "out_of_range", "cache_ttl_s",
                "\"cache_ttl_s\" must be from 0 to 2678400");
}

Test(cp_api_routes, timeouts_nest_inside_timeout_ms)
{
    api_passes(&routes,
               R(",\"timeout_ms\":5000,\"connect_timeout_ms\":5000,\"first_byte_timeout_ms\":5000,"
                 "\"idle_timeout_ms\":5000"));
    api_refused(&routes, R(",\"timeout_ms\":5000,\"connect_timeout_ms\":5001"), 422,
                "invalid_value", "connect_timeout_ms",
                "\"connect_timeout_ms\" must not exceed \"timeout_ms\"");
    api_refused(&routes,
                R(",\"timeout_ms\":5000,\"connect_timeout_ms\":1,\"first_byte_timeout_ms\":5001"),
                422, "invalid_value", "first_byte_timeout_ms",
                "\"first_byte_timeout_ms\" must not exceed \"timeout_ms\"");
    api_refused(
        &routes, R(",\"timeout_ms\":5000,\"connect_timeout_ms\":1,\"idle_timeout_ms\":5001"), 422,
        "invalid_value", "idle_timeout_ms", "\"idle_timeout_ms\" must not exceed \"timeout_ms\"");
    /* the defaults: connect 10 s, whole 600 s */
    api_refused(&routes, R(",\"timeout_ms\":9999"), 422, "invalid_value", "connect_timeout_ms",
                "\"connect_timeout_ms\" must not exceed \"timeout_ms\"");
    api_passes(&routes, R(",\"timeout_ms\":10000"));
    api_refused(&routes, R(",\"idle_timeout_ms\":600001"), 422, "invalid_value", "idle_timeout_ms",
                "\"idle_timeout_ms\" must not exceed \"timeout_ms\"");
    api_passes(&routes, R(",\"idle_timeout_ms\":600000"));
}

Test(cp_api_routes, targets_are_1_to_64_with_weights_adding_up_to_more_than_0)
{
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[]}", 422, "invalid_length", "targets",
                "\"targets\" must hold 1 to 64 targets");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":{}}", 400, "invalid_type", "targets",
                "\"targets\" must be an array");
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(tg_buf_appendf(&b, "{\"alias\":\"a\",\"targets\":["), 0);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(tg_buf_appendf(&b, "%s%s", i ? "," : "", T("")), 0);
    cr_assert_eq(tg_buf_appendf(&b, "]}%c", '\0'), 0);
    api_passes(&routes, b.base);
    b.len -= 3;
    cr_assert_eq(tg_buf_appendf(&b, ",%s]}%c", T(""), '\0'), 0);
    api_refused(&routes, b.base, 422, "invalid_length", "targets",
                "\"targets\" must hold 1 to 64 targets");
    tg_buf_dispose(&b);
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"weight\":0") "]}", 422,
                "invalid_value", "targets",
                "the weights of \"targets\" must add up to more than 0");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"weight\":1000001") "]}", 422,
                "out_of_range", "targets[0].weight",
                "\"targets[0].weight\" must be from 0 to 1000000");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"weight\":-1") "]}", 422,
                "out_of_range", "targets[0].weight",
                "\"targets[0].weight\" must be from 0 to 1000000");
}

Test(cp_api_routes, each_target_names_a_provider_id_and_a_model)
{
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T("") ",1]}", 400, "invalid_type",
                "targets[1]", "\"targets[1]\" must be an object");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[{\"model\":\"m\"}]}", 400, "missing_field",
                "targets[0].provider_id", "\"targets[0].provider_id\" is required");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"p1\",\"model\":\"m\"}]}",
                422, "invalid_value", "targets[0].provider_id",
                "\"targets[0].provider_id\" must be a provider id (a UUID)");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"" PID "\"}]}", 400,
                "missing_field", "targets[0].model", "\"targets[0].model\" is required");
    api_refused(&routes,
                "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"" PID "\",\"model\":\"\"}]}", 422,
                "invalid_length", "targets[0].model",
                "\"targets[0].model\" must be 1 to 256 bytes long");
    api_refused(&routes,
                "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"" PID "\",\"model\":\"a\\nb\"}]}",
                422, "invalid_characters", "targets[0].model",
                "\"targets[0].model\" must not contain control characters");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"region\":\"x\"") "]}", 400,
                "unknown_field", "targets[0].region", "unknown field \"targets[0].region\"");
    char body[1000], m256[257];
    memset(m256, 'm', 256);
    m256[256] = '\0';
    snprintf(body, sizeof(body),
             "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"" PID "\",\"model\":\"%s\"}]}",
             m256);
    api_passes(&routes, body);
    snprintf(body, sizeof(body),
             "{\"alias\":\"a\",\"targets\":[{\"provider_id\":\"" PID "\",\"model\":\"%sm\"}]}",
             m256);
    api_refused(&routes, body, 422, "invalid_length", "targets[0].model",
                "\"targets[0].model\" must be 1 to 256 bytes long");
}

Test(cp_api_routes, a_targets_info_overrides_known_members_only)
{
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"info\":[]") "]}", 400,
                "invalid_type", "targets[0].info", "\"targets[0].info\" must be an object");
    api_refused(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"info\":{\"price\":1}") "]}", 400,
                "unknown_field", "targets[0].info.price",
                "unknown field \"targets[0].info.price\"");
    api_refused(&routes,
                "{\"alias\":\"a\",\"targets\":[" T(",\"info\":{\"context_window\":0}") "]}", 422,
                "out_of_range", "targets[0].info.context_window",
                "\"targets[0].info.context_window\" must be from 1 to 1000000000");
    api_refused(
        &routes,
        "{\"alias\":\"a\",\"targets\":[" T(",\"info\":{\"max_output_tokens\":1000000001}") "]}",
        422, "out_of_range", "targets[0].info.max_output_tokens",
        "\"targets[0].info.max_output_tokens\" must be from 1 to 1000000000");
    api_refused(
        &routes,
        "{\"alias\":\"a\",\"targets\":[" T(",\"info\":{\"capabilities\":{\"audio\":true}}") "]}",
        400, "unknown_field", "targets[0].info.capabilities.audio",
        "unknown field \"targets[0].info.capabilities.audio\"");
    api_refused(
        &routes,
        "{\"alias\":\"a\",\"targets\":[" T(",\"info\":{\"capabilities\":{\"tools\":1}}") "]}", 400,
        "invalid_type", "targets[0].info.capabilities",
        "\"targets[0].info.capabilities.tools\" must be true or false");
    api_passes(&routes, "{\"alias\":\"a\",\"targets\":[" T(",\"info\":null") "]}");
}

Test(cp_api_routes, retry_is_1_to_10_attempts_with_up_to_32_statuses_from_400_to_599)
{
    api_refused(&routes, R(",\"retry\":[]"), 400, "invalid_type", "retry",
                "\"retry\" must be an object");
    api_refused(&routes, R(",\"retry\":{\"max_attempts\":0}"), 422, "out_of_range",
                "retry.max_attempts", "\"retry.max_attempts\" must be from 1 to 10");
    api_refused(&routes, R(",\"retry\":{\"max_attempts\":11}"), 422, "out_of_range",
                "retry.max_attempts", "\"retry.max_attempts\" must be from 1 to 10");
    api_refused(&routes, R(",\"retry\":{\"backoff_ms\":60001}"), 422, "out_of_range",
                "retry.backoff_ms", "\"retry.backoff_ms\" must be from 0 to 60000");
    api_refused(&routes, R(",\"retry\":{\"jitter\":true}"), 400, "unknown_field", "retry.jitter",
                "unknown field \"retry.jitter\"");
    api_refused(&routes, R(",\"retry\":{\"on_status\":[399]}"), 422, "out_of_range",
                "retry.on_status", "\"retry.on_status\" codes must be from 400 to 599");
    api_refused(&routes, R(",\"retry\":{\"on_status\":[600]}"), 422, "out_of_range",
                "retry.on_status", "\"retry.on_status\" codes must be from 400 to 599");
    api_refused(&routes, R(",\"retry\":{\"on_status\":[\"429\"]}"), 400, "invalid_type",
                "retry.on_status", "\"retry.on_status\" must hold integers");
    api_refused(&routes, R(",\"retry\":{\"on_status\":429}"), 400, "invalid_type",
                "retry.on_status", "\"retry.on_status\" must be an array of HTTP status codes");
    api_passes(&routes, R(",\"retry\":{\"on_status\":[400,599]}"));
    tg_buf_t b = TG_BUF_INIT(1u << 16);
    cr_assert_eq(
        tg_buf_appendf(&b, "{\"alias\":\"a\",\"targets\":[%s],\"retry\":{\"on_status\":[", T("")),
        0);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(tg_buf_appendf(&b, "%s%d", i ? "," : "", 500 + i), 0);
    cr_assert_eq(tg_buf_appendf(&b, "]}}%c", '\0'), 0);
    api_passes(&routes, b.base);
    b.len -= 4;
    cr_assert_eq(tg_buf_appendf(&b, ",532]}}%c", '\0'), 0);
    api_refused(&routes, b.base, 422, "invalid_length", "retry.on_status",
                "\"retry.on_status\" holds at most 32 codes");
    tg_buf_dispose(&b);
}

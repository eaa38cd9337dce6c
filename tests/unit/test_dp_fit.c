/* test_dp_fit.c: what a request needs from its body, whether a target fits it, and its
 * estimated cost on a target (dataplane/fit.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "fit.h"

static dp_fit_need_t scan(const char *body, int64_t max_tokens)
{
    dp_fit_need_t n;
    dp_fit_need_scan(&n, body, strlen(body), max_tokens);
    return n;
}

Test(dp_fit, tools_are_a_non_empty_top_level_tools_or_functions)
{
    cr_assert_eq(scan("{\"model\":\"m\",\"tools\":[{\"type\":\"function\"}]}", -1).caps,
                 TG_CAP_TOOLS);
    cr_assert_eq(scan("{\"functions\" : [ {\"name\":\"f\"} ]}", -1).caps, TG_CAP_TOOLS);
    cr_assert_eq(scan("{\"tools\":[ ]}", -1).caps, 0);
    /* a "tools" nested below the top level, or inside a string, is no need */
    cr_assert_eq(scan("{\"metadata\":{\"tools\":[1]}}", -1).caps, 0);
    cr_assert_eq(scan("{\"messages\":[{\"content\":\"\\\"tools\\\":[1]\"}]}", -1).caps, 0);
}

Test(dp_fit, images_are_parts_of_an_image_type)
{
    dp_fit_need_t n =
        scan("{\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"image_url\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x\"}}]}]}",
             -1);
    cr_assert_eq(n.caps, TG_CAP_VISION);
    cr_assert_eq(n.images, 1);
    n = scan("{\"messages\":[{\"content\":[{\"source\":{\"data\":\"AAAA\"},\"type\":\"image\"}]}]}",
             -1);
    cr_assert_eq(n.images, 1);
    cr_assert_eq(scan("{\"input\":[{\"type\":\"input_image\"}]}", -1).images, 1);
    /* the word in a text is no image */
    cr_assert_eq(scan("{\"messages\":[{\"content\":\"type: image_url\"}]}", -1).caps, 0);
}

Test(dp_fit, estimate_counts_text_by_four_bytes_and_images_flat)
{
    char body[4096];
    /* 400 bytes of text in a body */
    memset(body, 0, sizeof(body));
    strcpy(body, "{\"messages\":[{\"content\":\"");
    size_t n = strlen(body);
    memset(body + n, 'x', 400);
    memcpy(body + n + 400, "\"}]}", 5);
    dp_fit_need_t need = scan(body, 100);
    cr_assert_eq(need.prompt_tokens, (int64_t)((strlen(body) + 3) / 4));
    cr_assert_eq(need.max_tokens, 100);
    /* a data: URL's bytes are not text; the image counts DP_FIT_IMAGE_TOKENS */
    const char *img =
        "{\"m\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}}]}";
    need = scan(img, -1);
    size_t url_len = strlen("data:image/png;base64,") + 72;
    cr_assert_eq(need.inline_bytes, url_len);
    cr_assert_eq(need.prompt_tokens,
                 (int64_t)((strlen(img) - url_len + 3) / 4) + DP_FIT_IMAGE_TOKENS);
}

Test(dp_fit, unknown_info_filters_nothing)
{
    dp_fit_need_t n = scan("{\"tools\":[1],\"m\":[{\"type\":\"image\"}]}", 1000000);
    tg_model_info_t info = {0};
    cr_assert_eq(dp_fit_check(&n, &info), 0);
    /* a capability stated only for vision: tools stay unknown */
    info.caps_known = TG_CAP_VISION;
    info.caps = TG_CAP_VISION;
    cr_assert_eq(dp_fit_check(&n, &info), 0);
}

Test(dp_fit, check_says_each_reason)
{
    dp_fit_need_t n = scan("{\"tools\":[1],\"m\":[{\"type\":\"image\"}]}", 600);
    tg_model_info_t info = {.context_window = 1000,
                            .max_output_tokens = 500,
                            .caps_known = TG_CAP_TOOLS | TG_CAP_VISION,
                            .caps = 0};
    cr_assert_eq(dp_fit_check(&n, &info),
                 DP_FIT_NO_TOOLS | DP_FIT_NO_VISION | DP_FIT_CONTEXT | DP_FIT_OUTPUT);
    info.caps = TG_CAP_TOOLS | TG_CAP_VISION;
    info.context_window = n.prompt_tokens + 600; /* exactly fits */
    info.max_output_tokens = 600;
    cr_assert_eq(dp_fit_check(&n, &info), 0);
    info.context_window--;
    cr_assert_eq(dp_fit_check(&n, &info), DP_FIT_CONTEXT);
}

Test(dp_fit, cost_uses_max_tokens_or_the_default_output_and_unpriced_sorts_last)
{
    tg_provider_t p = {.id = "p"};
    tg_target_t t[3] = {
        {.provider = &p, .model = "dear", .price = {.input = 10, .output = 30, .set = true}},
        {.provider = &p, .model = "free"},
        {.provider = &p, .model = "cheap", .price = {.input = 1, .output = 2, .set = true}},
    };
    dp_fit_need_t n = {.prompt_tokens = 100, .max_tokens = 50};
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 100 * 10 + 50 * 30);
    cr_assert_eq(dp_fit_cost(&n, &t[1]), INT64_MAX);
    n.max_tokens = -1;
    cr_assert_eq(dp_fit_cost(&n, &t[2]), 100 * 1 + DP_FIT_DEFAULT_OUTPUT * 2);
    t[2].info.max_output_tokens = 10; /* the default output is capped by the model's */
    cr_assert_eq(dp_fit_cost(&n, &t[2]), 100 * 1 + 10 * 2);
    tg_route_t rt = {.alias = "r", .targets = t, .ntargets = 3};
    size_t order[3];
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 2);
    cr_assert_eq(order[1], 0);
    cr_assert_eq(order[2], 1);
}

Test(dp_fit, reasoning_is_an_effort_but_none_or_enabled_thinking_with_its_budget)
{
    cr_assert_not(scan("{\"model\":\"m\",\"messages\":[]}", -1).reasoning);
    cr_assert(scan("{\"model\":\"m\",\"reasoning_effort\":\"low\"}", -1).reasoning);
    cr_assert_not(scan("{\"model\":\"m\",\"reasoning_effort\":\"none\"}", -1).reasoning);
    cr_assert(scan("{\"model\":\"m\",\"reasoning\":{\"effort\":\"high\"}}", -1).reasoning);
    /* an "effort" elsewhere says nothing */
    cr_assert_not(scan("{\"model\":\"m\",\"metadata\":{\"effort\":\"high\"}}", -1).reasoning);
    dp_fit_need_t n = scan("{\"model\":\"m\",\"max_tokens\":3000,\"thinking\": "
                           "{\"type\":\"enabled\",\"budget_tokens\": "
                           "2048}}",
                           3000);
    cr_assert(n.reasoning);
    cr_assert_eq(n.reasoning_budget, 2048);
    n = scan("{\"thinking\":{\"budget_tokens\":2048,\"type\":\"disabled\"}}", 3000);
    cr_assert_not(n.reasoning);
    /* a budget_tokens outside thinking is not one */
    cr_assert_eq(scan("{\"metadata\":{\"budget_tokens\":5}}", -1).reasoning_budget, 0);
}

/* A price whose rates double above 200k input tokens (the rule of Anthropic's and Gemini's long
 * context), against a flat one between the two. */
static const tg_price_t tiered = {.input = 1000000,
                                  .cached_input = 1000000,
                                  .output = 5000000,
                                  .cache_write = 1000000,
                                  .cache_write_1h = 1000000,
                                  .reasoning = 5000000,
                                  .set = true,
                                  .ntiers = 1,
                                  .tiers = {{.above_input_tokens = 200000,
                                             .input = 2000000,
                                             .cached_input = 2000000,
                                             .output = 10000000,
                                             .cache_write = 2000000,
                                             .cache_write_1h = 2000000,
                                             .reasoning = 10000000}}};

Test(dp_fit, cost_takes_the_long_context_tier_the_prompt_estimate_reaches)
{
    tg_provider_t p = {.id = "p"};
    tg_price_t flat = {.input = 1500000, .output = 7500000, .set = true};
    flat.cached_input = flat.cache_write = flat.cache_write_1h = flat.input;
    flat.reasoning = flat.output;
    tg_target_t t[2] = {{.provider = &p, .model = "tiered", .price = tiered},
                        {.provider = &p, .model = "flat", .price = flat}};
    tg_route_t rt = {.alias = "r", .targets = t, .ntargets = 2};
    size_t order[2];
    /* 250k: the whole request at the tier's rates, so the flat price wins */
    dp_fit_need_t n = {.prompt_tokens = 250000, .max_tokens = 1000};
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 250000LL * 2000000 + 1000LL * 10000000);
    cr_assert_eq(dp_fit_cost(&n, &t[1]), 250000LL * 1500000 + 1000LL * 7500000);
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 1);
    /* at exactly 200k the base rates apply, and the tiered target wins */
    n.prompt_tokens = 200000;
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 200000LL * 1000000 + 1000LL * 5000000);
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 0);
    /* one token more and it loses */
    n.prompt_tokens = 200001;
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 1);
    /* the estimate from a body: 4 bytes a token */
    n = scan("{\"model\":\"m\"}", 1000);
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 4LL * 1000000 + 1000LL * 5000000);
}

Test(dp_fit, cost_prices_reasoning_apart_when_the_request_asks_for_it)
{
    tg_provider_t p = {.id = "p"};
    /* reasoning billed at 4x output on "think", as output on "plain" */
    tg_price_t think = {.input = 1000000, .output = 2000000, .reasoning = 8000000, .set = true};
    tg_price_t plain = {.input = 1000000, .output = 3000000, .reasoning = 3000000, .set = true};
    tg_target_t t[2] = {{.provider = &p, .model = "think", .price = think},
                        {.provider = &p, .model = "plain", .price = plain}};
    tg_route_t rt = {.alias = "r", .targets = t, .ntargets = 2};
    size_t order[2];
    dp_fit_need_t n = {.prompt_tokens = 100, .max_tokens = 1000};
    /* no reasoning asked: output at the output price, "think" is cheaper */
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 100LL * 1000000 + 1000LL * 2000000);
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 0);
    /* an effort without a budget: all of the output may be reasoning */
    n.reasoning = true;
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 100LL * 1000000 + 1000LL * 8000000);
    cr_assert_eq(dp_fit_cost(&n, &t[1]), 100LL * 1000000 + 1000LL * 3000000);
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 1);
    /* a thinking budget: that many reasoning tokens, the rest output */
    n.reasoning_budget = 100;
    cr_assert_eq(dp_fit_cost(&n, &t[0]), 100LL * 1000000 + 100LL * 8000000 + 900LL * 2000000);
    dp_fit_order_by_cost(&n, &rt, order);
    cr_assert_eq(order[0], 0);
}

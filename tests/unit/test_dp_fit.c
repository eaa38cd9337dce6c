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

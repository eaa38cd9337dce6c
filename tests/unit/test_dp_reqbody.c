/* test_dp_reqbody.c: reading the fields the gateway acts on and writing the upstream body. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "reqbody.h"

static int parse(dp_reqbody_t *rb, int ep, const char *body, tg_err_t *err)
{
    tg_err_clear(err);
    return dp_reqbody_parse(rb, ep, body, strlen(body), err);
}

/* The body must be refused with a 400 whose message contains `why`. */
static void expect_400(int ep, const char *body, const char *why)
{
    dp_reqbody_t rb;
    tg_err_t err;
    int rc = parse(&rb, ep, body, &err);
    cr_assert_eq(rc, TG_EINVAL, "accepted: %s", body);
    cr_assert_eq(err.code, TG_EINVAL);
    cr_assert_eq(err.status, 400);
    cr_assert_str_eq(err.type, "invalid_request_error");
    cr_assert_not_null(strstr(err.msg, why), "message \"%s\" does not say \"%s\"", err.msg, why);
    cr_assert_null(rb.root, "refused body left a JSON tree behind");
}

/* Builds the upstream body and parses it back for inspection. */
static json_t *upstream(dp_reqbody_t *rb, const char *model)
{
    tg_buf_t out = TG_BUF_INIT(1 << 20);
    tg_err_t err;
    json_error_t jerr;
    cr_assert_eq(dp_reqbody_build_upstream(rb, model, &out, &err), 0, "%s", err.msg);
    json_t *j = json_loadb(out.base, out.len, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "upstream body is not JSON: %s", jerr.text);
    tg_buf_dispose(&out);
    return j;
}

Test(dp_reqbody, chat_fields_are_read)
{
    dp_reqbody_t rb;
    tg_err_t err;
    const char body[] = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"hi\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                        "\"max_tokens\":128}";
    cr_assert_eq(parse(&rb, DP_EP_CHAT, body, &err), 0, "%s", err.msg);
    cr_assert(tg_mem_eq(rb.model, rb.model_len, "gpt-4o-mini", 11));
    cr_assert(rb.stream);
    cr_assert(rb.include_usage);
    cr_assert_eq(rb.max_tokens, 128);
    dp_reqbody_dispose(&rb);
    cr_assert_null(rb.root);
}

Test(dp_reqbody, absent_optional_fields_take_defaults)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}]}", &err), 0);
    cr_assert_not(rb.stream);
    cr_assert_not(rb.include_usage);
    cr_assert_eq(rb.max_tokens, -1);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, null_optional_fields_count_as_absent)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"m\",\"messages\":[{}],\"stream\":null,"
                       "\"stream_options\":null,\"max_tokens\":null}",
                       &err),
                 0, "%s", err.msg);
    cr_assert_not(rb.stream);
    cr_assert_eq(rb.max_tokens, -1);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, max_completion_tokens_is_read)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"m\",\"messages\":[{}],\"max_completion_tokens\":64}", &err),
                 0);
    cr_assert_eq(rb.max_tokens, 64);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, include_usage_false_is_read_as_false)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"m\",\"messages\":[{}],\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":false}}",
                       &err),
                 0);
    cr_assert(rb.stream);
    cr_assert_not(rb.include_usage);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, completions_and_embeddings_accept_string_or_array)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"hi\"}", &err), 0);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(parse(&rb, DP_EP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2]}", &err), 0);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(parse(&rb, DP_EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"hi\"}", &err), 0);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(parse(&rb, DP_EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}", &err),
                 0);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, empty_body_is_400)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(dp_reqbody_parse(&rb, DP_EP_CHAT, "", 0, &err), TG_EINVAL);
    cr_assert_eq(err.status, 400);
    cr_assert_not_null(strstr(err.msg, "empty"));
}

Test(dp_reqbody, invalid_json_is_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",", "not valid JSON");
}

Test(dp_reqbody, non_object_is_400)
{
    expect_400(DP_EP_CHAT, "[{\"model\":\"m\"}]", "must be a JSON object");
    /* jansson refuses a bare scalar at the top level before we look at it */
    expect_400(DP_EP_CHAT, "\"model\"", "JSON");
}

Test(dp_reqbody, missing_model_is_400)
{
    expect_400(DP_EP_CHAT, "{\"messages\":[{}]}", "'model' is required");
}

Test(dp_reqbody, non_string_model_is_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":42,\"messages\":[{}]}", "'model'");
    expect_400(DP_EP_CHAT, "{\"model\":\"\",\"messages\":[{}]}", "'model'");
}

Test(dp_reqbody, model_error_names_the_param)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT, "{\"model\":null,\"messages\":[{}]}", &err), TG_EINVAL);
    cr_assert_str_eq(err.param, "model");
}

Test(dp_reqbody, overlong_model_is_400)
{
    char body[512];
    char model[300];
    memset(model, 'm', sizeof(model) - 1);
    model[sizeof(model) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"messages\":[{}]}", model);
    expect_400(DP_EP_CHAT, body, "too long");
}

Test(dp_reqbody, non_bool_stream_is_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"stream\":\"true\"}",
               "'stream' must be a boolean");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"stream\":1}",
               "'stream' must be a boolean");
}

Test(dp_reqbody, bad_stream_options_is_400)
{
    expect_400(DP_EP_CHAT,
               "{\"model\":\"m\",\"messages\":[{}],\"stream\":true,\"stream_options\":true}",
               "'stream_options'");
    expect_400(DP_EP_CHAT,
               "{\"model\":\"m\",\"messages\":[{}],\"stream\":true,"
               "\"stream_options\":{\"include_usage\":\"yes\"}}",
               "'stream_options'");
}

Test(dp_reqbody, negative_or_zero_max_tokens_is_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":-1}",
               "'max_tokens' must be a positive integer");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":0}", "'max_tokens'");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":1.5}",
               "'max_tokens'");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_completion_tokens\":-5}",
               "'max_completion_tokens'");
}

Test(dp_reqbody, missing_or_empty_messages_for_chat_is_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":\"m\"}", "'messages'");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":[]}", "'messages'");
    expect_400(DP_EP_CHAT, "{\"model\":\"m\",\"messages\":\"hi\"}", "'messages'");
}

Test(dp_reqbody, missing_prompt_for_completions_is_400)
{
    expect_400(DP_EP_COMPLETIONS, "{\"model\":\"m\",\"messages\":[{}]}", "'prompt'");
}

Test(dp_reqbody, missing_input_for_embeddings_is_400)
{
    expect_400(DP_EP_EMBEDDINGS, "{\"model\":\"m\"}", "'input'");
    expect_400(DP_EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":7}", "'input'");
}

Test(dp_reqbody, stream_for_embeddings_is_400)
{
    expect_400(DP_EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"x\",\"stream\":true}",
               "embeddings cannot be streamed");
}

Test(dp_reqbody, duplicate_keys_are_400)
{
    expect_400(DP_EP_CHAT, "{\"model\":\"a\",\"model\":\"b\",\"messages\":[{}]}", "duplicate");
    /* nested duplicates too: the upstream might read the other one */
    expect_400(DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"role\":\"system\"}]}",
               "duplicate");
}

Test(dp_reqbody, build_upstream_replaces_model_and_keeps_unknown_fields)
{
    dp_reqbody_t rb;
    tg_err_t err;
    const char body[] =
        "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
        "\"foo\":{\"bar\":[1,2.5,null,\"\\u00e9\"]},\"temperature\":0.2}";
    cr_assert_eq(parse(&rb, DP_EP_CHAT, body, &err), 0, "%s", err.msg);
    json_t *orig = json_loads(body, 0, NULL);
    json_t *up = upstream(&rb, "gpt-4o-mini-2024-07-18");
    cr_assert_str_eq(json_string_value(json_object_get(up, "model")), "gpt-4o-mini-2024-07-18");
    cr_assert(json_equal(json_object_get(up, "tools"), json_object_get(orig, "tools")));
    cr_assert(json_equal(json_object_get(up, "foo"), json_object_get(orig, "foo")));
    cr_assert(json_equal(json_object_get(up, "messages"), json_object_get(orig, "messages")));
    cr_assert(json_equal(json_object_get(up, "temperature"), json_object_get(orig, "temperature")));
    /* not streaming: no stream_options added */
    cr_assert_null(json_object_get(up, "stream_options"));
    cr_assert_eq(json_object_size(up), json_object_size(orig));
    json_decref(up);
    json_decref(orig);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, build_upstream_forces_include_usage_when_streaming)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(
        parse(&rb, DP_EP_CHAT, "{\"model\":\"a\",\"messages\":[{}],\"stream\":true}", &err), 0);
    cr_assert_not(rb.include_usage);
    json_t *up = upstream(&rb, "real");
    cr_assert(json_is_true(json_object_get(up, "stream")));
    cr_assert(
        json_is_true(json_object_get(json_object_get(up, "stream_options"), "include_usage")));
    /* the client did not ask: the proxy hides the usage chunk again */
    cr_assert_not(rb.include_usage);
    json_decref(up);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, build_upstream_overrides_include_usage_false_and_keeps_other_options)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":"
                       "{\"include_usage\":false,\"future_option\":3}}",
                       &err),
                 0, "%s", err.msg);
    json_t *up = upstream(&rb, "real");
    json_t *so = json_object_get(up, "stream_options");
    cr_assert(json_is_true(json_object_get(so, "include_usage")));
    cr_assert_eq(json_integer_value(json_object_get(so, "future_option")), 3);
    json_decref(up);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, build_upstream_replaces_null_stream_options_when_streaming)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(
        parse(&rb, DP_EP_CHAT,
              "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":null}", &err),
        0);
    json_t *up = upstream(&rb, "real");
    cr_assert(
        json_is_true(json_object_get(json_object_get(up, "stream_options"), "include_usage")));
    json_decref(up);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, build_upstream_leaves_stream_options_alone_when_not_streaming)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"a\",\"messages\":[{}],\"stream\":false,"
                       "\"stream_options\":{\"include_usage\":false}}",
                       &err),
                 0);
    json_t *up = upstream(&rb, "real");
    cr_assert(
        json_is_false(json_object_get(json_object_get(up, "stream_options"), "include_usage")));
    json_decref(up);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, build_upstream_past_max_fails_without_crash)
{
    dp_reqbody_t rb;
    tg_err_t err;
    tg_buf_t out = TG_BUF_INIT(16);
    cr_assert_eq(
        parse(&rb, DP_EP_CHAT, "{\"model\":\"a\",\"messages\":[{\"content\":\"long\"}]}", &err), 0);
    cr_assert_neq(dp_reqbody_build_upstream(&rb, "real", &out, &err), 0);
    tg_buf_dispose(&out);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, prompt_estimate_rounds_up_four_bytes_per_token)
{
    cr_assert_eq(dp_reqbody_estimate_prompt_tokens(0), 0);
    cr_assert_eq(dp_reqbody_estimate_prompt_tokens(1), 1);
    cr_assert_eq(dp_reqbody_estimate_prompt_tokens(4), 1);
    cr_assert_eq(dp_reqbody_estimate_prompt_tokens(5), 2);
    cr_assert_eq(dp_reqbody_estimate_prompt_tokens(400), 100);
}

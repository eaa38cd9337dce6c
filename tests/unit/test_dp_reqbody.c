/* test_dp_reqbody.c: reading the fields the gateway acts on and writing the upstream body. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../fuzz/reqbody_equiv.h"
#include "reqbody.h"
#include <dirent.h>
#include <stdlib.h>

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
    cr_assert_null(rb.tree, "refused body left a JSON tree behind");
    cr_assert_null(rb.raw, "refused body left its bytes behind");
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
    cr_assert_null(rb.tree);
    cr_assert_null(rb.raw);
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

/* a Responses body's limit (what admission reserves) is max_output_tokens, on both paths; chat's
 * names are not its own */
Test(dp_reqbody, max_output_tokens_is_the_responses_limit)
{
    static const char body[] =
        "{\"model\":\"m\",\"input\":\"hi\",\"max_output_tokens\":77,\"max_tokens\":5}";
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_RESPONSES, body, &err), 0, "%s", err.msg);
    cr_assert_eq(rb.max_tokens, 77);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(dp_reqbody_parse_tree(&rb, DP_EP_RESPONSES, body, strlen(body), &err), 0);
    cr_assert_eq(rb.max_tokens, 77);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"model\":\"m\",\"messages\":[{}],\"max_output_tokens\":77,"
                       "\"max_tokens\":5}",
                       &err),
                 0, "%s", err.msg);
    cr_assert_eq(rb.max_tokens, 5);
    dp_reqbody_dispose(&rb);
    cr_assert_neq(parse(&rb, DP_EP_RESPONSES,
                        "{\"model\":\"m\",\"input\":\"hi\",\"max_output_tokens\":0}", &err),
                  0);
    cr_assert_str_eq(err.msg, "'max_output_tokens' must be a positive integer");
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

/* ---- the scanner path against the tree path ---- */

static const int endpoints[] = {DP_EP_CHAT, DP_EP_COMPLETIONS, DP_EP_EMBEDDINGS, DP_EP_MESSAGES,
                                DP_EP_RESPONSES};

static void expect_equiv_n(const char *body, size_t n)
{
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        const char *why = reqbody_equiv(endpoints[i], body, n);
        cr_assert_null(why, "endpoint %d: %s: %.*s", endpoints[i], why, (int)(n > 300 ? 300 : n),
                       body);
    }
}

static void expect_equiv(const char *body)
{
    expect_equiv_n(body, strlen(body));
}

/* Whether the scanner path accepts body for chat. */
static bool accepted(const char *body)
{
    dp_reqbody_t rb;
    tg_err_t err;
    int rc = parse(&rb, DP_EP_CHAT, body, &err);
    dp_reqbody_dispose(&rb);
    return rc == 0;
}

Test(dp_reqbody, scanner_matches_the_tree_path_on_the_fuzz_corpus)
{
    /* the committed seed corpus, next to this file's directory */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    cr_assert_not_null(slash);
    snprintf(slash, sizeof(dir) - (size_t)(slash - dir), "/../fuzz/corpus/fuzz_reqbody");
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no corpus at %s", dir);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "rb");
        cr_assert_not_null(fp, "%s", path);
        char buf[65536];
        size_t n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        expect_equiv_n(buf, n);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 10);
}

Test(dp_reqbody, scanner_matches_the_tree_path_on_tricky_bodies)
{
    static const char *const bodies[] = {
        /* whitespace everywhere, escapes in keys and values, a nested "model" */
        " \t\r\n{ \"model\" :\"a\" , \"messages\" :[ {\"model\":\"x\"} ] } \n",
        "{\"mo\\u0064el\":\"a\",\"messages\":[{}]}",
        "{\"\\u006dodel\":\"a\",\"messages\":[{}],\"\\u0073tream\":true}",
        "{\"model\":\"a\\/b\\u00e9\\ud83d\\ude00\",\"messages\":[{}]}",
        "{\"messages\":[{\"model\":\"inner\"}]}",
        "{\"model\":\"a\",\"model\":\"b\",\"messages\":[{}]}",
        "{\"model\":\"a\",\"mo\\u0064el\":\"b\",\"messages\":[{}]}",
        "{\"model\":\"a\",\"messages\":[{\"x\":1,\"\\u0078\":2}]}",
        "{\"model\":\"a\",\"messages\":[{\"a\":{\"x\":1},\"b\":{\"x\":1}}]}",
        /* stream_options every way */
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":{}}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":{ }}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":{\"x\":[1]}}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":null}",
        "{\"stream_options\":{\"include_usage\":false},\"model\":\"a\",\"messages\":[{}],"
        "\"stream\":true}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":"
        "{\"include_\\u0075sage\":null,\"y\":2}}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":false,\"stream_options\":{\"a\":1}}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":null}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":1}",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":[]}",
        /* fallback_models first, middle, last, alone with model, invalid */
        "{\"fallback_models\":[\"b\"],\"model\":\"a\",\"messages\":[{}]}",
        "{\"model\":\"a\",\"fallback_models\":[\"b\"],\"messages\":[{}]}",
        "{\"model\":\"a\",\"messages\":[{}],\"fallback_models\":[\"b\"] }",
        "{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"fallback_models\":null}",
        "{\"model\":\"a\",\"messages\":[{}],\"fallback_models\":7}",
        /* numbers at jansson's edges */
        "{\"model\":\"a\",\"messages\":[{}],\"max_tokens\":9223372036854775807}",
        "{\"model\":\"a\",\"messages\":[{}],\"max_tokens\":9223372036854775808}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":-9223372036854775808}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":-9223372036854775809}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1e308}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1.7976931348623157e308}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1.7976931348623159e308}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":179769313486231580000000e285}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1e309}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":-1e400}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1e-400}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":0.000000001e317}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1E+2,\"y\":-0,\"z\":0.0e0}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":01}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1.}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":.5}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":-}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":1e}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":+1}",
        "{\"model\":\"a\",\"messages\":[{}],\"max_tokens\":1.0}",
        "{\"model\":\"a\",\"messages\":[{}],\"max_tokens\":1e2}",
        "{\"model\":\"a\",\"messages\":[{}],\"max_tokens\":-0}",
        /* strings jansson refuses */
        "{\"model\":\"a\\u0000\",\"messages\":[{}]}",
        "{\"mo\\u0000del\":\"a\",\"messages\":[{}]}",
        "{\"model\":\"\\ud800\",\"messages\":[{}]}",
        "{\"model\":\"\\udc00\",\"messages\":[{}]}",
        "{\"model\":\"\\ud800\\u0041\",\"messages\":[{}]}",
        "{\"model\":\"\\x\",\"messages\":[{}]}",
        "{\"model\":\"\\u12\",\"messages\":[{}]}",
        "{\"model\":\"a\tb\",\"messages\":[{}]}",
        "{\"model\":\"\xc0\xaf\",\"messages\":[{}]}",
        "{\"model\":\"\xed\xa0\x80\",\"messages\":[{}]}",
        "{\"model\":\"\xf4\x90\x80\x80\",\"messages\":[{}]}",
        "{\"model\":\"\xe2\x82\",\"messages\":[{}]}",
        "{\"model\":\"\x7f\xe2\x82\xac\",\"messages\":[{}]}",
        /* structure */
        "{\"model\":\"a\",\"messages\":[{}]} x",
        "{\"model\":\"a\",\"messages\":[{}]}{}",
        "{\"model\":\"a\",\"messages\":[{}],}",
        "{\"model\":\"a\",\"messages\":[{},]}",
        "{\"model\":\"a\" \"messages\":[{}]}",
        "{\"model\":\"a\",\"messages\":[{}]",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":tru}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":truex}",
        "{\"model\":\"a\",\"messages\":[{}],\"x\":nul}",
        "{model:\"a\"}",
        "\xef\xbb\xbf{\"model\":\"a\",\"messages\":[{}]}",
        "[{\"model\":\"a\"}]",
        "\"model\"",
        "42",
        "{}",
        " ",
        /* per endpoint */
        "{\"model\":\"a\",\"prompt\":\"p\",\"input\":[1],\"messages\":[],\"max_tokens\":3}",
        "{\"model\":\"a\",\"messages\":[1],\"max_tokens\":null,\"max_completion_tokens\":4}",
        "{\"model\":\"a\",\"input\":\"x\",\"encoding_format\":\"base64\"}",
        "{\"model\":\"a\",\"input\":\"x\",\"encoding_format\":\"bas\\u0065\\u0036\\u0034\"}",
        "{\"model\":\"a\",\"input\":\"x\",\"encoding_format\":\"base64 \"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_equiv(bodies[i]);
}

Test(dp_reqbody, scanner_matches_jansson_at_the_depth_limit)
{
    /* jansson counts every value: a scalar inside 2047 arrays is at depth 2048, the limit */
    for (int depth = 2046; depth <= 2050; depth++) {
        for (int scalar = 0; scalar <= 1; scalar++) {
            size_t cap = (size_t)depth * 2 + 64;
            char *b = malloc(cap);
            size_t n = 0;
            n += (size_t)snprintf(b + n, cap - n, "{\"model\":\"a\",\"messages\":[{}],\"x\":");
            for (int i = 0; i < depth - 1; i++)
                b[n++] = '[';
            if (scalar)
                b[n++] = '1';
            for (int i = 0; i < depth - 1; i++)
                b[n++] = ']';
            b[n++] = '}';
            expect_equiv_n(b, n);
            free(b);
        }
    }
}

Test(dp_reqbody, scanner_finds_duplicates_among_many_keys)
{
    /* past the pairwise check: keys are sorted by hash, with an escaped twin at the end */
    char b[8192];
    size_t n = (size_t)snprintf(b, sizeof(b), "{\"model\":\"a\",\"messages\":[{");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(b + n, sizeof(b) - n, "\"k%d\":%d,", i, i);
    char ok[8192], dup[8192];
    snprintf(ok, sizeof(ok), "%.*s\"k200\":0}]}", (int)n, b);
    snprintf(dup, sizeof(dup), "%.*s\"k\\u0031\\u00399\":0}]}", (int)n, b);
    cr_assert(accepted(ok));
    cr_assert_not(accepted(dup));
    expect_equiv(ok);
    expect_equiv(dup);
}

Test(dp_reqbody, escaped_model_key_and_value_are_read_decoded)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT,
                       "{\"mo\\u0064el\":\"gpt\\u002d4o\",\"messages\":[{\"model\":\"inner\"}]}",
                       &err),
                 0, "%s", err.msg);
    cr_assert(tg_mem_eq(rb.model, rb.model_len, "gpt-4o", 6));
    json_t *up = upstream(&rb, "real");
    cr_assert_str_eq(json_string_value(json_object_get(up, "model")), "real");
    json_t *inner = json_array_get(json_object_get(up, "messages"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(inner, "model")), "inner");
    json_decref(up);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, model_of_256_bytes_after_decoding_is_accepted)
{
    /* 256 bytes decoded, 1,536 bytes written as escapes */
    char body[2048];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"model\":\"");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\\u0061");
    snprintf(body + n, sizeof(body) - n, "\",\"messages\":[{}]}");
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_CHAT, body, &err), 0, "%s", err.msg);
    cr_assert_eq(rb.model_len, 256);
    cr_assert_eq(rb.model[255], 'a');
    dp_reqbody_dispose(&rb);
    expect_equiv(body);
}

Test(dp_reqbody, upstream_body_is_spliced_without_building_a_tree)
{
    dp_reqbody_t rb;
    tg_err_t err;
    const char body[] =
        "{\"model\":\"alias\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"temperature\":0.10000000000000001,\"stream\":true}";
    cr_assert_eq(parse(&rb, DP_EP_CHAT, body, &err), 0, "%s", err.msg);
    tg_buf_t out = TG_BUF_INIT(1 << 20);
    cr_assert_eq(dp_reqbody_build_upstream(&rb, "real", &out, &err), 0);
    cr_assert_null(rb.tree, "the hot path parsed the body into a tree");
    /* the client's bytes are kept as they were, number spellings and spaces included */
    const char want[] =
        "{\"model\":\"real\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"temperature\":0.10000000000000001,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true}}";
    cr_assert(tg_mem_eq(out.base, out.len, want, sizeof(want) - 1), "%.*s", (int)out.len, out.base);
    tg_buf_dispose(&out);
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, fallback_models_are_read_and_cut_from_the_upstream_body)
{
    static const char *const bodies[] = {
        "{\"fallback_models\":[\"b\",\"c\"],\"model\":\"a\",\"messages\":[{}]}",
        "{\"model\":\"a\",\"fallback_models\":[\"b\",\"c\"],\"messages\":[{}]}",
        "{\"model\":\"a\",\"messages\":[{}] , \"fallback_models\" : [\"b\",\"c\"] }",
    };
    for (size_t i = 0; i < 3; i++) {
        dp_reqbody_t rb;
        tg_err_t err;
        cr_assert_eq(parse(&rb, DP_EP_CHAT, bodies[i], &err), 0, "%s", err.msg);
        json_t *fm = dp_reqbody_fallback_models(&rb);
        cr_assert_eq(json_array_size(fm), 2);
        cr_assert_str_eq(json_string_value(json_array_get(fm, 1)), "c");
        json_decref(fm);
        json_t *up = upstream(&rb, "real");
        cr_assert_null(json_object_get(up, "fallback_models"), "%s", bodies[i]);
        cr_assert_eq(json_object_size(up), 2);
        json_decref(up);
        cr_assert_null(json_object_get(dp_reqbody_json(&rb), "fallback_models"));
        dp_reqbody_dispose(&rb);
    }
}

Test(dp_reqbody, take_adopts_the_buffer)
{
    tg_buf_t b = TG_BUF_INIT(1024);
    cr_assert_eq(tg_buf_append(&b, "{\"model\":\"a\",\"messages\":[{}]}", 29), 0);
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(dp_reqbody_parse_take(&rb, DP_EP_CHAT, &b, &err), 0, "%s", err.msg);
    cr_assert_null(b.base);
    cr_assert(tg_mem_eq(rb.model, rb.model_len, "a", 1));
    dp_reqbody_dispose(&rb);
}

Test(dp_reqbody, encoding_format_base64_is_read)
{
    dp_reqbody_t rb;
    tg_err_t err;
    cr_assert_eq(parse(&rb, DP_EP_EMBEDDINGS,
                       "{\"model\":\"a\",\"input\":\"x\",\"encoding_format\":\"base64\"}", &err),
                 0);
    cr_assert(rb.base64);
    dp_reqbody_dispose(&rb);
    cr_assert_eq(parse(&rb, DP_EP_EMBEDDINGS,
                       "{\"model\":\"a\",\"input\":\"x\",\"encoding_format\":\"float\"}", &err),
                 0);
    cr_assert_not(rb.base64);
    dp_reqbody_dispose(&rb);
}

/* jansson skips a NUL byte right after a number or a literal; the scanner refuses it and the body
 * is served through the tree path, as before the scanner (found by fuzz_reqbody). */
Test(dp_reqbody, a_nul_after_a_number_is_served_as_jansson_reads_it)
{
    static const char body[] = "{\"model\":\"m\",\"prompt\":\"a\",\"input\":\"a\",\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"hi\"}],\"max_tokens\":7\0,\"n\":true\0}";
    size_t n = sizeof(body) - 1;
    int top;
    cr_assert_neq(tg_jscan(body, n, &top, NULL, NULL), 0);
    expect_equiv_n(body, n);
    dp_reqbody_t rb;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_reqbody_parse(&rb, DP_EP_CHAT, body, n, &err), 0, "%s", err.msg);
    cr_assert_eq(rb.max_tokens, 7);
    dp_reqbody_dispose(&rb);
}

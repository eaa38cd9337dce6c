/* test_tg_errors.c: the error shapes' status tables (OpenAI's, Anthropic's both ways) and the one
 * writer of OpenAI error bodies. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "tg_err.h"
#include "tg_errors.h"

Test(tg_errors, table_gives_openai_types)
{
    cr_assert_str_eq(tg_error_type(400), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(401), "authentication_error");
    cr_assert_str_eq(tg_error_type(403), "permission_error");
    cr_assert_str_eq(tg_error_type(404), "invalid_request_error"); /* as OpenAI's model_not_found */
    cr_assert_str_eq(tg_error_type(405), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(408), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(409), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(413), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(422), "invalid_request_error");
    cr_assert_str_eq(tg_error_type(429), "rate_limit_error");
    cr_assert_str_eq(tg_error_type(500), "api_error");
    cr_assert_str_eq(tg_error_type(501), "api_error");
    cr_assert_str_eq(tg_error_type(502), "api_error");
    cr_assert_str_eq(tg_error_type(503), "api_error");
    cr_assert_str_eq(tg_error_type(505), "api_error");
    cr_assert_str_eq(tg_error_type(529), "api_error");
}

Test(tg_errors, tg_err_set_takes_its_type_from_the_table)
{
    static const int statuses[] = {400, 401, 403, 404, 405, 413, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        tg_err_t err;
        tg_err_set(&err, TG_EINVAL, statuses[i], "x");
        cr_assert_str_eq(err.type, tg_error_type(statuses[i]), "status %d", statuses[i]);
    }
}

Test(tg_errors, body_is_the_exact_openai_shape)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    const char *m = "the model \"x\" does not exist";
    cr_assert_eq(tg_error_body(&b, 404, NULL, m, strlen(m), NULL, "model_not_found"), 0);
    const char *want = "{\"error\":{\"message\":\"the model \\\"x\\\" does not exist\","
                       "\"type\":\"invalid_request_error\",\"param\":null,"
                       "\"code\":\"model_not_found\"}}";
    cr_assert_eq(b.len, strlen(want));
    cr_assert_eq(memcmp(b.base, want, b.len), 0, "%.*s", (int)b.len, b.base);
    tg_buf_dispose(&b);
}

Test(tg_errors, body_with_a_type_override_a_param_and_no_code)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    cr_assert_eq(tg_buf_append(&b, "data: ", 6), 0);
    cr_assert_eq(
        tg_error_body(&b, 429, "insufficient_quota", "over\nbudget", 11, "max_tokens", NULL), 0);
    json_error_t je;
    json_t *j = json_loadb(b.base + 6, b.len - 6, 0, &je);
    cr_assert_not_null(j, "%s", je.text);
    json_t *e = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "over\nbudget");
    cr_assert_str_eq(json_string_value(json_object_get(e, "type")), "insufficient_quota");
    cr_assert_str_eq(json_string_value(json_object_get(e, "param")), "max_tokens");
    cr_assert(json_is_null(json_object_get(e, "code")));
    cr_assert_eq(json_object_size(e), 4);
    json_decref(j);
    tg_buf_dispose(&b);
}

Test(tg_errors, body_that_does_not_fit_leaves_the_buffer_unchanged)
{
    tg_buf_t b = TG_BUF_INIT(40);
    cr_assert_eq(tg_buf_append(&b, "keep", 4), 0);
    cr_assert_eq(tg_error_body(&b, 500, NULL, "a message long enough not to fit", 32, NULL, NULL),
                 TG_ETOOBIG);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(memcmp(b.base, "keep", 4), 0);
    tg_buf_dispose(&b);
}

/* A cleared error reads as no error, whatever it held (tg_err_clear resets the fields, not
 * every byte of the text buffers). */
Test(tg_err, a_cleared_error_reads_as_none)
{
    tg_err_t err;
    tg_err_set(&err, TG_EINVAL, 400, "bad %s", "thing");
    tg_err_code(&err, "some_code");
    tg_err_detail(&err, "for the log");
    err.param = "model";
    tg_err_clear(&err);
    cr_assert_eq(err.code, 0);
    cr_assert_eq(err.status, 0);
    cr_assert_null(err.type);
    cr_assert_null(err.ecode);
    cr_assert_null(err.param);
    cr_assert_str_eq(err.msg, "");
    cr_assert_str_eq(err.detail, "");
}

/* Each status against both shapes' tables: OpenAI's and Anthropic's give different types for 404,
 * 413 and 529, and Anthropic's calls a status below 400 an api_error. */
Test(tg_errors, each_status_has_its_type_in_both_shapes)
{
    static const struct {
        int status;
        const char *openai, *anthropic;
    } want[] = {
        {200, "invalid_request_error", "api_error"},
        {399, "invalid_request_error", "api_error"},
        {400, "invalid_request_error", "invalid_request_error"},
        {401, "authentication_error", "authentication_error"},
        {402, "invalid_request_error", "invalid_request_error"},
        {403, "permission_error", "permission_error"},
        {404, "invalid_request_error", "not_found_error"},
        {405, "invalid_request_error", "invalid_request_error"},
        {413, "invalid_request_error", "request_too_large"},
        {422, "invalid_request_error", "invalid_request_error"},
        {429, "rate_limit_error", "rate_limit_error"},
        {499, "invalid_request_error", "invalid_request_error"},
        {500, "api_error", "api_error"},
        {502, "api_error", "api_error"},
        {503, "api_error", "api_error"},
        {504, "api_error", "api_error"},
        {529, "api_error", "overloaded_error"},
        {599, "api_error", "api_error"},
        {0, "invalid_request_error", "api_error"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_str_eq(tg_error_type(want[i].status), want[i].openai, "status %d",
                         want[i].status);
        cr_assert_str_eq(tg_error_type_anthropic(want[i].status), want[i].anthropic, "status %d",
                         want[i].status);
    }
}

static int anthropic_status(const char *type)
{
    return tg_error_status_anthropic(type, strlen(type));
}

/* Anthropic's errors read from upstream: each type's status, 500 for any other. */
Test(tg_errors, each_anthropic_type_has_its_status)
{
    cr_assert_eq(anthropic_status("invalid_request_error"), 400);
    cr_assert_eq(anthropic_status("authentication_error"), 401);
    cr_assert_eq(anthropic_status("billing_error"), 402);
    cr_assert_eq(anthropic_status("permission_error"), 403);
    cr_assert_eq(anthropic_status("not_found_error"), 404);
    cr_assert_eq(anthropic_status("request_too_large"), 413);
    cr_assert_eq(anthropic_status("rate_limit_error"), 429);
    cr_assert_eq(anthropic_status("timeout_error"), 504);
    cr_assert_eq(anthropic_status("overloaded_error"), 529);
    cr_assert_eq(anthropic_status("api_error"), 500);
    cr_assert_eq(anthropic_status("some_new_error"), 500);
    cr_assert_eq(anthropic_status(""), 500);
    cr_assert_eq(tg_error_status_anthropic(NULL, 0), 500);
}

/* The length is the type's: a prefix or a type with more after it is another type. */
Test(tg_errors, an_anthropic_type_matches_whole)
{
    cr_assert_eq(tg_error_status_anthropic("rate_limit_error", 10), 500);
    cr_assert_eq(tg_error_status_anthropic("rate_limit_errorx", 17), 500);
    cr_assert_eq(tg_error_status_anthropic("rate_limit_error\0x", 18), 500);
    cr_assert_eq(tg_error_status_anthropic("not_found_error", 15), 404);
}

/* Every type Anthropic's status table gives reads back as that status (the two tables agree). */
Test(tg_errors, anthropic_types_read_back_as_their_status)
{
    static const int statuses[] = {400, 401, 403, 404, 413, 429, 529};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        cr_assert_eq(anthropic_status(tg_error_type_anthropic(statuses[i])), statuses[i],
                     "status %d", statuses[i]);
}

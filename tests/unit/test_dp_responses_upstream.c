/* test_dp_responses_upstream.c: chat served by a Responses-only upstream: the chat request as a
 * Responses request, and the Responses answers of tests/unit/responses_upstream/ (recorded from
 * the OpenAI mock, tests/mocks/openai.mjs) as chat completions and chunks, whatever the split. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "responses_upstream.h"

static json_t *req(const char *chat_text)
{
    json_error_t jerr;
    json_t *c = json_loads(chat_text, 0, &jerr);
    cr_assert_not_null(c, "test body: %s", jerr.text);
    json_t *r = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_resp_request_from_chat(c, "resp-only", &r, &err), 0, "failed: %s", err.msg);
    json_decref(c);
    return r;
}

static void req_fails(const char *chat_text, const char *contains)
{
    json_t *c = json_loads(chat_text, 0, NULL);
    cr_assert_not_null(c);
    json_t *r = (json_t *)1;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_resp_request_from_chat(c, "resp-only", &r, &err), TG_EINVAL, "accepted: %s",
                 chat_text);
    cr_assert_null(r);
    cr_assert_eq(err.status, 400);
    cr_assert(strstr(err.msg, contains) != NULL, "message [%s] lacks [%s]", err.msg, contains);
    json_decref(c);
}

static void expect_json(const json_t *act, const char *exp_text)
{
    json_error_t jerr;
    json_t *exp = json_loads(exp_text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(exp, "expected JSON: %s", jerr.text);
    char *a = json_dumps(act, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(exp, (json_t *)act), "\nexpected %s\nactual   %s", exp_text, a);
    free(a);
    json_decref(exp);
}

Test(dp_responses_upstream, request_maps_messages_tools_and_parameters)
{
    json_t *r = req(
        "{\"model\":\"m\",\"max_completion_tokens\":50,\"temperature\":0.3,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"n\":1,\"frequency_penalty\":0,"
        "\"reasoning_effort\":\"low\",\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\"},\"strict\":true}},"
        "\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"What is it?\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://x.test/a.png\"}}]},{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"look\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\","
        "\"content\":\"a cat\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"look\","
        "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":{\"type\":\"function\","
        "\"function\":{\"name\":\"look\"}}}");
    expect_json(r, "{\"model\":\"m\",\"max_output_tokens\":50,\"temperature\":0.3,\"stream\":true,"
                   "\"store\":false,\"reasoning\":{\"effort\":\"low\"},\"text\":{\"format\":{"
                   "\"type\":\"json_schema\",\"name\":\"x\",\"schema\":{\"type\":\"object\"},"
                   "\"strict\":true}},\"input\":[{\"type\":\"message\",\"role\":\"system\","
                   "\"content\":\"Be terse.\"},{\"type\":\"message\",\"role\":\"user\","
                   "\"content\":[{\"type\":\"input_text\",\"text\":\"What is it?\"},{\"type\":"
                   "\"input_image\",\"image_url\":\"https://x.test/a.png\",\"detail\":\"auto\"}]},"
                   "{\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"look\","
                   "\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":"
                   "\"call_1\",\"output\":\"a cat\"}],\"tools\":[{\"type\":\"function\",\"name\":"
                   "\"look\",\"parameters\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":"
                   "\"function\",\"name\":\"look\"}}");
    json_decref(r);
}

Test(dp_responses_upstream, request_what_responses_cannot_honour_is_a_400)
{
    req_fails("{\"model\":\"m\",\"n\":2,\"messages\":[]}", "n: only one choice");
    req_fails("{\"model\":\"m\",\"stop\":[\"x\"],\"messages\":[]}", "stop sequences");
    req_fails("{\"model\":\"m\",\"presence_penalty\":0.5,\"messages\":[]}", "presence_penalty");
    req_fails("{\"model\":\"m\",\"seed\":1,\"messages\":[]}",
              "seed: cannot be served by resp-only");
    req_fails("{\"model\":\"m\",\"logprobs\":true,\"messages\":[]}", "logprobs");
    req_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
              "\"input_audio\",\"input_audio\":{}}]}]}",
              "\"input_audio\" part cannot be served by resp-only");
}

/* ---- answers ---- */

static char *slurp(const char *name, size_t *n)
{
    char path[4096];
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    snprintf(path, sizeof(path), "%.*s/responses_upstream/%s", (int)(slash - f), f, name);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "no fixture %s", path);
    char *buf = malloc(1u << 20);
    *n = fread(buf, 1, (1u << 20) - 1, fp);
    buf[*n] = '\0';
    fclose(fp);
    return buf;
}

static void state(dp_stream_state_t *st, bool usage)
{
    dp_stream_state_init(st, DP_EP_CHAT, usage);
    st->model = "gpt-4o-mini";
    st->request_id = "req-1";
    st->created = 1764072000;
}

Test(dp_responses_upstream, a_response_object_becomes_a_chat_completion_with_usage)
{
    size_t n;
    char *body = slurp("text.json", &n);
    dp_stream_state_t st;
    state(&st, false);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_upstream_response(&st, 200, body, n, &out), DP_RESP_OUT);
    json_t *c = json_loadb(out.base, out.len, 0, NULL);
    cr_assert_not_null(c);
    expect_json(json_object_get(c, "choices"),
                "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                "\"Hello from the mock provider.\"},\"finish_reason\":\"stop\"}]");
    cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "chat.completion");
    /* "hi mock:cached=2 mock:reasoning=3": ceil(34/4) + 3 = 12 in, 5 words + 3 reasoning out */
    expect_json(json_object_get(c, "usage"),
                "{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20,"
                "\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":"
                "{\"reasoning_tokens\":3}}");
    cr_assert(st.usage.present);
    json_decref(c);
    free(body);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);

    body = slurp("two_calls.json", &n);
    state(&st, false);
    out = (tg_buf_t)TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_upstream_response(&st, 200, body, n, &out), DP_RESP_OUT);
    c = json_loadb(out.base, out.len, 0, NULL);
    const json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "tool_calls");
    const json_t *calls = json_object_get(json_object_get(ch, "message"), "tool_calls");
    cr_assert_eq(json_array_size(calls), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(calls, 1), "id")),
                     "call_mock3_1");
    cr_assert(json_is_null(json_object_get(json_object_get(ch, "message"), "content")));
    json_decref(c);
    free(body);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);

    body = slurp("incomplete.json", &n);
    state(&st, false);
    out = (tg_buf_t)TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_upstream_response(&st, 200, body, n, &out), DP_RESP_OUT);
    c = json_loadb(out.base, out.len, 0, NULL);
    ch = json_array_get(json_object_get(c, "choices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "length");
    json_decref(c);
    free(body);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

Test(dp_responses_upstream, an_error_status_keeps_openai_shape)
{
    static const char e[] = "{\"error\":{\"message\":\"Previous response with id 'x' not found.\","
                            "\"type\":\"invalid_request_error\",\"param\":\"previous_response_id\","
                            "\"code\":\"previous_response_not_found\"}}";
    dp_stream_state_t st;
    state(&st, false);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_upstream_response(&st, 400, e, sizeof(e) - 1, &out), DP_RESP_OUT);
    json_t *c = json_loadb(out.base, out.len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "error"), "code")),
                     "previous_response_not_found");
    json_decref(c);
    cr_assert_eq(dp_resp_upstream_response(&st, 200, "{\"x\":1}", 7, &out), TG_EUPSTREAM);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

/* The chunks of one run, fed in pieces of at most `piece` bytes (0: whole). */
static void run_stream(const char *file, size_t piece, bool complete, tg_buf_t *out,
                       dp_stream_state_t *st)
{
    size_t n;
    char *body = slurp(file, &n);
    state(st, true);
    for (size_t off = 0; off < n;) {
        size_t k = piece == 0 || n - off < piece ? n - off : piece;
        cr_assert_eq(dp_resp_upstream_stream_feed(st, body + off, k, out), 0);
        off += k;
    }
    cr_assert_eq(dp_resp_upstream_stream_end(st, complete, out), 0);
    free(body);
}

typedef struct chunks {
    char content[4096];
    char args[2][256];
    char call_ids[2][64];
    int ncalls;
    char finish[32];
    json_t *usage;
    bool done;
    bool error;
} chunks_t;

static void parse_chunks(const tg_buf_t *b, chunks_t *c)
{
    memset(c, 0, sizeof(*c));
    size_t off = 0;
    while (off < b->len) {
        const char *ev = b->base + off;
        const char *end = tg_memmem(ev, b->len - off, "\n\n", 2);
        cr_assert_not_null(end);
        cr_assert(strncmp(ev, "data: ", 6) == 0);
        if (end - ev == 12 && strncmp(ev + 6, "[DONE]", 6) == 0) {
            c->done = true;
        } else {
            json_t *j = json_loadb(ev + 6, (size_t)(end - ev - 6), 0, NULL);
            cr_assert_not_null(j);
            c->error = c->error || json_object_get(j, "error") != NULL;
            const json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
            const json_t *d = json_object_get(ch, "delta");
            const json_t *t = json_object_get(d, "content");
            if (json_is_string(t))
                strncat(c->content, json_string_value(t),
                        sizeof(c->content) - strlen(c->content) - 1);
            size_t i;
            const json_t *tc;
            json_array_foreach(json_object_get(d, "tool_calls"), i, tc)
            {
                json_int_t k = json_integer_value(json_object_get(tc, "index"));
                cr_assert(k >= 0 && k < 2);
                const json_t *id = json_object_get(tc, "id");
                if (json_is_string(id)) {
                    snprintf(c->call_ids[k], sizeof(c->call_ids[k]), "%s", json_string_value(id));
                    c->ncalls++;
                }
                const json_t *a = json_object_get(json_object_get(tc, "function"), "arguments");
                if (json_is_string(a))
                    strncat(c->args[k], json_string_value(a),
                            sizeof(c->args[k]) - strlen(c->args[k]) - 1);
            }
            const json_t *fr = json_object_get(ch, "finish_reason");
            if (json_is_string(fr))
                snprintf(c->finish, sizeof(c->finish), "%s", json_string_value(fr));
            if (json_is_object(json_object_get(j, "usage"))) {
                json_decref(c->usage);
                c->usage = json_incref(json_object_get(j, "usage"));
            }
            json_decref(j);
        }
        off = (size_t)(end + 2 - b->base);
    }
}

static void same_whatever_the_split(const char *file, bool complete, const tg_buf_t *whole)
{
    for (size_t piece = 1; piece < 12; piece += 5) {
        dp_stream_state_t st;
        tg_buf_t b = TG_BUF_INIT(1u << 20);
        run_stream(file, piece, complete, &b, &st);
        cr_assert(b.len == whole->len && memcmp(b.base, whole->base, b.len) == 0,
                  "%s in %zu-byte pieces differs", file, piece);
        tg_buf_dispose(&b);
        dp_stream_state_dispose(&st);
    }
}

Test(dp_responses_upstream, a_text_stream_becomes_chunks_with_usage_and_done)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    run_stream("text.sse", 0, true, &out, &st);
    chunks_t c;
    parse_chunks(&out, &c);
    cr_assert_str_eq(c.content, "Hello from the mock provider.");
    cr_assert_str_eq(c.finish, "stop");
    cr_assert(c.done && st.done && !c.error);
    expect_json(c.usage, "{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20,"
                         "\"prompt_tokens_details\":{\"cached_tokens\":2},"
                         "\"completion_tokens_details\":{\"reasoning_tokens\":3}}");
    cr_assert_eq(st.usage.completion, 8);
    json_decref(c.usage);
    same_whatever_the_split("text.sse", true, &out);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

Test(dp_responses_upstream, two_streamed_calls_become_tool_call_deltas_by_index)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    run_stream("two_calls.sse", 0, true, &out, &st);
    chunks_t c;
    parse_chunks(&out, &c);
    cr_assert_eq(c.ncalls, 2);
    cr_assert_str_eq(c.call_ids[0], "call_mock4_0");
    cr_assert_str_eq(c.call_ids[1], "call_mock4_1");
    cr_assert_str_eq(c.args[0], "{\"q\":\"mock\",\"n\":0}");
    cr_assert_str_eq(c.args[1], "{\"q\":\"mock\",\"n\":1}");
    cr_assert_str_eq(c.finish, "tool_calls");
    cr_assert(c.done);
    json_decref(c.usage);
    same_whatever_the_split("two_calls.sse", true, &out);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

Test(dp_responses_upstream, response_failed_becomes_an_error_chunk_and_nothing_after)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    run_stream("failed.sse", 0, true, &out, &st);
    chunks_t c;
    parse_chunks(&out, &c);
    cr_assert(c.error);
    cr_assert(!c.done, "no [DONE] after an error");
    cr_assert_str_eq(c.finish, "");
    json_decref(c.usage);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

Test(dp_responses_upstream, a_cut_stream_gets_no_made_up_finish)
{
    size_t n;
    char *body = slurp("text.sse", &n);
    dp_stream_state_t st;
    state(&st, true);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_upstream_stream_feed(&st, body, n / 2, &out), 0);
    cr_assert_eq(dp_resp_upstream_stream_end(&st, false, &out), 0);
    chunks_t c;
    parse_chunks(&out, &c);
    cr_assert(!c.done && c.finish[0] == '\0');
    json_decref(c.usage);
    free(body);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

Test(dp_responses_upstream, incomplete_becomes_finish_reason_length)
{
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    run_stream("incomplete.sse", 0, true, &out, &st);
    chunks_t c;
    parse_chunks(&out, &c);
    cr_assert_str_eq(c.content, "w1 w2 w3");
    cr_assert_str_eq(c.finish, "length");
    json_decref(c.usage);
    tg_buf_dispose(&out);
    dp_stream_state_dispose(&st);
}

/* ---- native pass-through ---- */

Test(dp_responses_upstream, the_watch_keeps_the_terminal_response_and_its_usage_whatever_the_split)
{
    static const char *const files[] = {"text.sse", "two_calls.sse", "failed.sse"};
    static const char *const status[] = {"completed", "completed", "failed"};
    for (size_t f = 0; f < 3; f++) {
        size_t n;
        char *body = slurp(files[f], &n);
        for (size_t piece = 0; piece < 9; piece += 4) {
            dp_resp_watch_t *w = dp_resp_watch_create();
            cr_assert_not_null(w);
            for (size_t off = 0; off < n;) {
                size_t k = piece == 0 || n - off < piece ? n - off : piece;
                if (off == 0 && piece == 0)
                    k = n / 2; /* nothing before the terminal event is kept */
                cr_assert_eq(dp_resp_watch_feed(w, body + off, k), 0);
                if (off == 0 && piece == 0)
                    cr_assert_null(dp_resp_watch_response(w));
                off += k;
            }
            const json_t *r = dp_resp_watch_response(w);
            cr_assert_not_null(r, "%s: no response", files[f]);
            cr_assert_str_eq(json_string_value(json_object_get(r, "status")), status[f]);
            dp_usage_t u;
            memset(&u, 0, sizeof(u));
            if (f == 0) {
                cr_assert(dp_resp_usage_from_json(&u, json_object_get(r, "usage")));
                cr_assert_eq(u.prompt, 12);
                cr_assert_eq(u.completion, 8);
                cr_assert_eq(u.cached, 2);
                cr_assert_eq(u.reasoning, 3);
                cr_assert_eq(u.total, 20);
            } else if (f == 2) {
                cr_assert(!dp_resp_usage_from_json(&u, json_object_get(r, "usage")));
            }
            dp_resp_watch_destroy(w);
        }
        free(body);
    }
}

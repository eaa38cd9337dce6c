/* test_dp_responses.c: the Responses API client format over chat-shaped providers: request
 * translation, JSON answers and streams. The answers are transcripts in tests/unit/responses/
 * (a request, the chat answer, and the exact Responses output), which
 * tests/integration/responses_sdk.test.mjs also feeds to the openai SDK's own assembler: what this
 * file proves we emit, that one proves the SDK accepts. TG_RESP_TRANSCRIPTS_UPDATE=1 rewrites each
 * transcript's expected output from the translator (review the diff before committing). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "responses.h"

#define CREATED 1764072000

/* ---- requests ---- */

static const json_t *lookup_fixture(void *ud, const char *id, size_t n)
{
    return json_object_getn((const json_t *)ud, id, n);
}

static json_t *req_with(const char *text, const char *prefix, const json_t *store)
{
    json_error_t jerr;
    json_t *r = json_loads(text, 0, &jerr);
    cr_assert_not_null(r, "test body: %s", jerr.text);
    json_t *p = prefix ? json_loads(prefix, 0, &jerr) : NULL;
    cr_assert(!prefix || p, "test prefix: %s", jerr.text);
    json_t *chat = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = dp_resp_request_to_chat(r, p, lookup_fixture, (void *)store, "mock-chat", &chat, &err);
    cr_assert_eq(rc, 0, "translation failed: %s", err.msg);
    cr_assert_not_null(chat);
    json_decref(r);
    json_decref(p);
    return chat;
}

static json_t *req(const char *text)
{
    return req_with(text, NULL, NULL);
}

static void req_fails(const char *text, const char *contains)
{
    json_t *r = json_loads(text, 0, NULL);
    cr_assert_not_null(r);
    json_t *chat = (json_t *)1;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_resp_request_to_chat(r, NULL, NULL, NULL, "mock-chat", &chat, &err), TG_EINVAL,
                 "accepted: %s", text);
    cr_assert_null(chat);
    cr_assert_eq(err.status, 400);
    cr_assert(strstr(err.msg, contains) != NULL, "message [%s] lacks [%s]", err.msg, contains);
    json_decref(r);
}

static void expect_json(const json_t *act, const char *exp_text)
{
    json_error_t jerr;
    json_t *exp = json_loads(exp_text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(exp, "expected JSON: %s", jerr.text);
    char *a = json_dumps(act, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *e = json_dumps(exp, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(exp, (json_t *)act), "\nexpected %s\nactual   %s", e, a);
    free(a);
    free(e);
    json_decref(exp);
}

Test(dp_responses, request_maps_parameters_and_keeps_gateway_fields_back)
{
    json_t *chat = req(
        "{\"model\":\"m\",\"instructions\":\"Be brief.\",\"input\":\"Hi\",\"temperature\":0.5,"
        "\"top_p\":0.9,\"max_output_tokens\":64,\"stream\":true,\"store\":true,\"metadata\":"
        "{\"k\":\"v\"},\"previous_response_id\":null,\"user\":\"u-7\",\"reasoning\":{\"effort\":"
        "\"low\"},\"include\":[\"reasoning.encrypted_content\"],\"truncation\":\"disabled\"}");
    expect_json(chat, "{\"model\":\"m\",\"temperature\":0.5,\"top_p\":0.9,\"max_tokens\":64,"
                      "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"user\":"
                      "\"u-7\",\"reasoning_effort\":\"low\",\"messages\":[{\"role\":\"system\","
                      "\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"}]}");
    json_decref(chat);
}

Test(dp_responses, request_items_become_messages_with_parts)
{
    json_t *chat = req(
        "{\"model\":\"m\",\"input\":[{\"role\":\"developer\",\"content\":\"Rules.\"},"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":"
        "\"What is this?\"},{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBO\","
        "\"detail\":\"low\"},{\"type\":\"input_file\",\"filename\":\"a.pdf\",\"file_data\":"
        "\"data:application/pdf;base64,JVBE\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"output_text\",\"text\":\"A cat.\",\"annotations\":[]}]},{\"role\":\"user\","
        "\"content\":\"Sure?\"}]}");
    expect_json(json_object_get(chat, "messages"),
                "[{\"role\":\"system\",\"content\":\"Rules.\"},{\"role\":\"user\",\"content\":["
                "{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image_url\","
                "\"image_url\":{\"url\":\"data:image/png;base64,iVBO\",\"detail\":\"low\"}},"
                "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBE\","
                "\"filename\":\"a.pdf\"}}]},{\"role\":\"assistant\",\"content\":\"A cat.\"},"
                "{\"role\":\"user\",\"content\":\"Sure?\"}]");
    json_decref(chat);
}

Test(dp_responses, request_parallel_calls_share_one_assistant_message_and_outputs_pair_by_call_id)
{
    json_t *chat = req(
        "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"Paris and Oslo?\"},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
        "\"text\":\"Checking.\"}]},"
        "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_a\",\"name\":\"weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"},"
        "{\"type\":\"function_call\",\"call_id\":\"call_b\",\"name\":\"weather\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Oslo\\\"}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":\"18C\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_b\",\"output\":[{\"type\":"
        "\"input_text\",\"text\":\"-2C\"}]}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"weather\",\"description\":\"d\","
        "\"parameters\":{\"type\":\"object\"},\"strict\":true}],\"tool_choice\":{\"type\":"
        "\"function\",\"name\":\"weather\"},\"parallel_tool_calls\":true}");
    expect_json(
        chat, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris and Oslo?\"},"
              "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
              "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
              "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
              "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
              "\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
              "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"18C\"},"
              "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"-2C\"}],"
              "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\","
              "\"description\":\"d\",\"parameters\":{\"type\":\"object\"},\"strict\":true}}],"
              "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"weather\"}},"
              "\"parallel_tool_calls\":true}");
    json_decref(chat);
}

Test(dp_responses, request_prefix_and_item_references_come_before_the_new_input)
{
    json_t *store = json_loads(
        "{\"fc_9\":{\"type\":\"function_call\",\"id\":\"fc_9\",\"call_id\":\"call_9\",\"name\":"
        "\"f\",\"arguments\":\"{}\"}}",
        0, NULL);
    json_t *chat = req_with(
        "{\"model\":\"m\",\"instructions\":\"Sys.\",\"input\":[{\"type\":\"item_reference\","
        "\"id\":\"fc_9\"},{\"type\":\"function_call_output\",\"call_id\":\"call_9\",\"output\":"
        "\"ok\"}]}",
        "[{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":"
        "\"input_text\",\"text\":\"Go\"}]},{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]}"
        "]",
        store);
    expect_json(json_object_get(chat, "messages"),
                "[{\"role\":\"system\",\"content\":\"Sys.\"},{\"role\":\"user\",\"content\":["
                "{\"type\":\"text\",\"text\":\"Go\"}]},{\"role\":\"assistant\",\"content\":null,"
                "\"tool_calls\":[{\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":"
                "\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_9\","
                "\"content\":\"ok\"}]");
    json_decref(chat);
    json_decref(store);
}

Test(dp_responses, request_text_format_becomes_response_format)
{
    json_t *chat = req("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":"
                       "\"json_schema\",\"name\":\"city\",\"strict\":true,\"schema\":{\"type\":"
                       "\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}}}}");
    expect_json(json_object_get(chat, "response_format"),
                "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"city\",\"strict\":true,"
                "\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                "\"string\"}}}}}");
    json_decref(chat);
    chat = req("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"text\"}}}");
    cr_assert_null(json_object_get(chat, "response_format"));
    json_decref(chat);
}

Test(dp_responses, request_what_chat_cannot_honour_is_a_400_naming_feature_and_target)
{
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}",
              "the built-in tool \"web_search\" cannot be served by mock-chat");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"background\":true}",
              "background: true is not supported for mock-chat");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"summary\":\"auto\"}}",
              "reasoning.summary");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"conversation\":\"conv_1\"}", "conversation");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"truncation\":\"auto\"}", "truncation");
    req_fails("{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":"
              "\"call_x\",\"output\":\"1\"}]}",
              "no function_call with call_id \"call_x\"");
    req_fails("{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_x\"}]}",
              "item with id \"msg_x\" not found");
    req_fails("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
              "\"input_image\",\"file_id\":\"file-1\"}]}]}",
              "file_id cannot be translated for mock-chat");
    req_fails("{\"model\":\"m\",\"input\":[{\"type\":\"web_search_call\",\"id\":\"ws_1\"}]}",
              "input[0].type: \"web_search_call\" items cannot be translated");
    req_fails("{\"input\":\"x\"}", "model");
    req_fails("{\"model\":\"m\"}", "input: field required");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens");
    req_fails("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"file_search\"}}",
              "tool_choice");
}

/* ---- state helpers ---- */

Test(dp_responses, input_items_get_ids_and_parts_and_references_resolve)
{
    json_t *store = json_loads("{\"fc_9\":{\"type\":\"function_call\",\"id\":\"fc_9\","
                               "\"call_id\":\"call_9\",\"name\":\"f\",\"arguments\":\"{}\"}}",
                               0, NULL);
    json_t *r = json_loads("{\"input\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":"
                           "\"assistant\",\"content\":\"Yo\"},{\"type\":\"item_reference\","
                           "\"id\":\"fc_9\"},{\"type\":\"function_call_output\",\"call_id\":"
                           "\"call_9\",\"output\":\"ok\"},{\"id\":\"msg_own\",\"type\":"
                           "\"message\",\"role\":\"user\",\"content\":[{\"type\":"
                           "\"input_text\",\"text\":\"x\"}]}]}",
                           0, NULL);
    json_t *items = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_resp_input_items(r, "resp_req1", lookup_fixture, store, &items, &err), 0, "%s",
                 err.msg);
    expect_json(items,
                "[{\"id\":\"msg_req1_in0\",\"type\":\"message\",\"role\":\"user\",\"content\":"
                "[{\"type\":\"input_text\",\"text\":\"Hi\"}]},{\"id\":\"msg_req1_in1\",\"type\":"
                "\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
                "\"text\":\"Yo\",\"annotations\":[]}]},{\"type\":\"function_call\",\"id\":"
                "\"fc_9\",\"call_id\":\"call_9\",\"name\":\"f\",\"arguments\":\"{}\"},"
                "{\"id\":\"fco_req1_in3\",\"type\":\"function_call_output\",\"call_id\":"
                "\"call_9\",\"output\":\"ok\"},{\"id\":\"msg_own\",\"type\":\"message\","
                "\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"x\"}]}]");
    json_decref(items);
    json_decref(r);
    r = json_loads("{\"input\":\"Hello\"}", 0, NULL);
    cr_assert_eq(dp_resp_input_items(r, "resp_a", NULL, NULL, &items, &err), 0);
    expect_json(items, "[{\"id\":\"msg_a_in0\",\"type\":\"message\",\"role\":\"user\","
                       "\"content\":[{\"type\":\"input_text\",\"text\":\"Hello\"}]}]");
    json_decref(items);
    json_decref(r);
    r = json_loads("{\"input\":[{\"type\":\"item_reference\",\"id\":\"nope\"}]}", 0, NULL);
    cr_assert_eq(dp_resp_input_items(r, "resp_a", lookup_fixture, store, &items, &err), TG_EINVAL);
    cr_assert_null(items);
    cr_assert(strstr(err.msg, "item with id \"nope\" not found") != NULL);
    json_decref(r);
    json_decref(store);
}

Test(dp_responses, inline_request_is_self_contained_and_stores_nothing_upstream)
{
    json_t *r = json_loads("{\"model\":\"gpt\",\"previous_response_id\":\"resp_1\",\"store\":"
                           "true,\"input\":[{\"type\":\"function_call_output\",\"call_id\":"
                           "\"c1\",\"output\":\"18C\"}],\"tools\":[]}",
                           0, NULL);
    json_t *prefix = json_loads(
        "[{\"id\":\"msg_a_in0\",\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":"
        "\"input_text\",\"text\":\"Weather?\"}]},{\"id\":\"rs_1\",\"type\":\"reasoning\","
        "\"summary\":[]},{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\","
        "\"status\":\"completed\",\"content\":[{\"type\":\"output_text\",\"text\":\"Checking\","
        "\"annotations\":[],\"logprobs\":[]}]},{\"id\":\"fc_a_0\",\"type\":\"function_call\","
        "\"status\":\"completed\",\"call_id\":\"c1\",\"name\":\"w\",\"arguments\":\"{}\"}]",
        0, NULL);
    json_t *out = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_resp_request_inline(r, prefix, NULL, NULL, &out, &err), 0, "%s", err.msg);
    expect_json(out,
                "{\"model\":\"gpt\",\"store\":false,\"tools\":[],\"input\":[{\"type\":\"message\","
                "\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Weather?\"}]},"
                "{\"type\":\"message\",\"role\":\"assistant\",\"status\":\"completed\","
                "\"content\":[{\"type\":\"output_text\",\"text\":\"Checking\",\"annotations\":"
                "[]}]},{\"type\":\"function_call\",\"status\":\"completed\",\"call_id\":\"c1\","
                "\"name\":\"w\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\","
                "\"call_id\":\"c1\",\"output\":\"18C\"}]}");
    json_decref(out);
    json_decref(prefix);
    json_decref(r);
}

/* ---- transcripts ---- */

static char *transcript_dir(void)
{
    static char dir[4096];
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    int n = slash ? (int)(slash - f) : 1;
    snprintf(dir, sizeof(dir), "%.*s/responses", n, slash ? f : ".");
    return dir;
}

/* Runs one transcript: the answer through the translator, the stream fed as chunks of at most
 * `piece` bytes (0: whole). Returns the output (caller frees) and the final response. */
static void run(const json_t *t, size_t piece, tg_buf_t *out, json_t **final)
{
    json_t *skel =
        dp_resp_skeleton(json_object_get(t, "request"), "resp_req1", "mock-model", CREATED);
    cr_assert_not_null(skel);
    const json_t *stream = json_object_get(t, "chat_stream");
    *final = NULL;
    if (!json_is_string(stream)) {
        const json_t *status = json_object_get(t, "status");
        char *body = json_dumps(json_object_get(t, "chat_response"), JSON_COMPACT);
        cr_assert_not_null(body);
        int rc = dp_resp_response_from_chat(skel, status ? (int)json_integer_value(status) : 200,
                                            body, strlen(body), out, final);
        cr_assert_eq(rc, 0);
        free(body);
        json_decref(skel);
        return;
    }
    dp_resp_stream_t *s = dp_resp_stream_create(skel);
    cr_assert_not_null(s);
    const char *p = json_string_value(stream);
    size_t n = json_string_length(stream);
    for (size_t off = 0; off < n;) {
        size_t k = piece == 0 || n - off < piece ? n - off : piece;
        cr_assert_eq(dp_resp_stream_feed(s, p + off, k, out), 0);
        off += k;
    }
    const json_t *complete = json_object_get(t, "stream_complete");
    cr_assert_eq(dp_resp_stream_end(s, !json_is_false(complete), out), 0);
    const json_t *fail = json_object_get(t, "fail");
    if (json_is_object(fail)) {
        const json_t *m = json_object_get(fail, "message");
        cr_assert_eq(dp_resp_stream_fail(s,
                                         (int)json_integer_value(json_object_get(fail, "status")),
                                         json_string_value(m), json_string_length(m), out),
                     0);
    }
    if (dp_resp_stream_response(s))
        *final = json_deep_copy(dp_resp_stream_response(s));
    dp_resp_stream_destroy(s);
    json_decref(skel);
}

/* NUL-terminates b's bytes (not counted in len), for the string functions below. */
static void cstr(tg_buf_t *b)
{
    cr_assert_eq(tg_buf_append(b, "", 1), 0);
    b->len--;
}

/* The framing every stream must have: `event: T` equal to data.type, sequence_number 0, 1, ...,
 * response.created first and exactly one terminal lifecycle event, last. */
static void check_framing(const char *name, tg_buf_t *b)
{
    cstr(b);
    long long seq = 0;
    size_t off = 0;
    bool terminal = false;
    while (off < b->len) {
        const char *ev = b->base + off;
        const char *end = strstr(ev, "\n\n");
        cr_assert_not_null(end, "%s: unterminated event", name);
        cr_assert(strncmp(ev, "event: ", 7) == 0, "%s: no event line", name);
        const char *nl = strchr(ev, '\n');
        cr_assert(strncmp(nl + 1, "data: ", 6) == 0, "%s: no data line", name);
        json_t *d = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, NULL);
        cr_assert_not_null(d, "%s: data is not JSON", name);
        const json_t *type = json_object_get(d, "type");
        cr_assert(json_is_string(type) && json_string_length(type) == (size_t)(nl - ev - 7) &&
                      memcmp(json_string_value(type), ev + 7, (size_t)(nl - ev - 7)) == 0,
                  "%s: event line and data.type differ", name);
        cr_assert_eq(json_integer_value(json_object_get(d, "sequence_number")), seq,
                     "%s: sequence_number %lld expected", name, seq);
        if (seq == 0)
            cr_assert_str_eq(json_string_value(type), "response.created", "%s", name);
        cr_assert(!terminal, "%s: an event after the terminal one", name);
        const char *ty = json_string_value(type);
        terminal = strcmp(ty, "response.completed") == 0 || strcmp(ty, "response.failed") == 0 ||
                   strcmp(ty, "response.incomplete") == 0;
        json_decref(d);
        seq++;
        off = (size_t)(end + 2 - b->base);
    }
    cr_assert(terminal, "%s: no terminal lifecycle event", name);
}

static void run_transcript(const char *dir, const char *file, bool update)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    json_error_t jerr;
    json_t *t = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(t, "%s: line %d: %s", file, jerr.line, jerr.text);

    const json_t *exp_chat = json_object_get(t, "expect_chat");
    if (exp_chat) {
        json_t *chat = NULL;
        tg_err_t err;
        tg_err_clear(&err);
        cr_assert_eq(dp_resp_request_to_chat(json_object_get(t, "request"),
                                             json_object_get(t, "prefix"), NULL, NULL, "mock-chat",
                                             &chat, &err),
                     0, "%s: %s", file, err.msg);
        char *a = json_dumps(chat, JSON_COMPACT | JSON_SORT_KEYS);
        cr_assert(json_equal(chat, (json_t *)exp_chat), "%s: chat body differs:\n%s", file, a);
        free(a);
        json_decref(chat);
    }

    tg_buf_t whole = TG_BUF_INIT(1u << 24);
    json_t *final = NULL;
    run(t, 0, &whole, &final);
    bool stream = json_is_string(json_object_get(t, "chat_stream"));
    if (stream) {
        check_framing(file, &whole);
        /* the same output whatever the split */
        for (size_t piece = 1; piece <= 7; piece += 3) {
            tg_buf_t b = TG_BUF_INIT(1u << 24);
            json_t *f2 = NULL;
            run(t, piece, &b, &f2);
            cr_assert(b.len == whole.len && memcmp(b.base, whole.base, b.len) == 0,
                      "%s: fed in %zu-byte pieces, the output differs", file, piece);
            tg_buf_dispose(&b);
            json_decref(f2);
        }
    }
    const char *key = stream ? "expect_events" : "expect_response";
    json_t *actual =
        stream ? json_stringn(whole.base, whole.len) : json_loadb(whole.base, whole.len, 0, NULL);
    cr_assert_not_null(actual, "%s: the output is not JSON: %.*s", file, (int)whole.len,
                       whole.base);
    if (update) {
        cr_assert_eq(json_object_set(t, key, actual), 0);
        cr_assert_eq(json_dump_file(t, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
    } else {
        const json_t *exp = json_object_get(t, key);
        cr_assert_not_null(exp, "%s: no %s", file, key);
        cr_assert(json_equal(exp, actual), "%s: the output differs from %s:\n%.*s", file, key,
                  (int)whole.len, whole.base);
    }
    /* the final response (for the store) is the one the client got last */
    if (final && stream) {
        const char *last = whole.base + whole.len - 2;
        while (last > whole.base && !(last[-1] == '\n' && strncmp(last, "data: ", 6) == 0))
            last--;
        json_t *d = json_loadb(last + 6, (size_t)(whole.base + whole.len - last - 8), 0, NULL);
        cr_assert(json_equal(json_object_get(d, "response"), final), "%s: final differs", file);
        json_decref(d);
    }
    json_decref(final);
    json_decref(actual);
    tg_buf_dispose(&whole);
    json_decref(t);
}

Test(dp_responses, transcripts)
{
    const char *dir = transcript_dir();
    const char *upd = getenv("TG_RESP_TRANSCRIPTS_UPDATE");
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no transcripts in %s", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        run_transcript(dir, de->d_name, upd && upd[0] == '1');
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 8, "only %d transcripts in %s", n, dir);
}

/* ---- stream properties beyond the transcripts ---- */

static const char two_calls[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\","
    "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
    "\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":"
    "{\"arguments\":\":1}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: [DONE]\n\n";

Test(dp_responses, interleaved_parallel_calls_keep_their_output_index)
{
    json_t *skel = dp_resp_skeleton(NULL, "resp_x", "m", CREATED);
    dp_resp_stream_t *s = dp_resp_stream_create(skel);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_stream_feed(s, two_calls, sizeof(two_calls) - 1, &out), 0);
    cr_assert_eq(dp_resp_stream_end(s, true, &out), 0);
    check_framing("two calls", &out);
    const json_t *f = dp_resp_stream_response(s);
    cr_assert_not_null(f);
    expect_json(json_object_get(f, "output"),
                "[{\"id\":\"fc_x_0\",\"type\":\"function_call\",\"status\":\"completed\","
                "\"arguments\":\"{}\",\"call_id\":\"call_a\",\"name\":\"f\"},{\"id\":\"fc_x_1\","
                "\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":"
                "\"{\\\"x\\\":1}\",\"call_id\":\"call_b\",\"name\":\"g\"}]");
    cr_assert_not_null(strstr(out.base, "\"item_id\":\"fc_x_1\",\"output_index\":1,\"delta\":"
                                        "\":1}\""));
    /* no usage from the provider: zeros, never a missing object */
    expect_json(json_object_get(f, "usage"),
                "{\"input_tokens\":0,\"input_tokens_details\":{\"cached_tokens\":0},"
                "\"output_tokens\":0,\"output_tokens_details\":{\"reasoning_tokens\":0},"
                "\"total_tokens\":0}");
    tg_buf_dispose(&out);
    dp_resp_stream_destroy(s);
    json_decref(skel);
}

Test(dp_responses, fail_before_any_chunk_still_starts_with_response_created)
{
    json_t *skel = dp_resp_skeleton(NULL, "resp_y", "m", CREATED);
    dp_resp_stream_t *s = dp_resp_stream_create(skel);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    cr_assert_eq(dp_resp_stream_end(s, false, &out), 0);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(dp_resp_stream_fail(s, 504, "upstream timed out", 18, &out), 0);
    check_framing("fail", &out);
    cr_assert_not_null(strstr(out.base, "\"error\":{\"code\":\"server_error\",\"message\":"
                                        "\"upstream timed out\"}"));
    size_t len = out.len;
    cr_assert_eq(dp_resp_stream_fail(s, 500, "again", 5, &out), 0);
    cr_assert_eq(out.len, len, "nothing after the terminal event");
    tg_buf_dispose(&out);
    dp_resp_stream_destroy(s);
    json_decref(skel);
}

Test(dp_responses, a_non_chat_2xx_body_is_an_upstream_error)
{
    json_t *skel = dp_resp_skeleton(NULL, "resp_z", "m", CREATED);
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    json_t *final = NULL;
    cr_assert_eq(dp_resp_response_from_chat(skel, 200, "{\"x\":1}", 7, &out, &final), TG_EUPSTREAM);
    cr_assert_null(final);
    cr_assert_eq(dp_resp_response_from_chat(skel, 502, "oops", 4, &out, &final), 0);
    cr_assert_null(final);
    cstr(&out);
    cr_assert_str_eq(out.base, "{\"error\":{\"message\":\"the provider answered with status "
                               "502\",\"type\":\"api_error\",\"param\":null,\"code\":null}}");
    tg_buf_dispose(&out);
    json_decref(skel);
}

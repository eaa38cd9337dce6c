/* test_dp_messages.c: the Anthropic Messages client format over OpenAI-shaped providers: request
 * translation, JSON answers, and streams (well-formed event sequences, whatever the split). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"

/* ---- requests ---- */

static json_t *req(const char *anthropic)
{
    json_error_t jerr;
    json_t *a = json_loads(anthropic, 0, &jerr);
    cr_assert_not_null(a, "test body: %s", jerr.text);
    json_t *oa = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = dp_msgs_request_to_openai(a, &oa, &err);
    cr_assert_eq(rc, 0, "translation failed: %s", err.msg);
    cr_assert_not_null(oa);
    json_decref(a);
    return oa;
}

static void req_fails(const char *anthropic, const char *contains)
{
    json_t *a = json_loads(anthropic, 0, NULL);
    cr_assert_not_null(a);
    json_t *oa = (json_t *)1;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_msgs_request_to_openai(a, &oa, &err), TG_EINVAL, "accepted: %s", anthropic);
    cr_assert_null(oa);
    cr_assert_eq(err.status, 400);
    cr_assert(strstr(err.msg, contains) != NULL, "message [%s] lacks [%s]", err.msg, contains);
    json_decref(a);
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

Test(dp_messages, request_maps_parameters_and_drops_anthropic_only_ones)
{
    json_t *oa = req("{\"model\":\"claude-x\",\"max_tokens\":256,\"temperature\":0.5,\"top_p\":0.9,"
                     "\"top_k\":40,\"stop_sequences\":[\"END\",\"STOP\"],\"stream\":true,"
                     "\"metadata\":{\"user_id\":\"u-7\"},\"thinking\":{\"type\":\"enabled\","
                     "\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\","
                     "\"content\":\"Hi\"}]}");
    expect_json(oa, "{\"model\":\"claude-x\",\"max_tokens\":256,\"temperature\":0.5,\"top_p\":0.9,"
                    "\"stop\":[\"END\",\"STOP\"],\"stream\":true,\"stream_options\":"
                    "{\"include_usage\":true},\"user\":\"u-7\",\"messages\":[{\"role\":\"user\","
                    "\"content\":\"Hi\"}]}");
    json_decref(oa);
}

Test(dp_messages, request_joins_system_blocks_into_the_first_message)
{
    json_t *oa = req("{\"model\":\"m\",\"max_tokens\":5,\"system\":[{\"type\":\"text\",\"text\":"
                     "\"You are terse.\",\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":"
                     "\"text\",\"text\":\"Answer in French.\"}],\"messages\":[{\"role\":\"user\","
                     "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
                     "\"text\":\"b\"}]}]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"system\",\"content\":\"You are terse.\\n\\nAnswer in French.\"},"
                "{\"role\":\"user\",\"content\":\"a\\nb\"}]");
    json_decref(oa);
    oa = req("{\"model\":\"m\",\"max_tokens\":5,\"system\":\"Be brief.\",\"messages\":[]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"system\",\"content\":\"Be brief.\"}]");
    json_decref(oa);
}

Test(dp_messages, request_images_become_image_url_parts)
{
    json_t *oa =
        req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
            "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
            "\"image/png\",\"data\":\"iVBORw0K\"}},{\"type\":\"image\",\"source\":"
            "{\"type\":\"url\",\"url\":\"https://x.test/a.jpg\"}},{\"type\":\"text\","
            "\"text\":\"What is this?\"}]}]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"data:image/png;base64,iVBORw0K\"}},{\"type\":\"image_url\",\"image_url\":"
                "{\"url\":\"https://x.test/a.jpg\"}},{\"type\":\"text\",\"text\":"
                "\"What is this?\"}]}]");
    json_decref(oa);
}

Test(dp_messages, request_tool_round_trip_puts_tool_messages_before_user_text)
{
    json_t *oa = req(
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\","
        "\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"Checking.\"},{\"type\":\"tool_use\","
        "\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":"
        "\"tool_use\",\"id\":\"toolu_2\",\"name\":\"weather\",\"input\":{\"city\":\"Rome\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Here:\"},{\"type\":"
        "\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18C\"},{\"type\":"
        "\"tool_result\",\"tool_use_id\":\"toolu_2\",\"is_error\":true,\"content\":[{\"type\":"
        "\"text\",\"text\":\"timeout\"}]}]}]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
                "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
                "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
                "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
                "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
                "\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},"
                "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"18C\"},"
                "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"Error: timeout\"},"
                "{\"role\":\"user\",\"content\":\"Here:\"}]");
    json_decref(oa);
}

Test(dp_messages, request_tool_only_assistant_has_null_content_and_results_alone_no_user)
{
    json_t *oa = req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
                     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                     "\"name\":\"ls\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"tool_result\",\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\","
                     "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"image\","
                     "\"source\":{\"type\":\"url\",\"url\":\"https://x.test/i.png\"}}]}]}]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\","
                "\"type\":\"function\",\"function\":{\"name\":\"ls\",\"arguments\":\"{}\"}}]},"
                "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"a\\nb\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"https://x.test/i.png\"}}]}]");
    json_decref(oa);
}

Test(dp_messages, request_tools_and_tool_choice)
{
    json_t *oa = req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[],\"tools\":["
                     "{\"name\":\"get\",\"description\":\"Get it\",\"input_schema\":{\"type\":"
                     "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}},\"cache_control\":"
                     "{\"type\":\"ephemeral\"}},{\"type\":\"web_search_20250305\",\"name\":"
                     "\"web_search\",\"max_uses\":3},{\"type\":\"custom\",\"name\":\"put\","
                     "\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"any\","
                     "\"disable_parallel_tool_use\":true}}");
    expect_json(oa, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[],\"tools\":["
                    "{\"type\":\"function\",\"function\":{\"name\":\"get\",\"description\":"
                    "\"Get it\",\"parameters\":{\"type\":\"object\",\"properties\":{\"q\":"
                    "{\"type\":\"string\"}}}}},{\"type\":\"function\",\"function\":{\"name\":"
                    "\"put\",\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":"
                    "\"required\",\"parallel_tool_calls\":false}");
    json_decref(oa);
    static const struct {
        const char *in;
        const char *out;
    } choices[] = {{"{\"type\":\"auto\"}", "\"auto\""},
                   {"{\"type\":\"none\"}", "\"none\""},
                   {"{\"type\":\"tool\",\"name\":\"get\"}",
                    "{\"type\":\"function\",\"function\":{\"name\":\"get\"}}"}};
    for (size_t i = 0; i < sizeof(choices) / sizeof(choices[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[],\"tools\":[{\"name\":\"get\","
                 "\"input_schema\":{}}],\"tool_choice\":%s}",
                 choices[i].in);
        oa = req(body);
        expect_json(json_object_get(oa, "tool_choice"), choices[i].out);
        json_decref(oa);
    }
    /* only server tools: no tools, and no tool_choice OpenAI would refuse */
    oa = req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[],\"tools\":[{\"type\":"
             "\"web_search_20250305\",\"name\":\"web_search\"}],\"tool_choice\":{\"type\":"
             "\"auto\"}}");
    cr_assert_null(json_object_get(oa, "tools"));
    cr_assert_null(json_object_get(oa, "tool_choice"));
    json_decref(oa);
}

Test(dp_messages, request_documents_and_assistant_strings)
{
    json_t *oa = req("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":[{\"type\":\"document\",\"title\":\"a.pdf\",\"source\":{\"type\":"
                     "\"base64\",\"media_type\":\"application/pdf\",\"data\":\"JVBE\"}},{\"type\":"
                     "\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\","
                     "\"data\":\"plain\"}}]},{\"role\":\"assistant\",\"content\":\"ok\"}]}");
    expect_json(json_object_get(oa, "messages"),
                "[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_data\":"
                "\"data:application/pdf;base64,JVBE\",\"filename\":\"a.pdf\"}},{\"type\":\"text\","
                "\"text\":\"plain\"}]},{\"role\":\"assistant\",\"content\":\"ok\"}]");
    json_decref(oa);
}

Test(dp_messages, malformed_requests_are_400s_naming_the_field)
{
#define HEAD "{\"model\":\"m\",\"max_tokens\":5,"
    req_fails(HEAD "\"messages\":{}}", "messages: ");
    req_fails(HEAD "\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages.0.role");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
                   "\"content\":7}]}",
              "messages.1.content: must be a string or an array");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
              "messages.0.content.0.text");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"audio\"}]}]}",
              "messages.0.content.0.type");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                   "{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
              "messages.0.content.0.source.type");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                   "{\"type\":\"base64\",\"data\":\"x\"}}]}]}",
              "messages.0.content.0.source");
    req_fails(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
                   "\"name\":\"x\",\"input\":{}}]}]}",
              "messages.0.content.0.id");
    req_fails(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
                   "\"id\":\"t\",\"name\":\"x\",\"input\":[1]}]}]}",
              "messages.0.content.0.input");
    req_fails(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                   "\"content\":\"x\"}]}]}",
              "messages.0.content.0.tool_use_id");
    req_fails(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_result\","
                   "\"tool_use_id\":\"t\"}]}]}",
              "messages.0.content.0.type");
    req_fails(HEAD "\"messages\":[],\"system\":[{\"type\":\"image\"}]}", "system.0");
    req_fails(HEAD "\"messages\":[],\"tools\":[{\"name\":\"x\"}]}", "tools.0.input_schema");
    req_fails(HEAD "\"messages\":[],\"tools\":[{\"name\":\"x\",\"input_schema\":{}}],"
                   "\"tool_choice\":{\"type\":\"some\"}}",
              "tool_choice.type");
    req_fails(HEAD "\"messages\":[],\"tool_choice\":{\"type\":\"tool\"}}", "tool_choice.name");
    req_fails(HEAD "\"messages\":[],\"stop_sequences\":\"END\"}", "stop_sequences");
    req_fails(HEAD "\"messages\":[],\"temperature\":\"hot\"}", "temperature");
    req_fails("{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}", "max_tokens");
#undef HEAD
}

/* ---- JSON answers ---- */

static json_t *answer(int status, const char *body, int want_rc)
{
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    int rc = dp_msgs_response_from_openai(status, body, strlen(body), "gpt-4o-mini", &out);
    cr_assert_eq(rc, want_rc);
    json_t *j = NULL;
    if (rc == 0) {
        json_error_t jerr;
        j = json_loadb(out.base, out.len, JSON_REJECT_DUPLICATES, &jerr);
        cr_assert_not_null(j, "not JSON (%s): %.*s", jerr.text, (int)out.len, out.base);
    }
    tg_buf_dispose(&out);
    return j;
}

Test(dp_messages, response_text_and_usage_with_cache_reads)
{
    json_t *j = answer(200,
                       "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":1,"
                       "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                       "\"assistant\",\"content\":\"Hello!\"},\"finish_reason\":\"stop\"}],"
                       "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,\"total_tokens\":"
                       "127,\"prompt_tokens_details\":{\"cached_tokens\":100}}}",
                       0);
    expect_json(j, "{\"id\":\"msg_abc\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                   "\"gpt-4o-mini\",\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],"
                   "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{"
                   "\"input_tokens\":20,\"output_tokens\":7,\"cache_creation_input_tokens\":0,"
                   "\"cache_read_input_tokens\":100}}");
    json_decref(j);
}

Test(dp_messages, response_tool_calls_parse_arguments_and_bad_json_is_empty_input)
{
    json_t *j = answer(
        200,
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get\",\"arguments\":\"{\\\"q\\\":\\\"x\\\"}\"}},{\"id\":\"call_2\",\"type\":"
        "\"function\",\"function\":{\"name\":\"put\",\"arguments\":\"{oops\"}}]},"
        "\"finish_reason\":\"tool_calls\"}]}",
        0);
    expect_json(j, "{\"id\":\"msg_c1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                   "\"gpt-4o-mini\",\"content\":[{\"type\":\"tool_use\",\"id\":\"call_1\","
                   "\"name\":\"get\",\"input\":{\"q\":\"x\"}},{\"type\":\"tool_use\",\"id\":"
                   "\"call_2\",\"name\":\"put\",\"input\":{}}],\"stop_reason\":\"tool_use\","
                   "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0,"
                   "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}");
    json_decref(j);
}

Test(dp_messages, response_finish_reasons_map_to_stop_reasons)
{
    static const struct {
        const char *finish;
        const char *stop;
    } m[] = {{"\"stop\"", "end_turn"},
             {"\"length\"", "max_tokens"},
             {"\"content_filter\"", "refusal"},
             {"\"tool_calls\"", "tool_use"},
             {"null", "end_turn"}};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"id\":\"c\",\"choices\":[{\"message\":{\"content\":\"x\"},"
                 "\"finish_reason\":%s}]}",
                 m[i].finish);
        json_t *j = answer(200, body, 0);
        cr_assert_str_eq(json_string_value(json_object_get(j, "stop_reason")), m[i].stop);
        json_decref(j);
    }
}

Test(dp_messages, response_errors_keep_the_provider_message)
{
    json_t *j = answer(429,
                       "{\"error\":{\"message\":\"Rate limit reached for gpt-4o\",\"type\":"
                       "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
                       0);
    expect_json(j, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                   "\"Rate limit reached for gpt-4o\"}}");
    json_decref(j);
    j = answer(502, "<html>bad gateway</html>", 0);
    expect_json(j, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                   "\"<html>bad gateway</html>\"}}");
    json_decref(j);
    j = answer(401, "", 0);
    expect_json(j, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
                   "\"the provider answered with status 401\"}}");
    json_decref(j);
    cr_assert_null(answer(200, "{\"object\":\"list\"}", TG_EUPSTREAM));
    cr_assert_null(answer(200, "not json", TG_EUPSTREAM));
}

/* ---- streams ---- */

typedef struct ev {
    char name[32];
    json_t *data;
} ev_t;

typedef struct evs {
    ev_t ev[256];
    size_t n;
} evs_t;

static void evs_free(evs_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        json_decref(e->ev[i].data);
    e->n = 0;
}

/* Splits the translator's output into events; each must be "event: x\ndata: {json}\n\n". */
static void evs_parse(const char *p, size_t n, evs_t *e)
{
    memset(e, 0, sizeof(*e));
    size_t at = 0;
    while (at < n) {
        const char *end = tg_memmem(p + at, n - at, "\n\n", 2);
        cr_assert_not_null(end, "unterminated event: [%.*s]", (int)(n - at), p + at);
        const char *ev = p + at;
        size_t len = (size_t)(end - ev);
        cr_assert(len > 7 && memcmp(ev, "event: ", 7) == 0, "no event line: [%.*s]", (int)len, ev);
        const char *nl = memchr(ev, '\n', len);
        cr_assert_not_null(nl);
        cr_assert_lt(e->n, 256);
        ev_t *x = &e->ev[e->n++];
        size_t nn = (size_t)(nl - ev - 7);
        cr_assert_lt(nn, sizeof(x->name));
        memcpy(x->name, ev + 7, nn);
        x->name[nn] = '\0';
        cr_assert(memcmp(nl + 1, "data: ", 6) == 0, "no data line: [%.*s]", (int)len, ev);
        json_error_t jerr;
        x->data = json_loadb(nl + 7, (size_t)(end - nl - 7), JSON_REJECT_DUPLICATES, &jerr);
        cr_assert_not_null(x->data, "data is not JSON (%s): [%.*s]", jerr.text, (int)len, ev);
        const char *type = json_string_value(json_object_get(x->data, "type"));
        cr_assert(type && strcmp(type, x->name) == 0, "type differs from event name: %s", x->name);
        at = (size_t)(end - p) + 2;
    }
}

static int64_t ival(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "%s is not an integer", k);
    return json_integer_value(v);
}

/* Checks the grammar of an Anthropic stream and rebuilds the message it describes: content
 * blocks (text joined, tool input parsed from the partial_json pieces), stop_reason, usage.
 * complete: the stream must end in message_stop (else: must not). */
static json_t *rebuild(const evs_t *e, bool complete)
{
    json_t *msg = NULL;
    json_t *content = json_array();
    tg_buf_t acc = TG_BUF_INIT(1u << 20);
    int64_t open = -1;
    const char *open_type = NULL;
    bool delta_seen = false, stop_seen = false, error_seen = false;
    for (size_t i = 0; i < e->n; i++) {
        const char *name = e->ev[i].name;
        const json_t *d = e->ev[i].data;
        cr_assert_not(stop_seen, "event %s after message_stop", name);
        cr_assert_not(error_seen, "event %s after error", name);
        if (strcmp(name, "error") == 0) {
            error_seen = true;
            continue;
        }
        if (i == 0) {
            cr_assert_str_eq(name, "message_start");
            msg = json_deep_copy(json_object_get(d, "message"));
            cr_assert_eq(json_array_size(json_object_get(msg, "content")), 0);
            cr_assert(json_is_null(json_object_get(msg, "stop_reason")));
            continue;
        }
        cr_assert_str_neq(name, "message_start");
        if (strcmp(name, "ping") == 0)
            continue;
        cr_assert_not(delta_seen && strcmp(name, "message_stop") != 0, "%s after message_delta",
                      name);
        if (strcmp(name, "content_block_start") == 0) {
            cr_assert_eq(open, -1, "block started while %lld is open", (long long)open);
            open = ival(d, "index");
            cr_assert_eq((size_t)open, json_array_size(content), "block indexes skip");
            json_t *b = json_deep_copy(json_object_get(d, "content_block"));
            open_type = json_string_value(json_object_get(b, "type"));
            cr_assert(open_type);
            if (strcmp(open_type, "tool_use") == 0) {
                cr_assert(json_is_string(json_object_get(b, "id")));
                cr_assert(json_is_string(json_object_get(b, "name")));
                cr_assert_eq(json_object_size(json_object_get(b, "input")), 0);
            } else {
                cr_assert_str_eq(open_type, "text");
                cr_assert_str_eq(json_string_value(json_object_get(b, "text")), "");
            }
            json_array_append_new(content, b);
            open_type = json_string_value(json_object_get(b, "type"));
            tg_buf_reset(&acc);
        } else if (strcmp(name, "content_block_delta") == 0) {
            cr_assert_eq(ival(d, "index"), open, "delta for a block not open");
            const json_t *delta = json_object_get(d, "delta");
            const char *dt = json_string_value(json_object_get(delta, "type"));
            const json_t *piece =
                json_object_get(delta, strcmp(open_type, "text") == 0 ? "text" : "partial_json");
            cr_assert_str_eq(dt,
                             strcmp(open_type, "text") == 0 ? "text_delta" : "input_json_delta");
            cr_assert(json_is_string(piece));
            cr_assert_eq(tg_buf_append(&acc, json_string_value(piece), json_string_length(piece)),
                         0);
        } else if (strcmp(name, "content_block_stop") == 0) {
            cr_assert_eq(ival(d, "index"), open, "stop for a block not open");
            json_t *b = json_array_get(content, (size_t)open);
            if (strcmp(open_type, "text") == 0) {
                cr_assert_gt(acc.len, 0, "an empty text block");
                json_object_set_new(b, "text", json_stringn(acc.base, acc.len));
            } else {
                /* arguments that are no JSON object stay as the text that came */
                json_t *in = acc.len ? json_loadb(acc.base, acc.len, 0, NULL) : json_object();
                if (!json_is_object(in)) {
                    json_decref(in);
                    in = json_stringn(acc.base, acc.len);
                }
                json_object_set_new(b, "input", in);
            }
            open = -1;
        } else if (strcmp(name, "message_delta") == 0) {
            cr_assert_eq(open, -1, "message_delta with block %lld open", (long long)open);
            const json_t *delta = json_object_get(d, "delta");
            cr_assert(json_is_string(json_object_get(delta, "stop_reason")));
            cr_assert(json_is_null(json_object_get(delta, "stop_sequence")));
            json_object_set(msg, "stop_reason", json_object_get(delta, "stop_reason"));
            json_object_set(msg, "usage", json_object_get(d, "usage"));
            delta_seen = true;
        } else if (strcmp(name, "message_stop") == 0) {
            cr_assert(delta_seen, "message_stop without message_delta");
            stop_seen = true;
        } else {
            cr_assert_fail("unknown event %s", name);
        }
    }
    cr_assert_eq(stop_seen, complete, "message_stop %s", stop_seen ? "sent" : "missing");
    if (msg)
        json_object_set(msg, "content", content);
    json_decref(content);
    tg_buf_dispose(&acc);
    return msg;
}

/* Feeds in pieces ending at cuts (the last is the length), then ends the stream. */
static void feed(const char *in, const size_t *cuts, size_t ncuts, bool complete, tg_buf_t *out)
{
    dp_msgs_stream_t *s = dp_msgs_stream_create("gpt-4o-mini", "req-1");
    cr_assert_not_null(s);
    size_t at = 0;
    for (size_t i = 0; i < ncuts; i++) {
        cr_assert_eq(dp_msgs_stream_feed(s, in + at, cuts[i] - at, out), 0);
        at = cuts[i];
    }
    cr_assert_eq(dp_msgs_stream_end(s, complete, out), 0);
    dp_msgs_stream_destroy(s);
}

/* The output fed whole, checked to be the same fed byte by byte and split at every byte. */
static void translate(const char *in, bool complete, tg_buf_t *whole)
{
    size_t n = strlen(in);
    feed(in, &n, 1, complete, whole);
    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    cr_assert_not_null(cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    feed(in, cuts, n, complete, &b);
    cr_assert(tg_mem_eq(b.base, b.len, whole->base, whole->len), "byte by byte differs:\n%.*s",
              (int)b.len, b.base);
    for (size_t k = 1; k < n; k++) {
        size_t two[2] = {k, n};
        tg_buf_reset(&b);
        feed(in, two, 2, complete, &b);
        cr_assert(tg_mem_eq(b.base, b.len, whole->base, whole->len), "split at %zu differs:\n%.*s",
                  k, (int)b.len, b.base);
    }
    tg_buf_dispose(&b);
    free(cuts);
}

static json_t *stream_message(const char *in, bool complete, evs_t *e)
{
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    translate(in, complete, &out);
    evs_parse(out.base, out.len, e);
    json_t *m = rebuild(e, complete);
    tg_buf_dispose(&out);
    return m;
}

#define CHUNK(delta, finish)                                                                       \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"   \
    "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" finish      \
    "}],\"usage\":null}\n\n"
#define TOOL(i, rest) "{\"tool_calls\":[{\"index\":" #i "," rest "}]}"
#define USAGE(p, c, cached)                                                                        \
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":" #p                 \
    ",\"completion_tokens\":" #c ",\"total_tokens\":1,\"prompt_tokens_details\":"                  \
    "{\"cached_tokens\":" #cached "}}}\n\n"
#define DONE "data: [DONE]\n\n"

static const char TEXT_STREAM[] = CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
    CHUNK("{\"content\":\"Hel\"}", "null") CHUNK("{\"content\":\"lo \\\"w\\u00e9\\\"\"}", "null")
        CHUNK("{}", "\"stop\"") USAGE(12, 3, 4) DONE;

Test(dp_messages, text_stream_exact_events)
{
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    translate(TEXT_STREAM, true, &out);
    const char want[] =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_req-1\","
        "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-4o-mini\",\"content\":[],"
        "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}"
        "\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"lo \\\"w\xc3\xa9\\\"\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":8,\"output_tokens\":3,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    cr_assert(tg_mem_eq(out.base, out.len, want, sizeof(want) - 1), "got:\n%.*s", (int)out.len,
              out.base);
    tg_buf_dispose(&out);
}

Test(dp_messages, message_delta_waits_for_the_usage_chunk)
{
    dp_msgs_stream_t *s = dp_msgs_stream_create("m", "r");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char a[] = CHUNK("{\"content\":\"x\"}", "null") CHUNK("{}", "\"length\"");
    cr_assert_eq(dp_msgs_stream_feed(s, a, sizeof(a) - 1, &out), 0);
    cr_assert_null(tg_memmem(out.base, out.len, "message_delta", 13));
    tg_buf_reset(&out);
    const char b[] = USAGE(5, 9, 0);
    cr_assert_eq(dp_msgs_stream_feed(s, b, sizeof(b) - 1, &out), 0);
    evs_t e;
    evs_parse(out.base, out.len, &e);
    cr_assert_eq(e.n, 3);
    cr_assert_str_eq(e.ev[0].name, "content_block_stop");
    expect_json(e.ev[1].data, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                              "\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":"
                              "5,\"output_tokens\":9,\"cache_creation_input_tokens\":0,"
                              "\"cache_read_input_tokens\":0}}");
    cr_assert_str_eq(e.ev[2].name, "message_stop");
    evs_free(&e);
    tg_buf_reset(&out);
    const char c[] = DONE;
    cr_assert_eq(dp_msgs_stream_feed(s, c, sizeof(c) - 1, &out), 0);
    cr_assert_eq(dp_msgs_stream_end(s, true, &out), 0);
    cr_assert_eq(out.len, 0, "something after message_stop: %.*s", (int)out.len, out.base);
    tg_buf_dispose(&out);
    dp_msgs_stream_destroy(s);
}

static const char TWO_TOOLS[] =
    CHUNK("{\"role\":\"assistant\",\"content\":\"Let me look.\"}", "null")
        CHUNK(TOOL(0, "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get\","
                      "\"arguments\":\"\"}"),
              "null") CHUNK(TOOL(0, "\"function\":{\"arguments\":\"{\\\"q\\\":\"}"), "null")
            CHUNK(TOOL(0, "\"function\":{\"arguments\":\"\\\"pa}ris\\\"}\"}"), "null")
                CHUNK(TOOL(1, "\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":"
                              "\"put\",\"arguments\":\"{\\\"n\\\": [1,\"}"),
                      "null") CHUNK(TOOL(1, "\"function\":{\"arguments\":\"2]}\"}"), "null")
                    CHUNK("{}", "\"tool_calls\"") USAGE(30, 20, 0) DONE;

Test(dp_messages, two_tool_calls_become_two_blocks_after_the_text)
{
    evs_t e;
    json_t *m = stream_message(TWO_TOOLS, true, &e);
    expect_json(json_object_get(m, "content"),
                "[{\"type\":\"text\",\"text\":\"Let me look.\"},{\"type\":\"tool_use\",\"id\":"
                "\"call_a\",\"name\":\"get\",\"input\":{\"q\":\"pa}ris\"}},{\"type\":"
                "\"tool_use\",\"id\":\"call_b\",\"name\":\"put\",\"input\":{\"n\":[1,2]}}]");
    cr_assert_str_eq(json_string_value(json_object_get(m, "stop_reason")), "tool_use");
    cr_assert_eq(ival(json_object_get(m, "usage"), "output_tokens"), 20);
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, interleaved_tool_indexes_still_give_whole_blocks)
{
    /* call 1 starts before call 0's arguments are whole; call 0 gets more afterwards */
    const char in[] =
        CHUNK(TOOL(0, "\"id\":\"c0\",\"function\":{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":\"}"),
              "null") CHUNK(TOOL(1, "\"id\":\"c1\",\"function\":{\"name\":\"b\",\"arguments\":"
                                    "\"{\\\"y\\\"\"}"),
                            "null") CHUNK("{\"content\":\"note\"}", "null")
            CHUNK(TOOL(0, "\"function\":{\"arguments\":\"1}\"}"), "null")
                CHUNK(TOOL(1, "\"function\":{\"arguments\":\":2}\"}"), "null")
                    CHUNK(TOOL(2, "\"id\":\"c2\",\"function\":{\"name\":\"c\",\"arguments\":"
                                  "\"{}\"}"),
                          "null") CHUNK("{}", "\"tool_calls\"") USAGE(1, 1, 0) DONE;
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    expect_json(json_object_get(m, "content"),
                "[{\"type\":\"tool_use\",\"id\":\"c0\",\"name\":\"a\",\"input\":{\"x\":1}},"
                "{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"b\",\"input\":{\"y\":2}},"
                "{\"type\":\"text\",\"text\":\"note\"},"
                "{\"type\":\"tool_use\",\"id\":\"c2\",\"name\":\"c\",\"input\":{}}]");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, unfinished_arguments_hold_later_calls_until_the_end)
{
    const char in[] =
        CHUNK(TOOL(0, "\"id\":\"c0\",\"function\":{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":\"}"),
              "null") CHUNK(TOOL(1, "\"id\":\"c1\",\"function\":{\"name\":\"b\",\"arguments\":"
                                    "\"{}\"}"),
                            "null") CHUNK("{}", "\"tool_calls\"") DONE;
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    expect_json(json_object_get(m, "content"),
                "[{\"type\":\"tool_use\",\"id\":\"c0\",\"name\":\"a\",\"input\":\"{\\\"x\\\":\"},"
                "{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"b\",\"input\":{}}]");
    /* no usage came: output_tokens 0, no input_tokens */
    expect_json(json_object_get(m, "usage"), "{\"output_tokens\":0}");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, index_zero_reused_with_new_ids_and_whole_calls_in_one_chunk)
{
    const char in[] =
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"g1\",\"function\":{\"name\":\"a\","
              "\"arguments\":\"{\\\"k\\\":1}\"}},{\"index\":0,\"id\":\"g2\",\"function\":"
              "{\"name\":\"b\",\"arguments\":\"{\\\"k\\\":2}\"}}]}",
              "\"stop\"") USAGE(2, 2, 0) DONE;
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    expect_json(json_object_get(m, "content"),
                "[{\"type\":\"tool_use\",\"id\":\"g1\",\"name\":\"a\",\"input\":{\"k\":1}},"
                "{\"type\":\"tool_use\",\"id\":\"g2\",\"name\":\"b\",\"input\":{\"k\":2}}]");
    cr_assert_str_eq(json_string_value(json_object_get(m, "stop_reason")), "tool_use");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, tool_without_id_gets_one)
{
    const char in[] =
        CHUNK(TOOL(0, "\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}"), "\"tool_calls\"") DONE;
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(m, "content"), 0), "id")),
        "toolu_req-1_0");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, error_chunk_becomes_an_error_event_and_ends_the_message)
{
    const char in[] =
        CHUNK("{\"content\":\"par\"}", "null") "data: {\"error\":{\"message\":\"Rate limit "
                                               "exceeded\",\"type\":\"rate_limit_error\","
                                               "\"code\":null}}\n\n" CHUNK("{\"content\":\"tial\"}",
                                                                           "null") DONE;
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    translate(in, true, &out);
    evs_t e;
    evs_parse(out.base, out.len, &e);
    cr_assert_eq(e.n, 4);
    cr_assert_str_eq(e.ev[3].name, "error");
    expect_json(e.ev[3].data, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                              "\"message\":\"Rate limit exceeded\"}}");
    json_t *m = rebuild(&e, false);
    json_decref(m);
    evs_free(&e);
    tg_buf_dispose(&out);
}

Test(dp_messages, broken_stream_invents_no_message_stop)
{
    const char in[] = CHUNK("{\"content\":\"half\"}", "null");
    evs_t e;
    json_t *m = stream_message(in, false, &e);
    cr_assert_eq(e.n, 3); /* message_start, block start, delta: the block stays open */
    cr_assert_str_eq(e.ev[2].name, "content_block_delta");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, complete_stream_without_done_closes_what_is_open)
{
    const char in[] = CHUNK("{\"content\":\"all\"}", "null") CHUNK("{}", "\"stop\"");
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    expect_json(json_object_get(m, "content"), "[{\"type\":\"text\",\"text\":\"all\"}]");
    cr_assert_str_eq(json_string_value(json_object_get(m, "stop_reason")), "end_turn");
    json_decref(m);
    evs_free(&e);
    /* the last event without its blank line still counts */
    const char in2[] = CHUNK("{\"content\":\"x\"}", "null") "data: [DONE]";
    m = stream_message(in2, true, &e);
    expect_json(json_object_get(m, "content"), "[{\"type\":\"text\",\"text\":\"x\"}]");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, empty_complete_stream_is_an_empty_message)
{
    evs_t e;
    json_t *m = stream_message(DONE, true, &e);
    cr_assert_eq(json_array_size(json_object_get(m, "content")), 0);
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, keep_alives_become_pings_once_started_and_crlf_is_read)
{
    const char in[] = ": keep-alive\r\n\r\n"
                      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n"
                      ": keep-alive\r\n\r\n"
                      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                      "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\r\n\r\n";
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    cr_assert_str_eq(e.ev[0].name, "message_start");
    cr_assert_str_eq(e.ev[3].name, "ping");
    expect_json(json_object_get(m, "usage"),
                "{\"input_tokens\":3,\"output_tokens\":1,\"cache_creation_input_tokens\":0,"
                "\"cache_read_input_tokens\":0}");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, text_between_tools_and_refusals)
{
    const char in[] =
        CHUNK(TOOL(0, "\"id\":\"c0\",\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}"), "null")
            CHUNK("{\"content\":\"then\"}", "null")
                CHUNK(TOOL(1, "\"id\":\"c1\",\"function\":{\"name\":\"b\",\"arguments\":\"{}\"}"),
                      "null") CHUNK("{\"refusal\":\"no\"}", "\"content_filter\"") DONE;
    evs_t e;
    json_t *m = stream_message(in, true, &e);
    expect_json(json_object_get(m, "content"),
                "[{\"type\":\"tool_use\",\"id\":\"c0\",\"name\":\"a\",\"input\":{}},"
                "{\"type\":\"text\",\"text\":\"then\"},"
                "{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"b\",\"input\":{}},"
                "{\"type\":\"text\",\"text\":\"no\"}]");
    cr_assert_str_eq(json_string_value(json_object_get(m, "stop_reason")), "refusal");
    json_decref(m);
    evs_free(&e);
}

Test(dp_messages, error_helpers_write_anthropic_errors)
{
    tg_buf_t b = TG_BUF_INIT(4096);
    cr_assert_eq(dp_msgs_error_event_append(&b, 529, "busy", 4), 0);
    const char want[] = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                        "\"overloaded_error\",\"message\":\"busy\"}}\n\n";
    cr_assert(tg_mem_eq(b.base, b.len, want, sizeof(want) - 1));
    tg_buf_dispose(&b);
}

/* test_dp_anthropic.c: the Anthropic adapter: request translation, answers, streams (fed whole,
 * byte by byte and split at every point), native Messages passthrough, and the transcripts in
 * tests/golden/anthropic/ run as the conformance suite runs them (through xlate.h). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tg_snap.h"
#include "xlate.h"

#define NOW_S 1764072000
#define MODEL "claude-3-5-haiku-20241022"

/* ---------------------------------------------------------------------------- fixtures */

typedef struct headers {
    char *line[64];
    size_t n;
} headers_t;

static int add_header(void *ud, const char *line)
{
    headers_t *h = ud;
    cr_assert_lt(h->n, 64);
    h->line[h->n++] = strdup(line);
    return 0;
}

static void headers_free(headers_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->line[i]);
    h->n = 0;
}

static bool headers_has(const headers_t *h, const char *line)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->line[i], line) == 0)
            return true;
    return false;
}

static bool headers_has_name(const headers_t *h, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (strncasecmp(h->line[i], name, nl) == 0 && h->line[i][nl] == ':')
            return true;
    return false;
}

/* A snapshot with one provider, parsed by the real parser. */
static tg_snap_t *snap_with(const char *provider_json)
{
    char doc[4096];
    snprintf(doc, sizeof(doc), "{\"version\":1,\"providers\":[%s]}", provider_json);
    tg_snap_t *s = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = tg_snap_parse(doc, strlen(doc), &s, &err);
    cr_assert_eq(rc, 0, "snapshot: %s", err.msg);
    return s;
}

#define PROVIDER                                                                                   \
    "{\"id\":\"p1\",\"kind\":\"anthropic\",\"base_url\":\"http://upstream.test/v1\","              \
    "\"api_key\":\"sk-test\"}"

/* One request through xlate: parse the client body, build the upstream request. */
typedef struct call {
    tg_snap_t *snap;
    dp_reqbody_t rb;
    dp_xlate_t x;
    headers_t h;
    tg_buf_t url, body, out;
    tg_err_t err;
    int rc;
} call_t;

static void call_start(call_t *c, const char *provider, int ep, const char *req)
{
    memset(c, 0, sizeof(*c));
    c->snap = snap_with(provider ? provider : PROVIDER);
    tg_err_clear(&c->err);
    cr_assert_eq(dp_reqbody_parse(&c->rb, ep, req, strlen(req), &c->err), 0, "%s", c->err.msg);
    dp_xlate_init(&c->x, ep, &c->rb, c->rb.include_usage);
    tg_buf_init(&c->url, 1u << 16);
    tg_buf_init(&c->body, 64u << 20);
    tg_buf_init(&c->out, 64u << 20);
    c->rc = dp_xlate_build(&c->x, &c->snap->providers[0], MODEL, "req-1", NOW_S, add_header, &c->h,
                           &c->url, &c->body, &c->err);
}

static void call_end(call_t *c)
{
    headers_free(&c->h);
    dp_xlate_dispose(&c->x);
    dp_reqbody_dispose(&c->rb);
    tg_buf_dispose(&c->url);
    tg_buf_dispose(&c->body);
    tg_buf_dispose(&c->out);
    tg_snap_unref(c->snap);
}

static json_t *body_json(const call_t *c)
{
    json_error_t jerr;
    json_t *j = json_loadb(c->body.base, c->body.len, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "upstream body is not JSON: %s", jerr.text);
    return j;
}

/* Builds a chat request and returns the upstream body (asserting the build worked). */
static json_t *chat_body_for(const char *req)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT, req);
    cr_assert_eq(c.rc, 0, "build: %s", c.err.msg);
    json_t *j = body_json(&c);
    call_end(&c);
    return j;
}

/* Builds a chat request that must fail with a 400 whose message contains `want`. */
static void chat_build_fails(const char *req, const char *want)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT, req);
    cr_assert_neq(c.rc, 0, "build should fail for %s", req);
    cr_assert_eq(c.err.status, 400);
    cr_assert(strstr(c.err.msg, want), "message \"%s\" lacks \"%s\"", c.err.msg, want);
    call_end(&c);
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
    json_error_t jerr;
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(want, "bad expectation: %s", jerr.text);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(got, want), "got  %s\nwant %s", g, w);
    free(g);
    free(w);
    json_decref(want);
}

/* ---------------------------------------------------------------------------- SSE output */

typedef struct event {
    char name[64];
    char *data;
} event_t;

typedef struct events {
    event_t ev[512];
    size_t n;
} events_t;

static void events_parse(events_t *es, const char *p, size_t n)
{
    es->n = 0;
    const char *end = p + n;
    while (p < end) {
        const char *e = tg_memmem(p, (size_t)(end - p), "\n\n", 2);
        cr_assert_not_null(e, "unterminated event: [%.*s]", (int)(end - p), p);
        cr_assert_lt(es->n, 512);
        event_t *ev = &es->ev[es->n++];
        ev->name[0] = '\0';
        ev->data = NULL;
        const char *line = p;
        while (line < e) {
            const char *nl = memchr(line, '\n', (size_t)(e - line));
            const char *le = nl ? nl : e;
            if (le - line > 7 && memcmp(line, "event: ", 7) == 0)
                snprintf(ev->name, sizeof(ev->name), "%.*s", (int)(le - line - 7), line + 7);
            else if (le - line >= 6 && memcmp(line, "data: ", 6) == 0)
                ev->data = strndup(line + 6, (size_t)(le - line - 6));
            else
                cr_assert_fail("unexpected line in event: [%.*s]", (int)(le - line), line);
            line = le + 1;
        }
        cr_assert_not_null(ev->data, "event without data");
        p = e + 2;
    }
}

static void events_free(events_t *es)
{
    for (size_t i = 0; i < es->n; i++)
        free(es->ev[i].data);
    es->n = 0;
}

static json_t *event_json(const event_t *ev)
{
    json_error_t jerr;
    json_t *j = json_loads(ev->data, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "event data is not JSON (%s): %s", jerr.text, ev->data);
    return j;
}

/* ---------------------------------------------------------------------------- requests */

Test(dp_anthropic, url_headers_and_minimal_body)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT,
               "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_str_eq(c.url.base, "http://upstream.test/v1/messages");
    cr_assert(headers_has(&c.h, "x-api-key: sk-test"));
    cr_assert(headers_has(&c.h, "anthropic-version: 2023-06-01"));
    cr_assert(headers_has(&c.h, "Content-Type: application/json"));
    cr_assert(headers_has(&c.h, "Accept: application/json"));
    cr_assert(headers_has(&c.h, "Expect:"));
    cr_assert_not(headers_has_name(&c.h, "Authorization"));
    json_t *b = body_json(&c);
    assert_json_eq(b, "{\"model\":\"" MODEL "\",\"max_tokens\":4096,"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    json_decref(b);
    call_end(&c);
}

Test(dp_anthropic, no_api_key_sends_no_key_and_provider_version_header_wins)
{
    call_t c;
    call_start(&c,
               "{\"id\":\"p1\",\"kind\":\"anthropic\",\"base_url\":\"http://u.test/v1\","
               "\"api_version\":\"2099-01-01\",\"headers\":{\"anthropic-version\":\"2024-10-22\"}}",
               DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_not(headers_has_name(&c.h, "x-api-key"));
    cr_assert(headers_has(&c.h, "anthropic-version: 2024-10-22"));
    cr_assert_not(headers_has(&c.h, "anthropic-version: 2099-01-01"));
    call_end(&c);
}

Test(dp_anthropic, completions_and_embeddings_are_a_clear_400)
{
    call_t c;
    call_start(&c, NULL, DP_EP_EMBEDDINGS, "{\"model\":\"a\",\"input\":\"hello\"}");
    cr_assert_eq(c.rc, TG_EINVAL);
    cr_assert_eq(c.err.status, 400);
    cr_assert(strstr(c.err.msg, "no embeddings endpoint"), "%s", c.err.msg);
    call_end(&c);
    call_start(&c, NULL, DP_EP_COMPLETIONS, "{\"model\":\"a\",\"prompt\":\"hello\"}");
    cr_assert_eq(c.rc, TG_EINVAL);
    cr_assert(strstr(c.err.msg, "no completions endpoint"), "%s", c.err.msg);
    call_end(&c);
}

Test(dp_anthropic, consecutive_same_role_messages_merge_and_empty_ones_vanish)
{
    json_t *b = chat_body_for(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"one\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"assistant\",\"content\":\"three\"},{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"assistant\",\"content\":\"four\"},{\"role\":\"system\",\"content\":\"late\"},"
        "{\"role\":\"user\",\"content\":\"five\"}]}");
    assert_json_eq(json_object_get(b, "messages"),
                   "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                   "{\"type\":\"text\",\"text\":\"two\"}]},"
                   "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"three\"},"
                   "{\"type\":\"text\",\"text\":\"four\"}]},"
                   "{\"role\":\"user\",\"content\":\"five\"}]");
    assert_json_eq(json_object_get(b, "system"), "\"late\"");
    json_decref(b);
}

Test(dp_anthropic, cache_control_on_parts_is_kept)
{
    json_t *b = chat_body_for(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\","
        "\"text\":\"big doc\",\"cache_control\":{\"type\":\"ephemeral\"}}]},"
        "{\"role\":\"user\",\"content\":\"q\"}]}");
    assert_json_eq(json_object_get(b, "system"), "[{\"type\":\"text\",\"text\":\"big doc\","
                                                 "\"cache_control\":{\"type\":\"ephemeral\"}}]");
    json_decref(b);
}

Test(dp_anthropic, pdf_file_part_becomes_a_document_block)
{
    json_t *b = chat_body_for(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\","
        "\"file\":{\"filename\":\"a.pdf\",\"file_data\":\"data:application/pdf;base64,JVBERi0=\"}}"
        "]}]}");
    assert_json_eq(json_object_get(b, "messages"),
                   "[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{\"type\":"
                   "\"base64\",\"media_type\":\"application/pdf\",\"data\":\"JVBERi0=\"}}]}]");
    json_decref(b);
}

Test(dp_anthropic, tool_choice_none_and_auto_and_without_tools)
{
    const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]";
    char req[1024];
    snprintf(req, sizeof(req),
             "{\"model\":\"a\",%s,\"tool_choice\":\"none\",\"parallel_tool_calls\":false,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
             tools);
    json_t *b = chat_body_for(req);
    assert_json_eq(json_object_get(b, "tool_choice"), "{\"type\":\"none\"}");
    assert_json_eq(json_object_get(b, "tools"),
                   "[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]");
    json_decref(b);
    snprintf(req, sizeof(req),
             "{\"model\":\"a\",%s,\"tool_choice\":\"auto\","
             "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
             tools);
    b = chat_body_for(req);
    assert_json_eq(json_object_get(b, "tool_choice"), "{\"type\":\"auto\"}");
    json_decref(b);
    b = chat_body_for("{\"model\":\"a\",\"tool_choice\":\"required\","
                      "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    cr_assert_null(json_object_get(b, "tool_choice"));
    cr_assert_null(json_object_get(b, "tools"));
    json_decref(b);
}

Test(dp_anthropic, empty_tool_arguments_are_an_empty_input)
{
    json_t *b = chat_body_for(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"\"}]}");
    assert_json_eq(json_object_get(b, "messages"),
                   "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
                   "[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}]},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                   "\"tool_use_id\":\"t1\"}]}]");
    json_decref(b);
}

Test(dp_anthropic, what_anthropic_cannot_express_is_a_400_naming_the_field)
{
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{"
                     "\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                     "\"arguments\":\"{not json\"}}]}]}",
                     "messages[0].tool_calls[0].function.arguments");
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"function\",\"name\":\"f\","
                     "\"content\":\"x\"}]}",
                     "messages[0].role");
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"input_audio\",\"input_audio\":{\"data\":\"AA\",\"format\":\"wav\"}}]}]}",
                     "input_audio");
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"image_url\",\"image_url\":{\"url\":\"ftp://x/y.png\"}}]}]}",
                     "messages[0].content[0].image_url.url");
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":"
                     "\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
                     "image_url");
    chat_build_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
                     "tool_call_id");
    chat_build_fails(
        "{\"model\":\"a\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "n > 1");
    chat_build_fails("{\"model\":\"a\",\"stop\":[1],\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"x\"}]}",
                     "stop");
    chat_build_fails("{\"model\":\"a\",\"tools\":[{\"type\":\"retrieval\"}],"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                     "tools[0]");
    chat_build_fails("{\"model\":\"a\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                     "\"f\"}}],\"tool_choice\":\"sometimes\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"x\"}]}",
                     "tool_choice");
}

Test(dp_anthropic, native_messages_body_keeps_everything_but_the_model)
{
    call_t c;
    call_start(&c, NULL, DP_EP_MESSAGES,
               "{\"model\":\"alias\",\"max_tokens\":9,\"thinking\":{\"type\":\"enabled\","
               "\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_str_eq(c.url.base, "http://upstream.test/v1/messages");
    json_t *b = body_json(&c);
    assert_json_eq(b, "{\"model\":\"" MODEL "\",\"max_tokens\":9,\"thinking\":{\"type\":"
                      "\"enabled\",\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\","
                      "\"content\":\"Hi\"}]}");
    json_decref(b);
    call_end(&c);
}

/* ---------------------------------------------------------------------------- answers */

static json_t *chat_answer_for(int status, const char *upstream, int want_rc)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT,
               "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(c.rc, 0);
    const char *client;
    size_t n;
    int rc = dp_xlate_response(&c.x, status, upstream, strlen(upstream), &c.out, &client, &n);
    cr_assert_eq(rc, want_rc);
    json_t *j = NULL;
    if (rc == 0) {
        j = json_loadb(client, n, 0, NULL);
        cr_assert_not_null(j, "client body is not JSON: %.*s", (int)n, client);
    }
    call_end(&c);
    return j;
}

Test(dp_anthropic, thinking_becomes_reasoning_content_and_empty_answer_is_empty_string)
{
    json_t *j = chat_answer_for(
        200,
        "{\"id\":\"m\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
        "\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}"
        "],"
        "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}",
        0);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_json_eq(msg,
                   "{\"role\":\"assistant\",\"content\":\"ab\",\"reasoning_content\":\"hmm\"}");
    json_decref(j);
    j = chat_answer_for(200, "{\"id\":\"m\",\"content\":[],\"stop_reason\":\"end_turn\"}", 0);
    msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_json_eq(msg, "{\"role\":\"assistant\",\"content\":\"\"}");
    cr_assert_null(json_object_get(j, "usage"));
    json_decref(j);
}

Test(dp_anthropic, unreadable_2xx_is_an_upstream_error)
{
    cr_assert_null(chat_answer_for(200, "<html>oops</html>", TG_EUPSTREAM));
    cr_assert_null(chat_answer_for(200, "{\"id\":\"m\"}", TG_EUPSTREAM));
}

Test(dp_anthropic, error_bodies_that_are_not_anthropic_json_still_say_something)
{
    json_t *j = chat_answer_for(502, "<html>Bad Gateway</html>", 0);
    assert_json_eq(j, "{\"error\":{\"message\":\"<html>Bad Gateway</html>\",\"type\":"
                      "\"api_error\",\"param\":null,\"code\":null}}");
    json_decref(j);
    j = chat_answer_for(503, "{\"detail\":\"upstream connect error\"}", 0);
    assert_json_eq(j, "{\"error\":{\"message\":\"{\\\"detail\\\":\\\"upstream connect error\\\"}\","
                      "\"type\":\"api_error\",\"param\":null,\"code\":null}}");
    json_decref(j);
    j = chat_answer_for(401, "", 0);
    assert_json_eq(j, "{\"error\":{\"message\":\"provider answered HTTP 401\",\"type\":"
                      "\"authentication_error\",\"param\":null,\"code\":null}}");
    json_decref(j);
    j = chat_answer_for(400,
                        "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                        "\"message\":\"messages.0.content: Field required\"}}",
                        0);
    assert_json_eq(j, "{\"error\":{\"message\":\"messages.0.content: Field required\",\"type\":"
                      "\"invalid_request_error\",\"param\":null,\"code\":"
                      "\"invalid_request_error\"}}");
    json_decref(j);
}

/* ---------------------------------------------------------------------------- streams */

#define EV(name, data) "event: " name "\ndata: " data "\n\n"

#define TOOL_STREAM                                                                                \
    EV("message_start",                                                                            \
       "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_T\",\"usage\":"                      \
       "{\"input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}")                 \
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"                     \
                              "\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu_1\","          \
                              "\"name\":\"f\",\"input\":{}}}")                                     \
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"           \
                              "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}") \
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"           \
                              "{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}")          \
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")                      \
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":1,"                     \
                              "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")              \
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n" EV(                                        \
        "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"          \
                               "{\"type\":\"text_delta\",\"text\":\"ok\"}}")                       \
        EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":2,"                 \
                                  "\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu_2\","      \
                                  "\"name\":\"g\",\"input\":{}}}")                                 \
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"   \
                                      "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}")  \
                EV("message_delta",                                                                \
                   "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"         \
                   "\"usage\":{\"output_tokens\":30}}")                                            \
                    EV("message_stop", "{\"type\":\"message_stop\"}")

/* Feeds bytes to a fresh chat stream in pieces cut at the given points. */
static void stream_run(const char *req, const char *bytes, size_t n, const size_t *cuts,
                       size_t ncuts, bool complete, tg_buf_t *client, dp_usage_t *usage,
                       int64_t *content_events)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT, req);
    cr_assert_eq(c.rc, 0);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        cr_assert_eq(dp_xlate_feed(&c.x, bytes + at, to - at, client), 0, "feed [%zu,%zu)", at, to);
        at = to;
    }
    cr_assert_eq(dp_xlate_end(&c.x, complete, client), 0);
    if (usage)
        *usage = c.x.st.usage;
    if (content_events)
        *content_events = c.x.st.content_events;
    call_end(&c);
}

static const char STREAM_REQ[] = "{\"model\":\"alias\",\"stream\":true,\"stream_options\":"
                                 "{\"include_usage\":true},\"messages\":[{\"role\":\"user\","
                                 "\"content\":\"Hi\"}]}";

Test(dp_anthropic, tool_stream_gives_the_same_chunks_at_every_split_point)
{
    const char *s = TOOL_STREAM;
    size_t n = strlen(s);
    tg_buf_t whole = TG_BUF_INIT(1u << 20);
    dp_usage_t u;
    int64_t ce;
    stream_run(STREAM_REQ, s, n, NULL, 0, true, &whole, &u, &ce);
    cr_assert(u.present);
    cr_assert_eq(u.prompt, 10);
    cr_assert_eq(u.cached, 3);
    cr_assert_eq(u.completion, 30);
    cr_assert_eq(u.total, 40);
    cr_assert_eq(ce, 6, "content events: %lld", (long long)ce);

    events_t es;
    events_parse(&es, whole.base, whole.len);
    cr_assert_eq(es.n, 10);
    static const char *const want[] = {
        "{\"role\":\"assistant\",\"content\":\"\"}",
        "{\"tool_calls\":[{\"index\":0,\"id\":\"tu_1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}",
        "{\"content\":\"ok\"}",
        "{\"tool_calls\":[{\"index\":1,\"id\":\"tu_2\",\"type\":\"function\",\"function\":"
        "{\"name\":\"g\",\"arguments\":\"\"}}]}",
        "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}",
        "{}",
    };
    for (size_t i = 0; i < 8; i++) {
        json_t *j = event_json(&es.ev[i]);
        cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "chatcmpl-msg_T");
        json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
        assert_json_eq(json_object_get(ch, "delta"), want[i]);
        cr_assert_str_eq(json_is_null(json_object_get(ch, "finish_reason"))
                             ? "null"
                             : json_string_value(json_object_get(ch, "finish_reason")),
                         i == 7 ? "tool_calls" : "null");
        json_decref(j);
    }
    json_t *uj = event_json(&es.ev[8]);
    assert_json_eq(json_object_get(uj, "usage"),
                   "{\"prompt_tokens\":10,\"completion_tokens\":30,\"total_tokens\":40,"
                   "\"prompt_tokens_details\":{\"cached_tokens\":3}}");
    assert_json_eq(json_object_get(uj, "choices"), "[]");
    json_decref(uj);
    cr_assert_str_eq(es.ev[9].data, "[DONE]");
    events_free(&es);

    tg_buf_t got = TG_BUF_INIT(1u << 20);
    for (size_t cut = 0; cut <= n; cut++) {
        tg_buf_reset(&got);
        stream_run(STREAM_REQ, s, n, &cut, 1, true, &got, &u, &ce);
        cr_assert(tg_mem_eq(got.base, got.len, whole.base, whole.len), "split at %zu differs", cut);
        cr_assert_eq(u.completion, 30);
        cr_assert_eq(ce, 6);
    }
    /* three pieces, the second cut walking every byte after the first */
    for (size_t a = 0; a <= n; a += 37) {
        for (size_t b = a; b <= n; b++) {
            size_t cuts[2] = {a, b};
            tg_buf_reset(&got);
            stream_run(STREAM_REQ, s, n, cuts, 2, true, &got, NULL, NULL);
            cr_assert(tg_mem_eq(got.base, got.len, whole.base, whole.len), "cuts %zu,%zu", a, b);
        }
    }
    tg_buf_dispose(&got);
    tg_buf_dispose(&whole);
}

Test(dp_anthropic, usage_chunk_is_hidden_unless_asked_but_usage_is_recorded)
{
    const char req[] = "{\"model\":\"alias\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"Hi\"}]}";
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    dp_usage_t u;
    stream_run(req, TOOL_STREAM, strlen(TOOL_STREAM), NULL, 0, true, &out, &u, NULL);
    cr_assert(u.present);
    cr_assert_eq(u.total, 40);
    events_t es;
    events_parse(&es, out.base, out.len);
    cr_assert_eq(es.n, 9);
    for (size_t i = 0; i < es.n; i++)
        cr_assert_null(strstr(es.ev[i].data, "\"usage\""), "%s", es.ev[i].data);
    events_free(&es);
    tg_buf_dispose(&out);
}

Test(dp_anthropic, unterminated_last_event_counts_only_when_the_upstream_finished)
{
    const char s[] =
        EV("message_start",
           "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}") "event: message_stop\ndata: "
                                                                      "{\"type\":\"message_stop\"}";
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    stream_run(STREAM_REQ, s, strlen(s), NULL, 0, true, &out, NULL, NULL);
    cr_assert(tg_memmem(out.base, out.len, "data: [DONE]\n\n", 14), "%.*s", (int)out.len, out.base);
    tg_buf_reset(&out);
    stream_run(STREAM_REQ, s, strlen(s), NULL, 0, false, &out, NULL, NULL);
    cr_assert_null(tg_memmem(out.base, out.len, "[DONE]", 6));
    tg_buf_dispose(&out);
}

Test(dp_anthropic, events_without_message_start_use_the_request_id_and_garbage_aborts)
{
    const char s[] =
        EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                  "\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    dp_usage_t u;
    stream_run(STREAM_REQ, s, strlen(s), NULL, 0, true, &out, &u, NULL);
    cr_assert_not(u.present);
    events_t es;
    events_parse(&es, out.base, out.len);
    cr_assert_eq(es.n, 2);
    json_t *j = event_json(&es.ev[1]);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "chatcmpl-req-1");
    json_decref(j);
    events_free(&es);

    call_t c;
    call_start(&c, NULL, DP_EP_CHAT, STREAM_REQ);
    const char bad[] = "event: content_block_delta\ndata: {not json\n\n";
    cr_assert_eq(dp_xlate_feed(&c.x, bad, strlen(bad), &out), TG_EUPSTREAM);
    call_end(&c);
    tg_buf_dispose(&out);
}

Test(dp_anthropic, thinking_deltas_become_reasoning_content)
{
    const char s[] = EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}")
        EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                  "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}")
            EV("content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
               "\"thinking_delta\",\"thinking\":\"hmm\"}}")
                EV("content_block_delta",
                   "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                   "\"signature_delta\",\"signature\":\"abc\"}}");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    stream_run(STREAM_REQ, s, strlen(s), NULL, 0, false, &out, NULL, NULL);
    events_t es;
    events_parse(&es, out.base, out.len);
    cr_assert_eq(es.n, 2);
    json_t *j = event_json(&es.ev[1]);
    assert_json_eq(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta"),
                   "{\"reasoning_content\":\"hmm\"}");
    json_decref(j);
    events_free(&es);
    tg_buf_dispose(&out);
}

#define NATIVE_STREAM                                                                              \
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_N\",\"usage\":"     \
                        "{\"input_tokens\":5,\"cache_creation_input_tokens\":2,"                   \
                        "\"output_tokens\":1}}}")                                                  \
    ": a comment\n\n"                                                                              \
    "event: ping\ndata: {\"type\": \"ping\"}\n\n" EV(                                              \
        "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"          \
                               "{\"type\":\"text_delta\",\"text\":\"message_start\"}}")            \
        EV("message_delta",                                                                        \
           "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"                 \
           "\"usage\":{\"output_tokens\":9}}") EV("message_stop", "{\"type\":\"message_stop\"}")

Test(dp_anthropic, native_stream_passes_bytes_unchanged_at_every_split_point)
{
    const char *s = NATIVE_STREAM;
    size_t n = strlen(s);
    const char req[] = "{\"model\":\"alias\",\"max_tokens\":5,\"stream\":true,\"messages\":"
                       "[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    for (size_t cut = 0; cut <= n; cut++) {
        call_t c;
        call_start(&c, NULL, DP_EP_MESSAGES, req);
        cr_assert_eq(c.rc, 0);
        tg_buf_reset(&out);
        cr_assert_eq(dp_xlate_feed(&c.x, s, cut, &out), 0);
        cr_assert_eq(dp_xlate_feed(&c.x, s + cut, n - cut, &out), 0);
        cr_assert_eq(dp_xlate_end(&c.x, true, &out), 0);
        cr_assert(tg_mem_eq(out.base, out.len, s, n), "split at %zu: [%.*s]", cut, (int)out.len,
                  out.base);
        cr_assert(c.x.st.usage.present);
        cr_assert_eq(c.x.st.usage.prompt, 7);
        cr_assert_eq(c.x.st.usage.completion, 9);
        cr_assert_eq(c.x.st.usage.total, 16);
        cr_assert_eq(c.x.st.content_events, 1);
        cr_assert(c.x.st.done);
        call_end(&c);
    }
    /* a tail the upstream never terminated goes out as it came */
    call_t c;
    call_start(&c, NULL, DP_EP_MESSAGES, req);
    tg_buf_reset(&out);
    const char tail[] = "event: message_stop\ndata: {\"type\":\"message_stop\"}";
    cr_assert_eq(dp_xlate_feed(&c.x, tail, strlen(tail), &out), 0);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(dp_xlate_end(&c.x, false, &out), 0);
    cr_assert(tg_mem_eq(out.base, out.len, tail, strlen(tail)));
    call_end(&c);
    tg_buf_dispose(&out);
}

/* ---------------------------------------------------------------------------- goldens */

static const char *golden_dir(void)
{
    static char dir[1024];
    const char *env = getenv("TG_GOLDEN_DIR");
    if (env) {
        snprintf(dir, sizeof(dir), "%s/anthropic", env);
        return dir;
    }
    /* this file is tests/unit/test_dp_anthropic.c; the goldens are tests/golden/anthropic */
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    cr_assert_not_null(slash, "run with TG_GOLDEN_DIR=<repo>/tests/golden");
    *slash = '\0';
    slash = strrchr(dir, '/');
    cr_assert_not_null(slash);
    snprintf(slash, sizeof(dir) - (size_t)(slash - dir), "/golden/anthropic");
    return dir;
}

/* expected matches got: "<any>" only has to exist; objects need the same members. */
static bool json_match(const json_t *want, const json_t *got)
{
    if (!got)
        return false;
    if (json_is_string(want) && strcmp(json_string_value(want), "<any>") == 0)
        return true;
    if (json_is_object(want)) {
        if (!json_is_object(got) || json_object_size(want) != json_object_size(got))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)want, k, v)
        {
            if (!json_match(v, json_object_get(got, k)))
                return false;
        }
        return true;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(want) != json_array_size(got))
            return false;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!json_match(json_array_get(want, i), json_array_get(got, i)))
                return false;
        return true;
    }
    return json_equal(want, got);
}

static void assert_match(const char *file, const char *what, const json_t *want, const json_t *got)
{
    if (json_match(want, got))
        return;
    char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
    char *g = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(none)");
    cr_assert_fail("%s: %s\n want %s\n got  %s", file, what, w, g);
}

static int endpoint_of(const char *s)
{
    if (strcmp(s, "chat") == 0)
        return DP_EP_CHAT;
    if (strcmp(s, "completions") == 0)
        return DP_EP_COMPLETIONS;
    if (strcmp(s, "embeddings") == 0)
        return DP_EP_EMBEDDINGS;
    if (strcmp(s, "messages") == 0)
        return DP_EP_MESSAGES;
    cr_assert_fail("unknown endpoint %s", s);
    return 0;
}

typedef struct golden {
    const char *file;
    json_t *g;
    char *provider;
    char *request;
    int ep;
    const char *model;
    const char *request_id;
    int64_t now_s;
} golden_t;

static void golden_call(const golden_t *gd, call_t *c)
{
    memset(c, 0, sizeof(*c));
    c->snap = snap_with(gd->provider);
    tg_err_clear(&c->err);
    int rc = dp_reqbody_parse(&c->rb, gd->ep, gd->request, strlen(gd->request), &c->err);
    cr_assert_eq(rc, 0, "%s: request: %s", gd->file, c->err.msg);
    dp_xlate_init(&c->x, gd->ep, &c->rb, c->rb.include_usage);
    tg_buf_init(&c->url, 1u << 16);
    tg_buf_init(&c->body, 64u << 20);
    tg_buf_init(&c->out, 64u << 20);
    c->rc = dp_xlate_build(&c->x, &c->snap->providers[0], gd->model, gd->request_id, gd->now_s,
                           add_header, &c->h, &c->url, &c->body, &c->err);
}

static void golden_check_usage(const golden_t *gd, const dp_usage_t *u)
{
    const json_t *eu = json_object_get(gd->g, "expect_usage");
    if (!eu)
        return;
    cr_assert(u->present, "%s: usage not recorded", gd->file);
    static const char *const names[] = {"prompt", "completion", "cached", "reasoning", "total"};
    const int64_t got[] = {u->prompt, u->completion, u->cached, u->reasoning, u->total};
    for (size_t i = 0; i < 5; i++) {
        const json_t *v = json_object_get(eu, names[i]);
        if (v)
            cr_assert_eq(got[i], json_integer_value(v), "%s: usage.%s is %lld, want %lld", gd->file,
                         names[i], (long long)got[i], (long long)json_integer_value(v));
    }
}

static void golden_request(const golden_t *gd)
{
    call_t c;
    golden_call(gd, &c);
    const json_t *be = json_object_get(gd->g, "expect_build_error");
    if (be) {
        cr_assert_neq(c.rc, 0, "%s: build should fail", gd->file);
        cr_assert_eq(c.err.status, json_integer_value(json_object_get(be, "status")), "%s",
                     gd->file);
        const char *want = json_string_value(json_object_get(be, "contains"));
        cr_assert(strstr(c.err.msg, want), "%s: \"%s\" lacks \"%s\"", gd->file, c.err.msg, want);
        call_end(&c);
        return;
    }
    cr_assert_eq(c.rc, 0, "%s: build: %s", gd->file, c.err.msg);
    const json_t *url = json_object_get(gd->g, "expect_url");
    if (url)
        cr_assert_str_eq(c.url.base, json_string_value(url), "%s", gd->file);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(gd->g, "expect_headers"), i, v)
        cr_assert(headers_has(&c.h, json_string_value(v)), "%s: no header \"%s\"", gd->file,
                  json_string_value(v));
    json_array_foreach(json_object_get(gd->g, "expect_no_headers"), i, v)
        cr_assert_not(headers_has_name(&c.h, json_string_value(v)), "%s: header %s sent", gd->file,
                      json_string_value(v));
    const json_t *eb = json_object_get(gd->g, "expect_body");
    if (eb) {
        json_t *b = body_json(&c);
        assert_match(gd->file, "upstream body", eb, b);
        json_decref(b);
    }
    call_end(&c);
}

static void golden_response(const golden_t *gd)
{
    const json_t *resp = json_object_get(gd->g, "response");
    const json_t *text = json_object_get(gd->g, "response_text");
    if (!resp && !text)
        return;
    char *body = resp ? json_dumps(resp, JSON_COMPACT) : strdup(json_string_value(text));
    const json_t *st = json_object_get(gd->g, "status");
    int status = st ? (int)json_integer_value(st) : 200;
    call_t c;
    golden_call(gd, &c);
    cr_assert_eq(c.rc, 0);
    const char *client;
    size_t n;
    cr_assert_eq(dp_xlate_response(&c.x, status, body, strlen(body), &c.out, &client, &n), 0,
                 "%s: response", gd->file);
    if (json_is_true(json_object_get(gd->g, "expect_status_passthrough")))
        cr_assert(tg_mem_eq(client, n, body, strlen(body)), "%s: not passed through", gd->file);
    const json_t *ex = json_object_get(gd->g, "expect");
    if (ex) {
        json_t *got = json_loadb(client, n, 0, NULL);
        assert_match(gd->file, "client body", ex, got);
        json_decref(got);
    }
    golden_check_usage(gd, &c.x.st.usage);
    call_end(&c);
    free(body);
}

/* The whole stream in the pieces cut at cuts; returns the client bytes (caller frees). */
static char *golden_feed(const golden_t *gd, const char *s, size_t n, const size_t *cuts,
                         size_t ncuts, size_t *outn, dp_usage_t *u)
{
    call_t c;
    golden_call(gd, &c);
    cr_assert_eq(c.rc, 0);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        cr_assert_eq(dp_xlate_feed(&c.x, s + at, to - at, &c.out), 0, "%s: feed", gd->file);
        at = to;
    }
    cr_assert_eq(dp_xlate_end(&c.x, true, &c.out), 0);
    *u = c.x.st.usage;
    *outn = c.out.len;
    char *r = malloc(c.out.len + 1);
    memcpy(r, c.out.base ? c.out.base : "", c.out.len);
    r[c.out.len] = '\0';
    call_end(&c);
    return r;
}

static void golden_stream(const golden_t *gd)
{
    const json_t *sj = json_object_get(gd->g, "stream");
    if (!sj)
        return;
    const char *s = json_string_value(sj);
    size_t n = json_string_length(sj);
    size_t wn;
    dp_usage_t u;
    char *whole = golden_feed(gd, s, n, NULL, 0, &wn, &u);
    golden_check_usage(gd, &u);
    /* byte by byte */
    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    size_t gn;
    char *got = golden_feed(gd, s, n, cuts, n, &gn, &u);
    cr_assert(tg_mem_eq(got, gn, whole, wn), "%s: byte by byte differs", gd->file);
    free(got);
    free(cuts);
    for (size_t cut = 0; cut <= n; cut++) {
        got = golden_feed(gd, s, n, &cut, 1, &gn, &u);
        cr_assert(tg_mem_eq(got, gn, whole, wn), "%s: split at %zu differs", gd->file, cut);
        free(got);
    }

    events_t es;
    events_parse(&es, whole, wn);
    const json_t *want = json_object_get(gd->g, "expect_events");
    if (want) {
        cr_assert_eq(es.n, json_array_size(want), "%s: %zu events, want %zu:\n%s", gd->file, es.n,
                     json_array_size(want), whole);
        size_t i;
        json_t *w;
        json_array_foreach(want, i, w)
        {
            char what[64];
            snprintf(what, sizeof(what), "event %zu", i);
            if (json_is_string(w)) {
                cr_assert_str_eq(es.ev[i].data, json_string_value(w), "%s: %s", gd->file, what);
                continue;
            }
            const json_t *data = w;
            if (json_object_size(w) == 2 && json_object_get(w, "event") &&
                json_object_get(w, "data")) {
                cr_assert_str_eq(es.ev[i].name, json_string_value(json_object_get(w, "event")),
                                 "%s: %s name", gd->file, what);
                data = json_object_get(w, "data");
            }
            json_t *gj = event_json(&es.ev[i]);
            assert_match(gd->file, what, data, gj);
            json_decref(gj);
        }
    }
    if (json_is_true(json_object_get(gd->g, "expect_stream_error"))) {
        bool seen = false;
        for (size_t i = 0; i < es.n && !seen; i++) {
            if (strcmp(es.ev[i].name, "error") == 0) {
                seen = true;
            } else if (es.ev[i].data[0] == '{') {
                json_t *j = event_json(&es.ev[i]);
                seen = json_object_get(j, "error") != NULL;
                json_decref(j);
            }
        }
        cr_assert(seen, "%s: no error event", gd->file);
    }
    events_free(&es);
    free(whole);
}

static void golden_run(const char *dir, const char *name)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_error_t jerr;
    golden_t gd = {.file = name};
    gd.g = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(gd.g, "%s: %s (line %d)", name, jerr.text, jerr.line);
    gd.provider = json_dumps(json_object_get(gd.g, "provider"), JSON_COMPACT);
    gd.request = json_dumps(json_object_get(gd.g, "request"), JSON_COMPACT);
    cr_assert(gd.provider && gd.request, "%s: provider and request are required", name);
    gd.ep = endpoint_of(json_string_value(json_object_get(gd.g, "endpoint")));
    gd.model = json_string_value(json_object_get(gd.g, "model"));
    cr_assert_not_null(gd.model, "%s: model is required", name);
    const json_t *rid = json_object_get(gd.g, "request_id");
    gd.request_id = rid ? json_string_value(rid) : "req-1";
    const json_t *now = json_object_get(gd.g, "now_s");
    gd.now_s = now ? json_integer_value(now) : NOW_S;

    golden_request(&gd);
    if (!json_object_get(gd.g, "expect_build_error")) {
        golden_response(&gd);
        golden_stream(&gd);
    }
    free(gd.provider);
    free(gd.request);
    json_decref(gd.g);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_json(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

Test(dp_anthropic, golden_transcripts, .timeout = 600)
{
    const char *dir = golden_dir();
    struct dirent **list;
    int n = scandir(dir, &list, is_json, by_name);
    cr_assert_gt(n, 10, "too few goldens in %s", dir);
    for (int i = 0; i < n; i++) {
        golden_run(dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
}

Test(dp_anthropic, cache_writes_are_split_by_lifetime_in_answers_and_streams)
{
    call_t c;
    call_start(&c, NULL, DP_EP_CHAT,
               "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(c.rc, 0);
    const char *up =
        "{\"id\":\"m\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}],\"stop_reason\":"
        "\"end_turn\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":7,"
        "\"cache_creation_input_tokens\":30,\"cache_creation\":{"
        "\"ephemeral_5m_input_tokens\":18,\"ephemeral_1h_input_tokens\":12},"
        "\"output_tokens\":2}}";
    const char *client;
    size_t n;
    cr_assert_eq(dp_xlate_response(&c.x, 200, up, strlen(up), &c.out, &client, &n), 0);
    cr_assert_eq(c.x.st.usage.prompt, 42);
    cr_assert_eq(c.x.st.usage.cached, 7);
    cr_assert_eq(c.x.st.usage.cache_write, 18);
    cr_assert_eq(c.x.st.usage.cache_write_1h, 12);
    call_end(&c);

    /* streamed: message_start has the split; without cache_creation all writes are 5-minute */
    static const char stream[] =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_T\","
        "\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":7,"
        "\"cache_creation_input_tokens\":30,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,"
        "\"ephemeral_1h_input_tokens\":30},\"output_tokens\":1}}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    dp_usage_t u;
    stream_run("{\"model\":\"alias\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"Hi\"}]}",
               stream, sizeof(stream) - 1, NULL, 0, true, &out, &u, NULL);
    cr_assert_eq(u.prompt, 42);
    cr_assert_eq(u.cache_write, 0);
    cr_assert_eq(u.cache_write_1h, 30);
    cr_assert_eq(u.completion, 4);
    tg_buf_dispose(&out);
    const char *plain =
        "{\"id\":\"m\",\"content\":[],\"stop_reason\":\"end_turn\",\"usage\":{"
        "\"input_tokens\":5,\"cache_creation_input_tokens\":30,\"output_tokens\":2}}";
    call_start(&c, NULL, DP_EP_CHAT,
               "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    cr_assert_eq(dp_xlate_response(&c.x, 200, plain, strlen(plain), &c.out, &client, &n), 0);
    cr_assert_eq(c.x.st.usage.cache_write, 30);
    cr_assert_eq(c.x.st.usage.cache_write_1h, 0);
    call_end(&c);
}

/* test_dp_openai.c: the OpenAI provider: URL, headers, and the stream events the client sees. */
#include <criterion/criterion.h>
#include <string.h>

#include "provider.h"
#include "xlate.h"

static const dp_provider_ops_t *ops_for(const tg_provider_t *p)
{
    return dp_provider_ops(p->kind);
}

static const dp_provider_ops_t *ops(void)
{
    const dp_provider_ops_t *o = dp_provider_ops(TG_PROVIDER_OPENAI);
    cr_assert_not_null(o);
    return o;
}

/* What the client got for one upstream event: the same bytes, nothing, or other bytes. */
enum { DP_EV_FORWARD = 0, DP_EV_DROP = 1, DP_EV_REPLACE = 2 };

/* Feeds one event given as a C string through stream_feed. */
static int event(dp_stream_state_t *st, const char *ev, const char **out, size_t *outn)
{
    static tg_buf_t b = TG_BUF_INIT(1u << 20);
    tg_buf_reset(&b);
    *out = NULL;
    *outn = 0;
    int rc = ops()->stream_feed(st, ev, strlen(ev), &b);
    if (rc < 0)
        return rc;
    *out = b.base;
    *outn = b.len;
    if (b.len == 0)
        return DP_EV_DROP;
    return tg_mem_eq(b.base, b.len, ev, strlen(ev)) ? DP_EV_FORWARD : DP_EV_REPLACE;
}

/* The data of a REPLACE result, parsed as JSON (asserting it is one well-formed event). */
static json_t *replaced_json(const char *out, size_t outn)
{
    json_error_t jerr;
    cr_assert_not_null(out);
    cr_assert_geq(outn, 8);
    cr_assert_eq(memcmp(out, "data: ", 6), 0, "[%.*s]", (int)outn, out);
    cr_assert_eq(memcmp(out + outn - 2, "\n\n", 2), 0, "[%.*s]", (int)outn, out);
    json_t *j = json_loadb(out + 6, outn - 8, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "replaced event is not JSON (%s): [%.*s]", jerr.text, (int)outn, out);
    return j;
}

#define CHUNK_NULL_USAGE                                                                           \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"          \
    "\"finish_reason\":null}],\"usage\":null}\n\n"

#define CHUNK_FINAL_USAGE                                                                          \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,"                    \
    "\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":"    \
    "16},\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n"

Test(dp_openai, null_usage_is_stripped_when_client_did_not_ask)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, CHUNK_NULL_USAGE, &out, &outn), DP_EV_REPLACE);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "chatcmpl-1");
    json_t *delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    cr_assert_str_eq(json_string_value(json_object_get(delta, "content")), "Hi");
    cr_assert_eq(st.content_events, 1);
    cr_assert_not(st.usage.present);
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, null_usage_as_first_or_only_member_is_stripped_to_valid_json)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, "data: {\"usage\":null,\"choices\":[{\"delta\":{}}]}\n\n", &out, &outn),
                 DP_EV_REPLACE);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    cr_assert_not_null(json_object_get(j, "choices"));
    json_decref(j);
    cr_assert_eq(event(&st, "data: {\"usage\":null}\n\n", &out, &outn), DP_EV_REPLACE);
    j = replaced_json(out, outn);
    cr_assert_eq(json_object_size(j), 0);
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, null_usage_is_kept_when_client_asked)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, true);
    cr_assert_eq(event(&st, CHUNK_NULL_USAGE, &out, &outn), DP_EV_FORWARD);
    cr_assert_eq(st.content_events, 1);
    cr_assert_not(st.usage.present);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, final_usage_chunk_is_dropped_when_not_asked_and_usage_recorded)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, CHUNK_FINAL_USAGE, &out, &outn), DP_EV_DROP);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 20);
    cr_assert_eq(st.usage.completion, 9);
    cr_assert_eq(st.usage.total, 29);
    cr_assert_eq(st.usage.cached, 16);
    cr_assert_eq(st.usage.reasoning, 4);
    cr_assert_eq(st.content_events, 0);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, final_usage_chunk_is_forwarded_when_asked_and_usage_recorded)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, true);
    cr_assert_eq(event(&st, CHUNK_FINAL_USAGE, &out, &outn), DP_EV_FORWARD);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 20);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, usage_on_a_chunk_with_choices_is_recorded_and_removed)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    const char ev[] =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"end\"},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":11,"
        "\"completion_tokens\":2}}\n\n";
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, ev, &out, &outn), DP_EV_REPLACE);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 11);
    cr_assert_eq(st.usage.completion, 2);
    cr_assert_eq(st.usage.total, 13);
    cr_assert_eq(st.content_events, 1);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, usage_on_a_chunk_with_choices_is_kept_when_asked)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    const char ev[] = "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}\n\n";
    dp_stream_state_init(&st, DP_EP_CHAT, true);
    cr_assert_eq(event(&st, ev, &out, &outn), DP_EV_FORWARD);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 1);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, usage_with_space_before_colon_is_still_recorded_and_hidden)
{
    /* OpenAI-compatible servers that pretty-print their JSON */
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st,
                       "data: {\"choices\" : [] , \"usage\" : {\"prompt_tokens\" : 5, "
                       "\"completion_tokens\" : 6}}\n\n",
                       &out, &outn),
                 DP_EV_DROP);
    cr_assert(st.usage.present);
    cr_assert_eq(st.usage.prompt, 5);
    cr_assert_eq(st.usage.completion, 6);
    cr_assert_eq(
        event(&st, "data: {\"choices\": [{\"delta\": {}}], \"usage\" : null}\n\n", &out, &outn),
        DP_EV_REPLACE);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, usage_with_space_after_colon_is_recorded)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(
        event(&st, "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3}}\n\n", &out, &outn),
        DP_EV_DROP);
    cr_assert_eq(st.usage.prompt, 3);
    cr_assert_eq(
        event(&st, "data: {\"choices\": [{\"delta\": {}}], \"usage\": null}\n\n", &out, &outn),
        DP_EV_REPLACE);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, chunk_without_usage_is_forwarded_and_counted)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(
        event(&st, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", &out, &outn),
        DP_EV_FORWARD);
    cr_assert_eq(
        event(&st, "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n", &out, &outn),
        DP_EV_FORWARD);
    cr_assert_eq(st.content_events, 2);
    cr_assert_not(st.done);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, escaped_usage_text_in_content_is_not_usage)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    const char ev[] =
        "data: {\"choices\":[{\"delta\":{\"content\":\"say \\\"usage\\\":null\"}}]}\n\n";
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    int act = event(&st, ev, &out, &outn);
    cr_assert(act == DP_EV_FORWARD || act == DP_EV_REPLACE);
    if (act == DP_EV_REPLACE) {
        json_t *j = replaced_json(out, outn);
        json_t *delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
        cr_assert_str_eq(json_string_value(json_object_get(delta, "content")),
                         "say \"usage\":null");
        json_decref(j);
    }
    cr_assert_not(st.usage.present);
    cr_assert_eq(st.content_events, 1);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, done_sets_done_and_is_forwarded)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, "data: [DONE]\n\n", &out, &outn), DP_EV_FORWARD);
    cr_assert(st.done);
    cr_assert_eq(st.content_events, 0);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, comments_pass_through_without_counting)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, ": OPENROUTER PROCESSING\n\n", &out, &outn), DP_EV_FORWARD);
    cr_assert_eq(st.content_events, 0);
    cr_assert_not(st.done);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, unparsable_usage_chunk_is_forwarded_as_sent)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, "data: {\"usage\":{\"prompt_tokens\":1\n\n", &out, &outn),
                 DP_EV_FORWARD);
    cr_assert_not(st.usage.present);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, crlf_event_is_handled_like_lf)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(
        event(&st, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2}}\r\n\r\n", &out, &outn),
        DP_EV_DROP);
    cr_assert_eq(st.usage.prompt, 2);
    cr_assert_eq(event(&st, "data: [DONE]\r\n\r\n", &out, &outn), DP_EV_FORWARD);
    cr_assert(st.done);
    dp_stream_state_dispose(&st);
}

#define MAX_LINES 16

typedef struct lines {
    int n;
    char *line[MAX_LINES];
} lines_t;

static int collect(void *ud, const char *line)
{
    lines_t *l = ud;
    cr_assert_lt(l->n, MAX_LINES);
    l->line[l->n] = strdup(line);
    cr_assert_not_null(l->line[l->n]);
    l->n++;
    return 0;
}

static bool has_line(const lines_t *l, const char *want)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->line[i], want) == 0)
            return true;
    return false;
}

static void lines_free(lines_t *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->line[i]);
}

/* Builds a call with a small chat body; url and lines receive what build wrote. */
static int build(const tg_provider_t *p, int endpoint, bool stream, dp_header_add_fn add, void *ud,
                 tg_buf_t *url, tg_buf_t *body)
{
    const char *src =
        stream ? "{\"model\":\"alias\",\"stream\":true,\"input\":\"x\","
                 "\"prompt\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
               : "{\"model\":\"alias\",\"input\":\"x\",\"prompt\":\"x\","
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    dp_reqbody_t rb;
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(
        dp_reqbody_parse(&rb, endpoint == 99 ? DP_EP_CHAT : endpoint, src, strlen(src), &err), 0,
        "%s", err.msg);
    dp_call_t c = {.provider = p, .model = "gpt-4o-mini", .endpoint = endpoint, .body = &rb};
    int rc = ops_for(p)->build(&c, add, ud, url, body, &err);
    dp_reqbody_dispose(&rb);
    return rc;
}

static int ignore(void *ud, const char *line)
{
    (void)ud;
    (void)line;
    return 0;
}

Test(dp_openai, build_joins_base_url_and_endpoint_path)
{
    tg_provider_t p = {
        .id = "openai", .kind = TG_PROVIDER_OPENAI, .base_url = "https://api.openai.com/v1"};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    cr_assert_eq(build(&p, DP_EP_CHAT, false, ignore, NULL, &url, &body), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/chat/completions");
    cr_assert_eq(url.len, strlen("https://api.openai.com/v1/chat/completions") + 1);
    json_t *j = json_loadb(body.base, body.len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "gpt-4o-mini");
    json_decref(j);
    tg_buf_reset(&url);
    cr_assert_eq(build(&p, DP_EP_COMPLETIONS, false, ignore, NULL, &url, &body), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/completions");
    tg_buf_reset(&url);
    cr_assert_eq(build(&p, DP_EP_EMBEDDINGS, false, ignore, NULL, &url, &body), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/embeddings");
    tg_buf_reset(&url);
    cr_assert_eq(build(&p, 99, false, ignore, NULL, &url, &body), TG_EINVAL);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, azure_builds_deployment_url_with_api_version_and_api_key)
{
    tg_provider_t p = {.id = "az",
                       .kind = TG_PROVIDER_AZURE,
                       .base_url = "https://res.openai.azure.com/openai",
                       .api_key = "az-key-1"};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    lines_t l = {0};
    cr_assert_eq(build(&p, DP_EP_CHAT, true, collect, &l, &url, &body), 0);
    cr_assert_str_eq(url.base, "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/"
                               "completions?api-version=2024-10-21");
    cr_assert(has_line(&l, "api-key: az-key-1"));
    for (int i = 0; i < l.n; i++)
        cr_assert_neq(strncmp(l.line[i], "Authorization", 13), 0);
    lines_free(&l);
    p.api_version = "2025-01-01-preview";
    tg_buf_reset(&url);
    cr_assert_eq(build(&p, DP_EP_EMBEDDINGS, false, ignore, NULL, &url, &body), 0);
    cr_assert_str_eq(url.base, "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/"
                               "embeddings?api-version=2025-01-01-preview");
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, add_headers_sends_bearer_key_and_extra_headers)
{
    char *extra[] = {"OpenAI-Organization: org-1", "X-Title: tollgate"};
    tg_provider_t p = {.id = "openai",
                       .kind = TG_PROVIDER_OPENAI,
                       .base_url = "https://api.openai.com/v1",
                       .api_key = "sk-upstream-123",
                       .headers = extra,
                       .nheaders = 2};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    lines_t l = {0};
    cr_assert_eq(build(&p, DP_EP_CHAT, true, collect, &l, &url, &body), 0);
    cr_assert(has_line(&l, "Authorization: Bearer sk-upstream-123"));
    cr_assert(has_line(&l, "Content-Type: application/json"));
    cr_assert(has_line(&l, "Accept: text/event-stream"));
    cr_assert(has_line(&l, "OpenAI-Organization: org-1"));
    cr_assert(has_line(&l, "X-Title: tollgate"));
    lines_free(&l);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, a_long_key_past_the_stack_line_is_sent_whole)
{
    /* a line that does not fit the stack buffer is built on the heap, the same bytes */
    static char key[2001];
    memset(key, 'k', sizeof(key) - 1);
    tg_provider_t p = {.id = "openai",
                       .kind = TG_PROVIDER_OPENAI,
                       .base_url = "https://api.openai.com/v1",
                       .api_key = key};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    lines_t l = {0};
    cr_assert_eq(build(&p, DP_EP_CHAT, false, collect, &l, &url, &body), 0);
    char want[sizeof(key) + 32];
    snprintf(want, sizeof(want), "Authorization: Bearer %s", key);
    cr_assert(has_line(&l, want));
    lines_free(&l);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, a_key_too_long_for_a_header_line_fails_the_build)
{
    static char key[16400];
    memset(key, 'k', sizeof(key) - 1);
    tg_provider_t p = {.id = "openai",
                       .kind = TG_PROVIDER_OPENAI,
                       .base_url = "https://api.openai.com/v1",
                       .api_key = key};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    lines_t l = {0};
    cr_assert_neq(build(&p, DP_EP_CHAT, false, collect, &l, &url, &body), 0);
    for (int i = 0; i < l.n; i++)
        cr_assert_null(strstr(l.line[i], "Authorization"));
    lines_free(&l);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, add_headers_without_api_key_sends_no_authorization)
{
    tg_provider_t p = {
        .id = "local", .kind = TG_PROVIDER_OPENAI, .base_url = "http://127.0.0.1:8000/v1"};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    lines_t l = {0};
    cr_assert_eq(build(&p, DP_EP_CHAT, false, collect, &l, &url, &body), 0);
    cr_assert(has_line(&l, "Accept: application/json"));
    for (int i = 0; i < l.n; i++)
        cr_assert_neq(strncmp(l.line[i], "Authorization", 13), 0);
    lines_free(&l);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

static int refuse(void *ud, const char *line)
{
    (void)line;
    int *calls = ud;
    return ++*calls == 2 ? TG_ENOMEM : 0;
}

Test(dp_openai, add_headers_stops_at_the_first_failure)
{
    tg_provider_t p = {.id = "openai",
                       .kind = TG_PROVIDER_OPENAI,
                       .base_url = "https://api.openai.com/v1",
                       .api_key = "sk"};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    int calls = 0;
    cr_assert_eq(build(&p, DP_EP_CHAT, false, refuse, &calls, &url, &body), TG_ENOMEM);
    cr_assert_eq(calls, 2);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
}

Test(dp_openai, response_passes_body_and_reads_usage)
{
    const char body[] = "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
    dp_stream_state_t st;
    tg_buf_t out = TG_BUF_INIT(4096);
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(ops()->response(&st, 200, body, sizeof(body) - 1, &out), DP_RESP_PASS);
    cr_assert_eq(st.usage.prompt, 3);
    cr_assert_eq(st.usage.completion, 4);
    cr_assert_eq(st.usage.total, 7);
    cr_assert_eq(out.len, 0);
    dp_stream_state_dispose(&st);
    tg_buf_dispose(&out);
}

Test(dp_openai, ops_table_is_found_by_kind_only)
{
    cr_assert_eq(dp_provider_ops(TG_PROVIDER_OPENAI), &dp_provider_openai);
    cr_assert_str_eq(dp_provider_openai.kind, "openai");
    cr_assert_eq(dp_provider_ops(TG_PROVIDER_AZURE), &dp_provider_azure);
    cr_assert_null(dp_provider_ops(0));
    cr_assert_null(dp_provider_ops(42));
}

Test(dp_openai, usage_chunk_is_spliced_not_dumped_wherever_usage_sits)
{
    /* usage first, in the middle and last: the client gets the provider's bytes without it */
    static const char *const evs[][2] = {
        {"data: {\"usage\":{\"prompt_tokens\":3} , \"choices\":[{\"delta\":{}}],\"n\":1.50}\n\n",
         "data: {\"choices\":[{\"delta\":{}}],\"n\":1.50}\n\n"},
        {"data: {\"id\":\"x\",\"usage\":{\"prompt_tokens\":3},\"choices\":[{\"delta\":{}}]}\n\n",
         "data: {\"id\":\"x\",\"choices\":[{\"delta\":{}}]}\n\n"},
        {"data: {\"choices\":[{\"delta\":{}}] ,\t \"usage\" : {\"prompt_tokens\":3} }\n\n",
         "data: {\"choices\":[{\"delta\":{}}] }\n\n"},
    };
    for (size_t i = 0; i < 3; i++) {
        dp_stream_state_t st;
        const char *out;
        size_t outn;
        dp_stream_state_init(&st, DP_EP_CHAT, false);
        cr_assert_eq(event(&st, evs[i][0], &out, &outn), DP_EV_REPLACE);
        cr_assert(tg_mem_eq(out, outn, evs[i][1], strlen(evs[i][1])), "[%.*s]", (int)outn, out);
        cr_assert_eq(st.usage.prompt, 3);
        cr_assert_eq(st.content_events, 1);
        dp_stream_state_dispose(&st);
    }
}

Test(dp_openai, nested_usage_in_a_chunk_is_not_the_usage)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    const char ev[] = "data: {\"choices\":[{\"delta\":{\"x\":{\"usage\":{\"prompt_tokens\":99}}}}],"
                      "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n";
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, ev, &out, &outn), DP_EV_REPLACE);
    cr_assert_eq(st.usage.prompt, 5);
    json_t *j = replaced_json(out, outn);
    cr_assert_null(json_object_get(j, "usage"));
    json_t *x = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta"), "x");
    cr_assert_not_null(json_object_get(x, "usage"), "the nested member must stay");
    json_decref(j);
    dp_stream_state_dispose(&st);
}

Test(dp_openai, usage_named_twice_counts_the_last_and_removes_both)
{
    dp_stream_state_t st;
    const char *out;
    size_t outn;
    const char ev[] = "data: {\"usage\":{\"prompt_tokens\":1},\"choices\":[{}],"
                      "\"usage\":{\"prompt_tokens\":2}}\n\n";
    dp_stream_state_init(&st, DP_EP_CHAT, false);
    cr_assert_eq(event(&st, ev, &out, &outn), DP_EV_REPLACE);
    cr_assert_eq(st.usage.prompt, 2);
    cr_assert_null(tg_memmem(out, outn, "usage", 5), "[%.*s]", (int)outn, out);
    dp_stream_state_dispose(&st);
}

/* responses_api "responses": a chat call (or a Messages pivot) reaches the provider's Responses
 * API through dp_xlate, translated both ways; other endpoints keep their own paths. */
static int xbuild(dp_xlate_t *x, dp_reqbody_t *rb, int endpoint, const char *src,
                  const tg_provider_t *p, tg_buf_t *url, tg_buf_t *body, lines_t *l)
{
    tg_err_t err;
    tg_err_clear(&err);
    cr_assert_eq(dp_reqbody_parse(rb, endpoint, src, strlen(src), &err), 0, "%s", err.msg);
    dp_xlate_init(x, endpoint, rb, false);
    tg_buf_reset(url);
    tg_buf_reset(body);
    return dp_xlate_build(x, p, "gpt-4o-mini", "req-1", 1, l ? collect : ignore, l, url, body,
                          &err);
}

Test(dp_openai, responses_only_provider_gets_chat_and_messages_as_responses)
{
    tg_provider_t p = {.id = "oa",
                       .kind = TG_PROVIDER_OPENAI,
                       .base_url = "https://api.openai.com/v1",
                       .api_key = "sk-1",
                       .chat_via_responses = true};
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20), out = TG_BUF_INIT(1u << 20);
    dp_xlate_t x;
    dp_reqbody_t rb;
    static const char chat[] = "{\"model\":\"alias\",\"max_tokens\":9,\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"hi\"}]}";
    cr_assert_eq(xbuild(&x, &rb, DP_EP_CHAT, chat, &p, &url, &body, NULL), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/responses");
    json_t *j = json_loadb(body.base, body.len, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "gpt-4o-mini");
    cr_assert(json_is_false(json_object_get(j, "store")));
    cr_assert_eq(json_integer_value(json_object_get(j, "max_output_tokens")), 9);
    cr_assert(json_is_array(json_object_get(j, "input")));
    cr_assert_null(json_object_get(j, "messages"));
    json_decref(j);
    static const char resp[] =
        "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[{"
        "\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"output_text\",\"text\":\"Hello\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":"
        "7,\"output_tokens\":2,\"total_tokens\":9}}";
    const char *cl;
    size_t cn;
    cr_assert_eq(dp_xlate_response(&x, 200, resp, strlen(resp), &out, &cl, &cn), 0);
    j = json_loadb(cl, cn, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion");
    cr_assert_eq(x.st.usage.prompt, 7);
    cr_assert_eq(x.st.usage.completion, 2);
    json_decref(j);
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);

    /* a Messages body: its chat pivot goes the same way, the answer back as a message */
    static const char msgs[] = "{\"model\":\"alias\",\"max_tokens\":9,\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"hi\"}]}";
    cr_assert_eq(xbuild(&x, &rb, DP_EP_MESSAGES, msgs, &p, &url, &body, NULL), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/responses");
    cr_assert_eq(dp_xlate_response(&x, 200, resp, strlen(resp), &out, &cl, &cn), 0);
    j = json_loadb(cl, cn, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "message");
    json_decref(j);
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);

    /* embeddings keep their endpoint */
    static const char emb[] = "{\"model\":\"alias\",\"input\":\"x\"}";
    cr_assert_eq(xbuild(&x, &rb, DP_EP_EMBEDDINGS, emb, &p, &url, &body, NULL), 0);
    cr_assert_str_eq(url.base, "https://api.openai.com/v1/embeddings");
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);

    /* Azure: {base}/v1/responses, api-key, no api-version */
    tg_provider_t az = {.id = "az",
                        .kind = TG_PROVIDER_AZURE,
                        .base_url = "https://res.openai.azure.com/openai",
                        .api_key = "az-key-1",
                        .chat_via_responses = true};
    lines_t l = {0};
    cr_assert_eq(xbuild(&x, &rb, DP_EP_CHAT, chat, &az, &url, &body, &l), 0);
    cr_assert_str_eq(url.base, "https://res.openai.azure.com/openai/v1/responses");
    cr_assert(has_line(&l, "api-key: az-key-1"));
    lines_free(&l);
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
    tg_buf_dispose(&out);
}

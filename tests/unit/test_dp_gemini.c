/* test_dp_gemini.c: the Gemini adapter: request translation, answers, streams split anywhere,
 * and the transcripts under tests/golden/gemini/ run through dp_xlate as the proxy runs them. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider.h"
#include "xlate.h"

/* ---- fixtures ---- */

/* A snapshot with one provider, through the real snapshot parser. */
static tg_snap_t *snap_with(const json_t *provider)
{
    json_t *doc = json_pack("{s:i,s:[O]}", "version", 1, "providers", provider);
    char *text = json_dumps(doc, JSON_COMPACT);
    tg_snap_t *s = NULL;
    tg_err_t err;
    memset(&err, 0, sizeof(err));
    int rc = tg_snap_parse(text, strlen(text), &s, &err);
    cr_assert_eq(rc, 0, "snapshot: %s", err.msg);
    free(text);
    json_decref(doc);
    return s;
}

static tg_snap_t *snap_default(void)
{
    json_t *p = json_pack("{s:s,s:s,s:s,s:s}", "id", "gm", "kind", "gemini", "base_url",
                          "http://upstream.test/v1beta", "api_key", "gm-test");
    tg_snap_t *s = snap_with(p);
    json_decref(p);
    return s;
}

static int add_header(void *ud, const char *line)
{
    json_array_append_new(ud, json_string(line));
    return 0;
}

/* One request through dp_xlate as the proxy drives it. */
typedef struct call {
    tg_snap_t *snap;
    dp_reqbody_t rb;
    dp_xlate_t x;
    json_t *headers;
    tg_buf_t url, body;
    tg_err_t err;
    int rc;
} call_t;

static void call_build(call_t *c, int ep, const char *req, const char *model)
{
    memset(c, 0, sizeof(*c));
    c->snap = snap_default();
    tg_err_t err;
    cr_assert_eq(dp_reqbody_parse(&c->rb, ep, req, strlen(req), &err), 0, "%s", err.msg);
    dp_xlate_init(&c->x, ep, &c->rb, c->rb.include_usage);
    c->headers = json_array();
    tg_buf_init(&c->url, 1u << 16);
    tg_buf_init(&c->body, 1u << 24);
    c->rc = dp_xlate_build(&c->x, &c->snap->providers[0], model, "req-1", 1764072000, add_header,
                           c->headers, &c->url, &c->body, &c->err);
}

static void call_dispose(call_t *c)
{
    dp_xlate_dispose(&c->x);
    dp_reqbody_dispose(&c->rb);
    json_decref(c->headers);
    tg_buf_dispose(&c->url);
    tg_buf_dispose(&c->body);
    tg_snap_unref(c->snap);
}

static json_t *body_json(const call_t *c)
{
    json_error_t jerr;
    json_t *j = json_loadb(c->body.base, c->body.len, 0, &jerr);
    cr_assert_not_null(j, "upstream body is not JSON: %s", jerr.text);
    return j;
}

static bool has_header(const json_t *headers, const char *line)
{
    size_t i;
    json_t *h;
    json_array_foreach(headers, i, h) if (strcmp(json_string_value(h), line) == 0) return true;
    return false;
}

/* JSON equality where an expected "<any>" only has to exist. */
static bool match(const json_t *exp, const json_t *got)
{
    if (json_is_string(exp) && strcmp(json_string_value(exp), "<any>") == 0)
        return got != NULL;
    if (!got)
        return false;
    if (json_is_object(exp)) {
        if (!json_is_object(got) || json_object_size(exp) != json_object_size(got))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)exp, k,
                            v) if (!match(v, json_object_get(got, k))) return false;
        return true;
    }
    if (json_is_array(exp)) {
        if (!json_is_array(got) || json_array_size(exp) != json_array_size(got))
            return false;
        for (size_t i = 0; i < json_array_size(exp); i++)
            if (!match(json_array_get(exp, i), json_array_get(got, i)))
                return false;
        return true;
    }
    return json_equal(exp, got);
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* A mismatch fails the test but lets the other transcripts run. */
static void assert_match(const json_t *exp, const json_t *got, const char *what)
{
    if (match(exp, got))
        return;
    char *e = dump(exp);
    char *g = got ? dump(got) : NULL;
    cr_expect(false, "%s differs\n expected: %s\n      got: %s", what, e, g ? g : "(none)");
    free(e);
    free(g);
}

/* The client's SSE events as a JSON array: data payloads parsed (strings when not JSON). */
static json_t *events_of(const char *p, size_t n)
{
    json_t *evs = json_array();
    size_t i = 0;
    while (i < n) {
        const char *end = strstr(p + i, "\n\n");
        cr_assert_not_null(end, "unterminated client event: [%.*s]", (int)(n - i), p + i);
        size_t len = (size_t)(end - (p + i));
        cr_assert(len > 6 && memcmp(p + i, "data: ", 6) == 0, "bad event [%.*s]", (int)len, p + i);
        json_t *j = json_loadb(p + i + 6, len - 6, 0, NULL);
        json_array_append_new(evs, j ? j : json_stringn(p + i + 6, len - 6));
        i += len + 2;
    }
    return evs;
}

/* Feeds a whole stream in pieces of the given sizes (0 = all), then ends it. */
static void feed_stream(call_t *c, const char *s, size_t n, size_t a, size_t b, tg_buf_t *out)
{
    size_t off = 0;
    while (off < n) {
        size_t k = a == 0 ? n - off : (off == 0 ? a : b);
        if (k > n - off)
            k = n - off;
        cr_assert_eq(dp_xlate_feed(&c->x, s + off, k, out), 0, "feed failed at %zu", off);
        off += k;
    }
    cr_assert_eq(dp_xlate_end(&c->x, true, out), 0);
}

/* Re-runs a streamed answer on a fresh attempt: whole, byte by byte, and split in two at every
 * boundary; every way must give the client the same bytes. Returns the whole-fed output. */
static void stream_all_ways(call_t *c, const char *s, size_t n, tg_buf_t *whole)
{
    tg_buf_t out = TG_BUF_INIT(1u << 24);
    feed_stream(c, s, n, 0, 0, whole);
    dp_usage_t u = c->x.st.usage;
    for (size_t cut = 0; cut <= n; cut++) {
        tg_buf_t url = TG_BUF_INIT(1u << 16), body = TG_BUF_INIT(1u << 24);
        json_t *h = json_array();
        tg_err_t err;
        cr_assert_eq(dp_xlate_build(&c->x, &c->snap->providers[0], c->x.st.model, "req-1",
                                    1764072000, add_header, h, &url, &body, &err),
                     0);
        tg_buf_reset(&out);
        if (cut == n)
            feed_stream(c, s, n, 1, 1, &out); /* one byte at a time */
        else
            feed_stream(c, s, n, cut, n, &out);
        cr_assert(tg_mem_eq(out.base, out.len, whole->base, whole->len),
                  "split at %zu differs:\n%.*s\nvs whole:\n%.*s", cut, (int)out.len, out.base,
                  (int)whole->len, whole->base);
        cr_assert_eq(c->x.st.usage.total, u.total);
        json_decref(h);
        tg_buf_dispose(&url);
        tg_buf_dispose(&body);
    }
    tg_buf_dispose(&out);
}

/* ---- the golden transcripts ---- */

static int endpoint_of(const char *s)
{
    if (strcmp(s, "chat") == 0)
        return DP_EP_CHAT;
    if (strcmp(s, "completions") == 0)
        return DP_EP_COMPLETIONS;
    if (strcmp(s, "embeddings") == 0)
        return DP_EP_EMBEDDINGS;
    return DP_EP_MESSAGES;
}

static void check_usage(const json_t *exp, const dp_usage_t *u, const char *name)
{
    static const char *const keys[] = {"prompt", "completion", "cached", "reasoning", "total"};
    const int64_t got[] = {u->prompt, u->completion, u->cached, u->reasoning, u->total};
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(exp, keys[i]);
        if (v)
            cr_expect_eq(json_integer_value(v), got[i], "%s: usage.%s = %lld, expected %lld", name,
                         keys[i], (long long)got[i], (long long)json_integer_value(v));
    }
}

static void run_golden(const char *path)
{
    json_error_t jerr;
    json_t *g = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(g, "%s: %s", path, jerr.text);
    const char *name = json_string_value(json_object_get(g, "name"));
    json_t *jn = json_object_get(g, "now_s");
    json_t *jr = json_object_get(g, "request_id");
    int64_t now = jn ? json_integer_value(jn) : 1764072000;
    const char *rid = jr ? json_string_value(jr) : "req-1";
    int ep = endpoint_of(json_string_value(json_object_get(g, "endpoint")));

    call_t c;
    memset(&c, 0, sizeof(c));
    c.snap = snap_with(json_object_get(g, "provider"));
    char *req = dump(json_object_get(g, "request"));
    tg_err_t err;
    cr_assert_eq(dp_reqbody_parse(&c.rb, ep, req, strlen(req), &err), 0, "%s: %s", path, err.msg);
    free(req);
    dp_xlate_init(&c.x, ep, &c.rb, c.rb.include_usage);
    c.headers = json_array();
    tg_buf_init(&c.url, 1u << 16);
    tg_buf_init(&c.body, 1u << 24);
    const char *model = json_string_value(json_object_get(g, "model"));
    int rc = dp_xlate_build(&c.x, &c.snap->providers[0], model, rid, now, add_header, c.headers,
                            &c.url, &c.body, &c.err);
    json_t *be = json_object_get(g, "expect_build_error");
    if (be) {
        cr_assert_neq(rc, 0, "%s: build should fail", path);
        cr_expect_eq(c.err.status, json_integer_value(json_object_get(be, "status")), "%s", path);
        cr_expect_not_null(strstr(c.err.msg, json_string_value(json_object_get(be, "contains"))),
                           "%s: message \"%s\"", path, c.err.msg);
        goto done;
    }
    cr_assert_eq(rc, 0, "%s: build failed: %s", path, c.err.msg);
    json_t *v = json_object_get(g, "expect_url");
    if (v)
        cr_expect_str_eq(c.url.base, json_string_value(v), "%s", path);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(g, "expect_headers"), i, h)
        cr_expect(has_header(c.headers, json_string_value(h)), "%s: header %s missing", path,
                  json_string_value(h));
    json_array_foreach(json_object_get(g, "expect_no_headers"), i, h)
    {
        size_t k;
        json_t *sent;
        const char *nm = json_string_value(h);
        json_array_foreach(c.headers, k, sent)
        {
            const char *line = json_string_value(sent);
            cr_expect(!(strncasecmp(line, nm, strlen(nm)) == 0 && line[strlen(nm)] == ':'),
                      "%s: header %s must not be sent", path, nm);
        }
    }
    v = json_object_get(g, "expect_body");
    if (v) {
        json_t *b = body_json(&c);
        assert_match(v, b, path);
        json_decref(b);
    }

    tg_buf_t out = TG_BUF_INIT(1u << 24);
    json_t *stream = json_object_get(g, "stream");
    if (stream) {
        stream_all_ways(&c, json_string_value(stream), json_string_length(stream), &out);
        json_t *evs = events_of(out.base ? out.base : "", out.len);
        v = json_object_get(g, "expect_events");
        if (v)
            assert_match(v, evs, path);
        if (json_is_true(json_object_get(g, "expect_stream_error"))) {
            bool found = false;
            json_array_foreach(evs, i, h) found = found || json_object_get(h, "error");
            cr_expect(found, "%s: no error event", path);
        }
        json_decref(evs);
    } else {
        json_t *resp = json_object_get(g, "response");
        json_t *st = json_object_get(g, "status");
        char *text = resp ? dump(resp) : NULL;
        const char *raw = text ? text : json_string_value(json_object_get(g, "response_text"));
        const char *client;
        size_t client_len;
        cr_assert_eq(dp_xlate_response(&c.x, st ? (int)json_integer_value(st) : 200, raw,
                                       strlen(raw), &out, &client, &client_len),
                     0, "%s: response failed", path);
        json_t *got = json_loadb(client, client_len, 0, NULL);
        v = json_object_get(g, "expect");
        if (v)
            assert_match(v, got, path);
        json_decref(got);
        free(text);
    }
    v = json_object_get(g, "expect_usage");
    if (v)
        check_usage(v, &c.x.st.usage, path);
    tg_buf_dispose(&out);
done:
    (void)name;
    call_dispose(&c);
    json_decref(g);
}

static void golden_dir(char *dir, size_t n)
{
    const char *env = getenv("TG_GOLDEN_DIR");
    if (env) {
        snprintf(dir, n, "%s/gemini", env);
        return;
    }
    /* this file is tests/unit/test_dp_gemini.c; the transcripts are in tests/golden/gemini */
    snprintf(dir, n, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    cr_assert_not_null(slash);
    snprintf(slash, n - (size_t)(slash - dir), "/../golden/gemini");
}

Test(dp_gemini, golden_transcripts_pass)
{
    char dir[4096];
    golden_dir(dir, sizeof(dir));
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        run_golden(path);
        count++;
    }
    closedir(d);
    cr_assert_geq(count, 12, "only %d transcripts in %s", count, dir);
}

/* ---- build ---- */

Test(dp_gemini, model_is_one_percent_encoded_path_segment_without_models_prefix)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               "models/my model/v1:beta");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_str_eq(c.url.base,
                     "http://upstream.test/v1beta/models/my%20model%2Fv1%3Abeta:generateContent");
    cr_assert(has_header(c.headers, "x-goog-api-key: gm-test"));
    cr_assert(has_header(c.headers, "Expect:"));
    call_dispose(&c);
}

Test(dp_gemini, no_api_key_sends_no_key_header)
{
    json_t *p = json_pack("{s:s,s:s,s:s}", "id", "gm", "kind", "gemini", "base_url",
                          "http://127.0.0.1:1/v1beta");
    tg_snap_t *s = snap_with(p);
    dp_reqbody_t rb;
    dp_xlate_t x;
    tg_err_t err;
    const char *req = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    cr_assert_eq(dp_reqbody_parse(&rb, DP_EP_CHAT, req, strlen(req), &err), 0);
    dp_xlate_init(&x, DP_EP_CHAT, &rb, false);
    json_t *h = json_array();
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    cr_assert_eq(
        dp_xlate_build(&x, &s->providers[0], "g", "r", 1, add_header, h, &url, &body, &err), 0);
    size_t i;
    json_t *line;
    json_array_foreach(h, i, line)
        cr_assert_neq(strncasecmp(json_string_value(line), "x-goog-api-key", 14), 0);
    json_decref(h);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
    dp_xlate_dispose(&x);
    dp_reqbody_dispose(&rb);
    tg_snap_unref(s);
    json_decref(p);
}

static void expect_build_400(int ep, const char *req, const char *contains)
{
    call_t c;
    call_build(&c, ep, req, "gemini-2.0-flash");
    cr_assert_eq(c.rc, TG_EINVAL, "build should fail for %s", req);
    cr_assert_eq(c.err.status, 400);
    cr_assert_not_null(strstr(c.err.msg, contains), "message \"%s\" lacks \"%s\"", c.err.msg,
                       contains);
    call_dispose(&c);
}

Test(dp_gemini, requests_gemini_cannot_express_are_400s_naming_the_field)
{
    expect_build_400(DP_EP_EMBEDDINGS, "{\"model\":\"e\",\"input\":[1,2,3]}", "token arrays");
    expect_build_400(DP_EP_EMBEDDINGS, "{\"model\":\"e\",\"input\":[]}", "must not be empty");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":"
                     "\"call_x\",\"content\":\"1\"}]}",
                     "call_x");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"image_url\",\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
                     "base64");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"image_url\",\"image_url\":{\"url\":\"ftp://x/y.png\"}}]}]}",
                     "URL");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":"
                     "\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]},"
                     "{\"role\":\"user\",\"content\":\"x\"}]}",
                     "image_url");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{"
                     "\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                     "\"arguments\":\"{not json\"}}]}]}",
                     "arguments");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                     "\"tool_choice\":\"sometimes\"}",
                     "tool_choice");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"temperature\":\"hot\"}",
                     "temperature");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"critic\",\"content\":\"x\"}]}",
                     "critic");
    expect_build_400(DP_EP_CHAT,
                     "{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
                     "no user or assistant content");
    expect_build_400(DP_EP_COMPLETIONS, "{\"model\":\"a\",\"prompt\":\"x\"}", "completions");
}

Test(dp_gemini, schema_refs_are_inlined_and_recursion_is_bounded)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{"
               "\"type\":\"object\",\"$defs\":{\"Node\":{\"type\":\"object\",\"properties\":{"
               "\"next\":{\"$ref\":\"#/$defs/Node\"}}}},\"properties\":{\"head\":{\"$ref\":"
               "\"#/$defs/Node\",\"description\":\"first\"},\"kind\":{\"const\":\"list\"},"
               "\"size\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"null\"}]}}}}}]}",
               "g");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    json_t *b = body_json(&c);
    json_t *params = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(b, "tools"), 0), "functionDeclarations"),
            0),
        "parameters");
    json_t *props = json_object_get(params, "properties");
    cr_assert_null(json_object_get(params, "$defs"));
    json_t *head = json_object_get(props, "head");
    cr_assert_str_eq(json_string_value(json_object_get(head, "description")), "first");
    cr_assert_str_eq(json_string_value(json_object_get(head, "type")), "object");
    cr_assert_not_null(json_object_get(json_object_get(head, "properties"), "next"));
    json_t *kind = json_object_get(props, "kind");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(kind, "enum"), 0)), "list");
    json_t *size = json_object_get(props, "size");
    cr_assert_str_eq(json_string_value(json_object_get(size, "type")), "integer");
    cr_assert(json_is_true(json_object_get(size, "nullable")));
    cr_assert_null(json_object_get(size, "anyOf"));
    json_decref(b);
    call_dispose(&c);
}

Test(dp_gemini, legacy_function_role_and_input_audio_and_file_parts)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_audio\",\"input_audio\":{\"data\":\"UklGRg==\",\"format\":\"wav\"}},"
               "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBE\","
               "\"filename\":\"a.pdf\"}}]},{\"role\":\"function\",\"name\":\"lookup\","
               "\"content\":\"ok\"}],\"response_format\":{\"type\":\"json_object\"}}",
               "g");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    json_t *b = body_json(&c);
    json_t *exp = json_loads(
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"inlineData\":{\"mimeType\":\"audio/wav\","
        "\"data\":\"UklGRg==\"}},{\"inlineData\":{\"mimeType\":\"application/pdf\",\"data\":"
        "\"JVBE\"}},{\"functionResponse\":{\"name\":\"lookup\",\"response\":{\"content\":\"ok\"}}}"
        "]}],\"generationConfig\":{\"responseMimeType\":\"application/json\"}}",
        0, NULL);
    assert_match(exp, b, "body");
    json_decref(exp);
    json_decref(b);
    call_dispose(&c);
}

/* ---- answers ---- */

static json_t *answer(call_t *c, int status, const char *body)
{
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *client;
    size_t n;
    cr_assert_eq(dp_xlate_response(&c->x, status, body, strlen(body), &out, &client, &n), 0);
    json_t *j = json_loadb(client, n, 0, NULL);
    cr_assert_not_null(j, "client body is not JSON: %.*s", (int)n, client);
    tg_buf_dispose(&out);
    return j;
}

static const char *finish_of(json_t *res, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(res, "choices"), i), "finish_reason"));
}

Test(dp_gemini, finish_reasons_map_to_openai_ones)
{
    static const struct {
        const char *gemini, *openai;
    } cases[] = {{"STOP", "stop"},
                 {"MAX_TOKENS", "length"},
                 {"SAFETY", "content_filter"},
                 {"RECITATION", "content_filter"},
                 {"BLOCKLIST", "content_filter"},
                 {"PROHIBITED_CONTENT", "content_filter"},
                 {"SPII", "content_filter"},
                 {"MALFORMED_FUNCTION_CALL", "stop"},
                 {"OTHER", "stop"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        call_t c;
        call_build(&c, DP_EP_CHAT,
                   "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "g");
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"t\"}]},"
                 "\"finishReason\":\"%s\"}]}",
                 cases[i].gemini);
        json_t *res = answer(&c, 200, body);
        cr_expect_str_eq(finish_of(res, 0), cases[i].openai, "%s", cases[i].gemini);
        json_decref(res);
        call_dispose(&c);
    }
}

Test(dp_gemini, thoughts_are_left_out_and_candidates_become_choices)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               "g");
    json_t *res = answer(
        &c, 200,
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hmm\",\"thought\":true},{\"text\":"
        "\"A\"}]},\"finishReason\":\"STOP\",\"index\":0},{\"content\":{\"parts\":[{\"text\":\"B\"}"
        "]},\"finishReason\":\"MAX_TOKENS\",\"index\":1}],\"usageMetadata\":{"
        "\"promptTokenCount\":2,\"candidatesTokenCount\":2,\"toolUsePromptTokenCount\":1}}");
    json_t *choices = json_object_get(res, "choices");
    cr_assert_eq(json_array_size(choices), 2);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(choices, 0), "message"), "content")),
                     "A");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(choices, 1), "message"), "content")),
                     "B");
    cr_assert_str_eq(finish_of(res, 1), "length");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(choices, 1), "index")), 1);
    /* no totalTokenCount: prompt (tool-use prompt included) + completion */
    cr_assert_eq(c.x.st.usage.prompt, 3);
    cr_assert_eq(c.x.st.usage.total, 5);
    cr_assert(c.x.st.usage.present);
    json_decref(res);
    call_dispose(&c);
}

Test(dp_gemini, error_bodies_keep_the_message_even_when_not_json)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "g");
    json_t *res = answer(&c, 403,
                         "[{\"error\":{\"code\":403,\"message\":\"Permission denied\","
                         "\"status\":\"PERMISSION_DENIED\"}}]");
    json_t *e = json_object_get(res, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "Permission denied");
    cr_assert_str_eq(json_string_value(json_object_get(e, "type")), "permission_error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "PERMISSION_DENIED");
    json_decref(res);
    res = answer(&c, 502, "<html>Bad Gateway</html>");
    e = json_object_get(res, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "<html>Bad Gateway</html>");
    cr_assert(json_is_null(json_object_get(e, "code")));
    json_decref(res);
    cr_assert_not(c.x.st.usage.present);
    call_dispose(&c);
}

Test(dp_gemini, unreadable_2xx_is_an_upstream_error)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "g");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *client;
    size_t n;
    cr_assert_lt(dp_xlate_response(&c.x, 200, "{\"cand", 6, &out, &client, &n), 0);
    tg_buf_dispose(&out);
    call_dispose(&c);
}

/* ---- streams ---- */

#define TOOL_STREAM                                                                                \
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me \"},{\"text\":\"check"     \
    ".\"}],\"role\":\"model\"},\"index\":0}],\"responseId\":\"s-1\"}\r\n\r\n"                      \
    ": keep-alive\r\n\r\n"                                                                         \
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\",\"args\":"  \
    "{\"x\":1}}},{\"functionCall\":{\"name\":\"b\",\"args\":{}}}],\"role\":\"model\"},"            \
    "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,"           \
    "\"candidatesTokenCount\":5,\"totalTokenCount\":12},\"responseId\":\"s-1\"}\r\n\r\n"

Test(dp_gemini, stream_fed_at_every_split_point_gives_the_same_client_bytes)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               "g");
    cr_assert_eq(c.rc, 0);
    tg_buf_t whole = TG_BUF_INIT(1u << 20);
    stream_all_ways(&c, TOOL_STREAM, strlen(TOOL_STREAM), &whole);
    json_t *evs = events_of(whole.base, whole.len);
    /* role, text, call a, call b, finish, usage, [DONE] */
    cr_assert_eq(json_array_size(evs), 7, "%.*s", (int)whole.len, whole.base);
    json_t *d1 = json_object_get(
        json_array_get(json_object_get(json_array_get(evs, 1), "choices"), 0), "delta");
    cr_assert_str_eq(json_string_value(json_object_get(d1, "content")), "Let me check.");
    for (int k = 0; k < 2; k++) {
        json_t *tc = json_array_get(
            json_object_get(
                json_object_get(
                    json_array_get(json_object_get(json_array_get(evs, 2 + k), "choices"), 0),
                    "delta"),
                "tool_calls"),
            0);
        cr_assert_eq(json_integer_value(json_object_get(tc, "index")), k);
        cr_assert_str_eq(json_string_value(json_object_get(tc, "id")),
                         k == 0 ? "call_req-1_0" : "call_req-1_1");
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")),
            k == 0 ? "{\"x\":1}" : "{}");
    }
    cr_assert_str_eq(finish_of(json_array_get(evs, 4), 0), "tool_calls");
    json_t *u = json_object_get(json_array_get(evs, 5), "usage");
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), 12);
    cr_assert_str_eq(json_string_value(json_array_get(evs, 6)), "[DONE]");
    cr_assert(c.x.st.done);
    cr_assert_eq(c.x.st.content_events, 3);
    json_decref(evs);
    tg_buf_dispose(&whole);
    call_dispose(&c);
}

Test(dp_gemini, broken_stream_gets_no_made_up_finish)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"x\"}]}",
               "g");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n"
                     "data: {\"candi";
    cr_assert_eq(dp_xlate_feed(&c.x, ev, strlen(ev), &out), 0);
    size_t before = out.len;
    cr_assert_eq(dp_xlate_end(&c.x, false, &out), 0);
    cr_assert_eq(out.len, before);
    cr_assert_not(c.x.st.done);
    cr_assert_not(c.x.st.usage.present);
    cr_assert_eq(c.x.st.content_events, 1);
    tg_buf_dispose(&out);
    call_dispose(&c);
}

Test(dp_gemini, usage_of_early_events_is_not_final_until_the_answer_finishes)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"x\"}]}",
               "g");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *early = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}],"
                        "\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9}}\r\n\r\n";
    cr_assert_eq(dp_xlate_feed(&c.x, early, strlen(early), &out), 0);
    cr_assert_not(c.x.st.usage.present); /* a cut here is estimated, not "0 completion tokens" */
    cr_assert_eq(dp_xlate_end(&c.x, true, &out), 0);
    cr_assert(c.x.st.usage.present); /* complete: the last usage stands */
    cr_assert_eq(c.x.st.usage.prompt, 9);
    tg_buf_dispose(&out);
    call_dispose(&c);
}

Test(dp_gemini, last_event_without_blank_line_still_counts_and_empty_stream_is_well_formed)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"x\"}]}",
               "g");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},"
                     "\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":1,"
                     "\"candidatesTokenCount\":1,\"totalTokenCount\":2}}";
    cr_assert_eq(dp_xlate_feed(&c.x, ev, strlen(ev), &out), 0);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(dp_xlate_end(&c.x, true, &out), 0);
    json_t *evs = events_of(out.base, out.len);
    cr_assert_eq(json_array_size(evs), 4); /* role, text, finish, [DONE] */
    cr_assert_str_eq(finish_of(json_array_get(evs, 2), 0), "length");
    cr_assert_eq(c.x.st.usage.total, 2);
    json_decref(evs);

    /* a fresh attempt whose stream carries nothing */
    tg_buf_t url = TG_BUF_INIT(4096), body = TG_BUF_INIT(1u << 20);
    json_t *h = json_array();
    tg_err_t err;
    cr_assert_eq(dp_xlate_build(&c.x, &c.snap->providers[0], "g", "req-2", 5, add_header, h, &url,
                                &body, &err),
                 0);
    tg_buf_reset(&out);
    cr_assert_eq(dp_xlate_end(&c.x, true, &out), 0);
    evs = events_of(out.base, out.len);
    cr_assert_eq(json_array_size(evs), 3); /* role, finish stop, [DONE] */
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(evs, 0), "id")),
                     "chatcmpl-req-2");
    cr_assert_str_eq(finish_of(json_array_get(evs, 1), 0), "stop");
    cr_assert_not(c.x.st.usage.present);
    json_decref(evs);
    json_decref(h);
    tg_buf_dispose(&url);
    tg_buf_dispose(&body);
    tg_buf_dispose(&out);
    call_dispose(&c);
}

Test(dp_gemini, streamed_candidates_keep_their_own_choice_index)
{
    call_t c;
    call_build(&c, DP_EP_CHAT,
               "{\"model\":\"a\",\"n\":2,\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}",
               "g");
    tg_buf_t out = TG_BUF_INIT(1u << 20);
    const char *ev =
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},"
        "{\"content\":{\"parts\":[{\"text\":\"B\"}]},\"finishReason\":\"STOP\",\"index\":1}]}\n\n";
    cr_assert_eq(dp_xlate_feed(&c.x, ev, strlen(ev), &out), 0);
    cr_assert_eq(dp_xlate_end(&c.x, true, &out), 0);
    json_t *evs = events_of(out.base, out.len);
    /* role 0, A, role 1, B, finish 1, finish 0 (at the end), [DONE] */
    cr_assert_eq(json_array_size(evs), 7, "%.*s", (int)out.len, out.base);
    json_t *last = json_array_get(json_object_get(json_array_get(evs, 5), "choices"), 0);
    cr_assert_eq(json_integer_value(json_object_get(last, "index")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(last, "finish_reason")), "stop");
    json_decref(evs);
    tg_buf_dispose(&out);
    call_dispose(&c);
}

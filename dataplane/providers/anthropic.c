/* anthropic.c: Anthropic's Messages API (POST {base}/messages with x-api-key and
 * anthropic-version). OpenAI chat requests are translated to Messages requests, and the answers
 * (JSON, SSE events, errors) back to OpenAI's shape; /v1/messages clients pass through natively
 * with the usage read on the way. Pure; runs on the request's loop thread. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include "tg_banned.h"

#define ANTHROPIC_VERSION "2023-06-01"
#define DEFAULT_MAX_TOKENS 4096
#define MAX_BLOCKS 65536    /* content blocks in one streamed answer */
#define MAX_ERROR_TEXT 1024 /* bytes of an unrecognized error body shown to the client */
#define MAX_MSG_ID_LEN 256  /* an upstream message id longer than this is cut */

/* ------------------------------------------------------------------------------- helpers */

static int oom(tg_err_t *err)
{
    tg_err_set(err, TG_ENOMEM, 503, "out of memory");
    return TG_ENOMEM;
}

/* ------------------------------------------------------------------------------- request */

/* data:<media type>;base64,<data> */
static bool parse_data_url(const char *url, size_t n, const char **media, size_t *media_len,
                           const char **data, size_t *data_len)
{
    if (!dp_has_prefix(url, n, "data:"))
        return false;
    const char *comma = memchr(url, ',', n);
    if (!comma)
        return false;
    const char *meta = url + 5;
    size_t ml = (size_t)(comma - meta);
    if (ml <= 7 || memcmp(meta + ml - 7, ";base64", 7) != 0)
        return false;
    *media = meta;
    *media_len = ml - 7;
    *data = comma + 1;
    *data_len = n - (size_t)(comma + 1 - url);
    return true;
}

static int text_block(json_t *blocks, const char *text, size_t n, const json_t *cache_control)
{
    if (n == 0)
        return 0; /* Anthropic refuses empty text blocks */
    json_t *b = json_pack("{s:s, s:s%}", "type", "text", "text", text, n);
    if (b && cache_control && json_object_set(b, "cache_control", (json_t *)cache_control) != 0) {
        json_decref(b);
        b = NULL;
    }
    return dp_json_push(blocks, b);
}

/* An OpenAI image_url: a data: URL becomes a base64 source, an http(s) URL a url source. */
static int image_block(json_t *blocks, const json_t *image_url, size_t mi, size_t pi, tg_err_t *err)
{
    const json_t *u = json_is_object(image_url) ? json_object_get(image_url, "url") : image_url;
    if (!json_is_string(u)) {
        tg_err_set(err, TG_EINVAL, 400, "messages[%zu].content[%zu].image_url.url must be a string",
                   mi, pi);
        return TG_EINVAL;
    }
    const char *url = json_string_value(u);
    size_t n = json_string_length(u);
    const char *media, *data;
    size_t media_len, data_len;
    json_t *src;
    if (parse_data_url(url, n, &media, &media_len, &data, &data_len)) {
        src = json_pack("{s:s, s:s%, s:s%}", "type", "base64", "media_type", media, media_len,
                        "data", data, data_len);
    } else if (dp_has_prefix(url, n, "https://") || dp_has_prefix(url, n, "http://")) {
        src = json_pack("{s:s, s:s%}", "type", "url", "url", url, n);
    } else {
        tg_err_set(err, TG_EINVAL, 400,
                   "messages[%zu].content[%zu].image_url.url must be an http(s) URL or a base64 "
                   "data: URL",
                   mi, pi);
        return TG_EINVAL;
    }
    if (!src)
        return oom(err);
    if (dp_json_push(blocks, json_pack("{s:s, s:o}", "type", "image", "source", src)) != 0)
        return oom(err);
    return 0;
}

/* An OpenAI file part with inline data (a PDF) becomes a document block. */
static int file_block(json_t *blocks, const json_t *file, size_t mi, size_t pi, tg_err_t *err)
{
    const json_t *fd = json_object_get(file, "file_data");
    const char *media, *data;
    size_t media_len, data_len;
    if (!json_is_string(fd) || !parse_data_url(json_string_value(fd), json_string_length(fd),
                                               &media, &media_len, &data, &data_len)) {
        tg_err_set(err, TG_EINVAL, 400,
                   "messages[%zu].content[%zu].file: provider kind anthropic needs file_data as a "
                   "base64 data: URL",
                   mi, pi);
        return TG_EINVAL;
    }
    json_t *src = json_pack("{s:s, s:s%, s:s%}", "type", "base64", "media_type", media, media_len,
                            "data", data, data_len);
    if (!src ||
        dp_json_push(blocks, json_pack("{s:s, s:o}", "type", "document", "source", src)) != 0)
        return oom(err);
    return 0;
}

/* An OpenAI message content (string, null, or parts) appended to blocks. media: images and files
 * are allowed (user messages and tool results). */
static int content_blocks(const json_t *content, bool media, size_t mi, json_t *blocks,
                          tg_err_t *err)
{
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (text_block(blocks, json_string_value(content), json_string_length(content), NULL))
            return oom(err);
        return 0;
    }
    if (!json_is_array(content)) {
        tg_err_set(err, TG_EINVAL, 400, "messages[%zu].content must be a string or an array", mi);
        return TG_EINVAL;
    }
    size_t pi;
    json_t *part;
    json_array_foreach(content, pi, part)
    {
        json_t *type = json_object_get(part, "type");
        int rc = 0;
        if (dp_json_str_eq(type, "text") || dp_json_str_eq(type, "refusal")) {
            const json_t *t =
                json_object_get(part, dp_json_str_eq(type, "text") ? "text" : "refusal");
            if (!json_is_string(t)) {
                tg_err_set(err, TG_EINVAL, 400, "messages[%zu].content[%zu].text must be a string",
                           mi, pi);
                return TG_EINVAL;
            }
            if (text_block(blocks, json_string_value(t), json_string_length(t),
                           json_object_get(part, "cache_control")) != 0)
                return oom(err);
        } else if (media && dp_json_str_eq(type, "image_url")) {
            rc = image_block(blocks, json_object_get(part, "image_url"), mi, pi, err);
        } else if (media && dp_json_str_eq(type, "file") &&
                   json_is_object(json_object_get(part, "file"))) {
            rc = file_block(blocks, json_object_get(part, "file"), mi, pi, err);
        } else {
            tg_err_set(err, TG_EINVAL, 400,
                       "messages[%zu].content[%zu]: part type \"%s\" is not supported here by "
                       "provider kind anthropic",
                       mi, pi, json_is_string(type) ? json_string_value(type) : "?");
            return TG_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* An assistant turn: its text, then each tool call as a tool_use block with parsed input. */
static int assistant_blocks(const json_t *m, size_t mi, json_t *blocks, tg_err_t *err)
{
    int rc = content_blocks(json_object_get(m, "content"), false, mi, blocks, err);
    if (rc != 0)
        return rc;
    const json_t *calls = json_object_get(m, "tool_calls");
    if (!calls || json_is_null(calls))
        return 0;
    if (!json_is_array(calls)) {
        tg_err_set(err, TG_EINVAL, 400, "messages[%zu].tool_calls must be an array", mi);
        return TG_EINVAL;
    }
    size_t ci;
    json_t *call;
    json_array_foreach(calls, ci, call)
    {
        const json_t *id = json_object_get(call, "id");
        const json_t *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(id) || !json_is_string(name)) {
            tg_err_set(err, TG_EINVAL, 400,
                       "messages[%zu].tool_calls[%zu] needs a string id and function.name", mi, ci);
            return TG_EINVAL;
        }
        json_t *input = dp_tool_args_parse(args);
        if (!json_is_object(input)) {
            json_decref(input);
            tg_err_set(err, TG_EINVAL, 400,
                       "messages[%zu].tool_calls[%zu].function.arguments must be a JSON object", mi,
                       ci);
            return TG_EINVAL;
        }
        json_t *b = json_pack("{s:s, s:O, s:O, s:o}", "type", "tool_use", "id", id, "name", name,
                              "input", input);
        if (dp_json_push(blocks, b) != 0)
            return oom(err);
    }
    return 0;
}

/* A tool message: a tool_result block (of a user turn). */
static int tool_result_block(const json_t *m, size_t mi, json_t *blocks, tg_err_t *err)
{
    const json_t *id = json_object_get(m, "tool_call_id");
    if (!json_is_string(id)) {
        tg_err_set(err, TG_EINVAL, 400, "messages[%zu].tool_call_id must be a string", mi);
        return TG_EINVAL;
    }
    json_t *b = json_pack("{s:s, s:O}", "type", "tool_result", "tool_use_id", id);
    if (!b)
        return oom(err);
    const json_t *content = json_object_get(m, "content");
    int rc = 0;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0)
            rc = dp_json_set(b, "content", json_copy((json_t *)content)) == 0 ? 0 : oom(err);
    } else if (content && !json_is_null(content)) {
        json_t *parts = json_array();
        rc = parts ? content_blocks(content, true, mi, parts, err) : oom(err);
        if (rc == 0 && json_array_size(parts) > 0)
            rc = dp_json_set(b, "content", json_incref(parts)) == 0 ? 0 : oom(err);
        json_decref(parts);
    }
    if (rc == 0 && dp_json_push(blocks, json_incref(b)) != 0)
        rc = oom(err);
    json_decref(b);
    return rc;
}

/* A single plain text block is written as a string, as clients usually send it. */
static json_t *collapse(json_t *blocks)
{
    json_t *b = json_array_get(blocks, 0);
    if (json_array_size(blocks) == 1 && json_object_size(b) == 2 &&
        dp_json_str_eq(json_object_get(b, "type"), "text")) {
        json_t *s = json_incref(json_object_get(b, "text"));
        json_decref(blocks);
        return s;
    }
    return blocks;
}

static int convert_messages(const json_t *src, json_t *root, tg_err_t *err)
{
    json_t *system = json_array();
    json_t *messages = json_array();
    int rc = system && messages ? 0 : oom(err);
    size_t mi;
    json_t *m;
    json_array_foreach(src, mi, m)
    {
        if (rc != 0)
            break;
        const json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            tg_err_set(err, TG_EINVAL, 400, "messages[%zu] must be an object with a string role",
                       mi);
            rc = TG_EINVAL;
            break;
        }
        if (dp_json_str_eq(role, "system") || dp_json_str_eq(role, "developer")) {
            rc = content_blocks(json_object_get(m, "content"), false, mi, system, err);
            continue;
        }
        json_t *blocks = json_array();
        if (!blocks) {
            rc = oom(err);
            break;
        }
        const char *as = "user";
        if (dp_json_str_eq(role, "user")) {
            rc = content_blocks(json_object_get(m, "content"), true, mi, blocks, err);
        } else if (dp_json_str_eq(role, "assistant")) {
            as = "assistant";
            rc = assistant_blocks(m, mi, blocks, err);
        } else if (dp_json_str_eq(role, "tool")) {
            rc = tool_result_block(m, mi, blocks, err);
        } else {
            tg_err_set(err, TG_EINVAL, 400,
                       "messages[%zu].role \"%s\" is not supported by provider kind anthropic", mi,
                       json_string_value(role));
            rc = TG_EINVAL;
        }
        if (rc != 0) {
            json_decref(blocks);
            break;
        }
        /* Anthropic wants user and assistant turns to alternate */
        if (dp_json_turn_append(messages, as, "content", blocks) != 0)
            rc = oom(err);
    }
    size_t i;
    json_array_foreach(messages, i, m)
    {
        if (rc != 0)
            break;
        json_t *c = collapse(json_incref(json_object_get(m, "content")));
        if (dp_json_set(m, "content", c) != 0)
            rc = oom(err);
    }
    /* dp_json_set() takes the references whether or not it succeeds */
    if (rc == 0 && json_array_size(system) > 0) {
        if (dp_json_set(root, "system", collapse(system)) != 0)
            rc = oom(err);
    } else {
        json_decref(system);
    }
    if (rc == 0) {
        if (dp_json_set(root, "messages", messages) != 0)
            rc = oom(err);
    } else {
        json_decref(messages);
    }
    return rc;
}

static int convert_tools(const json_t *tools, json_t *root, tg_err_t *err)
{
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools)) {
        tg_err_set(err, TG_EINVAL, 400, "tools must be an array");
        return TG_EINVAL;
    }
    json_t *out = json_array();
    if (!out)
        return oom(err);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        if (!dp_json_str_eq(json_object_get(t, "type"), "function") || !json_is_string(name)) {
            json_decref(out);
            tg_err_set(err, TG_EINVAL, 400,
                       "tools[%zu] must be {\"type\":\"function\",\"function\":{\"name\":...}} for "
                       "provider kind anthropic",
                       i);
            return TG_EINVAL;
        }
        const json_t *params = json_object_get(fn, "parameters");
        json_t *schema = json_is_object(params)
                             ? json_incref((json_t *)params)
                             : json_pack("{s:s, s:{}}", "type", "object", "properties");
        json_t *o = json_pack("{s:O, s:o}", "name", name, "input_schema", schema);
        const json_t *desc = json_object_get(fn, "description");
        if (o && json_is_string(desc) && json_object_set(o, "description", (json_t *)desc) != 0) {
            json_decref(o);
            o = NULL;
        }
        if (dp_json_push(out, o) != 0) {
            json_decref(out);
            return oom(err);
        }
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return 0;
    }
    return dp_json_set(root, "tools", out) == 0 ? 0 : oom(err);
}

/* auto/none/required/{function} -> auto/none/any/tool; parallel_tool_calls:false ->
 * disable_parallel_tool_use. Without tools there is nothing to choose from: left out. */
static int convert_tool_choice(const json_t *req, json_t *root, tg_err_t *err)
{
    if (!json_object_get(root, "tools"))
        return 0;
    const json_t *tc = json_object_get(req, "tool_choice");
    bool no_parallel = json_is_false(json_object_get(req, "parallel_tool_calls"));
    json_t *o = NULL;
    if (!tc || json_is_null(tc)) {
        if (!no_parallel)
            return 0;
        o = json_pack("{s:s}", "type", "auto");
    } else if (dp_json_str_eq(tc, "auto")) {
        o = json_pack("{s:s}", "type", "auto");
    } else if (dp_json_str_eq(tc, "none")) {
        o = json_pack("{s:s}", "type", "none");
        no_parallel = false; /* Anthropic accepts the flag only where tools may be called */
    } else if (dp_json_str_eq(tc, "required")) {
        o = json_pack("{s:s}", "type", "any");
    } else if (json_is_object(tc) && dp_json_str_eq(json_object_get(tc, "type"), "function") &&
               json_is_string(json_object_get(json_object_get(tc, "function"), "name"))) {
        o = json_pack("{s:s, s:O}", "type", "tool", "name",
                      json_object_get(json_object_get(tc, "function"), "name"));
    } else {
        tg_err_set(err, TG_EINVAL, 400,
                   "tool_choice must be \"auto\", \"none\", \"required\" or "
                   "{\"type\":\"function\",\"function\":{\"name\":...}}");
        return TG_EINVAL;
    }
    if (o && no_parallel && dp_json_set(o, "disable_parallel_tool_use", json_true()) != 0) {
        json_decref(o);
        o = NULL;
    }
    return dp_json_set(root, "tool_choice", o) == 0 ? 0 : oom(err);
}

static int convert_stop(const json_t *stop, json_t *root, tg_err_t *err)
{
    json_t *seqs;
    int rc = dp_stop_sequences(stop, &seqs);
    if (rc == TG_EINVAL) {
        tg_err_set(err, TG_EINVAL, 400, "stop must be a string or an array of strings");
        return TG_EINVAL;
    }
    if (rc != 0)
        return oom(err);
    if (json_array_size(seqs) == 0) {
        json_decref(seqs);
        return 0;
    }
    return dp_json_set(root, "stop_sequences", seqs) == 0 ? 0 : oom(err);
}

/* The Messages body for an OpenAI chat body. */
static int chat_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    const dp_reqbody_t *rb = c->body;
    const json_t *req = dp_reqbody_json(c->body);
    if (!req)
        return oom(err);
    const json_t *n = json_object_get(req, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1) {
        tg_err_set(err, TG_EINVAL, 400, "n > 1 is not supported by provider kind anthropic");
        return TG_EINVAL;
    }
    json_t *root = json_object();
    if (!root)
        return oom(err);
    int rc = dp_json_set(root, "model", json_string(c->model)) == 0 ? 0 : oom(err);
    if (rc == 0)
        rc = convert_messages(json_object_get(req, "messages"), root, err);
    int64_t max = rb->max_tokens > 0 ? rb->max_tokens : DEFAULT_MAX_TOKENS;
    if (rc == 0 && dp_json_set(root, "max_tokens", json_integer(max)) != 0)
        rc = oom(err);
    if (rc == 0)
        rc = convert_stop(json_object_get(req, "stop"), root, err);
    static const char *const numbers[] = {"temperature", "top_p"};
    for (size_t i = 0; rc == 0 && i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        json_t *v = json_object_get(req, numbers[i]);
        if (json_is_number(v) && json_object_set(root, numbers[i], v) != 0)
            rc = oom(err);
    }
    if (rc == 0 && rb->stream && dp_json_set(root, "stream", json_true()) != 0)
        rc = oom(err);
    if (rc == 0)
        rc = convert_tools(json_object_get(req, "tools"), root, err);
    if (rc == 0)
        rc = convert_tool_choice(req, root, err);
    const json_t *user = json_object_get(req, "user");
    if (rc == 0 && json_is_string(user) &&
        dp_json_set(root, "metadata", json_pack("{s:O}", "user_id", user)) != 0)
        rc = oom(err);
    if (rc == 0 && dp_json_append(body, root) != 0)
        rc = oom(err);
    json_decref(root);
    return rc;
}

/* A /v1/messages client: its body as it is, with the provider's model name. */
static int native_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    json_t *root = dp_reqbody_json(c->body);
    if (!root || dp_json_set(root, "model", json_string(c->model)) != 0 ||
        dp_json_append(body, root) != 0)
        return oom(err);
    return 0;
}

static bool has_header(const tg_provider_t *p, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < p->nheaders; i++) {
        const char *h = p->headers[i];
        if (strlen(h) > nl && h[nl] == ':' && tg_mem_caseeq(h, nl, name, nl))
            return true;
    }
    return false;
}

static int add_headers(const tg_provider_t *p, bool stream, const char *beta, dp_header_add_fn add,
                       void *ud)
{
    int rc = 0;
    if (p->api_key)
        rc = dp_header_add_secret(add, ud, "x-api-key", p->api_key);
    /* an anthropic-version among the provider's own headers wins */
    if (rc == 0 && !has_header(p, "anthropic-version")) {
        tg_buf_t line = TG_BUF_INIT(256);
        rc = tg_buf_appendf(&line, "anthropic-version: %s%c",
                            p->api_version ? p->api_version : ANTHROPIC_VERSION, '\0');
        if (rc == 0)
            rc = add(ud, line.base);
        tg_buf_dispose(&line);
    }
    /* the client's beta features, on native calls; the provider's own header wins */
    if (rc == 0 && beta && !has_header(p, "anthropic-beta")) {
        tg_buf_t line = TG_BUF_INIT(2048);
        rc = tg_buf_appendf(&line, "anthropic-beta: %s%c", beta, '\0');
        if (rc == 0)
            rc = add(ud, line.base);
        tg_buf_dispose(&line);
    }
    if (rc == 0)
        rc = dp_header_add_json(add, ud, stream ? "text/event-stream" : "application/json");
    if (rc == 0)
        rc = dp_header_add_extra(p, add, ud);
    return rc;
}

static int anthropic_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                           tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    if (c->endpoint != DP_EP_CHAT && c->endpoint != DP_EP_MESSAGES) {
        const char *what = c->endpoint == DP_EP_EMBEDDINGS    ? "embeddings"
                           : c->endpoint == DP_EP_COMPLETIONS ? "completions"
                                                              : "such";
        tg_err_set(err, TG_EINVAL, 400,
                   "provider \"%s\" of kind anthropic has no %s endpoint; use /v1/chat/completions "
                   "or /v1/messages",
                   p->id, what);
        return TG_EINVAL;
    }
    int rc = c->endpoint == DP_EP_MESSAGES ? native_body(c, body, err) : chat_body(c, body, err);
    if (rc != 0)
        return rc;
    if (tg_buf_appendf(url, "%s/messages%c", p->base_url, '\0') != 0 ||
        add_headers(p, c->body->stream, c->endpoint == DP_EP_MESSAGES ? c->anthropic_beta : NULL,
                    add, ud) != 0)
        return oom(err);
    return 0;
}

/* ------------------------------------------------------------------------------- answers */

/* Token counts as Anthropic reports them; input_tokens excludes the cache reads and writes.
 * cache_creation splits the writes by lifetime (ephemeral_5m_input_tokens,
 * ephemeral_1h_input_tokens); without it every write is a 5-minute one. */
typedef struct anth_usage {
    int64_t input, cache_read, cache_write, output;
    int64_t write_5m, write_1h;
    bool seen, split;
} anth_usage_t;

static void usage_member(const json_t *u, const char *key, int64_t *v)
{
    const json_t *x = json_object_get(u, key);
    if (json_is_integer(x))
        *v = json_integer_value(x) > 0 ? json_integer_value(x) : 0;
}

/* Reads the members present: message_delta's usage is cumulative and may repeat any of them. */
static void usage_merge(anth_usage_t *a, const json_t *u)
{
    if (!json_is_object(u))
        return;
    usage_member(u, "input_tokens", &a->input);
    usage_member(u, "cache_read_input_tokens", &a->cache_read);
    usage_member(u, "cache_creation_input_tokens", &a->cache_write);
    usage_member(u, "output_tokens", &a->output);
    const json_t *cc = json_object_get(u, "cache_creation");
    if (json_is_object(cc)) {
        usage_member(cc, "ephemeral_5m_input_tokens", &a->write_5m);
        usage_member(cc, "ephemeral_1h_input_tokens", &a->write_1h);
        a->split = true;
    }
    a->seen = true;
}

static void usage_store(dp_stream_state_t *st, const anth_usage_t *a)
{
    if (!a->seen)
        return;
    st->usage.prompt = a->input + a->cache_read + a->cache_write;
    st->usage.cached = a->cache_read;
    st->usage.completion = a->output;
    st->usage.reasoning = 0;
    /* the 1-hour writes as reported (never more than all the writes), the rest at 5 minutes */
    int64_t w1 = a->split ? a->write_1h : 0;
    st->usage.cache_write_1h = w1 < a->cache_write ? w1 : a->cache_write;
    st->usage.cache_write = a->cache_write - st->usage.cache_write_1h;
    st->usage.total = st->usage.prompt + st->usage.completion;
    st->usage.present = true;
}

static const char *finish_reason(const json_t *stop_reason)
{
    if (dp_json_str_eq(stop_reason, "max_tokens") ||
        dp_json_str_eq(stop_reason, "model_context_window_exceeded"))
        return "length";
    if (dp_json_str_eq(stop_reason, "tool_use"))
        return "tool_calls";
    if (dp_json_str_eq(stop_reason, "refusal"))
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* The HTTP status an Anthropic error type stands for (errors inside a stream have none). */
static int status_for_error_type(const json_t *type)
{
    return json_is_string(type)
               ? tg_error_status_anthropic(json_string_value(type), json_string_length(type))
               : 500;
}

/* An Anthropic error body (or any other text) as an OpenAI error object. */
static int error_to_openai(int status, const char *body, size_t n, tg_buf_t *out)
{
    json_t *root = json_loadb(body, n, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const json_t *msg = json_object_get(e, "message");
    const json_t *type = json_object_get(e, "type");
    int rc;
    if (json_is_string(msg)) {
        rc = tg_error_body(out, status, NULL, json_string_value(msg), json_string_length(msg), NULL,
                           json_is_string(type) ? json_string_value(type) : NULL);
    } else if (n > 0) {
        /* a proxy's HTML page or another JSON shape: show its start, it is all the client gets */
        rc = tg_error_body(out, status, NULL, body, n > MAX_ERROR_TEXT ? MAX_ERROR_TEXT : n, NULL,
                           NULL);
    } else {
        char m[64];
        int ml = snprintf(m, sizeof(m), "provider answered HTTP %d", status);
        rc = tg_error_body(out, status, NULL, m, (size_t)ml, NULL, NULL);
    }
    json_decref(root);
    return rc;
}

static const char *model_name(const dp_stream_state_t *st, const json_t *answer)
{
    if (st->model)
        return st->model;
    const json_t *m = json_object_get(answer, "model");
    return json_is_string(m) ? json_string_value(m) : "";
}

/* The id OpenAI clients see: chatcmpl-<message id>, or of the gateway's request id. */
static int append_chat_id(tg_buf_t *b, const dp_stream_state_t *st, const char *msg_id)
{
    const char *id = msg_id ? msg_id : st->request_id ? st->request_id : "";
    return tg_buf_appendf(b, "chatcmpl-%.*s", MAX_MSG_ID_LEN, id);
}

/* A Messages answer as a chat.completion. */
static int chat_answer(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    tg_buf_t text = TG_BUF_INIT(64u << 20);
    tg_buf_t thinking = TG_BUF_INIT(64u << 20);
    tg_buf_t id = TG_BUF_INIT(512);
    tg_buf_t args = TG_BUF_INIT(64u << 20);
    json_t *calls = json_array();
    json_t *resp = NULL;
    int rc = calls ? 0 : TG_ENOMEM;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(root, "content"), i, b)
    {
        if (rc != 0)
            break;
        const json_t *type = json_object_get(b, "type");
        if (dp_json_str_eq(type, "text") && json_is_string(json_object_get(b, "text"))) {
            const json_t *t = json_object_get(b, "text");
            rc = tg_buf_append(&text, json_string_value(t), json_string_length(t));
        } else if (dp_json_str_eq(type, "thinking") &&
                   json_is_string(json_object_get(b, "thinking"))) {
            const json_t *t = json_object_get(b, "thinking");
            rc = tg_buf_append(&thinking, json_string_value(t), json_string_length(t));
        } else if (dp_json_str_eq(type, "tool_use")) {
            rc = dp_json_push(calls, dp_openai_tool_call_json(json_object_get(b, "id"),
                                                              json_object_get(b, "name"),
                                                              json_object_get(b, "input"), &args));
        }
    }
    const json_t *mid = json_object_get(root, "id");
    if (rc == 0)
        rc = append_chat_id(&id, st, json_is_string(mid) ? json_string_value(mid) : NULL);
    if (rc == 0)
        rc = tg_buf_append(&id, "", 1);
    json_t *msg = NULL;
    if (rc == 0) {
        msg = dp_openai_message_json(text.base, text.len,
                                     text.len > 0 || json_array_size(calls) == 0, calls);
        if (msg && thinking.len > 0 &&
            dp_json_set(msg, "reasoning_content", json_stringn(thinking.base, thinking.len)) != 0)
            rc = TG_ENOMEM;
    }
    anth_usage_t u = {0};
    usage_merge(&u, json_object_get(root, "usage"));
    usage_store(st, &u);
    if (rc == 0 && msg) {
        json_t *choice =
            dp_openai_choice_json(0, msg, finish_reason(json_object_get(root, "stop_reason")));
        msg = NULL; /* taken */
        resp = dp_openai_completion_json(st, id.base, model_name(st, root),
                                         choice ? json_pack("[o]", choice) : NULL);
        /* st->usage holds u now (usage_store) */
        if (resp && u.seen &&
            dp_json_set(resp, "usage", dp_openai_usage_json(&st->usage, false)) != 0)
            rc = TG_ENOMEM;
    }
    if (rc == 0 && (!resp || dp_json_append(out, resp) != 0))
        rc = TG_ENOMEM;
    json_decref(resp);
    json_decref(msg);
    json_decref(calls);
    tg_buf_dispose(&text);
    tg_buf_dispose(&thinking);
    tg_buf_dispose(&id);
    tg_buf_dispose(&args);
    return rc;
}

static int anthropic_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                              tg_buf_t *out)
{
    bool ok = status >= 200 && status < 300;
    if (st->endpoint == DP_EP_MESSAGES) {
        /* the client speaks Messages: it gets the answer as it is, errors included */
        if (ok) {
            json_t *root = json_loadb(body, n, 0, NULL);
            anth_usage_t u = {0};
            usage_merge(&u, json_object_get(root, "usage"));
            usage_store(st, &u);
            json_decref(root);
        }
        return DP_RESP_PASS;
    }
    if (!ok)
        return error_to_openai(status, body, n, out) == 0 ? DP_RESP_OUT : TG_ENOMEM;
    json_t *root = json_loadb(body, n, 0, NULL);
    int rc = TG_EUPSTREAM;
    if (json_is_object(root) && json_is_array(json_object_get(root, "content")))
        rc = chat_answer(st, root, out);
    json_decref(root);
    return rc == 0 ? DP_RESP_OUT : rc;
}

/* ------------------------------------------------------------------------------- streams */

/* What a stream has shown so far (st->priv). */
typedef struct anth_stream {
    tg_buf_t prefix;  /* `data: {"id":...,"choices":[`: the start of every chunk */
    bool role_sent;   /* the first chunk (role) went out */
    bool finish_sent; /* the finish_reason chunk went out */
    int ntools;       /* tool calls started: the next OpenAI tool_calls index */
    int *block_tool;  /* per Anthropic block index: its tool_calls index, or -1 */
    size_t nblocks;
    anth_usage_t usage;
} anth_stream_t;

static void anth_stream_free(void *p)
{
    anth_stream_t *a = p;
    tg_buf_dispose(&a->prefix);
    free(a->block_tool);
    free(a);
}

static anth_stream_t *stream_priv(dp_stream_state_t *st)
{
    if (st->priv)
        return st->priv;
    anth_stream_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    tg_buf_init(&a->prefix, 8192);
    st->priv = a;
    st->priv_free = anth_stream_free;
    return a;
}

static int build_prefix(anth_stream_t *a, const dp_stream_state_t *st, const char *msg_id)
{
    tg_buf_t *p = &a->prefix;
    tg_buf_t id = TG_BUF_INIT(512);
    const char *model = dp_stream_model(st);
    tg_buf_reset(p);
    int rc = append_chat_id(&id, st, msg_id);
    if (rc == 0)
        rc = dp_str_append(p, "data: {\"id\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(p, id.base, id.len);
    if (rc == 0)
        rc = tg_buf_appendf(p, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                            (long long)st->created);
    if (rc == 0)
        rc = tg_buf_append_json_str(p, model, strlen(model));
    if (rc == 0)
        rc = dp_str_append(p, ",\"choices\":[");
    if (rc != 0)
        tg_buf_reset(p);
    tg_buf_dispose(&id);
    return rc;
}

/* Chunks are written whole or not at all: each emitter rolls out back on failure. */
static int chunk_open(anth_stream_t *a, const dp_stream_state_t *st, tg_buf_t *out)
{
    int rc = a->prefix.len == 0 ? build_prefix(a, st, NULL) : 0;
    if (rc == 0)
        rc = tg_buf_append(out, a->prefix.base, a->prefix.len);
    if (rc == 0)
        rc = dp_str_append(out, "{\"index\":0,\"delta\":{");
    return rc;
}

static int chunk_close(tg_buf_t *out, const char *finish)
{
    if (finish)
        return tg_buf_appendf(out, "},\"finish_reason\":\"%s\"}]}\n\n", finish);
    return dp_str_append(out, "},\"finish_reason\":null}]}\n\n");
}

static int emit_role(anth_stream_t *a, const dp_stream_state_t *st, tg_buf_t *out)
{
    if (a->role_sent)
        return 0;
    size_t mark = out->len;
    int rc = chunk_open(a, st, out);
    if (rc == 0)
        rc = dp_str_append(out, "\"role\":\"assistant\",\"content\":\"\"");
    if (rc == 0)
        rc = chunk_close(out, NULL);
    if (rc != 0)
        out->len = mark;
    else
        a->role_sent = true;
    return rc;
}

/* A chunk whose delta is {"<field>": text}: content or reasoning_content. */
static int emit_text(anth_stream_t *a, dp_stream_state_t *st, const char *field, const json_t *t,
                     tg_buf_t *out)
{
    if (!json_is_string(t) || json_string_length(t) == 0)
        return 0;
    int rc = emit_role(a, st, out);
    size_t mark = out->len;
    if (rc == 0)
        rc = chunk_open(a, st, out);
    if (rc == 0)
        rc = tg_buf_appendf(out, "\"%s\":", field);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, json_string_value(t), json_string_length(t));
    if (rc == 0)
        rc = chunk_close(out, NULL);
    if (rc != 0)
        out->len = mark;
    else
        st->content_events++;
    return rc;
}

/* The first chunk of a tool call carries its id and name; later ones argument fragments. */
static int emit_tool(anth_stream_t *a, dp_stream_state_t *st, int index, const json_t *id,
                     const json_t *name, const char *args, size_t argsn, tg_buf_t *out)
{
    int rc = emit_role(a, st, out);
    size_t mark = out->len;
    if (rc == 0)
        rc = chunk_open(a, st, out);
    if (rc == 0)
        rc = tg_buf_appendf(out, "\"tool_calls\":[{\"index\":%d,", index);
    if (rc == 0 && name) {
        const char *ids = json_is_string(id) ? json_string_value(id) : "";
        rc = dp_str_append(out, "\"id\":");
        if (rc == 0)
            rc = tg_buf_append_json_str(out, ids, json_is_string(id) ? json_string_length(id) : 0);
        if (rc == 0)
            rc = dp_str_append(out, ",\"type\":\"function\",\"function\":{\"name\":");
        if (rc == 0)
            rc = tg_buf_append_json_str(out, json_string_value(name), json_string_length(name));
        if (rc == 0)
            rc = dp_str_append(out, ",");
    } else if (rc == 0) {
        rc = dp_str_append(out, "\"function\":{");
    }
    if (rc == 0)
        rc = dp_str_append(out, "\"arguments\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, args, argsn);
    if (rc == 0)
        rc = dp_str_append(out, "}}]");
    if (rc == 0)
        rc = chunk_close(out, NULL);
    if (rc != 0)
        out->len = mark;
    else
        st->content_events++;
    return rc;
}

static int emit_finish(anth_stream_t *a, const dp_stream_state_t *st, const char *reason,
                       tg_buf_t *out)
{
    if (a->finish_sent)
        return 0;
    size_t mark = out->len;
    int rc = chunk_open(a, st, out);
    if (rc == 0)
        rc = chunk_close(out, reason);
    if (rc != 0)
        out->len = mark;
    else
        a->finish_sent = true;
    return rc;
}

static int emit_usage(anth_stream_t *a, const dp_stream_state_t *st, tg_buf_t *out)
{
    const anth_usage_t *u = &a->usage;
    long long prompt = (long long)(u->input + u->cache_read + u->cache_write);
    size_t mark = out->len;
    int rc = a->prefix.len == 0 ? build_prefix(a, st, NULL) : 0;
    if (rc == 0)
        rc = tg_buf_append(out, a->prefix.base, a->prefix.len);
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            "],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                            "\"total_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":"
                            "%lld}}}\n\n",
                            prompt, (long long)u->output, prompt + (long long)u->output,
                            (long long)u->cache_read);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* Remembers what Anthropic block index holds: a tool call's index, or -1. */
static int set_block(anth_stream_t *a, const json_t *index, int tool)
{
    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        json_integer_value(index) >= MAX_BLOCKS)
        return TG_EUPSTREAM;
    size_t i = (size_t)json_integer_value(index);
    if (i >= a->nblocks) {
        int *nb = realloc(a->block_tool, (i + 1) * sizeof(*nb));
        if (!nb)
            return TG_ENOMEM;
        for (size_t j = a->nblocks; j <= i; j++)
            nb[j] = -1;
        a->block_tool = nb;
        a->nblocks = i + 1;
    }
    a->block_tool[i] = tool;
    return 0;
}

static int block_tool(const anth_stream_t *a, const json_t *index)
{
    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        (size_t)json_integer_value(index) >= a->nblocks)
        return -1;
    return a->block_tool[json_integer_value(index)];
}

static int on_block_start(anth_stream_t *a, dp_stream_state_t *st, const json_t *ev, tg_buf_t *out)
{
    const json_t *block = json_object_get(ev, "content_block");
    const json_t *type = json_object_get(block, "type");
    bool tool = dp_json_str_eq(type, "tool_use");
    int rc = set_block(a, json_object_get(ev, "index"), tool ? a->ntools : -1);
    if (rc != 0 || !tool)
        return rc == 0 && dp_json_str_eq(type, "text")
                   ? emit_text(a, st, "content", json_object_get(block, "text"), out)
                   : rc;
    const json_t *name = json_object_get(block, "name");
    if (!json_is_string(name))
        return TG_EUPSTREAM;
    /* input is {} when streamed; a proxy that sends it whole gets it forwarded whole */
    tg_buf_t args = TG_BUF_INIT(64u << 20);
    const json_t *input = json_object_get(block, "input");
    if (json_object_size(input) > 0)
        rc = dp_json_append(&args, input);
    if (rc == 0)
        rc = emit_tool(a, st, a->ntools, json_object_get(block, "id"), name,
                       args.base ? args.base : "", args.len, out);
    tg_buf_dispose(&args);
    if (rc == 0)
        a->ntools++;
    return rc;
}

static int on_block_delta(anth_stream_t *a, dp_stream_state_t *st, const json_t *ev, tg_buf_t *out)
{
    const json_t *delta = json_object_get(ev, "delta");
    const json_t *type = json_object_get(delta, "type");
    if (dp_json_str_eq(type, "text_delta"))
        return emit_text(a, st, "content", json_object_get(delta, "text"), out);
    if (dp_json_str_eq(type, "thinking_delta"))
        return emit_text(a, st, "reasoning_content", json_object_get(delta, "thinking"), out);
    if (dp_json_str_eq(type, "input_json_delta")) {
        int tool = block_tool(a, json_object_get(ev, "index"));
        const json_t *pj = json_object_get(delta, "partial_json");
        if (tool < 0 || !json_is_string(pj) || json_string_length(pj) == 0)
            return 0;
        return emit_tool(a, st, tool, NULL, NULL, json_string_value(pj), json_string_length(pj),
                         out);
    }
    return 0; /* signature_delta, citations_delta: nothing OpenAI's chunks can carry */
}

static int on_message_stop(anth_stream_t *a, dp_stream_state_t *st, tg_buf_t *out)
{
    int rc = emit_role(a, st, out);
    if (rc == 0)
        rc = emit_finish(a, st, "stop", out);
    if (rc == 0 && st->client_wants_usage && a->usage.seen)
        rc = emit_usage(a, st, out);
    if (rc == 0)
        rc = dp_sse_append_done(st, out);
    return rc;
}

static int on_error_event(const json_t *ev, tg_buf_t *out)
{
    const json_t *e = json_object_get(ev, "error");
    const json_t *msg = json_object_get(e, "message");
    const json_t *type = json_object_get(e, "type");
    return dp_sse_append_error(out, status_for_error_type(type),
                               json_is_string(msg) ? json_string_value(msg) : "provider error",
                               json_is_string(msg) ? json_string_length(msg) : 14,
                               json_is_string(type) ? json_string_value(type) : NULL);
}

/* One Anthropic event -> the OpenAI chunks it makes. */
static int translate_event(dp_stream_state_t *st, anth_stream_t *a, const json_t *ev, tg_buf_t *out)
{
    const json_t *type = json_object_get(ev, "type");
    if (dp_json_str_eq(type, "content_block_delta"))
        return on_block_delta(a, st, ev, out);
    if (dp_json_str_eq(type, "content_block_start"))
        return on_block_start(a, st, ev, out);
    if (dp_json_str_eq(type, "message_start")) {
        const json_t *msg = json_object_get(ev, "message");
        const json_t *id = json_object_get(msg, "id");
        int rc = build_prefix(a, st, json_is_string(id) ? json_string_value(id) : NULL);
        usage_merge(&a->usage, json_object_get(msg, "usage"));
        usage_store(st, &a->usage);
        return rc == 0 ? emit_role(a, st, out) : rc;
    }
    if (dp_json_str_eq(type, "message_delta")) {
        usage_merge(&a->usage, json_object_get(ev, "usage"));
        usage_store(st, &a->usage);
        const json_t *sr = json_object_get(json_object_get(ev, "delta"), "stop_reason");
        if (!json_is_string(sr))
            return 0;
        int rc = emit_role(a, st, out);
        return rc == 0 ? emit_finish(a, st, finish_reason(sr), out) : rc;
    }
    if (dp_json_str_eq(type, "message_stop"))
        return on_message_stop(a, st, out);
    if (dp_json_str_eq(type, "error"))
        return on_error_event(ev, out);
    return 0; /* ping, content_block_stop, and events added later */
}

/* Native Messages stream: forwarded as it is; usage read from message_start and message_delta. */
static void native_event(dp_stream_state_t *st, anth_stream_t *a, const char *ev, size_t n)
{
    const char *data;
    size_t len;
    if (!dp_sse_data(ev, n, &st->data_scratch, &data, &len))
        return;
    /* most events are deltas: count them without parsing */
    if (tg_memmem(data, len < 64 ? len : 64, "\"content_block_delta\"", 21)) {
        st->content_events++;
        return;
    }
    if (!tg_memmem(data, len, "\"message_", 9))
        return;
    json_t *root = json_loadb(data, len, 0, NULL);
    const json_t *type = json_object_get(root, "type");
    if (dp_json_str_eq(type, "message_start"))
        usage_merge(&a->usage, json_object_get(json_object_get(root, "message"), "usage"));
    else if (dp_json_str_eq(type, "message_delta"))
        usage_merge(&a->usage, json_object_get(root, "usage"));
    else if (dp_json_str_eq(type, "message_stop"))
        st->done = true;
    usage_store(st, &a->usage);
    json_decref(root);
}

typedef struct feed_ctx {
    dp_stream_state_t *st;
    anth_stream_t *a;
    tg_buf_t *out;
} feed_ctx_t;

static int on_sse_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    dp_stream_state_t *st = f->st;
    if (st->endpoint == DP_EP_MESSAGES) {
        native_event(st, f->a, ev, n);
        return tg_buf_append(f->out, ev, n);
    }
    if (st->done)
        return 0; /* nothing follows [DONE] */
    const char *data;
    size_t len;
    if (!dp_sse_data(ev, n, &st->data_scratch, &data, &len))
        return 0; /* comments and keep-alives */
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return TG_EUPSTREAM; /* content we cannot read must not vanish silently */
    }
    int rc = translate_event(st, f->a, root, f->out);
    json_decref(root);
    return rc;
}

static int anthropic_stream_feed(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out)
{
    anth_stream_t *a = stream_priv(st);
    if (!a)
        return TG_ENOMEM;
    feed_ctx_t f = {st, a, out};
    return dp_sse_feed(&st->sse, p, n, on_sse_event, &f);
}

static int anthropic_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out)
{
    if (dp_sse_pending(&st->sse) == 0)
        return 0;
    if (st->endpoint == DP_EP_MESSAGES) {
        anth_stream_t *a = stream_priv(st);
        if (a && complete)
            native_event(st, a, st->sse.partial.base, st->sse.partial.len);
        return tg_buf_append(out, st->sse.partial.base, st->sse.partial.len);
    }
    /* an upstream that closed cleanly after a last event without its blank line: that event is
     * whole; after a cut it may not be, and is dropped */
    if (!complete)
        return 0;
    return anthropic_stream_feed(st, "\n\n", 2, out);
}

const dp_provider_ops_t dp_provider_anthropic = {
    .kind = "anthropic",
    .stream_content_type = "text/event-stream",
    .native_messages = true,
    .build = anthropic_build,
    .response = anthropic_response,
    .stream_feed = anthropic_stream_feed,
    .stream_end = anthropic_stream_end,
};

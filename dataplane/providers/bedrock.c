/* bedrock.c: AWS Bedrock's runtime API (base_url like
 * https://bedrock-runtime.us-east-1.amazonaws.com), SigV4-signed. OpenAI chat bodies become
 * Converse requests (POST /model/{modelId}/converse, streams: /converse-stream), answers and the
 * binary event stream become OpenAI chat completions and chunks, and embeddings go through
 * InvokeModel for Titan and Cohere models. Pure; runs on the request's loop thread. */
#include "provider.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventstream.h"
#include "sigv4.h"

#include "tg_banned.h"

#define BR_SERVICE "bedrock"
/* One event-stream message; Bedrock's are a few hundred bytes. */
#define BR_MAX_MESSAGE (16u << 20)
/* Part of a non-JSON error body kept as the client's message. */
#define BR_MAX_RAW_ERROR 512
/* Tool-use blocks open at once in a stream (Bedrock sends them one after another). */
#define BR_MAX_OPEN_TOOLS 64

/* ---- small JSON helpers ---- */

/* Sets o[k] = v, taking v (NULL from a failed constructor is out of memory). */
static int jset(json_t *o, const char *k, json_t *v)
{
    if (!v)
        return TG_ENOMEM;
    return json_object_set_new(o, k, v) == 0 ? 0 : TG_ENOMEM;
}

static int jpush(json_t *a, json_t *v)
{
    if (!v)
        return TG_ENOMEM;
    return json_array_append_new(a, v) == 0 ? 0 : TG_ENOMEM;
}

/* A JSON string equals a literal (network data: no strcmp). */
static bool jstr_eq(const json_t *s, const char *lit)
{
    return json_is_string(s) &&
           tg_mem_eq(json_string_value(s), json_string_length(s), lit, strlen(lit));
}

static bool has_prefix(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(s, lit, l) == 0;
}

static int bad(tg_err_t *err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(tg_err_t *err, const char *param, const char *fmt, ...)
{
    char msg[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tg_err_set(err, TG_EINVAL, 400, "%s", msg);
    err->param = param;
    return TG_EINVAL;
}

/* A build that failed on memory or the body limit (rc), as the client sees it. */
static int nomem(tg_err_t *err, int rc)
{
    if (rc == TG_ETOOBIG) {
        tg_err_set(err, TG_ETOOBIG, 413, "could not build the upstream request: it is too large");
        return TG_ETOOBIG;
    }
    tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
    return TG_ENOMEM;
}

/* ---- request: OpenAI chat -> Converse ---- */

typedef struct br_req {
    json_t *messages; /* Message[]: user and assistant turns, same roles merged */
    json_t *system;   /* SystemContentBlock[] */
    tg_err_t *err;
} br_req_t;

/* Appends {"text": s} unless s is empty: Bedrock refuses blank text blocks. */
static int text_block(json_t *blocks, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    return jpush(blocks, json_pack("{s:s%}", "text", s, n));
}

/* data:image/png;base64,... -> {"image":{"format":"png","source":{"bytes":"..."}}}. Bedrock takes
 * the bytes themselves, so an http(s) URL cannot be sent. */
static int image_block(br_req_t *r, json_t *blocks, const char *u, size_t n, size_t mi)
{
    static const struct {
        const char *mime, *format;
    } formats[] = {{"image/png", "png"},
                   {"image/jpeg", "jpeg"},
                   {"image/jpg", "jpeg"},
                   {"image/gif", "gif"},
                   {"image/webp", "webp"}};
    if (!has_prefix(u, n, "data:"))
        return bad(r->err, "messages",
                   "messages[%zu]: image URLs cannot be sent to bedrock, which needs the image "
                   "bytes: use a data: URL",
                   mi);
    const char *comma = memchr(u, ',', n);
    const char *b64 = comma ? tg_memmem(u, (size_t)(comma - u), ";base64", 7) : NULL;
    if (!b64)
        return bad(r->err, "messages", "messages[%zu]: only base64 data URLs are supported", mi);
    const char *mime = u + 5;
    size_t mlen = (size_t)(b64 - mime);
    const char *semi = memchr(mime, ';', mlen);
    if (semi)
        mlen = (size_t)(semi - mime);
    const char *format = NULL;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (tg_mem_caseeq(mime, mlen, formats[i].mime, strlen(formats[i].mime)))
            format = formats[i].format;
    if (!format)
        return bad(r->err, "messages",
                   "messages[%zu]: image type \"%.*s\" is not supported by bedrock (png, jpeg, "
                   "gif, webp)",
                   mi, (int)(mlen > 64 ? 64 : mlen), mime);
    const char *data = comma + 1;
    size_t dlen = n - (size_t)(data - u);
    if (dlen == 0)
        return bad(r->err, "messages", "messages[%zu]: the image data URL is empty", mi);
    return jpush(blocks, json_pack("{s:{s:s,s:{s:s%}}}", "image", "format", format, "source",
                                   "bytes", data, dlen));
}

/* The text of a content that may only hold text (system, tool results): a string, or an array
 * of text parts, joined. */
static int content_text(br_req_t *r, size_t mi, const json_t *content, tg_buf_t *out)
{
    if (json_is_string(content))
        return tg_buf_append(out, json_string_value(content), json_string_length(content));
    if (json_is_null(content))
        return 0;
    if (!json_is_array(content))
        return bad(r->err, "messages", "messages[%zu].content must be a string or an array", mi);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const json_t *text = json_object_get(part, "text");
        if (!jstr_eq(json_object_get(part, "type"), "text") || !json_is_string(text))
            return bad(r->err, "messages", "messages[%zu].content[%zu] must be a text part", mi, i);
        int rc = tg_buf_append(out, json_string_value(text), json_string_length(text));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* User or assistant content: a string, or an array of text (and, for users, image) parts. */
static int content_blocks(br_req_t *r, size_t mi, const json_t *content, bool images,
                          json_t *blocks)
{
    if (json_is_string(content))
        return text_block(blocks, json_string_value(content), json_string_length(content));
    if (json_is_null(content) || !content)
        return 0;
    if (!json_is_array(content))
        return bad(r->err, "messages", "messages[%zu].content must be a string or an array", mi);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const json_t *type = json_object_get(part, "type");
        int rc;
        if (jstr_eq(type, "text")) {
            const json_t *text = json_object_get(part, "text");
            if (!json_is_string(text))
                return bad(r->err, "messages", "messages[%zu].content[%zu].text must be a string",
                           mi, i);
            rc = text_block(blocks, json_string_value(text), json_string_length(text));
        } else if (images && jstr_eq(type, "image_url")) {
            const json_t *iu = json_object_get(part, "image_url");
            const json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
            if (!json_is_string(url))
                return bad(r->err, "messages",
                           "messages[%zu].content[%zu].image_url.url must be a string", mi, i);
            rc = image_block(r, blocks, json_string_value(url), json_string_length(url), mi);
        } else {
            return bad(r->err, "messages",
                       "messages[%zu].content[%zu]: content part type \"%s\" is not supported "
                       "by bedrock",
                       mi, i, json_is_string(type) ? json_string_value(type) : "?");
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Adds a turn, merged into the previous one when the role is the same: Converse wants user and
 * assistant turns to alternate. Takes blocks. */
static int add_turn(br_req_t *r, const char *role, json_t *blocks)
{
    if (!blocks)
        return TG_ENOMEM;
    int rc = 0;
    size_t n = json_array_size(r->messages);
    json_t *last = n > 0 ? json_array_get(r->messages, n - 1) : NULL;
    if (json_array_size(blocks) == 0) {
        /* nothing to send: an empty turn would be refused */
    } else if (last && jstr_eq(json_object_get(last, "role"), role)) {
        rc = json_array_extend(json_object_get(last, "content"), blocks) == 0 ? 0 : TG_ENOMEM;
    } else {
        rc = jpush(r->messages, json_pack("{s:s,s:O}", "role", role, "content", blocks));
    }
    json_decref(blocks);
    return rc;
}

/* An assistant turn's tool_calls -> toolUse blocks; arguments must be JSON. */
static int tool_use_blocks(br_req_t *r, size_t mi, const json_t *calls, json_t *blocks)
{
    if (!json_is_array(calls))
        return bad(r->err, "messages", "messages[%zu].tool_calls must be an array", mi);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        const json_t *id = json_object_get(tc, "id");
        const json_t *fn = json_object_get(tc, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(id) || json_string_length(id) == 0 || !json_is_string(name))
            return bad(r->err, "messages",
                       "messages[%zu].tool_calls[%zu] needs an id and a function name", mi, i);
        json_t *input = NULL;
        if (json_is_string(args)) {
            const char *a = json_string_value(args);
            size_t an = json_string_length(args);
            size_t k = 0;
            while (k < an && (a[k] == ' ' || a[k] == '\t' || a[k] == '\n' || a[k] == '\r'))
                k++;
            input = k == an ? json_object() : json_loadb(a, an, JSON_DECODE_ANY, NULL);
            if (!input)
                return bad(r->err, "messages",
                           "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON", mi,
                           i);
        } else if (json_is_object(args)) {
            input = json_incref((json_t *)args);
        } else if (!args || json_is_null(args)) {
            input = json_object();
        } else {
            return bad(r->err, "messages",
                       "messages[%zu].tool_calls[%zu].function.arguments must be a string", mi, i);
        }
        int rc = jpush(blocks, json_pack("{s:{s:O,s:O,s:o}}", "toolUse", "toolUseId", id, "name",
                                         name, "input", input));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A tool message -> a user turn's toolResult block. JSON object results go as {"json"}, anything
 * else as {"text"}. */
static int tool_result(br_req_t *r, size_t mi, const json_t *m)
{
    const json_t *id = json_object_get(m, "tool_call_id");
    if (!json_is_string(id) || json_string_length(id) == 0)
        return bad(r->err, "messages", "messages[%zu].tool_call_id is required", mi);
    tg_buf_t text = TG_BUF_INIT(64u << 20);
    int rc = content_text(r, mi, json_object_get(m, "content"), &text);
    json_t *item = NULL;
    if (rc == 0) {
        json_t *j = text.len ? json_loadb(text.base, text.len, 0, NULL) : NULL;
        if (json_is_object(j))
            item = json_pack("{s:o}", "json", j);
        else
            item = json_pack("{s:s%}", "text", text.base ? text.base : "", text.len);
        if (!json_is_object(j))
            json_decref(j);
    }
    tg_buf_dispose(&text);
    if (rc != 0)
        return rc;
    if (!item)
        return TG_ENOMEM;
    json_t *blocks = json_pack("[{s:{s:O,s:[o]}}]", "toolResult", "toolUseId", id, "content", item);
    return add_turn(r, "user", blocks);
}

static int translate_message(br_req_t *r, size_t mi, const json_t *m)
{
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m) || !json_is_string(role))
        return bad(r->err, "messages", "messages[%zu] needs a role", mi);
    if (jstr_eq(role, "system") || jstr_eq(role, "developer")) {
        tg_buf_t text = TG_BUF_INIT(64u << 20);
        int rc = content_text(r, mi, content, &text);
        if (rc == 0)
            rc = text_block(r->system, text.base, text.len);
        tg_buf_dispose(&text);
        return rc;
    }
    if (jstr_eq(role, "tool"))
        return tool_result(r, mi, m);
    bool user = jstr_eq(role, "user");
    if (!user && !jstr_eq(role, "assistant"))
        return bad(r->err, "messages", "messages[%zu]: role \"%s\" is not supported by bedrock", mi,
                   json_string_value(role));
    json_t *blocks = json_array();
    if (!blocks)
        return TG_ENOMEM;
    int rc = content_blocks(r, mi, content, user, blocks);
    const json_t *calls = json_object_get(m, "tool_calls");
    if (rc == 0 && !user && calls && !json_is_null(calls))
        rc = tool_use_blocks(r, mi, calls, blocks);
    if (rc != 0) {
        json_decref(blocks);
        return rc;
    }
    return add_turn(r, user ? "user" : "assistant", blocks);
}

/* tools and tool_choice -> toolConfig; tool_choice "none" sends no tools at all. */
static int translate_tools(br_req_t *r, const json_t *root, json_t *req)
{
    const json_t *tools = json_object_get(root, "tools");
    const json_t *choice = json_object_get(root, "tool_choice");
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return bad(r->err, "tools", "tools must be an array");
    if (json_array_size(tools) == 0 || jstr_eq(choice, "none"))
        return 0;
    json_t *specs = json_array();
    json_t *cfg = json_pack("{s:o}", "tools", specs);
    if (!specs || !cfg) {
        json_decref(cfg);
        return TG_ENOMEM;
    }
    int rc = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        if (!jstr_eq(json_object_get(t, "type"), "function") || !json_is_string(name)) {
            rc = bad(r->err, "tools", "tools[%zu] must be a function with a name", i);
            break;
        }
        json_t *schema = json_is_object(params)
                             ? json_incref((json_t *)params)
                             : json_pack("{s:s,s:{}}", "type", "object", "properties");
        json_t *spec = json_pack("{s:O,s:{s:o}}", "name", name, "inputSchema", "json", schema);
        if (spec && json_is_string(desc) && json_string_length(desc) > 0)
            rc = jset(spec, "description", json_incref((json_t *)desc));
        if (rc == 0)
            rc = jpush(specs, json_pack("{s:o}", "toolSpec", spec));
        else
            json_decref(spec);
        if (rc != 0)
            break;
    }
    if (rc == 0 && choice && !json_is_null(choice)) {
        json_t *tc = NULL;
        const json_t *cname = json_object_get(json_object_get(choice, "function"), "name");
        if (jstr_eq(choice, "auto"))
            tc = json_pack("{s:{}}", "auto");
        else if (jstr_eq(choice, "required"))
            tc = json_pack("{s:{}}", "any");
        else if (json_is_object(choice) && json_is_string(cname))
            tc = json_pack("{s:{s:O}}", "tool", "name", cname);
        else
            rc = bad(r->err, "tool_choice",
                     "tool_choice must be \"auto\", \"required\", \"none\" or a function");
        if (rc == 0)
            rc = jset(cfg, "toolChoice", tc);
    }
    if (rc == 0)
        return jset(req, "toolConfig", cfg);
    json_decref(cfg);
    return rc;
}

static int translate_inference(br_req_t *r, const json_t *root, json_t *req)
{
    json_t *ic = json_object();
    if (!ic)
        return TG_ENOMEM;
    int rc = 0;
    const json_t *mt = json_object_get(root, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(root, "max_tokens");
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1 ||
            json_integer_value(mt) > INT32_MAX)
            rc = bad(r->err, "max_tokens", "max_tokens must be a positive integer");
        else
            rc = jset(ic, "maxTokens", json_integer(json_integer_value(mt)));
    }
    static const struct {
        const char *from, *to;
    } nums[] = {{"temperature", "temperature"}, {"top_p", "topP"}};
    for (size_t i = 0; rc == 0 && i < sizeof(nums) / sizeof(nums[0]); i++) {
        const json_t *v = json_object_get(root, nums[i].from);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_number(v))
            rc = bad(r->err, nums[i].from, "%s must be a number", nums[i].from);
        else
            rc = jset(ic, nums[i].to, json_real(json_number_value(v)));
    }
    const json_t *stop = json_object_get(root, "stop");
    if (rc == 0 && json_is_string(stop)) {
        rc = jset(ic, "stopSequences", json_pack("[O]", stop));
    } else if (rc == 0 && json_is_array(stop)) {
        size_t i;
        const json_t *s;
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s))
                rc = bad(r->err, "stop", "stop must be a string or an array of strings");
        }
        if (rc == 0 && json_array_size(stop) > 0)
            rc = jset(ic, "stopSequences", json_copy((json_t *)stop));
    } else if (rc == 0 && stop && !json_is_null(stop)) {
        rc = bad(r->err, "stop", "stop must be a string or an array of strings");
    }
    if (rc == 0 && json_object_size(ic) > 0)
        return jset(req, "inferenceConfig", ic);
    json_decref(ic);
    return rc;
}

static int build_chat_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    const json_t *root = c->body->root;
    const json_t *msgs = json_object_get(root, "messages");
    const json_t *n = json_object_get(root, "n");
    if (!json_is_array(msgs))
        return bad(err, "messages", "messages must be an array");
    if (json_is_integer(n) && json_integer_value(n) != 1)
        return bad(err, "n", "bedrock answers with one choice: n must be 1");
    br_req_t r = {.messages = json_array(), .system = json_array(), .err = err};
    json_t *req = json_object();
    int rc = r.messages && r.system && req ? 0 : TG_ENOMEM;
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (rc != 0)
            break;
        rc = translate_message(&r, i, m);
    }
    if (rc == 0 && json_array_size(r.messages) == 0)
        rc = bad(err, "messages", "messages must hold at least one user or assistant message");
    if (rc == 0)
        rc = jset(req, "messages", json_incref(r.messages));
    if (rc == 0 && json_array_size(r.system) > 0)
        rc = jset(req, "system", json_incref(r.system));
    if (rc == 0)
        rc = translate_inference(&r, root, req);
    if (rc == 0)
        rc = translate_tools(&r, root, req);
    if (rc == 0)
        rc = dp_json_append(body, req);
    json_decref(r.messages);
    json_decref(r.system);
    json_decref(req);
    if (rc != 0 && rc != TG_EINVAL)
        return nomem(err, rc);
    return rc;
}

/* ---- request: embeddings -> InvokeModel (Titan, Cohere) ---- */

enum { BR_EMBED_NONE = 0, BR_EMBED_TITAN, BR_EMBED_COHERE };

/* The embedding family of a model id; inference profiles ("us.cohere...") and ARNs contain the
 * base model id. */
static int embed_family(const char *model)
{
    if (strstr(model, "amazon.titan-embed"))
        return BR_EMBED_TITAN;
    if (strstr(model, "cohere.embed"))
        return BR_EMBED_COHERE;
    return BR_EMBED_NONE;
}

static int build_embed_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    const json_t *root = c->body->root;
    const json_t *input = json_object_get(root, "input");
    int family = embed_family(c->model);
    if (family == BR_EMBED_NONE)
        return bad(err, "model",
                   "embeddings on bedrock need an amazon.titan-embed-* or cohere.embed-* model, "
                   "not \"%s\"",
                   c->model);
    json_t *texts = json_array();
    if (!texts)
        return nomem(err, TG_ENOMEM);
    int rc = 0;
    if (json_is_string(input)) {
        rc = jpush(texts, json_incref((json_t *)input));
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        const json_t *s;
        json_array_foreach(input, i, s)
        {
            if (!json_is_string(s)) {
                rc = bad(err, "input",
                         "bedrock embeddings take text: input must be a string or "
                         "an array of strings");
                break;
            }
            rc = jpush(texts, json_incref((json_t *)s));
            if (rc != 0)
                break;
        }
    } else {
        rc = bad(err, "input", "input must be a string or a non-empty array of strings");
    }
    if (rc == 0 && family == BR_EMBED_TITAN && json_array_size(texts) != 1)
        rc = bad(err, "input",
                 "titan embedding models take one input per request: send a single string");
    json_t *req = NULL;
    if (rc == 0 && family == BR_EMBED_TITAN) {
        req = json_pack("{s:O}", "inputText", json_array_get(texts, 0));
        const json_t *dims = json_object_get(root, "dimensions");
        if (req && json_is_integer(dims))
            rc = jset(req, "dimensions", json_integer(json_integer_value(dims)));
    } else if (rc == 0) {
        req = json_pack("{s:O,s:s}", "texts", texts, "input_type", "search_document");
    }
    if (rc == 0)
        rc = req ? dp_json_append(body, req) : TG_ENOMEM;
    json_decref(req);
    json_decref(texts);
    if (rc != 0 && rc != TG_EINVAL)
        return nomem(err, rc);
    return rc;
}

/* ---- signing and headers ---- */

/* The Host header curl sends for url (the port only when it is not the scheme's default) and
 * where the path starts. */
static int split_url(const char *url, tg_buf_t *host, size_t *path_off)
{
    const char *s = strstr(url, "://");
    if (!s)
        return TG_EINVAL;
    bool https = tg_mem_caseeq(url, (size_t)(s - url), "https", 5);
    const char *h = s + 3;
    size_t hn = strcspn(h, "/?#");
    if (hn == 0)
        return TG_EINVAL;
    const char *bracket = memchr(h, ']', hn);
    const char *from = bracket ? bracket : h;
    const char *colon = memchr(from, ':', hn - (size_t)(from - h));
    size_t keep = hn;
    if (colon) {
        const char *port = colon + 1;
        size_t pn = hn - (size_t)(port - h);
        if (tg_mem_eq(port, pn, https ? "443" : "80", https ? 3 : 2))
            keep = (size_t)(colon - h);
    }
    *path_off = (size_t)(h + hn - url);
    int rc = tg_buf_append(host, h, keep);
    return rc == 0 ? tg_buf_append(host, "", 1) : rc;
}

/* x-amz-date, x-amz-content-sha256, the session token and Authorization for the request to url
 * with body. */
static int sign_headers(const dp_call_t *c, const char *url, const tg_buf_t *body,
                        dp_header_add_fn add, void *ud, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    char date[17], hash[65];
    tg_buf_t host = TG_BUF_INIT(4096);
    tg_buf_t curi = TG_BUF_INIT(64u << 10);
    tg_buf_t auth = TG_BUF_INIT(8192);
    tg_buf_t line = TG_BUF_INIT(8192);
    size_t path_off = 0;
    dp_sigv4_amz_date(c->now_s, date);
    dp_sigv4_sha256_hex(body->base ? body->base : "", body->len, hash);
    int rc = split_url(url, &host, &path_off);
    if (rc == 0) {
        const char *path = url + path_off;
        rc = dp_sigv4_canonical_uri(&curi, path, strcspn(path, "?#"));
    }
    if (rc == 0)
        rc = tg_buf_append(&curi, "", 1);
    if (rc == 0) {
        dp_sigv4_header_t hs[5] = {{"content-type", "application/json"},
                                   {"host", host.base},
                                   {"x-amz-content-sha256", hash},
                                   {"x-amz-date", date},
                                   {"x-amz-security-token", p->aws_session_token}};
        bool token = p->aws_session_token && p->aws_session_token[0];
        dp_sigv4_req_t r = {.method = "POST",
                            .canonical_uri = curi.base,
                            .canonical_query = "",
                            .headers = hs,
                            .nheaders = token ? 5 : 4,
                            .payload_hash = hash,
                            .amz_date = date,
                            .region = p->region,
                            .service = BR_SERVICE,
                            .access_key_id = p->aws_access_key_id,
                            .secret_access_key = p->aws_secret_access_key};
        rc = dp_sigv4_authorization(&r, &auth);
        if (rc == 0)
            rc = tg_buf_appendf(&line, "x-amz-date: %s%c", date, '\0');
        if (rc == 0)
            rc = add(ud, line.base);
        tg_buf_reset(&line);
        if (rc == 0)
            rc = tg_buf_appendf(&line, "x-amz-content-sha256: %s%c", hash, '\0');
        if (rc == 0)
            rc = add(ud, line.base);
        if (rc == 0 && token)
            rc = dp_header_add_secret(add, ud, "x-amz-security-token", p->aws_session_token);
        if (rc == 0)
            rc = tg_buf_append(&auth, "", 1);
        if (rc == 0)
            rc = dp_header_add_secret(add, ud, "Authorization", auth.base);
    }
    if (rc == TG_EINVAL)
        tg_err_set(err, TG_EINVAL, 502,
                   "could not sign the request for provider \"%s\": check base_url, region and "
                   "the AWS keys",
                   p->id);
    else if (rc != 0)
        nomem(err, rc);
    tg_buf_dispose(&host);
    tg_buf_dispose(&curi);
    tg_buf_dispose(&auth);
    tg_buf_dispose(&line);
    return rc;
}

static int bedrock_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                         tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    const char *action;
    int rc;
    size_t mlen = strlen(c->model);
    if (!p->region || !p->aws_access_key_id || !p->aws_secret_access_key) {
        tg_err_set(err, TG_EINVAL, 502, "provider \"%s\" has no region or AWS keys", p->id);
        return TG_EINVAL;
    }
    if (mlen == 0 || tg_mem_eq(c->model, mlen, ".", 1) || tg_mem_eq(c->model, mlen, "..", 2))
        return bad(err, "model", "\"%s\" is not a bedrock model id", c->model);
    switch (c->endpoint) {
    case DP_EP_CHAT:
        action = c->body->stream ? "converse-stream" : "converse";
        rc = build_chat_body(c, body, err);
        break;
    case DP_EP_EMBEDDINGS:
        action = "invoke";
        rc = build_embed_body(c, body, err);
        break;
    default:
        return bad(err, NULL,
                   "the completions endpoint is not available on bedrock provider \"%s\": use "
                   "chat completions",
                   p->id);
    }
    if (rc != 0)
        return rc;
    rc = tg_buf_appendf(url, "%s/model/", p->base_url);
    if (rc == 0)
        rc = dp_url_append_segment(url, c->model, mlen);
    if (rc == 0)
        rc = tg_buf_appendf(url, "/%s%c", action, '\0');
    if (rc == 0)
        rc = add(ud, "Content-Type: application/json");
    if (rc == 0)
        rc = add(ud, c->endpoint == DP_EP_CHAT && c->body->stream
                         ? "Accept: application/vnd.amazon.eventstream"
                         : "Accept: application/json");
    if (rc == 0)
        rc = add(ud, "Expect:"); /* no 100-continue round trip for large bodies */
    for (size_t i = 0; rc == 0 && i < p->nheaders; i++)
        rc = add(ud, p->headers[i]);
    if (rc != 0)
        return nomem(err, rc);
    return sign_headers(c, url->base, body, add, ud, err);
}

/* ---- answers: Converse -> chat.completion ---- */

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* Converse's TokenUsage. inputTokens leaves out the cache reads and writes; OpenAI's
 * prompt_tokens counts them, with the reads as cached_tokens. */
static void usage_read(dp_usage_t *u, const json_t *tu)
{
    if (!json_is_object(tu))
        return;
    int64_t cread = jint(tu, "cacheReadInputTokens");
    u->prompt = jint(tu, "inputTokens") + cread + jint(tu, "cacheWriteInputTokens");
    u->completion = jint(tu, "outputTokens");
    u->cached = cread;
    u->reasoning = 0;
    u->total = u->prompt + u->completion;
    u->present = true;
}

static json_t *usage_json(const dp_usage_t *u)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt,
                     "completion_tokens", (json_int_t)u->completion, "total_tokens",
                     (json_int_t)u->total, "prompt_tokens_details", "cached_tokens",
                     (json_int_t)u->cached);
}

/* stopReason -> finish_reason. */
static const char *finish_map(const char *reason, size_t n)
{
    if (tg_mem_eq(reason, n, "max_tokens", 10))
        return "length";
    if (tg_mem_eq(reason, n, "tool_use", 8))
        return "tool_calls";
    if (tg_mem_eq(reason, n, "guardrail_intervened", 20) ||
        tg_mem_eq(reason, n, "content_filtered", 16))
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, and what Bedrock may add */
}

static const char *rid(const dp_stream_state_t *st)
{
    return st->request_id ? st->request_id : "";
}

static const char *model_name(const dp_stream_state_t *st)
{
    return st->model ? st->model : "";
}

static int chat_response(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    const json_t *msg = json_object_get(json_object_get(root, "output"), "message");
    const json_t *content = json_object_get(msg, "content");
    const json_t *reason = json_object_get(root, "stopReason");
    if (!json_is_object(msg) || !json_is_array(content))
        return TG_EUPSTREAM;
    usage_read(&st->usage, json_object_get(root, "usage"));
    tg_buf_t text = TG_BUF_INIT(64u << 20);
    tg_buf_t args = TG_BUF_INIT(64u << 20);
    tg_buf_t id = TG_BUF_INIT(4096);
    json_t *calls = json_array();
    json_t *res = NULL;
    bool has_text = false;
    int rc = calls ? tg_buf_appendf(&id, "chatcmpl-%s%c", rid(st), '\0') : TG_ENOMEM;
    size_t i;
    const json_t *b;
    json_array_foreach(content, i, b)
    {
        if (rc != 0)
            break;
        const json_t *t = json_object_get(b, "text");
        const json_t *tu = json_object_get(b, "toolUse");
        if (json_is_string(t)) {
            has_text = true;
            rc = tg_buf_append(&text, json_string_value(t), json_string_length(t));
        } else if (json_is_object(tu)) {
            const json_t *tid = json_object_get(tu, "toolUseId");
            const json_t *name = json_object_get(tu, "name");
            const json_t *input = json_object_get(tu, "input");
            if (!json_is_string(tid) || !json_is_string(name)) {
                rc = TG_EUPSTREAM;
                break;
            }
            tg_buf_reset(&args);
            rc = input ? dp_json_append(&args, input) : tg_buf_append(&args, "{}", 2);
            if (rc == 0)
                rc = jpush(calls,
                           json_pack("{s:O,s:s,s:{s:O,s:s%}}", "id", tid, "type", "function",
                                     "function", "name", name, "arguments", args.base, args.len));
        }
        /* reasoningContent, citations, images: OpenAI's message has no place for them */
    }
    if (rc == 0) {
        json_t *m = json_pack("{s:s}", "role", "assistant");
        if (m)
            rc = jset(m, "content",
                      has_text ? json_stringn(text.base ? text.base : "", text.len) : json_null());
        if (m && rc == 0 && json_array_size(calls) > 0)
            rc = jset(m, "tool_calls", json_incref(calls));
        const char *fr = json_is_string(reason)
                             ? finish_map(json_string_value(reason), json_string_length(reason))
                             : "stop";
        if (m && rc == 0)
            res =
                json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s}]}", "id", id.base, "object",
                          "chat.completion", "created", (json_int_t)st->created, "model",
                          model_name(st), "choices", "index", 0, "message", m, "finish_reason", fr);
        else
            json_decref(m);
        if (res && st->usage.present)
            rc = jset(res, "usage", usage_json(&st->usage));
        if (rc == 0)
            rc = res ? dp_json_append(out, res) : TG_ENOMEM;
    }
    json_decref(res);
    json_decref(calls);
    tg_buf_dispose(&text);
    tg_buf_dispose(&args);
    tg_buf_dispose(&id);
    return rc;
}

/* ---- answers: InvokeModel embeddings -> OpenAI's list ---- */

/* The client asked for `encoding_format: "base64"` (the openai SDK's default). */
static bool embed_base64(const dp_stream_state_t *st)
{
    return st->body && dp_embedding_wants_base64(st->body);
}

/* Titan: {"embedding":[...],"inputTextTokenCount":n}. Cohere: {"embeddings":[[...]]} or, with
 * embedding types, {"embeddings":{"float":[[...]]}}; Cohere reports no token count in the body,
 * so its usage is not present and the usage record estimates it from the request. */
static int embed_response(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    bool base64 = embed_base64(st);
    const json_t *list = json_object_get(root, "embeddings");
    const json_t *one = json_object_get(root, "embedding");
    if (json_is_object(list))
        list = json_object_get(list, "float");
    if (!json_is_array(one) && !json_is_array(list))
        return TG_EUPSTREAM;
    size_t n = json_is_array(one) ? 1 : json_array_size(list);
    if (json_is_array(one)) {
        int64_t tokens = jint(root, "inputTextTokenCount");
        st->usage.prompt = tokens;
        st->usage.total = tokens;
        st->usage.present = json_is_integer(json_object_get(root, "inputTextTokenCount"));
    }
    size_t mark = out->len;
    int rc = tg_buf_append(out, "{\"object\":\"list\",\"data\":[", 25);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *v = json_is_array(one) ? one : json_array_get(list, i);
        if (!json_is_array(v)) {
            rc = TG_EUPSTREAM;
            break;
        }
        rc = tg_buf_appendf(
            out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (rc == 0)
            rc = dp_embedding_append(out, v, base64);
        if (rc == 0)
            rc = tg_buf_append(out, "}", 1);
    }
    if (rc == 0)
        rc = tg_buf_append(out, "],\"model\":", 10);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, model_name(st), strlen(model_name(st)));
    if (rc == 0)
        rc = tg_buf_appendf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
                            (long long)st->usage.prompt, (long long)st->usage.total);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- errors ---- */

/* An exception name as the client's error code: "throttlingException" (an event stream's
 * :exception-type) or "com.amazon...#ThrottlingException:http://..." (a __type) becomes
 * "ThrottlingException". */
static void error_code(const char *s, size_t n, char *code, size_t cap)
{
    const char *hash = tg_memrmem(s, n, "#", 1);
    if (hash) {
        n -= (size_t)(hash + 1 - s);
        s = hash + 1;
    }
    const char *colon = memchr(s, ':', n);
    if (colon)
        n = (size_t)(colon - s);
    if (n >= cap)
        n = cap - 1;
    memcpy(code, s, n);
    code[n] = '\0';
    if (n > 0 && code[0] >= 'a' && code[0] <= 'z')
        code[0] = (char)(code[0] - 'a' + 'A');
}

/* An error answer ({"message": ...}, sometimes with "__type"; or not JSON at all) as an OpenAI
 * error object. */
static int error_append(tg_buf_t *out, int status, const json_t *root, const char *raw, size_t rawn)
{
    const json_t *msg = json_object_get(root, "message");
    if (!json_is_string(msg))
        msg = json_object_get(root, "Message");
    const json_t *type = json_object_get(root, "__type");
    char code[128];
    if (json_is_string(type))
        error_code(json_string_value(type), json_string_length(type), code, sizeof(code));
    const char *ecode = json_is_string(type) && code[0] ? code : NULL;
    if (json_is_string(msg))
        return dp_openai_error_append(out, json_string_value(msg), json_string_length(msg),
                                      dp_openai_error_type(status), ecode);
    if (rawn == 0) {
        char m[64];
        int k = snprintf(m, sizeof(m), "the provider answered with status %d", status);
        return dp_openai_error_append(out, m, k > 0 ? (size_t)k : 0, dp_openai_error_type(status),
                                      ecode);
    }
    return dp_openai_error_append(out, raw, rawn > BR_MAX_RAW_ERROR ? BR_MAX_RAW_ERROR : rawn,
                                  dp_openai_error_type(status), ecode);
}

static int bedrock_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                            tg_buf_t *out)
{
    json_t *root = json_loadb(body, n, 0, NULL);
    int rc;
    if (status < 200 || status >= 300)
        rc = error_append(out, status, root, body, n);
    else if (!json_is_object(root))
        rc = TG_EUPSTREAM;
    else if (st->endpoint == DP_EP_EMBEDDINGS)
        rc = embed_response(st, root, out);
    else
        rc = chat_response(st, root, out);
    json_decref(root);
    return rc == 0 ? DP_RESP_OUT : rc;
}

/* ---- streams: ConverseStream's event stream -> chat.completion.chunk ---- */

typedef struct br_stream {
    dp_es_t es;
    bool role_sent;
    bool finished; /* the finish chunk went out (messageStop) */
    bool metadata; /* the usage arrived */
    bool failed;   /* an exception went out as an error event: the stream is over */
    int ntools;    /* tool calls started: the next one's index */
    struct {
        int64_t block; /* contentBlockIndex */
        int index;     /* its tool call index */
    } open[BR_MAX_OPEN_TOOLS];
    size_t nopen;
    tg_buf_t id; /* "chatcmpl-<request id>", NUL-terminated */
} br_stream_t;

static void br_stream_free(void *p)
{
    br_stream_t *bs = p;
    dp_es_dispose(&bs->es);
    tg_buf_dispose(&bs->id);
    free(bs);
}

static br_stream_t *br_stream_get(dp_stream_state_t *st)
{
    if (st->priv)
        return st->priv;
    br_stream_t *bs = calloc(1, sizeof(*bs));
    if (!bs)
        return NULL;
    dp_es_init(&bs->es, BR_MAX_MESSAGE);
    tg_buf_init(&bs->id, 4096);
    if (tg_buf_appendf(&bs->id, "chatcmpl-%s%c", rid(st), '\0') != 0) {
        br_stream_free(bs);
        return NULL;
    }
    st->priv = bs;
    st->priv_free = br_stream_free;
    return bs;
}

typedef struct feed_ctx {
    dp_stream_state_t *st;
    br_stream_t *bs;
    tg_buf_t *out;
} feed_ctx_t;

/* One chunk with a delta (taken) and a finish reason (or NULL). */
static int put_chunk(feed_ctx_t *f, json_t *delta, const char *finish)
{
    if (!delta)
        return TG_ENOMEM;
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s?}]}", "id", f->bs->id.base, "object",
                          "chat.completion.chunk", "created", (json_int_t)f->st->created, "model",
                          model_name(f->st), "choices", "index", 0, "delta", delta, "finish_reason",
                          finish);
    int rc = c ? dp_sse_append_json(f->out, NULL, c) : TG_ENOMEM;
    json_decref(c);
    return rc;
}

static int ensure_role(feed_ctx_t *f)
{
    if (f->bs->role_sent)
        return 0;
    f->bs->role_sent = true;
    return put_chunk(f, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL);
}

/* The usage chunk (when the client asked and there is usage) and [DONE]. */
static int finish_stream(feed_ctx_t *f)
{
    int rc = 0;
    if (f->st->client_wants_usage && f->st->usage.present) {
        json_t *c =
            json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", f->bs->id.base, "object",
                      "chat.completion.chunk", "created", (json_int_t)f->st->created, "model",
                      model_name(f->st), "choices", "usage", usage_json(&f->st->usage));
        rc = c ? dp_sse_append_json(f->out, NULL, c) : TG_ENOMEM;
        json_decref(c);
    }
    return rc == 0 ? dp_sse_append_done(f->st, f->out) : rc;
}

/* The tool call index of a content block, or -1. */
static int tool_index(const br_stream_t *bs, int64_t block)
{
    for (size_t i = 0; i < bs->nopen; i++)
        if (bs->open[i].block == block)
            return bs->open[i].index;
    return -1;
}

static int open_tool(br_stream_t *bs, int64_t block)
{
    int idx = bs->ntools++;
    if (bs->nopen == BR_MAX_OPEN_TOOLS) /* forget the oldest: Bedrock closes blocks in order */
        memmove(&bs->open[0], &bs->open[1], sizeof(bs->open[0]) * (BR_MAX_OPEN_TOOLS - 1));
    else
        bs->nopen++;
    bs->open[bs->nopen - 1].block = block;
    bs->open[bs->nopen - 1].index = idx;
    return idx;
}

static void close_block(br_stream_t *bs, int64_t block)
{
    for (size_t i = 0; i < bs->nopen; i++) {
        if (bs->open[i].block == block) {
            memmove(&bs->open[i], &bs->open[i + 1], sizeof(bs->open[0]) * (bs->nopen - i - 1));
            bs->nopen--;
            return;
        }
    }
}

static int on_block_start(feed_ctx_t *f, const json_t *ev)
{
    const json_t *tu = json_object_get(json_object_get(ev, "start"), "toolUse");
    if (!json_is_object(tu))
        return 0; /* a text or reasoning block: its deltas say everything */
    const json_t *id = json_object_get(tu, "toolUseId");
    const json_t *name = json_object_get(tu, "name");
    if (!json_is_string(id) || !json_is_string(name))
        return TG_EUPSTREAM;
    int rc = ensure_role(f);
    if (rc != 0)
        return rc;
    int idx = open_tool(f->bs, jint(ev, "contentBlockIndex"));
    f->st->content_events++;
    return put_chunk(f,
                     json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}", "tool_calls", "index", idx, "id",
                               id, "type", "function", "function", "name", name, "arguments", ""),
                     NULL);
}

static int on_block_delta(feed_ctx_t *f, const json_t *ev)
{
    const json_t *delta = json_object_get(ev, "delta");
    const json_t *text = json_object_get(delta, "text");
    const json_t *input = json_object_get(json_object_get(delta, "toolUse"), "input");
    int rc = 0;
    if (json_is_string(text)) {
        rc = ensure_role(f);
        f->st->content_events++;
        if (rc == 0)
            rc = put_chunk(f, json_pack("{s:O}", "content", text), NULL);
    } else if (json_is_string(input)) {
        int64_t block = jint(ev, "contentBlockIndex");
        int idx = tool_index(f->bs, block);
        rc = ensure_role(f);
        f->st->content_events++;
        if (rc == 0 && idx < 0) { /* no contentBlockStart came: a call without id or name */
            idx = open_tool(f->bs, block);
            rc = put_chunk(f,
                           json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", idx,
                                     "id", "", "type", "function", "function", "name", "",
                                     "arguments", ""),
                           NULL);
        }
        if (rc == 0 && json_string_length(input) > 0)
            rc = put_chunk(f,
                           json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls", "index", idx, "function",
                                     "arguments", input),
                           NULL);
    }
    /* reasoningContent deltas: OpenAI's chunks have no place for them */
    return rc;
}

static int on_message_stop(feed_ctx_t *f, const json_t *ev)
{
    const json_t *reason = json_object_get(ev, "stopReason");
    const char *fr = json_is_string(reason)
                         ? finish_map(json_string_value(reason), json_string_length(reason))
                         : "stop";
    int rc = ensure_role(f);
    if (rc == 0)
        rc = put_chunk(f, json_object(), fr);
    f->bs->finished = true;
    if (rc == 0 && f->bs->metadata)
        rc = finish_stream(f);
    return rc;
}

static int on_metadata(feed_ctx_t *f, const json_t *ev)
{
    usage_read(&f->st->usage, json_object_get(ev, "usage"));
    f->bs->metadata = true;
    return f->bs->finished ? finish_stream(f) : 0;
}

/* An exception (or error) message: one `data: {"error":...}` event, and the stream is over. */
static int on_exception(feed_ctx_t *f, const dp_es_msg_t *m)
{
    const char *type = m->exception_type ? m->exception_type : m->error_code;
    size_t tn = m->exception_type ? m->exception_type_len : m->error_code_len;
    static const struct {
        const char *name;
        int status;
    } statuses[] = {{"throttlingException", 429},         {"ThrottlingException", 429},
                    {"validationException", 400},         {"ValidationException", 400},
                    {"serviceUnavailableException", 503}, {"ServiceUnavailableException", 503},
                    {"accessDeniedException", 403},       {"AccessDeniedException", 403}};
    int status = 500;
    for (size_t i = 0; type && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (tg_mem_eq(type, tn, statuses[i].name, strlen(statuses[i].name)))
            status = statuses[i].status;
    char code[128] = "";
    if (type)
        error_code(type, tn, code, sizeof(code));
    json_t *root = m->payload_len ? json_loadb(m->payload, m->payload_len, 0, NULL) : NULL;
    const json_t *msg = json_object_get(root, "message");
    if (!json_is_string(msg))
        msg = json_object_get(root, "Message");
    const char *text = m->error_message;
    size_t textn = m->error_message_len;
    if (json_is_string(msg)) {
        text = json_string_value(msg);
        textn = json_string_length(msg);
    } else if (!text && m->payload_len > 0) {
        text = m->payload;
        textn = m->payload_len > BR_MAX_RAW_ERROR ? BR_MAX_RAW_ERROR : m->payload_len;
    }
    if (!text) {
        text = "the provider's stream failed";
        textn = strlen(text);
    }
    size_t mark = f->out->len;
    int rc = tg_buf_append(f->out, "data: ", 6);
    if (rc == 0)
        rc = dp_openai_error_append(f->out, text, textn, dp_openai_error_type(status),
                                    code[0] ? code : NULL);
    if (rc == 0)
        rc = tg_buf_append(f->out, "\n\n", 2);
    if (rc != 0)
        f->out->len = mark;
    json_decref(root);
    f->bs->failed = true;
    return rc;
}

static int on_message(void *ud, const dp_es_msg_t *m)
{
    feed_ctx_t *f = ud;
    if (f->bs->failed || f->st->done)
        return 0; /* the client's stream is over; what follows has nowhere to go */
    if (tg_mem_eq(m->message_type, m->message_type_len, "exception", 9) ||
        tg_mem_eq(m->message_type, m->message_type_len, "error", 5))
        return on_exception(f, m);
    if (m->message_type && !tg_mem_eq(m->message_type, m->message_type_len, "event", 5))
        return 0;
    const char *et = m->event_type;
    size_t etn = m->event_type_len;
    if (!et)
        return 0;
    json_t *root = json_loadb(m->payload, m->payload_len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return TG_EUPSTREAM;
    }
    /* some proxies in front of Bedrock wrap the event in an object named for its type */
    const json_t *ev = root;
    char name[64];
    if (etn < sizeof(name)) {
        memcpy(name, et, etn);
        name[etn] = '\0';
        const json_t *inner = json_object_get(root, name);
        if (json_is_object(inner) && json_object_size(root) == 1)
            ev = inner;
    }
    int rc = 0;
    if (tg_mem_eq(et, etn, "messageStart", 12))
        rc = ensure_role(f);
    else if (tg_mem_eq(et, etn, "contentBlockStart", 17))
        rc = on_block_start(f, ev);
    else if (tg_mem_eq(et, etn, "contentBlockDelta", 17))
        rc = on_block_delta(f, ev);
    else if (tg_mem_eq(et, etn, "contentBlockStop", 16))
        close_block(f->bs, jint(ev, "contentBlockIndex"));
    else if (tg_mem_eq(et, etn, "messageStop", 11))
        rc = on_message_stop(f, ev);
    else if (tg_mem_eq(et, etn, "metadata", 8))
        rc = on_metadata(f, ev);
    json_decref(root);
    return rc;
}

static int bedrock_stream_feed(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out)
{
    br_stream_t *bs = br_stream_get(st);
    if (!bs)
        return TG_ENOMEM;
    feed_ctx_t f = {st, bs, out};
    return dp_es_feed(&bs->es, p, n, on_message, &f);
}

static int bedrock_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out)
{
    br_stream_t *bs = st->priv;
    if (!bs || !complete || bs->failed || st->done || !bs->finished)
        return 0; /* a stream without messageStop was cut: the proxy reports it */
    feed_ctx_t f = {st, bs, out};
    return finish_stream(&f); /* metadata never came */
}

const dp_provider_ops_t dp_provider_bedrock = {
    .kind = "bedrock",
    .stream_content_type = "application/vnd.amazon.eventstream",
    .build = bedrock_build,
    .response = bedrock_response,
    .stream_feed = bedrock_stream_feed,
    .stream_end = bedrock_stream_end,
};

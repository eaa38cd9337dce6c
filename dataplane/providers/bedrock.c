/* bedrock.c: AWS Bedrock's runtime API (base_url like
 * https://bedrock-runtime.us-east-1.amazonaws.com), SigV4-signed. OpenAI chat bodies become
 * Converse requests (POST /model/{modelId}/converse, streams: /converse-stream), answers and the
 * binary event stream become OpenAI chat completions and chunks, and embeddings go through
 * InvokeModel for Titan and Cohere models. Pure; runs on the request's loop thread. */
#include "provider.h"

#include <openssl/crypto.h>
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
    return dp_json_push(blocks, json_pack("{s:s%}", "text", s, n));
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
    if (!dp_has_prefix(u, n, "data:"))
        return dp_build_invalid(
            r->err, "messages",
            "messages[%zu]: image URLs cannot be sent to bedrock, which needs the image "
            "bytes: use a data: URL",
            mi);
    const char *mime, *data;
    size_t mlen, dlen;
    if (!dp_data_url_split(u, n, &mime, &mlen, &data, &dlen))
        return dp_build_invalid(r->err, "messages",
                                "messages[%zu]: only base64 data URLs are supported", mi);
    const char *format = NULL;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (tg_mem_caseeq(mime, mlen, formats[i].mime, strlen(formats[i].mime)))
            format = formats[i].format;
    if (!format)
        return dp_build_invalid(
            r->err, "messages",
            "messages[%zu]: image type \"%.*s\" is not supported by bedrock (png, jpeg, "
            "gif, webp)",
            mi, (int)(mlen > 64 ? 64 : mlen), mime);
    if (dlen == 0)
        return dp_build_invalid(r->err, "messages", "messages[%zu]: the image data URL is empty",
                                mi);
    return dp_json_push(blocks, json_pack("{s:{s:s,s:{s:s%}}}", "image", "format", format, "source",
                                          "bytes", data, dlen));
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
        return dp_build_invalid(r->err, "messages",
                                "messages[%zu].content must be a string or an array", mi);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const json_t *type = json_object_get(part, "type");
        int rc;
        if (dp_json_str_eq(type, "text")) {
            const json_t *text = json_object_get(part, "text");
            if (!json_is_string(text))
                return dp_build_invalid(r->err, "messages",
                                        "messages[%zu].content[%zu].text must be a string", mi, i);
            rc = text_block(blocks, json_string_value(text), json_string_length(text));
        } else if (images && dp_json_str_eq(type, "image_url")) {
            const json_t *iu = json_object_get(part, "image_url");
            const json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
            if (!json_is_string(url))
                return dp_build_invalid(r->err, "messages",
                                        "messages[%zu].content[%zu].image_url.url must be a string",
                                        mi, i);
            rc = image_block(r, blocks, json_string_value(url), json_string_length(url), mi);
        } else {
            return dp_build_invalid(
                r->err, "messages",
                "messages[%zu].content[%zu]: content part type \"%s\" is not supported "
                "by bedrock",
                mi, i, json_is_string(type) ? json_string_value(type) : "?");
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* An assistant turn's tool_calls -> toolUse blocks; arguments must be JSON. */
static int tool_use_blocks(br_req_t *r, size_t mi, const json_t *calls, json_t *blocks)
{
    if (!json_is_array(calls))
        return dp_build_invalid(r->err, "messages", "messages[%zu].tool_calls must be an array",
                                mi);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        const json_t *id = json_object_get(tc, "id");
        const json_t *fn = json_object_get(tc, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(id) || json_string_length(id) == 0 || !json_is_string(name))
            return dp_build_invalid(r->err, "messages",
                                    "messages[%zu].tool_calls[%zu] needs an id and a function name",
                                    mi, i);
        json_t *input = NULL;
        if (json_is_string(args)) {
            const char *a = json_string_value(args);
            size_t an = json_string_length(args);
            size_t k = 0;
            while (k < an && (a[k] == ' ' || a[k] == '\t' || a[k] == '\n' || a[k] == '\r'))
                k++;
            input = k == an ? json_object() : json_loadb(a, an, JSON_DECODE_ANY, NULL);
            if (!input)
                return dp_build_invalid(
                    r->err, "messages",
                    "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON", mi, i);
        } else if (json_is_object(args)) {
            input = json_incref((json_t *)args);
        } else if (!args || json_is_null(args)) {
            input = json_object();
        } else {
            return dp_build_invalid(
                r->err, "messages",
                "messages[%zu].tool_calls[%zu].function.arguments must be a string", mi, i);
        }
        int rc = dp_json_push(blocks, json_pack("{s:{s:O,s:O,s:o}}", "toolUse", "toolUseId", id,
                                                "name", name, "input", input));
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
        return dp_build_invalid(r->err, "messages", "messages[%zu].tool_call_id is required", mi);
    tg_buf_t text = TG_BUF_INIT(64u << 20);
    int rc = dp_content_text_append(&text, json_object_get(m, "content"), mi, r->err);
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
    return dp_json_turn_append(r->messages, "user", "content", blocks);
}

static int translate_message(br_req_t *r, size_t mi, const json_t *m)
{
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m) || !json_is_string(role))
        return dp_build_invalid(r->err, "messages", "messages[%zu] needs a role", mi);
    if (dp_json_str_eq(role, "system") || dp_json_str_eq(role, "developer")) {
        tg_buf_t text = TG_BUF_INIT(64u << 20);
        int rc = dp_content_text_append(&text, content, mi, r->err);
        if (rc == 0)
            rc = text_block(r->system, text.base, text.len);
        tg_buf_dispose(&text);
        return rc;
    }
    if (dp_json_str_eq(role, "tool"))
        return tool_result(r, mi, m);
    bool user = dp_json_str_eq(role, "user");
    if (!user && !dp_json_str_eq(role, "assistant"))
        return dp_build_invalid(r->err, "messages",
                                "messages[%zu]: role \"%s\" is not supported by bedrock", mi,
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
    /* Converse wants user and assistant turns to alternate: same roles merge */
    return dp_json_turn_append(r->messages, user ? "user" : "assistant", "content", blocks);
}

/* tools and tool_choice -> toolConfig; tool_choice "none" sends no tools at all. */
static int translate_tools(br_req_t *r, const json_t *root, json_t *req)
{
    const json_t *tools = json_object_get(root, "tools");
    const json_t *choice = json_object_get(root, "tool_choice");
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return dp_build_invalid(r->err, "tools", "tools must be an array");
    if (json_array_size(tools) == 0 || dp_json_str_eq(choice, "none"))
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
        if (!dp_json_str_eq(json_object_get(t, "type"), "function") || !json_is_string(name)) {
            rc = dp_build_invalid(r->err, "tools", "tools[%zu] must be a function with a name", i);
            break;
        }
        json_t *schema = json_is_object(params)
                             ? json_incref((json_t *)params)
                             : json_pack("{s:s,s:{}}", "type", "object", "properties");
        json_t *spec = json_pack("{s:O,s:{s:o}}", "name", name, "inputSchema", "json", schema);
        if (spec && json_is_string(desc) && json_string_length(desc) > 0)
            rc = dp_json_set(spec, "description", json_incref((json_t *)desc));
        if (rc == 0)
            rc = dp_json_push(specs, json_pack("{s:o}", "toolSpec", spec));
        else
            json_decref(spec);
        if (rc != 0)
            break;
    }
    if (rc == 0 && choice && !json_is_null(choice)) {
        json_t *tc = NULL;
        const json_t *cname = json_object_get(json_object_get(choice, "function"), "name");
        if (dp_json_str_eq(choice, "auto"))
            tc = json_pack("{s:{}}", "auto");
        else if (dp_json_str_eq(choice, "required"))
            tc = json_pack("{s:{}}", "any");
        else if (json_is_object(choice) && json_is_string(cname))
            tc = json_pack("{s:{s:O}}", "tool", "name", cname);
        else
            rc = dp_build_invalid(
                r->err, "tool_choice",
                "tool_choice must be \"auto\", \"required\", \"none\" or a function");
        if (rc == 0)
            rc = dp_json_set(cfg, "toolChoice", tc);
    }
    if (rc == 0)
        return dp_json_set(req, "toolConfig", cfg);
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
            rc = dp_build_invalid(r->err, "max_tokens", "max_tokens must be a positive integer");
        else
            rc = dp_json_set(ic, "maxTokens", json_integer(json_integer_value(mt)));
    }
    static const struct {
        const char *from, *to;
    } nums[] = {{"temperature", "temperature"}, {"top_p", "topP"}};
    for (size_t i = 0; rc == 0 && i < sizeof(nums) / sizeof(nums[0]); i++) {
        const json_t *v = json_object_get(root, nums[i].from);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_number(v))
            rc = dp_build_invalid(r->err, nums[i].from, "%s must be a number", nums[i].from);
        else
            rc = dp_json_set(ic, nums[i].to, json_real(json_number_value(v)));
    }
    if (rc == 0) {
        json_t *seqs;
        rc = dp_stop_sequences(json_object_get(root, "stop"), &seqs);
        if (rc == TG_EINVAL)
            rc = dp_build_invalid(r->err, "stop", "stop must be a string or an array of strings");
        else if (rc == 0 && json_array_size(seqs) > 0)
            rc = dp_json_set(ic, "stopSequences", seqs);
        else
            json_decref(seqs);
    }
    if (rc == 0 && json_object_size(ic) > 0)
        return dp_json_set(req, "inferenceConfig", ic);
    json_decref(ic);
    return rc;
}

static int build_chat_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    const json_t *root = dp_reqbody_json(c->body);
    if (!root)
        return dp_build_nomem(err, TG_ENOMEM);
    const json_t *msgs = json_object_get(root, "messages");
    const json_t *n = json_object_get(root, "n");
    if (!json_is_array(msgs))
        return dp_build_invalid(err, "messages", "messages must be an array");
    if (json_is_integer(n) && json_integer_value(n) != 1)
        return dp_build_invalid(err, "n", "bedrock answers with one choice: n must be 1");
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
        rc = dp_build_invalid(err, "messages",
                              "messages must hold at least one user or assistant message");
    if (rc == 0)
        rc = dp_json_set(req, "messages", json_incref(r.messages));
    if (rc == 0 && json_array_size(r.system) > 0)
        rc = dp_json_set(req, "system", json_incref(r.system));
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
        return dp_build_nomem(err, rc);
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
    const json_t *root = dp_reqbody_json(c->body);
    if (!root)
        return dp_build_nomem(err, TG_ENOMEM);
    const json_t *input = json_object_get(root, "input");
    int family = embed_family(c->model);
    if (family == BR_EMBED_NONE)
        return dp_build_invalid(
            err, "model",
            "embeddings on bedrock need an amazon.titan-embed-* or cohere.embed-* model, "
            "not \"%s\"",
            c->model);
    json_t *texts = json_array();
    if (!texts)
        return dp_build_nomem(err, TG_ENOMEM);
    int rc = 0;
    if (json_is_string(input)) {
        rc = dp_json_push(texts, json_incref((json_t *)input));
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        const json_t *s;
        json_array_foreach(input, i, s)
        {
            if (!json_is_string(s)) {
                rc = dp_build_invalid(err, "input",
                                      "bedrock embeddings take text: input must be a string or "
                                      "an array of strings");
                break;
            }
            rc = dp_json_push(texts, json_incref((json_t *)s));
            if (rc != 0)
                break;
        }
    } else {
        rc = dp_build_invalid(err, "input",
                              "input must be a string or a non-empty array of strings");
    }
    if (rc == 0 && family == BR_EMBED_TITAN && json_array_size(texts) != 1)
        rc = dp_build_invalid(
            err, "input",
            "titan embedding models take one input per request: send a single string");
    json_t *req = NULL;
    if (rc == 0 && family == BR_EMBED_TITAN) {
        req = json_pack("{s:O}", "inputText", json_array_get(texts, 0));
        const json_t *dims = json_object_get(root, "dimensions");
        if (req && json_is_integer(dims))
            rc = dp_json_set(req, "dimensions", json_integer(json_integer_value(dims)));
    } else if (rc == 0) {
        req = json_pack("{s:O,s:s}", "texts", texts, "input_type", "search_document");
    }
    if (rc == 0)
        rc = req ? dp_json_append(body, req) : TG_ENOMEM;
    json_decref(req);
    json_decref(texts);
    if (rc != 0 && rc != TG_EINVAL)
        return dp_build_nomem(err, rc);
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
        dp_build_nomem(err, rc);
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
        return dp_build_invalid(err, "model", "\"%s\" is not a bedrock model id", c->model);
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
        return dp_build_invalid(
            err, NULL,
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
        rc = dp_header_add_json(add, ud,
                                c->endpoint == DP_EP_CHAT && c->body->stream
                                    ? "application/vnd.amazon.eventstream"
                                    : "application/json");
    if (rc == 0)
        rc = dp_header_add_extra(p, add, ud);
    if (rc != 0)
        return dp_build_nomem(err, rc);
    return sign_headers(c, url->base, body, add, ud, err);
}

/* ---- answers: Converse -> chat.completion ---- */

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* Converse's TokenUsage. inputTokens leaves out the cache reads and writes; OpenAI's
 * prompt_tokens counts them, with the reads as cached_tokens. cacheDetails splits the writes by
 * TTL ("5m", "1h"); the writes it does not place at 1h are 5-minute ones. */
static void usage_read(dp_usage_t *u, const json_t *tu)
{
    if (!json_is_object(tu))
        return;
    int64_t cread = jint(tu, "cacheReadInputTokens"), cwrite = jint(tu, "cacheWriteInputTokens");
    int64_t w1 = 0;
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(tu, "cacheDetails"), i, d)
    {
        if (dp_json_str_eq(json_object_get(d, "ttl"), "1h"))
            w1 += jint(d, "inputTokens");
    }
    u->prompt = jint(tu, "inputTokens") + cread + cwrite;
    u->completion = jint(tu, "outputTokens");
    u->cached = cread;
    u->cache_write_1h = w1 < cwrite ? w1 : cwrite;
    u->cache_write = cwrite - u->cache_write_1h;
    u->reasoning = 0;
    u->total = u->prompt + u->completion;
    u->present = true;
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
            rc = dp_json_push(calls, dp_openai_tool_call_json(tid, name, input, &args));
        }
        /* reasoningContent, citations, images: OpenAI's message has no place for them */
    }
    if (rc == 0) {
        const char *fr = json_is_string(reason)
                             ? finish_map(json_string_value(reason), json_string_length(reason))
                             : "stop";
        json_t *choice = dp_openai_choice_json(
            0, dp_openai_message_json(text.base, text.len, has_text, calls), fr);
        res = dp_openai_completion_json(st, id.base, dp_stream_model(st),
                                        choice ? json_pack("[o]", choice) : NULL);
        if (res && st->usage.present)
            rc = dp_json_set(res, "usage", dp_openai_usage_json(&st->usage, false));
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

/* Titan: {"embedding":[...],"inputTextTokenCount":n}. Cohere: {"embeddings":[[...]]} or, with
 * embedding types, {"embeddings":{"float":[[...]]}}; Cohere reports no token count in the body,
 * so its usage is not present and the usage record estimates it from the request. */
static int embed_response(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    const json_t *list = json_object_get(root, "embeddings");
    const json_t *one = json_object_get(root, "embedding");
    if (json_is_object(list))
        list = json_object_get(list, "float");
    if (!json_is_array(one) && !json_is_array(list))
        return TG_EUPSTREAM;
    json_t *single = NULL; /* Titan's one vector, as a list of one */
    if (json_is_array(one)) {
        int64_t tokens = jint(root, "inputTextTokenCount");
        st->usage.prompt = tokens;
        st->usage.total = tokens;
        st->usage.present = json_is_integer(json_object_get(root, "inputTextTokenCount"));
        single = json_pack("[O]", one);
        if (!single)
            return TG_ENOMEM;
    }
    int rc = dp_embedding_list_append(out, st, single ? single : list, NULL, st->usage.total);
    json_decref(single);
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
        return tg_error_body(out, status, NULL, json_string_value(msg), json_string_length(msg),
                             NULL, ecode);
    if (rawn == 0) {
        char m[64];
        int k = snprintf(m, sizeof(m), "the provider answered with status %d", status);
        return tg_error_body(out, status, NULL, m, k > 0 ? (size_t)k : 0, NULL, ecode);
    }
    return tg_error_body(out, status, NULL, raw, rawn > BR_MAX_RAW_ERROR ? BR_MAX_RAW_ERROR : rawn,
                         NULL, ecode);
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

/* One chunk of the one choice with a delta (taken) and a finish reason (or NULL). */
static int put_chunk(feed_ctx_t *f, json_t *delta, const char *finish)
{
    return dp_openai_chunk_append(f->out, f->st, f->bs->id.base, 0, delta, finish);
}

static int ensure_role(feed_ctx_t *f)
{
    if (f->bs->role_sent)
        return 0;
    f->bs->role_sent = true;
    return dp_openai_chunk_role_append(f->out, f->st, f->bs->id.base, 0);
}

/* The usage chunk (when the client asked and there is usage) and [DONE]. */
static int finish_stream(feed_ctx_t *f)
{
    int rc = 0;
    if (f->st->client_wants_usage && f->st->usage.present)
        rc = dp_openai_chunk_usage_append(f->out, f->st, f->bs->id.base, false);
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
    int rc = dp_sse_append_error(f->out, status, text, textn, code[0] ? code : NULL);
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

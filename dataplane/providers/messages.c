/* messages.c: Anthropic's Messages API as a client format on providers that speak OpenAI chat:
 * the request is translated once into an OpenAI body, the adapter's OpenAI-shaped answer (JSON,
 * SSE chunks, errors) back into Anthropic's. Pure; a stream translator belongs to one request
 * and runs on its loop thread. */
#include "messages.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "sse.h"
#include "usage.h"

#include "tg_banned.h"

#define MAX_PART_BYTES (64u << 20) /* a data: URL or joined text, bounded by the body limit */
#define MAX_SSE_EVENT (4u << 20)   /* one OpenAI chunk, as the adapters allow */
#define MAX_PENDING (16u << 20)    /* text or tool arguments held back for block order */
#define MAX_TOOL_CALLS 512         /* tool calls in one streamed answer */

static int error_from_openai(int status, const char *body, size_t n, tg_buf_t *out);

/* ---- small JSON helpers ---- */

static bool nonempty_str(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static json_t *buf_string(const tg_buf_t *b)
{
    return json_stringn(b->base ? b->base : "", b->len);
}

/* Appends s to b, after sep when b already holds something. */
static int join_append(tg_buf_t *b, bool *any, const char *sep, const json_t *s)
{
    int rc = 0;
    if (*any)
        rc = tg_buf_append(b, sep, strlen(sep));
    if (rc == 0)
        rc = tg_buf_append(b, json_string_value(s), json_string_length(s));
    *any = true;
    return rc;
}

/* ---- request: Anthropic -> OpenAI ---- */

static int bad(tg_err_t *err, const char *path, const char *msg)
{
    tg_err_set(err, TG_EINVAL, 400, "%s: %s", path, msg);
    return TG_EINVAL;
}

static int bad_at(tg_err_t *err, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* bad() for the path fmt formats; a long path is cut short. */
static int bad_at(tg_err_t *err, const char *msg, const char *fmt, ...)
{
    char path[160];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(path, sizeof(path), fmt, ap) < 0)
        path[0] = '\0';
    va_end(ap);
    return bad(err, path, msg);
}

/* Jansson and buffer failures are out of memory (or a part past MAX_PART_BYTES). */
static int failed(tg_err_t *err, int rc)
{
    if (rc == TG_ETOOBIG)
        tg_err_set(err, TG_ETOOBIG, 413, "a content block is too large to translate");
    else
        tg_err_set(err, TG_ENOMEM, 503, "could not translate the request: out of memory");
    return rc;
}

/* Appends data:<media type>;base64,<data> (two JSON strings). */
static int data_url_append(tg_buf_t *url, const json_t *mt, const json_t *data)
{
    int rc = tg_buf_append(url, "data:", 5);
    if (rc == 0)
        rc = tg_buf_append(url, json_string_value(mt), json_string_length(mt));
    if (rc == 0)
        rc = tg_buf_append(url, ";base64,", 8);
    if (rc == 0)
        rc = tg_buf_append(url, json_string_value(data), json_string_length(data));
    return rc;
}

/* An image block's source -> an OpenAI image_url part. */
static int image_part(const json_t *blk, const char *path, json_t **part, tg_err_t *err)
{
    const json_t *src = json_object_get(blk, "source");
    if (!json_is_object(src))
        return bad_at(err, "field required (an object)", "%s.source", path);
    const json_t *type = json_object_get(src, "type");
    tg_buf_t url = TG_BUF_INIT(MAX_PART_BYTES);
    int rc = 0;
    if (dp_json_str_eq(type, "base64")) {
        const json_t *mt = json_object_get(src, "media_type");
        const json_t *data = json_object_get(src, "data");
        if (!nonempty_str(mt) || !json_is_string(data))
            return bad_at(err, "a base64 source needs media_type and data strings", "%s.source",
                          path);
        rc = data_url_append(&url, mt, data);
    } else if (dp_json_str_eq(type, "url")) {
        const json_t *u = json_object_get(src, "url");
        if (!nonempty_str(u))
            return bad_at(err, "field required (a string)", "%s.source.url", path);
        rc = tg_buf_append(&url, json_string_value(u), json_string_length(u));
    } else {
        return bad_at(err, "must be \"base64\" or \"url\" (files cannot be translated)",
                      "%s.source.type", path);
    }
    if (rc == 0) {
        *part =
            json_pack("{s:s,s:{s:o}}", "type", "image_url", "image_url", "url", buf_string(&url));
        rc = *part ? 0 : TG_ENOMEM;
    }
    tg_buf_dispose(&url);
    return rc == 0 ? 0 : failed(err, rc);
}

/* A document block: a base64 PDF becomes an OpenAI file part, plain text a text part. */
static int document_part(const json_t *blk, const char *path, json_t **part, tg_err_t *err)
{
    const json_t *src = json_object_get(blk, "source");
    const json_t *type = json_object_get(src, "type");
    const json_t *data = json_object_get(src, "data");
    if (dp_json_str_eq(type, "text") && json_is_string(data)) {
        *part = json_pack("{s:s,s:O}", "type", "text", "text", data);
        return *part ? 0 : failed(err, TG_ENOMEM);
    }
    const json_t *mt = json_object_get(src, "media_type");
    if (!dp_json_str_eq(type, "base64") || !nonempty_str(mt) || !json_is_string(data))
        return bad_at(err, "only base64 and text documents can be translated", "%s.source", path);
    tg_buf_t url = TG_BUF_INIT(MAX_PART_BYTES);
    int rc = data_url_append(&url, mt, data);
    json_t *file = rc == 0 ? json_pack("{s:o}", "file_data", buf_string(&url)) : NULL;
    tg_buf_dispose(&url);
    const json_t *title = json_object_get(blk, "title");
    if (file && nonempty_str(title) && json_object_set(file, "filename", (json_t *)title) != 0) {
        json_decref(file);
        file = NULL;
    }
    *part = file ? json_pack("{s:s,s:o}", "type", "file", "file", file) : NULL;
    return *part ? 0 : failed(err, rc != 0 ? rc : TG_ENOMEM);
}

/* A tool_result block -> a "tool" message in msgs; its images go to parts (the user message
 * that follows), as OpenAI's tool messages carry text only. */
static int tool_result(const json_t *blk, const char *path, json_t *msgs, json_t *parts,
                       tg_err_t *err)
{
    char p[160];
    const json_t *id = json_object_get(blk, "tool_use_id");
    if (!nonempty_str(id))
        return bad_at(err, "field required (a string)", "%s.tool_use_id", path);
    const json_t *content = json_object_get(blk, "content");
    const json_t *is_error = json_object_get(blk, "is_error");
    if (is_error && !json_is_null(is_error) && !json_is_boolean(is_error))
        return bad_at(err, "must be a boolean", "%s.is_error", path);
    tg_buf_t text = TG_BUF_INIT(MAX_PART_BYTES);
    bool any = false;
    int rc = 0;
    /* OpenAI has no error flag on tool messages: say it in the text the model reads,
     * "Error: <content>" */
    bool is_err = json_is_true(is_error);
    if (is_err) {
        rc = tg_buf_append(&text, "Error", 5);
        any = true;
    }
    if (json_is_string(content)) {
        if (rc == 0 && json_string_length(content) > 0)
            rc = join_append(&text, &any, ": ", content);
    } else if (json_is_array(content)) {
        size_t k;
        const json_t *b;
        bool first = true;
        json_array_foreach(content, k, b)
        {
            const json_t *type = json_object_get(b, "type");
            const json_t *t = json_object_get(b, "text");
            if (rc != 0)
                break;
            if (dp_json_str_eq(type, "text") && json_is_string(t)) {
                rc = join_append(&text, &any, first && is_err ? ": " : "\n", t);
                first = false;
            } else if (dp_json_str_eq(type, "image")) {
                json_t *img = NULL;
                if (snprintf(p, sizeof(p), "%s.content.%zu", path, k) < 0)
                    p[0] = '\0';
                rc = image_part(b, p, &img, err);
                if (rc != 0) {
                    tg_buf_dispose(&text);
                    return rc;
                }
                rc = dp_json_push(parts, img);
            } else {
                tg_buf_dispose(&text);
                return bad_at(err,
                              "a tool result may hold text (with a \"text\" string) and "
                              "image blocks only",
                              "%s.content.%zu", path, k);
            }
        }
    } else if (content && !json_is_null(content)) {
        tg_buf_dispose(&text);
        return bad_at(err, "must be a string or an array of content blocks", "%s.content", path);
    }
    json_t *m = NULL;
    if (rc == 0)
        m = json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id, "content",
                      buf_string(&text));
    tg_buf_dispose(&text);
    if (rc == 0)
        rc = m ? dp_json_push(msgs, m) : TG_ENOMEM;
    return rc == 0 ? 0 : failed(err, rc);
}

/* A user message: tool results first (as "tool" messages, right after the assistant message
 * that called them), then one user message with the rest. Text-only content becomes a string:
 * some OpenAI-compatible servers accept no arrays. */
static int user_message(const json_t *content, const char *path, json_t *msgs, tg_err_t *err)
{
    char p[160];
    json_t *parts = json_array();
    if (!parts)
        return failed(err, TG_ENOMEM);
    bool only_text = true;
    bool had_results = false;
    int rc = 0;
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk)
    {
        if (snprintf(p, sizeof(p), "%s.%zu", path, j) < 0)
            p[0] = '\0';
        const json_t *type = json_object_get(blk, "type");
        json_t *part = NULL;
        if (!json_is_object(blk) || !json_is_string(type)) {
            rc = bad(err, p, "a content block must be an object with a \"type\"");
        } else if (dp_json_str_eq(type, "text")) {
            const json_t *t = json_object_get(blk, "text");
            if (!json_is_string(t)) {
                rc = bad_at(err, "field required (a string)", "%s.%zu.text", path, j);
            } else {
                part = json_pack("{s:s,s:O}", "type", "text", "text", t);
                rc = part ? dp_json_push(parts, part) : failed(err, TG_ENOMEM);
            }
        } else if (dp_json_str_eq(type, "image")) {
            rc = image_part(blk, p, &part, err);
            if (rc == 0)
                rc = dp_json_push(parts, part) == 0 ? 0 : failed(err, TG_ENOMEM);
        } else if (dp_json_str_eq(type, "document")) {
            rc = document_part(blk, p, &part, err);
            if (rc == 0)
                rc = dp_json_push(parts, part) == 0 ? 0 : failed(err, TG_ENOMEM);
        } else if (dp_json_str_eq(type, "tool_result")) {
            rc = tool_result(blk, p, msgs, parts, err);
            had_results = true;
        } else if (dp_json_str_eq(type, "thinking") || dp_json_str_eq(type, "redacted_thinking")) {
            continue; /* the provider cannot verify Anthropic's signatures */
        } else if (dp_json_str_eq(type, "tool_use")) {
            rc =
                bad_at(err, "tool_use blocks belong in assistant messages", "%s.%zu.type", path, j);
        } else {
            rc = bad_at(err, "this content block type cannot be translated for this provider",
                        "%s.%zu.type", path, j);
        }
        if (rc != 0)
            break;
    }
    size_t k;
    json_t *part;
    json_array_foreach(parts, k, part)
    {
        if (!dp_json_str_eq(json_object_get(part, "type"), "text"))
            only_text = false;
    }
    json_t *m = NULL;
    if (rc == 0 && (json_array_size(parts) > 0 || !had_results)) {
        if (only_text) {
            tg_buf_t text = TG_BUF_INIT(MAX_PART_BYTES);
            bool any = false;
            json_array_foreach(parts, k, part)
            {
                if (rc == 0)
                    rc = join_append(&text, &any, "\n", json_object_get(part, "text"));
            }
            if (rc == 0)
                m = json_pack("{s:s,s:o}", "role", "user", "content", buf_string(&text));
            tg_buf_dispose(&text);
        } else {
            m = json_pack("{s:s,s:O}", "role", "user", "content", parts);
        }
        if (rc == 0)
            rc = m ? dp_json_push(msgs, m) : TG_ENOMEM;
        if (rc != 0)
            rc = failed(err, rc);
    }
    json_decref(parts);
    return rc;
}

/* One tool_use block -> an OpenAI tool call with the input as JSON text. */
static int tool_call(const json_t *blk, const char *path, json_t *calls, tg_err_t *err)
{
    const json_t *id = json_object_get(blk, "id");
    const json_t *name = json_object_get(blk, "name");
    const json_t *input = json_object_get(blk, "input");
    if (!nonempty_str(id))
        return bad_at(err, "field required (a string)", "%s.id", path);
    if (!nonempty_str(name))
        return bad_at(err, "field required (a string)", "%s.name", path);
    if (input && !json_is_object(input))
        return bad_at(err, "must be an object", "%s.input", path);
    tg_buf_t args = TG_BUF_INIT(SIZE_MAX);
    json_t *c = dp_openai_tool_call_json(id, name, input, &args);
    tg_buf_dispose(&args);
    return c && dp_json_push(calls, c) == 0 ? 0 : failed(err, TG_ENOMEM);
}

/* An assistant message: its text as content, its tool_use blocks as tool_calls. */
static int assistant_message(const json_t *content, const char *path, json_t *msgs, tg_err_t *err)
{
    char p[160];
    json_t *calls = json_array();
    tg_buf_t text = TG_BUF_INIT(MAX_PART_BYTES);
    bool any = false;
    int rc = calls ? 0 : failed(err, TG_ENOMEM);
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk)
    {
        if (rc != 0)
            break;
        if (snprintf(p, sizeof(p), "%s.%zu", path, j) < 0)
            p[0] = '\0';
        const json_t *type = json_object_get(blk, "type");
        if (!json_is_object(blk) || !json_is_string(type)) {
            rc = bad(err, p, "a content block must be an object with a \"type\"");
        } else if (dp_json_str_eq(type, "text")) {
            const json_t *t = json_object_get(blk, "text");
            if (!json_is_string(t)) {
                rc = bad_at(err, "field required (a string)", "%s.%zu.text", path, j);
            } else if (json_string_length(t) > 0 && join_append(&text, &any, "\n", t) != 0) {
                rc = failed(err, TG_ENOMEM);
            }
        } else if (dp_json_str_eq(type, "tool_use")) {
            rc = tool_call(blk, p, calls, err);
        } else if (dp_json_str_eq(type, "thinking") || dp_json_str_eq(type, "redacted_thinking") ||
                   dp_json_str_eq(type, "server_tool_use") ||
                   dp_json_str_eq(type, "web_search_tool_result")) {
            continue; /* Anthropic-only blocks: nothing the provider can read */
        } else {
            rc = bad_at(err, "this content block type cannot appear in an assistant message",
                        "%s.%zu.type", path, j);
        }
    }
    if (rc == 0 && (any || json_array_size(calls) > 0)) {
        json_t *m = json_pack("{s:s,s:o}", "role", "assistant", "content",
                              any ? buf_string(&text) : json_null());
        if (m && json_array_size(calls) > 0 && json_object_set(m, "tool_calls", calls) != 0) {
            json_decref(m);
            m = NULL;
        }
        if (!m || dp_json_push(msgs, m) != 0)
            rc = failed(err, TG_ENOMEM);
    }
    json_decref(calls);
    tg_buf_dispose(&text);
    return rc;
}

static int add_messages(const json_t *a, json_t *msgs, tg_err_t *err)
{
    char p[96];
    const json_t *list = json_object_get(a, "messages");
    if (!json_is_array(list))
        return bad(err, "messages", "field required (an array of messages)");
    size_t i;
    const json_t *m;
    json_array_foreach(list, i, m)
    {
        const json_t *role = json_object_get(m, "role");
        const json_t *content = json_object_get(m, "content");
        int rc = 0;
        if (!json_is_object(m))
            return bad_at(err, "must be an object", "messages.%zu", i);
        bool user = dp_json_str_eq(role, "user");
        if (!user && !dp_json_str_eq(role, "assistant"))
            return bad_at(err, "must be \"user\" or \"assistant\"", "messages.%zu.role", i);
        if (snprintf(p, sizeof(p), "messages.%zu.content", i) < 0)
            p[0] = '\0';
        if (json_is_string(content)) {
            json_t *om =
                json_pack("{s:s,s:O}", "role", user ? "user" : "assistant", "content", content);
            rc = om && dp_json_push(msgs, om) == 0 ? 0 : failed(err, TG_ENOMEM);
        } else if (json_is_array(content)) {
            rc = user ? user_message(content, p, msgs, err)
                      : assistant_message(content, p, msgs, err);
        } else {
            rc = bad(err, p, "must be a string or an array of content blocks");
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* system: a string or text blocks, joined into the first message (one system message: some
 * chat templates accept no other). */
static int add_system(const json_t *a, json_t *msgs, tg_err_t *err)
{
    const json_t *sys = json_object_get(a, "system");
    if (!sys || json_is_null(sys))
        return 0;
    tg_buf_t text = TG_BUF_INIT(MAX_PART_BYTES);
    bool any = false;
    int rc = 0;
    if (json_is_string(sys)) {
        if (json_string_length(sys) > 0)
            rc = join_append(&text, &any, "", sys) == 0 ? 0 : failed(err, TG_ENOMEM);
    } else if (json_is_array(sys)) {
        size_t i;
        const json_t *b;
        json_array_foreach(sys, i, b)
        {
            const json_t *t = json_object_get(b, "text");
            if (!dp_json_str_eq(json_object_get(b, "type"), "text") || !json_is_string(t)) {
                rc = bad_at(err, "must be a text block with a \"text\" string", "system.%zu", i);
                break;
            }
            if (json_string_length(t) > 0 && join_append(&text, &any, "\n\n", t) != 0) {
                rc = failed(err, TG_ENOMEM);
                break;
            }
        }
    } else {
        rc = bad(err, "system", "must be a string or an array of text blocks");
    }
    if (rc == 0 && any) {
        json_t *m = json_pack("{s:s,s:o}", "role", "system", "content", buf_string(&text));
        rc = m && dp_json_push(msgs, m) == 0 ? 0 : failed(err, TG_ENOMEM);
    }
    tg_buf_dispose(&text);
    return rc;
}

/* tools (custom ones; server tools such as web_search run at Anthropic only and are skipped)
 * and tool_choice. */
static int add_tools(const json_t *a, json_t *oa, tg_err_t *err)
{
    const json_t *tools = json_object_get(a, "tools");
    if (tools && !json_is_null(tools) && !json_is_array(tools))
        return bad(err, "tools", "must be an array");
    json_t *out = json_array();
    if (!out)
        return failed(err, TG_ENOMEM);
    int rc = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *type = json_object_get(t, "type");
        if (!json_is_object(t)) {
            rc = bad_at(err, "must be an object", "tools.%zu", i);
            break;
        }
        if (type && !json_is_null(type) && !dp_json_str_eq(type, "custom"))
            continue;
        const json_t *name = json_object_get(t, "name");
        const json_t *desc = json_object_get(t, "description");
        const json_t *schema = json_object_get(t, "input_schema");
        if (!nonempty_str(name)) {
            rc = bad_at(err, "field required (a string)", "tools.%zu.name", i);
            break;
        }
        if (!json_is_object(schema)) {
            rc = bad_at(err, "field required (a JSON schema object)", "tools.%zu.input_schema", i);
            break;
        }
        if (desc && !json_is_null(desc) && !json_is_string(desc)) {
            rc = bad_at(err, "must be a string", "tools.%zu.description", i);
            break;
        }
        json_t *fn = json_pack("{s:O,s:O*,s:O}", "name", name, "description",
                               json_is_string(desc) ? desc : NULL, "parameters", schema);
        json_t *ot = fn ? json_pack("{s:s,s:o}", "type", "function", "function", fn) : NULL;
        if (!ot || dp_json_push(out, ot) != 0) {
            rc = failed(err, TG_ENOMEM);
            break;
        }
    }
    const json_t *tc = json_object_get(a, "tool_choice");
    json_t *choice = NULL;
    bool no_parallel = false;
    if (rc == 0 && tc && !json_is_null(tc)) {
        const json_t *type = json_object_get(tc, "type");
        const json_t *dp = json_object_get(tc, "disable_parallel_tool_use");
        if (!json_is_object(tc) || !json_is_string(type)) {
            rc = bad(err, "tool_choice", "must be an object with a \"type\"");
        } else if (dp && !json_is_null(dp) && !json_is_boolean(dp)) {
            rc = bad(err, "tool_choice.disable_parallel_tool_use", "must be a boolean");
        } else if (dp_json_str_eq(type, "auto")) {
            choice = json_string("auto");
        } else if (dp_json_str_eq(type, "any")) {
            choice = json_string("required");
        } else if (dp_json_str_eq(type, "none")) {
            choice = json_string("none");
        } else if (dp_json_str_eq(type, "tool")) {
            const json_t *name = json_object_get(tc, "name");
            if (!nonempty_str(name))
                rc = bad(err, "tool_choice.name", "field required (a string)");
            else
                choice = json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name);
        } else {
            rc = bad(err, "tool_choice.type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
        }
        if (rc == 0 && !choice)
            rc = failed(err, TG_ENOMEM);
        no_parallel = json_is_true(dp);
    }
    /* OpenAI refuses tool_choice without tools */
    if (rc == 0 && json_array_size(out) > 0) {
        rc = dp_json_set(oa, "tools", json_incref(out));
        if (rc == 0 && choice)
            rc = dp_json_set(oa, "tool_choice", json_incref(choice));
        if (rc == 0 && no_parallel)
            rc = dp_json_set(oa, "parallel_tool_calls", json_false());
        if (rc != 0)
            rc = failed(err, rc);
    }
    json_decref(choice);
    json_decref(out);
    return rc;
}

/* model, max_tokens, sampling, stop, stream, metadata.user_id. top_k has no OpenAI
 * counterpart and is dropped, as are thinking and the other Anthropic-only fields. */
static int add_params(const json_t *a, json_t *oa, tg_err_t *err)
{
    const json_t *v = json_object_get(a, "model");
    int rc = 0;
    if (json_is_string(v))
        rc = dp_json_set(oa, "model", json_incref((json_t *)v));
    v = json_object_get(a, "max_tokens");
    if (rc == 0 && v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return bad(err, "max_tokens", "must be a positive integer");
        rc = dp_json_set(oa, "max_tokens", json_incref((json_t *)v));
    }
    static const char *const nums[] = {"temperature", "top_p"};
    for (size_t i = 0; rc == 0 && i < sizeof(nums) / sizeof(nums[0]); i++) {
        v = json_object_get(a, nums[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_number(v))
            return bad(err, nums[i], "must be a number");
        rc = dp_json_set(oa, nums[i], json_incref((json_t *)v));
    }
    v = json_object_get(a, "stop_sequences");
    if (rc == 0 && v && !json_is_null(v)) {
        size_t i;
        const json_t *s;
        if (!json_is_array(v))
            return bad(err, "stop_sequences", "must be an array of strings");
        json_array_foreach(v, i, s)
        {
            if (!json_is_string(s))
                return bad(err, "stop_sequences", "must be an array of strings");
        }
        if (json_array_size(v) > 0)
            rc = dp_json_set(oa, "stop", json_deep_copy(v));
    }
    v = json_object_get(a, "stream");
    if (rc == 0 && v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return bad(err, "stream", "must be a boolean");
        rc = dp_json_set(oa, "stream", json_incref((json_t *)v));
        /* Anthropic's message_delta carries the usage: ask for OpenAI's usage chunk */
        if (rc == 0 && json_is_true(v))
            rc = dp_json_set(oa, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    v = json_object_get(a, "metadata");
    if (rc == 0 && v && !json_is_null(v)) {
        if (!json_is_object(v))
            return bad(err, "metadata", "must be an object");
        const json_t *u = json_object_get(v, "user_id");
        if (u && !json_is_null(u) && !json_is_string(u))
            return bad(err, "metadata.user_id", "must be a string");
        if (nonempty_str(u))
            rc = dp_json_set(oa, "user", json_incref((json_t *)u));
    }
    return rc == 0 ? 0 : failed(err, rc);
}

int dp_msgs_request_to_openai(const json_t *anthropic, json_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!json_is_object(anthropic))
        return bad(err, "body", "must be a JSON object");
    json_t *oa = json_object();
    json_t *msgs = json_array();
    int rc = oa && msgs ? 0 : failed(err, TG_ENOMEM);
    if (rc == 0)
        rc = add_params(anthropic, oa, err);
    if (rc == 0)
        rc = add_system(anthropic, msgs, err);
    if (rc == 0)
        rc = add_messages(anthropic, msgs, err);
    if (rc == 0)
        rc = add_tools(anthropic, oa, err);
    if (rc == 0 && dp_json_set(oa, "messages", json_incref(msgs)) != 0)
        rc = failed(err, TG_ENOMEM);
    json_decref(msgs);
    if (rc != 0) {
        json_decref(oa);
        return rc;
    }
    *out = oa;
    return 0;
}

/* ---- answers: OpenAI -> Anthropic ---- */

/* OpenAI's finish_reason -> Anthropic's stop_reason. A "stop" with tool calls is a tool_use:
 * several OpenAI-compatible servers say stop there. */
static const char *stop_reason(const char *finish, size_t n, bool has_tools)
{
    if (tg_mem_eq(finish, n, "length", 6))
        return "max_tokens";
    if (tg_mem_eq(finish, n, "content_filter", 14))
        return "refusal";
    if (tg_mem_eq(finish, n, "tool_calls", 10) || tg_mem_eq(finish, n, "function_call", 13))
        return "tool_use";
    return has_tools ? "tool_use" : "end_turn";
}

/* Anthropic's input_tokens exclude cache reads; OpenAI's prompt_tokens include them. */
static int usage_append(tg_buf_t *out, const dp_usage_t *u)
{
    int64_t cached = u->cached < u->prompt ? u->cached : u->prompt;
    return tg_buf_appendf(out,
                          "{\"input_tokens\":%lld,\"output_tokens\":%lld,"
                          "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":%lld}",
                          (long long)(u->prompt - cached), (long long)u->completion,
                          (long long)cached);
}

/* Tool arguments as an input object; what does not parse to an object is {}. */
static json_t *tool_input(const json_t *args)
{
    json_t *in = dp_tool_args_parse(args);
    if (json_is_object(in))
        return in;
    json_decref(in);
    return json_object();
}

static int text_block(json_t *content, const json_t *text)
{
    if (!json_is_string(text) || json_string_length(text) == 0)
        return 0;
    json_t *b = json_pack("{s:s,s:O}", "type", "text", "text", text);
    return b ? dp_json_push(content, b) : TG_ENOMEM;
}

/* The blocks of choices[0].message: text (string or text parts, else the refusal), then the
 * tool calls. */
static int message_content(const json_t *msg, const char *msg_id, json_t *content)
{
    const json_t *c = json_object_get(msg, "content");
    int rc = 0;
    if (json_is_array(c)) {
        size_t i;
        const json_t *part;
        json_array_foreach(c, i, part)
        {
            if (rc == 0)
                rc = text_block(content, json_object_get(part, "text"));
        }
    } else {
        rc = text_block(content, c);
    }
    if (rc == 0 && json_array_size(content) == 0)
        rc = text_block(content, json_object_get(msg, "refusal"));
    const json_t *calls = json_object_get(msg, "tool_calls");
    json_t *legacy = NULL;
    if (!json_is_array(calls) && json_is_object(json_object_get(msg, "function_call")))
        calls = legacy = json_pack("[{s:O}]", "function", json_object_get(msg, "function_call"));
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const json_t *id = json_object_get(tc, "id");
        const json_t *name = json_object_get(fn, "name");
        char synth[160];
        snprintf(synth, sizeof(synth), "toolu_%s_%zu", msg_id + 4, i); /* past "msg_" */
        json_t *b =
            json_pack("{s:s,s:o,s:o,s:o}", "type", "tool_use", "id",
                      nonempty_str(id) ? json_incref((json_t *)id) : json_string(synth), "name",
                      json_is_string(name) ? json_incref((json_t *)name) : json_string(""), "input",
                      tool_input(json_object_get(fn, "arguments")));
        if (rc == 0)
            rc = b ? dp_json_push(content, b) : TG_ENOMEM;
        else
            json_decref(b);
    }
    json_decref(legacy);
    return rc;
}

int dp_msgs_response_from_openai(int status, const char *body, size_t n, const char *model,
                                 tg_buf_t *out)
{
    if (status < 200 || status > 299)
        return error_from_openai(status, body, n, out);
    json_t *root = json_loadb(body, n, 0, NULL);
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        json_decref(root);
        return TG_EUPSTREAM; /* the proxy answers 502 */
    }
    /* msg_<upstream id>, without OpenAI's own prefix */
    const json_t *id = json_object_get(root, "id");
    const char *ids = nonempty_str(id) ? json_string_value(id) : "unknown";
    size_t idn = nonempty_str(id) ? json_string_length(id) : 7;
    if (idn > 9 && memcmp(ids, "chatcmpl-", 9) == 0) {
        ids += 9;
        idn -= 9;
    }
    tg_buf_t mid = TG_BUF_INIT(4096);
    json_t *content = json_array();
    int rc = content ? tg_buf_appendf(&mid, "msg_%.*s", (int)idn, ids) : TG_ENOMEM;
    if (rc == 0)
        rc = tg_buf_append(&mid, "", 1);
    if (rc == 0)
        rc = message_content(msg, mid.base, content);
    bool has_tools = false;
    size_t i;
    const json_t *b;
    json_array_foreach(content, i, b)
    {
        if (dp_json_str_eq(json_object_get(b, "type"), "tool_use"))
            has_tools = true;
    }
    const json_t *fr = json_object_get(choice, "finish_reason");
    const char *sr = stop_reason(json_is_string(fr) ? json_string_value(fr) : "",
                                 json_is_string(fr) ? json_string_length(fr) : 0, has_tools);
    dp_usage_t u;
    memset(&u, 0, sizeof(u));
    (void)dp_usage_from_json(&u, json_object_get(root, "usage"));
    size_t mark = out->len;
    if (rc == 0)
        rc = dp_str_append(out, "{\"id\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, mid.base, mid.len - 1);
    if (rc == 0)
        rc = dp_str_append(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, model ? model : "", model ? strlen(model) : 0);
    if (rc == 0)
        rc = dp_str_append(out, ",\"content\":");
    if (rc == 0)
        rc = dp_json_append(out, content);
    if (rc == 0)
        rc = tg_buf_appendf(out, ",\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":", sr);
    if (rc == 0)
        rc = usage_append(out, &u);
    if (rc == 0)
        rc = dp_str_append(out, "}");
    if (rc != 0)
        out->len = mark;
    tg_buf_dispose(&mid);
    json_decref(content);
    json_decref(root);
    return rc;
}

/* The provider's message from an OpenAI error body ({"error":{"message"}}, {"error":"..."} or
 * {"message"}); else the body itself when it is short UTF-8 text. */
static int error_from_openai(int status, const char *body, size_t n, tg_buf_t *out)
{
    json_t *root = json_loadb(body, n, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    if (!json_is_string(m))
        m = json_object_get(root, "message");
    int rc;
    if (nonempty_str(m)) {
        rc = dp_msgs_error_append(out, status, json_string_value(m), json_string_length(m));
    } else {
        json_t *raw = !root && n > 0 && n <= 1024 ? json_stringn(body, n) : NULL;
        char msg[64];
        if (snprintf(msg, sizeof(msg), "the provider answered with status %d", status) < 0)
            msg[0] = '\0';
        rc =
            raw ? dp_msgs_error_append(out, status, json_string_value(raw), json_string_length(raw))
                : dp_msgs_error_append(out, status, msg, strlen(msg));
        json_decref(raw);
    }
    json_decref(root);
    return rc;
}

/* ---- streams ---- */

/* Whether streamed tool arguments form a complete JSON object or array yet: a tool block is
 * closed for another only once its arguments are whole, so late fragments never miss it. */
typedef struct json_scan {
    int64_t depth;
    bool started, in_str, esc, done;
} json_scan_t;

static void scan_feed(json_scan_t *j, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !j->done; i++) {
        char c = p[i];
        if (!j->started) {
            if (c == '{' || c == '[') {
                j->started = true;
                j->depth = 1;
            } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                j->started = true; /* not an object: it can never be known complete */
                j->depth = -1;
            }
        } else if (j->depth < 0) {
            return;
        } else if (j->in_str) {
            if (j->esc)
                j->esc = false;
            else if (c == '\\')
                j->esc = true;
            else if (c == '"')
                j->in_str = false;
        } else if (c == '"') {
            j->in_str = true;
        } else if (c == '{' || c == '[') {
            j->depth++;
        } else if (c == '}' || c == ']') {
            if (--j->depth == 0)
                j->done = true;
        }
    }
}

enum { TOOL_WAITING = 0, TOOL_OPEN, TOOL_CLOSED };
enum { BLOCK_NONE = 0, BLOCK_TEXT, BLOCK_TOOL };

typedef struct tool_call {
    int64_t oa_index; /* OpenAI's tool_calls[].index; -1 once another call reused it */
    json_t *id;       /* owned string, or NULL until the upstream names it */
    json_t *name;     /* owned string, or NULL */
    tg_buf_t args;    /* owned: arguments not yet sent (while waiting for its turn) */
    json_scan_t scan;
    int64_t seq; /* arrival order */
    int state;   /* TOOL_* */
    int64_t block;
} tool_call_t;

struct dp_msgs_stream {
    char *model;      /* owned */
    char *request_id; /* owned */
    char *msg_id;     /* owned: msg_<request id> */
    dp_sse_t sse;
    tg_buf_t data_scratch;
    tool_call_t *tools; /* owned, in arrival order */
    size_t ntools;
    size_t cap;
    tg_buf_t text_wait; /* text that arrived while a tool block had to stay open */
    bool text_waiting;
    int64_t text_seq;
    int open;         /* BLOCK_* */
    size_t open_tool; /* index in tools when open is BLOCK_TOOL */
    int64_t open_block;
    int64_t next_block;
    int64_t seq;
    bool started;     /* message_start was sent */
    bool finish_seen; /* the choice's finish_reason arrived */
    bool usage_final; /* usage arrived with or after finish_reason */
    bool finished;    /* message_stop was sent */
    bool failed;      /* an error event was sent */
    char finish[32];  /* the finish_reason, as far as it fits */
    size_t finish_len;
    dp_usage_t usage; /* present once the upstream reported it */
};

dp_msgs_stream_t *dp_msgs_stream_create(const char *model, const char *request_id)
{
    dp_msgs_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->model = strdup(model ? model : "");
    s->request_id = strdup(request_id ? request_id : "");
    size_t n = s->request_id ? strlen(s->request_id) + 5 : 0;
    s->msg_id = n ? malloc(n) : NULL;
    if (s->msg_id)
        snprintf(s->msg_id, n, "msg_%s", s->request_id);
    if (!s->model || !s->request_id || !s->msg_id) {
        dp_msgs_stream_destroy(s);
        return NULL;
    }
    dp_sse_init(&s->sse, MAX_SSE_EVENT);
    tg_buf_init(&s->data_scratch, MAX_SSE_EVENT);
    tg_buf_init(&s->text_wait, MAX_PENDING);
    return s;
}

void dp_msgs_stream_destroy(dp_msgs_stream_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntools; i++) {
        json_decref(s->tools[i].id);
        json_decref(s->tools[i].name);
        tg_buf_dispose(&s->tools[i].args);
    }
    free(s->tools);
    dp_sse_dispose(&s->sse);
    tg_buf_dispose(&s->data_scratch);
    tg_buf_dispose(&s->text_wait);
    free(s->model);
    free(s->request_id);
    free(s->msg_id);
    free(s);
}

/* ---- event writers ---- */

static int ev_begin(tg_buf_t *out, const char *name)
{
    return tg_buf_appendf(out, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

static int ev_end(tg_buf_t *out)
{
    return tg_buf_append(out, "}\n\n", 3);
}

static int emit_message_start(dp_msgs_stream_t *s, tg_buf_t *out)
{
    s->started = true;
    int rc = ev_begin(out, "message_start");
    if (rc == 0)
        rc = dp_str_append(out, ",\"message\":{\"id\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, s->msg_id, strlen(s->msg_id));
    if (rc == 0)
        rc = dp_str_append(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, s->model, strlen(s->model));
    if (rc == 0)
        rc = dp_str_append(
            out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    if (rc == 0) /* zeros unless the first chunk already carried usage */
        rc = usage_append(out, &s->usage);
    if (rc == 0)
        rc = dp_str_append(out, "}");
    return rc == 0 ? ev_end(out) : rc;
}

static int emit_delta(dp_msgs_stream_t *s, const char *kind, const char *field, const char *p,
                      size_t n, tg_buf_t *out)
{
    int rc = ev_begin(out, "content_block_delta");
    if (rc == 0)
        rc = tg_buf_appendf(out, ",\"index\":%lld,\"delta\":{\"type\":\"%s\",\"%s\":",
                            (long long)s->open_block, kind, field);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, p, n);
    if (rc == 0)
        rc = dp_str_append(out, "}");
    return rc == 0 ? ev_end(out) : rc;
}

static int block_stop(dp_msgs_stream_t *s, tg_buf_t *out)
{
    if (s->open == BLOCK_NONE)
        return 0;
    if (s->open == BLOCK_TOOL)
        s->tools[s->open_tool].state = TOOL_CLOSED;
    s->open = BLOCK_NONE;
    int rc = ev_begin(out, "content_block_stop");
    if (rc == 0)
        rc = tg_buf_appendf(out, ",\"index\":%lld", (long long)s->open_block);
    return rc == 0 ? ev_end(out) : rc;
}

static int text_start(dp_msgs_stream_t *s, tg_buf_t *out)
{
    s->open = BLOCK_TEXT;
    s->open_block = s->next_block++;
    int rc = ev_begin(out, "content_block_start");
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            ",\"index\":%lld,\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
                            (long long)s->open_block);
    return rc == 0 ? ev_end(out) : rc;
}

/* Opens tool i's block and sends the arguments it held back. */
static int tool_start(dp_msgs_stream_t *s, size_t i, tg_buf_t *out)
{
    tool_call_t *t = &s->tools[i];
    s->open = BLOCK_TOOL;
    s->open_tool = i;
    s->open_block = s->next_block++;
    t->state = TOOL_OPEN;
    t->block = s->open_block;
    if (!t->id) { /* the upstream gave none: one the client can send back */
        char id[192];
        if (snprintf(id, sizeof(id), "toolu_%s_%lld", s->request_id, (long long)t->block) < 0)
            id[0] = '\0';
        t->id = json_string(id);
        if (!t->id)
            return TG_ENOMEM;
    }
    int rc = ev_begin(out, "content_block_start");
    if (rc == 0)
        rc = tg_buf_appendf(out, ",\"index\":%lld,\"content_block\":{\"type\":\"tool_use\",\"id\":",
                            (long long)t->block);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, json_string_value(t->id), json_string_length(t->id));
    if (rc == 0)
        rc = dp_str_append(out, ",\"name\":");
    if (rc == 0)
        rc = t->name ? tg_buf_append_json_str(out, json_string_value(t->name),
                                              json_string_length(t->name))
                     : dp_str_append(out, "\"\"");
    if (rc == 0)
        rc = dp_str_append(out, ",\"input\":{}}");
    if (rc == 0)
        rc = ev_end(out);
    if (rc == 0 && t->args.len > 0)
        rc = emit_delta(s, "input_json_delta", "partial_json", t->args.base, t->args.len, out);
    tg_buf_dispose(&t->args);
    tg_buf_init(&t->args, MAX_PENDING);
    return rc;
}

/* The open block may be closed for another: text always, a tool once its arguments are whole. */
static bool open_can_close(const dp_msgs_stream_t *s)
{
    return s->open != BLOCK_TOOL || s->tools[s->open_tool].scan.done;
}

/* The earliest item held back: a tool (its index in *tool) or the text (*is_text). */
static bool next_waiting(const dp_msgs_stream_t *s, size_t *tool, bool *is_text)
{
    bool found = false;
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < s->ntools; i++) {
        if (s->tools[i].state == TOOL_WAITING && s->tools[i].seq < best) {
            best = s->tools[i].seq;
            *tool = i;
            *is_text = false;
            found = true;
        }
    }
    if (s->text_waiting && s->text_seq < best) {
        *is_text = true;
        found = true;
    }
    return found;
}

/* Opens held-back items in arrival order while the open block may close; with force (the
 * answer is over), all of them, named or not. */
static int advance(dp_msgs_stream_t *s, bool force, tg_buf_t *out)
{
    for (;;) {
        size_t i = 0;
        bool is_text = false;
        if (!force && !open_can_close(s))
            return 0;
        if (!next_waiting(s, &i, &is_text))
            return 0;
        if (!force && !is_text && !s->tools[i].name)
            return 0; /* a block start needs the name: wait for it */
        int rc = block_stop(s, out);
        if (rc != 0)
            return rc;
        if (is_text) {
            s->text_waiting = false;
            rc = text_start(s, out);
            if (rc == 0)
                rc = emit_delta(s, "text_delta", "text", s->text_wait.base, s->text_wait.len, out);
            tg_buf_reset(&s->text_wait);
        } else {
            rc = tool_start(s, i, out);
        }
        if (rc != 0)
            return rc;
    }
}

static int on_text(dp_msgs_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    size_t i;
    bool is_text;
    if (n == 0)
        return 0;
    if (s->open == BLOCK_TEXT)
        return emit_delta(s, "text_delta", "text", p, n, out);
    if (!next_waiting(s, &i, &is_text) && open_can_close(s)) {
        int rc = block_stop(s, out);
        if (rc == 0)
            rc = text_start(s, out);
        return rc == 0 ? emit_delta(s, "text_delta", "text", p, n, out) : rc;
    }
    /* a tool block with unfinished arguments is open: the text follows it */
    if (!s->text_waiting) {
        s->text_waiting = true;
        s->text_seq = s->seq++;
    }
    int rc = tg_buf_append(&s->text_wait, p, n);
    return rc == 0 ? advance(s, false, out) : rc;
}

/* The call a tool_calls[] fragment belongs to, made when new. By index; a known index with
 * another id is a new call (servers that number every call 0); without an index, by id or the
 * latest call. */
static int tool_for(dp_msgs_stream_t *s, int64_t idx, const json_t *id, size_t *out)
{
    size_t i;
    for (i = 0; i < s->ntools; i++) {
        const tool_call_t *t = &s->tools[i];
        if (idx >= 0 ? t->oa_index == idx : (id && t->id && json_equal(t->id, (json_t *)id)))
            break;
    }
    if (idx < 0 && !id && s->ntools > 0)
        i = s->ntools - 1;
    if (i < s->ntools && idx >= 0 && id && s->tools[i].id &&
        !json_equal(s->tools[i].id, (json_t *)id)) {
        s->tools[i].oa_index = -1;
        i = s->ntools;
    }
    if (i < s->ntools) {
        *out = i;
        return 0;
    }
    if (s->ntools == MAX_TOOL_CALLS)
        return TG_ETOOBIG;
    if (s->ntools == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        tool_call_t *t = realloc(s->tools, cap * sizeof(*t));
        if (!t)
            return TG_ENOMEM;
        s->tools = t;
        s->cap = cap;
    }
    tool_call_t *t = &s->tools[s->ntools];
    memset(t, 0, sizeof(*t));
    t->oa_index = idx;
    t->seq = s->seq++;
    t->state = TOOL_WAITING;
    tg_buf_init(&t->args, MAX_PENDING);
    *out = s->ntools++;
    return 0;
}

static int on_tool_fragment(dp_msgs_stream_t *s, const json_t *tc, tg_buf_t *out)
{
    const json_t *index = json_object_get(tc, "index");
    const json_t *id = json_object_get(tc, "id");
    const json_t *fn = json_object_get(tc, "function");
    const json_t *name = json_object_get(fn, "name");
    const json_t *args = json_object_get(fn, "arguments");
    int64_t idx =
        json_is_integer(index) && json_integer_value(index) >= 0 ? json_integer_value(index) : -1;
    size_t i;
    int rc = tool_for(s, idx, nonempty_str(id) ? id : NULL, &i);
    if (rc != 0)
        return rc;
    tool_call_t *t = &s->tools[i];
    if (!t->id && nonempty_str(id))
        t->id = json_incref((json_t *)id);
    if (!t->name && nonempty_str(name))
        t->name = json_incref((json_t *)name);
    const char *a = json_is_string(args) ? json_string_value(args) : "";
    size_t an = json_is_string(args) ? json_string_length(args) : 0;
    if (an > 0 && t->state != TOOL_CLOSED) {
        scan_feed(&t->scan, a, an);
        if (t->state == TOOL_OPEN)
            rc = emit_delta(s, "input_json_delta", "partial_json", a, an, out);
        else
            rc = tg_buf_append(&t->args, a, an);
    }
    /* a fragment for a closed block (its arguments were already whole, or the answer ended)
     * cannot be sent any more: it is dropped */
    return rc == 0 ? advance(s, false, out) : rc;
}

static int finalize(dp_msgs_stream_t *s, tg_buf_t *out)
{
    int rc = 0;
    if (s->finished || s->failed)
        return 0;
    if (!s->started)
        rc = emit_message_start(s, out);
    if (rc == 0)
        rc = advance(s, true, out);
    if (rc == 0)
        rc = block_stop(s, out);
    if (rc == 0)
        rc = ev_begin(out, "message_delta");
    if (rc == 0)
        rc = tg_buf_appendf(out,
                            ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                            "\"usage\":",
                            stop_reason(s->finish, s->finish_len, s->ntools > 0));
    if (rc == 0)
        rc = s->usage.present ? usage_append(out, &s->usage)
                              : dp_str_append(out, "{\"output_tokens\":0}");
    if (rc == 0)
        rc = ev_end(out);
    if (rc == 0)
        rc = ev_begin(out, "message_stop");
    if (rc == 0)
        rc = ev_end(out);
    s->finished = true;
    return rc;
}

/* The HTTP status an OpenAI error object stands for, from its code or type. */
static int error_status(const json_t *e)
{
    static const struct {
        const char *word;
        int status;
    } words[] = {{"rate_limit", 429},      {"overloaded", 529},      {"authentication", 401},
                 {"invalid_api_key", 401}, {"permission", 403},      {"not_found", 404},
                 {"too_large", 413},       {"invalid_request", 400}, {"context_length", 400}};
    const json_t *code = json_object_get(e, "code");
    if (json_is_integer(code) && json_integer_value(code) >= 400 && json_integer_value(code) < 600)
        return (int)json_integer_value(code);
    const json_t *fields[] = {code, json_object_get(e, "type")};
    for (size_t f = 0; f < 2; f++) {
        if (!json_is_string(fields[f]))
            continue;
        const char *v = json_string_value(fields[f]);
        size_t n = json_string_length(fields[f]);
        for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
            if (tg_memmem(v, n, words[w].word, strlen(words[w].word)))
                return words[w].status;
    }
    return 500;
}

static int emit_error(dp_msgs_stream_t *s, const json_t *e, tg_buf_t *out)
{
    static const char dflt[] = "the provider reported an error";
    const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    s->failed = true;
    if (nonempty_str(m))
        return dp_msgs_error_event_append(out, error_status(e), json_string_value(m),
                                          json_string_length(m));
    return dp_msgs_error_event_append(out, error_status(e), dflt, sizeof(dflt) - 1);
}

/* choices[0] of a chunk: its delta's text, refusal and tool calls, then its finish_reason. */
static int on_choice(dp_msgs_stream_t *s, const json_t *choice, tg_buf_t *out)
{
    const json_t *delta = json_object_get(choice, "delta");
    const json_t *content = json_object_get(delta, "content");
    const json_t *refusal = json_object_get(delta, "refusal");
    const json_t *calls = json_object_get(delta, "tool_calls");
    const json_t *fcall = json_object_get(delta, "function_call");
    int rc = 0;
    if (json_is_string(content))
        rc = on_text(s, json_string_value(content), json_string_length(content), out);
    if (rc == 0 && json_is_string(refusal))
        rc = on_text(s, json_string_value(refusal), json_string_length(refusal), out);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        if (rc == 0)
            rc = on_tool_fragment(s, tc, out);
    }
    if (rc == 0 && json_is_object(fcall)) { /* the legacy single call */
        json_t *tc0 = json_pack("{s:i,s:O}", "index", 0, "function", fcall);
        rc = tc0 ? on_tool_fragment(s, tc0, out) : TG_ENOMEM;
        json_decref(tc0);
    }
    const json_t *fr = json_object_get(choice, "finish_reason");
    if (rc == 0 && json_is_string(fr) && json_string_length(fr) > 0) {
        s->finish_seen = true;
        s->finish_len = json_string_length(fr) < sizeof(s->finish) ? json_string_length(fr) : 0;
        memcpy(s->finish, json_string_value(fr), s->finish_len);
    }
    return rc;
}

static int on_chunk(dp_msgs_stream_t *s, const char *data, size_t len, tg_buf_t *out)
{
    if (tg_mem_eq(data, len, "[DONE]", 6))
        return finalize(s, out);
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return 0; /* not a chunk: nothing the client could use */
    }
    int rc = 0;
    const json_t *e = json_object_get(root, "error");
    if (e && !json_is_null(e)) {
        rc = emit_error(s, e, out);
        json_decref(root);
        return rc;
    }
    const json_t *u = json_object_get(root, "usage");
    bool has_usage = json_is_object(u) && dp_usage_from_json(&s->usage, u);
    if (!s->started)
        rc = emit_message_start(s, out);
    /* n > 1 has no Anthropic form: the first choice only */
    const json_t *choices = json_object_get(root, "choices");
    size_t i;
    const json_t *c;
    json_array_foreach(choices, i, c)
    {
        const json_t *ci = json_object_get(c, "index");
        if (rc == 0 && (!ci || (json_is_integer(ci) && json_integer_value(ci) == 0))) {
            rc = on_choice(s, c, out);
            break;
        }
    }
    json_decref(root);
    /* OpenAI sends usage in a chunk of its own after the finish_reason one: message_delta
     * waits for it */
    if (rc == 0 && has_usage && s->finish_seen)
        s->usage_final = true;
    if (rc == 0 && s->finish_seen && s->usage_final)
        rc = finalize(s, out);
    return rc;
}

typedef struct feed_ctx {
    dp_msgs_stream_t *s;
    tg_buf_t *out;
} feed_ctx_t;

static int on_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    dp_msgs_stream_t *s = f->s;
    const char *data;
    size_t len;
    if (s->finished || s->failed)
        return 0;
    if (!dp_sse_data(ev, n, &s->data_scratch, &data, &len)) {
        /* a keep-alive comment: Anthropic's ping keeps the client's idle timer quiet (not before
         * message_start, which would commit the client's stream before any answer) */
        if (!s->started)
            return 0;
        int rc = ev_begin(f->out, "ping");
        return rc == 0 ? ev_end(f->out) : rc;
    }
    return on_chunk(s, data, len, f->out);
}

int dp_msgs_stream_feed(dp_msgs_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    if (!s)
        return TG_EINVAL;
    feed_ctx_t f = {s, out};
    return dp_sse_feed(&s->sse, p, n, on_event, &f);
}

int dp_msgs_stream_end(dp_msgs_stream_t *s, bool complete, tg_buf_t *out)
{
    /* a broken stream ends as it is: the proxy writes the error event, and a message_stop
     * would tell the client the answer was whole */
    if (!s || !complete || s->finished || s->failed)
        return 0;
    int rc = 0;
    if (dp_sse_pending(&s->sse) > 0) { /* an unterminated last event */
        feed_ctx_t f = {s, out};
        rc = on_event(&f, s->sse.partial.base, s->sse.partial.len);
        tg_buf_reset(&s->sse.partial);
    }
    return rc == 0 ? finalize(s, out) : rc;
}

/* ---- errors ---- */

int dp_msgs_error_append(tg_buf_t *out, int status, const char *message, size_t n)
{
    size_t mark = out->len;
    int rc = tg_buf_appendf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
                            tg_error_type_anthropic(status));
    if (rc == 0)
        rc = tg_buf_append_json_str(out, message, n);
    if (rc == 0)
        rc = tg_buf_append(out, "}}", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int dp_msgs_error_event_append(tg_buf_t *out, int status, const char *message, size_t n)
{
    size_t mark = out->len;
    int rc = tg_buf_append(out, "event: error\ndata: ", 19);
    if (rc == 0)
        rc = dp_msgs_error_append(out, status, message, n);
    if (rc == 0)
        rc = tg_buf_append(out, "\n\n", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

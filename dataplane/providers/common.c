/* common.c: what every adapter needs: JSON and SSE writers, OpenAI error objects, answers and
 * chunks, embeddings in float or base64 form, headers, URL segments, request-build errors, and
 * the per-attempt stream state. Pure; runs on the request's loop thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

#include "tg_banned.h"

#define SECRET_LINE_MAX 16384 /* a credential header line with its NUL */
#define SECRET_LINE_STACK 512 /* one that fits is built on the stack */

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

int dp_buf_append_strs(tg_buf_t *out, ...)
{
    size_t mark = out->len;
    int rc = 0;
    va_list ap;
    va_start(ap, out);
    for (const char *s = va_arg(ap, const char *); rc == 0 && s; s = va_arg(ap, const char *))
        rc = tg_buf_append(out, s, strlen(s));
    va_end(ap);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int dp_json_append(tg_buf_t *out, const json_t *v)
{
    return json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? 0 : TG_ENOMEM;
}

int dp_sse_append_json(tg_buf_t *out, const char *name, const json_t *v)
{
    size_t mark = out->len;
    int rc = name ? dp_buf_append_strs(out, "event: ", name, "\n", NULL) : 0;
    if (rc == 0)
        rc = tg_buf_append(out, "data: ", 6);
    if (rc == 0)
        rc = dp_json_append(out, v);
    if (rc == 0)
        rc = tg_buf_append(out, "\n\n", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int dp_sse_append_done(dp_stream_state_t *st, tg_buf_t *out)
{
    st->done = true;
    return tg_buf_append(out, "data: [DONE]\n\n", 14);
}

bool dp_embedding_wants_base64(const dp_reqbody_t *rb)
{
    return rb->base64;
}

int dp_embedding_append(tg_buf_t *out, const json_t *values, bool base64)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!json_is_array(values))
        return TG_EINVAL;
    if (!base64)
        return dp_json_append(out, values);
    size_t n = json_array_size(values);
    size_t mark = out->len;
    int rc = tg_buf_append(out, "\"", 1);
    uint8_t group[3];
    size_t g = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        float f = (float)json_number_value(json_array_get(values, i));
        uint32_t bits;
        memcpy(&bits, &f, sizeof(bits));
        for (int b = 0; rc == 0 && b < 4; b++) { /* little-endian, as numpy's float32 */
            group[g++] = (uint8_t)(bits >> (8 * b));
            if (g == 3) {
                char q[4] = {b64[group[0] >> 2], b64[((group[0] & 3) << 4) | (group[1] >> 4)],
                             b64[((group[1] & 15) << 2) | (group[2] >> 6)], b64[group[2] & 63]};
                rc = tg_buf_append(out, q, 4);
                g = 0;
            }
        }
    }
    if (rc == 0 && g > 0) {
        char q[4] = {b64[group[0] >> 2], '=', '=', '='};
        if (g == 1) {
            q[1] = b64[(group[0] & 3) << 4];
        } else {
            q[1] = b64[((group[0] & 3) << 4) | (group[1] >> 4)];
            q[2] = b64[(group[1] & 15) << 2];
        }
        rc = tg_buf_append(out, q, 4);
    }
    if (rc == 0)
        rc = tg_buf_append(out, "\"", 1);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* memset through a volatile pointer: a wipe of a buffer about to die is not optimised away */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

int dp_header_add_secret(dp_header_add_fn add, void *ud, const char *name, const char *value)
{
    return dp_header_add_secret_pre(add, ud, name, "", value);
}

int dp_header_add_secret_pre(dp_header_add_fn add, void *ud, const char *name, const char *prefix,
                             const char *value)
{
    size_t nn = strlen(name), np = strlen(prefix), nv = strlen(value);
    if (nv > SECRET_LINE_MAX - 3 || nn + np > SECRET_LINE_MAX - 3 - nv)
        return TG_ETOOBIG;
    size_t n = nn + 2 + np + nv + 1;
    /* built on the stack (add copies it): a credential line allocates nothing unless it is long */
    char stack[SECRET_LINE_STACK];
    char *line = n <= sizeof(stack) ? stack : malloc(n);
    if (!line)
        return TG_ENOMEM;
    memcpy(line, name, nn);
    memcpy(line + nn, ": ", 2);
    memcpy(line + nn + 2, prefix, np);
    memcpy(line + nn + 2 + np, value, nv + 1);
    int rc = add(ud, line);
    /* the credential must not linger in freed memory or a dead stack frame */
    wipe(line, 0, n);
    if (line != stack)
        free(line);
    return rc;
}

int dp_url_append_segment(tg_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (keep) {
            rc = tg_buf_append(out, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = tg_buf_append(out, e, 3);
        }
    }
    return rc;
}

int dp_header_add_json(dp_header_add_fn add, void *ud, const char *accept)
{
    char line[128] = "Accept: ";
    size_t n = strlen(accept);
    if (n > sizeof(line) - 9)
        n = sizeof(line) - 9; /* as snprintf cut it: accept is one of our own constants */
    memcpy(line + 8, accept, n);
    line[8 + n] = '\0';
    int rc = add(ud, "Content-Type: application/json");
    if (rc == 0)
        rc = add(ud, line);
    if (rc == 0)
        rc = add(ud, "Expect:"); /* no 100-continue round trip for large bodies */
    return rc;
}

int dp_header_add_extra(const tg_provider_t *p, dp_header_add_fn add, void *ud)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->nheaders; i++)
        rc = add(ud, p->headers[i]);
    return rc;
}

/* ---- small JSON and text helpers ---- */

bool dp_json_str_eq(const json_t *v, const char *lit)
{
    return json_is_string(v) &&
           tg_mem_eq(json_string_value(v), json_string_length(v), lit, strlen(lit));
}

int dp_json_set(json_t *obj, const char *key, json_t *v)
{
    if (!v)
        return TG_ENOMEM;
    return json_object_set_new(obj, key, v) == 0 ? 0 : TG_ENOMEM;
}

int dp_json_push(json_t *arr, json_t *v)
{
    if (!v)
        return TG_ENOMEM;
    return json_array_append_new(arr, v) == 0 ? 0 : TG_ENOMEM;
}

int dp_str_append(tg_buf_t *out, const char *s)
{
    return tg_buf_append(out, s, strlen(s));
}

bool dp_has_prefix(const char *p, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n >= pn && memcmp(p, prefix, pn) == 0;
}

/* For providers that want user and assistant turns to alternate; NULL items are out of memory. */
int dp_json_turn_append(json_t *turns, const char *role, const char *key, json_t *items)
{
    if (!items)
        return TG_ENOMEM;
    int rc = 0;
    size_t n = json_array_size(turns);
    json_t *last = n > 0 ? json_array_get(turns, n - 1) : NULL;
    if (json_array_size(items) == 0) {
        /* nothing to send: an empty turn would be refused */
    } else if (last && dp_json_str_eq(json_object_get(last, "role"), role)) {
        rc = json_array_extend(json_object_get(last, key), items) == 0 ? 0 : TG_ENOMEM;
    } else {
        rc = dp_json_push(turns, json_pack("{s:s,s:O}", "role", role, key, items));
    }
    json_decref(items);
    return rc;
}

/* A string or an array of strings (empty arrays too: providers differ on sending them). */
int dp_stop_sequences(const json_t *stop, json_t **seqs)
{
    *seqs = NULL;
    if (!stop || json_is_null(stop))
        return 0;
    if (json_is_string(stop)) {
        *seqs = json_pack("[O]", stop);
        return *seqs ? 0 : TG_ENOMEM;
    }
    if (!json_is_array(stop))
        return TG_EINVAL;
    size_t i;
    const json_t *s;
    json_array_foreach(stop, i, s)
    {
        if (!json_is_string(s))
            return TG_EINVAL;
    }
    *seqs = json_copy((json_t *)stop);
    return *seqs ? 0 : TG_ENOMEM;
}

/* u starts with "data:" (the caller checked, with its own case rule). */
bool dp_data_url_split(const char *u, size_t n, const char **mime, size_t *mime_len,
                       const char **data, size_t *data_len)
{
    /* data:<mime>[;param...];base64,<payload> */
    const char *comma = n > 5 ? memchr(u, ',', n) : NULL;
    const char *b64 = comma ? tg_memmem(u, (size_t)(comma - u), ";base64", 7) : NULL;
    if (!b64)
        return false;
    *mime = u + 5;
    const char *semi = memchr(*mime, ';', (size_t)(b64 - *mime));
    *mime_len = (size_t)((semi ? semi : b64) - *mime);
    *data = comma + 1;
    *data_len = n - (size_t)(*data - u);
    return true;
}

/* For content where only text may stand (system, tool results): the text parts are joined. A
 * missing content (NULL) is a 400 too; callers that allow it check first. */
int dp_content_text_append(tg_buf_t *out, const json_t *content, size_t mi, tg_err_t *err)
{
    if (json_is_string(content))
        return tg_buf_append(out, json_string_value(content), json_string_length(content));
    if (json_is_null(content))
        return 0;
    if (!json_is_array(content))
        return dp_build_invalid(err, "messages",
                                "messages[%zu].content must be a string or an array", mi);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const json_t *text = json_object_get(part, "text");
        if (!dp_json_str_eq(json_object_get(part, "type"), "text") || !json_is_string(text))
            return dp_build_invalid(err, "messages",
                                    "messages[%zu].content[%zu] must be a text part", mi, i);
        int rc = tg_buf_append(out, json_string_value(text), json_string_length(text));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- request-build errors ---- */

int dp_build_invalid(tg_err_t *err, const char *param, const char *fmt, ...)
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

int dp_build_nomem(tg_err_t *err, int rc)
{
    if (rc == TG_ETOOBIG) {
        tg_err_set(err, TG_ETOOBIG, 413, "could not build the upstream request: it is too large");
        return TG_ETOOBIG;
    }
    tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
    return TG_ENOMEM;
}

/* ---- tool calls ---- */

/* Missing, null and "" are {}; a string is parsed (NULL unless a JSON object or array); an
 * object is itself (a new reference); anything else is NULL. */
json_t *dp_tool_args_parse(const json_t *args)
{
    if (!args || json_is_null(args) || (json_is_string(args) && json_string_length(args) == 0))
        return json_object();
    if (json_is_string(args))
        return json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
    if (json_is_object(args))
        return json_incref((json_t *)args);
    return NULL;
}

/* A NULL id or name becomes null; arguments is input as compact JSON, {} when input is NULL,
 * written through scratch (reset first: its max bounds the text). */
json_t *dp_openai_tool_call_json(const json_t *id, const json_t *name, const json_t *input,
                                 tg_buf_t *scratch)
{
    tg_buf_reset(scratch);
    int rc = input ? dp_json_append(scratch, input) : tg_buf_append(scratch, "{}", 2);
    if (rc != 0)
        return NULL;
    return json_pack("{s:O?,s:s,s:{s:O?,s:s%}}", "id", id, "type", "function", "function", "name",
                     name, "arguments", scratch->base ? scratch->base : "", scratch->len);
}

/* ---- OpenAI answers and chunks ---- */

/* "tool_calls" only when calls is not empty; text may be NULL when n is 0. */
json_t *dp_openai_message_json(const char *text, size_t n, bool has_text, const json_t *calls)
{
    json_t *content = has_text ? json_stringn(text ? text : "", n) : json_null();
    json_t *m = content ? json_pack("{s:s,s:o}", "role", "assistant", "content", content) : NULL;
    if (m && json_array_size(calls) > 0 &&
        dp_json_set(m, "tool_calls", json_incref((json_t *)calls)) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *dp_openai_choice_json(int64_t index, json_t *message, const char *finish)
{
    if (!message)
        return NULL;
    return json_pack("{s:I,s:o,s:s}", "index", (json_int_t)index, "message", message,
                     "finish_reason", finish);
}

json_t *dp_openai_completion_json(const dp_stream_state_t *st, const char *id, const char *model,
                                  json_t *choices)
{
    if (!choices)
        return NULL;
    return json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", id, "object", "chat.completion", "created",
                     (json_int_t)st->created, "model", model, "choices", choices);
}

json_t *dp_openai_usage_json(const dp_usage_t *u, bool reasoning)
{
    if (reasoning)
        return json_pack("{s:I,s:I,s:I,s:{s:I},s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt,
                         "completion_tokens", (json_int_t)u->completion, "total_tokens",
                         (json_int_t)u->total, "prompt_tokens_details", "cached_tokens",
                         (json_int_t)u->cached, "completion_tokens_details", "reasoning_tokens",
                         (json_int_t)u->reasoning);
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt,
                     "completion_tokens", (json_int_t)u->completion, "total_tokens",
                     (json_int_t)u->total, "prompt_tokens_details", "cached_tokens",
                     (json_int_t)u->cached);
}

const char *dp_stream_model(const dp_stream_state_t *st)
{
    return st->model ? st->model : "";
}

int dp_openai_chunk_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                           int64_t index, json_t *delta, const char *finish)
{
    if (!delta)
        return TG_ENOMEM;
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[{s:I,s:o,s:s?}]}", "id", id, "object",
                          "chat.completion.chunk", "created", (json_int_t)st->created, "model",
                          dp_stream_model(st), "choices", "index", (json_int_t)index, "delta",
                          delta, "finish_reason", finish);
    int rc = c ? dp_sse_append_json(out, NULL, c) : TG_ENOMEM;
    json_decref(c);
    return rc;
}

int dp_openai_chunk_role_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                                int64_t index)
{
    return dp_openai_chunk_append(out, st, id, index,
                                  json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL);
}

int dp_openai_chunk_usage_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                                 bool reasoning)
{
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object", "chat.completion.chunk",
                          "created", (json_int_t)st->created, "model", dp_stream_model(st),
                          "choices", "usage", dp_openai_usage_json(&st->usage, reasoning));
    int rc = c ? dp_sse_append_json(out, NULL, c) : TG_ENOMEM;
    json_decref(c);
    return rc;
}

int dp_sse_append_error(tg_buf_t *out, int status, const char *message, size_t message_len,
                        const char *code)
{
    size_t mark = out->len;
    int rc = tg_buf_append(out, "data: ", 6);
    if (rc == 0)
        rc = tg_error_body(out, status, NULL, message, message_len, NULL, code);
    if (rc == 0)
        rc = tg_buf_append(out, "\n\n", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* Each vector as floats or base64, as the client asked (st->body); prompt_tokens is
 * st->usage.prompt. TG_EUPSTREAM when a vector is not an array; nothing written on failure. */
int dp_embedding_list_append(tg_buf_t *out, const dp_stream_state_t *st, const json_t *items,
                             const char *member, int64_t total_tokens)
{
    bool base64 = st->body && dp_embedding_wants_base64(st->body);
    const char *model = dp_stream_model(st);
    size_t mark = out->len;
    int rc = tg_buf_append(out, "{\"object\":\"list\",\"data\":[", 25);
    for (size_t i = 0; rc == 0 && i < json_array_size(items); i++) {
        const json_t *v = json_array_get(items, i);
        if (member)
            v = json_object_get(v, member);
        if (!json_is_array(v)) {
            rc = TG_EUPSTREAM;
            break;
        }
        rc = i ? tg_buf_append(out, ",", 1) : 0;
        rc = rc ? rc : tg_buf_append(out, "{\"object\":\"embedding\",\"index\":", 30);
        rc = rc ? rc : tg_buf_append_i64(out, (int64_t)i);
        rc = rc ? rc : tg_buf_append(out, ",\"embedding\":", 13);
        if (rc == 0)
            rc = dp_embedding_append(out, v, base64);
        if (rc == 0)
            rc = tg_buf_append(out, "}", 1);
    }
    if (rc == 0)
        rc = tg_buf_append(out, "],\"model\":", 10);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, model, strlen(model));
    if (rc == 0)
        rc = tg_buf_append(out, ",\"usage\":{\"prompt_tokens\":", 26);
    rc = rc ? rc : tg_buf_append_i64(out, st->usage.prompt);
    rc = rc ? rc : tg_buf_append(out, ",\"total_tokens\":", 16);
    rc = rc ? rc : tg_buf_append_i64(out, total_tokens);
    rc = rc ? rc : tg_buf_append(out, "}}", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

#define MAX_SSE_EVENT (4u << 20)

void dp_stream_state_init(dp_stream_state_t *st, int endpoint, bool client_wants_usage)
{
    memset(st, 0, sizeof(*st));
    st->endpoint = endpoint;
    st->client_wants_usage = client_wants_usage;
    dp_sse_init(&st->sse, MAX_SSE_EVENT);
    tg_buf_init(&st->scratch, 4u << 20);
    tg_buf_init(&st->data_scratch, 4u << 20);
}

void dp_stream_state_reset(dp_stream_state_t *st)
{
    if (st->priv && st->priv_free)
        st->priv_free(st->priv);
    st->priv = NULL;
    st->priv_free = NULL;
    memset(&st->usage, 0, sizeof(st->usage));
    st->content_events = 0;
    st->done = false;
    dp_sse_dispose(&st->sse);
    dp_sse_init(&st->sse, MAX_SSE_EVENT);
    tg_buf_reset(&st->scratch);
    tg_buf_reset(&st->data_scratch);
}

void dp_stream_state_dispose(dp_stream_state_t *st)
{
    if (st->priv && st->priv_free)
        st->priv_free(st->priv);
    st->priv = NULL;
    dp_sse_dispose(&st->sse);
    tg_buf_dispose(&st->scratch);
    tg_buf_dispose(&st->data_scratch);
}

const dp_provider_ops_t *dp_provider_ops(int kind)
{
    switch (kind) {
    case TG_PROVIDER_OPENAI:
        return &dp_provider_openai;
    case TG_PROVIDER_AZURE:
        return &dp_provider_azure;
    case TG_PROVIDER_ANTHROPIC:
        return &dp_provider_anthropic;
    case TG_PROVIDER_GEMINI:
        return &dp_provider_gemini;
    case TG_PROVIDER_BEDROCK:
        return &dp_provider_bedrock;
    default:
        return NULL;
    }
}

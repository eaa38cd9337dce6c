/* responses_upstream.c: chat completions served by a Responses-only upstream: the chat request is
 * translated into a Responses request, the response object or its events back into a chat
 * completion or chunks. Pure; stream state lives in st->priv and runs on the loop thread. */
#include "responses_upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "sse.h"
#include "tg_errors.h"
#include "usage.h"

#include "tg_banned.h"

#define MAX_TEXT (64u << 20) /* joined text of one message, bounded by the body limit */
#define MAX_CALLS 512        /* function calls in one streamed answer */

static bool nonempty_str(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static bool absent(const json_t *v)
{
    return !v || json_is_null(v);
}

static const char *target_name(const char *target)
{
    return target && target[0] ? target : "this provider";
}

/* ---- request: chat -> Responses ---- */

/* Text of a content (a string, or text parts), as one string. */
static int content_text(const json_t *c, size_t mi, json_t **out, tg_err_t *err)
{
    if (absent(c)) {
        *out = json_string("");
        return *out ? 0 : dp_build_nomem(err, TG_ENOMEM);
    }
    if (json_is_string(c)) {
        *out = json_incref((json_t *)c);
        return 0;
    }
    tg_buf_t b = TG_BUF_INIT(MAX_TEXT);
    int rc = dp_content_text_append(&b, c, mi, err);
    if (rc == 0) {
        *out = json_stringn(b.base ? b.base : "", b.len);
        if (!*out)
            rc = dp_build_nomem(err, TG_ENOMEM);
    } else if (rc != TG_EINVAL) {
        rc = dp_build_nomem(err, rc);
    }
    tg_buf_dispose(&b);
    return rc;
}

/* A user message's parts -> input parts. */
static int user_parts(const json_t *c, size_t mi, const char *target, json_t **out, tg_err_t *err)
{
    json_t *parts = json_array();
    if (!parts)
        return dp_build_nomem(err, TG_ENOMEM);
    size_t i;
    const json_t *p;
    json_array_foreach(c, i, p)
    {
        const json_t *type = json_object_get(p, "type");
        json_t *np = NULL;
        if (dp_json_str_eq(type, "text") && json_is_string(json_object_get(p, "text"))) {
            np = json_pack("{s:s,s:O}", "type", "input_text", "text", json_object_get(p, "text"));
        } else if (dp_json_str_eq(type, "image_url")) {
            const json_t *iu = json_object_get(p, "image_url");
            const json_t *url = json_is_string(iu) ? iu : json_object_get(iu, "url");
            const json_t *detail = json_object_get(iu, "detail");
            if (!nonempty_str(url)) {
                json_decref(parts);
                return dp_build_invalid(err, "messages",
                                        "messages[%zu].content[%zu].image_url.url: field "
                                        "required (a string)",
                                        mi, i);
            }
            np = json_pack("{s:s,s:O,s:o}", "type", "input_image", "image_url", url, "detail",
                           nonempty_str(detail) ? json_incref((json_t *)detail)
                                                : json_string("auto"));
        } else if (dp_json_str_eq(type, "file")) {
            const json_t *f = json_object_get(p, "file");
            const json_t *data = json_object_get(f, "file_data");
            const json_t *id = json_object_get(f, "file_id");
            const json_t *name = json_object_get(f, "filename");
            np = nonempty_str(data)
                     ? json_pack("{s:s,s:O}", "type", "input_file", "file_data", data)
                 : nonempty_str(id) ? json_pack("{s:s,s:O}", "type", "input_file", "file_id", id)
                                    : NULL;
            if (!np) {
                json_decref(parts);
                return dp_build_invalid(err, "messages",
                                        "messages[%zu].content[%zu].file: needs file_data or "
                                        "file_id",
                                        mi, i);
            }
            if (nonempty_str(name) && json_object_set(np, "filename", (json_t *)name) != 0) {
                json_decref(np);
                np = NULL;
            }
        } else {
            json_decref(parts);
            return dp_build_invalid(
                err, "messages", "messages[%zu].content[%zu]: a \"%s\" part cannot be served by %s",
                mi, i, json_is_string(type) ? json_string_value(type) : "(no type)",
                target_name(target));
        }
        if (dp_json_push(parts, np) != 0) {
            json_decref(parts);
            return dp_build_nomem(err, TG_ENOMEM);
        }
    }
    *out = parts;
    return 0;
}

static int push_message(json_t *input, const char *role, json_t *content, tg_err_t *err)
{
    json_t *m =
        content ? json_pack("{s:s,s:s,s:o}", "type", "message", "role", role, "content", content)
                : NULL;
    return dp_json_push(input, m) == 0 ? 0 : dp_build_nomem(err, TG_ENOMEM);
}

static int add_message(const json_t *m, size_t mi, const char *target, json_t *input, tg_err_t *err)
{
    const json_t *role = json_object_get(m, "role");
    const json_t *c = json_object_get(m, "content");
    json_t *content = NULL;
    int rc;
    if (dp_json_str_eq(role, "system") || dp_json_str_eq(role, "developer")) {
        rc = content_text(c, mi, &content, err);
        return rc == 0 ? push_message(input, json_string_value(role), content, err) : rc;
    }
    if (dp_json_str_eq(role, "user")) {
        rc = json_is_array(c) ? user_parts(c, mi, target, &content, err)
                              : content_text(c, mi, &content, err);
        return rc == 0 ? push_message(input, "user", content, err) : rc;
    }
    if (dp_json_str_eq(role, "tool")) {
        const json_t *id = json_object_get(m, "tool_call_id");
        if (!nonempty_str(id))
            return dp_build_invalid(err, "messages",
                                    "messages[%zu].tool_call_id: field required (a string)", mi);
        rc = content_text(c, mi, &content, err);
        if (rc != 0)
            return rc;
        json_t *o = json_pack("{s:s,s:O,s:o}", "type", "function_call_output", "call_id", id,
                              "output", content);
        return dp_json_push(input, o) == 0 ? 0 : dp_build_nomem(err, TG_ENOMEM);
    }
    if (!dp_json_str_eq(role, "assistant"))
        return dp_build_invalid(err, "messages",
                                "messages[%zu].role: must be \"system\", \"developer\", "
                                "\"user\", \"assistant\" or \"tool\"",
                                mi);
    if (!absent(c)) {
        rc = content_text(c, mi, &content, err);
        if (rc == 0 && json_string_length(content) > 0)
            rc = push_message(input, "assistant", content, err);
        else
            json_decref(content);
        if (rc != 0)
            return rc;
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *id = json_object_get(tc, "id");
        const json_t *fn = json_object_get(tc, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        if (!nonempty_str(id) || !nonempty_str(name))
            return dp_build_invalid(
                err, "messages", "messages[%zu].tool_calls[%zu]: needs an id and a function name",
                mi, i);
        json_t *call = json_pack(
            "{s:s,s:O,s:O,s:o}", "type", "function_call", "call_id", id, "name", name, "arguments",
            json_is_string(args) ? json_incref((json_t *)args) : json_string("{}"));
        if (dp_json_push(input, call) != 0)
            return dp_build_nomem(err, TG_ENOMEM);
    }
    return 0;
}

/* Chat-only knobs the Responses API has no counterpart for: refused unless at their default. */
static int refuse_unservable(const json_t *chat, const char *target, tg_err_t *err)
{
    const json_t *v = json_object_get(chat, "n");
    if (!absent(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
        return dp_build_invalid(err, "n", "n: only one choice can be served by %s",
                                target_name(target));
    v = json_object_get(chat, "stop");
    if (!absent(v) && !(json_is_array(v) && json_array_size(v) == 0))
        return dp_build_invalid(err, "stop", "stop: stop sequences cannot be served by %s",
                                target_name(target));
    static const char *const zero[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(chat, zero[i]);
        if (!absent(v) && !(json_is_number(v) && json_number_value(v) == 0.0))
            return dp_build_invalid(err, zero[i], "%s: cannot be served by %s", zero[i],
                                    target_name(target));
    }
    v = json_object_get(chat, "logit_bias");
    if (!absent(v) && json_object_size(v) > 0)
        return dp_build_invalid(err, "logit_bias", "logit_bias: cannot be served by %s",
                                target_name(target));
    v = json_object_get(chat, "logprobs");
    if (json_is_true(v))
        return dp_build_invalid(err, "logprobs", "logprobs: cannot be served by %s",
                                target_name(target));
    static const char *const never[] = {"seed", "audio", "prediction", "functions"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (!absent(json_object_get(chat, never[i])))
            return dp_build_invalid(err, never[i], "%s: cannot be served by %s", never[i],
                                    target_name(target));
    v = json_object_get(chat, "modalities");
    if (json_is_array(v) &&
        (json_array_size(v) != 1 || !dp_json_str_eq(json_array_get(v, 0), "text")))
        return dp_build_invalid(err, "modalities",
                                "modalities: only [\"text\"] can be served by %s",
                                target_name(target));
    return 0;
}

static int add_tools(const json_t *chat, const char *target, json_t *r, tg_err_t *err)
{
    const json_t *tools = json_object_get(chat, "tools");
    json_t *out = json_array();
    if (!out)
        return dp_build_nomem(err, TG_ENOMEM);
    size_t i;
    const json_t *t;
    int rc = 0;
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        if (!dp_json_str_eq(json_object_get(t, "type"), "function") || !nonempty_str(name)) {
            rc = dp_build_invalid(err, "tools",
                                  "tools[%zu]: only function tools can be served by %s", i,
                                  target_name(target));
            break;
        }
        json_t *nt = json_pack("{s:s,s:O}", "type", "function", "name", name);
        static const char *const keys[] = {"description", "parameters", "strict"};
        for (size_t k = 0; nt && k < 3; k++) {
            const json_t *v = json_object_get(fn, keys[k]);
            if (!absent(v) && json_object_set(nt, keys[k], (json_t *)v) != 0) {
                json_decref(nt);
                nt = NULL;
            }
        }
        if (dp_json_push(out, nt) != 0) {
            rc = dp_build_nomem(err, TG_ENOMEM);
            break;
        }
    }
    if (rc == 0 && json_array_size(out) > 0) {
        rc = dp_json_set(r, "tools", json_incref(out));
        const json_t *tc = json_object_get(chat, "tool_choice");
        const json_t *name = json_object_get(json_object_get(tc, "function"), "name");
        if (rc == 0 && json_is_string(tc))
            rc = dp_json_set(r, "tool_choice", json_incref((json_t *)tc));
        else if (rc == 0 && nonempty_str(name))
            rc = dp_json_set(r, "tool_choice",
                             json_pack("{s:s,s:O}", "type", "function", "name", name));
        const json_t *ptc = json_object_get(chat, "parallel_tool_calls");
        if (rc == 0 && json_is_boolean(ptc))
            rc = dp_json_set(r, "parallel_tool_calls", json_incref((json_t *)ptc));
        if (rc != 0)
            rc = dp_build_nomem(err, rc);
    }
    json_decref(out);
    return rc;
}

static int add_params(const json_t *chat, json_t *r, tg_err_t *err)
{
    const json_t *v = json_object_get(chat, "model");
    int rc = json_is_string(v) ? dp_json_set(r, "model", json_incref((json_t *)v)) : 0;
    v = json_object_get(chat, "max_completion_tokens");
    if (absent(v))
        v = json_object_get(chat, "max_tokens");
    if (rc == 0 && json_is_integer(v))
        rc = dp_json_set(r, "max_output_tokens", json_incref((json_t *)v));
    static const char *const same[] = {"temperature",      "top_p",   "user", "service_tier",
                                       "prompt_cache_key", "metadata"};
    for (size_t i = 0; rc == 0 && i < sizeof(same) / sizeof(same[0]); i++) {
        v = json_object_get(chat, same[i]);
        if (!absent(v))
            rc = dp_json_set(r, same[i], json_incref((json_t *)v));
    }
    v = json_object_get(chat, "reasoning_effort");
    if (rc == 0 && nonempty_str(v))
        rc = dp_json_set(r, "reasoning", json_pack("{s:O}", "effort", v));
    const json_t *rf = json_object_get(chat, "response_format");
    const json_t *type = json_object_get(rf, "type");
    if (rc == 0 && dp_json_str_eq(type, "json_object")) {
        rc = dp_json_set(r, "text", json_pack("{s:{s:s}}", "format", "type", "json_object"));
    } else if (rc == 0 && dp_json_str_eq(type, "json_schema")) {
        const json_t *js = json_object_get(rf, "json_schema");
        json_t *f = json_is_object(js) ? json_deep_copy(js) : json_object();
        rc = f ? dp_json_set(f, "type", json_string("json_schema")) : TG_ENOMEM;
        if (rc == 0)
            rc = dp_json_set(r, "text", json_pack("{s:o}", "format", f));
        else
            json_decref(f);
    }
    v = json_object_get(chat, "stream");
    if (rc == 0 && json_is_boolean(v))
        rc = dp_json_set(r, "stream", json_incref((json_t *)v));
    /* the gateway keeps the conversation itself: nothing is left at the provider */
    if (rc == 0)
        rc = dp_json_set(r, "store", json_false());
    return rc == 0 ? 0 : dp_build_nomem(err, rc);
}

int dp_resp_request_from_chat(const json_t *chat, const char *target, json_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!json_is_object(chat))
        return dp_build_invalid(err, NULL, "body: must be a JSON object");
    const json_t *msgs = json_object_get(chat, "messages");
    if (!json_is_array(msgs))
        return dp_build_invalid(err, "messages", "messages: field required (an array)");
    int rc = refuse_unservable(chat, target, err);
    if (rc != 0)
        return rc;
    json_t *r = json_object();
    json_t *input = json_array();
    rc = r && input ? 0 : dp_build_nomem(err, TG_ENOMEM);
    if (rc == 0)
        rc = add_params(chat, r, err);
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (rc == 0)
            rc = add_message(m, i, target, input, err);
    }
    if (rc == 0)
        rc = add_tools(chat, target, r, err);
    if (rc == 0 && dp_json_set(r, "input", json_incref(input)) != 0)
        rc = dp_build_nomem(err, TG_ENOMEM);
    json_decref(input);
    if (rc != 0) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- answers: Responses -> chat ---- */

/* The response's usage into u (Responses names -> ours). */
static void usage_read(dp_usage_t *u, const json_t *usage)
{
    (void)dp_resp_usage_from_json(u, usage);
}

bool dp_resp_usage_from_json(dp_usage_t *u, const json_t *usage)
{
    if (!json_is_object(usage) || !json_is_integer(json_object_get(usage, "input_tokens")))
        return false;
    u->prompt = json_integer_value(json_object_get(usage, "input_tokens"));
    u->completion = json_integer_value(json_object_get(usage, "output_tokens"));
    u->total = json_integer_value(json_object_get(usage, "total_tokens"));
    if (u->total == 0)
        u->total = u->prompt + u->completion;
    u->cached = json_integer_value(
        json_object_get(json_object_get(usage, "input_tokens_details"), "cached_tokens"));
    u->reasoning = json_integer_value(
        json_object_get(json_object_get(usage, "output_tokens_details"), "reasoning_tokens"));
    u->present = true;
    return true;
}

/* status and incomplete_details -> finish_reason. */
static const char *finish_reason(const json_t *resp, bool calls)
{
    const json_t *reason = json_object_get(json_object_get(resp, "incomplete_details"), "reason");
    if (dp_json_str_eq(reason, "max_output_tokens"))
        return "length";
    if (dp_json_str_eq(reason, "content_filter"))
        return "content_filter";
    return calls ? "tool_calls" : "stop";
}

static int error_body(int status, const json_t *root, bool event, tg_buf_t *out)
{
    const json_t *e = json_object_get(root, "error");
    if (!json_is_object(e))
        e = root; /* an `error` event carries message and code itself */
    const json_t *m = json_object_get(e, "message");
    const json_t *code = json_object_get(e, "code");
    char fallback[64];
    const char *msg = json_string_value(m);
    size_t mn = json_string_length(m);
    if (!msg) {
        if (snprintf(fallback, sizeof(fallback), "the provider answered with status %d", status) <
            0)
            fallback[0] = '\0';
        msg = fallback;
        mn = strlen(fallback);
    }
    const char *c = json_is_string(code) ? json_string_value(code) : NULL;
    return event ? dp_sse_append_error(out, status, msg, mn, c)
                 : tg_error_body(out, status, NULL, msg, mn, NULL, c);
}

/* The chat message of a response's output: text of its messages, refusals, function calls. */
static json_t *chat_message(const json_t *output, bool *calls_out)
{
    tg_buf_t text = TG_BUF_INIT(MAX_TEXT);
    tg_buf_t refusal = TG_BUF_INIT(MAX_TEXT);
    json_t *calls = json_array();
    bool has_text = false;
    int rc = calls ? 0 : TG_ENOMEM;
    size_t i;
    const json_t *it;
    json_array_foreach(output, i, it)
    {
        const json_t *type = json_object_get(it, "type");
        if (rc == 0 && dp_json_str_eq(type, "message")) {
            size_t k;
            const json_t *p;
            json_array_foreach(json_object_get(it, "content"), k, p)
            {
                const json_t *pt = json_object_get(p, "type");
                const json_t *t = json_object_get(p, "text");
                const json_t *r = json_object_get(p, "refusal");
                if (rc == 0 && dp_json_str_eq(pt, "output_text") && json_is_string(t)) {
                    rc = tg_buf_append(&text, json_string_value(t), json_string_length(t));
                    has_text = true;
                } else if (rc == 0 && dp_json_str_eq(pt, "refusal") && json_is_string(r)) {
                    rc = tg_buf_append(&refusal, json_string_value(r), json_string_length(r));
                }
            }
        } else if (rc == 0 && dp_json_str_eq(type, "function_call")) {
            const json_t *args = json_object_get(it, "arguments");
            json_t *tc =
                json_pack("{s:O,s:s,s:{s:O,s:o}}", "id", json_object_get(it, "call_id"), "type",
                          "function", "function", "name", json_object_get(it, "name"), "arguments",
                          json_is_string(args) ? json_incref((json_t *)args) : json_string("{}"));
            rc = dp_json_push(calls, tc);
        }
    }
    json_t *m = rc == 0 ? dp_openai_message_json(text.base, text.len, has_text, calls) : NULL;
    if (m && refusal.len > 0 &&
        dp_json_set(m, "refusal", json_stringn(refusal.base, refusal.len)) != 0) {
        json_decref(m);
        m = NULL;
    }
    *calls_out = json_array_size(calls) > 0;
    json_decref(calls);
    tg_buf_dispose(&text);
    tg_buf_dispose(&refusal);
    return m;
}

/* "chatcmpl-<response id>" */
static int chat_id(const json_t *resp, const dp_stream_state_t *st, char *dst, size_t n)
{
    const json_t *id = json_object_get(resp, "id");
    int w = nonempty_str(id)
                ? snprintf(dst, n, "chatcmpl-%.*s",
                           (int)(json_string_length(id) > 200 ? 200 : json_string_length(id)),
                           json_string_value(id))
                : snprintf(dst, n, "chatcmpl-%s", st->request_id ? st->request_id : "");
    return w < 0 ? TG_ENOMEM : 0;
}

int dp_resp_upstream_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                              tg_buf_t *out)
{
    json_t *root = n > 0 ? json_loadb(body, n, 0, NULL) : NULL;
    int rc;
    if (status < 200 || status >= 300) {
        rc = error_body(status, root, false, out);
    } else if (!dp_json_str_eq(json_object_get(root, "object"), "response") ||
               !json_is_array(json_object_get(root, "output"))) {
        rc = TG_EUPSTREAM;
    } else if (dp_json_str_eq(json_object_get(root, "status"), "failed")) {
        rc = TG_EUPSTREAM; /* a 2xx that failed: the proxy answers 502 */
    } else {
        bool calls = false;
        char id[256];
        usage_read(&st->usage, json_object_get(root, "usage"));
        rc = chat_id(root, st, id, sizeof(id));
        json_t *m = rc == 0 ? chat_message(json_object_get(root, "output"), &calls) : NULL;
        const char *fr = finish_reason(root, calls);
        json_t *c = m ? dp_openai_completion_json(st, id, dp_stream_model(st),
                                                  json_pack("[o]", dp_openai_choice_json(0, m, fr)))
                      : NULL;
        if (c && dp_json_set(c, "usage", dp_openai_usage_json(&st->usage, true)) != 0) {
            json_decref(c);
            c = NULL;
        }
        rc = c ? dp_json_append(out, c) : TG_ENOMEM;
        json_decref(c);
    }
    json_decref(root);
    return rc == 0 ? DP_RESP_OUT : rc;
}

/* ---- streams: Responses events -> chat chunks ---- */

typedef struct up_stream {
    char id[256];       /* chatcmpl-..., from response.created */
    bool started;       /* the role chunk went out */
    bool failed;        /* an error went out: nothing follows */
    int64_t ncalls;     /* function calls so far */
    int64_t call_oi[8]; /* output_index of the first calls -> their tool_calls index */
    int64_t *more_oi;   /* owned, beyond the first 8 */
    size_t more_cap;
} up_stream_t;

static void up_free(void *p)
{
    up_stream_t *u = p;
    if (u)
        free(u->more_oi);
    free(u);
}

static up_stream_t *up_get(dp_stream_state_t *st)
{
    if (!st->priv) {
        st->priv = calloc(1, sizeof(up_stream_t));
        st->priv_free = up_free;
    }
    return st->priv;
}

static int64_t *call_slot(up_stream_t *u, int64_t k)
{
    if (k < 8)
        return &u->call_oi[k];
    size_t j = (size_t)(k - 8);
    if (j >= u->more_cap) {
        size_t cap = u->more_cap ? u->more_cap * 2 : 8;
        int64_t *m = realloc(u->more_oi, cap * sizeof(*m));
        if (!m)
            return NULL;
        u->more_oi = m;
        u->more_cap = cap;
    }
    return &u->more_oi[j];
}

/* The tool_calls index of the function call at output_index oi, or -1. */
static int64_t call_index(up_stream_t *u, int64_t oi)
{
    for (int64_t k = 0; k < u->ncalls; k++) {
        int64_t *s = call_slot(u, k);
        if (s && *s == oi)
            return k;
    }
    return -1;
}

static int start(dp_stream_state_t *st, up_stream_t *u, const json_t *resp, tg_buf_t *out)
{
    if (u->started)
        return 0;
    u->started = true;
    if (u->id[0] == '\0' && chat_id(resp, st, u->id, sizeof(u->id)) != 0)
        return TG_ENOMEM;
    return dp_openai_chunk_role_append(out, st, u->id, 0);
}

static int on_terminal(dp_stream_state_t *st, up_stream_t *u, const json_t *resp, tg_buf_t *out)
{
    int rc = start(st, u, resp, out);
    usage_read(&st->usage, json_object_get(resp, "usage"));
    if (rc == 0)
        rc = dp_openai_chunk_append(out, st, u->id, 0, json_object(),
                                    finish_reason(resp, u->ncalls > 0));
    if (rc == 0 && st->client_wants_usage)
        rc = dp_openai_chunk_usage_append(out, st, u->id, true);
    if (rc == 0)
        rc = dp_sse_append_done(st, out);
    return rc;
}

static int on_response_event(dp_stream_state_t *st, up_stream_t *u, const json_t *ev, tg_buf_t *out)
{
    const json_t *type = json_object_get(ev, "type");
    const json_t *resp = json_object_get(ev, "response");
    const json_t *oi = json_object_get(ev, "output_index");
    if (dp_json_str_eq(type, "response.created"))
        return start(st, u, resp, out);
    if (dp_json_str_eq(type, "response.completed") || dp_json_str_eq(type, "response.incomplete"))
        return on_terminal(st, u, resp, out);
    if (dp_json_str_eq(type, "response.failed") || dp_json_str_eq(type, "error")) {
        u->failed = true;
        const json_t *e = dp_json_str_eq(type, "error") ? ev : json_object_get(resp, "error");
        return error_body(502, e, true, out);
    }
    int rc = start(st, u, resp, out);
    if (rc != 0)
        return rc;
    if (dp_json_str_eq(type, "response.output_text.delta") ||
        dp_json_str_eq(type, "response.refusal.delta")) {
        const json_t *d = json_object_get(ev, "delta");
        if (!json_is_string(d) || json_string_length(d) == 0)
            return 0;
        st->content_events++;
        bool refusal = dp_json_str_eq(type, "response.refusal.delta");
        return dp_openai_chunk_append(out, st, u->id, 0,
                                      json_pack("{s:O}", refusal ? "refusal" : "content", d), NULL);
    }
    if (dp_json_str_eq(type, "response.output_item.added")) {
        const json_t *item = json_object_get(ev, "item");
        if (!dp_json_str_eq(json_object_get(item, "type"), "function_call") || !json_is_integer(oi))
            return 0;
        if (u->ncalls == MAX_CALLS)
            return TG_ETOOBIG;
        int64_t *slot = call_slot(u, u->ncalls);
        if (!slot)
            return TG_ENOMEM;
        *slot = json_integer_value(oi);
        int64_t k = u->ncalls++;
        const json_t *args = json_object_get(item, "arguments");
        st->content_events++;
        return dp_openai_chunk_append(
            out, st, u->id, 0,
            json_pack("{s:[{s:I,s:O,s:s,s:{s:O,s:o}}]}", "tool_calls", "index", (json_int_t)k, "id",
                      json_object_get(item, "call_id"), "type", "function", "function", "name",
                      json_object_get(item, "name"), "arguments",
                      json_is_string(args) ? json_incref((json_t *)args) : json_string("")),
            NULL);
    }
    if (dp_json_str_eq(type, "response.function_call_arguments.delta")) {
        const json_t *d = json_object_get(ev, "delta");
        int64_t k = json_is_integer(oi) ? call_index(u, json_integer_value(oi)) : -1;
        if (k < 0 || !json_is_string(d) || json_string_length(d) == 0)
            return 0;
        st->content_events++;
        return dp_openai_chunk_append(out, st, u->id, 0,
                                      json_pack("{s:[{s:I,s:{s:O}}]}", "tool_calls", "index",
                                                (json_int_t)k, "function", "arguments", d),
                                      NULL);
    }
    return 0; /* the rest (in_progress, content parts, dones, reasoning) has no chat form */
}

typedef struct feed_ctx {
    dp_stream_state_t *st;
    up_stream_t *u;
    tg_buf_t *out;
} feed_ctx_t;

static int on_sse_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    const char *data;
    size_t len;
    if (f->u->failed || f->st->done || !dp_sse_data(ev, n, &f->st->data_scratch, &data, &len))
        return 0;
    if (tg_mem_eq(data, len, "[DONE]", 6))
        return 0;
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return TG_EUPSTREAM;
    }
    int rc = on_response_event(f->st, f->u, root, f->out);
    json_decref(root);
    return rc;
}

int dp_resp_upstream_stream_feed(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out)
{
    feed_ctx_t f = {st, up_get(st), out};
    if (!f.u)
        return TG_ENOMEM;
    return dp_sse_feed(&st->sse, p, n, on_sse_event, &f);
}

int dp_resp_upstream_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out)
{
    feed_ctx_t f = {st, up_get(st), out};
    if (!f.u)
        return TG_ENOMEM;
    if (!complete || st->done || f.u->failed)
        return 0; /* a broken stream gets the proxy's error event, not a made-up finish */
    int rc = 0;
    if (dp_sse_pending(&st->sse) > 0) /* a last event without its blank line */
        rc = dp_sse_feed(&st->sse, "\n\n", 2, on_sse_event, &f);
    if (rc != 0 || st->done || f.u->failed)
        return rc;
    /* the upstream ended cleanly without its terminal event: finish what it sent */
    return on_terminal(st, f.u, NULL, out);
}

/* ---- native pass-through ---- */

#define WATCH_MAX_EVENT (16u << 20) /* response.completed repeats the whole answer */

struct dp_resp_watch {
    dp_sse_t sse;
    tg_buf_t scratch;
    json_t *response; /* owned: the terminal event's response */
};

dp_resp_watch_t *dp_resp_watch_create(void)
{
    dp_resp_watch_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    dp_sse_init(&w->sse, WATCH_MAX_EVENT);
    tg_buf_init(&w->scratch, WATCH_MAX_EVENT);
    return w;
}

void dp_resp_watch_destroy(dp_resp_watch_t *w)
{
    if (!w)
        return;
    dp_sse_dispose(&w->sse);
    tg_buf_dispose(&w->scratch);
    json_decref(w->response);
    free(w);
}

const json_t *dp_resp_watch_response(const dp_resp_watch_t *w)
{
    return w ? w->response : NULL;
}

/* Only the terminal events are parsed: OpenAI names each event on its `event:` line. */
static bool terminal_event(const char *ev, size_t n)
{
    static const char *const names[] = {"event: response.completed", "event: response.incomplete",
                                        "event: response.failed"};
    for (size_t i = 0; i < 3; i++)
        if (dp_has_prefix(ev, n, names[i]))
            return true;
    /* no event line (some servers send data only): look for the type in the data */
    return !dp_has_prefix(ev, n, "event:") && (tg_memmem(ev, n, "\"response.completed\"", 20) ||
                                               tg_memmem(ev, n, "\"response.incomplete\"", 21) ||
                                               tg_memmem(ev, n, "\"response.failed\"", 17));
}

static int on_watch_event(void *ud, const char *ev, size_t n)
{
    dp_resp_watch_t *w = ud;
    const char *data;
    size_t len;
    if (!terminal_event(ev, n) || !dp_sse_data(ev, n, &w->scratch, &data, &len))
        return 0;
    json_t *root = json_loadb(data, len, 0, NULL);
    json_t *r = json_object_get(root, "response");
    if (json_is_object(r)) {
        json_decref(w->response);
        w->response = json_incref(r);
    }
    json_decref(root);
    return 0;
}

int dp_resp_watch_feed(dp_resp_watch_t *w, const char *p, size_t n)
{
    if (!w)
        return TG_EINVAL;
    return dp_sse_feed(&w->sse, p, n, on_watch_event, w);
}

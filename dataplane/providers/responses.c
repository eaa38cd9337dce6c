/* responses.c: OpenAI's Responses API as a client format on providers that speak chat: the
 * request is translated once into a chat body, the adapter's chat-shaped answer (JSON, SSE
 * chunks, errors) back into a response object or Responses events. Pure; a stream translator
 * belongs to one request and runs on its loop thread. */
#include "responses.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "sse.h"
#include "tg_errors.h"
#include "usage.h"

#include "tg_banned.h"

#define MAX_PART_BYTES (64u << 20) /* joined text of one message, bounded by the body limit */
#define MAX_SSE_EVENT (4u << 20)   /* one chat chunk, as the adapters allow */
#define MAX_ITEM_BYTES (16u << 20) /* one streamed item's text or arguments */
#define MAX_ITEMS 512              /* output items in one streamed answer */
#define MAX_ID 160                 /* item ids: the response id plus a suffix */

/* ---- small helpers ---- */

static bool nonempty_str(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static bool absent(const json_t *v)
{
    return !v || json_is_null(v);
}

static int failed(tg_err_t *err, int rc)
{
    return dp_build_nomem(err, rc == TG_ETOOBIG ? TG_ETOOBIG : TG_ENOMEM);
}

static const char *target_name(const char *target)
{
    return target && target[0] ? target : "this provider";
}

/* ---- request: Responses -> chat ---- */

typedef struct xreq {
    json_t *msgs;  /* the chat messages being built */
    json_t *calls; /* call_id -> true: the function calls seen so far, to pair outputs */
    dp_resp_lookup_fn lookup;
    void *ud;
    const char *target;
    tg_err_t *err;
} xreq_t;

/* Text of a content part list as one string (system, assistant and tool messages); only text
 * parts may be in it. */
static int parts_text(xreq_t *x, const json_t *content, const char *where, json_t **text)
{
    if (json_is_string(content)) {
        *text = json_incref((json_t *)content);
        return 0;
    }
    if (!json_is_array(content))
        return dp_build_invalid(x->err, "input",
                                "%s.content: must be a string or an array of parts", where);
    tg_buf_t b = TG_BUF_INIT(MAX_PART_BYTES);
    size_t i;
    const json_t *p;
    int rc = 0;
    json_array_foreach(content, i, p)
    {
        const json_t *type = json_object_get(p, "type");
        const json_t *t = json_object_get(p, "text");
        if (dp_json_str_eq(type, "refusal"))
            t = json_object_get(p, "refusal");
        else if (!dp_json_str_eq(type, "input_text") && !dp_json_str_eq(type, "output_text"))
            t = NULL;
        if (!json_is_string(t)) {
            rc = dp_build_invalid(x->err, "input",
                                  "%s.content[%zu]: only text parts can be translated here for %s",
                                  where, i, target_name(x->target));
            break;
        }
        rc = tg_buf_append(&b, json_string_value(t), json_string_length(t));
        if (rc != 0) {
            rc = failed(x->err, rc);
            break;
        }
    }
    if (rc == 0) {
        *text = json_stringn(b.base ? b.base : "", b.len);
        if (!*text)
            rc = failed(x->err, TG_ENOMEM);
    }
    tg_buf_dispose(&b);
    return rc;
}

/* One user content part -> a chat part. */
static int user_part(xreq_t *x, const json_t *p, const char *where, size_t i, json_t **out)
{
    const json_t *type = json_object_get(p, "type");
    if (dp_json_str_eq(type, "input_text") || dp_json_str_eq(type, "output_text")) {
        const json_t *t = json_object_get(p, "text");
        if (!json_is_string(t))
            return dp_build_invalid(x->err, "input",
                                    "%s.content[%zu].text: field required (a string)", where, i);
        *out = json_pack("{s:s,s:O}", "type", "text", "text", t);
    } else if (dp_json_str_eq(type, "input_image")) {
        const json_t *url = json_object_get(p, "image_url");
        const json_t *detail = json_object_get(p, "detail");
        if (!nonempty_str(url))
            return dp_build_invalid(
                x->err, "input",
                "%s.content[%zu]: an input_image needs image_url (file_id cannot be "
                "translated for %s)",
                where, i, target_name(x->target));
        *out = json_pack("{s:s,s:{s:O}}", "type", "image_url", "image_url", "url", url);
        if (*out && nonempty_str(detail) &&
            json_object_set(json_object_get(*out, "image_url"), "detail", (json_t *)detail) != 0) {
            json_decref(*out);
            *out = NULL;
        }
    } else if (dp_json_str_eq(type, "input_file")) {
        const json_t *data = json_object_get(p, "file_data");
        const json_t *name = json_object_get(p, "filename");
        if (!nonempty_str(data))
            return dp_build_invalid(
                x->err, "input",
                "%s.content[%zu]: an input_file needs file_data (file_id and file_url "
                "cannot be translated for %s)",
                where, i, target_name(x->target));
        *out = json_pack("{s:s,s:{s:O}}", "type", "file", "file", "file_data", data);
        if (*out && nonempty_str(name) &&
            json_object_set(json_object_get(*out, "file"), "filename", (json_t *)name) != 0) {
            json_decref(*out);
            *out = NULL;
        }
    } else {
        return dp_build_invalid(
            x->err, "input", "%s.content[%zu].type: \"%s\" cannot be translated for %s", where, i,
            json_is_string(type) ? json_string_value(type) : "(none)", target_name(x->target));
    }
    return *out ? 0 : failed(x->err, TG_ENOMEM);
}

/* The last chat message when it is an assistant message (calls and text merge into it). */
static json_t *last_assistant(xreq_t *x)
{
    size_t n = json_array_size(x->msgs);
    json_t *m = n ? json_array_get(x->msgs, n - 1) : NULL;
    return m && dp_json_str_eq(json_object_get(m, "role"), "assistant") ? m : NULL;
}

static int message_item(xreq_t *x, const json_t *it, const char *where)
{
    const json_t *role = json_object_get(it, "role");
    const json_t *content = json_object_get(it, "content");
    const char *r = NULL;
    if (dp_json_str_eq(role, "user"))
        r = "user";
    else if (dp_json_str_eq(role, "assistant"))
        r = "assistant";
    else if (dp_json_str_eq(role, "system") || dp_json_str_eq(role, "developer"))
        r = "system"; /* not every chat target knows "developer" */
    else
        return dp_build_invalid(x->err, "input",
                                "%s.role: must be \"user\", \"assistant\", \"system\" or "
                                "\"developer\"",
                                where);
    json_t *c = NULL;
    int rc = 0;
    if (r[0] != 'u' || json_is_string(content)) {
        rc = parts_text(x, content, where, &c);
    } else if (json_is_array(content)) {
        c = json_array();
        size_t i;
        const json_t *p;
        json_array_foreach(content, i, p)
        {
            json_t *part = NULL;
            rc = c ? user_part(x, p, where, i, &part) : failed(x->err, TG_ENOMEM);
            if (rc == 0 && dp_json_push(c, part) != 0)
                rc = failed(x->err, TG_ENOMEM);
            if (rc != 0)
                break;
        }
    } else {
        rc = dp_build_invalid(x->err, "input", "%s.content: must be a string or an array of parts",
                              where);
    }
    if (rc != 0) {
        json_decref(c);
        return rc;
    }
    json_t *prev = r[0] == 'a' ? last_assistant(x) : NULL;
    if (prev && json_is_null(json_object_get(prev, "content"))) { /* calls came first */
        rc = dp_json_set(prev, "content", c);
        return rc == 0 ? 0 : failed(x->err, rc);
    }
    json_t *m = json_pack("{s:s,s:o}", "role", r, "content", c);
    return dp_json_push(x->msgs, m) == 0 ? 0 : failed(x->err, TG_ENOMEM);
}

/* A function_call from an earlier turn -> a tool call on an assistant message; parallel calls
 * (consecutive items) share one. */
static int call_item(xreq_t *x, const json_t *it, const char *where)
{
    const json_t *call_id = json_object_get(it, "call_id");
    const json_t *name = json_object_get(it, "name");
    const json_t *args = json_object_get(it, "arguments");
    if (!nonempty_str(call_id))
        return dp_build_invalid(x->err, "input", "%s.call_id: field required (a string)", where);
    if (!nonempty_str(name))
        return dp_build_invalid(x->err, "input", "%s.name: field required (a string)", where);
    if (!absent(args) && !json_is_string(args))
        return dp_build_invalid(x->err, "input", "%s.arguments: must be a string", where);
    json_t *tc = json_pack("{s:O,s:s,s:{s:O,s:o}}", "id", call_id, "type", "function", "function",
                           "name", name, "arguments",
                           json_is_string(args) ? json_incref((json_t *)args) : json_string("{}"));
    json_t *m = last_assistant(x);
    json_t *calls = m ? json_object_get(m, "tool_calls") : NULL;
    int rc = tc ? 0 : TG_ENOMEM;
    if (rc == 0 && !m) {
        m = json_pack("{s:s,s:n,s:[]}", "role", "assistant", "content", "tool_calls");
        calls = json_object_get(m, "tool_calls");
        rc = dp_json_push(x->msgs, m);
    } else if (rc == 0 && !calls) {
        calls = json_array();
        rc = dp_json_set(m, "tool_calls", calls);
    }
    if (rc == 0) {
        rc = dp_json_push(calls, tc);
        tc = NULL;
    }
    json_decref(tc);
    if (rc == 0)
        rc = json_object_set_new(x->calls, json_string_value(call_id), json_true()) == 0
                 ? 0
                 : TG_ENOMEM;
    return rc == 0 ? 0 : failed(x->err, rc);
}

/* A function_call_output -> a tool message, after the call it answers. */
static int output_item(xreq_t *x, const json_t *it, const char *where)
{
    const json_t *call_id = json_object_get(it, "call_id");
    const json_t *output = json_object_get(it, "output");
    if (!nonempty_str(call_id))
        return dp_build_invalid(x->err, "input", "%s.call_id: field required (a string)", where);
    if (!json_object_get(x->calls, json_string_value(call_id)))
        return dp_build_invalid(x->err, "input",
                                "%s: no function_call with call_id \"%s\" comes before this "
                                "function_call_output",
                                where, json_string_value(call_id));
    json_t *text = NULL;
    int rc = absent(output) ? ((text = json_string("")) ? 0 : failed(x->err, TG_ENOMEM))
                            : parts_text(x, output, where, &text);
    if (rc != 0)
        return rc;
    json_t *m =
        json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", call_id, "content", text);
    return dp_json_push(x->msgs, m) == 0 ? 0 : failed(x->err, TG_ENOMEM);
}

static int input_item(xreq_t *x, const json_t *it, const char *where, bool resolved)
{
    if (!json_is_object(it))
        return dp_build_invalid(x->err, "input", "%s: must be an object", where);
    const json_t *type = json_object_get(it, "type");
    if (absent(type) || dp_json_str_eq(type, "message"))
        return message_item(x, it, where);
    if (dp_json_str_eq(type, "function_call"))
        return call_item(x, it, where);
    if (dp_json_str_eq(type, "function_call_output"))
        return output_item(x, it, where);
    if (dp_json_str_eq(type, "reasoning"))
        return 0; /* a reasoning model's own notes from an earlier turn: context only */
    if (dp_json_str_eq(type, "item_reference") && !resolved) {
        const json_t *id = json_object_get(it, "id");
        if (!nonempty_str(id))
            return dp_build_invalid(x->err, "input", "%s.id: field required (a string)", where);
        const json_t *ref =
            x->lookup ? x->lookup(x->ud, json_string_value(id), json_string_length(id)) : NULL;
        if (!ref)
            return dp_build_invalid(x->err, "input", "%s: item with id \"%s\" not found", where,
                                    json_string_value(id));
        return input_item(x, ref, where, true);
    }
    return dp_build_invalid(
        x->err, "input", "%s.type: \"%s\" items cannot be translated for %s", where,
        json_is_string(type) ? json_string_value(type) : "(not a string)", target_name(x->target));
}

static int add_items(xreq_t *x, const json_t *items, const char *name)
{
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        char where[64];
        if (snprintf(where, sizeof(where), "%s[%zu]", name, i) < 0)
            where[0] = '\0';
        int rc = input_item(x, it, where, false);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int add_input(xreq_t *x, const json_t *req, const json_t *prefix)
{
    const json_t *ins = json_object_get(req, "instructions");
    int rc = 0;
    if (!absent(ins)) {
        if (!json_is_string(ins))
            return dp_build_invalid(x->err, "instructions", "instructions: must be a string");
        json_t *m = json_pack("{s:s,s:O}", "role", "system", "content", ins);
        if (dp_json_push(x->msgs, m) != 0)
            return failed(x->err, TG_ENOMEM);
    }
    if (json_is_array(prefix))
        rc = add_items(x, prefix, "previous");
    const json_t *input = json_object_get(req, "input");
    if (rc != 0 || absent(input))
        return rc;
    if (json_is_string(input)) {
        json_t *m = json_pack("{s:s,s:O}", "role", "user", "content", input);
        return dp_json_push(x->msgs, m) == 0 ? 0 : failed(x->err, TG_ENOMEM);
    }
    if (!json_is_array(input))
        return dp_build_invalid(x->err, "input", "input: must be a string or an array of items");
    return add_items(x, input, "input");
}

static int add_tools(xreq_t *x, const json_t *req, json_t *chat)
{
    const json_t *tools = json_object_get(req, "tools");
    if (!absent(tools) && !json_is_array(tools))
        return dp_build_invalid(x->err, "tools", "tools: must be an array");
    json_t *out = json_array();
    if (!out)
        return failed(x->err, TG_ENOMEM);
    size_t i;
    const json_t *t;
    int rc = 0;
    json_array_foreach(tools, i, t)
    {
        const json_t *type = json_object_get(t, "type");
        const json_t *name = json_object_get(t, "name");
        if (!dp_json_str_eq(type, "function")) {
            rc = dp_build_invalid(x->err, "tools",
                                  "tools[%zu]: the built-in tool \"%s\" cannot be served by %s", i,
                                  json_is_string(type) ? json_string_value(type) : "(no type)",
                                  target_name(x->target));
            break;
        }
        if (!nonempty_str(name)) {
            rc = dp_build_invalid(x->err, "tools", "tools[%zu].name: field required (a string)", i);
            break;
        }
        json_t *fn = json_pack("{s:O}", "name", name);
        static const char *const keys[] = {"description", "parameters", "strict"};
        for (size_t k = 0; fn && k < sizeof(keys) / sizeof(keys[0]); k++) {
            const json_t *v = json_object_get(t, keys[k]);
            if (!absent(v) && json_object_set(fn, keys[k], (json_t *)v) != 0) {
                json_decref(fn);
                fn = NULL;
            }
        }
        if (dp_json_push(out, json_pack("{s:s,s:o}", "type", "function", "function", fn)) != 0) {
            rc = failed(x->err, TG_ENOMEM);
            break;
        }
    }
    const json_t *tc = json_object_get(req, "tool_choice");
    json_t *choice = NULL;
    if (rc == 0 && !absent(tc)) {
        const json_t *type = json_object_get(tc, "type");
        if (dp_json_str_eq(tc, "auto") || dp_json_str_eq(tc, "none") ||
            dp_json_str_eq(tc, "required")) {
            choice = json_incref((json_t *)tc);
        } else if (dp_json_str_eq(type, "function") && nonempty_str(json_object_get(tc, "name"))) {
            choice = json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name",
                               json_object_get(tc, "name"));
        } else {
            rc =
                dp_build_invalid(x->err, "tool_choice",
                                 "tool_choice: only \"auto\", \"none\", \"required\" or a function "
                                 "{\"type\":\"function\",\"name\"} can be served by %s",
                                 target_name(x->target));
        }
        if (rc == 0 && !choice)
            rc = failed(x->err, TG_ENOMEM);
    }
    const json_t *ptc = json_object_get(req, "parallel_tool_calls");
    if (rc == 0 && !absent(ptc) && !json_is_boolean(ptc))
        rc = dp_build_invalid(x->err, "parallel_tool_calls",
                              "parallel_tool_calls: must be a boolean");
    /* chat refuses tool_choice and parallel_tool_calls without tools */
    if (rc == 0 && json_array_size(out) > 0) {
        rc = dp_json_set(chat, "tools", json_incref(out));
        if (rc == 0 && choice)
            rc = dp_json_set(chat, "tool_choice", json_incref(choice));
        if (rc == 0 && json_is_boolean(ptc))
            rc = dp_json_set(chat, "parallel_tool_calls", json_incref((json_t *)ptc));
        if (rc != 0)
            rc = failed(x->err, rc);
    }
    json_decref(choice);
    json_decref(out);
    return rc;
}

/* text.format -> response_format; text.verbosity -> verbosity. */
static int add_text(xreq_t *x, const json_t *req, json_t *chat)
{
    const json_t *text = json_object_get(req, "text");
    if (absent(text))
        return 0;
    if (!json_is_object(text))
        return dp_build_invalid(x->err, "text", "text: must be an object");
    const json_t *f = json_object_get(text, "format");
    const json_t *type = json_object_get(f, "type");
    json_t *rf = NULL;
    int rc = 0;
    if (absent(f) || dp_json_str_eq(type, "text")) {
        rf = NULL;
    } else if (dp_json_str_eq(type, "json_object")) {
        rf = json_pack("{s:s}", "type", "json_object");
        rc = rf ? 0 : TG_ENOMEM;
    } else if (dp_json_str_eq(type, "json_schema")) {
        const json_t *name = json_object_get(f, "name");
        const json_t *schema = json_object_get(f, "schema");
        if (!nonempty_str(name) || !json_is_object(schema))
            return dp_build_invalid(x->err, "text",
                                    "text.format: a json_schema format needs a name and a "
                                    "schema object");
        json_t *js = json_pack("{s:O,s:O}", "name", name, "schema", schema);
        static const char *const keys[] = {"strict", "description"};
        for (size_t k = 0; js && k < 2; k++) {
            const json_t *v = json_object_get(f, keys[k]);
            if (!absent(v) && json_object_set(js, keys[k], (json_t *)v) != 0) {
                json_decref(js);
                js = NULL;
            }
        }
        rf = js ? json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js) : NULL;
        rc = rf ? 0 : TG_ENOMEM;
    } else {
        return dp_build_invalid(x->err, "text",
                                "text.format.type: must be \"text\", \"json_object\" or "
                                "\"json_schema\"");
    }
    if (rc == 0 && rf)
        rc = dp_json_set(chat, "response_format", rf);
    const json_t *verb = json_object_get(text, "verbosity");
    if (rc == 0 && nonempty_str(verb))
        rc = dp_json_set(chat, "verbosity", json_incref((json_t *)verb));
    return rc == 0 ? 0 : failed(x->err, rc);
}

/* Features a chat target cannot honour: a 400 naming them, never a silent drop. */
static int refuse_unservable(xreq_t *x, const json_t *req)
{
    const json_t *v = json_object_get(req, "background");
    if (json_is_true(v))
        return dp_build_invalid(x->err, "background", "background: true is not supported for %s",
                                target_name(x->target));
    if (!absent(json_object_get(req, "conversation")))
        return dp_build_invalid(x->err, "conversation",
                                "conversation: conversation objects are not supported; use "
                                "previous_response_id");
    if (!absent(json_object_get(req, "prompt")))
        return dp_build_invalid(x->err, "prompt",
                                "prompt: stored prompt templates cannot be served by %s",
                                target_name(x->target));
    v = json_object_get(json_object_get(req, "reasoning"), "summary");
    if (!absent(v))
        return dp_build_invalid(x->err, "reasoning",
                                "reasoning.summary: reasoning summaries cannot be "
                                "served by %s",
                                target_name(x->target));
    v = json_object_get(req, "truncation");
    if (!absent(v) && !dp_json_str_eq(v, "disabled"))
        return dp_build_invalid(x->err, "truncation",
                                "truncation: only \"disabled\" can be served by %s",
                                target_name(x->target));
    static const char *const unservable[] = {"max_tool_calls", "top_logprobs"};
    for (size_t i = 0; i < sizeof(unservable) / sizeof(unservable[0]); i++)
        if (!absent(json_object_get(req, unservable[i])))
            return dp_build_invalid(x->err, unservable[i], "%s: cannot be served by %s",
                                    unservable[i], target_name(x->target));
    return 0;
}

static int add_params(xreq_t *x, const json_t *req, json_t *chat)
{
    const json_t *v = json_object_get(req, "model");
    int rc = 0;
    if (!nonempty_str(v))
        return dp_build_invalid(x->err, "model", "model: field required (a string)");
    rc = dp_json_set(chat, "model", json_incref((json_t *)v));
    v = json_object_get(req, "max_output_tokens");
    if (rc == 0 && !absent(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return dp_build_invalid(x->err, "max_output_tokens",
                                    "max_output_tokens: must be a positive "
                                    "integer");
        rc = dp_json_set(chat, "max_tokens", json_incref((json_t *)v));
    }
    static const char *const nums[] = {"temperature", "top_p"};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        v = json_object_get(req, nums[i]);
        if (absent(v))
            continue;
        if (!json_is_number(v))
            return dp_build_invalid(x->err, nums[i], "%s: must be a number", nums[i]);
        rc = dp_json_set(chat, nums[i], json_incref((json_t *)v));
    }
    /* what chat spells the same way */
    static const char *const same[] = {"user", "service_tier", "prompt_cache_key",
                                       "safety_identifier"};
    for (size_t i = 0; rc == 0 && i < sizeof(same) / sizeof(same[0]); i++) {
        v = json_object_get(req, same[i]);
        if (json_is_string(v))
            rc = dp_json_set(chat, same[i], json_incref((json_t *)v));
    }
    v = json_object_get(json_object_get(req, "reasoning"), "effort");
    if (rc == 0 && nonempty_str(v))
        rc = dp_json_set(chat, "reasoning_effort", json_incref((json_t *)v));
    v = json_object_get(req, "stream");
    if (rc == 0 && !absent(v)) {
        if (!json_is_boolean(v))
            return dp_build_invalid(x->err, "stream", "stream: must be a boolean");
        rc = dp_json_set(chat, "stream", json_incref((json_t *)v));
        /* response.completed carries the usage: ask for chat's usage chunk */
        if (rc == 0 && json_is_true(v))
            rc = dp_json_set(chat, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return rc == 0 ? 0 : failed(x->err, rc);
}

int dp_resp_request_to_chat(const json_t *req, const json_t *prefix, dp_resp_lookup_fn lookup,
                            void *ud, const char *target, json_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!json_is_object(req))
        return dp_build_invalid(err, NULL, "body: must be a JSON object");
    xreq_t x = {json_array(), json_object(), lookup, ud, target, err};
    json_t *chat = json_object();
    int rc = chat && x.msgs && x.calls ? 0 : failed(err, TG_ENOMEM);
    if (rc == 0)
        rc = refuse_unservable(&x, req);
    if (rc == 0)
        rc = add_params(&x, req, chat);
    if (rc == 0)
        rc = add_input(&x, req, prefix);
    if (rc == 0 && json_array_size(x.msgs) == 0)
        rc =
            dp_build_invalid(err, "input", "input: field required (a string or an array of items)");
    if (rc == 0)
        rc = add_tools(&x, req, chat);
    if (rc == 0)
        rc = add_text(&x, req, chat);
    if (rc == 0 && dp_json_set(chat, "messages", json_incref(x.msgs)) != 0)
        rc = failed(err, TG_ENOMEM);
    json_decref(x.msgs);
    json_decref(x.calls);
    if (rc != 0) {
        json_decref(chat);
        return rc;
    }
    *out = chat;
    return 0;
}

/* ---- state: stored input items, self-contained native requests ---- */

/* One input item as stored: normalized, with an id. */
static json_t *stored_item(const json_t *it, const char *rid, size_t i, dp_resp_lookup_fn lookup,
                           void *ud, tg_err_t *err)
{
    char id[MAX_ID];
    const json_t *type = json_object_get(it, "type");
    if (!json_is_object(it)) {
        dp_build_invalid(err, "input", "input[%zu]: must be an object", i);
        return NULL;
    }
    if (dp_json_str_eq(type, "item_reference")) {
        const json_t *rid_ = json_object_get(it, "id");
        const json_t *ref = nonempty_str(rid_) && lookup
                                ? lookup(ud, json_string_value(rid_), json_string_length(rid_))
                                : NULL;
        if (!ref) {
            dp_build_invalid(err, "input", "input[%zu]: item with id \"%s\" not found", i,
                             nonempty_str(rid_) ? json_string_value(rid_) : "");
            return NULL;
        }
        return json_deep_copy(ref);
    }
    bool message = absent(type) || dp_json_str_eq(type, "message");
    const char *kind = message                                        ? "msg"
                       : dp_json_str_eq(type, "function_call")        ? "fc"
                       : dp_json_str_eq(type, "function_call_output") ? "fco"
                                                                      : "item";
    json_t *c = json_deep_copy(it);
    if (!c || snprintf(id, sizeof(id), "%s_%s_in%zu", kind, rid, i) < 0) {
        json_decref(c);
        failed(err, TG_ENOMEM);
        return NULL;
    }
    int rc = 0;
    if (!nonempty_str(json_object_get(c, "id")))
        rc = dp_json_set(c, "id", json_string(id));
    if (rc == 0 && message) {
        rc = dp_json_set(c, "type", json_string("message"));
        const json_t *content = json_object_get(c, "content");
        if (rc == 0 && json_is_string(content)) {
            bool assistant = dp_json_str_eq(json_object_get(c, "role"), "assistant");
            json_t *part = assistant
                               ? json_pack("{s:s,s:O,s:[]}", "type", "output_text", "text", content,
                                           "annotations")
                               : json_pack("{s:s,s:O}", "type", "input_text", "text", content);
            rc = dp_json_set(c, "content", json_pack("[o]", part));
        }
    }
    if (rc != 0) {
        json_decref(c);
        failed(err, rc);
        return NULL;
    }
    return c;
}

int dp_resp_input_items(const json_t *req, const char *resp_id, dp_resp_lookup_fn lookup, void *ud,
                        json_t **out, tg_err_t *err)
{
    *out = NULL;
    const char *rid = resp_id ? resp_id : "";
    if (strncmp(rid, "resp_", 5) == 0)
        rid += 5;
    const json_t *input = json_object_get(req, "input");
    json_t *items = json_array();
    if (!items)
        return failed(err, TG_ENOMEM);
    int rc = 0;
    if (json_is_string(input)) {
        json_t *one = json_pack("{s:s,s:O}", "role", "user", "content", input);
        json_t *it = one ? stored_item(one, rid, 0, lookup, ud, err) : NULL;
        json_decref(one);
        rc = it ? dp_json_push(items, it) : (one ? TG_EINVAL : failed(err, TG_ENOMEM));
    } else if (json_is_array(input)) {
        size_t i;
        const json_t *v;
        json_array_foreach(input, i, v)
        {
            json_t *it = stored_item(v, rid, i, lookup, ud, err);
            rc = it ? dp_json_push(items, it) : TG_EINVAL;
            if (rc != 0)
                break;
        }
    } else if (!absent(input)) {
        rc = dp_build_invalid(err, "input", "input: must be a string or an array of items");
    }
    if (rc != 0) {
        json_decref(items);
        return rc == TG_ENOMEM ? failed(err, rc) : rc;
    }
    *out = items;
    return 0;
}

/* An item as sent to a native upstream that stores nothing; NULL: leave it out. */
static json_t *inline_item(const json_t *it)
{
    const json_t *type = json_object_get(it, "type");
    if (dp_json_str_eq(type, "reasoning") &&
        !nonempty_str(json_object_get(it, "encrypted_content")))
        return NULL; /* only the upstream's own store could give it meaning */
    json_t *c = json_deep_copy(it);
    if (!c)
        return NULL;
    json_object_del(c, "id");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(c, "content"), i, p)
    {
        if (dp_json_str_eq(json_object_get(p, "type"), "output_text"))
            json_object_del(p, "logprobs");
    }
    return c;
}

int dp_resp_request_inline(const json_t *req, const json_t *prefix, dp_resp_lookup_fn lookup,
                           void *ud, json_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!json_is_object(req))
        return dp_build_invalid(err, NULL, "body: must be a JSON object");
    json_t *items = NULL;
    int rc = dp_resp_input_items(req, "", lookup, ud, &items, err);
    if (rc != 0)
        return rc;
    json_t *r = json_deep_copy(req);
    json_t *input = json_array();
    rc = r && input ? 0 : TG_ENOMEM;
    const json_t *lists[2] = {json_is_array(prefix) ? prefix : NULL, items};
    for (size_t l = 0; rc == 0 && l < 2; l++) {
        size_t i;
        const json_t *it;
        json_array_foreach(lists[l], i, it)
        {
            if (dp_json_str_eq(json_object_get(it, "type"), "reasoning") &&
                !nonempty_str(json_object_get(it, "encrypted_content")))
                continue;
            json_t *c = inline_item(it);
            rc = c ? dp_json_push(input, c) : TG_ENOMEM;
            if (rc != 0)
                break;
        }
    }
    if (rc == 0) {
        json_object_del(r, "previous_response_id");
        rc = dp_json_set(r, "input", input);
        input = NULL;
    }
    if (rc == 0)
        rc = dp_json_set(r, "store", json_false());
    json_decref(input);
    json_decref(items);
    if (rc != 0) {
        json_decref(r);
        return failed(err, rc);
    }
    *out = r;
    return 0;
}

/* ---- the response object ---- */

static json_t *or_default(const json_t *req, const char *key, json_t *dflt)
{
    const json_t *v = json_object_get(req, key);
    if (absent(v))
        return dflt;
    json_decref(dflt);
    return json_deep_copy(v);
}

json_t *dp_resp_skeleton(const json_t *req, const char *id, const char *model, int64_t created_at)
{
    const json_t *reasoning = json_object_get(req, "reasoning");
    const json_t *effort = json_object_get(reasoning, "effort");
    const json_t *store = json_object_get(req, "store");
    const json_t *tools = json_object_get(req, "tools");
    json_t *r = json_pack(
        "{s:s,s:s,s:I,s:s,s:b,s:n,s:n,s:o,s:o,s:n,s:s,s:[],s:o,s:o,s:{s:o,s:n},s:o,s:b,s:o,"
        "s:o,s:o,s:o,s:o,s:s,s:n,s:o,s:o}",
        "id", id ? id : "", "object", "response", "created_at", (json_int_t)created_at, "status",
        "in_progress", "background", 0, "error", "incomplete_details", "instructions",
        or_default(req, "instructions", json_null()), "max_output_tokens",
        or_default(req, "max_output_tokens", json_null()), "max_tool_calls", "model",
        model ? model : "", "output", "parallel_tool_calls",
        or_default(req, "parallel_tool_calls", json_true()), "previous_response_id",
        or_default(req, "previous_response_id", json_null()), "reasoning", "effort",
        nonempty_str(effort) ? json_incref((json_t *)effort) : json_null(), "summary",
        "service_tier", or_default(req, "service_tier", json_string("default")), "store",
        !json_is_false(store), "temperature", or_default(req, "temperature", json_integer(1)),
        "text",
        or_default(req, "text",
                   json_pack("{s:{s:s},s:s}", "format", "type", "text", "verbosity", "medium")),
        "tool_choice", or_default(req, "tool_choice", json_string("auto")), "tools",
        json_is_array(tools) ? json_deep_copy(tools) : json_array(), "top_p",
        or_default(req, "top_p", json_integer(1)), "truncation", "disabled", "usage", "user",
        or_default(req, "user", json_null()), "metadata",
        or_default(req, "metadata", json_object()));
    return r;
}

/* The item ids: msg_<response id without resp_>, fc_<...>_<n>, call_<...>_<n>. */
static int item_id(char *dst, size_t n, const json_t *resp, const char *kind, long long k)
{
    const json_t *id = json_object_get(resp, "id");
    const char *s = json_is_string(id) ? json_string_value(id) : "";
    size_t len = json_is_string(id) ? json_string_length(id) : 0;
    if (len > 5 && memcmp(s, "resp_", 5) == 0) {
        s += 5;
        len -= 5;
    }
    if (len > MAX_ID - 32)
        len = MAX_ID - 32;
    int w = k < 0 ? snprintf(dst, n, "%s_%.*s", kind, (int)len, s)
                  : snprintf(dst, n, "%s_%.*s_%lld", kind, (int)len, s, k);
    return w < 0 || (size_t)w >= n ? TG_ETOOBIG : 0;
}

static json_t *usage_json(const dp_usage_t *u)
{
    int64_t total = u->total ? u->total : u->prompt + u->completion;
    return json_pack("{s:I,s:{s:I},s:I,s:{s:I},s:I}", "input_tokens", (json_int_t)u->prompt,
                     "input_tokens_details", "cached_tokens", (json_int_t)u->cached,
                     "output_tokens", (json_int_t)u->completion, "output_tokens_details",
                     "reasoning_tokens", (json_int_t)u->reasoning, "total_tokens",
                     (json_int_t)total);
}

static json_t *message_json(const char *id, const char *status, const char *text, size_t n,
                            bool with_part)
{
    json_t *content = with_part ? json_pack("[{s:s,s:[],s:[],s:s%}]", "type", "output_text",
                                            "annotations", "logprobs", "text", text ? text : "", n)
                                : json_array();
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", id, "type", "message", "status", status, "role",
                     "assistant", "content", content);
}

static json_t *call_json(const char *id, const char *status, const json_t *call_id,
                         const json_t *name, const char *args, size_t n)
{
    return json_pack("{s:s,s:s,s:s,s:s%,s:O,s:O}", "id", id, "type", "function_call", "status",
                     status, "arguments", args ? args : "", n, "call_id", call_id, "name", name);
}

/* A finish_reason -> the response's status and incomplete_details. */
static const char *finish_status(const char *fr, size_t n, const char **reason)
{
    *reason = NULL;
    if (tg_mem_eq(fr, n, "length", 6))
        *reason = "max_output_tokens";
    else if (tg_mem_eq(fr, n, "content_filter", 14))
        *reason = "content_filter";
    return *reason ? "incomplete" : "completed";
}

/* skel with status, output and usage: a new object. */
static json_t *finished_response(const json_t *skel, const char *status, const char *reason,
                                 json_t *output, json_t *usage)
{
    json_t *r = json_deep_copy(skel);
    int rc = r && output && usage ? 0 : TG_ENOMEM;
    if (rc == 0)
        rc = dp_json_set(r, "status", json_string(status));
    if (rc == 0 && reason)
        rc = dp_json_set(r, "incomplete_details", json_pack("{s:s}", "reason", reason));
    if (rc == 0) {
        rc = dp_json_set(r, "output", output);
        output = NULL;
    }
    if (rc == 0) {
        rc = dp_json_set(r, "usage", usage);
        usage = NULL;
    }
    json_decref(output);
    json_decref(usage);
    if (rc != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* The text of a chat message: content (string or text parts), else its refusal. */
static int chat_text(const json_t *msg, tg_buf_t *b)
{
    const json_t *c = json_object_get(msg, "content");
    int rc = 0;
    if (json_is_string(c)) {
        rc = tg_buf_append(b, json_string_value(c), json_string_length(c));
    } else if (json_is_array(c)) {
        size_t i;
        const json_t *p;
        json_array_foreach(c, i, p)
        {
            const json_t *t = json_object_get(p, "text");
            if (rc == 0 && json_is_string(t))
                rc = tg_buf_append(b, json_string_value(t), json_string_length(t));
        }
    }
    const json_t *refusal = json_object_get(msg, "refusal");
    if (rc == 0 && b->len == 0 && json_is_string(refusal))
        rc = tg_buf_append(b, json_string_value(refusal), json_string_length(refusal));
    return rc;
}

static int chat_output(const json_t *skel, const json_t *msg, json_t *output)
{
    char id[MAX_ID];
    tg_buf_t text = TG_BUF_INIT(MAX_PART_BYTES);
    int rc = chat_text(msg, &text);
    const json_t *calls = json_object_get(msg, "tool_calls");
    if (rc == 0 && (text.len > 0 || json_array_size(calls) == 0)) {
        rc = item_id(id, sizeof(id), skel, "msg", -1);
        if (rc == 0)
            rc = dp_json_push(output, message_json(id, "completed", text.base, text.len, true));
    }
    tg_buf_dispose(&text);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const json_t *cid = json_object_get(tc, "id");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        char call_id[MAX_ID];
        if (rc == 0)
            rc = item_id(id, sizeof(id), skel, "fc", (long long)i);
        if (rc == 0)
            rc = item_id(call_id, sizeof(call_id), skel, "call", (long long)i);
        json_t *cj = nonempty_str(cid) ? json_incref((json_t *)cid) : json_string(call_id);
        json_t *nj = json_is_string(name) ? json_incref((json_t *)name) : json_string("");
        if (rc == 0 && cj && nj)
            rc = dp_json_push(output,
                              call_json(id, "completed", cj, nj,
                                        json_is_string(args) ? json_string_value(args) : "",
                                        json_is_string(args) ? json_string_length(args) : 0));
        else if (rc == 0)
            rc = TG_ENOMEM;
        json_decref(cj);
        json_decref(nj);
    }
    return rc;
}

/* An error answer in OpenAI's shape: the adapter's own when it is one, else built. */
static int error_answer(int status, const char *body, size_t n, tg_buf_t *out)
{
    json_t *root = json_loadb(body, n, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    int rc;
    if (json_is_object(e) && json_is_string(m)) {
        rc = dp_json_append(out, root);
    } else if (json_is_string(m)) {
        rc = tg_error_body(out, status, NULL, json_string_value(m), json_string_length(m), NULL,
                           NULL);
    } else {
        char msg[64];
        if (snprintf(msg, sizeof(msg), "the provider answered with status %d", status) < 0)
            msg[0] = '\0';
        rc = tg_error_body(out, status, NULL, msg, strlen(msg), NULL, NULL);
    }
    json_decref(root);
    return rc;
}

int dp_resp_response_from_chat(const json_t *skel, int status, const char *body, size_t n,
                               tg_buf_t *out, json_t **final)
{
    if (final)
        *final = NULL;
    if (status < 200 || status > 299)
        return error_answer(status, body, n, out);
    json_t *root = json_loadb(body, n, 0, NULL);
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        json_decref(root);
        return TG_EUPSTREAM;
    }
    json_t *output = json_array();
    int rc = output ? chat_output(skel, msg, output) : TG_ENOMEM;
    const json_t *fr = json_object_get(choice, "finish_reason");
    const char *reason;
    const char *st = finish_status(json_is_string(fr) ? json_string_value(fr) : "",
                                   json_is_string(fr) ? json_string_length(fr) : 0, &reason);
    dp_usage_t u;
    memset(&u, 0, sizeof(u));
    (void)dp_usage_from_json(&u, json_object_get(root, "usage"));
    json_decref(root);
    json_t *r = NULL;
    if (rc == 0) {
        r = finished_response(skel, st, reason, output, usage_json(&u));
        output = NULL;
        rc = r ? 0 : TG_ENOMEM;
    }
    json_decref(output);
    if (rc == 0)
        rc = dp_json_append(out, r);
    if (rc == 0 && final)
        *final = json_incref(r);
    json_decref(r);
    return rc;
}

/* ---- streams ---- */

enum { ITEM_MESSAGE = 1, ITEM_CALL };

typedef struct item {
    int kind;
    int64_t chat_index;   /* tool_calls[].index; -1 for the message or a reused index */
    json_t *call_id;      /* owned string, or NULL until the upstream names it */
    json_t *name;         /* owned string, or NULL */
    tg_buf_t text;        /* owned: the message's text or the call's arguments so far */
    size_t sent;          /* bytes of text already sent in deltas */
    int64_t output_index; /* -1 until output_item.added */
    char id[MAX_ID];
    bool done; /* output_item.done was sent */
} item_t;

enum { S_NEW = 0, S_OPEN, S_CLOSED, S_ENDED };

struct dp_resp_stream {
    json_t *skel; /* referenced */
    dp_sse_t sse;
    tg_buf_t data_scratch;
    item_t *items; /* owned; the message (when any) and calls, in arrival order */
    size_t nitems;
    size_t cap;
    int64_t next_output; /* output_index of the next item added */
    int64_t seq;         /* sequence_number of the next event */
    int state;           /* S_NEW: nothing sent; S_OPEN: created; S_CLOSED: items done;
                          * S_ENDED: the last lifecycle event was sent */
    bool finish_seen;
    bool usage_final;
    char finish[32];
    size_t finish_len;
    dp_usage_t usage;
    json_t *final; /* owned: the response of the last lifecycle event */
};

dp_resp_stream_t *dp_resp_stream_create(const json_t *skel)
{
    dp_resp_stream_t *s = calloc(1, sizeof(*s));
    if (!s || !json_is_object(skel)) {
        free(s);
        return NULL;
    }
    s->skel = json_incref((json_t *)skel);
    dp_sse_init(&s->sse, MAX_SSE_EVENT);
    tg_buf_init(&s->data_scratch, MAX_SSE_EVENT);
    return s;
}

void dp_resp_stream_destroy(dp_resp_stream_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nitems; i++) {
        json_decref(s->items[i].call_id);
        json_decref(s->items[i].name);
        tg_buf_dispose(&s->items[i].text);
    }
    free(s->items);
    dp_sse_dispose(&s->sse);
    tg_buf_dispose(&s->data_scratch);
    json_decref(s->skel);
    json_decref(s->final);
    free(s);
}

const json_t *dp_resp_stream_response(const dp_resp_stream_t *s)
{
    return s ? s->final : NULL;
}

/* ---- event writers ---- */

/* "event: T\ndata: {"type":"T","sequence_number":N" ... ev_end closes it. */
static int ev_begin(dp_resp_stream_t *s, tg_buf_t *out, const char *type)
{
    return tg_buf_appendf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%lld", type,
                          type, (long long)s->seq++);
}

static int ev_end(tg_buf_t *out)
{
    return tg_buf_append(out, "}\n\n", 3);
}

/* An event with one JSON member (taken): response, item or part. */
static int ev_json(dp_resp_stream_t *s, tg_buf_t *out, const char *type, const char *where,
                   json_t *v)
{
    int rc = v ? ev_begin(s, out, type) : TG_ENOMEM;
    if (rc == 0 && where)
        rc = tg_buf_append(out, where, strlen(where));
    if (rc == 0)
        rc = dp_str_append(out, ",\"");
    const char *key = strstr(type, "output_item")    ? "item"
                      : strstr(type, "content_part") ? "part"
                                                     : "response";
    if (rc == 0)
        rc = tg_buf_appendf(out, "%s\":", key);
    if (rc == 0)
        rc = dp_json_append(out, v);
    if (rc == 0)
        rc = ev_end(out);
    json_decref(v);
    return rc;
}

/* ,"item_id":"...","output_index":N (and ,"content_index":0 for message text) */
static int where_append(tg_buf_t *b, const item_t *it)
{
    int rc = dp_str_append(b, ",\"item_id\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(b, it->id, strlen(it->id));
    if (rc == 0)
        rc = tg_buf_appendf(b, ",\"output_index\":%lld", (long long)it->output_index);
    if (rc == 0 && it->kind == ITEM_MESSAGE)
        rc = dp_str_append(b, ",\"content_index\":0");
    return rc;
}

static int emit_lifecycle(dp_resp_stream_t *s, tg_buf_t *out, const char *type, json_t *resp)
{
    return ev_json(s, out, type, NULL, resp);
}

static int start(dp_resp_stream_t *s, tg_buf_t *out)
{
    if (s->state != S_NEW)
        return 0;
    s->state = S_OPEN;
    int rc = emit_lifecycle(s, out, "response.created", json_deep_copy(s->skel));
    if (rc == 0)
        rc = emit_lifecycle(s, out, "response.in_progress", json_deep_copy(s->skel));
    return rc;
}

static json_t *item_json(const item_t *it, const char *status, bool whole)
{
    if (it->kind == ITEM_MESSAGE)
        return message_json(it->id, status, it->text.base, whole ? it->text.len : 0, whole);
    return call_json(it->id, status, it->call_id, it->name, it->text.base,
                     whole ? it->text.len : 0);
}

/* output_item.added (and for the message its content part); held-back text follows. */
static int item_add(dp_resp_stream_t *s, item_t *it, tg_buf_t *out)
{
    char where[MAX_ID + 80];
    it->output_index = s->next_output++;
    if (snprintf(where, sizeof(where), ",\"output_index\":%lld", (long long)it->output_index) < 0)
        return TG_ENOMEM;
    int rc =
        ev_json(s, out, "response.output_item.added", where, item_json(it, "in_progress", false));
    if (rc == 0 && it->kind == ITEM_MESSAGE) {
        tg_buf_t w = TG_BUF_INIT(sizeof(where));
        rc = where_append(&w, it);
        if (rc == 0)
            rc = tg_buf_append(&w, "", 1);
        if (rc == 0)
            rc = ev_json(s, out, "response.content_part.added", w.base,
                         json_pack("{s:s,s:[],s:[],s:s}", "type", "output_text", "annotations",
                                   "logprobs", "text", ""));
        tg_buf_dispose(&w);
    }
    return rc;
}

/* The delta of it's text not sent yet. */
static int item_flush(dp_resp_stream_t *s, item_t *it, tg_buf_t *out)
{
    if (it->output_index < 0 || it->sent == it->text.len)
        return 0;
    bool msg = it->kind == ITEM_MESSAGE;
    int rc = ev_begin(
        s, out, msg ? "response.output_text.delta" : "response.function_call_arguments.delta");
    if (rc == 0)
        rc = where_append(out, it);
    if (rc == 0)
        rc = dp_str_append(out, ",\"delta\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, it->text.base + it->sent, it->text.len - it->sent);
    if (rc == 0 && msg)
        rc = dp_str_append(out, ",\"logprobs\":[]");
    if (rc == 0)
        rc = ev_end(out);
    it->sent = it->text.len;
    return rc;
}

/* The .done events of an item: text/arguments, part, item. */
static int item_done(dp_resp_stream_t *s, item_t *it, tg_buf_t *out)
{
    if (it->done)
        return 0;
    int rc = 0;
    if (it->output_index < 0)
        rc = item_add(s, it, out);
    if (rc == 0)
        rc = item_flush(s, it, out);
    bool msg = it->kind == ITEM_MESSAGE;
    if (rc == 0)
        rc = ev_begin(s, out,
                      msg ? "response.output_text.done" : "response.function_call_arguments.done");
    if (rc == 0)
        rc = where_append(out, it);
    if (rc == 0 && !msg) {
        rc = dp_str_append(out, ",\"name\":");
        if (rc == 0)
            rc = dp_json_append(out, it->name);
    }
    if (rc == 0)
        rc = dp_str_append(out, msg ? ",\"text\":" : ",\"arguments\":");
    if (rc == 0)
        rc = tg_buf_append_json_str(out, it->text.base ? it->text.base : "", it->text.len);
    if (rc == 0 && msg)
        rc = dp_str_append(out, ",\"logprobs\":[]");
    if (rc == 0)
        rc = ev_end(out);
    char where[MAX_ID + 80];
    tg_buf_t w = TG_BUF_INIT(sizeof(where));
    if (rc == 0 && msg) {
        rc = where_append(&w, it);
        if (rc == 0)
            rc = tg_buf_append(&w, "", 1);
        if (rc == 0)
            rc = ev_json(s, out, "response.content_part.done", w.base,
                         json_pack("{s:s,s:[],s:[],s:s%}", "type", "output_text", "annotations",
                                   "logprobs", "text", it->text.base ? it->text.base : "",
                                   it->text.len));
    }
    tg_buf_dispose(&w);
    if (rc == 0 &&
        snprintf(where, sizeof(where), ",\"output_index\":%lld", (long long)it->output_index) < 0)
        rc = TG_ENOMEM;
    if (rc == 0)
        rc = ev_json(s, out, "response.output_item.done", where, item_json(it, "completed", true));
    it->done = true;
    return rc;
}

static item_t *new_item(dp_resp_stream_t *s, int kind, int64_t chat_index)
{
    if (s->nitems == MAX_ITEMS)
        return NULL;
    if (s->nitems == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        item_t *t = realloc(s->items, cap * sizeof(*t));
        if (!t)
            return NULL;
        s->items = t;
        s->cap = cap;
    }
    item_t *it = &s->items[s->nitems];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->chat_index = chat_index;
    it->output_index = -1;
    tg_buf_init(&it->text, MAX_ITEM_BYTES);
    int64_t ncalls = 0;
    for (size_t i = 0; i < s->nitems; i++)
        ncalls += s->items[i].kind == ITEM_CALL;
    if (item_id(it->id, sizeof(it->id), s->skel, kind == ITEM_MESSAGE ? "msg" : "fc",
                kind == ITEM_MESSAGE ? -1 : (long long)ncalls) != 0)
        return NULL;
    s->nitems++;
    return it;
}

/* All items done, in output order; an answer with none gets an empty message, as the JSON
 * answer does. */
static int close_items(dp_resp_stream_t *s, tg_buf_t *out)
{
    if (s->state != S_OPEN)
        return 0;
    int rc = 0;
    if (s->nitems == 0 && !new_item(s, ITEM_MESSAGE, -1))
        return TG_ENOMEM;
    /* added ones first (their output_index order), then those still held back */
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        for (int64_t oi = 0; rc == 0 && pass == 0 && oi < s->next_output; oi++)
            for (size_t i = 0; rc == 0 && i < s->nitems; i++)
                if (s->items[i].output_index == oi)
                    rc = item_done(s, &s->items[i], out);
        for (size_t i = 0; rc == 0 && pass == 1 && i < s->nitems; i++) {
            item_t *it = &s->items[i];
            if (it->kind == ITEM_CALL && !it->call_id) {
                char cid[MAX_ID];
                rc = item_id(cid, sizeof(cid), s->skel, "call", (long long)i);
                if (rc == 0)
                    rc = (it->call_id = json_string(cid)) ? 0 : TG_ENOMEM;
            }
            if (rc == 0 && it->kind == ITEM_CALL && !it->name)
                rc = (it->name = json_string("")) ? 0 : TG_ENOMEM;
            if (rc == 0)
                rc = item_done(s, it, out);
        }
    }
    s->state = S_CLOSED;
    return rc;
}

static json_t *output_json(const dp_resp_stream_t *s, const char *status)
{
    json_t *output = json_array();
    for (int64_t oi = 0; output && oi < s->next_output; oi++)
        for (size_t i = 0; i < s->nitems; i++)
            if (s->items[i].output_index == oi &&
                dp_json_push(output, item_json(&s->items[i],
                                               s->items[i].done ? "completed" : status, true)) !=
                    0) {
                json_decref(output);
                return NULL;
            }
    return output;
}

/* response.completed (or .incomplete) with the whole response and its usage. */
static int finish(dp_resp_stream_t *s, tg_buf_t *out)
{
    if (s->state == S_ENDED)
        return 0;
    int rc = start(s, out);
    if (rc == 0)
        rc = close_items(s, out);
    const char *reason;
    const char *st = finish_status(s->finish, s->finish_len, &reason);
    json_t *r = rc == 0 ? finished_response(s->skel, st, reason, output_json(s, "completed"),
                                            usage_json(&s->usage))
                        : NULL;
    if (rc == 0 && !r)
        rc = TG_ENOMEM;
    s->state = S_ENDED;
    if (rc != 0)
        return rc;
    json_decref(s->final);
    s->final = json_incref(r);
    return emit_lifecycle(s, out, reason ? "response.incomplete" : "response.completed", r);
}

/* The error code for an HTTP status, as OpenAI's response.error.code. */
static const char *fail_code(int status)
{
    if (status == 429)
        return "rate_limit_exceeded";
    if (status >= 400 && status < 500)
        return "invalid_prompt";
    return "server_error";
}

int dp_resp_stream_fail(dp_resp_stream_t *s, int status, const char *message, size_t n,
                        tg_buf_t *out)
{
    if (!s || s->state == S_ENDED)
        return 0;
    int rc = start(s, out);
    s->state = S_ENDED;
    if (rc != 0)
        return rc;
    /* the usage so far when the provider sent any, else null as OpenAI's failed responses */
    json_t *r = finished_response(s->skel, "failed", NULL, output_json(s, "incomplete"),
                                  s->usage.present ? usage_json(&s->usage) : json_null());
    json_t *e =
        json_pack("{s:s,s:s%}", "code", fail_code(status), "message", message ? message : "", n);
    rc = r && e ? dp_json_set(r, "error", e) : TG_ENOMEM;
    if (rc != 0) {
        if (!r || !e)
            json_decref(e);
        json_decref(r);
        return rc;
    }
    json_decref(s->final);
    s->final = json_incref(r);
    return emit_lifecycle(s, out, "response.failed", r);
}

/* ---- chat chunks in ---- */

static item_t *message_item_of(dp_resp_stream_t *s)
{
    for (size_t i = 0; i < s->nitems; i++)
        if (s->items[i].kind == ITEM_MESSAGE)
            return &s->items[i];
    return NULL;
}

static int on_text(dp_resp_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    if (n == 0)
        return 0;
    item_t *it = message_item_of(s);
    if (!it) {
        it = new_item(s, ITEM_MESSAGE, -1);
        if (!it)
            return TG_ENOMEM;
        int rc = item_add(s, it, out);
        if (rc != 0)
            return rc;
    }
    if (it->done)
        return 0; /* text after the message was closed cannot be sent any more */
    int rc = tg_buf_append(&it->text, p, n);
    return rc == 0 ? item_flush(s, it, out) : rc;
}

/* The call a tool_calls[] fragment belongs to, made when new: by index; a known index with
 * another id is a new call (servers that number every call 0); without an index, the latest. */
static item_t *call_for(dp_resp_stream_t *s, int64_t idx, const json_t *id)
{
    item_t *found = NULL;
    for (size_t i = 0; i < s->nitems; i++) {
        item_t *it = &s->items[i];
        if (it->kind != ITEM_CALL)
            continue;
        if (idx >= 0 ? it->chat_index == idx
                     : (id && it->call_id && json_equal(it->call_id, (json_t *)id)))
            found = it;
        if (idx < 0 && !id)
            found = it;
    }
    if (found && idx >= 0 && id && found->call_id && !json_equal(found->call_id, (json_t *)id)) {
        found->chat_index = -1;
        found = NULL;
    }
    return found ? found : new_item(s, ITEM_CALL, idx);
}

static int on_tool_fragment(dp_resp_stream_t *s, const json_t *tc, tg_buf_t *out)
{
    const json_t *index = json_object_get(tc, "index");
    const json_t *id = json_object_get(tc, "id");
    const json_t *fn = json_object_get(tc, "function");
    const json_t *name = json_object_get(fn, "name");
    const json_t *args = json_object_get(fn, "arguments");
    int64_t idx =
        json_is_integer(index) && json_integer_value(index) >= 0 ? json_integer_value(index) : -1;
    item_t *it = call_for(s, idx, nonempty_str(id) ? id : NULL);
    if (!it)
        return TG_ENOMEM;
    if (it->done)
        return 0;
    if (!it->call_id && nonempty_str(id))
        it->call_id = json_incref((json_t *)id);
    if (!it->name && nonempty_str(name))
        it->name = json_incref((json_t *)name);
    int rc = 0;
    if (json_is_string(args))
        rc = tg_buf_append(&it->text, json_string_value(args), json_string_length(args));
    /* output_item.added carries the call_id and name: it waits for the name */
    if (rc == 0 && it->output_index < 0 && it->name) {
        if (!it->call_id) {
            char cid[MAX_ID];
            rc = item_id(cid, sizeof(cid), s->skel, "call", (long long)(it - s->items));
            if (rc == 0)
                rc = (it->call_id = json_string(cid)) ? 0 : TG_ENOMEM;
        }
        if (rc == 0)
            rc = item_add(s, it, out);
    }
    return rc == 0 ? item_flush(s, it, out) : rc;
}

static int on_choice(dp_resp_stream_t *s, const json_t *choice, tg_buf_t *out)
{
    const json_t *delta = json_object_get(choice, "delta");
    const json_t *content = json_object_get(delta, "content");
    const json_t *refusal = json_object_get(delta, "refusal");
    const json_t *calls = json_object_get(delta, "tool_calls");
    int rc = 0;
    if (s->state != S_OPEN)
        return 0; /* after finish_reason: nothing more can be sent */
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
    const json_t *fr = json_object_get(choice, "finish_reason");
    if (rc == 0 && json_is_string(fr) && json_string_length(fr) > 0) {
        s->finish_seen = true;
        s->finish_len = json_string_length(fr) < sizeof(s->finish) ? json_string_length(fr) : 0;
        memcpy(s->finish, json_string_value(fr), s->finish_len);
        rc = close_items(s, out);
    }
    return rc;
}

/* The HTTP status an error object in a chat stream stands for. */
static int error_status(const json_t *e)
{
    const json_t *code = json_object_get(e, "code");
    if (json_is_integer(code) && json_integer_value(code) >= 400 && json_integer_value(code) < 600)
        return (int)json_integer_value(code);
    const json_t *type = json_object_get(e, "type");
    if (json_is_string(type) &&
        tg_memmem(json_string_value(type), json_string_length(type), "rate_limit", 10))
        return 429;
    if (json_is_string(code) &&
        tg_memmem(json_string_value(code), json_string_length(code), "rate_limit", 10))
        return 429;
    return 500;
}

static int on_chunk(dp_resp_stream_t *s, const char *data, size_t len, tg_buf_t *out)
{
    if (tg_mem_eq(data, len, "[DONE]", 6))
        return finish(s, out);
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return 0; /* not a chunk: nothing the client could use */
    }
    int rc = 0;
    const json_t *e = json_object_get(root, "error");
    if (!absent(e)) {
        static const char dflt[] = "the provider reported an error";
        const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
        rc = nonempty_str(m) ? dp_resp_stream_fail(s, error_status(e), json_string_value(m),
                                                   json_string_length(m), out)
                             : dp_resp_stream_fail(s, error_status(e), dflt, sizeof(dflt) - 1, out);
        json_decref(root);
        return rc;
    }
    const json_t *u = json_object_get(root, "usage");
    bool has_usage = json_is_object(u) && dp_usage_from_json(&s->usage, u);
    rc = start(s, out);
    /* n > 1 has no Responses form: the first choice only */
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
    /* chat sends usage in a chunk of its own after the finish_reason one: completed waits */
    if (rc == 0 && has_usage && s->finish_seen)
        s->usage_final = true;
    if (rc == 0 && s->finish_seen && s->usage_final)
        rc = finish(s, out);
    return rc;
}

typedef struct feed_ctx {
    dp_resp_stream_t *s;
    tg_buf_t *out;
} feed_ctx_t;

static int on_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    const char *data;
    size_t len;
    if (f->s->state == S_ENDED)
        return 0;
    if (!dp_sse_data(ev, n, &f->s->data_scratch, &data, &len))
        return 0; /* a keep-alive comment: the Responses API has none to give */
    return on_chunk(f->s, data, len, f->out);
}

int dp_resp_stream_feed(dp_resp_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    if (!s)
        return TG_EINVAL;
    feed_ctx_t f = {s, out};
    return dp_sse_feed(&s->sse, p, n, on_event, &f);
}

int dp_resp_stream_end(dp_resp_stream_t *s, bool complete, tg_buf_t *out)
{
    if (!s || !complete || s->state == S_ENDED)
        return 0;
    int rc = 0;
    if (dp_sse_pending(&s->sse) > 0) { /* an unterminated last event */
        feed_ctx_t f = {s, out};
        rc = on_event(&f, s->sse.partial.base, s->sse.partial.len);
        tg_buf_reset(&s->sse.partial);
    }
    return rc == 0 ? finish(s, out) : rc;
}

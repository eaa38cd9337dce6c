/* gemini.c: Google Gemini's Generative Language API (base_url like
 * https://generativelanguage.googleapis.com/v1beta). OpenAI chat bodies become
 * GenerateContentRequests for models/{model}:generateContent (streams:
 * :streamGenerateContent?alt=sse), answers and SSE events become OpenAI chat completions and
 * chunks, and embeddings go through :batchEmbedContents. Pure; runs on the request's loop
 * thread. */
#include "provider.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_banned.h"

/* Gemini answers with at most 8 candidates (generationConfig.candidateCount). */
#define GEM_MAX_CANDIDATES 8
/* JSON Schema nesting we translate; deeper (or recursive $ref) schemas become "any". */
#define GEM_MAX_SCHEMA_DEPTH 32
/* Part of a non-JSON error body kept as the client's message. */
#define GEM_MAX_RAW_ERROR 512
/* Google's documented placeholder for a function call whose thought signature the client did
 * not keep (or that another model made): Gemini 3 refuses function-call history without one. */
#define GEM_DUMMY_SIGNATURE "skip_thought_signature_validator"

/* ---- request: OpenAI chat -> GenerateContentRequest ---- */

typedef struct gem_req {
    json_t *contents; /* Content[] */
    json_t *system;   /* systemInstruction parts */
    json_t *names;    /* tool_call_id -> function name, from the assistant turns so far */
    tg_err_t *err;
} gem_req_t;

static int text_part(json_t *parts, const char *s, size_t n)
{
    if (n == 0)
        return 0; /* Gemini refuses empty text parts */
    json_t *p = json_object();
    int rc = p ? dp_json_set(p, "text", json_stringn(s, n)) : TG_ENOMEM;
    if (rc != 0) {
        json_decref(p);
        return rc;
    }
    return dp_json_push(parts, p);
}

/* The MIME type a URL's extension suggests; images are the common case. */
static const char *guess_mime(const char *u, size_t n)
{
    static const struct {
        const char *ext, *mime;
    } map[] = {{"png", "image/png"},   {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
               {"gif", "image/gif"},   {"webp", "image/webp"},     {"heic", "image/heic"},
               {"heif", "image/heif"}, {"pdf", "application/pdf"}, {"mp3", "audio/mp3"},
               {"wav", "audio/wav"},   {"mp4", "video/mp4"},       {"txt", "text/plain"}};
    size_t end = 0;
    while (end < n && u[end] != '?' && u[end] != '#')
        end++;
    size_t dot = end;
    while (dot > 0 && u[dot - 1] != '.' && u[dot - 1] != '/')
        dot--;
    if (dot > 0 && u[dot - 1] == '.') {
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (tg_mem_caseeq(u + dot, end - dot, map[i].ext, strlen(map[i].ext)))
                return map[i].mime;
    }
    return "image/jpeg";
}

/* URL schemes are case-insensitive (RFC 3986). */
static bool has_prefix_nocase(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && tg_mem_caseeq(s, l, lit, l);
}

/* A media reference (data: URL or remote URI) -> inlineData or fileData. */
static int media_part(gem_req_t *r, json_t *parts, const char *u, size_t n, const char *where)
{
    json_t *p = NULL;
    if (has_prefix_nocase(u, n, "data:")) {
        const char *mime, *data;
        size_t mlen, dlen;
        if (!dp_data_url_split(u, n, &mime, &mlen, &data, &dlen))
            return dp_build_invalid(r->err, "messages", "%s: only base64 data URLs are supported",
                                    where);
        if (mlen == 0)
            return dp_build_invalid(r->err, "messages", "%s: the data URL has no media type",
                                    where);
        p = json_pack("{s:{s:s%,s:s%}}", "inlineData", "mimeType", mime, mlen, "data", data, dlen);
    } else if (has_prefix_nocase(u, n, "https://") || has_prefix_nocase(u, n, "http://") ||
               has_prefix_nocase(u, n, "gs://")) {
        p = json_pack("{s:{s:s,s:s%}}", "fileData", "mimeType", guess_mime(u, n), "fileUri", u, n);
    } else {
        return dp_build_invalid(r->err, "messages",
                                "%s: the URL must be a data: URL or an http(s) URL", where);
    }
    return dp_json_push(parts, p);
}

/* OpenAI content (string, array of parts or null) -> Gemini parts appended to parts. Media is
 * accepted only where Gemini takes it (user turns). */
static int content_parts(gem_req_t *r, size_t mi, const json_t *content, bool media, json_t *parts)
{
    char where[96];
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return text_part(parts, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return dp_build_invalid(r->err, "messages",
                                "messages[%zu].content must be a string or an array", mi);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        snprintf(where, sizeof(where), "messages[%zu].content[%zu]", mi, i);
        const json_t *type = json_object_get(part, "type");
        int rc;
        if (dp_json_str_eq(type, "text")) {
            const json_t *t = json_object_get(part, "text");
            if (!json_is_string(t))
                return dp_build_invalid(r->err, "messages", "%s.text must be a string", where);
            rc = text_part(parts, json_string_value(t), json_string_length(t));
        } else if (dp_json_str_eq(type, "refusal") && !media) {
            const json_t *t = json_object_get(part, "refusal");
            rc = json_is_string(t) ? text_part(parts, json_string_value(t), json_string_length(t))
                                   : 0;
        } else if (media && dp_json_str_eq(type, "image_url")) {
            const json_t *iu = json_object_get(part, "image_url");
            const json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
            if (!json_is_string(url))
                return dp_build_invalid(r->err, "messages", "%s.image_url.url must be a string",
                                        where);
            rc = media_part(r, parts, json_string_value(url), json_string_length(url), where);
        } else if (media && dp_json_str_eq(type, "input_audio")) {
            const json_t *ia = json_object_get(part, "input_audio");
            const json_t *data = json_object_get(ia, "data");
            const json_t *fmt = json_object_get(ia, "format");
            if (!json_is_string(data) || !json_is_string(fmt))
                return dp_build_invalid(r->err, "messages", "%s.input_audio needs data and format",
                                        where);
            rc = dp_json_push(parts, json_pack("{s:{s:s+,s:O}}", "inlineData", "mimeType", "audio/",
                                               json_string_value(fmt), "data", data));
        } else if (media && dp_json_str_eq(type, "file")) {
            const json_t *fd = json_object_get(json_object_get(part, "file"), "file_data");
            if (!json_is_string(fd))
                return dp_build_invalid(r->err, "messages", "%s.file: only file_data is supported",
                                        where);
            rc = media_part(r, parts, json_string_value(fd), json_string_length(fd), where);
        } else {
            return dp_build_invalid(r->err, "messages",
                                    "%s: content part type %s is not supported here", where,
                                    json_is_string(type) ? json_string_value(type) : "(none)");
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* An assistant's tool_calls -> functionCall parts; remembers id -> name for the results. */
static int call_parts(gem_req_t *r, size_t mi, const json_t *calls, json_t *parts)
{
    if (!json_is_array(calls))
        return dp_build_invalid(r->err, "messages", "messages[%zu].tool_calls must be an array",
                                mi);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *id = json_object_get(tc, "id");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(name) || json_string_length(name) == 0)
            return dp_build_invalid(r->err, "messages",
                                    "messages[%zu].tool_calls[%zu].function.name is required", mi,
                                    i);
        json_t *a = dp_tool_args_parse(args);
        if (a && !json_is_object(a)) {
            json_decref(a);
            a = NULL;
        }
        if (!a && json_is_string(args) && json_string_length(args) > 0)
            return dp_build_invalid(
                r->err, "messages",
                "messages[%zu].tool_calls[%zu].function.arguments is not a JSON object", mi, i);
        if (!a && args && !json_is_null(args) && !json_is_string(args) && !json_is_object(args))
            return dp_build_invalid(
                r->err, "messages",
                "messages[%zu].tool_calls[%zu].function.arguments must be a string", mi, i);
        json_t *p = json_pack("{s:{s:O,s:o}}", "functionCall", "name", name, "args", a);
        if (!p)
            return TG_ENOMEM;
        /* Gemini 3 wants back the signature of the first call of each step; Google's OpenAI
         * layer carries it as extra_content.google.thought_signature */
        const json_t *sig = json_object_get(
            json_object_get(json_object_get(tc, "extra_content"), "google"), "thought_signature");
        int rc = 0;
        if (json_is_string(sig))
            rc = dp_json_set(p, "thoughtSignature", json_deep_copy(sig));
        else if (i == 0)
            rc = dp_json_set(p, "thoughtSignature", json_string(GEM_DUMMY_SIGNATURE));
        if (rc == 0 && json_is_string(id))
            rc = dp_json_set(r->names, json_string_value(id), json_deep_copy(name));
        if (rc != 0) {
            json_decref(p);
            return rc;
        }
        rc = dp_json_push(parts, p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A tool (or legacy function) message -> a user turn with one functionResponse part. */
static int tool_result(gem_req_t *r, size_t mi, const json_t *m, bool legacy)
{
    const json_t *name = NULL;
    const json_t *id = json_object_get(m, "tool_call_id");
    if (!legacy) {
        if (!json_is_string(id))
            return dp_build_invalid(r->err, "messages", "messages[%zu].tool_call_id is required",
                                    mi);
        name = json_object_get(r->names, json_string_value(id));
    }
    if (!name)
        name = json_object_get(m, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return dp_build_invalid(
            r->err, "messages",
            "messages[%zu]: tool_call_id \"%s\" answers no earlier assistant tool call", mi,
            json_is_string(id) ? json_string_value(id) : "");
    /* the result as one string: a string, or the text parts of an array */
    const json_t *content = json_object_get(m, "content");
    tg_buf_t text = TG_BUF_INIT(SIZE_MAX);
    int rc = content ? dp_content_text_append(&text, content, mi, r->err) : 0;
    if (rc == TG_EINVAL) {
        tg_buf_dispose(&text);
        return rc;
    }
    json_t *value = NULL;
    if (rc == 0) {
        const char *s = text.base ? text.base : "";
        /* JSON results stay structured for the model; anything else is passed as a string */
        value = json_loadb(s, text.len, JSON_DECODE_ANY, NULL);
        if (!value)
            value = json_stringn(s, text.len);
    }
    tg_buf_dispose(&text);
    if (!value)
        return TG_ENOMEM;
    json_t *parts = json_pack("[{s:{s:O,s:{s:o}}}]", "functionResponse", "name", name, "response",
                              "content", value);
    if (!parts)
        return TG_ENOMEM;
    return dp_json_turn_append(r->contents, "user", "parts", parts);
}

static int translate_message(gem_req_t *r, size_t mi, const json_t *m)
{
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m) || !json_is_string(role))
        return dp_build_invalid(r->err, "messages", "messages[%zu] must be an object with a role",
                                mi);
    if (dp_json_str_eq(role, "system") || dp_json_str_eq(role, "developer"))
        return content_parts(r, mi, content, false, r->system);
    if (dp_json_str_eq(role, "tool") || dp_json_str_eq(role, "function"))
        return tool_result(r, mi, m, dp_json_str_eq(role, "function"));
    bool user = dp_json_str_eq(role, "user");
    if (!user && !dp_json_str_eq(role, "assistant"))
        return dp_build_invalid(r->err, "messages", "messages[%zu].role \"%s\" is not supported",
                                mi, json_string_value(role));
    json_t *parts = json_array();
    if (!parts)
        return TG_ENOMEM;
    int rc = content_parts(r, mi, content, user, parts);
    const json_t *calls = json_object_get(m, "tool_calls");
    if (rc == 0 && !user && calls && !json_is_null(calls))
        rc = call_parts(r, mi, calls, parts);
    if (rc != 0) {
        json_decref(parts);
        return rc;
    }
    /* Gemini wants user and model turns to alternate: same roles merge */
    return dp_json_turn_append(r->contents, user ? "user" : "model", "parts", parts);
}

static json_t *sanitize_schema(const json_t *s, const json_t *root, int depth);

/* anyOf/oneOf members; a {"type":"null"} member becomes nullable instead. */
static int schema_any_of(json_t *out, const json_t *list, const json_t *root, int depth)
{
    json_t *any = json_array();
    size_t i;
    const json_t *m;
    if (!any)
        return TG_ENOMEM;
    json_array_foreach(list, i, m)
    {
        if (dp_json_str_eq(json_object_get(m, "type"), "null")) {
            if (dp_json_set(out, "nullable", json_true()) != 0)
                goto fail;
            continue;
        }
        if (dp_json_push(any, sanitize_schema(m, root, depth + 1)) != 0)
            goto fail;
    }
    if (json_array_size(any) == 1) { /* X or null: just a nullable X */
        json_t *only = json_array_get(any, 0);
        int rc = json_object_update_missing(out, only) == 0 ? 0 : TG_ENOMEM;
        json_decref(any);
        return rc;
    }
    if (json_array_size(any) == 0) {
        json_decref(any);
        return 0;
    }
    return dp_json_set(out, "anyOf", any);
fail:
    json_decref(any);
    return TG_ENOMEM;
}

/* A local "#/$defs/X" or "#/definitions/X" reference, or NULL. */
static const json_t *schema_ref(const json_t *root, const json_t *ref)
{
    static const char *const prefixes[] = {"#/$defs/", "#/definitions/"};
    if (!json_is_string(ref))
        return NULL;
    const char *s = json_string_value(ref);
    size_t n = json_string_length(ref);
    for (size_t i = 0; i < 2; i++) {
        size_t l = strlen(prefixes[i]);
        if (n > l && memcmp(s, prefixes[i], l) == 0)
            return json_object_getn(json_object_get(root, i == 0 ? "$defs" : "definitions"), s + l,
                                    n - l);
    }
    return NULL;
}

/* JSON Schema -> the OpenAPI subset Gemini's Schema accepts. Gemini answers 400 for any member
 * it does not know ($schema, additionalProperties, const, exclusiveMinimum, propertyNames, ...),
 * so this keeps a list of known members and rewrites the common others. NULL: out of memory. */
static json_t *sanitize_schema(const json_t *s, const json_t *root, int depth)
{
    static const char *const copy[] = {
        "description", "title",    "nullable",      "pattern",       "minimum",
        "maximum",     "minItems", "maxItems",      "minLength",     "maxLength",
        "default",     "example",  "minProperties", "maxProperties", "propertyOrdering"};
    static const char *const formats[] = {"date-time", "enum", "int32", "int64", "float", "double"};
    json_t *out = json_object();
    if (!out || !json_is_object(s) || depth > GEM_MAX_SCHEMA_DEPTH)
        return out;
    const json_t *target = schema_ref(root, json_object_get(s, "$ref"));
    if (target) {
        json_decref(out);
        out = sanitize_schema(target, root, depth + 1);
        const json_t *d = json_object_get(s, "description");
        if (out && json_is_string(d) && dp_json_set(out, "description", json_deep_copy(d)) != 0) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    int rc = 0;
    const json_t *type = json_object_get(s, "type");
    if (json_is_string(type)) {
        rc = dp_json_set(out, "type", json_deep_copy(type));
    } else if (json_is_array(type)) { /* ["string","null"]: Gemini takes one type */
        size_t i;
        const json_t *t;
        json_array_foreach(type, i, t)
        {
            if (dp_json_str_eq(t, "null"))
                rc = dp_json_set(out, "nullable", json_true());
            else if (json_is_string(t) && !json_object_get(out, "type"))
                rc = dp_json_set(out, "type", json_deep_copy(t));
            if (rc != 0)
                break;
        }
    }
    for (size_t i = 0; rc == 0 && i < sizeof(copy) / sizeof(copy[0]); i++) {
        const json_t *v = json_object_get(s, copy[i]);
        if (v)
            rc = dp_json_set(out, copy[i], json_deep_copy(v));
    }
    const json_t *fmt = json_object_get(s, "format");
    for (size_t i = 0; rc == 0 && i < sizeof(formats) / sizeof(formats[0]); i++)
        if (dp_json_str_eq(fmt, formats[i]))
            rc = dp_json_set(out, "format", json_deep_copy(fmt));
    const json_t *en = json_object_get(s, "enum");
    const json_t *cst = json_object_get(s, "const");
    if (rc == 0 && json_is_array(en)) {
        bool strings = true;
        size_t i;
        const json_t *v;
        json_array_foreach(en, i, v) strings = strings && json_is_string(v);
        if (strings) /* Gemini's enums are strings */
            rc = dp_json_set(out, "enum", json_deep_copy(en));
    } else if (rc == 0 && json_is_string(cst)) {
        rc = dp_json_set(out, "enum", json_pack("[O]", cst));
    }
    const json_t *props = json_object_get(s, "properties");
    if (rc == 0 && json_is_object(props)) {
        json_t *p = json_object();
        const char *k;
        const json_t *v;
        rc = p ? 0 : TG_ENOMEM;
        json_object_foreach((json_t *)props, k, v)
        {
            if (rc == 0)
                rc = dp_json_set(p, k, sanitize_schema(v, root, depth + 1));
        }
        if (rc == 0)
            rc = dp_json_set(out, "properties", p);
        else
            json_decref(p);
    }
    /* required names must be declared properties, or Gemini refuses the schema */
    const json_t *req = json_object_get(s, "required");
    if (rc == 0 && json_is_array(req)) {
        json_t *r = json_array();
        size_t i;
        const json_t *v;
        rc = r ? 0 : TG_ENOMEM;
        json_array_foreach(req, i, v)
        {
            if (rc == 0 && json_is_string(v) &&
                json_object_get(json_object_get(out, "properties"), json_string_value(v)))
                rc = dp_json_push(r, json_deep_copy(v));
        }
        if (rc == 0 && json_array_size(r) > 0)
            rc = dp_json_set(out, "required", r);
        else
            json_decref(r);
    }
    const json_t *items = json_object_get(s, "items");
    if (json_is_array(items)) /* tuple form: Gemini has one item schema */
        items = json_array_get(items, 0);
    if (rc == 0 && json_is_object(items))
        rc = dp_json_set(out, "items", sanitize_schema(items, root, depth + 1));
    const json_t *any = json_object_get(s, "anyOf");
    if (!json_is_array(any))
        any = json_object_get(s, "oneOf");
    if (rc == 0 && json_is_array(any))
        rc = schema_any_of(out, any, root, depth);
    if (rc != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static bool schema_is_empty_object(const json_t *s)
{
    const json_t *type = json_object_get(s, "type");
    const json_t *props = json_object_get(s, "properties");
    return json_is_string(type) &&
           tg_mem_caseeq(json_string_value(type), json_string_length(type), "object", 6) &&
           json_object_size(props) == 0 && !json_object_get(s, "anyOf");
}

static int translate_tools(gem_req_t *r, const json_t *root, json_t *req)
{
    const json_t *tools = json_object_get(root, "tools");
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return dp_build_invalid(r->err, "tools", "'tools' must be an array");
    json_t *decls = json_array();
    int rc = decls ? 0 : TG_ENOMEM;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        if (rc != 0)
            break;
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        if (!dp_json_str_eq(json_object_get(t, "type"), "function") || !json_is_string(name)) {
            rc = dp_build_invalid(r->err, "tools",
                                  "tools[%zu]: only function tools with a name are supported", i);
            break;
        }
        json_t *d = json_pack("{s:O}", "name", name);
        const json_t *desc = json_object_get(fn, "description");
        rc = d ? 0 : TG_ENOMEM;
        if (rc == 0 && json_is_string(desc))
            rc = dp_json_set(d, "description", json_deep_copy(desc));
        const json_t *params = json_object_get(fn, "parameters");
        if (rc == 0 && json_is_object(params)) {
            json_t *sp = sanitize_schema(params, params, 0);
            /* an object without properties is "no parameters": Gemini refuses it as such */
            if (sp && schema_is_empty_object(sp))
                json_decref(sp);
            else
                rc = dp_json_set(d, "parameters", sp);
        }
        if (rc == 0)
            rc = dp_json_push(decls, d);
        else
            json_decref(d);
    }
    if (rc == 0 && json_array_size(decls) > 0) {
        rc = dp_json_set(req, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
        decls = NULL;
    }
    json_decref(decls);
    if (rc != 0)
        return rc;

    const json_t *tc = json_object_get(root, "tool_choice");
    if (!tc || json_is_null(tc) || !json_object_get(req, "tools"))
        return 0;
    json_t *fcc = NULL;
    if (dp_json_str_eq(tc, "auto") || dp_json_str_eq(tc, "none") ||
        dp_json_str_eq(tc, "required")) {
        fcc = json_pack("{s:s}", "mode",
                        dp_json_str_eq(tc, "auto")   ? "AUTO"
                        : dp_json_str_eq(tc, "none") ? "NONE"
                                                     : "ANY");
    } else if (json_is_object(tc) && dp_json_str_eq(json_object_get(tc, "type"), "function") &&
               json_is_string(json_object_get(json_object_get(tc, "function"), "name"))) {
        fcc = json_pack("{s:s,s:[O]}", "mode", "ANY", "allowedFunctionNames",
                        json_object_get(json_object_get(tc, "function"), "name"));
    } else {
        return dp_build_invalid(
            r->err, "tool_choice",
            "'tool_choice' must be \"auto\", \"none\", \"required\" or a function");
    }
    return dp_json_set(req, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fcc));
}

/* root[k], a number (integer if want_int), copied to gc[gk]. */
static int copy_number(gem_req_t *r, const json_t *root, const char *k, bool want_int, json_t *gc,
                       const char *gk)
{
    const json_t *v = json_object_get(root, k);
    if (!v || json_is_null(v))
        return 0;
    if (want_int ? !json_is_integer(v) : !json_is_number(v))
        return dp_build_invalid(r->err, k, "'%s' must be %s", k,
                                want_int ? "an integer" : "a number");
    return dp_json_set(gc, gk, json_deep_copy(v));
}

static int translate_generation(gem_req_t *r, const json_t *root, json_t *req)
{
    json_t *gc = json_object();
    int rc = gc ? 0 : TG_ENOMEM;
    if (rc == 0)
        rc = copy_number(r, root, "temperature", false, gc, "temperature");
    if (rc == 0)
        rc = copy_number(r, root, "top_p", false, gc, "topP");
    if (rc == 0)
        rc = copy_number(r, root, "n", true, gc, "candidateCount");
    if (rc == 0)
        rc = copy_number(r, root, "seed", true, gc, "seed");
    const json_t *mct = json_object_get(root, "max_completion_tokens");
    if (rc == 0)
        rc = mct && !json_is_null(mct)
                 ? copy_number(r, root, "max_completion_tokens", true, gc, "maxOutputTokens")
                 : copy_number(r, root, "max_tokens", true, gc, "maxOutputTokens");
    if (rc == 0) {
        json_t *seqs;
        rc = dp_stop_sequences(json_object_get(root, "stop"), &seqs);
        if (rc == TG_EINVAL)
            rc = dp_build_invalid(r->err, "stop", "'stop' must be a string or an array of strings");
        else if (rc == 0 && seqs)
            rc = dp_json_set(gc, "stopSequences", seqs);
    }
    const json_t *rf = json_object_get(root, "response_format");
    const json_t *rft = json_object_get(rf, "type");
    if (rc == 0 && rf && !json_is_null(rf)) {
        if (dp_json_str_eq(rft, "json_object") || dp_json_str_eq(rft, "json_schema")) {
            rc = dp_json_set(gc, "responseMimeType", json_string("application/json"));
            const json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
            if (rc == 0 && dp_json_str_eq(rft, "json_schema") && json_is_object(schema))
                rc = dp_json_set(gc, "responseSchema", sanitize_schema(schema, schema, 0));
        } else if (!dp_json_str_eq(rft, "text")) {
            rc =
                dp_build_invalid(r->err, "response_format",
                                 "'response_format.type' must be text, json_object or json_schema");
        }
    }
    if (rc == 0 && json_object_size(gc) > 0) {
        rc = dp_json_set(req, "generationConfig", gc);
        gc = NULL;
    }
    json_decref(gc);
    return rc;
}

static int build_chat_body(const dp_call_t *c, tg_buf_t *body, tg_err_t *err)
{
    const json_t *root = dp_reqbody_json(c->body);
    if (!root)
        return dp_build_nomem(err, TG_ENOMEM);
    const json_t *msgs = json_object_get(root, "messages");
    gem_req_t r = {
        .contents = json_array(), .system = json_array(), .names = json_object(), .err = err};
    json_t *req = json_object();
    int rc = r.contents && r.system && r.names && req ? 0 : TG_ENOMEM;
    if (rc == 0 && !json_is_array(msgs))
        rc = dp_build_invalid(err, "messages", "'messages' must be an array");
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (rc == 0)
            rc = translate_message(&r, i, m);
    }
    if (rc == 0 && json_array_size(r.contents) == 0)
        rc = dp_build_invalid(err, "messages",
                              "'messages' has no user or assistant content for Gemini");
    if (rc == 0 && json_array_size(r.system) > 0)
        rc = dp_json_set(req, "systemInstruction", json_pack("{s:O}", "parts", r.system));
    if (rc == 0)
        rc = dp_json_set(req, "contents", json_incref(r.contents));
    if (rc == 0)
        rc = translate_tools(&r, root, req);
    if (rc == 0)
        rc = translate_generation(&r, root, req);
    if (rc == 0)
        rc = dp_json_append(body, req);
    json_decref(req);
    json_decref(r.contents);
    json_decref(r.system);
    json_decref(r.names);
    if (rc == TG_ENOMEM || rc == TG_ETOOBIG)
        return dp_build_nomem(err, rc);
    return rc;
}

/* Embeddings: one batchEmbedContents request per input string. */
static int build_embed_body(const dp_call_t *c, const char *model, tg_buf_t *body, tg_err_t *err)
{
    const json_t *root = dp_reqbody_json(c->body);
    if (!root)
        return dp_build_nomem(err, TG_ENOMEM);
    const json_t *input = json_object_get(root, "input");
    const json_t *dims = json_object_get(root, "dimensions");
    if (dims && !json_is_null(dims) && !json_is_integer(dims))
        return dp_build_invalid(err, "dimensions", "'dimensions' must be an integer");
    size_t n = json_is_array(input) ? json_array_size(input) : 1;
    if (!json_is_string(input) && !json_is_array(input))
        return dp_build_invalid(err, "input", "'input' must be a string or an array of strings");
    if (n == 0)
        return dp_build_invalid(err, "input", "'input' must not be empty");
    json_t *reqs = json_array();
    json_t *doc = reqs ? json_pack("{s:o}", "requests", reqs) : NULL;
    tg_buf_t name = TG_BUF_INIT(4096);
    int rc = doc && tg_buf_appendf(&name, "models/%s%c", model, '\0') == 0 ? 0 : TG_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *s = json_is_array(input) ? json_array_get(input, i) : input;
        if (!json_is_string(s)) {
            rc = dp_build_invalid(
                err, "input",
                "'input' must be a string or an array of strings on Gemini (token arrays "
                "are not supported)");
            break;
        }
        json_t *one =
            json_pack("{s:s,s:{s:[{s:O}]}}", "model", name.base, "content", "parts", "text", s);
        if (one && json_is_integer(dims))
            rc = dp_json_set(one, "outputDimensionality", json_deep_copy(dims));
        if (rc == 0)
            rc = dp_json_push(reqs, one);
        else
            json_decref(one);
    }
    if (rc == 0)
        rc = dp_json_append(body, doc);
    json_decref(doc);
    tg_buf_dispose(&name);
    if (rc == TG_ENOMEM || rc == TG_ETOOBIG)
        return dp_build_nomem(err, rc);
    return rc;
}

static int add_headers(const dp_call_t *c, dp_header_add_fn add, void *ud)
{
    const tg_provider_t *p = c->provider;
    bool stream = c->endpoint == DP_EP_CHAT && c->body->stream;
    int rc = dp_header_add_json(add, ud, stream ? "text/event-stream" : "application/json");
    if (rc == 0 && p->api_key)
        rc = dp_header_add_secret(add, ud, "x-goog-api-key", p->api_key);
    if (rc == 0)
        rc = dp_header_add_extra(p, add, ud);
    return rc;
}

static int gemini_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                        tg_buf_t *body, tg_err_t *err)
{
    const tg_provider_t *p = c->provider;
    const char *method;
    if (c->endpoint == DP_EP_CHAT) {
        method = c->body->stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
    } else if (c->endpoint == DP_EP_EMBEDDINGS) {
        method = ":batchEmbedContents";
    } else {
        tg_err_set(err, TG_EINVAL, 400,
                   "the completions endpoint is not available on provider \"%s\" (kind gemini): "
                   "use /v1/chat/completions",
                   p->id);
        return TG_EINVAL;
    }
    /* "models/gemini-2.0-flash" (the API's resource name) names the same model */
    const char *model = c->model;
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    int rc = tg_buf_appendf(url, "%s/models/", p->base_url);
    if (rc == 0)
        rc = dp_url_append_segment(url, model, strlen(model));
    if (rc == 0)
        rc = tg_buf_appendf(url, "%s%c", method, '\0');
    if (rc == 0)
        rc = add_headers(c, add, ud);
    if (rc != 0)
        return dp_build_nomem(err, rc);
    if (c->endpoint == DP_EP_EMBEDDINGS)
        return build_embed_body(c, model, body, err);
    return build_chat_body(c, body, err);
}

/* ---- answers: GenerateContentResponse -> OpenAI ---- */

/* usageMetadata -> u. Thinking tokens are completion tokens (as OpenAI counts reasoning), tool
 * prompt tokens are prompt tokens, so that prompt + completion = Gemini's total. */
static void usage_read(dp_usage_t *u, const json_t *um)
{
    int64_t prompt = json_integer_value(json_object_get(um, "promptTokenCount"));
    int64_t tool = json_integer_value(json_object_get(um, "toolUsePromptTokenCount"));
    int64_t cand = json_integer_value(json_object_get(um, "candidatesTokenCount"));
    int64_t thoughts = json_integer_value(json_object_get(um, "thoughtsTokenCount"));
    int64_t total = json_integer_value(json_object_get(um, "totalTokenCount"));
    u->prompt = prompt + tool;
    u->completion = cand + thoughts;
    u->reasoning = thoughts;
    u->cached = json_integer_value(json_object_get(um, "cachedContentTokenCount"));
    u->total = total > 0 ? total : u->prompt + u->completion;
    u->present = true;
}

/* Gemini's finishReason -> OpenAI's; NULL when the candidate has not finished. */
static const char *finish_map(const json_t *reason, bool calls)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION",   "BLOCKLIST", "PROHIBITED_CONTENT",
        "SPII",   "IMAGE_SAFETY", "LANGUAGE",  "IMAGE_PROHIBITED_CONTENT"};
    if (!json_is_string(reason) || dp_json_str_eq(reason, "FINISH_REASON_UNSPECIFIED"))
        return NULL;
    if (dp_json_str_eq(reason, "MAX_TOKENS"))
        return "length";
    for (size_t i = 0; i < sizeof(filtered) / sizeof(filtered[0]); i++)
        if (dp_json_str_eq(reason, filtered[i]))
            return "content_filter";
    /* STOP, MALFORMED_FUNCTION_CALL, OTHER, ...; Gemini has no "function call" reason */
    return calls ? "tool_calls" : "stop";
}

static const char *rid(const dp_stream_state_t *st)
{
    return st->request_id ? st->request_id : "0";
}

/* "chatcmpl-<responseId>", or the gateway's request id when Gemini gives none. */
static int make_id(const dp_stream_state_t *st, const json_t *resp, tg_buf_t *id)
{
    const json_t *rsp = json_object_get(resp, "responseId");
    tg_buf_reset(id);
    int rc = tg_buf_append(id, "chatcmpl-", 9);
    if (rc == 0 && json_is_string(rsp) && json_string_length(rsp) > 0)
        rc = tg_buf_append(id, json_string_value(rsp), json_string_length(rsp));
    else if (rc == 0)
        rc = tg_buf_append(id, rid(st), strlen(rid(st)));
    if (rc == 0)
        rc = tg_buf_append(id, "", 1);
    return rc;
}

/* A functionCall part -> an OpenAI tool call; ids are "call_<request id>_<n>" (Gemini gives
 * none), n counting the answer's calls in order. index < 0 leaves "index" out (non-streamed). */
static json_t *tool_call_json(const dp_stream_state_t *st, const json_t *part, int64_t n,
                              int64_t index)
{
    const json_t *fc = json_object_get(part, "functionCall");
    const json_t *name = json_object_get(fc, "name");
    tg_buf_t id = TG_BUF_INIT(4096);
    tg_buf_t args = TG_BUF_INIT(SIZE_MAX);
    json_t *idj = tg_buf_appendf(&id, "call_%s_%lld", rid(st), (long long)n) == 0
                      ? json_stringn(id.base, id.len)
                      : NULL;
    json_t *namej = json_is_string(name) ? json_incref((json_t *)name) : json_string("");
    json_t *tc = idj && namej
                     ? dp_openai_tool_call_json(idj, namej, json_object_get(fc, "args"), &args)
                     : NULL;
    json_decref(idj);
    json_decref(namej);
    tg_buf_dispose(&id);
    tg_buf_dispose(&args);
    if (tc && index >= 0 && dp_json_set(tc, "index", json_integer(index)) != 0) {
        json_decref(tc);
        return NULL;
    }
    /* Gemini 3 needs the signature back with the call: Google's OpenAI layer's place for it */
    const json_t *sig = json_object_get(part, "thoughtSignature");
    if (tc && json_is_string(sig) &&
        dp_json_set(tc, "extra_content",
                    json_pack("{s:{s:O}}", "google", "thought_signature", sig)) != 0) {
        json_decref(tc);
        return NULL;
    }
    return tc;
}

/* A text part of the answer; thought summaries (thought: true) are not the answer. */
static bool is_answer_text(const json_t *part)
{
    return json_is_string(json_object_get(part, "text")) &&
           !json_is_true(json_object_get(part, "thought"));
}

static json_t *choice_json(dp_stream_state_t *st, const json_t *cand, int64_t index,
                           int64_t *ncalls)
{
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_t *calls = json_array();
    int rc = calls ? 0 : TG_ENOMEM;
    size_t i;
    const json_t *part;
    tg_buf_reset(&st->scratch);
    json_array_foreach(parts, i, part)
    {
        if (rc != 0)
            break;
        if (is_answer_text(part)) {
            const json_t *t = json_object_get(part, "text");
            rc = tg_buf_append(&st->scratch, json_string_value(t), json_string_length(t));
        } else if (json_is_object(json_object_get(part, "functionCall"))) {
            rc = dp_json_push(calls, tool_call_json(st, part, (*ncalls)++, -1));
        }
    }
    bool have_calls = json_array_size(calls) > 0;
    const char *finish = finish_map(json_object_get(cand, "finishReason"), have_calls);
    if (!finish)
        finish = have_calls ? "tool_calls" : "stop";
    json_t *msg = rc == 0 ? dp_openai_message_json(st->scratch.base, st->scratch.len,
                                                   st->scratch.len > 0 || !have_calls, calls)
                          : NULL;
    json_decref(calls);
    return dp_openai_choice_json(index, msg, finish);
}

static int chat_response(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    const json_t *cands = json_object_get(root, "candidates");
    json_t *choices = json_array();
    tg_buf_t id = TG_BUF_INIT(4096);
    int64_t ncalls = 0;
    int rc = choices ? make_id(st, root, &id) : TG_ENOMEM;
    size_t i;
    const json_t *cand;
    json_array_foreach(cands, i, cand)
    {
        const json_t *ix = json_object_get(cand, "index");
        if (rc == 0)
            rc = dp_json_push(choices,
                              choice_json(st, cand,
                                          json_is_integer(ix) ? json_integer_value(ix) : (int64_t)i,
                                          &ncalls));
    }
    if (rc == 0 && json_array_size(choices) == 0) {
        /* the prompt itself was blocked (promptFeedback.blockReason): an answer, not an error */
        const json_t *block =
            json_object_get(json_object_get(root, "promptFeedback"), "blockReason");
        rc = dp_json_push(choices,
                          dp_openai_choice_json(0, dp_openai_message_json("", 0, true, NULL),
                                                block ? "content_filter" : "stop"));
    }
    const json_t *um = json_object_get(root, "usageMetadata");
    if (json_is_object(um))
        usage_read(&st->usage, um);
    json_t *res = NULL;
    if (rc == 0) {
        res = dp_openai_completion_json(st, id.base, dp_stream_model(st), json_incref(choices));
        rc = res ? dp_json_set(res, "usage", dp_openai_usage_json(&st->usage, true)) : TG_ENOMEM;
        if (rc == 0)
            rc = dp_json_append(out, res);
    }
    json_decref(res);
    json_decref(choices);
    tg_buf_dispose(&id);
    return rc;
}

/* Gemini's batchEmbedContents reports no usage and response() does not see the request's
 * inputs, so prompt_tokens is 0 and st->usage stays not present: the usage record then says
 * "estimated" (from the request size) instead of recording a made-up provider figure. A
 * usageMetadata, should Gemini send one, is used as it is. */
static int embed_response(dp_stream_state_t *st, const json_t *root, tg_buf_t *out)
{
    const json_t *embs = json_object_get(root, "embeddings");
    if (!json_is_array(embs))
        return TG_EUPSTREAM;
    const json_t *um = json_object_get(root, "usageMetadata");
    if (json_is_object(um))
        usage_read(&st->usage, um);
    int rc = dp_embedding_list_append(out, st, embs, "values", st->usage.prompt);
    return rc == TG_EINVAL ? TG_EUPSTREAM : rc;
}

/* A Gemini error object {"code","message","status"} -> OpenAI's, keeping the message; the code
 * is Gemini's status name (RESOURCE_EXHAUSTED, ...). */
static int error_append(tg_buf_t *out, bool event, int status, const json_t *e, const char *raw,
                        size_t rawn)
{
    const json_t *msg = json_object_get(e, "message");
    const json_t *code = json_object_get(e, "status");
    const json_t *num = json_object_get(e, "code");
    if (status < 400 && json_is_integer(num))
        status = (int)json_integer_value(num);
    char fallback[64];
    const char *m = json_string_value(msg);
    size_t mn = json_string_length(msg);
    if (!m && rawn > 0) {
        m = raw;
        mn = rawn > GEM_MAX_RAW_ERROR ? GEM_MAX_RAW_ERROR : rawn;
        while (mn < rawn && mn > 0 && ((unsigned char)raw[mn] & 0xC0) == 0x80)
            mn--; /* cut at a character boundary */
    } else if (!m) {
        snprintf(fallback, sizeof(fallback), "provider answered HTTP %d", status);
        m = fallback;
        mn = strlen(fallback);
    }
    const char *c = json_is_string(code) ? json_string_value(code) : NULL;
    return event ? dp_sse_append_error(out, status, m, mn, c)
                 : tg_error_body(out, status, NULL, m, mn, NULL, c);
}

/* Gemini's error bodies are {"error":{...}}, or a one-element array of that from the
 * streaming method without alt=sse. */
static const json_t *error_object(const json_t *root)
{
    if (json_is_array(root))
        root = json_array_get(root, 0);
    const json_t *e = json_object_get(root, "error");
    return json_is_object(e) ? e : NULL;
}

static int gemini_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                           tg_buf_t *out)
{
    json_t *root = n > 0 ? json_loadb(body, n, 0, NULL) : NULL;
    int rc;
    if (status < 200 || status >= 300) {
        rc = error_append(out, false, status, error_object(root), body, n);
    } else if (!json_is_object(root)) {
        rc = TG_EUPSTREAM;
    } else if (st->endpoint == DP_EP_EMBEDDINGS) {
        rc = embed_response(st, root, out);
    } else {
        rc = chat_response(st, root, out);
    }
    json_decref(root);
    return rc == 0 ? DP_RESP_OUT : rc;
}

/* ---- streams: alt=sse events (each a whole GenerateContentResponse) -> OpenAI chunks ---- */

typedef struct gem_choice {
    bool started;  /* the role chunk went out */
    bool finished; /* the finish chunk went out */
    int64_t ncalls;
} gem_choice_t;

typedef struct gem_stream {
    tg_buf_t id;     /* "chatcmpl-...\0", set by the first event */
    bool failed;     /* an error event went out: nothing follows it */
    bool usage_seen; /* some event carried usageMetadata (in st->usage) */
    bool final;      /* a finish (or a blocked prompt) was seen: usage from here on is final */
    int64_t calls;   /* tool calls so far, for their ids */
    gem_choice_t ch[GEM_MAX_CANDIDATES];
} gem_stream_t;

static void gem_stream_free(void *p)
{
    gem_stream_t *gs = p;
    if (gs)
        tg_buf_dispose(&gs->id);
    free(gs);
}

static gem_stream_t *gem_stream_get(dp_stream_state_t *st)
{
    if (!st->priv) {
        gem_stream_t *gs = calloc(1, sizeof(*gs));
        if (!gs)
            return NULL;
        tg_buf_init(&gs->id, 4096);
        st->priv = gs;
        st->priv_free = gem_stream_free;
    }
    return st->priv;
}

static int start_choice(dp_stream_state_t *st, gem_stream_t *gs, int64_t idx, tg_buf_t *out)
{
    if (gs->ch[idx].started)
        return 0;
    gs->ch[idx].started = true;
    return dp_openai_chunk_role_append(out, st, gs->id.base, idx);
}

static int flush_text(dp_stream_state_t *st, gem_stream_t *gs, int64_t idx, tg_buf_t *out)
{
    if (st->scratch.len == 0)
        return 0;
    int rc = dp_openai_chunk_append(
        out, st, gs->id.base, idx,
        json_pack("{s:s%}", "content", st->scratch.base, st->scratch.len), NULL);
    tg_buf_reset(&st->scratch);
    return rc;
}

static int stream_candidate(dp_stream_state_t *st, gem_stream_t *gs, const json_t *cand,
                            int64_t idx, tg_buf_t *out)
{
    gem_choice_t *ch = &gs->ch[idx];
    if (ch->finished)
        return 0;
    int rc = start_choice(st, gs, idx, out);
    const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    size_t i;
    const json_t *part;
    tg_buf_reset(&st->scratch);
    json_array_foreach(parts, i, part)
    {
        if (rc != 0)
            break;
        if (is_answer_text(part)) {
            const json_t *t = json_object_get(part, "text");
            rc = tg_buf_append(&st->scratch, json_string_value(t), json_string_length(t));
        } else if (json_is_object(json_object_get(part, "functionCall"))) {
            /* Gemini sends each call whole: one complete tool_calls delta per call */
            rc = flush_text(st, gs, idx, out);
            json_t *tc = rc == 0 ? tool_call_json(st, part, gs->calls++, ch->ncalls++) : NULL;
            if (rc == 0)
                rc = tc ? dp_openai_chunk_append(out, st, gs->id.base, idx,
                                                 json_pack("{s:[o]}", "tool_calls", tc), NULL)
                        : TG_ENOMEM;
            st->content_events++;
        }
    }
    if (rc == 0 && st->scratch.len > 0) {
        st->content_events++;
        rc = flush_text(st, gs, idx, out);
    }
    const char *finish = finish_map(json_object_get(cand, "finishReason"), ch->ncalls > 0);
    if (rc == 0 && finish) {
        ch->finished = true;
        rc = dp_openai_chunk_append(out, st, gs->id.base, idx, json_object(), finish);
    }
    return rc;
}

typedef struct feed_ctx {
    dp_stream_state_t *st;
    gem_stream_t *gs;
    tg_buf_t *out;
} feed_ctx_t;

static int stream_response(feed_ctx_t *f, const json_t *r)
{
    dp_stream_state_t *st = f->st;
    gem_stream_t *gs = f->gs;
    if (!json_is_object(r))
        return TG_EUPSTREAM;
    const json_t *e = json_object_get(r, "error");
    if (json_is_object(e)) {
        int rc = error_append(f->out, true, 200, e, NULL, 0);
        gs->failed = true;
        return rc;
    }
    int rc = gs->id.len == 0 ? make_id(st, r, &gs->id) : 0;
    const json_t *um = json_object_get(r, "usageMetadata");
    if (json_is_object(um)) {
        usage_read(&st->usage, um);
        gs->usage_seen = true;
    }
    const json_t *cands = json_object_get(r, "candidates");
    size_t i;
    const json_t *cand;
    json_array_foreach(cands, i, cand)
    {
        const json_t *ix = json_object_get(cand, "index");
        int64_t idx = json_is_integer(ix) ? json_integer_value(ix) : (int64_t)i;
        if (rc == 0 && idx >= 0 && idx < GEM_MAX_CANDIDATES)
            rc = stream_candidate(st, gs, cand, idx, f->out);
    }
    const json_t *block = json_object_get(json_object_get(r, "promptFeedback"), "blockReason");
    if (rc == 0 && json_array_size(cands) == 0 && block && !gs->ch[0].finished) {
        /* the prompt was blocked: an empty answer that says so, not an error */
        rc = start_choice(st, gs, 0, f->out);
        gs->ch[0].finished = true;
        if (rc == 0)
            rc =
                dp_openai_chunk_append(f->out, st, gs->id.base, 0, json_object(), "content_filter");
    }
    /* every event carries usageMetadata, the early ones with the prompt only: until the answer
     * has finished it is not the provider's figure, and a stream cut before then is estimated */
    gs->final = gs->final || block != NULL;
    for (size_t k = 0; k < GEM_MAX_CANDIDATES; k++)
        gs->final = gs->final || gs->ch[k].finished;
    st->usage.present = gs->usage_seen && gs->final;
    return rc;
}

static int on_sse_event(void *ud, const char *ev, size_t n)
{
    feed_ctx_t *f = ud;
    const char *data;
    size_t len;
    if (f->gs->failed || !dp_sse_data(ev, n, &f->st->data_scratch, &data, &len))
        return 0; /* comments and keep-alives; nothing after an error */
    if (tg_mem_eq(data, len, "[DONE]", 6))
        return 0;
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!root)
        return TG_EUPSTREAM;
    int rc = 0;
    if (json_is_array(root)) { /* a proxy's JSON-array framing; tolerate it */
        size_t i;
        const json_t *r;
        json_array_foreach(root, i, r)
        {
            if (rc == 0)
                rc = stream_response(f, r);
        }
    } else {
        rc = stream_response(f, root);
    }
    json_decref(root);
    return rc;
}

static int gemini_stream_feed(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out)
{
    feed_ctx_t f = {st, gem_stream_get(st), out};
    if (!f.gs)
        return TG_ENOMEM;
    return dp_sse_feed(&st->sse, p, n, on_sse_event, &f);
}

/* Gemini's stream has no terminal event: its end is the answer's end. */
static int gemini_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out)
{
    feed_ctx_t f = {st, gem_stream_get(st), out};
    if (!f.gs)
        return TG_ENOMEM;
    if (!complete || st->done)
        return 0; /* a broken stream gets the proxy's error event, not a made-up finish */
    int rc = 0;
    if (dp_sse_pending(&st->sse) > 0) /* a last event without its blank line */
        rc = dp_sse_feed(&st->sse, "\n\n", 2, on_sse_event, &f);
    if (rc != 0 || f.gs->failed)
        return rc;
    st->usage.present = f.gs->usage_seen; /* the answer is complete: its last usage stands */
    if (f.gs->id.len == 0)
        rc = make_id(st, NULL, &f.gs->id);
    if (rc == 0 && !f.gs->ch[0].started) /* an empty answer is still a well-formed stream */
        rc = start_choice(st, f.gs, 0, out);
    for (int64_t i = 0; rc == 0 && i < GEM_MAX_CANDIDATES; i++) {
        gem_choice_t *ch = &f.gs->ch[i];
        if (ch->started && !ch->finished) {
            ch->finished = true;
            rc = dp_openai_chunk_append(out, st, f.gs->id.base, i, json_object(),
                                        ch->ncalls > 0 ? "tool_calls" : "stop");
        }
    }
    if (rc == 0 && st->client_wants_usage)
        rc = dp_openai_chunk_usage_append(out, st, f.gs->id.base, true);
    if (rc == 0)
        rc = dp_sse_append_done(st, out);
    return rc;
}

const dp_provider_ops_t dp_provider_gemini = {
    .kind = "gemini",
    .stream_content_type = "text/event-stream",
    .native_messages = false,
    .build = gemini_build,
    .response = gemini_response,
    .stream_feed = gemini_stream_feed,
    .stream_end = gemini_stream_end,
};

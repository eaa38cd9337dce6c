/* reqbody.c: request body reader and upstream body writer; runs on the loop thread that owns the
 * request. The scanner path reads spans of the client's bytes; the tree path (jansson) is kept
 * for translating adapters and as the reference the scanner must match. */
#include "reqbody.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tg_jscan.h"
#include "tg_log.h"

#include "tg_banned.h"

static int bad(tg_err_t *err, const char *param, const char *msg)
{
    tg_err_set(err, TG_EINVAL, 400, "%s", msg);
    err->param = param;
    return TG_EINVAL;
}

static int not_positive(tg_err_t *err, const char *name)
{
    tg_err_set(err, TG_EINVAL, 400, "'%s' must be a positive integer", name);
    return TG_EINVAL;
}

static void reset(dp_reqbody_t *rb)
{
    memset(rb, 0, offsetof(dp_reqbody_t, model_buf));
    rb->model_buf[0] = '\0';
    rb->max_tokens = -1;
}

/* ---- the scanner path ---- */

/* The top-level members the gateway reads, as the scan found them. */
typedef struct found {
    dp_reqbody_t *rb;
    tg_jmember_t model, stream, so, max_tokens, max_completion_tokens, max_output_tokens, messages,
        prompt, input, encoding_format;
    size_t prev_end;  /* end of the previous member's value, 0 before the first */
    bool fb_pending;  /* fallback_models was the last member seen */
    size_t fb_start;  /* its key's offset */
    size_t fb_before; /* the end of the member before it, 0 when it came first */
} found_t;

static bool key_is(const tg_jmember_t *m, const char *lit, size_t n)
{
    return tg_jstr_eq(m->key, m->key_len, m->key_escaped, lit, n);
}

static int on_member(void *ud, const tg_jmember_t *m)
{
    found_t *f = ud;
    dp_reqbody_t *rb = f->rb;
    size_t val_off = (size_t)(m->val - rb->raw);
    if (f->fb_pending) {
        /* fallback_models has a member after it: cut through that member's key */
        rb->fb_cut = (dp_span_t){f->fb_start, m->start - f->fb_start};
        f->fb_pending = false;
    }
    /* the first byte tells most keys apart before any comparison; an escaped first byte may
     * start any of them */
    char c0 = m->key_len > 0 ? m->key[0] : '\0';
    bool esc0 = c0 == '\\';
    if (c0 == 'm' || esc0) {
        if (key_is(m, "model", 5))
            f->model = *m;
        else if (key_is(m, "max_tokens", 10))
            f->max_tokens = *m;
        else if (key_is(m, "max_completion_tokens", 21))
            f->max_completion_tokens = *m;
        else if (key_is(m, "max_output_tokens", 17))
            f->max_output_tokens = *m;
        else if (key_is(m, "messages", 8))
            f->messages = *m;
    }
    if (c0 == 's' || esc0) {
        if (key_is(m, "stream", 6))
            f->stream = *m;
        else if (key_is(m, "stream_options", 14))
            f->so = *m;
    }
    if ((c0 == 'p' || esc0) && key_is(m, "prompt", 6))
        f->prompt = *m;
    if ((c0 == 'i' || esc0) && key_is(m, "input", 5))
        f->input = *m;
    if ((c0 == 'e' || esc0) && key_is(m, "encoding_format", 15))
        f->encoding_format = *m;
    if ((c0 == 'f' || esc0) && key_is(m, "fallback_models", 15)) {
        rb->fb_val = (dp_span_t){val_off, m->val_len};
        f->fb_pending = true;
        f->fb_start = m->start;
        f->fb_before = f->prev_end;
    }
    f->prev_end = val_off + m->val_len;
    return 0;
}

static bool present(const tg_jmember_t *m)
{
    return m->val != NULL && m->type != TG_JNULL;
}

static int on_so_member(void *ud, const tg_jmember_t *m)
{
    tg_jmember_t *iu = ud;
    if (key_is(m, "include_usage", 13))
        *iu = *m;
    return 0;
}

/* The checks of the tree path, in its order and with its messages, on the scanned members. */
static int check_found(found_t *f, int endpoint, tg_err_t *err)
{
    dp_reqbody_t *rb = f->rb;
    const tg_jmember_t *m = &f->model;
    if (!m->val || m->type != TG_JSTRING || m->val_len == 2)
        return bad(err, "model", "'model' is required and must be a non-empty string");
    const char *s = m->val + 1;
    size_t sn = m->val_len - 2;
    if (memchr(s, '\\', sn) == NULL) {
        if (sn > DP_REQBODY_MODEL_MAX)
            return bad(err, "model", "'model' is too long");
        rb->model = s;
        rb->model_len = sn;
    } else {
        size_t dn = tg_jstr_decode(s, sn, rb->model_buf, DP_REQBODY_MODEL_MAX);
        if (dn == (size_t)-1)
            return bad(err, "model", "'model' is too long");
        rb->model_buf[dn] = '\0';
        rb->model = rb->model_buf;
        rb->model_len = dn;
    }
    rb->model_val = (dp_span_t){(size_t)(m->val - rb->raw), m->val_len};

    if (present(&f->stream)) {
        if (f->stream.type != TG_JTRUE && f->stream.type != TG_JFALSE)
            return bad(err, "stream", "'stream' must be a boolean");
        rb->stream = f->stream.type == TG_JTRUE;
    }
    if (rb->stream && endpoint == DP_EP_EMBEDDINGS)
        return bad(err, "stream", "embeddings cannot be streamed");
    if (f->so.val) {
        rb->so_type = f->so.type;
        rb->so_val = (dp_span_t){(size_t)(f->so.val - rb->raw), f->so.val_len};
    }
    if (present(&f->so)) {
        tg_jmember_t iu = {0};
        if (f->so.type == TG_JOBJECT &&
            tg_jscan_members(f->so.val, f->so.val_len, on_so_member, &iu) != 0)
            return bad(err, "stream_options", "'stream_options' could not be read");
        if (f->so.type != TG_JOBJECT ||
            (present(&iu) && iu.type != TG_JTRUE && iu.type != TG_JFALSE))
            return bad(err, "stream_options",
                       "'stream_options' must be an object whose 'include_usage' is a boolean");
        rb->include_usage = iu.type == TG_JTRUE;
        if (iu.val)
            rb->iu_val = (dp_span_t){(size_t)(iu.val - rb->raw), iu.val_len};
    }
    /* a Responses body's limit is max_output_tokens; chat's names mean nothing there */
    static const char *const names[3] = {"max_tokens", "max_completion_tokens",
                                         "max_output_tokens"};
    const tg_jmember_t *limits[3] = {&f->max_tokens, &f->max_completion_tokens,
                                     &f->max_output_tokens};
    int from = endpoint == DP_EP_RESPONSES ? 2 : 0, to = endpoint == DP_EP_RESPONSES ? 3 : 2;
    for (int i = from; i < to; i++) {
        if (!present(limits[i]))
            continue;
        if (limits[i]->type != TG_JNUMBER || !limits[i]->integer)
            return not_positive(err, names[i]);
        int64_t v = tg_jint(limits[i]);
        if (v < 1)
            return not_positive(err, names[i]);
        rb->max_tokens = v;
    }
    switch (endpoint) {
    case DP_EP_CHAT:
        if (!f->messages.val || f->messages.type != TG_JARRAY ||
            tg_jempty(f->messages.val, f->messages.val_len))
            return bad(err, "messages", "'messages' is required and must be a non-empty array");
        break;
    case DP_EP_COMPLETIONS:
        if (!f->prompt.val || (f->prompt.type != TG_JSTRING && f->prompt.type != TG_JARRAY))
            return bad(err, "prompt", "'prompt' is required and must be a string or an array");
        break;
    case DP_EP_MESSAGES:
        if (!f->messages.val || f->messages.type != TG_JARRAY)
            return bad(err, "messages", "messages: field required (an array of messages)");
        if (rb->max_tokens < 0)
            return bad(err, "max_tokens", "max_tokens: field required (a positive integer)");
        break;
    case DP_EP_EMBEDDINGS:
        if (!f->input.val || (f->input.type != TG_JSTRING && f->input.type != TG_JARRAY))
            return bad(err, "input", "'input' is required and must be a string or an array");
        break;
    default:
        break;
    }
    const tg_jmember_t *ef = &f->encoding_format;
    rb->base64 = ef->val && ef->type == TG_JSTRING &&
                 tg_jstr_eq(ef->val + 1, ef->val_len - 2, true, "base64", 6);
    return 0;
}

/* Scans rb->raw; TG_EINVAL when the scanner refuses it (jansson then says why). */
static int scan_raw(dp_reqbody_t *rb, int endpoint, bool *refused, tg_err_t *err)
{
    found_t f;
    memset(&f, 0, sizeof(f));
    f.rb = rb;
    int top = 0;
    int rc = tg_jscan(rb->raw, rb->raw_len, &top, on_member, &f);
    if (rc != 0) {
        *refused = rc == TG_EINVAL;
        if (rc == TG_ENOMEM)
            tg_err_set(err, TG_ENOMEM, 503, "could not read the request body: out of memory");
        return rc;
    }
    if (top != '{')
        return bad(err, NULL, "request body must be a JSON object");
    if (f.fb_pending) /* fallback_models came last: cut from the end of the member before */
        rb->fb_cut = (dp_span_t){f.fb_before, rb->fb_val.off + rb->fb_val.len - f.fb_before};
    size_t c = rb->raw_len;
    while (c > 0 && rb->raw[c - 1] != '}')
        c--;
    rb->close = c - 1;
    return check_found(&f, endpoint, err);
}

static int parse_owned(dp_reqbody_t *rb, int endpoint, tg_err_t *err)
{
    if (rb->raw_len == 0) {
        dp_reqbody_dispose(rb);
        return bad(err, NULL, "request body is empty; expected a JSON object");
    }
    bool refused = false;
    int rc = scan_raw(rb, endpoint, &refused, err);
    if (rc == 0)
        return 0;
    if (refused) {
        /* jansson words the error; should it accept what the scanner refused, the tree path
         * serves the body (and the log says so: a bug to fix) */
        char *raw = rb->raw;
        size_t n = rb->raw_len;
        rb->raw = NULL;
        rc = dp_reqbody_parse_tree(rb, endpoint, raw, n, err);
        if (rc == 0)
            tg_log(TG_LOG_WARN, "dp_reqbody", "scanner_refused_valid_json", "bytes=%zu", n);
        free(raw);
        return rc;
    }
    dp_reqbody_dispose(rb);
    return rc;
}

int dp_reqbody_parse(dp_reqbody_t *rb, int endpoint, const char *p, size_t n, tg_err_t *err)
{
    reset(rb);
    if (n == 0)
        return bad(err, NULL, "request body is empty; expected a JSON object");
    rb->raw = malloc(n);
    if (!rb->raw) {
        tg_err_set(err, TG_ENOMEM, 503, "could not read the request body: out of memory");
        return TG_ENOMEM;
    }
    memcpy(rb->raw, p, n);
    rb->raw_len = n;
    return parse_owned(rb, endpoint, err);
}

int dp_reqbody_parse_take(dp_reqbody_t *rb, int endpoint, tg_buf_t *body, tg_err_t *err)
{
    reset(rb);
    rb->raw = tg_buf_detach(body, &rb->raw_len);
    if (rb->raw_len == 0) {
        free(rb->raw);
        rb->raw = NULL;
    }
    return parse_owned(rb, endpoint, err);
}

/* ---- the tree path ---- */

static int check_positive_int(json_t *root, const char *name, int64_t *out, tg_err_t *err)
{
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return not_positive(err, name);
    *out = json_integer_value(v);
    return 0;
}

static int check_tree(dp_reqbody_t *rb, int endpoint, tg_err_t *err)
{
    json_t *root = rb->tree;
    if (!json_is_object(root))
        return bad(err, NULL, "request body must be a JSON object");
    json_t *model = json_object_get(root, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return bad(err, "model", "'model' is required and must be a non-empty string");
    if (json_string_length(model) > DP_REQBODY_MODEL_MAX)
        return bad(err, "model", "'model' is too long");
    rb->model_len = json_string_length(model);
    memcpy(rb->model_buf, json_string_value(model), rb->model_len + 1);
    rb->model = rb->model_buf;

    json_t *stream = json_object_get(root, "stream");
    if (stream && !json_is_null(stream)) {
        if (!json_is_boolean(stream))
            return bad(err, "stream", "'stream' must be a boolean");
        rb->stream = json_is_true(stream);
    }
    if (rb->stream && endpoint == DP_EP_EMBEDDINGS)
        return bad(err, "stream", "embeddings cannot be streamed");
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_null(iu) && !json_is_boolean(iu)))
            return bad(err, "stream_options",
                       "'stream_options' must be an object whose 'include_usage' is a boolean");
        rb->include_usage = iu && json_is_true(iu);
    }
    if (endpoint == DP_EP_RESPONSES) {
        if (check_positive_int(root, "max_output_tokens", &rb->max_tokens, err) != 0)
            return TG_EINVAL;
    } else {
        if (check_positive_int(root, "max_tokens", &rb->max_tokens, err) != 0)
            return TG_EINVAL;
        if (check_positive_int(root, "max_completion_tokens", &rb->max_tokens, err) != 0)
            return TG_EINVAL;
    }

    switch (endpoint) {
    case DP_EP_CHAT: {
        json_t *msgs = json_object_get(root, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0)
            return bad(err, "messages", "'messages' is required and must be a non-empty array");
        break;
    }
    case DP_EP_COMPLETIONS: {
        json_t *prompt = json_object_get(root, "prompt");
        if (!json_is_string(prompt) && !json_is_array(prompt))
            return bad(err, "prompt", "'prompt' is required and must be a string or an array");
        break;
    }
    case DP_EP_MESSAGES: {
        if (!json_is_array(json_object_get(root, "messages")))
            return bad(err, "messages", "messages: field required (an array of messages)");
        if (rb->max_tokens < 0)
            return bad(err, "max_tokens", "max_tokens: field required (a positive integer)");
        break;
    }
    case DP_EP_EMBEDDINGS: {
        json_t *input = json_object_get(root, "input");
        if (!json_is_string(input) && !json_is_array(input))
            return bad(err, "input", "'input' is required and must be a string or an array");
        break;
    }
    default:
        break;
    }
    json_t *ef = json_object_get(root, "encoding_format");
    rb->base64 = json_is_string(ef) && strcmp(json_string_value(ef), "base64") == 0;
    /* the gateway's own field never reaches an upstream */
    json_t *fb = json_object_get(root, "fallback_models");
    if (fb) {
        rb->fallbacks_tree = json_incref(fb);
        json_object_del(root, "fallback_models");
    }
    return 0;
}

int dp_reqbody_parse_tree(dp_reqbody_t *rb, int endpoint, const char *p, size_t n, tg_err_t *err)
{
    json_error_t jerr;
    reset(rb);
    if (n == 0)
        return bad(err, NULL, "request body is empty; expected a JSON object");
    rb->tree = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!rb->tree) {
        tg_err_set(err, TG_EINVAL, 400, "request body is not valid JSON: %s (line %d, column %d)",
                   jerr.text, jerr.line, jerr.column);
        return TG_EINVAL;
    }
    int rc = check_tree(rb, endpoint, err);
    if (rc != 0)
        dp_reqbody_dispose(rb);
    return rc;
}

void dp_reqbody_dispose(dp_reqbody_t *rb)
{
    json_decref(rb->tree);
    json_decref(rb->fallbacks_tree);
    free(rb->raw);
    reset(rb);
    rb->model = NULL;
}

void dp_reqbody_release(dp_reqbody_t *rb)
{
    bool stream = rb->stream, include_usage = rb->include_usage, base64 = rb->base64;
    int64_t max_tokens = rb->max_tokens;
    dp_reqbody_dispose(rb);
    rb->stream = stream;
    rb->include_usage = include_usage;
    rb->base64 = base64;
    rb->max_tokens = max_tokens;
}

json_t *dp_reqbody_json(dp_reqbody_t *rb)
{
    if (rb->tree || !rb->raw)
        return rb->tree;
    /* the scanner accepted these bytes, so only memory can fail here */
    rb->tree = json_loadb(rb->raw, rb->raw_len, JSON_REJECT_DUPLICATES, NULL);
    if (rb->tree && rb->fb_val.len)
        json_object_del(rb->tree, "fallback_models");
    return rb->tree;
}

json_t *dp_reqbody_fallback_models(const dp_reqbody_t *rb)
{
    if (!rb->raw)
        return json_incref(rb->fallbacks_tree);
    if (rb->fb_val.len == 0)
        return NULL;
    return json_loadb(rb->raw + rb->fb_val.off, rb->fb_val.len, JSON_DECODE_ANY, NULL);
}

/* ---- the upstream body ---- */

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

static int build_from_tree(dp_reqbody_t *rb, const char *model, tg_buf_t *out)
{
    json_t *root = rb->tree;
    if (json_object_set_new(root, "model", json_string(model)) != 0)
        return TG_ENOMEM;
    if (rb->stream) {
        json_t *so = json_object_get(root, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            if (!so || json_object_set_new(root, "stream_options", so) != 0)
                return TG_ENOMEM;
        }
        if (json_object_set_new(so, "include_usage", json_true()) != 0)
            return TG_ENOMEM;
    }
    return json_dump_callback(root, dump_cb, out, JSON_COMPACT) == 0 ? 0 : TG_ENOMEM;
}

/* One change to the client's bytes: drop [off, off+len) and write text (or the model) there. */
typedef struct edit {
    size_t off, len;
    const char *text; /* NULL: the new model as a JSON string */
    size_t text_len;
} edit_t;

static int build_spliced(const dp_reqbody_t *rb, const char *model, tg_buf_t *out)
{
    edit_t e[4];
    size_t ne = 0;
    e[ne++] = (edit_t){rb->model_val.off, rb->model_val.len, NULL, 0};
    if (rb->fb_cut.len)
        e[ne++] = (edit_t){rb->fb_cut.off, rb->fb_cut.len, "", 0};
    if (rb->stream) {
        static const char member[] = ",\"stream_options\":{\"include_usage\":true}";
        if (rb->so_type == TG_JOBJECT && rb->iu_val.len) {
            e[ne++] = (edit_t){rb->iu_val.off, rb->iu_val.len, "true", 4};
        } else if (rb->so_type == TG_JOBJECT) {
            bool empty = tg_jempty(rb->raw + rb->so_val.off, rb->so_val.len);
            e[ne++] = (edit_t){rb->so_val.off + 1, 0,
                               empty ? "\"include_usage\":true" : "\"include_usage\":true,",
                               empty ? 20 : 21};
        } else if (rb->so_type != 0) { /* null */
            e[ne++] = (edit_t){rb->so_val.off, rb->so_val.len, member + 18, sizeof(member) - 19};
        } else {
            e[ne++] = (edit_t){rb->close, 0, member, sizeof(member) - 1};
        }
    }
    /* a handful of edits: insertion sort by offset (they never overlap) */
    for (size_t i = 1; i < ne; i++)
        for (size_t j = i; j > 0 && e[j].off < e[j - 1].off; j--) {
            edit_t t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    size_t start = out->len;
    int rc = tg_buf_reserve(out, rb->raw_len + 64 + 2 * strlen(model));
    size_t at = 0;
    for (size_t i = 0; rc == 0 && i < ne; i++) {
        rc = tg_buf_append(out, rb->raw + at, e[i].off - at);
        if (rc == 0)
            rc = e[i].text ? tg_buf_append(out, e[i].text, e[i].text_len)
                           : tg_buf_append_json_str(out, model, strlen(model));
        at = e[i].off + e[i].len;
    }
    if (rc == 0)
        rc = tg_buf_append(out, rb->raw + at, rb->raw_len - at);
    if (rc != 0)
        out->len = start;
    return rc;
}

int dp_reqbody_build_upstream(dp_reqbody_t *rb, const char *model, tg_buf_t *out, tg_err_t *err)
{
    int rc = rb->raw ? build_spliced(rb, model, out) : build_from_tree(rb, model, out);
    if (rc == 0)
        return 0;
    tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
    return TG_ENOMEM;
}

int64_t dp_reqbody_estimate_prompt_tokens(size_t body_len)
{
    /* ~4 bytes per token in English; JSON framing makes this an overestimate, which is the
     * safe side for spend that would otherwise go unrecorded */
    return (int64_t)((body_len + 3) / 4);
}

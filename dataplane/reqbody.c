/* reqbody.c: request body reader; runs on the loop thread that owns the request. */
#include "reqbody.h"

#include <string.h>

#include "tg_banned.h"

#define MAX_MODEL_LEN 256

static int bad(tg_err_t *err, const char *param, const char *msg)
{
    tg_err_set(err, TG_EINVAL, 400, "%s", msg);
    err->param = param;
    return TG_EINVAL;
}

static int check_positive_int(json_t *root, const char *name, int64_t *out, tg_err_t *err)
{
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        tg_err_set(err, TG_EINVAL, 400, "'%s' must be a positive integer", name);
        return TG_EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

int dp_reqbody_parse(dp_reqbody_t *rb, int endpoint, const char *p, size_t n, tg_err_t *err)
{
    json_error_t jerr;
    memset(rb, 0, sizeof(*rb));
    rb->max_tokens = -1;
    if (n == 0)
        return bad(err, NULL, "request body is empty; expected a JSON object");
    rb->root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!rb->root) {
        tg_err_set(err, TG_EINVAL, 400, "request body is not valid JSON: %s (line %d, column %d)",
                   jerr.text, jerr.line, jerr.column);
        return TG_EINVAL;
    }
    int rc = TG_EINVAL;
    if (!json_is_object(rb->root)) {
        bad(err, NULL, "request body must be a JSON object");
        goto fail;
    }
    json_t *model = json_object_get(rb->root, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        bad(err, "model", "'model' is required and must be a non-empty string");
        goto fail;
    }
    if (json_string_length(model) > MAX_MODEL_LEN) {
        bad(err, "model", "'model' is too long");
        goto fail;
    }
    rb->model = json_string_value(model);
    rb->model_len = json_string_length(model);

    json_t *stream = json_object_get(rb->root, "stream");
    if (stream && !json_is_null(stream)) {
        if (!json_is_boolean(stream)) {
            bad(err, "stream", "'stream' must be a boolean");
            goto fail;
        }
        rb->stream = json_is_true(stream);
    }
    if (rb->stream && endpoint == DP_EP_EMBEDDINGS) {
        bad(err, "stream", "embeddings cannot be streamed");
        goto fail;
    }
    json_t *so = json_object_get(rb->root, "stream_options");
    if (so && !json_is_null(so)) {
        json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_null(iu) && !json_is_boolean(iu))) {
            bad(err, "stream_options",
                "'stream_options' must be an object whose 'include_usage' is a boolean");
            goto fail;
        }
        rb->include_usage = iu && json_is_true(iu);
    }
    if (check_positive_int(rb->root, "max_tokens", &rb->max_tokens, err) != 0)
        goto fail;
    if (check_positive_int(rb->root, "max_completion_tokens", &rb->max_tokens, err) != 0)
        goto fail;

    switch (endpoint) {
    case DP_EP_CHAT: {
        json_t *msgs = json_object_get(rb->root, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            bad(err, "messages", "'messages' is required and must be a non-empty array");
            goto fail;
        }
        break;
    }
    case DP_EP_COMPLETIONS: {
        json_t *prompt = json_object_get(rb->root, "prompt");
        if (!json_is_string(prompt) && !json_is_array(prompt)) {
            bad(err, "prompt", "'prompt' is required and must be a string or an array");
            goto fail;
        }
        break;
    }
    case DP_EP_MESSAGES: {
        json_t *msgs = json_object_get(rb->root, "messages");
        if (!json_is_array(msgs)) {
            bad(err, "messages", "messages: field required (an array of messages)");
            goto fail;
        }
        if (rb->max_tokens < 0) {
            bad(err, "max_tokens", "max_tokens: field required (a positive integer)");
            goto fail;
        }
        break;
    }
    case DP_EP_EMBEDDINGS: {
        json_t *input = json_object_get(rb->root, "input");
        if (!json_is_string(input) && !json_is_array(input)) {
            bad(err, "input", "'input' is required and must be a string or an array");
            goto fail;
        }
        break;
    }
    default:
        break;
    }
    return 0;
fail:
    dp_reqbody_dispose(rb);
    return rc;
}

void dp_reqbody_dispose(dp_reqbody_t *rb)
{
    json_decref(rb->root);
    rb->root = NULL;
    rb->model = NULL;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

int dp_reqbody_build_upstream(dp_reqbody_t *rb, const char *model, tg_buf_t *out, tg_err_t *err)
{
    /* rb->model points into the member replaced below */
    rb->model = NULL;
    rb->model_len = 0;
    if (json_object_set_new(rb->root, "model", json_string(model)) != 0)
        goto nomem;
    if (rb->stream) {
        json_t *so = json_object_get(rb->root, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            if (!so || json_object_set_new(rb->root, "stream_options", so) != 0)
                goto nomem;
        }
        if (json_object_set_new(so, "include_usage", json_true()) != 0)
            goto nomem;
    }
    if (json_dump_callback(rb->root, dump_cb, out, JSON_COMPACT) != 0)
        goto nomem;
    return 0;
nomem:
    tg_err_set(err, TG_ENOMEM, 503, "could not build the upstream request: out of memory");
    return TG_ENOMEM;
}

int64_t dp_reqbody_estimate_prompt_tokens(size_t body_len)
{
    /* ~4 bytes per token in English; JSON framing makes this an overestimate, which is the
     * safe side for spend that would otherwise go unrecorded */
    return (int64_t)((body_len + 3) / 4);
}

/* common.c: what every adapter needs: JSON and SSE writers, OpenAI error objects, embeddings in
 * float or base64 form, secret headers, URL segments, and the per-attempt stream state. */
#include <string.h>

#include "provider.h"

#include "tg_banned.h"

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

int dp_json_append(tg_buf_t *out, const json_t *v)
{
    return json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? 0 : TG_ENOMEM;
}

int dp_sse_append_json(tg_buf_t *out, const char *name, const json_t *v)
{
    size_t mark = out->len;
    int rc = name ? tg_buf_appendf(out, "event: %s\n", name) : 0;
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

const char *dp_openai_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 409:
    case 413:
    case 422:
        return status == 404 ? "not_found_error" : "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return "api_error";
    }
}

int dp_openai_error_append(tg_buf_t *out, const char *message, size_t message_len, const char *type,
                           const char *code)
{
    size_t mark = out->len;
    int rc = tg_buf_append(out, "{\"error\":{\"message\":", 20);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, message, message_len);
    if (rc == 0)
        rc = tg_buf_append(out, ",\"type\":", 8);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, type, strlen(type));
    if (rc == 0)
        rc = tg_buf_append(out, ",\"param\":null,\"code\":", 21);
    if (rc == 0)
        rc = code ? tg_buf_append_json_str(out, code, strlen(code)) : tg_buf_append(out, "null", 4);
    if (rc == 0)
        rc = tg_buf_append(out, "}}", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

bool dp_embedding_wants_base64(const dp_reqbody_t *rb)
{
    json_t *f = json_object_get(rb->root, "encoding_format");
    return json_is_string(f) && strcmp(json_string_value(f), "base64") == 0;
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

int dp_header_add_secret(dp_header_add_fn add, void *ud, const char *name, const char *value)
{
    tg_buf_t line = TG_BUF_INIT(16384);
    int rc = tg_buf_appendf(&line, "%s: %s%c", name, value, '\0');
    if (rc == 0)
        rc = add(ud, line.base);
    /* the credential must not linger in freed memory */
    if (line.base)
        memset(line.base, 0, line.len);
    tg_buf_dispose(&line);
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

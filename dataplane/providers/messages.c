/* messages.c: placeholder until the Anthropic client format lands. */
#include "messages.h"

#include <stdlib.h>
#include <string.h>

#include "tg_banned.h"

int dp_msgs_request_to_openai(const json_t *anthropic, json_t **out, tg_err_t *err)
{
    (void)anthropic;
    *out = NULL;
    tg_err_set(err, TG_EINVAL, 400,
               "/v1/messages reaches only providers of kind \"anthropic\" yet");
    return TG_EINVAL;
}

int dp_msgs_response_from_openai(int status, const char *body, size_t n, const char *model,
                                 tg_buf_t *out)
{
    (void)body;
    (void)n;
    (void)model;
    return dp_msgs_error_append(out, status, "not supported", 13);
}

dp_msgs_stream_t *dp_msgs_stream_create(const char *model, const char *request_id)
{
    (void)model;
    (void)request_id;
    return NULL;
}

int dp_msgs_stream_feed(dp_msgs_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    (void)s;
    (void)p;
    (void)n;
    (void)out;
    return TG_EINVAL;
}

int dp_msgs_stream_end(dp_msgs_stream_t *s, bool complete, tg_buf_t *out)
{
    (void)s;
    (void)complete;
    (void)out;
    return 0;
}

void dp_msgs_stream_destroy(dp_msgs_stream_t *s)
{
    (void)s;
}

static const char *error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

int dp_msgs_error_append(tg_buf_t *out, int status, const char *message, size_t n)
{
    size_t mark = out->len;
    int rc = tg_buf_appendf(
        out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", error_type(status));
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

/* tg_errors.c: OpenAI's error type table and error body; no I/O. */
#include "tg_errors.h"

#include <string.h>

#include "tg_banned.h"

const char *tg_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static int append_str_or_null(tg_buf_t *out, const char *s)
{
    return s ? tg_buf_append_json_str(out, s, strlen(s)) : tg_buf_append(out, "null", 4);
}

int tg_error_body(tg_buf_t *out, int status, const char *type, const char *message,
                  size_t message_len, const char *param, const char *code)
{
    size_t mark = out->len;
    if (!type)
        type = tg_error_type(status);
    int rc = tg_buf_append(out, "{\"error\":{\"message\":", 20);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, message ? message : "", message ? message_len : 0);
    if (rc == 0)
        rc = tg_buf_append(out, ",\"type\":", 8);
    if (rc == 0)
        rc = tg_buf_append_json_str(out, type, strlen(type));
    if (rc == 0)
        rc = tg_buf_append(out, ",\"param\":", 9);
    if (rc == 0)
        rc = append_str_or_null(out, param);
    if (rc == 0)
        rc = tg_buf_append(out, ",\"code\":", 8);
    if (rc == 0)
        rc = append_str_or_null(out, code);
    if (rc == 0)
        rc = tg_buf_append(out, "}}", 2);
    if (rc != 0)
        out->len = mark;
    return rc;
}

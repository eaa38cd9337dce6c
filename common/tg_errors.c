/* tg_errors.c: OpenAI's error type table and error body, Anthropic's two tables; no I/O. */
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

const char *tg_error_type_anthropic(int status)
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

int tg_error_status_anthropic(const char *type, size_t n)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401}, {"billing_error", 402},
        {"permission_error", 403},      {"not_found_error", 404},      {"request_too_large", 413},
        {"rate_limit_error", 429},      {"timeout_error", 504},        {"overloaded_error", 529}};
    if (!type)
        return 500;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (tg_mem_eq(type, n, map[i].type, strlen(map[i].type)))
            return map[i].status;
    return 500;
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

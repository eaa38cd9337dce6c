/* tg_errors.h: OpenAI's error shape, written in one place. One table gives the `type` for an
 * HTTP status; one function writes {"error":{"message","type","param","code"}}. Every error body
 * in OpenAI's shape that the data plane writes (the connection's own answers, the proxy's, and
 * other providers' errors translated for the client) goes through these two. */
#ifndef TG_ERRORS_H
#define TG_ERRORS_H

#include <stddef.h>

#include "tg_buf.h"

/* OpenAI's error type for an HTTP status (a static string): 401 authentication_error, 403
 * permission_error, 429 rate_limit_error, 5xx api_error, anything else invalid_request_error
 * (404 too: OpenAI answers an unknown model or path with invalid_request_error; not_found_error
 * is Anthropic's type, not OpenAI's). */
const char *tg_error_type(int status);

/* Appends {"error":{"message":M,"type":T,"param":P,"code":C}} to out. type NULL means
 * tg_error_type(status); param and code may be NULL (written as null). message is escaped as a
 * JSON string; type, param and code too. On failure out is unchanged. */
int tg_error_body(tg_buf_t *out, int status, const char *type, const char *message,
                  size_t message_len, const char *param, const char *code) TG_WUR;

#endif

/* tg_errors.h: the error shapes' status tables, each in one place. OpenAI's: one table gives the
 * `type` for an HTTP status; one function writes {"error":{"message","type","param","code"}}.
 * Every error body in OpenAI's shape that the data plane writes (the connection's own answers, the
 * proxy's, and other providers' errors translated for the client) goes through these two.
 * Anthropic's: the `type` for a status (the Messages API's own errors) and the status for a type
 * (Anthropic's errors read from upstream). */
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

/* Anthropic's error type for an HTTP status (a static string): 400 invalid_request_error, 401
 * authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
 * rate_limit_error, 529 overloaded_error, any other 4xx invalid_request_error, anything else
 * api_error. */
const char *tg_error_type_anthropic(int status);

/* The HTTP status an Anthropic error type (n bytes, not NUL-terminated) stands for:
 * invalid_request_error 400, authentication_error 401, billing_error 402, permission_error 403,
 * not_found_error 404, request_too_large 413, rate_limit_error 429, timeout_error 504,
 * overloaded_error 529; any other type, or NULL, 500. */
int tg_error_status_anthropic(const char *type, size_t n);

#endif

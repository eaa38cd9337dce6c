/* messages.h: Anthropic's Messages API (POST /v1/messages) as a client format. For providers
 * that do not speak it natively, the request is translated to an OpenAI chat body (the
 * gateway's pivot), and the OpenAI-shaped answer the adapter produces is translated back:
 * JSON, SSE streams (message_start, content_block_start/delta/stop with text_delta and
 * input_json_delta, message_delta, message_stop) and errors. Pure. */
#ifndef DP_MESSAGES_H
#define DP_MESSAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tg_buf.h"
#include "tg_err.h"

/* Anthropic request body -> a new OpenAI chat completions body in *out (caller decrefs):
 * system, text/image/tool_use/tool_result content, tools and tool_choice, stop_sequences,
 * max_tokens, temperature, top_p, stream (with stream_options.include_usage). Something that
 * cannot be expressed is a 400 in err naming the field. */
int dp_msgs_request_to_openai(const json_t *anthropic, json_t **out, tg_err_t *err) TG_WUR;

/* A complete OpenAI answer (status and body) -> the Anthropic answer in out: a message
 * object for a 2xx, an Anthropic error object otherwise. model is the name to report. */
int dp_msgs_response_from_openai(int status, const char *body, size_t n, const char *model,
                                 tg_buf_t *out) TG_WUR;

/* OpenAI SSE chunks in, Anthropic SSE events out, split anywhere. */
typedef struct dp_msgs_stream dp_msgs_stream_t;

/* model: the name to report; request_id: for the message id. NULL when out of memory. */
dp_msgs_stream_t *dp_msgs_stream_create(const char *model, const char *request_id);
/* Appends the Anthropic events that the OpenAI bytes complete. An OpenAI error chunk becomes an
 * `event: error`. */
int dp_msgs_stream_feed(dp_msgs_stream_t *s, const char *p, size_t n, tg_buf_t *out) TG_WUR;
/* The OpenAI stream ended: closes open blocks and writes message_delta and message_stop when the
 * stream was complete and they are still owed. */
int dp_msgs_stream_end(dp_msgs_stream_t *s, bool complete, tg_buf_t *out) TG_WUR;
void dp_msgs_stream_destroy(dp_msgs_stream_t *s);

/* Appends an Anthropic error object {"type":"error","error":{"type","message"}} for a status
 * (400 invalid_request_error, 401 authentication_error, 403 permission_error, 404
 * not_found_error, 413 request_too_large, 429 rate_limit_error, 529 overloaded_error, else
 * api_error). */
int dp_msgs_error_append(tg_buf_t *out, int status, const char *message, size_t n) TG_WUR;
/* The same as one SSE event: "event: error\ndata: {...}\n\n". */
int dp_msgs_error_event_append(tg_buf_t *out, int status, const char *message, size_t n) TG_WUR;

#endif

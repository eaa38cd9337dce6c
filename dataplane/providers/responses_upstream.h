/* responses_upstream.h: the reverse of responses.h, for models that serve only the Responses API:
 * an OpenAI chat body becomes a Responses request (store: false, the gateway keeps the state),
 * and the Responses answer (a response object, or its SSE events) becomes a chat completion or
 * chat.completion.chunk events, with the same contract as a provider adapter's response,
 * stream_feed and stream_end (provider.h): usage into st->usage, `data: [DONE]` and st->done at
 * the end, an upstream failure as `data: {"error":...}`. Pure. See docs/responses.md. */
#ifndef DP_RESPONSES_UPSTREAM_H
#define DP_RESPONSES_UPSTREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "provider.h"
#include "tg_buf.h"
#include "tg_err.h"

/* Chat completions body -> a new Responses request in *out (caller decrefs): messages -> input
 * items (system/developer and user/assistant messages, tool_calls -> function_call items, tool
 * messages -> function_call_output), tools flattened, tool_choice, max_tokens or
 * max_completion_tokens -> max_output_tokens, temperature, top_p, response_format -> text.format,
 * reasoning_effort -> reasoning.effort, stream. What the Responses API cannot honour (n > 1,
 * stop sequences, penalties, logit_bias, seed, logprobs, audio) is a 400 in err naming it and
 * target. */
int dp_resp_request_from_chat(const json_t *chat, const char *target, json_t **out,
                              tg_err_t *err) TG_WUR;

/* A complete Responses answer -> a chat completion in out (DP_RESP_OUT), usage in st->usage; an
 * error status keeps OpenAI's error shape. TG_EUPSTREAM when a 2xx body is not a response. */
int dp_resp_upstream_response(dp_stream_state_t *st, int status, const char *body, size_t n,
                              tg_buf_t *out) TG_WUR;
/* Responses SSE events in (split anywhere), chat chunks out. */
int dp_resp_upstream_stream_feed(dp_stream_state_t *st, const char *p, size_t n,
                                 tg_buf_t *out) TG_WUR;
/* The upstream ended: complete without a terminal event finishes the answer; a broken stream
 * gets nothing (the proxy writes the error event). */
int dp_resp_upstream_stream_end(dp_stream_state_t *st, bool complete, tg_buf_t *out) TG_WUR;

/* ---- native pass-through: OpenAI and Azure answers relayed as they are ---- */

/* A Responses usage object (input_tokens, output_tokens, total_tokens, *_details) into u; false
 * (u untouched) when it is not one. */
bool dp_resp_usage_from_json(dp_usage_t *u, const json_t *usage);

/* Watches a Responses event stream that is relayed unchanged, for what the gateway needs from it:
 * the terminal event's response (to store) and its usage. Only terminal events are parsed. */
typedef struct dp_resp_watch dp_resp_watch_t;

dp_resp_watch_t *dp_resp_watch_create(void); /* NULL when out of memory */
/* Bytes of the stream, split anywhere. TG_ETOOBIG when one event passes the event limit. */
int dp_resp_watch_feed(dp_resp_watch_t *w, const char *p, size_t n) TG_WUR;
/* The response of response.completed, .incomplete or .failed (borrowed until destroy), or NULL
 * while none has arrived. */
const json_t *dp_resp_watch_response(const dp_resp_watch_t *w);
void dp_resp_watch_destroy(dp_resp_watch_t *w);

#endif

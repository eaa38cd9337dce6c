/* responses.h: OpenAI's Responses API (POST /v1/responses) as a client format on providers that
 * do not serve it natively. The request is translated into an OpenAI chat body (the gateway's
 * pivot, which every adapter speaks), and the chat-shaped answer back into a response object:
 * JSON, and SSE streams as Responses events (response.created ... response.completed, with
 * sequence_number and an `event:` line equal to data.type). Pure; a stream translator belongs
 * to one request and runs on its loop thread. See docs/responses.md. */
#ifndef DP_RESPONSES_H
#define DP_RESPONSES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_buf.h"
#include "tg_err.h"

/* Resolves an item_reference: the stored item with this id (borrowed until the translation
 * returns), or NULL when there is none for the tenant. */
typedef const json_t *(*dp_resp_lookup_fn)(void *ud, const char *id, size_t n);

/* Responses request body -> a new chat completions body in *out (caller decrefs).
 * prefix: the items of the conversation so far (previous_response_id resolved by the caller:
 * that response's input and output items, in order), or NULL. lookup/ud resolve item_reference
 * items (lookup may be NULL: then every reference is a 400). target: the provider's name, for
 * messages. instructions -> a system message; string or item input (input_text, input_image,
 * input_file, function_call, function_call_output paired by call_id, messages with roles);
 * flat function tools, tool_choice, parallel_tool_calls, max_output_tokens -> max_tokens,
 * temperature, top_p, text.format -> response_format, reasoning.effort, stream (with
 * stream_options.include_usage). metadata, store and previous_response_id are the gateway's and
 * not sent. What a chat target cannot honour (built-in tools, background, a reasoning summary,
 * conversation, prompt templates) is a 400 in err naming the feature and the target. */
int dp_resp_request_to_chat(const json_t *req, const json_t *prefix, dp_resp_lookup_fn lookup,
                            void *ud, const char *target, json_t **out, tg_err_t *err) TG_WUR;

/* ---- state: what the gateway stores and what it sends a native upstream ---- */

/* The request's input as the items to store (caller decrefs *out): a string is one user message
 * with an input_text part, a message's string content one input_text (output_text for the
 * assistant) part, item_reference items the items they name (through lookup); every item gets an
 * id, its own or "<kind>_<response id without resp_>_in<n>" (msg, fc, fco, item). These are what
 * GET /v1/responses/{id}/input_items lists and what item_reference finds. */
int dp_resp_input_items(const json_t *req, const char *resp_id, dp_resp_lookup_fn lookup, void *ud,
                        json_t **out, tg_err_t *err) TG_WUR;

/* A self-contained request for a native Responses upstream (caller decrefs *out): input = prefix
 * (the stored conversation so far) + the request's items with references resolved; item ids,
 * previous_response_id and reasoning items without encrypted_content left out (the upstream keeps
 * nothing: store false), logprobs of earlier output text dropped. */
int dp_resp_request_inline(const json_t *req, const json_t *prefix, dp_resp_lookup_fn lookup,
                           void *ud, json_t **out, tg_err_t *err) TG_WUR;

/* The response object a request starts (status "in_progress", output [], usage null), echoing
 * the request's settings as OpenAI does. id: "resp_..." (the item ids derive from it); model:
 * the name to report. NULL when out of memory. The caller decrefs. */
json_t *dp_resp_skeleton(const json_t *req, const char *id, const char *model, int64_t created_at);

/* A complete chat answer (status and body) -> the Responses answer in out: for a 2xx the
 * response object built on skel (completed, or incomplete after finish_reason "length" or
 * "content_filter"); otherwise the error in OpenAI's shape. *final (may be NULL) gets a new
 * reference to the response object written (for the store), NULL for an error. TG_EUPSTREAM
 * when a 2xx body is not a chat completion (the proxy answers 502). */
int dp_resp_response_from_chat(const json_t *skel, int status, const char *body, size_t n,
                               tg_buf_t *out, json_t **final) TG_WUR;

/* Chat SSE chunks in, Responses events out, split anywhere. */
typedef struct dp_resp_stream dp_resp_stream_t;

/* skel: as dp_resp_skeleton (referenced, not copied). NULL when out of memory. */
dp_resp_stream_t *dp_resp_stream_create(const json_t *skel);
/* Appends the events the chat bytes complete. A chat error chunk becomes response.failed. */
int dp_resp_stream_feed(dp_resp_stream_t *s, const char *p, size_t n, tg_buf_t *out) TG_WUR;
/* The chat stream ended: with complete, closes open items and writes response.completed (or
 * response.incomplete) when still owed; without, writes nothing (the caller reports the failure
 * through dp_resp_stream_fail). */
int dp_resp_stream_end(dp_resp_stream_t *s, bool complete, tg_buf_t *out) TG_WUR;
/* Writes response.failed (after response.created when nothing was sent yet), numbered in the
 * stream's sequence: for a failure the gateway sees (a cut stream, a timeout). Nothing once the
 * stream has ended. status picks the error code. */
int dp_resp_stream_fail(dp_resp_stream_t *s, int status, const char *message, size_t n,
                        tg_buf_t *out) TG_WUR;
/* The response the last lifecycle event carried (completed, incomplete or failed), borrowed
 * until destroy; NULL while the stream is open. */
const json_t *dp_resp_stream_response(const dp_resp_stream_t *s);
void dp_resp_stream_destroy(dp_resp_stream_t *s);

#endif

/* xlate.h: one request's translation between the client's format and a provider's, across
 * attempts: the provider adapter (provider.h) and, for an Anthropic Messages client on a provider
 * that does not speak it, the messages translator (messages.h) on top; for a Responses client,
 * xresp.h (native relay or the chat pivot). The proxy and the
 * conformance suite both go through here, so the suite tests what the proxy runs. Pure. */
#ifndef DP_XLATE_H
#define DP_XLATE_H

#include "messages.h"
#include "provider.h"

typedef struct dp_xlate {
    int client_endpoint;       /* DP_EP_* the client called */
    dp_reqbody_t *client_body; /* borrowed from the request */
    dp_reqbody_t *pivot;       /* owned: the OpenAI chat body made from a messages body */
    bool have_pivot;           /* pivot is set (only Messages requests to OpenAI-shaped targets) */
    const dp_provider_ops_t *ops; /* the current attempt's adapter */
    bool via_messages;            /* this attempt translates OpenAI answers to Anthropic ones */
    dp_stream_state_t st;         /* the current attempt's state: usage, done */
    dp_msgs_stream_t *ms;         /* owned, for via_messages streams */
    tg_buf_t mid;                 /* OpenAI bytes between the adapter and the translator */
    const char *anthropic_beta;   /* borrowed: the client's anthropic-beta header, or NULL */
    struct dp_xresp *resp;        /* owned: a Responses client's state (xresp.h), or NULL */
} dp_xlate_t;

/* client_wants_usage: the client asked for usage chunks (OpenAI stream_options). */
void dp_xlate_init(dp_xlate_t *x, int client_endpoint, dp_reqbody_t *body, bool client_wants_usage);
void dp_xlate_dispose(dp_xlate_t *x);

/* Starts an attempt on provider p with the provider's model name: resets the per-attempt state
 * and builds the upstream URL, headers and body. A 400 in err when the request cannot be
 * expressed for this provider. */
int dp_xlate_build(dp_xlate_t *x, const tg_provider_t *p, const char *model, const char *request_id,
                   int64_t now_s, dp_header_add_fn add, void *ud, tg_buf_t *url, tg_buf_t *body,
                   tg_err_t *err) TG_WUR;
/* A complete non-streamed answer: client and client_len receive what the client gets (body itself,
 * or bytes in out). Negative when a 2xx answer cannot be read. */
int dp_xlate_response(dp_xlate_t *x, int status, const char *body, size_t n, tg_buf_t *out,
                      const char **client, size_t *client_len) TG_WUR;
/* Streamed bytes in, client bytes appended to out. */
int dp_xlate_feed(dp_xlate_t *x, const char *p, size_t n, tg_buf_t *out) TG_WUR;
/* The upstream stream finished (complete) or broke. */
int dp_xlate_end(dp_xlate_t *x, bool complete, tg_buf_t *out) TG_WUR;
/* An error, as the client's format writes it: a JSON body (OpenAI's or Anthropic's shape)... */
int dp_xlate_error_body(int client_endpoint, const tg_err_t *err, tg_buf_t *out) TG_WUR;
/* ...or as one SSE event in a stream already started. */
int dp_xlate_error_event(int client_endpoint, const tg_err_t *err, tg_buf_t *out) TG_WUR;
/* The same for this request's stream: a Responses stream ends with response.failed (translated)
 * or an `error` event (relayed), numbered in its sequence; other endpoints as above. */
int dp_xlate_fail_event(dp_xlate_t *x, const tg_err_t *err, tg_buf_t *out) TG_WUR;
/* The upstream's Content-Type for a streamed answer, e.g. "text/event-stream". */
const char *dp_xlate_stream_content_type(const dp_xlate_t *x);

#endif

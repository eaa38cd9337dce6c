/* provider.h: one table of functions per provider kind, like curl's struct Curl_cftype. The
 * proxy calls only these; nothing else knows a provider's wire format. Pure (no I/O).
 *
 * The gateway's pivot format is OpenAI's: a client body for DP_EP_CHAT, DP_EP_COMPLETIONS or
 * DP_EP_EMBEDDINGS is OpenAI-shaped, and an adapter answers the client in OpenAI's shape (JSON,
 * SSE chunks, error objects). DP_EP_MESSAGES bodies are Anthropic-shaped and reach only adapters
 * with native_messages; for the others the proxy translates them to OpenAI chat first
 * (messages.h) and the answer back. */
#ifndef DP_PROVIDER_H
#define DP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "reqbody.h"
#include "sse.h"
#include "tg_buf.h"
#include "tg_err.h"
#include "tg_snap.h"
#include "usage.h"

/* One upstream attempt as an adapter sees it. */
typedef struct dp_call {
    const tg_provider_t *provider; /* borrowed from the snapshot */
    const char *model;             /* the provider's model name (target) */
    int endpoint;                  /* DP_EP_* */
    /* the parsed client body; build may set "model" and "stream_options" in body->root and
     * nothing else (a retry on another provider builds from the same body) */
    dp_reqbody_t *body;
    const char *request_id; /* the gateway's request id, for ids the upstream does not give */
    int64_t now_s;          /* unix time, for request signing */
} dp_call_t;

/* What an answer has shown so far; one per attempt (reset between attempts). */
typedef struct dp_stream_state {
    int endpoint;             /* DP_EP_* of the call */
    bool client_wants_usage;  /* else a usage chunk the client did not ask for is hidden */
    const char *model;        /* borrowed: the provider's model name, for translated answers */
    const char *request_id;   /* borrowed: for chunk ids when the upstream gives none */
    const dp_reqbody_t *body; /* borrowed: the body build() got, for answers that depend on it */
    int64_t created;          /* unix seconds: "created" of translated answers */
    dp_usage_t usage;         /* filled by the adapter from what the provider reported */
    int64_t content_events;   /* events that carried content: the estimate when usage never came */
    bool done;                /* the terminal event arrived (the adapter wrote `data: [DONE]`) */
    dp_sse_t sse;             /* reassembles upstream SSE events across reads */
    tg_buf_t scratch;         /* owned: rewritten events */
    tg_buf_t data_scratch;    /* owned: multi-line data fields */
    void *priv;               /* adapter state, freed with priv_free at dispose */
    void (*priv_free)(void *priv);
} dp_stream_state_t;

/* Called for each upstream header line, e.g. "Authorization: Bearer ...". Copies the line. */
typedef int (*dp_header_add_fn)(void *ud, const char *line);

/* response() results. */
enum { DP_RESP_PASS = 0, DP_RESP_OUT = 1 };

typedef struct dp_provider_ops {
    const char *kind;
    /* Content-Type prefix of a streamed 2xx answer, e.g. "text/event-stream". */
    const char *stream_content_type;
    /* Speaks Anthropic Messages natively: DP_EP_MESSAGES calls reach build() as they are. */
    bool native_messages;
    /* Writes the NUL-terminated upstream URL into url, adds every header the upstream needs
     * (credentials, content type, signature, the provider's extras) and writes the body. A
     * request the provider cannot express is a 400 in err (e.g. embeddings on a kind without
     * them). Credentials must not linger in scratch buffers. */
    int (*build)(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url, tg_buf_t *body,
                 tg_err_t *err);
    /* A complete non-streamed answer of any status. DP_RESP_PASS: the client gets body as it is;
     * DP_RESP_OUT: the client gets out. An error status becomes an OpenAI error object (keeping
     * the provider's message). Reads usage into st->usage. A 2xx that cannot be read is a
     * negative TG_E* (the proxy answers 502). */
    int (*response)(dp_stream_state_t *st, int status, const char *body, size_t n, tg_buf_t *out);
    /* n bytes of a streamed 2xx answer, split anywhere; appends what the client receives (SSE
     * events, OpenAI chunks, each event whole) to out. An upstream error event becomes
     * `data: {"error":{...}}`. The terminal event sets st->done and writes `data: [DONE]`. A
     * negative TG_E* aborts the stream. */
    int (*stream_feed)(dp_stream_state_t *st, const char *p, size_t n, tg_buf_t *out);
    /* The upstream finished (complete) or broke (!complete): appends anything still owed to the
     * client except the error event, which the proxy writes. */
    int (*stream_end)(dp_stream_state_t *st, bool complete, tg_buf_t *out);
} dp_provider_ops_t;

/* The table for a tg_provider_kind; NULL for an unknown kind. */
const dp_provider_ops_t *dp_provider_ops(int kind);

void dp_stream_state_init(dp_stream_state_t *st, int endpoint, bool client_wants_usage);
/* Back to the state of a fresh attempt (keeps endpoint, client_wants_usage, model, ids). */
void dp_stream_state_reset(dp_stream_state_t *st);
void dp_stream_state_dispose(dp_stream_state_t *st);

extern const dp_provider_ops_t dp_provider_openai;
extern const dp_provider_ops_t dp_provider_azure;
extern const dp_provider_ops_t dp_provider_anthropic;
extern const dp_provider_ops_t dp_provider_gemini;
extern const dp_provider_ops_t dp_provider_bedrock;

/* ---- helpers the adapters share (common.c) ---- */

/* Appends v as compact JSON. */
int dp_json_append(tg_buf_t *out, const json_t *v) TG_WUR;
/* Appends one SSE event: "event: <name>\n" when name is given, then "data: <json>\n\n". */
int dp_sse_append_json(tg_buf_t *out, const char *name, const json_t *v) TG_WUR;
/* Appends `data: [DONE]\n\n` and sets st->done. */
int dp_sse_append_done(dp_stream_state_t *st, tg_buf_t *out) TG_WUR;
/* Appends an OpenAI error object {"error":{"message","type","param":null,"code"}}; code may be
 * NULL. */
int dp_openai_error_append(tg_buf_t *out, const char *message, size_t message_len, const char *type,
                           const char *code) TG_WUR;
/* OpenAI's error type for an HTTP status: invalid_request_error, authentication_error,
 * permission_error, not_found_error, rate_limit_error, api_error. */
const char *dp_openai_error_type(int status);
/* Appends an embedding for the client: a JSON array of floats, or with base64 the
 * little-endian float32 bytes in base64 (what `encoding_format: "base64"` asks for). values is
 * a JSON array of numbers. */
int dp_embedding_append(tg_buf_t *out, const json_t *values, bool base64) TG_WUR;
/* The client asked for base64 embeddings (`"encoding_format": "base64"`). */
bool dp_embedding_wants_base64(const dp_reqbody_t *rb);
/* Adds "Name: value" through add, wiping the line afterwards (for credentials). */
int dp_header_add_secret(dp_header_add_fn add, void *ud, const char *name, const char *value);
/* Appends s percent-encoded as an RFC 3986 path segment (unreserved characters kept). */
int dp_url_append_segment(tg_buf_t *out, const char *s, size_t n) TG_WUR;

#endif

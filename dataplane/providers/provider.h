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
#include "tg_errors.h"
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
    /* the client's anthropic-beta header (NUL-terminated, printable ASCII) or NULL: sent on
     * native Messages calls, where the client chose the beta features */
    const char *anthropic_beta;
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
    /* These three are heap buffers, not the request's arena: each is emptied per event and grows
     * to the largest one, and an arena would keep every outgrown copy until the stream ends. */
    dp_sse_t sse;          /* reassembles upstream SSE events across reads */
    tg_buf_t scratch;      /* owned: rewritten events */
    tg_buf_t data_scratch; /* owned: multi-line data fields */
    void *priv;            /* adapter state, freed with priv_free at dispose */
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
/* Chat calls to an openai or azure provider whose model serves only the Responses API
 * (tg_provider_t.chat_via_responses): translated by responses_upstream.h. */
extern const dp_provider_ops_t dp_provider_openai_responses;

/* ---- helpers the adapters share (common.c) ---- */

/* Appends v as compact JSON. */
int dp_json_append(tg_buf_t *out, const json_t *v) TG_WUR;
/* Appends one SSE event: "event: <name>\n" when name is given, then "data: <json>\n\n". */
int dp_sse_append_json(tg_buf_t *out, const char *name, const json_t *v) TG_WUR;
/* Appends `data: [DONE]\n\n` and sets st->done. */
int dp_sse_append_done(dp_stream_state_t *st, tg_buf_t *out) TG_WUR;
/* Appends an embedding for the client: a JSON array of floats, or with base64 the
 * little-endian float32 bytes in base64 (what `encoding_format: "base64"` asks for). values is
 * a JSON array of numbers. */
int dp_embedding_append(tg_buf_t *out, const json_t *values, bool base64) TG_WUR;
/* The client asked for base64 embeddings (`"encoding_format": "base64"`). */
bool dp_embedding_wants_base64(const dp_reqbody_t *rb);
/* Adds "Name: value" through add, wiping the line afterwards (for credentials). */
int dp_header_add_secret(dp_header_add_fn add, void *ud, const char *name, const char *value);
/* Adds "Name: <prefix><value>" the same way (e.g. "Authorization: Bearer <key>"). */
int dp_header_add_secret_pre(dp_header_add_fn add, void *ud, const char *name, const char *prefix,
                             const char *value);
/* Appends s percent-encoded as an RFC 3986 path segment (unreserved characters kept). */
int dp_url_append_segment(tg_buf_t *out, const char *s, size_t n) TG_WUR;
/* Adds Content-Type: application/json, Accept: <accept> and an empty Expect: (no 100-continue). */
int dp_header_add_json(dp_header_add_fn add, void *ud, const char *accept);
/* Adds the provider's own header lines (p->headers), in order. */
int dp_header_add_extra(const tg_provider_t *p, dp_header_add_fn add, void *ud);
/* OpenAI and Azure (openai.c): the JSON headers (Accept: text/event-stream for a stream), the
 * provider's own lines and its key (Authorization: Bearer, or Azure's api-key). */
int dp_openai_headers(const tg_provider_t *p, bool stream, dp_header_add_fn add, void *ud);
/* A Responses API request to an OpenAI or Azure provider (openai.c): req's model set to model,
 * the URL {base}/responses (Azure: {base}/v1/responses), dp_openai_headers, req as the body.
 * 0 or a TG_E* code (out of memory). */
int dp_openai_responses_request(const tg_provider_t *p, json_t *req, const char *model, bool stream,
                                dp_header_add_fn add, void *ud, tg_buf_t *url, tg_buf_t *body);

/* v is a JSON string equal to the literal lit (network data: no strcmp). */
bool dp_json_str_eq(const json_t *v, const char *lit);
/* Sets obj[key] = v, taking v; TG_ENOMEM when v is NULL (a failed constructor) or the set fails. */
int dp_json_set(json_t *obj, const char *key, json_t *v) TG_WUR;
/* Appends v to arr, taking v; TG_ENOMEM when v is NULL or the append fails. */
int dp_json_push(json_t *arr, json_t *v) TG_WUR;
/* Appends the NUL-terminated s (a literal, mostly). */
int dp_str_append(tg_buf_t *out, const char *s) TG_WUR;
/* The n bytes at p start with the NUL-terminated prefix (case-sensitive). */
bool dp_has_prefix(const char *p, size_t n, const char *prefix);

/* ---- OpenAI request -> provider request ---- */

/* Appends {"role", key: items} to turns, taking items; same role as the last turn: merged. */
int dp_json_turn_append(json_t *turns, const char *role, const char *key, json_t *items) TG_WUR;
/* OpenAI's stop as a new array in *seqs (caller decrefs; NULL if absent); TG_EINVAL if bad. */
int dp_stop_sequences(const json_t *stop, json_t **seqs) TG_WUR;
/* A "data:" URL's media type (to its first ';') and payload; false when it is not base64. */
bool dp_data_url_split(const char *u, size_t n, const char **mime, size_t *mime_len,
                       const char **data, size_t *data_len);
/* Appends the text of messages[mi].content (a string, null or text parts); else a 400 in err. */
int dp_content_text_append(tg_buf_t *out, const json_t *content, size_t mi, tg_err_t *err) TG_WUR;
/* OpenAI's function.arguments as a new JSON value (caller decrefs): {} when empty; NULL if bad. */
json_t *dp_tool_args_parse(const json_t *args);
/* Fills err with a 400 naming the request field param (may be NULL); returns TG_EINVAL. */
int dp_build_invalid(tg_err_t *err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A build that failed with rc (no memory, too big) as a 503 or 413 in err; returns the code. */
int dp_build_nomem(tg_err_t *err, int rc);
/* Appends the NUL-terminated strings up to a NULL, without printf; nothing on failure. */
int dp_buf_append_strs(tg_buf_t *out, ...) TG_WUR;

/* ---- provider answer -> OpenAI answer (new JSON values are the caller's; NULL: no memory) ---- */

/* A tool call {"id","type","function":{"name","arguments"}}: input as JSON text via scratch. */
json_t *dp_openai_tool_call_json(const json_t *id, const json_t *name, const json_t *input,
                                 tg_buf_t *scratch);
/* An assistant message: content text (or null without has_text) and a reference to calls. */
json_t *dp_openai_message_json(const char *text, size_t n, bool has_text, const json_t *calls);
/* A choice {"index","message","finish_reason"}, taking message. */
json_t *dp_openai_choice_json(int64_t index, json_t *message, const char *finish);
/* A chat.completion without usage, taking choices (NULL in, NULL out). */
json_t *dp_openai_completion_json(const dp_stream_state_t *st, const char *id, const char *model,
                                  json_t *choices);
/* OpenAI's usage object for u; reasoning adds completion_tokens_details.reasoning_tokens. */
json_t *dp_openai_usage_json(const dp_usage_t *u, bool reasoning);
/* The model name of translated answers: st->model, or "". */
const char *dp_stream_model(const dp_stream_state_t *st);
/* Appends a chat.completion.chunk event for choice index, taking delta; finish may be NULL. */
int dp_openai_chunk_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                           int64_t index, json_t *delta, const char *finish) TG_WUR;
/* Appends the first chunk of a choice: delta {"role":"assistant","content":""}. */
int dp_openai_chunk_role_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                                int64_t index) TG_WUR;
/* Appends the usage chunk ("choices":[]) of st->usage; reasoning as dp_openai_usage_json. */
int dp_openai_chunk_usage_append(tg_buf_t *out, const dp_stream_state_t *st, const char *id,
                                 bool reasoning) TG_WUR;
/* Appends an error event `data: {"error":...}` (tg_error_body, its type from status); nothing
 * on failure. */
int dp_sse_append_error(tg_buf_t *out, int status, const char *message, size_t message_len,
                        const char *code) TG_WUR;
/* Appends the embeddings list of the vectors in items (or in each item's member). */
int dp_embedding_list_append(tg_buf_t *out, const dp_stream_state_t *st, const json_t *items,
                             const char *member, int64_t total_tokens) TG_WUR;

#endif

/* reqbody.h: reads the fields of an OpenAI request body the gateway acts on (model, stream,
 * stream_options, max_tokens (max_output_tokens for Responses), encoding_format, fallback_models) and writes the body the upstream
 * receives. Fields it does not read pass through untouched: providers add fields every month.
 *
 * The hot path never builds a JSON tree: a scanner (tg_jscan.h) validates the body exactly as
 * jansson would and finds the top-level members; the upstream body is the client's bytes with the
 * model's value replaced, stream_options.include_usage set for streams and fallback_models cut
 * out. Translating adapters ask for the tree with dp_reqbody_json, built on first use. Pure. */
#ifndef DP_REQBODY_H
#define DP_REQBODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tg_buf.h"
#include "tg_err.h"

enum dp_endpoint {
    DP_EP_CHAT = 1,    /* /v1/chat/completions */
    DP_EP_COMPLETIONS, /* /v1/completions */
    DP_EP_EMBEDDINGS,  /* /v1/embeddings */
    DP_EP_MESSAGES,    /* /v1/messages: Anthropic's Messages API */
    DP_EP_RESPONSES,   /* /v1/responses: OpenAI's Responses API (docs/responses.md) */
};

#define DP_REQBODY_MODEL_MAX 256

/* Where something is in the raw bytes: an offset and a length; len 0 when absent. */
typedef struct dp_span {
    size_t off, len;
} dp_span_t;

typedef struct dp_reqbody {
    const char *model; /* the client's model, decoded: borrowed from raw or model_buf */
    size_t model_len;
    bool stream;
    bool include_usage; /* the client itself asked for the usage chunk */
    int64_t max_tokens; /* -1 when absent */
    bool base64;        /* encoding_format is "base64" (embeddings) */

    /* the rest is reqbody.c's */
    char *raw; /* owned: the client's bytes; NULL when the body is only a tree (a pivot) */
    size_t raw_len;
    json_t *tree;           /* owned: NULL until dp_reqbody_json; a pivot sets it directly */
    json_t *fallbacks_tree; /* owned: fallback_models of a body parsed as a tree */
    size_t close;           /* offset of the top-level object's closing brace */
    dp_span_t model_val;    /* the model's value, quotes included */
    dp_span_t so_val;       /* stream_options' value */
    int so_type;            /* its TG_J* type, 0 when absent */
    dp_span_t iu_val;       /* stream_options.include_usage's value */
    dp_span_t fb_cut;       /* fallback_models' member with one comma: cut from the upstream body */
    dp_span_t fb_val;       /* fallback_models' value */
    char model_buf[DP_REQBODY_MODEL_MAX + 1];
} dp_reqbody_t;

/* Parses and checks a body, copying the bytes; on failure err holds a 400 naming the field. */
int dp_reqbody_parse(dp_reqbody_t *rb, int endpoint, const char *p, size_t n, tg_err_t *err) TG_WUR;
/* The same, taking the body's storage instead of copying it (body is left empty either way). */
int dp_reqbody_parse_take(dp_reqbody_t *rb, int endpoint, tg_buf_t *body, tg_err_t *err) TG_WUR;
/* The same through jansson's full parse, keeping only the tree: the reference the scanner is
 * tested against, and the path a body takes if the scanner and jansson ever disagree. */
int dp_reqbody_parse_tree(dp_reqbody_t *rb, int endpoint, const char *p, size_t n,
                          tg_err_t *err) TG_WUR;
void dp_reqbody_dispose(dp_reqbody_t *rb);
/* Frees the body's bytes and tree once nothing will build an upstream body from them again (a
 * streamed answer the client already has: no retry, no fallback). What stays: stream,
 * include_usage, max_tokens, base64. model, the spans and dp_reqbody_json are gone. */
void dp_reqbody_release(dp_reqbody_t *rb);
/* The body as a tree (without fallback_models), built on the first call and owned by rb; NULL
 * when out of memory. For adapters that translate the body into another provider's format. */
json_t *dp_reqbody_json(dp_reqbody_t *rb);
/* fallback_models as the client sent it (a new reference), or NULL when absent. */
json_t *dp_reqbody_fallback_models(const dp_reqbody_t *rb);
/* Writes the upstream body into out: model replaced by the provider's model name, for streams
 * stream_options.include_usage set so that usage is always captured, fallback_models left out.
 * Spliced from the client's bytes; dumped from the tree for a tree-only body. */
int dp_reqbody_build_upstream(dp_reqbody_t *rb, const char *model, tg_buf_t *out,
                              tg_err_t *err) TG_WUR;
/* Rough prompt size in tokens from the body bytes, for requests that end before the provider
 * reports usage. */
int64_t dp_reqbody_estimate_prompt_tokens(size_t body_len);

#endif

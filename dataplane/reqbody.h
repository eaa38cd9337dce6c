/* reqbody.h: reads the fields of an OpenAI request body the gateway acts on (model, stream,
 * stream_options, max_tokens) and writes the body the upstream receives. Fields it does not read
 * pass through untouched: providers add fields every month. Pure. */
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
};

typedef struct dp_reqbody {
    json_t *root;      /* owned */
    const char *model; /* borrowed from root */
    size_t model_len;
    bool stream;
    bool include_usage; /* the client itself asked for the usage chunk */
    int64_t max_tokens; /* -1 when absent */
} dp_reqbody_t;

/* Parses and checks a body; on failure err holds a 400 naming the field. */
int dp_reqbody_parse(dp_reqbody_t *rb, int endpoint, const char *p, size_t n, tg_err_t *err) TG_WUR;
void dp_reqbody_dispose(dp_reqbody_t *rb);
/* Writes the upstream body into out: model replaced by the provider's model name and, for streams,
 * stream_options.include_usage set so that usage is always captured. */
int dp_reqbody_build_upstream(dp_reqbody_t *rb, const char *model, tg_buf_t *out,
                              tg_err_t *err) TG_WUR;
/* Rough prompt size in tokens from the body bytes, for requests that end before the provider
 * reports usage. */
int64_t dp_reqbody_estimate_prompt_tokens(size_t body_len);

#endif

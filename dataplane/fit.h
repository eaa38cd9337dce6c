/* fit.h: which of a route's targets can take a request (docs/routing.md, "Capability-aware
 * routing"): what the request needs, read from its body (tool support, image input, a context
 * window for its estimated size), checked against each target's model info from the snapshot;
 * the estimated cost of the request on a target, for the cheapest strategy; the 400 when no
 * target fits; and the metadata GET /v1/models shows per alias. A target whose info leaves a
 * need unknown is not filtered on it. Pure but for the snapshot it reads. */
#ifndef DP_FIT_H
#define DP_FIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reqbody.h"
#include "tg_buf.h"
#include "tg_err.h"
#include "tg_snap.h"

/* Tokens counted for each image in a prompt (a high-detail tile set of OpenAI's or Anthropic's
 * largest image is below this); the image's own bytes are not counted as text. */
#define DP_FIT_IMAGE_TOKENS 2500
/* Output tokens the cheapest strategy assumes when the request sets no max_tokens (capped at the
 * target's max_output_tokens when known); the ledger's worst case uses the same figure. */
#define DP_FIT_DEFAULT_OUTPUT 4096
#define DP_FIT_REJECTS_MAX 8 /* unfit targets the 400 names */

/* Why a target cannot take a request. */
enum {
    DP_FIT_NO_TOOLS = 1 << 0,  /* the request has tools, the model no tool support */
    DP_FIT_NO_VISION = 1 << 1, /* the request has images, the model takes text only */
    DP_FIT_CONTEXT = 1 << 2,   /* estimated prompt + max_tokens above the context window */
    DP_FIT_OUTPUT = 1 << 3,    /* max_tokens above the model's max_output_tokens */
};

/* What a request needs. */
typedef struct dp_fit_need {
    uint32_t caps;         /* TG_CAP_TOOLS, TG_CAP_VISION */
    int64_t prompt_tokens; /* estimate: ceil(text bytes / 4) + DP_FIT_IMAGE_TOKENS per image */
    int64_t max_tokens;    /* the client's output limit, or -1 */
    int64_t images;
    size_t inline_bytes; /* image bytes inline in the body (data: URLs, base64 sources) */
    /* the request asks for reasoning: a reasoning effort other than "none" (chat's
     * reasoning_effort, Responses' reasoning.effort) or extended thinking (/v1/messages'
     * thinking, type enabled or adaptive) */
    bool reasoning;
    int64_t reasoning_budget; /* thinking.budget_tokens, or 0 */
} dp_fit_need_t;

/* One request's filter: its need and the targets it turned away (for the 400). */
typedef struct dp_fit {
    dp_fit_need_t need;
    bool on;      /* endpoints without a need (embeddings) filter nothing */
    uint32_t why; /* union of the reasons of every target turned away */
    size_t nrejects;
    struct {
        const tg_target_t *target; /* borrowed from the snapshot */
        uint32_t why;
    } rejects[DP_FIT_REJECTS_MAX];
} dp_fit_t;

/* Reads the need of a JSON body (valid: the request parser checked it) of p[0..n): tools (a
 * non-empty top-level "tools" or "functions"), images (parts of type image_url, image or
 * input_image), the size estimate and whether it asks for reasoning. Pure. */
void dp_fit_need_scan(dp_fit_need_t *need, const char *p, size_t n, int64_t max_tokens);
/* Sets up f for a parsed request body of an endpoint (DP_EP_*). */
void dp_fit_init(dp_fit_t *f, int endpoint, dp_reqbody_t *rb);
/* 0 when a target of this info can take the need, else DP_FIT_* reasons. Pure. */
uint32_t dp_fit_check(const dp_fit_need_t *need, const tg_model_info_t *info);
/* Whether t fits; a target that does not is remembered for dp_fit_refuse. */
bool dp_fit_admit(dp_fit_t *f, const tg_target_t *t);
/* Whether t fits, remembering nothing. */
bool dp_fit_ok(const dp_fit_t *f, const tg_target_t *t);
/* Estimated cost of the need on a target in picodollars, priced by the rules of a real request's
 * cost (tg_price_usage_cost): the prompt estimate as input tokens, which also chooses the
 * long-context tier, and max_tokens (or DP_FIT_DEFAULT_OUTPUT, capped by max_output_tokens) as
 * output tokens, of which, when the request asks for reasoning, its thinking budget (all of them
 * without one) as reasoning tokens; INT64_MAX for an unpriced target, so that it comes after every
 * priced one. Pure. */
int64_t dp_fit_cost(const dp_fit_need_t *need, const tg_target_t *t);
/* The route's target indices in order of estimated cost, cheapest first; ties and unpriced
 * targets keep the route's order. order holds rt->ntargets entries. */
void dp_fit_order_by_cost(const dp_fit_need_t *need, const tg_route_t *rt, size_t *order);
/* The 400 when no target fits: what the request needs and which targets lack it. */
int dp_fit_refuse(const dp_fit_t *f, const tg_route_t *rt, tg_err_t *err);
/* Appends ,"model_info":{...} for an alias: LiteLLM's field names, over the route's targets
 * (the largest window and output, a capability true when a target has it and false when every
 * target states it has not, each price the highest of the targets'; unknown is null or absent). */
int dp_fit_append_model_info(tg_buf_t *b, const tg_route_t *rt) TG_WUR;

#endif

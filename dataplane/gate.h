/* gate.h: what a request must pass before any provider sees it: the path and method, the API
 * key, the model alias and the plan of targets to try, and admission against rate limits and
 * budgets. The gate hands back a plan and an admission hold; dp_gate_release gives the hold back
 * and is the only thing that does. Loop thread only. */
#ifndef DP_GATE_H
#define DP_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "dp.h"
#include "fit.h"
#include "health.h"
#include "ledger.h"
#include "reqbody.h"
#include "tg_pool.h"

#define DP_PLAN_MAX 32     /* targets one request may try, fallbacks included */
#define DP_PLAN_INLINE 4   /* plan entries held in the gate itself; a longer plan moves to pool */
#define DP_FALLBACKS_MAX 4 /* aliases a request may name */

typedef struct dp_plan_entry {
    const tg_route_t *route; /* whose retry policy and timeouts apply */
    const tg_target_t *target;
    dp_tstate_t *ts; /* the target's health on this worker, looked up once; NULL = untracked */
} dp_plan_entry_t;

/* One request's pass through the gate. Every pointer is borrowed from the snapshot the request
 * holds a ref to, or from the worker. */
typedef struct dp_gate {
    dp_worker_t *w;
    const tg_snap_t *snap;
    int endpoint;              /* DP_EP_*, 0 for /v1/models */
    const char *endpoint_name; /* static */
    const tg_key_t *key;
    const tg_route_t *route; /* the alias the client asked for, once the key may use it */
    /* The plan: plan_inline until it outgrows it, then an array in *pool (a request held open
     * for minutes keeps its plan, and most plans hold one or two targets). Set by
     * dp_gate_route, so the gate must not move after it. */
    dp_plan_entry_t *plan;
    size_t nplan, plan_cap;
    dp_plan_entry_t plan_inline[DP_PLAN_INLINE];
    tg_pool_t *pool; /* the request's arena, for a plan longer than plan_inline; NULL: none */
    dp_admit_t hold; /* what admission holds (rate limits, budgets) until dp_gate_release */
    dp_fit_t fit;    /* what the request needs; the plan holds only targets that fit */
} dp_gate_t;

void dp_gate_init(dp_gate_t *g, dp_worker_t *w, const tg_snap_t *snap);
/* What a request's head decides without its body: the endpoint (404), the method (405; *allow
 * gets the Allow header line), a configuration (503) and the API key (401). Reads the head in
 * place and allocates nothing. */
int dp_gate_head(dp_gate_t *g, const dp_http_msg_t *m, const char **allow, tg_err_t *err) TG_WUR;
/* The API key alone (401; 503 without a configuration), for paths dp_gate_head does not route
 * (the stored-response endpoints, rstore_http.h). */
int dp_gate_key(dp_gate_t *g, const dp_http_msg_t *m, tg_err_t *err) TG_WUR;
/* The model alias (404, 403) and the plan: the strategy's pick first, then the route's other
 * targets in order (cheapest: in order of estimated cost), then the fallback aliases the request
 * names in its body ("fallback_models", removed from body) or fallbacks header (400 when
 * malformed). Targets that cannot take the request (fit.h) are left out; 400 when none can. */
int dp_gate_route(dp_gate_t *g, dp_reqbody_t *body, const tg_buf_t *fallbacks, const char *req_id,
                  size_t req_id_len, tg_err_t *err) TG_WUR;
/* Admission: rate limits and budgets of the key and its tenant at the plan's dearest target. On
 * refusal a 429 in err, and retry_after (>= 16 bytes) the seconds to wait or "". */
int dp_gate_admit(dp_gate_t *g, size_t body_len, int64_t max_tokens, tg_err_t *err,
                  char *retry_after, size_t ra_len) TG_WUR;
/* The request is over and cost what it cost: gives back what admission holds and counts the
 * cost against the key's and tenant's budgets. Once per request that passed authentication. */
void dp_gate_release(dp_gate_t *g, int64_t cost_pusd, int64_t tokens);
/* The next plan entry from `from` whose circuit lets an attempt through, or nplan. */
size_t dp_gate_next_available(const dp_gate_t *g, size_t from);

#endif

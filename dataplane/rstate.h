/* rstate.h: the Responses API's conversation state on the request path, between the request
 * (xresp.h) and the store (rstore.h), through two seams: resolving what a request continues from,
 * and keeping a final response. Before a request's first attempt, dp_rstate_prepare makes sure
 * the records it continues from (previous_response_id, item_reference) are on this worker,
 * fetching what is not from the control plane without blocking the loop; dp_resp_state_resolve
 * then reads them synchronously. dp_resp_state_final hands a final response to the
 * store and returns the put, so that the request writes its answer's last bytes once the control
 * plane (or the spool) holds it. Loop thread only. */
#ifndef DP_RSTATE_H
#define DP_RSTATE_H

#include <jansson.h>

#include "dp.h"
#include "responses.h"
#include "rstore.h"

typedef struct dp_rstate_wait dp_rstate_wait_t;

/* Fetches what req (a Responses body) continues from and this worker does not hold. 0: nothing
 * to wait for (call dp_xresp_begin now); 1: *out is a wait, and cb(ud, unavailable) runs once
 * every fetch ended (unavailable: the control plane could not be asked); dp_xresp_begin then
 * resolves from what came back, and the owner frees the wait with dp_rstate_wait_free (which also
 * cancels one that has not ended). Negative when out of memory. */
int dp_rstate_prepare(dp_worker_t *w, const char *tenant, const json_t *req,
                      void (*cb)(void *ud, bool unavailable), void *ud, dp_rstate_wait_t **out);
void dp_rstate_wait_free(dp_rstate_wait_t *wt);

/* ---- the state seams ---- */

/* What a request continues from, resolved before its first attempt. */
typedef struct dp_resp_resolved {
    json_t *prefix;           /* owned: the earlier turns' items (input then output, oldest first),
                               * or NULL for a request without previous_response_id */
    dp_resp_lookup_fn lookup; /* resolves an item_reference id, or NULL: none resolve */
    void *lookup_ud;
    json_t *refs; /* owned: the item_reference ids resolved, to their items (lookup's ud) */
} dp_resp_resolved_t;

/* Resolves previous_response_id and item_reference for the tenant: THE place a stored
 * conversation is read. Today nothing is stored: a previous_response_id is a 400
 * previous_response_not_found (param previous_response_id) and lookup stays NULL, so the
 * translators answer every item_reference with a 400. The store will: look the id up in the
 * worker's bounded cache, else fetch it from the control plane (scoped by tenant_id, another
 * tenant's id answering exactly like a random one), set prefix to the chain's input and output
 * items and lookup to a resolver over the same responses' items. That fetch is asynchronous:
 * the call moves to before the first attempt in request.c with a completion callback. */
int dp_resp_state_resolve(dp_worker_t *w, const char *tenant_id, const json_t *req,
                          dp_resp_resolved_t *out, tg_err_t *err) TG_WUR;
void dp_resp_resolved_dispose(dp_resp_resolved_t *r);

/* The response is final (completed, incomplete or failed: the object the client received whole,
 * or in its stream's terminal event) and the request said store true (the default): THE place a
 * response is kept. response: that object, its previous_response_id the client's; prefix: the
 * earlier turns' items it continued from (resolved, may be NULL); input_items: the request's input
 * as dp_resp_input_items makes it (references resolved, an id on every item, derived from
 * response.id). All borrowed for the call. Once per request, from the request's loop; never for
 * store false, whose request and answer are written nowhere. Keeps the record in the worker's
 * cache and hands it to the store (rstate.c); returns the put the request waits for before its
 * answer's last bytes, or NULL (not stored: logged). */
dp_rstore_op_t *dp_resp_state_final(dp_worker_t *w, const char *tenant_id, const char *key_id,
                                    const json_t *response, const json_t *prefix,
                                    const json_t *input_items);

#endif

/* rstate.h: the Responses API's conversation state on the request path, between xresp.h's two
 * seams and the store (rstore.h). Before a request's first attempt, dp_rstate_prepare makes sure
 * the records it continues from (previous_response_id, item_reference) are on this worker,
 * fetching what is not from the control plane without blocking the loop; dp_resp_state_resolve
 * (xresp.h) then reads them synchronously. dp_resp_state_final hands a final response to the
 * store and returns the put, so that the request writes its answer's last bytes once the control
 * plane (or the spool) holds it. Loop thread only. */
#ifndef DP_RSTATE_H
#define DP_RSTATE_H

#include <jansson.h>

#include "dp.h"
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

#endif

/* xresp.h: POST /v1/responses on the data plane: one request's Responses side across its
 * attempts. An OpenAI or Azure target that serves the Responses API (the provider setting
 * responses_api, "native" by default) gets a self-contained request (store false) and its answer
 * relayed, the response object's store and previous_response_id set back to the client's; every
 * other target gets the request translated to chat (providers/responses.h) through its adapter,
 * and the chat answer translated back. The two seams of the response store (resolving the
 * conversation a request continues, and the moment a response is final) are rstate.h's. Loop
 * thread only. See docs/responses.md. */
#ifndef DP_XRESP_H
#define DP_XRESP_H

#include "dp.h"
#include "responses.h"
#include "rstate.h"
#include "rstore.h"
#include "xlate.h"

/* ---- the request ---- */

/* Makes x (initialised for DP_EP_RESPONSES) serve a Responses client: the response id (id, or a
 * new one from w's generator when NULL), the client's body as a tree, and its state resolved (a
 * 400 in err when it cannot be). w, tenant_id and key_id are kept for the seams (borrowed from the
 * request's snapshot). The conformance suite passes w NULL and an id: no worker, no store. */
int dp_xresp_begin(dp_xlate_t *x, dp_worker_t *w, const char *tenant_id, const char *key_id,
                   const char *id, tg_err_t *err) TG_WUR;
/* The put of the final response started since the last call (the request holds its answer's last
 * bytes until it ends), or NULL. */
dp_rstore_op_t *dp_xresp_take_put(dp_xlate_t *x);
/* Whether a put waits to be taken (dp_xresp_take_put would return one). */
bool dp_xresp_put_pending(const dp_xlate_t *x);
void dp_xresp_destroy(struct dp_xresp *r);

/* What dp_xlate_* do for a Responses client (xlate.c calls these). */
int dp_xresp_build(dp_xlate_t *x, dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                   tg_buf_t *body, tg_err_t *err) TG_WUR;
int dp_xresp_response(dp_xlate_t *x, int status, const char *body, size_t n, tg_buf_t *out,
                      const char **client, size_t *client_len) TG_WUR;
int dp_xresp_feed(dp_xlate_t *x, const char *p, size_t n, tg_buf_t *out) TG_WUR;
int dp_xresp_end(dp_xlate_t *x, bool complete, tg_buf_t *out) TG_WUR;
int dp_xresp_fail_event(dp_xlate_t *x, const tg_err_t *err, tg_buf_t *out) TG_WUR;

#endif

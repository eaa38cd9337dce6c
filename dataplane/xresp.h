/* xresp.h: POST /v1/responses on the data plane: one request's Responses side across its
 * attempts. An OpenAI or Azure target that serves the Responses API (the provider setting
 * responses_api, "native" by default) gets a self-contained request (store false) and its answer
 * relayed, the response object's store and previous_response_id set back to the client's; every
 * other target gets the request translated to chat (providers/responses.h) through its adapter,
 * and the chat answer translated back. Also the two seams of the response store: resolving the
 * conversation a request continues, and the moment a response is final. Loop thread only. See
 * docs/responses.md. */
#ifndef DP_XRESP_H
#define DP_XRESP_H

#include "dp.h"
#include "responses.h"
#include "rstore.h"
#include "xlate.h"

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

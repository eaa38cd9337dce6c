/* rstore_http.h: the stored-response endpoints of the Responses API on the data plane:
 * GET /v1/responses/{id}, DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
 * (docs/responses.md). Authenticated by the API key and scoped to its tenant; an id the tenant
 * does not have (another tenant's included) is a 404 "Response with id '...' not found.".
 * Loop thread only. */
#ifndef DP_RSTORE_HTTP_H
#define DP_RSTORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

/* Whether path is one of these endpoints (POST /v1/responses is not). */
bool dp_rstore_http_match(const char *path, size_t plen);
/* A head for one of them: answers (and returns true) what it refuses already: the method (405),
 * no configuration (503) or the key (401). */
bool dp_rstore_http_head(dp_worker_t *w, dp_conn_t *c, const dp_http_msg_t *head);
/* A complete request for one of them (msg borrowed from the connection; moved out when the
 * answer waits for the control plane); ends the connection's request. */
void dp_rstore_http_serve(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg);

#endif

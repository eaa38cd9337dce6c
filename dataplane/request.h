/* request.h: one request on its way through a provider: from the gate's plan through attempts,
 * retries and fallbacks to the answer (buffered or streamed, translated by xlate.c), its usage
 * record and the end of its hold. Loop thread only. */
#ifndef DP_REQUEST_H
#define DP_REQUEST_H

#include "conn.h"
#include "gate.h"

#define DP_REQ_ID_MAX 132 /* a request id: the client's (at most 128 bytes) or a UUID */

/* The id a request goes by, written to out (DP_REQ_ID_MAX bytes, not NUL-terminated): the client's
 * x-request-id when it is sane, so that logs join up across hops, else a new UUID. Returns its
 * length. */
size_t dp_req_id(dp_worker_t *w, const dp_http_msg_t *m, char *out);
/* Starts a request the gate let through its head (g: endpoint and key set, snapshot w->snap);
 * msg is borrowed (the connection's) and read only before this returns: what the request keeps
 * it copies into its arena. The request answers on c and ends it with dp_conn_end, now or later. */
void dp_req_start(dp_worker_t *w, dp_conn_t *c, dp_http_msg_t *msg, const dp_gate_t *g);
/* Hands the worker's buffered usage lines to the sink. */
void dp_req_flush_usage(dp_worker_t *w);
/* Frees the ended requests the worker keeps for reuse; after its loop has stopped. */
void dp_req_cache_free(dp_worker_t *w);

#endif

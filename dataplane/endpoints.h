/* endpoints.h: what the server answers itself (/healthz, /readyz, /metrics, /v1/models, and
 * refusals a request's head earns) and the hand-over of every other request to request.c. The
 * connection reaches these through the worker's handler. Loop thread only. */
#ifndef DP_ENDPOINTS_H
#define DP_ENDPOINTS_H

#include "conn.h"

/* The handler every worker's connections use. */
extern const dp_conn_handler_t dp_endpoints_handler;

#endif

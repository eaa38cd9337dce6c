/* cp_http.h: the HTTP server's lifecycle. */
#ifndef CP_HTTP_H
#define CP_HTTP_H

#include "cp.h"

/* What the server runs for a request of the API (every path but the dashboard's files). */
typedef struct cp_http_api {
    /* When the head arrives: resolves the caller and sets how large a body it may send; nonzero
     * when r was answered (refused) already. */
    int (*precheck)(cp_req_t *r, size_t *body_max);
    /* With the whole body: runs the handler. */
    void (*dispatch)(cp_req_t *r);
} cp_http_api_t;

/* Starts listening, serving api (kept: static storage); *port receives the bound port (for
 * port 0). */
int cp_http_start(const cp_opts_t *o, const cp_http_api_t *api, int *port);
/* Stops accepting and waits for handlers in progress. */
void cp_http_stop(void);
/* Responses sent with status class cls (1..5), for /metrics. */
unsigned long cp_http_count(int cls);
/* Long polls waiting now (data planes with nothing new to receive), for /metrics. */
int cp_http_waiting(void);

#endif

/* cp_http.h: the HTTP server's lifecycle. */
#ifndef CP_HTTP_H
#define CP_HTTP_H

#include "cp.h"

/* Starts listening; *port receives the bound port (for port 0). */
int cp_http_start(const cp_opts_t *o, int *port);
/* Stops accepting and waits for handlers in progress. */
void cp_http_stop(void);
/* Responses sent with status class cls (1..5), for /metrics. */
unsigned long cp_http_count(int cls);
/* Long polls waiting now (data planes with nothing new to receive), for /metrics. */
int cp_http_waiting(void);

#endif

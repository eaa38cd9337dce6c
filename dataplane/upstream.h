/* upstream.h: one libcurl multi handle per loop, driven by that loop (curl_multi_socket_action
 * with uv_poll and uv_timer). Loop thread only. */
#ifndef DP_UPSTREAM_H
#define DP_UPSTREAM_H

#include <curl/curl.h>
#include <uv.h>

#include "dp.h"

/* Put the address of one of these in CURLOPT_PRIVATE; done runs once per finished transfer,
 * after the handle has left the multi, outside any curl callback. */
typedef struct dp_upstream_xfer {
    void (*done)(struct dp_upstream_xfer *x, CURLcode result);
} dp_upstream_xfer_t;

dp_upstream_t *dp_upstream_create(uv_loop_t *loop);
/* Cleans up the multi and closes its handles; run the loop afterwards to let them close. */
void dp_upstream_destroy(dp_upstream_t *u);
int dp_upstream_add(dp_upstream_t *u, CURL *easy);
/* Cancels a transfer: the handle leaves the multi at once, the connection is closed, and done is
 * not called. */
void dp_upstream_remove(dp_upstream_t *u, CURL *easy);
/* Sets the options every transfer shares (signals off, protocols, HTTP/2, keep-alive). */
void dp_upstream_easy_defaults(CURL *easy);

#endif

/* sync.h: the data plane's link to the control plane. One thread (never a loop) long-polls
 * GET /dp/v1/snapshot?after=V, validates each snapshot completely, keeps the last good one on disk
 * (state_dir/snapshot.json with an HMAC under TOLLGATE_DP_TOKEN beside it) and hands it to the
 * workers. */
#ifndef DP_SYNC_H
#define DP_SYNC_H

#include <curl/curl.h>

#include "dp.h"
#include "tg_buf.h"
#include "tg_err.h"

/* The software version sent as X-Tollgate-Version. */
#define DP_VERSION "0.1.0"

/* Loads the last good snapshot from the state dir, if there is one and its HMAC holds. Returns
 * NULL (after logging why) when there is none or it is refused. Blocking: main thread, at start. */
tg_snap_t *dp_sync_load_state(const dp_opts_t *o);
/* Starts the poll thread; hand(s) receives each new snapshot (one ref it must drop). */
int dp_sync_start(const dp_opts_t *o, int64_t version, void (*hand)(tg_snap_t *s));
/* Reads this data plane's id from STATE_DIR/dataplane-id, or makes one (host name and a random
 * suffix) and stores it there, so that a restart on the same state dir is the same data plane
 * to the control plane. Main thread, at start, before the sync and usage threads. */
int dp_sync_init_id(const dp_opts_t *o, tg_err_t *err) TG_WUR;
/* This data plane's id (X-Tollgate-Dataplane); any thread, after dp_sync_init_id. */
const char *dp_sync_id(void);
/* Sets up e for one call to the control plane (snapshot poll, usage batch): url, the headers every
 * call carries (the data-plane token, this data plane's id and version) plus extra ones, http(s)
 * only, the timeouts, the answer into body, and progress(ud) to abort it. Returns the header list
 * to free after the transfer, or NULL when out of memory. */
struct curl_slist *dp_control_easy(CURL *e, const char *url, const char *const *extra,
                                   long connect_ms, long timeout_ms, tg_buf_t *body,
                                   curl_xferinfo_callback progress, void *ud);
/* Stops and joins the poll thread (within about a second). */
void dp_sync_stop(void);

#endif

/* rstore.h: stored responses on the data plane (docs/responses.md, "State"). A record is one JSON
 * object, {"id","tenant","key","created_at","response":{...},"input_items":[...]}, the response as
 * the client got it and the items that came before its output (earlier turns included). Each
 * worker keeps recent records in its own bounded cache (rcache.h). With a control plane, one
 * thread (never a loop) talks to it: it hands new records over before their answer ends (POST
 * /dp/v1/responses), falls back to the spool (STATE_DIR/responses/, one file a record, resent
 * until acknowledged; the control plane stores a (tenant, id) once), and fetches and deletes
 * records by id; results come back to the worker's loop through an async handle. Without one
 * (a snapshot file alone), the same thread keeps a process-wide store in memory, bounded at
 * workers x the cache's bytes, which the workers ask (off their loops) for what their own cache
 * does not hold, so a follow-up finds its response on any worker. Loop thread, except start,
 * stop and dp_rstore_stats. */
#ifndef DP_RSTORE_H
#define DP_RSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp.h"
#include "rcache.h"
#include "tg_buf.h"
#include "tg_err.h"

/* How an operation ended. */
enum {
    DP_RS_OK = 0,      /* found / deleted / stored by the control plane */
    DP_RS_SPOOLED,     /* a put the control plane could not take now: in the spool */
    DP_RS_NOT_FOUND,   /* no such record for this tenant (or deleted, or expired) */
    DP_RS_UNAVAILABLE, /* the control plane could not be asked, and the spool failed */
};

typedef struct dp_rstore_op dp_rstore_op_t;
/* An operation's end, on the worker's loop: rec/len is the record for fetches (borrowed for the
 * call), NULL otherwise. */
typedef void (*dp_rstore_cb)(void *ud, int result, const char *rec, size_t len);

/* Opens the spool (with o->control_url) and starts the thread; sets up every worker's cache of
 * o->responses_cache_bytes. Main thread, before the workers. */
int dp_rstore_start(const dp_opts_t *o, tg_err_t *err) TG_WUR;
/* Gives puts in flight a moment to finish, stops the thread and frees what is left. Main
 * thread, after the workers stopped. */
void dp_rstore_stop(void);
/* The worker's end of the results (an async handle on its loop): before its loop runs, and
 * closed by worker_close from the loop at shutdown. */
int dp_rstore_worker_init(dp_worker_t *w) TG_WUR;
void dp_rstore_worker_close(dp_worker_t *w);
/* Whether records live in a control plane (else only in the workers' caches). */
bool dp_rstore_remote(void);

/* The worker's cached record of (tenant, id), or one holding an item of this id; borrowed until
 * the next call into rstore on this worker. */
const dp_rentry_t *dp_rstore_cached(dp_worker_t *w, const char *tenant, const char *id);
const dp_rentry_t *dp_rstore_cached_item(dp_worker_t *w, const char *tenant, const char *item);

/* Asks the control plane for a record by id (by_item: by one of its items' ids). A record found
 * goes into the worker's cache before cb runs. NULL when out of memory (cb never runs). */
dp_rstore_op_t *dp_rstore_fetch(dp_worker_t *w, const char *tenant, const char *id, bool by_item,
                                dp_rstore_cb cb, void *ud);
/* Deletes a record: from the control plane, the spool and every worker's cache. */
dp_rstore_op_t *dp_rstore_delete(dp_worker_t *w, const char *tenant, const char *id,
                                 dp_rstore_cb cb, void *ud);
/* Stores a record (copied): in the worker's cache at once, then with the control plane; cb runs
 * once the control plane holds it (DP_RS_OK) or it is in the spool (DP_RS_SPOOLED), so that an
 * answer whose last bytes wait for cb can be continued on any data plane. */
dp_rstore_op_t *dp_rstore_put(dp_worker_t *w, const char *tenant, const char *id, const char *rec,
                              size_t len, dp_rstore_cb cb, void *ud);
/* The owner of ud is going away: cb will not run (the operation itself still completes). */
void dp_rstore_cancel(dp_rstore_op_t *op);
/* Sets who hears of an operation's end (an operation started with no cb, such as the put that
 * dp_resp_state_final starts); before control returns to the loop. */
void dp_rstore_set_cb(dp_rstore_op_t *op, dp_rstore_cb cb, void *ud);

/* Counts a lookup of a stored response in the worker's cache (for /metrics). */
void dp_rstore_note_lookup(dp_worker_t *w, bool hit);

/* What /metrics shows of the store (any thread). */
typedef struct dp_rstore_stats {
    bool started, remote;
    uint64_t stored;         /* records the control plane (or the process's store) took */
    uint64_t spooled;        /* records written to the spool */
    int64_t spool_depth;     /* records in the spool now */
    uint64_t ship_failures;  /* hand-overs and resends the control plane did not take */
    uint64_t dropped;        /* records never stored: refused as too large, or no room */
    uint64_t spool_failures; /* records the spool could not write (kept in the cache only) */
    uint64_t fetches;        /* records asked of the control plane (or the process's store) */
    uint64_t fetch_failures; /* fetches that could not be answered (not a 404) */
    uint64_t cache_hits, cache_misses;
} dp_rstore_stats_t;
void dp_rstore_stats(dp_rstore_stats_t *out);

/* Builds a record: response (a JSON object) and input_items (a JSON array) are copied as they are.
 * key may be NULL. */
int dp_rstore_record(tg_buf_t *out, const char *id, const char *tenant, const char *key,
                     int64_t created_at, const char *response, size_t rlen, const char *items,
                     size_t ilen) TG_WUR;

#endif

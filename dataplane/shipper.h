/* shipper.h: the usage shipper. One thread (never a loop) sends what the usage writer appended
 * to the spool (STATE_DIR/spool/usage-<seq>.ndjson) to POST /dp/v1/usage with a blocking curl
 * handle, and records how far the control plane acknowledged in STATE_DIR/spool/cursor.
 * docs/usage.md, section "Spool (data plane)". */
#ifndef DP_SHIPPER_H
#define DP_SHIPPER_H

#include <stdbool.h>
#include <stdint.h>

#include "dp.h"
#include "tg_err.h"

typedef struct dp_shipper_stats {
    bool enabled;            /* a shipper runs (--control-url) */
    uint64_t spooled_total;  /* events this process appended to the spool */
    int64_t pending;         /* events in the spool not acknowledged yet */
    uint64_t shipped_total;  /* events acknowledged (including replayed ones) */
    uint64_t rejected_total; /* events the control plane refused as invalid */
    uint64_t failures_total; /* POSTs that failed and will be retried */
} dp_shipper_stats_t;

/* Reads the cursor in dir, deletes the segments it says were acknowledged, and starts the
 * shipper thread. *run_seq is the first segment number this process writes: everything below
 * it was written by an earlier run. Main thread, at start. */
int dp_shipper_start(const dp_opts_t *o, const char *dir, uint64_t *run_seq, tg_err_t *err) TG_WUR;
/* The writer appended `lines` events: segment seq now holds len bytes, all of them whole
 * lines. Writer thread. */
void dp_shipper_written(uint64_t seq, uint64_t len, uint64_t lines);
/* Call after the writer stopped: ships what is left for at most bound_ms, then joins the
 * thread. What is not acknowledged stays in the spool for the next start. */
void dp_shipper_stop(uint32_t bound_ms);
/* Counters for /metrics; any thread. */
void dp_shipper_stats(dp_shipper_stats_t *st);
/* Whether name is a segment's file name, and its number. */
bool dp__spool_segment_seq(const char *name, uint64_t *seq);
/* The path of segment seq in dir. */
void dp__spool_segment_path(char *out, size_t n, const char *dir, uint64_t seq);

#endif

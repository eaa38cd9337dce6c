/* metrics.h: per-worker counters rendered in Prometheus text format. A worker writes only its
 * own counters; a scrape sums all workers. */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stddef.h>

#include "dp.h"
#include "tg_buf.h"

dp_metrics_t *dp_metrics_create(void);
void dp_metrics_destroy(dp_metrics_t *m);
/* Counts a finished request. model and provider are snapshot names ("" when none applied). */
void dp_metrics_request(dp_metrics_t *m, int status, const char *model, const char *provider);
/* Observes an upstream exchange's duration. */
void dp_metrics_upstream(dp_metrics_t *m, double seconds);
/* Renders every worker's counters, summed. */
int dp_metrics_render(tg_buf_t *out, dp_worker_t **workers, int n, int64_t snapshot_version);

#endif

/* usage_sink.h: the thread that appends usage records to the NDJSON file. Loops hand it whole
 * batches; the disk never blocks a loop. */
#ifndef DP_USAGE_SINK_H
#define DP_USAGE_SINK_H

#include <stddef.h>

#include "tg_err.h"

/* Opens path for append and starts the writer thread. */
int dp_usage_sink_start(const char *path, tg_err_t *err) TG_WUR;
/* Takes ownership of a malloc'd batch of complete lines. Any thread. */
void dp_usage_sink_submit(char *batch, size_t len);
/* Writes what is queued, syncs and stops the thread. */
void dp_usage_sink_stop(void);

#endif

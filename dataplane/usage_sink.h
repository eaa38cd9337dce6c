/* usage_sink.h: the thread that writes usage records. Loops hand it whole batches; the disk
 * never blocks a loop. Without a control plane it appends them to the NDJSON usage file; with
 * one, to the spool that the shipper (shipper.h) sends to POST /dp/v1/usage. */
#ifndef DP_USAGE_SINK_H
#define DP_USAGE_SINK_H

#include <stddef.h>

#include "dp.h"
#include "tg_err.h"

/* With o->control_url: locks STATE_DIR/spool, starts the shipper (which first resends what an
 * earlier run left unacknowledged) and the writer thread. Otherwise opens o->usage_path for
 * append and starts the writer thread. Main thread, at start. */
int dp_usage_sink_start(const dp_opts_t *o, tg_err_t *err) TG_WUR;
/* Takes ownership of a malloc'd batch of complete lines. Any thread. */
void dp_usage_sink_submit(char *batch, size_t len);
/* Writes what is queued and syncs; with a control plane, then tries for about 2 s to deliver
 * what is not acknowledged (the rest stays in the spool for the next start). Main thread, after
 * the loops stopped. */
void dp_usage_sink_stop(void);

#endif

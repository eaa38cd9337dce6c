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
 * append (a torn last line cut off), locks STATE_DIR/usage-journal and starts the writer thread.
 * Both first save what the journals of a killed run hold and was never handed over. Main
 * thread, at start. */
int dp_usage_sink_start(const dp_opts_t *o, tg_err_t *err) TG_WUR;
/* Takes ownership of a malloc'd batch of complete lines from worker loop `worker` (-1: none),
 * whose journal holds them too (dp_usage_journal_append); once they are in a segment, their
 * room in the journal is free. Any thread. */
void dp_usage_sink_submit(char *batch, size_t len, int worker);
/* Appends one whole record to the memory-mapped journal of worker loop `worker`
 * (STATE_DIR/spool/journal-<worker>, or STATE_DIR/usage-journal/journal-<worker> with a usage
 * file), so that a record is in the page cache, where a SIGKILL cannot take it, from the moment
 * it is recorded; the next start puts what was never handed over into a segment, or at the end
 * of the usage file (but for what the file holds already). A memcpy and an atomic store, no
 * syscall: the loop's own thread. */
void dp_usage_journal_append(int worker, const char *line, size_t n);
/* Writes what is queued and syncs; with a control plane, then tries for about 2 s to deliver
 * what is not acknowledged (the rest stays in the spool for the next start). Main thread, after
 * the loops stopped. */
void dp_usage_sink_stop(void);

#endif

/* server.h: workers (one libuv loop and thread each, SO_REUSEPORT listeners), snapshot swaps and
 * the SIGHUP/SIGTERM handling on the main thread. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include "dp.h"

/* Runs the data plane until SIGTERM/SIGINT has drained it. Takes the initial snapshot ref (may be
 * NULL: /readyz says 503 until one arrives). Returns the process exit code. */
int dp_server_run(const dp_opts_t *opts, tg_snap_t *initial);
/* Reads "host:port" (IPv6 hosts in brackets) into o's listen address. */
int dp_server_parse_listen(const char *s, dp_opts_t *o) TG_WUR;
/* The current snapshot version (any thread). */
int64_t dp_server_snapshot_version(void);
bool dp_server_ready(void);
/* All workers (their counters are read with atomics or under their locks). */
dp_worker_t **dp_server_workers(int *n);

#endif

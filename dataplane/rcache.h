/* rcache.h: a worker's cache of stored responses (the Responses API's store): records by (tenant,
 * response id), bounded in bytes, least recently used out first, each kept at most ttl_ms. A
 * record is the JSON the data plane ships to the control plane (rstore.h); the cache keeps a copy
 * and the ids of the items it holds (for item_reference). No I/O, no locks: one per worker loop.
 */
#ifndef DP_RCACHE_H
#define DP_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_err.h"

typedef struct dp_rcache dp_rcache_t;

typedef struct dp_rentry {
    char tenant[37];
    char id[129];
    char *data; /* the record, len bytes (owned by the cache) */
    size_t len;
    char **items; /* the ids of the record's items */
    size_t nitems;
    int64_t stored_ms;
    bool acked; /* the control plane holds it (false: it waits in this data plane's spool) */
} dp_rentry_t;

/* max_bytes: what the records and their ids may take in all (0: nothing is kept). */
dp_rcache_t *dp_rcache_create(size_t max_bytes, int64_t ttl_ms);
void dp_rcache_destroy(dp_rcache_t *c);
/* Keeps a copy of a record, replacing one of the same tenant and id; older entries go until it
 * fits. A record larger than the whole cache is not kept (TG_ETOOBIG). */
int dp_rcache_put(dp_rcache_t *c, const char *tenant, const char *id, const char *data, size_t len,
                  const char *const *items, size_t nitems, bool acked, int64_t now_ms) TG_WUR;
/* The entry of (tenant, id), now the most recently used, or NULL (absent or older than ttl).
 * Borrowed until the next put or del on this cache. */
const dp_rentry_t *dp_rcache_get(dp_rcache_t *c, const char *tenant, const char *id,
                                 int64_t now_ms);
/* The most recently used entry of tenant holding an item with this id, or NULL. */
const dp_rentry_t *dp_rcache_find_item(dp_rcache_t *c, const char *tenant, const char *item_id,
                                       int64_t now_ms);
/* Marks an entry as held by the control plane. */
void dp_rcache_set_acked(dp_rcache_t *c, const char *tenant, const char *id);
/* Drops (tenant, id); whether it was there. */
bool dp_rcache_del(dp_rcache_t *c, const char *tenant, const char *id);
size_t dp_rcache_bytes(const dp_rcache_t *c);
size_t dp_rcache_count(const dp_rcache_t *c);

#endif

/* cache.h: the exact-match response cache, one per worker (no lock): answers keyed by the
 * SHA-256 of tenant, endpoint, alias and the request body normalized (keys sorted, compact), so
 * one tenant never sees another's answer. Entries expire after their route's TTL; the cache is
 * bounded in bytes and evicts the least recently used. Pure (no I/O). */
#ifndef DP_CACHE_H
#define DP_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_err.h"
#include "tg_hash.h"
#include "usage.h"

typedef struct dp_cache dp_cache_t;

typedef struct dp_cache_entry {
    uint8_t key[TG_SHA256_LEN];
    char *body; /* owned: what the client received (JSON, or the whole SSE stream) */
    size_t len;
    bool stream;
    char *provider; /* owned: who answered, for the usage record */
    char *model;
    dp_usage_t usage;
    int64_t stored_ms;
    int64_t expires_ms;
    struct dp_cache_entry *prev, *next; /* LRU list, most recent first */
    struct dp_cache_entry *chain;       /* hash bucket */
} dp_cache_entry_t;

/* max_bytes 0: a cache that stores nothing. NULL when out of memory. */
dp_cache_t *dp_cache_create(size_t max_bytes);
void dp_cache_destroy(dp_cache_t *c);
/* The key of a request. body is the client's parsed body (after gateway-only fields such as
 * fallback_models are removed). */
int dp_cache_key(const char *tenant, int endpoint, const char *alias, const json_t *body,
                 uint8_t key[TG_SHA256_LEN]) TG_WUR;
/* A live entry no older than max_age_ms (< 0: any age), made most recent; NULL on a miss. The
 * entry is borrowed until the next call on this cache. */
const dp_cache_entry_t *dp_cache_get(dp_cache_t *c, const uint8_t key[TG_SHA256_LEN],
                                     int64_t now_ms, int64_t max_age_ms);
/* Stores a copy (replacing an entry with the same key), evicting the least recently used until
 * it fits; an answer bigger than an eighth of the cache is not stored. */
int dp_cache_put(dp_cache_t *c, const uint8_t key[TG_SHA256_LEN], const char *body, size_t len,
                 bool stream, const char *provider, const char *model, const dp_usage_t *u,
                 int64_t now_ms, int64_t ttl_ms);
/* Bytes and entries held, for metrics and tests. */
size_t dp_cache_bytes(const dp_cache_t *c);
size_t dp_cache_entries(const dp_cache_t *c);

#endif

/* tg_pool.h: an arena (after h2o's h2o_mem_pool_t): many small allocations that all die together,
 * freed in one call. Allocation bumps a pointer in the current chunk; a chunk that is full is
 * followed by a new one. tg_pool_reset keeps the first chunk, so an arena reused for the next
 * request allocates nothing once warm. Not thread-safe: one owner. */
#ifndef TG_POOL_H
#define TG_POOL_H

#include <stddef.h>

typedef struct tg_pool_chunk tg_pool_chunk_t;

typedef struct tg_pool {
    tg_pool_chunk_t *chunks; /* owned; the current one first */
    size_t chunk_size;       /* bytes per chunk; a larger allocation gets a chunk of its own */
} tg_pool_t;

#define TG_POOL_INIT(chunk_bytes)                                                                  \
    {                                                                                              \
        NULL, (chunk_bytes)                                                                        \
    }

void tg_pool_init(tg_pool_t *p, size_t chunk_size);
/* n bytes aligned for any object, valid until tg_pool_reset or tg_pool_dispose; NULL when out of
 * memory. Never frees on its own. */
void *tg_pool_alloc(tg_pool_t *p, size_t n);
/* A NUL-terminated copy of n bytes at s. */
char *tg_pool_strndup(tg_pool_t *p, const char *s, size_t n);
/* Frees every allocation but keeps the first chunk for reuse. */
void tg_pool_reset(tg_pool_t *p);
/* Frees everything; the pool may be reused after tg_pool_init. */
void tg_pool_dispose(tg_pool_t *p);

#endif

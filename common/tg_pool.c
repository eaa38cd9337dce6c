/* tg_pool.c: see tg_pool.h. */
#include "tg_pool.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_banned.h"

struct tg_pool_chunk {
    tg_pool_chunk_t *next;
    size_t cap;
    size_t used;
    alignas(max_align_t) char data[];
};

#define ALIGN (alignof(max_align_t))

void tg_pool_init(tg_pool_t *p, size_t chunk_size)
{
    p->chunks = NULL;
    p->chunk_size = chunk_size;
}

void *tg_pool_alloc(tg_pool_t *p, size_t n)
{
    if (n > SIZE_MAX - ALIGN - sizeof(tg_pool_chunk_t))
        return NULL;
    size_t need = (n + ALIGN - 1) & ~(ALIGN - 1);
    tg_pool_chunk_t *c = p->chunks;
    if (c && need <= c->cap - c->used) {
        void *r = c->data + c->used;
        c->used += need;
        return r;
    }
    size_t cap = need > p->chunk_size ? need : p->chunk_size;
    tg_pool_chunk_t *nc = malloc(sizeof(*nc) + cap);
    if (!nc)
        return NULL;
    nc->cap = cap;
    nc->used = need;
    if (c && need > p->chunk_size) {
        /* a large allocation: its own chunk, behind the current one, which keeps its room */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        p->chunks = nc;
    }
    return nc->data;
}

char *tg_pool_strndup(tg_pool_t *p, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = tg_pool_alloc(p, n + 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void tg_pool_reset(tg_pool_t *p)
{
    /* keep one chunk of the usual size for the next use; large ones go */
    tg_pool_chunk_t *keep = NULL;
    tg_pool_chunk_t *c = p->chunks;
    while (c) {
        tg_pool_chunk_t *next = c->next;
        if (!keep && c->cap == p->chunk_size) {
            keep = c;
            keep->used = 0;
            keep->next = NULL;
        } else {
            free(c);
        }
        c = next;
    }
    p->chunks = keep;
}

void tg_pool_dispose(tg_pool_t *p)
{
    tg_pool_chunk_t *c = p->chunks;
    while (c) {
        tg_pool_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    p->chunks = NULL;
}

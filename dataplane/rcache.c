/* rcache.c: see rcache.h. A hash table of entries chained per bucket and one doubly linked list
 * in use order; an entry's cost is its record, its ids and its own size. Loop thread only. */
#include "rcache.h"

#include <stdlib.h>
#include <string.h>

#include "tg_hash.h"

#include "tg_banned.h"

#define NBUCKETS 1024u /* a power of two */

typedef struct node {
    dp_rentry_t e;
    struct node *hnext;       /* bucket chain */
    struct node *prev, *next; /* use order: head is the most recent */
    size_t cost;
} node_t;

struct dp_rcache {
    node_t *buckets[NBUCKETS];
    node_t *head, *tail;
    size_t bytes, max, count;
    int64_t ttl_ms;
};

static uint32_t hash2(const char *a, const char *b)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = a; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

dp_rcache_t *dp_rcache_create(size_t max_bytes, int64_t ttl_ms)
{
    dp_rcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->max = max_bytes;
    c->ttl_ms = ttl_ms;
    return c;
}

static void node_free(node_t *n)
{
    for (size_t i = 0; i < n->e.nitems; i++)
        free(n->e.items[i]);
    free(n->e.items);
    free(n->e.data);
    free(n);
}

static void unlink_node(dp_rcache_t *c, node_t *n)
{
    node_t **pp = &c->buckets[hash2(n->e.tenant, n->e.id) & (NBUCKETS - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = n->hnext;
    if (n->prev)
        n->prev->next = n->next;
    else
        c->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        c->tail = n->prev;
    c->bytes -= n->cost;
    c->count--;
}

void dp_rcache_destroy(dp_rcache_t *c)
{
    if (!c)
        return;
    for (node_t *n = c->head; n;) {
        node_t *next = n->next;
        node_free(n);
        n = next;
    }
    free(c);
}

static node_t *find(dp_rcache_t *c, const char *tenant, const char *id)
{
    node_t *n = c->buckets[hash2(tenant, id) & (NBUCKETS - 1)];
    while (n && (strcmp(n->e.tenant, tenant) != 0 || strcmp(n->e.id, id) != 0))
        n = n->hnext;
    return n;
}

static void to_front(dp_rcache_t *c, node_t *n)
{
    if (c->head == n)
        return;
    n->prev->next = n->next; /* n is not the head, so it has a prev */
    if (n->next)
        n->next->prev = n->prev;
    else
        c->tail = n->prev;
    n->prev = NULL;
    n->next = c->head;
    c->head->prev = n;
    c->head = n;
}

static bool expired(const dp_rcache_t *c, const node_t *n, int64_t now_ms)
{
    return c->ttl_ms > 0 && now_ms - n->e.stored_ms > c->ttl_ms;
}

int dp_rcache_put(dp_rcache_t *c, const char *tenant, const char *id, const char *data, size_t len,
                  const char *const *items, size_t nitems, bool acked, int64_t now_ms)
{
    size_t tl = strlen(tenant), il = strlen(id);
    if (tl >= sizeof(((dp_rentry_t *)0)->tenant) || il >= sizeof(((dp_rentry_t *)0)->id))
        return TG_EINVAL;
    size_t cost = sizeof(node_t) + len + nitems * sizeof(char *);
    for (size_t i = 0; i < nitems; i++)
        cost += strlen(items[i]) + 1;
    node_t *old = find(c, tenant, id);
    if (old) {
        unlink_node(c, old);
        node_free(old);
    }
    if (cost > c->max)
        return TG_ETOOBIG;
    node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return TG_ENOMEM;
    n->e.data = malloc(len ? len : 1);
    n->e.items = calloc(nitems ? nitems : 1, sizeof(char *));
    if (!n->e.data || !n->e.items) {
        node_free(n);
        return TG_ENOMEM;
    }
    memcpy(n->e.data, data, len);
    n->e.len = len;
    for (size_t i = 0; i < nitems; i++) {
        n->e.items[i] = strdup(items[i]);
        if (!n->e.items[i]) {
            n->e.nitems = i;
            node_free(n);
            return TG_ENOMEM;
        }
    }
    n->e.nitems = nitems;
    memcpy(n->e.tenant, tenant, tl + 1);
    memcpy(n->e.id, id, il + 1);
    n->e.stored_ms = now_ms;
    n->e.acked = acked;
    n->cost = cost;
    while (c->tail && c->bytes + cost > c->max) {
        node_t *v = c->tail;
        unlink_node(c, v);
        node_free(v);
    }
    uint32_t b = hash2(tenant, id) & (NBUCKETS - 1);
    n->hnext = c->buckets[b];
    c->buckets[b] = n;
    n->next = c->head;
    if (c->head)
        c->head->prev = n;
    c->head = n;
    if (!c->tail)
        c->tail = n;
    c->bytes += cost;
    c->count++;
    return 0;
}

const dp_rentry_t *dp_rcache_get(dp_rcache_t *c, const char *tenant, const char *id, int64_t now_ms)
{
    node_t *n = find(c, tenant, id);
    if (!n)
        return NULL;
    if (expired(c, n, now_ms)) {
        unlink_node(c, n);
        node_free(n);
        return NULL;
    }
    to_front(c, n);
    return &n->e;
}

const dp_rentry_t *dp_rcache_find_item(dp_rcache_t *c, const char *tenant, const char *item_id,
                                       int64_t now_ms)
{
    for (node_t *n = c->head; n; n = n->next) {
        if (strcmp(n->e.tenant, tenant) != 0 || expired(c, n, now_ms))
            continue;
        for (size_t i = 0; i < n->e.nitems; i++) {
            if (strcmp(n->e.items[i], item_id) == 0) {
                to_front(c, n);
                return &n->e;
            }
        }
    }
    return NULL;
}

void dp_rcache_set_acked(dp_rcache_t *c, const char *tenant, const char *id)
{
    node_t *n = find(c, tenant, id);
    if (n)
        n->e.acked = true;
}

bool dp_rcache_del(dp_rcache_t *c, const char *tenant, const char *id)
{
    node_t *n = find(c, tenant, id);
    if (!n)
        return false;
    unlink_node(c, n);
    node_free(n);
    return true;
}

size_t dp_rcache_bytes(const dp_rcache_t *c)
{
    return c->bytes;
}

size_t dp_rcache_count(const dp_rcache_t *c)
{
    return c->count;
}

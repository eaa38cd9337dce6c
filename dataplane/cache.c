/* cache.c: a hash table of entries threaded on an LRU list; sizes count the bytes each entry
 * holds plus its bookkeeping. Loop thread only. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "tg_buf.h"
#include "tg_err.h"

#include "tg_banned.h"

#define NBUCKETS 4096
#define ENTRY_OVERHEAD 256

struct dp_cache {
    size_t max_bytes;
    size_t bytes;
    size_t entries;
    dp_cache_entry_t *head, *tail; /* most and least recently used */
    dp_cache_entry_t *buckets[NBUCKETS];
};

dp_cache_t *dp_cache_create(size_t max_bytes)
{
    dp_cache_t *c = calloc(1, sizeof(*c));
    if (c)
        c->max_bytes = max_bytes;
    return c;
}

static size_t entry_size(const dp_cache_entry_t *e)
{
    return e->len + strlen(e->provider) + strlen(e->model) + ENTRY_OVERHEAD;
}

static void entry_free(dp_cache_entry_t *e)
{
    free(e->body);
    free(e->provider);
    free(e->model);
    free(e);
}

void dp_cache_destroy(dp_cache_t *c)
{
    if (!c)
        return;
    dp_cache_entry_t *e = c->head;
    while (e) {
        dp_cache_entry_t *n = e->next;
        entry_free(e);
        e = n;
    }
    free(c);
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

int dp_cache_key(const char *tenant, int endpoint, const char *alias, const json_t *body,
                 uint8_t key[TG_SHA256_LEN])
{
    tg_buf_t b = TG_BUF_INIT(64u << 20);
    int rc = tg_buf_appendf(&b, "%s%c%d%c%s%c", tenant, '\0', endpoint, '\0', alias, '\0');
    if (rc == 0 &&
        json_dump_callback(body, dump_cb, &b, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) != 0)
        rc = TG_ENOMEM;
    if (rc == 0)
        tg_sha256(b.base, b.len, key);
    tg_buf_dispose(&b);
    return rc;
}

static size_t bucket_of(const uint8_t key[TG_SHA256_LEN])
{
    size_t h;
    memcpy(&h, key, sizeof(h)); /* a SHA-256 is uniform already */
    return h % NBUCKETS;
}

static void lru_unlink(dp_cache_t *c, dp_cache_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(dp_cache_t *c, dp_cache_entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void remove_entry(dp_cache_t *c, dp_cache_entry_t *e)
{
    dp_cache_entry_t **p = &c->buckets[bucket_of(e->key)];
    while (*p && *p != e)
        p = &(*p)->chain;
    if (*p)
        *p = e->chain;
    lru_unlink(c, e);
    c->bytes -= entry_size(e);
    c->entries--;
    entry_free(e);
}

static dp_cache_entry_t *find(dp_cache_t *c, const uint8_t key[TG_SHA256_LEN])
{
    for (dp_cache_entry_t *e = c->buckets[bucket_of(key)]; e; e = e->chain)
        if (memcmp(e->key, key, TG_SHA256_LEN) == 0)
            return e;
    return NULL;
}

const dp_cache_entry_t *dp_cache_get(dp_cache_t *c, const uint8_t key[TG_SHA256_LEN],
                                     int64_t now_ms, int64_t max_age_ms)
{
    dp_cache_entry_t *e = find(c, key);
    if (!e)
        return NULL;
    if (now_ms >= e->expires_ms) {
        remove_entry(c, e);
        return NULL;
    }
    if (max_age_ms >= 0 && now_ms - e->stored_ms > max_age_ms)
        return NULL;
    lru_unlink(c, e);
    lru_push_front(c, e);
    return e;
}

int dp_cache_put(dp_cache_t *c, const uint8_t key[TG_SHA256_LEN], const char *body, size_t len,
                 bool stream, const char *provider, const char *model, const dp_usage_t *u,
                 int64_t now_ms, int64_t ttl_ms)
{
    size_t need = len + strlen(provider) + strlen(model) + ENTRY_OVERHEAD;
    if (ttl_ms <= 0 || need > c->max_bytes / 8)
        return TG_ETOOBIG;
    dp_cache_entry_t *old = find(c, key);
    if (old)
        remove_entry(c, old);
    dp_cache_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return TG_ENOMEM;
    e->body = malloc(len ? len : 1);
    e->provider = strdup(provider);
    e->model = strdup(model);
    if (!e->body || !e->provider || !e->model) {
        entry_free(e);
        return TG_ENOMEM;
    }
    memcpy(e->body, body, len);
    memcpy(e->key, key, TG_SHA256_LEN);
    e->len = len;
    e->stream = stream;
    e->usage = *u;
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + ttl_ms;
    while (c->tail && c->bytes + need > c->max_bytes)
        remove_entry(c, c->tail);
    size_t b = bucket_of(key);
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->bytes += need;
    c->entries++;
    return 0;
}

size_t dp_cache_bytes(const dp_cache_t *c)
{
    return c->bytes;
}

size_t dp_cache_entries(const dp_cache_t *c)
{
    return c->entries;
}

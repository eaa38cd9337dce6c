/* rstore.c: see rstore.h. The loops hand operations to the store thread through a mutex-guarded
 * list (a pointer swap) and curl_multi_wakeup; the thread runs every transfer to the control
 * plane on one curl multi handle (fetches, deletes, hand-overs and spool resends overlap) and
 * hands each finished operation back to its worker's list, announced with uv_async_send. The
 * spool is the thread's alone: a record's file is written before its put completes and removed
 * once the control plane acknowledged it; at start, what an earlier run left is resent. Without
 * a control plane the thread answers every operation from its own store (rs.shared). */
#include "rstore.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rrecord.h"
#include "sync.h"
#include "tg_log.h"
#include "tg_rand.h"
#include "tg_snap.h"
#include "tg_time.h"

#include "tg_banned.h"

#define PUT_CONNECT_MS 500L    /* a hand-over waits at most this to connect... */
#define PUT_TIMEOUT_MS 2000L   /* ...and this in all, before the record goes to the spool */
#define FETCH_CONNECT_MS 1000L /* a fetch or delete: a control plane away is known soon... */
#define FETCH_TIMEOUT_MS 5000L /* ...and one that answers has this long */
#define SPOOL_BATCH 100        /* records per resend */
#define SPOOL_BATCH_BYTES (16u << 20)
#define RECORD_MAX (64u << 20)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STOP_BOUND_MS 2500 /* what stop waits for hand-overs in flight */
/* without a control plane, a record is kept at most its default retention */
#define SHARED_TTL_MS (30LL * 86400 * 1000)

enum { OP_PUT = 1, OP_FETCH, OP_DELETE, OP_EVICT };

struct dp_rstore_op {
    struct dp_rstore_op *next;
    int kind;
    int worker;
    bool by_item;
    char tenant[37];
    char id[129];
    char *rec; /* a put's record, or a fetch's answer (malloc'd) */
    size_t len;
    int result;
    bool spool_had;  /* a delete removed the record from the spool */
    dp_rstore_cb cb; /* NULL once cancelled: loop thread only */
    void *ud;
};

typedef struct rs_worker {
    pthread_mutex_t mu;
    dp_rstore_op_t *head, *tail; /* finished, for the loop */
    bool open;                   /* the async handle may be sent to */
    uv_async_t async;
    dp_rcache_t *cache; /* loop thread only */
    uv_loop_t *loop;
    atomic_uint_fast64_t hits, misses; /* written by the loop only, read by a scrape */
} rs_worker_t;

/* One transfer to the control plane. */
typedef struct xfer {
    struct xfer *next;
    int kind; /* OP_PUT (a batch of puts), OP_FETCH, OP_DELETE, or 0: a spool resend */
    CURL *e;
    struct curl_slist *h;
    tg_buf_t body, answer;
    char url[4400];
    dp_rstore_op_t *ops; /* the operations it serves (a list) */
    char (*files)[200];  /* a resend: its spool files */
    size_t nfiles;
} xfer_t;

static struct {
    bool started;
    bool remote;
    char base[4096]; /* control URL */
    char dir[4096];  /* the spool */
    size_t cache_bytes;
    rs_worker_t *w;
    int nw;
    pthread_t thread;
    pthread_mutex_t mu;
    dp_rstore_op_t *in_head, *in_tail; /* under mu */
    bool stop;                         /* under mu */
    CURLM *multi;
    /* store thread only */
    xfer_t *running;
    dp_rstore_op_t *deferred; /* deletes waiting for a resend that carries their record */
    bool spool_pending;       /* files may be in the spool */
    bool cp_down;             /* the last try failed: puts go to the spool at once */
    bool resend_one;          /* a batch was too large for the control plane: one at a time */
    uint64_t next_resend_us;
    long backoff_ms;
    tg_rand_t rnd;
    dp_rcache_t *shared; /* without a control plane: the process's store (store thread only) */
    /* for /metrics */
    atomic_uint_fast64_t n_stored, n_spooled, n_ship_failures, n_dropped, n_spool_failures,
        n_fetches, n_fetch_failures;
    atomic_int_fast64_t spool_depth;
} rs = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define COUNT(c, n) atomic_fetch_add_explicit(&rs.c, (n), memory_order_relaxed)

/* ---- ids and records ---- */

int dp_rstore_record(tg_buf_t *out, const char *id, const char *tenant, const char *key,
                     int64_t created_at, const char *response, size_t rlen, const char *items,
                     size_t ilen)
{
    int rc = tg_buf_append(out, "{\"id\":", 6);
    rc = rc ? rc : tg_buf_append_json_str(out, id, strlen(id));
    rc = rc ? rc : tg_buf_append(out, ",\"tenant\":", 10);
    rc = rc ? rc : tg_buf_append_json_str(out, tenant, strlen(tenant));
    rc = rc ? rc : tg_buf_append(out, ",\"key\":", 7);
    if (key)
        rc = rc ? rc : tg_buf_append_json_str(out, key, strlen(key));
    else
        rc = rc ? rc : tg_buf_append(out, "null", 4);
    rc = rc ? rc : tg_buf_append(out, ",\"created_at\":", 14);
    rc = rc ? rc : tg_buf_append_i64(out, created_at);
    rc = rc ? rc : tg_buf_append(out, ",\"response\":", 12);
    rc = rc ? rc : tg_buf_append(out, response, rlen);
    rc = rc ? rc : tg_buf_append(out, ",\"input_items\":", 15);
    rc = rc ? rc : tg_buf_append(out, items, ilen);
    rc = rc ? rc : tg_buf_append(out, "}", 1);
    return rc;
}

/* Keeps a record in the worker's cache under its own id (a fetch by item names an item). */
static void cache_record(rs_worker_t *rw, const char *tenant, const char *id, const char *rec,
                         size_t len, bool acked, uv_loop_t *loop)
{
    char **items, own[129];
    snprintf(own, sizeof(own), "%s", id);
    size_t n = dp_rrecord_item_ids(rec, len, &items, own);
    int rc = dp_rcache_put(rw->cache, tenant, own, rec, len, (const char *const *)items, n, acked,
                           (int64_t)uv_now(loop));
    if (rc != 0 && rc != TG_ETOOBIG)
        tg_log(TG_LOG_WARN, "dp_rstore", "cache_put_failed", "reason=\"%s\"", tg_strerror(rc));
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* ---- the worker's side ---- */

static void op_free(dp_rstore_op_t *op)
{
    if (op) {
        free(op->rec);
        free(op);
    }
}

/* Store thread (or the loop itself without a control plane): hands a finished op back. */
static void deliver(dp_rstore_op_t *op)
{
    rs_worker_t *rw = &rs.w[op->worker];
    op->next = NULL;
    pthread_mutex_lock(&rw->mu);
    if (rw->tail)
        rw->tail->next = op;
    else
        rw->head = op;
    rw->tail = op;
    if (rw->open)
        uv_async_send(&rw->async);
    pthread_mutex_unlock(&rw->mu);
}

static void on_results(uv_async_t *a)
{
    rs_worker_t *rw = a->data;
    pthread_mutex_lock(&rw->mu);
    dp_rstore_op_t *list = rw->head;
    rw->head = rw->tail = NULL;
    pthread_mutex_unlock(&rw->mu);
    while (list) {
        dp_rstore_op_t *op = list;
        list = op->next;
        if (op->kind == OP_PUT && op->result == DP_RS_OK)
            dp_rcache_set_acked(rw->cache, op->tenant, op->id);
        else if (op->kind == OP_FETCH && op->result == DP_RS_OK)
            cache_record(rw, op->tenant, op->id, op->rec, op->len, true, rw->loop);
        else if (op->kind == OP_FETCH && op->result == DP_RS_NOT_FOUND && !op->by_item)
            (void)dp_rcache_del(rw->cache, op->tenant, op->id); /* deleted (or expired) */
        else if (op->kind == OP_DELETE || op->kind == OP_EVICT)
            (void)dp_rcache_del(rw->cache, op->tenant, op->id);
        if (op->cb)
            op->cb(op->ud, op->result, op->kind == OP_FETCH ? op->rec : NULL,
                   op->kind == OP_FETCH ? op->len : 0);
        op_free(op);
    }
}

int dp_rstore_worker_init(dp_worker_t *w)
{
    if (!rs.started || w->id >= rs.nw)
        return TG_EINVAL;
    rs_worker_t *rw = &rs.w[w->id];
    rw->loop = &w->loop;
    if (uv_async_init(&w->loop, &rw->async, on_results) != 0)
        return TG_EIO;
    rw->async.data = rw;
    pthread_mutex_lock(&rw->mu);
    rw->open = true;
    pthread_mutex_unlock(&rw->mu);
    return 0;
}

void dp_rstore_worker_close(dp_worker_t *w)
{
    if (!rs.started || w->id >= rs.nw)
        return;
    rs_worker_t *rw = &rs.w[w->id];
    pthread_mutex_lock(&rw->mu);
    bool was = rw->open;
    rw->open = false;
    pthread_mutex_unlock(&rw->mu);
    if (was)
        uv_close((uv_handle_t *)&rw->async, NULL);
}

bool dp_rstore_remote(void)
{
    return rs.remote;
}

const dp_rentry_t *dp_rstore_cached(dp_worker_t *w, const char *tenant, const char *id)
{
    if (!rs.started || w->id >= rs.nw)
        return NULL;
    return dp_rcache_get(rs.w[w->id].cache, tenant, id, (int64_t)uv_now(&w->loop));
}

const dp_rentry_t *dp_rstore_cached_item(dp_worker_t *w, const char *tenant, const char *item)
{
    if (!rs.started || w->id >= rs.nw)
        return NULL;
    return dp_rcache_find_item(rs.w[w->id].cache, tenant, item, (int64_t)uv_now(&w->loop));
}

static dp_rstore_op_t *op_new(dp_worker_t *w, int kind, const char *tenant, const char *id,
                              dp_rstore_cb cb, void *ud)
{
    if (!rs.started || w->id >= rs.nw || strlen(tenant) >= 37 || strlen(id) >= 129)
        return NULL;
    dp_rstore_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->kind = kind;
    op->worker = w->id;
    memcpy(op->tenant, tenant, strlen(tenant) + 1);
    memcpy(op->id, id, strlen(id) + 1);
    op->cb = cb;
    op->ud = ud;
    return op;
}

static void submit(dp_rstore_op_t *op)
{
    op->next = NULL;
    pthread_mutex_lock(&rs.mu);
    if (rs.in_tail)
        rs.in_tail->next = op;
    else
        rs.in_head = op;
    rs.in_tail = op;
    pthread_mutex_unlock(&rs.mu);
    curl_multi_wakeup(rs.multi);
}

dp_rstore_op_t *dp_rstore_fetch(dp_worker_t *w, const char *tenant, const char *id, bool by_item,
                                dp_rstore_cb cb, void *ud)
{
    dp_rstore_op_t *op = op_new(w, OP_FETCH, tenant, id, cb, ud);
    if (!op)
        return NULL;
    op->by_item = by_item;
    submit(op);
    return op;
}

dp_rstore_op_t *dp_rstore_delete(dp_worker_t *w, const char *tenant, const char *id,
                                 dp_rstore_cb cb, void *ud)
{
    dp_rstore_op_t *op = op_new(w, OP_DELETE, tenant, id, cb, ud);
    if (!op)
        return NULL;
    if (!rs.remote) /* the process's store may have let it go while this cache still holds it */
        op->spool_had = dp_rcache_del(rs.w[w->id].cache, tenant, id);
    submit(op);
    return op;
}

dp_rstore_op_t *dp_rstore_put(dp_worker_t *w, const char *tenant, const char *id, const char *rec,
                              size_t len, dp_rstore_cb cb, void *ud)
{
    dp_rstore_op_t *op = op_new(w, OP_PUT, tenant, id, cb, ud);
    if (!op)
        return NULL;
    op->rec = malloc(len ? len : 1);
    if (!op->rec) {
        free(op);
        return NULL;
    }
    memcpy(op->rec, rec, len);
    op->len = len;
    op->result = DP_RS_OK;
    cache_record(&rs.w[w->id], tenant, id, rec, len, !rs.remote, &w->loop);
    submit(op);
    return op;
}

void dp_rstore_cancel(dp_rstore_op_t *op)
{
    if (op)
        op->cb = NULL;
}

void dp_rstore_set_cb(dp_rstore_op_t *op, dp_rstore_cb cb, void *ud)
{
    op->cb = cb;
    op->ud = ud;
}

/* ---- the spool (store thread) ---- */

static void spool_path(char *out, size_t n, const char *tenant, const char *id)
{
    snprintf(out, n, "%s/%s.%s.json", rs.dir, tenant, id);
}

static bool spool_name(const char *name);

/* tmp + fsync + rename + the directory's fsync: once a put completes as spooled, a crash or a
 * power cut keeps the record for the next start. */
static int spool_write(const dp_rstore_op_t *op)
{
    char p[4400], tmp[4410];
    spool_path(p, sizeof(p), op->tenant, op->id);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    bool existed = access(p, F_OK) == 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < op->len;) {
        ssize_t k = write(fd, op->rec + off, op->len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)k;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, p) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    int dfd = open(rs.dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (!existed)
        COUNT(spool_depth, 1);
    return 0;
}

/* Removes a spool file; whether it was there. */
static bool spool_unlink(const char *path)
{
    if (unlink(path) != 0)
        return false;
    COUNT(spool_depth, -1);
    return true;
}

/* What an earlier run left in the spool, for the gauge. */
static void spool_count(void)
{
    DIR *d = opendir(rs.dir);
    if (!d)
        return;
    int64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += spool_name(de->d_name);
    closedir(d);
    atomic_store(&rs.spool_depth, n);
}

static bool spool_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && n < 200 && strcmp(name + n - 5, ".json") == 0;
}

/* Reads up to SPOOL_BATCH files into one NDJSON body. */
static int spool_batch(xfer_t *x)
{
    DIR *d = opendir(rs.dir);
    if (!d)
        return -errno;
    x->files = calloc(SPOOL_BATCH, sizeof(*x->files));
    if (!x->files) {
        closedir(d);
        return TG_ENOMEM;
    }
    struct dirent *de;
    size_t max = rs.resend_one ? 1 : SPOOL_BATCH;
    while (x->nfiles < max && x->body.len < SPOOL_BATCH_BYTES && (de = readdir(d)) != NULL) {
        if (!spool_name(de->d_name))
            continue;
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", rs.dir, de->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 || (size_t)st.st_size > RECORD_MAX ||
            tg_buf_reserve(&x->body, (size_t)st.st_size + 1) != 0) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t from = x->body.len, want = (size_t)st.st_size;
        ssize_t k = pread(fd, x->body.base + from, want, 0);
        close(fd);
        if (k != (ssize_t)want || memchr(x->body.base + from, '\n', want))
            continue; /* a record is one line */
        x->body.len += want;
        x->body.base[x->body.len++] = '\n';
        size_t nl = strlen(de->d_name); /* < 200: spool_name */
        memcpy(x->files[x->nfiles++], de->d_name, nl + 1);
    }
    closedir(d);
    return 0;
}

/* A fetch's record from the spool, where a put the control plane did not take waits; every
 * worker of this data plane finds it there, not only the one that made it. */
static bool spool_read(dp_rstore_op_t *op)
{
    char p[4400];
    spool_path(p, sizeof(p), op->tenant, op->id);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return false;
    bool ok = false;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (size_t)st.st_size <= RECORD_MAX) {
        op->rec = malloc((size_t)st.st_size);
        if (op->rec && pread(fd, op->rec, (size_t)st.st_size, 0) == st.st_size) {
            op->len = (size_t)st.st_size;
            ok = true;
        } else {
            free(op->rec);
            op->rec = NULL;
        }
    }
    close(fd);
    return ok;
}

/* Whether a resend in flight carries (tenant, id). */
static bool resend_carries(const char *tenant, const char *id)
{
    char name[200];
    snprintf(name, sizeof(name), "%s.%s.json", tenant, id);
    for (xfer_t *x = rs.running; x; x = x->next)
        for (size_t i = 0; x->kind == 0 && i < x->nfiles; i++)
            if (strcmp(x->files[i], name) == 0)
                return true;
    return false;
}

/* ---- transfers (store thread) ---- */

static void xfer_free(xfer_t *x)
{
    if (!x)
        return;
    if (x->e) {
        curl_multi_remove_handle(rs.multi, x->e);
        curl_easy_cleanup(x->e);
    }
    curl_slist_free_all(x->h);
    tg_buf_dispose(&x->body);
    tg_buf_dispose(&x->answer);
    free(x->files);
    free(x);
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return 0;
}

static xfer_t *xfer_new(int kind)
{
    xfer_t *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->kind = kind;
    tg_buf_init(&x->body, (size_t)SPOOL_BATCH_BYTES + RECORD_MAX + 1);
    tg_buf_init(&x->answer, RECORD_MAX + 4096);
    x->e = curl_easy_init();
    if (!x->e) {
        xfer_free(x);
        return NULL;
    }
    return x;
}

/* Sets the transfer up and adds it to the multi; on failure the caller ends its ops. */
static int xfer_start(xfer_t *x, const char *method, long connect_ms, long timeout_ms)
{
    static const char *const ndjson[] = {"Content-Type: application/x-ndjson", "Expect:", NULL};
    bool post = strcmp(method, "POST") == 0;
    x->h = dp_control_easy(x->e, x->url, post ? ndjson : NULL, connect_ms, timeout_ms, &x->answer,
                           on_progress, NULL);
    if (!x->h)
        return TG_ENOMEM;
    if (post) {
        curl_easy_setopt(x->e, CURLOPT_POST, 1L);
        curl_easy_setopt(x->e, CURLOPT_POSTFIELDS, x->body.len ? x->body.base : "");
        curl_easy_setopt(x->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(x->e, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(rs.multi, x->e) != CURLM_OK)
        return TG_EIO;
    x->next = rs.running;
    rs.running = x;
    return 0;
}

static void end_ops(dp_rstore_op_t *list, int result)
{
    while (list) {
        dp_rstore_op_t *op = list;
        list = op->next;
        if (op->result != DP_RS_OK || op->kind != OP_DELETE || !op->spool_had)
            op->result = result;
        if (op->kind == OP_FETCH) {
            COUNT(n_fetches, 1);
            if (op->result == DP_RS_UNAVAILABLE)
                COUNT(n_fetch_failures, 1);
        }
        deliver(op);
    }
}

/* Every worker but the one that deleted (tenant, id) drops it from its cache. */
static void evict_others(const dp_rstore_op_t *del)
{
    for (int i = 0; i < rs.nw; i++) {
        if (i == del->worker)
            continue;
        dp_rstore_op_t *ev = calloc(1, sizeof(*ev));
        if (!ev)
            continue;
        ev->kind = OP_EVICT;
        ev->worker = i;
        memcpy(ev->tenant, del->tenant, sizeof(ev->tenant));
        memcpy(ev->id, del->id, sizeof(ev->id));
        deliver(ev);
    }
}

/* The control plane did not take a batch of puts: each record goes to the spool. */
static void spool_puts(dp_rstore_op_t *list)
{
    while (list) {
        dp_rstore_op_t *op = list;
        list = op->next;
        int rc = spool_write(op);
        COUNT(n_spooled, rc == 0);
        COUNT(n_spool_failures, rc != 0);
        if (rc != 0)
            tg_log(TG_LOG_ERROR, "dp_rstore", "spool_write_failed",
                   "dir=\"%s\" id=%s reason=\"%s\" effect=\"the response is in this data "
                   "plane's cache only\"",
                   rs.dir, op->id, strerror(-rc));
        else
            rs.spool_pending = true;
        op->result = rc == 0 ? DP_RS_SPOOLED : DP_RS_UNAVAILABLE;
        deliver(op);
    }
}

static void mark_down(const char *why, long status)
{
    if (!rs.cp_down)
        tg_log(TG_LOG_WARN, "dp_rstore", "control_plane_unreachable",
               "status=%ld reason=\"%s\" effect=\"stored responses go to the spool, resent with "
               "backoff\"",
               status, why);
    rs.cp_down = true;
    uint64_t wait = (uint64_t)(tg_rand_next(&rs.rnd) % (uint64_t)rs.backoff_ms) + 1;
    rs.next_resend_us = tg_mono_us() + wait * 1000;
    rs.backoff_ms = rs.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rs.backoff_ms * 2;
}

static void start_puts(dp_rstore_op_t *list)
{
    if (!list)
        return;
    if (rs.cp_down) {
        spool_puts(list); /* not another 2 s per answer while it is away */
        return;
    }
    xfer_t *x = xfer_new(OP_PUT);
    int rc = x ? 0 : TG_ENOMEM;
    for (dp_rstore_op_t *op = list; rc == 0 && op; op = op->next) {
        rc = tg_buf_append(&x->body, op->rec, op->len);
        rc = rc ? rc : tg_buf_append(&x->body, "\n", 1);
    }
    if (rc == 0) {
        snprintf(x->url, sizeof(x->url), "%s/dp/v1/responses", rs.base);
        x->ops = list;
        rc = xfer_start(x, "POST", PUT_CONNECT_MS, PUT_TIMEOUT_MS);
    }
    if (rc != 0) {
        if (x) {
            x->ops = NULL;
            if (rs.running == x)
                rs.running = x->next;
            xfer_free(x);
        }
        spool_puts(list);
    }
}

static void url_one(xfer_t *x, const dp_rstore_op_t *op)
{
    snprintf(x->url, sizeof(x->url), "%s/dp/v1/%s/%s?tenant=%s", rs.base,
             op->kind == OP_FETCH && op->by_item ? "response-items" : "responses", op->id,
             op->tenant);
}

static void start_one(dp_rstore_op_t *op)
{
    op->next = NULL;
    if (op->kind == OP_DELETE) {
        if (resend_carries(op->tenant, op->id)) {
            op->next = rs.deferred; /* after the resend: else it could land after the delete */
            rs.deferred = op;
            return;
        }
        char p[4400];
        spool_path(p, sizeof(p), op->tenant, op->id);
        op->spool_had = spool_unlink(p);
        if (op->spool_had)
            op->result = DP_RS_OK;
    }
    xfer_t *x = xfer_new(op->kind);
    int rc = x ? 0 : TG_ENOMEM;
    if (rc == 0) {
        url_one(x, op);
        x->ops = op;
        rc = xfer_start(x, op->kind == OP_DELETE ? "DELETE" : "GET", FETCH_CONNECT_MS,
                        FETCH_TIMEOUT_MS);
    }
    if (rc != 0) {
        if (x) {
            x->ops = NULL;
            if (rs.running == x)
                rs.running = x->next;
            xfer_free(x);
        }
        end_ops(op, DP_RS_UNAVAILABLE);
    }
}

static void start_resend(void)
{
    for (xfer_t *x = rs.running; x; x = x->next)
        if (x->kind == 0)
            return; /* one at a time */
    xfer_t *x = xfer_new(0);
    if (!x)
        return;
    int rc = spool_batch(x);
    if (rc != 0 || x->nfiles == 0) {
        if (rc != 0)
            tg_log(TG_LOG_ERROR, "dp_rstore", "spool_read_failed", "dir=\"%s\" reason=\"%s\"",
                   rs.dir, strerror(-rc));
        else
            rs.spool_pending = rs.resend_one = false; /* empty: only spool_puts fills it */
        if (x->nfiles == 0 && rc == 0 && rs.cp_down)
            rs.next_resend_us = 0;
        xfer_free(x);
        return;
    }
    snprintf(x->url, sizeof(x->url), "%s/dp/v1/responses", rs.base);
    if (xfer_start(x, "POST", 3000L, 15000L) != 0) {
        if (rs.running == x)
            rs.running = x->next;
        xfer_free(x);
    }
}

static void finish(xfer_t *x, CURLcode cc)
{
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
    const char *why = cc == CURLE_OK ? "answered with an error" : curl_easy_strerror(cc);
    dp_rstore_op_t *ops = x->ops;
    x->ops = NULL;
    if (x->kind == OP_PUT) {
        if (status == 200) {
            rs.cp_down = false;
            rs.backoff_ms = BACKOFF_MIN_MS;
            for (dp_rstore_op_t *op = ops; op; op = op->next)
                COUNT(n_stored, 1);
            end_ops(ops, DP_RS_OK);
        } else {
            COUNT(n_ship_failures, 1);
            if (status != 413) /* too large is no outage: the resend finds and drops it */
                mark_down(why, status);
            else
                rs.resend_one = true;
            spool_puts(ops);
        }
    } else if (x->kind == OP_FETCH) {
        if (status != 200 && !ops->by_item && spool_read(ops)) {
            /* not with the control plane yet (or it cannot be asked): the spool has it */
            end_ops(ops, DP_RS_OK);
        } else if (status == 200) {
            size_t len;
            ops->rec = tg_buf_detach(&x->answer, &len);
            ops->len = len;
            end_ops(ops, ops->rec ? DP_RS_OK : DP_RS_UNAVAILABLE);
        } else {
            if (status != 404)
                tg_log(TG_LOG_WARN, "dp_rstore", "fetch_failed", "status=%ld reason=\"%s\"", status,
                       why);
            end_ops(ops, status == 404 ? DP_RS_NOT_FOUND : DP_RS_UNAVAILABLE);
        }
    } else if (x->kind == OP_DELETE) {
        int result = status == 200 ? DP_RS_OK : status == 404 ? DP_RS_NOT_FOUND : DP_RS_UNAVAILABLE;
        if (result == DP_RS_OK || ops->spool_had)
            evict_others(ops); /* every other worker forgets it too */
        end_ops(ops, result);
    } else { /* a resend */
        if (status != 200)
            COUNT(n_ship_failures, 1);
        if (status == 200) {
            COUNT(n_stored, x->nfiles);
            for (size_t i = 0; i < x->nfiles; i++) {
                char p[4400];
                snprintf(p, sizeof(p), "%s/%s", rs.dir, x->files[i]);
                (void)spool_unlink(p);
            }
            tg_log(TG_LOG_INFO, "dp_rstore", "spool_resent", "records=%zu", x->nfiles);
            rs.cp_down = false;
            rs.backoff_ms = BACKOFF_MIN_MS;
            rs.next_resend_us = 0; /* more may wait */
        } else if (status == 413 && x->nfiles == 1) {
            /* larger than the control plane takes: it can never be stored, and must not block
             * what waits behind it */
            char p[4400];
            snprintf(p, sizeof(p), "%s/%s", rs.dir, x->files[0]);
            (void)spool_unlink(p);
            COUNT(n_dropped, 1);
            tg_log(TG_LOG_ERROR, "dp_rstore", "record_dropped",
                   "file=\"%s\" reason=\"the control plane refuses it as too large (413)\"",
                   x->files[0]);
            rs.next_resend_us = 0;
        } else if (status == 413) {
            rs.resend_one = true; /* find the one that is too large */
            rs.next_resend_us = 0;
        } else {
            mark_down(why, status);
        }
        /* the deletes that waited for it go now */
        dp_rstore_op_t *d = rs.deferred;
        rs.deferred = NULL;
        while (d) {
            dp_rstore_op_t *next = d->next;
            start_one(d);
            d = next;
        }
    }
}

/* Without a control plane: an operation answered from the process's store, at once. */
static void local_op(dp_rstore_op_t *op)
{
    int64_t now = (int64_t)(tg_mono_us() / 1000);
    if (op->kind == OP_PUT) {
        char **items;
        size_t n = dp_rrecord_item_ids(op->rec, op->len, &items, NULL);
        int rc = dp_rcache_put(rs.shared, op->tenant, op->id, op->rec, op->len,
                               (const char *const *)items, n, true, now);
        for (size_t i = 0; i < n; i++)
            free(items[i]);
        free(items);
        if (rc != 0)
            tg_log(TG_LOG_WARN, "dp_rstore", "response_not_stored",
                   "id=%s reason=\"%s\" effect=\"only the worker that made it holds it\"", op->id,
                   rc == TG_ETOOBIG ? "larger than the whole store (--responses-cache-bytes "
                                      "times workers)"
                                    : tg_strerror(rc));
        COUNT(n_stored, rc == 0);
        COUNT(n_dropped, rc != 0);
        op->result = rc == 0 ? DP_RS_OK : DP_RS_UNAVAILABLE;
        free(op->rec); /* the worker keeps its own copy */
        op->rec = NULL;
        op->len = 0;
    } else if (op->kind == OP_FETCH) {
        const dp_rentry_t *e = op->by_item ? dp_rcache_find_item(rs.shared, op->tenant, op->id, now)
                                           : dp_rcache_get(rs.shared, op->tenant, op->id, now);
        op->result = DP_RS_NOT_FOUND;
        if (e) {
            op->rec = malloc(e->len ? e->len : 1);
            if (op->rec) {
                memcpy(op->rec, e->data, e->len);
                op->len = e->len;
                op->result = DP_RS_OK;
            } else {
                op->result = DP_RS_UNAVAILABLE;
            }
        }
    } else if (op->kind == OP_DELETE) {
        bool had = dp_rcache_del(rs.shared, op->tenant, op->id) || op->spool_had;
        op->result = had ? DP_RS_OK : DP_RS_NOT_FOUND;
        if (had)
            evict_others(op);
        op->spool_had = false;
    }
    end_ops(op, op->result);
}

static void *rs_main(void *arg)
{
    (void)arg;
    uint64_t stop_deadline = 0;
    if (rs.remote)
        spool_count();
    for (;;) {
        pthread_mutex_lock(&rs.mu);
        dp_rstore_op_t *list = rs.in_head;
        rs.in_head = rs.in_tail = NULL;
        bool stop = rs.stop;
        pthread_mutex_unlock(&rs.mu);
        dp_rstore_op_t *puts = NULL, **pt = &puts;
        while (list) {
            dp_rstore_op_t *op = list;
            list = op->next;
            op->next = NULL;
            if (!rs.remote) {
                local_op(op);
            } else if (op->kind == OP_PUT) {
                *pt = op;
                pt = &op->next;
            } else {
                start_one(op);
            }
        }
        start_puts(puts); /* every put waiting now goes in one POST */
        if (rs.spool_pending && !stop && tg_mono_us() >= rs.next_resend_us)
            start_resend();
        int running = 0;
        curl_multi_perform(rs.multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(rs.multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            xfer_t *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode cc = m->data.result;
            for (xfer_t **pp = &rs.running; *pp; pp = &(*pp)->next) {
                if (*pp == x) {
                    *pp = x->next;
                    break;
                }
            }
            finish(x, cc);
            xfer_free(x);
        }
        if (stop) {
            if (!stop_deadline)
                stop_deadline = tg_mono_us() + STOP_BOUND_MS * 1000ull;
            pthread_mutex_lock(&rs.mu);
            bool idle = !rs.in_head;
            pthread_mutex_unlock(&rs.mu);
            if ((idle && !rs.running) || tg_mono_us() >= stop_deadline)
                break;
        }
        int wait_ms = 1000;
        if (rs.spool_pending && !stop) {
            uint64_t now = tg_mono_us();
            wait_ms = rs.next_resend_us <= now ? 0
                      : rs.next_resend_us - now > 1000000
                          ? 1000
                          : (int)((rs.next_resend_us - now) / 1000) + 1;
        }
        if (stop)
            wait_ms = 20;
        curl_multi_poll(rs.multi, NULL, 0, wait_ms, NULL);
    }
    /* what is still in flight: puts go to the spool (kept for the next start), the rest end */
    while (rs.running) {
        xfer_t *x = rs.running;
        rs.running = x->next;
        dp_rstore_op_t *ops = x->ops;
        x->ops = NULL;
        if (x->kind == OP_PUT)
            spool_puts(ops);
        else
            end_ops(ops, DP_RS_UNAVAILABLE);
        xfer_free(x);
    }
    end_ops(rs.deferred, DP_RS_UNAVAILABLE);
    rs.deferred = NULL;
    return NULL;
}

/* ---- start and stop ---- */

int dp_rstore_start(const dp_opts_t *o, tg_err_t *err)
{
    rs.nw = o->workers;
    rs.w = calloc((size_t)rs.nw, sizeof(*rs.w));
    if (!rs.w) {
        tg_err_set(err, TG_ENOMEM, 500, "out of memory");
        return TG_ENOMEM;
    }
    for (int i = 0; i < rs.nw; i++) {
        pthread_mutex_init(&rs.w[i].mu, NULL);
        rs.w[i].cache =
            dp_rcache_create(o->responses_cache_bytes, (int64_t)o->responses_cache_ttl_s * 1000);
        if (!rs.w[i].cache) {
            tg_err_set(err, TG_ENOMEM, 500, "out of memory");
            return TG_ENOMEM;
        }
    }
    rs.started = true;
    if (!o->control_url) {
        /* the process's store: as much as every worker's cache together */
        rs.shared = dp_rcache_create(o->responses_cache_bytes * (size_t)rs.nw, SHARED_TTL_MS);
        rs.multi = rs.shared ? curl_multi_init() : NULL;
        if (!rs.multi || pthread_create(&rs.thread, NULL, rs_main, NULL) != 0) {
            tg_err_set(err, TG_EIO, 500, "could not start the stored-responses thread");
            return TG_EIO;
        }
        return 0;
    }
    rs.remote = true;
    snprintf(rs.base, sizeof(rs.base), "%s", o->control_url);
    size_t bl = strlen(rs.base);
    while (bl > 0 && rs.base[bl - 1] == '/')
        rs.base[--bl] = '\0';
    snprintf(rs.dir, sizeof(rs.dir), "%s/responses", o->state_dir);
    if (mkdir(rs.dir, 0700) != 0 && errno != EEXIST) {
        tg_err_set(err, TG_EIO, 500, "could not create the responses spool \"%s\": %s", rs.dir,
                   strerror(errno));
        return TG_EIO;
    }
    /* the spool holds prompts and answers in the clear: the data plane's user only */
    struct stat st;
    if (stat(rs.dir, &st) == 0 && (st.st_mode & 077) != 0) {
        if (chmod(rs.dir, 0700) != 0) {
            tg_err_set(err, TG_EIO, 500,
                       "the responses spool \"%s\" is readable by others and could not be made "
                       "private (chmod 0700): %s",
                       rs.dir, strerror(errno));
            return TG_EIO;
        }
        tg_log(TG_LOG_WARN, "dp_rstore", "spool_made_private", "dir=\"%s\" mode_was=%o", rs.dir,
               (unsigned)(st.st_mode & 0777));
    }
    rs.spool_pending = true; /* what an earlier run left is resent at once */
    rs.backoff_ms = BACKOFF_MIN_MS;
    if (tg_rand_seed(&rs.rnd) != 0)
        rs.rnd.s[0] = tg_mono_us() | 1;
    rs.multi = curl_multi_init();
    if (!rs.multi || pthread_create(&rs.thread, NULL, rs_main, NULL) != 0) {
        tg_err_set(err, TG_EIO, 500, "could not start the stored-responses thread");
        return TG_EIO;
    }
    return 0;
}

void dp_rstore_stop(void)
{
    if (!rs.started)
        return;
    if (rs.multi) {
        pthread_mutex_lock(&rs.mu);
        rs.stop = true;
        pthread_mutex_unlock(&rs.mu);
        curl_multi_wakeup(rs.multi);
        pthread_join(rs.thread, NULL);
        /* operations handed over after the thread ended */
        dp_rstore_op_t *list = rs.in_head;
        rs.in_head = rs.in_tail = NULL;
        while (list) {
            dp_rstore_op_t *op = list;
            list = op->next;
            if (op->kind == OP_PUT && rs.remote) {
                op->next = NULL;
                spool_puts(op);
            } else {
                op_free(op);
            }
        }
        curl_multi_cleanup(rs.multi);
        rs.multi = NULL;
    }
    dp_rcache_destroy(rs.shared);
    rs.shared = NULL;
    for (int i = 0; i < rs.nw; i++) {
        dp_rstore_op_t *list = rs.w[i].head;
        while (list) {
            dp_rstore_op_t *next = list->next;
            op_free(list);
            list = next;
        }
        dp_rcache_destroy(rs.w[i].cache);
        pthread_mutex_destroy(&rs.w[i].mu);
    }
    free(rs.w);
    rs.w = NULL;
    rs.started = false;
}

void dp_rstore_note_lookup(dp_worker_t *w, bool hit)
{
    if (!rs.started || w->id >= rs.nw)
        return;
    rs_worker_t *rw = &rs.w[w->id];
    atomic_fetch_add_explicit(hit ? &rw->hits : &rw->misses, 1, memory_order_relaxed);
}

void dp_rstore_stats(dp_rstore_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->started = rs.started;
    out->remote = rs.remote;
    if (!rs.started)
        return;
    out->stored = atomic_load(&rs.n_stored);
    out->spooled = atomic_load(&rs.n_spooled);
    out->spool_depth = atomic_load(&rs.spool_depth);
    out->ship_failures = atomic_load(&rs.n_ship_failures);
    out->dropped = atomic_load(&rs.n_dropped);
    out->spool_failures = atomic_load(&rs.n_spool_failures);
    out->fetches = atomic_load(&rs.n_fetches);
    out->fetch_failures = atomic_load(&rs.n_fetch_failures);
    for (int i = 0; i < rs.nw; i++) {
        out->cache_hits += atomic_load(&rs.w[i].hits);
        out->cache_misses += atomic_load(&rs.w[i].misses);
    }
}

/* ledger.c: see ledger.h. One entry per key ("k:<id>") and per tenant ("t:<id>"), found through
 * a chained hash table under one mutex when a snapshot is bound or an acknowledgement arrives;
 * the hot path reaches an entry through its own thread's map (filled on first sight from that
 * table; entries live as long as the process, so a map never goes stale) and takes only the
 * entry's mutex (key first, then tenant: one order everywhere). The snapshot is only read. */
#include "ledger.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tg_fmt.h"
#include "tg_hash.h"
#include "tg_log.h"
#include "tg_time.h"

#include "tg_banned.h"

#define NBUCKETS 4096u

typedef struct dp_scope {
    struct dp_scope *next;
    pthread_mutex_t mu;
    int64_t unacked;             /* recorded here, not yet acknowledged by the control plane */
    int64_t inflight;            /* worst-case cost of admitted requests still running */
    int64_t spent[TG_NPERIODS];  /* the control plane's figure for the period below */
    int32_t period[TG_NPERIODS]; /* YYYYMMDD of the period spent[] belongs to */
    double req_level, tok_level; /* token buckets; this data plane's share */
    uint64_t refill_us;
    bool buckets_set;
    char id[];
} dp_scope_t;

/* A thread's map from (kind, id) to entry: open addressing, grown at half full. */
typedef struct scope_map {
    struct scope_map *next; /* every thread's map, for dp_ledger_shutdown */
    dp_scope_t **slots;
    size_t cap, n;
} scope_map_t;

static struct {
    pthread_mutex_t mu;
    dp_scope_t *table[NBUCKETS];
    atomic_int live;
    scope_map_t *maps;
} lg = {.mu = PTHREAD_MUTEX_INITIALIZER, .live = 1};

static _Thread_local scope_map_t *tl_map;

static dp_scope_t *scope_get(char kind, const char *id, bool create)
{
    char name[160];
    int n = snprintf(name, sizeof(name), "%c:%s", kind, id);
    if (n < 0 || (size_t)n >= sizeof(name))
        return NULL;
    uint32_t b = tg_fnv1a(name, (size_t)n) % NBUCKETS;
    pthread_mutex_lock(&lg.mu);
    dp_scope_t *s = lg.table[b];
    while (s && strcmp(s->id, name) != 0)
        s = s->next;
    if (!s && create) {
        s = calloc(1, sizeof(*s) + (size_t)n + 1);
        if (s) {
            pthread_mutex_init(&s->mu, NULL);
            memcpy(s->id, name, (size_t)n + 1);
            s->next = lg.table[b];
            lg.table[b] = s;
        }
    }
    pthread_mutex_unlock(&lg.mu);
    return s;
}

/* Takes the control plane's figure for a period, under s->mu. Spend only grows within a period,
 * so the larger figure is the newer one whoever sent it and whatever its clock said: a snapshot
 * read before an acknowledged batch committed can never replace the acknowledgement's figure
 * that includes it (which would leave the batch counted nowhere). A later period replaces. */
static void take_spend_locked(dp_scope_t *s, int p, int64_t spent, int32_t period)
{
    if (period > s->period[p] || (period == s->period[p] && spent > s->spent[p])) {
        s->spent[p] = spent;
        s->period[p] = period;
    }
}

static void take_spend(dp_scope_t *s, int p, int64_t spent, int32_t period)
{
    pthread_mutex_lock(&s->mu);
    take_spend_locked(s, p, spent, period);
    pthread_mutex_unlock(&s->mu);
}

bool dp_ledger_has_budget(const tg_limits_t *l)
{
    for (int p = 0; p < TG_NPERIODS; p++)
        if (l->budget_pusd[p] >= 0)
            return true;
    return false;
}

static void bind_limits(const tg_limits_t *l, char kind, const char *id, int64_t as_of)
{
    if (!l->rpm && !l->tpm && !dp_ledger_has_budget(l))
        return; /* nothing to count: no entry (limited() says so on the hot path) */
    dp_scope_t *s = scope_get(kind, id, true);
    if (!s)
        return; /* out of memory: the limits of this one go unenforced, and say so */
    for (int p = 0; p < TG_NPERIODS; p++)
        if (l->budget_pusd[p] >= 0 && as_of > 0)
            take_spend(s, p, l->spent_pusd[p], l->spent_period[p]);
}

void dp_ledger_bind(const tg_snap_t *snap)
{
    for (size_t i = 0; i < snap->ntenants; i++)
        bind_limits(&snap->tenants[i].lim, 't', snap->tenants[i].id, snap->spend_as_of);
    for (size_t i = 0; i < snap->nkeys; i++)
        bind_limits(&snap->keys[i].lim, 'k', snap->keys[i].id, snap->spend_as_of);
}

/* ---- rate limits ---- */

typedef struct bucket_view {
    double cap_r, cap_t;   /* this data plane's share */
    double rate_r, rate_t; /* per second */
} bucket_view_t;

static void refill(dp_scope_t *s, const tg_limits_t *l, bucket_view_t *v, uint64_t now_us)
{
    int live = atomic_load_explicit(&lg.live, memory_order_relaxed);
    v->cap_r = l->rpm ? fmax(1.0, (double)l->rpm / live) : 0;
    v->cap_t = l->tpm ? fmax(1.0, (double)l->tpm / live) : 0;
    v->rate_r = v->cap_r / 60.0;
    v->rate_t = v->cap_t / 60.0;
    if (!s->buckets_set) {
        s->req_level = v->cap_r;
        s->tok_level = v->cap_t;
        s->buckets_set = true;
    } else {
        /* now was read before the lock: another thread may have refilled at a later instant */
        double dt = now_us > s->refill_us ? (double)(now_us - s->refill_us) / 1e6 : 0;
        s->req_level = fmin(v->cap_r, s->req_level + dt * v->rate_r);
        s->tok_level = fmin(v->cap_t, s->tok_level + dt * v->rate_t);
    }
    if (now_us > s->refill_us)
        s->refill_us = now_us;
}

/* Header text built without the printf family (admission is on every limited request's path):
 * appends that do not fit are dropped whole. */
typedef struct hdr_out {
    char *b;
    size_t len, cap;
} hdr_out_t;

static void hdr_put(hdr_out_t *o, const char *p, size_t n)
{
    if (n <= o->cap - o->len) {
        memcpy(o->b + o->len, p, n);
        o->len += n;
    }
}

static void hdr_puts(hdr_out_t *o, const char *s)
{
    hdr_put(o, s, strlen(s));
}

static void hdr_u64(hdr_out_t *o, uint64_t v)
{
    char num[TG_FMT_U64_MAX];
    hdr_put(o, num, tg_fmt_u64(num, v));
}

/* Seconds as OpenAI writes a reset: "250ms", "12s", "1m5s". */
static void put_reset(hdr_out_t *o, double secs)
{
    if (!(secs > 0)) /* negative, or NaN */
        secs = 0;
    if (secs < 1) {
        hdr_u64(o, (uint64_t)ceil(secs * 1000));
        hdr_put(o, "ms", 2);
    } else if (secs < 60) {
        hdr_u64(o, (uint64_t)ceil(secs));
        hdr_put(o, "s", 1);
    } else {
        hdr_u64(o, (uint64_t)(secs / 60));
        hdr_put(o, "m", 1);
        hdr_u64(o, (uint64_t)ceil(fmod(secs, 60)));
        hdr_put(o, "s", 1);
    }
}

/* A retry-after in whole seconds (at least 0) into out (>= 16 bytes), NUL-terminated. */
static void put_retry_after(char *out, size_t n, double secs)
{
    hdr_out_t o = {out, 0, n - 1};
    hdr_u64(&o, secs > 0 ? (uint64_t)ceil(secs) : 0);
    out[o.len] = '\0';
}

/* ---- budgets ---- */

static const char *const period_names[] = {"daily", "monthly", "total"};

static int64_t spent_now(const dp_scope_t *s, int p, int32_t cur)
{
    return s->period[p] == cur ? s->spent[p] : 0; /* a new period starts at 0 */
}

static int64_t next_reset(int p, int64_t now_s)
{
    if (p == TG_PERIOD_DAILY)
        return (now_s / 86400 + 1) * 86400;
    if (p == TG_PERIOD_MONTHLY) {
        time_t t = (time_t)now_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        int64_t y = tm.tm_year + 1900, m = tm.tm_mon + 2; /* next month, 1-based */
        if (m > 12) {
            y++;
            m = 1;
        }
        return tg_days_from_civil(y, m, 1) * 86400;
    }
    return 0;
}

static void usd(char *out, size_t n, int64_t pusd)
{
    snprintf(out, n, "$%" PRId64 ".%06" PRId64, (int64_t)(pusd / 1000000000000LL),
             (int64_t)((pusd % 1000000000000LL) / 1000000));
}

/* Checks the budgets of one scope; on refusal fills err and retry_after. Two refusals read
 * differently: a budget used up (waiting for the reset is the only help), and a request whose
 * worst case does not fit in what is left (a smaller max_tokens may: say so, with the figures,
 * since "used up" beside "$0.000000 spent" reads as a bug). */
static bool budget_ok(const dp_scope_t *s, const tg_limits_t *l, const char *what,
                      const dp_worst_t *w, int64_t now_s, tg_err_t *err, char *ra, size_t ra_len)
{
    for (int p = 0; p < TG_NPERIODS; p++) {
        int64_t limit = l->budget_pusd[p];
        if (limit < 0)
            continue;
        int64_t spent = spent_now(s, p, tg_period_start(p, now_s)), used;
        if (__builtin_add_overflow(spent, s->unacked, &spent))
            spent = INT64_MAX;
        if (__builtin_add_overflow(spent, s->inflight, &used))
            used = INT64_MAX;
        int64_t want;
        if (__builtin_add_overflow(used, w->pusd, &want))
            want = INT64_MAX;
        if (used < limit && want <= limit)
            continue;
        char lim[40], sp[40], fl[40], worst[40], left[40], when[64] = "", flight[80] = "";
        usd(lim, sizeof(lim), limit);
        usd(sp, sizeof(sp), spent);
        usd(fl, sizeof(fl), s->inflight);
        usd(worst, sizeof(worst), w->pusd);
        usd(left, sizeof(left), used < limit ? limit - used : 0);
        int64_t reset = next_reset(p, now_s);
        if (reset) {
            char ts[40];
            tg_rfc3339_ms(reset * 1000, ts, sizeof(ts));
            snprintf(when, sizeof(when), "; it resets at %s", ts);
            snprintf(ra, ra_len, "%" PRId64, reset - now_s);
        }
        if (s->inflight > 0)
            snprintf(flight, sizeof(flight), ", %s held by requests in flight", fl);
        if (used >= limit) {
            tg_err_set(err, TG_ERATE, 429, "the %s %s budget of %s is used up: %s spent%s%s", what,
                       period_names[p], lim, sp, flight, when);
        } else {
            char from[160];
            if (w->completion_tokens == 0)
                snprintf(from, sizeof(from), "%" PRId64 " prompt tokens, one per body byte",
                         w->prompt_tokens);
            else if (w->default_completion)
                snprintf(from, sizeof(from),
                         "%" PRId64 " prompt tokens, one per body byte, plus %" PRId64
                         " completion tokens: the default without max_tokens",
                         w->prompt_tokens, w->completion_tokens);
            else
                snprintf(from, sizeof(from),
                         "%" PRId64 " prompt tokens, one per body byte, plus max_tokens %" PRId64,
                         w->prompt_tokens, w->completion_tokens);
            tg_err_set(err, TG_ERATE, 429,
                       "this request may cost up to %s (%s), more than the %s left of the %s %s "
                       "budget of %s (%s%s%s); %s%s",
                       worst, from, left, what, period_names[p], lim,
                       spent > 0 ? sp : "nothing spent yet", spent > 0 ? " spent" : "", flight,
                       w->completion_tokens > 0 ? "a smaller max_tokens reserves less"
                                                : "a smaller request reserves less",
                       when);
        }
        tg_err_code(err, "budget_exceeded");
        err->type = "insufficient_quota";
        return false;
    }
    return true;
}

/* ---- admission ---- */

typedef struct side {
    dp_scope_t *s;
    const tg_limits_t *l;
    const char *what;
    bucket_view_t v;
} side_t;

/* Whether the ledger has anything to do for this key or tenant. */
static bool limited(const tg_limits_t *l)
{
    return l->rpm || l->tpm || dp_ledger_has_budget(l);
}

static uint32_t scope_hash(char kind, const char *id)
{
    uint32_t h = 2166136261u;
    h = (h ^ (unsigned char)kind) * 16777619u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static bool scope_is(const dp_scope_t *s, char kind, const char *id)
{
    return s->id[0] == kind && s->id[1] == ':' && strcmp(s->id + 2, id) == 0;
}

static void map_put(scope_map_t *m, dp_scope_t *s, uint32_t h)
{
    size_t i = h & (m->cap - 1);
    while (m->slots[i])
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = s;
    m->n++;
}

static bool map_grow(scope_map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    dp_scope_t **old = m->slots;
    size_t oldcap = m->cap;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return false;
    }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            map_put(m, old[i], scope_hash(old[i]->id[0], old[i]->id + 2));
    free(old);
    return true;
}

/* The entry of a key ('k') or tenant ('t') for this thread, or NULL when binding found none (out
 * of memory: its limits go unenforced). After the first sight no global lock is taken. */
static dp_scope_t *scope_find(char kind, const char *id)
{
    scope_map_t *m = tl_map;
    if (!m) {
        m = calloc(1, sizeof(*m));
        if (!m)
            return scope_get(kind, id, false);
        pthread_mutex_lock(&lg.mu);
        m->next = lg.maps;
        lg.maps = m;
        pthread_mutex_unlock(&lg.mu);
        tl_map = m;
    }
    uint32_t h = scope_hash(kind, id);
    if (m->cap) {
        for (size_t i = h & (m->cap - 1); m->slots[i]; i = (i + 1) & (m->cap - 1))
            if (scope_is(m->slots[i], kind, id))
                return m->slots[i];
    }
    dp_scope_t *s = scope_get(kind, id, false);
    if (s && ((m->n + 1) * 2 <= m->cap || map_grow(m)))
        map_put(m, s, h);
    return s;
}

static void rate_views(side_t *sides, int n, dp_admit_t *a)
{
    /* per dimension, the scope with the least left speaks: that is the one that binds */
    int live = atomic_load_explicit(&lg.live, memory_order_relaxed);
    const side_t *br = NULL, *bt = NULL;
    double left_r = 0, left_t = 0;
    for (int i = 0; i < n; i++) {
        const side_t *sd = &sides[i];
        if (sd->l->rpm) {
            double left = fmax(0, sd->s->req_level) / sd->v.cap_r;
            if (!br || left < left_r) {
                br = sd;
                left_r = left;
            }
        }
        if (sd->l->tpm) {
            double left = fmax(0, sd->s->tok_level) / sd->v.cap_t;
            if (!bt || left < left_t) {
                bt = sd;
                left_t = left;
            }
        }
    }
    if (br)
        a->requests = (dp_rate_view_t){
            br->l->rpm, (uint64_t)fmin((double)br->l->rpm, floor(fmax(0, br->s->req_level) * live)),
            (br->v.cap_r - br->s->req_level) / br->v.rate_r};
    if (bt)
        a->tokens = (dp_rate_view_t){
            bt->l->tpm, (uint64_t)fmin((double)bt->l->tpm, floor(fmax(0, bt->s->tok_level) * live)),
            (bt->v.cap_t - bt->s->tok_level) / bt->v.rate_t};
}

/* One dimension's three lines, whole or not at all. */
static void put_view(hdr_out_t *o, const dp_rate_view_t *v, const char *dim)
{
    if (!v->limit)
        return;
    char line[128];
    hdr_out_t l = {line, 0, sizeof(line)};
    hdr_puts(&l, "x-ratelimit-limit-");
    hdr_puts(&l, dim);
    hdr_puts(&l, ": ");
    hdr_u64(&l, v->limit);
    hdr_puts(&l, "\r\nx-ratelimit-remaining-");
    hdr_puts(&l, dim);
    hdr_puts(&l, ": ");
    hdr_u64(&l, v->remaining);
    hdr_puts(&l, "\r\nx-ratelimit-reset-");
    hdr_puts(&l, dim);
    hdr_puts(&l, ": ");
    put_reset(&l, v->reset_s);
    hdr_put(&l, "\r\n", 2);
    hdr_put(o, line, l.len);
}

size_t dp_admit_headers(const dp_admit_t *a, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    hdr_out_t o = {out, 0, cap - 1};
    put_view(&o, &a->requests, "requests");
    put_view(&o, &a->tokens, "tokens");
    out[o.len] = '\0';
    return o.len;
}

static bool rate_ok(side_t *sd, int64_t est, tg_err_t *err, char *ra, size_t ra_len)
{
    const tg_limits_t *l = sd->l;
    if (l->rpm && sd->s->req_level < 1.0) {
        put_retry_after(ra, ra_len, (1.0 - sd->s->req_level) / sd->v.rate_r);
        tg_err_set(err, TG_ERATE, 429,
                   "rate limit reached for the %s: %u requests per minute; retry in %s s", sd->what,
                   l->rpm, ra);
        tg_err_code(err, "rate_limit_exceeded");
        err->type = "requests";
        return false;
    }
    double need = fmin((double)est, sd->v.cap_t);
    if (l->tpm && sd->s->tok_level < need) {
        put_retry_after(ra, ra_len, (need - sd->s->tok_level) / sd->v.rate_t);
        tg_err_set(err, TG_ERATE, 429,
                   "rate limit reached for the %s: %u tokens per minute (this request needs "
                   "about %" PRId64 "); retry in %s s",
                   sd->what, l->tpm, est, ra);
        tg_err_code(err, "rate_limit_exceeded");
        err->type = "tokens";
        return false;
    }
    return true;
}

int dp_ledger_admit(const tg_key_t *k, const dp_worst_t *worst, int64_t est_tokens, dp_admit_t *a,
                    tg_err_t *err, char *retry_after, size_t ra_len)
{
    memset(a, 0, sizeof(*a));
    retry_after[0] = '\0';
    side_t sides[2];
    int n = 0;
    /* most keys have no limit: they take no lock and read no clock */
    dp_scope_t *ks = limited(&k->lim) ? scope_find('k', k->id) : NULL;
    dp_scope_t *ts = limited(&k->tenant->lim) ? scope_find('t', k->tenant->id) : NULL;
    if (ks)
        sides[n++] = (side_t){ks, &k->lim, "API key", {0, 0, 0, 0}};
    if (ts)
        sides[n++] = (side_t){ts, &k->tenant->lim, "tenant", {0, 0, 0, 0}};
    if (n == 0)
        return 0;
    uint64_t now_us = tg_mono_us();
    int64_t now_s = tg_wall_ms() / 1000;
    for (int i = 0; i < n; i++)
        pthread_mutex_lock(&sides[i].s->mu);
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        if (sides[i].l->rpm || sides[i].l->tpm)
            refill(sides[i].s, sides[i].l, &sides[i].v, now_us);
        ok = rate_ok(&sides[i], est_tokens, err, retry_after, ra_len);
    }
    for (int i = 0; ok && i < n; i++)
        if (dp_ledger_has_budget(sides[i].l))
            ok = budget_ok(sides[i].s, sides[i].l, sides[i].what, worst, now_s, err, retry_after,
                           ra_len);
    if (ok) {
        for (int i = 0; i < n; i++) {
            dp_scope_t *s = sides[i].s;
            if (sides[i].l->rpm)
                s->req_level -= 1.0;
            if (sides[i].l->tpm)
                s->tok_level -= (double)est_tokens;
            s->inflight += worst->pusd;
        }
        a->worst_pusd = worst->pusd;
        a->est_tokens = est_tokens;
        a->held = true;
    }
    rate_views(sides, n, a);
    for (int i = n - 1; i >= 0; i--)
        pthread_mutex_unlock(&sides[i].s->mu);
    return ok ? 0 : TG_ERATE;
}

static void finish_scope(dp_scope_t *s, const tg_limits_t *l, const dp_admit_t *a, int64_t cost,
                         int64_t tokens)
{
    pthread_mutex_lock(&s->mu);
    if (a->held) {
        s->inflight -= a->worst_pusd;
        if (l->tpm && s->buckets_set) {
            /* the estimate was taken; settle on what was used (a debt is capped at a minute) */
            s->tok_level -= (double)(tokens - a->est_tokens);
            s->tok_level = fmax(s->tok_level, -(double)l->tpm);
        }
    }
    if (__builtin_add_overflow(s->unacked, cost, &s->unacked))
        s->unacked = INT64_MAX;
    pthread_mutex_unlock(&s->mu);
}

void dp_ledger_finish(const tg_key_t *k, dp_admit_t *a, int64_t cost_pusd, int64_t tokens)
{
    /* a scope without budgets keeps no unacknowledged spend: when a budget arrives, the spend
     * recorded before it reaches the count with the next acknowledgement (one sync window) */
    dp_scope_t *ks = limited(&k->lim) ? scope_find('k', k->id) : NULL;
    dp_scope_t *ts = limited(&k->tenant->lim) ? scope_find('t', k->tenant->id) : NULL;
    if (ks)
        finish_scope(ks, &k->lim, a, cost_pusd, tokens);
    if (ts)
        finish_scope(ts, &k->tenant->lim, a, cost_pusd, tokens);
    a->held = false;
}

/* ---- from the control plane ---- */

/* One thing an acknowledgement changes in one scope: an event's cost leaving the
 * unacknowledged sum (p < 0), or the control plane's figure for period p. */
typedef struct ack_item {
    dp_scope_t *s;
    int p;
    int32_t start;
    int64_t pusd;
} ack_item_t;

static int ack_item_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const ack_item_t *)a)->s, y = (uintptr_t)((const ack_item_t *)b)->s;
    return x < y ? -1 : x > y;
}

static void ack_apply_locked(dp_scope_t *s, const ack_item_t *it)
{
    if (it->p >= 0)
        take_spend_locked(s, it->p, it->pusd, it->start);
    else
        s->unacked = s->unacked > it->pusd ? s->unacked - it->pusd : 0;
}

/* Reads one entry of the answer's spend list; false when it is not one. */
static bool ack_spend_item(const json_t *e, ack_item_t *it)
{
    const char *key = json_string_value(json_object_get(e, "key"));
    const char *tenant = json_string_value(json_object_get(e, "tenant"));
    int p = tg_period_parse(json_string_value(json_object_get(e, "period")));
    int32_t start = tg_date_parse(json_string_value(json_object_get(e, "period_start")));
    json_t *sp = json_object_get(e, "spent_usd");
    int64_t spent;
    if ((!key && !tenant) || p < 0 || start < 0 || !json_is_number(sp) ||
        !tg_usd_to_pusd(json_number_value(sp), &spent))
        return false;
    it->s = key ? scope_get('k', key, true) : scope_get('t', tenant, true);
    it->p = p;
    it->start = start;
    it->pusd = spent;
    return it->s != NULL;
}

void dp_ledger_ack(const dp_ledger_event_t *ev, size_t n, const json_t *answer)
{
    json_t *live = json_object_get(answer, "live_dataplanes");
    if (json_is_integer(live)) {
        json_int_t v64 = json_integer_value(live);
        int v = v64 < 1 ? 1 : v64 > 10000 ? 10000 : (int)v64;
        if (atomic_exchange(&lg.live, v) != v)
            tg_log(TG_LOG_INFO, "dp_ledger", "share_changed", "live_dataplanes=%d", v);
    }
    json_t *spend = json_object_get(answer, "spend");
    json_t *asof = json_object_get(answer, "spend_as_of");
    /* an answer without a time of reading carries no figure we may trust */
    size_t nspend =
        json_is_integer(asof) && json_integer_value(asof) > 0 ? json_array_size(spend) : 0;
    size_t cap = 2 * n + nspend, m = 0;
    ack_item_t *items = cap ? malloc(cap * sizeof(*items)) : NULL;
    if (cap && !items) {
        /* Out of memory: one item at a time, the figures first. In between, a batch counts
         * twice (in the figure and still unacknowledged): a refusal too early, never an
         * admission too many. */
        ack_item_t it;
        for (size_t i = 0; i < nspend; i++)
            if (ack_spend_item(json_array_get(spend, i), &it))
                take_spend(it.s, it.p, it.pusd, it.start);
        for (size_t i = 0; i < n; i++) {
            const char *ids[2] = {ev[i].key_id, ev[i].tenant_id};
            for (int k = 0; k < 2; k++) {
                it.s = ids[k] ? scope_get(k ? 't' : 'k', ids[k], false) : NULL;
                it.p = -1;
                it.pusd = ev[i].cost_pusd;
                if (!it.s)
                    continue;
                pthread_mutex_lock(&it.s->mu);
                ack_apply_locked(it.s, &it);
                pthread_mutex_unlock(&it.s->mu);
            }
        }
        return;
    }
    for (size_t i = 0; i < nspend; i++)
        if (ack_spend_item(json_array_get(spend, i), &items[m]))
            m++;
    for (size_t i = 0; i < n; i++) {
        const char *ids[2] = {ev[i].key_id, ev[i].tenant_id};
        for (int k = 0; k < 2; k++) {
            /* a scope never made holds no unacknowledged spend */
            dp_scope_t *s = ids[k] ? scope_get(k ? 't' : 'k', ids[k], false) : NULL;
            if (s)
                items[m++] = (ack_item_t){s, -1, 0, ev[i].cost_pusd};
        }
    }
    /* Grouped by scope, each scope changed in one critical section: admission (which holds the
     * scope's mutex) sees the batch either still unacknowledged or already in the figure. */
    if (m > 1)
        qsort(items, m, sizeof(*items), ack_item_cmp);
    for (size_t i = 0; i < m;) {
        dp_scope_t *s = items[i].s;
        pthread_mutex_lock(&s->mu);
        for (; i < m && items[i].s == s; i++)
            ack_apply_locked(s, &items[i]);
        pthread_mutex_unlock(&s->mu);
    }
    free(items);
}

int dp_ledger_live_dataplanes(void)
{
    return atomic_load_explicit(&lg.live, memory_order_relaxed);
}

void dp_ledger_shutdown(void)
{
    pthread_mutex_lock(&lg.mu);
    for (size_t b = 0; b < NBUCKETS; b++) {
        dp_scope_t *s = lg.table[b];
        while (s) {
            dp_scope_t *next = s->next;
            pthread_mutex_destroy(&s->mu);
            free(s);
            s = next;
        }
        lg.table[b] = NULL;
    }
    /* the maps point at what was just freed: empty them (their threads have stopped) */
    for (scope_map_t *m = lg.maps; m; m = m->next) {
        free(m->slots);
        m->slots = NULL;
        m->cap = m->n = 0;
    }
    pthread_mutex_unlock(&lg.mu);
}

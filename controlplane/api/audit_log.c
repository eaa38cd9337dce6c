/* audit_log.c: reading and verifying the audit log. Platform admins see every row; a tenant's
 * admins and owners see that tenant's rows (tenant_id is then required). Verification walks the
 * hash chain and the signed checkpoints together and names the first row they cannot vouch for
 * (docs/operations.md says what that proves). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

static const char *const audit_params[] = {"tenant_id", "action", "target_type", "actor_id",
                                           "target_id", "from",   "to",          "limit",
                                           "cursor",    NULL};

/* Each filter reads an index (audit_log_tenant, _actor, _target, _tenant_actor, _tenant_target;
 * migrations 0001 and 0007) or the primary key newest first. A time range bounds the ids read:
 * the first and last id of the rows in it, from audit_log_ts (index only; OFFSET 0 keeps the
 * planner from taking min/max along the primary key, which would read every row outside the
 * range), so that a range in the past is not reached by reading every newer row. ts and id
 * mostly rise together, but the bounds come from the rows themselves and ts is still checked. */
void cp_api_audit_list(cp_req_t *r)
{
    int limit;
    const char *cursor, *actor;
    int64_t from = 0, to = 0;
    bool has_from, has_to;
    if (cp__query_check(r, audit_params,
                        "tenant_id, action, target_type, actor_id, target_id, from, to, limit, "
                        "cursor") != 0 ||
        cp__query_uuid(r, "actor_id", &actor) != 0 ||
        cp__query_time(r, "from", false, &from, &has_from) != 0 ||
        cp__query_time(r, "to", false, &to, &has_to) != 0 ||
        cp_page_params(r, &limit, &cursor) != 0)
        return;
    const char *tenant = cp_query(r, "tenant_id");
    const char *action = cp_query(r, "action");
    const char *target_type = cp_query(r, "target_type");
    const char *target_id = cp_query(r, "target_id");
    if (cursor) {
        char *end;
        long long c = strtoll(cursor, &end, 10);
        if (*end || c < 1) {
            cp_reply_error(r, 400, "invalid_query", "cursor", "cursor is not valid");
            return;
        }
    }
    if (tenant && !cp_is_uuid(tenant)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    const char *const texts[3][2] = {
        {"action", action}, {"target_type", target_type}, {"target_id", target_id}};
    for (int i = 0; i < 3; i++) {
        if (texts[i][1] && (!texts[i][1][0] || strlen(texts[i][1]) > 64)) {
            cp_reply_error(r, 400, "invalid_query", texts[i][0], "%s must be 1 to 64 bytes",
                           texts[i][0]);
            return;
        }
    }
    if (has_from && has_to && from > to) {
        cp_reply_error(r, 400, "invalid_query", "from", "from must be before to");
        return;
    }
    if (!r->who.platform_admin) {
        if (!tenant) {
            cp_reply_error(r, 400, "missing_query", "tenant_id",
                           "tenant_id is required unless you are a platform admin");
            return;
        }
        if (cp_require_role(r, tenant, CP_ROLE_ADMIN) < 0)
            return;
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *p[9] = {tenant,
                        action,
                        target_type,
                        cursor,
                        lim,
                        actor,
                        target_id,
                        has_from ? cp_query(r, "from") : NULL,
                        has_to ? cp_query(r, "to") : NULL};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('id', id, 'ts', ts, 'actor_id', actor_id, 'actor', actor_label, "
        "'tenant_id', tenant_id, 'action', action, 'target_type', target_type, 'target_id', "
        "target_id, 'before', before, 'after', after, 'source_ip', source_ip, 'hash', "
        "encode(row_hash, 'hex')) FROM audit_log WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid) "
        "AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target_type = $3) "
        "AND ($4::bigint IS NULL OR id < $4::bigint) AND ($6::uuid IS NULL OR actor_id = "
        "$6::uuid) AND ($7::text IS NULL OR target_id = $7::text) AND ($8::timestamptz IS NULL "
        "OR ts >= $8::timestamptz) AND ($9::timestamptz IS NULL OR ts < $9::timestamptz) "
        "AND ($8::timestamptz IS NULL OR id >= (SELECT min(w.id) FROM (SELECT id FROM audit_log "
        "WHERE ts >= $8::timestamptz AND ($9::timestamptz IS NULL OR ts < $9::timestamptz) OFFSET "
        "0) w)) AND ($9::timestamptz IS NULL OR id <= (SELECT max(w.id) FROM (SELECT id FROM "
        "audit_log WHERE ts < $9::timestamptz AND ($8::timestamptz IS NULL OR ts >= "
        "$8::timestamptz) OFFSET 0) w)) ORDER BY id DESC LIMIT $5::int",
        9, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    json_t *items = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(items, cp_db_json_row(res, i, 0));
    json_t *next = json_null();
    if (n > limit) {
        json_t *last = json_object_get(json_array_get(items, (size_t)limit - 1), "id");
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(last));
        json_decref(next);
        next = json_string(buf);
    }
    PQclear(res);
    cp_reply_json(r, 200, json_pack("{s:o,s:o}", "data", items, "next_cursor", next));
}

/* ---- verification ---- */

typedef struct chain_row {
    int64_t id;
    const char *hash_hex; /* borrowed from the chain result */
    bool linked;          /* prev_hash is the row_hash of the row before */
    bool hashed;          /* row_hash is the hash of prev_hash and the row's contents */
} chain_row_t;

typedef struct verdict {
    bool bad;
    int64_t first_bad; /* when bad: the first row the log cannot vouch for (may be 0 or less) */
    char problem[400];
    int64_t checkpoints;
    int64_t signed_rows;
    bool signatures_checked;
} verdict_t;

static void fail(verdict_t *v, int64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(verdict_t *v, int64_t id, const char *fmt, ...)
{
    if (v->bad)
        return;
    v->bad = true;
    v->first_bad = id;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->problem, sizeof(v->problem), fmt, ap);
    va_end(ap);
}

/* A row's own checks: its hash matches its contents and it chains to the row before. */
static bool row_ok(verdict_t *v, const chain_row_t *row)
{
    if (!row->hashed)
        fail(v, row->id, "row %lld: its hash does not match its contents (the row was changed)",
             (long long)row->id);
    else if (!row->linked)
        fail(v, row->id,
             "row %lld: it does not chain to the row before it (a row before it was removed or "
             "changed)",
             (long long)row->id);
    return !v->bad;
}

/* Checks one checkpoint (signature, key, place in the sequence) and the rows it signed against the
 * chain from *ci on. Returns false at the first problem. */
static bool check_checkpoint(verdict_t *v, PGresult *cps, int k, const char *key_id,
                             const chain_row_t *chain, size_t nchain, size_t *ci,
                             int64_t *prev_last)
{
    long long cid = strtoll(PQgetvalue(cps, k, 0), NULL, 10);
    int64_t ts_us = strtoll(PQgetvalue(cps, k, 1), NULL, 10);
    int64_t after = strtoll(PQgetvalue(cps, k, 2), NULL, 10);
    int64_t last = strtoll(PQgetvalue(cps, k, 3), NULL, 10);
    const char *idtxt = PQgetvalue(cps, k, 4), *hex = PQgetvalue(cps, k, 5);
    const char *ck_key = PQgetvalue(cps, k, 6), *mac_hex = PQgetvalue(cps, k, 7);
    size_t n = strlen(hex) / 64;
    int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
    uint8_t *hashes = calloc(n ? n : 1, 32);
    uint8_t mac[32], want[32];
    /* the first row this checkpoint vouches for, or would if it were sound */
    int64_t first = *ci < nchain && chain[*ci].id > *prev_last ? chain[*ci].id : *prev_last + 1;
    bool shaped = ids && hashes && n > 0 && strlen(hex) == n * 64 &&
                  tg_hex_decode(hex, n * 64, hashes, n * 32) == 0 && strlen(mac_hex) == 64 &&
                  tg_hex_decode(mac_hex, 64, mac, 32) == 0;
    const char *s = idtxt;
    for (size_t i = 0; shaped && i < n; i++) {
        char *end;
        ids[i] = strtoll(s, &end, 10);
        shaped = end != s && (i + 1 < n ? *end == ',' : *end == '\0') &&
                 ids[i] > (i ? ids[i - 1] : after);
        s = end + 1;
    }
    shaped = shaped && ids[n - 1] == last;
    if (!shaped) {
        fail(v, first, "checkpoint %lld is malformed", cid);
    } else if (v->signatures_checked && strcmp(ck_key, key_id) != 0) {
        fail(v, first,
             "checkpoint %lld was signed with another key (%s; this control plane's is %s): "
             "was TOLLGATE_MASTER_KEY changed?",
             cid, ck_key, key_id);
    } else if (v->signatures_checked &&
               (!cp_audit_ckpt_mac(ts_us, after, last, n, ids, hashes, want) ||
                !tg_ct_eq(mac, want, sizeof(mac)))) {
        fail(v, first,
             "checkpoint %lld: its signature does not match what it says (rows %lld to %lld): "
             "it was forged or changed",
             cid, (long long)ids[0], (long long)last);
    } else if (after != *prev_last) {
        fail(v, first,
             "checkpoint %lld starts after row %lld but the checkpoint before it ends at row "
             "%lld: a checkpoint was removed",
             cid, (long long)after, (long long)*prev_last);
    }
    for (size_t i = 0; !v->bad && i < n; i++) {
        /* rows the checkpoint did not sign, before the next one it did */
        if (*ci < nchain && chain[*ci].id < ids[i]) {
            fail(v, chain[*ci].id,
                 "row %lld is not among the rows checkpoint %lld signed (%lld to %lld): it was "
                 "added afterwards",
                 (long long)chain[*ci].id, cid, (long long)ids[0], (long long)last);
            break;
        }
        if (*ci >= nchain || chain[*ci].id > ids[i]) {
            fail(v, ids[i], "row %lld, signed in checkpoint %lld, is missing: it was deleted",
                 (long long)ids[i], cid);
            break;
        }
        if (!row_ok(v, &chain[*ci]))
            break;
        if (memcmp(chain[*ci].hash_hex, hex + 64 * i, 64) != 0) {
            fail(v, ids[i],
                 "row %lld differs from what checkpoint %lld signed: it was changed and the "
                 "chain recomputed",
                 (long long)ids[i], cid);
            break;
        }
        (*ci)++;
        v->signed_rows++;
    }
    free(ids);
    free(hashes);
    *prev_last = last;
    v->checkpoints++;
    return !v->bad;
}

/* What this process has verified: the rows up to the last checkpoint a verification found sound
 * (its id and last row, that row's hash and the checkpoint's signature, and the counts up to
 * there), so that the next call checks only what came after, and when the last full verification
 * ran. Held in memory, out of the database owner's reach; empty at start, so the first call
 * verifies everything. */
typedef struct verified_prefix {
    bool valid;
    int64_t ckpt_id, last_id;
    char head_hex[65], mac_hex[65];
    int64_t rows, checkpoints, signed_rows;
} verified_prefix_t;

static pthread_mutex_t prefix_mu = PTHREAD_MUTEX_INITIALIZER;
static verified_prefix_t prefix_cache;
static int64_t full_at_us; /* 0: none since start */
static bool full_intact;

/* One verification in one repeatable-read snapshot: every row and checkpoint (from->valid false),
 * or only those after the prefix, once the prefix's checkpoint and last row are found unchanged
 * (*anchored false when they are not: the caller verifies everything). */
typedef struct verify_out {
    verdict_t v;
    int64_t rows, checked_rows, unsigned_rows;
    verified_prefix_t next; /* the prefix this verification vouches for */
} verify_out_t;

static int verify_run(cp_req_t *r, const verified_prefix_t *from, bool *anchored, verify_out_t *o)
{
    PGresult *rows = NULL, *cps = NULL, *anchor = NULL;
    chain_row_t *chain = NULL;
    int rc = -1;
    char after[24], ckpt[24], zero_hex[65];
    memset(zero_hex, '0', 64);
    zero_hex[64] = '\0';
    snprintf(after, sizeof(after), "%lld", (long long)(from->valid ? from->last_id : 0));
    snprintf(ckpt, sizeof(ckpt), "%lld", (long long)(from->valid ? from->ckpt_id : 0));
    *anchored = true;
    if (cp_db_begin(r) != 0)
        return -1;
    PQclear(
        cp_db_exec(r->db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL));
    if (from->valid) {
        const char *pa[2] = {after, ckpt};
        anchor = cp_db_exec(r->db,
                            "SELECT (SELECT encode(row_hash, 'hex') FROM audit_log WHERE id = "
                            "$1::bigint), (SELECT encode(mac, 'hex') FROM audit_checkpoints WHERE "
                            "id = $2::bigint AND last_id = $1::bigint)",
                            2, pa);
        if (!cp_db_ok(anchor) || PQntuples(anchor) != 1) {
            cp_db_rollback(r);
            cp_reply_db_error(r, anchor);
            goto out;
        }
        if (strcmp(PQgetvalue(anchor, 0, 0), from->head_hex) != 0 ||
            strcmp(PQgetvalue(anchor, 0, 1), from->mac_hex) != 0) {
            *anchored = false;
            cp_db_rollback(r);
            rc = 0;
            goto out;
        }
    }
    /* everything: no lower bound (a row slipped in may have any id, 0 or less too) */
    const char *p[3] = {from->valid ? after : NULL, from->valid ? from->head_hex : zero_hex,
                        from->valid ? ckpt : NULL};
    rows = cp_db_exec(
        r->db,
        "SELECT id, encode(row_hash, 'hex'), prev_hash = coalesce(lag(row_hash) OVER (ORDER BY "
        "id), decode($2, 'hex')), row_hash = audit_row_hash(prev_hash, id, ts, "
        "actor_id, actor_label, tenant_id, action, target_type, target_id, before, after, "
        "source_ip) FROM audit_log WHERE $1::bigint IS NULL OR id > $1::bigint ORDER BY id",
        2, p);
    if (cp_db_ok(rows))
        cps = cp_db_exec(
            r->db,
            "SELECT id, (extract(epoch FROM ts) * 1000000)::bigint, after_id, "
            "last_id, array_to_string(ids, ','), encode(hashes, 'hex'), key_id, "
            "encode(mac, 'hex') FROM audit_checkpoints WHERE $1::bigint IS NULL OR id > $1::bigint "
            "ORDER BY id",
            1, p + 2);
    cp_db_rollback(r); /* it only read */
    if (!cp_db_ok(rows) || !cp_db_ok(cps)) {
        cp_reply_db_error(r, cp_db_ok(rows) ? cps : rows);
        goto out;
    }
    size_t nchain = (size_t)PQntuples(rows);
    chain = calloc(nchain ? nchain : 1, sizeof(*chain));
    if (!chain) {
        cp_reply_error(r, 500, "internal", NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nchain; i++) {
        chain[i].id = strtoll(PQgetvalue(rows, (int)i, 0), NULL, 10);
        chain[i].hash_hex = PQgetvalue(rows, (int)i, 1);
        chain[i].linked = PQgetvalue(rows, (int)i, 2)[0] == 't';
        chain[i].hashed = PQgetvalue(rows, (int)i, 3)[0] == 't';
    }
    verdict_t *v = &o->v;
    memset(o, 0, sizeof(*o));
    char key_id[17];
    v->signatures_checked = cp_audit_key_id(key_id);
    if (from->valid) {
        v->checkpoints = from->checkpoints;
        v->signed_rows = from->signed_rows;
        o->next = *from;
    }
    size_t ci = 0;
    int64_t prev_last = from->valid ? from->last_id : 0;
    int ncps = PQntuples(cps), k = 0;
    for (; k < ncps; k++)
        if (!check_checkpoint(v, cps, k, key_id, chain, nchain, &ci, &prev_last))
            break;
    /* the new prefix: up to the last checkpoint found sound, if any */
    if (!v->bad && ncps > 0 && ci > 0) {
        o->next.valid = true;
        o->next.ckpt_id = strtoll(PQgetvalue(cps, ncps - 1, 0), NULL, 10);
        o->next.last_id = chain[ci - 1].id;
        snprintf(o->next.head_hex, sizeof(o->next.head_hex), "%s", chain[ci - 1].hash_hex);
        snprintf(o->next.mac_hex, sizeof(o->next.mac_hex), "%s", PQgetvalue(cps, ncps - 1, 7));
        o->next.rows = (from->valid ? from->rows : 0) + (int64_t)ci;
        o->next.checkpoints = v->checkpoints;
        o->next.signed_rows = v->signed_rows;
    }
    /* the rows after the last checkpoint: chained, not yet signed */
    for (; !v->bad && ci < nchain; ci++)
        if (!row_ok(v, &chain[ci]))
            break;
    int64_t signed_up_to = ncps ? strtoll(PQgetvalue(cps, ncps - 1, 3), NULL, 10) : prev_last;
    for (size_t i = nchain; i > 0 && chain[i - 1].id > signed_up_to; i--)
        o->unsigned_rows++;
    o->checked_rows = (int64_t)nchain;
    o->rows = (from->valid ? from->rows : 0) + (int64_t)nchain;
    rc = 0;
out:
    free(chain);
    PQclear(anchor);
    PQclear(rows);
    PQclear(cps);
    return rc;
}

/* Keeps what a verification vouches for (nothing when it found a problem) and, for a full one,
 * when it ran; answers the last full verification's time and verdict. */
static void remember(const verify_out_t *o, bool full, int64_t *last_full_us,
                     bool *last_full_intact)
{
    bool intact = !o->v.bad;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    pthread_mutex_lock(&prefix_mu);
    if (!intact)
        memset(&prefix_cache, 0, sizeof(prefix_cache));
    else if (o->next.valid && (!prefix_cache.valid || o->next.ckpt_id >= prefix_cache.ckpt_id))
        prefix_cache = o->next;
    if (full) {
        full_at_us = now_us;
        full_intact = intact;
    }
    *last_full_us = full_at_us;
    *last_full_intact = full_intact;
    pthread_mutex_unlock(&prefix_mu);
}

/* ---- the verification at start ---- */

static pthread_t warm_thread;
static bool warm_started;

/* A full verification as the process starts, on its own connection, so that the first look at
 * the audit view after a start (or a deploy) checks only what came since, like every later one. A
 * problem found is logged, and the next call verifies everything again and names it. */
static void *warm_main(void *arg)
{
    (void)arg;
    cp_req_t r;
    memset(&r, 0, sizeof(r));
    tg_buf_init(&r.out, 1u << 16);
    r.db = cp_db();
    verified_prefix_t from = {0};
    verify_out_t o;
    bool anchored;
    if (r.db && verify_run(&r, &from, &anchored, &o) == 0) {
        int64_t at;
        bool intact;
        remember(&o, true, &at, &intact);
        if (intact)
            tg_log(TG_LOG_INFO, "cp_audit", "verified", "rows=%lld", (long long)o.rows);
        else
            tg_log(TG_LOG_WARN, "cp_audit", "verify_failed", "first_broken_id=%lld",
                   (long long)o.v.first_bad);
    }
    tg_buf_dispose(&r.out);
    cp_db_close();
    return NULL;
}

int cp_audit_verify_start(void)
{
    if (pthread_create(&warm_thread, NULL, warm_main, NULL) != 0)
        return TG_EIO;
    warm_started = true;
    return 0;
}

void cp_audit_verify_join(void)
{
    if (warm_started)
        pthread_join(warm_thread, NULL);
    warm_started = false;
}

static const char *const verify_params[] = {"full", NULL};

/* GET /api/v1/audit-log/verify[?full=true]. By default only what came after the prefix this
 * process already verified (with that prefix's last checkpoint and row checked unchanged), so a
 * call costs the rows since the last checkpoint, not the whole log; a call before the verification
 * at start ended, ?full=true, a changed prefix and any problem found verify everything, so a
 * problem is always named at its first row. A row changed in place before the prefix, its hash left as it was, is
 * found by a full verification only: the answer says when the last one ran. */
void cp_api_audit_verify(cp_req_t *r)
{
    if (!r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", NULL, "only platform admins verify the audit chain");
        return;
    }
    if (cp__query_check(r, verify_params, "full") != 0)
        return;
    const char *fq = cp_query(r, "full");
    if (fq && strcmp(fq, "true") != 0 && strcmp(fq, "false") != 0) {
        cp_reply_error(r, 400, "invalid_query", "full", "full must be true or false");
        return;
    }
    bool full = fq && strcmp(fq, "true") == 0;
    verified_prefix_t from = {0};
    pthread_mutex_lock(&prefix_mu);
    if (!full)
        from = prefix_cache;
    pthread_mutex_unlock(&prefix_mu);
    verify_out_t o;
    bool anchored;
    if (verify_run(r, &from, &anchored, &o) != 0)
        return;
    if (from.valid && (!anchored || o.v.bad)) {
        /* the prefix changed, or something after it is wrong: name the first row from the start */
        memset(&from, 0, sizeof(from));
        if (verify_run(r, &from, &anchored, &o) != 0)
            return;
    }
    bool intact = !o.v.bad;
    full = !from.valid;
    int64_t last_full_us;
    bool last_full_intact;
    remember(&o, full, &last_full_us, &last_full_intact);
    if (!intact)
        tg_log(TG_LOG_WARN, "cp_audit", "verify_failed", "first_broken_id=%lld",
               (long long)o.v.first_bad);
    json_t *last_full = json_null();
    if (last_full_us) {
        char ts[40];
        time_t secs = (time_t)(last_full_us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        last_full = json_pack("{s:s,s:b}", "at", ts, "intact", last_full_intact);
    }
    cp_reply_json(r, 200,
                  json_pack("{s:b,s:I,s:o,s:o,s:b,s:I,s:I,s:I,s:s,s:I,s:I,s:o}", "intact", intact,
                            "rows", (json_int_t)o.rows, "first_broken_id",
                            intact ? json_null() : json_integer(o.v.first_bad), "problem",
                            intact ? json_null() : json_string(o.v.problem), "signatures_checked",
                            o.v.signatures_checked, "checkpoints", (json_int_t)o.v.checkpoints,
                            "signed_rows", (json_int_t)o.v.signed_rows, "unsigned_rows",
                            (json_int_t)o.unsigned_rows, "mode", full ? "full" : "incremental",
                            "verified_from_id", (json_int_t)(from.valid ? from.last_id + 1 : 1),
                            "checked_rows", (json_int_t)o.checked_rows, "last_full", last_full));
}

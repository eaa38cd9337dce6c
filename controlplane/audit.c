/* audit.c: the append-only, hash-chained audit log and its signed checkpoints. A row is written
 * in the caller's transaction, after a transaction-scoped advisory lock that serializes writers so
 * that each row chains to the one committed before it. Postgres computes the chain, so its owner
 * could recompute it; the checkpoints, signed with a key Postgres never sees (crypto.c), are what
 * an owner cannot forge. They are written in the writer's transaction once audit_checkpoint_rows
 * rows wait, and by a thread of their own every audit_checkpoint_s seconds. HTTP worker threads
 * and the checkpoint thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

#define AUDIT_LOCK "7461636b" /* any constant shared by all writers */

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

static char *dump(json_t *v, tg_buf_t *b)
{
    if (!v)
        return NULL;
    tg_buf_reset(b);
    if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_SORT_KEYS) != 0 ||
        tg_buf_append(b, "", 1) != 0)
        return NULL;
    return b->base;
}

/* Signs the rows after the last checkpoint when at least min_rows of them wait (at most
 * CP_AUDIT_CKPT_MAX at once). Runs in the caller's transaction, under the audit lock. Returns the
 * number of rows signed (0 when none was due) or -1; note gets the fields of a log line. */
static int checkpoint(PGconn *c, int min_rows, char *note, size_t notelen)
{
    char key_id[17];
    if (!cp_audit_key_id(key_id))
        return 0; /* no master key: nothing to sign with (the server warned at start) */
    int rc = -1, n = 0;
    int64_t *ids = NULL;
    uint8_t *hashes = NULL;
    tg_buf_t idtxt = TG_BUF_INIT(32u << 20), hextxt = TG_BUF_INIT(32u << 20);
    PGresult *res = cp_db_exec(c,
                               "SELECT coalesce((SELECT last_id FROM audit_checkpoints "
                               "ORDER BY id DESC LIMIT 1), 0)",
                               0, NULL);
    if (!cp_db_ok(res) || PQntuples(res) != 1)
        goto out;
    char after[24], lim[16];
    snprintf(after, sizeof(after), "%s", PQgetvalue(res, 0, 0));
    snprintf(lim, sizeof(lim), "%d", CP_AUDIT_CKPT_MAX);
    PQclear(res);
    const char *p1[2] = {after, lim};
    res = cp_db_exec(c,
                     "SELECT id, encode(row_hash, 'hex') FROM audit_log WHERE id > $1::bigint "
                     "ORDER BY id LIMIT $2::int",
                     2, p1);
    if (!cp_db_ok(res))
        goto out;
    n = PQntuples(res);
    if (n == 0 || n < min_rows) {
        rc = 0;
        goto out;
    }
    ids = malloc((size_t)n * sizeof(*ids));
    hashes = malloc((size_t)n * 32);
    if (!ids || !hashes || tg_buf_append(&idtxt, "{", 1) != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, 0), *h = PQgetvalue(res, i, 1);
        ids[i] = strtoll(id, NULL, 10);
        if (strlen(h) != 64 || tg_hex_decode(h, 64, hashes + 32 * i, 32) != 0 ||
            (i > 0 && tg_buf_append(&idtxt, ",", 1) != 0) ||
            tg_buf_append(&idtxt, id, strlen(id)) != 0 || tg_buf_append(&hextxt, h, 64) != 0)
            goto out;
    }
    if (tg_buf_append(&idtxt, "}", 2) != 0 || tg_buf_append(&hextxt, "", 1) != 0)
        goto out;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ts_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    uint8_t mac[32];
    char mac_hex[65], ts[24], last[24];
    if (!cp_audit_ckpt_mac(ts_us, strtoll(after, NULL, 10), ids[n - 1], (size_t)n, ids, hashes,
                           mac))
        goto out;
    tg_hex_encode(mac, sizeof(mac), mac_hex);
    snprintf(ts, sizeof(ts), "%lld", (long long)ts_us);
    snprintf(last, sizeof(last), "%lld", (long long)ids[n - 1]);
    if (note)
        snprintf(note, notelen, "after_id=%s last_id=%s rows=%d head=%s mac=%s", after, last, n,
                 PQgetvalue(res, n - 1, 1), mac_hex);
    PQclear(res);
    const char *p2[7] = {ts, after, last, idtxt.base, hextxt.base, key_id, mac_hex};
    res = cp_db_exec(c,
                     "INSERT INTO audit_checkpoints (ts, after_id, last_id, ids, hashes, key_id, "
                     "mac) VALUES ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', "
                     "$2::bigint, $3::bigint, $4::bigint[], decode($5, 'hex'), $6, "
                     "decode($7, 'hex'))",
                     7, p2);
    if (cp_db_ok(res))
        rc = n;
out:
    if (rc < 0)
        tg_log(TG_LOG_ERROR, "cp_audit", "checkpoint_failed", "reason=\"%.200s\"",
               res ? PQresultErrorMessage(res) : "no result");
    PQclear(res);
    free(ids);
    free(hashes);
    tg_buf_dispose(&idtxt);
    tg_buf_dispose(&hextxt);
    return rc;
}

int cp_audit(cp_req_t *r, const char *tenant_id, const char *action, const char *target_type,
             const char *target_id, json_t *before, json_t *after)
{
    tg_buf_t b1 = TG_BUF_INIT(16u << 20), b2 = TG_BUF_INIT(16u << 20);
    const char *p[9] = {
        r->who.user_id[0] ? r->who.user_id : NULL,
        r->who.label[0] ? r->who.label : "anonymous",
        tenant_id,
        action,
        target_type,
        target_id,
        dump(before, &b1),
        dump(after, &b2),
        r->ip[0] ? r->ip : NULL,
    };
    PGresult *res =
        cp_db_exec(r->db, "SELECT pg_advisory_xact_lock(x'" AUDIT_LOCK "'::bigint)", 0, NULL);
    bool ok = cp_db_ok(res);
    PQclear(res);
    if (ok) {
        res = cp_db_exec(
            r->db,
            "INSERT INTO audit_log (id, ts, actor_id, actor_label, tenant_id, action, target_type, "
            "target_id, before, after, source_ip, prev_hash, row_hash) "
            "SELECT v.id, v.ts, $1::uuid, $2, $3::uuid, $4, $5, $6, $7::jsonb, $8::jsonb, $9, p.h, "
            "audit_row_hash(p.h, v.id, v.ts, $1::uuid, $2, $3::uuid, $4, $5, $6, $7::jsonb, "
            "$8::jsonb, $9) "
            "FROM (SELECT nextval('audit_log_id_seq') AS id, now() AS ts) v, "
            "(SELECT coalesce((SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1), "
            "decode(repeat('00', 32), 'hex')) AS h) p",
            9, p);
        ok = cp_db_ok(res);
        if (!ok)
            cp_reply_db_error(r, res);
        PQclear(res);
        /* a change whose row cannot be signed when due is not made */
        if (ok && checkpoint(r->db, cp_opts->audit_checkpoint_rows, r->audit_note,
                             sizeof(r->audit_note)) < 0) {
            r->audit_note[0] = '\0';
            cp_reply_db_error(r, NULL);
            ok = false;
        }
    } else {
        cp_reply_db_error(r, NULL);
    }
    tg_buf_dispose(&b1);
    tg_buf_dispose(&b2);
    return ok ? 0 : -1;
}

/* ---- the checkpoint thread: signs what waits, every audit_checkpoint_s seconds ---- */

static pthread_t ckpt_thread;
static bool ckpt_started;
static bool ckpt_stopping; /* under ckpt_mu */
static pthread_mutex_t ckpt_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ckpt_cv = PTHREAD_COND_INITIALIZER;

static bool run(PGconn *c, const char *sql)
{
    PGresult *res = cp_db_exec(c, sql, 0, NULL);
    bool ok = cp_db_ok(res);
    PQclear(res);
    return ok;
}

/* One checkpoint per transaction, so that each log line follows its commit. */
static void ckpt_tick(void)
{
    PGconn *c = cp_db();
    for (int i = 0; c && i < 1000; i++) {
        char note[256];
        if (!run(c, "BEGIN"))
            return;
        int n = -1;
        if (run(c, "SELECT pg_advisory_xact_lock(x'" AUDIT_LOCK "'::bigint)"))
            n = checkpoint(c, 1, note, sizeof(note));
        if (n <= 0 || !run(c, "COMMIT")) {
            run(c, "ROLLBACK");
            return;
        }
        tg_log(TG_LOG_INFO, "cp_audit", "audit_checkpoint", "%s", note);
    }
}

static void *ckpt_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ckpt_mu);
    while (!ckpt_stopping) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += cp_opts->audit_checkpoint_s;
        while (!ckpt_stopping && pthread_cond_timedwait(&ckpt_cv, &ckpt_mu, &t) == 0) {
        }
        if (ckpt_stopping)
            break;
        pthread_mutex_unlock(&ckpt_mu);
        ckpt_tick();
        pthread_mutex_lock(&ckpt_mu);
    }
    pthread_mutex_unlock(&ckpt_mu);
    cp_db_close();
    return NULL;
}

int cp_audit_start(void)
{
    char key_id[17];
    if (!cp_audit_key_id(key_id)) {
        tg_log(TG_LOG_WARN, "cp_audit", "unsigned",
               "reason=\"TOLLGATE_MASTER_KEY unset: audit checkpoints are not signed\"");
        return 0;
    }
    if (pthread_create(&ckpt_thread, NULL, ckpt_main, NULL) != 0)
        return TG_EIO;
    ckpt_started = true;
    return 0;
}

void cp_audit_stop(void)
{
    if (!ckpt_started)
        return;
    pthread_mutex_lock(&ckpt_mu);
    ckpt_stopping = true;
    pthread_cond_signal(&ckpt_cv);
    pthread_mutex_unlock(&ckpt_mu);
    pthread_join(ckpt_thread, NULL);
    ckpt_started = false;
}

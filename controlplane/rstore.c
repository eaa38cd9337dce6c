/* rstore.c: stored responses, the control plane's side (docs/responses.md "State", docs/api.md
 * "Data-plane API"). Data planes ship records (POST /dp/v1/responses, NDJSON, one record a line),
 * fetch one by (tenant, id) or by one of its items' ids, and delete one. A record is sealed whole
 * with the master key (cp_seal, AES-256-GCM) before it reaches the database; only its ids, tenant,
 * key and times are in the clear. A ship is idempotent per (tenant, id): a resent record, or one
 * deleted since, is not stored again. Another tenant's id answers exactly like an unknown one.
 * Handlers run on MHD worker threads with the thread's PGconn; the purge thread has its own. */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "rstore_rec.h"
#include "tg_log.h"
#include "tg_snap.h"

#include "tg_banned.h"

#define SHIP_MAX_RECORDS 1000
#define PURGE_BATCH "10000"

static bool dp_check(cp_req_t *r)
{
    if (!cp__dp_token_ok(r)) {
        cp_reply_error(r, 401, "unauthenticated", NULL, "a valid data-plane token is required");
        return false;
    }
    if (!r->db) {
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return false;
    }
    return true;
}

static void reply_not_found(cp_req_t *r)
{
    cp_reply_error(r, 404, "not_found", NULL, "no such stored response");
}

/* ---- POST /dp/v1/responses ---- */

/* One record in the open transaction: 1 stored, 0 already there (or deleted), -1 no such tenant,
 * -2 a database error (replied). */
static int store_record(cp_req_t *r, const cp_ship_rec_t *rec, const tg_buf_t *sealed)
{
    char days[16];
    snprintf(days, sizeof(days), "%d", cp_opts->responses_retention_days);
    const char *p[7] = {rec->tenant,  rec->id, rec->key,       rec->created,
                        sealed->base, days,    rec->items.base};
    int lens[7] = {0, 0, 0, 0, (int)sealed->len, 0, 0};
    int fmts[7] = {0, 0, 0, 0, 1, 0, 0};
    PGresult *res = PQexecParams(
        r->db,
        "WITH t AS (SELECT id, coalesce(responses_retention_days, $6::int) AS days FROM tenants "
        "WHERE id = $1::uuid), "
        "ins AS (INSERT INTO stored_responses (tenant_id, id, key_id, created_at, expires_at, "
        "data_enc) SELECT t.id, $2, $3::uuid, to_timestamp($4::bigint), to_timestamp($4::bigint) "
        "+ make_interval(days => t.days), $5::bytea FROM t ON CONFLICT (tenant_id, id) DO "
        "NOTHING RETURNING tenant_id, id, created_at), "
        "it AS (INSERT INTO stored_response_items (tenant_id, item_id, response_id, created_at) "
        "SELECT DISTINCT ins.tenant_id, x, ins.id, ins.created_at FROM ins, "
        "unnest($7::text[]) x ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM t), (SELECT count(*) FROM it)",
        7, NULL, p, lens, fmts, 0);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        tg_log(TG_LOG_WARN, "cp_rstore", "store_failed", "reason=\"%.200s\"",
               res ? PQresultErrorMessage(res) : "no result");
        cp_reply_db_error(r, res);
        PQclear(res);
        return -2;
    }
    bool stored = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    bool tenant = strcmp(PQgetvalue(res, 0, 1), "0") != 0;
    PQclear(res);
    return !tenant ? -1 : stored ? 1 : 0;
}

void cp_dp_responses_ship(cp_req_t *r)
{
    if (!dp_check(r))
        return;
    /* no cp__dp_register here: a hand-over is on an answer's path, and usage posts (every
     * second) keep the data plane's row fresh */
    tg_buf_t sealed = TG_BUF_INIT(64u << 20);
    tg_buf_t rejected = TG_BUF_INIT(1u << 20);
    long long stored = 0, dup = 0, nrej = 0, lineno = 0, nrec = 0;
    bool began = false;
    const char *line;
    size_t n, pos = 0;
    while (cp_ship_next_line(r->body, r->body_len, &pos, &lineno, &line, &n)) {
        if (++nrec > SHIP_MAX_RECORDS) {
            cp_reply_error(r, 413, "payload_too_large", NULL,
                           "a batch holds at most %d stored responses", SHIP_MAX_RECORDS);
            goto out;
        }
        json_error_t jerr;
        json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
        cp_ship_rec_t rec;
        memset(&rec, 0, sizeof(rec));
        const char *why = o ? cp_ship_read_record(o, &rec) : "not JSON";
        int rc = 0;
        if (!why) {
            if (!began) {
                if (cp_db_begin(r) != 0) {
                    json_decref(o);
                    tg_buf_dispose(&rec.items);
                    goto out;
                }
                began = true;
            }
            tg_buf_reset(&sealed);
            if (cp_seal(line, n, &sealed) != 0) {
                why = "could not be sealed (no master key, or larger than 64 MiB)";
            } else {
                rc = store_record(r, &rec, &sealed);
                if (rc == -1)
                    why = "no such tenant";
            }
        }
        tg_buf_dispose(&rec.items);
        json_decref(o);
        if (rc == -2) {
            began = false; /* replied; the transaction is rolled back below */
            PQclear(cp_db_exec(r->db, "ROLLBACK", 0, NULL));
            goto out;
        }
        if (why) {
            nrej++;
            int arc = tg_buf_appendf(&rejected,
                                     "%s{\"line\":%lld,\"message\":", nrej > 1 ? "," : "", lineno);
            arc = arc ? arc : tg_buf_append_json_str(&rejected, why, strlen(why));
            arc = arc ? arc : tg_buf_append(&rejected, "}", 1);
            if (arc != 0) {
                if (began)
                    cp_db_rollback(r);
                cp_reply_error(r, 500, "internal", NULL, "could not build the answer");
                goto out;
            }
            continue;
        }
        if (rc == 1)
            stored++;
        else
            dup++;
    }
    if (began && cp_db_commit(r) != 0)
        goto out;
    if (nrej > 0)
        tg_log(TG_LOG_WARN, "cp_rstore", "records_rejected", "count=%lld", nrej);
    tg_buf_reset(&r->out);
    if (tg_buf_appendf(&r->out, "{\"stored\":%lld,\"duplicates\":%lld,\"rejected\":[", stored,
                       dup) != 0 ||
        tg_buf_append(&r->out, rejected.base ? rejected.base : "", rejected.len) != 0 ||
        tg_buf_append(&r->out, "]}", 2) != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not build the answer");
        goto out;
    }
    r->status = 200;
    r->content_type = "application/json";
out:
    if (sealed.base)
        OPENSSL_cleanse(sealed.base, sealed.cap);
    tg_buf_dispose(&sealed);
    tg_buf_dispose(&rejected);
}

/* ---- GET /dp/v1/responses/{id}, GET /dp/v1/response-items/{id} ---- */

/* Replies 200 with the record sql finds (its one column: data_enc), opened; 404 when none. */
static void reply_record(cp_req_t *r, const char *sql)
{
    const char *tenant = cp_query(r, "tenant");
    const char *id = r->params[0];
    if (!tenant || !cp_is_uuid(tenant) || !cp_rstore_id_ok(id, strlen(id))) {
        reply_not_found(r); /* names the gateway never stores are never found */
        return;
    }
    const char *p[2] = {tenant, id};
    PGresult *res = PQexecParams(r->db, sql, 2, NULL, p, NULL, NULL, 1);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        reply_not_found(r);
        return;
    }
    tg_buf_reset(&r->out);
    int rc = cp_open(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &r->out);
    PQclear(res);
    if (rc != 0) {
        tg_buf_reset(&r->out);
        tg_log(TG_LOG_WARN, "cp_rstore", "record_unreadable",
               "tenant=%s reason=\"cannot open data_enc with the master key\"", tenant);
        cp_reply_error(r, 500, "unreadable", NULL,
                       "the stored response cannot be opened with this master key");
        return;
    }
    r->status = 200;
    r->content_type = "application/json";
}

void cp_dp_responses_get(cp_req_t *r)
{
    if (!dp_check(r))
        return;
    reply_record(r, "SELECT data_enc FROM stored_responses WHERE tenant_id = $1::uuid AND id = $2 "
                    "AND deleted_at IS NULL AND expires_at > now()");
}

void cp_dp_responses_item(cp_req_t *r)
{
    if (!dp_check(r))
        return;
    reply_record(r, "SELECT s.data_enc FROM stored_response_items i JOIN stored_responses s ON "
                    "s.tenant_id = i.tenant_id AND s.id = i.response_id WHERE i.tenant_id = "
                    "$1::uuid AND i.item_id = $2 AND s.deleted_at IS NULL AND s.expires_at > "
                    "now() ORDER BY s.created_at DESC, s.id DESC LIMIT 1");
}

/* ---- DELETE /dp/v1/responses/{id} ---- */

void cp_dp_responses_delete(cp_req_t *r)
{
    if (!dp_check(r))
        return;
    const char *tenant = cp_query(r, "tenant");
    const char *id = r->params[0];
    if (!tenant || !cp_is_uuid(tenant) || !cp_rstore_id_ok(id, strlen(id))) {
        reply_not_found(r);
        return;
    }
    const char *p[2] = {tenant, id};
    /* the row stays as a tombstone until it expires: a resend of this id is not stored again */
    PGresult *res = cp_db_exec(
        r->db,
        "WITH d AS (UPDATE stored_responses SET data_enc = NULL, deleted_at = now() WHERE "
        "tenant_id = $1::uuid AND id = $2 AND deleted_at IS NULL AND expires_at > now() "
        "RETURNING tenant_id, id), "
        "di AS (DELETE FROM stored_response_items i USING d WHERE i.tenant_id = d.tenant_id AND "
        "i.response_id = d.id RETURNING 1) "
        "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM di)",
        2, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    bool hit = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    if (!hit) {
        reply_not_found(r);
        return;
    }
    cp_reply_json(r, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

/* ---- the purge thread ---- */

static pthread_t purger;
static bool purger_started;
static int purge_pipe[2] = {-1, -1};

/* Deletes expired rows in batches, so that a large backlog never holds one long transaction. */
static void purge_once(PGconn *c)
{
    long long total = 0;
    for (;;) {
        PGresult *res = PQexec(c, "WITH d AS (DELETE FROM stored_responses WHERE (tenant_id, id) "
                                  "IN (SELECT tenant_id, id FROM stored_responses WHERE "
                                  "expires_at <= now() LIMIT " PURGE_BATCH ") RETURNING 1) "
                                  "SELECT count(*) FROM d");
        if (!cp_db_ok(res) || PQntuples(res) != 1) {
            tg_log(TG_LOG_WARN, "cp_rstore", "purge_failed", "reason=\"%.200s\"",
                   res ? PQresultErrorMessage(res) : "no result");
            PQclear(res);
            return;
        }
        long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        total += n;
        if (n < 10000)
            break;
    }
    if (total > 0)
        tg_log(TG_LOG_INFO, "cp_rstore", "expired_purged", "responses=%lld", total);
}

static void *purge_main(void *arg)
{
    (void)arg;
    PGconn *c = NULL;
    for (;;) {
        struct pollfd pf = {.fd = purge_pipe[0], .events = POLLIN};
        int n = poll(&pf, 1, cp_opts->responses_purge_s * 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            break; /* stop */
        if (c && PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
        }
        if (!c) {
            c = PQconnectdb(cp_opts->database_url);
            if (PQstatus(c) != CONNECTION_OK) {
                tg_log(TG_LOG_WARN, "cp_rstore", "purge_connect_failed", "reason=\"%.200s\"",
                       PQerrorMessage(c));
                PQfinish(c);
                c = NULL;
                continue;
            }
        }
        purge_once(c);
    }
    PQfinish(c);
    return NULL;
}

int cp_rstore_start(void)
{
    if (pipe(purge_pipe) != 0)
        return TG_EIO;
    if (pthread_create(&purger, NULL, purge_main, NULL) != 0) {
        close(purge_pipe[0]);
        close(purge_pipe[1]);
        purge_pipe[0] = purge_pipe[1] = -1;
        return TG_EIO;
    }
    purger_started = true;
    return 0;
}

void cp_rstore_stop(void)
{
    if (!purger_started)
        return;
    ssize_t n = write(purge_pipe[1], "x", 1);
    (void)n;
    pthread_join(purger, NULL);
    purger_started = false;
    close(purge_pipe[0]);
    close(purge_pipe[1]);
    purge_pipe[0] = purge_pipe[1] = -1;
}

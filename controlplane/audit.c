/* audit.c: the append-only, hash-chained audit log. A row is written in the caller's
 * transaction, after a transaction-scoped advisory lock that serializes writers so that each row
 * chains to the one committed before it. */
#include <string.h>

#include "cp.h"
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
    } else {
        cp_reply_db_error(r, NULL);
    }
    tg_buf_dispose(&b1);
    tg_buf_dispose(&b2);
    return ok ? 0 : -1;
}

int cp_config_bump(cp_req_t *r);

int cp_commit_change(cp_req_t *r, const char *tenant_id, const char *action,
                     const char *target_type, const char *target_id, json_t *before, json_t *after)
{
    if (cp_audit(r, tenant_id, action, target_type, target_id, before, after) != 0 ||
        cp_config_bump(r) != 0 || cp_db_commit(r) != 0)
        return -1;
    return 0;
}

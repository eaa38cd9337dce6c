/* audit_log.c: reading and verifying the audit log. Platform admins see every row; a tenant's
 * admins and owners see that tenant's rows (tenant_id is then required). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

void cp_api_audit_list(cp_req_t *r)
{
    int limit;
    const char *cursor;
    if (cp_page_params(r, &limit, &cursor) != 0)
        return;
    const char *tenant = cp_query(r, "tenant_id");
    const char *action = cp_query(r, "action");
    const char *target_type = cp_query(r, "target_type");
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
    if ((action && strlen(action) > 64) || (target_type && strlen(target_type) > 64)) {
        cp_reply_error(r, 400, "invalid_query", NULL, "filters are at most 64 bytes");
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
    const char *p[5] = {tenant, action, target_type, cursor, lim};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('id', id, 'ts', ts, 'actor_id', actor_id, 'actor', actor_label, "
        "'tenant_id', tenant_id, 'action', action, 'target_type', target_type, 'target_id', "
        "target_id, 'before', before, 'after', after, 'source_ip', source_ip, 'hash', "
        "encode(row_hash, 'hex')) FROM audit_log WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid) "
        "AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target_type = $3) "
        "AND ($4::bigint IS NULL OR id < $4::bigint) ORDER BY id DESC LIMIT $5::int",
        5, p);
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

void cp_api_audit_verify(cp_req_t *r)
{
    if (!r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", NULL, "only platform admins verify the audit chain");
        return;
    }
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT count(*), min(id) FILTER (WHERE NOT ok) FROM (SELECT id, "
        "prev_hash = coalesce(lag(row_hash) OVER (ORDER BY id), decode(repeat('00', 32), 'hex')) "
        "AND row_hash = audit_row_hash(prev_hash, id, ts, actor_id, actor_label, tenant_id, "
        "action, target_type, target_id, before, after, source_ip) AS ok FROM audit_log) c",
        0, NULL);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    long long rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    bool intact = PQgetisnull(res, 0, 1);
    long long broken = intact ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    cp_reply_json(r, 200,
                  json_pack("{s:b,s:I,s:o}", "intact", intact, "rows", (json_int_t)rows,
                            "first_broken_id", intact ? json_null() : json_integer(broken)));
}

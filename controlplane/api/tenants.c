/* tenants.c: /api/v1/tenants. Platform admins create and delete tenants and set their rate
 * limits; a tenant's admins and owners rename it; anyone with a role in it reads it. Others get
 * 404. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

#define TENANT_JSON                                                                                \
    "json_build_object('id', t.id, 'slug', t.slug, 'name', t.name, 'rpm_limit', t.rpm_limit, "     \
    "'tpm_limit', t.tpm_limit, 'created_at', t.created_at, 'updated_at', t.updated_at)"

/* The rate limits a create or update body sets; has_* says the field was sent, *_null that it
 * was null (no limit). */
typedef struct tenant_limits {
    bool has_rpm, rpm_null;
    char rpm[24];
    bool has_tpm, tpm_null;
    char tpm[24];
} tenant_limits_t;

int cp_config_bump(cp_req_t *r)
{
    /* the notification is delivered at commit, to every replica's notifier (sync.c), which
     * then answers the data planes' long polls; the version is a row (not the sequence) so that
     * no snapshot sees it before the change commits (migrations/0004_routing.sql) */
    PGresult *res = cp_db_exec(r->db,
                               "UPDATE config_version SET v = nextval('config_version_seq') "
                               "RETURNING v, pg_notify('tollgate_config', v::text)",
                               0, NULL);
    bool ok = cp_db_ok(res);
    if (!ok)
        cp_reply_db_error(r, res);
    PQclear(res);
    return ok ? 0 : -1;
}

static json_t *tenant_by_id(cp_req_t *r, const char *id, bool for_update)
{
    const char *p[1] = {id};
    PGresult *res =
        cp_db_exec(r->db,
                   for_update ? "SELECT " TENANT_JSON " FROM tenants t WHERE t.id = $1 FOR UPDATE"
                              : "SELECT " TENANT_JSON " FROM tenants t WHERE t.id = $1",
                   1, p);
    json_t *t = cp_db_json_row(res, 0, 0);
    PQclear(res);
    return t;
}

static int read_limits(cp_req_t *r, json_t *o, tenant_limits_t *l)
{
    memset(l, 0, sizeof(*l));
    if (cp_body_rate_limit(r, o, "rpm_limit", &l->has_rpm, &l->rpm_null, l->rpm, sizeof(l->rpm)) !=
            0 ||
        cp_body_rate_limit(r, o, "tpm_limit", &l->has_tpm, &l->tpm_null, l->tpm, sizeof(l->tpm)) !=
            0)
        return -1;
    return 0;
}

static bool slug_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
        if (!ok)
            return false;
    }
    return true;
}

void cp_api_tenants_list(cp_req_t *r)
{
    int limit;
    const char *cursor;
    if (cp_page_params_uuid(r, &limit, &cursor) != 0)
        return;
    const char *slug = cp_query(r, "slug");
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    /* as cp_role_in: a platform admin's token of another role still reaches every tenant (or
     * its one tenant), at that role */
    bool every = r->who.platform_admin || (r->who.via_token && r->who.user_platform_admin);
    const char *p[5] = {r->who.user_id, every ? "t" : "f", cursor, slug, lim};
    const char *scope_tenant =
        r->who.via_token && r->who.token_tenant[0] ? r->who.token_tenant : NULL;
    const char *p2[6] = {p[0], p[1], p[2], p[3], p[4], scope_tenant};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT " TENANT_JSON " FROM tenants t WHERE ($2::boolean OR EXISTS (SELECT 1 FROM "
        "memberships m WHERE m.tenant_id = t.id AND m.user_id = $1::uuid)) "
        "AND ($3::uuid IS NULL OR t.id > $3::uuid) AND ($4::text IS NULL OR t.slug = $4) "
        "AND ($6::uuid IS NULL OR t.id = $6::uuid) ORDER BY t.id LIMIT $5::int",
        6, p2);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    cp_reply_page(r, res, limit, "id");
    PQclear(res);
}

void cp_api_tenants_create(cp_req_t *r)
{
    static const char *const fields[] = {"slug", "name", "rpm_limit", "tpm_limit", NULL};
    const char *slug, *name;
    tenant_limits_t l;
    if (!r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", NULL, "only platform admins create tenants");
        return;
    }
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (cp_body_str(r, o, "slug", true, 63, &slug) != 0 ||
        cp_body_str(r, o, "name", true, 200, &name) != 0 || read_limits(r, o, &l) != 0)
        goto out;
    if (!slug_ok(slug)) {
        cp_reply_error(
            r, 422, "invalid_value", "slug",
            "\"slug\" must be lower-case letters, digits and '-', not starting with '-'");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    const char *p[4] = {
        slug,
        name,
        l.has_rpm && !l.rpm_null ? l.rpm : NULL,
        l.has_tpm && !l.tpm_null ? l.tpm : NULL,
    };
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO tenants AS t (slug, name, rpm_limit, tpm_limit) VALUES "
                               "($1, $2, $3::integer, $4::integer) RETURNING t.id, " TENANT_JSON,
                               4, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        goto out;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    json_t *t = cp_db_json_row(res, 0, 1);
    PQclear(res);
    if (cp_commit_change(r, id, "tenant.create", "tenant", id, NULL, t) != 0) {
        cp_db_rollback(r);
        json_decref(t);
        goto out;
    }
    cp_reply_json(r, 201, t);
out:
    json_decref(o);
}

void cp_api_tenants_get(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_is_uuid(id) || cp_require_role(r, id, CP_ROLE_VIEWER) < 0) {
        if (!cp_is_uuid(id))
            cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    json_t *t = tenant_by_id(r, id, false);
    if (!t) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    cp_reply_json(r, 200, t);
}

void cp_api_tenants_update(cp_req_t *r)
{
    static const char *const fields[] = {"name", "rpm_limit", "tpm_limit", NULL};
    const char *id = r->params[0], *name;
    tenant_limits_t l;
    if (!cp_is_uuid(id)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    if (cp_require_role(r, id, CP_ROLE_ADMIN) < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    json_t *nv = json_object_get(o, "name");
    if (nv && json_is_null(nv)) {
        cp_reply_error(r, 400, "invalid_type", "name", "\"name\" must be a string");
        goto out;
    }
    if (cp_body_str(r, o, "name", false, 200, &name) != 0 || read_limits(r, o, &l) != 0)
        goto out;
    /* limits protect the platform: a tenant's owners may not raise their own */
    if ((l.has_rpm || l.has_tpm) && !r->who.platform_admin) {
        const char *f = l.has_rpm ? "rpm_limit" : "tpm_limit";
        cp_reply_error(r, 403, "forbidden", f, "only platform admins change \"%s\"", f);
        goto out;
    }
    if (!name && !l.has_rpm && !l.has_tpm) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "send at least one of: name, rpm_limit, tpm_limit");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    json_t *before = tenant_by_id(r, id, true);
    if (!before) {
        cp_db_rollback(r);
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        goto out;
    }
    const char *p[6] = {
        id,
        name,
        l.has_rpm ? "t" : "f",
        l.has_rpm && !l.rpm_null ? l.rpm : NULL,
        l.has_tpm ? "t" : "f",
        l.has_tpm && !l.tpm_null ? l.tpm : NULL,
    };
    PGresult *res = cp_db_exec(
        r->db,
        "UPDATE tenants AS t SET name = coalesce($2, t.name), rpm_limit = CASE WHEN $3::boolean "
        "THEN $4::integer ELSE t.rpm_limit END, tpm_limit = CASE WHEN $5::boolean THEN "
        "$6::integer ELSE t.tpm_limit END, updated_at = now() WHERE id = $1 RETURNING " TENANT_JSON,
        6, p);
    json_t *after = cp_db_json_row(res, 0, 0);
    if (!after) {
        cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        json_decref(before);
        goto out;
    }
    PQclear(res);
    int rc = cp_audit(r, id, "tenant.update", "tenant", id, before, after);
    json_decref(before);
    if (rc != 0 || cp_config_bump(r) != 0 || cp_db_commit(r) != 0) {
        cp_db_rollback(r);
        json_decref(after);
        goto out;
    }
    cp_reply_json(r, 200, after);
out:
    json_decref(o);
}

void cp_api_tenants_delete(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_is_uuid(id) || !r->who.platform_admin) {
        /* tenant roles may not delete; they learn nothing about other tenants either */
        if (cp_is_uuid(id) && cp_role_in(r, id) != CP_ROLE_NONE)
            cp_reply_error(r, 403, "forbidden", NULL, "only platform admins delete tenants");
        else
            cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    if (cp_db_begin(r) != 0)
        return;
    json_t *before = tenant_by_id(r, id, true);
    if (!before) {
        cp_db_rollback(r);
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    const char *p[1] = {id};
    PGresult *res = cp_db_exec(r->db, "DELETE FROM tenants WHERE id = $1", 1, p);
    bool ok = cp_db_ok(res);
    if (!ok)
        cp_reply_db_error(r, res);
    PQclear(res);
    if (!ok || cp_commit_change(r, id, "tenant.delete", "tenant", id, before, NULL) != 0) {
        cp_db_rollback(r);
        json_decref(before);
        return;
    }
    json_decref(before);
    r->status = 204;
    tg_buf_reset(&r->out);
}

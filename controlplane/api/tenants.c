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
    "'tpm_limit', t.tpm_limit, 'responses_retention_days', t.responses_retention_days, "           \
    "'created_at', t.created_at, 'updated_at', t.updated_at)"

/* The rate limits a create or update body sets; has_* says the field was sent, *_null that it
 * was null (no limit). */
typedef struct tenant_limits {
    bool has_rpm, rpm_null;
    char rpm[24];
    bool has_tpm, tpm_null;
    char tpm[24];
} tenant_limits_t;

#define TENANT_BY_ID "SELECT " TENANT_JSON " FROM tenants t WHERE t.id = $1"

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
    cp_list_t l;
    if (cp_list_params(r, true, &l) != 0)
        return;
    /* as cp_role_in: a platform admin's token of another role still reaches every tenant (or
     * its one tenant), at that role */
    bool every = r->who.platform_admin || (r->who.via_token && r->who.user_platform_admin);
    const char *scope_tenant =
        r->who.via_token && r->who.token_tenant[0] ? r->who.token_tenant : NULL;
    const char *p[6] = {r->who.user_id,      every ? "t" : "f", l.cursor,
                        cp_query(r, "slug"), l.fetch,           scope_tenant};
    cp_list_reply(r, &l,
                  "SELECT " TENANT_JSON " FROM tenants t WHERE ($2::boolean OR EXISTS (SELECT 1 "
                  "FROM memberships m WHERE m.tenant_id = t.id AND m.user_id = $1::uuid)) AND "
                  "($3::uuid IS NULL OR t.id > $3::uuid) AND ($4::text IS NULL OR t.slug = $4) "
                  "AND ($6::uuid IS NULL OR t.id = $6::uuid) ORDER BY t.id LIMIT $5::int",
                  6, p, "id");
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
    json_t *t = cp_change_row(r,
                              "INSERT INTO tenants AS t (slug, name, rpm_limit, tpm_limit) VALUES "
                              "($1, $2, $3::integer, $4::integer) RETURNING " TENANT_JSON,
                              4, p, 0);
    if (!t) {
        cp_db_rollback(r);
        goto out;
    }
    const char *id = json_string_value(json_object_get(t, "id"));
    cp_change_t c = {id, "tenant.create", "tenant", id, false};
    cp_change_reply(r, &c, 201, NULL, t);
out:
    json_decref(o);
}

void cp_api_tenants_get(cp_req_t *r)
{
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, NULL) < 0)
        return;
    const char *p[1] = {r->params[0]};
    cp_reply_object(r, TENANT_BY_ID, 1, p, "tenant");
}

void cp_api_tenants_update(cp_req_t *r)
{
    static const char *const fields[] = {"name", "rpm_limit", "tpm_limit",
                                         "responses_retention_days", NULL};
    const char *id = r->params[0], *name;
    tenant_limits_t l;
    bool has_ret = false, ret_null = false;
    int64_t ret = 0;
    char ret_s[16] = "", def_s[16];
    if (cp_tenant_scope(r, CP_ROLE_ADMIN, NULL) < 0)
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
    /* stored responses' retention (days; null: the control plane's default) */
    json_t *rv = json_object_get(o, "responses_retention_days");
    if (rv && json_is_null(rv)) {
        has_ret = ret_null = true;
    } else if (rv) {
        if (cp_body_int(r, o, "responses_retention_days", true, 1, 3650, &has_ret, &ret) != 0)
            goto out;
        snprintf(ret_s, sizeof(ret_s), "%lld", (long long)ret);
    }
    snprintf(def_s, sizeof(def_s), "%d", cp_opts->responses_retention_days);
    /* limits protect the platform: a tenant's owners may not raise their own */
    if ((l.has_rpm || l.has_tpm) && !r->who.platform_admin) {
        const char *f = l.has_rpm ? "rpm_limit" : "tpm_limit";
        cp_reply_error(r, 403, "forbidden", f, "only platform admins change \"%s\"", f);
        goto out;
    }
    if (!name && !l.has_rpm && !l.has_tpm && !has_ret) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "send at least one of: name, rpm_limit, tpm_limit, "
                       "responses_retention_days");
        goto out;
    }
    const char *k[1] = {id};
    json_t *before = cp_change_lock_json(r, TENANT_BY_ID " FOR UPDATE", 1, k, "tenant");
    if (!before)
        goto out;
    const char *p[9] = {
        id,
        name,
        l.has_rpm ? "t" : "f",
        l.has_rpm && !l.rpm_null ? l.rpm : NULL,
        l.has_tpm ? "t" : "f",
        l.has_tpm && !l.tpm_null ? l.tpm : NULL,
        has_ret ? "t" : "f",
        has_ret && !ret_null ? ret_s : NULL,
        def_s,
    };
    /* a new retention applies to the responses already stored too: shortened, they go at the
     * next purge */
    json_t *after = cp_change_row(
        r,
        "WITH t AS (UPDATE tenants AS t SET name = coalesce($2, t.name), rpm_limit = CASE WHEN "
        "$3::boolean THEN $4::integer ELSE t.rpm_limit END, tpm_limit = CASE WHEN $5::boolean "
        "THEN $6::integer ELSE t.tpm_limit END, responses_retention_days = CASE WHEN $7::boolean "
        "THEN $8::integer ELSE t.responses_retention_days END, updated_at = now() WHERE id = $1 "
        "RETURNING *), "
        "e AS (UPDATE stored_responses s SET expires_at = s.created_at + make_interval(days => "
        "coalesce(t.responses_retention_days, $9::int)) FROM t WHERE $7::boolean AND "
        "s.tenant_id = t.id) "
        "SELECT " TENANT_JSON " FROM t",
        9, p, 0);
    cp_change_t c = {id, "tenant.update", "tenant", id, false};
    cp_change_reply(r, &c, 200, before, after);
    json_decref(before);
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
    const char *p[1] = {id};
    json_t *before = cp_change_lock_json(r, TENANT_BY_ID " FOR UPDATE", 1, p, "tenant");
    if (!before)
        return;
    cp_change_t c = {id, "tenant.delete", "tenant", id, false};
    cp_change_delete(r, &c, "DELETE FROM tenants WHERE id = $1", 1, p, before);
    json_decref(before);
}

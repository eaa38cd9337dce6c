/* users.c: /api/v1/users and /api/v1/tenants/{id}/members. Platform admins manage every user;
 * a tenant's admins create users in their tenant;
 * a user reads and edits their own profile (from a session, not an API token); a tenant's admins
 * manage its members, adding only users they can already see, and only its owners (or platform
 * admins) grant, change or remove the owner role. Runs on MHD workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#include "tg_banned.h"

#define USER_JSON                                                                                  \
    "json_build_object('id', u.id, 'email', u.email, 'name', u.name, 'is_platform_admin', "        \
    "u.is_platform_admin, 'is_service', u.is_service, 'disabled', u.disabled, 'created_at', "      \
    "u.created_at, 'updated_at', u.updated_at)"

#define MEMBER_JSON                                                                                \
    "json_build_object('user_id', u.id, 'email', u.email, 'name', u.name, 'role', m.role, "        \
    "'created_at', m.created_at)"

#define PASSWORD_MIN_CHARS 12
#define PASSWORD_MAX_BYTES 1024 /* what login accepts */
#define EMAIL_MAX 254
#define EMAIL_MAX_TEXT "254"

static const char *const member_roles[] = {"owner", "admin", "member", "viewer", NULL};

/* Runs a query whose first column is one json value; *out is the first row's, or NULL when there
 * is no row. Replies with the database error and returns -1 when the query fails. */
static int one_json(cp_req_t *r, const char *sql, int n, const char *const *p, json_t **out)
{
    PGresult *res = cp_db_exec(r->db, sql, n, p);
    *out = NULL;
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    *out = cp_db_json_row(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Whether a uuid from the path names the caller. */
static bool is_self(const cp_req_t *r, const char *id)
{
    return r->who.user_id[0] && cp_uuid_eq(id, r->who.user_id);
}

/* One '@' with something on both sides; no spaces or control characters (UTF-8 is fine). The
 * length is checked by cp_body_str. */
static bool email_ok(const char *s)
{
    size_t n = strlen(s), at = n, ats = 0;
    if (n < 3)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
        if (c == '@') {
            ats++;
            at = i;
        }
    }
    return ats == 1 && at > 0 && at < n - 1;
}

/* Characters (code points), not bytes: jansson has already checked that the text is UTF-8. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static void reply_no_user(cp_req_t *r)
{
    cp_reply_error(r, 404, "not_found", NULL, "no such user");
}

static bool email_filter_ok(const char *e)
{
    return *e && strlen(e) <= EMAIL_MAX;
}

void cp_api_users_list(cp_req_t *r)
{
    cp_list_t l;
    const char *email;
    if (!r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", NULL, "only platform admins list users");
        return;
    }
    if (cp_list_params(r, true, &l) != 0 ||
        cp_list_filter(r, "email", email_filter_ok, "must be 1 to " EMAIL_MAX_TEXT " bytes long",
                       &email) != 0)
        return;
    const char *p[3] = {l.cursor, email, l.fetch};
    cp_list_reply(r, &l,
                  "SELECT " USER_JSON " FROM users u WHERE ($1::uuid IS NULL OR u.id > $1::uuid) "
                  "AND ($2::text IS NULL OR lower(u.email) = lower($2)) ORDER BY u.id LIMIT "
                  "$3::int",
                  3, p, "id");
}

void cp_api_users_create(cp_req_t *r)
{
    static const char *const fields[] = {"email",      "name",      "password", "is_platform_admin",
                                         "is_service", "tenant_id", "role",     NULL};
    const char *email, *name, *pw, *tid, *role;
    bool has_pa, pa = false, has_svc, svc = false;
    json_t *o = cp_body_object(r, fields), *member = NULL;
    if (!o)
        return;
    if (cp_body_str(r, o, "email", true, EMAIL_MAX, &email) != 0 ||
        cp_body_str(r, o, "name", false, 200, &name) != 0 ||
        cp_body_str(r, o, "password", false, PASSWORD_MAX_BYTES, &pw) != 0 ||
        cp_body_bool(r, o, "is_platform_admin", &has_pa, &pa) != 0 ||
        cp_body_bool(r, o, "is_service", &has_svc, &svc) != 0 ||
        cp_body_str(r, o, "tenant_id", false, 36, &tid) != 0 ||
        cp_body_enum(r, o, "role", false, member_roles, &role) != 0)
        goto out;
    /* a tenant's admins create users in their tenant: the only users outside it they may add */
    if (!tid && !r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", "tenant_id",
                       "only platform admins create users outside a tenant; give \"tenant_id\" "
                       "and \"role\" to create one in a tenant you administer");
        goto out;
    }
    if (role && !tid) {
        cp_reply_error(r, 422, "invalid_value", "role",
                       "\"role\" is the new user's role in \"tenant_id\"; give both or neither");
        goto out;
    }
    if (tid) {
        if (!cp_is_uuid(tid)) {
            cp_reply_error(r, 404, "not_found", "tenant_id", "no such tenant");
            goto out;
        }
        int mine = cp_require_role(r, tid, CP_ROLE_ADMIN);
        if (mine < 0)
            goto out;
        if (!role) {
            cp_reply_error(r, 400, "missing_field", "role",
                           "\"role\" is required with \"tenant_id\"");
            goto out;
        }
        if (strcmp(role, "owner") == 0 && mine < CP_ROLE_OWNER) {
            cp_reply_error(r, 403, "forbidden", "role",
                           "only owners grant the owner role; you have %s", cp_role_name(mine));
            goto out;
        }
    }
    if (pa && !r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", "is_platform_admin",
                       "only platform admins create platform admins");
        goto out;
    }
    if (!email_ok(email)) {
        cp_reply_error(r, 422, "invalid_value", "email",
                       "\"email\" must have one '@' with text on both sides and no spaces");
        goto out;
    }
    if (svc && pw) {
        cp_reply_error(r, 422, "invalid_value", "password",
                       "service accounts have no password; they act through API tokens");
        goto out;
    }
    if (!svc && !pw) {
        cp_reply_error(r, 400, "missing_field", "password",
                       "\"password\" is required unless \"is_service\" is true");
        goto out;
    }
    if (pw && utf8_chars(pw) < PASSWORD_MIN_CHARS) {
        cp_reply_error(r, 422, "invalid_length", "password",
                       "\"password\" must be at least %d characters long", PASSWORD_MIN_CHARS);
        goto out;
    }
    char hash[256];
    if (pw && cp_password_hash(pw, hash, sizeof(hash)) != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not hash the password");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    if (tid) { /* it exists (a platform admin has a role in any id) and stays while we add to it */
        const char *t[1] = {tid};
        if (cp_change_need(r, "SELECT 1 FROM tenants WHERE id = $1 FOR SHARE", 1, t, 404,
                           "tenant_id", "no such tenant") != 0) {
            cp_db_rollback(r);
            goto out;
        }
    }
    const char *p[5] = {email, name, pw ? hash : NULL, pa ? "t" : "f", svc ? "t" : "f"};
    PGresult *res = cp_db_exec(
        r->db,
        "INSERT INTO users AS u (email, name, password_hash, is_platform_admin, is_service) "
        "VALUES (lower($1), coalesce($2, ''), $3, $4::boolean, $5::boolean) RETURNING "
        "u.id, " USER_JSON,
        5, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res); /* 409 when the email is taken, in any case */
        PQclear(res);
        cp_db_rollback(r);
        goto out;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    json_t *u = cp_db_json_row(res, 0, 1);
    PQclear(res);
    if (cp_audit(r, tid, "user.create", "user", id, NULL, u) != 0)
        goto fail;
    if (tid) {
        const char *m[3] = {tid, id, role};
        if (cp_exec_ok(r, "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)",
                       3, m) != 0 ||
            one_json(r,
                     "SELECT " MEMBER_JSON " FROM memberships m JOIN users u ON u.id = m.user_id "
                     "WHERE m.tenant_id = $1 AND m.user_id = $2",
                     2, m, &member) != 0 ||
            cp_audit(r, tid, "member.put", "membership", id, NULL, member) != 0)
            goto fail;
    }
    if (cp_db_commit(r) != 0)
        goto fail;
    cp_reply_json(r, 201, u);
    goto out;
fail:
    cp_db_rollback(r);
    json_decref(u);
out:
    json_decref(member);
    json_decref(o);
}

void cp_api_users_get(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_is_uuid(id) || (!r->who.platform_admin && !is_self(r, id))) {
        reply_no_user(r);
        return;
    }
    const char *p[1] = {id};
    json_t *u;
    if (one_json(r, "SELECT " USER_JSON " FROM users u WHERE u.id = $1", 1, p, &u) != 0)
        return;
    if (!u) {
        reply_no_user(r);
        return;
    }
    cp_reply_json(r, 200, u);
}

/* Reads what an update must check before its transaction: whether the user is a service account
 * and its password hash. Returns 1 if found, 0 if not, -1 after replying with a database error. */
static int user_secret(cp_req_t *r, const char *id, bool *svc, char *hash, size_t hashlen)
{
    const char *p[1] = {id};
    PGresult *res = cp_db_exec(
        r->db, "SELECT is_service, coalesce(password_hash, '') FROM users WHERE id = $1", 1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) == 1;
    if (found) {
        *svc = PQgetvalue(res, 0, 0)[0] == 't';
        snprintf(hash, hashlen, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return found;
}

void cp_api_users_update(cp_req_t *r)
{
    static const char *const fields[] = {
        "name", "email", "password", "current_password", "disabled", "is_platform_admin", NULL};
    const char *id = r->params[0], *name, *email, *pw, *cur;
    bool has_dis, dis = false, has_pa, pa = false;
    bool self = is_self(r, id), platform = r->who.platform_admin;
    if (!cp_is_uuid(id) || (!platform && !self)) {
        reply_no_user(r);
        return;
    }
    json_t *o = cp_body_object(r, fields), *before = NULL, *after = NULL;
    if (!o)
        return;
    if (cp_body_str(r, o, "name", false, 200, &name) != 0 ||
        cp_body_str(r, o, "email", false, EMAIL_MAX, &email) != 0 ||
        cp_body_str(r, o, "password", false, PASSWORD_MAX_BYTES, &pw) != 0 ||
        cp_body_str(r, o, "current_password", false, PASSWORD_MAX_BYTES, &cur) != 0 ||
        cp_body_bool(r, o, "disabled", &has_dis, &dis) != 0 ||
        cp_body_bool(r, o, "is_platform_admin", &has_pa, &pa) != 0)
        goto out;
    /* a token acts with its own scope: the user record is global, so only a session of the
     * user (or a platform admin) edits it, never a token that may reach less than the user */
    if (self && !platform && r->who.via_token) {
        const char *f = name ? "name" : pw ? "password" : email ? "email" : NULL;
        cp_reply_error(r, 403, "forbidden", f,
                       "an API token cannot change its user's profile or password; sign in to "
                       "change them");
        goto out;
    }
    if (!platform && (email || has_dis || has_pa)) {
        const char *f = email ? "email" : has_dis ? "disabled" : "is_platform_admin";
        cp_reply_error(r, 403, "forbidden", f, "only platform admins change \"%s\"", f);
        goto out;
    }
    if (email && !email_ok(email)) {
        cp_reply_error(r, 422, "invalid_value", "email",
                       "\"email\" must have one '@' with text on both sides and no spaces");
        goto out;
    }
    if (cur && !pw) {
        cp_reply_error(r, 422, "invalid_value", "current_password",
                       "\"current_password\" is only used together with \"password\"");
        goto out;
    }
    if (!name && !email && !pw && !has_dis && !has_pa) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "give at least one of name, email, password, disabled, is_platform_admin");
        goto out;
    }
    if (self && has_pa && !pa) {
        cp_reply_error(r, 422, "invalid_value", "is_platform_admin",
                       "you cannot remove your own platform admin role");
        goto out;
    }
    if (self && has_dis && dis) {
        cp_reply_error(r, 422, "invalid_value", "disabled", "you cannot disable yourself");
        goto out;
    }
    char hash[256] = "";
    if (pw) {
        bool svc = false;
        char old[256] = "";
        int found = user_secret(r, id, &svc, old, sizeof(old));
        if (found < 0)
            goto out;
        if (!found) {
            reply_no_user(r);
            goto out;
        }
        if (svc) {
            cp_reply_error(r, 422, "invalid_value", "password",
                           "service accounts have no password; they act through API tokens");
            goto out;
        }
        if (utf8_chars(pw) < PASSWORD_MIN_CHARS) {
            cp_reply_error(r, 422, "invalid_length", "password",
                           "\"password\" must be at least %d characters long", PASSWORD_MIN_CHARS);
            goto out;
        }
        if (self && !cur) {
            cp_reply_error(r, 400, "missing_field", "current_password",
                           "\"current_password\" is required to change your own password");
            goto out;
        }
        if (self && (!old[0] || !cp_password_verify(old, cur))) {
            cp_reply_error(r, 403, "wrong_password", "current_password",
                           "\"current_password\" is not your current password");
            goto out;
        }
        if (cp_password_hash(pw, hash, sizeof(hash)) != 0) {
            cp_reply_error(r, 500, "internal", NULL, "could not hash the password");
            goto out;
        }
    }
    if (cp_db_begin(r) != 0)
        goto out;
    const char *q[1] = {id};
    if (one_json(r, "SELECT " USER_JSON " FROM users u WHERE u.id = $1 FOR UPDATE", 1, q,
                 &before) != 0)
        goto fail;
    if (!before) {
        reply_no_user(r);
        goto fail;
    }
    const char *p[6] = {id,
                        name,
                        email,
                        pw ? hash : NULL,
                        has_dis ? (dis ? "t" : "f") : NULL,
                        has_pa ? (pa ? "t" : "f") : NULL};
    /* a new password ends every session issued before it (the session generation, checked
     * on each call in auth.c) */
    PGresult *res = cp_db_exec(
        r->db,
        "UPDATE users AS u SET name = coalesce($2, u.name), email = coalesce(lower($3), "
        "u.email), password_hash = coalesce($4, u.password_hash), session_gen = u.session_gen + "
        "CASE WHEN $4 IS NULL THEN 0 ELSE 1 END, disabled = coalesce($5::boolean, u.disabled), "
        "is_platform_admin = coalesce($6::boolean, u.is_platform_admin), updated_at = now() "
        "WHERE u.id = $1 RETURNING " USER_JSON ", u.session_gen",
        6, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        goto fail;
    }
    after = cp_db_json_row(res, 0, 0);
    long long gen = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0;
    PQclear(res);
    if (!after) {
        reply_no_user(r);
        goto fail;
    }
    /* and clears the failed logins counted against the account: how an admin unlocks it */
    const char *fp[3] = {pw ? "t" : "f", json_string_value(json_object_get(before, "email")),
                         json_string_value(json_object_get(after, "email"))};
    if (cp_exec_ok(r,
                   "DELETE FROM login_failures WHERE $1::boolean AND email IN (lower($2), "
                   "lower($3))",
                   3, fp) != 0)
        goto fail;
    json_t *audited = json_copy(after);
    if (pw)
        json_object_set_new(audited, "password_changed", json_true()); /* never the hash */
    cp_change_t c = {NULL, "user.update", "user", id, true}; /* users are not in a snapshot */
    int rc = cp_change_commit(r, &c, before, audited);
    json_decref(audited);
    if (rc != 0)
        goto out; /* replied and rolled back */
    if (pw && self && r->who.jti[0]) {
        /* the session that changed the password carries on with a fresh one; the old token
         * ended with the others */
        char token[2048], jti[33], csrf[44];
        long exp;
        if (cp_jwt_issue(r->who.user_id, gen, token, sizeof(token), &exp, jti) != 0) {
            /* the change is made; the caller signs in again */
        } else if (!r->who.via_cookie) {
            json_object_set_new(after, "session",
                                json_pack("{s:s,s:s,s:I}", "token", token, "token_type", "Bearer",
                                          "expires_at", (json_int_t)exp));
        } else if (cp_csrf_token(jti, csrf)) {
            /* a browser's session: the new JWT only in the cookie, its CSRF token here */
            cp_session_cookie_set(r, token, exp);
            json_object_set_new(after, "session",
                                json_pack("{s:s,s:I,s:s}", "token_type", "Cookie", "expires_at",
                                          (json_int_t)exp, "csrf_token", csrf));
        }
    }
    cp_reply_json(r, 200, after);
    after = NULL;
    goto out;
fail:
    cp_db_rollback(r);
out:
    json_decref(before);
    json_decref(after);
    json_decref(o);
}

void cp_api_users_delete(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_is_uuid(id) || !r->who.platform_admin) {
        if (is_self(r, id))
            cp_reply_error(r, 403, "forbidden", NULL, "only platform admins delete users");
        else
            reply_no_user(r);
        return;
    }
    if (is_self(r, id)) {
        cp_reply_error(r, 422, "invalid_value", NULL, "you cannot delete yourself");
        return;
    }
    if (cp_db_begin(r) != 0)
        return;
    json_t *before = NULL;
    const char *p[1] = {id};
    if (one_json(r, "SELECT " USER_JSON " FROM users u WHERE u.id = $1 FOR UPDATE", 1, p,
                 &before) != 0)
        goto fail;
    if (!before) {
        reply_no_user(r);
        goto fail;
    }
    /* membership changes lock the tenant row first; so do we, so that two removals cannot both
     * see another owner and leave a tenant with none */
    if (cp_exec_ok(r,
                   "SELECT 1 FROM tenants t WHERE t.id IN (SELECT tenant_id FROM memberships WHERE "
                   "user_id = $1 AND role = 'owner') ORDER BY t.id FOR UPDATE",
                   1, p) != 0)
        goto fail;
    PGresult *res =
        cp_db_exec(r->db,
                   "SELECT t.slug FROM memberships m JOIN tenants t ON t.id = "
                   "m.tenant_id WHERE m.user_id = $1 AND m.role = 'owner' AND NOT "
                   "EXISTS (SELECT 1 FROM memberships o WHERE o.tenant_id = m.tenant_id "
                   "AND o.role = 'owner' AND o.user_id <> m.user_id) ORDER BY t.slug "
                   "LIMIT 1",
                   1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        goto fail;
    }
    if (PQntuples(res) == 1) {
        cp_reply_error(r, 422, "last_owner", NULL,
                       "the user is the last owner of tenant \"%s\"; make someone else an owner "
                       "first",
                       PQgetvalue(res, 0, 0));
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    cp_change_t c = {NULL, "user.delete", "user", id, true};
    cp_change_delete(r, &c, "DELETE FROM users WHERE id = $1", 1, p, before);
    json_decref(before);
    return;
fail:
    cp_db_rollback(r);
    json_decref(before);
}

void cp_api_members_list(cp_req_t *r)
{
    cp_list_t l;
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, NULL) < 0 || cp_list_params(r, true, &l) != 0)
        return;
    const char *p[3] = {r->params[0], l.cursor, l.fetch};
    cp_list_reply(r, &l,
                  "SELECT " MEMBER_JSON " FROM memberships m JOIN users u ON u.id = m.user_id "
                  "WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2::uuid) ORDER BY "
                  "m.user_id LIMIT $3::int",
                  3, p, "user_id");
}

/* In a transaction: locks the tenant (serializing its membership changes, see users_delete) and
 * reads the member, locked. Returns 0 with *member NULL when the user has no role there; -1
 * after replying (404 when the tenant is gone). */
static int lock_member(cp_req_t *r, const char *tid, const char *uid, json_t **member)
{
    const char *p[2] = {tid, uid};
    *member = NULL;
    int found = cp_row_exists(r, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", 1, p);
    if (found < 0)
        return -1;
    if (!found) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return -1;
    }
    return one_json(r,
                    "SELECT " MEMBER_JSON " FROM memberships m JOIN users u ON u.id = m.user_id "
                    "WHERE m.tenant_id = $1 AND m.user_id = $2 FOR UPDATE OF m",
                    2, p, member);
}

static bool member_is_owner(json_t *m)
{
    json_t *role = json_object_get(m, "role");
    return m && json_is_string(role) && strcmp(json_string_value(role), "owner") == 0;
}

/* Refuses (422) to take the owner role from the tenant's only owner. */
static int check_not_last_owner(cp_req_t *r, const char *tid)
{
    const char *p[1] = {tid};
    PGresult *res = cp_db_exec(
        r->db, "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'", 1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    bool last = strcmp(PQgetvalue(res, 0, 0), "1") == 0;
    PQclear(res);
    if (last) {
        cp_reply_error(r, 422, "last_owner", NULL,
                       "this is the tenant's last owner; make someone else an owner first");
        return -1;
    }
    return 0;
}

void cp_api_members_put(cp_req_t *r)
{
    static const char *const fields[] = {"role", NULL};
    const char *tid = r->params[0], *uid = r->params[1], *role;
    if (!cp_is_uuid(tid)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    int mine = cp_require_role(r, tid, CP_ROLE_ADMIN);
    if (mine < 0)
        return;
    if (!cp_is_uuid(uid)) {
        reply_no_user(r);
        return;
    }
    json_t *o = cp_body_object(r, fields), *before = NULL, *after = NULL;
    if (!o)
        return;
    if (cp_body_enum(r, o, "role", true, member_roles, &role) != 0)
        goto out;
    if (cp_db_begin(r) != 0)
        goto out;
    const char *p[3] = {tid, uid, role};
    /* only a user the caller may already see: a member of this tenant, or of another tenant the
     * caller manages (within its token's scope); platform admins add anyone. One query for every
     * other id, so that it answers like a random one */
    const char *scope = r->who.via_token && r->who.token_tenant[0] ? r->who.token_tenant : NULL;
    const char *v[5] = {tid, uid, r->who.user_id, r->who.platform_admin ? "t" : "f", scope};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT 1 FROM users u WHERE u.id = $2 AND ($4::boolean OR EXISTS (SELECT 1 FROM "
        "memberships m WHERE m.user_id = u.id AND (m.tenant_id = $1 OR ($5::uuid IS NULL AND "
        "EXISTS (SELECT 1 FROM memberships mine WHERE mine.user_id = $3::uuid AND mine.tenant_id "
        "= m.tenant_id AND mine.role IN ('owner', 'admin'))))))",
        5, v);
    bool ok = cp_db_ok(res), found = ok && PQntuples(res) == 1;
    if (!ok)
        cp_reply_db_error(r, res);
    PQclear(res);
    if (!ok)
        goto fail;
    if (!found) {
        reply_no_user(r);
        goto fail;
    }
    if (lock_member(r, tid, uid, &before) != 0)
        goto fail;
    bool to_owner = strcmp(role, "owner") == 0;
    if ((to_owner || member_is_owner(before)) && mine < CP_ROLE_OWNER) {
        cp_reply_error(r, 403, "forbidden", "role",
                       "only owners grant, change or remove the owner role; you have %s",
                       cp_role_name(mine));
        goto fail;
    }
    if (member_is_owner(before) && !to_owner && check_not_last_owner(r, tid) != 0)
        goto fail;
    if (cp_exec_ok(r,
                   "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3) ON "
                   "CONFLICT (user_id, tenant_id) DO UPDATE SET role = EXCLUDED.role",
                   3, p) != 0)
        goto fail;
    if (one_json(r,
                 "SELECT " MEMBER_JSON " FROM memberships m JOIN users u ON u.id = m.user_id "
                 "WHERE m.tenant_id = $1 AND m.user_id = $2",
                 2, p, &after) != 0)
        goto fail;
    if (!after) {
        cp_reply_error(r, 500, "internal", NULL, "could not read the membership back");
        goto fail;
    }
    cp_change_t c = {tid, "member.put", "membership", uid, true};
    cp_change_reply(r, &c, before ? 200 : 201, before, after);
    after = NULL;
    goto out;
fail:
    cp_db_rollback(r);
out:
    json_decref(before);
    json_decref(after);
    json_decref(o);
}

void cp_api_members_delete(cp_req_t *r)
{
    const char *tid = r->params[0], *uid = r->params[1];
    if (!cp_is_uuid(tid)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return;
    }
    int mine = cp_require_role(r, tid, CP_ROLE_ADMIN);
    if (mine < 0)
        return;
    if (!cp_is_uuid(uid)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such member");
        return;
    }
    if (cp_db_begin(r) != 0)
        return;
    json_t *before = NULL;
    if (lock_member(r, tid, uid, &before) != 0)
        goto fail;
    if (!before) {
        cp_reply_error(r, 404, "not_found", NULL, "no such member");
        goto fail;
    }
    if (member_is_owner(before)) {
        if (mine < CP_ROLE_OWNER) {
            cp_reply_error(r, 403, "forbidden", NULL, "only owners remove an owner; you have %s",
                           cp_role_name(mine));
            goto fail;
        }
        if (check_not_last_owner(r, tid) != 0)
            goto fail;
    }
    const char *p[2] = {tid, uid};
    cp_change_t c = {tid, "member.delete", "membership", uid, true};
    cp_change_delete(r, &c, "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", 2, p,
                     before);
    json_decref(before);
    return;
fail:
    cp_db_rollback(r);
    json_decref(before);
}

/* tokens.c: /api/v1/tokens, admin API tokens for automation. A token is shown once, stored as
 * SHA-256 plus its last 4 characters, and never scoped wider than whoever creates it; auth.c
 * resolves it and cp_role_in caps every role by it. A token lists and revokes only tokens no
 * wider than itself. Runs on MHD worker threads. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "tg_hash.h"
#include "tg_time.h"

#include "tg_banned.h"

#define TOKEN_JSON                                                                                 \
    "json_build_object('id', k.id, 'name', k.name, 'user_id', k.user_id, 'role', k.role, "         \
    "'tenant_id', k.tenant_id, 'last4', k.last4, 'expires_at', k.expires_at, 'revoked_at', "       \
    "k.revoked_at, 'created_by', k.created_by, 'created_at', k.created_at, 'last_used_at', "       \
    "k.last_used_at)"

/* Both forms of expires_at become one timestamptz; the string form is checked first. */
#define EXPIRES_SQL(unix_param, text_param)                                                        \
    "CASE WHEN " unix_param "::bigint IS NOT NULL THEN to_timestamp(" unix_param                   \
    "::bigint) ELSE " text_param "::timestamptz END"

#define UNIX_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

/* Whether token k lies within the calling token's scope ($S: its tenant or NULL; $R: its rank,
 * enum cp_role, or NULL when the caller signed in): a token acts with its own scope, never its
 * user's, so it sees and revokes only tokens that reach no further than itself. Admin without a
 * tenant is platform scope, the widest. */
#define TOKEN_IN_SCOPE(S, R)                                                                       \
    "(" R "::int IS NULL OR ((CASE k.role WHEN 'viewer' THEN 1 WHEN 'member' THEN 2 WHEN "         \
    "'admin' THEN CASE WHEN k.tenant_id IS NULL THEN 5 ELSE 3 END ELSE 4 END) <= " R "::int "      \
    "AND (" S "::uuid IS NULL OR k.tenant_id = " S "::uuid)))"
#define TOKEN_LIST_SCOPE TOKEN_IN_SCOPE("$3", "$6")
#define TOKEN_REVOKE_SCOPE TOKEN_IN_SCOPE("$2", "$3")

static const char *const token_roles[] = {"admin", "owner", "member", "viewer", NULL};

/* Reads expires_at: RFC 3339 text or unix seconds, in the future. On success exactly one of
 * *unix_out (written into unix_buf) and *text_out is set, or neither when absent. */
static int body_expires(cp_req_t *r, json_t *o, char *unix_buf, size_t unix_len,
                        const char **unix_out, const char **text_out)
{
    json_t *v = json_object_get(o, "expires_at");
    *unix_out = NULL;
    *text_out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 1 || t > UNIX_MAX) {
            cp_reply_error(r, 422, "out_of_range", "expires_at",
                           "\"expires_at\" in unix seconds must be from 1 to %lld", UNIX_MAX);
            return -1;
        }
        snprintf(unix_buf, unix_len, "%lld", (long long)t);
        *unix_out = unix_buf;
    } else if (json_is_string(v)) {
        if (!tg_rfc3339_parse(json_string_value(v), json_string_length(v), false, NULL, NULL)) {
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" must be an RFC 3339 time with an offset, such as "
                           "2030-01-31T12:00:00Z, or unix seconds");
            return -1;
        }
        *text_out = json_string_value(v);
    } else {
        cp_reply_error(r, 400, "invalid_type", "expires_at",
                       "\"expires_at\" must be a string (RFC 3339) or an integer (unix seconds)");
        return -1;
    }
    const char *p[2] = {*unix_out, *text_out};
    PGresult *res = cp_db_exec(r->db, "SELECT (" EXPIRES_SQL("$1", "$2") ") > now()", 2, p);
    bool ok = cp_db_ok(res) && PQntuples(res) == 1, future = ok && PQgetvalue(res, 0, 0)[0] == 't';
    if (!ok) {
        /* a data exception: Postgres refused the time itself; anything else (no database, a
         * lost connection) is the server's, not a mistake in the request */
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && strncmp(state, "22", 2) == 0)
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" is not a valid time");
        else
            cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (!future) {
        cp_reply_error(r, 422, "invalid_value", "expires_at",
                       "\"expires_at\" must be in the future");
        return -1;
    }
    return 0;
}

/* Whether the tenant exists (platform admins have a role in every tenant id, even unknown ones).
 * Returns 1, 0, or -1 after replying with a database error. */
static int tenant_exists(cp_req_t *r, const char *tid)
{
    const char *p[1] = {tid};
    return cp_row_exists(r, "SELECT 1 FROM tenants WHERE id = $1", 1, p);
}

/* Checks that a token of `role` in `tid` (NULL: no tenant) is no wider than the caller. Returns
 * the caller's role in the tenant (CP_ROLE_NONE without one) or -1 after replying. */
static int check_scope(cp_req_t *r, const char *tid, const char *role)
{
    int want = cp_role_parse(role);
    if (tid) {
        int have = cp_role_in(r, tid);
        if (have == CP_ROLE_NONE) {
            cp_reply_error(r, 404, "not_found", "tenant_id", "no such tenant");
            return -1;
        }
        if (have == CP_ROLE_PLATFORM) {
            int e = tenant_exists(r, tid);
            if (e <= 0) {
                if (e == 0)
                    cp_reply_error(r, 404, "not_found", "tenant_id", "no such tenant");
                return -1;
            }
        }
        if (have < want) {
            cp_reply_error(r, 403, "forbidden", "role",
                           "a token cannot be wider than you: you have %s in the tenant",
                           cp_role_name(have));
            return -1;
        }
        return have;
    }
    if (strcmp(role, "admin") == 0) {
        if (!r->who.platform_admin) {
            cp_reply_error(r, 403, "forbidden", "role",
                           "role \"admin\" without \"tenant_id\" is platform scope, which only "
                           "platform admins grant; give \"tenant_id\" for a tenant admin token");
            return -1;
        }
        return CP_ROLE_NONE;
    }
    if (r->who.via_token && r->who.token_tenant[0]) {
        cp_reply_error(r, 403, "forbidden", "tenant_id",
                       "this token is limited to one tenant; tokens it creates need its "
                       "\"tenant_id\"");
        return -1;
    }
    if (r->who.via_token && r->who.token_role < want) {
        cp_reply_error(r, 403, "forbidden", "role",
                       "a token cannot be wider than the one you use (%s)",
                       cp_role_name(r->who.token_role));
        return -1;
    }
    return CP_ROLE_NONE;
}

/* A service account someone else mints a token for: only a platform admin, or an admin of the
 * tenant the token is scoped to, and then only for a service account of that tenant. */
static int check_service_account(cp_req_t *r, const char *uid, const char *tid, const char *role,
                                 int have)
{
    if (!r->who.platform_admin && !(tid && have >= CP_ROLE_ADMIN)) {
        cp_reply_error(r, 403, "forbidden", "user_id",
                       "only platform admins, or a tenant's admins for a token scoped to that "
                       "tenant, create tokens for service accounts");
        return -1;
    }
    const char *p[2] = {uid, tid};
    PGresult *res = cp_db_exec(r->db,
                               "SELECT u.is_service, u.disabled, u.is_platform_admin, EXISTS "
                               "(SELECT 1 FROM memberships m WHERE m.user_id = u.id AND "
                               "m.tenant_id = $2::uuid) FROM users u WHERE u.id = $1",
                               2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    bool found = PQntuples(res) == 1;
    bool svc = found && PQgetvalue(res, 0, 0)[0] == 't';
    bool disabled = found && PQgetvalue(res, 0, 1)[0] == 't';
    bool platform = found && PQgetvalue(res, 0, 2)[0] == 't';
    bool member = found && PQgetvalue(res, 0, 3)[0] == 't';
    PQclear(res);
    if (!found || (!r->who.platform_admin && !member)) {
        /* a tenant admin learns nothing about users outside the tenant */
        cp_reply_error(r, 404, "not_found", "user_id", "no such user");
        return -1;
    }
    if (!svc) {
        cp_reply_error(r, 422, "invalid_value", "user_id",
                       "tokens are created for yourself or for a service account");
        return -1;
    }
    if (disabled) {
        cp_reply_error(r, 422, "invalid_value", "user_id", "the service account is disabled");
        return -1;
    }
    if (!tid && strcmp(role, "admin") == 0 && !platform) {
        cp_reply_error(r, 422, "invalid_value", "role",
                       "a platform-scope token needs a platform admin service account");
        return -1;
    }
    return 0;
}

void cp_api_tokens_create(cp_req_t *r)
{
    static const char *const fields[] = {"name",       "role",    "tenant_id",
                                         "expires_at", "user_id", NULL};
    const char *name, *role, *tid, *uid, *exp_unix, *exp_text;
    char unix_buf[32], tok[64] = "", hex[65];
    uint8_t hash[32];
    json_t *o = cp_body_object(r, fields), *after = NULL;
    if (!o)
        return;
    if (cp_body_str(r, o, "name", true, 200, &name) != 0 ||
        cp_body_enum(r, o, "role", true, token_roles, &role) != 0 ||
        cp_body_str(r, o, "tenant_id", false, 36, &tid) != 0 ||
        cp_body_str(r, o, "user_id", false, 36, &uid) != 0)
        goto out;
    if (tid && !cp_is_uuid(tid)) {
        cp_reply_error(r, 422, "invalid_value", "tenant_id", "\"tenant_id\" must be a uuid");
        goto out;
    }
    if (uid && !cp_is_uuid(uid)) {
        cp_reply_error(r, 422, "invalid_value", "user_id", "\"user_id\" must be a uuid");
        goto out;
    }
    if (body_expires(r, o, unix_buf, sizeof(unix_buf), &exp_unix, &exp_text) != 0)
        goto out;
    int have = check_scope(r, tid, role);
    if (have < 0)
        goto out;
    if (uid && cp_uuid_eq(uid, r->who.user_id))
        uid = NULL;
    if (uid && check_service_account(r, uid, tid, role, have) != 0)
        goto out;
    if (cp_token_new("tgat-", tok, sizeof(tok), hash) != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not generate a token");
        goto out;
    }
    tg_hex_encode(hash, sizeof(hash), hex);
    if (cp_db_begin(r) != 0)
        goto out;
    const char *p[9] = {uid ? uid : r->who.user_id,
                        name,
                        hex,
                        tok + strlen(tok) - 4,
                        role,
                        tid,
                        exp_unix,
                        exp_text,
                        r->who.user_id};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO api_tokens AS k (user_id, name, token_hash, last4, "
                               "role, tenant_id, expires_at, created_by) VALUES ($1, $2, "
                               "decode($3, 'hex'), $4, $5, $6::uuid, " EXPIRES_SQL(
                                   "$7", "$8") ", $9) RETURNING k.id, " TOKEN_JSON,
                               9, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        goto out;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    after = cp_db_json_row(res, 0, 1);
    PQclear(res);
    if (!after) {
        cp_reply_error(r, 500, "internal", NULL, "could not read the token back");
        cp_db_rollback(r);
        goto out;
    }
    /* admin tokens are nothing a data plane reads: no config version bump */
    cp_change_t c = {tid, "token.create", "api_token", id, true};
    cp_change_reply_secret(r, &c, 201, NULL, after, "token", tok);
    after = NULL;
out:
    OPENSSL_cleanse(tok, sizeof(tok));
    json_decref(after);
    json_decref(o);
}

/* The calling token's scope for TOKEN_IN_SCOPE: its tenant and its rank (written into buf), or
 * NULL for both when the caller signed in (a session acts as its user). */
static void token_scope(const cp_req_t *r, char *buf, size_t n, const char **tenant,
                        const char **rank)
{
    *tenant = NULL;
    *rank = NULL;
    if (!r->who.via_token)
        return;
    *tenant = r->who.token_tenant[0] ? r->who.token_tenant : NULL;
    snprintf(buf, n, "%d", r->who.token_role);
    *rank = buf;
}

void cp_api_tokens_list(cp_req_t *r)
{
    cp_list_t l;
    const char *uid;
    if (cp_list_params(r, true, &l) != 0 ||
        cp_list_filter(r, "user_id", cp_is_uuid, "must be a uuid", &uid) != 0)
        return;
    if (uid && !r->who.platform_admin && !cp_uuid_eq(uid, r->who.user_id)) {
        cp_reply_error(r, 403, "forbidden", "user_id",
                       "only platform admins list another user's tokens");
        return;
    }
    /* a token sees only tokens within its own scope, not what else its user holds */
    char rank[16];
    const char *scope = NULL, *rk = NULL;
    token_scope(r, rank, sizeof(rank), &scope, &rk);
    const char *p[6] = {uid, r->who.user_id, scope, l.cursor, l.fetch, rk};
    cp_list_reply(r, &l,
                  "SELECT " TOKEN_JSON " FROM api_tokens k WHERE CASE WHEN $1::uuid IS NOT NULL "
                  "THEN k.user_id = $1::uuid ELSE (k.user_id = $2::uuid OR k.created_by = "
                  "$2::uuid) END AND " TOKEN_LIST_SCOPE
                  " AND ($4::uuid IS NULL OR k.id > $4::uuid) ORDER BY k.id LIMIT $5::int",
                  6, p, "id");
}

void cp_api_tokens_revoke(cp_req_t *r)
{
    const char *id = r->params[0];
    if (cp_path_id(r, 0, "token") != 0 || cp_db_begin(r) != 0)
        return;
    json_t *before = NULL, *after = NULL;
    char rank[16];
    const char *scope = NULL, *rk = NULL;
    token_scope(r, rank, sizeof(rank), &scope, &rk);
    const char *p[3] = {id, scope, rk};
    PGresult *res =
        cp_db_exec(r->db,
                   "SELECT " TOKEN_JSON ", k.user_id, coalesce(k.created_by::text, ''), "
                   "coalesce(k.tenant_id::text, ''), k.revoked_at IS NOT NULL, " TOKEN_REVOKE_SCOPE
                   " FROM api_tokens k WHERE k.id = $1 FOR UPDATE",
                   3, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        goto fail;
    }
    bool found = PQntuples(res) == 1, allowed = false, revoked = false;
    char tenant[37] = "";
    if (found) {
        allowed = r->who.platform_admin || cp_uuid_eq(PQgetvalue(res, 0, 1), r->who.user_id) ||
                  cp_uuid_eq(PQgetvalue(res, 0, 2), r->who.user_id);
        snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(res, 0, 3));
        if (PQgetvalue(res, 0, 5)[0] != 't')
            allowed = false; /* as in the list: a token reaches no token wider than itself */
        revoked = PQgetvalue(res, 0, 4)[0] == 't';
        before = cp_db_json_row(res, 0, 0);
    }
    PQclear(res);
    if (!found || !allowed) {
        cp_reply_error(r, 404, "not_found", NULL, "no such token");
        goto fail;
    }
    if (revoked) { /* already done: nothing changes, so nothing to audit */
        cp_db_rollback(r);
        json_decref(before);
        r->status = 204;
        tg_buf_reset(&r->out);
        return;
    }
    after = cp_change_row(
        r, "UPDATE api_tokens AS k SET revoked_at = now() WHERE k.id = $1 RETURNING " TOKEN_JSON, 1,
        p, 0);
    if (!after)
        goto fail;
    cp_change_t c = {tenant[0] ? tenant : NULL, "token.revoke", "api_token", id, true};
    cp_change_reply(r, &c, 204, before, after); /* takes after */
    json_decref(before);
    return;
fail:
    cp_db_rollback(r);
    json_decref(before);
    json_decref(after);
}

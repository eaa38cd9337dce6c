/* session.c: login, logout and the caller's own profile. Failed logins are limited per account
 * (locked for a while after 5 in a row) and per source address (a small in-memory window per
 * replica). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

#define ACCOUNT_LOCK_MINUTES "15"
#define IP_MAX_FAILS 20
#define IP_WINDOW_S 300
#define IP_SLOTS 1024

int cp_jwt_issue(const char *user_id, char *out, size_t outlen, long *exp_out);

static struct {
    pthread_mutex_t mu;
    struct {
        char ip[64];
        int fails;
        time_t since;
    } slot[IP_SLOTS];
} ipwin = {PTHREAD_MUTEX_INITIALIZER, {{{0}, 0, 0}}};

/* Counts a failure (fail=true) or asks whether the address is over its limit. */
static bool ip_limited(const char *ip, bool fail)
{
    size_t i = tg_fnv1a(ip, strlen(ip)) % IP_SLOTS;
    time_t now = time(NULL);
    bool limited;
    pthread_mutex_lock(&ipwin.mu);
    if (strcmp(ipwin.slot[i].ip, ip) != 0 || now - ipwin.slot[i].since > IP_WINDOW_S) {
        snprintf(ipwin.slot[i].ip, sizeof(ipwin.slot[i].ip), "%s", ip);
        ipwin.slot[i].fails = 0;
        ipwin.slot[i].since = now;
    }
    if (fail)
        ipwin.slot[i].fails++;
    limited = ipwin.slot[i].fails >= IP_MAX_FAILS;
    pthread_mutex_unlock(&ipwin.mu);
    return limited;
}

/* A real argon2id verify for unknown accounts, so response time does not reveal them. */
static char dummy[256];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    if (cp_password_hash("tollgate-no-such-user", dummy, sizeof(dummy)) != 0)
        dummy[0] = '\0';
}

void cp_api_login(cp_req_t *r)
{
    static const char *const fields[] = {"email", "password", NULL};
    const char *email, *pw;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (cp_body_str(r, o, "email", true, 254, &email) != 0 ||
        cp_body_str(r, o, "password", true, 1024, &pw) != 0)
        goto out;
    if (ip_limited(r->ip, false)) {
        snprintf(r->extra_headers, sizeof(r->extra_headers), "Retry-After: %d\r\n", IP_WINDOW_S);
        cp_reply_error(r, 429, "too_many_attempts", NULL,
                       "too many failed logins from this address; try again later");
        goto out;
    }
    if (!r->db) {
        cp_reply_error(r, 503, "database_unavailable", NULL, "the database is unreachable");
        goto out;
    }
    const char *p[1] = {email};
    PGresult *res = cp_db_exec(r->db,
                               "SELECT id, coalesce(password_hash, ''), disabled, "
                               "coalesce(locked_until > now(), false) FROM users "
                               "WHERE lower(email) = lower($1) AND NOT is_service",
                               1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        goto out;
    }
    bool found = PQntuples(res) == 1;
    char user_id[37] = "";
    bool ok = false, locked = false;
    if (found) {
        snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(res, 0, 0));
        locked = PQgetvalue(res, 0, 3)[0] == 't';
        const char *hash = PQgetvalue(res, 0, 1);
        ok = hash[0] && cp_password_verify(hash, pw) && PQgetvalue(res, 0, 2)[0] != 't';
    } else {
        pthread_once(&dummy_once, dummy_init);
        if (dummy[0])
            (void)cp_password_verify(dummy, pw);
    }
    PQclear(res);
    if (locked) {
        cp_reply_error(r, 429, "account_locked", NULL,
                       "this account is locked after repeated failed logins; try again in "
                       "%s minutes",
                       ACCOUNT_LOCK_MINUTES);
        goto out;
    }
    if (!ok) {
        ip_limited(r->ip, true);
        if (found) {
            const char *q[1] = {user_id};
            PQclear(cp_db_exec(r->db,
                               "UPDATE users SET failed_logins = failed_logins + 1, locked_until = "
                               "CASE WHEN failed_logins + 1 >= 5 /* in a row */ THEN now() + "
                               "interval '" ACCOUNT_LOCK_MINUTES
                               " minutes' ELSE locked_until END WHERE id = $1",
                               1, q));
        }
        tg_log(TG_LOG_INFO, "cp_auth", "login_failed", "ip=%s known_account=%d", r->ip, found);
        cp_reply_error(r, 401, "invalid_credentials", NULL, "wrong email or password");
        goto out;
    }
    const char *q[1] = {user_id};
    PQclear(cp_db_exec(
        r->db, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", 1, q));
    char token[2048];
    long exp;
    if (cp_jwt_issue(user_id, token, sizeof(token), &exp) != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not issue a session token");
        goto out;
    }
    cp_reply_json(r, 200,
                  json_pack("{s:s,s:s,s:I,s:s}", "token", token, "token_type", "Bearer",
                            "expires_at", (json_int_t)exp, "user_id", user_id));
out:
    json_decref(o);
}

void cp_api_logout(cp_req_t *r)
{
    if (!r->who.jti[0]) {
        cp_reply_error(r, 400, "not_a_session", NULL,
                       "logout ends a login session; revoke API tokens through /api/v1/tokens");
        return;
    }
    char exp[32];
    snprintf(exp, sizeof(exp), "%lld", (long long)r->who.jwt_exp);
    const char *p[2] = {r->who.jti, exp};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO revoked_jwts (jti, expires_at) VALUES ($1, "
                               "to_timestamp($2::bigint)) ON CONFLICT DO NOTHING",
                               2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    PQclear(res);
    PQclear(cp_db_exec(r->db, "DELETE FROM revoked_jwts WHERE expires_at < now()", 0, NULL));
    r->status = 204;
    tg_buf_reset(&r->out);
}

void cp_api_me(cp_req_t *r)
{
    const char *p[1] = {r->who.user_id};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.name, "
        "'is_platform_admin', u.is_platform_admin, 'memberships', coalesce((SELECT "
        "json_agg(json_build_object('tenant_id', t.id, 'slug', t.slug, 'name', t.name, 'role', "
        "m.role) ORDER BY t.slug) FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE "
        "m.user_id = u.id), '[]'::json)) FROM users u WHERE u.id = $1",
        1, p);
    json_t *me = cp_db_json_row(res, 0, 0);
    PQclear(res);
    if (!me) {
        cp_reply_error(r, 503, "database_unavailable", NULL, "could not read your profile");
        return;
    }
    if (r->who.via_token)
        json_object_set_new(me, "token",
                            json_pack("{s:s,s:s,s:s?}", "id", r->who.token_id, "role",
                                      cp_role_name(r->who.token_role), "tenant_id",
                                      r->who.token_tenant[0] ? r->who.token_tenant : NULL));
    cp_reply_json(r, 200, me);
}

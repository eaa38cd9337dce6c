/* session.c: login, logout and the caller's own profile. Failed logins are limited per (email,
 * source address) in the database, with waits that grow after 5 failures in a row, so
 * that nobody can lock another address out of an account; and per source address (a small
 * in-memory window per replica). Runs on MHD worker threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

/* Failures in a row from one address before each further attempt waits 1 s, 2 s, 4 s, ... */
#define LOGIN_FREE_FAILURES "5"
#define LOGIN_MAX_DELAY_S "900" /* the longest wait: 15 minutes */
#define LOGIN_FORGET "1 day"    /* a run of failures this old starts again from 1 */
/* the wait after n failures in a row (n >= LOGIN_FREE_FAILURES), as an SQL interval */
#define LOGIN_DELAY(n)                                                                             \
    "make_interval(secs => least(power(2, " n " - " LOGIN_FREE_FAILURES "), " LOGIN_MAX_DELAY_S "))"
/* the count after this failure, in the ON CONFLICT update of login_failures AS f */
#define LOGIN_NEXT_FAILURES                                                                        \
    "(CASE WHEN f.last_failure < now() - interval '" LOGIN_FORGET "' THEN 1 ELSE f.failures + 1 "  \
    "END)"
/* An attempt that starts a wait holds it, while its password is checked, this much longer: the
 * wait itself starts when the check has failed (a crash mid-check costs this at most) */
#define LOGIN_CHECK_HOLD "interval '30 seconds'"
#define LOGIN_NEXT_DELAY LOGIN_DELAY(LOGIN_NEXT_FAILURES)
#define LOGIN_ROW_DELAY LOGIN_DELAY("f.failures")
#define IP_MAX_FAILS 20
#define IP_WINDOW_S 300
#define IP_SLOTS 1024

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

/* Counts this attempt as a failure of (email, address) before the password is checked, in one
 * statement: the row lock orders concurrent attempts, so no more than five of them are ever
 * checked before the waits start (a success deletes the row again). Returns 1 when the attempt
 * may go on (its number in the run in *nth, as text), 0 when the pair is waiting (*wait_s set),
 * -1 after replying with a database error. */
static int login_attempt_begin(cp_req_t *r, const char *email, char *nth, size_t nthlen,
                               long long *wait_s)
{
    const char *p[2] = {email, r->ip};
    PGresult *res = cp_db_exec(
        r->db,
        "INSERT INTO login_failures AS f (email, source, failures) VALUES (lower($1), $2, 1) "
        "ON CONFLICT (email, source) DO UPDATE SET failures = " LOGIN_NEXT_FAILURES
        ", locked_until = CASE WHEN " LOGIN_NEXT_FAILURES " >= " LOGIN_FREE_FAILURES
        " THEN now() + " LOGIN_NEXT_DELAY " + " LOGIN_CHECK_HOLD " END, last_failure = now() "
        "WHERE f.locked_until IS NULL OR f.locked_until <= now() RETURNING f.failures",
        2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int go = PQntuples(res) == 1;
    bool first = go && strcmp(PQgetvalue(res, 0, 0), "1") == 0;
    if (go)
        snprintf(nth, nthlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (first) /* a new run of failures: sweep the runs nobody continued */
        PQclear(cp_db_exec(r->db,
                           "DELETE FROM login_failures WHERE last_failure < now() - "
                           "interval '" LOGIN_FORGET "'",
                           0, NULL));
    if (go)
        return 1;
    res = cp_db_exec(
        r->db,
        /* while a check holds the wait, the wait it will start */
        "SELECT greatest(1, ceil(extract(epoch FROM least(f.locked_until - now(), " LOGIN_ROW_DELAY
        "))))::bigint FROM login_failures AS f WHERE f.email = "
        "lower($1) AND f.source = $2",
        2, p);
    *wait_s = 1;
    if (cp_db_ok(res) && PQntuples(res) == 1)
        *wait_s = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* The nth attempt's password was wrong: if it started a wait (and no later attempt has since),
 * the wait runs from now, so that no attempt is checked while it is in progress. */
static void login_attempt_failed(cp_req_t *r, const char *email, const char *nth)
{
    const char *p[3] = {email, r->ip, nth};
    PQclear(cp_db_exec(r->db,
                       "UPDATE login_failures AS f SET locked_until = now() + " LOGIN_ROW_DELAY
                       " WHERE f.email = lower($1) AND f.source = $2 AND f.failures = $3::integer "
                       "AND f.failures >= " LOGIN_FREE_FAILURES,
                       3, p));
}

void cp_api_login(cp_req_t *r)
{
    static const char *const fields[] = {"email", "password", "cookie", NULL};
    const char *email, *pw;
    bool has_cookie = false, cookie = false;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (cp_body_str(r, o, "email", true, 254, &email) != 0 ||
        cp_body_str(r, o, "password", true, 1024, &pw) != 0 ||
        cp_body_bool(r, o, "cookie", &has_cookie, &cookie) != 0)
        goto out;
    /* a page of another origin must not sign a browser in to an account of its choosing
     * (login CSRF): a browser sends Origin with every POST */
    if (cookie && !cp_csrf_origin_ok(r))
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
    long long wait_s = 0;
    char nth[16] = "";
    int go = login_attempt_begin(r, email, nth, sizeof(nth), &wait_s);
    if (go < 0)
        goto out;
    if (go == 0) {
        /* the same answer whether or not the email names an account */
        snprintf(r->extra_headers, sizeof(r->extra_headers), "Retry-After: %lld\r\n", wait_s);
        cp_reply_error(r, 429, "account_locked", NULL,
                       "too many failed logins for this email from your address; try again in "
                       "%lld s",
                       wait_s);
        goto out;
    }
    const char *p[1] = {email};
    PGresult *res = cp_db_exec(r->db,
                               "SELECT id, coalesce(password_hash, ''), disabled, session_gen "
                               "FROM users WHERE lower(email) = lower($1) AND NOT is_service",
                               1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        goto out;
    }
    bool found = PQntuples(res) == 1;
    char user_id[37] = "";
    long long gen = 0;
    bool ok = false;
    const char *hash = found ? PQgetvalue(res, 0, 1) : "";
    if (hash[0]) {
        snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(res, 0, 0));
        gen = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        ok = cp_password_verify(hash, pw) && PQgetvalue(res, 0, 2)[0] != 't';
    } else {
        /* no account, or one without a password: the same argon2 work, so the time to answer
         * does not tell them apart */
        pthread_once(&dummy_once, dummy_init);
        if (dummy[0])
            (void)cp_password_verify(dummy, pw);
    }
    PQclear(res);
    if (!ok) {
        ip_limited(r->ip, true);
        login_attempt_failed(r, email, nth);
        tg_log(TG_LOG_INFO, "cp_auth", "login_failed", "ip=%s known_account=%d", r->ip, found);
        cp_reply_error(r, 401, "invalid_credentials", NULL, "wrong email or password");
        goto out;
    }
    const char *q[2] = {email, r->ip};
    PQclear(cp_db_exec(r->db, "DELETE FROM login_failures WHERE email = lower($1) AND source = $2",
                       2, q));
    char token[2048], jti[33], csrf[44];
    long exp;
    if (cp_jwt_issue(user_id, gen, token, sizeof(token), &exp, jti) != 0 ||
        (cookie && !cp_csrf_token(jti, csrf))) {
        cp_reply_error(r, 500, "internal", NULL, "could not issue a session token");
        goto out;
    }
    if (cookie) {
        /* the JWT only in the HttpOnly cookie, so that no script of the page can read it */
        cp_session_cookie_set(r, token, exp);
        cp_reply_json(r, 200,
                      json_pack("{s:s,s:I,s:s,s:s}", "token_type", "Cookie", "expires_at",
                                (json_int_t)exp, "user_id", user_id, "csrf_token", csrf));
    } else {
        cp_reply_json(r, 200,
                      json_pack("{s:s,s:s,s:I,s:s}", "token", token, "token_type", "Bearer",
                                "expires_at", (json_int_t)exp, "user_id", user_id));
    }
out:
    json_decref(o);
}

void cp_session_cookie_set(cp_req_t *r, const char *token, long exp)
{
    long max_age = 0;
    if (token[0]) {
        max_age = exp - (long)time(NULL);
        if (max_age < 1)
            max_age = 1;
    }
    size_t n = strlen(r->extra_headers), room = sizeof(r->extra_headers) - n;
    int w = snprintf(r->extra_headers + n, room,
                     "Set-Cookie: " CP_SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; "
                     "Max-Age=%ld%s\r\n",
                     token, max_age, cp_opts->secure_cookies ? "; Secure" : "");
    if (w < 0 || (size_t)w >= room) {
        /* a session JWT is a few hundred bytes; never send a cut one */
        r->extra_headers[n] = '\0';
        tg_log(TG_LOG_ERROR, "cp_auth", "session_cookie_too_long", "bytes=%d", w);
    }
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
    if (r->who.via_cookie)
        cp_session_cookie_set(r, "", 0);
}

void cp_api_me(cp_req_t *r)
{
    /* a tenant-scoped token sees its own tenant, not the other tenants its user belongs to */
    const char *scope = r->who.via_token && r->who.token_tenant[0] ? r->who.token_tenant : NULL;
    const char *p[2] = {r->who.user_id, scope};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.name, "
        "'is_platform_admin', u.is_platform_admin, 'memberships', coalesce((SELECT "
        "json_agg(json_build_object('tenant_id', t.id, 'slug', t.slug, 'name', t.name, 'role', "
        "m.role) ORDER BY t.slug) FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE "
        "m.user_id = u.id AND ($2::uuid IS NULL OR m.tenant_id = $2::uuid)), '[]'::json)) FROM "
        "users u WHERE u.id = $1",
        2, p);
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
    char csrf[44];
    if (r->who.via_cookie && cp_csrf_token(r->who.jti, csrf)) {
        /* a reloaded page learns its CSRF token again here; nothing is kept in the browser */
        json_object_set_new(me, "csrf_token", json_string(csrf));
        json_object_set_new(me, "expires_at", json_integer((json_int_t)r->who.jwt_exp));
    }
    cp_reply_json(r, 200, me);
}

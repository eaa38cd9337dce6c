/* auth.c: who is calling. Passwords are argon2id; sessions are short-lived HS256 JWTs (libjwt);
 * automation uses admin API tokens ("tgat-..."), stored as SHA-256. Runs on MHD worker threads. */
#include <errno.h>
#include <jwt.h>
#include <microhttpd.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cp.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

/* Loads the caller's user; with gen >= 0 (a session), only while the user's session generation
 * is still gen: a password change bumps it, which ends every session issued before. */
static bool load_user(cp_req_t *r, const char *user_id, long long gen)
{
    char genbuf[24];
    snprintf(genbuf, sizeof(genbuf), "%lld", gen);
    const char *p[2] = {user_id, gen >= 0 ? genbuf : NULL};
    PGresult *res = cp_db_exec(r->db,
                               "SELECT email, is_platform_admin FROM users WHERE id = $1 AND NOT "
                               "disabled AND ($2::integer IS NULL OR session_gen = $2::integer)",
                               2, p);
    bool ok = cp_db_ok(res) && PQntuples(res) == 1;
    if (ok) {
        snprintf(r->who.user_id, sizeof(r->who.user_id), "%s", user_id);
        snprintf(r->who.label, sizeof(r->who.label), "user:%s", PQgetvalue(res, 0, 0));
        r->who.platform_admin = PQgetvalue(res, 0, 1)[0] == 't';
        r->who.user_platform_admin = r->who.platform_admin;
    }
    PQclear(res);
    return ok;
}

static void resolve_api_token(cp_req_t *r, const char *tok)
{
    uint8_t h[32];
    char hex[65];
    tg_sha256(tok, strlen(tok), h);
    tg_hex_encode(h, 32, hex);
    const char *p[1] = {hex};
    PGresult *res = cp_db_exec(
        r->db,
        "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = decode($1, 'hex') AND "
        "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
        "RETURNING id, user_id, role, coalesce(tenant_id::text, '')",
        1, p);
    if (cp_db_ok(res) && PQntuples(res) == 1 && load_user(r, PQgetvalue(res, 0, 1), -1)) {
        r->who.authenticated = true;
        r->who.via_token = true;
        snprintf(r->who.token_id, sizeof(r->who.token_id), "%s", PQgetvalue(res, 0, 0));
        const char *role = PQgetvalue(res, 0, 2);
        r->who.token_role =
            strcmp(role, "admin") == 0 && !PQgetvalue(res, 0, 3)[0] && r->who.platform_admin
                ? CP_ROLE_PLATFORM
                : cp_role_parse(role);
        snprintf(r->who.token_tenant, sizeof(r->who.token_tenant), "%s", PQgetvalue(res, 0, 3));
        /* a token is never wider than its role: only a platform-role token acts as platform */
        r->who.platform_admin = r->who.platform_admin && r->who.token_role == CP_ROLE_PLATFORM;
        size_t n = strlen(r->who.label);
        if (n + 7 + 36 < sizeof(r->who.label)) {
            memcpy(r->who.label + n, " token:", 7);
            memcpy(r->who.label + n + 7, r->who.token_id, strlen(r->who.token_id) + 1);
        }
    }
    PQclear(res);
}

static void resolve_jwt(cp_req_t *r, const char *tok)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, tok, (const unsigned char *)cp_opts->jwt_secret,
                   (int)cp_opts->jwt_secret_len) != 0)
        return; /* bad signature, malformed, or alg:none with a key given */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;
    long exp = jwt_get_grant_int(jwt, "exp");
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *jti = jwt_get_grant(jwt, "jti");
    /* 0 when absent: sessions issued before the generation claim existed are generation 0 */
    long gen = jwt_get_grant_int(jwt, "gen");
    if (exp <= (long)time(NULL) || !sub || !cp_is_uuid(sub) || !jti || strlen(jti) >= 64 ||
        gen < 0 || gen > INT32_MAX)
        goto out;
    const char *p[1] = {jti};
    PGresult *res = cp_db_exec(r->db, "SELECT 1 FROM revoked_jwts WHERE jti = $1", 1, p);
    bool revoked = !cp_db_ok(res) || PQntuples(res) > 0;
    PQclear(res);
    if (revoked || !load_user(r, sub, gen))
        goto out;
    r->who.authenticated = true;
    r->who.jwt_exp = exp;
    snprintf(r->who.jti, sizeof(r->who.jti), "%s", jti);
out:
    jwt_free(jwt);
}

void cp_auth_resolve(cp_req_t *r)
{
    memset(&r->who, 0, sizeof(r->who));
    if (!r->db)
        return;
    const char *a = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "Authorization");
    if (!a) {
        /* a browser's session: never together with an Authorization header (that one wins,
         * valid or not), and never an API token */
        const char *c = MHD_lookup_connection_value(r->mhd, MHD_COOKIE_KIND, CP_SESSION_COOKIE);
        if (!c || !*c || strlen(c) > 4096 || strncmp(c, "tgat-", 5) == 0)
            return;
        resolve_jwt(r, c);
        r->who.via_cookie = r->who.authenticated;
        return;
    }
    if (strncasecmp(a, "Bearer ", 7) != 0)
        return;
    const char *tok = a + 7;
    while (*tok == ' ')
        tok++;
    if (strlen(tok) > 4096)
        return;
    if (strncmp(tok, "tgat-", 5) == 0)
        resolve_api_token(r, tok);
    else
        resolve_jwt(r, tok);
}

/* Whether an Origin header names the host the request was sent to (any scheme: TLS may end in
 * front of us). "null" and anything unparsable do not. */
static bool origin_matches_host(const char *origin, const char *host)
{
    const char *rest = NULL;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return rest && host && *host && strcasecmp(rest, host) == 0;
}

bool cp_csrf_origin_ok(cp_req_t *r)
{
    const char *origin = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "Origin");
    if (origin && !origin_matches_host(
                      origin, MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "Host"))) {
        cp_reply_error(r, 403, "csrf_failed", NULL,
                       "the request comes from another origin than this server's; session "
                       "cookies are only good for the dashboard served here");
        return false;
    }
    return true;
}

bool cp_csrf_check(cp_req_t *r)
{
    if (!r->who.via_cookie)
        return true;
    if (!cp_csrf_origin_ok(r))
        return false;
    const char *m = r->method;
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0)
        return true;
    const char *sent = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "X-CSRF-Token");
    char want[44];
    if (!sent || strlen(sent) != 43 || !cp_csrf_token(r->who.jti, want) ||
        !tg_ct_eq(sent, want, 43)) {
        cp_reply_error(r, 403, "csrf_failed", NULL,
                       "a change through a session cookie needs the header X-CSRF-Token with the "
                       "csrf_token from login or GET /api/v1/me");
        return false;
    }
    return true;
}

int cp_jwt_issue(const char *user_id, long long gen, char *out, size_t outlen, long *exp_out,
                 char jti_out[33])
{
    jwt_t *jwt = NULL;
    uint8_t rnd[16];
    char jti[33];
    int rc = TG_EIO;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1 || jwt_new(&jwt) != 0)
        return TG_EIO;
    tg_hex_encode(rnd, sizeof(rnd), jti);
    long now = (long)time(NULL);
    long exp = now + (long)cp_opts->jwt_ttl_s;
    if (jwt_add_grant(jwt, "sub", user_id) == 0 && jwt_add_grant(jwt, "jti", jti) == 0 &&
        jwt_add_grant_int(jwt, "iat", now) == 0 && jwt_add_grant_int(jwt, "exp", exp) == 0 &&
        jwt_add_grant_int(jwt, "gen", (long)gen) == 0 &&
        jwt_add_grant(jwt, "iss", "tollgate") == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)cp_opts->jwt_secret,
                    (int)cp_opts->jwt_secret_len) == 0) {
        char *s = jwt_encode_str(jwt);
        if (s && strlen(s) < outlen) {
            memcpy(out, s, strlen(s) + 1);
            *exp_out = exp;
            if (jti_out)
                memcpy(jti_out, jti, sizeof(jti));
            rc = 0;
        }
        free(s);
    }
    jwt_free(jwt);
    return rc;
}

int cp_ensure_first_admin(void)
{
    PGconn *c = cp_db();
    if (!c)
        return TG_EIO;
    PGresult *res = cp_db_exec(c, "SELECT 1 FROM users WHERE is_platform_admin LIMIT 1", 0, NULL);
    bool have = cp_db_ok(res) && PQntuples(res) > 0;
    bool ok = cp_db_ok(res);
    PQclear(res);
    if (!ok)
        return TG_EIO;
    if (have)
        return 0;
    const char *email = cp_opts->admin_email ? cp_opts->admin_email : "admin@localhost";
    char generated[64] = "";
    const char *pw = cp_opts->admin_password;
    if (!pw || !*pw) {
        uint8_t h[32];
        if (cp_token_new("", generated, sizeof(generated), h) != 0)
            return TG_EIO;
        generated[24] = '\0';
        pw = generated;
    }
    char hash[256];
    if (cp_password_hash(pw, hash, sizeof(hash)) != 0)
        return TG_EIO;
    const char *p[2] = {email, hash};
    res = cp_db_exec(c,
                     "INSERT INTO users (email, name, password_hash, is_platform_admin) VALUES "
                     "($1, 'Platform admin', $2, true) ON CONFLICT DO NOTHING",
                     2, p);
    ok = cp_db_ok(res);
    PQclear(res);
    if (!ok)
        return TG_EIO;
    tg_log(TG_LOG_INFO, "cp_auth", "first_admin_created", "email=%s", email);
    if (generated[0]) {
        /* shown once, on stdout, never in the log stream */
        printf("Tollgate first admin: %s  password: %s\n", email, generated);
        fflush(stdout);
    }
    return 0;
}

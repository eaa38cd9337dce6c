/* test_cp_auth.c: what auth.c decides without a database: the session JWT it issues (claims,
 * expiry, signature), and the cross-site checks of a cookie-authenticated request (Origin against
 * Host, X-CSRF-Token), through real requests. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cp.h"
#include "cp_mhd.h"
#include "tg_err.h"

static cp_opts_t test_opts;

static void with_secret(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    snprintf(test_opts.jwt_secret, sizeof(test_opts.jwt_secret), "a unit test's jwt secret");
    test_opts.jwt_secret_len = strlen(test_opts.jwt_secret);
    test_opts.jwt_ttl_s = 3600;
    cp_opts = &test_opts;
}

static void start(void)
{
    with_secret();
    mhd_start();
}

TestSuite(cp_auth, .init = with_secret);

#define USER "0b5c3f1e-8a2d-4c6b-9e7f-1a2b3c4d5e6f"

Test(cp_auth, a_session_jwt_carries_its_user_generation_jti_and_expiry)
{
    char tok[1024], jti[33];
    long exp = 0;
    long before = (long)time(NULL);
    cr_assert_eq(cp_jwt_issue(USER, 7, tok, sizeof(tok), &exp, jti), 0);
    long after = (long)time(NULL);
    cr_assert(exp >= before + 3600 && exp <= after + 3600, "exp %ld", exp);
    cr_assert_eq(strlen(jti), 32);
    cr_assert_eq(strspn(jti, "0123456789abcdef"), 32, "%s", jti);
    jwt_t *j = NULL;
    cr_assert_eq(jwt_decode(&j, tok, (const unsigned char *)test_opts.jwt_secret,
                            (int)test_opts.jwt_secret_len),
                 0);
    cr_assert_eq(jwt_get_alg(j), JWT_ALG_HS256);
    cr_assert_str_eq(jwt_get_grant(j, "sub"), USER);
    cr_assert_str_eq(jwt_get_grant(j, "jti"), jti);
    cr_assert_str_eq(jwt_get_grant(j, "iss"), "tollgate");
    cr_assert_eq(jwt_get_grant_int(j, "gen"), 7);
    cr_assert_eq(jwt_get_grant_int(j, "exp"), exp);
    cr_assert_eq(jwt_get_grant_int(j, "exp") - jwt_get_grant_int(j, "iat"), 3600);
    jwt_free(j);
}

Test(cp_auth, a_session_jwt_is_signed_with_the_secret_and_unique)
{
    char a[1024], b[1024], ja[33], jb[33];
    long exp;
    cr_assert_eq(cp_jwt_issue(USER, 1, a, sizeof(a), &exp, ja), 0);
    cr_assert_eq(cp_jwt_issue(USER, 1, b, sizeof(b), &exp, jb), 0);
    cr_assert_str_neq(ja, jb);
    cr_assert_str_neq(a, b);
    jwt_t *j = NULL;
    const char *other = "another secret";
    cr_assert_neq(jwt_decode(&j, a, (const unsigned char *)other, (int)strlen(other)), 0);
    jwt_free(j);
}

Test(cp_auth, a_jwt_that_does_not_fit_is_an_error_and_writes_nothing)
{
    char tok[1024];
    long exp = -1;
    cr_assert_eq(cp_jwt_issue(USER, 1, tok, sizeof(tok), &exp, NULL), 0);
    size_t n = strlen(tok);
    char small[1024];
    memset(small, 'x', sizeof(small));
    long exp2 = -1;
    /* n + 1 bytes (with the NUL) fit; n do not; the claims are the same length each time */
    cr_assert_eq(cp_jwt_issue(USER, 1, small, n, &exp2, NULL), TG_EIO);
    cr_assert_eq(exp2, -1);
    cr_assert_eq(small[0], 'x');
    cr_assert_eq(cp_jwt_issue(USER, 1, small, n + 1, &exp2, NULL), 0);
    cr_assert_eq(strlen(small), n);
}

Test(cp_auth, no_database_resolves_no_one)
{
    cp_req_t r;
    memset(&r, 0, sizeof(r));
    r.who.authenticated = true;
    r.who.platform_admin = true;
    cp_auth_resolve(&r);
    cr_assert_not(r.who.authenticated);
    cr_assert_not(r.who.platform_admin);
}

/* ---- cross-site checks, through real requests ---- */

static bool verdict;
static bool via_cookie;
static char jti[64] = "0123456789abcdef0123456789abcdef";

static void origin(cp_req_t *r)
{
    verdict = cp_csrf_origin_ok(r);
    if (verdict)
        r->status = 200;
}

static void csrf(cp_req_t *r)
{
    r->who.via_cookie = via_cookie;
    snprintf(r->who.jti, sizeof(r->who.jti), "%s", jti);
    verdict = cp_csrf_check(r);
    if (verdict)
        r->status = 200;
}

static const char *const other_origin =
    "the request comes from another origin than this server's; session cookies are only good for "
    "the dashboard served here";

/* Sends Origin (NULL: none) and expects the verdict. */
static void expect_origin(const char *value, bool ok)
{
    char h[300];
    const char *headers[] = {h, NULL};
    snprintf(h, sizeof(h), "Origin: %s", value ? value : "");
    mhd_call(origin, "GET", "/api/v1/me", value ? headers : NULL, NULL, 0);
    cr_assert_eq(verdict, ok, "Origin %s", value ? value : "(none)");
    if (ok) {
        cr_assert_eq(mhd_status, 200);
    } else {
        char code[64], msg[256];
        mhd_error(code, sizeof(code), msg, sizeof(msg));
        cr_assert_eq(mhd_status, 403);
        cr_assert_str_eq(code, "csrf_failed");
        cr_assert_str_eq(msg, other_origin);
    }
}

Test(cp_auth, an_origin_must_name_the_host_the_request_was_sent_to, .init = start, .fini = mhd_stop)
{
    char same[64], upper[64], tls[64], port[64], slash[64];
    snprintf(same, sizeof(same), "http://127.0.0.1:%d", mhd_port);
    snprintf(upper, sizeof(upper), "HTTP://127.0.0.1:%d", mhd_port);
    snprintf(tls, sizeof(tls), "https://127.0.0.1:%d", mhd_port); /* TLS ended in front */
    snprintf(port, sizeof(port), "http://127.0.0.1:%d", mhd_port + 1);
    snprintf(slash, sizeof(slash), "http://127.0.0.1:%d/", mhd_port);
    expect_origin(NULL, true);
    expect_origin(same, true);
    expect_origin(upper, true);
    expect_origin(tls, true);
    expect_origin(port, false);
    expect_origin(slash, false);
    expect_origin("null", false);
    expect_origin("127.0.0.1", false);
    expect_origin("http://evil.example", false);
}

static const char *const no_token = "a change through a session cookie needs the header "
                                    "X-CSRF-Token with the csrf_token from login or GET /api/v1/me";

Test(cp_auth, a_cookie_change_needs_the_sessions_csrf_token, .init = start, .fini = mhd_stop)
{
    char want[44], h[100], code[64], msg[256];
    cr_assert(cp_csrf_token(jti, want));
    const char *headers[] = {h, NULL};
    /* no cookie: no check */
    via_cookie = false;
    mhd_call(csrf, "POST", "/api/v1/tenants", NULL, "{}", 2);
    cr_assert(verdict);
    via_cookie = true;
    /* reading needs no token */
    mhd_call(csrf, "GET", "/api/v1/tenants", NULL, NULL, 0);
    cr_assert(verdict);
    mhd_call(csrf, "POST", "/api/v1/tenants", NULL, "{}", 2);
    cr_assert_not(verdict);
    cr_assert_eq(mhd_status, 403);
    mhd_error(code, sizeof(code), msg, sizeof(msg));
    cr_assert_str_eq(code, "csrf_failed");
    cr_assert_str_eq(msg, no_token);
    snprintf(h, sizeof(h), "X-CSRF-Token: %s", want);
    mhd_call(csrf, "DELETE", "/api/v1/tenants/x", headers, NULL, 0);
    cr_assert(verdict);
    cr_assert_eq(mhd_status, 200);
    /* one character off, one short, one long */
    want[42] = want[42] == 'A' ? 'B' : 'A';
    snprintf(h, sizeof(h), "X-CSRF-Token: %s", want);
    mhd_call(csrf, "POST", "/api/v1/tenants", headers, "{}", 2);
    cr_assert_not(verdict);
    cr_assert(cp_csrf_token(jti, want));
    snprintf(h, sizeof(h), "X-CSRF-Token: %.42s", want);
    mhd_call(csrf, "POST", "/api/v1/tenants", headers, "{}", 2);
    cr_assert_not(verdict);
    snprintf(h, sizeof(h), "X-CSRF-Token: %sA", want);
    mhd_call(csrf, "POST", "/api/v1/tenants", headers, "{}", 2);
    cr_assert_not(verdict);
    /* another session's token */
    snprintf(jti, sizeof(jti), "ffffffffffffffffffffffffffffffff");
    snprintf(h, sizeof(h), "X-CSRF-Token: %s", want);
    mhd_call(csrf, "PATCH", "/api/v1/tenants/x", headers, "{}", 2);
    cr_assert_not(verdict);
}

Test(cp_auth, a_cookie_request_from_another_origin_fails_before_its_token_is_read, .init = start,
     .fini = mhd_stop)
{
    char want[44], h1[100], code[64], msg[256];
    cr_assert(cp_csrf_token(jti, want));
    snprintf(h1, sizeof(h1), "X-CSRF-Token: %s", want);
    const char *headers[] = {h1, "Origin: http://evil.example", NULL};
    via_cookie = true;
    mhd_call(csrf, "GET", "/api/v1/tenants", headers, NULL, 0);
    cr_assert_not(verdict);
    mhd_error(code, sizeof(code), msg, sizeof(msg));
    cr_assert_str_eq(msg, other_origin);
}

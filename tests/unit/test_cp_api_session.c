/* test_cp_api_session.c: what POST /api/v1/auth/login checks before the database
 * (api/session.c): the body's fields and lengths, and that a login asking for a session cookie
 * comes from this server's own origin (login CSRF), through real requests. A valid login gets as
 * far as the database, which answers 503 here: there is none. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_mhd.h"

TestSuite(cp_api_session, .init = mhd_start, .fini = mhd_stop);

static void expect(const char *const *headers, const char *body, int status, const char *code,
                   const char *message)
{
    char c[64], m[256];
    cr_assert_eq(mhd_call(cp_api_login, "POST", "/api/v1/auth/login", headers, body, strlen(body)),
                 status, "%s: %s", body, mhd_body);
    mhd_error(c, sizeof(c), m, sizeof(m));
    cr_assert_str_eq(c, code, "%s", body);
    cr_assert_str_eq(m, message, "%s", body);
}

static const char *const unreachable = "the database is unreachable";

Test(cp_api_session, a_login_is_an_email_and_a_password)
{
    expect(NULL, "{\"email\":\"a@b\",\"password\":\"p\"}", 503, "database_unavailable",
           unreachable);
    expect(NULL, "{\"password\":\"p\"}", 400, "missing_field", "\"email\" is required");
    expect(NULL, "{\"email\":\"a@b\"}", 400, "missing_field", "\"password\" is required");
    expect(NULL, "{\"email\":\"a@b\",\"password\":\"p\",\"remember\":true}", 400, "unknown_field",
           "unknown field \"remember\"");
    expect(NULL, "{\"email\":\"a@b\",\"password\":\"p\",\"cookie\":\"yes\"}", 400, "invalid_type",
           "\"cookie\" must be a boolean");
    expect(NULL, "{\"email\":\"a@b\",\"password\":\"\"}", 422, "invalid_length",
           "\"password\" must be 1 to 1024 bytes long");
}

Test(cp_api_session, an_email_is_at_most_254_bytes_and_a_password_1024)
{
    char body[1400], e[260], p[1030];
    memset(e, 'e', 252);
    memcpy(e + 252, "@b", 3); /* 254 */
    memset(p, 'p', 1024);
    p[1024] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", e, p);
    expect(NULL, body, 503, "database_unavailable", unreachable);
    snprintf(body, sizeof(body), "{\"email\":\"x%s\",\"password\":\"p\"}", e);
    expect(NULL, body, 422, "invalid_length", "\"email\" must be 1 to 254 bytes long");
    snprintf(body, sizeof(body), "{\"email\":\"a@b\",\"password\":\"%sp\"}", p);
    expect(NULL, body, 422, "invalid_length", "\"password\" must be 1 to 1024 bytes long");
}

Test(cp_api_session, a_cookie_login_comes_from_this_servers_origin)
{
    char same[64];
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d", mhd_port);
    const char *own[] = {same, NULL};
    const char *other[] = {"Origin: https://evil.example", NULL};
    const char *cookie = "{\"email\":\"a@b\",\"password\":\"p\",\"cookie\":true}";
    expect(own, cookie, 503, "database_unavailable", unreachable);
    expect(NULL, cookie, 503, "database_unavailable", unreachable);
    expect(other, cookie, 403, "csrf_failed",
           "the request comes from another origin than this server's; session cookies are only "
           "good for the dashboard served here");
    /* a bearer-token login (no cookie) is no browser's to forge */
    expect(other, "{\"email\":\"a@b\",\"password\":\"p\",\"cookie\":false}", 503,
           "database_unavailable", unreachable);
}

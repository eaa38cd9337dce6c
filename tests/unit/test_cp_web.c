/* test_cp_web.c: the dashboard's file table: what is loaded from a web dir (and what is not),
 * how paths find files, which paths are the dashboard's, and If-None-Match matching. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_err.h"
#include "web.h"

static char root[] = "/tmp/tg-web-unit-XXXXXX";

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    cr_assert_eq(mkdir(p, 0755), 0, "%s", p);
}

static void setup(void)
{
    strcpy(root, "/tmp/tg-web-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    make_dir("web");
    make_dir("web/js");
    make_dir("web/.git");
    put("web/index.html", "<!doctype html>");
    put("web/js/app.js", "export {};");
    put("web/app.css", "body{}");
    put("web/.env", "SECRET=1");
    put("web/.git/config", "x");
    put("web/odd name.js", "x");
    put("secret.txt", "outside");
}

static void teardown(void)
{
    cp_web_free();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cp_web, .init = setup, .fini = teardown);

Test(cp_web, loads_files_with_types_and_strong_etags)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/web", root);
    cr_assert_eq(cp_web_load(dir), 0);
    cr_assert(cp_web_loaded());
    const cp_web_file_t *f = cp_web_find("/");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->path, "/index.html");
    cr_assert_str_eq(f->content_type, "text/html; charset=utf-8");
    cr_assert_eq(f->len, strlen("<!doctype html>"));
    cr_assert_eq(memcmp(f->data, "<!doctype html>", f->len), 0);
    cr_assert_eq(strlen(f->etag), 34);
    cr_assert_eq(f->etag[0], '"');
    cr_assert_eq(f->etag[33], '"');
    const cp_web_file_t *js = cp_web_find("/js/app.js");
    cr_assert_not_null(js);
    cr_assert_str_eq(js->content_type, "text/javascript; charset=utf-8");
    cr_assert_str_neq(js->etag, f->etag);
    cr_assert_str_eq(cp_web_find("/app.css")->content_type, "text/css; charset=utf-8");
}

Test(cp_web, serves_nothing_else)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/web", root);
    cr_assert_eq(cp_web_load(dir), 0);
    const char *never[] = {"/.env",
                           "/.git/config",
                           "/odd name.js",
                           "/../secret.txt",
                           "/js/../app.css",
                           "/js",
                           "/js/",
                           "/JS/APP.JS",
                           "",
                           "index.html",
                           "/index.html/",
                           "//index.html",
                           "/js//app.js",
                           "/app.css.map",
                           "/../web/app.css",
                           NULL};
    for (int i = 0; never[i]; i++)
        cr_assert_null(cp_web_find(never[i]), "%s was served", never[i]);
}

Test(cp_web, a_missing_dir_is_not_found_and_serves_nothing)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/none", root);
    cr_assert_eq(cp_web_load(dir), TG_ENOTFOUND);
    cr_assert(!cp_web_loaded());
    cr_assert_null(cp_web_find("/"));
}

Test(cp_web, the_api_and_health_paths_are_not_the_dashboards)
{
    const char *api[] = {"/api",     "/api/",   "/api/v1/me", "/dp", "/dp/v1/snapshot",
                         "/healthz", "/readyz", "/metrics",   NULL};
    for (int i = 0; api[i]; i++)
        cr_assert(!cp_web_owns(api[i]), "%s", api[i]);
    const char *web[] = {"/",    "/index.html", "/apix",      "/api.js",
                         "/dpx", "/healthz/x",  "/js/app.js", NULL};
    for (int i = 0; web[i]; i++)
        cr_assert(cp_web_owns(web[i]), "%s", web[i]);
}

Test(cp_web, if_none_match_uses_the_weak_comparison)
{
    const char *etag = "\"0123456789abcdef0123456789abcdef\"";
    cr_assert(cp_web_etag_match("\"0123456789abcdef0123456789abcdef\"", etag));
    cr_assert(cp_web_etag_match("W/\"0123456789abcdef0123456789abcdef\"", etag));
    cr_assert(cp_web_etag_match("\"x\", \"0123456789abcdef0123456789abcdef\"", etag));
    cr_assert(cp_web_etag_match("\"x\",W/\"0123456789abcdef0123456789abcdef\" ", etag));
    cr_assert(cp_web_etag_match("*", etag));
    cr_assert(!cp_web_etag_match("", etag));
    cr_assert(!cp_web_etag_match("\"0123456789abcdef0123456789abcde\"", etag));
    cr_assert(!cp_web_etag_match("0123456789abcdef0123456789abcdef", etag));
    cr_assert(!cp_web_etag_match("\"0123456789abcdef0123456789abcdef", etag));
    cr_assert(!cp_web_etag_match("\"x\", \"y\"", etag));
}

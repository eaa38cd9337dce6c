/* api.c: the table of endpoints and the dispatcher: match the method and path, resolve the
 * caller, run the handler. Health and metrics endpoints need no caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_http.h"
#include "tg_log.h"

#include "tg_banned.h"

typedef struct route {
    const char *method;
    const char *pattern; /* "{}" matches one path segment */
    cp_handler_fn fn;
    bool auth;
} route_t;

static const route_t routes[] = {
    {"GET", "/healthz", cp_api_healthz, false},
    {"GET", "/readyz", cp_api_readyz, false},
    {"GET", "/metrics", cp_api_metrics, false},
    {"GET", "/dp/v1/snapshot", cp_dp_snapshot, false}, /* checks TOLLGATE_DP_TOKEN itself */
    {"POST", "/dp/v1/usage", cp_dp_usage, false},      /* likewise */
    {"POST", "/dp/v1/responses", cp_dp_responses_ship, false},
    {"GET", "/dp/v1/responses/{}", cp_dp_responses_get, false},
    {"DELETE", "/dp/v1/responses/{}", cp_dp_responses_delete, false},
    {"GET", "/dp/v1/response-items/{}", cp_dp_responses_item, false},
    {"GET", "/api/v1/usage", cp_api_usage_get, true},
    {"GET", "/api/v1/usage/recommendations", cp_api_usage_recommendations, true},
    {"GET", "/api/v1/requests", cp_api_requests_list, true},
    {"POST", "/api/v1/auth/login", cp_api_login, false},
    {"POST", "/api/v1/auth/logout", cp_api_logout, true},
    {"GET", "/api/v1/me", cp_api_me, true},
    {"GET", "/api/v1/tenants", cp_api_tenants_list, true},
    {"POST", "/api/v1/tenants", cp_api_tenants_create, true},
    {"GET", "/api/v1/tenants/{}", cp_api_tenants_get, true},
    {"PATCH", "/api/v1/tenants/{}", cp_api_tenants_update, true},
    {"DELETE", "/api/v1/tenants/{}", cp_api_tenants_delete, true},
    {"GET", "/api/v1/audit-log", cp_api_audit_list, true},
    {"GET", "/api/v1/audit-log/verify", cp_api_audit_verify, true},
    {"GET", "/api/v1/dataplanes", cp_api_dataplanes_list, true},
    {"GET", "/api/v1/users", cp_api_users_list, true},
    {"POST", "/api/v1/users", cp_api_users_create, true},
    {"GET", "/api/v1/users/{}", cp_api_users_get, true},
    {"PATCH", "/api/v1/users/{}", cp_api_users_update, true},
    {"DELETE", "/api/v1/users/{}", cp_api_users_delete, true},
    {"GET", "/api/v1/tenants/{}/members", cp_api_members_list, true},
    {"PUT", "/api/v1/tenants/{}/members/{}", cp_api_members_put, true},
    {"DELETE", "/api/v1/tenants/{}/members/{}", cp_api_members_delete, true},
    {"GET", "/api/v1/tokens", cp_api_tokens_list, true},
    {"POST", "/api/v1/tokens", cp_api_tokens_create, true},
    {"DELETE", "/api/v1/tokens/{}", cp_api_tokens_revoke, true},
    {"GET", "/api/v1/tenants/{}/keys", cp_api_keys_list, true},
    {"POST", "/api/v1/tenants/{}/keys", cp_api_keys_create, true},
    {"GET", "/api/v1/tenants/{}/keys/{}", cp_api_keys_get, true},
    {"PATCH", "/api/v1/tenants/{}/keys/{}", cp_api_keys_update, true},
    {"DELETE", "/api/v1/tenants/{}/keys/{}", cp_api_keys_delete, true},
    {"POST", "/api/v1/tenants/{}/keys/{}/rotate", cp_api_keys_rotate, true},
    {"POST", "/api/v1/tenants/{}/keys/{}/revoke", cp_api_keys_revoke, true},
    {"GET", "/api/v1/tenants/{}/budgets", cp_api_budgets_list, true},
    {"POST", "/api/v1/tenants/{}/budgets", cp_api_budgets_create, true},
    {"GET", "/api/v1/tenants/{}/budgets/{}", cp_api_budgets_get, true},
    {"PATCH", "/api/v1/tenants/{}/budgets/{}", cp_api_budgets_update, true},
    {"DELETE", "/api/v1/tenants/{}/budgets/{}", cp_api_budgets_delete, true},
    {"GET", "/api/v1/providers", cp_api_providers_list, true},
    {"POST", "/api/v1/providers", cp_api_providers_create, true},
    {"GET", "/api/v1/providers/{}", cp_api_providers_get, true},
    {"PATCH", "/api/v1/providers/{}", cp_api_providers_update, true},
    {"DELETE", "/api/v1/providers/{}", cp_api_providers_delete, true},
    {"GET", "/api/v1/routes", cp_api_routes_list, true},
    {"POST", "/api/v1/routes", cp_api_routes_create, true},
    {"GET", "/api/v1/routes/{}", cp_api_routes_get, true},
    {"PATCH", "/api/v1/routes/{}", cp_api_routes_update, true},
    {"DELETE", "/api/v1/routes/{}", cp_api_routes_delete, true},
    {"GET", "/api/v1/routes/{}/prices", cp_api_route_prices, true},
    {"GET", "/api/v1/catalog", cp_api_catalog_get, true},
    {"GET", "/api/v1/prices", cp_api_prices_list, true},
    {"PUT", "/api/v1/prices", cp_api_prices_put, true},
    {"DELETE", "/api/v1/prices", cp_api_prices_delete, true},
    {NULL, NULL, NULL, false},
};

/* Matches path against pattern, copying "{}" segments into r->params. */
static bool match(cp_req_t *r, const char *pattern, const char *path)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(s, '/');
            size_t n = end ? (size_t)(end - s) : strlen(s);
            if (n == 0 || n >= sizeof(r->param_buf[0]) || np >= 4)
                return false;
            memcpy(r->param_buf[np], s, n);
            r->param_buf[np][n] = '\0';
            r->params[np] = r->param_buf[np];
            np++;
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

static const route_t *find_route(cp_req_t *r, bool *path_known)
{
    *path_known = false;
    for (const route_t *rt = routes; rt->method; rt++) {
        if (!match(r, rt->pattern, r->path))
            continue;
        *path_known = true;
        if (strcmp(rt->method, r->method) == 0)
            return rt;
    }
    return NULL;
}

static void reply_no_route(cp_req_t *r, bool path_known)
{
    if (path_known)
        cp_reply_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %.200s", r->method,
                       r->path);
    else
        cp_reply_error(r, 404, "not_found", NULL, "no such endpoint: %.200s", r->path);
}

/* Fills r->who for a route that needs a caller; false after replying (401 or 503). */
static bool authenticate(cp_req_t *r)
{
    if (!r->db) {
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return false;
    }
    cp_auth_resolve(r);
    if (!r->who.authenticated && PQstatus(r->db) != CONNECTION_OK) {
        /* the lookup failed, not the caller: a 401 would send clients back to log in */
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return false;
    }
    if (!r->who.authenticated) {
        cp_reply_error(r, 401, "unauthenticated", NULL,
                       "send \"Authorization: Bearer <token>\" from POST /api/v1/auth/login "
                       "or an admin API token, or sign in again (the session cookie is missing, "
                       "expired or ended)");
        return false;
    }
    return true;
}

int cp_api_precheck(cp_req_t *r, size_t *body_max)
{
    bool path_known;
    const route_t *hit = find_route(r, &path_known);
    if (!hit) {
        reply_no_route(r, path_known);
        return -1;
    }
    r->db = cp_db();
    if (hit->auth) {
        if (!authenticate(r) || !cp_csrf_check(r))
            return -1;
        *body_max = CP_BODY_MAX;
        return 0;
    }
    if (hit->fn == cp_dp_snapshot || hit->fn == cp_dp_usage || hit->fn == cp_dp_responses_ship ||
        hit->fn == cp_dp_responses_get || hit->fn == cp_dp_responses_delete ||
        hit->fn == cp_dp_responses_item) {
        if (!cp__dp_token_ok(r)) {
            cp_reply_error(r, 401, "unauthenticated", NULL, "a valid data-plane token is required");
            return -1;
        }
        *body_max = hit->fn == cp_dp_usage            ? CP_BODY_MAX_USAGE
                    : hit->fn == cp_dp_responses_ship ? CP_BODY_MAX_RESPONSES
                                                      : CP_BODY_MAX_ANON;
        return 0;
    }
    *body_max = CP_BODY_MAX_ANON; /* login, health and metrics: nobody known yet */
    return 0;
}

void cp_api_dispatch(cp_req_t *r)
{
    bool path_known;
    const route_t *hit = find_route(r, &path_known);
    if (!hit) {
        reply_no_route(r, path_known);
        return;
    }
    r->db = cp_db();
    /* cp_api_precheck resolved the caller when the headers came */
    if (hit->auth && !r->who.authenticated && (!authenticate(r) || !cp_csrf_check(r)))
        return;
    hit->fn(r);
}

void cp_api_healthz(cp_req_t *r)
{
    cp_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void cp_api_readyz(cp_req_t *r)
{
    PGresult *res =
        cp_db_exec(r->db, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL);
    if (!cp_db_ok(res)) {
        PQclear(res);
        cp_reply_json(r, 503, json_pack("{s:s}", "status", "database unreachable or not migrated"));
        return;
    }
    int v = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (v < cp_migrations_latest()) {
        cp_reply_json(r, 503,
                      json_pack("{s:s,s:i,s:i}", "status", "migrations pending", "schema_version",
                                v, "expected", cp_migrations_latest()));
        return;
    }
    cp_reply_json(r, 200, json_pack("{s:s,s:i}", "status", "ready", "schema_version", v));
}

void cp_api_metrics(cp_req_t *r)
{
    tg_buf_reset(&r->out);
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
    int rc = tg_buf_appendf(&r->out, "# HELP tollgate_control_responses_total Responses by status "
                                     "class.\n# TYPE tollgate_control_responses_total counter\n");
    for (int c = 1; rc == 0 && c <= 5; c++)
        rc = tg_buf_appendf(&r->out, "tollgate_control_responses_total{class=\"%dxx\"} %lu\n", c,
                            cp_http_count(c));
    if (rc == 0)
        rc = tg_buf_appendf(&r->out,
                            "# HELP tollgate_control_database_up Whether this replica reaches "
                            "Postgres.\n# TYPE tollgate_control_database_up gauge\n"
                            "tollgate_control_database_up %d\n"
                            "# HELP tollgate_control_snapshot_polls_waiting Data-plane long polls "
                            "waiting for a change.\n# TYPE tollgate_control_snapshot_polls_waiting "
                            "gauge\ntollgate_control_snapshot_polls_waiting %d\n",
                            r->db ? 1 : 0, cp_http_waiting());
    if (rc == 0)
        rc = cp_ingest_metrics(&r->out);
    if (rc != 0)
        cp_reply_error(r, 500, "internal", NULL, "could not render metrics");
}

/* handler.c: the one way an API handler lists, changes and deletes (handler.h), and the request's
 * transaction, whose failures become replies here rather than in db.c. Runs on MHD worker
 * threads; no shared state. */
#include "handler.h"

#include <stdio.h>
#include <string.h>

#include "tg_log.h"

#include "tg_banned.h"

/* ---- the request's transaction ---- */

static int simple(cp_req_t *r, const char *sql)
{
    return cp_exec_ok(r, sql, 0, NULL);
}

int cp_db_begin(cp_req_t *r)
{
    return simple(r, "BEGIN");
}

int cp_db_commit(cp_req_t *r)
{
    int rc = simple(r, "COMMIT");
    /* a checkpoint is logged only once it is stored: the log is a copy kept out of the
     * database's reach (docs/operations.md) */
    if (rc == 0 && r->audit_note[0])
        tg_log(TG_LOG_INFO, "cp_audit", "audit_checkpoint", "%s", r->audit_note);
    r->audit_note[0] = '\0';
    return rc;
}

void cp_db_rollback(cp_req_t *r)
{
    r->audit_note[0] = '\0';
    PQclear(cp_db_exec(r->db, "ROLLBACK", 0, NULL));
}

int cp_config_bump(cp_req_t *r)
{
    /* the notification is delivered at commit, to every replica's notifier (sync.c), which
     * then answers the data planes' long polls; the version is a row (not the sequence) so that
     * no snapshot sees it before the change commits (migrations/0004_routing.sql) */
    return cp_exec_ok(r, CP_CONFIG_BUMP_SQL, 0, NULL);
}

/* ---- lists ---- */

int cp_list_params(cp_req_t *r, bool uuid_cursor, cp_list_t *l)
{
    int rc = uuid_cursor ? cp_page_params_uuid(r, &l->limit, &l->cursor)
                         : cp_page_params(r, &l->limit, &l->cursor);
    if (rc != 0)
        return -1;
    snprintf(l->fetch, sizeof(l->fetch), "%d", l->limit + 1);
    return 0;
}

int cp_list_filter(cp_req_t *r, const char *name, bool (*ok)(const char *), const char *rule,
                   const char **out)
{
    *out = cp_query(r, name);
    if (!*out || ok(*out))
        return 0;
    cp_reply_error(r, 400, "invalid_query", name, "%s %s", name, rule);
    *out = NULL;
    return -1;
}

int cp_list_filter_enum(cp_req_t *r, const char *name, const char *const *values, const char **out)
{
    *out = cp_query(r, name);
    if (!*out)
        return 0;
    char list[256] = "";
    for (const char *const *v = values; *v; v++) {
        if (strcmp(*v, *out) == 0)
            return 0;
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", *v);
    }
    cp_reply_error(r, 400, "invalid_query", name, "%s must be one of: %s", name, list);
    *out = NULL;
    return -1;
}

void cp_list_reply(cp_req_t *r, const cp_list_t *l, const char *sql, int n,
                   const char *const *params, const char *cursor_field)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    if (cp_db_ok(res))
        cp_reply_page(r, res, l->limit, cursor_field);
    else
        cp_reply_db_error(r, res);
    PQclear(res);
}

static int column0(PGresult *res, int row, tg_buf_t *out)
{
    return tg_buf_append(out, PQgetvalue(res, row, 0), (size_t)PQgetlength(res, row, 0));
}

int cp_list_build(PGresult *res, int limit, int cursor_col, cp_list_row_fn row, tg_buf_t *out)
{
    int n = PQntuples(res);
    int rc = tg_buf_append(out, "{\"data\":[", 9);
    for (int i = 0; rc == 0 && i < n && i < limit; i++) {
        if (i > 0)
            rc = tg_buf_append(out, ",", 1);
        if (rc == 0)
            rc = (row ? row : column0)(res, i, out);
    }
    if (rc == 0 && n > limit)
        rc = tg_buf_appendf(out, "],\"next_cursor\":\"%s\"}",
                            PQgetvalue(res, limit - 1, cursor_col));
    else if (rc == 0)
        rc = tg_buf_appendf(out, "],\"next_cursor\":null}");
    return rc;
}

void cp_list_reply_rows(cp_req_t *r, const cp_list_t *l, const char *sql, int n,
                        const char *const *params, int cursor_col, cp_list_row_fn row)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return;
    }
    /* built aside, then compacted into the reply: Postgres writes "a" : 1 */
    tg_buf_t b = TG_BUF_INIT(32u << 20);
    int rc = cp_list_build(res, l->limit, cursor_col, row, &b);
    PQclear(res);
    if (rc != 0)
        cp_reply_error(r, 500, "internal", NULL, "could not build the response");
    else
        cp_reply_json_text(r, 200, b.base, b.len);
    tg_buf_dispose(&b);
}

/* ---- path ids ---- */

int cp_path_id(cp_req_t *r, int i, const char *what)
{
    if (cp_is_uuid(r->params[i]))
        return 0;
    cp_reply_error(r, 404, "not_found", NULL, "no such %s", what);
    return -1;
}

int cp_tenant_scope(cp_req_t *r, int min, const char *what)
{
    if (cp_path_id(r, 0, "tenant") != 0)
        return -1;
    int role = cp_require_role(r, r->params[0], min);
    if (role < 0 || (what && cp_path_id(r, 1, what) != 0))
        return -1;
    return role;
}

void cp_reply_object(cp_req_t *r, const char *sql, int n, const char *const *params,
                     const char *what)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    if (cp_db_ok(res) && PQntuples(res) == 0) {
        PQclear(res);
        cp_reply_error(r, 404, "not_found", NULL, "no such %s", what);
        return;
    }
    cp_reply_json_row(r, res); /* clears res */
}

/* ---- changes ---- */

int cp_exec_ok(cp_req_t *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    bool ok = cp_db_ok(res);
    if (!ok)
        cp_reply_db_error(r, res);
    PQclear(res);
    return ok ? 0 : -1;
}

PGresult *cp_change_lock(cp_req_t *r, const char *sql, int n, const char *const *params,
                         const char *what)
{
    if (cp_db_begin(r) != 0)
        return NULL;
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    if (cp_db_ok(res) && PQntuples(res) == 1)
        return res;
    if (cp_db_ok(res))
        cp_reply_error(r, 404, "not_found", NULL, "no such %s", what);
    else
        cp_reply_db_error(r, res);
    PQclear(res);
    cp_db_rollback(r);
    return NULL;
}

json_t *cp_change_lock_json(cp_req_t *r, const char *sql, int n, const char *const *params,
                            const char *what)
{
    PGresult *res = cp_change_lock(r, sql, n, params, what);
    if (!res)
        return NULL;
    json_t *v = cp_db_json_row(res, 0, 0);
    PQclear(res);
    if (!v) {
        cp_db_rollback(r);
        cp_reply_error(r, 500, "internal", NULL, "could not read the %s", what);
    }
    return v;
}

json_t *cp_change_row(cp_req_t *r, const char *sql, int n, const char *const *params, int col)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    json_t *v = cp_db_json_row(res, 0, col);
    if (!v)
        cp_reply_db_error(r, res);
    PQclear(res);
    return v;
}

int cp_row_exists(cp_req_t *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = cp_db_exec(r->db, sql, n, params);
    int rc = cp_db_ok(res) ? PQntuples(res) > 0 : -1;
    if (rc < 0)
        cp_reply_db_error(r, res);
    PQclear(res);
    return rc;
}

int cp_change_need(cp_req_t *r, const char *sql, int n, const char *const *params, int status,
                   const char *field, const char *message)
{
    int found = cp_row_exists(r, sql, n, params);
    if (found == 0)
        cp_reply_error(r, status, status == 404 ? "not_found" : "invalid_value", field, "%s",
                       message);
    return found == 1 ? 0 : -1;
}

int cp_change_commit(cp_req_t *r, const cp_change_t *c, json_t *before, json_t *after)
{
    if (cp_audit(r, c->tenant_id, c->action, c->target_type, c->target_id, before, after) != 0 ||
        (!c->audit_only && cp_config_bump(r) != 0) || cp_db_commit(r) != 0) {
        cp_db_rollback(r);
        return -1;
    }
    return 0;
}

void cp_change_reply(cp_req_t *r, const cp_change_t *c, int status, json_t *before, json_t *after)
{
    if (cp_change_commit(r, c, before, after) != 0) {
        json_decref(after);
        return;
    }
    if (after && status != 204) {
        cp_reply_json(r, status, after);
        return;
    }
    json_decref(after); /* a 204 has no body: after was for the audit row */
    r->status = status;
    tg_buf_reset(&r->out);
}

void cp_change_reply_secret(cp_req_t *r, const cp_change_t *c, int status, json_t *before,
                            json_t *after, const char *field, const char *secret)
{
    if (cp_change_commit(r, c, before, after) != 0) {
        json_decref(after);
        return;
    }
    json_object_set_new(after, field, json_string(secret));
    cp_reply_json(r, status, after);
}

void cp_change_delete(cp_req_t *r, const cp_change_t *c, const char *sql, int n,
                      const char *const *params, json_t *before)
{
    if (cp_exec_ok(r, sql, n, params) != 0) {
        cp_db_rollback(r);
        return;
    }
    cp_change_reply(r, c, 204, before, NULL);
}

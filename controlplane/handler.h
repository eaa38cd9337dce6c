/* handler.h: the one way an API handler is written: list pages, the transaction of a change
 * (its prelude, its audit row and config bump, its reply) and path ids. Every function that can
 * fail replies itself and returns -1 (or NULL); the handler then only cleans up. */
#ifndef CP_HANDLER_H
#define CP_HANDLER_H

#include "cp.h"

/* ---- lists ---- */

/* A page request: limit (1..200, default 50), the cursor, and limit + 1 as text for the query's
 * LIMIT (one row more than shown says whether there is a next page). */
typedef struct cp_list {
    int limit;
    const char *cursor; /* borrowed from MHD; NULL on the first page */
    char fetch[16];
} cp_list_t;

/* Reads limit and cursor (a uuid when uuid_cursor); -1 after replying 400. */
int cp_list_params(cp_req_t *r, bool uuid_cursor, cp_list_t *l);
/* A query-string filter: *out is NULL when absent; -1 after replying 400 invalid_query "<name>
 * <rule>" when ok(value) is false. */
int cp_list_filter(cp_req_t *r, const char *name, bool (*ok)(const char *), const char *rule,
                   const char **out);
/* A filter whose value must be one of values (NULL-terminated); the 400 lists them. */
int cp_list_filter_enum(cp_req_t *r, const char *name, const char *const *values, const char **out);
/* Runs sql (its rows: one JSON object in column 0, at most limit + 1 of them) and replies
 * {"data":[...],"next_cursor"}, the cursor being cursor_field of the last object shown; or the
 * database error. */
void cp_list_reply(cp_req_t *r, const cp_list_t *l, const char *sql, int n,
                   const char *const *params, const char *cursor_field);
/* Appends row `row` of res as JSON text to out; 0 or a TG_E* code. */
typedef int (*cp_list_row_fn)(PGresult *res, int row, tg_buf_t *out);
/* The same for rows whose JSON is text as Postgres wrote it (exact numerics): row writes each
 * (NULL: column 0 as it is); cursor_col holds the next cursor, text that needs no escaping (ids).
 */
void cp_list_reply_rows(cp_req_t *r, const cp_list_t *l, const char *sql, int n,
                        const char *const *params, int cursor_col, cp_list_row_fn row);
/* Builds the page body of cp_list_reply_rows from res into out (exposed for tests). */
int cp_list_build(PGresult *res, int limit, int cursor_col, cp_list_row_fn row, tg_buf_t *out);

/* ---- path ids ---- */

/* Whether r->params[i] is a uuid; else replies 404 "no such <what>" and returns -1. */
int cp_path_id(cp_req_t *r, int i, const char *what);
/* A tenant's resource (/tenants/{tid}/<what>s/{id}): checks the tenant id and the caller's role
 * in it (at least min), then, when what is not NULL, the resource id in r->params[1]. Returns
 * the caller's role or -1 after replying 404 (or 403 for a role too low). */
int cp_tenant_scope(cp_req_t *r, int min, const char *what);

/* Replies 200 with column 0 of sql's one row (an object as JSON text); 404 "no such <what>" when
 * there is none, or the database error. */
void cp_reply_object(cp_req_t *r, const char *sql, int n, const char *const *params,
                     const char *what);

/* ---- changes ---- */

/* What one change writes to the audit log. */
typedef struct cp_change {
    const char *tenant_id;   /* NULL: platform-wide */
    const char *action;      /* "route.update" */
    const char *target_type; /* "route" */
    const char *target_id;
    bool audit_only; /* nothing the data planes read: no config version bump */
} cp_change_t;

/* The statement that bumps the config version inside the current transaction: data planes see
 * the change at commit (every replica's notifier hears the NOTIFY then; sync.c). */
#define CP_CONFIG_BUMP_SQL                                                                         \
    "UPDATE config_version SET v = nextval('config_version_seq') "                                 \
    "RETURNING v, pg_notify('tollgate_config', v::text)"
/* Runs CP_CONFIG_BUMP_SQL; -1 after replying. */
int cp_config_bump(cp_req_t *r);
/* Runs a statement whose result is not needed; -1 after replying with the database error. */
int cp_exec_ok(cp_req_t *r, const char *sql, int n, const char *const *params);
/* The prelude of a change to one object: begins the transaction and runs sql, which selects it
 * (FOR UPDATE). The one row, or NULL after rolling back and replying 404 "no such <what>" (also
 * for another tenant's object) or the database error. The caller clears it. */
PGresult *cp_change_lock(cp_req_t *r, const char *sql, int n, const char *const *params,
                         const char *what);
/* The same, for sql whose column 0 is the object as JSON: the object (the caller's). */
json_t *cp_change_lock_json(cp_req_t *r, const char *sql, int n, const char *const *params,
                            const char *what);
/* Runs a change's statement in the open transaction: column col of its one row as JSON (the
 * caller's), or NULL after replying with the database error; the caller rolls back. */
json_t *cp_change_row(cp_req_t *r, const char *sql, int n, const char *const *params, int col);
/* Whether sql finds a row: 1, 0, or -1 after replying with the database error. */
int cp_row_exists(cp_req_t *r, const char *sql, int n, const char *const *params);
/* Checks, in the open transaction, that sql finds one row (an object the change refers to, locked
 * FOR SHARE so that it stays); else replies `status` (404 not_found, or 422 invalid_value) naming
 * field with message, or the database error, and returns -1; the caller rolls back. */
int cp_change_need(cp_req_t *r, const char *sql, int n, const char *const *params, int status,
                   const char *field, const char *message);
/* Ends a change: its audit row (before, after borrowed; NULL for none), the config version bump
 * the data planes follow (unless audit_only), commit. -1 after replying and rolling back. */
int cp_change_commit(cp_req_t *r, const cp_change_t *c, json_t *before, json_t *after);
/* cp_change_commit, then replies status with after (taken; a 204 has no body, so there after is
 * only the audit row's, and may be NULL). NULL with
 * another status means the change's statement failed and replied (cp_change_row): it rolls back. */
void cp_change_reply(cp_req_t *r, const cp_change_t *c, int status, json_t *before, json_t *after);
/* cp_change_commit, then replies status with after (taken) plus field: secret, the one time a
 * secret made by the change leaves (it is never in the audit row). */
void cp_change_reply_secret(cp_req_t *r, const cp_change_t *c, int status, json_t *before,
                            json_t *after, const char *field, const char *secret);
/* Ends a deletion: runs sql (the DELETE) and cp_change_reply with 204. */
void cp_change_delete(cp_req_t *r, const cp_change_t *c, const char *sql, int n,
                      const char *const *params, json_t *before);

#endif

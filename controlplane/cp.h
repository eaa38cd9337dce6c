/* cp.h: the control plane's shared internals: options, the request being handled, the caller's
 * identity and the JSON helpers every API handler uses. */
#ifndef CP_H
#define CP_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_buf.h"
#include "tg_err.h"

typedef struct cp_opts {
    char listen_host[256];
    int listen_port;
    const char *database_url;
    const char *web_dir; /* the dashboard's files (--web-dir); NULL: next to the binary */
    bool secure_cookies; /* the session cookie carries Secure (--secure-cookies) */
    int threads;
    uint8_t master_key[32];
    bool have_master_key;
    char jwt_secret[256];
    size_t jwt_secret_len;
    const char *dp_token;
    uint32_t jwt_ttl_s;
    const char *admin_email;
    const char *admin_password;
    int audit_checkpoint_rows;       /* sign the audit chain at least every this many rows */
    int audit_checkpoint_s;          /* ... and within this many seconds of a new row */
    unsigned max_connections;        /* in total */
    unsigned max_connections_per_ip; /* from one client address */
    unsigned header_timeout_s;       /* for a request's headers to arrive in full */
    int wait_db_s; /* retry the first connection this long before giving up (--wait-db-s) */
    int responses_retention_days; /* stored responses of a tenant without its own (default 30) */
    int responses_purge_s;        /* how often expired stored responses are deleted (60) */
} cp_opts_t;

/* Read-only after start. */
extern const cp_opts_t *cp_opts;

enum cp_role {
    CP_ROLE_NONE = 0,
    CP_ROLE_VIEWER = 1,
    CP_ROLE_MEMBER = 2,
    CP_ROLE_ADMIN = 3, /* tenant admin */
    CP_ROLE_OWNER = 4,
    CP_ROLE_PLATFORM = 5, /* platform admin: everything */
};

typedef struct cp_principal {
    bool authenticated;
    char user_id[37];
    char label[300];          /* "user:alice@example.com" or "token:<id>" for the audit log */
    bool platform_admin;      /* after token scoping */
    bool user_platform_admin; /* the user's own flag, before token scoping */
    bool via_token;
    bool via_cookie;       /* a session JWT from the tollgate_session cookie (no Authorization) */
    int token_role;        /* cap on any role when via_token */
    char token_tenant[37]; /* "" = any tenant the user may reach */
    char token_id[37];
    char jti[64];
    int64_t jwt_exp;
} cp_principal_t;

typedef struct cp_req {
    void *mhd;          /* struct MHD_Connection *, borrowed */
    const char *method; /* borrowed from MHD */
    const char *path;   /* borrowed from MHD, without query */
    const char *body;
    size_t body_len;
    char ip[64];
    PGconn *db; /* this worker thread's connection */
    cp_principal_t who;
    const char *params[4]; /* path parameters ({id}), NUL-terminated copies */
    char param_buf[4][128];
    /* response */
    int status;
    tg_buf_t out;
    const char *content_type;
    char extra_headers[1024]; /* "Name: value\r\n" lines; Set-Cookie holds a JWT */
    char audit_note[256];     /* a checkpoint signed in this transaction, logged once it commits */
} cp_req_t;

/* Handlers return nothing: they fill status and out through the reply helpers. */
typedef void (*cp_handler_fn)(cp_req_t *r);

/* ---- replies ---- */
/* Replies with a JSON value (takes the reference). */
void cp_reply_json(cp_req_t *r, int status, json_t *v);
/* Replies {"error":{"code","message","field"}}; field may be NULL. */
void cp_reply_error(cp_req_t *r, int status, const char *code, const char *field, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
void cp_reply_db_error(cp_req_t *r, PGresult *res);
/* Appends JSON text (as Postgres writes it, "a" : 1) without the blanks between tokens. */
int cp_json_append_compact(tg_buf_t *b, const char *s, size_t n);
/* Replies with JSON text built elsewhere (exact numerics from Postgres), compacted. */
void cp_reply_json_text(cp_req_t *r, int status, const char *s, size_t n);
/* 200 with the JSON text of res's single row, or res's database error; clears res. */
void cp_reply_json_row(cp_req_t *r, PGresult *res);

/* Replies {"data":[...],"next_cursor"} from rows whose first column is one object, fetched
 * with limit + 1 rows; the cursor is that object's cursor_field of the last row shown. */
void cp_reply_page(cp_req_t *r, PGresult *res, int limit, const char *cursor_field);

/* ---- request bodies ---- */
/* Parses the body as a JSON object with no fields outside `allowed`; replies 400 and returns
 * NULL on failure. */
json_t *cp_body_object(cp_req_t *r, const char *const *allowed);
/* Reads a string member of 1..max bytes (min 0 allowed with allow_empty). Replies 400/422 and
 * returns -1 when it is missing (if required), of the wrong type or length; 0 otherwise, with *out
 * NULL when absent. */
int cp_body_str(cp_req_t *r, json_t *o, const char *name, bool required, size_t max,
                const char **out);
int cp_body_int(cp_req_t *r, json_t *o, const char *name, bool required, int64_t min, int64_t max,
                bool *present, int64_t *out);
int cp_body_bool(cp_req_t *r, json_t *o, const char *name, bool *present, bool *out);
/* A rate limit (rpm_limit, tpm_limit of keys and tenants): absent leaves *has alone; null sets
 * *has and *is_null (remove the limit); else 1 to 2147483647, written as text into out. */
int cp_body_rate_limit(cp_req_t *r, json_t *o, const char *name, bool *has, bool *is_null,
                       char *out, size_t outlen);
/* A decimal amount (a JSON number in [min, max]; range says so in the 422) as text for a numeric
 * parameter, integers as they are, reals in the fewest digits that read back as the same double
 * (never 0.1 as 0.10000000000000001). *present says it was sent (null counts as absent). */
int cp_body_amount(cp_req_t *r, json_t *o, const char *name, bool required, double min, double max,
                   const char *range, bool *present, char *out, size_t outlen);
/* A string whose value must be one of `values` (NULL-terminated). */
int cp_body_enum(cp_req_t *r, json_t *o, const char *name, bool required, const char *const *values,
                 const char **out);

/* ---- query strings ---- */
const char *cp_query(cp_req_t *r, const char *name);
/* limit (1..200, default 50) and the opaque cursor; replies 400 on a bad value. */
int cp_page_params(cp_req_t *r, int *limit, const char **cursor);
/* The same for lists paged by a uuid id: a cursor that is no uuid is a 400. */
int cp_page_params_uuid(cp_req_t *r, int *limit, const char **cursor);

/* ---- database ---- */
/* This thread's connection, (re)connected as needed; NULL when the database is unreachable. */
PGconn *cp_db(void);
/* Closes the calling thread's connection (the main thread's, at exit). */
void cp_db_close(void);
PGresult *cp_db_exec(PGconn *c, const char *sql, int n, const char *const *params);
bool cp_db_ok(PGresult *res);
/* Whether a failed statement failed with this SQLSTATE ("23505", ...). */
bool cp_db_sqlstate_is(PGresult *res, const char *state);
/* The request's transaction (handler.c): begin and commit reply with the database error and
 * return -1 when they fail; a commit logs the audit checkpoint it stored. */
int cp_db_begin(cp_req_t *r);
int cp_db_commit(cp_req_t *r);
void cp_db_rollback(cp_req_t *r);
/* The first row of a query returning one json column, parsed; NULL if no row. */
json_t *cp_db_json_row(PGresult *res, int row, int col);

/* ---- access ---- */
/* The caller's role in a tenant (CP_ROLE_PLATFORM for platform admins), after token scoping. */
int cp_role_in(cp_req_t *r, const char *tenant_id);
/* Requires at least `min` in the tenant; replies 404 when the caller has no role there at all
 * (no existence leak) and 403 when the role is too low. Returns the role or -1. */
int cp_require_role(cp_req_t *r, const char *tenant_id, int min);
/* Platform admins only: replies 403 "only platform admins <what>" otherwise. */
bool cp_require_platform(cp_req_t *r, const char *what);
bool cp_is_uuid(const char *s);
/* Whether a and b are the same uuid (its hex digits match in any case); false unless both are. */
bool cp_uuid_eq(const char *a, const char *b);
const char *cp_role_name(int role);
int cp_role_parse(const char *s);

/* ---- audit ---- */
/* Writes one audit row in the current transaction. before/after may be NULL; secrets must
 * already be redacted. */
int cp_audit(cp_req_t *r, const char *tenant_id, const char *action, const char *target_type,
             const char *target_id, json_t *before, json_t *after);

/* ---- audit checkpoints (audit.c, crypto.c) ---- */
/* At most this many rows in one checkpoint. */
#define CP_AUDIT_CKPT_MAX 1000
/* HMAC-SHA-256 of one checkpoint (its time, the range after_id < id <= last_id, and the id and
 * 32-byte row_hash of each of its n rows) under a key derived from TOLLGATE_MASTER_KEY, which
 * Postgres never sees. Returns false without a master key. */
bool cp_audit_ckpt_mac(int64_t ts_us, int64_t after_id, int64_t last_id, size_t n,
                       const int64_t *ids, const uint8_t *hashes, uint8_t mac[32]);
/* The checkpoint key's fingerprint (16 hex characters, stored with each checkpoint); false and ""
 * without a master key. */
bool cp_audit_key_id(char out[17]);
/* Starts the thread that signs new audit rows every audit_checkpoint_s seconds; stops it. */
int cp_audit_start(void);
void cp_audit_stop(void);
/* Verifies the whole audit chain once in the background as the process starts (api/audit_log.c);
 * join waits for it to end. */
int cp_audit_verify_start(void);
void cp_audit_verify_join(void);

/* ---- auth ---- */
/* Resolves Authorization: Bearer (JWT or admin API token) into r->who; without an Authorization
 * header, the tollgate_session cookie (a session JWT only). */
void cp_auth_resolve(cp_req_t *r);
/* A session JWT for the user at session generation gen (users.session_gen; a password change
 * bumps it and ends older sessions); *exp_out gets its expiry in unix seconds. */
int cp_jwt_issue(const char *user_id, long long gen, char *out, size_t outlen, long *exp_out,
                 char jti_out[33]);
/* The name of the session cookie. */
#define CP_SESSION_COOKIE "tollgate_session"
/* Adds Set-Cookie for a session JWT expiring at exp (an empty token clears the cookie). */
void cp_session_cookie_set(cp_req_t *r, const char *token, long exp);
/* Checks a cookie-authenticated request's X-CSRF-Token and Origin, before its body is read;
 * false after replying 403 csrf_failed. */
bool cp_csrf_check(cp_req_t *r);
/* False after replying 403 csrf_failed when an Origin header names another host than Host. */
bool cp_csrf_origin_ok(cp_req_t *r);
int cp_password_hash(const char *pw, char *out, size_t outlen);
bool cp_password_verify(const char *encoded, const char *pw);
/* Random token "<prefix><base64url of 32 bytes>"; hash = SHA-256 of the whole text. */
int cp_token_new(const char *prefix, char *out, size_t outlen, uint8_t hash[32]);
int cp_ensure_first_admin(void);

/* ---- crypto ---- */
/* A session's CSRF token: base64url of HMAC-SHA-256(jti) under a key derived from
 * TOLLGATE_JWT_SECRET (43 characters and a NUL). */
bool cp_csrf_token(const char *jti, char out[44]);
/* AES-256-GCM with the master key: out = nonce(12) || ciphertext || tag(16). */
int cp_seal(const void *plain, size_t n, tg_buf_t *out);
int cp_open(const void *sealed, size_t n, tg_buf_t *out);

/* ---- stored responses (rstore.c) ---- */
/* Starts the thread that deletes expired stored responses every responses_purge_s; stops it. */
int cp_rstore_start(void);
void cp_rstore_stop(void);

/* ---- the API table ---- */
/* Request bodies: an authenticated caller's, a data plane's usage batch, anyone else's (login). */
#define CP_BODY_MAX (1u << 20)
#define CP_BODY_MAX_USAGE (8u << 20)
#define CP_BODY_MAX_RESPONSES (32u << 20) /* a batch of stored responses (rstore.c) */
#define CP_BODY_MAX_ANON (64u << 10)
/* Runs once the headers are in, before any body byte is read: finds the route and checks the
 * caller (session or API token into r->who, or the data-plane token). 0 with *body_max set for
 * this caller; -1 after filling the reply (404, 405, 401, 503). */
int cp_api_precheck(cp_req_t *r, size_t *body_max);
/* Runs the handler; a caller already in r->who (from cp_api_precheck) is not looked up again. */
void cp_api_dispatch(cp_req_t *r);
int cp_migrate(const char *database_url);
/* The highest migration version compiled into the binary (/readyz compares the database's). */
int cp_migrations_latest(void);

#endif

/* keys.c: /api/v1/tenants/{tid}/keys: virtual keys, the secrets applications send to the data
 * plane. A secret is shown once (create, rotate); the row keeps only its SHA-256 and last four
 * characters. Viewers read; members manage the keys they own, narrowing but never widening the
 * limits an admin set on them; tenant admins and owners manage all of the tenant's keys. Another
 * tenant's keys answer 404 like ids that never existed. Runs on MHD worker threads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "tg_time.h"

#include "tg_banned.h"

#define KEY_STATUS                                                                                 \
    "CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked' WHEN k.expires_at IS NOT NULL AND "         \
    "k.expires_at <= now() THEN 'expired' ELSE 'active' END"

/* Never the secret nor its hash: this is both the API's view and the audit log's. */
#define KEY_JSON                                                                                   \
    "json_build_object('id', k.id, 'tenant_id', k.tenant_id, 'owner_user_id', k.owner_user_id, "   \
    "'name', k.name, 'last4', k.last4, 'models', to_json(k.models), 'rpm_limit', k.rpm_limit, "    \
    "'tpm_limit', k.tpm_limit, 'expires_at', k.expires_at, 'revoked_at', k.revoked_at, "           \
    "'status', " KEY_STATUS ", 'created_at', k.created_at, 'updated_at', k.updated_at)"

/* Kept in step with budgets.c: deleting a key deletes its budgets, and each is audited. */
#define KEY_BUDGET_JSON                                                                            \
    "json_build_object('id', b.id, 'tenant_id', b.tenant_id, 'key_id', b.key_id, 'period', "       \
    "b.period, 'limit_usd', trim_scale(b.limit_usd), 'alert_threshold', "                          \
    "trim_scale(b.alert_threshold), 'created_at', b.created_at, 'updated_at', b.updated_at)"

#define KEY_NAME_MAX 200
#define KEY_MODELS_MAX 256
#define KEY_ALIAS_MAX 256         /* routes.alias */
#define KEY_UNIX_MAX 253402300799 /* 9999-12-31T23:59:59Z */

/* What a create or update body sets; has_* says the field was sent, *_null that it was null. */
typedef struct key_fields {
    const char *name; /* borrowed from the body */
    bool has_models;
    char *models; /* owned: a JSON array of aliases, from json_dumps */
    bool has_expires, expires_null;
    char expires[48];
    bool has_rpm, rpm_null;
    char rpm[24];
    bool has_tpm, tpm_null;
    char tpm[24];
} key_fields_t;

static const char *caller_id(cp_req_t *r)
{
    return r->who.user_id[0] ? r->who.user_id : NULL;
}

/* The secret lives on the stack for one request; do not leave it there. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* Begins a change to the key in the path: locks it and reads it as JSON, and whether the caller
 * owns it. Only the tenant in the path is searched, so another tenant's key is "no such key".
 * Returns -1 after replying and rolling back. */
static int key_lock(cp_req_t *r, json_t **out, bool *mine)
{
    const char *p[3] = {r->params[1], r->params[0], caller_id(r)};
    PGresult *res = cp_change_lock(r,
                                   "SELECT " KEY_JSON ", coalesce(k.owner_user_id = $3::uuid, "
                                   "false) FROM virtual_keys k WHERE k.id = $1 AND k.tenant_id "
                                   "= $2 FOR UPDATE",
                                   3, p, "key");
    *out = res ? cp_db_json_row(res, 0, 0) : NULL;
    *mine = res && PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (res && !*out) {
        cp_db_rollback(r);
        cp_reply_error(r, 500, "internal", NULL, "could not read the key");
    }
    return *out ? 0 : -1;
}

/* Members manage only the keys they own; admins and above manage all. */
static bool may_manage(cp_req_t *r, int role, bool mine)
{
    if (role >= CP_ROLE_ADMIN || (role == CP_ROLE_MEMBER && mine))
        return true;
    cp_reply_error(r, 403, "forbidden", NULL,
                   "members manage only their own keys; this needs the admin role in the tenant");
    return false;
}

/* expires_at: an RFC 3339 string or unix seconds, in the future; null clears it. */
static int read_expiry(cp_req_t *r, json_t *o, key_fields_t *f)
{
    json_t *v = json_object_get(o, "expires_at");
    if (!v)
        return 0;
    f->has_expires = true;
    if (json_is_null(v)) {
        f->expires_null = true;
        return 0;
    }
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 1 || s > KEY_UNIX_MAX) {
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" must be a time in the future");
            return -1;
        }
        time_t t = (time_t)s;
        struct tm tm;
        if (!gmtime_r(&t, &tm) ||
            strftime(f->expires, sizeof(f->expires), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" is not a valid time");
            return -1;
        }
    } else if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (!tg_rfc3339_parse(json_string_value(v), n, true, NULL, NULL)) {
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" must be an RFC 3339 time such as "
                           "2030-01-31T12:00:00Z, or unix seconds");
            return -1;
        }
        memcpy(f->expires, json_string_value(v), n);
        f->expires[n] = '\0';
    } else {
        cp_reply_error(r, 400, "invalid_type", "expires_at",
                       "\"expires_at\" must be an RFC 3339 string or unix seconds");
        return -1;
    }
    const char *p[1] = {f->expires};
    PGresult *res = cp_db_exec(r->db, "SELECT $1::timestamptz > now()", 1, p);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int rc = -1;
    if (cp_db_ok(res) && PQntuples(res) == 1) {
        if (PQgetvalue(res, 0, 0)[0] == 't')
            rc = 0;
        else
            cp_reply_error(r, 422, "invalid_value", "expires_at",
                           "\"expires_at\" must be a time in the future");
    } else if (state && strncmp(state, "22", 2) == 0) {
        cp_reply_error(r, 422, "invalid_value", "expires_at", "\"expires_at\" is not a valid time");
    } else {
        cp_reply_db_error(r, res);
    }
    PQclear(res);
    return rc;
}

/* models: an array of at most KEY_MODELS_MAX distinct route aliases. Whether each alias exists
 * is checked in the transaction (check_models). */
static int read_models(cp_req_t *r, json_t *o, bool patch, key_fields_t *f)
{
    json_t *v = json_object_get(o, "models");
    if (!v || (json_is_null(v) && !patch))
        return 0;
    if (!json_is_array(v)) {
        cp_reply_error(r, 400, "invalid_type", "models",
                       "\"models\" must be an array of route aliases");
        return -1;
    }
    size_t n = json_array_size(v);
    if (n > KEY_MODELS_MAX) {
        cp_reply_error(r, 422, "invalid_length", "models", "\"models\" holds at most %d aliases",
                       KEY_MODELS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            cp_reply_error(r, 400, "invalid_type", "models",
                           "\"models\" entries must be strings (route aliases)");
            return -1;
        }
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        if (len == 0 || len > KEY_ALIAS_MAX) {
            cp_reply_error(r, 422, "invalid_length", "models",
                           "\"models\" entries must be 1 to %d bytes long", KEY_ALIAS_MAX);
            return -1;
        }
        for (size_t j = 0; j < len; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c < 0x20 || c == 0x7f) {
                cp_reply_error(r, 422, "invalid_characters", "models",
                               "\"models\" entries must not contain control characters");
                return -1;
            }
        }
        for (size_t j = 0; j < i; j++) {
            json_t *d = json_array_get(v, j);
            if (tg_mem_eq(json_string_value(d), json_string_length(d), s, len)) {
                cp_reply_error(r, 422, "duplicate_value", "models", "\"models\" lists \"%s\" twice",
                               s);
                return -1;
            }
        }
    }
    f->models = json_dumps(v, JSON_COMPACT);
    if (!f->models) {
        cp_reply_error(r, 500, "internal", NULL, "could not encode \"models\"");
        return -1;
    }
    f->has_models = true;
    return 0;
}

/* Reads the fields shared by create and update. In an update, null clears the optional fields
 * and may not be sent for name or models. */
static int read_fields(cp_req_t *r, json_t *o, bool patch, key_fields_t *f)
{
    json_t *name = json_object_get(o, "name");
    if (patch && name && json_is_null(name)) {
        cp_reply_error(r, 400, "invalid_type", "name", "\"name\" must be a string");
        return -1;
    }
    if (cp_body_str(r, o, "name", !patch, KEY_NAME_MAX, &f->name) != 0 ||
        read_models(r, o, patch, f) != 0 ||
        cp_body_rate_limit(r, o, "rpm_limit", &f->has_rpm, &f->rpm_null, f->rpm, sizeof(f->rpm)) !=
            0 ||
        cp_body_rate_limit(r, o, "tpm_limit", &f->has_tpm, &f->tpm_null, f->tpm, sizeof(f->tpm)) !=
            0 ||
        read_expiry(r, o, f) != 0)
        return -1;
    return 0;
}

/* Every alias must name a route the tenant can use: its own or a platform-wide one. */
static int check_models(cp_req_t *r, const key_fields_t *f)
{
    if (!f->has_models)
        return 0;
    const char *p[2] = {f->models, r->params[0]};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT t.e FROM json_array_elements_text($1::json) WITH ORDINALITY AS t(e, n) WHERE NOT "
        "EXISTS (SELECT 1 FROM routes rt WHERE rt.alias = t.e AND (rt.tenant_id IS NULL OR "
        "rt.tenant_id = $2::uuid)) ORDER BY t.n LIMIT 1",
        2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    if (PQntuples(res) == 1) {
        cp_reply_error(r, 422, "unknown_model", "models",
                       "\"models\" names \"%s\", which is not a route alias of this tenant",
                       PQgetvalue(res, 0, 0));
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* Members may narrow, never widen, what an admin set on a key: a lower rpm_limit or tpm_limit,
 * an earlier expires_at, a subset of models; removing a limit or the expiry widens. A key whose
 * limits no admin set (a member's own, untouched) is the member's to change. In the update's
 * transaction, after key_lock locked the row. Returns -1 after replying 403 naming the field. */
static int check_narrows(cp_req_t *r, const key_fields_t *f)
{
    const char *p[9] = {
        r->params[1],
        r->params[0],
        f->has_models ? f->models : NULL,
        f->has_expires ? "t" : "f",
        f->has_expires && !f->expires_null ? f->expires : NULL,
        f->has_rpm ? "t" : "f",
        f->has_rpm && !f->rpm_null ? f->rpm : NULL,
        f->has_tpm ? "t" : "f",
        f->has_tpm && !f->tpm_null ? f->tpm : NULL,
    };
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT CASE WHEN NOT k.limits_set_by_admin THEN NULL WHEN $6::boolean AND k.rpm_limit "
        "IS NOT NULL AND ($7::integer IS NULL OR $7::integer > k.rpm_limit) THEN 'rpm_limit' "
        "WHEN $8::boolean AND k.tpm_limit IS NOT NULL AND ($9::integer IS NULL OR $9::integer > "
        "k.tpm_limit) THEN 'tpm_limit' WHEN $4::boolean AND k.expires_at IS NOT NULL AND "
        "($5::timestamptz IS NULL OR $5::timestamptz > k.expires_at) THEN 'expires_at' WHEN "
        "$3::json IS NOT NULL AND EXISTS (SELECT 1 FROM json_array_elements_text($3::json) AS "
        "t(e) WHERE t.e <> ALL (k.models)) THEN 'models' END FROM virtual_keys k WHERE k.id = $1 "
        "AND k.tenant_id = $2",
        9, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    if (!PQgetisnull(res, 0, 0)) {
        const char *field = PQgetvalue(res, 0, 0);
        bool models = strcmp(field, "models") == 0, expiry = strcmp(field, "expires_at") == 0;
        cp_reply_error(r, 403, "forbidden", field,
                       "an admin set \"%s\" on this key; members may only narrow it (%s), not "
                       "widen or remove it",
                       field,
                       models   ? "a subset of the models"
                       : expiry ? "an earlier expiry"
                                : "a lower limit");
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* A new secret: the text (shown once), the hex SHA-256 to store and the last four characters. */
static int new_secret(cp_req_t *r, char *secret, size_t n, char hex[65], char last4[5])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t hash[32];
    if (cp_token_new("tg-", secret, n, hash) != 0) {
        cp_reply_error(r, 500, "internal", NULL, "could not generate a key");
        return -1;
    }
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 15];
    }
    hex[64] = '\0';
    size_t len = strlen(secret);
    memcpy(last4, secret + len - 4, 4);
    last4[4] = '\0';
    return 0;
}

void cp_api_keys_list(cp_req_t *r)
{
    static const char *const statuses[] = {"active", "revoked", "expired", NULL};
    cp_list_t l;
    const char *owner, *status;
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, NULL) < 0 || cp_list_params(r, true, &l) != 0 ||
        cp_list_filter(r, "owner_user_id", cp_is_uuid, "must be a user id", &owner) != 0 ||
        cp_list_filter_enum(r, "status", statuses, &status) != 0)
        return;
    const char *p[5] = {r->params[0], l.cursor, owner, status, l.fetch};
    cp_list_reply(r, &l,
                  "SELECT " KEY_JSON " FROM virtual_keys k WHERE k.tenant_id = $1 AND ($2::uuid IS "
                  "NULL OR k.id > $2::uuid) AND ($3::uuid IS NULL OR k.owner_user_id = $3::uuid) "
                  "AND ($4::text IS NULL OR " KEY_STATUS " = $4) ORDER BY k.id LIMIT $5::int",
                  5, p, "id");
}

void cp_api_keys_create(cp_req_t *r)
{
    static const char *const fields[] = {"name",      "models",        "expires_at", "rpm_limit",
                                         "tpm_limit", "owner_user_id", NULL};
    key_fields_t f;
    memset(&f, 0, sizeof(f));
    char secret[64] = "", hex[65], last4[5];
    const char *owner;
    int role = cp_tenant_scope(r, CP_ROLE_MEMBER, NULL);
    if (role < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (read_fields(r, o, false, &f) != 0 ||
        cp_body_str(r, o, "owner_user_id", false, 64, &owner) != 0)
        goto out;
    if (owner && !cp_is_uuid(owner)) {
        cp_reply_error(r, 422, "invalid_value", "owner_user_id",
                       "\"owner_user_id\" must be the id of a user in this tenant");
        goto out;
    }
    bool for_other = owner && !(caller_id(r) && cp_uuid_eq(owner, caller_id(r)));
    if (!owner)
        owner = caller_id(r);
    if (for_other && role < CP_ROLE_ADMIN) {
        cp_reply_error(r, 403, "forbidden", "owner_user_id",
                       "members create keys only for themselves; this needs the admin role");
        goto out;
    }
    if (cp_db_begin(r) != 0)
        goto out;
    const char *m[2] = {r->params[0], owner};
    if (for_other &&
        cp_change_need(r,
                       "SELECT 1 FROM memberships m WHERE m.tenant_id = $1 AND "
                       "m.user_id = $2::uuid FOR SHARE",
                       2, m, 422, "owner_user_id",
                       "\"owner_user_id\" must be the id of a user in this tenant") != 0) {
        cp_db_rollback(r);
        goto out;
    }
    if (check_models(r, &f) != 0 || new_secret(r, secret, sizeof(secret), hex, last4) != 0) {
        cp_db_rollback(r);
        goto out;
    }
    const char *p[10] = {
        r->params[0],
        owner,
        f.name,
        hex,
        last4,
        f.has_models ? f.models : "[]",
        f.has_rpm && !f.rpm_null ? f.rpm : NULL,
        f.has_tpm && !f.tpm_null ? f.tpm : NULL,
        f.has_expires && !f.expires_null ? f.expires : NULL,
        role >= CP_ROLE_ADMIN ? "t" : "f", /* an admin chose these limits, even by omission */
    };
    /* models keep the order the client sent */
    json_t *k = cp_change_row(
        r,
        "INSERT INTO virtual_keys AS k (tenant_id, owner_user_id, name, key_hash, last4, models, "
        "rpm_limit, tpm_limit, expires_at, limits_set_by_admin) VALUES ($1, $2::uuid, $3, "
        "decode($4, 'hex'), $5, ARRAY(SELECT e FROM json_array_elements_text($6::json) WITH "
        "ORDINALITY AS t(e, n) ORDER BY n), $7::integer, $8::integer, $9::timestamptz, "
        "$10::boolean) RETURNING " KEY_JSON,
        10, p, 0);
    if (!k) {
        cp_db_rollback(r);
        goto out;
    }
    cp_change_t c = {r->params[0], "key.create", "key", json_string_value(json_object_get(k, "id")),
                     false};
    cp_change_reply_secret(r, &c, 201, NULL, k, "key", secret);
out:
    wipe(secret, sizeof(secret));
    free(f.models);
    json_decref(o);
}

void cp_api_keys_get(cp_req_t *r)
{
    if (cp_tenant_scope(r, CP_ROLE_VIEWER, "key") < 0)
        return;
    const char *p[2] = {r->params[1], r->params[0]};
    cp_reply_object(r,
                    "SELECT " KEY_JSON " FROM virtual_keys k WHERE k.id = $1 AND k.tenant_id = $2",
                    2, p, "key");
}

void cp_api_keys_update(cp_req_t *r)
{
    static const char *const fields[] = {"name",      "models",    "expires_at",
                                         "rpm_limit", "tpm_limit", NULL};
    key_fields_t f;
    memset(&f, 0, sizeof(f));
    json_t *before = NULL;
    bool mine;
    int role = cp_tenant_scope(r, CP_ROLE_MEMBER, "key");
    if (role < 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    if (read_fields(r, o, true, &f) != 0)
        goto out;
    if (!f.name && !f.has_models && !f.has_expires && !f.has_rpm && !f.has_tpm) {
        cp_reply_error(r, 400, "missing_field", NULL,
                       "send at least one of: name, models, expires_at, rpm_limit, tpm_limit");
        goto out;
    }
    if (key_lock(r, &before, &mine) != 0)
        goto out;
    if (!may_manage(r, role, mine) || check_models(r, &f) != 0 ||
        (role < CP_ROLE_ADMIN && check_narrows(r, &f) != 0)) {
        cp_db_rollback(r);
        goto out;
    }
    bool limits = f.has_models || f.has_expires || f.has_rpm || f.has_tpm;
    const char *p[11] = {
        r->params[1],
        r->params[0],
        f.name,
        f.has_models ? f.models : NULL,
        f.has_expires ? "t" : "f",
        f.has_expires && !f.expires_null ? f.expires : NULL,
        f.has_rpm ? "t" : "f",
        f.has_rpm && !f.rpm_null ? f.rpm : NULL,
        f.has_tpm ? "t" : "f",
        f.has_tpm && !f.tpm_null ? f.tpm : NULL,
        limits && role >= CP_ROLE_ADMIN ? "t" : "f",
    };
    json_t *after = cp_change_row(
        r,
        "UPDATE virtual_keys AS k SET name = coalesce($3, k.name), models = CASE WHEN $4::json IS "
        "NULL THEN k.models ELSE ARRAY(SELECT e FROM json_array_elements_text($4::json) WITH "
        "ORDINALITY AS t(e, n) ORDER BY n) END, expires_at = CASE WHEN $5::boolean THEN "
        "$6::timestamptz ELSE k.expires_at END, rpm_limit = CASE WHEN $7::boolean THEN "
        "$8::integer ELSE k.rpm_limit END, tpm_limit = CASE WHEN $9::boolean THEN $10::integer "
        "ELSE k.tpm_limit END, limits_set_by_admin = k.limits_set_by_admin OR $11::boolean, "
        "updated_at = now() WHERE k.id = $1 AND k.tenant_id = $2 RETURNING " KEY_JSON,
        11, p, 0);
    cp_change_t c = {r->params[0], "key.update", "key", r->params[1], false};
    cp_change_reply(r, &c, 200, before, after);
out:
    json_decref(before);
    free(f.models);
    json_decref(o);
}

/* Begins a change to a key the caller may manage: *before is the key (the caller's), or NULL and
 * -1 after replying (and rolling back). */
static int key_lock_managed(cp_req_t *r, json_t **before)
{
    bool mine;
    int role = cp_tenant_scope(r, CP_ROLE_MEMBER, "key");
    if (role < 0 || key_lock(r, before, &mine) != 0)
        return -1;
    if (!may_manage(r, role, mine)) {
        cp_db_rollback(r);
        json_decref(*before);
        *before = NULL;
        return -1;
    }
    return 0;
}

void cp_api_keys_rotate(cp_req_t *r)
{
    char secret[64] = "", hex[65], last4[5];
    json_t *before = NULL;
    if (key_lock_managed(r, &before) != 0)
        goto out;
    if (!json_is_null(json_object_get(before, "revoked_at"))) {
        cp_db_rollback(r);
        cp_reply_error(r, 409, "key_revoked", NULL, "a revoked key cannot be rotated");
        goto out;
    }
    if (new_secret(r, secret, sizeof(secret), hex, last4) != 0) {
        cp_db_rollback(r);
        goto out;
    }
    const char *p[4] = {r->params[1], r->params[0], hex, last4};
    json_t *after = cp_change_row(r,
                                  "UPDATE virtual_keys AS k SET key_hash = decode($3, 'hex'), "
                                  "last4 = $4, updated_at = now() WHERE k.id = $1 AND "
                                  "k.tenant_id = $2 RETURNING " KEY_JSON,
                                  4, p, 0);
    if (!after) {
        cp_db_rollback(r);
        goto out;
    }
    cp_change_t c = {r->params[0], "key.rotate", "key", r->params[1], false};
    cp_change_reply_secret(r, &c, 200, before, after, "key", secret);
out:
    wipe(secret, sizeof(secret));
    json_decref(before);
}

void cp_api_keys_revoke(cp_req_t *r)
{
    json_t *before = NULL;
    if (key_lock_managed(r, &before) != 0)
        return;
    if (!json_is_null(json_object_get(before, "revoked_at"))) {
        /* already revoked: nothing changes, so nothing to audit or push */
        cp_db_rollback(r);
        cp_reply_json(r, 200, before);
        return;
    }
    const char *p[2] = {r->params[1], r->params[0]};
    json_t *after = cp_change_row(r,
                                  "UPDATE virtual_keys AS k SET revoked_at = now(), updated_at = "
                                  "now() WHERE k.id = $1 AND k.tenant_id = $2 RETURNING " KEY_JSON,
                                  2, p, 0);
    cp_change_t c = {r->params[0], "key.revoke", "key", r->params[1], false};
    cp_change_reply(r, &c, 200, before, after);
    json_decref(before);
}

/* The key's budgets go with it (ON DELETE CASCADE); delete them first so each is audited. */
static int delete_key_budgets(cp_req_t *r)
{
    const char *p[2] = {r->params[1], r->params[0]};
    PGresult *res = cp_db_exec(r->db,
                               "DELETE FROM budgets AS b WHERE b.key_id = $1 AND b.tenant_id = $2 "
                               "RETURNING b.id, " KEY_BUDGET_JSON,
                               2, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        json_t *b = cp_db_json_row(res, i, 1);
        rc = cp_audit(r, r->params[0], "budget.delete", "budget", PQgetvalue(res, i, 0), b, NULL);
        json_decref(b);
    }
    PQclear(res);
    return rc;
}

void cp_api_keys_delete(cp_req_t *r)
{
    json_t *before = NULL;
    if (key_lock_managed(r, &before) != 0)
        return;
    const char *p[2] = {r->params[1], r->params[0]};
    cp_change_t c = {r->params[0], "key.delete", "key", r->params[1], false};
    if (delete_key_budgets(r) != 0)
        cp_db_rollback(r);
    else
        cp_change_delete(r, &c, "DELETE FROM virtual_keys WHERE id = $1 AND tenant_id = $2", 2, p,
                         before);
    json_decref(before);
}

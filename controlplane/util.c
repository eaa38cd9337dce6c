/* util.c: replies, request-body validation and access checks shared by every API handler.
 * Runs on MHD worker threads; no shared state. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "tg_log.h"
#include "tg_usage_event.h"

#include "tg_banned.h"

/* Set by main before any thread starts (unit tests point it at their own); read-only after. */
const cp_opts_t *cp_opts;

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

void cp_reply_json(cp_req_t *r, int status, json_t *v)
{
    tg_buf_reset(&r->out);
    r->status = status;
    r->content_type = "application/json";
    if (!v || json_dump_callback(v, dump_cb, &r->out, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        tg_buf_reset(&r->out);
        r->status = 500;
        if (tg_buf_appendf(&r->out, "{\"error\":{\"code\":\"internal\",\"message\":\"could not "
                                    "encode the response\",\"field\":null}}") != 0)
            tg_buf_reset(&r->out);
    }
    json_decref(v);
}

int cp_json_append_compact(tg_buf_t *b, const char *s, size_t n)
{
    size_t start = 0, i = 0;
    bool in_str = false, esc = false;
    for (; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            if (i > start && tg_buf_append(b, s + start, i - start) != 0)
                return -1;
            start = i + 1;
        }
    }
    if (i > start && tg_buf_append(b, s + start, i - start) != 0)
        return -1;
    return 0;
}

void cp_reply_json_text(cp_req_t *r, int status, const char *s, size_t n)
{
    tg_buf_reset(&r->out);
    r->status = status;
    r->content_type = "application/json";
    if (cp_json_append_compact(&r->out, s, n) != 0)
        cp_reply_error(r, 500, "internal", NULL, "could not build the response");
}

void cp_reply_json_row(cp_req_t *r, PGresult *res)
{
    if (cp_db_ok(res) && PQntuples(res) == 1)
        cp_reply_json_text(r, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    else
        cp_reply_db_error(r, res);
    PQclear(res);
}

void cp_reply_error(cp_req_t *r, int status, const char *code, const char *field, const char *fmt,
                    ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cp_reply_json(
        r, status,
        json_pack("{s:{s:s,s:s,s:s?}}", "error", "code", code, "message", msg, "field", field));
}

void cp_reply_db_error(cp_req_t *r, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (state && strcmp(state, "23505") == 0) {
        /* a person reads the field and what to do, never the schema's constraint names */
        static const struct {
            const char *constraint, *field, *message;
        } uniques[] = {
            {"tenants_slug_key", "slug", "a tenant with this slug exists; choose another slug"},
            {"users_email_key", "email",
             "a user with this email exists (emails match in any case)"},
        };
        for (size_t i = 0; constraint && i < sizeof(uniques) / sizeof(uniques[0]); i++) {
            if (strcmp(constraint, uniques[i].constraint) == 0) {
                cp_reply_error(r, 409, "conflict", uniques[i].field, "%s", uniques[i].message);
                return;
            }
        }
        cp_reply_error(r, 409, "conflict", NULL, "an object with the same unique value exists");
        return;
    }
    if (state && (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)) {
        /* a CHECK, foreign key or data exception: the input broke a rule the schema enforces */
        cp_reply_error(r, 422, "invalid", NULL, "the request breaks a rule%s%s",
                       constraint ? ": " : "", constraint ? constraint : "");
        return;
    }
    tg_log(TG_LOG_ERROR, "cp_db", "query_failed", "sqlstate=%s reason=\"%s\"",
           state ? state : "none", res ? PQresultErrorMessage(res) : "no result");
    cp_reply_error(r, 503, "database_unavailable", NULL,
                   "the database could not complete the "
                   "request; retry shortly");
}

void cp_reply_page(cp_req_t *r, PGresult *res, int limit, const char *cursor_field)
{
    json_t *items = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(items, cp_db_json_row(res, i, 0));
    json_t *next = NULL;
    if (n > limit)
        next = json_copy(json_object_get(json_array_get(items, (size_t)limit - 1), cursor_field));
    cp_reply_json(r, 200,
                  json_pack("{s:o,s:o}", "data", items, "next_cursor", next ? next : json_null()));
}

json_t *cp_body_object(cp_req_t *r, const char *const *allowed)
{
    json_error_t jerr;
    if (!r->body || r->body_len == 0) {
        cp_reply_error(r, 400, "invalid_json", NULL,
                       "request body is empty; expected a JSON object");
        return NULL;
    }
    json_t *o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        cp_reply_error(r, 400, "invalid_json", NULL, "request body is not valid JSON: %s",
                       jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        cp_reply_error(r, 400, "invalid_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok = ok || strcmp(*a, k) == 0;
        if (!ok) {
            /* cut a long name at a character boundary: half a UTF-8 sequence is not JSON */
            int n = (int)strlen(k);
            if (n > 64) {
                n = 64;
                while (n > 0 && ((unsigned char)k[n] & 0xC0) == 0x80)
                    n--;
            }
            cp_reply_error(r, 400, "unknown_field", k, "unknown field \"%.*s\"", n, k);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static bool valid_utf8_text(const char *s, size_t n)
{
    /* jansson guarantees UTF-8; refuse NUL and other C0 controls but tab and newline */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n')
            return false;
    }
    return true;
}

/* What a body member must be, and how an error names it. */
enum member_kind { MEMBER_STRING, MEMBER_INTEGER, MEMBER_NUMBER, MEMBER_BOOLEAN };

static bool member_is(json_t *v, enum member_kind k)
{
    json_type t = json_typeof(v);
    if (k == MEMBER_NUMBER)
        return t == JSON_INTEGER || t == JSON_REAL;
    if (k == MEMBER_BOOLEAN)
        return t == JSON_TRUE || t == JSON_FALSE;
    return t == (k == MEMBER_STRING ? JSON_STRING : JSON_INTEGER);
}

/* A body member of kind k, or NULL: absent or null (*rc 0, or -1 after replying 400 when it is
 * required) or of another kind (*rc -1 after replying 400). */
static json_t *member(cp_req_t *r, json_t *o, const char *name, bool required, enum member_kind k,
                      int *rc)
{
    static const char *const kinds[] = {"a string", "an integer", "a number", "a boolean"};
    json_t *v = json_object_get(o, name);
    *rc = 0;
    if (v && !json_is_null(v) && member_is(v, k))
        return v;
    if (v && !json_is_null(v)) {
        cp_reply_error(r, 400, "invalid_type", name, "\"%s\" must be %s", name, kinds[k]);
        *rc = -1;
    } else if (required) {
        cp_reply_error(r, 400, "missing_field", name, "\"%s\" is required", name);
        *rc = -1;
    }
    return NULL;
}

int cp_body_str(cp_req_t *r, json_t *o, const char *name, bool required, size_t max,
                const char **out)
{
    int rc;
    json_t *v = member(r, o, name, required, MEMBER_STRING, &rc);
    *out = NULL;
    if (!v)
        return rc;
    size_t n = json_string_length(v);
    if (n == 0 || n > max) {
        cp_reply_error(r, 422, "invalid_length", name, "\"%s\" must be 1 to %zu bytes long", name,
                       max);
        return -1;
    }
    if (!valid_utf8_text(json_string_value(v), n)) {
        cp_reply_error(r, 422, "invalid_characters", name,
                       "\"%s\" must not contain control characters", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int cp_body_int(cp_req_t *r, json_t *o, const char *name, bool required, int64_t min, int64_t max,
                bool *present, int64_t *out)
{
    int rc;
    json_t *v = member(r, o, name, required, MEMBER_INTEGER, &rc);
    *present = false;
    if (!v)
        return rc;
    int64_t i = json_integer_value(v);
    if (i < min || i > max) {
        cp_reply_error(r, 422, "out_of_range", name, "\"%s\" must be from %lld to %lld", name,
                       (long long)min, (long long)max);
        return -1;
    }
    *present = true;
    *out = i;
    return 0;
}

int cp_body_rate_limit(cp_req_t *r, json_t *o, const char *name, bool *has, bool *is_null,
                       char *out, size_t outlen)
{
    json_t *v = json_object_get(o, name);
    bool present;
    int64_t i;
    if (!v)
        return 0;
    *has = true;
    if (json_is_null(v)) {
        *is_null = true;
        return 0;
    }
    if (cp_body_int(r, o, name, true, 1, INT32_MAX, &present, &i) != 0)
        return -1;
    snprintf(out, outlen, "%lld", (long long)i);
    return 0;
}

int cp_body_amount(cp_req_t *r, json_t *o, const char *name, bool required, double min, double max,
                   const char *range, bool *present, char *out, size_t outlen)
{
    int rc;
    json_t *v = member(r, o, name, required, MEMBER_NUMBER, &rc);
    *present = false;
    if (!v)
        return rc;
    double d = json_number_value(v);
    if (!(d >= min && d <= max)) {
        cp_reply_error(r, 422, "out_of_range", name, "\"%s\" must be %s", name, range);
        return -1;
    }
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
    } else {
        /* the fewest digits that read back as the same double: 0.15, not 0.1499...; Postgres
         * then rounds to the column's scale */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, d);
            if (strtod(out, NULL) == d)
                break;
        }
    }
    *present = true;
    return 0;
}

int cp_body_bool(cp_req_t *r, json_t *o, const char *name, bool *present, bool *out)
{
    int rc;
    json_t *v = member(r, o, name, false, MEMBER_BOOLEAN, &rc);
    *present = false;
    if (!v)
        return rc;
    *present = true;
    *out = json_is_true(v);
    return 0;
}

int cp_body_enum(cp_req_t *r, json_t *o, const char *name, bool required, const char *const *values,
                 const char **out)
{
    if (cp_body_str(r, o, name, required, 64, out) != 0)
        return -1;
    if (!*out)
        return 0;
    for (const char *const *v = values; *v; v++)
        if (strcmp(*v, *out) == 0)
            return 0;
    char list[256] = "";
    for (const char *const *v = values; *v; v++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", *v);
    }
    cp_reply_error(r, 422, "invalid_value", name, "\"%s\" must be one of: %s", name, list);
    *out = NULL;
    return -1;
}

const char *cp_query(cp_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->mhd, MHD_GET_ARGUMENT_KIND, name);
}

int cp_page_params(cp_req_t *r, int *limit, const char **cursor)
{
    const char *l = cp_query(r, "limit");
    *limit = 50;
    *cursor = cp_query(r, "cursor");
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > 200) {
            cp_reply_error(r, 400, "invalid_query", "limit",
                           "limit must be an integer from 1 to 200");
            return -1;
        }
        *limit = (int)v;
    }
    if (*cursor && (strlen(*cursor) > 128 || !**cursor)) {
        cp_reply_error(r, 400, "invalid_query", "cursor", "cursor is not valid");
        return -1;
    }
    return 0;
}

int cp_page_params_uuid(cp_req_t *r, int *limit, const char **cursor)
{
    if (cp_page_params(r, limit, cursor) != 0)
        return -1;
    if (*cursor && !cp_is_uuid(*cursor)) {
        cp_reply_error(r, 400, "invalid_query", "cursor", "cursor is not valid");
        return -1;
    }
    return 0;
}

bool cp_require_platform(cp_req_t *r, const char *what)
{
    if (r->who.platform_admin)
        return true;
    /* the same answer whether or not the object exists: nothing leaks */
    cp_reply_error(r, 403, "forbidden", NULL, "only platform admins %s", what);
    return false;
}

bool cp_is_uuid(const char *s)
{
    return s && tg_usage_is_uuid(s); /* one uuid check for both planes (common/) */
}

bool cp_uuid_eq(const char *a, const char *b)
{
    if (!cp_is_uuid(a) || !cp_is_uuid(b))
        return false;
    for (int i = 0; i < 36; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'F')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'F')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

static const char *const role_names[] = {"none", "viewer", "member", "admin", "owner", "platform"};

const char *cp_role_name(int role)
{
    return role >= 0 && role <= CP_ROLE_PLATFORM ? role_names[role] : "none";
}

int cp_role_parse(const char *s)
{
    for (int i = CP_ROLE_VIEWER; i <= CP_ROLE_OWNER; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return CP_ROLE_NONE;
}

int cp_role_in(cp_req_t *r, const char *tenant_id)
{
    if (!r->who.authenticated || !cp_is_uuid(tenant_id))
        return CP_ROLE_NONE;
    if (r->who.via_token && r->who.token_tenant[0] && strcmp(r->who.token_tenant, tenant_id) != 0)
        return CP_ROLE_NONE;
    int role = CP_ROLE_NONE;
    /* a platform admin's token scoped to one tenant reaches that tenant as its role says */
    if (r->who.platform_admin || (r->who.via_token && r->who.user_platform_admin)) {
        role = CP_ROLE_PLATFORM;
    } else {
        const char *p[2] = {r->who.user_id, tenant_id};
        PGresult *res = cp_db_exec(r->db,
                                   "SELECT m.role FROM memberships m JOIN tenants t ON t.id = "
                                   "m.tenant_id WHERE m.user_id = $1 AND m.tenant_id = $2",
                                   2, p);
        if (cp_db_ok(res) && PQntuples(res) == 1)
            role = cp_role_parse(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (r->who.via_token && role > r->who.token_role)
        role = r->who.token_role;
    return role;
}

int cp_require_role(cp_req_t *r, const char *tenant_id, int min)
{
    int role = cp_role_in(r, tenant_id);
    if (role == CP_ROLE_NONE) {
        /* also when the tenant does not exist: a caller cannot tell the two apart */
        cp_reply_error(r, 404, "not_found", NULL, "no such tenant");
        return -1;
    }
    if (role < min) {
        cp_reply_error(r, 403, "forbidden", NULL,
                       "this needs the %s role in the tenant; you have %s", cp_role_name(min),
                       cp_role_name(role));
        return -1;
    }
    return role;
}

/* providers.c: /api/v1/providers, the upstreams that routes send to. Platform-wide config
 * (tenant_id NULL): only platform admins read or change it, because a base URL may point inside
 * the network. Credentials are write-only: sealed with cp_seal into credentials_enc; replies and
 * audit rows show has_credentials and the credential names, never a value. What each kind needs
 * for the data plane to take the provider (common/tg_snap.c) is checked here, so the snapshot
 * never has to leave it out. Runs on MHD worker threads. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

#define CRED_MAX 8192 /* the credentials object, as compact JSON */
#define CRED_NAME_MAX 64
#define HEADER_COUNT_MAX 64
#define HEADER_NAME_MAX 256
#define HEADER_VALUE_MAX 4096 /* the data plane's limit (common/tg_snap.c) */
#define SETTINGS_MAX (64u << 10)
#define BASE_URL_MAX 2048
#define SETTINGS_DEPTH_MAX 32
#define API_KEY_MAX 4096   /* what the data plane takes (common/tg_snap.c) */
#define API_VERSION_MAX 64 /* settings.api_version, settings.region */
#define AWS_KEY_MAX 256    /* aws_access_key_id, aws_secret_access_key */
#define AWS_TOKEN_MAX 4096 /* aws_session_token */

/* Column 0: the provider without its credential names; column 1: the sealed credentials in hex
 * (NULL when there are none), for the names; column 2: the id. */
#define PROVIDER_COLS                                                                              \
    "json_build_object('id', p.id, 'name', p.name, 'kind', p.kind, 'base_url', p.base_url, "       \
    "'headers', p.headers, 'settings', p.settings, 'has_credentials', p.credentials_enc IS NOT "   \
    "NULL, 'created_at', p.created_at, 'updated_at', p.updated_at)::text, "                        \
    "encode(p.credentials_enc, 'hex'), p.id"

static const char *const kinds[] = {"openai", "azure", "anthropic", "gemini", "bedrock", NULL};

/* Headers the data plane sets itself (the AWS signature's among them), hop-by-hop headers, and
 * headers that carry secrets (those belong in "credentials", which are never shown). */
static const char *const refused_headers[] = {"authorization",
                                              "proxy-authorization",
                                              "host",
                                              "content-length",
                                              "transfer-encoding",
                                              "connection",
                                              "keep-alive",
                                              "te",
                                              "trailer",
                                              "upgrade",
                                              "expect",
                                              "content-type",
                                              "cookie",
                                              "x-api-key",
                                              "api-key",
                                              "x-goog-api-key",
                                              "x-amz-date",
                                              "x-amz-security-token",
                                              "x-amz-content-sha256",
                                              NULL};

/* ---- reading ---- */

/* A sealed credentials object opened (caller decrefs), or NULL when it cannot be opened (no or
 * another master key, or a tampered row). The plaintext buffer is wiped before returning. */
static json_t *open_credentials(const char *hex, const char *id)
{
    size_t hlen = strlen(hex);
    json_t *o = NULL;
    uint8_t *sealed = malloc(hlen / 2 + 1);
    tg_buf_t plain = TG_BUF_INIT(CRED_MAX + 1024);
    if (!sealed || hlen % 2 != 0 || tg_hex_decode(hex, hlen, sealed, hlen / 2) != 0)
        goto out;
    if (cp_open(sealed, hlen / 2, &plain) != 0) {
        tg_log(TG_LOG_WARN, "cp_providers", "credentials_unreadable",
               "provider_id=%s reason=\"cannot open credentials_enc with the master key\"", id);
        goto out;
    }
    o = json_loadb(plain.base, plain.len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
out:
    if (plain.base)
        OPENSSL_cleanse(plain.base, plain.cap);
    tg_buf_dispose(&plain);
    free(sealed);
    return o;
}

/* The names in a sealed credentials object, or JSON null when it cannot be opened. */
static json_t *credential_names(const char *hex, const char *id)
{
    if (!hex)
        return json_array();
    json_t *o = open_credentials(hex, id);
    if (!o)
        return json_null();
    json_t *names = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        (void)v;
        json_array_append_new(names, json_string(k));
    }
    json_decref(o);
    return names;
}

/* One row as a json_t (for the audit log). */
static json_t *provider_json(PGresult *res, int row)
{
    json_t *p = cp_db_json_row(res, row, 0);
    if (!p)
        return NULL;
    json_object_set_new(p, "credential_names",
                        credential_names(PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1),
                                         PQgetvalue(res, row, 2)));
    return p;
}

/* One row as JSON text, as Postgres wrote it (so that numbers in settings keep their spelling),
 * with the credential names added. */
static int provider_text(PGresult *res, int row, tg_buf_t *out)
{
    const char *j = PQgetvalue(res, row, 0);
    size_t n = strlen(j);
    if (n < 2 || j[n - 1] != '}')
        return TG_EINVAL;
    json_t *names = credential_names(PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1),
                                     PQgetvalue(res, row, 2));
    char *ns = json_dumps(names, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(names);
    int rc = ns ? 0 : TG_ENOMEM;
    if (rc == 0)
        rc = tg_buf_append(out, j, n - 1);
    if (rc == 0)
        rc = tg_buf_appendf(out, ", \"credential_names\" : %s}", ns);
    free(ns);
    return rc;
}

static void reply_provider(cp_req_t *r, int status, PGresult *res)
{
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    if (provider_text(res, 0, &b) != 0)
        cp_reply_error(r, 500, "internal", NULL, "could not build the response");
    else
        cp_reply_json_text(r, status, b.base, b.len);
    tg_buf_dispose(&b);
}

#define PROVIDER_BY_ID                                                                             \
    "SELECT " PROVIDER_COLS " FROM providers p WHERE p.id = $1 AND p.tenant_id IS NULL"

/* Begins a change to the provider in the path: the locked row (PROVIDER_COLS), or NULL after
 * replying and rolling back. */
static PGresult *provider_lock(cp_req_t *r)
{
    const char *p[1] = {r->params[0]};
    return cp_change_lock(r, PROVIDER_BY_ID " FOR UPDATE", 1, p, "provider");
}

/* ---- validation ---- */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Never echoes the URL: it may hold a password, which is the thing being refused. */
static int check_base_url(cp_req_t *r, const char *u)
{
    size_t n = strlen(u);
    size_t skip;
    if (strncmp(u, "https://", 8) == 0)
        skip = 8;
    else if (strncmp(u, "http://", 7) == 0)
        skip = 7;
    else
        goto bad_scheme;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#') {
            cp_reply_error(r, 422, "invalid_value", "base_url",
                           "\"base_url\" must be plain ASCII without whitespace, control "
                           "characters, '\\' or a fragment");
            return -1;
        }
    }
    const char *auth = u + skip;
    size_t alen = strcspn(auth, "/?");
    if (memchr(auth, '@', alen)) {
        cp_reply_error(r, 422, "invalid_value", "base_url",
                       "\"base_url\" must not carry a user or password; put secrets in "
                       "\"credentials\"");
        return -1;
    }
    /* host[:port] or [v6]:port, with a host */
    const char *host_end = auth + alen;
    const char *colon = NULL;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close || close == auth + 1)
            goto bad_host;
        for (const char *c = auth + 1; c < close; c++)
            if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
                  (*c >= 'A' && *c <= 'F') || *c == ':' || *c == '.'))
                goto bad_host;
        if (close + 1 < host_end && close[1] != ':')
            goto bad_host;
        colon = close + 1 < host_end ? close + 1 : NULL;
    } else {
        colon = memchr(auth, ':', alen);
        const char *h_end = colon ? colon : host_end;
        if (h_end == auth)
            goto bad_host;
        for (const char *c = auth; c < h_end; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_'))
                goto bad_host;
    }
    if (colon) {
        size_t plen = (size_t)(host_end - colon - 1);
        long port = 0;
        if (plen == 0 || plen > 5)
            goto bad_host;
        for (const char *c = colon + 1; c < host_end; c++) {
            if (*c < '0' || *c > '9')
                goto bad_host;
            port = port * 10 + (*c - '0');
        }
        if (port < 1 || port > 65535)
            goto bad_host;
    }
    return 0;
bad_scheme:
    cp_reply_error(r, 422, "invalid_value", "base_url",
                   "\"base_url\" must start with http:// or https://");
    return -1;
bad_host:
    cp_reply_error(r, 422, "invalid_value", "base_url",
                   "\"base_url\" must have a host name or address and an optional port "
                   "from 1 to 65535");
    return -1;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tg_buf_append(data, buf, size) == 0 ? 0 : -1;
}

/* Compact JSON text that reads back as the same value, with short spellings of reals where they
 * are exact (0.7, not 0.69999999999999996). Returns a NUL-terminated buffer or NULL. */
static char *dump_exact(json_t *v, tg_buf_t *b)
{
    for (int prec = 15; prec <= 17; prec += 2) {
        tg_buf_reset(b);
        if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_REAL_PRECISION(prec)) != 0 ||
            tg_buf_append(b, "", 1) != 0)
            return NULL;
        json_t *back = json_loads(b->base, 0, NULL);
        bool same = back && json_equal(back, v);
        json_decref(back);
        if (same)
            return b->base;
    }
    return b->base;
}

/* Validates "headers" and writes them as JSON text into out (NUL-terminated). */
static int check_headers(cp_req_t *r, json_t *h, tg_buf_t *out)
{
    if (!json_is_object(h)) {
        cp_reply_error(r, 400, "invalid_type", "headers",
                       "\"headers\" must be an object of header names to string values");
        return -1;
    }
    if (json_object_size(h) > HEADER_COUNT_MAX) {
        cp_reply_error(r, 422, "invalid_length", "headers", "\"headers\" holds at most %d headers",
                       HEADER_COUNT_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        size_t kn = strlen(k);
        bool ok = kn >= 1 && kn <= HEADER_NAME_MAX;
        for (size_t i = 0; ok && i < kn; i++)
            ok = is_tchar((unsigned char)k[i]);
        if (!ok) {
            cp_reply_error(r, 422, "invalid_value", "headers",
                           "header names must be 1 to %d token characters (RFC 9110)",
                           HEADER_NAME_MAX);
            return -1;
        }
        for (const char *const *x = refused_headers; *x; x++) {
            if (tg_mem_caseeq(k, kn, *x, strlen(*x))) {
                cp_reply_error(r, 422, "invalid_value", "headers",
                               "header \"%s\" cannot be configured: the data plane sets it, or it "
                               "carries a secret (use \"credentials\")",
                               k);
                return -1;
            }
        }
        const char *k2;
        json_t *v2;
        json_object_foreach(h, k2, v2)
        {
            (void)v2;
            if (k2 == k)
                break;
            if (tg_mem_caseeq(k, kn, k2, strlen(k2))) {
                cp_reply_error(r, 422, "invalid_value", "headers",
                               "header \"%s\" is given twice (names are case-insensitive)", k);
                return -1;
            }
        }
        if (!json_is_string(v)) {
            cp_reply_error(r, 400, "invalid_type", "headers", "header \"%s\" must be a string", k);
            return -1;
        }
        const char *s = json_string_value(v);
        size_t vn = json_string_length(v);
        if (vn > HEADER_VALUE_MAX) {
            cp_reply_error(r, 422, "invalid_length", "headers",
                           "header \"%s\" is longer than %d bytes", k, HEADER_VALUE_MAX);
            return -1;
        }
        for (size_t i = 0; i < vn; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                cp_reply_error(r, 422, "invalid_characters", "headers",
                               "header \"%s\" must not contain CR, LF or other control "
                               "characters",
                               k);
                return -1;
            }
        }
    }
    if (!dump_exact(h, out)) {
        cp_reply_error(r, 500, "internal", NULL, "could not encode headers");
        return -1;
    }
    return 0;
}

static int json_depth(json_t *v)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            int c = json_depth(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            int c = json_depth(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

static int check_settings(cp_req_t *r, json_t *s, tg_buf_t *out)
{
    if (!json_is_object(s)) {
        cp_reply_error(r, 400, "invalid_type", "settings", "\"settings\" must be an object");
        return -1;
    }
    /* the body is at most 1 MiB, so the recursion is bounded by jansson's own depth limit */
    if (json_depth(s) > SETTINGS_DEPTH_MAX) {
        cp_reply_error(r, 422, "invalid_value", "settings",
                       "\"settings\" nests deeper than %d levels", SETTINGS_DEPTH_MAX);
        return -1;
    }
    if (!dump_exact(s, out)) {
        cp_reply_error(r, 422, "invalid_length", "settings", "\"settings\" is larger than %u bytes",
                       SETTINGS_MAX);
        return -1;
    }
    return 0;
}

/* Validates "credentials" and seals them; *hex gets the sealed bytes in hex (caller frees). The
 * messages name credentials, never quote a value. */
static int seal_credentials(cp_req_t *r, json_t *c, char **hex)
{
    *hex = NULL;
    if (!json_is_object(c)) {
        cp_reply_error(r, 400, "invalid_type", "credentials",
                       "\"credentials\" must be an object of names to string values, or null");
        return -1;
    }
    if (json_object_size(c) == 0) {
        cp_reply_error(r, 422, "invalid_value", "credentials",
                       "\"credentials\" is empty; send null to remove credentials");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(c, k, v)
    {
        size_t kn = strlen(k);
        bool ok = kn >= 1 && kn <= CRED_NAME_MAX;
        for (size_t i = 0; ok && i < kn; i++) {
            char ch = k[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.';
        }
        if (!ok) {
            cp_reply_error(r, 422, "invalid_value", "credentials",
                           "credential names must be 1 to %d letters, digits, '_', '-' or '.'",
                           CRED_NAME_MAX);
            return -1;
        }
        if (!json_is_string(v)) {
            cp_reply_error(r, 400, "invalid_type", "credentials",
                           "credential \"%s\" must be a string", k);
            return -1;
        }
        const char *s = json_string_value(v);
        size_t vn = json_string_length(v);
        if (vn == 0) {
            cp_reply_error(r, 422, "invalid_length", "credentials", "credential \"%s\" is empty",
                           k);
            return -1;
        }
        for (size_t i = 0; i < vn; i++) {
            unsigned char ch = (unsigned char)s[i];
            /* newlines pass: a PEM key or a service-account JSON is one credential */
            if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f) {
                cp_reply_error(r, 422, "invalid_characters", "credentials",
                               "credential \"%s\" must not contain control characters", k);
                return -1;
            }
        }
    }
    tg_buf_t plain = TG_BUF_INIT(CRED_MAX);
    tg_buf_t sealed = TG_BUF_INIT(CRED_MAX + 64);
    int rc = -1;
    if (json_dump_callback(c, dump_cb, &plain, JSON_COMPACT | JSON_SORT_KEYS) != 0) {
        cp_reply_error(r, 422, "invalid_length", "credentials",
                       "\"credentials\" is larger than %d bytes as JSON", CRED_MAX);
        goto out;
    }
    if (!cp_opts->have_master_key) {
        cp_reply_error(r, 422, "master_key_missing", "credentials",
                       "cannot store credentials: the control plane has no TOLLGATE_MASTER_KEY; "
                       "set it (64 hex characters) and restart");
        goto out;
    }
    if (cp_seal(plain.base, plain.len, &sealed) != 0) {
        cp_reply_error(r, 500, "internal", "credentials", "could not encrypt the credentials");
        goto out;
    }
    *hex = malloc(sealed.len * 2 + 1);
    if (!*hex) {
        cp_reply_error(r, 500, "internal", NULL, "out of memory");
        goto out;
    }
    tg_hex_encode((const uint8_t *)sealed.base, sealed.len, *hex);
    rc = 0;
out:
    if (plain.base)
        OPENSSL_cleanse(plain.base, plain.cap);
    tg_buf_dispose(&plain);
    tg_buf_dispose(&sealed);
    return rc;
}

static bool printable_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* A value that goes into a header line or a request signature: a string of 1..max printable
 * ASCII characters. field names it in the reply; a credential's value is never quoted. */
static int check_token(cp_req_t *r, json_t *v, const char *field, size_t max)
{
    if (!json_is_string(v)) {
        cp_reply_error(r, 400, "invalid_type", field, "\"%s\" must be a string", field);
        return -1;
    }
    size_t n = json_string_length(v);
    if (n < 1 || n > max) {
        cp_reply_error(r, 422, "invalid_length", field, "\"%s\" must be 1 to %zu bytes long", field,
                       max);
        return -1;
    }
    if (!printable_ascii(json_string_value(v), n)) {
        cp_reply_error(r, 422, "invalid_characters", field,
                       "\"%s\" must be printable ASCII without control characters", field);
        return -1;
    }
    return 0;
}

/* What the data plane needs of each kind (common/tg_snap.c), checked on the provider as it will
 * be stored, so that the snapshot never has to leave it out. settings and creds (opened) are
 * objects, or NULL when there are none. */
static int check_kind(cp_req_t *r, const char *kind, json_t *settings, json_t *creds)
{
    json_t *v = json_object_get(settings, "api_version");
    if (v && !json_is_null(v) && check_token(r, v, "settings.api_version", API_VERSION_MAX) != 0)
        return -1;
    /* whether an OpenAI-kind server serves /v1/responses itself ("native", the default), only
     * chat completions ("chat": Responses requests are translated to chat for it) or only the
     * Responses API ("responses": chat and Messages requests are translated to it) */
    v = json_object_get(settings, "responses_api");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || (strcmp(json_string_value(v), "native") != 0 &&
                                strcmp(json_string_value(v), "chat") != 0 &&
                                strcmp(json_string_value(v), "responses") != 0))) {
        cp_reply_error(r, 422, "invalid_value", "settings.responses_api",
                       "\"settings.responses_api\" must be \"native\" (the server serves "
                       "/v1/responses and chat completions), \"chat\" (it serves only chat "
                       "completions) or \"responses\" (it serves only /v1/responses)");
        return -1;
    }
    v = json_object_get(creds, "api_key");
    if (json_is_string(v) &&
        (json_string_length(v) > API_KEY_MAX || strpbrk(json_string_value(v), "\r\n"))) {
        cp_reply_error(r, 422, "invalid_value", "credentials.api_key",
                       "\"credentials.api_key\" must be at most %d bytes without line breaks",
                       API_KEY_MAX);
        return -1;
    }
    if (strcmp(kind, "bedrock") != 0)
        return 0;
    v = json_object_get(settings, "region");
    if (!v || json_is_null(v)) {
        cp_reply_error(r, 422, "invalid_value", "settings.region",
                       "a bedrock provider needs \"settings.region\", the AWS region its "
                       "requests are signed for (e.g. \"us-east-1\")");
        return -1;
    }
    if (check_token(r, v, "settings.region", API_VERSION_MAX) != 0)
        return -1;
    for (const char *c = json_string_value(v); *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            cp_reply_error(r, 422, "invalid_value", "settings.region",
                           "\"settings.region\" must be lower-case letters, digits and '-'");
            return -1;
        }
    }
    static const struct {
        const char *name, *field;
        size_t max;
        bool required;
    } aws[] = {
        {"aws_access_key_id", "credentials.aws_access_key_id", AWS_KEY_MAX, true},
        {"aws_secret_access_key", "credentials.aws_secret_access_key", AWS_KEY_MAX, true},
        {"aws_session_token", "credentials.aws_session_token", AWS_TOKEN_MAX, false},
    };
    for (size_t i = 0; i < sizeof(aws) / sizeof(aws[0]); i++) {
        v = json_object_get(creds, aws[i].name);
        if (!v && aws[i].required) {
            cp_reply_error(r, 422, "invalid_value", aws[i].field, "a bedrock provider needs \"%s\"",
                           aws[i].field);
            return -1;
        }
        if (v && check_token(r, v, aws[i].field, aws[i].max) != 0)
            return -1;
    }
    return 0;
}

/* What a create or update asked for, validated. */
typedef struct provider_in {
    json_t *settings_json, *creds_json; /* borrowed from the body; NULL when absent or null */
    const char *name, *kind, *base_url;
    bool creds_given; /* "credentials" present, possibly null */
    char *creds_hex;  /* owned; NULL with creds_given = clear */
    tg_buf_t headers; /* JSON text, NUL-terminated; empty when not given */
    tg_buf_t settings;
} provider_in_t;

static void provider_in_dispose(provider_in_t *in)
{
    free(in->creds_hex);
    tg_buf_dispose(&in->headers);
    tg_buf_dispose(&in->settings);
}

/* On update (partial), only credentials may be null; absent fields stay as they are. */
static int provider_in_parse(cp_req_t *r, json_t *o, bool partial, provider_in_t *in)
{
    memset(in, 0, sizeof(*in));
    tg_buf_init(&in->headers, 1u << 20);
    tg_buf_init(&in->settings, SETTINGS_MAX);
    if (partial) {
        if (json_object_size(o) == 0) {
            cp_reply_error(r, 400, "missing_field", NULL, "send at least one field to change");
            return -1;
        }
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            if (json_is_null(v) && strcmp(k, "credentials") != 0) {
                cp_reply_error(r, 400, "invalid_type", k, "\"%s\" cannot be null", k);
                return -1;
            }
        }
    }
    if (cp_body_str(r, o, "name", !partial, 63, &in->name) != 0 ||
        cp_body_enum(r, o, "kind", !partial, kinds, &in->kind) != 0 ||
        cp_body_str(r, o, "base_url", !partial, BASE_URL_MAX, &in->base_url) != 0)
        return -1;
    if (in->name && !name_ok(in->name)) {
        cp_reply_error(r, 422, "invalid_value", "name",
                       "\"name\" must match ^[a-z0-9][a-z0-9._-]{0,62}$");
        return -1;
    }
    if (in->base_url && check_base_url(r, in->base_url) != 0)
        return -1;
    json_t *h = json_object_get(o, "headers");
    if (h && check_headers(r, h, &in->headers) != 0)
        return -1;
    json_t *s = json_object_get(o, "settings");
    if (s && check_settings(r, s, &in->settings) != 0)
        return -1;
    in->settings_json = s;
    json_t *c = json_object_get(o, "credentials");
    if (c) {
        in->creds_given = true;
        if (!json_is_null(c) && seal_credentials(r, c, &in->creds_hex) != 0)
            return -1;
        in->creds_json = json_is_null(c) ? NULL : c;
    }
    return 0;
}

/* check_kind on the row an update leaves: what it changes over what is stored (cred_hex, the
 * stored credentials sealed, or NULL). */
static int check_kind_update(cp_req_t *r, const provider_in_t *in, json_t *before,
                             const char *cred_hex, const char *id)
{
    const char *kind = in->kind ? in->kind : json_string_value(json_object_get(before, "kind"));
    json_t *settings = in->settings_json ? in->settings_json : json_object_get(before, "settings");
    json_t *stored = NULL;
    if (!in->creds_given && cred_hex) {
        stored = open_credentials(cred_hex, id);
        if (!stored && kind && strcmp(kind, "bedrock") == 0) {
            cp_reply_error(r, 422, "invalid_value", "credentials",
                           "the stored credentials cannot be opened with the current master key; "
                           "send \"credentials\" again");
            return -1;
        }
    }
    int rc = check_kind(r, kind ? kind : "", json_is_object(settings) ? settings : NULL,
                        in->creds_given ? in->creds_json : stored);
    json_decref(stored);
    return rc;
}

static const char *buf_str(tg_buf_t *b)
{
    return b->len ? b->base : NULL;
}

/* ---- handlers ---- */

void cp_api_providers_list(cp_req_t *r)
{
    cp_list_t l;
    if (!cp_require_platform(r, "manage providers") || cp_list_params(r, true, &l) != 0)
        return;
    const char *name = cp_query(r, "name");
    const char *kind = cp_query(r, "kind");
    if ((name && strlen(name) > 63) || (kind && strlen(kind) > 64)) {
        cp_reply_error(r, 400, "invalid_query", NULL, "filters are at most 64 bytes");
        return;
    }
    const char *p[4] = {l.cursor, name, kind, l.fetch};
    cp_list_reply_rows(r, &l,
                       "SELECT " PROVIDER_COLS " FROM providers p WHERE p.tenant_id IS NULL AND "
                       "($1::uuid IS NULL OR p.id > $1::uuid) AND ($2::text IS NULL OR p.name = "
                       "$2) AND ($3::text IS NULL OR p.kind = $3) ORDER BY p.id LIMIT $4::int",
                       4, p, 2, provider_text);
}

void cp_api_providers_create(cp_req_t *r)
{
    static const char *const fields[] = {"name",    "kind",     "base_url", "credentials",
                                         "headers", "settings", NULL};
    if (!cp_require_platform(r, "manage providers"))
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    provider_in_t in;
    if (provider_in_parse(r, o, false, &in) != 0)
        goto out;
    if (check_kind(r, in.kind, in.settings_json, in.creds_json) != 0 || cp_db_begin(r) != 0)
        goto out;
    const char *p[6] = {
        in.name, in.kind, in.base_url, in.creds_hex, buf_str(&in.headers), buf_str(&in.settings)};
    PGresult *res = cp_db_exec(
        r->db,
        "INSERT INTO providers AS p (name, kind, base_url, credentials_enc, headers, settings) "
        "VALUES ($1, $2, $3, decode($4, 'hex'), coalesce($5::jsonb, '{}'), "
        "coalesce($6::jsonb, '{}')) RETURNING " PROVIDER_COLS,
        6, p);
    if (!cp_db_ok(res)) {
        if (cp_db_sqlstate_is(res, "23505"))
            cp_reply_error(r, 409, "conflict", "name", "a provider named \"%s\" exists",
                           in.name ? in.name : "");
        else
            cp_reply_db_error(r, res);
        PQclear(res);
        cp_db_rollback(r);
        goto out;
    }
    json_t *after = provider_json(res, 0);
    cp_change_t c = {NULL, "provider.create", "provider", PQgetvalue(res, 0, 2), false};
    if (cp_change_commit(r, &c, NULL, after) == 0)
        reply_provider(r, 201, res);
    json_decref(after);
    PQclear(res);
out:
    provider_in_dispose(&in);
    json_decref(o);
}

void cp_api_providers_get(cp_req_t *r)
{
    if (!cp_require_platform(r, "manage providers") || cp_path_id(r, 0, "provider") != 0)
        return;
    const char *p[1] = {r->params[0]};
    PGresult *res = cp_db_exec(r->db, PROVIDER_BY_ID, 1, p);
    if (!cp_db_ok(res))
        cp_reply_db_error(r, res);
    else if (PQntuples(res) != 1)
        cp_reply_error(r, 404, "not_found", NULL, "no such provider");
    else
        reply_provider(r, 200, res);
    PQclear(res);
}

void cp_api_providers_update(cp_req_t *r)
{
    static const char *const fields[] = {"name",    "kind",     "base_url", "credentials",
                                         "headers", "settings", NULL};
    const char *id = r->params[0];
    if (!cp_require_platform(r, "manage providers") || cp_path_id(r, 0, "provider") != 0)
        return;
    json_t *o = cp_body_object(r, fields);
    if (!o)
        return;
    provider_in_t in;
    json_t *before = NULL, *after = NULL;
    PGresult *res = NULL;
    if (provider_in_parse(r, o, true, &in) != 0)
        goto out;
    if (!(res = provider_lock(r)))
        goto out;
    before = provider_json(res, 0);
    if (!before) {
        cp_reply_error(r, 500, "internal", NULL, "could not read the provider");
        cp_db_rollback(r);
        goto out;
    }
    if ((in.kind || in.settings_json || in.creds_given) &&
        check_kind_update(r, &in, before, PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
                          id) != 0) {
        cp_db_rollback(r);
        goto out;
    }
    PQclear(res);
    res = NULL;
    const char *p[8] = {id,
                        in.name,
                        in.kind,
                        in.base_url,
                        in.creds_given ? "t" : "f",
                        in.creds_hex,
                        buf_str(&in.headers),
                        buf_str(&in.settings)};
    res = cp_db_exec(
        r->db,
        "UPDATE providers AS p SET name = coalesce($2, p.name), kind = coalesce($3, "
        "p.kind), base_url = coalesce($4, p.base_url), credentials_enc = CASE WHEN "
        "$5::boolean THEN decode($6, 'hex') ELSE p.credentials_enc END, headers = "
        "coalesce($7::jsonb, p.headers), settings = coalesce($8::jsonb, p.settings), "
        "updated_at = now() WHERE p.id = $1 AND p.tenant_id IS NULL RETURNING " PROVIDER_COLS,
        8, p);
    if (!cp_db_ok(res) || PQntuples(res) != 1) {
        if (cp_db_sqlstate_is(res, "23505"))
            cp_reply_error(r, 409, "conflict", "name", "a provider named \"%s\" exists",
                           in.name ? in.name : "");
        else
            cp_reply_db_error(r, res);
        cp_db_rollback(r);
        goto out;
    }
    after = provider_json(res, 0);
    cp_change_t c = {NULL, "provider.update", "provider", id, false};
    if (cp_change_commit(r, &c, before, after) == 0)
        reply_provider(r, 200, res);
out:
    PQclear(res);
    json_decref(before);
    json_decref(after);
    provider_in_dispose(&in);
    json_decref(o);
}

void cp_api_providers_delete(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_require_platform(r, "manage providers") || cp_path_id(r, 0, "provider") != 0)
        return;
    PGresult *res = provider_lock(r);
    if (!res)
        return;
    json_t *before = provider_json(res, 0);
    PQclear(res);
    res = NULL;
    if (!before) {
        cp_reply_error(r, 500, "internal", NULL, "could not read the provider");
        goto fail;
    }
    const char *p[1] = {id};
    /* a route still sending here would break; its admin must change the route first */
    res = cp_db_exec(r->db,
                     "SELECT ro.alias, count(*) OVER () FROM routes ro WHERE EXISTS (SELECT 1 "
                     "FROM route_targets t WHERE t.route_id = ro.id AND t.provider_id = $1) "
                     "ORDER BY ro.alias LIMIT 1",
                     1, p);
    if (!cp_db_ok(res)) {
        cp_reply_db_error(r, res);
        goto fail;
    }
    if (PQntuples(res) > 0) {
        long more = strtol(PQgetvalue(res, 0, 1), NULL, 10) - 1;
        char tail[64] = "";
        if (more > 0)
            snprintf(tail, sizeof(tail), " and %ld more", more);
        cp_reply_error(r, 409, "conflict", NULL,
                       "provider \"%s\" is used by route \"%.200s\"%s; remove it from the "
                       "route first",
                       json_string_value(json_object_get(before, "name")), PQgetvalue(res, 0, 0),
                       tail);
        goto fail;
    }
    PQclear(res);
    /* prices go with the provider (ON DELETE CASCADE): keep them in the audit row */
    res = cp_db_exec(r->db,
                     "SELECT coalesce(json_agg(json_build_object('model', model, "
                     "'input_per_mtok', trim_scale(input_per_mtok)::text, "
                     "'cached_input_per_mtok', trim_scale(cached_input_per_mtok)::text, "
                     "'output_per_mtok', trim_scale(output_per_mtok)::text) ORDER BY model), "
                     "'[]') FROM prices WHERE provider_id = $1",
                     1, p);
    json_t *prices = cp_db_json_row(res, 0, 0);
    if (!prices) {
        cp_reply_db_error(r, res);
        goto fail;
    }
    json_object_set_new(before, "prices", prices);
    PQclear(res);
    res = cp_db_exec(r->db, "DELETE FROM providers WHERE id = $1", 1, p);
    if (!cp_db_ok(res)) {
        if (cp_db_sqlstate_is(res, "23503")) /* a route took it up after the check above */
            cp_reply_error(r, 409, "conflict", NULL, "provider is used by a route");
        else
            cp_reply_db_error(r, res);
        goto fail;
    }
    PQclear(res);
    cp_change_t c = {NULL, "provider.delete", "provider", id, false};
    cp_change_reply(r, &c, 204, before, NULL);
    json_decref(before);
    return;
fail:
    PQclear(res);
    cp_db_rollback(r);
    json_decref(before);
}

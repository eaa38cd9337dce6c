/* tg_snap.c: snapshot parsing, validation and lookup. Parsing runs off the loop threads (main
 * thread or the sync thread); lookups run on any thread against an immutable snapshot. */
#include "tg_snap.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tg_buf.h"

#include "tg_banned.h"

#define SNAP_MAX_BYTES (256u << 20)
#define SNAP_MAX_ID 128
#define SNAP_MAX_URL 2048
#define SNAP_MAX_SECRET 4096
#define SNAP_MAX_TIMEOUT_MS (3600u * 1000u)
#define SNAP_MAX_PRICE 1e6        /* USD per million tokens; anything above is a typo */
#define SNAP_MAX_USD 9e6          /* budgets and spend: picodollars fit an int64 */
#define SNAP_MAX_RATE 2147483647u /* the API stores an int4 */

static void snap_free(tg_snap_t *s);

static int invalid(tg_err_t *err, const char *path, const char *why)
{
    tg_err_set(err, TG_EINVAL, 400, "invalid snapshot: %s: %s", path, why);
    return TG_EINVAL;
}

/* Fails on any member not in `allowed` (NULL-terminated): config is fail-closed. */
static int check_fields(json_t *obj, const char *path, const char *const *allowed, tg_err_t *err)
{
    const char *k;
    json_t *v;
    if (!json_is_object(obj))
        return invalid(err, path, "must be an object");
    json_object_foreach(obj, k, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                ok = true;
        if (!ok) {
            tg_err_set(err, TG_EINVAL, 400, "invalid snapshot: %s: unknown field \"%.64s\"", path,
                       k);
            return TG_EINVAL;
        }
    }
    return 0;
}

/* An object whose members this parser does not know are ignored: targets, routes and prices
 * may gain members a newer control plane sends (an older data plane keeps serving, pricing and
 * routing with what it knows). Unknown members elsewhere are refused. */
static int check_object(json_t *obj, const char *path, tg_err_t *err)
{
    return json_is_object(obj) ? 0 : invalid(err, path, "must be an object");
}

/* A required (or optional when out may stay NULL) string of 1..max bytes without NULs. */
static int get_str(json_t *obj, const char *name, bool required, size_t max, const char *path,
                   char **out, tg_err_t *err)
{
    char where[160];
    json_t *v = json_object_get(obj, name);
    snprintf(where, sizeof(where), "%s.%s", path, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return required ? invalid(err, where, "is required") : 0;
    if (!json_is_string(v))
        return invalid(err, where, "must be a string");
    size_t len = json_string_length(v);
    if (len == 0 || len > max)
        return invalid(err, where, "has a bad length");
    if (memchr(json_string_value(v), '\0', len))
        return invalid(err, where, "must not contain NUL");
    *out = strndup(json_string_value(v), len);
    if (!*out) {
        tg_err_set(err, TG_ENOMEM, 500, "out of memory");
        return TG_ENOMEM;
    }
    return 0;
}

static int get_uint(json_t *obj, const char *name, uint64_t def, uint64_t min, uint64_t max,
                    const char *path, uint64_t *out, tg_err_t *err)
{
    char where[160];
    json_t *v = json_object_get(obj, name);
    snprintf(where, sizeof(where), "%s.%s", path, name);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return invalid(err, where, "must be an integer");
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return invalid(err, where, "is out of range");
    *out = (uint64_t)i;
    return 0;
}

static int get_bool(json_t *obj, const char *name, const char *path, bool *out, tg_err_t *err)
{
    char where[160];
    json_t *v = json_object_get(obj, name);
    snprintf(where, sizeof(where), "%s.%s", path, name);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return invalid(err, where, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

static int get_price(json_t *obj, const char *name, bool required, const char *path, int64_t *out,
                     bool *present, tg_err_t *err)
{
    char where[160];
    json_t *v = json_object_get(obj, name);
    snprintf(where, sizeof(where), "%s.%s", path, name);
    *present = false;
    if (!v || json_is_null(v))
        return required ? invalid(err, where, "is required") : 0;
    if (!json_is_number(v))
        return invalid(err, where, "must be a number (USD per million tokens)");
    double d = json_number_value(v);
    if (!(d >= 0 && d <= SNAP_MAX_PRICE))
        return invalid(err, where, "is out of range");
    /* USD per million tokens -> picodollars per token: x * 1e-6 USD = x * 1e6 pUSD. */
    *out = (int64_t)llround(d * 1e6);
    *present = true;
    return 0;
}

static int get_array(json_t *root, const char *name, json_t **out, tg_err_t *err)
{
    json_t *v = json_object_get(root, name);
    if (!v) {
        *out = NULL;
        return 0;
    }
    if (!json_is_array(v))
        return invalid(err, name, "must be an array");
    if (json_array_size(v) > UINT32_MAX / 4)
        return invalid(err, name, "is too long");
    *out = v;
    return 0;
}

static bool url_ok(const char *u)
{
    size_t n = strlen(u);
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    const char *host = strstr(u, "://") + 3;
    return *host != '\0' && *host != '/';
}

bool tg_snap_id_ok(const char *s, size_t n, size_t max, const char *also)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(also, c))))
            return false;
    }
    return true;
}

bool tg_snap_dataplane_name_ok(const char *s, size_t n, size_t max)
{
    return tg_snap_id_ok(s, n, max, "._-");
}

bool tg_snap_header_ok(const char *name, const char *value)
{
    static const char *const reserved[] = {"host",
                                           "content-length",
                                           "transfer-encoding",
                                           "connection",
                                           "authorization",
                                           "content-type",
                                           "expect",
                                           "x-api-key",
                                           "api-key",
                                           "x-goog-api-key",
                                           "x-amz-date",
                                           "x-amz-security-token",
                                           "x-amz-content-sha256",
                                           NULL};
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("!#$%&'*+-.^_`|~", c);
        if (!tchar)
            return false;
    }
    for (const char *const *r = reserved; *r; r++)
        if (strcasecmp(*r, name) == 0)
            return false;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return false;
    return true;
}

static void limits_init(tg_limits_t *l)
{
    for (int p = 0; p < TG_NPERIODS; p++)
        l->budget_pusd[p] = -1;
}

static int get_rates(json_t *obj, const char *path, tg_limits_t *l, tg_err_t *err)
{
    uint64_t rpm = 0, tpm = 0;
    limits_init(l);
    int rc = get_uint(obj, "rpm_limit", 0, 1, SNAP_MAX_RATE, path, &rpm, err);
    if (rc == 0)
        rc = get_uint(obj, "tpm_limit", 0, 1, SNAP_MAX_RATE, path, &tpm, err);
    l->rpm = (uint32_t)rpm;
    l->tpm = (uint32_t)tpm;
    return rc;
}

bool tg_usd_to_pusd(double usd, int64_t *out)
{
    if (!(usd >= 0 && usd <= SNAP_MAX_USD))
        return false;
    *out = (int64_t)llround(usd * 1e12);
    return true;
}

int tg_period_parse(const char *s)
{
    static const char *const names[] = {"daily", "monthly", "total"};
    for (int i = 0; s && i < TG_NPERIODS; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int32_t tg_date_parse(const char *s)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1970 || m < 1 || m > 12 || d < 1)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > days[m - 1] + (m == 2 && leap))
        return -1;
    return y * 10000 + m * 100 + d;
}

int32_t tg_period_start(int period, int64_t unix_s)
{
    if (period == TG_PERIOD_TOTAL)
        return 19700101;
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 +
           (period == TG_PERIOD_DAILY ? tm.tm_mday : 1);
}

/* budgets[]: one per key or tenant and period, with the spend the control plane had counted. */
static int parse_budgets(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    static const char *const fields[] = {"id",        "tenant",    "key",          "period",
                                         "limit_usd", "spent_usd", "period_start", NULL};
    size_t i;
    json_t *o;
    char path[64];
    if (!arr)
        return 0;
    json_t *keys = json_object(), *tenants = json_object();
    int rc = keys && tenants ? 0 : TG_ENOMEM;
    for (size_t k = 0; rc == 0 && k < s->nkeys; k++)
        rc = json_object_set_new(keys, s->keys[k].id, json_integer((json_int_t)k)) ? TG_ENOMEM : 0;
    for (size_t t = 0; rc == 0 && t < s->ntenants; t++)
        rc = json_object_set_new(tenants, s->tenants[t].id, json_integer((json_int_t)t)) ? TG_ENOMEM
                                                                                         : 0;
    json_array_foreach(arr, i, o)
    {
        if (rc != 0)
            break;
        snprintf(path, sizeof(path), "budgets[%zu]", i);
        rc = check_fields(o, path, fields, err);
        if (rc != 0)
            break;
        json_t *tn = json_object_get(tenants, json_string_value(json_object_get(o, "tenant")));
        json_t *kv = json_object_get(o, "key");
        json_t *ki = json_is_string(kv) ? json_object_get(keys, json_string_value(kv)) : NULL;
        int period = tg_period_parse(json_string_value(json_object_get(o, "period")));
        json_t *lim = json_object_get(o, "limit_usd"), *spent = json_object_get(o, "spent_usd");
        const char *ps = json_string_value(json_object_get(o, "period_start"));
        int32_t start = ps ? tg_date_parse(ps) : 19700101;
        int64_t limit_pusd = 0, spent_pusd = 0;
        if (!tn) {
            rc = invalid(err, path, "tenant is not defined in tenants");
        } else if (kv && !json_is_null(kv) && !ki) {
            rc = invalid(err, path, "key is not defined in keys");
        } else if (period < 0) {
            rc = invalid(err, path, "period must be \"daily\", \"monthly\" or \"total\"");
        } else if (!json_is_number(lim) || !tg_usd_to_pusd(json_number_value(lim), &limit_pusd)) {
            rc = invalid(err, path, "limit_usd must be a number from 0 to 9000000");
        } else if (spent && !json_is_null(spent) &&
                   (!json_is_number(spent) ||
                    !tg_usd_to_pusd(json_number_value(spent), &spent_pusd))) {
            rc = invalid(err, path, "spent_usd must be a number from 0 to 9000000");
        } else if (start < 0) {
            rc = invalid(err, path, "period_start must be a date, YYYY-MM-DD");
        }
        if (rc != 0)
            break;
        tg_limits_t *l =
            ki ? &s->keys[json_integer_value(ki)].lim : &s->tenants[json_integer_value(tn)].lim;
        if (ki && s->keys[json_integer_value(ki)].tenant != &s->tenants[json_integer_value(tn)]) {
            rc = invalid(err, path, "key belongs to another tenant");
            break;
        }
        if (l->budget_pusd[period] >= 0) {
            rc = invalid(err, path, "a second budget for the same key or tenant and period");
            break;
        }
        l->budget_pusd[period] = limit_pusd;
        l->spent_pusd[period] = spent_pusd;
        l->spent_period[period] = start;
    }
    json_decref(keys);
    json_decref(tenants);
    return rc;
}

static int parse_tenants(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    static const char *const fields[] = {"id", "name", "rpm_limit", "tpm_limit", NULL};
    size_t i;
    json_t *t;
    char path[64];
    if (!arr)
        return 0;
    s->tenants = calloc(json_array_size(arr) + 1, sizeof(*s->tenants));
    if (!s->tenants)
        return TG_ENOMEM;
    json_array_foreach(arr, i, t)
    {
        tg_tenant_t *tn = &s->tenants[i];
        snprintf(path, sizeof(path), "tenants[%zu]", i);
        s->ntenants = i + 1;
        int rc = check_fields(t, path, fields, err);
        if (rc == 0)
            rc = get_str(t, "id", true, SNAP_MAX_ID, path, &tn->id, err);
        if (rc == 0)
            rc = get_str(t, "name", false, 256, path, &tn->name, err);
        if (rc == 0)
            rc = get_rates(t, path, &tn->lim, err);
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->tenants[j].id, tn->id) == 0)
                return invalid(err, path, "duplicate id");
    }
    return 0;
}

static int parse_headers(tg_provider_t *p, json_t *h, const char *path, tg_err_t *err)
{
    const char *name;
    json_t *v;
    char where[128];
    snprintf(where, sizeof(where), "%s.headers", path);
    if (!h || json_is_null(h))
        return 0;
    if (!json_is_object(h) || json_object_size(h) > 64)
        return invalid(err, where, "must be an object of at most 64 string values");
    p->headers = calloc(json_object_size(h) + 1, sizeof(char *));
    if (!p->headers)
        return TG_ENOMEM;
    json_object_foreach(h, name, v)
    {
        if (!json_is_string(v) || json_string_length(v) > SNAP_MAX_SECRET ||
            !tg_snap_header_ok(name, json_string_value(v)))
            return invalid(err, where, "has a bad or reserved header");
        size_t n = strlen(name) + 2 + json_string_length(v) + 1;
        char *line = malloc(n);
        if (!line)
            return TG_ENOMEM;
        snprintf(line, n, "%s: %s", name, json_string_value(v));
        p->headers[p->nheaders++] = line;
    }
    return 0;
}

static const char *const kind_names[] = {NULL, "openai", "azure", "anthropic", "gemini", "bedrock"};

int tg_provider_kind_parse(const char *s)
{
    for (int k = TG_PROVIDER_OPENAI; k <= TG_PROVIDER_BEDROCK; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return k;
    return 0;
}

const char *tg_provider_kind_name(int kind)
{
    return kind >= TG_PROVIDER_OPENAI && kind <= TG_PROVIDER_BEDROCK ? kind_names[kind] : "";
}

/* A value that goes into a header line or a signature must be printable ASCII on one line. */
static bool token_ok(const char *v)
{
    for (; v && *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v >= 0x7f)
            return false;
    return true;
}

/* What each kind needs besides a base URL. */
static int check_provider_kind(const tg_provider_t *p, const char *path, tg_err_t *err)
{
    if (!token_ok(p->api_version) || !token_ok(p->region) || !token_ok(p->aws_access_key_id) ||
        !token_ok(p->aws_secret_access_key) || !token_ok(p->aws_session_token))
        return invalid(err, path, "api_version, region and aws_* must be printable ASCII");
    if (p->kind == TG_PROVIDER_BEDROCK) {
        if (!p->region || !p->region[0])
            return invalid(err, path, "a bedrock provider needs region");
        if (!p->aws_access_key_id || !p->aws_secret_access_key)
            return invalid(err, path,
                           "a bedrock provider needs aws_access_key_id and aws_secret_access_key");
        for (const char *c = p->region; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                return invalid(err, path, "region must be lower-case letters, digits and '-'");
    }
    return 0;
}

static int parse_providers(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    static const char *const fields[] = {"id",
                                         "kind",
                                         "base_url",
                                         "api_key",
                                         "headers",
                                         "api_version",
                                         "region",
                                         "aws_access_key_id",
                                         "aws_secret_access_key",
                                         "aws_session_token",
                                         "responses_api",
                                         NULL};
    size_t i;
    json_t *o;
    char path[64];
    if (!arr)
        return 0;
    s->providers = calloc(json_array_size(arr) + 1, sizeof(*s->providers));
    if (!s->providers)
        return TG_ENOMEM;
    json_array_foreach(arr, i, o)
    {
        tg_provider_t *p = &s->providers[i];
        char *kind = NULL;
        snprintf(path, sizeof(path), "providers[%zu]", i);
        s->nproviders = i + 1;
        int rc = check_fields(o, path, fields, err);
        if (rc == 0)
            rc = get_str(o, "id", true, SNAP_MAX_ID, path, &p->id, err);
        if (rc == 0)
            rc = get_str(o, "kind", true, 32, path, &kind, err);
        if (rc == 0 && (p->kind = tg_provider_kind_parse(kind)) == 0)
            rc = invalid(err, path,
                         "kind must be \"openai\", \"azure\", \"anthropic\", \"gemini\" or "
                         "\"bedrock\"");
        free(kind);
        if (rc == 0)
            rc = get_str(o, "base_url", true, SNAP_MAX_URL, path, &p->base_url, err);
        if (rc == 0 && !url_ok(p->base_url))
            rc = invalid(err, path, "base_url must be an http:// or https:// URL");
        if (rc == 0)
            rc = get_str(o, "api_key", false, SNAP_MAX_SECRET, path, &p->api_key, err);
        if (rc == 0 && p->api_key && strpbrk(p->api_key, "\r\n"))
            rc = invalid(err, path, "api_key must not contain line breaks");
        if (rc == 0)
            rc = parse_headers(p, json_object_get(o, "headers"), path, err);
        if (rc == 0)
            rc = get_str(o, "api_version", false, 64, path, &p->api_version, err);
        if (rc == 0)
            rc = get_str(o, "region", false, 64, path, &p->region, err);
        if (rc == 0)
            rc = get_str(o, "aws_access_key_id", false, 256, path, &p->aws_access_key_id, err);
        if (rc == 0)
            rc = get_str(o, "aws_secret_access_key", false, 256, path, &p->aws_secret_access_key,
                         err);
        if (rc == 0)
            rc = get_str(o, "aws_session_token", false, SNAP_MAX_SECRET, path,
                         &p->aws_session_token, err);
        if (rc == 0) {
            /* a value this data plane does not know keeps the default: a newer control plane
             * may add some */
            const json_t *ra = json_object_get(o, "responses_api");
            p->responses_via_chat =
                json_is_string(ra) && strcmp(json_string_value(ra), "chat") == 0;
            p->chat_via_responses =
                json_is_string(ra) && strcmp(json_string_value(ra), "responses") == 0;
        }
        if (rc == 0)
            rc = check_provider_kind(p, path, err);
        if (rc != 0)
            return rc;
        size_t n = strlen(p->base_url);
        while (n > 0 && p->base_url[n - 1] == '/')
            p->base_url[--n] = '\0';
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->providers[j].id, p->id) == 0)
                return invalid(err, path, "duplicate id");
    }
    return 0;
}

static const tg_provider_t *find_provider(const tg_snap_t *s, const char *id)
{
    for (size_t i = 0; i < s->nproviders; i++)
        if (strcmp(s->providers[i].id, id) == 0)
            return &s->providers[i];
    return NULL;
}

const char *const tg_cap_names[TG_NCAPS] = {
    "tools", "parallel_tool_calls", "vision", "json_schema", "reasoning", "streaming_usage"};

/* A target's "info" (optional; null or absent = unknown). Members it does not know are ignored,
 * so that a newer control plane can say more; the ones it reads must have their type. */
static int parse_info(json_t *o, const char *tpath, tg_model_info_t *info, tg_err_t *err)
{
    char path[128];
    uint64_t cw, mo;
    memset(info, 0, sizeof(*info));
    if (!o || json_is_null(o))
        return 0;
    snprintf(path, sizeof(path), "%s.info", tpath);
    if (!json_is_object(o))
        return invalid(err, path, "must be an object");
    int rc = get_uint(o, "context_window", 0, 0, 1000000000, path, &cw, err);
    if (rc == 0)
        rc = get_uint(o, "max_output_tokens", 0, 0, 1000000000, path, &mo, err);
    if (rc != 0)
        return rc;
    info->context_window = (int64_t)cw;
    info->max_output_tokens = (int64_t)mo;
    json_t *caps = json_object_get(o, "capabilities");
    if (!caps || json_is_null(caps))
        return 0;
    if (!json_is_object(caps))
        return invalid(err, path, "capabilities must be an object");
    for (int i = 0; i < TG_NCAPS; i++) {
        json_t *v = json_object_get(caps, tg_cap_names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_boolean(v))
            return invalid(err, path, "capabilities must hold booleans");
        info->caps_known |= 1u << i;
        if (json_is_true(v))
            info->caps |= 1u << i;
    }
    return 0;
}

static int parse_targets(tg_snap_t *s, tg_route_t *r, json_t *arr, const char *rpath, tg_err_t *err)
{
    size_t i;
    json_t *o;
    char path[96];
    uint64_t total = 0;
    snprintf(path, sizeof(path), "%s.targets", rpath);
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 64)
        return invalid(err, path, "must be an array of 1 to 64 targets");
    r->targets = calloc(json_array_size(arr), sizeof(*r->targets));
    if (!r->targets)
        return TG_ENOMEM;
    json_array_foreach(arr, i, o)
    {
        tg_target_t *t = &r->targets[i];
        char *prov = NULL;
        uint64_t w;
        snprintf(path, sizeof(path), "%s.targets[%zu]", rpath, i);
        r->ntargets = i + 1;
        int rc = check_object(o, path, err);
        if (rc == 0)
            rc = get_str(o, "provider", true, SNAP_MAX_ID, path, &prov, err);
        if (rc == 0) {
            t->provider = find_provider(s, prov);
            if (!t->provider)
                rc = invalid(err, path, "provider is not defined in providers");
        }
        free(prov);
        if (rc == 0)
            rc = get_str(o, "model", true, 256, path, &t->model, err);
        if (rc == 0)
            rc = get_uint(o, "weight", 1, 0, 1000000, path, &w, err);
        if (rc == 0)
            rc = parse_info(json_object_get(o, "info"), path, &t->info, err);
        if (rc != 0)
            return rc;
        t->weight = (uint32_t)w;
        total += w;
    }
    if (total == 0)
        return invalid(err, rpath, "targets must have a positive total weight");
    return 0;
}

static int parse_strategy(json_t *o, const char *path, int *out, tg_err_t *err)
{
    static const char *const names[] = {"weighted", "least_busy", "lowest_latency", "cheapest"};
    json_t *v = json_object_get(o, "strategy");
    *out = TG_STRATEGY_WEIGHTED;
    if (!v || json_is_null(v))
        return 0;
    for (int i = 0; json_is_string(v) && i < 4; i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return invalid(err, path,
                   "strategy must be \"weighted\", \"least_busy\", \"lowest_latency\" or "
                   "\"cheapest\"");
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int parse_retry(json_t *o, const char *rpath, tg_retry_t *r, tg_err_t *err)
{
    static const char *const fields[] = {"max_attempts", "backoff_ms", "on_status", NULL};
    static const uint16_t dflt[] = {429, 500, 502, 503, 504, 529};
    char path[96];
    uint64_t ma = 2, bo = 200;
    snprintf(path, sizeof(path), "%s.retry", rpath);
    memcpy(r->on_status, dflt, sizeof(dflt));
    r->non_status = sizeof(dflt) / sizeof(dflt[0]);
    if (o && !json_is_null(o)) {
        if (!json_is_object(o))
            return invalid(err, path, "must be an object");
        int rc = check_fields(o, path, fields, err);
        if (rc == 0)
            rc = get_uint(o, "max_attempts", 2, 1, 10, path, &ma, err);
        if (rc == 0)
            rc = get_uint(o, "backoff_ms", 200, 0, 60000, path, &bo, err);
        if (rc != 0)
            return rc;
        json_t *st = json_object_get(o, "on_status");
        if (st && !json_is_null(st)) {
            size_t i;
            json_t *v;
            if (!json_is_array(st) || json_array_size(st) > TG_RETRY_STATUS_MAX)
                return invalid(err, path, "on_status must be an array of at most 32 statuses");
            r->non_status = 0;
            json_array_foreach(st, i, v)
            {
                if (!json_is_integer(v) || json_integer_value(v) < 400 ||
                    json_integer_value(v) > 599)
                    return invalid(err, path, "on_status must hold statuses from 400 to 599");
                r->on_status[r->non_status++] = (uint16_t)json_integer_value(v);
            }
            qsort(r->on_status, r->non_status, sizeof(r->on_status[0]), cmp_u16);
        }
    }
    r->max_attempts = (uint32_t)ma;
    r->backoff_ms = (uint32_t)bo;
    return 0;
}

bool tg_retry_on_status(const tg_retry_t *r, int status)
{
    for (size_t i = 0; i < r->non_status; i++)
        if (r->on_status[i] == status)
            return true;
    return false;
}

static int parse_routes(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    size_t i;
    json_t *o;
    char path[64];
    if (!arr)
        return 0;
    s->routes = calloc(json_array_size(arr) + 1, sizeof(*s->routes));
    if (!s->routes)
        return TG_ENOMEM;
    json_array_foreach(arr, i, o)
    {
        tg_route_t *r = &s->routes[i];
        uint64_t ct, tt, fb, it, ttl;
        snprintf(path, sizeof(path), "routes[%zu]", i);
        s->nroutes = i + 1;
        int rc = check_object(o, path, err);
        if (rc == 0)
            rc = get_str(o, "alias", true, 256, path, &r->alias, err);
        if (rc == 0)
            rc = parse_targets(s, r, json_object_get(o, "targets"), path, err);
        if (rc == 0)
            rc = get_uint(o, "connect_timeout_ms", 10000, 1, SNAP_MAX_TIMEOUT_MS, path, &ct, err);
        if (rc == 0)
            rc = get_uint(o, "timeout_ms", 600000, 1, SNAP_MAX_TIMEOUT_MS, path, &tt, err);
        if (rc == 0)
            rc = get_uint(o, "first_byte_timeout_ms", 0, 0, SNAP_MAX_TIMEOUT_MS, path, &fb, err);
        if (rc == 0)
            rc = get_uint(o, "idle_timeout_ms", 0, 0, SNAP_MAX_TIMEOUT_MS, path, &it, err);
        if (rc == 0)
            rc = get_uint(o, "cache_ttl_s", 0, 0, 31u * 86400u, path, &ttl, err);
        if (rc == 0)
            rc = parse_strategy(o, path, &r->strategy, err);
        if (rc == 0)
            rc = parse_retry(json_object_get(o, "retry"), path, &r->retry, err);
        if (rc == 0)
            rc = get_bool(o, "allow_unpriced", path, &r->allow_unpriced, err);
        if (rc != 0)
            return rc;
        r->connect_timeout_ms = (uint32_t)ct;
        r->timeout_ms = (uint32_t)tt;
        r->first_byte_timeout_ms = (uint32_t)fb;
        r->idle_timeout_ms = (uint32_t)it;
        r->cache_ttl_s = (uint32_t)ttl;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->routes[j].alias, r->alias) == 0)
                return invalid(err, path, "duplicate alias");
    }
    return 0;
}

/* The rates of a price or of one of its long-context tiers; a missing member defaults as
 * docs/snapshot.md says (cached input and cache writes to input, 1-hour writes to 5-minute ones,
 * reasoning to output). */
static int parse_rates(json_t *o, const char *path, tg_price_tier_t *t, tg_err_t *err)
{
    bool has, has_cached = false, has_w5 = false, has_w1 = false, has_r = false;
    int rc = get_price(o, "input_per_mtok", true, path, &t->input, &has, err);
    if (rc == 0)
        rc = get_price(o, "output_per_mtok", true, path, &t->output, &has, err);
    if (rc == 0)
        rc = get_price(o, "cached_input_per_mtok", false, path, &t->cached_input, &has_cached, err);
    if (rc == 0)
        rc = get_price(o, "cache_write_per_mtok", false, path, &t->cache_write, &has_w5, err);
    if (rc == 0)
        rc = get_price(o, "cache_write_1h_per_mtok", false, path, &t->cache_write_1h, &has_w1, err);
    if (rc == 0)
        rc = get_price(o, "reasoning_per_mtok", false, path, &t->reasoning, &has_r, err);
    if (rc != 0)
        return rc;
    if (!has_cached)
        t->cached_input = t->input;
    if (!has_w5)
        t->cache_write = t->input;
    if (!has_w1)
        t->cache_write_1h = t->cache_write;
    if (!has_r)
        t->reasoning = t->output;
    return 0;
}

/* long_context: at most TG_PRICE_TIERS_MAX tiers, above_input_tokens strictly ascending. */
static int parse_tiers(json_t *o, const char *ppath, tg_price_t *p, tg_err_t *err)
{
    json_t *arr = json_object_get(o, "long_context");
    char path[96];
    size_t i;
    json_t *t;
    snprintf(path, sizeof(path), "%s.long_context", ppath);
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > TG_PRICE_TIERS_MAX)
        return invalid(err, path, "must be an array of at most 4 tiers");
    json_array_foreach(arr, i, t)
    {
        tg_price_tier_t *tier = &p->tiers[i];
        uint64_t above;
        snprintf(path, sizeof(path), "%s.long_context[%zu]", ppath, i);
        int rc = check_object(t, path, err);
        if (rc == 0)
            rc = get_uint(t, "above_input_tokens", UINT64_MAX, 1, INT64_MAX / 2, path, &above, err);
        if (rc == 0 && above == UINT64_MAX)
            rc = invalid(err, path, "above_input_tokens is required");
        if (rc == 0 && i > 0 && (int64_t)above <= p->tiers[i - 1].above_input_tokens)
            rc = invalid(err, path, "above_input_tokens must ascend");
        if (rc == 0)
            rc = parse_rates(t, path, tier, err);
        if (rc != 0)
            return rc;
        tier->above_input_tokens = (int64_t)above;
        p->ntiers = (uint32_t)(i + 1);
    }
    return 0;
}

static int parse_prices(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    size_t i;
    json_t *o;
    char path[64];
    if (!arr)
        return 0;
    json_array_foreach(arr, i, o)
    {
        char *prov = NULL, *model = NULL;
        tg_price_t p = {0};
        tg_price_tier_t base = {0};
        snprintf(path, sizeof(path), "prices[%zu]", i);
        int rc = check_object(o, path, err);
        if (rc == 0)
            rc = get_str(o, "provider", true, SNAP_MAX_ID, path, &prov, err);
        if (rc == 0 && !find_provider(s, prov))
            rc = invalid(err, path, "provider is not defined in providers");
        if (rc == 0)
            rc = get_str(o, "model", true, 256, path, &model, err);
        if (rc == 0)
            rc = parse_rates(o, path, &base, err);
        if (rc == 0)
            rc = parse_tiers(o, path, &p, err);
        p.input = base.input;
        p.cached_input = base.cached_input;
        p.output = base.output;
        p.cache_write = base.cache_write;
        p.cache_write_1h = base.cache_write_1h;
        p.reasoning = base.reasoning;
        p.set = true;
        /* A price applies to every target using that provider model, in every route. */
        for (size_t r = 0; rc == 0 && r < s->nroutes; r++)
            for (size_t t = 0; t < s->routes[r].ntargets; t++) {
                tg_target_t *tg = &s->routes[r].targets[t];
                if (strcmp(tg->provider->id, prov) == 0 && strcmp(tg->model, model) == 0)
                    tg->price = p;
            }
        for (size_t j = 0; rc == 0 && j < i; j++) {
            json_t *prev = json_array_get(arr, j);
            if (strcmp(json_string_value(json_object_get(prev, "provider")), prov) == 0 &&
                strcmp(json_string_value(json_object_get(prev, "model")), model) == 0)
                rc = invalid(err, path, "duplicate provider and model");
        }
        free(prov);
        free(model);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const tg_route_t *route_by_alias(const tg_snap_t *s, const char *alias)
{
    return tg_snap_find_route(s, alias, strlen(alias));
}

static int parse_keys(tg_snap_t *s, json_t *arr, tg_err_t *err)
{
    static const char *const fields[] = {"id",         "tenant",    "sha256",    "models",
                                         "expires_at", "rpm_limit", "tpm_limit", NULL};
    size_t i;
    json_t *o;
    char path[64];
    if (!arr)
        return 0;
    s->keys = calloc(json_array_size(arr) + 1, sizeof(*s->keys));
    if (!s->keys)
        return TG_ENOMEM;
    json_array_foreach(arr, i, o)
    {
        tg_key_t *k = &s->keys[i];
        char *tenant = NULL, *hex = NULL;
        uint64_t exp;
        snprintf(path, sizeof(path), "keys[%zu]", i);
        s->nkeys = i + 1;
        int rc = check_fields(o, path, fields, err);
        if (rc == 0)
            rc = get_str(o, "id", true, SNAP_MAX_ID, path, &k->id, err);
        if (rc == 0)
            rc = get_str(o, "tenant", true, SNAP_MAX_ID, path, &tenant, err);
        for (size_t t = 0; rc == 0 && t < s->ntenants; t++)
            if (strcmp(s->tenants[t].id, tenant) == 0)
                k->tenant = &s->tenants[t];
        if (rc == 0 && !k->tenant)
            rc = invalid(err, path, "tenant is not defined in tenants");
        free(tenant);
        if (rc == 0)
            rc = get_str(o, "sha256", true, 64, path, &hex, err);
        if (rc == 0 && tg_hex_decode(hex, strlen(hex), k->hash, TG_SHA256_LEN) != 0)
            rc = invalid(err, path, "sha256 must be 64 hex characters");
        free(hex);
        if (rc == 0)
            rc = get_uint(o, "expires_at", 0, 0, INT64_MAX / 2, path, &exp, err);
        if (rc == 0)
            rc = get_rates(o, path, &k->lim, err);
        if (rc != 0)
            return rc;
        k->expires_at = (int64_t)exp;
        json_t *models = json_object_get(o, "models");
        if (!json_is_array(models) || json_array_size(models) > 4096)
            return invalid(err, path, "models must be an array of route aliases");
        k->routes = calloc(json_array_size(models) + 1, sizeof(*k->routes));
        if (!k->routes)
            return TG_ENOMEM;
        size_t j;
        json_t *m;
        json_array_foreach(models, j, m)
        {
            const tg_route_t *r =
                json_is_string(m) ? route_by_alias(s, json_string_value(m)) : NULL;
            if (!r)
                return invalid(err, path, "models lists an alias that is not a route");
            k->routes[k->nroutes++] = r;
        }
    }
    return 0;
}

static size_t table_size(size_t n)
{
    size_t sz = 16;
    while (sz < n * 2)
        sz <<= 1;
    return sz;
}

static uint64_t key_slot_hash(const uint8_t h[TG_SHA256_LEN])
{
    uint64_t v = 0;
    memcpy(&v, h, sizeof(v)); /* already uniformly distributed */
    return v;
}

static int build_tables(tg_snap_t *s, tg_err_t *err)
{
    size_t ksz = table_size(s->nkeys);
    size_t rsz = table_size(s->nroutes);
    s->key_slots = calloc(ksz, sizeof(uint32_t));
    s->route_slots = calloc(rsz, sizeof(uint32_t));
    if (!s->key_slots || !s->route_slots)
        return TG_ENOMEM;
    s->key_mask = ksz - 1;
    s->route_mask = rsz - 1;
    for (size_t i = 0; i < s->nroutes; i++) {
        size_t at = tg_fnv1a(s->routes[i].alias, strlen(s->routes[i].alias)) & s->route_mask;
        while (s->route_slots[at])
            at = (at + 1) & s->route_mask;
        s->route_slots[at] = (uint32_t)(i + 1);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        if (tg_snap_find_key(s, s->keys[i].hash)) {
            char path[64];
            snprintf(path, sizeof(path), "keys[%zu]", i);
            return invalid(err, path, "duplicate sha256");
        }
        size_t at = key_slot_hash(s->keys[i].hash) & s->key_mask;
        while (s->key_slots[at])
            at = (at + 1) & s->key_mask;
        s->key_slots[at] = (uint32_t)(i + 1);
    }
    return 0;
}

int tg_snap_parse(const char *json, size_t len, tg_snap_t **out, tg_err_t *err)
{
    static const char *const fields[] = {"version", "tenants", "providers",   "routes", "prices",
                                         "keys",    "budgets", "spend_as_of", NULL};
    json_error_t jerr;
    json_t *tenants, *providers, *routes, *prices, *keys, *budgets;
    uint64_t version, as_of = 0;
    int rc;
    tg_snap_t *s = NULL;

    *out = NULL;
    if (len > SNAP_MAX_BYTES) {
        tg_err_set(err, TG_ETOOBIG, 400, "invalid snapshot: larger than %u bytes", SNAP_MAX_BYTES);
        return TG_ETOOBIG;
    }
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tg_err_set(err, TG_EINVAL, 400, "invalid snapshot: not JSON: %s at line %d column %d",
                   jerr.text, jerr.line, jerr.column);
        return TG_EINVAL;
    }
    rc = check_fields(root, "snapshot", fields, err);
    if (rc == 0 && !json_is_integer(json_object_get(root, "version")))
        rc = invalid(err, "version", "is required and must be an integer");
    if (rc == 0)
        rc = get_uint(root, "version", 0, 0, INT64_MAX, "snapshot", &version, err);
    if (rc == 0)
        rc = get_array(root, "tenants", &tenants, err);
    if (rc == 0)
        rc = get_array(root, "providers", &providers, err);
    if (rc == 0)
        rc = get_array(root, "routes", &routes, err);
    if (rc == 0)
        rc = get_array(root, "prices", &prices, err);
    if (rc == 0)
        rc = get_array(root, "keys", &keys, err);
    if (rc == 0)
        rc = get_array(root, "budgets", &budgets, err);
    if (rc == 0)
        rc = get_uint(root, "spend_as_of", 0, 0, INT64_MAX / 2, "snapshot", &as_of, err);
    if (rc != 0)
        goto fail;
    rc = TG_ENOMEM;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    atomic_init(&s->refs, 1);
    s->version = (int64_t)version;
    s->spend_as_of = (int64_t)as_of;
    rc = parse_tenants(s, tenants, err);
    if (rc == 0)
        rc = parse_providers(s, providers, err);
    if (rc == 0)
        rc = parse_routes(s, routes, err);
    if (rc == 0)
        rc = parse_prices(s, prices, err);
    /* keys resolve aliases through the route table, so it is built first */
    if (rc == 0)
        rc = build_tables(s, err);
    if (rc == 0)
        rc = parse_keys(s, keys, err);
    if (rc == 0) {
        free(s->key_slots);
        free(s->route_slots);
        rc = build_tables(s, err);
    }
    if (rc == 0)
        rc = parse_budgets(s, budgets, err);
    if (rc != 0)
        goto fail;
    json_decref(root);
    *out = s;
    return 0;
fail:
    if (rc == TG_ENOMEM)
        tg_err_set(err, TG_ENOMEM, 500, "out of memory");
    snap_free(s);
    json_decref(root);
    return rc;
}

int tg_snap_load_file(const char *path, tg_snap_t **out, tg_err_t *err)
{
    tg_buf_t b = TG_BUF_INIT(SNAP_MAX_BYTES + 1);
    char chunk[65536];
    int rc = 0;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f) {
        tg_err_set(err, TG_EIO, 500, "could not open snapshot \"%s\": %s", path, strerror(errno));
        return TG_EIO;
    }
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0)
            rc = tg_buf_append(&b, chunk, n);
        if (rc != 0 || n < sizeof(chunk))
            break;
    }
    if (rc == 0 && ferror(f)) {
        tg_err_set(err, TG_EIO, 500, "could not read snapshot \"%s\"", path);
        rc = TG_EIO;
    } else if (rc != 0) {
        tg_err_set(err, rc, 400, "invalid snapshot: \"%s\" is too large", path);
    }
    fclose(f);
    if (rc == 0)
        rc = tg_snap_parse(b.base ? b.base : "", b.len, out, err);
    tg_buf_dispose(&b);
    return rc;
}

tg_snap_t *tg_snap_ref(tg_snap_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void tg_snap_unref(tg_snap_t *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snap_free(s);
}

static void snap_free(tg_snap_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntenants; i++) {
        free(s->tenants[i].id);
        free(s->tenants[i].name);
    }
    for (size_t i = 0; i < s->nproviders; i++) {
        tg_provider_t *p = &s->providers[i];
        free(p->id);
        free(p->base_url);
        if (p->api_key) /* a credential: do not leave it in freed memory */
            OPENSSL_cleanse(p->api_key, strlen(p->api_key));
        free(p->api_key);
        free(p->api_version);
        free(p->region);
        free(p->aws_access_key_id);
        if (p->aws_secret_access_key)
            OPENSSL_cleanse(p->aws_secret_access_key, strlen(p->aws_secret_access_key));
        free(p->aws_secret_access_key);
        if (p->aws_session_token)
            OPENSSL_cleanse(p->aws_session_token, strlen(p->aws_session_token));
        free(p->aws_session_token);
        for (size_t j = 0; j < p->nheaders; j++)
            free(p->headers[j]);
        free(p->headers);
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        for (size_t j = 0; j < s->routes[i].ntargets; j++)
            free(s->routes[i].targets[j].model);
        free(s->routes[i].targets);
        free(s->routes[i].alias);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        free(s->keys[i].id);
        free(s->keys[i].routes);
    }
    free(s->tenants);
    free(s->providers);
    free(s->routes);
    free(s->keys);
    free(s->key_slots);
    free(s->route_slots);
    free(s);
}

const tg_key_t *tg_snap_find_key(const tg_snap_t *s, const uint8_t hash[TG_SHA256_LEN])
{
    if (!s->key_slots)
        return NULL;
    size_t at = key_slot_hash(hash) & s->key_mask;
    for (uint32_t idx; (idx = s->key_slots[at]) != 0; at = (at + 1) & s->key_mask) {
        const tg_key_t *k = &s->keys[idx - 1];
        if (tg_ct_eq(k->hash, hash, TG_SHA256_LEN))
            return k;
    }
    return NULL;
}

const tg_route_t *tg_snap_find_route(const tg_snap_t *s, const char *alias, size_t len)
{
    if (!s->route_slots)
        return NULL;
    size_t at = tg_fnv1a(alias, len) & s->route_mask;
    for (uint32_t idx; (idx = s->route_slots[at]) != 0; at = (at + 1) & s->route_mask) {
        const tg_route_t *r = &s->routes[idx - 1];
        if (tg_mem_eq(r->alias, strlen(r->alias), alias, len))
            return r;
    }
    return NULL;
}

bool tg_key_allows(const tg_key_t *k, const tg_route_t *r)
{
    for (size_t i = 0; i < k->nroutes; i++)
        if (k->routes[i] == r)
            return true;
    return false;
}

/* n tokens at rate, added to *sum; false on overflow. */
static bool add_tokens(int64_t *sum, int64_t n, int64_t rate)
{
    int64_t c;
    return !__builtin_mul_overflow(n, rate, &c) && !__builtin_add_overflow(*sum, c, sum);
}

/* Takes up to *left of n: what a part may count once the parts before it took theirs. */
static int64_t take(int64_t *left, int64_t n)
{
    int64_t got = n < 0 ? 0 : n < *left ? n : *left;
    *left -= got;
    return got;
}

int64_t tg_price_usage_cost(const tg_price_t *p, const tg_cost_usage_t *u)
{
    if (!p->set)
        return 0;
    tg_price_tier_t r = {
        0, p->input, p->cached_input, p->output, p->cache_write, p->cache_write_1h, p->reasoning};
    int64_t prompt = u->prompt > 0 ? u->prompt : 0,
            completion = u->completion > 0 ? u->completion : 0;
    /* the whole request at the highest tier its input passes */
    for (uint32_t i = 0; i < p->ntiers && i < TG_PRICE_TIERS_MAX; i++)
        if (prompt > p->tiers[i].above_input_tokens)
            r = p->tiers[i];
    /* token counts come from the provider: the parts never count more than their whole, and the
     * sum saturates rather than overflows (undefined, and a wrapped cost could come out negative)
     */
    int64_t left = prompt;
    int64_t cached = take(&left, u->cached);
    int64_t w5 = take(&left, u->cache_write);
    int64_t w1 = take(&left, u->cache_write_1h);
    int64_t uncached = left;
    left = completion;
    int64_t reasoning = take(&left, u->reasoning);
    int64_t sum = 0;
    if (!add_tokens(&sum, uncached, r.input) || !add_tokens(&sum, cached, r.cached_input) ||
        !add_tokens(&sum, w5, r.cache_write) || !add_tokens(&sum, w1, r.cache_write_1h) ||
        !add_tokens(&sum, left, r.output) || !add_tokens(&sum, reasoning, r.reasoning))
        return INT64_MAX;
    return sum;
}

int64_t tg_price_cost(const tg_price_t *p, int64_t prompt, int64_t cached, int64_t completion)
{
    tg_cost_usage_t u = {prompt, cached, 0, 0, completion, 0};
    return tg_price_usage_cost(p, &u);
}

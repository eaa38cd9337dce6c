/* test_cp_api_providers.c: what POST /api/v1/providers checks before it stores anything
 * (api/providers.c): the name, base_url (scheme, host, port, no user or password), headers,
 * settings, credentials and what each kind needs. A platform admin's request with a valid body
 * gets as far as the transaction, which answers 503 here: there is no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cp.h"
#include "cp_api_check.h"

static cp_opts_t test_opts;

/* POSTs as a platform admin. */
static void prep(cp_req_t *r)
{
    r->who.platform_admin = true;
}

static const api_target_t providers = {cp_api_providers_create, "POST", prep};

static void setup(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    for (int i = 0; i < 32; i++)
        test_opts.master_key[i] = (uint8_t)i;
    test_opts.have_master_key = true;
    cp_opts = &test_opts;
    api_setup();
}

TestSuite(cp_api_providers, .init = setup, .fini = api_teardown);

#define P(extra)                                                                                   \
    "{\"name\":\"p1\",\"kind\":\"openai\",\"base_url\":\"https://api.example.com/v1\"" extra "}"

Test(cp_api_providers, only_platform_admins_create_providers)
{
    api_req.body = P("");
    api_req.body_len = strlen(api_req.body);
    cp_api_providers_create(&api_req);
    cr_assert_eq(api_req.status, 403);
}

Test(cp_api_providers, a_complete_provider_passes_every_check)
{
    api_passes(&providers, P(""));
    api_passes(&providers,
               "{\"name\":\"a.b_c-9\",\"kind\":\"openai\",\"base_url\":\"http://10.0.0.1:8080\","
               "\"headers\":{\"OpenAI-Organization\":\"org-1\"},\"settings\":{\"responses_api\":"
               "\"chat\"},\"credentials\":{\"api_key\":\"sk-x\"}}");
    api_passes(
        &providers,
        "{\"name\":\"br\",\"kind\":\"bedrock\",\"base_url\":\"https://bedrock-runtime.us-east-1."
        "amazonaws.com\",\"settings\":{\"region\":\"us-east-1\"},\"credentials\":{"
        "\"aws_access_key_id\":\"AKIA\",\"aws_secret_access_key\":\"s\"}}");
}

Test(cp_api_providers, a_name_is_lower_case_and_1_to_63_characters)
{
    const char *rule = "\"name\" must match ^[a-z0-9][a-z0-9._-]{0,62}$";
    char body[300], n63[64], n64[65];
    memset(n63, 'n', 63);
    n63[63] = '\0';
    memset(n64, 'n', 64);
    n64[64] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"kind\":\"openai\",\"base_url\":\"http://h\"}",
             n63);
    api_passes(&providers, body);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"kind\":\"openai\",\"base_url\":\"http://h\"}",
             n64);
    api_refused(&providers, body, 422, "invalid_length", "name",
                "\"name\" must be 1 to 63 bytes long");
    api_refused(&providers, "{\"name\":\"Big\",\"kind\":\"openai\",\"base_url\":\"http://h\"}", 422,
                "invalid_value", "name", rule);
    api_refused(&providers, "{\"name\":\"-a\",\"kind\":\"openai\",\"base_url\":\"http://h\"}", 422,
                "invalid_value", "name", rule);
    api_refused(&providers, "{\"name\":\"a b\",\"kind\":\"openai\",\"base_url\":\"http://h\"}", 422,
                "invalid_value", "name", rule);
    api_refused(&providers, "{\"name\":\"a\",\"kind\":\"cohere\",\"base_url\":\"http://h\"}", 422,
                "invalid_value", "kind",
                "\"kind\" must be one of: openai, azure, anthropic, gemini, bedrock");
}

static void url(const char *u, const char *message)
{
    char body[3000];
    snprintf(body, sizeof(body), "{\"name\":\"p\",\"kind\":\"openai\",\"base_url\":\"%s\"}", u);
    if (message)
        api_refused(&providers, body, 422, "invalid_value", "base_url", message);
    else
        api_passes(&providers, body);
}

Test(cp_api_providers, base_url_is_http_or_https_with_a_host_and_a_port_from_1_to_65535)
{
    const char *scheme = "\"base_url\" must start with http:// or https://";
    const char *host = "\"base_url\" must have a host name or address and an optional port from 1 "
                       "to 65535";
    const char *userinfo = "\"base_url\" must not carry a user or password; put secrets in "
                           "\"credentials\"";
    const char *chars = "\"base_url\" must be plain ASCII without whitespace, control characters, "
                        "'\\' or a fragment";
    url("https://h", NULL);
    url("http://h:1", NULL);
    url("http://h:65535/v1?x=1", NULL);
    url("http://[::1]:8080/v1", NULL);
    url("http://[::1]", NULL);
    url("http://h:0", host);
    url("http://h:65536", host);
    url("http://h:123456", host);
    url("http://h:", host);
    url("http://h:8x", host);
    url("http://", host);
    url("http:///v1", host);
    url("http://[]:80", host);
    url("http://[::1]x", host);
    url("http://[g::1]", host);
    url("http://h~x", host);
    url("ftp://h", scheme);
    url("HTTPS://h", scheme);
    url("h", scheme);
    url("https://user:pw@h/v1", userinfo);
    url("https://pw@h", userinfo);
    url("https://h/v1?to=a@b", NULL); /* an @ after the host is the path's */
    url("https://h/a b", chars);
    url("https://h/#x", chars);
    url("https://h\\\\x", chars);
    char long_url[2100] = "https://h/";
    memset(long_url + 10, 'a', 2038); /* 2048 bytes */
    url(long_url, NULL);
    strcat(long_url, "a");
    char body[3000];
    snprintf(body, sizeof(body), "{\"name\":\"p\",\"kind\":\"openai\",\"base_url\":\"%s\"}",
             long_url);
    api_refused(&providers, body, 422, "invalid_length", "base_url",
                "\"base_url\" must be 1 to 2048 bytes long");
}

Test(cp_api_providers, headers_are_tokens_not_set_by_the_data_plane_once_each)
{
    api_passes(&providers, P(",\"headers\":{\"X-Title\":\"tollgate\\tgateway\"}"));
    api_refused(&providers, P(",\"headers\":[]"), 400, "invalid_type", "headers",
                "\"headers\" must be an object of header names to string values");
    api_refused(
        &providers, P(",\"headers\":{\"Authorization\":\"Bearer x\"}"), 422, "invalid_value",
        "headers",
        "header \"Authorization\" cannot be configured: the data plane sets it, or it carries "
        "a secret (use \"credentials\")");
    api_refused(
        &providers, P(",\"headers\":{\"X-Amz-Date\":\"1\"}"), 422, "invalid_value", "headers",
        "header \"X-Amz-Date\" cannot be configured: the data plane sets it, or it carries a "
        "secret (use \"credentials\")");
    api_refused(&providers, P(",\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}"), 422, "invalid_value",
                "headers", "header \"x-a\" is given twice (names are case-insensitive)");
    api_refused(&providers, P(",\"headers\":{\"X A\":\"1\"}"), 422, "invalid_value", "headers",
                "header names must be 1 to 256 token characters (RFC 9110)");
    api_refused(&providers, P(",\"headers\":{\"X-A\":\"a\\r\\nb\"}"), 422, "invalid_characters",
                "headers", "header \"X-A\" must not contain CR, LF or other control characters");
    api_refused(&providers, P(",\"headers\":{\"X-A\":1}"), 400, "invalid_type", "headers",
                "header \"X-A\" must be a string");
}

Test(cp_api_providers, at_most_64_headers_of_at_most_4096_bytes)
{
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    cr_assert_eq(tg_buf_appendf(&b, "%s", P(",\"headers\":{")), 0);
    b.len -= 1; /* P's closing brace */
    for (int i = 0; i < 64; i++)
        cr_assert_eq(tg_buf_appendf(&b, "%s\"X-H%d\":\"v\"", i ? "," : "", i), 0);
    cr_assert_eq(tg_buf_appendf(&b, "}}%c", '\0'), 0);
    api_passes(&providers, b.base);
    b.len -= 3;
    cr_assert_eq(tg_buf_appendf(&b, ",\"X-H64\":\"v\"}}%c", '\0'), 0);
    api_refused(&providers, b.base, 422, "invalid_length", "headers",
                "\"headers\" holds at most 64 headers");
    tg_buf_reset(&b);
    char *v = malloc(4098);
    memset(v, 'v', 4097);
    v[4096] = '\0';
    cr_assert_eq(tg_buf_appendf(&b,
                                "{\"name\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                                "\"headers\":{\"X-A\":\"%s\"}}%c",
                                v, '\0'),
                 0);
    api_passes(&providers, b.base);
    tg_buf_reset(&b);
    v[4096] = 'v';
    v[4097] = '\0';
    cr_assert_eq(tg_buf_appendf(&b,
                                "{\"name\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://h\","
                                "\"headers\":{\"X-A\":\"%s\"}}%c",
                                v, '\0'),
                 0);
    api_refused(&providers, b.base, 422, "invalid_length", "headers",
                "header \"X-A\" is longer than 4096 bytes");
    free(v);
    tg_buf_dispose(&b);
}

Test(cp_api_providers, settings_nest_at_most_32_levels)
{
    char body[600], nest[200] = "";
    for (int i = 0; i < 31; i++)
        strcat(nest, "[");
    strcat(nest, "1");
    for (int i = 0; i < 31; i++)
        strcat(nest, "]");
    snprintf(body, sizeof(body), P(",\"settings\":{\"x\":%s}"), nest); /* 32 levels */
    api_passes(&providers, body);
    snprintf(body, sizeof(body), P(",\"settings\":{\"x\":[%s]}"), nest);
    api_refused(&providers, body, 422, "invalid_value", "settings",
                "\"settings\" nests deeper than 32 levels");
    api_refused(&providers, P(",\"settings\":[]"), 400, "invalid_type", "settings",
                "\"settings\" must be an object");
    api_refused(
        &providers, P(",\"settings\":{\"responses_api\":\"both\"}"), 422, "invalid_value",
        "settings.responses_api",
        "\"settings.responses_api\" must be \"native\" (the server serves /v1/responses and "
        "chat completions), \"chat\" (it serves only chat completions) or \"responses\" (it "
        "serves only /v1/responses)");
    api_refused(&providers, P(",\"settings\":{\"api_version\":\"\"}"), 422, "invalid_length",
                "settings.api_version", "\"settings.api_version\" must be 1 to 64 bytes long");
}

Test(cp_api_providers, credentials_are_named_strings_sealed_with_the_master_key)
{
    api_refused(&providers, P(",\"credentials\":{}"), 422, "invalid_value", "credentials",
                "\"credentials\" is empty; send null to remove credentials");
    api_refused(&providers, P(",\"credentials\":\"sk\""), 400, "invalid_type", "credentials",
                "\"credentials\" must be an object of names to string values, or null");
    api_refused(&providers, P(",\"credentials\":{\"a b\":\"x\"}"), 422, "invalid_value",
                "credentials", "credential names must be 1 to 64 letters, digits, '_', '-' or '.'");
    api_refused(&providers, P(",\"credentials\":{\"k\":\"\"}"), 422, "invalid_length",
                "credentials", "credential \"k\" is empty");
    api_refused(&providers, P(",\"credentials\":{\"k\":\"a\\u0001\"}"), 422, "invalid_characters",
                "credentials", "credential \"k\" must not contain control characters");
    api_passes(&providers, P(",\"credentials\":{\"pem\":\"-----BEGIN-----\\nx\\n-----END-----\"}"));
    api_refused(&providers, P(",\"credentials\":{\"api_key\":\"a\\nb\"}"), 422, "invalid_value",
                "credentials.api_key",
                "\"credentials.api_key\" must be at most 4096 bytes without line breaks");
    test_opts.have_master_key = false;
    api_refused(
        &providers, P(",\"credentials\":{\"api_key\":\"sk\"}"), 422, "master_key_missing",
        "credentials",
        "cannot store credentials: the control plane has no TOLLGATE_MASTER_KEY; set it (64 "
        "hex characters) and restart");
}

#define BR(settings, creds)                                                                        \
    "{\"name\":\"br\",\"kind\":\"bedrock\",\"base_url\":\"https://h\",\"settings\":" settings      \
    ",\"credentials\":" creds "}"
#define AWS "{\"aws_access_key_id\":\"AKIA\",\"aws_secret_access_key\":\"s\"}"

Test(cp_api_providers, bedrock_needs_a_region_and_aws_keys)
{
    api_refused(
        &providers, BR("{}", AWS), 422, "invalid_value", "settings.region",
        "a bedrock provider needs \"settings.region\", the AWS region its requests are signed "
        "for (e.g. \"us-east-1\")");
    api_refused(&providers, BR("{\"region\":\"US-EAST-1\"}", AWS), 422, "invalid_value",
                "settings.region",
                "\"settings.region\" must be lower-case letters, digits and '-'");
    api_refused(&providers, BR("{\"region\":\"us-east-1\"}", "{\"aws_access_key_id\":\"AKIA\"}"),
                422, "invalid_value", "credentials.aws_secret_access_key",
                "a bedrock provider needs \"credentials.aws_secret_access_key\"");
    api_refused(&providers, BR("{\"region\":\"us-east-1\"}", "{\"aws_secret_access_key\":\"s\"}"),
                422, "invalid_value", "credentials.aws_access_key_id",
                "a bedrock provider needs \"credentials.aws_access_key_id\"");
    api_refused(
        &providers,
        BR("{\"region\":\"us-east-1\"}",
           "{\"aws_access_key_id\":\"AK\\tIA\",\"aws_secret_access_key\":\"s\"}"),
        422, "invalid_characters", "credentials.aws_access_key_id",
        "\"credentials.aws_access_key_id\" must be printable ASCII without control characters");
    api_passes(&providers, BR("{\"region\":\"eu-west-3\"}",
                              "{\"aws_access_key_id\":\"AKIA\",\"aws_secret_access_key\":\"s\","
                              "\"aws_session_token\":\"t\"}"));
}

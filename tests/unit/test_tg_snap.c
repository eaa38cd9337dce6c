/* test_tg_snap.c: snapshot parsing, validation, lookups, reference counting and prices. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tg_snap.h"

static const char BASE_DOC[] =
    "{\"version\":7,"
    "\"tenants\":[{\"id\":\"t1\",\"name\":\"Acme\"},{\"id\":\"t2\"}],"
    "\"providers\":["
    "{\"id\":\"openai\",\"kind\":\"openai\",\"base_url\":\"https://api.openai.com/v1/\","
    "\"api_key\":\"sk-upstream\",\"headers\":{\"OpenAI-Organization\":\"org-1\"}},"
    "{\"id\":\"local\",\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:8000/v1\"}],"
    "\"routes\":["
    "{\"alias\":\"gpt-4o-mini\",\"targets\":["
    "{\"provider\":\"openai\",\"model\":\"gpt-4o-mini-2024-07-18\",\"weight\":3},"
    "{\"provider\":\"local\",\"model\":\"llama\"}]},"
    "{\"alias\":\"embed\",\"targets\":[{\"provider\":\"openai\",\"model\":"
    "\"text-embedding-3-small\"}],\"timeout_ms\":30000}],"
    "\"prices\":["
    "{\"provider\":\"openai\",\"model\":\"gpt-4o-mini-2024-07-18\",\"input_per_mtok\":0.15,"
    "\"cached_input_per_mtok\":0.075,\"output_per_mtok\":0.6},"
    "{\"provider\":\"openai\",\"model\":\"text-embedding-3-small\",\"input_per_mtok\":0.02,"
    "\"output_per_mtok\":0}],"
    "\"keys\":["
    "{\"id\":\"k1\",\"tenant\":\"t1\",\"sha256\":\"@H1@\",\"models\":[\"gpt-4o-mini\"]},"
    "{\"id\":\"k2\",\"tenant\":\"t2\",\"sha256\":\"@H2@\",\"models\":[\"gpt-4o-mini\",\"embed\"],"
    "\"expires_at\":1900000000}]}";

static void key_hex(const char *secret, char hex[2 * TG_SHA256_LEN + 1])
{
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(secret, strlen(secret), h);
    tg_hex_encode(h, sizeof(h), hex);
}

/* The base document as a jansson tree with real key hashes filled in. */
static json_t *base_json(void)
{
    json_error_t jerr;
    char h1[65], h2[65];
    json_t *root = json_loads(BASE_DOC, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(root, "base document: %s", jerr.text);
    key_hex("sk-alpha", h1);
    key_hex("sk-beta", h2);
    json_t *keys = json_object_get(root, "keys");
    json_object_set_new(json_array_get(keys, 0), "sha256", json_string(h1));
    json_object_set_new(json_array_get(keys, 1), "sha256", json_string(h2));
    return root;
}

static int parse_json(json_t *root, tg_snap_t **out, tg_err_t *err)
{
    char *s = json_dumps(root, JSON_COMPACT);
    cr_assert_not_null(s);
    tg_err_clear(err);
    int rc = tg_snap_parse(s, strlen(s), out, err);
    free(s);
    json_decref(root);
    return rc;
}

/* Parses a document expected to be refused and checks the message names `where` and `why`. */
static void expect_refusal(json_t *root, const char *where, const char *why)
{
    tg_snap_t *s = (tg_snap_t *)1;
    tg_err_t err;
    int rc = parse_json(root, &s, &err);
    cr_assert_eq(rc, TG_EINVAL, "rc %d msg %s", rc, err.msg);
    cr_assert_null(s);
    cr_assert_eq(err.status, 400);
    cr_assert_not_null(strstr(err.msg, where), "message \"%s\" does not name \"%s\"", err.msg,
                       where);
    cr_assert_not_null(strstr(err.msg, why), "message \"%s\" does not say \"%s\"", err.msg, why);
}

static json_t *at(json_t *root, const char *arr, size_t i)
{
    json_t *o = json_array_get(json_object_get(root, arr), i);
    cr_assert_not_null(o);
    return o;
}

static tg_snap_t *parse_base(void)
{
    tg_snap_t *s = NULL;
    tg_err_t err;
    int rc = parse_json(base_json(), &s, &err);
    cr_assert_eq(rc, 0, "base document refused: %s", err.msg);
    cr_assert_not_null(s);
    return s;
}

Test(tg_snap, valid_snapshot_parses_with_one_reference)
{
    tg_snap_t *s = parse_base();
    cr_assert_eq(s->version, 7);
    cr_assert_eq(atomic_load(&s->refs), 1);
    cr_assert_eq(s->ntenants, 2);
    cr_assert_eq(s->nproviders, 2);
    cr_assert_eq(s->nroutes, 2);
    cr_assert_eq(s->nkeys, 2);
    tg_snap_unref(s);
}

Test(tg_snap, provider_base_url_loses_trailing_slash_and_keeps_headers)
{
    tg_snap_t *s = parse_base();
    const tg_provider_t *p = &s->providers[0];
    cr_assert_str_eq(p->id, "openai");
    cr_assert_eq(p->kind, TG_PROVIDER_OPENAI);
    cr_assert_str_eq(p->base_url, "https://api.openai.com/v1");
    cr_assert_str_eq(p->api_key, "sk-upstream");
    cr_assert_eq(p->nheaders, 1);
    cr_assert_str_eq(p->headers[0], "OpenAI-Organization: org-1");
    cr_assert_null(s->providers[1].api_key);
    cr_assert_eq(s->providers[1].nheaders, 0);
    tg_snap_unref(s);
}

Test(tg_snap, provider_responses_api_takes_native_chat_and_responses)
{
    static const char *const vals[] = {NULL, "native", "chat", "responses", "later"};
    for (size_t i = 0; i < 5; i++) {
        json_t *root = base_json();
        if (vals[i])
            json_object_set_new(at(root, "providers", 0), "responses_api", json_string(vals[i]));
        tg_snap_t *s = NULL;
        tg_err_t err;
        cr_assert_eq(parse_json(root, &s, &err), 0, "%s: %s", vals[i] ? vals[i] : "-", err.msg);
        const tg_provider_t *p = &s->providers[0];
        /* "chat": /v1/responses translated to chat; "responses": chat translated to the
         * Responses API; an unknown value keeps the default ("native") */
        cr_assert_eq(p->responses_via_chat, i == 2, "%s", vals[i] ? vals[i] : "-");
        cr_assert_eq(p->chat_via_responses, i == 3, "%s", vals[i] ? vals[i] : "-");
        tg_snap_unref(s);
    }
}

Test(tg_snap, find_key_by_sha256_returns_key_and_tenant)
{
    tg_snap_t *s = parse_base();
    uint8_t h[TG_SHA256_LEN];
    tg_sha256("sk-alpha", 8, h);
    const tg_key_t *k = tg_snap_find_key(s, h);
    cr_assert_not_null(k);
    cr_assert_str_eq(k->id, "k1");
    cr_assert_str_eq(k->tenant->id, "t1");
    cr_assert_str_eq(k->tenant->name, "Acme");
    cr_assert_eq(k->expires_at, 0);
    tg_sha256("sk-beta", 7, h);
    k = tg_snap_find_key(s, h);
    cr_assert_not_null(k);
    cr_assert_str_eq(k->id, "k2");
    cr_assert_eq(k->expires_at, 1900000000);
    cr_assert_null(k->tenant->name);
    tg_sha256("sk-gamma", 8, h);
    cr_assert_null(tg_snap_find_key(s, h));
    tg_snap_unref(s);
}

Test(tg_snap, find_route_by_alias_uses_length_not_nul)
{
    tg_snap_t *s = parse_base();
    const tg_route_t *r = tg_snap_find_route(s, "embed", 5);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->alias, "embed");
    cr_assert_eq(r->timeout_ms, 30000);
    cr_assert_eq(r->connect_timeout_ms, 10000);
    cr_assert_eq(tg_snap_find_route(s, "embedding", 5), r);
    cr_assert_null(tg_snap_find_route(s, "embed", 4));
    cr_assert_null(tg_snap_find_route(s, "EMBED", 5));
    cr_assert_null(tg_snap_find_route(s, "nope", 4));
    r = tg_snap_find_route(s, "gpt-4o-mini", 11);
    cr_assert_not_null(r);
    cr_assert_eq(r->ntargets, 2);
    cr_assert_eq(r->timeout_ms, 600000);
    cr_assert_eq(r->targets[0].weight, 3);
    cr_assert_eq(r->targets[1].weight, 1);
    cr_assert_eq(r->targets[0].provider, &s->providers[0]);
    cr_assert_eq(r->targets[1].provider, &s->providers[1]);
    cr_assert_str_eq(r->targets[1].model, "llama");
    tg_snap_unref(s);
}

Test(tg_snap, key_allows_only_listed_routes)
{
    tg_snap_t *s = parse_base();
    uint8_t h[TG_SHA256_LEN];
    const tg_route_t *chat = tg_snap_find_route(s, "gpt-4o-mini", 11);
    const tg_route_t *embed = tg_snap_find_route(s, "embed", 5);
    tg_sha256("sk-alpha", 8, h);
    const tg_key_t *k1 = tg_snap_find_key(s, h);
    tg_sha256("sk-beta", 7, h);
    const tg_key_t *k2 = tg_snap_find_key(s, h);
    cr_assert(tg_key_allows(k1, chat));
    cr_assert_not(tg_key_allows(k1, embed));
    cr_assert(tg_key_allows(k2, chat));
    cr_assert(tg_key_allows(k2, embed));
    tg_snap_unref(s);
}

Test(tg_snap, prices_convert_usd_per_mtok_to_picodollars_per_token)
{
    tg_snap_t *s = parse_base();
    const tg_route_t *chat = tg_snap_find_route(s, "gpt-4o-mini", 11);
    const tg_price_t *p = &chat->targets[0].price;
    cr_assert(p->set);
    cr_assert_eq(p->input, 150000);
    cr_assert_eq(p->cached_input, 75000);
    cr_assert_eq(p->output, 600000);
    /* no price for the local model: cost stays unknown rather than zero-priced */
    cr_assert_not(chat->targets[1].price.set);
    tg_snap_unref(s);
}

Test(tg_snap, cached_price_defaults_to_input_price)
{
    tg_snap_t *s = parse_base();
    const tg_price_t *p = &tg_snap_find_route(s, "embed", 5)->targets[0].price;
    cr_assert(p->set);
    cr_assert_eq(p->input, 20000);
    cr_assert_eq(p->cached_input, 20000);
    cr_assert_eq(p->output, 0);
    tg_snap_unref(s);
}

Test(tg_snap, ref_and_unref_count_and_last_unref_frees)
{
    tg_snap_t *s = parse_base();
    cr_assert_eq(tg_snap_ref(s), s);
    cr_assert_eq(atomic_load(&s->refs), 2);
    tg_snap_unref(s);
    cr_assert_eq(atomic_load(&s->refs), 1);
    tg_snap_unref(s); /* frees; AddressSanitizer reports a leak or a double free */
    tg_snap_unref(NULL);
}

Test(tg_snap, empty_snapshot_with_only_version_parses_and_finds_nothing)
{
    tg_snap_t *s = NULL;
    tg_err_t err;
    const char doc[] = "{\"version\":1}";
    cr_assert_eq(tg_snap_parse(doc, sizeof(doc) - 1, &s, &err), 0, "%s", err.msg);
    uint8_t h[TG_SHA256_LEN] = {0};
    cr_assert_null(tg_snap_find_key(s, h));
    cr_assert_null(tg_snap_find_route(s, "x", 1));
    tg_snap_unref(s);
}

Test(tg_snap, not_json_is_refused)
{
    tg_snap_t *s = (tg_snap_t *)1;
    tg_err_t err;
    const char doc[] = "{\"version\": 1,";
    cr_assert_eq(tg_snap_parse(doc, sizeof(doc) - 1, &s, &err), TG_EINVAL);
    cr_assert_null(s);
    cr_assert_eq(err.status, 400);
    cr_assert_not_null(strstr(err.msg, "not JSON"), "%s", err.msg);
}

Test(tg_snap, duplicate_json_key_is_refused)
{
    tg_snap_t *s = (tg_snap_t *)1;
    tg_err_t err;
    const char doc[] = "{\"version\":1,\"tenants\":[],\"version\":2}";
    cr_assert_eq(tg_snap_parse(doc, sizeof(doc) - 1, &s, &err), TG_EINVAL);
    cr_assert_null(s);
    cr_assert_not_null(strstr(err.msg, "duplicate"), "%s", err.msg);
}

Test(tg_snap, missing_version_is_refused)
{
    json_t *root = base_json();
    json_object_del(root, "version");
    expect_refusal(root, "version", "required");
}

Test(tg_snap, unknown_top_level_field_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(root, "extra", json_true());
    expect_refusal(root, "snapshot", "unknown field \"extra\"");
}

Test(tg_snap, unknown_field_in_a_key_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "keys", 1), "color", json_string("red"));
    expect_refusal(root, "keys[1]", "unknown field \"color\"");
}

Test(tg_snap, sha256_with_a_non_hex_char_is_refused)
{
    json_t *root = base_json();
    char hex[65];
    key_hex("sk-alpha", hex);
    hex[10] = 'g';
    json_object_set_new(at(root, "keys", 0), "sha256", json_string(hex));
    expect_refusal(root, "keys[0]", "sha256 must be 64 hex characters");
}

Test(tg_snap, sha256_too_short_is_refused)
{
    json_t *root = base_json();
    char hex[65];
    key_hex("sk-alpha", hex);
    hex[63] = '\0';
    json_object_set_new(at(root, "keys", 0), "sha256", json_string(hex));
    expect_refusal(root, "keys[0]", "sha256");
}

Test(tg_snap, sha256_too_long_is_refused)
{
    json_t *root = base_json();
    char hex[66];
    key_hex("sk-alpha", hex);
    hex[64] = 'a';
    hex[65] = '\0';
    json_object_set_new(at(root, "keys", 0), "sha256", json_string(hex));
    expect_refusal(root, "keys[0].sha256", "bad length");
}

Test(tg_snap, key_referencing_unknown_tenant_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "keys", 1), "tenant", json_string("t9"));
    expect_refusal(root, "keys[1]", "tenant is not defined");
}

Test(tg_snap, key_models_listing_unknown_alias_is_refused)
{
    json_t *root = base_json();
    json_array_append_new(json_object_get(at(root, "keys", 0), "models"), json_string("gpt-5"));
    expect_refusal(root, "keys[0]", "models lists an alias that is not a route");
}

Test(tg_snap, key_models_not_an_array_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "keys", 0), "models", json_string("gpt-4o-mini"));
    expect_refusal(root, "keys[0]", "models must be an array");
}

Test(tg_snap, target_referencing_unknown_provider_is_refused)
{
    json_t *root = base_json();
    json_t *targets = json_object_get(at(root, "routes", 0), "targets");
    json_object_set_new(json_array_get(targets, 1), "provider", json_string("anthropic"));
    expect_refusal(root, "routes[0].targets[1]", "provider is not defined");
}

Test(tg_snap, base_url_with_other_scheme_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "providers", 1), "base_url", json_string("ftp://example.com"));
    expect_refusal(root, "providers[1]", "base_url must be an http:// or https:// URL");
}

Test(tg_snap, base_url_without_host_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "providers", 1), "base_url", json_string("https:///v1"));
    expect_refusal(root, "providers[1]", "base_url");
}

Test(tg_snap, base_url_with_space_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "providers", 0), "base_url",
                        json_string("https://api.openai.com/v1 x"));
    expect_refusal(root, "providers[0]", "base_url");
}

Test(tg_snap, unknown_provider_kind_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "providers", 0), "kind", json_string("cohere"));
    expect_refusal(root, "providers[0]", "kind");
}

Test(tg_snap, bedrock_provider_needs_region_and_aws_keys)
{
    json_t *root = base_json();
    json_t *p = at(root, "providers", 0);
    json_object_set_new(p, "kind", json_string("bedrock"));
    expect_refusal(root, "providers[0]", "region");
    root = base_json();
    p = at(root, "providers", 0);
    json_object_set_new(p, "kind", json_string("bedrock"));
    json_object_set_new(p, "region", json_string("us-east-1"));
    expect_refusal(root, "providers[0]", "aws_access_key_id");
    root = base_json();
    p = at(root, "providers", 0);
    json_object_set_new(p, "kind", json_string("bedrock"));
    json_object_set_new(p, "region", json_string("US EAST"));
    json_object_set_new(p, "aws_access_key_id", json_string("AKIA1"));
    json_object_set_new(p, "aws_secret_access_key", json_string("secret"));
    expect_refusal(root, "providers[0]", "region");
}

Test(tg_snap, route_strategy_retry_and_timeouts_are_read_with_defaults)
{
    json_t *root = base_json();
    json_t *rt = at(root, "routes", 1);
    json_object_set_new(rt, "strategy", json_string("lowest_latency"));
    json_object_set_new(
        rt, "retry",
        json_pack("{s:i,s:i,s:[i,i]}", "max_attempts", 4, "backoff_ms", 50, "on_status", 503, 429));
    json_object_set_new(rt, "first_byte_timeout_ms", json_integer(1500));
    json_object_set_new(rt, "idle_timeout_ms", json_integer(700));
    json_object_set_new(rt, "cache_ttl_s", json_integer(60));
    tg_snap_t *s = NULL;
    tg_err_t err;
    cr_assert_eq(parse_json(root, &s, &err), 0, "%s", err.msg);
    const tg_route_t *r0 = &s->routes[0], *r1 = &s->routes[1];
    cr_assert_eq(r0->strategy, TG_STRATEGY_WEIGHTED);
    cr_assert_eq(r0->retry.max_attempts, 2);
    cr_assert(tg_retry_on_status(&r0->retry, 529));
    cr_assert(tg_retry_on_status(&r0->retry, 429));
    cr_assert_not(tg_retry_on_status(&r0->retry, 400));
    cr_assert_eq(r0->first_byte_timeout_ms, 0);
    cr_assert_eq(r1->strategy, TG_STRATEGY_LOWEST_LATENCY);
    cr_assert_eq(r1->retry.max_attempts, 4);
    cr_assert_eq(r1->retry.backoff_ms, 50);
    cr_assert_eq(r1->retry.non_status, 2);
    cr_assert_eq(r1->retry.on_status[0], 429);
    cr_assert_not(tg_retry_on_status(&r1->retry, 500));
    cr_assert_eq(r1->first_byte_timeout_ms, 1500);
    cr_assert_eq(r1->idle_timeout_ms, 700);
    cr_assert_eq(r1->cache_ttl_s, 60);
    tg_snap_unref(s);
}

Test(tg_snap, bad_retry_and_strategy_are_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 0), "strategy", json_string("fastest"));
    expect_refusal(root, "routes[0]", "strategy");
    root = base_json();
    json_object_set_new(at(root, "routes", 0), "retry", json_pack("{s:i}", "max_attempts", 11));
    expect_refusal(root, "routes[0].retry", "max_attempts");
    root = base_json();
    json_object_set_new(at(root, "routes", 0), "retry", json_pack("{s:[i]}", "on_status", 200));
    expect_refusal(root, "routes[0].retry", "on_status");
}

Test(tg_snap, duplicate_alias_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 1), "alias", json_string("gpt-4o-mini"));
    expect_refusal(root, "routes[1]", "duplicate alias");
}

Test(tg_snap, duplicate_key_hash_is_refused)
{
    json_t *root = base_json();
    char hex[65];
    key_hex("sk-alpha", hex);
    json_object_set_new(at(root, "keys", 1), "sha256", json_string(hex));
    expect_refusal(root, "keys[1]", "duplicate sha256");
}

Test(tg_snap, duplicate_key_hash_differing_only_in_hex_case_is_refused)
{
    json_t *root = base_json();
    char hex[65];
    key_hex("sk-alpha", hex);
    for (char *c = hex; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 32);
    json_object_set_new(at(root, "keys", 1), "sha256", json_string(hex));
    expect_refusal(root, "keys[1]", "duplicate sha256");
}

Test(tg_snap, duplicate_tenant_and_provider_ids_are_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "tenants", 1), "id", json_string("t1"));
    expect_refusal(root, "tenants[1]", "duplicate id");
    root = base_json();
    json_object_set_new(at(root, "providers", 1), "id", json_string("openai"));
    expect_refusal(root, "providers[1]", "duplicate id");
}

Test(tg_snap, zero_total_weight_is_refused)
{
    json_t *root = base_json();
    json_t *targets = json_object_get(at(root, "routes", 0), "targets");
    json_object_set_new(json_array_get(targets, 0), "weight", json_integer(0));
    json_object_set_new(json_array_get(targets, 1), "weight", json_integer(0));
    expect_refusal(root, "routes[0]", "positive total weight");
}

Test(tg_snap, empty_targets_are_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 1), "targets", json_array());
    expect_refusal(root, "routes[1].targets", "1 to 64 targets");
}

Test(tg_snap, negative_price_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "prices", 0), "input_per_mtok", json_real(-0.15));
    expect_refusal(root, "prices[0].input_per_mtok", "out of range");
}

Test(tg_snap, price_as_string_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "prices", 1), "output_per_mtok", json_string("0.6"));
    expect_refusal(root, "prices[1].output_per_mtok", "must be a number");
}

Test(tg_snap, duplicate_price_for_provider_model_is_refused)
{
    json_t *root = base_json();
    json_array_append(json_object_get(root, "prices"), at(root, "prices", 0));
    expect_refusal(root, "prices[2]", "duplicate provider and model");
}

Test(tg_snap, reserved_provider_header_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(json_object_get(at(root, "providers", 0), "headers"), "Authorization",
                        json_string("Bearer other"));
    expect_refusal(root, "providers[0].headers", "reserved header");
}

Test(tg_snap, reserved_provider_header_in_any_case_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(json_object_get(at(root, "providers", 0), "headers"), "content-LENGTH",
                        json_string("5"));
    expect_refusal(root, "providers[0].headers", "reserved header");
}

Test(tg_snap, provider_header_value_with_line_break_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(json_object_get(at(root, "providers", 0), "headers"), "X-Extra",
                        json_string("a\r\nHost: evil"));
    expect_refusal(root, "providers[0].headers", "bad or reserved header");
}

Test(tg_snap, provider_header_name_with_space_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(json_object_get(at(root, "providers", 0), "headers"), "X Extra",
                        json_string("a"));
    expect_refusal(root, "providers[0].headers", "bad or reserved header");
}

Test(tg_snap, api_key_with_line_break_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "providers", 0), "api_key", json_string("sk\nHost: x"));
    expect_refusal(root, "providers[0]", "api_key must not contain line breaks");
}

Test(tg_snap, timeout_out_of_range_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 0), "timeout_ms", json_integer(0));
    expect_refusal(root, "routes[0].timeout_ms", "out of range");
}

Test(tg_snap, string_with_nul_is_refused)
{
    tg_snap_t *s = (tg_snap_t *)1;
    tg_err_t err;
    /* jansson refuses \u0000 without JSON_ALLOW_NUL; either way the snapshot must not load */
    const char doc[] = "{\"version\":1,\"tenants\":[{\"id\":\"a\\u0000b\"}]}";
    cr_assert_eq(tg_snap_parse(doc, sizeof(doc) - 1, &s, &err), TG_EINVAL);
    cr_assert_null(s);
}

Test(tg_snap, price_cost_charges_uncached_cached_and_completion_tokens)
{
    tg_price_t p = {.input = 150000, .cached_input = 75000, .output = 600000, .set = true};
    cr_assert_eq(tg_price_cost(&p, 1000, 0, 0), 150000000);
    cr_assert_eq(tg_price_cost(&p, 0, 0, 10), 6000000);
    /* 600 uncached + 400 cached prompt tokens and 200 completion tokens */
    cr_assert_eq(tg_price_cost(&p, 1000, 400, 200), 600 * 150000 + 400 * 75000 + 200 * 600000);
    cr_assert_eq(tg_price_cost(&p, 1000, 400, 200), 240000000);
}

Test(tg_snap, price_cost_caps_cached_tokens_above_prompt_are_capped_at_prompt)
{
    tg_price_t p = {.input = 100, .cached_input = 10, .output = 1000, .set = true};
    cr_assert_eq(tg_price_cost(&p, 50, 80, 0), 50 * 10);
}

Test(tg_snap, price_cost_of_unset_price_is_zero)
{
    tg_price_t p = {.input = 100, .cached_input = 10, .output = 1000, .set = false};
    cr_assert_eq(tg_price_cost(&p, 50, 0, 50), 0);
}

Test(tg_snap, price_cost_saturates_instead_of_overflowing)
{
    /* token counts come from the provider: a broken one must not wrap the cost negative */
    tg_price_t p = {
        .input = 1000000000000LL, .cached_input = 1, .output = 1000000000000LL, .set = true};
    cr_assert_eq(tg_price_cost(&p, INT64_MAX / 2, 0, 0), INT64_MAX);
    cr_assert_eq(tg_price_cost(&p, 0, 0, INT64_MAX), INT64_MAX);
    cr_assert_eq(tg_price_cost(&p, 9000000, 0, 9000000), INT64_MAX);
    cr_assert_eq(tg_price_cost(&p, 1, 0, 1), 2000000000000LL);
}

/* ---- rate limits and budgets ---- */

static json_t *budget(const char *tenant, const char *key, const char *period, double limit,
                      double spent, const char *start)
{
    json_t *b = json_pack("{s:s,s:s,s:s,s:f,s:f}", "id", "b", "tenant", tenant, "period", period,
                          "limit_usd", limit, "spent_usd", spent);
    if (key)
        json_object_set_new(b, "key", json_string(key));
    if (start)
        json_object_set_new(b, "period_start", json_string(start));
    return b;
}

Test(tg_snap, limits_and_budgets_land_on_their_key_and_tenant)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "keys", 0), "rpm_limit", json_integer(60));
    json_object_set_new(at(root, "keys", 0), "tpm_limit", json_integer(100000));
    json_object_set_new(at(root, "tenants", 1), "rpm_limit", json_integer(5));
    json_t *bs = json_array();
    json_array_append_new(bs, budget("t1", "k1", "daily", 10.5, 2.25, "2026-11-25"));
    json_array_append_new(bs, budget("t2", NULL, "total", 100, 0, NULL));
    json_object_set_new(root, "budgets", bs);
    json_object_set_new(root, "spend_as_of", json_integer(1764072000123));
    tg_snap_t *s = NULL;
    tg_err_t err;
    cr_assert_eq(parse_json(root, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s->spend_as_of, 1764072000123);
    const tg_key_t *k1 = &s->keys[0], *k2 = &s->keys[1];
    cr_assert_eq(k1->lim.rpm, 60);
    cr_assert_eq(k1->lim.tpm, 100000);
    cr_assert_eq(k2->lim.rpm, 0);
    cr_assert_eq(s->tenants[1].lim.rpm, 5);
    cr_assert_eq(k1->lim.budget_pusd[TG_PERIOD_DAILY], 10500000000000LL);
    cr_assert_eq(k1->lim.spent_pusd[TG_PERIOD_DAILY], 2250000000000LL);
    cr_assert_eq(k1->lim.spent_period[TG_PERIOD_DAILY], 20261125);
    cr_assert_eq(k1->lim.budget_pusd[TG_PERIOD_MONTHLY], -1);
    cr_assert_eq(s->tenants[1].lim.budget_pusd[TG_PERIOD_TOTAL], 100000000000000LL);
    cr_assert_eq(s->tenants[1].lim.spent_period[TG_PERIOD_TOTAL], 19700101);
    cr_assert_eq(s->tenants[0].lim.budget_pusd[TG_PERIOD_TOTAL], -1);
    tg_snap_unref(s);
}

Test(tg_snap, bad_limits_and_budgets_are_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "keys", 0), "rpm_limit", json_integer(0));
    expect_refusal(root, "keys[0].rpm_limit", "out of range");

    root = base_json();
    json_object_set_new(at(root, "tenants", 0), "tpm_limit", json_string("lots"));
    expect_refusal(root, "tenants[0].tpm_limit", "must be an integer");

    const struct {
        json_t *b;
        const char *why;
    } cases[] = {
        {budget("t9", NULL, "daily", 1, 0, NULL), "tenant is not defined"},
        {budget("t1", "k9", "daily", 1, 0, NULL), "key is not defined"},
        {budget("t2", "k1", "daily", 1, 0, NULL), "key belongs to another tenant"},
        {budget("t1", NULL, "weekly", 1, 0, NULL), "period must be"},
        {budget("t1", NULL, "daily", -1, 0, NULL), "limit_usd must be"},
        {budget("t1", NULL, "daily", 1e7, 0, NULL), "limit_usd must be"},
        {budget("t1", NULL, "daily", 1, -2, NULL), "spent_usd must be"},
        {budget("t1", NULL, "daily", 1, 0, "2026-13-01"), "period_start must be a date"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        root = base_json();
        json_t *bs = json_array();
        json_array_append_new(bs, cases[i].b);
        json_object_set_new(root, "budgets", bs);
        expect_refusal(root, "budgets[0]", cases[i].why);
    }

    root = base_json();
    json_t *bs = json_array();
    json_array_append_new(bs, budget("t1", "k1", "daily", 1, 0, NULL));
    json_array_append_new(bs, budget("t1", "k1", "daily", 2, 0, NULL));
    json_object_set_new(root, "budgets", bs);
    expect_refusal(root, "budgets[1]", "a second budget");
}

Test(tg_snap, periods_start_on_utc_calendar_days_and_months)
{
    /* 2026-11-25T23:59:59Z and the next second */
    cr_assert_eq(tg_period_start(TG_PERIOD_DAILY, 1795651199), 20261125);
    cr_assert_eq(tg_period_start(TG_PERIOD_DAILY, 1795651200), 20261126);
    cr_assert_eq(tg_period_start(TG_PERIOD_MONTHLY, 1795651199), 20261101);
    /* 2026-12-31T23:59:59Z -> 2027-01-01 */
    cr_assert_eq(tg_period_start(TG_PERIOD_MONTHLY, 1798761599), 20261201);
    cr_assert_eq(tg_period_start(TG_PERIOD_MONTHLY, 1798761600), 20270101);
    cr_assert_eq(tg_period_start(TG_PERIOD_TOTAL, 1798761600), 19700101);
    cr_assert_eq(tg_date_parse("2026-02-28"), 20260228);
    cr_assert_eq(tg_date_parse("2026-2-28"), -1);
    cr_assert_eq(tg_date_parse("2026-02-28x"), -1);
    cr_assert_eq(tg_date_parse(NULL), -1);
    /* a day the month has, February's 29th in leap years only; digits only */
    cr_assert_eq(tg_date_parse("2026-04-30"), 20260430);
    cr_assert_eq(tg_date_parse("2026-04-31"), -1);
    cr_assert_eq(tg_date_parse("2026-12-31"), 20261231);
    cr_assert_eq(tg_date_parse("2026-12-32"), -1);
    cr_assert_eq(tg_date_parse("2027-02-29"), -1);
    cr_assert_eq(tg_date_parse("2027-02-30"), -1);
    cr_assert_eq(tg_date_parse("2028-02-29"), 20280229);
    cr_assert_eq(tg_date_parse("2000-02-29"), 20000229);
    cr_assert_eq(tg_date_parse("2100-02-29"), -1);
    cr_assert_eq(tg_date_parse("2026-+2-28"), -1);
    cr_assert_eq(tg_date_parse("2026-02- 8"), -1);
    cr_assert_eq(tg_date_parse("2026-02-+8"), -1);
    cr_assert_eq(tg_period_parse("monthly"), TG_PERIOD_MONTHLY);
    cr_assert_eq(tg_period_parse("Monthly"), -1);
}

Test(tg_snap, dataplane_name_is_1_to_max_of_a_small_alphabet)
{
    cr_assert(tg_snap_dataplane_name_ok("dp-1.host_a", 11, 64));
    cr_assert(tg_snap_dataplane_name_ok("abc", 3, 3));
    cr_assert_not(tg_snap_dataplane_name_ok("abcd", 4, 3), "longer than max");
    cr_assert_not(tg_snap_dataplane_name_ok("", 0, 64), "empty");
    cr_assert_not(tg_snap_dataplane_name_ok("dp 1", 4, 64), "space");
    cr_assert_not(tg_snap_dataplane_name_ok("dp\n1", 4, 64), "newline");
    cr_assert_not(tg_snap_dataplane_name_ok("dp/1", 4, 64), "slash");
    cr_assert_not(tg_snap_dataplane_name_ok("dp\0001", 4, 64), "NUL inside the length");
}

Test(tg_snap, catalog_cache_write_and_reasoning_prices_parse_and_default)
{
    json_t *root = base_json();
    json_t *p0 = at(root, "prices", 0);
    json_object_set_new(p0, "cache_write_per_mtok", json_real(0.1875));
    json_object_set_new(p0, "cache_write_1h_per_mtok", json_real(0.3));
    json_object_set_new(p0, "reasoning_per_mtok", json_real(0.9));
    tg_snap_t *s = NULL;
    tg_err_t err = {0};
    cr_assert_eq(parse_json(root, &s, &err), 0, "%s", err.msg);
    const tg_price_t *p = &tg_snap_find_route(s, "gpt-4o-mini", 11)->targets[0].price;
    cr_assert_eq(p->cache_write, 187500);
    cr_assert_eq(p->cache_write_1h, 300000);
    cr_assert_eq(p->reasoning, 900000);
    /* a price without them (an admin's, or an older control plane's) bills cache writes as input
     * and reasoning as output, as before */
    const tg_price_t *e = &tg_snap_find_route(s, "embed", 5)->targets[0].price;
    cr_assert_eq(e->cache_write, e->input);
    cr_assert_eq(e->cache_write_1h, e->input);
    cr_assert_eq(e->reasoning, e->output);
    tg_snap_unref(s); /* parse_json took root */
}

/* ---- a newer control plane's members; every pricing rule ---- */

static tg_snap_t *parse_ok(json_t *root)
{
    tg_snap_t *s = NULL;
    tg_err_t err;
    int rc = parse_json(root, &s, &err);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, err.msg);
    return s;
}

Test(tg_snap, unknown_members_of_targets_routes_prices_and_tiers_are_ignored)
{
    json_t *root = base_json();
    json_t *route = at(root, "routes", 0);
    json_object_set_new(route, "sticky_sessions", json_true());
    json_object_set_new(
        json_array_get(json_object_get(route, "targets"), 0), "info",
        json_pack("{s:i,s:{s:b}}", "context_window", 128000, "capabilities", "tools", 1));
    json_t *price = at(root, "prices", 0);
    json_object_set_new(price, "audio_input_per_mtok", json_real(40));
    json_object_set_new(price, "batch", json_pack("{s:f}", "input_per_mtok", 0.075));
    json_object_set_new(price, "long_context",
                        json_pack("[{s:i,s:f,s:f,s:s}]", "above_input_tokens", 200000,
                                  "input_per_mtok", 0.3, "output_per_mtok", 1.2, "region", "eu"));
    tg_snap_t *s = parse_ok(root);
    const tg_target_t *t = &tg_snap_find_route(s, "gpt-4o-mini", 11)->targets[0];
    cr_assert(t->price.set);
    cr_assert_eq(t->price.input, 150000);
    cr_assert_eq(t->price.ntiers, 1);
    cr_assert_eq(t->price.tiers[0].input, 300000);
    tg_snap_unref(s);
}

Test(tg_snap, a_known_member_of_the_wrong_type_is_still_refused)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 0), "allow_unpriced", json_string("yes"));
    expect_refusal(root, "routes[0].allow_unpriced", "true or false");
}

Test(tg_snap, allow_unpriced_defaults_to_false)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "routes", 1), "allow_unpriced", json_true());
    tg_snap_t *s = parse_ok(root);
    cr_assert_not(tg_snap_find_route(s, "gpt-4o-mini", 11)->allow_unpriced);
    cr_assert(tg_snap_find_route(s, "embed", 5)->allow_unpriced);
    tg_snap_unref(s);
}

Test(tg_snap, long_context_tiers_parse_with_defaults_and_must_ascend)
{
    json_t *root = base_json();
    json_object_set_new(at(root, "prices", 0), "long_context",
                        json_pack("[{s:i,s:f,s:f,s:f,s:f},{s:i,s:f,s:f}]", "above_input_tokens",
                                  200000, "input_per_mtok", 6.0, "output_per_mtok", 22.5,
                                  "cached_input_per_mtok", 0.6, "cache_write_per_mtok", 7.5,
                                  "above_input_tokens", 500000, "input_per_mtok", 8.0,
                                  "output_per_mtok", 30.0));
    tg_snap_t *s = parse_ok(root);
    const tg_price_t *p = &tg_snap_find_route(s, "gpt-4o-mini", 11)->targets[0].price;
    cr_assert_eq(p->ntiers, 2);
    cr_assert_eq(p->tiers[0].above_input_tokens, 200000);
    cr_assert_eq(p->tiers[0].cache_write, 7500000);
    cr_assert_eq(p->tiers[0].cache_write_1h, 7500000); /* the tier's 5-minute write */
    cr_assert_eq(p->tiers[0].reasoning, 22500000);     /* the tier's output */
    cr_assert_eq(p->tiers[1].cached_input, 8000000);   /* the tier's input */
    tg_snap_unref(s);

    root = base_json();
    json_object_set_new(at(root, "prices", 0), "long_context",
                        json_pack("[{s:i,s:f,s:f},{s:i,s:f,s:f}]", "above_input_tokens", 200000,
                                  "input_per_mtok", 6.0, "output_per_mtok", 22.5,
                                  "above_input_tokens", 200000, "input_per_mtok", 8.0,
                                  "output_per_mtok", 30.0));
    expect_refusal(root, "prices[0].long_context[1]", "ascend");
    root = base_json();
    json_object_set_new(at(root, "prices", 0), "long_context",
                        json_pack("[{s:f,s:f}]", "input_per_mtok", 6.0, "output_per_mtok", 22.5));
    expect_refusal(root, "prices[0].long_context[0]", "above_input_tokens is required");
}

/* Anthropic-style price: $3 input, $0.30 cache read, $3.75 5-minute write, $6 1-hour write,
 * $15 output; above 200k input tokens $6, $0.60, $7.50, $12 and $22.50. */
static tg_price_t sonnet(void)
{
    tg_price_t p = {.input = 3000000,
                    .cached_input = 300000,
                    .output = 15000000,
                    .cache_write = 3750000,
                    .cache_write_1h = 6000000,
                    .reasoning = 15000000,
                    .set = true,
                    .ntiers = 1};
    p.tiers[0] = (tg_price_tier_t){200000, 6000000, 600000, 22500000, 7500000, 12000000, 22500000};
    return p;
}

Test(tg_snap, usage_cost_prices_cache_reads_and_both_cache_write_tiers)
{
    tg_price_t p = sonnet();
    /* 100 uncached + 2000 read + 300 5m writes + 400 1h writes; 50 out */
    tg_cost_usage_t u = {2800, 2000, 300, 400, 50, 0};
    cr_assert_eq(tg_price_usage_cost(&p, &u), 100 * 3000000LL + 2000 * 300000LL + 300 * 3750000LL +
                                                  400 * 6000000LL + 50 * 15000000LL);
}

Test(tg_snap, usage_cost_takes_the_long_context_tier_for_the_whole_request_above_its_threshold)
{
    tg_price_t p = sonnet();
    tg_cost_usage_t at_edge = {200000, 150000, 0, 0, 10, 0};
    cr_assert_eq(tg_price_usage_cost(&p, &at_edge),
                 50000 * 3000000LL + 150000 * 300000LL + 10 * 15000000LL);
    /* one token more: every token at the tier's rates, the cached and written ones included */
    tg_cost_usage_t over = {200001, 150000, 1000, 1, 10, 0};
    cr_assert_eq(tg_price_usage_cost(&p, &over), 49000 * 6000000LL + 150000 * 600000LL +
                                                     1000 * 7500000LL + 1 * 12000000LL +
                                                     10 * 22500000LL);
}

Test(tg_snap, usage_cost_bills_reasoning_apart_only_where_it_has_its_own_price)
{
    tg_price_t p = {.input = 1000,
                    .cached_input = 100,
                    .output = 8000,
                    .cache_write = 1000,
                    .cache_write_1h = 1000,
                    .reasoning = 8000,
                    .set = true};
    tg_cost_usage_t u = {10, 0, 0, 0, 100, 60};
    cr_assert_eq(tg_price_usage_cost(&p, &u), 10 * 1000 + 100 * 8000); /* part of output */
    p.reasoning = 3500;
    cr_assert_eq(tg_price_usage_cost(&p, &u), 10 * 1000 + 40 * 8000 + 60 * 3500);
}

Test(tg_snap, usage_cost_never_counts_parts_beyond_their_whole)
{
    tg_price_t p = sonnet();
    tg_cost_usage_t u = {100, 80, 50, 50, 10, 30};
    /* 80 read, 20 written (5m), nothing left uncached or for the 1h tier; 10 reasoning */
    cr_assert_eq(tg_price_usage_cost(&p, &u), 80 * 300000LL + 20 * 3750000LL + 10 * 15000000LL);
}

Test(tg_snap, embeddings_cost_their_input_tokens)
{
    tg_price_t p = {.input = 20000,
                    .cached_input = 20000,
                    .output = 0,
                    .cache_write = 20000,
                    .cache_write_1h = 20000,
                    .set = true};
    tg_cost_usage_t u = {12345, 0, 0, 0, 0, 0};
    cr_assert_eq(tg_price_usage_cost(&p, &u), 12345 * 20000LL);
}

Test(tg_snap, usage_cost_of_an_unpriced_target_is_zero_and_large_counts_saturate)
{
    tg_price_t none = {0};
    tg_cost_usage_t u = {1000, 0, 0, 0, 1000, 0};
    cr_assert_eq(tg_price_usage_cost(&none, &u), 0);
    tg_price_t p = sonnet();
    tg_cost_usage_t big = {INT64_MAX / 2, 0, 0, 0, INT64_MAX / 2, 0};
    cr_assert_eq(tg_price_usage_cost(&p, &big), INT64_MAX);
}

/* ---- per-target model info and the cheapest strategy ---- */

static json_t *first_target(json_t *root)
{
    return json_array_get(json_object_get(at(root, "routes", 0), "targets"), 0);
}

Test(tg_snap, target_info_reads_window_output_and_capabilities)
{
    json_t *root = base_json();
    json_t *info =
        json_pack("{s:i,s:i,s:{s:b,s:b,s:b}}", "context_window", 128000, "max_output_tokens", 16384,
                  "capabilities", "tools", 1, "vision", 0, "future_cap", 1);
    json_object_set_new(first_target(root), "info", info);
    json_object_set_new(info, "future_member", json_string("ignored"));
    json_object_set_new(at(root, "routes", 0), "strategy", json_string("cheapest"));
    tg_snap_t *s = NULL;
    tg_err_t err;
    cr_assert_eq(parse_json(root, &s, &err), 0, "%s", err.msg);
    const tg_route_t *r = tg_snap_find_route(s, "gpt-4o-mini", 11);
    cr_assert_eq(r->strategy, TG_STRATEGY_CHEAPEST);
    const tg_model_info_t *i = &r->targets[0].info;
    cr_assert_eq(i->context_window, 128000);
    cr_assert_eq(i->max_output_tokens, 16384);
    cr_assert_eq(i->caps_known, TG_CAP_TOOLS | TG_CAP_VISION);
    cr_assert_eq(i->caps, TG_CAP_TOOLS);
    /* the second target has no info: everything unknown */
    cr_assert_eq(r->targets[1].info.context_window, 0);
    cr_assert_eq(r->targets[1].info.caps_known, 0);
    tg_snap_unref(s);
}

Test(tg_snap, target_info_null_is_unknown)
{
    json_t *root = base_json();
    json_object_set_new(first_target(root), "info", json_null());
    tg_snap_t *s = NULL;
    tg_err_t err;
    cr_assert_eq(parse_json(root, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s->routes[0].targets[0].info.caps_known, 0);
    tg_snap_unref(s);
}

Test(tg_snap, target_info_with_a_bad_type_is_refused)
{
    json_t *root = base_json();
    json_object_set_new(first_target(root), "info",
                        json_pack("{s:{s:s}}", "capabilities", "tools", "yes"));
    expect_refusal(root, "routes[0].targets[0].info", "booleans");
    root = base_json();
    json_object_set_new(first_target(root), "info", json_pack("{s:s}", "context_window", "big"));
    expect_refusal(root, "routes[0].targets[0].info.context_window", "integer");
    root = base_json();
    json_object_set_new(first_target(root), "info", json_string("x"));
    expect_refusal(root, "routes[0].targets[0].info", "object");
}

Test(tg_snap, ids_the_planes_exchange)
{
    cr_assert(tg_snap_id_ok("resp_0Ab-9", 10, 128, "_-"));
    cr_assert_not(tg_snap_id_ok("resp.1", 6, 128, "_-"), "a dot only where allowed");
    cr_assert(tg_snap_id_ok("dp-1.2", 6, 63, "._-"));
    cr_assert_not(tg_snap_id_ok("../x", 4, 128, "_-"));
    cr_assert_not(tg_snap_id_ok("a\0b", 3, 128, "_-"), "a NUL is never in also");
    cr_assert_not(tg_snap_id_ok("", 0, 128, "_-"));
    char long_id[130];
    memset(long_id, 'a', sizeof(long_id));
    cr_assert(tg_snap_id_ok(long_id, 128, 128, "_-"));
    cr_assert_not(tg_snap_id_ok(long_id, 129, 128, "_-"));
    cr_assert(tg_snap_dataplane_name_ok("dp-1.2", 6, 63));
    cr_assert_not(tg_snap_dataplane_name_ok("dp 1", 4, 63));
}

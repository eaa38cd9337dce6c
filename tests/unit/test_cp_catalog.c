/* test_cp_catalog.c: the catalog file's checks (cp_catalog_check): a good document passes, the
 * built-in copy passes, and each rule refuses with its message naming where. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "catalog.h"

/* One vendor of kind openai, one chat model of each of two kinds: every optional part present. */
static const char good[] =
    "{\"version\":\"2026.12.08.1\",\"generated_on\":\"2026-12-08\","
    "\"vendors\":{\"fireworks\":{\"kind\":\"openai\",\"hosts\":[\"api.fireworks.ai\"]}},"
    "\"models\":["
    "{\"kind\":\"anthropic\",\"model\":\"claude-x\",\"mode\":\"chat\",\"context_window\":200000,"
    "\"max_output_tokens\":64000,"
    "\"prices\":{\"input\":\"3\",\"output\":\"15\",\"cached_input\":\"0.3\","
    "\"cache_write\":{\"5m\":\"3.75\",\"1h\":\"6\"},\"reasoning\":\"15\"},"
    "\"long_context\":[{\"from_input_tokens\":100000,\"input\":\"6\",\"output\":\"22.5\","
    "\"cached_input\":\"0.6\"}],"
    "\"capabilities\":{\"tools\":true,\"parallel_tool_calls\":true,\"vision\":true,"
    "\"json_schema\":false,\"reasoning\":true,\"streaming_usage\":true},"
    "\"deprecation_date\":null,\"source\":\"https://example.com/pricing\","
    "\"read_on\":\"2026-12-01\"},"
    "{\"kind\":\"openai\",\"vendor\":\"fireworks\",\"model\":\"m\",\"mode\":\"embedding\","
    "\"context_window\":8192,\"max_output_tokens\":null,\"prices\":{\"input\":\"0.008\"},"
    "\"capabilities\":{\"tools\":false,\"parallel_tool_calls\":false,\"vision\":false,"
    "\"json_schema\":false,\"reasoning\":false,\"streaming_usage\":false},"
    "\"source\":\"https://example.com/m\",\"read_on\":\"2026-12-01\"}]}";

static char msg[512];

static json_t *doc(void)
{
    json_error_t e;
    json_t *d = json_loads(good, 0, &e);
    cr_assert_not_null(d, "%s", e.text);
    return d;
}

static json_t *model0(json_t *d)
{
    return json_array_get(json_object_get(d, "models"), 0);
}

static json_t *prices0(json_t *d)
{
    return json_object_get(model0(d), "prices");
}

static json_t *js(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(v, "%s", text);
    return v;
}

/* The document with o[key] = value (JSON text; NULL deletes it) is refused with want. */
static void refused(json_t *d, json_t *o, const char *key, const char *value, const char *want)
{
    if (value)
        json_object_set_new(o, key, js(value));
    else
        json_object_del(o, key);
    msg[0] = '\0';
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), -1, "%s=%s passed", key,
                 value ? value : "(none)");
    cr_assert_str_eq(msg, want, "%s=%s", key, value ? value : "(none)");
    json_decref(d);
}

/* The same change is accepted. */
static void accepted(json_t *d, json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, js(value));
    else
        json_object_del(o, key);
    msg[0] = '\0';
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), 0, "%s=%s: %s", key,
                 value ? value : "(none)", msg);
    json_decref(d);
}

Test(cp_catalog, a_good_document_passes)
{
    json_t *d = doc();
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), 0, "%s", msg);
    json_decref(d);
}

Test(cp_catalog, the_built_in_catalog_passes)
{
    json_error_t e;
    json_t *d = json_loadb(cp_catalog_builtin, cp_catalog_builtin_len, 0, &e);
    cr_assert_not_null(d, "%s", e.text);
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_gt(json_array_size(json_object_get(d, "models")), 1);
    json_decref(d);
}

Test(cp_catalog, the_document_needs_version_date_vendors_and_models)
{
    json_t *a = js("[]");
    cr_assert_eq(cp_catalog_check(a, msg, sizeof(msg)), -1);
    cr_assert_str_eq(msg, "the catalog must be a JSON object");
    json_decref(a);
    json_t *d = doc();
    refused(d, d, "version", "\"\"", "version must be a string of 1 to 64 characters");
    d = doc();
    refused(d, d, "version", "1", "version must be a string of 1 to 64 characters");
    char v65[70] = "\"", v64[70] = "\"";
    memset(v65 + 1, 'v', 65);
    strcpy(v65 + 66, "\"");
    memset(v64 + 1, 'v', 64);
    strcpy(v64 + 65, "\"");
    d = doc();
    refused(d, d, "version", v65, "version must be a string of 1 to 64 characters");
    d = doc();
    accepted(d, d, "version", v64);
    d = doc();
    refused(d, d, "generated_on", "\"2026-13-01\"", "generated_on must be a date (YYYY-MM-DD)");
    d = doc();
    refused(d, d, "generated_on", NULL, "generated_on must be a date (YYYY-MM-DD)");
    d = doc();
    refused(d, d, "vendors", "[]", "vendors must be an object");
    d = doc();
    refused(d, d, "models", "[]", "models must be an array of 1 to 20000 entries");
    d = doc();
    refused(d, d, "models", "{}", "models must be an array of 1 to 20000 entries");
}

Test(cp_catalog, vendors_need_a_known_kind_hosts_and_one_default_at_most)
{
    json_t *d = doc();
    json_t *vs = json_object_get(d, "vendors");
    refused(d, vs, "x", "{\"kind\":\"cohere\",\"hosts\":[\"h\"]}",
            "vendors need a known kind and hosts each");
    d = doc();
    vs = json_object_get(d, "vendors");
    refused(d, vs, "x", "{\"kind\":\"openai\",\"hosts\":[]}",
            "vendors need a known kind and hosts each");
    d = doc();
    vs = json_object_get(d, "vendors");
    json_object_set_new(json_object_get(vs, "fireworks"), "default_for_kind", json_true());
    accepted(d, vs, "x", "{\"kind\":\"openai\",\"hosts\":[\"h\"],\"default_for_kind\":false}");
    d = doc();
    vs = json_object_get(d, "vendors");
    json_object_set_new(json_object_get(vs, "fireworks"), "default_for_kind", json_true());
    refused(d, vs, "x", "{\"kind\":\"openai\",\"hosts\":[\"h\"],\"default_for_kind\":true}",
            "vendors may mark one default_for_kind");
}

Test(cp_catalog, a_model_needs_a_kind_and_a_model_name_of_1_to_256)
{
    json_t *d = doc();
    json_array_set_new(json_object_get(d, "models"), 0, json_string("x"));
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), -1);
    cr_assert_str_eq(msg, "models[0] must be an object");
    json_decref(d);
    d = doc();
    refused(d, model0(d), "kind", "\"cohere\"",
            "models[0] has a kind Tollgate has no provider for");
    d = doc();
    refused(d, model0(d), "model", "\"\"", "models[0] needs a model of 1 to 256 characters");
    char name[300] = "\"";
    memset(name + 1, 'm', 257);
    strcpy(name + 258, "\"");
    d = doc();
    refused(d, model0(d), "model", name, "models[0] needs a model of 1 to 256 characters");
    name[257] = '"';
    name[258] = '\0';
    d = doc();
    accepted(d, model0(d), "model", name);
}

Test(cp_catalog, only_openai_entries_name_a_vendor_and_theirs_must_exist)
{
    json_t *d = doc();
    refused(d, model0(d), "vendor", "\"fireworks\"",
            "models[0] (claude-x) has a vendor, which only openai-compatible entries have");
    d = doc();
    json_t *m1 = json_array_get(json_object_get(d, "models"), 1);
    refused(d, m1, "vendor", "\"nobody\"",
            "models[1] (m) must name a vendor of kind openai from vendors");
    d = doc();
    m1 = json_array_get(json_object_get(d, "models"), 1);
    refused(d, m1, "vendor", NULL, "models[1] (m) must name a vendor of kind openai from vendors");
}

Test(cp_catalog, mode_context_window_and_output_limit)
{
    json_t *d = doc();
    refused(d, model0(d), "mode", "\"completion\"",
            "models[0] (claude-x) mode must be chat or embedding");
    d = doc();
    refused(d, model0(d), "context_window", "0",
            "models[0] (claude-x) context_window must be a positive integer");
    d = doc();
    refused(d, model0(d), "context_window", "\"200000\"",
            "models[0] (claude-x) context_window must be a positive integer");
    const char *mo = "models[0] (claude-x) max_output_tokens must be null or a positive integer "
                     "within the context window";
    d = doc();
    refused(d, model0(d), "max_output_tokens", "200001", mo);
    d = doc();
    refused(d, model0(d), "max_output_tokens", "0", mo);
    d = doc();
    refused(d, model0(d), "max_output_tokens", NULL, mo); /* absent is not null */
    d = doc();
    accepted(d, model0(d), "max_output_tokens", "200000");
}

Test(cp_catalog, prices_are_plain_decimals_from_0_to_1000)
{
    const char *plain = "models[0] (claude-x) prices.input is not a plain decimal";
    static const char *const bad[] = {"\"\"",     "\".5\"",       "\"1.\"",
                                      "\"1.5.\"", "\"-1\"",       "\"1e3\"",
                                      "\" 1\"",   "\"12345678\"", "\"0.1234567890\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *d = doc();
        refused(d, prices0(d), "input", bad[i], plain);
    }
    json_t *d = doc();
    refused(d, prices0(d), "input", "3",
            "models[0] (claude-x) prices.input must be a decimal string (USD per million tokens)");
    d = doc();
    refused(d, prices0(d), "input", "\"1000.000000001\"",
            "models[0] (claude-x) prices.input is outside 0 to 1000 USD per million tokens");
    d = doc();
    refused(d, prices0(d), "input", "\"1001\"",
            "models[0] (claude-x) prices.input is outside 0 to 1000 USD per million tokens");
    d = doc();
    json_object_set_new(prices0(d), "output", json_string("1000"));
    json_object_set_new(json_array_get(json_object_get(model0(d), "long_context"), 0), "input",
                        json_string("1000"));
    accepted(d, prices0(d), "input", "\"1000.000000000\"");
    d = doc();
    json_object_set_new(prices0(d), "cached_input", json_string("0"));
    accepted(d, prices0(d), "input", "\"0.000000001\"");
    d = doc();
    refused(d, prices0(d), "output", NULL,
            "models[0] (claude-x) prices.output must be a decimal string (USD per million tokens)");
    d = doc();
    refused(d, model0(d), "prices", "[]", "models[0] (claude-x) needs prices");
}

Test(cp_catalog, prices_must_be_consistent_with_the_input_price)
{
    json_t *d = doc();
    /* output 0.03 = input / 100: allowed; 0.029 under it */
    accepted(d, prices0(d), "output", "\"0.03\"");
    d = doc();
    refused(d, prices0(d), "output", "\"0.029\"",
            "models[0] (claude-x) has an output price under a hundredth of its input price");
    d = doc();
    accepted(d, prices0(d), "cached_input", "\"3\"");
    d = doc();
    refused(d, prices0(d), "cached_input", "\"3.01\"",
            "models[0] (claude-x) has a cached input price above its input price");
    d = doc();
    refused(d, prices0(d), "cached_input", "0.3",
            "models[0] (claude-x) prices.cached_input must be a decimal string (USD per million "
            "tokens)");
    d = doc();
    refused(d, prices0(d), "reasoning", "\"x\"",
            "models[0] (claude-x) prices.reasoning is not a plain decimal");
}

Test(cp_catalog, cache_write_tiers_are_the_four_known_ttls)
{
    json_t *d = doc();
    accepted(d, prices0(d), "cache_write",
             "{\"5m\":\"1\",\"30m\":\"1\",\"1h\":\"1\",\"12h\":\"1\"}");
    d = doc();
    refused(d, prices0(d), "cache_write", "{\"24h\":\"1\"}",
            "models[0] (claude-x) prices.cache_write tiers are 5m, 30m, 1h and 12h");
    d = doc();
    refused(d, prices0(d), "cache_write", "\"3.75\"",
            "models[0] (claude-x) prices.cache_write must be an object of TTL tiers");
    d = doc();
    refused(d, prices0(d), "cache_write", "{\"5m\":3.75}",
            "models[0] (claude-x) prices.cache_write must be a decimal string (USD per million "
            "tokens)");
}

Test(cp_catalog, long_context_tiers_ascend_within_the_window_at_or_above_the_input_price)
{
    const char *asc = "models[0] (claude-x) long_context tiers need ascending from_input_tokens "
                      "within the context window";
    json_t *d = doc();
    refused(d, model0(d), "long_context", "{}",
            "models[0] (claude-x) long_context must be an array of tiers");
    d = doc();
    refused(d, model0(d), "long_context",
            "[{\"from_input_tokens\":200000,\"input\":\"6\",\"output\":\"22.5\"}]", asc);
    d = doc();
    accepted(d, model0(d), "long_context",
             "[{\"from_input_tokens\":199999,\"input\":\"6\",\"output\":\"22.5\"}]");
    d = doc();
    refused(d, model0(d), "long_context",
            "[{\"from_input_tokens\":0,\"input\":\"6\",\"output\":\"22.5\"}]", asc);
    d = doc();
    refused(d, model0(d), "long_context",
            "[{\"from_input_tokens\":100000,\"input\":\"6\",\"output\":\"22.5\"},"
            "{\"from_input_tokens\":100000,\"input\":\"7\",\"output\":\"30\"}]",
            asc);
    d = doc();
    accepted(d, model0(d), "long_context",
             "[{\"from_input_tokens\":100000,\"input\":\"3\",\"output\":\"22.5\"}]");
    d = doc();
    refused(d, model0(d), "long_context",
            "[{\"from_input_tokens\":100000,\"input\":\"2.99\",\"output\":\"22.5\"}]",
            "models[0] (claude-x) has a long-context input price below its input price");
    d = doc();
    refused(d, model0(d), "long_context", "[{\"from_input_tokens\":100000,\"input\":\"6\"}]",
            "models[0] (claude-x) long_context output must be a decimal string (USD per million "
            "tokens)");
}

Test(cp_catalog, capabilities_are_exactly_the_six_booleans)
{
    const char *six = "models[0] (claude-x) capabilities must hold exactly the six known flags";
    json_t *d = doc();
    json_object_del(json_object_get(model0(d), "capabilities"), "vision");
    accepted(d, json_object_get(model0(d), "capabilities"), "vision", "false");
    d = doc();
    refused(d, json_object_get(model0(d), "capabilities"), "vision", NULL, six);
    d = doc();
    refused(d, json_object_get(model0(d), "capabilities"), "audio", "true", six);
    d = doc();
    refused(d, json_object_get(model0(d), "capabilities"), "vision", "1",
            "models[0] (claude-x) capabilities must hold booleans");
}

Test(cp_catalog, dates_and_the_source)
{
    json_t *d = doc();
    accepted(d, model0(d), "deprecation_date", "\"2027-01-31\"");
    d = doc();
    refused(d, model0(d), "deprecation_date", "\"2027-02-30\"",
            "models[0] (claude-x) deprecation_date must be YYYY-MM-DD or null");
    const char *src = "models[0] (claude-x) needs source, the https URL of the provider's page";
    d = doc();
    refused(d, model0(d), "source", "\"http://example.com\"", src);
    d = doc();
    refused(d, model0(d), "source", NULL, src);
    char url[2100] = "\"https://";
    memset(url + 9, 'a', 2040);
    strcpy(url + 2049, "\""); /* 2048 characters */
    d = doc();
    accepted(d, model0(d), "source", url);
    strcpy(url + 2049, "a\""); /* 2049 */
    d = doc();
    refused(d, model0(d), "source", url, src);
    d = doc();
    refused(d, model0(d), "read_on", "\"yesterday\"",
            "models[0] (claude-x) needs read_on, the date its source was read (YYYY-MM-DD)");
}

Test(cp_catalog, no_model_is_listed_twice_for_its_kind_and_vendor)
{
    json_t *d = doc();
    json_t *models = json_object_get(d, "models");
    json_array_append_new(models, json_deep_copy(json_array_get(models, 1)));
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), -1);
    cr_assert_str_eq(msg, "models list openai/fireworks/m twice");
    json_decref(d);
    /* the same name under another vendor is another entry */
    d = doc();
    models = json_object_get(d, "models");
    json_object_set_new(json_object_get(d, "vendors"), "other",
                        js("{\"kind\":\"openai\",\"hosts\":[\"h\"]}"));
    json_t *copy = json_deep_copy(json_array_get(models, 1));
    json_object_set_new(copy, "vendor", json_string("other"));
    json_array_append_new(models, copy);
    cr_assert_eq(cp_catalog_check(d, msg, sizeof(msg)), 0, "%s", msg);
    json_decref(d);
}

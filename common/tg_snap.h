/* tg_snap.h: the config snapshot both planes agree on (docs/snapshot.md): tenants, virtual keys,
 * providers, routes and prices. A snapshot is parsed and validated completely, then immutable and
 * shared between threads by reference count; readers take no lock. */
#ifndef TG_SNAP_H
#define TG_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_err.h"
#include "tg_hash.h"

enum tg_provider_kind {
    TG_PROVIDER_OPENAI = 1, /* OpenAI and every OpenAI-compatible server, by base URL */
    TG_PROVIDER_AZURE,      /* Azure OpenAI: deployments, api-version, api-key header */
    TG_PROVIDER_ANTHROPIC,  /* Anthropic Messages API */
    TG_PROVIDER_GEMINI,     /* Google Gemini generateContent */
    TG_PROVIDER_BEDROCK,    /* AWS Bedrock Converse, SigV4-signed */
};

/* "openai", "azure", ... -> TG_PROVIDER_*; 0 when unknown. And back. */
int tg_provider_kind_parse(const char *s);
const char *tg_provider_kind_name(int kind);

typedef struct tg_provider {
    char *id;
    int kind;
    char *base_url; /* http(s)://..., no trailing slash, e.g. https://api.openai.com/v1 */
    char *api_key;  /* NULL when the upstream needs none (a local vLLM, say) */
    char **headers; /* extra upstream headers as "Name: value" */
    size_t nheaders;
    char *api_version; /* azure: the api-version query; anthropic: anthropic-version; or NULL */
    char *region;      /* bedrock: the AWS region the requests are signed for */
    char *aws_access_key_id, *aws_secret_access_key, *aws_session_token; /* bedrock; or NULL */
    /* openai, azure: "responses_api": "chat" says the server speaks only chat completions, so
     * /v1/responses reaches it translated to chat; absent or "native": relayed to its
     * /responses (docs/responses.md). Other kinds always translate. */
    bool responses_via_chat;
    /* openai, azure: "responses_api": "responses" says the model serves only the Responses API,
     * so chat completions and /v1/messages reach its /responses translated (and /v1/responses is
     * relayed as with "native"). */
    bool chat_via_responses;
} tg_provider_t;

/* Prices in picodollars (1e-12 USD) per token, so that cost is exact integer arithmetic. The
 * cache-write and reasoning prices come from the model catalog; a snapshot without them (an
 * admin's price, or a control plane before 0009) gets the input price for cache writes and the
 * output price for reasoning, which is how such tokens were billed before. */
#define TG_PRICE_TIERS_MAX 4

/* A long-context tier (docs/snapshot.md): a request whose input tokens, cache reads and writes
 * included, number more than above_input_tokens is priced at these rates for all its tokens (the
 * rule of Anthropic, Gemini and xAI: "prompts longer than 200k tokens"). */
typedef struct tg_price_tier {
    int64_t above_input_tokens;
    int64_t input, cached_input, output, cache_write, cache_write_1h, reasoning;
} tg_price_tier_t;

typedef struct tg_price {
    int64_t input;
    int64_t cached_input;
    int64_t output;
    int64_t cache_write;    /* a 5-minute cache write (Anthropic) */
    int64_t cache_write_1h; /* a 1-hour cache write */
    int64_t reasoning;      /* reasoning tokens, where billed apart from output */
    bool set;
    uint32_t ntiers; /* long-context tiers, ascending */
    tg_price_tier_t tiers[TG_PRICE_TIERS_MAX];
} tg_price_t;

/* Capabilities of a model, as bits of tg_model_info_t. */
enum {
    TG_CAP_TOOLS = 1 << 0,
    TG_CAP_PARALLEL_TOOL_CALLS = 1 << 1,
    TG_CAP_VISION = 1 << 2,
    TG_CAP_JSON_SCHEMA = 1 << 3,
    TG_CAP_REASONING = 1 << 4,
    TG_CAP_STREAMING_USAGE = 1 << 5,
    TG_NCAPS = 6
};
/* "tools", "vision", ... by bit index (0 .. TG_NCAPS-1), as the catalog and snapshot name them. */
extern const char *const tg_cap_names[TG_NCAPS];

/* What a target's model can take (its "info" in the snapshot: the catalog's, or an admin's
 * override). What the snapshot leaves out is unknown, and routing does not filter on it. */
typedef struct tg_model_info {
    int64_t context_window;    /* tokens, prompt and output together; 0 = unknown */
    int64_t max_output_tokens; /* 0 = unknown */
    uint32_t caps_known;       /* TG_CAP_* the info states, true or false */
    uint32_t caps;             /* of them, those the model has */
} tg_model_info_t;

typedef struct tg_target {
    const tg_provider_t *provider; /* borrowed from the same snapshot */
    char *model;                   /* the provider's model name */
    uint32_t weight;
    tg_price_t price;
    tg_model_info_t info;
} tg_target_t;

enum tg_strategy {
    TG_STRATEGY_WEIGHTED = 0,   /* random in proportion to the weights */
    TG_STRATEGY_LEAST_BUSY,     /* fewest requests in flight on this data plane */
    TG_STRATEGY_LOWEST_LATENCY, /* lowest moving average of time to first byte */
    TG_STRATEGY_CHEAPEST        /* lowest estimated cost of this request; the rest by cost */
};

#define TG_RETRY_STATUS_MAX 32

/* What a failed attempt does next (docs/routing.md). */
typedef struct tg_retry {
    uint32_t max_attempts; /* attempts per target, the first included; 1-10, default 2 */
    uint32_t backoff_ms;   /* base of the exponential backoff with full jitter; default 200 */
    uint16_t on_status[TG_RETRY_STATUS_MAX]; /* statuses that retry, sorted */
    size_t non_status;
} tg_retry_t;

typedef struct tg_route {
    char *alias;          /* the model name clients send */
    tg_target_t *targets; /* in fallback order */
    size_t ntargets;
    int strategy; /* TG_STRATEGY_*: picks the first target; the others follow in order */
    tg_retry_t retry;
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms; /* request sent to the first byte of the answer; 0 = none */
    uint32_t idle_timeout_ms;       /* longest pause between bytes of an answer; 0 = none */
    uint32_t timeout_ms;            /* one attempt, streams included */
    uint32_t cache_ttl_s;           /* exact-match response cache; 0 = off */
    /* Whether a request may go to a target without a price (no admin price, no catalog entry)
     * when its key or tenant has a budget: off by default, so that a budget never silently lets
     * free traffic through (docs/catalog.md). Without a budget unpriced traffic always passes. */
    bool allow_unpriced;
} tg_route_t;

/* Whether an upstream status retries under this policy. */
bool tg_retry_on_status(const tg_retry_t *r, int status);

enum tg_period { TG_PERIOD_DAILY = 0, TG_PERIOD_MONTHLY, TG_PERIOD_TOTAL, TG_NPERIODS };

/* Rate limits and budgets of one key or tenant. The spend is the control plane's as of the
 * snapshot's spend_as_of; the data plane keeps fresher figures in its ledger
 * (dataplane/ledger.c), found by the key's or tenant's id: the snapshot is never written. */
typedef struct tg_limits {
    uint32_t rpm;                      /* requests per minute, 0 = none */
    uint32_t tpm;                      /* tokens per minute, 0 = none */
    int64_t budget_pusd[TG_NPERIODS];  /* -1 = no budget for the period */
    int64_t spent_pusd[TG_NPERIODS];   /* spend of the period starting spent_period */
    int32_t spent_period[TG_NPERIODS]; /* that period's first day, YYYYMMDD */
} tg_limits_t;

typedef struct tg_tenant {
    char *id;
    char *name;
    tg_limits_t lim;
} tg_tenant_t;

typedef struct tg_key {
    char *id;
    const tg_tenant_t *tenant; /* borrowed from the same snapshot */
    uint8_t hash[TG_SHA256_LEN];
    const tg_route_t **routes; /* the aliases this key may use */
    size_t nroutes;
    int64_t expires_at; /* unix seconds; 0 = never */
    tg_limits_t lim;
} tg_key_t;

typedef struct tg_snap {
    atomic_long refs;
    int64_t version;
    int64_t spend_as_of; /* unix ms when the control plane read the budgets' spend; 0 = none */
    tg_tenant_t *tenants;
    size_t ntenants;
    tg_provider_t *providers;
    size_t nproviders;
    tg_route_t *routes;
    size_t nroutes;
    tg_key_t *keys;
    size_t nkeys;
    uint32_t *key_slots; /* open addressing: index + 1 into keys, 0 = empty */
    size_t key_mask;
    uint32_t *route_slots;
    size_t route_mask;
} tg_snap_t;

/* Parses and validates a snapshot document. On success *out holds one reference. On failure
 * err says which field is wrong and why (status 400) and nothing is allocated. */
int tg_snap_parse(const char *json, size_t len, tg_snap_t **out, tg_err_t *err) TG_WUR;
/* Reads and parses a file (blocking I/O: never on a loop thread). */
int tg_snap_load_file(const char *path, tg_snap_t **out, tg_err_t *err) TG_WUR;
tg_snap_t *tg_snap_ref(tg_snap_t *s);
/* Drops a reference; the last one frees the snapshot. NULL-safe. */
void tg_snap_unref(tg_snap_t *s);

const tg_key_t *tg_snap_find_key(const tg_snap_t *s, const uint8_t hash[TG_SHA256_LEN]);
const tg_route_t *tg_snap_find_route(const tg_snap_t *s, const char *alias, size_t len);
bool tg_key_allows(const tg_key_t *k, const tg_route_t *r);

/* Whether "name: value" may be sent upstream as a provider's extra header: name an RFC 9110
 * token and not one the data plane sets or that carries a credential, value without control
 * characters other than tab. The control plane leaves out providers this refuses. */
bool tg_snap_header_ok(const char *name, const char *value);
/* True when s[0..n) is 1 to max characters of A-Z a-z 0-9 and the punctuation in also: the ids
 * the planes exchange (a stored response's or item's: "_-", at most 128). */
bool tg_snap_id_ok(const char *s, size_t n, size_t max, const char *also);
/* True when s[0..n) is 1 to max characters of A-Z a-z 0-9 . _ -: a data plane's id and version as
 * it names itself to the control plane (X-Tollgate-Dataplane, X-Tollgate-Version). */
bool tg_snap_dataplane_name_ok(const char *s, size_t n, size_t max);
/* "YYYY-MM-DD" (1970 on, a day its month has) -> YYYYMMDD; -1 if it is not a date. */
int32_t tg_date_parse(const char *s);
/* The first day (YYYYMMDD) of the period that contains unix time t (UTC calendar). */
int32_t tg_period_start(int period, int64_t unix_s);
/* "daily", "monthly", "total" -> TG_PERIOD_*; -1 otherwise. */
int tg_period_parse(const char *s);
/* USD -> picodollars, rounded; false when negative, not a number or above 9e6 USD. */
bool tg_usd_to_pusd(double usd, int64_t *out);

/* A provider's usage as the price rules need it. Every count is a part of prompt or completion:
 * prompt = uncached input + cached (cache reads) + cache_write (5-minute writes) +
 * cache_write_1h; completion = visible output + reasoning. */
typedef struct tg_cost_usage {
    int64_t prompt, cached, cache_write, cache_write_1h;
    int64_t completion, reasoning;
} tg_cost_usage_t;

/* Cost in picodollars of a usage under a price, every rule applied: the long-context tier that
 * prompt reaches prices the whole request; cache reads, 5-minute and 1-hour cache writes and
 * reasoning tokens at their own rates; the rest at input and output. A part larger than what is
 * left of its whole counts only what is left. 0 when the price is not set (unpriced); saturates at
 * INT64_MAX. */
int64_t tg_price_usage_cost(const tg_price_t *p, const tg_cost_usage_t *u);
/* The same for prompt, cached and completion tokens alone. */
int64_t tg_price_cost(const tg_price_t *p, int64_t prompt, int64_t cached, int64_t completion);

#endif

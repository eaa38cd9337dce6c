/* usage.h: token usage read from provider answers, and the usage record each finished request
 * produces (one NDJSON line). Pure. */
#ifndef DP_USAGE_H
#define DP_USAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tg_buf.h"

typedef struct dp_usage {
    int64_t prompt;
    int64_t completion;
    int64_t cached;    /* part of prompt: prompt_tokens_details.cached_tokens */
    int64_t reasoning; /* part of completion: completion_tokens_details.reasoning_tokens */
    int64_t total;
    int64_t cache_write;    /* part of prompt: tokens written to a 5-minute prompt cache */
    int64_t cache_write_1h; /* part of prompt: tokens written to a 1-hour prompt cache */
    bool present;           /* the provider reported it */
} dp_usage_t;

/* Reads an OpenAI usage object; missing members count 0. Returns false if obj is no object. */
bool dp_usage_from_json(dp_usage_t *u, const json_t *obj);
/* Reads an OpenAI usage object from its bytes (a span the scanner found), as dp_usage_from_json
 * does from a tree. */
bool dp_usage_from_span(dp_usage_t *u, const char *obj, size_t n);
/* Finds the top-level "usage" object of an OpenAI response body and reads it with the scanner
 * (tg_jscan.h): no tree, and a "usage" nested or inside a string is not taken for it. False when
 * the body is not JSON or has no usage object. */
bool dp_usage_scan(dp_usage_t *u, const char *body, size_t n);

typedef struct dp_usage_record {
    char id[37]; /* UUID of this event: delivery is at least once, inserts are idempotent */
    int64_t ts_ms;
    const char *request_id;
    size_t request_id_len;
    const char *key_id;
    const char *tenant_id;
    const char *model; /* the alias the client asked for */
    size_t model_len;
    const char *provider;
    const char *upstream_model;
    const char *endpoint; /* "chat.completions", "completions", "embeddings" */
    int status;
    bool streamed;
    dp_usage_t usage;
    const char *usage_source; /* "provider", "estimated" or "none" */
    int64_t cost_pusd;        /* picodollars */
    bool unpriced;            /* the target had no price: cost_pusd is 0 for want of one */
    double latency_ms;
    double ttfb_ms;    /* < 0 when no byte came back */
    const char *error; /* error code, or NULL */
} dp_usage_record_t;

/* Appends the record as one JSON line ending in "\n"; on failure out is unchanged. */
int dp_usage_record_append(tg_buf_t *out, const dp_usage_record_t *r) TG_WUR;

/* What the usage shipper reads back from a line this data plane wrote. */
typedef struct dp_usage_line {
    char id[37];
    char key_id[64];    /* "" when null */
    char tenant_id[64]; /* "" when null */
    int64_t cost_pusd;
} dp_usage_line_t;

/* Parses a non-negative decimal with at most 12 fractional digits ("0.000020000000") into
 * picodollars, exactly (no floating point). TG_EINVAL if malformed or out of range. */
int dp_usage_parse_cost(const char *s, size_t n, int64_t *pusd) TG_WUR;
/* Reads id, key_id, tenant_id and cost_usd from one usage line (with or without its "\n").
 * TG_EINVAL when the line is not an object with a UUID-length id and a valid cost_usd. */
int dp_usage_line_parse(const char *line, size_t n, dp_usage_line_t *out) TG_WUR;

#endif

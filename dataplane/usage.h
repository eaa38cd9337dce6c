/* usage.h: token usage read from provider answers, put into the usage event each finished
 * request produces (tg_usage_event.h writes it), and the fields the shipper reads back. Pure. */
#ifndef DP_USAGE_H
#define DP_USAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tg_buf.h"
#include "tg_usage_event.h"

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

/* Copies u's counts into the token fields of a usage event (the event's format has one home:
 * tg_usage_event.h, whose writer both planes read back). */
void dp_usage_to_event(tg_usage_record_t *e, const dp_usage_t *u);

/* What the usage shipper reads back from a line this data plane wrote. */
typedef struct dp_usage_line {
    char id[37];
    char key_id[64];    /* "" when null */
    char tenant_id[64]; /* "" when null */
    int64_t cost_pusd;
} dp_usage_line_t;

/* Reads id, key_id, tenant_id and cost_usd from one usage line (with or without its "\n").
 * TG_EINVAL when the line is not an object with a UUID-length id and a valid cost_usd. */
int dp_usage_line_parse(const char *line, size_t n, dp_usage_line_t *out) TG_WUR;

#endif

/* tg_usage_event.h: the usage event, one NDJSON line per finished request, in one place for both
 * planes: the data plane writes it (tg_usage_event_append) and reads its own spooled lines back
 * (tg_usage_event_scan); the control plane checks and ingests it (tg_usage_event_parse). The wire
 * format is docs/usage.md's; the field table below is its list. Pure; any thread. */
#ifndef TG_USAGE_EVENT_H
#define TG_USAGE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_buf.h"
#include "tg_err.h"

#define TG_USAGE_TEXT_MAX 512               /* bytes of a text field (model, error, ...) */
#define TG_USAGE_TOKENS_MAX 1000000000000LL /* per event; keeps every sum far from bigint's end */
#define TG_USAGE_FUTURE_MAX_S 86400         /* clock skew tolerated between the planes */
#define TG_USAGE_COST_MAX 1000000.0 /* USD per event; usage_events.cost_usd is numeric(20,12) */
#define TG_USAGE_JSON_DEPTH 16      /* nesting allowed inside fields nobody reads */

/* ---- what the writer writes ---- */

typedef struct tg_usage_record {
    char id[37]; /* UUID of this event: delivery is at least once, inserts are idempotent */
    int64_t ts_ms;
    const char *request_id; /* the strings are borrowed; NULL is written as null */
    size_t request_id_len;
    const char *key_id;
    const char *tenant_id;
    const char *model; /* the alias the client asked for */
    size_t model_len;
    const char *provider;
    const char *upstream_model;
    const char *endpoint; /* "chat.completions", "completions", "embeddings", "messages",
                           * "responses" */
    int status;
    bool streamed;
    int64_t prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, total_tokens;
    const char *usage_source; /* "provider", "estimated" or "none" */
    int64_t cost_pusd;        /* picodollars, written as an exact decimal of USD */
    double latency_ms;
    double ttfb_ms;    /* < 0 when no byte came back: written as null */
    const char *error; /* error code, or NULL */
} tg_usage_record_t;

/* Appends the event as one JSON line ending in "\n" (no printf: the data plane writes one per
 * request on its loop); on failure out is unchanged. */
int tg_usage_event_append(tg_buf_t *out, const tg_usage_record_t *r) TG_WUR;

/* ---- what the reader reads ---- */

/* ---- the event's fields ---- */

enum tg_usage_field {
    TG_UF_ID,
    TG_UF_TS,
    TG_UF_REQUEST_ID,
    TG_UF_KEY_ID,
    TG_UF_TENANT_ID,
    TG_UF_MODEL,
    TG_UF_PROVIDER,
    TG_UF_UPSTREAM_MODEL,
    TG_UF_ENDPOINT,
    TG_UF_STATUS,
    TG_UF_STREAMED,
    TG_UF_PROMPT_TOKENS,
    TG_UF_COMPLETION_TOKENS,
    TG_UF_CACHED_TOKENS,
    TG_UF_REASONING_TOKENS,
    TG_UF_TOTAL_TOKENS,
    TG_UF_USAGE_SOURCE,
    TG_UF_COST_USD,
    TG_UF_LATENCY_MS,
    TG_UF_TTFB_MS,
    TG_UF_ERROR,
    TG_UF_COUNT,
};

extern const char *const tg_usage_field_names[TG_UF_COUNT];

enum tg_usage_vtype {
    TG_UV_ABSENT = 0,
    TG_UV_NULL,
    TG_UV_STRING,
    TG_UV_NUMBER,
    TG_UV_TRUE,
    TG_UV_FALSE,
    TG_UV_OTHER
};

/* One value of the line being read. Strings: p/n are the bytes between the quotes (borrowed from
 * the body) until a text field is decoded into the scratch buffer (decoded = true). */
typedef struct tg_usage_val {
    enum tg_usage_vtype type;
    const char *p;
    size_t n;
    bool esc;     /* the raw string holds backslash escapes */
    bool nul;     /* it decodes to a string with a NUL byte */
    bool decoded; /* p/n now hold the decoded bytes (scratch), which COPY must escape */
} tg_usage_val_t;

/* One event as read: each field's value (borrowed from the line, or from scratch once decoded),
 * and after tg_usage_event_parse the checked values normalized as the control plane's COPY row
 * needs them. */
typedef struct tg_usage_event {
    tg_usage_val_t v[TG_UF_COUNT];
    char ts[40]; /* normalized RFC 3339 */
    size_t ts_len;
    char id[37], key_id[37], tenant_id[37];
    char cost[64]; /* cost_usd as COPY will read it */
    char latency[40], ttfb[40];
} tg_usage_event_t;

/* Reads one line (with or without its newline): JSON syntax, the fields known, a known field
 * twice refused. 0, or -1 with msg saying why (field names and fixed words, never the input). */
int tg_usage_event_scan(const char *line, size_t n, tg_usage_event_t *e, char *msg, size_t msgn);
/* Scans and checks every field as the control plane stores it: id a UUID, ts RFC 3339 and at most
 * TG_USAGE_FUTURE_MAX_S after now_s, key_id/tenant_id UUIDs or null, status 0..999, token counts
 * 0..TG_USAGE_TOKENS_MAX, streamed a boolean, cost_usd 0..TG_USAGE_COST_MAX, latencies numbers,
 * text fields strings without NUL of at most TG_USAGE_TEXT_MAX bytes. Escaped text is decoded into
 * scratch (room for n bytes). 0, or -1 with msg. */
int tg_usage_event_parse(const char *line, size_t n, int64_t now_s, char *scratch,
                         tg_usage_event_t *e, char *msg, size_t msgn);
/* A string field decoded into out[cap] (NUL-terminated): its length, or -1 when it is no string
 * or does not fit. */
int tg_usage_event_str(const tg_usage_event_t *e, enum tg_usage_field f, char *out, size_t cap);
/* Parses a non-negative decimal with at most 12 fractional digits ("0.000020000000") into
 * picodollars, exactly (no floating point). TG_EINVAL if malformed or out of range. */
int tg_usage_parse_cost(const char *s, size_t n, int64_t *pusd) TG_WUR;
/* 8-4-4-4-12 hex digits. */
bool tg_usage_is_uuid(const char *s);

#endif

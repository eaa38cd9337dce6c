/* ledger.h: this data plane's view of spend and rate limits, shared by every worker loop and
 * the usage shipper: spend per budget as the control plane last reported it, spend recorded
 * here but not yet acknowledged, the worst-case cost of requests in flight, and a token bucket
 * per rate-limited key and tenant holding this data plane's share. docs/usage.md. */
#ifndef DP_LEDGER_H
#define DP_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_err.h"
#include "tg_snap.h"

/* Completion tokens assumed for the worst-case cost of a request without max_tokens. */
#define DP_WORST_COMPLETION_TOKENS 4096

/* A request's worst-case cost and what it is made of, for admission and its refusal message. */
typedef struct dp_worst {
    int64_t pusd;              /* at the dearest target the request may reach */
    int64_t prompt_tokens;     /* one per body byte */
    int64_t completion_tokens; /* max_tokens, DP_WORST_COMPLETION_TOKENS without it, 0 for
                                * embeddings */
    bool default_completion;   /* no max_tokens was sent */
} dp_worst_t;

/* A rate limit's state as admission saw it, for the response's x-ratelimit-* lines. */
typedef struct dp_rate_view {
    uint64_t limit; /* per minute; 0 when no limit applies in this dimension */
    uint64_t remaining;
    double reset_s; /* until the bucket is full again */
} dp_rate_view_t;

/* What an admitted request holds until it finishes. */
typedef struct dp_admit {
    int64_t worst_pusd; /* counted as in flight against the key's and tenant's budgets */
    int64_t est_tokens; /* taken from the token buckets, corrected by actual usage at the end */
    bool held;
    dp_rate_view_t requests, tokens; /* the binding scope's, per dimension */
} dp_admit_t;

/* a's x-ratelimit-* lines, as OpenAI writes them, into out (cap bytes, NUL-terminated); their
 * length, 0 when no limit applies. A line that does not fit is left out. Any thread. */
size_t dp_admit_headers(const dp_admit_t *a, char *out, size_t cap);

/* Makes the ledger entry of every limited key and tenant of s (on first sight, kept for the
 * process's life) and takes the snapshot's spend where it is newer than what the ledger has.
 * Reads s only. Before s is shared with the loops. */
void dp_ledger_bind(const tg_snap_t *s);

/* Whether l sets a budget in any period. Any thread. */
bool dp_ledger_has_budget(const tg_limits_t *l);

/* Admission: rate limits (requests, then tokens) and budgets of the key and its tenant. On
 * success *a holds what must be given back through dp_ledger_finish. On refusal err is a 429
 * saying which limit and why, and retry_after (>= 16 bytes) the seconds to wait ("" if waiting
 * cannot help). Any loop thread. */
int dp_ledger_admit(const tg_key_t *k, const dp_worst_t *worst, int64_t est_tokens, dp_admit_t *a,
                    tg_err_t *err, char *retry_after, size_t ra_len) TG_WUR;
/* A request of key k ended with a recorded cost: releases what it held and counts the cost as
 * unacknowledged spend. Called once for every recorded request that has a key. */
void dp_ledger_finish(const tg_key_t *k, dp_admit_t *a, int64_t cost_pusd, int64_t tokens);

/* An event this process recorded, as the shipper reads it back; ids may be NULL. */
typedef struct dp_ledger_event {
    const char *key_id;
    const char *tenant_id;
    int64_t cost_pusd;
} dp_ledger_event_t;

/* Applies the answer of POST /dp/v1/usage to a batch: the costs of ev[0..n) (the events of the
 * batch this process recorded, acknowledged or rejected) leave the unacknowledged sums, and the
 * answer's spend per budget and live data planes come in. Each scope changes in one critical
 * section, so no admission ever sees a cost that is neither unacknowledged nor in the spend.
 * answer may be NULL (nothing but the costs). Shipper thread. */
void dp_ledger_ack(const dp_ledger_event_t *ev, size_t n, const json_t *answer);
/* Data planes sharing the rate limits (from the control plane; 1 until it says). */
int dp_ledger_live_dataplanes(void);
/* Frees every entry. At exit, after the loops and the shipper stopped. */
void dp_ledger_shutdown(void);

#endif

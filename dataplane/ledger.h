/* ledger.h: this data plane's view of spend and rate limits, shared by every worker loop and
 * the usage shipper: spend per budget as the control plane last reported it, spend recorded
 * here but not yet acknowledged, the worst-case cost of requests in flight, and a token bucket
 * per rate-limited key and tenant holding this data plane's share. docs/usage.md. */
#ifndef DP_LEDGER_H
#define DP_LEDGER_H

#include <jansson.h>
#include <stdint.h>

/* Applies the answer of POST /dp/v1/usage (spend per budget, live data planes). Shipper thread. */
void dp_ledger_apply_ack(const json_t *answer);
/* One event recorded by this process was acknowledged: its cost is now in the control plane's
 * spend and leaves the unacknowledged sums. Shipper thread; ids may be NULL. */
void dp_ledger_acked(const char *key_id, const char *tenant_id, int64_t cost_pusd);

#endif

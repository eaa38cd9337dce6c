/* ledger.c: see ledger.h. */
#include "ledger.h"

#include "tg_banned.h"

void dp_ledger_apply_ack(const json_t *answer)
{
    (void)answer;
}

void dp_ledger_acked(const char *key_id, const char *tenant_id, int64_t cost_pusd)
{
    (void)key_id;
    (void)tenant_id;
    (void)cost_pusd;
}

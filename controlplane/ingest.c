/* ingest.c: POST /dp/v1/usage, usage events from data planes (docs/usage.md). */
#include "api/api.h"
#include "cp_http.h"

#include "tg_banned.h"

void cp_dp_usage(cp_req_t *r)
{
    cp_reply_error(r, 501, "not_implemented", NULL, "usage ingestion is not implemented yet");
}

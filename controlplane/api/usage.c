/* usage.c: GET /api/v1/usage, totals and time series from the hourly rollups. */
#include "api.h"
#include "cp_http.h"

#include "tg_banned.h"

void cp_api_usage_get(cp_req_t *r)
{
    cp_reply_error(r, 501, "not_implemented", NULL, "usage reports are not implemented yet");
}

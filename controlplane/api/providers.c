/* providers.c: not built yet; every endpoint answers 501. */
#include "api.h"

#include "tg_banned.h"

static void not_yet(cp_req_t *r)
{
    cp_reply_error(r, 501, "not_implemented", NULL, "this endpoint is not implemented yet");
}

void cp_api_providers_list(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_providers_create(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_providers_get(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_providers_update(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_providers_delete(cp_req_t *r)
{
    not_yet(r);
}

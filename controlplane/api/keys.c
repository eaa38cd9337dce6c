/* keys.c: not built yet; every endpoint answers 501. */
#include "api.h"

#include "tg_banned.h"

static void not_yet(cp_req_t *r)
{
    cp_reply_error(r, 501, "not_implemented", NULL, "this endpoint is not implemented yet");
}

void cp_api_keys_list(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_create(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_get(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_update(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_delete(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_rotate(cp_req_t *r)
{
    not_yet(r);
}

void cp_api_keys_revoke(cp_req_t *r)
{
    not_yet(r);
}

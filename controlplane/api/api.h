/* api.h: the API handlers, one file per resource. Each checks the caller's role itself. */
#ifndef CP_API_H
#define CP_API_H

#include "cp.h"

void cp_api_healthz(cp_req_t *r);
void cp_api_readyz(cp_req_t *r);
void cp_api_metrics(cp_req_t *r);

/* session.c */
void cp_api_login(cp_req_t *r);
void cp_api_logout(cp_req_t *r);
void cp_api_me(cp_req_t *r);

/* tenants.c */
void cp_api_tenants_list(cp_req_t *r);
void cp_api_tenants_create(cp_req_t *r);
void cp_api_tenants_get(cp_req_t *r);
void cp_api_tenants_update(cp_req_t *r);
void cp_api_tenants_delete(cp_req_t *r);

/* audit_log.c */
void cp_api_audit_list(cp_req_t *r);
void cp_api_audit_verify(cp_req_t *r);

/* Bumps the config version inside the current transaction (data planes see the change). */
int cp_config_bump(cp_req_t *r);

#endif

/* api.h: the API handlers, one file per resource. Each checks the caller's role itself. */
#ifndef CP_API_H
#define CP_API_H

#include "cp.h"
#include "handler.h"

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

/* users.c */
void cp_api_users_list(cp_req_t *r);
void cp_api_users_create(cp_req_t *r);
void cp_api_users_get(cp_req_t *r);
void cp_api_users_update(cp_req_t *r);
void cp_api_users_delete(cp_req_t *r);
void cp_api_members_list(cp_req_t *r);
void cp_api_members_put(cp_req_t *r);
void cp_api_members_delete(cp_req_t *r);

/* tokens.c */
void cp_api_tokens_list(cp_req_t *r);
void cp_api_tokens_create(cp_req_t *r);
void cp_api_tokens_revoke(cp_req_t *r);

/* keys.c */
void cp_api_keys_list(cp_req_t *r);
void cp_api_keys_create(cp_req_t *r);
void cp_api_keys_get(cp_req_t *r);
void cp_api_keys_update(cp_req_t *r);
void cp_api_keys_delete(cp_req_t *r);
void cp_api_keys_rotate(cp_req_t *r);
void cp_api_keys_revoke(cp_req_t *r);

/* budgets.c */
void cp_api_budgets_list(cp_req_t *r);
void cp_api_budgets_create(cp_req_t *r);
void cp_api_budgets_get(cp_req_t *r);
void cp_api_budgets_update(cp_req_t *r);
void cp_api_budgets_delete(cp_req_t *r);

/* providers.c */
void cp_api_providers_list(cp_req_t *r);
void cp_api_providers_create(cp_req_t *r);
void cp_api_providers_get(cp_req_t *r);
void cp_api_providers_update(cp_req_t *r);
void cp_api_providers_delete(cp_req_t *r);

/* routes.c */
void cp_api_routes_list(cp_req_t *r);
void cp_api_routes_create(cp_req_t *r);
void cp_api_routes_get(cp_req_t *r);
void cp_api_routes_update(cp_req_t *r);
void cp_api_routes_delete(cp_req_t *r);

/* catalog.c */
void cp_api_catalog_get(cp_req_t *r);
void cp_api_route_prices(cp_req_t *r);
/* prices.c */
void cp_api_prices_list(cp_req_t *r);
void cp_api_prices_put(cp_req_t *r);
void cp_api_prices_delete(cp_req_t *r);

/* sync.c: GET /dp/v1/snapshot?after=N, the data planes' long poll */
void cp_dp_snapshot(cp_req_t *r);
/* Whether the request carries the data-plane token (constant time); the /dp/v1 handlers' check. */
bool cp__dp_token_ok(cp_req_t *r);
/* Records the calling data plane (X-Tollgate-Dataplane, X-Tollgate-Version) and its last_seen;
 * snapshot_version < 0 keeps the recorded one. Needs r->db; failures are logged only. */
void cp__dp_register(cp_req_t *r, long long snapshot_version);
/* GET /api/v1/dataplanes: the data planes that polled, with last contact (platform admins) */
void cp_api_dataplanes_list(cp_req_t *r);

/* ingest.c: POST /dp/v1/usage (docs/usage.md) */
void cp_dp_usage(cp_req_t *r);
/* Stored responses (rstore.c, docs/api.md): a data plane ships a batch, fetches one by id or by
 * one of its items' ids, deletes one; all scoped by ?tenant=. */
void cp_dp_responses_ship(cp_req_t *r);
void cp_dp_responses_get(cp_req_t *r);
void cp_dp_responses_item(cp_req_t *r);
void cp_dp_responses_delete(cp_req_t *r);
/* Appends the ingestion counters (Prometheus text) for GET /metrics. */
int cp_ingest_metrics(tg_buf_t *out);

/* usage.c: GET /api/v1/usage */
void cp_api_usage_get(cp_req_t *r);
/* recommend.c: GET /api/v1/usage/recommendations */
void cp_api_usage_recommendations(cp_req_t *r);
/* Query helpers shared by the reports (usage.c, requests.c); each returns -1 after replying 400
 * invalid_query naming the parameter. cp__query_check refuses a parameter not in known (NULL-
 * terminated, at most 32; list names them for the message), one given twice or without a value.
 * cp__query_time reads RFC 3339 into unix seconds (*given: present). cp__query_uuid leaves *out
 * NULL when absent. cp__query_tenant: the caller reads tenant_id (viewer+), which exists; else
 * 404 like a random id. */
int cp__query_check(cp_req_t *r, const char *const *known, const char *list);
int cp__query_time(cp_req_t *r, const char *name, bool round_up, int64_t *t, bool *given);
int cp__query_uuid(cp_req_t *r, const char *name, const char **out);
int cp__query_tenant(cp_req_t *r, const char *tenant_id);

/* requests.c: GET /api/v1/requests, the request log */
void cp_api_requests_list(cp_req_t *r);

#endif

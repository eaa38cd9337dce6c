/* catalog.c: /api/v1/catalog (the model catalog in effect) and /api/v1/routes/{id}/prices (each
 * target's effective price and where it comes from: "admin", "catalog" or "none"). Platform-wide
 * config: any signed-in user reads it, as with routes and prices. Amounts come from Postgres as
 * exact decimals. Runs on MHD worker threads. */
#include <string.h>

#include "api.h"

#include "tg_banned.h"

void cp_api_catalog_get(cp_req_t *r)
{
    PGresult *res =
        cp_db_exec(r->db,
                   "SELECT json_build_object('version', c.version, 'generated_on', c.generated_on, "
                   "'origin', c.origin, 'sha256', c.sha256, 'stored_at', c.stored_at, 'models', "
                   "jsonb_array_length(c.doc->'models'))::text FROM catalog_effective c",
                   0, NULL);
    if (cp_db_ok(res) && PQntuples(res) == 0) {
        PQclear(res);
        cp_reply_error(r, 404, "not_found", NULL, "no model catalog is stored");
        return;
    }
    cp_reply_json_row(r, res);
}

void cp_api_route_prices(cp_req_t *r)
{
    const char *id = r->params[0];
    if (!cp_is_uuid(id)) {
        cp_reply_error(r, 404, "not_found", NULL, "no such route");
        return;
    }
    const char *p[1] = {id};
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('route_id', ro.id, 'alias', ro.alias, 'allow_unpriced', "
        "ro.allow_unpriced, 'targets', "
        "(SELECT coalesce(json_agg(json_build_object('position', x.position, 'provider_id', "
        "x.provider_id, 'model', x.model, 'price_source', x.price_source, 'unpriced', "
        "x.price_source = 'none', 'input_per_mtok', "
        "trim_scale(x.input_per_mtok), 'cached_input_per_mtok', "
        "trim_scale(x.cached_input_per_mtok), 'output_per_mtok', trim_scale(x.output_per_mtok), "
        "'cache_write_per_mtok', trim_scale(x.cache_write_per_mtok), "
        "'cache_write_1h_per_mtok', trim_scale(x.cache_write_1h_per_mtok), "
        "'reasoning_per_mtok', trim_scale(x.reasoning_per_mtok)) ORDER BY x.position), '[]') "
        "FROM route_target_prices x WHERE x.route_id = ro.id))::text FROM routes ro WHERE "
        "ro.id = $1 AND ro.tenant_id IS NULL",
        1, p);
    if (cp_db_ok(res) && PQntuples(res) == 0) {
        PQclear(res);
        cp_reply_error(r, 404, "not_found", NULL, "no such route");
        return;
    }
    cp_reply_json_row(r, res);
}

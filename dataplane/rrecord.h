/* rrecord.h: reading a stored-response record (rstore.h: {"id","tenant","key","created_at",
 * "response":{...},"input_items":[...]}), as the data plane gets it back from its cache, its spool
 * or the control plane (GET /dp/v1/responses/{id}, GET /dp/v1/response-items/{id}). A record from
 * the control plane is input like any other: whatever its shape, these never crash and read only
 * what has the expected type. Pure: no I/O, any thread. */
#ifndef DP_RRECORD_H
#define DP_RRECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tg_err.h"

/* Whether s is an id the store takes: 1-128 of [A-Za-z0-9_-]. */
bool dp_rrecord_id_ok(const char *s, size_t n);

/* The ids of a record's items (input items, then the response's output items) that the store
 * takes (dp_rrecord_id_ok), each malloc'd, in *out (malloc'd, NULL when none); their count. Text
 * that is not a JSON object gives none. With rid, the record's own id is copied there when it
 * has one the store takes (rid is left as it is otherwise). */
size_t dp_rrecord_item_ids(const char *rec, size_t len, char ***out, char rid[129]);

/* The item of this id in a record (its input items, then its output items; borrowed from rec),
 * or NULL. */
json_t *dp_rrecord_item(json_t *rec, const char *id);

/* GET /v1/responses/{id}/input_items: OpenAI's list ({"object":"list","data",...,"first_id",
 * "last_id","has_more"}) over the record's input items, paged by the query of url (url_len bytes,
 * the request target): limit 1-100 (20), order asc or desc (desc), after and before an item id.
 * NULL with err set: a 400 naming the bad parameter, or 500 when out of memory. */
json_t *dp_rrecord_items_page(const json_t *rec, const char *url, size_t url_len, tg_err_t *err);

#endif

/* rrecord.c: see rrecord.h. */
#include "rrecord.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tg_buf.h"
#include "tg_snap.h"

#include "tg_banned.h"

bool dp_rrecord_id_ok(const char *s, size_t n)
{
    return tg_snap_id_ok(s, n, 128, "_-"); /* as the control plane checks them */
}

size_t dp_rrecord_item_ids(const char *rec, size_t len, char ***out, char rid[129])
{
    *out = NULL;
    json_t *o = json_loadb(rec, len, 0, NULL);
    const char *own = json_string_value(json_object_get(o, "id"));
    if (rid && own && strlen(own) < 129 && dp_rrecord_id_ok(own, strlen(own)))
        memcpy(rid, own, strlen(own) + 1);
    json_t *arrs[2] = {json_object_get(o, "input_items"),
                       json_object_get(json_object_get(o, "response"), "output")};
    size_t cap = json_array_size(arrs[0]) + json_array_size(arrs[1]), n = 0;
    char **ids = cap ? calloc(cap, sizeof(char *)) : NULL;
    for (int a = 0; ids && a < 2; a++) {
        size_t i;
        json_t *it;
        json_array_foreach(arrs[a], i, it)
        {
            const char *id = json_string_value(json_object_get(it, "id"));
            if (id && dp_rrecord_id_ok(id, strlen(id))) {
                ids[n] = strdup(id);
                if (ids[n])
                    n++;
            }
        }
    }
    json_decref(o);
    *out = ids;
    return n;
}

json_t *dp_rrecord_item(json_t *rec, const char *id)
{
    json_t *arrs[2] = {json_object_get(rec, "input_items"),
                       json_object_get(json_object_get(rec, "response"), "output")};
    for (int a = 0; a < 2; a++) {
        size_t i;
        json_t *it;
        json_array_foreach(arrs[a], i, it)
        {
            const char *s = json_string_value(json_object_get(it, "id"));
            if (s && strcmp(s, id) == 0)
                return it;
        }
    }
    return NULL;
}

/* The query string's value of name, or NULL (n gets its length). */
static const char *query(const char *u, size_t len, const char *name, size_t *n)
{
    const char *q = u ? memchr(u, '?', len) : NULL;
    if (!q)
        return NULL;
    const char *end = u + len;
    size_t nl = strlen(name);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            *n = (size_t)(e - p - (ptrdiff_t)nl - 1);
            return p + nl + 1;
        }
        p = e + 1;
    }
    return NULL;
}

static json_t *bad_param(tg_err_t *err, const char *param, const char *msg)
{
    tg_err_set(err, TG_EINVAL, 400, "%s", msg);
    err->param = param;
    return NULL;
}

json_t *dp_rrecord_items_page(const json_t *rec, const char *url, size_t url_len, tg_err_t *err)
{
    size_t n = 0;
    const char *v = query(url, url_len, "limit", &n);
    long limit = 20;
    if (v) {
        limit = 0;
        for (size_t i = 0; i < n && limit <= 100; i++)
            limit = v[i] >= '0' && v[i] <= '9' ? limit * 10 + (v[i] - '0') : 1000;
        if (n == 0 || limit < 1 || limit > 100)
            return bad_param(err, "limit", "limit must be an integer from 1 to 100");
    }
    bool asc = false;
    v = query(url, url_len, "order", &n);
    if (v) {
        if (n == 3 && memcmp(v, "asc", 3) == 0)
            asc = true;
        else if (!(n == 4 && memcmp(v, "desc", 4) == 0))
            return bad_param(err, "order", "order must be \"asc\" or \"desc\"");
    }
    size_t alen = 0, blen = 0;
    const char *after = query(url, url_len, "after", &alen);
    const char *before = query(url, url_len, "before", &blen);
    json_t *items = json_object_get(rec, "input_items");
    size_t total = json_array_size(items);
    /* positions in the requested order: [from, to) */
    size_t from = 0, to = total;
    for (size_t k = 0; k < total; k++) {
        json_t *it = json_array_get(items, asc ? k : total - 1 - k);
        const char *id = json_string_value(json_object_get(it, "id"));
        size_t il = id ? strlen(id) : 0;
        if (after && id && tg_mem_eq(id, il, after, alen))
            from = k + 1;
        if (before && id && tg_mem_eq(id, il, before, blen))
            to = k;
    }
    json_t *data = json_array();
    size_t k = from;
    for (; k < to && json_array_size(data) < (size_t)limit; k++)
        json_array_append(data, json_array_get(items, asc ? k : total - 1 - k));
    size_t shown = json_array_size(data);
    json_t *first = shown ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = shown ? json_object_get(json_array_get(data, shown - 1), "id") : NULL;
    json_t *out = json_pack("{s:s,s:o,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                            first ? first : json_null(), "last_id", last ? last : json_null(),
                            "has_more", k < to);
    if (!out)
        tg_err_set(err, TG_ENOMEM, 500, "could not build the answer");
    return out;
}

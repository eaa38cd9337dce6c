/* rstore_rec.c: see rstore_rec.h. */
#include "rstore_rec.h"

#include <stdio.h>
#include <string.h>

#include "tg_snap.h"
#include "tg_usage_event.h"

#include "tg_banned.h"

bool cp_rstore_id_ok(const char *s, size_t n)
{
    return tg_snap_id_ok(s, n, CP_RSTORE_ID_MAX, "_-");
}

bool cp_ship_next_line(const char *body, size_t len, size_t *pos, long long *lineno,
                       const char **line, size_t *n)
{
    while (*pos < len) {
        size_t start = *pos;
        const char *nl = memchr(body + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - body) : len;
        const char *l = body + start;
        size_t k = end - start;
        *pos = end + 1;
        (*lineno)++;
        while (k > 0 && (l[k - 1] == '\r' || l[k - 1] == ' '))
            k--;
        if (k == 0)
            continue;
        *line = l;
        *n = k;
        return true;
    }
    return false;
}

static bool is_uuid(const char *s)
{
    return s && tg_usage_is_uuid(s);
}

static int items_add(tg_buf_t *b, json_t *arr)
{
    size_t i;
    json_t *it;
    int rc = 0;
    json_array_foreach(arr, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        if (!id || !cp_rstore_id_ok(id, strlen(id)))
            continue;
        if (rc == 0 && b->len > 1)
            rc = tg_buf_append(b, ",", 1);
        if (rc == 0)
            rc = tg_buf_append(b, id, strlen(id));
    }
    return rc;
}

const char *cp_ship_read_record(json_t *o, cp_ship_rec_t *rec)
{
    if (!json_is_object(o))
        return "a record must be a JSON object";
    rec->id = json_string_value(json_object_get(o, "id"));
    rec->tenant = json_string_value(json_object_get(o, "tenant"));
    json_t *key = json_object_get(o, "key");
    json_t *created = json_object_get(o, "created_at");
    json_t *resp = json_object_get(o, "response");
    json_t *items = json_object_get(o, "input_items");
    if (!rec->id || !cp_rstore_id_ok(rec->id, strlen(rec->id)))
        return "\"id\" must be 1-128 letters, digits, '_' or '-'";
    if (!is_uuid(rec->tenant))
        return "\"tenant\" must be a uuid";
    if (key && !json_is_null(key) && (!json_is_string(key) || !is_uuid(json_string_value(key))))
        return "\"key\" must be a uuid or null";
    rec->key = json_is_string(key) ? json_string_value(key) : NULL;
    if (!json_is_integer(created) || json_integer_value(created) < 0 ||
        json_integer_value(created) > 32503680000LL)
        return "\"created_at\" must be unix seconds";
    snprintf(rec->created, sizeof(rec->created), "%lld", (long long)json_integer_value(created));
    if (!json_is_object(resp))
        return "\"response\" must be an object";
    if (!json_is_array(items))
        return "\"input_items\" must be an array";
    tg_buf_init(&rec->items, 1u << 20);
    if (tg_buf_append(&rec->items, "{", 1) != 0 || items_add(&rec->items, items) != 0 ||
        items_add(&rec->items, json_object_get(resp, "output")) != 0 ||
        tg_buf_append(&rec->items, "}\0", 2) != 0)
        return "too many items";
    return NULL;
}

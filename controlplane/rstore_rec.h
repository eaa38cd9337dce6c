/* rstore_rec.h: reading the body of POST /dp/v1/responses (docs/api.md "Data-plane API"): NDJSON,
 * one stored-response record a line ({"id","tenant","key","created_at","response":{...},
 * "input_items":[...]}, dataplane/rstore.h). The body comes from a data plane but is input like any
 * other: these take any bytes. Pure (no database, no I/O), any thread; rstore.c stores what they
 * accept. */
#ifndef CP_RSTORE_REC_H
#define CP_RSTORE_REC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tg_buf.h"

#define CP_RSTORE_ID_MAX 128

/* One record as read; its strings are borrowed from the JSON object it was read from. */
typedef struct cp_ship_rec {
    const char *id;
    const char *tenant;
    const char *key; /* NULL: none */
    char created[32];
    tg_buf_t items; /* a text[] literal of the item ids, NUL-terminated: {a,b} (ids need no
                     * quoting); dispose it whatever cp_ship_read_record answered */
} cp_ship_rec_t;

/* Whether s is a name the store takes for a response or an item: 1-128 of [A-Za-z0-9_-]. */
bool cp_rstore_id_ok(const char *s, size_t n);

/* The next line of body (len bytes) from *pos that is not empty once trailing CR and spaces are
 * cut: *line, *n. *lineno counts every line passed, empty ones included (for the answer's
 * "rejected" list). false at the end of the body. */
bool cp_ship_next_line(const char *body, size_t len, size_t *pos, long long *lineno,
                       const char **line, size_t *n);

/* Reads one record (a parsed line) into rec; NULL, or the reason it is refused (a message for
 * the data plane's operator). */
const char *cp_ship_read_record(json_t *o, cp_ship_rec_t *rec);

#endif

/* web.h: the dashboard's static files (web/), read into memory once at start, so that no path
 * from a request ever reaches the filesystem. Read-only after cp_web_load. */
#ifndef CP_WEB_H
#define CP_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cp_web_file {
    char *path;    /* "/js/app.js": its path under the web dir, owned */
    uint8_t *data; /* owned */
    size_t len;
    const char *content_type; /* static */
    char etag[35];            /* strong: "<32 hex characters of its SHA-256>" */
} cp_web_file_t;

/* Reads every regular file under dir (no dot files; at most CP_WEB_MAX_FILES files and
 * CP_WEB_MAX_BYTES in all). 0 when loaded; TG_ENOTFOUND when dir is missing (nothing is served);
 * another TG_E* code on a read error or a limit. Logs one line either way. Main thread. */
int cp_web_load(const char *dir);
/* Frees what cp_web_load read. */
void cp_web_free(void);
/* Whether any file was loaded. */
bool cp_web_loaded(void);
/* The file served at path ("/" is "/index.html"), or NULL. */
const cp_web_file_t *cp_web_find(const char *path);
/* Whether a request path is the dashboard's: everything but the API (/api, /dp) and the health
 * and metrics endpoints. */
bool cp_web_owns(const char *path);
/* Whether an If-None-Match value matches etag (weak comparison, RFC 9110 13.1.2). */
bool cp_web_etag_match(const char *if_none_match, const char *etag);

#define CP_WEB_MAX_FILES 4096
#define CP_WEB_MAX_BYTES (64u << 20)

#endif

/* web.c: the dashboard's static files. cp_web_load walks the web dir once on the main thread
 * before the server starts; afterwards the table is only read (by MHD workers), so it needs no
 * lock, and a request path is only ever compared with the names in it. */
#include "web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_err.h"
#include "tg_hash.h"
#include "tg_log.h"

#include "tg_banned.h"

#define WEB_MAX_DEPTH 16
#define WEB_MAX_PATH 512

typedef struct web_load {
    cp_web_file_t *files;
    size_t n, cap;
    size_t bytes;
} web_load_t;

static web_load_t web; /* written by cp_web_load only */

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* A name served as it is: letters, digits and -_. only, not starting with a dot. */
static bool name_ok(const char *name)
{
    if (!name[0] || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static int read_file(const char *fs_path, const char *url_path, size_t size)
{
    if (web.n == CP_WEB_MAX_FILES || size > CP_WEB_MAX_BYTES - web.bytes)
        return TG_ETOOBIG;
    if (web.n == web.cap) {
        size_t cap = web.cap ? web.cap * 2 : 32;
        cp_web_file_t *f = realloc(web.files, cap * sizeof(*f));
        if (!f)
            return TG_ENOMEM;
        web.files = f;
        web.cap = cap;
    }
    cp_web_file_t *f = &web.files[web.n];
    memset(f, 0, sizeof(*f));
    int rc = TG_ENOMEM;
    int fd = -1;
    f->path = strdup(url_path);
    f->data = malloc(size ? size : 1);
    if (!f->path || !f->data)
        goto fail;
    rc = TG_EIO;
    fd = open(fs_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto fail;
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, f->data + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            goto fail; /* an error, or the file shrank while read */
        got += (size_t)k;
    }
    close(fd);
    f->len = size;
    f->content_type = content_type_of(url_path);
    uint8_t h[TG_SHA256_LEN];
    tg_sha256(f->data, f->len, h);
    f->etag[0] = '"';
    tg_hex_encode(h, 16, f->etag + 1);
    f->etag[33] = '"';
    f->etag[34] = '\0';
    web.n++;
    web.bytes += size;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(f->path);
    free(f->data);
    return rc;
}

/* fs_dir is the directory on disk, url_dir its path as served ("" for the root). */
static int walk(const char *fs_dir, const char *url_dir, int depth)
{
    if (depth > WEB_MAX_DEPTH)
        return TG_ETOOBIG;
    DIR *d = opendir(fs_dir);
    if (!d)
        return errno == ENOENT && depth == 0 ? TG_ENOTFOUND : TG_EIO;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!name_ok(e->d_name)) {
            /* dot files (and . and ..) quietly; a name we would not serve is said once */
            if (e->d_name[0] != '.')
                tg_log(TG_LOG_WARN, "cp_web", "web_file_skipped",
                       "dir=\"%s\" reason=\"a name of letters, digits and -_. only is served\"",
                       fs_dir);
            continue;
        }
        char fs[WEB_MAX_PATH], url[WEB_MAX_PATH];
        int a = snprintf(fs, sizeof(fs), "%s/%s", fs_dir, e->d_name);
        int b = snprintf(url, sizeof(url), "%s/%s", url_dir, e->d_name);
        if (a < 0 || (size_t)a >= sizeof(fs) || b < 0 || (size_t)b >= sizeof(url)) {
            rc = TG_ETOOBIG;
            break;
        }
        struct stat st;
        if (stat(fs, &st) != 0) {
            rc = TG_EIO;
            break;
        }
        if (S_ISDIR(st.st_mode))
            rc = walk(fs, url, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = read_file(fs, url, (size_t)st.st_size);
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const cp_web_file_t *)a)->path, ((const cp_web_file_t *)b)->path);
}

int cp_web_load(const char *dir)
{
    cp_web_free();
    int rc = walk(dir, "", 0);
    if (rc == TG_ENOTFOUND) {
        tg_log(TG_LOG_WARN, "cp_web", "web_dir_missing",
               "dir=\"%s\" reason=\"the dashboard is not served: build the project (it copies "
               "web/ next to bin/) or set --web-dir\"",
               dir);
        return rc;
    }
    if (rc != 0) {
        tg_log(TG_LOG_ERROR, "cp_web", "web_dir_unreadable", "dir=\"%s\" reason=\"%s\"", dir,
               rc == TG_ETOOBIG ? "too many files, too deep or too large" : "read error");
        cp_web_free();
        return rc;
    }
    if (web.n > 1)
        qsort(web.files, web.n, sizeof(*web.files), by_path);
    tg_log(TG_LOG_INFO, "cp_web", "web_loaded", "dir=\"%s\" files=%zu bytes=%zu", dir, web.n,
           web.bytes);
    return 0;
}

void cp_web_free(void)
{
    for (size_t i = 0; i < web.n; i++) {
        free(web.files[i].path);
        free(web.files[i].data);
    }
    free(web.files);
    memset(&web, 0, sizeof(web));
}

bool cp_web_loaded(void)
{
    return web.n > 0;
}

const cp_web_file_t *cp_web_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    if (web.n == 0 || strlen(path) >= WEB_MAX_PATH)
        return NULL;
    cp_web_file_t key = {.path = (char *)path};
    return bsearch(&key, web.files, web.n, sizeof(*web.files), by_path);
}

static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

bool cp_web_owns(const char *path)
{
    return !under(path, "/api") && !under(path, "/dp") && strcmp(path, "/healthz") != 0 &&
           strcmp(path, "/readyz") != 0 && strcmp(path, "/metrics") != 0;
}

bool cp_web_etag_match(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *start = p;
        if (*p == '"') {
            const char *close = strchr(p + 1, '"');
            if (!close)
                return false;
            p = close + 1;
        } else {
            while (*p && *p != ',')
                p++;
        }
        if ((size_t)(p - start) == elen && memcmp(start, etag, elen) == 0)
            return true;
    }
    return false;
}

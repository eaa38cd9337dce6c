/* sync.c: snapshot long poll against the control plane, on its own thread with a blocking curl
 * easy handle (the loops never wait on it), and the state file that lets a data plane restart
 * and serve while the control plane is down. */
#include "sync.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tg_hash.h"
#include "tg_log.h"
#include "tg_rand.h"
#include "tg_snap.h"

#include "tg_banned.h"

#define MAX_SNAPSHOT (256u << 20)

static struct {
    const dp_opts_t *o;
    void (*hand)(tg_snap_t *s);
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    bool started;
    bool have;   /* holds a snapshot (from the state dir or the control plane), version 0 too */
    bool loaded; /* dp_sync_load_state found one */
    int64_t version;
} sy = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static char dp_id[64] = "";

static bool id_ok(const char *s, size_t n)
{
    return tg_snap_dataplane_name_ok(s, n, 63);
}

/* host plus a random suffix: two data planes on one host are told apart */
static void make_id(char *out, size_t n)
{
    char host[48] = "dp";
    tg_rand_t r;
    gethostname(host, sizeof(host) - 1);
    for (char *h = host; *h; h++)
        if (!id_ok(h, 1))
            *h = '-';
    if (tg_rand_seed(&r) != 0)
        r.s[0] = (uint64_t)time(NULL) | 1;
    snprintf(out, n, "%.40s-%08llx", host, (unsigned long long)(tg_rand_next(&r) & 0xffffffffu));
}

/* Reads STATE_DIR/dataplane-id into dp_id: 0, 1 when there is none, <0 when unreadable. */
static int read_id(const char *path)
{
    char text[80];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -errno;
    ssize_t n = read(fd, text, sizeof(text));
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (!id_ok(text, (size_t)n))
        return TG_EINVAL;
    memcpy(dp_id, text, (size_t)n);
    dp_id[n] = '\0';
    return 0;
}

int dp_sync_init_id(const dp_opts_t *o, tg_err_t *err)
{
    char path[4200], tmp[4300], made[64];
    snprintf(path, sizeof(path), "%s/dataplane-id", o->state_dir);
    for (int tries = 0; tries < 2; tries++) {
        int rc = read_id(path);
        if (rc == 0) {
            tg_log(TG_LOG_INFO, "dp_sync", "identity", "dataplane=%s file=\"%s\"", dp_id, path);
            return 0;
        }
        if (rc < 0) {
            tg_err_set(err, TG_EINVAL, 500,
                       "cannot use the data-plane id in \"%s\": %s; delete the file to make a "
                       "new one",
                       path,
                       rc == TG_EINVAL ? "it is not 1-63 letters, digits, '.', '_' or '-'"
                                       : strerror(-rc));
            return rc;
        }
        /* written whole to a temporary file, then linked: a crash leaves no half id, and of two
         * processes starting at once on one state dir, one id wins and both read it */
        make_id(made, sizeof(made));
        snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        size_t len = strlen(made);
        made[len] = '\n';
        bool ok = fd >= 0 && write(fd, made, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (ok && link(tmp, path) != 0 && errno != EEXIST) {
            ok = false;
            e = errno;
        }
        unlink(tmp);
        if (!ok) {
            tg_err_set(err, TG_EIO, 500, "could not write the data-plane id to \"%s\": %s", path,
                       strerror(e));
            return TG_EIO;
        }
    }
    tg_err_set(err, TG_EIO, 500, "could not read back the data-plane id in \"%s\"", path);
    return TG_EIO;
}

const char *dp_sync_id(void)
{
    return dp_id[0] ? dp_id : "dp-unnamed";
}

static void state_paths(const dp_opts_t *o, char *snap, char *mac, size_t n)
{
    snprintf(snap, n, "%s/snapshot.json", o->state_dir);
    snprintf(mac, n, "%s/snapshot.json.hmac", o->state_dir);
}

/* HMAC-SHA256 under the data-plane token, hex: a file changed by anyone without the token is
 * refused at start, not served. */
static void state_mac(const char *data, size_t n, char hex[65])
{
    uint8_t md[32];
    unsigned int len = sizeof(md);
    const char *key = getenv("TOLLGATE_DP_TOKEN");
    key = key ? key : "";
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, n, md, &len);
    tg_hex_encode(md, 32, hex);
}

static int read_all(const char *path, tg_buf_t *b)
{
    char chunk[65536];
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    int rc = 0;
    size_t got;
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = tg_buf_append(b, chunk, got);
    if (rc == 0 && ferror(f))
        rc = TG_EIO;
    fclose(f);
    return rc;
}

tg_snap_t *dp_sync_load_state(const dp_opts_t *o)
{
    char snap[4096], mac[4096], want[65];
    tg_buf_t body = TG_BUF_INIT(MAX_SNAPSHOT), stored = TG_BUF_INIT(128);
    tg_snap_t *s = NULL;
    state_paths(o, snap, mac, sizeof(snap));
    int rc = read_all(snap, &body);
    if (rc == -ENOENT) {
        tg_log(TG_LOG_INFO, "dp_sync", "no_state_snapshot", "file=\"%s\"", snap);
        goto out;
    }
    if (rc != 0 || read_all(mac, &stored) != 0) {
        tg_log(TG_LOG_ERROR, "dp_sync", "state_snapshot_refused",
               "file=\"%s\" reason=\"cannot read it or its .hmac file\"", snap);
        goto out;
    }
    state_mac(body.base ? body.base : "", body.len, want);
    while (stored.len > 0 && (stored.base[stored.len - 1] == '\n'))
        stored.len--;
    if (!tg_mem_eq(stored.base, stored.len, want, 64)) {
        tg_log(TG_LOG_ERROR, "dp_sync", "state_snapshot_refused",
               "file=\"%s\" reason=\"its HMAC does not match: the file was changed or truncated "
               "after it was written (or TOLLGATE_DP_TOKEN changed)\"",
               snap);
        goto out;
    }
    tg_err_t err;
    tg_err_clear(&err);
    if (tg_snap_parse(body.base, body.len, &s, &err) != 0) {
        tg_log(TG_LOG_ERROR, "dp_sync", "state_snapshot_refused", "file=\"%s\" reason=\"%s\"", snap,
               err.msg);
        s = NULL;
        goto out;
    }
    sy.loaded = true;
    tg_log(TG_LOG_INFO, "dp_sync", "state_snapshot_loaded", "version=%lld", (long long)s->version);
out:
    tg_buf_dispose(&body);
    tg_buf_dispose(&stored);
    return s;
}

static int write_file(const char *path, const char *data, size_t n)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0)
        return -errno;
    return rename(tmp, path) == 0 ? 0 : -errno; /* readers see the old file or the new one */
}

static void save_state(const char *data, size_t n)
{
    char snap[4096], mac[4096], hex[66];
    state_paths(sy.o, snap, mac, sizeof(snap));
    state_mac(data, n, hex);
    hex[64] = '\n';
    /* the HMAC goes first: a crash between the two leaves a pair that is refused, never one
     * that is trusted wrongly */
    int rc = write_file(mac, hex, 65);
    if (rc == 0)
        rc = write_file(snap, data, n);
    if (rc != 0)
        tg_log(TG_LOG_WARN, "dp_sync", "state_write_failed", "file=\"%s\" reason=\"%s\"", snap,
               strerror(-rc));
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return tg_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

struct curl_slist *dp_control_easy(CURL *e, const char *url, const char *const *extra,
                                   long connect_ms, long timeout_ms, tg_buf_t *body,
                                   curl_xferinfo_callback progress, void *ud)
{
    char auth[600], idh[128];
    const char *token = getenv("TOLLGATE_DP_TOKEN");
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    snprintf(idh, sizeof(idh), "X-Tollgate-Dataplane: %s", dp_sync_id());
    const char *lines[8] = {auth, idh, "X-Tollgate-Version: " DP_VERSION};
    size_t n = 3;
    for (; extra && *extra && n < sizeof(lines) / sizeof(lines[0]); extra++)
        lines[n++] = *extra;
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *next = curl_slist_append(h, lines[i]);
        if (!next) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = next;
    }
    tg_buf_reset(body);
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, ud);
    return h;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)ud;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load(&sy.stop) ? 1 : 0; /* abort a long poll when stopping */
}

/* One long poll. Returns 0 after a new snapshot, 1 when unchanged (304), <0 on failure. */
static int poll_once(CURL *e, tg_buf_t *body)
{
    char url[4200];
    /* without a snapshot, ask for the current one whatever its version: on a fresh install it
     * is version 0, empty and valid, and a data plane holding it is ready */
    if (sy.have)
        snprintf(url, sizeof(url), "%s/dp/v1/snapshot?after=%lld", sy.o->control_url,
                 (long long)sy.version);
    else
        snprintf(url, sizeof(url), "%s/dp/v1/snapshot", sy.o->control_url);
    /* the timeout is longer than the server's poll */
    struct curl_slist *h = dp_control_easy(e, url, NULL, 5000L, 60000L, body, on_progress, NULL);
    if (!h)
        return -1;
    CURLcode rc = curl_easy_perform(e);
    curl_slist_free_all(h);
    if (atomic_load(&sy.stop))
        return -1;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        tg_log(TG_LOG_WARN, "dp_sync", "control_unreachable", "url=\"%s\" reason=\"%s\"",
               sy.o->control_url, curl_easy_strerror(rc));
        return -1;
    }
    if (status == 304)
        return 1;
    if (status != 200) {
        tg_log(TG_LOG_WARN, "dp_sync", "poll_refused", "status=%ld", status);
        return -1;
    }
    tg_err_t err;
    tg_err_clear(&err);
    tg_snap_t *s = NULL;
    if (tg_snap_parse(body->base ? body->base : "", body->len, &s, &err) != 0) {
        /* refused and reported; the old snapshot keeps serving */
        tg_log(TG_LOG_ERROR, "dp_sync", "snapshot_refused", "reason=\"%s\"", err.msg);
        return -1;
    }
    if (sy.have && s->version <= sy.version) {
        tg_snap_unref(s);
        return 1;
    }
    save_state(body->base, body->len);
    sy.version = s->version;
    sy.have = true;
    tg_log(TG_LOG_INFO, "dp_sync", "snapshot_loaded", "version=%lld keys=%zu routes=%zu",
           (long long)s->version, s->nkeys, s->nroutes);
    sy.hand(s);
    return 0;
}

static void wait_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sy.mu);
    if (!atomic_load(&sy.stop))
        pthread_cond_timedwait(&sy.cv, &sy.mu, &ts);
    pthread_mutex_unlock(&sy.mu);
}

static void *sync_main(void *arg)
{
    (void)arg;
    CURL *e = curl_easy_init();
    tg_buf_t body = TG_BUF_INIT(MAX_SNAPSHOT);
    tg_rand_t rnd;
    long backoff = 100;
    if (tg_rand_seed(&rnd) != 0)
        rnd.s[0] = (uint64_t)time(NULL) | 1;
    while (e && !atomic_load(&sy.stop)) {
        int rc = poll_once(e, &body);
        if (rc >= 0) {
            backoff = 100;
            continue;
        }
        /* exponential backoff with full jitter, at most 1 s: a failed GET is cheap, and a
         * control plane that comes back is heard from within a second */
        wait_ms((long)(tg_rand_next(&rnd) % (uint64_t)backoff) + 10);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
    tg_buf_dispose(&body);
    curl_easy_cleanup(e);
    return NULL;
}

int dp_sync_start(const dp_opts_t *o, int64_t version, void (*hand)(tg_snap_t *s))
{
    sy.o = o;
    sy.hand = hand;
    sy.version = version;
    sy.have = sy.loaded;
    atomic_store(&sy.stop, false);
    if (pthread_create(&sy.thread, NULL, sync_main, NULL) != 0)
        return TG_EIO;
    sy.started = true;
    tg_log(TG_LOG_INFO, "dp_sync", "started", "control_url=\"%s\" dataplane=%s after=%lld",
           o->control_url, dp_sync_id(), (long long)version);
    return 0;
}

void dp_sync_stop(void)
{
    if (!sy.started)
        return;
    pthread_mutex_lock(&sy.mu);
    atomic_store(&sy.stop, true);
    pthread_cond_broadcast(&sy.cv);
    pthread_mutex_unlock(&sy.mu);
    pthread_join(sy.thread, NULL);
    sy.started = false;
}

/* sync.c: the data-plane sync API (/dp/v1) and the notifier thread. GET /dp/v1/snapshot?after=N
 * runs on MHD workers: it answers at once when the config version is newer than N, otherwise it
 * suspends the connection (no thread waits) until the notifier thread, which LISTENs on
 * tollgate_config with its own PGconn, wakes it on a change, or its deadline passes (304). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/api.h"
#include "snapshot.h"
#include "tg_hash.h"
#include "tg_log.h"
#include "tg_snap.h"

#include "tg_banned.h"

#define POLL_TIMEOUT_MS_DEFAULT 25000
#define TICK_MS 200       /* how often deadlines are checked */
#define RECONNECT_MS 1000 /* between notifier connection attempts */

static int64_t poll_timeout_ms(void);
static void *notifier_main(void *arg);

void cp_dp_snapshot(cp_req_t *r)
{
    if (!cp__dp_token_ok(r)) {
        cp_reply_error(r, 401, "unauthenticated", NULL, "a valid data-plane token is required");
        return;
    }
    const char *a = cp_query(r, "after");
    long long after = -1;
    if (a) {
        char *end;
        errno = 0;
        after = strtoll(a, &end, 10);
        if (errno || !*a || *end || a[0] == '-' || a[0] == '+' || a[0] == ' ' || after < 0) {
            cp_reply_error(r, 400, "invalid_query", "after",
                           "after must be a non-negative integer (a snapshot version)");
            return;
        }
    }
    if (!r->db) {
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "the database is unreachable; retry shortly");
        return;
    }
    cp__dp_register(r, after > 0 ? after : 0);
    int64_t version = 0;
    if (cp_snapshot_build(r->db, NULL, &version) != 0) {
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "could not read the config version; retry shortly");
        return;
    }
    if (version <= after) {
        int pr = cp_http_long_poll(poll_timeout_ms());
        if (pr == CP_POLL_SUSPENDED)
            return; /* http.c runs this handler again when woken */
        tg_buf_reset(&r->out);
        if (pr == CP_POLL_STOPPING) {
            snprintf(r->extra_headers, sizeof(r->extra_headers), "Retry-After: 1\r\n");
            cp_reply_error(r, 503, "shutting_down", NULL,
                           "the control plane is shutting down; retry shortly");
            return;
        }
        r->status = 304;
        return;
    }
    tg_buf_reset(&r->out);
    int rc = cp_snapshot_build(r->db, &r->out, &version);
    if (rc != 0) {
        tg_buf_reset(&r->out);
        cp_reply_error(r, 503, "database_unavailable", NULL,
                       "could not build the snapshot; retry shortly");
        return;
    }
    r->status = 200;
    r->content_type = "application/json";
    snprintf(r->extra_headers, sizeof(r->extra_headers), "X-Tollgate-Snapshot-Version: %lld\r\n",
             (long long)version);
    tg_log(TG_LOG_DEBUG, "cp_sync", "snapshot_served", "version=%lld after=%lld bytes=%zu ip=%s",
           (long long)version, after, r->out.len, r->ip);
}

/* Compares SHA-256 digests so that neither the contents nor the length leak through timing. */
bool cp__dp_token_ok(cp_req_t *r)
{
    const char *want = cp_opts->dp_token;
    const char *h = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "Authorization");
    if (!want || !*want || !h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    uint8_t a[TG_SHA256_LEN], b[TG_SHA256_LEN];
    tg_sha256(h + 7, strlen(h + 7), a);
    tg_sha256(want, strlen(want), b);
    return tg_ct_eq(a, b, sizeof(a));
}

static int64_t poll_timeout_ms(void)
{
    const char *s = getenv("TOLLGATE_DP_POLL_TIMEOUT_MS");
    if (!s || !*s)
        return POLL_TIMEOUT_MS_DEFAULT;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 1 || v > 600000)
        return POLL_TIMEOUT_MS_DEFAULT;
    return v;
}

/* ---- the notifier thread ---- */

static pthread_t notifier;
static bool notifier_started;
static int stop_pipe[2] = {-1, -1};

int cp_sync_start(void)
{
    if (pipe(stop_pipe) != 0)
        return TG_EIO;
    if (pthread_create(&notifier, NULL, notifier_main, NULL) != 0) {
        close(stop_pipe[0]);
        close(stop_pipe[1]);
        stop_pipe[0] = stop_pipe[1] = -1;
        return TG_EIO;
    }
    notifier_started = true;
    return 0;
}

void cp_sync_stop(void)
{
    if (!notifier_started)
        return;
    ssize_t n = write(stop_pipe[1], "x", 1);
    (void)n;
    pthread_join(notifier, NULL);
    notifier_started = false;
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    stop_pipe[0] = stop_pipe[1] = -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static PGconn *listen_connect(void)
{
    PGconn *c = PQconnectdb(cp_opts->database_url);
    if (PQstatus(c) != CONNECTION_OK) {
        tg_log(TG_LOG_WARN, "cp_sync", "listen_connect_failed", "reason=\"%.200s\"",
               PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *res = PQexec(c, "LISTEN tollgate_config");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        tg_log(TG_LOG_WARN, "cp_sync", "listen_failed", "reason=\"%.200s\"", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    tg_log(TG_LOG_INFO, "cp_sync", "listening_for_changes", "channel=tollgate_config");
    return c;
}

static void *notifier_main(void *arg)
{
    (void)arg;
    PGconn *c = NULL;
    int64_t next_connect = 0;
    for (;;) {
        if (!c && now_ms() >= next_connect) {
            c = listen_connect();
            next_connect = now_ms() + RECONNECT_MS;
            if (c)
                cp_http_wake(1); /* changes may have been missed while disconnected */
        }
        struct pollfd fds[2] = {{.fd = stop_pipe[0], .events = POLLIN},
                                {.fd = c ? PQsocket(c) : -1, .events = POLLIN}};
        int n = poll(fds, 2, TICK_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && fds[0].revents)
            break;
        bool changed = false;
        if (c && n > 0 && fds[1].revents) {
            if (PQconsumeInput(c) != 1) {
                tg_log(TG_LOG_WARN, "cp_sync", "listen_connection_lost", "reason=\"%.200s\"",
                       PQerrorMessage(c));
                PQfinish(c);
                c = NULL;
            } else {
                PGnotify *nt;
                while ((nt = PQnotifies(c)) != NULL) {
                    tg_log(TG_LOG_DEBUG, "cp_sync", "config_changed", "version=%.20s", nt->extra);
                    changed = true;
                    PQfreemem(nt);
                }
            }
        }
        cp_http_wake(changed ? 1 : 0);
    }
    PQfinish(c);
    return NULL;
}

static bool dp_id_ok(const char *s, size_t max)
{
    return s && tg_snap_dataplane_name_ok(s, strlen(s), max);
}

/* A data plane that names itself (X-Tollgate-Dataplane, X-Tollgate-Version) is recorded with its
 * address, the version it runs and the snapshot it has, for GET /api/v1/dataplanes and the live
 * count in POST /dp/v1/usage answers. A bad or missing name is not an error: the call is served,
 * the data plane just goes unlisted. snapshot_version < 0 (a usage post) keeps the one recorded.
 * Autocommit, outside any batch transaction: two posts from one data plane must not queue on its
 * row for a whole batch. */
void cp__dp_register(cp_req_t *r, long long snapshot_version)
{
    const char *id = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "X-Tollgate-Dataplane");
    const char *ver = MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, "X-Tollgate-Version");
    if (!dp_id_ok(id, 64))
        return;
    char snap[32];
    snprintf(snap, sizeof(snap), "%lld", snapshot_version);
    const char *p[4] = {id, r->ip[0] ? r->ip : "unknown", dp_id_ok(ver, 32) ? ver : "unknown",
                        snapshot_version >= 0 ? snap : NULL};
    PGresult *res = cp_db_exec(r->db,
                               "INSERT INTO dataplanes (id, host, version, snapshot_version) "
                               "VALUES ($1, $2, $3, coalesce($4::bigint, 0)) ON CONFLICT (id) DO "
                               "UPDATE SET host = $2, version = $3, snapshot_version = "
                               "coalesce($4::bigint, dataplanes.snapshot_version), "
                               "last_seen = now()",
                               4, p);
    if (!cp_db_ok(res))
        tg_log(TG_LOG_WARN, "cp_sync", "register_failed", "dataplane=%s", id);
    PQclear(res);
}

void cp_api_dataplanes_list(cp_req_t *r)
{
    if (!r->who.platform_admin) {
        cp_reply_error(r, 403, "forbidden", NULL, "only platform admins list data planes");
        return;
    }
    /* config_version: what a data plane's snapshot_version is compared with (up to date when
     * equal) */
    PGresult *res = cp_db_exec(
        r->db,
        "SELECT json_build_object('data', coalesce((SELECT json_agg(json_build_object('id', id, "
        "'host', host, 'version', version, 'snapshot_version', snapshot_version, 'first_seen', "
        "first_seen, 'last_seen', last_seen, 'live', last_seen > now() - interval '10 seconds') "
        "ORDER BY id) FROM dataplanes), '[]'::json), 'config_version', (SELECT v FROM "
        "config_version))",
        0, NULL);
    cp_reply_json_row(r, res);
}

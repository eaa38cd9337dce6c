/* main.c: tollgate-data's entry point: options (flags, then TOLLGATE_* environment), the
 * initial snapshot, the usage sink, then the server. Main thread only. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp.h"
#include "ledger.h"
#include "rstore.h"
#include "server.h"
#include "sync.h"
#include "tg_log.h"
#include "upstream.h"
#include "usage_sink.h"

#include "tg_banned.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tollgate-data [options]\n"
        "\n"
        "  --listen HOST:PORT         where clients connect (env TOLLGATE_DATA_LISTEN,\n"
        "                             default 0.0.0.0:8080; port 0 picks a free port)\n"
        "  --workers N                event-loop threads (env TOLLGATE_WORKERS, default: cores)\n"
        "  --snapshot FILE            config snapshot to serve, reloaded on SIGHUP\n"
        "                             (env TOLLGATE_SNAPSHOT_FILE; docs/snapshot.md)\n"
        "  --control-url URL          take snapshots from the control plane (env\n"
        "                             TOLLGATE_CONTROL_URL; token in TOLLGATE_DP_TOKEN)\n"
        "  --state-dir DIR            local state (env TOLLGATE_STATE_DIR, default "
        ".tollgate/data)\n"
        "  --usage-file FILE          usage records, NDJSON, when there is no control URL\n"
        "                             (default STATE_DIR/usage.ndjson); with one, they are\n"
        "                             spooled in STATE_DIR/spool/ and sent (docs/usage.md)\n"
        "  --max-body-bytes N         request body limit (default 4194304)\n"
        "  --max-header-bytes N       request header limit (default 32768)\n"
        "  --header-timeout-ms N      time to receive a request's headers (default 10000)\n"
        "  --body-timeout-ms N        longest pause while receiving a body (default 30000)\n"
        "  --idle-timeout-ms N        keep-alive idle time (default 30000)\n"
        "  --drain-timeout-ms N       SIGTERM grace period for requests in flight\n"
        "                             (default 30000)\n"
        "  --breaker-failures N       consecutive failures that open a target's circuit\n"
        "                             (default 5)\n"
        "  --breaker-open-ms N        how long an open circuit waits before one probe\n"
        "                             (default 10000)\n"
        "  --cache-max-bytes N        response cache per worker, for routes with\n"
        "                             cache_ttl_s (default 16777216; 0 turns it off)\n"
        "  --responses-cache-bytes N  stored responses (the Responses API) kept per worker\n"
        "                             (default 16777216; docs/responses.md)\n"
        "  --responses-cache-ttl-s N  how long a worker uses a cached stored response as\n"
        "                             previous_response_id without asking the control plane:\n"
        "                             the bound on a deletion made through another data plane\n"
        "                             (default 600)\n"
        "  --log-level LEVEL          debug, info, warn, error (env TOLLGATE_LOG_LEVEL,\n"
        "                             default info)\n"
        "  --help                     this text\n");
}

static int parse_num(const char *name, const char *s, unsigned long min, unsigned long max,
                     unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "tollgate-data: %s must be an integer from %lu to %lu, not \"%s\"\n", name,
                min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"snapshot", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'd'},
        {"control-url", required_argument, NULL, 'c'},
        {"usage-file", required_argument, NULL, 'u'},
        {"max-body-bytes", required_argument, NULL, 'B'},
        {"max-header-bytes", required_argument, NULL, 'H'},
        {"header-timeout-ms", required_argument, NULL, 'T'},
        {"body-timeout-ms", required_argument, NULL, 'b'},
        {"idle-timeout-ms", required_argument, NULL, 'i'},
        {"drain-timeout-ms", required_argument, NULL, 'D'},
        {"log-level", required_argument, NULL, 'L'},
        {"breaker-failures", required_argument, NULL, 'F'},
        {"breaker-open-ms", required_argument, NULL, 'O'},
        {"cache-max-bytes", required_argument, NULL, 'C'},
        {"responses-cache-bytes", required_argument, NULL, 'R'},
        {"responses-cache-ttl-s", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    dp_opts_t o;
    memset(&o, 0, sizeof(o));
    dp_http_limits_t lim = DP_HTTP_LIMITS_DEFAULT;
    o.limits = lim;
    o.header_timeout_ms = 10000;
    o.body_timeout_ms = 30000;
    o.idle_timeout_ms = 30000; /* each idle client holds a socket and a parser */
    o.drain_timeout_ms = 30000;
    o.max_response_bytes = 64u << 20;
    o.health = (dp_health_opts_t)DP_HEALTH_OPTS_DEFAULT;
    o.cache_max_bytes = 16u << 20;
    o.responses_cache_bytes = 16u << 20;
    o.responses_cache_ttl_s = 600;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.workers = ncpu > 0 ? (int)ncpu : 1;
    const char *listen = getenv("TOLLGATE_DATA_LISTEN");
    const char *level = getenv("TOLLGATE_LOG_LEVEL");
    o.snapshot_path = getenv("TOLLGATE_SNAPSHOT_FILE");
    o.state_dir = getenv("TOLLGATE_STATE_DIR");
    o.control_url = getenv("TOLLGATE_CONTROL_URL");
    unsigned long v;
    if (getenv("TOLLGATE_WORKERS")) {
        if (parse_num("TOLLGATE_WORKERS", getenv("TOLLGATE_WORKERS"), 1, 256, &v) != 0)
            return 2;
        o.workers = (int)v;
    }
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case 'l':
            listen = optarg;
            break;
        case 'w':
            rc = parse_num("--workers", optarg, 1, 256, &v);
            o.workers = (int)v;
            break;
        case 's':
            o.snapshot_path = optarg;
            break;
        case 'd':
            o.state_dir = optarg;
            break;
        case 'c':
            o.control_url = optarg;
            break;
        case 'u':
            o.usage_path = optarg;
            break;
        case 'B':
            rc = parse_num("--max-body-bytes", optarg, 1024, 1ul << 30, &v);
            o.limits.max_body = v;
            break;
        case 'H':
            rc = parse_num("--max-header-bytes", optarg, 1024, 1ul << 20, &v);
            o.limits.max_header_bytes = v;
            break;
        case 'T':
            rc = parse_num("--header-timeout-ms", optarg, 10, 3600000, &v);
            o.header_timeout_ms = (uint32_t)v;
            break;
        case 'b':
            rc = parse_num("--body-timeout-ms", optarg, 10, 3600000, &v);
            o.body_timeout_ms = (uint32_t)v;
            break;
        case 'i':
            rc = parse_num("--idle-timeout-ms", optarg, 10, 3600000, &v);
            o.idle_timeout_ms = (uint32_t)v;
            break;
        case 'D':
            rc = parse_num("--drain-timeout-ms", optarg, 0, 3600000, &v);
            o.drain_timeout_ms = (uint32_t)v;
            break;
        case 'L':
            level = optarg;
            break;
        case 'F':
            rc = parse_num("--breaker-failures", optarg, 1, 1000000, &v);
            o.health.failures = (uint32_t)v;
            break;
        case 'C':
            rc = parse_num("--cache-max-bytes", optarg, 0, 1ul << 34, &v);
            o.cache_max_bytes = v;
            break;
        case 'R':
            rc = parse_num("--responses-cache-bytes", optarg, 0, 1ul << 34, &v);
            o.responses_cache_bytes = v;
            break;
        case 'r':
            rc = parse_num("--responses-cache-ttl-s", optarg, 1, 86400, &v);
            o.responses_cache_ttl_s = (uint32_t)v;
            break;
        case 'O':
            rc = parse_num("--breaker-open-ms", optarg, 1, 3600000, &v);
            o.health.open_ms = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (rc != 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate-data: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (level) {
        int l = tg_log_parse_level(level);
        if (l < 0) {
            fprintf(stderr, "tollgate-data: unknown log level \"%s\"\n", level);
            return 2;
        }
        tg_log_set_level(l);
    }
    if (dp_server_parse_listen(listen ? listen : "0.0.0.0:8080", &o) != 0) {
        fprintf(stderr, "tollgate-data: listen address must be HOST:PORT, not \"%s\"\n", listen);
        return 2;
    }
    if (!o.state_dir)
        o.state_dir = ".tollgate/data";
    if (o.control_url && !*o.control_url)
        o.control_url = NULL;
    if (o.control_url && strncmp(o.control_url, "http://", 7) != 0 &&
        strncmp(o.control_url, "https://", 8) != 0) {
        fprintf(stderr, "tollgate-data: the control URL must start with http:// or https://\n");
        return 2;
    }
    if (o.control_url && o.snapshot_path) {
        fprintf(stderr, "tollgate-data: use --snapshot or --control-url, not both\n");
        return 2;
    }
    if (mkdirs(o.state_dir) != 0) {
        fprintf(stderr, "tollgate-data: cannot create state directory \"%s\": %s\n", o.state_dir,
                strerror(errno));
        return 1;
    }
    char usage_path[4096];
    if (!o.usage_path) {
        snprintf(usage_path, sizeof(usage_path), "%s/usage.ndjson", o.state_dir);
        o.usage_path = usage_path;
    }

    signal(SIGPIPE, SIG_IGN);
    if (dp_upstream_global_init() != 0) {
        fprintf(stderr, "tollgate-data: could not initialize libcurl\n");
        return 1;
    }
    tg_snap_t *snap = NULL;
    tg_err_t err;
    tg_err_clear(&err);
    if (o.snapshot_path) {
        if (tg_snap_load_file(o.snapshot_path, &snap, &err) != 0) {
            tg_log(TG_LOG_ERROR, "dp_main", "snapshot_refused", "file=\"%s\" reason=\"%s\"",
                   o.snapshot_path, err.msg);
            return 1;
        }
        tg_log(TG_LOG_INFO, "dp_main", "snapshot_loaded", "version=%lld keys=%zu routes=%zu",
               (long long)snap->version, snap->nkeys, snap->nroutes);
    }
    if (o.control_url) {
        if (dp_sync_init_id(&o, &err) != 0) {
            tg_log(TG_LOG_ERROR, "dp_main", "identity_failed", "reason=\"%s\"", err.msg);
            return 1;
        }
        snap =
            dp_sync_load_state(&o); /* serve the last good config while the control plane is away */
    }
    if (dp_usage_sink_start(&o, &err) != 0) {
        tg_log(TG_LOG_ERROR, "dp_main", "usage_sink_failed", "reason=\"%s\"", err.msg);
        tg_snap_unref(snap);
        return 1;
    }
    if (dp_rstore_start(&o, &err) != 0) {
        tg_log(TG_LOG_ERROR, "dp_main", "responses_store_failed", "reason=\"%s\"", err.msg);
        dp_usage_sink_stop();
        tg_snap_unref(snap);
        return 1;
    }
    int rc = dp_server_run(&o, snap);
    dp_rstore_stop(); /* before the usage sink: a put's record goes to the spool, not lost */
    dp_usage_sink_stop();
    dp_ledger_shutdown(); /* the loops and the shipper are done with it */
    dp_upstream_global_cleanup();
    return rc;
}

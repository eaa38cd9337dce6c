/* main.c: tollgate-control's entry point: `migrate` applies the schema; `serve` (the default)
 * migrates, ensures the first admin and serves the API until SIGTERM/SIGINT. Main thread. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "cp.h"
#include "cp_http.h"
#include "snapshot.h"
#include "tg_hash.h"
#include "tg_log.h"
#include "web.h"

#include "tg_banned.h"

static cp_opts_t opts;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tollgate-control [serve|migrate|catalog import FILE|catalog diff FILE] [options]\n"
        "\n"
        "  serve (default)          apply missing migrations, then serve the admin API\n"
        "  migrate                  apply missing migrations and exit\n"
        "  catalog import FILE      check a model catalog (the format of catalog/models.json),\n"
        "                           store it (audited; the data planes get its prices) and\n"
        "                           print what changed against the catalog in effect\n"
        "  catalog diff FILE        check it and print what would change, storing nothing\n"
        "\n"
        "  --listen HOST:PORT       admin API (env TOLLGATE_CONTROL_LISTEN, default\n"
        "                           127.0.0.1:8081; 0.0.0.0:PORT to serve other hosts)\n"
        "  --database-url URL       libpq conninfo or URL (env TOLLGATE_DATABASE_URL)\n"
        "  --threads N              HTTP worker threads, each with one database connection\n"
        "                           (env TOLLGATE_CONTROL_THREADS, default 4)\n"
        "  --jwt-ttl-s N            login session lifetime (default 3600)\n"
        "  --max-connections N      open connections in total (default 1024)\n"
        "  --max-connections-per-ip N\n"
        "                           open connections from one client address (default 128)\n"
        "  --header-timeout-s N     close a connection whose request headers take longer\n"
        "                           (default 10)\n"
        "  --audit-checkpoint-rows N  sign the audit chain once N rows wait (env\n"
        "                           TOLLGATE_AUDIT_CHECKPOINT_ROWS, 1 to 1000, default 100)\n"
        "  --audit-checkpoint-s N   and every N seconds when a row waits (env\n"
        "                           TOLLGATE_AUDIT_CHECKPOINT_S, 1 to 3600, default 60)\n"
        "  --web-dir DIR            the dashboard's files, served at / (env TOLLGATE_WEB_DIR,\n"
        "                           default DIR_OF_THIS_BINARY/../web, where the build puts them)\n"
        "  --secure-cookies         mark the dashboard's session cookie Secure: set it when\n"
        "                           browsers reach the server over TLS (env\n"
        "                           TOLLGATE_SECURE_COOKIES=1)\n"
        "  --wait-db-s N            retry connecting to the database for up to N seconds\n"
        "                           before giving up (env TOLLGATE_WAIT_DB_S, 0 to 3600,\n"
        "                           default 0: one try), for a database that starts alongside\n"
        "  --responses-retention-days N  keep stored responses (the Responses API's store) N\n"
        "                           days unless the tenant sets its own (env\n"
        "                           TOLLGATE_RESPONSES_RETENTION_DAYS, 1 to 3650, default 30)\n"
        "  --responses-purge-s N    delete expired stored responses every N seconds (env\n"
        "                           TOLLGATE_RESPONSES_PURGE_S, 1 to 86400, default 60)\n"
        "  --log-level LEVEL        debug, info, warn, error (env TOLLGATE_LOG_LEVEL)\n"
        "  --help                   this text\n"
        "\n"
        "secrets come from the environment only: TOLLGATE_MASTER_KEY (64 hex characters,\n"
        "encrypts provider credentials and keys the audit checkpoints' signatures),\n"
        "TOLLGATE_JWT_SECRET (at least 32 bytes),\n"
        "TOLLGATE_DP_TOKEN (data planes); TOLLGATE_ADMIN_EMAIL and TOLLGATE_ADMIN_PASSWORD\n"
        "create the first platform admin (a password is generated and printed once if unset)\n"
        "\n"
        "`migrate` must run as the schema's owner; `serve` may connect as a member of the role\n"
        "tollgate_app (made by the migrations), which cannot change or delete audit rows\n");
}

static int parse_hostport(const char *s, cp_opts_t *o)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(o->listen_host))
        return -1;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p > 65535)
        return -1;
    memcpy(o->listen_host, s, (size_t)(colon - s));
    o->listen_host[colon - s] = '\0';
    o->listen_port = (int)p;
    return 0;
}

/* DIR_OF_THIS_BINARY/../web, where the build copies web/; "" when /proc/self/exe is unreadable. */
static void default_web_dir(char *out, size_t n)
{
    char exe[4096];
    out[0] = '\0';
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (k <= 0)
        return;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    int w = snprintf(out, n, "%s/../web", exe);
    if (w < 0 || (size_t)w >= n)
        out[0] = '\0';
}

static int parse_num(const char *name, const char *s, unsigned long min, unsigned long max,
                     unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "tollgate-control: %s must be an integer from %lu to %lu\n", name, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"database-url", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"jwt-ttl-s", required_argument, NULL, 'j'},
        {"log-level", required_argument, NULL, 'L'},
        {"audit-checkpoint-rows", required_argument, NULL, 'R'},
        {"audit-checkpoint-s", required_argument, NULL, 'S'},
        {"max-connections", required_argument, NULL, 'm'},
        {"max-connections-per-ip", required_argument, NULL, 'p'},
        {"header-timeout-s", required_argument, NULL, 'H'},
        {"web-dir", required_argument, NULL, 'w'},
        {"secure-cookies", no_argument, NULL, 's'},
        {"wait-db-s", required_argument, NULL, 'W'},
        {"responses-retention-days", required_argument, NULL, 'D'},
        {"responses-purge-s", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = getenv("TOLLGATE_CONTROL_LISTEN");
    const char *level = getenv("TOLLGATE_LOG_LEVEL");
    unsigned long v;
    opts.database_url = getenv("TOLLGATE_DATABASE_URL");
    opts.web_dir = getenv("TOLLGATE_WEB_DIR");
    const char *sc = getenv("TOLLGATE_SECURE_COOKIES");
    if (sc && *sc) {
        if (strcmp(sc, "1") != 0 && strcmp(sc, "0") != 0) {
            fprintf(stderr, "tollgate-control: TOLLGATE_SECURE_COOKIES must be 1 or 0\n");
            return 2;
        }
        opts.secure_cookies = sc[0] == '1';
    }
    opts.threads = 4;
    opts.jwt_ttl_s = 3600;
    opts.audit_checkpoint_rows = 100;
    opts.audit_checkpoint_s = 60;
    if (getenv("TOLLGATE_AUDIT_CHECKPOINT_ROWS")) {
        if (parse_num("TOLLGATE_AUDIT_CHECKPOINT_ROWS", getenv("TOLLGATE_AUDIT_CHECKPOINT_ROWS"), 1,
                      CP_AUDIT_CKPT_MAX, &v))
            return 2;
        opts.audit_checkpoint_rows = (int)v;
    }
    if (getenv("TOLLGATE_AUDIT_CHECKPOINT_S")) {
        if (parse_num("TOLLGATE_AUDIT_CHECKPOINT_S", getenv("TOLLGATE_AUDIT_CHECKPOINT_S"), 1, 3600,
                      &v))
            return 2;
        opts.audit_checkpoint_s = (int)v;
    }
    opts.responses_retention_days = 30;
    opts.responses_purge_s = 60;
    if (getenv("TOLLGATE_RESPONSES_RETENTION_DAYS")) {
        if (parse_num("TOLLGATE_RESPONSES_RETENTION_DAYS",
                      getenv("TOLLGATE_RESPONSES_RETENTION_DAYS"), 1, 3650, &v))
            return 2;
        opts.responses_retention_days = (int)v;
    }
    if (getenv("TOLLGATE_RESPONSES_PURGE_S")) {
        if (parse_num("TOLLGATE_RESPONSES_PURGE_S", getenv("TOLLGATE_RESPONSES_PURGE_S"), 1, 86400,
                      &v))
            return 2;
        opts.responses_purge_s = (int)v;
    }
    opts.max_connections = 1024;
    opts.max_connections_per_ip = 128;
    opts.header_timeout_s = 10;
    if (getenv("TOLLGATE_WAIT_DB_S")) {
        if (parse_num("TOLLGATE_WAIT_DB_S", getenv("TOLLGATE_WAIT_DB_S"), 0, 3600, &v))
            return 2;
        opts.wait_db_s = (int)v;
    }
    if (getenv("TOLLGATE_CONTROL_THREADS")) {
        if (parse_num("TOLLGATE_CONTROL_THREADS", getenv("TOLLGATE_CONTROL_THREADS"), 1, 64, &v))
            return 2;
        opts.threads = (int)v;
    }
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            listen = optarg;
            break;
        case 'd':
            opts.database_url = optarg;
            break;
        case 't':
            if (parse_num("--threads", optarg, 1, 64, &v) != 0)
                return 2;
            opts.threads = (int)v;
            break;
        case 'j':
            if (parse_num("--jwt-ttl-s", optarg, 1, 86400, &v) != 0)
                return 2;
            opts.jwt_ttl_s = (uint32_t)v;
            break;
        case 'L':
            level = optarg;
            break;
        case 'R':
            if (parse_num("--audit-checkpoint-rows", optarg, 1, CP_AUDIT_CKPT_MAX, &v) != 0)
                return 2;
            opts.audit_checkpoint_rows = (int)v;
            break;
        case 'S':
            if (parse_num("--audit-checkpoint-s", optarg, 1, 3600, &v) != 0)
                return 2;
            opts.audit_checkpoint_s = (int)v;
            break;
        case 'm':
            if (parse_num("--max-connections", optarg, 1, 100000, &v) != 0)
                return 2;
            opts.max_connections = (unsigned)v;
            break;
        case 'p':
            if (parse_num("--max-connections-per-ip", optarg, 1, 100000, &v) != 0)
                return 2;
            opts.max_connections_per_ip = (unsigned)v;
            break;
        case 'H':
            if (parse_num("--header-timeout-s", optarg, 1, 3600, &v) != 0)
                return 2;
            opts.header_timeout_s = (unsigned)v;
            break;
        case 'w':
            opts.web_dir = optarg;
            break;
        case 's':
            opts.secure_cookies = true;
            break;
        case 'W':
            if (parse_num("--wait-db-s", optarg, 0, 3600, &v) != 0)
                return 2;
            opts.wait_db_s = (int)v;
            break;
        case 'D':
            if (parse_num("--responses-retention-days", optarg, 1, 3650, &v) != 0)
                return 2;
            opts.responses_retention_days = (int)v;
            break;
        case 'P':
            if (parse_num("--responses-purge-s", optarg, 1, 86400, &v) != 0)
                return 2;
            opts.responses_purge_s = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : "serve";
    bool catalog = strcmp(cmd, "catalog") == 0;
    bool args_ok;
    if (catalog)
        args_ok = optind + 3 == argc && (strcmp(argv[optind + 1], "import") == 0 ||
                                         strcmp(argv[optind + 1], "diff") == 0);
    else
        args_ok = optind + 1 >= argc && (strcmp(cmd, "serve") == 0 || strcmp(cmd, "migrate") == 0);
    if (!args_ok) {
        usage(stderr);
        return 2;
    }
    if (level) {
        int l = tg_log_parse_level(level);
        if (l < 0) {
            fprintf(stderr, "tollgate-control: unknown log level \"%s\"\n", level);
            return 2;
        }
        tg_log_set_level(l);
    }
    if (!opts.database_url || !*opts.database_url) {
        fprintf(stderr, "tollgate-control: set TOLLGATE_DATABASE_URL or --database-url\n");
        return 2;
    }
    cp_opts = &opts;
    if (strcmp(cmd, "migrate") == 0)
        return cp_migrate(opts.database_url);

    if (parse_hostport(listen ? listen : "127.0.0.1:8081", &opts) != 0) {
        fprintf(stderr, "tollgate-control: listen address must be HOST:PORT\n");
        return 2;
    }
    const char *mk = getenv("TOLLGATE_MASTER_KEY");
    if (mk && *mk) {
        if (tg_hex_decode(mk, strlen(mk), opts.master_key, sizeof(opts.master_key)) != 0) {
            fprintf(stderr, "tollgate-control: TOLLGATE_MASTER_KEY must be 64 hex characters "
                            "(openssl rand -hex 32)\n");
            return 2;
        }
        opts.have_master_key = true;
    } else if (catalog) {
        /* nothing to sign audit checkpoints with: the serving replicas sign them */
    } else {
        tg_log(TG_LOG_WARN, "cp_main", "no_master_key",
               "reason=\"TOLLGATE_MASTER_KEY unset: providers cannot store credentials\"");
    }
    if (catalog) {
        if (cp_migrate(opts.database_url) != 0)
            return 1;
        int rc = cp_catalog_cli(argv[optind + 1], argv[optind + 2]);
        cp_db_close();
        return rc;
    }
    const char *js = getenv("TOLLGATE_JWT_SECRET");
    if (!js || strlen(js) < 32 || strlen(js) >= sizeof(opts.jwt_secret)) {
        fprintf(stderr, "tollgate-control: TOLLGATE_JWT_SECRET must be 32 to 255 bytes\n");
        return 2;
    }
    memcpy(opts.jwt_secret, js, strlen(js));
    opts.jwt_secret_len = strlen(js);
    opts.dp_token = getenv("TOLLGATE_DP_TOKEN");
    opts.admin_email = getenv("TOLLGATE_ADMIN_EMAIL");
    opts.admin_password = getenv("TOLLGATE_ADMIN_PASSWORD");

    if (cp_migrate(opts.database_url) != 0)
        return 1;
    int admin_rc = cp_ensure_first_admin();
    /* the built-in model catalog, stored once per version so the snapshot carries its prices */
    int catalog_rc = admin_rc == 0 ? cp_catalog_store_builtin(cp_db()) : 0;
    cp_db_close();
    if (catalog_rc != 0) {
        tg_log(TG_LOG_ERROR, "cp_main", "catalog_store_failed", "reason=\"database\"");
        return 1;
    }
    if (admin_rc != 0) {
        tg_log(TG_LOG_ERROR, "cp_main", "first_admin_failed", "reason=\"database\"");
        return 1;
    }
    char web_dir[4096];
    if (opts.web_dir && *opts.web_dir)
        snprintf(web_dir, sizeof(web_dir), "%s", opts.web_dir);
    else
        default_web_dir(web_dir, sizeof(web_dir));
    /* a missing directory is not fatal: the API serves on without the dashboard (its / says
     * what is missing); one that cannot be read in full is */
    int web_rc = cp_web_load(web_dir[0] ? web_dir : "web");
    if (web_rc != 0 && web_rc != TG_ENOTFOUND)
        return 1;
    /* Blocked here, so in every thread started below (MHD's workers, the reaper, the notifier):
     * with a handler, the kernel could run it on any of them while this thread slept on in
     * pause(), and SIGTERM would never stop the process. sigwait takes it here. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int port;
    static const cp_http_api_t api = {cp_api_precheck, cp_api_dispatch};
    if (cp_http_start(&opts, &api, &port) != 0)
        return 1;
    if (cp_sync_start() != 0) { /* it wakes the data planes' long polls */
        tg_log(TG_LOG_ERROR, "cp_main", "notifier_start_failed", "reason=\"thread\"");
        cp_http_stop();
        return 1;
    }
    if (cp_audit_start() != 0) {
        tg_log(TG_LOG_ERROR, "cp_main", "audit_checkpointer_start_failed", "reason=\"thread\"");
        cp_sync_stop();
        cp_http_stop();
        return 1;
    }
    if (cp_rstore_start() != 0) /* expired stored responses are still never served */
        tg_log(TG_LOG_WARN, "cp_main", "responses_purge_start_failed", "reason=\"thread\"");
    if (cp_audit_verify_start() != 0)
        tg_log(TG_LOG_WARN, "cp_main", "audit_verify_start_failed", "reason=\"thread\"");
    tg_log(TG_LOG_INFO, "cp_main", "listening", "addr=%s:%d threads=%d", opts.listen_host, port,
           opts.threads);
    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    tg_log(TG_LOG_INFO, "cp_main", "stopping", "signal=%d", sig);
    cp_audit_stop();
    cp_rstore_stop();
    cp_audit_verify_join();
    cp_sync_stop();
    cp_http_stop(); /* answers the long polls still waiting */
    cp_web_free();
    tg_log(TG_LOG_INFO, "cp_main", "stopped", "code=0");
    return 0;
}

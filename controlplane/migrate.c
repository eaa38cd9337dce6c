/* migrate.c: `tollgate-control migrate`: applies the compiled-in migrations that are missing,
 * each in its own transaction, recorded in schema_migrations. A session advisory lock makes two
 * replicas starting at once apply each migration exactly once. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cp.h"
#include "migrations.h"
#include "tg_log.h"

#include "tg_banned.h"

#define MIGRATE_LOCK "746f6c6c" /* constant shared by every replica */

static bool run(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    bool ok = cp_db_ok(res);
    if (!ok)
        tg_log(TG_LOG_ERROR, "cp_migrate", "statement_failed", "reason=\"%s\"",
               PQresultErrorMessage(res));
    if (!ok && cp_db_sqlstate_is(res, "42501"))
        fprintf(stderr, "tollgate-control: migrations are pending and this database role may not "
                        "apply them: run `tollgate-control migrate` with TOLLGATE_DATABASE_URL "
                        "naming the schema's owner\n");
    PQclear(res);
    return ok;
}

int cp_migrations_latest(void)
{
    int v = 0;
    for (const cp_migration_t *m = cp_migrations; m->sql; m++)
        v = m->version > v ? m->version : v;
    return v;
}

/* The first connection, retried once a second for up to cp_opts->wait_db_s seconds: a pod's
 * database may still be starting (or its DNS name not yet resolvable) when the pod starts, and
 * the image has no shell to wait in. A refused password is retried as well: libpq does not tell
 * it apart from a server still in recovery in a way worth parsing, and the bound is the same. */
static PGconn *connect_waiting(const char *database_url)
{
    int wait_s = cp_opts ? cp_opts->wait_db_s : 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int attempt = 1;; attempt++) {
        PGconn *c = PQconnectdb(database_url);
        if (PQstatus(c) == CONNECTION_OK)
            return c;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= wait_s)
            return c; /* the caller reports the last error */
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n\"")] = '\0';
        tg_log(TG_LOG_WARN, "cp_migrate", "db_wait", "attempt=%d waited_s=%ld of=%d reason=\"%s\"",
               attempt, (long)(now.tv_sec - start.tv_sec), wait_s, msg);
        PQfinish(c);
        struct timespec one = {1, 0};
        while (nanosleep(&one, &one) != 0)
            ;
    }
}

int cp_migrate(const char *database_url)
{
    PGconn *c = connect_waiting(database_url);
    int rc = 1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "tollgate-control: could not connect to the database: %s",
                PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    /* The application role (docs/operations.md) may not create tables, even IF NOT EXISTS: it
     * runs `serve`, which finds the schema up to date and creates nothing. */
    if (!run(c, "SELECT pg_advisory_lock(x'" MIGRATE_LOCK "'::bigint)"))
        goto out;
    PGresult *have = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    bool exists = cp_db_ok(have) && PQntuples(have) == 1 && PQgetvalue(have, 0, 0)[0] == 't';
    PQclear(have);
    if (!exists &&
        !run(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name "
                "text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
        goto out;
    int applied = 0;
    for (const cp_migration_t *m = cp_migrations; m->sql; m++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", m->version);
        const char *p[2] = {v, m->name};
        PGresult *res = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                     NULL, p, NULL, NULL, 0);
        bool done = cp_db_ok(res) && PQntuples(res) == 1;
        bool ok = cp_db_ok(res);
        PQclear(res);
        if (!ok)
            goto out;
        if (done)
            continue;
        if (!run(c, "BEGIN"))
            goto out;
        if (!run(c, m->sql)) {
            run(c, "ROLLBACK");
            fprintf(stderr, "tollgate-control: migration %s failed; nothing of it was applied\n",
                    m->name);
            goto out;
        }
        res = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                           NULL, p, NULL, NULL, 0);
        ok = cp_db_ok(res);
        PQclear(res);
        if (!ok || !run(c, "COMMIT")) {
            run(c, "ROLLBACK");
            goto out;
        }
        tg_log(TG_LOG_INFO, "cp_migrate", "applied", "migration=%s", m->name);
        applied++;
    }
    /* this month and the next two always have their usage partition */
    if (!run(c, "SELECT usage_ensure_partitions(2)"))
        goto out;
    tg_log(TG_LOG_INFO, "cp_migrate", "up_to_date", "applied=%d latest=%d", applied,
           cp_migrations_latest());
    rc = 0;
out:
    run(c, "SELECT pg_advisory_unlock(x'" MIGRATE_LOCK "'::bigint)");
    PQfinish(c);
    return rc;
}

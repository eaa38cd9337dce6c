/* db.c: one Postgres connection per MHD worker thread (thread-local), reconnected when it
 * breaks. Every statement is parameterized. Nothing here replies to a request: a failure is a
 * result the caller turns into a reply (handler.c). */
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "cp.h"
#include "tg_log.h"

#include "tg_banned.h"

/* A key, not _Thread_local, so that the connection is closed when an MHD thread ends. */
static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_free(void *c)
{
    PQfinish(c);
}

static void conn_key_init(void)
{
    pthread_key_create(&conn_key, conn_free);
}

/* A connection that the server closed while it sat idle (Postgres restarted, or ended the session)
 * still says CONNECTION_OK until it is used, and the request that uses it next would fail. Between
 * requests nothing is due from the server (a statement's result is read to the end and these
 * connections do not LISTEN), so a readable socket means the server's farewell (a FATAL message,
 * then EOF): the connection is replaced before it is handed out. One poll() per request. */
static bool conn_usable(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return false;
    struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
    if (p.fd < 0)
        return false;
    return poll(&p, 1, 0) == 0;
}

PGconn *cp_db(void)
{
    pthread_once(&conn_once, conn_key_init);
    PGconn *conn = pthread_getspecific(conn_key);
    if (conn && conn_usable(conn))
        return conn;
    if (conn) {
        tg_log(TG_LOG_WARN, "cp_db", "reconnecting", "reason=\"connection lost\"");
        PQfinish(conn);
        conn = NULL;
        pthread_setspecific(conn_key, NULL);
    }
    conn = PQconnectdb(cp_opts->database_url);
    if (PQstatus(conn) != CONNECTION_OK) {
        /* the message may quote the DSN's host and user, never its password */
        tg_log(TG_LOG_ERROR, "cp_db", "connect_failed", "reason=\"%.200s\"", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    /* No JIT: it compiles any statement the planner costs high, and the dashboard's reports over a
     * tenant's 90 days (50,000 rollup rows) spent 3-5 s compiling to save tens of milliseconds */
    PQclear(PQexec(conn, "SET TIME ZONE 'UTC'; SET jit = off"));
    pthread_setspecific(conn_key, conn);
    return conn;
}

PGresult *cp_db_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
    if (!c)
        return NULL;
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (!cp_db_ok(res) && PQstatus(c) != CONNECTION_OK)
        tg_log(TG_LOG_WARN, "cp_db", "connection_lost", "status=%d", (int)PQstatus(c));
    return res;
}

bool cp_db_ok(PGresult *res)
{
    if (!res)
        return false;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

json_t *cp_db_json_row(PGresult *res, int row, int col)
{
    if (!cp_db_ok(res) || PQntuples(res) <= row || PQgetisnull(res, row, col))
        return NULL;
    return json_loads(PQgetvalue(res, row, col), 0, NULL);
}

void cp_db_close(void)
{
    pthread_once(&conn_once, conn_key_init);
    PGconn *conn = pthread_getspecific(conn_key);
    pthread_setspecific(conn_key, NULL);
    PQfinish(conn);
}

bool cp_db_sqlstate_is(PGresult *res, const char *state)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, state) == 0;
}

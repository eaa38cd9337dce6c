/* http.c: the control plane's HTTP server on libmicrohttpd (its own epoll thread pool). A request
 * body is collected up to a limit, then the API table runs on the MHD worker thread with that
 * thread's Postgres connection. A long poll (/dp/v1/snapshot) suspends its connection in a list
 * guarded by waiters_mu; cp_http_wake (notifier thread) resumes it and its handler runs again. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp.h"
#include "cp_http.h"
#include "snapshot.h"
#include "tg_log.h"

#include "tg_banned.h"

#define MAX_BODY (1u << 20)
#define MAX_BODY_USAGE (8u << 20) /* POST /dp/v1/usage: up to 5000 events (docs/usage.md) */

typedef struct body body_t;
struct body {
    tg_buf_t buf;
    bool too_big;
    bool counted_on_stop; /* in answered_on_stop until MHD reports the reply sent */
    /* long poll */
    struct MHD_Connection *conn; /* borrowed from MHD for the request's lifetime */
    int64_t deadline_ms;         /* 0 until the handler first waits */
    bool suspend;                /* set by cp_http_long_poll during this dispatch */
    bool waiting;                /* in the waiters list (suspended); under waiters_mu */
    body_t *prev, *next;         /* the waiters list; under waiters_mu */
};

static struct MHD_Daemon *daemon_;
static atomic_ulong status_counts[6]; /* 1xx..5xx */

/* Suspended long polls. wake_gen counts wake-ups so that a handler that checked the version
 * just before a change committed does not sleep through it: it suspends only if no wake-up
 * happened since it started (checked under the lock that cp_http_wake takes). */
static pthread_mutex_t waiters_mu = PTHREAD_MUTEX_INITIALIZER;
static body_t *waiters;
static atomic_ulong wake_gen;
static atomic_int waiting_count; /* suspended or resumed but not yet answered */
static atomic_bool stopping;
static atomic_int answered_on_stop;   /* replies queued while stopping, not yet sent */
static _Thread_local body_t *current; /* the request being dispatched on this worker */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cp_http_long_poll(int64_t timeout_ms)
{
    body_t *b = current;
    if (!b || atomic_load(&stopping))
        return CP_POLL_STOPPING;
    int64_t now = mono_ms();
    if (b->deadline_ms == 0)
        b->deadline_ms = now + timeout_ms;
    if (now >= b->deadline_ms)
        return CP_POLL_TIMED_OUT;
    b->suspend = true;
    return CP_POLL_SUSPENDED;
}

static void waiters_unlink(body_t *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        waiters = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    b->waiting = false;
}

void cp_http_wake(int all)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&waiters_mu);
    if (all)
        atomic_fetch_add(&wake_gen, 1);
    body_t *b = waiters;
    while (b) {
        body_t *next = b->next;
        if (all || now >= b->deadline_ms) {
            waiters_unlink(b);
            MHD_resume_connection(b->conn);
        }
        b = next;
    }
    pthread_mutex_unlock(&waiters_mu);
}

unsigned long cp_http_count(int cls)
{
    return cls >= 1 && cls <= 5 ? atomic_load(&status_counts[cls]) : 0;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, cp_req_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->out.len, r->out.base ? r->out.base : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type",
                            r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* extra headers: "Name: value\r\n" lines */
    char *save = NULL;
    char hdrs[sizeof(r->extra_headers)];
    memcpy(hdrs, r->extra_headers, sizeof(hdrs));
    for (char *line = strtok_r(hdrs, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        MHD_add_response_header(resp, line, v);
    }
    int cls = r->status / 100;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&status_counts[cls], 1);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    body_t *b = *con_cls;
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return MHD_NO;
        /* only the usage batches of data planes are allowed more */
        bool usage = strcmp(method, "POST") == 0 && strcmp(url, "/dp/v1/usage") == 0;
        tg_buf_init(&b->buf, usage ? MAX_BODY_USAGE : MAX_BODY);
        b->conn = c;
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!b->too_big && tg_buf_append(&b->buf, upload_data, *upload_size) != 0)
            b->too_big = true; /* keep reading (and dropping) so the 413 can be sent */
        *upload_size = 0;
        return MHD_YES;
    }
    /* counted before waiting_count drops, so that cp_http_stop never sees both at zero while
     * a woken poll's answer is still to be written */
    if (atomic_load(&stopping) && !b->counted_on_stop) {
        b->counted_on_stop = true;
        atomic_fetch_add(&answered_on_stop, 1);
    }
    if (b->deadline_ms != 0)
        atomic_fetch_sub(&waiting_count, 1); /* resumed: this run answers or suspends again */
    cp_req_t r;
again:
    memset(&r, 0, sizeof(r));
    r.mhd = c;
    r.method = method;
    r.path = url;
    r.body = b->buf.base;
    r.body_len = b->buf.len;
    r.status = 500;
    tg_buf_init(&r.out, 64u << 20);
    client_ip(c, r.ip, sizeof(r.ip));
    if (b->too_big)
        cp_reply_error(&r, 413, "payload_too_large", NULL, "request body is larger than %zu bytes",
                       b->buf.max);
    else {
        unsigned long gen = atomic_load(&wake_gen);
        b->suspend = false;
        current = b;
        cp_api_dispatch(&r);
        current = NULL;
        if (b->suspend) {
            pthread_mutex_lock(&waiters_mu);
            if (gen != atomic_load(&wake_gen) || atomic_load(&stopping)) {
                /* woken while checking: check again instead of sleeping through the change */
                pthread_mutex_unlock(&waiters_mu);
                tg_buf_dispose(&r.out);
                goto again;
            }
            b->waiting = true;
            b->prev = NULL;
            b->next = waiters;
            if (waiters)
                waiters->prev = b;
            waiters = b;
            atomic_fetch_add(&waiting_count, 1);
            MHD_suspend_connection(c);
            pthread_mutex_unlock(&waiters_mu);
            tg_buf_dispose(&r.out);
            return MHD_YES;
        }
    }
    if (atomic_load(&stopping) && !b->counted_on_stop) {
        /* cp_http_stop waits for this reply to leave before the daemon closes connections */
        b->counted_on_stop = true;
        atomic_fetch_add(&answered_on_stop, 1);
    }
    enum MHD_Result ret = send_reply(c, &r);
    tg_buf_dispose(&r.out);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    body_t *b = *con_cls;
    if (b && b->counted_on_stop)
        atomic_fetch_sub(&answered_on_stop, 1);
    if (b) {
        pthread_mutex_lock(&waiters_mu);
        if (b->waiting) { /* only if MHD closes a suspended connection itself */
            waiters_unlink(b);
            atomic_fetch_sub(&waiting_count, 1);
        }
        pthread_mutex_unlock(&waiters_mu);
        tg_buf_dispose(&b->buf);
        free(b);
    }
    *con_cls = NULL;
}

int cp_http_start(const cp_opts_t *o, int *port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)o->listen_port);
    if (inet_pton(AF_INET, o->listen_host, &sin.sin_addr) != 1) {
        tg_log(TG_LOG_ERROR, "cp_http", "bad_listen_address", "host=\"%s\"", o->listen_host);
        return TG_EINVAL;
    }
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                                   MHD_ALLOW_SUSPEND_RESUME,
                               0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&sin, MHD_OPTION_THREAD_POOL_SIZE,
                               (unsigned int)o->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                               NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!daemon_) {
        tg_log(TG_LOG_ERROR, "cp_http", "listen_failed", "addr=%s:%d", o->listen_host,
               o->listen_port);
        return TG_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : o->listen_port;
    return 0;
}

int cp_http_waiting(void)
{
    return atomic_load(&waiting_count);
}

void cp_http_stop(void)
{
    /* answer the long polls (503) before the daemon closes their connections */
    atomic_store(&stopping, true);
    cp_http_wake(1);
    for (int i = 0;
         i < 200 && (atomic_load(&waiting_count) > 0 || atomic_load(&answered_on_stop) > 0); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}

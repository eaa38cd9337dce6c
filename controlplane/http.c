/* http.c: the control plane's HTTP server on libmicrohttpd (its own epoll thread pool). The gate
 * (gate.h) listens and hands over each connection once its head is in; every answer closes its
 * connection, so every request's head passes the gate. When a request's headers are in, and before any body byte is read, its framing is checked (what
 * libmicrohttpd 0.9.75 lets through: see check_head), its route and caller are resolved and its
 * declared length is held against that caller's limit; a refusal is answered at once and closes.
 * Then the body is collected and the API table runs on the MHD worker thread with that thread's
 * Postgres connection. A long poll (/dp/v1/snapshot) suspends its connection in a list guarded by
 * waiters_mu; cp_http_wake (notifier thread) resumes it and its handler runs again. The reaper
 * thread closes connections whose request headers take longer than --header-timeout-s. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cp.h"
#include "cp_http.h"
#include "cp_gate.h"
#include "snapshot.h"
#include "tg_log.h"
#include "web.h"

#include "tg_banned.h"

typedef struct body body_t;
struct body {
    tg_buf_t buf;         /* max: what this caller may send (the API's precheck) */
    cp_principal_t who;   /* resolved from the headers by the API's precheck */
    bool refused;         /* answered when the headers came; the body is never read */
    bool counted_on_stop; /* in answered_on_stop until MHD reports the reply sent */
    /* long poll */
    struct MHD_Connection *conn; /* borrowed from MHD for the request's lifetime */
    int64_t deadline_ms;         /* 0 until the handler first waits */
    bool suspend;                /* set by cp_http_long_poll during this dispatch */
    bool waiting;                /* in the waiters list (suspended); under waiters_mu */
    body_t *prev, *next;         /* the waiters list; under waiters_mu */
};

static struct MHD_Daemon *daemon_;
static const cp_http_api_t *api_; /* what runs the API's requests (cp_http_start) */
static atomic_ulong status_counts[6]; /* 1xx..5xx */

/* Every open connection, for the reaper: a deadline while its next request's headers are
 * awaited. MHD calls the CLOSED notification before it closes the socket, so under conns_mu the
 * fd of a listed connection is still this connection's. */
typedef struct conn_track conn_track_t;
struct conn_track {
    MHD_socket fd;
    int64_t head_deadline_ms; /* 0 while no request head is awaited; under conns_mu */
    size_t linger_bytes;      /* refused with a body unsent or unread: drain this much at close */
    conn_track_t *prev, *next;
};
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static conn_track_t *conns;
static bool reaper_stop; /* under conns_mu */

/* Lingering close (RFC 9112 9.6): a request refused before its body was read still has that
 * body on the way. Closing at once with unread bytes makes the kernel send a reset, and the
 * client, still writing, may never see the answer. So the reaper keeps a duplicate of the
 * socket after MHD closes its own, reads and drops up to linger_bytes for up to LINGER_MS,
 * then closes it. Bounded in sockets, bytes and time. */
#define LINGER_MAX 64
#define LINGER_MS 2000
#define LINGER_AUTHENTICATED (16u << 20)
typedef struct lingerer {
    int fd;
    size_t left;
    int64_t deadline_ms;
} lingerer_t;
static lingerer_t lingering[LINGER_MAX]; /* [0, n_lingering) under conns_mu */
static int n_lingering;
static bool reaper_running;
static pthread_t reaper;
static int64_t header_timeout_ms;

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
    if (cls < 1 || cls > 5)
        return 0;
    return atomic_load(&status_counts[cls]) + (cls == 4 ? cp_gate_answered() : 0);
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

/* The dashboard's policy: its own scripts, styles and API only, never framed. Sent on every
 * answer (an API answer opened as a page gets it too). */
#define CP_WEB_CSP                                                                                 \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                 \
    "frame-ancestors 'none'"

static void add_security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CP_WEB_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
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
    add_security_headers(resp);
    /* one request per connection: the next one's head passes the gate (gate.h) */
    MHD_add_response_header(resp, "Connection", "close");
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

/* The tracking entry on_connection made for this connection, or NULL. */
static conn_track_t *conn_track_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void head_deadline_set(struct MHD_Connection *c, bool awaiting)
{
    conn_track_t *t = conn_track_of(c);
    if (!t)
        return;
    pthread_mutex_lock(&conns_mu);
    t->head_deadline_ms = awaiting ? mono_ms() + header_timeout_ms : 0;
    pthread_mutex_unlock(&conns_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track_t *t = ci ? calloc(1, sizeof(*t)) : NULL;
        if (!t)
            return; /* not reaped; the idle timeout still applies */
        t->fd = ci->connect_fd;
        pthread_mutex_lock(&conns_mu);
        t->head_deadline_ms = mono_ms() + header_timeout_ms;
        t->next = conns;
        if (conns)
            conns->prev = t;
        conns = t;
        pthread_mutex_unlock(&conns_mu);
        *socket_context = t;
        return;
    }
    conn_track_t *t = *socket_context;
    if (!t)
        return;
    pthread_mutex_lock(&conns_mu);
    int unread = 0;
    if (t->linger_bytes == 0 && ioctl(t->fd, FIONREAD, &unread) == 0 && unread > 0)
        t->linger_bytes = CP_BODY_MAX_ANON; /* pipelined requests: closing would reset */
    if (t->linger_bytes > 0 && n_lingering < LINGER_MAX) {
        /* MHD has sent the answer and shut down its side for writing; it closes its fd after
         * this call, the duplicate keeps the socket open for the drain */
        int fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            lingering[n_lingering].fd = fd;
            lingering[n_lingering].left = t->linger_bytes;
            lingering[n_lingering].deadline_ms = mono_ms() + LINGER_MS;
            n_lingering++;
            pthread_cond_signal(&reaper_cv);
        }
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&conns_mu);
    free(t);
    *socket_context = NULL;
}

/* Reads and drops what a lingering socket has; false when it is done with (end of stream, an
 * error, its byte budget or its time spent). Reaper thread. */
static bool linger_drain(lingerer_t *l, int64_t now)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            l->left = (size_t)n >= l->left ? 0 : l->left - (size_t)n;
            if (l->left == 0)
                return false;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return now < l->deadline_ms;
        return false;
    }
}

/* The idle timeout of libmicrohttpd restarts with every byte, so a client sending its headers a
 * byte at a time would hold a connection forever; this thread ends such connections at the
 * deadline. shutdown() (not close) makes MHD read end-of-file and close the socket itself. It
 * also drains the lingering sockets. */
static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&conns_mu);
    while (!reaper_stop) {
        int64_t now = mono_ms();
        for (conn_track_t *t = conns; t; t = t->next) {
            if (t->head_deadline_ms == 0 || now < t->head_deadline_ms)
                continue;
            t->head_deadline_ms = 0;
            shutdown(t->fd, SHUT_RDWR);
            tg_log(TG_LOG_INFO, "cp_http", "header_timeout", "after_ms=%lld",
                   (long long)header_timeout_ms);
        }
        for (int i = 0; i < n_lingering;) {
            if (linger_drain(&lingering[i], now)) {
                i++;
                continue;
            }
            close(lingering[i].fd);
            lingering[i] = lingering[--n_lingering];
        }
        if (n_lingering > 0) {
            /* wait for bytes to drop; new lingerers and stop wait at most this long */
            struct pollfd pf[LINGER_MAX];
            int n = n_lingering;
            for (int i = 0; i < n; i++) {
                pf[i].fd = lingering[i].fd;
                pf[i].events = POLLIN;
                pf[i].revents = 0;
            }
            pthread_mutex_unlock(&conns_mu);
            poll(pf, (nfds_t)n, 50);
            pthread_mutex_lock(&conns_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&reaper_cv, &conns_mu, &ts);
    }
    for (int i = 0; i < n_lingering; i++)
        close(lingering[i].fd);
    n_lingering = 0;
    pthread_mutex_unlock(&conns_mu);
    return NULL;
}

/* ---- the request head ----
 * libmicrohttpd 0.9.75 refuses a malformed request line, an HTTP version it does not know and a
 * Content-Length that is not plain digits (itself, before the first call, with its status line
 * and headers sent twice: see framing_control.test.mjs), but passes on duplicate and conflicting
 * framing headers, transfer codings it does not implement, control characters in header lines,
 * whitespace before the colon, and it cuts a header value at a NUL without a word. */

typedef struct head_scan {
    int n_host, n_length, n_coding;
    const char *length; /* the Content-Length value */
    const char *coding; /* the Transfer-Encoding value, coding_len bytes */
    size_t coding_len;
    const char *problem; /* the first one found, for the 400 */
    /* the raw head, as MHD parsed it in place: bytes between the fields it gave us */
    const char *pos, *end;
} head_scan_t;

static bool name_is(const char *key, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(key, want, n) == 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Between the fields of a head parsed in place only separators may be left: the colon, blanks
 * around a value and line ends, all of which MHD may have overwritten with NULs. Anything else
 * was cut off a field: the rest of a value after a NUL. */
static bool only_separators(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != '\0' && *p != ' ' && *p != '\t' && *p != ':' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t ks,
                                  const char *value, size_t vs)
{
    (void)kind;
    head_scan_t *h = cls;
    if (ks == 0) {
        h->problem = "a header line has no name";
        return MHD_NO;
    }
    for (size_t i = 0; i < ks; i++) {
        if (!is_tchar((unsigned char)key[i])) {
            h->problem = key[i] == ' ' || key[i] == '\t'
                             ? "whitespace between a header name and its colon"
                             : "a header name holds a character other than letters, digits and "
                               "!#$%&'*+-.^_`|~";
            return MHD_NO;
        }
    }
    for (size_t i = 0; value && i < vs; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            h->problem = ch == '\r' ? "a header value holds a CR that does not end the line"
                                    : "a header value holds a control character";
            return MHD_NO;
        }
    }
    if (h->pos) {
        const char *v = value ? value : key + ks;
        if (key < h->pos || v < key + ks || v + vs > h->end || !only_separators(h->pos, key) ||
            !only_separators(key + ks, v)) {
            h->problem = "a header line holds a NUL or is folded over two lines";
            return MHD_NO;
        }
        h->pos = v + vs;
    }
    if (name_is(key, ks, "host"))
        h->n_host++;
    else if (name_is(key, ks, "content-length")) {
        h->n_length++;
        h->length = value;
    } else if (name_is(key, ks, "transfer-encoding")) {
        h->n_coding++;
        h->coding = value;
        h->coding_len = vs;
    }
    return MHD_YES;
}

/* Checks the framing of a request whose headers are in. 0 with *length the declared body size;
 * otherwise the reply is filled (400, 411, 505) and the connection must close. */
static int check_head(struct MHD_Connection *c, const char *method, const char *version,
                      cp_req_t *r, uint64_t *length)
{
    *length = 0;
    bool http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
    if (!http11 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0) {
        cp_reply_error(r, 505, "http_version_not_supported", NULL,
                       "HTTP version %.20s is not supported; send HTTP/1.1 or HTTP/1.0", version);
        return -1;
    }
    head_scan_t h;
    memset(&h, 0, sizeof(h));
    /* The head is [method, method + size) in MHD's read buffer; the request line before the
     * first header is left out (MHD decodes the target in place). */
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t vlen = strlen(version);
    if (hi && version > method && version + vlen < method + hi->header_size) {
        h.pos = version + vlen;
        h.end = method + hi->header_size;
    }
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_field, &h);
    if (!h.problem && h.pos && !only_separators(h.pos, h.end))
        h.problem = "a header line holds a NUL";
    if (!h.problem && http11 && h.n_host != 1)
        h.problem =
            h.n_host == 0 ? "an HTTP/1.1 request needs a Host header" : "more than one Host header";
    if (!h.problem && h.n_length > 1)
        h.problem = "more than one Content-Length header";
    if (!h.problem && h.n_coding > 0 && h.n_length > 0)
        h.problem = "both Content-Length and Transfer-Encoding: the body's length is ambiguous";
    if (!h.problem && (h.n_coding > 1 || (h.coding && !name_is(h.coding, h.coding_len, "chunked"))))
        h.problem = "unsupported Transfer-Encoding; only chunked is known";
    if (!h.problem && h.n_coding > 0 && !http11)
        h.problem = "Transfer-Encoding in an HTTP/1.0 request";
    if (h.problem) {
        cp_reply_error(r, 400, "bad_request", NULL, "malformed request: %s", h.problem);
        return -1;
    }
    if (h.n_coding > 0) {
        /* A chunked body cannot be measured before it is read, and libmicrohttpd 0.9.75
         * neither queues an answer while a body comes in (MHD_queue_response is refused
         * between the first call and the last) nor lets us see chunk-size lines: one longer
         * than its read buffer (a huge chunk extension) gets its own 500. */
        cp_reply_error(r, 411, "length_required", NULL,
                       "send the body with Content-Length, not Transfer-Encoding: chunked");
        return -1;
    }
    if (h.length) {
        /* digits only: MHD checked that much, but not the number's range */
        char *end;
        errno = 0;
        unsigned long long v = strtoull(h.length, &end, 10);
        if (errno || end == h.length || *end || h.length[0] < '0' || h.length[0] > '9') {
            cp_reply_error(r, 400, "bad_request", NULL, "malformed request: bad Content-Length");
            return -1;
        }
        *length = v;
    }
    return 0;
}

static int hex_val(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes %XX in the path and query values in place, as MHD's own does, except %00: MHD's
 * callers see C strings, so a decoded NUL would cut "/js/app.js%00.css" to "/js/app.js" (and
 * "/api/v1/me%00x" to "/api/v1/me"). It stays as the three characters, which match nothing. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (p[0] == '%' && (hi = hex_val(p[1])) >= 0 && (lo = hex_val(p[2])) >= 0 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void req_init(cp_req_t *r, struct MHD_Connection *c, const char *method, const char *url)
{
    memset(r, 0, sizeof(*r));
    r->mhd = c;
    r->method = method;
    r->path = url;
    r->status = 500;
    tg_buf_init(&r->out, 64u << 20);
    client_ip(c, r->ip, sizeof(r->ip));
}

static void linger_set(struct MHD_Connection *c, size_t bytes)
{
    conn_track_t *t = conn_track_of(c);
    if (!t)
        return;
    pthread_mutex_lock(&conns_mu);
    t->linger_bytes = bytes;
    pthread_mutex_unlock(&conns_mu);
}

/* A dashboard file (or 404/405), answered from memory when the headers are in; a body sent
 * with it is never read. */
static enum MHD_Result send_web(struct MHD_Connection *c, cp_req_t *r)
{
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    const cp_web_file_t *f = cp_web_find(r->path);
    if (!f || !get) {
        if (f)
            cp_reply_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %.200s",
                           r->method, r->path);
        else if (strcmp(r->path, "/") == 0 && !cp_web_loaded())
            cp_reply_error(r, 404, "not_found", NULL,
                           "the dashboard's files are missing: build the project (the build "
                           "copies web/ to <build>/web) or point --web-dir at them");
        else
            cp_reply_error(r, 404, "not_found", NULL, "no such page or endpoint: %.200s", r->path);
        if (f)
            snprintf(r->extra_headers, sizeof(r->extra_headers), "Allow: GET, HEAD\r\n");
        return send_reply(c, r);
    }
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    bool fresh = inm && cp_web_etag_match(inm, f->etag);
    /* the file outlives the daemon: MHD sends it from where it is */
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : f->len, fresh ? (void *)"" : (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (!fresh)
        MHD_add_response_header(resp, "Content-Type", f->content_type);
    /* cached, but asked again each time: a new build is seen at once, an unchanged file costs a
     * 304 */
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "ETag", f->etag);
    add_security_headers(resp);
    MHD_add_response_header(resp, "Connection", "close"); /* as send_reply */
    unsigned int status = fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    atomic_fetch_add(&status_counts[status / 100], 1);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The first call for a request: its headers are in and no body byte has been read. */
static enum MHD_Result on_head(struct MHD_Connection *c, body_t *b, const char *url,
                               const char *method, const char *version)
{
    head_deadline_set(c, false);
    cp_req_t r;
    req_init(&r, c, method, url);
    uint64_t length = 0;
    size_t max = 0;
    int rc = check_head(c, method, version, &r, &length);
    bool malformed = rc != 0; /* what follows the head cannot be told from a body */
    if (rc == 0 && cp_web_owns(url)) {
        b->refused = true; /* answered now; a body is never read */
        if (length > 0)
            linger_set(c, CP_BODY_MAX_ANON);
        enum MHD_Result ret = send_web(c, &r);
        tg_buf_dispose(&r.out);
        return ret;
    }
    if (rc == 0)
        rc = api_->precheck(&r, &max);
    if (rc == 0 && length > max) {
        cp_reply_error(&r, 413, "payload_too_large", NULL,
                       "request body of %llu bytes is larger than the %zu bytes this endpoint "
                       "takes%s",
                       (unsigned long long)length, max,
                       max == CP_BODY_MAX_ANON ? " before authentication" : "");
        rc = -1;
    }
    if (rc == 0) {
        b->who = r.who;
        tg_buf_init(&b->buf, max);
        tg_buf_dispose(&r.out);
        return MHD_YES;
    }
    b->refused = true;
    if (length > 0 || malformed)
        linger_set(c, r.who.authenticated || (r.status == 413 && max > CP_BODY_MAX_ANON)
                          ? (length < LINGER_AUTHENTICATED ? length : LINGER_AUTHENTICATED)
                          : CP_BODY_MAX_ANON);
    if (r.status == 400 || r.status == 411 || r.status == 413 || r.status == 505)
        tg_log(TG_LOG_INFO, "cp_http", "request_refused", "status=%d ip=%s", r.status, r.ip);
    enum MHD_Result ret = send_reply(c, &r);
    tg_buf_dispose(&r.out);
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
        b->conn = c;
        *con_cls = b;
        return on_head(c, b, url, method, version);
    }
    if (b->refused) /* answered already: MHD reads no body after a queued reply */
        return MHD_YES;
    if (*upload_size) {
        /* the declared length was held against the limit, so this only fails if MHD
         * delivers more than that; close rather than read on */
        if (tg_buf_append(&b->buf, upload_data, *upload_size) != 0)
            return MHD_NO;
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
    req_init(&r, c, method, url);
    r.body = b->buf.base;
    r.body_len = b->buf.len;
    r.who = b->who;
    {
        unsigned long gen = atomic_load(&wake_gen);
        b->suspend = false;
        current = b;
        api_->dispatch(&r);
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
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        head_deadline_set(c, true); /* keep-alive: the next request's head is awaited */
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

static void stop_reaper(void)
{
    if (!reaper_running)
        return;
    pthread_mutex_lock(&conns_mu);
    reaper_stop = true;
    pthread_cond_signal(&reaper_cv);
    pthread_mutex_unlock(&conns_mu);
    pthread_join(reaper, NULL);
    reaper_running = false;
}

/* The security headers of every answer, on the gate's own answers too. */
#define GATE_HEADERS                                                                               \
    "Content-Security-Policy: " CP_WEB_CSP "\r\nX-Content-Type-Options: nosniff\r\n"              \
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"

/* Gate thread: a connection whose head is in; MHD closes fd if it cannot take it. */
static void gate_pass(int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    if (MHD_add_connection(daemon_, fd, addr, addr_len) != MHD_YES)
        tg_log(TG_LOG_WARN, "cp_http", "connection_refused", "errno=%d", errno);
}

int cp_http_start(const cp_opts_t *o, const cp_http_api_t *api, int *port)
{
    api_ = api;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)o->listen_port);
    if (inet_pton(AF_INET, o->listen_host, &sin.sin_addr) != 1) {
        tg_log(TG_LOG_ERROR, "cp_http", "bad_listen_address", "host=\"%s\"", o->listen_host);
        return TG_EINVAL;
    }
    header_timeout_ms = (int64_t)o->header_timeout_s * 1000;
    pthread_mutex_lock(&conns_mu);
    reaper_stop = false;
    pthread_mutex_unlock(&conns_mu);
    if (pthread_create(&reaper, NULL, reaper_main, NULL) != 0) {
        tg_log(TG_LOG_ERROR, "cp_http", "reaper_start_failed", "reason=\"thread\"");
        return TG_EIO;
    }
    reaper_running = true;
    /* No MHD_OPTION_STRICT_FOR_CLIENT: its Host check answers through the same path of 0.9.75
     * that writes the status line twice (as for a malformed Content-Length); check_head checks
     * Host itself. The idle timeout covers bodies and replies; heads have the reaper. */
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
        0, NULL, NULL, on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)o->threads, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)o->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)o->max_connections_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(64 * 1024), MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!daemon_) {
        tg_log(TG_LOG_ERROR, "cp_http", "start_failed", "addr=%s:%d", o->listen_host,
               o->listen_port);
        stop_reaper();
        return TG_EIO;
    }
    /* the gate listens and hands each connection over once its head is in */
    cp_gate_opts_t g = {
        .addr = (const struct sockaddr *)&sin,
        .addr_len = sizeof(sin),
        .max_pending = o->max_connections,
        .max_pending_per_ip = o->max_connections_per_ip,
        .header_timeout_ms = (int)header_timeout_ms,
        .extra_headers = GATE_HEADERS,
        .pass = gate_pass,
    };
    if (cp_gate_start(&g, port) != 0) {
        tg_log(TG_LOG_ERROR, "cp_http", "listen_failed", "addr=%s:%d", o->listen_host,
               o->listen_port);
        MHD_stop_daemon(daemon_);
        daemon_ = NULL;
        stop_reaper();
        return TG_EIO;
    }
    return 0;
}

int cp_http_waiting(void)
{
    return atomic_load(&waiting_count);
}

void cp_http_stop(void)
{
    cp_gate_stop(); /* no new connection from here on */
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
    stop_reaper();
}

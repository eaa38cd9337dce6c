/* gate.c: see gate.h. Every connection waits in a slot of a fixed table until its head is in
 * (edge-triggered epoll: each arrival of bytes peeks the whole head again, bounded by
 * GATE_PEEK_MAX and the header timeout). A refused connection stays in its slot while the bytes
 * the client still sends are read and dropped for a moment, so that closing it does not reset
 * the answer before the client has read it. */
#define _GNU_SOURCE /* accept4, memrchr, eventfd */
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cp_gate.h"
#include "tg_err.h"
#include "tg_log.h"

#include "tg_banned.h"

/* As much of a head as the server's read buffer holds: a longer head is the server's to refuse */
#define GATE_PEEK_MAX (64 * 1024)
#define GATE_LINGER_MS 2000
#define GATE_LINGER_BYTES (256 * 1024)
#define GATE_EMFILE_PAUSE_MS 100
#define EV_LISTEN UINT64_MAX
#define EV_WAKE (UINT64_MAX - 1)

typedef struct slot {
    int fd; /* -1 when free */
    bool lingering;
    int64_t deadline_ms;
    size_t linger_left;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} slot_t;

static struct {
    cp_gate_opts_t o;
    int listen_fd, epoll_fd, wake_fd;
    slot_t *slots;
    unsigned n_used;
    int64_t accept_paused_until; /* 0 unless out of descriptors */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    char peek[GATE_PEEK_MAX];
} g = {.listen_fd = -1, .epoll_fd = -1, .wake_fd = -1};

static atomic_ulong answered;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- judging a head ---- */

/* The end of the line starting at p (its '\n'), or NULL. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* A line's length without its "\r\n" or "\n". */
static size_t line_len(const char *p, const char *nl)
{
    return (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
}

/* Content-Length's value as libmicrohttpd 0.9.75 reads it: blanks before, then digits only. */
static cp_gate_verdict_t judge_length(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i == n)
        return CP_GATE_BAD;
    uint64_t x = 0;
    bool overflow = false;
    for (; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return CP_GATE_BAD;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            x = x * 10 + d;
    }
    return overflow ? CP_GATE_TOO_LARGE : CP_GATE_PASS;
}

cp_gate_verdict_t cp_gate_judge(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p < end && (*p == '\r' || *p == '\n')) /* empty lines before the request line */
        p++;
    const char *nl = line_end(p, end);
    if (!nl)
        return CP_GATE_MORE;
    /* Not "METHOD TARGET HTTP/x.y" (HTTP/0.9 has no headers): the server answers it as it is. */
    size_t n = line_len(p, nl);
    const char *sp = n ? memrchr(p, ' ', n) : NULL;
    if (!sp || (size_t)(p + n - (sp + 1)) < 5 || memcmp(sp + 1, "HTTP/", 5) != 0)
        return CP_GATE_PASS;
    cp_gate_verdict_t v = CP_GATE_PASS;
    bool in_length = false; /* the previous field was a Content-Length */
    for (p = nl + 1; p < end; p = nl + 1) {
        nl = line_end(p, end);
        if (!nl)
            return CP_GATE_MORE;
        n = line_len(p, nl);
        if (n == 0)
            return v; /* the empty line: the head is complete */
        if (v != CP_GATE_PASS)
            continue; /* judged already; still wait for the whole head */
        if (p[0] == ' ' || p[0] == '\t') { /* a folded line continues the previous field */
            if (in_length)
                v = CP_GATE_BAD;
            continue;
        }
        static const char name[] = "content-length:";
        in_length = n >= sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0;
        if (in_length)
            v = judge_length(p + sizeof(name) - 1, n - (sizeof(name) - 1));
    }
    return CP_GATE_MORE;
}

/* ---- the thread ---- */

static void slot_close(slot_t *s)
{
    epoll_ctl(g.epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    g.n_used--;
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/* A free slot for a new connection from addr, or NULL when a limit is reached. */
static slot_t *slot_for(const struct sockaddr_storage *addr)
{
    if (g.n_used >= g.o.max_pending)
        return NULL;
    slot_t *free_slot = NULL;
    unsigned same = 0;
    for (unsigned i = 0; i < g.o.max_pending; i++) {
        slot_t *s = &g.slots[i];
        if (s->fd < 0) {
            if (!free_slot)
                free_slot = s;
        } else if (same_ip(&s->addr, addr) && ++same >= g.o.max_pending_per_ip) {
            return NULL;
        }
    }
    return free_slot;
}

static void accept_all(int64_t now)
{
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        int fd = accept4(g.listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the listening socket stays readable: stop watching it for a moment */
                tg_log(TG_LOG_WARN, "cp_gate", "accept_paused", "errno=%d", errno);
                epoll_ctl(g.epoll_fd, EPOLL_CTL_DEL, g.listen_fd, NULL);
                g.accept_paused_until = now + GATE_EMFILE_PAUSE_MS;
            }
            return; /* EAGAIN, or a connection that went away before it was taken */
        }
        slot_t *s = slot_for(&addr);
        if (!s) {
            close(fd); /* over the limits: as libmicrohttpd does, closed without an answer */
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)(s - g.slots)};
        if (epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            continue;
        }
        s->fd = fd;
        s->lingering = false;
        s->deadline_ms = now + g.o.header_timeout_ms;
        s->addr = addr;
        s->addr_len = len;
        g.n_used++;
    }
}

static void answer(slot_t *s, cp_gate_verdict_t v, int64_t now)
{
    const char *status = v == CP_GATE_BAD ? "400 Bad Request" : "413 Content Too Large";
    const char *body =
        v == CP_GATE_BAD
            ? "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed request: "
              "Content-Length must be a number in plain digits (0-9)\"}}"
            : "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"request body larger "
              "than any this server takes: Content-Length is past 2^64 - 1\"}}";
    char out[2048];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                     "%sConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     status, g.o.extra_headers ? g.o.extra_headers : "", strlen(body), body);
    size_t left = n > 0 && (size_t)n < sizeof(out) ? (size_t)n : 0, off = 0;
    while (left > 0) { /* the socket's buffer is empty: this fits */
        ssize_t w = send(s->fd, out + off, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
        left -= (size_t)w;
    }
    atomic_fetch_add(&answered, 1);
    tg_log(TG_LOG_INFO, "cp_gate", "refused", "status=%.3s reason=\"content_length\"", status);
    shutdown(s->fd, SHUT_WR);
    s->lingering = true;
    s->linger_left = GATE_LINGER_BYTES;
    s->deadline_ms = now + GATE_LINGER_MS;
}

/* Reads and drops what a refused client still sends; closes at its end or its budget. */
static void linger(slot_t *s)
{
    for (;;) {
        ssize_t r = recv(s->fd, g.peek, sizeof(g.peek), MSG_DONTWAIT);
        if (r > 0 && (size_t)r < s->linger_left) {
            s->linger_left -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        slot_close(s);
        return;
    }
}

static void on_ready(slot_t *s, int64_t now)
{
    if (s->lingering) {
        linger(s);
        return;
    }
    ssize_t r;
    do
        r = recv(s->fd, g.peek, sizeof(g.peek), MSG_PEEK | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (r <= 0) {
        slot_close(s); /* gone before a whole head */
        return;
    }
    cp_gate_verdict_t v = cp_gate_judge(g.peek, (size_t)r);
    if (v == CP_GATE_MORE && (size_t)r == sizeof(g.peek))
        v = CP_GATE_PASS; /* a head this long is the server's to refuse */
    if (v == CP_GATE_MORE)
        return;
    if (v != CP_GATE_PASS) {
        answer(s, v, now);
        return;
    }
    int fd = s->fd;
    epoll_ctl(g.epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    s->fd = -1;
    g.n_used--;
    g.o.pass(fd, (const struct sockaddr *)&s->addr, s->addr_len);
}

/* Closes what is past its deadline; the time until the next one (at most a second). */
static int expire(int64_t now)
{
    int64_t next = now + 1000;
    for (unsigned i = 0; i < g.o.max_pending && g.n_used > 0; i++) {
        slot_t *s = &g.slots[i];
        if (s->fd < 0)
            continue;
        if (s->deadline_ms <= now) {
            if (!s->lingering)
                tg_log(TG_LOG_INFO, "cp_gate", "header_timeout", "after_ms=%d",
                       g.o.header_timeout_ms);
            slot_close(s);
        } else if (s->deadline_ms < next) {
            next = s->deadline_ms;
        }
    }
    if (g.accept_paused_until) {
        if (g.accept_paused_until <= now) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_LISTEN};
            epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, g.listen_fd, &ev);
            g.accept_paused_until = 0;
        } else if (g.accept_paused_until < next) {
            next = g.accept_paused_until;
        }
    }
    return (int)(next - now);
}

static void *gate_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[64];
    int timeout = 1000;
    while (!atomic_load(&g.stop)) {
        int n = epoll_wait(g.epoll_fd, evs, 64, timeout);
        int64_t now = mono_ms();
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            if (id == EV_LISTEN)
                accept_all(now);
            else if (id == EV_WAKE)
                break; /* stop is set */
            else if (g.slots[id].fd >= 0)
                on_ready(&g.slots[id], now);
        }
        timeout = expire(now);
    }
    return NULL;
}

static void gate_free(void)
{
    if (g.slots) {
        for (unsigned i = 0; i < g.o.max_pending; i++)
            if (g.slots[i].fd >= 0)
                close(g.slots[i].fd);
        free(g.slots);
        g.slots = NULL;
    }
    int *fds[] = {&g.listen_fd, &g.epoll_fd, &g.wake_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    g.n_used = 0;
}

int cp_gate_start(const cp_gate_opts_t *o, int *port)
{
    g.o = *o;
    g.slots = calloc(o->max_pending ? o->max_pending : 1, sizeof(*g.slots));
    if (!g.slots)
        return TG_ENOMEM;
    for (unsigned i = 0; i < o->max_pending; i++)
        g.slots[i].fd = -1;
    atomic_store(&g.stop, false);
    g.listen_fd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (g.listen_fd < 0 ||
        setsockopt(g.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(g.listen_fd, o->addr, o->addr_len) != 0 || listen(g.listen_fd, 511) != 0) {
        tg_log(TG_LOG_ERROR, "cp_gate", "listen_failed", "errno=%d", errno);
        gate_free();
        return TG_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(g.listen_fd, (struct sockaddr *)&bound, &blen);
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    g.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = EV_LISTEN};
    struct epoll_event wev = {.events = EPOLLIN, .data.u64 = EV_WAKE};
    if (g.epoll_fd < 0 || g.wake_fd < 0 ||
        epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, g.listen_fd, &lev) != 0 ||
        epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, g.wake_fd, &wev) != 0 ||
        pthread_create(&g.thread, NULL, gate_main, NULL) != 0) {
        tg_log(TG_LOG_ERROR, "cp_gate", "start_failed", "errno=%d", errno);
        gate_free();
        return TG_EIO;
    }
    g.running = true;
    return 0;
}

void cp_gate_stop(void)
{
    if (!g.running)
        return;
    atomic_store(&g.stop, true);
    uint64_t one = 1;
    if (write(g.wake_fd, &one, sizeof(one)) < 0)
        tg_log(TG_LOG_WARN, "cp_gate", "wake_failed", "errno=%d", errno);
    pthread_join(g.thread, NULL);
    g.running = false;
    gate_free();
}

unsigned long cp_gate_answered(void)
{
    return atomic_load(&answered);
}

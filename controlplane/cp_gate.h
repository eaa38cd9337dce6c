/* cp_gate.h: the control plane's door. It accepts connections, waits for each one's request head
 * without reading it (MSG_PEEK), answers a head libmicrohttpd 0.9.75 would answer badly (a
 * Content-Length that is not plain digits: MHD sends its status line and headers twice) with
 * exactly one response and a close, and hands every other connection to the HTTP server. The
 * server answers one request per connection (Connection: close), so every request passes here.
 * One thread, its own epoll set. */
#ifndef CP_GATE_H
#define CP_GATE_H

#include <stddef.h>
#include <sys/socket.h>

/* What a request head looks like to the gate. */
typedef enum cp_gate_verdict {
    CP_GATE_MORE,     /* the head is not complete yet */
    CP_GATE_PASS,     /* hand the connection to the server (which checks the rest) */
    CP_GATE_BAD,      /* a Content-Length that is not plain digits: 400 */
    CP_GATE_TOO_LARGE /* a Content-Length past 2^64 - 1: 413 */
} cp_gate_verdict_t;

/* Judges the bytes received so far on a connection, buf[0, len). Pure. */
cp_gate_verdict_t cp_gate_judge(const char *buf, size_t len);

/* Takes a connection whose head was judged PASS; owns fd from then on (closes it on failure).
 * Gate thread. */
typedef void (*cp_gate_pass_fn)(int fd, const struct sockaddr *addr, socklen_t addr_len);

typedef struct cp_gate_opts {
    const struct sockaddr *addr; /* where to listen */
    socklen_t addr_len;
    unsigned max_pending;        /* connections waiting here for their head, in total */
    unsigned max_pending_per_ip; /* and from one client address */
    int header_timeout_ms;       /* a head not complete by then: closed without an answer */
    const char *extra_headers;   /* "Name: value\r\n" lines added to the gate's own answers */
    cp_gate_pass_fn pass;
} cp_gate_opts_t;

/* Listens and starts the gate's thread; *port receives the bound port. 0 or a TG_E* code. */
int cp_gate_start(const cp_gate_opts_t *o, int *port);
/* Stops accepting, closes the connections still waiting, joins the thread. */
void cp_gate_stop(void);
/* Requests the gate answered itself (all 4xx), for /metrics. */
unsigned long cp_gate_answered(void);

#endif

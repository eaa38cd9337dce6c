/* shipper.c: the usage shipper thread (see shipper.h). It reads the spool with pread(2) up to
 * the end the writer published, so it only ever sees whole lines; posts them with a blocking
 * curl easy handle; and on each 200 tells the ledger, moves the cursor and deletes finished
 * segments. Shipper thread only, except the published end (under sh.mu) and the counters
 * (atomics), which the writer thread and /metrics touch. */
#include "shipper.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "sync.h"
#include "tg_buf.h"
#include "tg_log.h"
#include "tg_rand.h"
#include "tg_time.h"
#include "usage.h"

#include "tg_banned.h"

#define BATCH_MAX 1000         /* events per POST (docs/usage.md) */
#define BATCH_BYTES (4u << 20) /* the control plane takes up to 8 MiB */
#define READ_CHUNK (256u << 10)
#define ANSWER_MAX (64u << 20) /* the answer lists every budget's spend */
#define SHIP_INTERVAL_US 1000000ull
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* Past this wait, a control plane (or its database) that did not answer is probed with an empty
 * heartbeat every PROBE_MIN_MS..PROBE_MAX_MS: shipping resumes within a second of it answering,
 * without posting whole batches at that pace while it is away. */
#define PROBE_AFTER_MS 1000
#define PROBE_MIN_MS 250
#define PROBE_MAX_MS 750
#define POST_TIMEOUT_MS 15000L
#define CONNECT_TIMEOUT_MS 3000L

typedef struct batch {
    tg_buf_t body;
    size_t ends[BATCH_MAX]; /* offset in body just past each line's "\n" */
    size_t n;
    bool full;           /* cut at BATCH_MAX or BATCH_BYTES: more is waiting */
    uint64_t seq;        /* the segment the lines come from; a batch never spans two */
    uint64_t start, end; /* their byte range in it */
} batch_t;

static struct {
    char dir[4096];
    char url[4200];
    uint64_t run_seq; /* first segment written by this process */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    /* under mu */
    uint64_t w_seq, w_len; /* the writer's published end: segment and bytes in it */
    bool stop;
    uint64_t deadline_us; /* when stopping: give up after this (tg_mono_us) */
    /* any thread */
    atomic_bool enabled;
    atomic_bool stopping; /* mirrors stop for the curl progress callback */
    atomic_uint_fast64_t deadline;
    atomic_uint_fast64_t spooled, shipped, rejected, failures;
    atomic_llong pending;
    /* shipper thread only */
    uint64_t cur_seq, cur_off; /* acknowledged up to here: the cursor */
    int fd;                    /* segment cur_seq, read-only */
    uint64_t fd_seq;
    bool outage;
    uint64_t outage_since_us, outage_tries;
    dp_usage_line_t lines[BATCH_MAX]; /* the batch's events read back, for the ledger */
    dp_ledger_event_t evs[BATCH_MAX];
} sh = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* ---- spool files ---- */

void dp__spool_segment_path(char *out, size_t n, const char *dir, uint64_t seq)
{
    snprintf(out, n, "%s/usage-%020" PRIu64 ".ndjson", dir, seq);
}

bool dp__spool_segment_seq(const char *name, uint64_t *seq)
{
    size_t n = strlen(name);
    if (n != 6 + 20 + 7 || memcmp(name, "usage-", 6) != 0 || memcmp(name + 26, ".ndjson", 7) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 6; i < 26; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

/* Finds the smallest segment number above `above` (UINT64_MAX if none) and the largest (0 if
 * none); with unlink_below, deletes every segment below that number. */
static int spool_scan(uint64_t above, uint64_t *next, uint64_t *max, uint64_t unlink_below)
{
    DIR *d = opendir(sh.dir);
    if (!d)
        return -errno;
    *next = UINT64_MAX;
    *max = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t s;
        if (!dp__spool_segment_seq(de->d_name, &s))
            continue;
        if (s < unlink_below) {
            char p[4200];
            dp__spool_segment_path(p, sizeof(p), sh.dir, s);
            if (unlink(p) == 0)
                tg_log(TG_LOG_INFO, "dp_usage", "segment_deleted",
                       "seq=%" PRIu64 " reason=\"acknowledged before the last stop\"", s);
            continue;
        }
        if (s > *max)
            *max = s;
        if (s > above && s < *next)
            *next = s;
    }
    closedir(d);
    return 0;
}

static int cursor_load(uint64_t *seq, uint64_t *off)
{
    char p[4200], text[64];
    snprintf(p, sizeof(p), "%s/cursor", sh.dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -errno;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return TG_EINVAL;
    text[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long s = strtoull(text, &end, 10);
    if (errno || end == text || *end != ' ' || text[0] == '-')
        return TG_EINVAL;
    char *p2 = end + 1;
    unsigned long long o = strtoull(p2, &end, 10);
    if (errno || end == p2 || *end != '\n' || *p2 == '-')
        return TG_EINVAL;
    *seq = s;
    *off = o;
    return 0;
}

/* tmp + fsync + rename: a crash leaves the old cursor or the new one, never half of one. An
 * old one only means some events are sent again, and the control plane drops duplicates. */
static int cursor_save(void)
{
    char p[4200], tmp[4200], text[64];
    snprintf(p, sizeof(p), "%s/cursor", sh.dir);
    snprintf(tmp, sizeof(tmp), "%s/cursor.tmp", sh.dir);
    int n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 "\n", sh.cur_seq, sh.cur_off);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (write(fd, text, (size_t)n) != n)
        rc = errno ? -errno : TG_EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, p) != 0)
        rc = -errno;
out:
    if (rc != 0)
        tg_log(TG_LOG_WARN, "dp_usage", "cursor_write_failed",
               "file=\"%s\" reason=\"%s\" effect=\"acknowledged events may be sent again\"", p,
               strerror(-rc));
    return rc;
}

static void close_segment(void)
{
    if (sh.fd >= 0)
        close(sh.fd);
    sh.fd = -1;
}

/* The segment at the cursor is sealed and acknowledged to its end: move the cursor to the next
 * one (the writer's own if no other is left) and delete it. Without a directory listing it stays
 * put: guessing could step over a segment not sent yet. */
static int advance_segment(uint64_t w_seq)
{
    uint64_t next, max, old = sh.cur_seq;
    int rc = spool_scan(old, &next, &max, 0);
    if (rc != 0) {
        tg_log(TG_LOG_ERROR, "dp_usage", "spool_list_failed", "dir=\"%s\" reason=\"%s\"", sh.dir,
               strerror(-rc));
        return rc;
    }
    if (next > w_seq)
        next = w_seq;
    close_segment();
    sh.cur_seq = next;
    sh.cur_off = 0;
    if (cursor_save() != 0)
        return 0; /* keep the file: the cursor on disk still points into it */
    char p[4200];
    dp__spool_segment_path(p, sizeof(p), sh.dir, old);
    if (unlink(p) == 0)
        tg_log_debug("dp_usage", "segment_deleted", "seq=%" PRIu64, old);
    return 0;
}

/* Counts the events earlier runs left unacknowledged, for the pending gauge. */
static void count_backlog(void)
{
    char buf[65536], p[4200];
    int64_t lines = 0;
    uint64_t s = sh.cur_seq, off = sh.cur_off;
    while (s < sh.run_seq) {
        dp__spool_segment_path(p, sizeof(p), sh.dir, s);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n;
            while ((n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
                for (ssize_t i = 0; i < n; i++)
                    lines += buf[i] == '\n';
                off += (uint64_t)n;
            }
            close(fd);
        }
        uint64_t next, max;
        if (spool_scan(s, &next, &max, 0) != 0)
            break;
        s = next;
        off = 0;
    }
    atomic_fetch_add(&sh.pending, lines);
    tg_log(TG_LOG_INFO, "dp_usage", "spool_opened",
           "dir=\"%s\" cursor=%" PRIu64 ":%" PRIu64
           " backlog_events=%lld first_new_segment=%" PRIu64,
           sh.dir, sh.cur_seq, sh.cur_off, (long long)lines, sh.run_seq);
}

/* ---- batches ---- */

/* Reads whole lines from the cursor up to end. Returns 0, 1 when it skipped bytes that cannot
 * be sent (call again), or a negative error. */
static int read_lines(batch_t *b, uint64_t end, bool sealed)
{
    uint64_t off = sh.cur_off;
    size_t scanned = 0;
    while (b->n < BATCH_MAX && off < end && b->body.len < BATCH_BYTES) {
        uint64_t want = end - off;
        if (want > READ_CHUNK)
            want = READ_CHUNK;
        if (want > BATCH_BYTES - b->body.len)
            want = BATCH_BYTES - b->body.len;
        if (tg_buf_reserve(&b->body, (size_t)want) != 0)
            return TG_ENOMEM;
        ssize_t r = pread(sh.fd, b->body.base + b->body.len, (size_t)want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        b->body.len += (size_t)r;
        off += (uint64_t)r;
        for (; scanned < b->body.len && b->n < BATCH_MAX; scanned++)
            if (b->body.base[scanned] == '\n')
                b->ends[b->n++] = scanned + 1;
    }
    size_t used = b->n ? b->ends[b->n - 1] : 0;
    if (b->n == 0 && b->body.len > 0) {
        /* A sealed segment ending without "\n": the process that wrote it died inside a write.
         * The cut line is no event; drop it. A line longer than a batch cannot be either. */
        if (!(sealed && off >= end) && b->body.len < BATCH_BYTES)
            return 0; /* cannot happen: the writer publishes whole lines */
        tg_log(TG_LOG_WARN, "dp_usage", "spool_garbage_skipped",
               "seq=%" PRIu64 " offset=%" PRIu64 " bytes=%zu reason=\"%s\"", sh.cur_seq, sh.cur_off,
               b->body.len,
               sealed && off >= end ? "a line cut short by a crash" : "a line longer than 4 MiB");
        sh.cur_off += b->body.len;
        tg_buf_reset(&b->body);
        (void)cursor_save();
        return 1;
    }
    b->full = b->n == BATCH_MAX || b->body.len >= BATCH_BYTES;
    b->body.len = used;
    b->end = b->start + used;
    return 0;
}

/* Fills b with up to BATCH_MAX events after the cursor, from one segment; none is a heartbeat.
 * Moves past sealed segments that are done. */
static int build_batch(batch_t *b)
{
    for (;;) {
        tg_buf_reset(&b->body);
        b->n = 0;
        b->full = false;
        b->seq = sh.cur_seq;
        b->start = b->end = sh.cur_off;
        pthread_mutex_lock(&sh.mu);
        uint64_t w_seq = sh.w_seq, w_len = sh.w_len;
        pthread_mutex_unlock(&sh.mu);
        /* below the writer's segment, a file only shrinks by our own unlink: read it to EOF */
        bool sealed = sh.cur_seq < w_seq;
        if (!sealed && sh.cur_off >= w_len)
            return 0;
        if (sh.fd < 0 || sh.fd_seq != sh.cur_seq) {
            char p[4200];
            close_segment();
            dp__spool_segment_path(p, sizeof(p), sh.dir, sh.cur_seq);
            sh.fd = open(p, O_RDONLY | O_CLOEXEC);
            if (sh.fd < 0) {
                int e = errno;
                if (e == ENOENT && sealed) {
                    int rc = advance_segment(w_seq);
                    if (rc != 0)
                        return rc;
                    continue;
                }
                tg_log(TG_LOG_ERROR, "dp_usage", "spool_read_failed", "file=\"%s\" reason=\"%s\"",
                       p, strerror(e));
                return -e;
            }
            sh.fd_seq = sh.cur_seq;
        }
        uint64_t end = w_len;
        if (sealed) {
            struct stat st;
            if (fstat(sh.fd, &st) != 0)
                return -errno;
            end = (uint64_t)st.st_size;
        }
        if (sh.cur_off >= end) {
            if (!sealed)
                return 0;
            int rc = advance_segment(w_seq);
            if (rc != 0)
                return rc;
            continue;
        }
        int rc = read_lines(b, end, sealed);
        if (rc == 1)
            continue;
        return rc;
    }
}

/* ---- one POST ---- */

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)ud;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    /* a POST started before the stop must not hold the exit past its bound */
    return atomic_load(&sh.stopping) && tg_mono_us() >= atomic_load(&sh.deadline) ? 1 : 0;
}

/* Returns the HTTP status (200 when delivered), or 0 with why set when nothing came back. */
static long post_batch(CURL *e, const batch_t *b, tg_buf_t *answer, bool stopping, char *why,
                       size_t whylen)
{
    static const char *const extra[] = {
        "Content-Type: application/x-ndjson",
        "Expect:", /* no 100-continue round trip for large batches */
        NULL,
    };
    long timeout = POST_TIMEOUT_MS, connect = CONNECT_TIMEOUT_MS;
    if (stopping) {
        uint64_t now = tg_mono_us(), dl = atomic_load(&sh.deadline);
        timeout = dl > now ? (long)((dl - now) / 1000) + 1 : 1;
        connect = connect < timeout ? connect : timeout;
    }
    struct curl_slist *h =
        dp_control_easy(e, sh.url, extra, connect, timeout, answer, on_progress, NULL);
    if (!h) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body.len ? b->body.base : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body.len);
    CURLcode rc = curl_easy_perform(e);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return 0;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        snprintf(why, whylen, "the control plane answered %ld", status);
    return status;
}

/* ---- acknowledgements ---- */

/* Copies text for a quoted log value: no quotes, backslashes or control characters. */
static void log_safe(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && *s && i + 1 < cap; s++)
        out[i++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '\'' : *s;
    out[i] = '\0';
}

static void log_rejected(const batch_t *b, const json_t *r)
{
    json_int_t line = json_integer_value(json_object_get(r, "line"));
    char msg[256];
    dp_usage_line_t l;
    log_safe(msg, sizeof(msg), json_string_value(json_object_get(r, "message")));
    const char *id = "unknown";
    if (line >= 1 && (size_t)line <= b->n) {
        size_t from = line == 1 ? 0 : b->ends[line - 2];
        if (dp_usage_line_parse(b->body.base + from, b->ends[line - 1] - from, &l) == 0)
            id = l.id;
    }
    tg_log(TG_LOG_WARN, "dp_usage", "event_rejected",
           "id=%s line=%lld message=\"%s\" effect=\"dropped, not sent again\"", id, (long long)line,
           msg);
}

static void on_delivered(batch_t *b, const tg_buf_t *answer)
{
    json_t *a = json_loadb(answer->base ? answer->base : "", answer->len, 0, NULL);
    if (!json_is_object(a))
        tg_log(TG_LOG_WARN, "dp_usage", "answer_unreadable",
               "bytes=%zu effect=\"events count as delivered; spend not updated\"", answer->len);
    size_t i, nrej = 0;
    json_t *r;
    json_array_foreach(json_object_get(a, "rejected"), i, r)
    {
        log_rejected(b, r);
        nrej++;
    }
    /* Only events this process recorded are in the ledger's unacknowledged sums; replayed ones
     * were counted by a process that is gone. A rejected event leaves them too: it will never
     * be acknowledged. Their costs leave and the answer's spend comes in at once. */
    size_t n = 0;
    if (b->seq >= sh.run_seq) {
        size_t from = 0;
        for (i = 0; i < b->n; i++) {
            dp_usage_line_t *l = &sh.lines[n];
            if (dp_usage_line_parse(b->body.base + from, b->ends[i] - from, l) == 0) {
                sh.evs[n] =
                    (dp_ledger_event_t){l->key_id[0] ? l->key_id : NULL,
                                        l->tenant_id[0] ? l->tenant_id : NULL, l->cost_pusd};
                n++;
            } else {
                tg_log(TG_LOG_WARN, "dp_usage", "spool_line_unreadable", "seq=%" PRIu64 " line=%zu",
                       b->seq, i + 1);
            }
            from = b->ends[i];
        }
    }
    dp_ledger_ack(sh.evs, n, json_is_object(a) ? a : NULL);
    json_decref(a);
    atomic_fetch_add(&sh.shipped, b->n);
    atomic_fetch_add(&sh.rejected, nrej);
    atomic_fetch_sub(&sh.pending, (long long)b->n);
    if (b->n > 0) {
        sh.cur_off = b->end;
        (void)cursor_save(); /* a finished sealed segment is deleted by the next build_batch */
    }
    if (sh.outage) {
        tg_log(TG_LOG_INFO, "dp_usage", "ship_resumed", "after_ms=%llu failed_tries=%llu",
               (unsigned long long)((tg_mono_us() - sh.outage_since_us) / 1000),
               (unsigned long long)sh.outage_tries);
        sh.outage = false;
    }
}

/* Logged once per outage, not per try. */
static void on_failed(long status, const char *why)
{
    atomic_fetch_add(&sh.failures, 1);
    sh.outage_tries++;
    if (sh.outage) {
        tg_log_debug("dp_usage", "ship_retry_failed", "status=%ld reason=\"%s\"", status, why);
        return;
    }
    sh.outage = true;
    sh.outage_since_us = tg_mono_us();
    sh.outage_tries = 1;
    /* 401 is a token being rotated, 5xx a database away: both pass. Another 4xx is a bug on one
     * side or the other; retried all the same, since dropping events would lose spend. */
    bool odd = status >= 400 && status < 500 && status != 401 && status != 408 && status != 429;
    tg_log(odd ? TG_LOG_ERROR : TG_LOG_WARN, "dp_usage", "ship_failed",
           "url=\"%s\" status=%ld reason=\"%s\" pending=%lld effect=\"kept in the spool, retried "
           "with backoff\"",
           sh.url, status, why, (long long)atomic_load(&sh.pending));
}

/* ---- the thread ---- */

/* Waits until next_us; earlier when a full batch is waiting (unless backing off) or a stop
 * was just requested. Returns whether the sink is stopping. */
static bool wait_turn(uint64_t next_us, bool early_ok, bool *stop_seen)
{
    pthread_mutex_lock(&sh.mu);
    for (;;) {
        if (sh.stop && !*stop_seen) {
            *stop_seen = true; /* a last try at once, even in the middle of a backoff */
            break;
        }
        if (sh.stop && next_us > sh.deadline_us)
            next_us = sh.deadline_us;
        uint64_t now = tg_mono_us();
        if (now >= next_us)
            break;
        if (early_ok && atomic_load(&sh.pending) >= BATCH_MAX)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait_us = next_us - now + 1000;
        if (wait_us > 2000000)
            wait_us = 2000000;
        ts.tv_sec += (time_t)(wait_us / 1000000);
        ts.tv_nsec += (long)(wait_us % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sh.cv, &sh.mu, &ts);
    }
    bool stopping = sh.stop;
    pthread_mutex_unlock(&sh.mu);
    return stopping;
}

static void *ship_main(void *arg)
{
    (void)arg;
    CURL *e = curl_easy_init();
    batch_t *b = calloc(1, sizeof(*b));
    tg_buf_t answer = TG_BUF_INIT(ANSWER_MAX);
    tg_rand_t rnd;
    long backoff = BACKOFF_MIN_MS;
    bool early_ok = true, stop_seen = false;
    bool probe = false;              /* the next try is a heartbeat: is the control plane back? */
    uint64_t next_us = tg_mono_us(); /* at once: replay what is left, and register */
    char why[256];
    if (!e || !b) {
        tg_log(TG_LOG_ERROR, "dp_usage", "shipper_failed", "reason=\"out of memory\"");
        goto out;
    }
    tg_buf_init(&b->body, BATCH_BYTES + READ_CHUNK);
    if (tg_rand_seed(&rnd) != 0)
        rnd.s[0] = tg_mono_us() | 1;
    count_backlog();
    for (;;) {
        bool stopping = wait_turn(next_us, early_ok, &stop_seen);
        if (stopping && tg_mono_us() >= atomic_load(&sh.deadline))
            break;
        if (stopping)
            probe = false; /* the last try sends what is left */
        int rc = 0;
        if (probe) {
            tg_buf_reset(&b->body);
            b->n = 0;
            b->full = false;
            b->seq = sh.cur_seq;
            b->start = b->end = sh.cur_off;
        } else {
            rc = build_batch(b);
        }
        if (rc < 0) {
            if (stopping)
                break;
            early_ok = false;
            next_us = tg_mono_us() + SHIP_INTERVAL_US;
            continue;
        }
        if (stopping && b->n == 0)
            break; /* everything is acknowledged */
        long status = post_batch(e, b, &answer, stopping, why, sizeof(why));
        if (status == 200 && probe) {
            on_delivered(b, &answer); /* spend and live data planes; ends the outage */
            probe = false;
            backoff = BACKOFF_MIN_MS;
            early_ok = true;
            next_us = tg_mono_us(); /* what waits goes at once */
            continue;
        }
        if (status == 200) {
            on_delivered(b, &answer);
            backoff = BACKOFF_MIN_MS;
            early_ok = b->n > 0;
            /* more is waiting, or stopping: go on at once */
            next_us = tg_mono_us() + (b->full || stopping ? 0 : SHIP_INTERVAL_US);
            continue;
        }
        on_failed(status, why);
        /* exponential backoff with full jitter: replicas that lost the same control plane do
         * not come back in step */
        early_ok = false;
        /* away (no answer, or 5xx: its database) for longer than a probe's pace: probe; a
         * batch refused for another reason keeps its backoff */
        probe = (status == 0 || status >= 500) && backoff > PROBE_AFTER_MS;
        uint64_t wait_ms = probe ? PROBE_MIN_MS + tg_rand_next(&rnd) % (PROBE_MAX_MS - PROBE_MIN_MS)
                                 : tg_rand_next(&rnd) % (uint64_t)backoff;
        next_us = tg_mono_us() + wait_ms * 1000;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
out:
    close_segment();
    if (b)
        tg_buf_dispose(&b->body);
    free(b);
    tg_buf_dispose(&answer);
    curl_easy_cleanup(e);
    return NULL;
}

int dp_shipper_start(const dp_opts_t *o, const char *dir, uint64_t *run_seq, tg_err_t *err)
{
    uint64_t cseq = 0, coff = 0, next, max;
    snprintf(sh.dir, sizeof(sh.dir), "%s", dir);
    snprintf(sh.url, sizeof(sh.url), "%s/dp/v1/usage", o->control_url);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh.cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = cursor_load(&cseq, &coff);
    if (rc < 0) {
        tg_log(TG_LOG_WARN, "dp_usage", "cursor_unreadable",
               "dir=\"%s\" reason=\"%s\" effect=\"the whole spool is sent again\"", dir,
               rc == TG_EINVAL ? "not \"SEQ OFFSET\"" : strerror(-rc));
        cseq = coff = 0;
    }
    rc = spool_scan(0, &next, &max, cseq);
    if (rc != 0) {
        tg_err_set(err, TG_EIO, 500, "could not read the spool directory \"%s\": %s", dir,
                   strerror(-rc));
        return TG_EIO;
    }
    sh.cur_seq = cseq;
    sh.cur_off = coff;
    sh.run_seq = (max > cseq ? max : cseq) + 1;
    sh.w_seq = sh.run_seq;
    sh.w_len = 0;
    *run_seq = sh.run_seq;
    atomic_store(&sh.enabled, true);
    if (pthread_create(&sh.thread, NULL, ship_main, NULL) != 0) {
        tg_err_set(err, TG_EIO, 500, "could not start the usage shipper thread");
        return TG_EIO;
    }
    sh.started = true;
    return 0;
}

void dp_shipper_written(uint64_t seq, uint64_t len, uint64_t lines)
{
    atomic_fetch_add(&sh.spooled, lines);
    pthread_mutex_lock(&sh.mu);
    sh.w_seq = seq;
    sh.w_len = len;
    /* under the lock, so the shipper cannot miss it between its check and its wait */
    if (atomic_fetch_add(&sh.pending, (long long)lines) + (long long)lines >= BATCH_MAX)
        pthread_cond_signal(&sh.cv);
    pthread_mutex_unlock(&sh.mu);
}

void dp_shipper_stop(uint32_t bound_ms)
{
    if (!sh.started)
        return;
    pthread_mutex_lock(&sh.mu);
    sh.stop = true;
    sh.deadline_us = tg_mono_us() + (uint64_t)bound_ms * 1000;
    atomic_store(&sh.deadline, sh.deadline_us);
    atomic_store(&sh.stopping, true);
    pthread_cond_signal(&sh.cv);
    pthread_mutex_unlock(&sh.mu);
    pthread_join(sh.thread, NULL);
    sh.started = false;
    long long left = atomic_load(&sh.pending);
    tg_log(left > 0 ? TG_LOG_WARN : TG_LOG_INFO, "dp_usage", "shipper_stopped",
           "shipped=%llu left_in_spool=%lld%s", (unsigned long long)atomic_load(&sh.shipped), left,
           left > 0 ? " effect=\"sent at the next start\"" : "");
}

void dp_shipper_stats(dp_shipper_stats_t *st)
{
    st->enabled = atomic_load_explicit(&sh.enabled, memory_order_relaxed);
    st->spooled_total = atomic_load_explicit(&sh.spooled, memory_order_relaxed);
    st->pending = atomic_load_explicit(&sh.pending, memory_order_relaxed);
    st->shipped_total = atomic_load_explicit(&sh.shipped, memory_order_relaxed);
    st->rejected_total = atomic_load_explicit(&sh.rejected, memory_order_relaxed);
    st->failures_total = atomic_load_explicit(&sh.failures, memory_order_relaxed);
}

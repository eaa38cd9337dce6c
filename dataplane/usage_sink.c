/* usage_sink.c: the usage writer thread. Loops hand it whole batches of NDJSON lines through a
 * mutex-guarded list (touched for a pointer swap only); it appends them to --usage-file, or,
 * with --control-url, to the spool segments the shipper (shipper.c) sends from. Writes and
 * fdatasync happen outside the lock; a write(2) in the page cache survives a SIGKILL, the
 * fdatasync (at most once a second) covers a power cut. Writer thread, except submit. */
#include "usage_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shipper.h"
#include "tg_log.h"
#include "tg_time.h"

#include "tg_banned.h"

#define SEGMENT_MAX (8u << 20) /* a segment is closed once it holds this many bytes */
#define SYNC_INTERVAL_US 1000000ull
#define FINAL_SHIP_MS 2000 /* how long a stopping data plane tries to deliver what is left */

typedef struct batch {
    struct batch *next;
    char *data;
    size_t len;
} batch_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    batch_t *head, *tail;
    bool stop;
    bool started;
    pthread_t thread;
    /* writer thread only (and start/stop around it) */
    bool spool;
    int fd; /* --usage-file, or the current segment (-1 until its first batch) */
    char dir[4096];
    int lock_fd;
    uint64_t seq;     /* the segment being written */
    uint64_t seg_len; /* bytes in it */
    bool dirty;       /* written since the last fdatasync */
    uint64_t synced_us;
} sink = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .lock_fd = -1};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    const char *end = p + n;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    return lines;
}

static void sync_now(void)
{
    if (sink.dirty && sink.fd >= 0 && fdatasync(sink.fd) != 0)
        tg_log(TG_LOG_WARN, "dp_usage", "sync_failed", "reason=\"%s\"", strerror(errno));
    sink.dirty = false;
    sink.synced_us = tg_mono_us();
}

/* A new segment's name must survive a power cut too, or its events would vanish with it. */
static void sync_dir(void)
{
    int dfd = open(sink.dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static int open_segment(void)
{
    char p[4200];
    for (int tries = 0; tries < 16; tries++) {
        dp__spool_segment_path(p, sizeof(p), sink.dir, sink.seq);
        /* O_EXCL: a segment is only ever appended to by the run that made it */
        sink.fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
        if (sink.fd >= 0) {
            sink.seg_len = 0;
            sync_dir();
            tg_log_debug("dp_usage", "segment_opened", "seq=%" PRIu64, sink.seq);
            return 0;
        }
        if (errno != EEXIST)
            break;
        sink.seq++;
    }
    int rc = -errno;
    tg_log(TG_LOG_ERROR, "dp_usage", "segment_open_failed", "file=\"%s\" reason=\"%s\"", p,
           strerror(errno));
    return rc;
}

static void spool_write(const batch_t *b)
{
    uint64_t lines = count_lines(b->data, b->len);
    if (sink.fd >= 0 && sink.seg_len >= SEGMENT_MAX) {
        /* sealed from here on: the shipper reads it to its end once seq moves past it */
        sync_now();
        close(sink.fd);
        sink.fd = -1;
        sink.seq++;
    }
    if (sink.fd < 0 && open_segment() != 0) {
        tg_log(TG_LOG_ERROR, "dp_usage", "usage_lost", "events=%" PRIu64, lines);
        return;
    }
    int rc = write_all(sink.fd, b->data, b->len);
    if (rc != 0) {
        /* cut back to the last whole line, or the next batch would glue onto a torn one */
        if (ftruncate(sink.fd, (off_t)sink.seg_len) != 0)
            tg_log(TG_LOG_ERROR, "dp_usage", "truncate_failed", "reason=\"%s\"", strerror(errno));
        tg_log(TG_LOG_ERROR, "dp_usage", "usage_lost", "events=%" PRIu64 " reason=\"%s\"", lines,
               strerror(-rc));
        return;
    }
    sink.seg_len += b->len;
    sink.dirty = true;
    dp_shipper_written(sink.seq, sink.seg_len, lines);
}

static void file_write(const batch_t *b)
{
    int rc = write_all(sink.fd, b->data, b->len);
    if (rc != 0)
        tg_log(TG_LOG_ERROR, "dp_usage", "write_failed", "bytes=%zu reason=\"%s\"", b->len,
               strerror(-rc));
    sink.dirty = true;
}

/* Under sink.mu: waits for batches, a stop, or the time to sync what was written. */
static void wait_for_work(void)
{
    while (!sink.head && !sink.stop) {
        if (!sink.dirty) {
            pthread_cond_wait(&sink.cv, &sink.mu);
            continue;
        }
        uint64_t now = tg_mono_us(), due = sink.synced_us + SYNC_INTERVAL_US;
        if (now >= due)
            return;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait_us = due - now;
        ts.tv_sec += (time_t)(wait_us / 1000000);
        ts.tv_nsec += (long)(wait_us % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sink.cv, &sink.mu, &ts);
    }
}

static void *sink_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sink.mu);
    for (;;) {
        wait_for_work();
        batch_t *list = sink.head;
        sink.head = sink.tail = NULL;
        bool stop = sink.stop;
        pthread_mutex_unlock(&sink.mu);
        while (list) {
            batch_t *b = list;
            list = b->next;
            if (sink.spool)
                spool_write(b);
            else
                file_write(b);
            free(b->data);
            free(b);
        }
        if (sink.spool) {
            if (stop || tg_mono_us() - sink.synced_us >= SYNC_INTERVAL_US)
                sync_now();
        } else {
            sync_now(); /* --usage-file: as it always did, after every wakeup */
        }
        pthread_mutex_lock(&sink.mu);
        if (stop && !sink.head)
            break;
    }
    pthread_mutex_unlock(&sink.mu);
    return NULL;
}

/* One process per spool: two writers would number segments alike and two shippers would move
 * one cursor. The lock goes with the process, SIGKILL included. */
static int lock_spool(tg_err_t *err)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/lock", sink.dir);
    sink.lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (sink.lock_fd < 0 || fcntl(sink.lock_fd, F_SETLK, &fl) != 0) {
        tg_err_set(err, TG_EIO, 500, "cannot lock the spool \"%s\": %s", sink.dir,
                   errno == EAGAIN || errno == EACCES ? "another tollgate-data uses this state dir"
                                                      : strerror(errno));
        return TG_EIO;
    }
    return 0;
}

static int start_spool(const dp_opts_t *o, tg_err_t *err)
{
    snprintf(sink.dir, sizeof(sink.dir), "%s/spool", o->state_dir);
    if (mkdir(sink.dir, 0750) != 0 && errno != EEXIST) {
        tg_err_set(err, TG_EIO, 500, "could not create the spool \"%s\": %s", sink.dir,
                   strerror(errno));
        return TG_EIO;
    }
    if (lock_spool(err) != 0)
        return TG_EIO;
    sink.spool = true;
    return dp_shipper_start(o, sink.dir, &sink.seq, err);
}

int dp_usage_sink_start(const dp_opts_t *o, tg_err_t *err)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sink.cv, &ca);
    pthread_condattr_destroy(&ca);
    sink.synced_us = tg_mono_us();
    if (o->control_url) {
        if (start_spool(o, err) != 0)
            return TG_EIO;
    } else {
        sink.fd = open(o->usage_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (sink.fd < 0) {
            tg_err_set(err, TG_EIO, 500, "could not open usage file \"%s\": %s", o->usage_path,
                       strerror(errno));
            return TG_EIO;
        }
    }
    if (pthread_create(&sink.thread, NULL, sink_main, NULL) != 0) {
        tg_err_set(err, TG_EIO, 500, "could not start the usage writer thread");
        dp_shipper_stop(0);
        return TG_EIO;
    }
    sink.started = true;
    return 0;
}

void dp_usage_sink_submit(char *data, size_t len)
{
    batch_t *b = malloc(sizeof(*b));
    if (!b || !sink.started) {
        tg_log(TG_LOG_ERROR, "dp_usage", "batch_lost", "bytes=%zu", len);
        free(b);
        free(data);
        return;
    }
    b->next = NULL;
    b->data = data;
    b->len = len;
    pthread_mutex_lock(&sink.mu);
    if (sink.tail)
        sink.tail->next = b;
    else
        sink.head = b;
    sink.tail = b;
    pthread_cond_signal(&sink.cv);
    pthread_mutex_unlock(&sink.mu);
}

void dp_usage_sink_stop(void)
{
    if (sink.started) {
        pthread_mutex_lock(&sink.mu);
        sink.stop = true;
        pthread_cond_signal(&sink.cv);
        pthread_mutex_unlock(&sink.mu);
        pthread_join(sink.thread, NULL);
        sink.started = false;
    }
    if (sink.fd >= 0)
        close(sink.fd);
    sink.fd = -1;
    /* everything queued is in the spool now; the shipper sees it all before its last try */
    dp_shipper_stop(FINAL_SHIP_MS);
    if (sink.lock_fd >= 0)
        close(sink.lock_fd);
    sink.lock_fd = -1;
}

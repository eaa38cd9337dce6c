/* usage_sink.c: the usage writer thread. Loops hand it whole batches of NDJSON lines through a
 * mutex-guarded list (touched for a pointer swap only); it appends them to --usage-file, or,
 * with --control-url, to the spool segments the shipper (shipper.c) sends from. Writes and
 * fdatasync happen outside the lock; a write(2) in the page cache survives a SIGKILL, the
 * fdatasync (at most once a second) covers a power cut. In both modes every loop also has a
 * memory-mapped journal (STATE_DIR/spool/journal-<n>, or STATE_DIR/usage-journal/journal-<n>
 * with --usage-file) that a record is in from the moment it is made; the next start puts what
 * a killed run never handed over into a segment, or at the end of the usage file. Writer
 * thread, except submit. */
#include "usage_sink.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shipper.h"
#include "tg_buf.h"
#include "tg_log.h"
#include "tg_time.h"

#include "tg_banned.h"

#define SEGMENT_MAX (8u << 20) /* a segment is closed once it holds this many bytes */
#define SYNC_INTERVAL_US 1000000ull
#define FINAL_SHIP_MS 2000 /* how long a stopping data plane tries to deliver what is left */

#define JOURNAL_CAP (1u << 20) /* bytes of records per worker not yet in a segment */
#define JOURNAL_HDR 4096u      /* one page: the header, then the ring */
#define JOURNAL_MAGIC 0x314c4e524a475455ull
#define JOURNAL_MAX 256

/* The head of a journal file, in the shared mapping: what a SIGKILL leaves is what the page
 * cache holds, stores included. Positions only grow; byte p of the stream is at
 * JOURNAL_HDR + p % JOURNAL_CAP. */
typedef struct journal_hdr {
    uint64_t magic;
    _Atomic uint64_t written;   /* the loop: records up to here are whole */
    _Atomic uint64_t persisted; /* the writer: up to here they are in a segment */
} journal_hdr_t;

typedef struct journal {
    char *map; /* JOURNAL_HDR + JOURNAL_CAP bytes, MAP_SHARED */
    journal_hdr_t *hdr;
    bool full_logged; /* loop thread only */
} journal_t;

typedef struct batch {
    struct batch *next;
    char *data;
    size_t len;
    journal_t *j;  /* the loop's journal, or NULL */
    uint64_t jpos; /* the batch's records end there in it */
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
    int fd;            /* --usage-file, or the current segment (-1 until its first batch) */
    uint64_t file_len; /* --usage-file: bytes in it, all whole lines */
    char dir[4096];
    int lock_fd;
    uint64_t seq;     /* the segment being written */
    uint64_t seg_len; /* bytes in it */
    bool dirty;       /* written since the last fdatasync */
    uint64_t synced_us;
    journal_t journals[JOURNAL_MAX]; /* one per worker loop, made at start */
    int njournals;
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
    /* in a segment now (the page cache: a SIGKILL keeps it): the journal may reuse the room */
    if (b->j)
        atomic_store_explicit(&b->j->hdr->persisted, b->jpos, memory_order_release);
    dp_shipper_written(sink.seq, sink.seg_len, lines);
}

static void file_write(const batch_t *b)
{
    int rc = write_all(sink.fd, b->data, b->len);
    if (rc != 0) {
        /* cut back to the last whole line, as spool_write does */
        if (ftruncate(sink.fd, (off_t)sink.file_len) != 0)
            tg_log(TG_LOG_ERROR, "dp_usage", "truncate_failed", "reason=\"%s\"", strerror(errno));
        tg_log(TG_LOG_ERROR, "dp_usage", "write_failed", "bytes=%zu reason=\"%s\"", b->len,
               strerror(-rc));
        return;
    }
    sink.file_len += b->len;
    sink.dirty = true;
    if (b->j)
        atomic_store_explicit(&b->j->hdr->persisted, b->jpos, memory_order_release);
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
 * one cursor; two runs on one usage journal would take each other's records. The lock goes with
 * the process, SIGKILL included. */
static int lock_dir(const char *what, tg_err_t *err)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/lock", sink.dir);
    sink.lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (sink.lock_fd < 0 || fcntl(sink.lock_fd, F_SETLK, &fl) != 0) {
        tg_err_set(err, TG_EIO, 500, "cannot lock the %s \"%s\": %s", what, sink.dir,
                   errno == EAGAIN || errno == EACCES ? "another tollgate-data uses this state dir"
                                                      : strerror(errno));
        return TG_EIO;
    }
    return 0;
}

/* ---- journals: what a loop recorded and has not handed over yet ---- */

static bool journal_name(const char *name, long *idx)
{
    if (strncmp(name, "journal-", 8) != 0 || !name[8])
        return false;
    long v = 0;
    for (const char *p = name + 8; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000)
            return false;
        v = v * 10 + (*p - '0');
    }
    *idx = v;
    return true;
}

/* Appends the whole records of one journal left by an earlier run to out. */
static void journal_recover_one(const char *path, tg_buf_t *out, uint64_t *lines)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != JOURNAL_HDR + JOURNAL_CAP) {
        tg_log(TG_LOG_WARN, "dp_usage", "journal_unreadable", "file=\"%s\"", path);
        if (fd >= 0)
            close(fd);
        return;
    }
    char *m = mmap(NULL, JOURNAL_HDR + JOURNAL_CAP, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return;
    const journal_hdr_t *h = (const journal_hdr_t *)m;
    uint64_t w = atomic_load(&h->written), p = atomic_load(&h->persisted);
    if (h->magic != JOURNAL_MAGIC || p > w || w - p > JOURNAL_CAP) {
        tg_log(TG_LOG_WARN, "dp_usage", "journal_unreadable", "file=\"%s\" reason=\"bad header\"",
               path);
        munmap(m, JOURNAL_HDR + JOURNAL_CAP);
        return;
    }
    size_t from = out->len;
    for (uint64_t q = p; q < w;) {
        uint64_t off = q % JOURNAL_CAP, n = w - q;
        if (n > JOURNAL_CAP - off)
            n = JOURNAL_CAP - off;
        if (tg_buf_append(out, m + JOURNAL_HDR + off, (size_t)n) != 0)
            break;
        q += n;
    }
    munmap(m, JOURNAL_HDR + JOURNAL_CAP);
    /* whole lines only: the loop moves `written` after a record's last byte */
    while (out->len > from && out->base[out->len - 1] != '\n')
        out->len--;
    if (out->len > from)
        *lines += count_lines(out->base + from, out->len - from);
}

/* The recovered records go into a segment of their own, numbered above every segment and the
 * cursor. */
static int journal_save_segment(const tg_buf_t *rec, uint64_t lines, uint64_t max_seq,
                                tg_err_t *err)
{
    char seg[4200];
    uint64_t seq = max_seq + 1;
    dp__spool_segment_path(seg, sizeof(seg), sink.dir, seq);
    int fd = open(seg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    int rc = fd < 0 ? -errno : write_all(fd, rec->base, rec->len);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        tg_err_set(err, TG_EIO, 500, "could not save the journals' records to \"%s\": %s", seg,
                   strerror(-rc));
        return TG_EIO;
    }
    sync_dir();
    tg_log(TG_LOG_INFO, "dp_usage", "journal_recovered",
           "events=%" PRIu64 " seq=%" PRIu64 " reason=\"recorded but not handed over before "
           "the last run ended\"",
           lines, seq);
    return 0;
}

typedef struct line_ref {
    const char *p;
    size_t n;
} line_ref_t;

static int line_cmp(const void *a, const void *b)
{
    const line_ref_t *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

/* Splits whole lines (newline included) of [p, p + n) into refs; the count. */
static size_t split_lines(const char *p, size_t n, line_ref_t *refs)
{
    size_t k = 0;
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        refs[k].p = p;
        refs[k].n = (size_t)(nl + 1 - p);
        k++;
        p = nl + 1;
    }
    return k;
}

/* --usage-file: a write cut by a kill leaves a torn last line; it goes (its record, if the loop
 * journaled it, comes back from the journal), so that the next record starts a line. */
static int usage_file_trim(int fd, uint64_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    uint64_t end = (uint64_t)st.st_size, keep = end;
    char buf[4096];
    while (keep > 0) {
        size_t n = keep < sizeof(buf) ? (size_t)keep : sizeof(buf);
        ssize_t r = pread(fd, buf, n, (off_t)(keep - n));
        if (r != (ssize_t)n)
            return r < 0 ? -errno : -EIO;
        size_t i = n;
        while (i > 0 && buf[i - 1] != '\n')
            i--;
        if (i > 0) {
            keep = keep - n + i;
            break;
        }
        keep -= n;
    }
    if (keep < end) {
        if (ftruncate(fd, (off_t)keep) != 0)
            return -errno;
        tg_log(TG_LOG_WARN, "dp_usage", "usage_file_torn_line_dropped",
               "bytes=%" PRIu64 " reason=\"a write cut short when the last run ended\"",
               end - keep);
    }
    *len = keep;
    return 0;
}

/* --usage-file: the recovered records go at the end of the file, but for those it holds
 * already. Only the batch the writer was on when the run died can be in both (in the file, its
 * journal room not yet marked free), and it is the file's last lines: its journaled records are
 * in rec, the others (a full journal) fill at most one batch. So the file's last rec->len +
 * FILE_TAIL_SLACK bytes are all that can hold a copy of a recovered record, byte for byte. */
#define FILE_TAIL_SLACK (16u << 20) /* more than a loop's batch: 1000 records */
static int journal_save_file(const tg_buf_t *rec, uint64_t lines, tg_err_t *err)
{
    const char *why = NULL;
    uint64_t len = sink.file_len, reach = (uint64_t)rec->len + FILE_TAIL_SLACK + 1;
    uint64_t from = len > reach ? len - reach : 0;
    size_t wn = (size_t)(len - from);
    char *window = malloc(wn ? wn : 1);
    line_ref_t *have = NULL;
    line_ref_t *want = malloc(((size_t)lines + 1) * sizeof(*want));
    tg_buf_t out = TG_BUF_INIT(rec->len + 1);
    if (!window || !want) {
        why = "out of memory";
        goto done;
    }
    if (wn > 0 && pread(sink.fd, window, wn, (off_t)from) != (ssize_t)wn) {
        why = "could not read its end";
        goto done;
    }
    /* from a line start on: past the first newline unless the window is the whole file */
    const char *w = window;
    if (from > 0) {
        const char *nl = memchr(window, '\n', wn);
        w = nl ? nl + 1 : window + wn;
    }
    size_t wlen = (size_t)(window + wn - w);
    have = malloc(((size_t)count_lines(w, wlen) + 1) * sizeof(*have));
    if (!have) {
        why = "out of memory";
        goto done;
    }
    size_t nhave = split_lines(w, wlen, have);
    qsort(have, nhave, sizeof(*have), line_cmp);
    size_t nwant = split_lines(rec->base, rec->len, want), dup = 0;
    for (size_t i = 0; i < nwant; i++) {
        if (nhave && bsearch(&want[i], have, nhave, sizeof(*have), line_cmp)) {
            dup++;
            continue;
        }
        if (tg_buf_append(&out, want[i].p, want[i].n) != 0) {
            why = "out of memory";
            goto done;
        }
    }
    if (out.len > 0) {
        int rc = write_all(sink.fd, out.base, out.len);
        if (rc == 0 && fdatasync(sink.fd) != 0)
            rc = -errno;
        if (rc != 0) {
            why = strerror(-rc);
            if (ftruncate(sink.fd, (off_t)len) != 0)
                tg_log(TG_LOG_ERROR, "dp_usage", "truncate_failed", "reason=\"%s\"",
                       strerror(errno));
            goto done;
        }
        sink.file_len = len + out.len;
    }
    tg_log(TG_LOG_INFO, "dp_usage", "journal_recovered",
           "events=%zu already_in_file=%zu reason=\"recorded but not handed over before the "
           "last run ended\"",
           nwant - dup, dup);
done:
    if (why)
        tg_err_set(err, TG_EIO, 500, "could not save the journals' records to the usage file: %s",
                   why);
    tg_buf_dispose(&out);
    free(window);
    free(have);
    free(want);
    return why ? TG_EIO : 0;
}

/* Records the loops of an earlier run wrote to their journals but never handed over (the
 * process died within the hand-over interval) go into a segment of their own, before the
 * shipper looks: numbered below this run's, they are replayed like any old segment (this
 * run's ledger never counted them). Then the journals are removed; new ones are made. A record
 * both in the journal and in a segment is sent twice and stored once (ids are unique). */
/* DIR/name into out; -1 when it does not fit (the name is then left alone). */
static int journal_path(char *out, size_t n, const char *name)
{
    int w = snprintf(out, n, "%s/%s", sink.dir, name);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int journal_recover(tg_err_t *err)
{
    DIR *d = opendir(sink.dir);
    if (!d) {
        tg_err_set(err, TG_EIO, 500, "could not read \"%s\": %s", sink.dir, strerror(errno));
        return TG_EIO;
    }
    tg_buf_t rec = TG_BUF_INIT((size_t)JOURNAL_CAP * (JOURNAL_MAX + 1));
    uint64_t lines = 0, max_seq = 0;
    char names[JOURNAL_MAX][64];
    int nnames = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long idx;
        uint64_t seq;
        if (dp__spool_segment_seq(de->d_name, &seq)) {
            max_seq = seq > max_seq ? seq : max_seq;
        } else if (journal_name(de->d_name, &idx) && nnames < JOURNAL_MAX &&
                   strlen(de->d_name) < sizeof(names[0])) {
            memcpy(names[nnames++], de->d_name, strlen(de->d_name) + 1);
        }
    }
    closedir(d);
    char p[4200];
    /* above the cursor too: it may name a segment not made yet, and the shipper deletes every
     * segment below it at start */
    snprintf(p, sizeof(p), "%s/cursor", sink.dir);
    int cfd = open(p, O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
        char text[64];
        ssize_t n = read(cfd, text, sizeof(text) - 1);
        close(cfd);
        uint64_t c = 0;
        for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9' && c < UINT64_MAX / 10; i++)
            c = c * 10 + (uint64_t)(text[i] - '0');
        max_seq = c > max_seq ? c : max_seq;
    }
    for (int i = 0; i < nnames; i++) {
        if (journal_path(p, sizeof(p), names[i]) == 0)
            journal_recover_one(p, &rec, &lines);
    }
    int rc = 0;
    if (rec.len > 0)
        rc = sink.spool ? journal_save_segment(&rec, lines, max_seq, err)
                        : journal_save_file(&rec, lines, err);
    if (rc != 0) {
        tg_buf_dispose(&rec);
        return TG_EIO; /* the journals stay for the next start */
    }
    tg_buf_dispose(&rec);
    for (int i = 0; i < nnames; i++) {
        if (journal_path(p, sizeof(p), names[i]) == 0)
            unlink(p);
    }
    return 0;
}

/* One journal per worker loop, sized and mapped here so that a loop's append is a memcpy into
 * pages already in the page cache: no syscall, no disk wait on the loop. */
static int journal_create(int workers, tg_err_t *err)
{
    for (int i = 0; i < workers && i < JOURNAL_MAX; i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/journal-%d", sink.dir, i);
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        int rc = fd < 0 ? errno : posix_fallocate(fd, 0, JOURNAL_HDR + JOURNAL_CAP);
        char *m = MAP_FAILED;
        if (rc == 0) {
            m = mmap(NULL, JOURNAL_HDR + JOURNAL_CAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED)
                rc = errno;
            else
                memset(m, 0,
                       JOURNAL_HDR + JOURNAL_CAP); /* fault every page in now, not on a loop */
        }
        if (fd >= 0)
            close(fd);
        if (rc != 0) {
            tg_err_set(err, TG_EIO, 500, "could not make the usage journal \"%s\": %s", p,
                       strerror(rc));
            return TG_EIO;
        }
        journal_t *j = &sink.journals[i];
        j->map = m;
        j->hdr = (journal_hdr_t *)m;
        atomic_store(&j->hdr->written, 0);
        atomic_store(&j->hdr->persisted, 0);
        j->hdr->magic = JOURNAL_MAGIC;
        sink.njournals = i + 1;
    }
    return 0;
}

void dp_usage_journal_append(int worker, const char *line, size_t n)
{
    if (worker < 0 || worker >= sink.njournals || n == 0)
        return;
    journal_t *j = &sink.journals[worker];
    uint64_t w = atomic_load_explicit(&j->hdr->written, memory_order_relaxed);
    uint64_t p = atomic_load_explicit(&j->hdr->persisted, memory_order_acquire);
    if (n > JOURNAL_CAP - (w - p)) {
        if (!j->full_logged)
            tg_log(TG_LOG_WARN, "dp_usage", "journal_full",
                   "worker=%d effect=\"records wait in memory only until the writer catches up\"",
                   worker);
        j->full_logged = true;
        return;
    }
    j->full_logged = false;
    for (size_t done = 0; done < n;) {
        uint64_t off = (w + done) % JOURNAL_CAP;
        size_t k = n - done;
        if (k > JOURNAL_CAP - off)
            k = (size_t)(JOURNAL_CAP - off);
        memcpy(j->map + JOURNAL_HDR + off, line + done, k);
        done += k;
    }
    atomic_store_explicit(&j->hdr->written, w + n, memory_order_release);
}

static int start_spool(const dp_opts_t *o, tg_err_t *err)
{
    snprintf(sink.dir, sizeof(sink.dir), "%s/spool", o->state_dir);
    if (mkdir(sink.dir, 0750) != 0 && errno != EEXIST) {
        tg_err_set(err, TG_EIO, 500, "could not create the spool \"%s\": %s", sink.dir,
                   strerror(errno));
        return TG_EIO;
    }
    if (lock_dir("spool", err) != 0)
        return TG_EIO;
    sink.spool = true;
    if (journal_recover(err) != 0 || journal_create(o->workers, err) != 0)
        return TG_EIO;
    return dp_shipper_start(o, sink.dir, &sink.seq, err);
}

/* --usage-file: the journals live in STATE_DIR/usage-journal (never shipped: a spool's journals
 * go to the control plane, these to the file). */
static int start_file(const dp_opts_t *o, tg_err_t *err)
{
    sink.fd = open(o->usage_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (sink.fd < 0) {
        tg_err_set(err, TG_EIO, 500, "could not open usage file \"%s\": %s", o->usage_path,
                   strerror(errno));
        return TG_EIO;
    }
    int rc = usage_file_trim(sink.fd, &sink.file_len);
    if (rc != 0) {
        tg_err_set(err, TG_EIO, 500, "could not read usage file \"%s\": %s", o->usage_path,
                   strerror(-rc));
        return TG_EIO;
    }
    snprintf(sink.dir, sizeof(sink.dir), "%s/usage-journal", o->state_dir);
    if (mkdir(sink.dir, 0750) != 0 && errno != EEXIST) {
        tg_err_set(err, TG_EIO, 500, "could not create \"%s\": %s", sink.dir, strerror(errno));
        return TG_EIO;
    }
    if (lock_dir("usage journal", err) != 0)
        return TG_EIO;
    if (journal_recover(err) != 0 || journal_create(o->workers, err) != 0)
        return TG_EIO;
    return 0;
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
    } else if (start_file(o, err) != 0) {
        return TG_EIO;
    }
    if (pthread_create(&sink.thread, NULL, sink_main, NULL) != 0) {
        tg_err_set(err, TG_EIO, 500, "could not start the usage writer thread");
        dp_shipper_stop(0);
        return TG_EIO;
    }
    sink.started = true;
    return 0;
}

void dp_usage_sink_submit(char *data, size_t len, int worker)
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
    b->j = NULL;
    b->jpos = 0;
    if (worker >= 0 && worker < sink.njournals) {
        /* every record of the batch was appended to the journal before this (or did not fit) */
        b->j = &sink.journals[worker];
        b->jpos = atomic_load_explicit(&b->j->hdr->written, memory_order_relaxed);
    }
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
    /* every record is in a segment now: an orderly stop leaves nothing to recover */
    for (int i = 0; i < sink.njournals; i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/journal-%d", sink.dir, i);
        munmap(sink.journals[i].map, JOURNAL_HDR + JOURNAL_CAP);
        unlink(p);
    }
    sink.njournals = 0;
    if (sink.lock_fd >= 0)
        close(sink.lock_fd);
    sink.lock_fd = -1;
}

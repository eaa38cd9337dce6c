/* usage_sink.c: writer thread for usage batches. The queue is a mutex-guarded list touched for
 * a pointer swap only; writes and fdatasync happen outside the lock. */
#include "usage_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_log.h"

#include "tg_banned.h"

typedef struct batch {
    struct batch *next;
    char *data;
    size_t len;
} batch_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch_t *head, *tail;
    bool stop;
    bool started;
    int fd;
    pthread_t thread;
} sink = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, false, false, -1, 0};

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

static void *sink_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sink.mu);
    for (;;) {
        while (!sink.head && !sink.stop)
            pthread_cond_wait(&sink.cv, &sink.mu);
        batch_t *list = sink.head;
        sink.head = sink.tail = NULL;
        bool stop = sink.stop;
        pthread_mutex_unlock(&sink.mu);
        bool wrote = false;
        while (list) {
            batch_t *b = list;
            list = b->next;
            int rc = write_all(sink.fd, b->data, b->len);
            if (rc != 0)
                tg_log(TG_LOG_ERROR, "dp_usage", "write_failed", "bytes=%zu reason=\"%s\"", b->len,
                       strerror(-rc));
            wrote = true;
            free(b->data);
            free(b);
        }
        if (wrote)
            fdatasync(sink.fd);
        pthread_mutex_lock(&sink.mu);
        if (stop && !sink.head)
            break;
    }
    pthread_mutex_unlock(&sink.mu);
    return NULL;
}

int dp_usage_sink_start(const char *path, tg_err_t *err)
{
    sink.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (sink.fd < 0) {
        tg_err_set(err, TG_EIO, 500, "could not open usage file \"%s\": %s", path, strerror(errno));
        return TG_EIO;
    }
    if (pthread_create(&sink.thread, NULL, sink_main, NULL) != 0) {
        close(sink.fd);
        tg_err_set(err, TG_EIO, 500, "could not start the usage writer thread");
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
    if (!sink.started)
        return;
    pthread_mutex_lock(&sink.mu);
    sink.stop = true;
    pthread_cond_signal(&sink.cv);
    pthread_mutex_unlock(&sink.mu);
    pthread_join(sink.thread, NULL);
    close(sink.fd);
    sink.started = false;
}

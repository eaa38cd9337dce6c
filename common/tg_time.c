/* tg_time.c: clocks; any thread. */
#include "tg_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tg_banned.h"

uint64_t tg_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t tg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tg_rfc3339_ms(int64_t ms, char *out, size_t outlen)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ" by hand: the usage record of every request is stamped here */
    char t[25];
    int y = tm.tm_year + 1900;
    int parts[6] = {tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000)};
    static const char seps[6] = {'-', 'T', ':', ':', '.', 'Z'};
    if (y < 0 || y > 9999 || outlen == 0) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    t[0] = (char)('0' + y / 1000);
    t[1] = (char)('0' + y / 100 % 10);
    t[2] = (char)('0' + y / 10 % 10);
    t[3] = (char)('0' + y % 10);
    t[4] = '-';
    size_t k = 5;
    for (int i = 0; i < 6; i++) {
        if (i == 5)
            t[k++] = (char)('0' + parts[i] / 100);
        t[k++] = (char)('0' + parts[i] / 10 % 10);
        t[k++] = (char)('0' + parts[i] % 10);
        t[k++] = seps[i];
    }
    t[k] = '\0';
    size_t n = k < outlen - 1 ? k : outlen - 1;
    memcpy(out, t, n);
    out[n] = '\0';
}

int64_t tg_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool tg_rfc3339_parse(const char *s, size_t n, bool allow_space, int64_t *unix_s, bool *frac)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    bool nonzero = false;
    if (n < 20 || n > 40 || !read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !read_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && !(allow_space && s[10] == ' ')) ||
        !read_digits(s + 11, 2, &h) || s[13] != ':' || !read_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !read_digits(s + 17, 2, &sec))
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            nonzero = nonzero || s[i] != '0';
            i++;
        }
        if (i == start || i - start > 9)
            return false;
    }
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (!read_digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !read_digits(s + i + 4, 2, &om))
            return false;
        i += 6;
    } else {
        return false;
    }
    if (i != n || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return false;
    if (unix_s)
        *unix_s = tg_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                  sign * (oh * 3600 + om * 60);
    if (frac)
        *frac = nonzero;
    return true;
}

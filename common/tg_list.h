/* tg_list.h: the items of a comma-separated header value ("a, b,c"), trimmed of spaces and
 * tabs, read in place. */
#ifndef TG_LIST_H
#define TG_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* The next item of p[0..len) from *pos: false when none is left; else *item and *n (maybe 0,
 * for an empty item) and *pos moved past it. */
static inline bool tg_list_next(const char *p, size_t len, size_t *pos, const char **item,
                                size_t *n)
{
    size_t i = *pos;
    if (i >= len)
        return false;
    size_t j = i;
    while (j < len && p[j] != ',')
        j++;
    size_t a = i, b = j;
    while (a < b && (p[a] == ' ' || p[a] == '\t'))
        a++;
    while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
        b--;
    *item = p + a;
    *n = b - a;
    *pos = j + 1;
    return true;
}

#endif

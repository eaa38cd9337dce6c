#include <criterion/criterion.h>
#include <string.h>

#include "tg_list.h"

Test(tg_list, items_come_trimmed_in_order_with_empty_ones_kept)
{
    static const char v[] = " a,\tbb ,, c\t";
    const char *want[] = {"a", "bb", "", "c"};
    size_t pos = 0, k = 0, n;
    const char *it;
    while (tg_list_next(v, sizeof(v) - 1, &pos, &it, &n)) {
        cr_assert_lt(k, 4);
        cr_assert_eq(n, strlen(want[k]));
        cr_assert_eq(memcmp(it, want[k], n), 0);
        k++;
    }
    cr_assert_eq(k, 4);
}

Test(tg_list, an_empty_value_or_a_trailing_comma_adds_nothing)
{
    size_t pos = 0, n;
    const char *it;
    cr_assert_not(tg_list_next(NULL, 0, &pos, &it, &n));
    static const char v[] = "x,";
    pos = 0;
    cr_assert(tg_list_next(v, 2, &pos, &it, &n));
    cr_assert_eq(n, 1);
    cr_assert_not(tg_list_next(v, 2, &pos, &it, &n));
}

#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "tg_pool.h"

Test(tg_pool, allocations_are_aligned_distinct_and_survive_until_reset)
{
    tg_pool_t p = TG_POOL_INIT(256);
    char *a = tg_pool_alloc(&p, 3);
    char *b = tg_pool_alloc(&p, 5);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    cr_assert_eq((uintptr_t)a % alignof(max_align_t), 0);
    cr_assert_eq((uintptr_t)b % alignof(max_align_t), 0);
    memcpy(a, "abc", 3);
    memcpy(b, "defgh", 5);
    for (int i = 0; i < 100; i++) /* spills into more chunks */
        cr_assert_not_null(tg_pool_alloc(&p, 40));
    cr_assert_eq(memcmp(a, "abc", 3), 0);
    cr_assert_eq(memcmp(b, "defgh", 5), 0);
    tg_pool_dispose(&p);
}

Test(tg_pool, a_large_allocation_gets_its_own_chunk_and_keeps_the_current_room)
{
    tg_pool_t p = TG_POOL_INIT(256);
    char *small1 = tg_pool_alloc(&p, 16);
    char *big = tg_pool_alloc(&p, 10000);
    char *small2 = tg_pool_alloc(&p, 16);
    cr_assert_not_null(big);
    memset(big, 'x', 10000);
    /* the small ones share the first chunk: the big one did not end it */
    cr_assert_lt((size_t)(small2 - small1), 256);
    tg_pool_dispose(&p);
}

Test(tg_pool, reset_keeps_one_chunk_so_a_warm_pool_reuses_its_memory)
{
    tg_pool_t p = TG_POOL_INIT(1024);
    char *first = tg_pool_alloc(&p, 100);
    for (int i = 0; i < 50; i++)
        cr_assert_not_null(tg_pool_alloc(&p, 100));
    cr_assert_not_null(tg_pool_alloc(&p, 50000));
    tg_pool_reset(&p);
    char *again = tg_pool_alloc(&p, 100);
    cr_assert_not_null(again);
    char *more = tg_pool_alloc(&p, 100);
    size_t step = (100 + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    cr_assert_eq((size_t)(more - again), step, "both from the one kept chunk, side by side");
    (void)first;
    tg_pool_dispose(&p);
    cr_assert_null(p.chunks);
}

Test(tg_pool, an_unused_pool_holds_no_memory_after_reset)
{
    /* a request that never uses its arena costs no chunk, however often it is reused */
    tg_pool_t p = TG_POOL_INIT(1024);
    tg_pool_reset(&p);
    cr_assert_null(p.chunks);
    cr_assert_not_null(tg_pool_alloc(&p, 8));
    cr_assert_not_null(p.chunks);
    tg_pool_dispose(&p);
}

Test(tg_pool, strndup_copies_and_terminates)
{
    tg_pool_t p = TG_POOL_INIT(64);
    char *s = tg_pool_strndup(&p, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    char *e = tg_pool_strndup(&p, NULL, 0);
    cr_assert_str_eq(e, "");
    tg_pool_dispose(&p);
}

Test(tg_pool, an_impossible_size_fails_cleanly)
{
    tg_pool_t p = TG_POOL_INIT(64);
    cr_assert_null(tg_pool_alloc(&p, SIZE_MAX - 8));
    cr_assert_null(p.chunks);
    tg_pool_dispose(&p);
}

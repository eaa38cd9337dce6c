/* test_dp_shipper.c: the spool's segment names, which decide what a restart ships and deletes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "shipper.h"

Test(dp_shipper, a_segment_path_reads_back_as_its_number)
{
    char p[256];
    dp__spool_segment_path(p, sizeof(p), "/spool", 42);
    cr_assert_str_eq(p, "/spool/usage-00000000000000000042.ndjson");
    uint64_t seq = 0;
    cr_assert(dp__spool_segment_seq(strrchr(p, '/') + 1, &seq));
    cr_assert_eq(seq, 42);
    dp__spool_segment_path(p, sizeof(p), "/spool", UINT64_MAX);
    cr_assert(dp__spool_segment_seq(strrchr(p, '/') + 1, &seq));
    cr_assert_eq(seq, UINT64_MAX);
}

Test(dp_shipper, other_files_in_the_spool_are_not_segments)
{
    static const char *const names[] = {
        "cursor",
        "usage-0000000000000000004.ndjson",   /* 19 digits */
        "usage-000000000000000000042.ndjson", /* 21 digits */
        "usage-0000000000000000004x.ndjson",
        "usage-00000000000000000042.ndjson.tmp",
        "usage-00000000000000000042.json",
        "Usage-00000000000000000042.ndjson",
        "",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint64_t seq = 7;
        cr_assert_not(dp__spool_segment_seq(names[i], &seq), "%s", names[i]);
        cr_assert_eq(seq, 7, "%s: the number is left alone", names[i]);
    }
}

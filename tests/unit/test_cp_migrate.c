/* test_cp_migrate.c: the migrations compiled into the binary are applied in order: numbered from
 * 1 without a gap, each named for its number, and the latest is what /readyz expects. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cp.h"
#include "migrations.h"

Test(cp_migrate, versions_count_up_from_one_without_a_gap)
{
    int n = 0;
    for (const cp_migration_t *m = cp_migrations; m->sql; m++) {
        n++;
        cr_assert_eq(m->version, n, "%s is number %d in the list", m->name, n);
    }
    cr_assert_gt(n, 0);
    cr_assert_eq(cp_migrations_latest(), n);
}

Test(cp_migrate, each_file_is_named_for_its_version)
{
    for (const cp_migration_t *m = cp_migrations; m->sql; m++) {
        char prefix[8];
        snprintf(prefix, sizeof(prefix), "%04d_", m->version);
        cr_assert(strncmp(m->name, prefix, 5) == 0, "%s", m->name);
        size_t n = strlen(m->name);
        cr_assert(n > 4 && strcmp(m->name + n - 4, ".sql") == 0, "%s", m->name);
        cr_assert_gt(strlen(m->sql), 0);
    }
}

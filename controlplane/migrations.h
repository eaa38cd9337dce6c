/* migrations.h: the schema migrations compiled into the binary, in order, NULL-terminated. */
#ifndef CP_MIGRATIONS_H
#define CP_MIGRATIONS_H

typedef struct cp_migration {
    int version;
    const char *name;
    const char *sql;
} cp_migration_t;

extern const cp_migration_t cp_migrations[];

#endif

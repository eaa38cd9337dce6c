/* catalog.h: the model catalog (catalog/models.json, docs/catalog.md): its validation, the copy
 * built into the binary, and `tollgate-control catalog import|diff FILE`. */
#ifndef CP_CATALOG_H
#define CP_CATALOG_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

/* The catalog file as it was at build time (generated from catalog/models.json by CMake). */
extern const char cp_catalog_builtin[];
extern const size_t cp_catalog_builtin_len;

/* Checks a catalog document: 0, or -1 with what is wrong (and where) in msg. */
int cp_catalog_check(json_t *doc, char *msg, size_t msglen);
/* Stores the built-in catalog unless this exact one is stored already, and then bumps the config
 * version so the data planes get its prices. Main thread, before serving; 0 or -1 (logged). */
int cp_catalog_store_builtin(PGconn *c);
/* `catalog import FILE` (store, audit, print the changes) or `catalog diff FILE` (print only).
 * Returns the process exit status. */
int cp_catalog_cli(const char *verb, const char *file);

#endif

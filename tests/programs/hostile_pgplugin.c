/* A plugin that uses libpq the ordinary way (linked with -lpq), loaded at run
 * time by hostile_dlopen with dlopen(RTLD_LOCAL): the way a Python extension
 * module (psycopg2's _psycopg.so) brings libpq into a process that was not
 * linked against it. Its calls reach libpq through its own PLT, so the
 * preloaded agent's hooks see them, although libpq is not in the global
 * scope (dlsym(RTLD_NEXT) cannot find the real functions).
 *
 * hostile_pgplugin_run(leak): connects with the PG* environment, runs two
 * queries, clears the first, keeps the second if `leak` (from
 * pgplugin_leaky_query), and finishes the connection. Returns 0, or 2 if
 * the server cannot be reached or a query fails. */
#include <libpq-fe.h>
#include <stdio.h>

__attribute__((noinline)) static PGresult* pgplugin_leaky_query(PGconn* conn) {
  return PQexec(conn, "SELECT 2");
}

__attribute__((visibility("default"))) int hostile_pgplugin_run(int leak) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "plugin: connect failed: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 2;
  }
  PGresult* first = PQexec(conn, "SELECT 1");
  int ok = PQresultStatus(first) == PGRES_TUPLES_OK;
  PQclear(first);
  PGresult* second = pgplugin_leaky_query(conn);
  ok = ok && PQresultStatus(second) == PGRES_TUPLES_OK;
  if (!leak) PQclear(second);
  PQfinish(conn);
  return ok ? 0 : 2;
}

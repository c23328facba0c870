/* Uses every hooked path and releases everything: the agent must say nothing,
 * and stdout, stderr and the exit code (7) must be the same as without it. */
#include <string.h>

#include "pg_common.h"

static void drain(PGconn* conn) {
  PGresult* res;
  while ((res = PQgetResult(conn)) != NULL) PQclear(res);
}

int main(void) {
  PGconn* conn = connect_or_die();

  PGresult* res = PQexec(conn, "SELECT 1");
  printf("exec %s\n", PQgetvalue(res, 0, 0));
  PQclear(res);

  const char* params[1] = {"41"};
  res = PQexecParams(conn, "SELECT $1::int + 1", 1, NULL, params, NULL, NULL, 0);
  printf("params %s\n", PQgetvalue(res, 0, 0));
  PQclear(res);

  res = PQprepare(conn, "s1", "SELECT $1::int * 2", 1, NULL);
  PQclear(res);
  res = PQdescribePrepared(conn, "s1");
  printf("describe nparams %d\n", PQnparams(res));
  PQclear(res);
  res = PQexecPrepared(conn, "s1", 1, params, NULL, NULL, 0);
  printf("prepared %s\n", PQgetvalue(res, 0, 0));
  PGresult* copy = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
  PQclear(res);
  printf("copy %s\n", PQgetvalue(copy, 0, 0));
  PQclear(copy);

  PQsendQuery(conn, "SELECT 2; SELECT 3");
  drain(conn);

  PGresult* empty = PQmakeEmptyPGresult(conn, PGRES_EMPTY_QUERY);
  PQclear(empty);

  PGcancel* cancel = PQgetCancel(conn);
  PQfreeCancel(cancel);

  /* Asynchronous connect. */
  PGconn* async = PQconnectStart("");
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    st = PQconnectPoll(async);
  }
  printf("async %s\n", st == PGRES_POLLING_OK ? "ok" : "failed");
  PQreset(async);
  PQfinish(async);

  /* A failed connect is still a handle to finish. */
  PGconn* bad = PQconnectdb("host=127.0.0.1 port=1 connect_timeout=2");
  printf("bad status %d\n", PQstatus(bad) == CONNECTION_BAD);
  PQfinish(bad);

  PQfinish(conn);
  fprintf(stderr, "clean program's own stderr line\n");
  return 7;
}

/* pool_service — a libpq service written the way real ones are: a
 * connection pool opened at start-up (open_pool), a thread pool of 4
 * long-lived workers serving bursts of requests with quiet gaps between
 * them, and, with LEAK 1, an export handler (export_handler) that opens a
 * connection of its own on every burst and forgets it in a global list.
 * The skeleton and the usage are pool_common.h's:
 *
 *   pool_service POOL BURSTS GAP_MS LEAK close|keep
 *
 * A request borrows a connection from the pool's FIFO free list, runs
 * SELECT count(*) FROM generate_series(1, 1000), clears the result and gives
 * the connection back. Connection settings: the PG* environment. Run under
 * the agent by tests/integration/pool_reach_test.cc and scripts/bench-pool. */
#include "pg_common.h"
#include "pool_common.h"

#define NOINLINE __attribute__((noinline))

void open_pool(int size);
void handle_request(int request);
void export_handler(int burst);

/* Runs `sql` (one row, one column), clears the result and returns the
 * value, or exits 2. */
static long query_one_value(PGconn* conn, const char* sql) {
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    fprintf(stderr, "%s failed: %s", sql, PQerrorMessage(conn));
    exit(2);
  }
  long value = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  return value;
}

/* Opens the pool's connections. */
NOINLINE void open_pool(int size) {
  for (int i = 0; i < size; ++i) {
    PGconn* conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK) {
      fprintf(stderr, "connect failed: %s", PQerrorMessage(conn));
      exit(2);
    }
    pool_add(conn);
  }
}

/* One request: a pooled connection, a real query, the result cleared. */
NOINLINE void handle_request(int request) {
  PGconn* conn = pool_borrow();
  long n =
      query_one_value(conn, "SELECT count(*) FROM generate_series(1, 1000)");
  if (n != 1000) {
    fprintf(stderr, "request %d: wrong count %ld\n", request, n);
    exit(2);
  }
  pool_give_back(conn);
}

/* GET /export: a connection of its own, one query — then the connection is
 * kept in a list "for later" and never used or finished. */
NOINLINE void export_handler(int burst) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "export %d: connect failed: %s", burst,
            PQerrorMessage(conn));
    exit(2);
  }
  query_one_value(conn,
                  "SELECT count(*) FROM pg_stat_activity "
                  "WHERE datname = current_database()");
  export_list_append(conn);
}

static void finish(void* conn) { PQfinish(conn); }

int main(int argc, char** argv) {
  static const struct pool_ops kOps = {"pool_service", open_pool,
                                       handle_request, export_handler, finish};
  return pool_service_main(argc, argv, &kOps);
}

/* pool_service_my — pool_service.c with libmariadb: a connection pool opened
 * at start-up (open_pool), a thread pool of 4 long-lived workers serving
 * bursts of requests with quiet gaps between them, and, with LEAK 1, an
 * export handler (export_handler) that opens a connection of its own on
 * every burst and forgets it in a global list. The skeleton and the usage
 * are pool_common.h's:
 *
 *   pool_service_my POOL BURSTS GAP_MS LEAK close|keep
 *
 * A request borrows a connection from the pool's FIFO free list, runs
 * SELECT COUNT(*) FROM seq_1_to_1000 (mysql_query, mysql_store_result,
 * mysql_free_result) and gives the connection back. Connection settings: the
 * MYSQL_TEST_* environment (my_common.h). Run under the agent by
 * tests/integration/pool_reach_test.cc. */
#include "my_common.h"
#include "pool_common.h"

#define NOINLINE __attribute__((noinline))

void open_pool(int size);
void handle_request(int request);
void export_handler(int burst);

/* Runs `sql` (one row, one column), frees the result and returns the value,
 * or exits 2. */
static long query_one_value(MYSQL* conn, const char* sql) {
  if (mysql_query(conn, sql) != 0) {
    fprintf(stderr, "%s failed: %s\n", sql, mysql_error(conn));
    exit(2);
  }
  MYSQL_RES* res = mysql_store_result(conn);
  if (res == NULL) {
    fprintf(stderr, "%s: no result: %s\n", sql, mysql_error(conn));
    exit(2);
  }
  MYSQL_ROW row = mysql_fetch_row(res);
  long value = row != NULL && row[0] != NULL ? atol(row[0]) : -1;
  mysql_free_result(res);
  return value;
}

/* Connects what mysql_init returned (exits 2 if it returned NULL or the
 * connect fails). */
static MYSQL* connect_or_die(MYSQL* conn) {
  if (conn == NULL) {
    fprintf(stderr, "mysql_init: out of memory\n");
    exit(2);
  }
  return my_connect_handle_or_die(conn);
}

/* Opens the pool's connections. */
NOINLINE void open_pool(int size) {
  for (int i = 0; i < size; ++i) pool_add(connect_or_die(mysql_init(NULL)));
}

/* One request: a pooled connection, a real query, the result freed. */
NOINLINE void handle_request(int request) {
  MYSQL* conn = pool_borrow();
  long n = query_one_value(conn, "SELECT COUNT(*) FROM seq_1_to_1000");
  if (n != 1000) {
    fprintf(stderr, "request %d: wrong count %ld\n", request, n);
    exit(2);
  }
  pool_give_back(conn);
}

/* GET /export: a connection of its own, one query — then the connection is
 * kept in a list "for later" and never used or closed. */
NOINLINE void export_handler(int burst) {
  (void)burst;
  MYSQL* conn = connect_or_die(mysql_init(NULL));
  query_one_value(conn, "SELECT COUNT(*) FROM information_schema.processlist");
  export_list_append(conn);
}

static void close_conn(void* conn) { mysql_close(conn); }

int main(int argc, char** argv) {
  static const struct pool_ops kOps = {
      "pool_service_my", open_pool, handle_request, export_handler, close_conn};
  /* Before the workers start: the library's one-time set-up. */
  if (mysql_library_init(0, NULL, NULL) != 0) {
    fprintf(stderr, "mysql_library_init failed\n");
    return 2;
  }
  return pool_service_main(argc, argv, &kOps);
}

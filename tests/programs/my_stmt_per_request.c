/* A user service on one long-lived MariaDB connection, serving "requests"
 * with quiet gaps between them, two ways:
 *
 *   leak   every request prepares its lookup statement anew and, when the
 *          user is found, returns early without mysql_stmt_close: one
 *          statement leaked per request on a connection that stays open.
 *          (Unknown users take the path that closes it.)
 *   cache  a fixed cache of 4 statements, prepared on first use and
 *          executed again by every request; never closed (the service
 *          exits with its cache, as services do).
 *
 * Usage: my_stmt_per_request leak|cache LOG
 *   LOG is the agent's LEAKWATCH_LOG. In leak mode the program serves two
 *   leaking requests 1.5 thresholds apart, waits until LOG has a growth
 *   warning, serves two more and waits for the second (doubling) warning,
 *   then exits holding everything. In cache mode it serves 6 requests,
 *   gaps alternating 1.5 and 0.3 thresholds, then rests 1.5 thresholds.
 *   The threshold is LEAKWATCH_STMT_THRESHOLD_MS (or LEAKWATCH_THRESHOLD_MS). */
#include "my_common.h"
#include "request_loop.h"

MYSQL* g_conn;            /* the service's connection, open until exit */
MYSQL_STMT* g_cache[4];   /* cache mode: prepared on first use */

static void bind_int(MYSQL_BIND* b, int* value) {
  memset(b, 0, sizeof *b);
  b->buffer_type = MYSQL_TYPE_LONG;
  b->buffer = value;
}

/* Executes `stmt` with `id` as its one parameter and reads its rows, if it
 * has any, into `text` (the first column, as a string). Returns the number
 * of rows, or -1. */
static int run(MYSQL_STMT* stmt, int id, char* text, size_t cap) {
  MYSQL_BIND param;
  bind_int(&param, &id);
  if (mysql_stmt_bind_param(stmt, &param) != 0 ||
      mysql_stmt_execute(stmt) != 0) {
    fprintf(stderr, "execute: %s\n", mysql_stmt_error(stmt));
    return -1;
  }
  if (mysql_stmt_field_count(stmt) == 0) return 0;
  unsigned long length = 0;
  MYSQL_BIND column;
  memset(&column, 0, sizeof column);
  column.buffer_type = MYSQL_TYPE_STRING;
  column.buffer = text;
  column.buffer_length = cap;
  column.length = &length;
  if (mysql_stmt_bind_result(stmt, &column) != 0 ||
      mysql_stmt_store_result(stmt) != 0) {
    fprintf(stderr, "result: %s\n", mysql_stmt_error(stmt));
    return -1;
  }
  int rows = 0;
  int rc;
  while ((rc = mysql_stmt_fetch(stmt)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
    ++rows;
  }
  mysql_stmt_free_result(stmt);
  return rows;
}

/* leak mode: the lookup statement, prepared per request. */
__attribute__((noinline)) int lookup_user(MYSQL* conn, int id, char* name,
                                          size_t cap) {
  const char* sql = "SELECT name FROM users WHERE id = ?";
  MYSQL_STMT* stmt = mysql_stmt_init(conn);
  if (stmt == NULL) return -1;
  if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
    fprintf(stderr, "prepare: %s\n", mysql_stmt_error(stmt));
    mysql_stmt_close(stmt);
    return -1;
  }
  int rows = run(stmt, id, name, cap);
  if (rows > 0) return 1; /* found: early return, forgot mysql_stmt_close */
  mysql_stmt_close(stmt);
  return rows;
}

/* cache mode: statement `i` of the cache, prepared on first use. */
__attribute__((noinline)) MYSQL_STMT* cached_statement(MYSQL* conn, int i) {
  static const char* const kSql[4] = {
      "SELECT name FROM users WHERE id = ?",
      "SELECT COUNT(*) FROM orders WHERE user_id = ?",
      "UPDATE users SET seen = seen + 1 WHERE id = ?",
      "INSERT INTO orders (user_id) VALUES (?)",
  };
  if (g_cache[i] == NULL) {
    MYSQL_STMT* stmt = mysql_stmt_init(conn);
    if (stmt == NULL || mysql_stmt_prepare(stmt, kSql[i], strlen(kSql[i]))) {
      fprintf(stderr, "prepare %d failed\n", i);
      exit(2);
    }
    g_cache[i] = stmt;
  }
  return g_cache[i];
}

__attribute__((noinline)) void serve_leaking(int id) {
  char name[64];
  if (lookup_user(g_conn, id, name, sizeof name) < 0) exit(2);
}

__attribute__((noinline)) void serve_cached(int id) {
  char text[64];
  for (int i = 0; i < 4; ++i) {
    if (run(cached_statement(g_conn, i), id, text, sizeof text) < 0) exit(2);
  }
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int leak = strcmp(argv[1], "leak") == 0;
  const char* log = argv[2];
  const long t = rl_threshold_ms();
  g_conn = my_connect_or_die();
  my_exec_or_die(g_conn,
                 "CREATE TEMPORARY TABLE users (id INT PRIMARY KEY, "
                 "name VARCHAR(32), seen INT NOT NULL DEFAULT 0)");
  my_exec_or_die(g_conn, "CREATE TEMPORARY TABLE orders (user_id INT)");
  my_exec_or_die(g_conn,
                 "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), "
                 "(3, 'cy'), (4, 'di'), (5, 'ed')");
  if (leak) {
    /* One call site for every request (one acquisition stack, as a
     * service's request loop has); after a request, the pause or the wait
     * for the agent ("growing" is in both its text and JSON warnings). */
    static const int kUsers[6] = {1, 404, 2, 3, 405, 4}; /* 40x: unknown */
    for (int request = 0; request < 6; ++request) {
      serve_leaking(kUsers[request]);
      if (request == 1) rl_sleep_ms(t * 3 / 2);
      if (request == 2) rl_wait_for_lines(log, "growing", 1);
      if (request == 5) rl_wait_for_lines(log, "growing", 2);
    }
    printf("served 6 requests, 4 statements leaked\n");
  } else {
    for (int request = 0; request < 6; ++request) {
      serve_cached(1 + request % 5);
      rl_sleep_ms(request % 2 == 0 ? t * 3 / 2 : t * 3 / 10);
    }
    rl_sleep_ms(t * 3 / 2);
    printf("served 6 requests from a cache of 4 statements\n");
  }
  return 0;
}

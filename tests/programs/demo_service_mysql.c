/*
 * demo_service_mysql — a small "service" that leaks MariaDB client handles
 * (libmariadb) the way real services do; scripts/demo.sh runs it under
 * leakwatch after the PostgreSQL demo.
 *
 * It runs for about 3 seconds in ticks of 100 ms. Every tick it pings the
 * database over one long-lived "pool" connection (busy all the time: not a
 * leak). Alongside, it serves simulated requests:
 *
 *   - handle_user_lookup_request(): looks a user up on the pool connection
 *     with mysql_store_result; when the user does not exist it returns early
 *     and forgets mysql_free_result — an abandoned MYSQL_RES (users 3, 6 and
 *     9: three leaked results from one stack). A stored result does not block
 *     the connection, so the pool keeps working.
 *   - handle_price_request(): a prepared statement on the pool connection;
 *     SKUs of the legacy catalogue query a table that no longer exists, and
 *     the error path returns without mysql_stmt_close — a leaked MYSQL_STMT
 *     (SKU 4: one leaked statement).
 *   - handle_export_request(): opens a connection per request and streams the
 *     export with mysql_use_result; when the first row shows the client's copy
 *     is current it returns early, abandoning the half-read result and the
 *     connection — the result pins the connection (any further query on it
 *     would fail with "Commands out of sync"), and the connection is never
 *     closed (exports 2 and 4: two leaked connections, each pinned by a
 *     leaked result).
 *
 * Everything else is released. Connection settings come from the
 * MYSQL_TEST_* variables of scripts/mysql-sandbox (host, default 127.0.0.1;
 * port; user and database, default leakwatch; password, default libmariadb's
 * MYSQL_PWD). Exit status: 0, or 1 if the server cannot be reached or a query
 * fails unexpectedly.
 *
 * The functions are non-static and noinline so that each leak has its own
 * readable acquire stack.
 */
#define _POSIX_C_SOURCE 200809L

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

enum {
  kTickMs = 100,
  kRunTicks = 30,          /* 3 s in all */
  kUserRequests = 10,      /* one per tick, ticks 0..9 */
  kPriceEveryTicks = 2,    /* price requests at ticks 0, 2, .., 10 */
  kPriceRequests = 6,
  kExportEveryTicks = 4,   /* export requests at ticks 4, 8, 12, 16 */
  kExportRequests = 4,
};

MYSQL *open_connection(const char *purpose);
int pool_heartbeat(MYSQL *pool);
int handle_user_lookup_request(MYSQL *pool, int user_id);
int handle_price_request(MYSQL *pool, int sku);
int handle_export_request(int export_id);
int dispatch_requests(MYSQL *pool, int tick);
int run_service(MYSQL *pool);

static const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value != NULL && value[0] != '\0' ? value : fallback;
}

/* Connects a new handle with the MYSQL_TEST_* settings; NULL (error printed,
 * handle closed) on failure. */
NOINLINE MYSQL *open_connection(const char *purpose) {
  MYSQL *conn = mysql_init(NULL);
  if (conn == NULL) {
    fprintf(stderr, "demo_service_mysql: mysql_init: out of memory\n");
    return NULL;
  }
  const char *port = env_or("MYSQL_TEST_PORT", NULL);
  if (mysql_real_connect(conn, env_or("MYSQL_TEST_HOST", "127.0.0.1"),
                         env_or("MYSQL_TEST_USER", "leakwatch"),
                         env_or("MYSQL_TEST_PASSWORD", NULL),
                         env_or("MYSQL_TEST_DB", "leakwatch"),
                         port != NULL ? (unsigned)atoi(port) : 0, NULL,
                         0) == NULL) {
    fprintf(stderr, "demo_service_mysql: cannot open the %s connection: %s\n",
            purpose, mysql_error(conn));
    mysql_close(conn);
    return NULL;
  }
  return conn;
}

/* The pool's keep-alive: a trivial query, result freed. 0 or -1. */
NOINLINE int pool_heartbeat(MYSQL *pool) {
  if (mysql_query(pool, "SELECT 1") != 0) {
    fprintf(stderr, "demo_service_mysql: heartbeat failed: %s\n",
            mysql_error(pool));
    return -1;
  }
  MYSQL_RES *res = mysql_store_result(pool);
  if (res == NULL) {
    fprintf(stderr, "demo_service_mysql: heartbeat failed: %s\n",
            mysql_error(pool));
    return -1;
  }
  mysql_free_result(res);
  return 0;
}

/*
 * GET /users/<id>. Users whose id is a multiple of 3 do not exist.
 * LEAK: the "not found" early return does not mysql_free_result.
 */
NOINLINE int handle_user_lookup_request(MYSQL *pool, int user_id) {
  char sql[128];
  snprintf(sql, sizeof sql,
           "SELECT CONCAT('user-', %d) FROM DUAL WHERE %d %% 3 <> 0", user_id,
           user_id);
  if (mysql_query(pool, sql) != 0) {
    fprintf(stderr, "demo_service_mysql: user lookup failed: %s\n",
            mysql_error(pool));
    return -1;
  }
  MYSQL_RES *res = mysql_store_result(pool);
  if (res == NULL) {
    fprintf(stderr, "demo_service_mysql: user lookup failed: %s\n",
            mysql_error(pool));
    return -1;
  }
  if (mysql_num_rows(res) == 0) {
    printf("demo_service_mysql: GET /users/%d -> 404 not found\n", user_id);
    return 0; /* leaks res */
  }
  mysql_free_result(res);
  return 0;
}

/*
 * GET /prices/<sku>: a prepared statement on the pool connection. SKUs that
 * are multiples of 4 belong to the legacy catalogue, whose table was dropped:
 * preparing fails and the service answers 500.
 * LEAK: that error path returns without mysql_stmt_close.
 */
NOINLINE int handle_price_request(MYSQL *pool, int sku) {
  MYSQL_STMT *stmt = mysql_stmt_init(pool);
  if (stmt == NULL) {
    fprintf(stderr, "demo_service_mysql: mysql_stmt_init: out of memory\n");
    return -1;
  }
  const char *sql = sku % 4 == 0
                        ? "SELECT price FROM legacy_prices WHERE sku = ?"
                        : "SELECT ? * 100 + 99";
  if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
    printf("demo_service_mysql: GET /prices/%d -> 500 (%s)\n", sku,
           mysql_stmt_error(stmt));
    return 0; /* leaks stmt */
  }

  long long sku_param = sku;
  MYSQL_BIND param;
  memset(&param, 0, sizeof param);
  param.buffer_type = MYSQL_TYPE_LONGLONG;
  param.buffer = &sku_param;

  long long price = 0;
  MYSQL_BIND result;
  memset(&result, 0, sizeof result);
  result.buffer_type = MYSQL_TYPE_LONGLONG;
  result.buffer = &price;

  if (mysql_stmt_bind_param(stmt, &param) != 0 ||
      mysql_stmt_execute(stmt) != 0 ||
      mysql_stmt_bind_result(stmt, &result) != 0 ||
      mysql_stmt_fetch(stmt) != 0) {
    fprintf(stderr, "demo_service_mysql: price query failed: %s\n",
            mysql_stmt_error(stmt));
    mysql_stmt_close(stmt);
    return -1;
  }
  printf("demo_service_mysql: GET /prices/%d -> %lld cents\n", sku, price);
  mysql_stmt_free_result(stmt);
  mysql_stmt_close(stmt);
  return 0;
}

/*
 * GET /exports/<id>: streams a large export over its own connection
 * (mysql_use_result: rows are read from the socket as they are fetched). The
 * first row carries the export's version; even export ids find the client's
 * copy current ("304 not modified").
 * LEAK: that early return abandons the half-read result, which keeps the
 * connection busy, and never closes the connection.
 */
NOINLINE int handle_export_request(int export_id) {
  MYSQL *conn = open_connection("export");
  if (conn == NULL) {
    return -1;
  }
  if (mysql_query(conn, "SELECT seq, seq * 7 FROM seq_1_to_1000") != 0) {
    fprintf(stderr, "demo_service_mysql: export query failed: %s\n",
            mysql_error(conn));
    mysql_close(conn);
    return -1;
  }
  MYSQL_RES *rows = mysql_use_result(conn);
  if (rows == NULL) {
    fprintf(stderr, "demo_service_mysql: export query failed: %s\n",
            mysql_error(conn));
    mysql_close(conn);
    return -1;
  }
  MYSQL_ROW row = mysql_fetch_row(rows);
  if (row == NULL) {
    fprintf(stderr, "demo_service_mysql: export is empty: %s\n",
            mysql_error(conn));
    mysql_free_result(rows);
    mysql_close(conn);
    return -1;
  }
  if (export_id % 2 == 0) {
    printf("demo_service_mysql: GET /exports/%d -> 304 not modified "
           "(version %s)\n",
           export_id, row[0]);
    return 0; /* leaks rows (unread: conn stays busy) and conn */
  }
  long count = 1;
  while (mysql_fetch_row(rows) != NULL) {
    count++;
  }
  mysql_free_result(rows);
  printf("demo_service_mysql: GET /exports/%d -> %ld rows\n", export_id,
         count);
  mysql_close(conn);
  return 0;
}

/* The requests that arrive in one tick. 0 or -1. */
NOINLINE int dispatch_requests(MYSQL *pool, int tick) {
  if (tick < kUserRequests &&
      handle_user_lookup_request(pool, tick + 1) != 0) {
    return -1;
  }
  if (tick % kPriceEveryTicks == 0 &&
      tick / kPriceEveryTicks < kPriceRequests &&
      handle_price_request(pool, tick / kPriceEveryTicks + 1) != 0) {
    return -1;
  }
  if (tick > 0 && tick % kExportEveryTicks == 0 &&
      tick / kExportEveryTicks <= kExportRequests &&
      handle_export_request(tick / kExportEveryTicks) != 0) {
    return -1;
  }
  return 0;
}

static void add_ms(struct timespec *t, long ms) {
  t->tv_nsec += ms * 1000000L;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

/* The main loop: kRunTicks ticks of kTickMs on an absolute schedule. */
NOINLINE int run_service(MYSQL *pool) {
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int tick = 0; tick < kRunTicks; tick++) {
    if (pool_heartbeat(pool) != 0 || dispatch_requests(pool, tick) != 0) {
      return -1;
    }
    add_ms(&next, kTickMs);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  return 0;
}

int main(void) {
  /* Keep our lines in order with the agent's stderr even through a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  MYSQL *pool = open_connection("pool");
  if (pool == NULL) {
    return 1;
  }
  printf("demo_service_mysql: connected to %s on %s (connection id %lu), "
         "serving for %d s\n",
         env_or("MYSQL_TEST_DB", "leakwatch"), mysql_get_host_info(pool),
         mysql_thread_id(pool), kRunTicks * kTickMs / 1000);

  int rc = run_service(pool);
  mysql_close(pool);
  if (rc != 0) {
    return 1;
  }
  printf("demo_service_mysql: done, %d user, %d price and %d export requests "
         "served\n",
         kUserRequests, kPriceRequests, kExportRequests);
  return 0;
}

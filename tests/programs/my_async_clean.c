/* The non-blocking API used correctly: two connections driven at the same
 * time from one thread with a poll() loop (what the API is for), so that the
 * hooks of one connection's _start/_cont calls run while the other's are
 * suspended inside the library. Then, on one connection, an unbuffered result
 * read with mysql_fetch_row_start/_cont and freed half-way with
 * mysql_free_result_start/_cont (which drains it), and a prepared statement
 * closed with mysql_stmt_close_start/_cont. Everything is released: the agent
 * must say nothing. Handles: 2 mysql.conn, 3 mysql.result, 1 mysql.stmt.
 * Usage: my_async_clean   (exit status 0; 2 if the server cannot be used) */
#include "my_common.h"

enum { kConns = 2 };

static MYSQL* conns[kConns];
static MYSQL* connect_ret[kConns];
static int query_ret[kConns];
static MYSQL_RES* results[kConns];

static short events_for(int status) {
  return (short)((status & MYSQL_WAIT_READ ? POLLIN : 0) |
                 (status & MYSQL_WAIT_WRITE ? POLLOUT : 0) |
                 (status & MYSQL_WAIT_EXCEPT ? POLLPRI : 0));
}

/* Drives every connection whose status is nonzero until all are done: polls
 * their sockets together and calls cont(i, ready) for each that is ready. */
static void wait_all(int* status, int (*cont)(int i, int ready)) {
  for (;;) {
    struct pollfd pfd[kConns];
    int which[kConns];
    int n = 0, timeout_ms = -1;
    for (int i = 0; i < kConns; ++i) {
      if (status[i] == 0) continue;
      pfd[n].fd = mysql_get_socket(conns[i]);
      pfd[n].events = events_for(status[i]);
      pfd[n].revents = 0;
      which[n++] = i;
      if (status[i] & MYSQL_WAIT_TIMEOUT) {
        int t = (int)mysql_get_timeout_value_ms(conns[i]);
        if (timeout_ms < 0 || t < timeout_ms) timeout_ms = t;
      }
    }
    if (n == 0) return;
    int got = poll(pfd, (nfds_t)n, timeout_ms);
    for (int k = 0; k < n; ++k) {
      int i = which[k], ready = 0;
      if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_READ;
      if (pfd[k].revents & POLLOUT) ready |= MYSQL_WAIT_WRITE;
      if (pfd[k].revents & POLLPRI) ready |= MYSQL_WAIT_EXCEPT;
      if (got == 0 && (status[i] & MYSQL_WAIT_TIMEOUT)) ready = MYSQL_WAIT_TIMEOUT;
      if (ready != 0) status[i] = cont(i, ready);
    }
  }
}

static int connect_cont(int i, int ready) {
  return mysql_real_connect_cont(&connect_ret[i], conns[i], ready);
}
static int query_cont(int i, int ready) {
  return mysql_real_query_cont(&query_ret[i], conns[i], ready);
}
static int store_cont(int i, int ready) {
  return mysql_store_result_cont(&results[i], conns[i], ready);
}
static int free_cont(int i, int ready) {
  return mysql_free_result_cont(results[i], ready);
}
static int close_cont(int i, int ready) {
  return mysql_close_cont(conns[i], ready);
}

static void die(MYSQL* mysql, const char* what) {
  fprintf(stderr, "%s: %s\n", what, mysql_error(mysql));
  exit(2);
}

/* Both connections at once: connect, query, store, read, free. */
static void fan_out(void) {
  int status[kConns];
  for (int i = 0; i < kConns; ++i) {
    conns[i] = mysql_init(NULL);
    mysql_options(conns[i], MYSQL_OPT_NONBLOCK, 0);
    status[i] = mysql_real_connect_start(&connect_ret[i], conns[i], my_host(),
                                         my_user(), my_password(), my_db(),
                                         my_port(), NULL, 0);
  }
  wait_all(status, connect_cont);
  for (int i = 0; i < kConns; ++i) {
    if (connect_ret[i] == NULL) die(conns[i], "connect");
  }
  for (int i = 0; i < kConns; ++i) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT seq, SLEEP(0.05) FROM seq_1_to_%d",
             3 + i);
    status[i] = mysql_real_query_start(&query_ret[i], conns[i], sql,
                                       (unsigned long)strlen(sql));
  }
  wait_all(status, query_cont);
  for (int i = 0; i < kConns; ++i) {
    if (query_ret[i] != 0) die(conns[i], "query");
    status[i] = mysql_store_result_start(&results[i], conns[i]);
  }
  wait_all(status, store_cont);
  for (int i = 0; i < kConns; ++i) {
    if (results[i] == NULL) die(conns[i], "store result");
    printf("connection %d: %llu rows\n", i,
           (unsigned long long)mysql_num_rows(results[i]));
    status[i] = mysql_free_result_start(results[i]);
  }
  wait_all(status, free_cont);
}

/* Unbuffered rows read without blocking, result freed half-way (draining
 * the rest), then a prepared statement closed without blocking. */
static void stream_and_prepare(MYSQL* conn) {
  int ret, status;
  const char* sql = "SELECT seq FROM seq_1_to_200";
  status = mysql_real_query_start(&ret, conn, sql, (unsigned long)strlen(sql));
  while (status) status = mysql_real_query_cont(&ret, conn, my_wait_for(conn, status));
  if (ret != 0) die(conn, "query");
  MYSQL_RES* res = mysql_use_result(conn);
  if (res == NULL) die(conn, "use result");
  long sum = 0;
  for (int n = 0; n < 10; ++n) {
    MYSQL_ROW row;
    status = mysql_fetch_row_start(&row, res);
    while (status) status = mysql_fetch_row_cont(&row, res, my_wait_for(conn, status));
    if (row == NULL) break;
    sum += atol(row[0]);
  }
  status = mysql_free_result_start(res);
  while (status) status = mysql_free_result_cont(res, my_wait_for(conn, status));
  printf("streamed 10 rows, sum %ld\n", sum);

  MYSQL_STMT* stmt = mysql_stmt_init(conn);
  if (stmt == NULL) die(conn, "stmt init");
  const char* ps = "SELECT ? + 1";
  status = mysql_stmt_prepare_start(&ret, stmt, ps, (unsigned long)strlen(ps));
  while (status) status = mysql_stmt_prepare_cont(&ret, stmt, my_wait_for(conn, status));
  if (ret != 0) die(conn, "prepare");
  printf("prepared %lu parameter\n", mysql_stmt_param_count(stmt));
  my_bool closed;
  status = mysql_stmt_close_start(&closed, stmt);
  while (status) status = mysql_stmt_close_cont(&closed, stmt, my_wait_for(conn, status));
}

int main(void) {
  fan_out();
  stream_and_prepare(conns[0]);
  int status[kConns];
  for (int i = 0; i < kConns; ++i) status[i] = mysql_close_start(conns[i]);
  wait_all(status, close_cont);
  printf("closed %d connections\n", kConns);
  return 0;
}

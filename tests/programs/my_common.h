/* Shared by the MySQL/MariaDB test programs: connect with the MYSQL_TEST_*
 * environment (set by scripts/mysql-sandbox), or exit 2 with the server's
 * message; and a poll() loop for the non-blocking API.
 *
 *   MYSQL_TEST_HOST (default 127.0.0.1), MYSQL_TEST_PORT (required),
 *   MYSQL_TEST_USER, MYSQL_TEST_PASSWORD, MYSQL_TEST_DB
 *
 * Always TCP to host:port, so the agent's identity text is
 * "host=127.0.0.1 port=NNNN user=... db=... connection_id=N". */
#ifndef LEAKWATCH_TESTS_PROGRAMS_MY_COMMON_H_
#define LEAKWATCH_TESTS_PROGRAMS_MY_COMMON_H_

#include <mysql.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline const char* my_env(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : fallback;
}

static inline const char* my_host(void) {
  return my_env("MYSQL_TEST_HOST", "127.0.0.1");
}
static inline const char* my_user(void) {
  return my_env("MYSQL_TEST_USER", "leakwatch");
}
static inline const char* my_password(void) {
  return my_env("MYSQL_TEST_PASSWORD", NULL);
}
static inline const char* my_db(void) {
  return my_env("MYSQL_TEST_DB", "leakwatch");
}
static inline unsigned int my_port(void) {
  const char* port = my_env("MYSQL_TEST_PORT", NULL);
  if (port == NULL) {
    fprintf(stderr, "MYSQL_TEST_PORT is not set (start scripts/mysql-sandbox)\n");
    exit(2);
  }
  return (unsigned int)atoi(port);
}

/* Connects an inited handle (heap or caller's struct); exits 2 on failure. */
static inline MYSQL* my_connect_handle_or_die(MYSQL* mysql) {
  if (mysql_real_connect(mysql, my_host(), my_user(), my_password(), my_db(),
                         my_port(), NULL, 0) == NULL) {
    fprintf(stderr, "connect failed: %s\n", mysql_error(mysql));
    exit(2);
  }
  return mysql;
}

/* mysql_init(NULL) + mysql_real_connect, or exit 2. */
static inline MYSQL* my_connect_or_die(void) {
  MYSQL* mysql = mysql_init(NULL);
  if (mysql == NULL) {
    fprintf(stderr, "mysql_init: out of memory\n");
    exit(2);
  }
  return my_connect_handle_or_die(mysql);
}

/* Runs a statement that returns no rows, or exits 2. */
static inline void my_exec_or_die(MYSQL* mysql, const char* sql) {
  if (mysql_query(mysql, sql) != 0) {
    fprintf(stderr, "%s failed: %s\n", sql, mysql_error(mysql));
    exit(2);
  }
}

/* Waits on the connection's socket for what a _start/_cont call asked for
 * (MYSQL_WAIT_*), and returns what happened, for the next _cont call. The
 * loop from MariaDB Connector/C's documentation of the non-blocking API. */
static inline int my_wait_for(MYSQL* mysql, int status) {
  struct pollfd pfd;
  pfd.fd = mysql_get_socket(mysql);
  pfd.events = (short)((status & MYSQL_WAIT_READ ? POLLIN : 0) |
                       (status & MYSQL_WAIT_WRITE ? POLLOUT : 0) |
                       (status & MYSQL_WAIT_EXCEPT ? POLLPRI : 0));
  pfd.revents = 0;
  int timeout_ms = -1;
  if (status & MYSQL_WAIT_TIMEOUT) {
    timeout_ms = (int)mysql_get_timeout_value_ms(mysql);
  }
  int n = poll(&pfd, 1, timeout_ms);
  if (n <= 0) return MYSQL_WAIT_TIMEOUT;
  int ready = 0;
  if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_READ;
  if (pfd.revents & POLLOUT) ready |= MYSQL_WAIT_WRITE;
  if (pfd.revents & POLLPRI) ready |= MYSQL_WAIT_EXCEPT;
  return ready;
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_MY_COMMON_H_ */

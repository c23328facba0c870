/* A connection in a caller's struct (`MYSQL m; mysql_init(&m);`), connected
 * and never closed: the health check returns as soon as the replica answers,
 * and the struct goes out of scope with the connection still open. The stack
 * is then reused by other calls, so the agent must not read the dead struct
 * when it reports.
 * Usage: my_stack_conn_leak [checks]   (default 1) — the same stack slot is
 * reused by every check: each new mysql_init(&m) replaces the record of the
 * previous one (DESIGN.md), so one connection is reported, the last. */
#include "my_common.h"

__attribute__((noinline)) int check_replica_health(void) {
  MYSQL m;
  mysql_init(&m);
  my_connect_handle_or_die(&m);
  unsigned long id = mysql_thread_id(&m);
  my_exec_or_die(&m, "SELECT @@read_only");
  MYSQL_RES* res = mysql_store_result(&m);
  MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
  int read_only = row != NULL && row[0] != NULL && atoi(row[0]) != 0;
  mysql_free_result(res);
  printf("replica connection %lu read_only=%d\n", id, read_only);
  if (!read_only) return 1; /* early return: m is never closed */
  mysql_close(&m);
  return 0;
}

/* Overwrites the stack where check_replica_health's struct lived. */
__attribute__((noinline)) int scribble_stack(void) {
  volatile unsigned char junk[8192];
  for (size_t i = 0; i < sizeof junk; ++i) junk[i] = (unsigned char)(0xA5 ^ i);
  int sum = 0;
  for (size_t i = 0; i < sizeof junk; i += 512) sum += junk[i];
  return sum;
}

int main(int argc, char** argv) {
  int checks = argc > 1 ? atoi(argv[1]) : 1;
  int writable = 0;
  for (int i = 0; i < checks; ++i) writable += check_replica_health();
  printf("%d of %d replicas writable (scribble %d)\n", writable, checks,
         scribble_stack() > 0);
  return 0;
}

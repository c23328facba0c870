/* Holds a known set of handles until the agent's metrics file shows them past
 * the threshold and reported, copies that file, then releases everything.
 * Usage: pg_metrics_hold METRICS_FILE COPY_TO
 *   3 connections; 6 results from the first, 5 of them held (1 cleared). */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics_file.h"
#include "pg_common.h"

__attribute__((noinline)) PGresult* load_page(PGconn* conn, int page) {
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT %d", page);
  return PQexec(conn, sql);
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  PGconn* conns[3];
  for (int i = 0; i < 3; ++i) conns[i] = connect_or_die();
  PGresult* held[5];
  for (int i = 0; i < 5; ++i) held[i] = load_page(conns[0], i);
  PQclear(load_page(conns[0], 99));
  time_t deadline = time(NULL) + 20;
  /* Past the threshold first; each reported once its reachability verdict
   * is in (a scan later, at most). */
  while (!line_has(argv[1],
                   "leakwatch_handles_past_threshold{kind=\"pg.result\"",
                   "} 5\n") ||
         !line_has(argv[1], "leakwatch_leak_reports_total{kind=\"pg.result\"",
                   "} 5\n")) {
    if (time(NULL) > deadline) {
      fprintf(stderr, "metrics never showed the held results\n");
      return 3;
    }
    usleep(20 * 1000);
  }
  if (!copy_file(argv[1], argv[2])) return 4;
  for (int i = 0; i < 5; ++i) PQclear(held[i]);
  for (int i = 0; i < 3; ++i) PQfinish(conns[i]);
  printf("metrics copied\n");
  return 0;
}

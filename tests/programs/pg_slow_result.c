/* Holds a result past the threshold, then clears it: slow, not leaked.
 * To avoid guessing at timing, it waits (with a deadline) until the agent's
 * log file shows the live warning, clears the result, then waits until the
 * log shows the release note.  Usage: pg_slow_result LOGFILE */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_common.h"

static int log_contains(const char* path, const char* needle) {
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    found = strstr(line, needle) != NULL;
  }
  fclose(f);
  return found;
}

static int wait_for(const char* path, const char* needle, int seconds) {
  time_t deadline = time(NULL) + seconds;
  while (time(NULL) < deadline) {
    if (log_contains(path, needle)) return 1;
    usleep(20 * 1000);
  }
  return 0;
}

__attribute__((noinline)) PGresult* fetch_report_page(PGconn* conn) {
  return PQexec(conn, "SELECT g FROM generate_series(1, 100) g");
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  PGconn* conn = connect_or_die();
  PGresult* res = fetch_report_page(conn);
  if (!wait_for(argv[1], "pg.result", 20)) {
    fprintf(stderr, "no live warning within 20 s\n");
    return 3;
  }
  PQclear(res);
  if (!wait_for(argv[1], "was released after", 20)) {
    fprintf(stderr, "no release note within 20 s\n");
    return 4;
  }
  PQfinish(conn);
  printf("slow result done\n");
  return 0;
}

/* A daemon that leaks and is then killed with SIGKILL: no exit report can
 * run, so only LEAKWATCH_REPORT_INTERVAL's periodic report tells. It waits
 * (with a deadline) until the agent's log shows a periodic report, then kills
 * itself.  Usage: pg_killed_daemon LOGFILE */
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_common.h"

static int log_has(const char* path, const char* needle) {
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

__attribute__((noinline)) PGresult* poll_job_queue(PGconn* conn) {
  return PQexec(conn, "SELECT 1 AS job");
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  PGconn* conn = connect_or_die();
  volatile int jobs = 3; /* not unrolled: one call site */
  for (int i = 0; i < jobs; ++i) poll_job_queue(conn); /* never cleared */
  time_t deadline = time(NULL) + 20;
  while (!log_has(argv[1], "periodic report")) {
    if (time(NULL) > deadline) return 3;
    usleep(20 * 1000);
  }
  kill(getpid(), SIGKILL);
  return 4;
}

/* Handles kept on purpose, annotated with include/leakwatch.h, next to one
 * that is really leaked. Built twice: annot_ignore (position-independent,
 * the weak-symbol path) and annot_ignore_nopie (-fno-pie -no-pie, the dlsym
 * path); both must link and run with and without the agent.
 *
 * Usage: annot_ignore [annotate|plain]   (default annotate)
 *   open_config_connection  a global connection kept for the life of the
 *                           process (annotated)
 *   load_settings           a result cached for ever (annotated)
 *   start_reaper            a thread that exits and is never joined, on
 *                           purpose (annotated)
 *   handle_request          a connection per request, never finished: the
 *                           one real leak (never annotated)
 *   plain                   the same without any annotation (every one of
 *                           them is then reported)
 * Prints "loaded=L config=C settings=S reaper=R" (what leakwatch_is_loaded
 * and the three annotations returned: 1 each with the agent, 0 without;
 * -1 where plain did not annotate) and "done". */
#define _GNU_SOURCE
#include <leakwatch.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pg_common.h"
#include "thr_common.h"

static PGconn* config_conn; /* kept until exit, on purpose */
static PGresult* settings;  /* likewise */
static pthread_t reaper;    /* never joined, on purpose */
static atomic_int reaper_tid;

__attribute__((noinline)) void open_config_connection(void) {
  config_conn = connect_or_die();
}

__attribute__((noinline)) void load_settings(void) {
  settings = PQexec(config_conn,
                    "SELECT name, setting FROM pg_settings "
                    "WHERE name = 'server_version'");
  if (PQresultStatus(settings) != PGRES_TUPLES_OK) {
    fprintf(stderr, "settings: %s", PQerrorMessage(config_conn));
    exit(2);
  }
}

static void* reap_once(void* arg) {
  (void)arg;
  atomic_store(&reaper_tid, gettid());
  return NULL;
}

__attribute__((noinline)) void start_reaper(void) {
  int rc = pthread_create(&reaper, NULL, reap_once, NULL);
  if (rc != 0) thr_die("pthread_create", rc);
}

/* The leak: the connection is never finished. */
__attribute__((noinline)) int handle_request(void) {
  PGconn* conn = connect_or_die();
  PGresult* res = PQexec(conn, "SELECT 1");
  int rows = PQntuples(res);
  PQclear(res);
  return rows;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "annotate";
  int annotate = strcmp(mode, "annotate") == 0;
  if (!annotate && strcmp(mode, "plain") != 0) {
    fprintf(stderr, "usage: annot_ignore [annotate|plain]\n");
    return 2;
  }
  int config = -1, kept = -1, reaped = -1;
  open_config_connection();
  load_settings();
  start_reaper();
  if (annotate) {
    config = leakwatch_ignore_handle(config_conn);
    kept = leakwatch_ignore_handle(settings);
    reaped = leakwatch_ignore_thread(reaper);
  }
  handle_request();
  /* The reaper has exited (its task is gone) and is never joined. */
  double deadline = thr_now_ms() + 10000;
  while (atomic_load(&reaper_tid) == 0) {
    if (thr_now_ms() > deadline) {
      fprintf(stderr, "reaper did not start\n");
      return 3;
    }
    thr_sleep_ms(0.2);
  }
  thr_wait_task_gone(atomic_load(&reaper_tid), 10000);
  printf("loaded=%d config=%d settings=%d reaper=%d\n", leakwatch_is_loaded(),
         config, kept, reaped);
  printf("done %s\n", PQgetvalue(settings, 0, 0));
  return 0;
}

/* The process's memory at defined points, for scripts/bench-memory, which
 * runs it natively and under the agent and compares. Each point is one line
 * on stdout, read from /proc/self/status by the program itself:
 *   point NAME rss_kib=VmRSS hwm_kib=VmHWM anon_kib=RssAnon
 *
 * Modes:
 *   threads-idle [THREADS]   (default 1000) THREADS threads made with
 *       pthread_create (default attributes) that wait on a condition; one in
 *       100 wakes every 20 ms (a timed wait) and waits again. Points: start
 *       (one thread made and joined, one result made and cleared: the agent,
 *       if loaded, is up), alive (all THREADS started and waiting, 300 ms
 *       later), joined (all told to stop and joined).
 *   threads-libpq [THREADS [QUERIES]]   (default 64 2000) THREADS threads,
 *       each connects once (PQconnectdb with the PG* environment) and runs
 *       QUERIES PQexec("SELECT 1") + PQclear, then PQfinish. Points: start,
 *       connected (all connected, none queried yet), queried (all done, still
 *       connected and alive), joined.
 *   burst [RESULTS]   (default 1000000) RESULTS PQmakeEmptyPGresult(NULL,
 *       PGRES_COMMAND_OK) results made and kept, then all PQclear'ed; no
 *       server. Points: before, peak (all held), released (just cleared),
 *       then settle-MS every 250 ms for 5 s (memory that is given back
 *       lazily), stopping early once within 1 MiB of before.
 *
 * With MEMORY_BENCH_HOLD=NAME in the environment the program stops for 60 s
 * after printing point NAME (its pid on stderr), so that /proc/PID/smaps can
 * be read there.
 *
 * Exit status 0; 2 on a setup error (a failed connection or thread). */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_common.h"

/* VmRSS, VmHWM and RssAnon in KiB. */
struct mem {
  long rss, hwm, anon;
};

static long field_kib(const char* text, const char* name) {
  const char* p = strstr(text, name);
  return p != NULL ? strtol(p + strlen(name), NULL, 10) : -1;
}

static struct mem read_mem(void) {
  struct mem m = {-1, -1, -1};
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return m;
  char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  m.rss = field_kib(text, "\nVmRSS:");
  m.hwm = field_kib(text, "\nVmHWM:");
  m.anon = field_kib(text, "\nRssAnon:");
  return m;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static struct mem point(const char* name) {
  struct mem m = read_mem();
  printf("point %s rss_kib=%ld hwm_kib=%ld anon_kib=%ld\n", name, m.rss, m.hwm,
         m.anon);
  fflush(stdout);
  const char* hold = getenv("MEMORY_BENCH_HOLD");
  if (hold != NULL && strcmp(hold, name) == 0) {
    fprintf(stderr, "pid %d holds at %s for 60 s\n", (int)getpid(), name);
    sleep_ms(60000);
  }
  return m;
}

static void die(const char* what) {
  fprintf(stderr, "%s failed\n", what);
  exit(2);
}

static void* nothing(void* arg) { return arg; }

/* The agent, if loaded, is up: a result made and cleared, a thread made and
 * joined (the first of each starts the agent's machinery). */
static void warm(void) {
  PGresult* res = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
  if (res == NULL) die("PQmakeEmptyPGresult");
  PQclear(res);
  pthread_t t;
  if (pthread_create(&t, NULL, nothing, NULL) != 0) die("pthread_create");
  pthread_join(t, NULL);
}

/* --- threads-idle ---------------------------------------------------- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_started_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_stop_cv = PTHREAD_COND_INITIALIZER;
static long g_started;
static int g_stop;

static void* idle_thread(void* arg) {
  long index = (long)arg;
  pthread_mutex_lock(&g_mu);
  ++g_started;
  pthread_cond_signal(&g_started_cv);
  while (!g_stop) {
    if (index % 100 == 0) {
      /* A few wake briefly, again and again. */
      struct timespec at;
      clock_gettime(CLOCK_REALTIME, &at);
      at.tv_nsec += 20 * 1000000L;
      if (at.tv_nsec >= 1000000000L) {
        at.tv_sec += 1;
        at.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&g_stop_cv, &g_mu, &at);
    } else {
      pthread_cond_wait(&g_stop_cv, &g_mu);
    }
  }
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

static void threads_idle(long n) {
  warm();
  point("start");
  pthread_t* threads = calloc((size_t)n, sizeof *threads);
  if (threads == NULL) die("calloc");
  for (long i = 0; i < n; ++i) {
    if (pthread_create(&threads[i], NULL, idle_thread, (void*)i) != 0) {
      die("pthread_create");
    }
  }
  pthread_mutex_lock(&g_mu);
  while (g_started < n) pthread_cond_wait(&g_started_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  sleep_ms(300);
  point("alive");
  pthread_mutex_lock(&g_mu);
  g_stop = 1;
  pthread_cond_broadcast(&g_stop_cv);
  pthread_mutex_unlock(&g_mu);
  for (long i = 0; i < n; ++i) pthread_join(threads[i], NULL);
  free(threads);
  point("joined");
}

/* --- threads-libpq --------------------------------------------------- */

static pthread_barrier_t g_connected, g_queried, g_finish;
static long g_queries;

static void* libpq_thread(void* arg) {
  (void)arg;
  PGconn* conn = connect_or_die();
  pthread_barrier_wait(&g_connected);
  for (long i = 0; i < g_queries; ++i) {
    PGresult* res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      fprintf(stderr, "query failed: %s", PQerrorMessage(conn));
      exit(2);
    }
    PQclear(res);
  }
  pthread_barrier_wait(&g_queried);
  pthread_barrier_wait(&g_finish);
  PQfinish(conn);
  return NULL;
}

static void threads_libpq(long n, long queries) {
  warm();
  g_queries = queries;
  if (pthread_barrier_init(&g_connected, NULL, (unsigned)n + 1) != 0 ||
      pthread_barrier_init(&g_queried, NULL, (unsigned)n + 1) != 0 ||
      pthread_barrier_init(&g_finish, NULL, (unsigned)n + 1) != 0) {
    die("pthread_barrier_init");
  }
  point("start");
  pthread_t* threads = calloc((size_t)n, sizeof *threads);
  if (threads == NULL) die("calloc");
  for (long i = 0; i < n; ++i) {
    if (pthread_create(&threads[i], NULL, libpq_thread, NULL) != 0) {
      die("pthread_create");
    }
  }
  pthread_barrier_wait(&g_connected);
  point("connected");
  pthread_barrier_wait(&g_queried);
  point("queried");
  pthread_barrier_wait(&g_finish);
  for (long i = 0; i < n; ++i) pthread_join(threads[i], NULL);
  free(threads);
  point("joined");
}

/* --- burst ------------------------------------------------------------ */

static void burst(long n) {
  warm();
  struct mem before = point("before");
  PGresult** results = calloc((size_t)n, sizeof *results);
  if (results == NULL) die("calloc");
  for (long i = 0; i < n; ++i) {
    results[i] = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    if (results[i] == NULL) die("PQmakeEmptyPGresult");
  }
  point("peak");
  for (long i = 0; i < n; ++i) PQclear(results[i]);
  free(results);
  point("released");
  for (long ms = 250; ms <= 5000; ms += 250) {
    sleep_ms(250);
    char name[32];
    snprintf(name, sizeof name, "settle-%ld", ms);
    if (point(name).rss <= before.rss + 1024) break;
  }
}

static long arg_or(int argc, char** argv, int i, long fallback) {
  return argc > i ? strtol(argv[i], NULL, 10) : fallback;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "threads-idle") == 0) {
    threads_idle(arg_or(argc, argv, 2, 1000));
  } else if (strcmp(mode, "threads-libpq") == 0) {
    threads_libpq(arg_or(argc, argv, 2, 64), arg_or(argc, argv, 3, 2000));
  } else if (strcmp(mode, "burst") == 0) {
    burst(arg_or(argc, argv, 2, 1000000));
  } else {
    fprintf(stderr,
            "usage: memory_bench threads-idle [THREADS] | threads-libpq "
            "[THREADS [QUERIES]] | burst [RESULTS]\n");
    return 2;
  }
  return 0;
}

/* fork() under the agent (tests/integration/hostile_test.cc).
 *
 *   hostile_fork untouched | child-clears | child-leaks
 *   hostile_fork child-exec PROGRAM [ARGS...]
 *     The parent connects (PG* environment), keeps two results and the
 *     connection, and forks. The child then
 *       untouched     exits without touching them;
 *       child-clears  PQclear()s both inherited results, then exits;
 *       child-leaks   makes a result of its own, never cleared, then exits;
 *       child-exec    execs PROGRAM (which runs under the agent afresh).
 *     The parent waits for the child, prints "parent PID child PID status N"
 *     and exits holding its two results and its connection: its exit report
 *     has exactly 2 pg.result and 1 pg.conn.
 *
 *   hostile_fork storm FORKS THREADS
 *     THREADS workers acquire and release handles through the hooks without
 *     pause (results; every other worker also creates and joins threads),
 *     and meanwhile the main thread forks FORKS times. Each child makes one
 *     hooked acquire and release and leaves (_exit or exit, alternately).
 *     Every child is waited for with a deadline: a child that hangs (a lock
 *     held across fork) is killed and counted, as is one that crashes.
 *     Prints "forks F ok O hung H crashed C"; exits 0 only if every child
 *     exited 0 in time. Needs no server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pg_common.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
  struct timespec ts = {(time_t)(ms / 1e3),
                        (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Waits for `pid` for at most timeout_ms. Returns 1 with *status set, or 0
 * if it is still running then. */
static int wait_with_deadline(pid_t pid, double timeout_ms, int* status) {
  double deadline = now_ms() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return 1;
    if (r < 0 && errno != EINTR) {
      perror("waitpid");
      exit(2);
    }
    if (now_ms() >= deadline) return 0;
    sleep_ms(0.2);
  }
}

/* --- the inheritance cases --------------------------------------------------
 */

__attribute__((noinline)) static PGresult* child_own_result(void) {
  return PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
}

static int inheritance(int argc, char** argv) {
  const char* mode = argv[1];
  PGconn* conn = connect_or_die();
  PGresult* kept1 = PQexec(conn, "SELECT 1");
  PGresult* kept2 = PQexec(conn, "SELECT 2");
  if (PQresultStatus(kept1) != PGRES_TUPLES_OK ||
      PQresultStatus(kept2) != PGRES_TUPLES_OK) {
    fprintf(stderr, "query failed: %s", PQerrorMessage(conn));
    return 2;
  }
  fflush(NULL); /* nothing buffered is written twice */
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 2;
  }
  if (child == 0) {
    if (strcmp(mode, "untouched") == 0) {
      exit(0);
    } else if (strcmp(mode, "child-clears") == 0) {
      PQclear(kept1);
      PQclear(kept2);
      exit(0);
    } else if (strcmp(mode, "child-leaks") == 0) {
      exit(child_own_result() != NULL ? 0 : 4);
    } else if (strcmp(mode, "child-exec") == 0 && argc > 2) {
      execv(argv[2], argv + 2);
      perror("execv");
      _exit(127);
    }
    _exit(5);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  printf("parent %d child %d status %d\n", (int)getpid(), (int)child,
         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0; /* kept1, kept2 and conn are still held: the parent's leaks */
}

/* --- the fork storm
 * ------------------------------------------------------------ */

enum { kMaxWorkers = 64 };
static atomic_long g_iterations[kMaxWorkers];
static atomic_int g_stop;

static void* noop(void* arg) { return arg; }

static void* worker(void* arg) {
  int index = (int)(long)arg;
  while (!atomic_load(&g_stop)) {
    PGresult* r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    PGresult* s = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PQclear(r);
    PQclear(s);
    if (index % 2 == 1) {
      pthread_t t;
      int rc = pthread_create(&t, NULL, noop, NULL);
      if (rc != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        exit(2);
      }
      pthread_join(t, NULL);
    }
    atomic_fetch_add(&g_iterations[index], 1);
  }
  return NULL;
}

static int storm(int forks, int threads) {
  if (threads > kMaxWorkers) threads = kMaxWorkers;
  pthread_t workers[kMaxWorkers];
  for (int i = 0; i < threads; ++i) {
    int rc = pthread_create(&workers[i], NULL, worker, (void*)(long)i);
    if (rc != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(rc));
      return 2;
    }
  }
  /* Every worker is inside its loop before the first fork. */
  double deadline = now_ms() + 20000;
  for (int i = 0; i < threads; ++i) {
    while (atomic_load(&g_iterations[i]) < 20) {
      if (now_ms() > deadline) {
        fprintf(stderr, "worker %d did not get going\n", i);
        return 3;
      }
      sleep_ms(0.5);
    }
  }
  int ok = 0, hung = 0, crashed = 0;
  fflush(NULL);
  for (int i = 0; i < forks; ++i) {
    pid_t child = fork();
    if (child < 0) {
      perror("fork");
      return 2;
    }
    if (child == 0) {
      PGresult* r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
      PQclear(r);
      if (i % 2 == 0) _exit(r != NULL ? 0 : 4);
      exit(r != NULL ? 0 : 4);
    }
    int status = 0;
    if (!wait_with_deadline(child, 10000, &status)) {
      fprintf(stderr, "child %d (fork %d) hung; killing it\n", (int)child, i);
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      ++hung;
    } else if (WIFSIGNALED(status)) {
      fprintf(stderr, "child %d (fork %d) killed by signal %d\n", (int)child, i,
              WTERMSIG(status));
      ++crashed;
    } else if (WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d (fork %d) exited %d\n", (int)child, i,
              WEXITSTATUS(status));
      ++crashed;
    } else {
      ++ok;
    }
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < threads; ++i) pthread_join(workers[i], NULL);
  printf("forks %d ok %d hung %d crashed %d\n", forks, ok, hung, crashed);
  return ok == forks ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc >= 4 && strcmp(argv[1], "storm") == 0) {
    return storm(atoi(argv[2]), atoi(argv[3]));
  }
  if (argc >= 2) return inheritance(argc, argv);
  fprintf(stderr,
          "usage: hostile_fork untouched|child-clears|child-leaks|"
          "child-exec PROGRAM [ARGS...] | storm FORKS THREADS\n");
  return 2;
}

/* The ways a process ends, and its children, under the agent
 * (tests/integration/hostile_test.cc). Needs no server: results come from
 * PQmakeEmptyPGresult, connections from mysql_init (which connects nothing).
 *
 *   hostile_exit return N        leaks N results, prints "done", returns 0
 *   hostile_exit _exit N         the same, then _exit(0)
 *   hostile_exit abort N         the same, then abort()
 *   hostile_exit hold N MS       leaks N results, waits MS ms, returns 0
 *   hostile_exit sigterm-exit CODE THREADS
 *       leaks 2 results; THREADS workers acquire and release handles in the
 *       hooks without pause (half PQmakeEmptyPGresult/PQclear, half
 *       mysql_init/mysql_close); once each has gone round 50 times, the
 *       process sends itself SIGTERM, which only the workers take. The
 *       handler calls exit(CODE) on whichever worker it interrupted, maybe
 *       in the middle of a hook, while the others keep going.
 *   hostile_exit loader-stuck N
 *       leaks N results; a thread enters dl_iterate_phdr (which holds the
 *       dynamic loader's lock while its callback runs) and never leaves;
 *       main prints "done" and returns 0. Whoever writes the exit report
 *       needs that lock to read the module list.
 *   hostile_exit spawn PARENT_LEAKS CHILD_LEAKS
 *       leaks PARENT_LEAKS results, then runs `sh -c "SELF return
 *       CHILD_LEAKS"` with system() (the shell and the child inherit the
 *       agent and every LEAKWATCH_* variable), prints "parent PID child
 *       status N" and returns 0.
 *
 * Prints "pid PID" first (the child of spawn too), then what its mode says. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static void leak_results(int n) {
  for (int i = 0; i < n; ++i) {
    if (PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK) == NULL) exit(2);
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Written with write(2): _exit and abort drop stdio buffers. */
static void say(const char* text) {
  ssize_t ignored = write(STDOUT_FILENO, text, strlen(text));
  (void)ignored;
}

/* --- exit from a signal handler while workers are in hooks ---------------- */

enum { kMaxWorkers = 64 };
static atomic_long g_rounds[kMaxWorkers];
static int g_exit_code;

static void on_sigterm(int sig) {
  (void)sig;
  exit(g_exit_code); /* not async-signal-safe: what real programs do */
}

static void* worker(void* arg) {
  int index = (int)(long)arg;
  for (;;) {
    if (index % 2 == 0) {
      PGresult* r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
      PQclear(r);
    } else {
      MYSQL* m = mysql_init(NULL);
      mysql_close(m);
    }
    atomic_fetch_add(&g_rounds[index], 1);
  }
  return NULL;
}

static int sigterm_exit(int code, int threads) {
  if (threads > kMaxWorkers) threads = kMaxWorkers;
  g_exit_code = code;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  leak_results(2);
  /* libmariadb's one-time initialisation before the workers race for it. */
  mysql_close(mysql_init(NULL));
  for (int i = 0; i < threads; ++i) {
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker, (void*)(long)i);
    if (rc != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(rc));
      return 2;
    }
  }
  /* Only the workers may take SIGTERM. */
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, NULL);
  double deadline = now_ms() + 20000;
  for (int i = 0; i < threads; ++i) {
    while (atomic_load(&g_rounds[i]) < 50) {
      if (now_ms() > deadline) {
        fprintf(stderr, "worker %d did not get going\n", i);
        return 3;
      }
      sleep_ms(1);
    }
  }
  printf("workers busy\n"); /* buffered: exit() must flush it */
  kill(getpid(), SIGTERM);
  for (;;) pause();
}

/* --- a thread that keeps the dynamic loader's lock -------------------------- */

static atomic_int g_in_loader;

static int stay_in_loader(struct dl_phdr_info* info, size_t size, void* data) {
  (void)info;
  (void)size;
  (void)data;
  atomic_store(&g_in_loader, 1);
  for (;;) pause();
  return 0;
}

static void* loader_sitter(void* arg) {
  (void)arg;
  dl_iterate_phdr(stay_in_loader, NULL);
  return NULL;
}

static int loader_stuck(int n) {
  leak_results(n);
  pthread_t t;
  if (pthread_create(&t, NULL, loader_sitter, NULL) != 0) return 2;
  while (!atomic_load(&g_in_loader)) sleep_ms(1);
  say("done\n");
  return 0;
}

/* --- children that inherit the agent ----------------------------------------
 */

static int spawn(const char* self, int parent_leaks, int child_leaks) {
  leak_results(parent_leaks);
  char command[4096];
  snprintf(command, sizeof command, "'%s' return %d", self, child_leaks);
  fflush(NULL);
  int status = system(command);
  if (status == -1 || !WIFEXITED(status)) {
    fprintf(stderr, "system: status %d\n", status);
    return 2;
  }
  printf("parent %d child status %d\n", (int)getpid(), WEXITSTATUS(status));
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: hostile_exit return|_exit|abort N | hold N MS | "
            "sigterm-exit CODE THREADS | loader-stuck N | spawn PARENT_LEAKS CHILD_LEAKS\n");
    return 2;
  }
  const char* mode = argv[1];
  int n = atoi(argv[2]);
  printf("pid %d\n", (int)getpid());
  fflush(stdout);
  if (strcmp(mode, "sigterm-exit") == 0 && argc > 3) {
    return sigterm_exit(n, atoi(argv[3]));
  }
  if (strcmp(mode, "loader-stuck") == 0) return loader_stuck(n);
  if (strcmp(mode, "spawn") == 0 && argc > 3) {
    return spawn(argv[0], n, atoi(argv[3]));
  }
  leak_results(n);
  if (strcmp(mode, "hold") == 0 && argc > 3) sleep_ms(atol(argv[3]));
  say("done\n");
  if (strcmp(mode, "_exit") == 0) _exit(0);
  if (strcmp(mode, "abort") == 0) abort();
  return 0;
}

/* Signals and the agent (tests/integration/hostile_test.cc). No server.
 *
 *   hostile_signals storm MS
 *     A SIGALRM every millisecond (setitimer, handler installed without
 *     SA_RESTART, so every interruptible call made meanwhile can fail with
 *     EINTR) from before the first hooked call until the process is gone:
 *     the agent starts, runs and writes its exit report under it. For MS
 *     ms the main thread calls hooks in a loop: mysql_init/mysql_close,
 *     PQclear(NULL), PQmakeEmptyPGresult/PQclear, pthread_create/join; each
 *     must succeed. One result is leaked (from leak_one), so there is an
 *     exit report. The handler calls no hook. Prints "rounds N" and
 *     "alarms enough: yes|no" (at least MS/20 alarms were taken).
 *
 *   hostile_signals initial
 *     Prints "initial: ..." (see print_initial) and exits 0.
 *
 *   hostile_signals handlers LOG
 *     Prints "initial: ..." first, then
 *     installs its own handlers (SIGSEGV with SA_SIGINFO|SA_ONSTACK, SIGTERM,
 *     SIGINT, SIGUSR1, SIGCHLD, SIGPIPE ignored) before any hooked call (and
 *     runs libmariadb's own set-up, which changes SIGPIPE's flags), then
 *     wakes every part of the agent: hooks of each library (stack capture,
 *     the watchdog thread), and a live warning (the report module and the
 *     symbolizer), waiting for it in LOG (LEAKWATCH_LOG) for at most 20 s.
 *     Then compares every signal's disposition and the thread's signal mask
 *     with what they were before: any difference is printed and the exit
 *     status is 1. Finally raises SIGTERM and SIGSEGV: the program's own
 *     handlers must run. Prints "dispositions unchanged" and "handlers ran".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char* what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err));
  exit(2);
}

static void* noop(void* arg) { return arg; }

/* --- storm ---------------------------------------------------------------- */

static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig) {
  (void)sig;
  ++g_alarms;
}

__attribute__((noinline)) static PGresult* leak_one(void) {
  return PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
}

static int storm(long ms) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART */
  if (sigaction(SIGALRM, &sa, NULL) != 0) die("sigaction", errno);
  struct itimerval every_ms = {{0, 1000}, {0, 1000}};
  if (setitimer(ITIMER_REAL, &every_ms, NULL) != 0) die("setitimer", errno);

  if (leak_one() == NULL) die("PQmakeEmptyPGresult", ENOMEM);
  long rounds = 0;
  double end = now_ms() + ms;
  while (now_ms() < end) {
    MYSQL* m = mysql_init(NULL);
    if (m == NULL) die("mysql_init", ENOMEM);
    mysql_close(m);
    PQclear(NULL);
    PGresult* r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (r == NULL) die("PQmakeEmptyPGresult", ENOMEM);
    PQclear(r);
    pthread_t t;
    int rc = pthread_create(&t, NULL, noop, NULL);
    if (rc != 0) die("pthread_create", rc);
    rc = pthread_join(t, NULL);
    if (rc != 0) die("pthread_join", rc);
    ++rounds;
  }
  printf("rounds %ld\nalarms enough: %s\n", rounds,
         g_alarms >= ms / 20 ? "yes" : "no");
  return 0; /* the timer still runs: the exit report is written under it */
}

/* --- the program's own handlers ---------------------------------------------
 */

static volatile sig_atomic_t g_segv_ran, g_term_ran;

static void on_segv(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)info;
  (void)context;
  g_segv_ran = 1;
}

static void on_term(int sig) {
  (void)sig;
  g_term_ran = 1;
}

static void on_other(int sig) { (void)sig; }

/* Every signal sigaction() accepts, glibc's own (32, 33) excluded. */
static int testable(int sig) {
  return sig != SIGKILL && sig != SIGSTOP && (sig < 32 || sig >= SIGRTMIN);
}

static void snapshot(struct sigaction* actions) {
  for (int sig = 1; sig < NSIG; ++sig) {
    memset(&actions[sig], 0, sizeof actions[sig]);
    if (testable(sig)) sigaction(sig, NULL, &actions[sig]);
  }
}

static int compare(const struct sigaction* before,
                   const struct sigaction* after) {
  int differences = 0;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (!testable(sig)) continue;
    const struct sigaction* a = &before[sig];
    const struct sigaction* b = &after[sig];
    int same = a->sa_flags == b->sa_flags &&
               (void*)a->sa_handler == (void*)b->sa_handler;
    for (int s = 1; same && s < NSIG; ++s) {
      if (testable(s)) {
        same = sigismember(&a->sa_mask, s) == sigismember(&b->sa_mask, s);
      }
    }
    if (!same) {
      printf("signal %d (%s) changed: handler %p flags %#x -> %p flags %#x\n",
             sig, strsignal(sig), (void*)a->sa_handler, a->sa_flags,
             (void*)b->sa_handler, b->sa_flags);
      ++differences;
    }
  }
  return differences;
}

static int mask_differs(const sigset_t* a, const sigset_t* b) {
  for (int s = 1; s < NSIG; ++s) {
    if (testable(s) && sigismember(a, s) != sigismember(b, s)) return 1;
  }
  return 0;
}

/* True once `path` contains `needle`. */
static int file_has(const char* path, const char* needle) {
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, needle) != NULL;
}

/* "initial: ..." — the signals that are not at their default action when
 * main starts, and the blocked ones: the same with and without the agent
 * if its constructor changed nothing. */
static void print_initial(void) {
  printf("initial:");
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    if (!testable(sig) || sigaction(sig, NULL, &sa) != 0) continue;
    if (sa.sa_handler != SIG_DFL || sa.sa_flags != 0) {
      printf(" %d=%s/%#x", sig, sa.sa_handler == SIG_IGN ? "ign" : "handler",
             sa.sa_flags);
    }
  }
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, NULL, &mask);
  printf(" blocked:");
  for (int sig = 1; sig < NSIG; ++sig) {
    if (testable(sig) && sigismember(&mask, sig)) printf(" %d", sig);
  }
  printf("\n");
}

static int handlers(const char* log) {
  struct sigaction before[NSIG], after[NSIG];
  struct sigaction sa;
  print_initial();
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR2);
  sigaction(SIGSEGV, &sa, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_other;
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  /* libmariadb's one-time set-up ignores SIGPIPE with signal(), which adds
   * SA_RESTART: the library's doing, not the agent's, so it happens before
   * the first snapshot (mysql_library_init is not hooked). */
  if (mysql_library_init(0, NULL, NULL) != 0) die("mysql_library_init", 0);
  sigset_t mask_before, mask_after;
  sigemptyset(&mask_before);
  sigaddset(&mask_before, SIGUSR2); /* a mask of the program's own */
  pthread_sigmask(SIG_BLOCK, &mask_before, NULL);
  pthread_sigmask(SIG_BLOCK, NULL, &mask_before);
  snapshot(before);

  /* Wake the agent: every library's hooks, the watchdog, a live warning. */
  MYSQL* m = mysql_init(NULL);
  if (m == NULL) die("mysql_init", ENOMEM);
  mysql_close(m);
  pthread_t t;
  int rc = pthread_create(&t, NULL, noop, NULL);
  if (rc != 0) die("pthread_create", rc);
  pthread_join(t, NULL);
  PGresult* held = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
  double deadline = now_ms() + 20000;
  while (!file_has(log, "pg.result")) {
    if (now_ms() > deadline) {
      fprintf(stderr, "no live warning in %s\n", log);
      return 3;
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  PQclear(held);

  snapshot(after);
  pthread_sigmask(SIG_BLOCK, NULL, &mask_after);
  int differences = compare(before, after);
  if (mask_differs(&mask_before, &mask_after)) {
    printf("signal mask changed\n");
    ++differences;
  }
  if (differences == 0) printf("dispositions unchanged\n");
  raise(SIGTERM);
  raise(SIGSEGV);
  if (g_term_ran && g_segv_ran) printf("handlers ran\n");
  return differences == 0 && g_term_ran && g_segv_ran ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc >= 3 && strcmp(argv[1], "storm") == 0) return storm(atol(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "handlers") == 0) return handlers(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "initial") == 0) {
    print_initial();
    return 0;
  }
  fprintf(stderr, "usage: hostile_signals storm MS | initial | handlers LOG\n");
  return 2;
}

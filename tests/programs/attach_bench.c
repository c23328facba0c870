/* The hot path after `leakwatch detach`, for scripts/bench-attach: N
 * transactions (PQexec "SELECT 1" + PQclear) on one connection, in a process
 * where the agent
 *   never   was never loaded;
 *   detached was loaded privately and attached, then detached: what
 *           `leakwatch attach` and `leakwatch detach` leave behind (the
 *           command makes a thread call the same two entry points; here the
 *           program calls them itself, so that it can run under callgrind,
 *           which cannot be attached to);
 *   attached is attached (for comparison);
 *   churn    was never loaded, but the program itself allocated and freed
 *            about as much as loading and attaching the agent does, before
 *            the transactions: how much a different heap history alone moves
 *            the count (malloc's trimming and bin paths), the noise floor
 *            the others are read against.
 * The transactions run in run_transactions(), which callgrind can be told
 * to count alone (--toggle-collect=run_transactions).
 *
 * With "threaded", the program starts (and joins) a thread first, as every
 * service has: glibc takes its multi-threaded paths (cancellation points in
 * every system call, locked malloc) for good once a process has had a
 * second thread, and the agent's own thread makes a single-threaded program
 * multi-threaded too.
 *
 * Usage: attach_bench never|churn|detached|attached N LIBLEAKWATCH [threaded]
 * Exit status 0; 2 on a setup error. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_common.h"

/* The first fields of leakwatch_agent_state (interpose/attach.h). */
struct agent_state {
  uint32_t magic, version, mode, state;
};
enum { kAttached = 2, kDetached = 4, kFailed = 5 };

static struct agent_state* wait_state(struct agent_state* s, uint32_t want) {
  for (int i = 0; i < 10000; ++i) {
    uint32_t now = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (now == want) return s;
    if (now == kFailed) break;
    usleep(1000);
  }
  fprintf(stderr, "the agent did not reach state %u\n", want);
  exit(2);
}

__attribute__((noinline)) void run_transactions(PGconn* conn, long n) {
  for (long i = 0; i < n; ++i) {
    PGresult* res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      fprintf(stderr, "query failed: %s", PQerrorMessage(conn));
      exit(2);
    }
    PQclear(res);
  }
}

static void* nothing(void* arg) { return arg; }

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: attach_bench never|detached|attached N [LIB]\n");
    return 2;
  }
  const char* mode = argv[1];
  long n = atol(argv[2]);
  if (argc > 4 && strcmp(argv[4], "threaded") == 0) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, nothing, NULL) != 0) return 2;
    pthread_join(thread, NULL);
  }
  PGconn* conn = connect_or_die();
  exec_or_die(conn, "SELECT 1"); /* libpq's own first-call work */
  if (strcmp(mode, "churn") == 0) {
    /* Blocks of the sizes a dlopen and a thread start allocate, half kept:
     * the main arena's top and bins end up elsewhere. */
    static void* kept_blocks[256];
    for (int i = 0; i < 256; ++i) {
      void* p = malloc((size_t)(64 + (i * 977) % 4096));
      if (i % 2 == 0) {
        kept_blocks[i] = p;
      } else {
        free(p);
      }
    }
    /* And one large block kept: libstdc++'s emergency exception pool
     * (about 72 KiB), allocated as it is loaded into a C program. */
    static void* pool;
    pool = malloc(73 * 1024);
    __asm__ volatile("" : : "r"(kept_blocks), "r"(pool) : "memory");
  } else if (strcmp(mode, "never") != 0) {
    if (argc < 4) return 2;
    void* agent = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
    if (agent == NULL) {
      fprintf(stderr, "%s\n", dlerror());
      return 2;
    }
    struct agent_state* (*attach)(const char*) =
        (struct agent_state * (*)(const char*)) dlsym(agent, "leakwatch_attach");
    struct agent_state* (*control)(int) =
        (struct agent_state * (*)(int)) dlsym(agent, "leakwatch_control");
    if (attach == NULL || control == NULL) return 2;
    wait_state(attach("LEAKWATCH_THRESHOLD_MS=30000\n"), kAttached);
    exec_or_die(conn, "SELECT 1"); /* through the hooks once */
    if (strcmp(mode, "detached") == 0) wait_state(control(2), kDetached);
  }
  run_transactions(conn, n);
  PQfinish(conn);
  return 0;
}

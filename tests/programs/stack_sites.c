/* Results abandoned from one call site reached along different paths, for the
 * agent's per-thread stack cache (tests/integration/stack_cache_test.cc).
 * Needs no server: results come from PQmakeEmptyPGresult.
 *
 *   stack_sites ROUNDS
 *
 * Each round abandons one result through each of:
 *   via_left  -> take_result           (twin callers with the same frame size:
 *   via_right -> take_result            the return-address slots are at the
 *                                       same places, only their values differ)
 *   via_depth(1) -> ... -> take_result  (recursion: the same return addresses,
 *   via_depth(3) -> ... -> take_result   at other depths)
 * and through take_result in a thread (another thread's cache). Every result
 * comes from the same call instruction in take_result, so a cache keyed by
 * that call site alone would merge them. Prints "done". */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile int g_sink;

__attribute__((noinline)) static void take_result(void) {
  PGresult* r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
  if (r == NULL) exit(2);
  g_sink++;
}

__attribute__((noinline)) void via_left(void) {
  take_result();
  g_sink++;
}

__attribute__((noinline)) void via_right(void) {
  take_result();
  g_sink++;
}

__attribute__((noinline)) void via_depth(int depth) {
  if (depth > 1) {
    via_depth(depth - 1);
  } else {
    take_result();
  }
  g_sink++;
}

__attribute__((noinline)) static void* via_thread(void* arg) {
  int rounds = (int)(long)arg;
  for (int i = 0; i < rounds; ++i) take_result();
  return NULL;
}

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  for (int i = 0; i < rounds; ++i) {
    via_left();
    via_right();
    via_depth(1);
    via_depth(3);
  }
  pthread_t t;
  if (pthread_create(&t, NULL, via_thread, (void*)(long)rounds) != 0) return 2;
  pthread_join(t, NULL);
  printf("done\n");
  return 0;
}

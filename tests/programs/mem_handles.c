/* The agent's memory per live handle (issue 6, "bounded resources"; issue 7's
 * target: <= 4 MiB fixed + <= 128 bytes per handle beyond its interned stack).
 * No server needed: the handles are PQmakeEmptyPGresult(NULL,
 * PGRES_EMPTY_QUERY) results (pg.result), made from 100 distinct call sites
 * (site_00 .. site_99), so the agent interns 100 stacks and then only adds
 * records.
 *
 * Steps, each followed by a line "rss kib <step>: N" (VmRSS from
 * /proc/self/status) on stdout:
 *   start      main entered, no libpq call yet
 *   warm       one result made and cleared (the agent, if loaded, is up)
 *   held       HANDLES results made, round-robin over the sites, all kept
 *   cleared    all of them cleared
 *   churn      CHURN more made and cleared one at a time (the agent's
 *              recently-released set is a fixed ring: must not grow)
 *   reheld     HANDLES made and kept again (the agent's table is already
 *              grown: no new memory expected beyond the results themselves)
 * then "handles: N", "sites: 100", "churn: M"; all results are cleared before
 * exit, so nothing is reported.
 *
 * Run it with and without LD_PRELOAD and subtract (tests/load/measure_memory.sh):
 *   fixed overhead   = warm(agent) - warm(plain)
 *   bytes per handle = ((held - warm)(agent) - (held - warm)(plain)) / HANDLES
 *
 * Usage: mem_handles [HANDLES [CHURN]]   (default 100000 1000000) */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kib;
}

static void print_rss(const char* step) {
  printf("rss kib %s: %ld\n", step, rss_kib());
  fflush(stdout);
}

static volatile long site_calls;

/* 100 call sites: distinct functions, each calling PQmakeEmptyPGresult and
 * then doing something else (no tail call, so the return address into the
 * site is on the stack and the sites' stacks differ). */
#define SITE(n)                                                   \
  static __attribute__((noinline)) PGresult* site_##n(void) {     \
    PGresult* res = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY); \
    site_calls += 1##n;                                           \
    return res;                                                   \
  }
#define SITES10(d) \
  SITE(d##0) SITE(d##1) SITE(d##2) SITE(d##3) SITE(d##4) \
  SITE(d##5) SITE(d##6) SITE(d##7) SITE(d##8) SITE(d##9)
SITES10(0) SITES10(1) SITES10(2) SITES10(3) SITES10(4)
SITES10(5) SITES10(6) SITES10(7) SITES10(8) SITES10(9)

#define REF(n) site_##n,
#define REFS10(d) \
  REF(d##0) REF(d##1) REF(d##2) REF(d##3) REF(d##4) \
  REF(d##5) REF(d##6) REF(d##7) REF(d##8) REF(d##9)
static PGresult* (*const sites[100])(void) = {
    REFS10(0) REFS10(1) REFS10(2) REFS10(3) REFS10(4)
    REFS10(5) REFS10(6) REFS10(7) REFS10(8) REFS10(9)};

static PGresult* make(long i) {
  PGresult* res = sites[i % 100]();
  if (res == NULL) {
    fprintf(stderr, "PQmakeEmptyPGresult failed\n");
    exit(2);
  }
  return res;
}

int main(int argc, char** argv) {
  long handles = argc > 1 ? atol(argv[1]) : 100000;
  long churn = argc > 2 ? atol(argv[2]) : 1000000;
  if (handles <= 0 || churn < 0) {
    fprintf(stderr, "usage: mem_handles [HANDLES [CHURN]]\n");
    return 2;
  }
  PGresult** kept = calloc((size_t)handles, sizeof *kept);
  if (kept == NULL) return 2;
  /* Touch the array now, so its pages are in "warm" for both runs. */
  memset(kept, 0xff, (size_t)handles * sizeof *kept);
  print_rss("start");

  PQclear(make(0));
  print_rss("warm");

  for (long i = 0; i < handles; ++i) kept[i] = make(i);
  print_rss("held");

  for (long i = 0; i < handles; ++i) PQclear(kept[i]);
  print_rss("cleared");

  for (long i = 0; i < churn; ++i) PQclear(make(i));
  print_rss("churn");

  for (long i = 0; i < handles; ++i) kept[i] = make(i);
  print_rss("reheld");
  for (long i = 0; i < handles; ++i) PQclear(kept[i]);

  free(kept);
  printf("handles: %ld\n", handles);
  printf("sites: 100\n");
  printf("churn: %ld\n", churn);
  return 0;
}

/* Shared by the programs that serve "requests" on one long-lived connection
 * with quiet gaps between them: the agent's statement threshold, sleeps, and
 * waiting until the agent's log (LEAKWATCH_LOG) says something, so that a
 * test sees the same warnings however loaded the machine is. */
#ifndef LEAKWATCH_TESTS_PROGRAMS_REQUEST_LOOP_H_
#define LEAKWATCH_TESTS_PROGRAMS_REQUEST_LOOP_H_

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void rl_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static inline double rl_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* LEAKWATCH_STMT_THRESHOLD_MS, else LEAKWATCH_THRESHOLD_MS, in ms (plain
 * numbers only), else 1000. */
static inline long rl_threshold_ms(void) {
  const char* v = getenv("LEAKWATCH_STMT_THRESHOLD_MS");
  if (v == NULL || v[0] == '\0') v = getenv("LEAKWATCH_THRESHOLD_MS");
  long ms = v != NULL ? atol(v) : 0;
  return ms > 0 ? ms : 1000;
}

/* Lines of `path` that contain `needle`. */
static inline int rl_count_lines(const char* path, const char* needle) {
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[8192];
  int n = 0;
  while (fgets(line, sizeof line, f) != NULL) n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

/* Waits until `path` has at least `n` lines containing `needle`; exits 3
 * after 30 s. */
static inline void rl_wait_for_lines(const char* path, const char* needle,
                                     int n) {
  double deadline = rl_now_s() + 30;
  while (rl_count_lines(path, needle) < n) {
    if (rl_now_s() > deadline) {
      fprintf(stderr, "the log never had %d lines with \"%s\"\n", n, needle);
      exit(3);
    }
    rl_sleep_ms(10);
  }
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_REQUEST_LOOP_H_ */

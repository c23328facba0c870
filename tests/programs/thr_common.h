/* Shared by the thread test programs (thr_*.c, thr_*.cc): a monotonic clock
 * in milliseconds, sleeping to an absolute point on it (so a schedule does
 * not drift with the work done between steps), a pipe that is never written
 * (threads that read it block forever), and waiting until a thread has really
 * exited. */
#ifndef LEAKWATCH_TESTS_PROGRAMS_THR_COMMON_H_
#define LEAKWATCH_TESTS_PROGRAMS_THR_COMMON_H_

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds on CLOCK_MONOTONIC. */
static inline double thr_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sleeps until thr_now_ms() >= at_ms (returns at once if that has passed). */
static inline void thr_sleep_until_ms(double at_ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(at_ms / 1e3);
  ts.tv_nsec = (long)((at_ms - ts.tv_sec * 1e3) * 1e6);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static inline void thr_sleep_ms(double ms) {
  thr_sleep_until_ms(thr_now_ms() + ms);
}

static inline void thr_die(const char* what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err));
  exit(2);
}

/* A pipe whose write end stays open and is never written: a read from
 * thr_never_fd() blocks forever. */
static int thr_never_pipe[2] = {-1, -1};

static inline int thr_never_fd(void) {
  if (thr_never_pipe[0] < 0 && pipe(thr_never_pipe) != 0) {
    thr_die("pipe", errno);
  }
  return thr_never_pipe[0];
}

/* Blocks the calling thread forever (a read that never returns data). */
static inline void thr_block_forever(void) {
  int fd = thr_never_fd();
  char c;
  for (;;) {
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno != EINTR) thr_die("read", errno);
  }
}

/* Waits until the kernel task `tid` of this process is gone: the thread has
 * run everything it runs at exit (TLS and key destructors, the agent's exit
 * bookkeeping) and is dead, whether joinable or detached. A joinable thread's
 * task goes away when it exits, before anyone joins it. Exits with 3 if it
 * takes longer than timeout_ms. */
static inline void thr_wait_task_gone(int tid, double timeout_ms) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d", tid);
  double deadline = thr_now_ms() + timeout_ms;
  struct stat st;
  while (stat(path, &st) == 0) {
    if (thr_now_ms() > deadline) {
      fprintf(stderr, "thread task %d still exists after %.0f ms\n", tid,
              timeout_ms);
      exit(3);
    }
    struct timespec pause = {0, 200000}; /* 0.2 ms */
    nanosleep(&pause, NULL);
  }
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_THR_COMMON_H_ */

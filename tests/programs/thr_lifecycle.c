/* Every clean way a thread's life can end, POSIX and C11 — nothing here is a
 * leak:
 *   - threads that detach themselves and return, or call pthread_exit
 *   - threads that call pthread_exit (from a nested function) and are joined
 *   - a thread cancelled while blocked in read(), then joined
 *   - threads created detached (pthread_attr_setdetachstate) that return
 *   - threads detached by their creator while running, and after exiting
 *   - threads joined with pthread_tryjoin_np (after EBUSY), timedjoin_np,
 *     clockjoin_np, and a timedjoin_np that times out before a pthread_join
 *   - C11: thrd_create + thrd_join, thrd_exit + thrd_join, thrd_detach of
 *     itself, thrd_detach by the creator
 * Detached threads are waited for until their kernel task is gone, so every
 * one has exited before main returns. Then the program idles IDLE_MS (so the
 * agent's watchdog scans with everything settled) and prints
 * "threads created: N" — N successful pthread_create + thrd_create calls.
 *
 * Usage: thr_lifecycle [IDLE_MS]   (default 600) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <threads.h>

#include "thr_common.h"

static int created; /* successful pthread_create / thrd_create calls */

/* What each thread gets: where to publish its kernel tid, and a gate its
 * creator may hold it at. */
struct slot {
  atomic_int tid;
  atomic_int go;
};

static void publish(struct slot* s) { atomic_store(&s->tid, gettid()); }

static void wait_published(struct slot* s) {
  double deadline = thr_now_ms() + 10000;
  while (atomic_load(&s->tid) == 0) {
    if (thr_now_ms() > deadline) {
      fprintf(stderr, "a thread did not start\n");
      exit(3);
    }
    thr_sleep_ms(0.2);
  }
}

static void wait_gate(struct slot* s) {
  while (!atomic_load(&s->go)) thr_sleep_ms(0.2);
}

static pthread_t create_or_die(const pthread_attr_t* attr,
                               void* (*fn)(void*), struct slot* s) {
  pthread_t t;
  int rc = pthread_create(&t, attr, fn, s);
  if (rc != 0) thr_die("pthread_create", rc);
  ++created;
  return t;
}

static void join_expect(pthread_t t, void* expected) {
  void* result;
  int rc = pthread_join(t, &result);
  if (rc != 0) thr_die("pthread_join", rc);
  if (result != expected) {
    fprintf(stderr, "joined thread returned %p, expected %p\n", result,
            expected);
    exit(4);
  }
}

/* --- start routines -------------------------------------------------------- */

void* detach_self_and_return(void* arg) {
  struct slot* s = arg;
  int rc = pthread_detach(pthread_self());
  if (rc != 0) thr_die("pthread_detach(self)", rc);
  publish(s);
  return NULL;
}

void* detach_self_and_pthread_exit(void* arg) {
  struct slot* s = arg;
  int rc = pthread_detach(pthread_self());
  if (rc != 0) thr_die("pthread_detach(self)", rc);
  publish(s);
  pthread_exit(NULL);
}

__attribute__((noinline)) void finish_early(void) {
  pthread_exit((void*)42);
}

void* exit_from_nested_function(void* arg) {
  publish(arg);
  finish_early();
  return NULL; /* not reached */
}

void* block_until_cancelled(void* arg) {
  publish(arg);
  thr_block_forever(); /* read() is a cancellation point */
  return NULL;
}

void* publish_and_return(void* arg) {
  publish(arg);
  return (void*)7;
}

void* wait_gate_and_return(void* arg) {
  publish(arg);
  wait_gate(arg);
  return (void*)7;
}

void* sleep_and_return(void* arg) {
  publish(arg);
  thr_sleep_ms(20); /* long enough for a first tryjoin to see EBUSY */
  return (void*)7;
}

int c11_return(void* arg) {
  publish(arg);
  return 5;
}

int c11_exit(void* arg) {
  publish(arg);
  thrd_exit(6);
}

int c11_detach_self(void* arg) {
  if (thrd_detach(thrd_current()) != thrd_success) {
    fprintf(stderr, "thrd_detach(self) failed\n");
    exit(2);
  }
  publish(arg);
  return 0;
}

int c11_wait_gate(void* arg) {
  publish(arg);
  wait_gate(arg);
  return 0;
}

/* --- the cases ------------------------------------------------------------- */

static void self_detached(void) {
  struct slot s[6] = {0};
  for (int i = 0; i < 6; ++i) {
    create_or_die(NULL,
                  i < 4 ? detach_self_and_return : detach_self_and_pthread_exit,
                  &s[i]);
  }
  for (int i = 0; i < 6; ++i) {
    wait_published(&s[i]);
    thr_wait_task_gone(s[i].tid, 10000);
  }
}

static void pthread_exit_joined(void) {
  struct slot s[4] = {0};
  pthread_t t[4];
  for (int i = 0; i < 4; ++i) {
    t[i] = create_or_die(NULL, exit_from_nested_function, &s[i]);
  }
  for (int i = 0; i < 4; ++i) join_expect(t[i], (void*)42);
}

static void cancelled_and_joined(void) {
  struct slot s[2] = {0};
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) {
    t[i] = create_or_die(NULL, block_until_cancelled, &s[i]);
  }
  for (int i = 0; i < 2; ++i) {
    wait_published(&s[i]);
    int rc = pthread_cancel(t[i]);
    if (rc != 0) thr_die("pthread_cancel", rc);
    join_expect(t[i], PTHREAD_CANCELED);
  }
}

static void created_detached(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  struct slot s[4] = {0};
  for (int i = 0; i < 4; ++i) create_or_die(&attr, publish_and_return, &s[i]);
  pthread_attr_destroy(&attr);
  for (int i = 0; i < 4; ++i) {
    wait_published(&s[i]);
    thr_wait_task_gone(s[i].tid, 10000);
  }
}

static void detached_by_creator(void) {
  /* Three detached while running (held at a gate), two after they exited. */
  struct slot s[5] = {0};
  pthread_t t[5];
  for (int i = 0; i < 5; ++i) {
    t[i] = create_or_die(NULL, i < 3 ? wait_gate_and_return : publish_and_return,
                         &s[i]);
  }
  for (int i = 0; i < 5; ++i) wait_published(&s[i]);
  for (int i = 3; i < 5; ++i) thr_wait_task_gone(s[i].tid, 10000);
  for (int i = 0; i < 5; ++i) {
    int rc = pthread_detach(t[i]);
    if (rc != 0) thr_die("pthread_detach", rc);
  }
  for (int i = 0; i < 3; ++i) atomic_store(&s[i].go, 1);
  for (int i = 0; i < 3; ++i) thr_wait_task_gone(s[i].tid, 10000);
}

static void other_joins(void) {
  /* pthread_tryjoin_np: EBUSY while it sleeps, then 0. */
  struct slot s[8] = {0};
  pthread_t t[8];
  for (int i = 0; i < 2; ++i) {
    t[i] = create_or_die(NULL, sleep_and_return, &s[i]);
    int busy = 0, rc;
    void* result = NULL;
    double deadline = thr_now_ms() + 10000;
    while ((rc = pthread_tryjoin_np(t[i], &result)) == EBUSY) {
      ++busy;
      if (thr_now_ms() > deadline) thr_die("pthread_tryjoin_np", ETIMEDOUT);
      thr_sleep_ms(1);
    }
    if (rc != 0) thr_die("pthread_tryjoin_np", rc);
    if (busy == 0 || result != (void*)7) {
      fprintf(stderr, "tryjoin: busy %d, result %p\n", busy, result);
      exit(4);
    }
  }
  /* pthread_timedjoin_np, generous timeout. */
  for (int i = 2; i < 4; ++i) t[i] = create_or_die(NULL, sleep_and_return, &s[i]);
  for (int i = 2; i < 4; ++i) {
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += 10;
    void* result = NULL;
    int rc = pthread_timedjoin_np(t[i], &result, &abs);
    if (rc != 0) thr_die("pthread_timedjoin_np", rc);
    if (result != (void*)7) exit(4);
  }
  /* pthread_clockjoin_np on CLOCK_MONOTONIC. */
  for (int i = 4; i < 6; ++i) t[i] = create_or_die(NULL, sleep_and_return, &s[i]);
  for (int i = 4; i < 6; ++i) {
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += 10;
    void* result = NULL;
    int rc = pthread_clockjoin_np(t[i], &result, CLOCK_MONOTONIC, &abs);
    if (rc != 0) thr_die("pthread_clockjoin_np", rc);
    if (result != (void*)7) exit(4);
  }
  /* A timed join that times out is not a join: the thread is joined later. */
  t[6] = create_or_die(NULL, wait_gate_and_return, &s[6]);
  {
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 20 * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
      abs.tv_sec += 1;
      abs.tv_nsec -= 1000000000L;
    }
    int rc = pthread_timedjoin_np(t[6], NULL, &abs);
    if (rc != ETIMEDOUT) {
      fprintf(stderr, "timedjoin on a gated thread: %d, expected ETIMEDOUT\n",
              rc);
      exit(4);
    }
    atomic_store(&s[6].go, 1);
    join_expect(t[6], (void*)7);
  }
}

static void c11_threads(void) {
  struct slot s[9] = {0};
  thrd_t t[9];
  int (*fns[9])(void*) = {c11_return,      c11_return,      c11_return,
                          c11_return,      c11_exit,        c11_exit,
                          c11_detach_self, c11_detach_self, c11_wait_gate};
  for (int i = 0; i < 9; ++i) {
    if (thrd_create(&t[i], fns[i], &s[i]) != thrd_success) {
      fprintf(stderr, "thrd_create failed\n");
      exit(2);
    }
    ++created;
  }
  for (int i = 0; i < 6; ++i) {
    int res = -1;
    if (thrd_join(t[i], &res) != thrd_success) {
      fprintf(stderr, "thrd_join failed\n");
      exit(2);
    }
    if (res != (i < 4 ? 5 : 6)) {
      fprintf(stderr, "C11 thread %d returned %d\n", i, res);
      exit(4);
    }
  }
  /* The last one is detached by its creator while held at its gate. */
  wait_published(&s[8]);
  if (thrd_detach(t[8]) != thrd_success) {
    fprintf(stderr, "thrd_detach failed\n");
    exit(2);
  }
  atomic_store(&s[8].go, 1);
  for (int i = 6; i < 9; ++i) {
    wait_published(&s[i]);
    thr_wait_task_gone(s[i].tid, 10000);
  }
}

int main(int argc, char** argv) {
  double idle_ms = argc > 1 ? atof(argv[1]) : 600;
  thr_never_fd(); /* before any thread reads it */
  self_detached();
  pthread_exit_joined();
  cancelled_and_joined();
  created_detached();
  detached_by_creator();
  other_joins();
  c11_threads();
  thr_sleep_ms(idle_ms);
  printf("threads created: %d\n", created);
  return 0;
}

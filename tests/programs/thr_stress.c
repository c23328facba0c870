/* CREATORS threads (started at once, joined at the end) each create short-
 * lived child threads for RUN_MS, concurrently, cycling through the ends that
 * CYCLE spells, one letter per child (default "jjsc"):
 *   j  the child returns at once and the creator joins it (the child often
 *      exits before its creator's pthread_create has returned)
 *   s  the child detaches itself and returns
 *   c  the creator detaches the child right after creating it (racing the
 *      child's own exit)
 * A creator waits for each detached child until its kernel task is gone, so
 * nothing is running or unjoined when main returns.
 *
 * Usage: thr_stress [CREATORS [RUN_MS [CYCLE]]]   (default 64 3000 jjsc)
 * Prints "creators C, children N (joined J, self-detached S, detached by
 * creator D), pthread_create calls T" — T = C + N, every one of them ended
 * cleanly. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "thr_common.h"

static const char* cycle = "jjsc";

struct creator {
  pthread_t thread;
  double until_ms;
  atomic_int child_tid;
  long joined, self_detached, detached_by_creator;
};

static void* child_return(void* arg) {
  (void)arg;
  return (void*)1;
}

static void* child_detach_self(void* arg) {
  struct creator* c = arg;
  int rc = pthread_detach(pthread_self());
  if (rc != 0) thr_die("pthread_detach(self)", rc);
  atomic_store(&c->child_tid, gettid());
  return NULL;
}

static void* child_publish_and_return(void* arg) {
  struct creator* c = arg;
  atomic_store(&c->child_tid, gettid());
  return NULL;
}

static void wait_child_gone(struct creator* c) {
  double deadline = thr_now_ms() + 10000;
  int tid;
  while ((tid = atomic_load(&c->child_tid)) == 0) {
    if (thr_now_ms() > deadline) {
      fprintf(stderr, "a child did not start\n");
      exit(3);
    }
    sched_yield();
  }
  thr_wait_task_gone(tid, 10000);
}

void* create_children(void* arg) {
  struct creator* c = arg;
  for (long i = 0; thr_now_ms() < c->until_ms; ++i) {
    pthread_t child;
    int rc;
    atomic_store(&c->child_tid, 0);
    switch (cycle[i % (long)strlen(cycle)]) {
      case 'j':
        rc = pthread_create(&child, NULL, child_return, c);
        if (rc != 0) thr_die("pthread_create", rc);
        void* result;
        rc = pthread_join(child, &result);
        if (rc != 0) thr_die("pthread_join", rc);
        if (result != (void*)1) exit(4);
        ++c->joined;
        break;
      case 's':
        rc = pthread_create(&child, NULL, child_detach_self, c);
        if (rc != 0) thr_die("pthread_create", rc);
        wait_child_gone(c);
        ++c->self_detached;
        break;
      case 'c':
        rc = pthread_create(&child, NULL, child_publish_and_return, c);
        if (rc != 0) thr_die("pthread_create", rc);
        rc = pthread_detach(child);
        if (rc != 0) thr_die("pthread_detach", rc);
        wait_child_gone(c);
        ++c->detached_by_creator;
        break;
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int creators = argc > 1 ? atoi(argv[1]) : 64;
  double run_ms = argc > 2 ? atof(argv[2]) : 3000;
  if (argc > 3) cycle = argv[3];
  if (cycle[0] == '\0' || strspn(cycle, "jsc") != strlen(cycle)) {
    fprintf(stderr, "CYCLE: letters j, s, c\n");
    return 2;
  }
  if (creators < 1 || creators > 1024) {
    fprintf(stderr, "CREATORS must be 1..1024\n");
    return 2;
  }
  static struct creator c[1024];
  double until = thr_now_ms() + run_ms;
  for (int i = 0; i < creators; ++i) {
    c[i].until_ms = until;
    int rc = pthread_create(&c[i].thread, NULL, create_children, &c[i]);
    if (rc != 0) thr_die("pthread_create", rc);
  }
  long joined = 0, self_detached = 0, detached_by_creator = 0;
  for (int i = 0; i < creators; ++i) {
    int rc = pthread_join(c[i].thread, NULL);
    if (rc != 0) thr_die("pthread_join", rc);
    joined += c[i].joined;
    self_detached += c[i].self_detached;
    detached_by_creator += c[i].detached_by_creator;
  }
  long children = joined + self_detached + detached_by_creator;
  printf("creators %d, children %ld (joined %ld, self-detached %ld, detached "
         "by creator %ld), pthread_create calls %ld\n",
         creators, children, joined, self_detached, detached_by_creator,
         creators + children);
  return 0;
}

/* CREATORS threads (started at once, joined at the end) each create short-
 * lived child threads for RUN_MS, concurrently, cycling through the ends that
 * CYCLE spells, one letter per child (default "jjsc"):
 *   j  the child returns at once and the creator joins it (the child often
 *      exits before its creator's pthread_create has returned)
 *   s  the child detaches itself and returns
 *   c  the creator detaches the child right after creating it (racing the
 *      child's own exit)
 *   l  a leak: the child returns at once and is never joined (at most
 *      kMaxLeaksPerCreator per creator; past that, 'l' means 's')
 * A creator waits for each detached or leaked child until its kernel task is
 * gone, so nothing is running when main returns, and nothing is unjoined but
 * the leaked children. With 'l' in CYCLE every child gets a small stack
 * (64 KiB; glibc reuses a finished thread's stack and pthread_t only for a
 * thread of a similar stack size), so leaked children take pthread_t values
 * that detached ones just gave back.
 *
 * The whole program runs at nice 19 (every thread inherits it), so that its
 * busy creators do not starve other programs run at the same time (ctest -j):
 * a starved program's join can come later than a short threshold.
 *
 * Usage: thr_stress [CREATORS [RUN_MS [CYCLE]]]   (default 64 3000 jjsc)
 * Prints "creators C, children N (joined J, self-detached S, detached by
 * creator D, leaked L), pthread_create calls T" — T = C + N; every one of
 * them ended cleanly but the L leaked ones. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "thr_common.h"

static const char* cycle = "jjsc";
static pthread_attr_t child_attr; /* default, or a small stack with 'l' */
#define kMaxLeaksPerCreator 100

struct creator {
  pthread_t thread;
  double until_ms;
  atomic_int child_tid;
  long joined, self_detached, detached_by_creator, leaked;
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
    char end = cycle[i % (long)strlen(cycle)];
    if (end == 'l' && c->leaked == kMaxLeaksPerCreator) end = 's';
    switch (end) {
      case 'j':
        rc = pthread_create(&child, &child_attr, child_return, c);
        if (rc != 0) thr_die("pthread_create", rc);
        void* result;
        rc = pthread_join(child, &result);
        if (rc != 0) thr_die("pthread_join", rc);
        if (result != (void*)1) exit(4);
        ++c->joined;
        break;
      case 's':
        rc = pthread_create(&child, &child_attr, child_detach_self, c);
        if (rc != 0) thr_die("pthread_create", rc);
        wait_child_gone(c);
        ++c->self_detached;
        break;
      case 'c':
        rc = pthread_create(&child, &child_attr, child_publish_and_return, c);
        if (rc != 0) thr_die("pthread_create", rc);
        rc = pthread_detach(child);
        if (rc != 0) thr_die("pthread_detach", rc);
        wait_child_gone(c);
        ++c->detached_by_creator;
        break;
      case 'l':
        rc = pthread_create(&child, &child_attr, child_publish_and_return, c);
        if (rc != 0) thr_die("pthread_create", rc);
        wait_child_gone(c);
        ++c->leaked;
        break;
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int creators = argc > 1 ? atoi(argv[1]) : 64;
  double run_ms = argc > 2 ? atof(argv[2]) : 3000;
  if (argc > 3) cycle = argv[3];
  if (cycle[0] == '\0' || strspn(cycle, "jscl") != strlen(cycle)) {
    fprintf(stderr, "CYCLE: letters j, s, c, l\n");
    return 2;
  }
  /* Threads created from now on inherit the main thread's nice value. */
  if (setpriority(PRIO_PROCESS, 0, 19) != 0) thr_die("setpriority", errno);
  pthread_attr_init(&child_attr);
  if (strchr(cycle, 'l') != NULL) {
    int rc = pthread_attr_setstacksize(&child_attr, 64 * 1024);
    if (rc != 0) thr_die("pthread_attr_setstacksize", rc);
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
  long joined = 0, self_detached = 0, detached_by_creator = 0, leaked = 0;
  for (int i = 0; i < creators; ++i) {
    int rc = pthread_join(c[i].thread, NULL);
    if (rc != 0) thr_die("pthread_join", rc);
    joined += c[i].joined;
    self_detached += c[i].self_detached;
    detached_by_creator += c[i].detached_by_creator;
    leaked += c[i].leaked;
  }
  long children = joined + self_detached + detached_by_creator + leaked;
  printf("creators %d, children %ld (joined %ld, self-detached %ld, detached "
         "by creator %ld, leaked %ld), pthread_create calls %ld\n",
         creators, children, joined, self_detached, detached_by_creator,
         leaked, creators + children);
  return 0;
}

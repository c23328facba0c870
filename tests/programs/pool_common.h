/* The service skeleton shared by pool_service.c (libpq) and
 * pool_service_my.c (libmariadb): a connection pool with a FIFO free list,
 * a thread pool of kPoolWorkers long-lived workers fed in bursts, the
 * export handler's global list, and main's loop. The client-library code —
 * open_pool, handle_request, export_handler, closing a connection — is the
 * program's own, passed in a struct pool_ops.
 *
 * Usage of a program built on it: NAME POOL BURSTS GAP_MS LEAK AT_EXIT
 *   POOL     connections opened by open_pool() at start-up (1..64)
 *   BURSTS   bursts of kRequestsPerBurst requests, handed to the workers
 *   GAP_MS   main sleeps this long between two bursts
 *   LEAK     1: after each burst main runs export_handler(), which opens a
 *            new connection, runs one query and appends the connection to a
 *            global list (export_list_append) that nothing reads again
 *   AT_EXIT  close: the pool's connections are closed, the workers stopped
 *            and joined, main returns 0
 *            keep:  the workers are stopped and joined, main returns 0 with
 *            the pool (and the export list) still referenced from globals
 * The export list is never closed in either mode. Prints "burst N" after
 * each burst and "done" at the end. Exit status 0; 2 when a connect or a
 * query fails (the program's code exits); 64 on bad arguments.
 *
 * The pool and the queue are globals, their arrays on the heap, as in a real
 * service: the pool's connections are reachable all along. */
#ifndef LEAKWATCH_TESTS_PROGRAMS_POOL_COMMON_H_
#define LEAKWATCH_TESTS_PROGRAMS_POOL_COMMON_H_

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <string.h>

#include "thr_common.h"

enum {
  kMaxPool = 64,
  kPoolWorkers = 4,
  kRequestsPerBurst = 20,
};

struct pool_ops {
  const char* name;                    /* the program, for its usage line */
  void (*open_pool)(int size);         /* opens size connections: pool_add */
  void (*handle_request)(int request); /* pool_borrow, a query, give back */
  void (*export_handler)(int burst);   /* a connection: export_list_append */
  void (*close_conn)(void* conn);      /* PQfinish, mysql_close */
};

/* The connection pool: every member, and a FIFO ring of the free ones. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t returned; /* a connection was given back */
  void** members;          /* size entries */
  void** ring;             /* the free ones: count entries from head */
  int capacity;
  int size;
  int head;
  int count;
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
            .returned = PTHREAD_COND_INITIALIZER};

/* Requests handed to the workers, one burst at a time. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t has_work; /* workers wait here between bursts */
  pthread_cond_t idle;     /* main waits here for a burst to finish */
  void (*handle_request)(int request);
  int pending;   /* handed out, not yet taken */
  int in_flight; /* taken, not yet finished */
  int next_request;
  int stop;
} g_queue = {.mu = PTHREAD_MUTEX_INITIALIZER,
             .has_work = PTHREAD_COND_INITIALIZER,
             .idle = PTHREAD_COND_INITIALIZER};

/* The export handler's connections: a growable array nobody reads again. */
static void** g_exported;
static size_t g_exported_count;
static size_t g_exported_capacity;

static inline void* pool_alloc_or_die(void* block) {
  if (block == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return block;
}

/* Makes room for `capacity` connections; the pool is empty. */
static inline void pool_reserve(int capacity) {
  g_pool.members = pool_alloc_or_die(calloc((size_t)capacity, sizeof(void*)));
  g_pool.ring = pool_alloc_or_die(calloc((size_t)capacity, sizeof(void*)));
  g_pool.capacity = capacity;
}

/* Adds an open connection to the pool, free (at start-up, before any
 * worker runs). */
static inline void pool_add(void* conn) {
  g_pool.members[g_pool.size] = conn;
  g_pool.ring[(g_pool.head + g_pool.count) % g_pool.capacity] = conn;
  ++g_pool.size;
  ++g_pool.count;
}

/* The free connection given back longest ago; waits while none is free. */
__attribute__((noinline)) static void* pool_borrow(void) {
  pthread_mutex_lock(&g_pool.mu);
  while (g_pool.count == 0) pthread_cond_wait(&g_pool.returned, &g_pool.mu);
  void* conn = g_pool.ring[g_pool.head];
  g_pool.ring[g_pool.head] = NULL;
  g_pool.head = (g_pool.head + 1) % g_pool.capacity;
  --g_pool.count;
  pthread_mutex_unlock(&g_pool.mu);
  return conn;
}

/* Puts a borrowed connection at the end of the free list. */
__attribute__((noinline)) static void pool_give_back(void* conn) {
  pthread_mutex_lock(&g_pool.mu);
  g_pool.ring[(g_pool.head + g_pool.count) % g_pool.capacity] = conn;
  ++g_pool.count;
  pthread_cond_signal(&g_pool.returned);
  pthread_mutex_unlock(&g_pool.mu);
}

/* Closes every member (all are free: no burst is running). */
__attribute__((noinline)) static void pool_close(void (*close_conn)(void*)) {
  pthread_mutex_lock(&g_pool.mu);
  for (int i = 0; i < g_pool.size; ++i) {
    close_conn(g_pool.members[i]);
    g_pool.members[i] = NULL;
    g_pool.ring[i] = NULL;
  }
  g_pool.size = g_pool.count = g_pool.head = 0;
  pthread_mutex_unlock(&g_pool.mu);
}

/* Keeps `conn` in the export list "for later". */
static inline void export_list_append(void* conn) {
  if (g_exported_count == g_exported_capacity) {
    size_t capacity = g_exported_capacity == 0 ? 2 : 2 * g_exported_capacity;
    g_exported =
        pool_alloc_or_die(realloc(g_exported, capacity * sizeof(void*)));
    g_exported_capacity = capacity;
  }
  g_exported[g_exported_count++] = conn;
}

/* A worker of the thread pool: blocks between bursts, serves requests. */
static void* pool_worker_main(void* arg) {
  (void)arg;
  pthread_mutex_lock(&g_queue.mu);
  for (;;) {
    while (g_queue.pending == 0 && !g_queue.stop) {
      pthread_cond_wait(&g_queue.has_work, &g_queue.mu);
    }
    if (g_queue.pending == 0) break; /* told to stop, nothing left */
    int request = g_queue.next_request++;
    --g_queue.pending;
    ++g_queue.in_flight;
    pthread_mutex_unlock(&g_queue.mu);
    g_queue.handle_request(request);
    pthread_mutex_lock(&g_queue.mu);
    if (--g_queue.in_flight == 0 && g_queue.pending == 0) {
      pthread_cond_signal(&g_queue.idle);
    }
  }
  pthread_mutex_unlock(&g_queue.mu);
  return NULL;
}

/* Hands kRequestsPerBurst requests to the workers and waits until all are
 * served. */
__attribute__((noinline)) static void run_burst(void) {
  pthread_mutex_lock(&g_queue.mu);
  g_queue.pending += kRequestsPerBurst;
  pthread_cond_broadcast(&g_queue.has_work);
  while (g_queue.pending > 0 || g_queue.in_flight > 0) {
    pthread_cond_wait(&g_queue.idle, &g_queue.mu);
  }
  pthread_mutex_unlock(&g_queue.mu);
}

/* main() of the service: see the top of this file. */
static inline int pool_service_main(int argc, char** argv,
                                    const struct pool_ops* ops) {
  int pool_size = argc == 6 ? atoi(argv[1]) : 0;
  int bursts = argc == 6 ? atoi(argv[2]) : -1;
  double gap_ms = argc == 6 ? atof(argv[3]) : -1;
  int leak = argc == 6 ? atoi(argv[4]) : -1;
  const char* at_exit = argc == 6 ? argv[5] : "";
  int keep = strcmp(at_exit, "keep") == 0;
  if (pool_size < 1 || pool_size > kMaxPool || bursts < 0 || gap_ms < 0 ||
      (leak != 0 && leak != 1) || (!keep && strcmp(at_exit, "close") != 0)) {
    fprintf(stderr, "usage: %s POOL BURSTS GAP_MS LEAK(0|1) close|keep\n",
            ops->name);
    return 64;
  }

  pool_reserve(pool_size);
  ops->open_pool(pool_size);
  g_queue.handle_request = ops->handle_request;
  pthread_t workers[kPoolWorkers];
  for (int i = 0; i < kPoolWorkers; ++i) {
    int rc = pthread_create(&workers[i], NULL, pool_worker_main, NULL);
    if (rc != 0) thr_die("pthread_create", rc);
  }

  for (int burst = 1; burst <= bursts; ++burst) {
    if (burst > 1) thr_sleep_ms(gap_ms);
    run_burst();
    if (leak) ops->export_handler(burst);
    printf("burst %d\n", burst);
    fflush(stdout);
  }

  if (!keep) pool_close(ops->close_conn);
  pthread_mutex_lock(&g_queue.mu);
  g_queue.stop = 1;
  pthread_cond_broadcast(&g_queue.has_work);
  pthread_mutex_unlock(&g_queue.mu);
  for (int i = 0; i < kPoolWorkers; ++i) {
    int rc = pthread_join(workers[i], NULL);
    if (rc != 0) thr_die("pthread_join", rc);
  }
  printf("done\n");
  return 0; /* keep: the pool and the export list are still referenced */
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_POOL_COMMON_H_ */

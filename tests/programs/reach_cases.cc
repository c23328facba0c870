// reach_cases — libpq handles kept the ways real programs keep them and lost
// the ways real programs lose them, then main returns 0 with all of them
// still held. Run under the agent by tests/integration/pool_reach_test.cc:
// the lost ones (no pointer to them is left anywhere) are leaks, the kept
// ones are still reachable.
//
// Usage: reach_cases [conns|results]          (default conns)
//   conns    each case opens real connections (PQconnectdb)
//   results  each case takes results of real queries (PQexec) on one
//            connection, which main finishes properly at the end (the
//            results outlive it; libpq allows that)
//
// Lost (3 handles):
//   lost_overwritten         the only pointer, a global, is overwritten by a
//                            new handle, which is then released properly
//   lost_error_path          a request handler whose query fails (bad SQL on
//                            purpose) returns early without releasing; the
//                            pointer was only in a local
//   lost_freed_struct        a heap struct Request holding the handle is
//                            freed without releasing it
// Reachable (6 handles):
//   keep_global              a global pointer
//   keep_heap_struct         a global pointer to a malloc'd struct holding it
//   keep_other_thread_stack  a thread keeps it in a local and blocks until
//                            the process ends (never joined)
//   keep_tls                 a thread keeps it in a thread_local and blocks
//   keep_cpp_container       two: a static std::vector<H*> and a static
//                            std::map<int, H*>, one each
// Every case acquires in its own noinline function (a thread's start routine
// for the thread cases), named in the acquisition stack; each case acquires
// one handle, keep_cpp_container two. Prints "expect lost 3 reachable 6".
// Connection settings: the PG* environment. Exit status 0; 2 if the server
// cannot be reached or a query that should succeed fails.
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <type_traits>
#include <vector>

#define NOINLINE __attribute__((noinline))

namespace {

constexpr char kQuery[] = "SELECT 1";
constexpr char kBadQuery[] = "SELEC 1 FROM no_such_table";

// The results mode's one connection, every result's origin.
PGconn* g_db;

// Written when a thread case has stored its handle; read by main.
int g_ready_pipe[2] = {-1, -1};
// Never written, its write end never closed: reading it blocks until the
// process ends.
int g_shutdown_pipe[2] = {-1, -1};

[[noreturn]] void Die(const char* what, const char* why) {
  fprintf(stderr, "%s: %s", what, why);
  exit(2);
}

PGconn* CheckedConn(PGconn* conn) {
  if (PQstatus(conn) != CONNECTION_OK) Die("connect", PQerrorMessage(conn));
  return conn;
}

PGresult* CheckedResult(PGresult* res) {
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    Die(kQuery, PQerrorMessage(g_db));
  }
  return res;
}

void Release(PGconn* conn) { PQfinish(conn); }
void Release(PGresult* res) { PQclear(res); }

// A thread case's handle is stored: main may go on.
void SignalReady() {
  char c = 1;
  while (write(g_ready_pipe[1], &c, 1) < 0 && errno == EINTR) {
  }
}

void WaitUntilReady() {
  char c;
  ssize_t n;
  while ((n = read(g_ready_pipe[0], &c, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) Die("ready pipe", strerror(errno));
}

// What a worker waits for before it cleans up: a shutdown notice that never
// comes (returns only if a byte ever arrives).
void WaitForShutdown() {
  char c;
  while (read(g_shutdown_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
}

}  // namespace

// The handle of kind H (PGconn: a new connection; PGresult: the result of
// kQuery on g_db), acquired in the function this expands in, so that
// function is the acquisition stack's own frame (a helper would be).
#define ACQUIRE(H, var)                          \
  do {                                           \
    if constexpr (std::is_same_v<H, PGconn>) {   \
      var = CheckedConn(PQconnectdb(""));        \
    } else {                                     \
      var = CheckedResult(PQexec(g_db, kQuery)); \
    }                                            \
  } while (0)

// --- reachable
// ----------------------------------------------------------------

// Globals with external linkage: the compiler must store to them before any
// call it cannot see into.
template <class H>
H* g_kept_global;

template <class H>
struct Session {
  int id;
  char user[32];
  H* handle;
  double opened_at;
};
template <class H>
Session<H>* g_session;

template <class H>
thread_local H* t_worker_handle;

template <class H>
std::vector<H*> g_pending_handles;
template <class H>
std::map<int, H*> g_handles_by_id;

template <class H>
NOINLINE void keep_global() {
  ACQUIRE(H, g_kept_global<H>);
}

template <class H>
NOINLINE void keep_heap_struct() {
  auto* session = static_cast<Session<H>*>(calloc(1, sizeof(Session<H>)));
  if (session == nullptr) Die("calloc", "out of memory\n");
  session->id = 7;
  snprintf(session->user, sizeof session->user, "reporting");
  ACQUIRE(H, session->handle);
  g_session<H> = session;
}

// The thread of keep_other_thread_stack: its handle lives in a local until a
// shutdown notice that never comes.
template <class H>
NOINLINE void* keep_other_thread_stack_thread(void*) {
  H* handle;
  ACQUIRE(H, handle);
  SignalReady();
  WaitForShutdown();
  Release(handle);
  return nullptr;
}

template <class H>
NOINLINE void keep_other_thread_stack() {
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, keep_other_thread_stack_thread<H>,
                          nullptr);
  if (rc != 0) Die("pthread_create", strerror(rc));
  WaitUntilReady();  // never joined: main returns while it waits
}

// The thread of keep_tls: its handle lives in a thread_local.
template <class H>
NOINLINE void* keep_tls_thread(void*) {
  ACQUIRE(H, t_worker_handle<H>);
  SignalReady();
  WaitForShutdown();
  Release(t_worker_handle<H>);
  return nullptr;
}

template <class H>
NOINLINE void keep_tls() {
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, keep_tls_thread<H>, nullptr);
  if (rc != 0) Die("pthread_create", strerror(rc));
  WaitUntilReady();
}

template <class H>
NOINLINE void keep_cpp_container() {
  H* queued;
  ACQUIRE(H, queued);
  g_pending_handles<H>.push_back(queued);
  H* indexed;
  ACQUIRE(H, indexed);
  g_handles_by_id<H>[42] = indexed;
}

// --- lost
// ---------------------------------------------------------------------

template <class H>
H* g_current;

// A "reconnect" that forgets the old handle: the global now points at the new
// one, which shutdown releases properly.
template <class H>
NOINLINE void lost_overwritten() {
  ACQUIRE(H, g_current<H>);
  ACQUIRE(H, g_current<H>);
  Release(g_current<H>);
  g_current<H> = nullptr;
}

// A request handler whose query fails: the early return forgets the release.
template <class H>
NOINLINE int lost_error_path(int request_id) {
  if constexpr (std::is_same_v<H, PGconn>) {
    PGconn* conn = CheckedConn(PQconnectdb(""));
    PGresult* res = PQexec(conn, kBadQuery);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      PQclear(res);
      return -request_id;  // conn is never finished
    }
    PQclear(res);
    PQfinish(conn);
  } else {
    PGresult* res = PQexec(g_db, kBadQuery);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      return -request_id;  // res is never cleared
    }
    PQclear(res);
  }
  return request_id;
}

template <class H>
struct Request {
  int id;
  char buf[40];
  H* handle;
  char client[64];
  long started_ms;
};

// A request object freed when the request is done, its handle with it.
template <class H>
NOINLINE void lost_freed_struct() {
  auto* request = static_cast<Request<H>*>(malloc(sizeof(Request<H>)));
  if (request == nullptr) Die("malloc", "out of memory\n");
  request->id = 3;
  snprintf(request->buf, sizeof request->buf, "GET /report/%d", request->id);
  snprintf(request->client, sizeof request->client, "127.0.0.1:%d", 40000);
  request->started_ms = 0;
  ACQUIRE(H, request->handle);
  free(request);  // the handle is never released
}

// Serves the requests that lose handles from a frame with a 64 KiB request
// buffer, as servers do. Their dead frames then lie below anything the exit
// path uses (main's return, exit, the agent's exit report), so a stale copy
// of a lost pointer in one of them is never in the live part of the main
// thread's stack, which a conservative scan must take as pointers.
template <class H>
NOINLINE int serve_requests() {
  char request[64 * 1024];
  int n = snprintf(request, sizeof request, "GET /cases HTTP/1.1\r\n");
  lost_overwritten<H>();
  int failed = lost_error_path<H>(2) < 0;
  lost_freed_struct<H>();
  return failed + (request[n - 1] == '\n');
}

template <class H>
int RunCases() {
  keep_global<H>();
  keep_heap_struct<H>();
  keep_other_thread_stack<H>();
  keep_tls<H>();
  keep_cpp_container<H>();
  if (serve_requests<H>() != 2) Die(kBadQuery, "did not fail\n");
  printf("expect lost 3 reachable 6\n");
  return 0;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "conns";
  bool results = strcmp(mode, "results") == 0;
  if (!results && strcmp(mode, "conns") != 0) {
    fprintf(stderr, "usage: reach_cases [conns|results]\n");
    return 64;
  }
  if (pipe(g_ready_pipe) != 0 || pipe(g_shutdown_pipe) != 0) {
    Die("pipe", strerror(errno));
  }
  if (!results) return RunCases<PGconn>();
  g_db = CheckedConn(PQconnectdb(""));
  RunCases<PGresult>();
  PQfinish(g_db);  // the results outlive their connection
  g_db = nullptr;
  return 0;  // the blocked threads are never joined
}

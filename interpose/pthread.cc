// Hooks for thread creation, join, detach and exit (POSIX and C11 threads).
//
// A thread's record is keyed by its pthread_t (thrd_t is the same in glibc)
// and lives from creation until it is joined or, if detached, until it exits:
// detach is not release. The creator captures the creation stack before the
// real pthread_create, and the record is inserted by whichever comes first:
// the creator after the real call returns, or the new thread as it starts
// (glibc stores the pthread_t before the thread runs, so another thread may
// join it before the creator's call has returned; the thread's own insert
// guarantees its record exists before it can exit). A small state shared by
// the two, under its mutex, says which came first; it lives only until both
// have passed that point, so a running thread costs no memory here: its
// record's key is its own pthread_self(), and its record exists before any of
// its own code runs, so its exit or self-detach is never before the insert.
// Exit is seen by a pthread_key_create destructor, which runs on return,
// pthread_exit and cancellation alike; the trampoline catches nothing
// (cancellation is a forced unwind).
//
// C11 thrd_create does not go through pthread_create in glibc: it is hooked
// on its own, with an int-returning trampoline.
#include <pthread.h>
#include <sys/syscall.h>
#include <threads.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <new>

#include "interpose/hook.h"
#include "interpose/kinds.h"
#include "interpose/real.h"
#include "tracker/clock.h"

namespace leakwatch {

namespace {

// Spelled out: decltype(&::pthread_create) carries glibc's nonnull
// attributes, which a template argument cannot.
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*,
                                void* (*)(void*), void*);

// clang-format off
#define LW_PTHREAD_FUNCTIONS(X)                                          \
  X(pthread_create, PthreadCreateFn) X(pthread_join) X(pthread_tryjoin_np) \
  X(pthread_timedjoin_np) X(pthread_clockjoin_np) X(pthread_detach)      \
  X(thrd_create) X(thrd_join) X(thrd_detach)
// clang-format on

#define LW_DECLARE_LIBC_REAL(...) LW_DECLARE_REAL(g_libc, __VA_ARGS__)
LW_PTHREAD_FUNCTIONS(LW_DECLARE_LIBC_REAL)
#undef LW_DECLARE_LIBC_REAL

// Shared by the creator and the new thread while the thread is created: the
// creator lets go once the real create returned, the thread once its record
// is in (BeginThread). Then it goes to the spare list (Unref), not to free().
struct ThreadState {
  void* (*start)(void*) = nullptr;    // POSIX start routine, or
  int (*start_c11)(void*) = nullptr;  // C11 start routine
  void* arg = nullptr;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  // Guarded by mu:
  bool inserted = false;  // the record is in the table
  uintptr_t key = 0;
  uint32_t tid = 0;
  // Set by the creator before the real call:
  bool detached = false;  // created detached
  uint32_t stack_id = 0;
  uint32_t serial = 0;
  uint32_t creator_tid = 0;
  uintptr_t code = 0;
  std::atomic<int> refs{2};
  ThreadState* next = nullptr;  // on the spare list
};

// States no creation uses any more, for the next one to take. The new thread
// lets its state go here rather than to free(): a thread that never calls
// malloc itself would get a tcache and an arena from that free. Pushed
// without a lock (async-signal-safe, no ABA: a push only compares the head
// it links to), taken as a whole by exchange (NewThreadState).
std::atomic<ThreadState*> g_spare{nullptr};

void Unref(ThreadState* ts) {
  if (ts->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  ThreadState* head = g_spare.load(std::memory_order_relaxed);
  do {
    ts->next = head;
  } while (!g_spare.compare_exchange_weak(head, ts, std::memory_order_release,
                                          std::memory_order_relaxed));
}

// A fresh state for a creation: a spare one if any (the other spares are
// freed here, on the creating thread, which allocates anyway), else a new
// one; null if memory cannot be had.
ThreadState* NewThreadState() {
  ThreadState* spare = g_spare.exchange(nullptr, std::memory_order_acquire);
  if (spare == nullptr) return new (std::nothrow) ThreadState;
  for (ThreadState* rest = spare->next; rest != nullptr;) {
    ThreadState* next = rest->next;
    delete rest;
    rest = next;
  }
  spare->~ThreadState();
  return new (spare) ThreadState;
}

pthread_key_t g_exit_key;
bool g_exit_key_ok = false;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

// Runs as the thread's last act (key destructor): return, pthread_exit or
// cancellation. The record has been in the table since BeginThread.
void OnThreadExit(void*) {
  ErrnoGuard errno_guard;
  Tracker::Get().MarkExited(Key(pthread_self()), NowNs());
}

void EnsureExitKey() {
  pthread_once(&g_exit_key_once, [] {
    g_exit_key_ok = pthread_key_create(&g_exit_key, &OnThreadExit) == 0;
  });
}

// Inserts the thread's record; mu held. The thread has not exited: it
// inserts its record itself before it runs its start routine.
void InsertLocked(ThreadState* ts, uintptr_t key) {
  ts->key = key;
  AcquireInfo info;
  info.code = ts->code;
  info.serial = ts->serial;
  info.stack_id = ts->stack_id;
  info.tid = ts->creator_tid;
  info.identity.detail = ts->tid;
  if (ts->detached) info.flags |= kDetached;
  Tracker::Get().Acquire(&kThread, key, info);
  ts->inserted = true;
}

// First thing in the new thread: its tid, its record if the creator has not
// inserted it yet, and the exit hook; then the state is let go.
void BeginThread(ThreadState* ts) {
  ErrnoGuard errno_guard;
  uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  pthread_mutex_lock(&ts->mu);
  ts->tid = tid;
  if (ts->inserted) {
    Tracker::Get().SetDetail(ts->key, tid);
  } else {
    InsertLocked(ts, Key(pthread_self()));
  }
  pthread_mutex_unlock(&ts->mu);
  Unref(ts);
  // Any value but null runs the destructor.
  if (!g_exit_key_ok || pthread_setspecific(g_exit_key, &g_exit_key) != 0) {
    // No exit notice possible: treat the thread as gone from now on, so it
    // is never reported as running or as exited-unjoined.
    OnThreadExit(nullptr);
  }
}

void* Trampoline(void* p) {
  auto* ts = static_cast<ThreadState*>(p);
  void* (*start)(void*) = ts->start;
  void* arg = ts->arg;
  BeginThread(ts);
  return start(arg);
}

int TrampolineC11(void* p) {
  auto* ts = static_cast<ThreadState*>(p);
  int (*start)(void*) = ts->start_c11;
  void* arg = ts->arg;
  BeginThread(ts);
  return start(arg);
}

// Calls the client libraries make are theirs (a thread libpq or libmariadb
// starts is not the program's leak).
bool FromClientLibrary(const void* caller) {
  return g_libpq.Contains(caller) || g_mysql.Contains(caller);
}

// Before the real create of a thread that runs `code`: the state shared with
// the new thread, saying what the record will say of the creation; null if
// the creation is not recorded (then the real create runs the program's
// start routine itself). Inlined into the exported hook, whose frame anchors
// the stack cache.
__attribute__((always_inline)) inline ThreadState* PrepareThread(
    const HookScope& scope, uintptr_t code) {
  if (!scope.record() || FromClientLibrary(scope.caller())) return nullptr;
  ErrnoGuard errno_guard;
  ThreadState* ts = NewThreadState();
  if (ts == nullptr) return nullptr;
  EnsureExitKey();
  static std::atomic<uint32_t> next_serial{1};
  Tracker& tracker = Tracker::Get();
  ts->code = code;
  ts->serial = next_serial.fetch_add(1, std::memory_order_relaxed);
  ts->stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  ts->creator_tid = Tracker::CurrentTid();
  return ts;
}

// PrepareThread for pthread_create: `attr` may ask for a detached thread.
__attribute__((always_inline)) inline ThreadState* PrepareThread(
    const HookScope& scope, const pthread_attr_t* attr, void* (*start)(void*),
    void* arg) {
  ThreadState* ts = PrepareThread(scope, reinterpret_cast<uintptr_t>(start));
  if (ts == nullptr) return nullptr;
  ts->start = start;
  ts->arg = arg;
  int detach_state = PTHREAD_CREATE_JOINABLE;
  if (attr != nullptr &&
      pthread_attr_getdetachstate(attr, &detach_state) == 0 &&
      detach_state == PTHREAD_CREATE_DETACHED) {
    ts->detached = true;
  }
  return ts;
}

// PrepareThread for thrd_create.
__attribute__((always_inline)) inline ThreadState* PrepareThread(
    const HookScope& scope, int (*start)(void*), void* arg) {
  ThreadState* ts = PrepareThread(scope, reinterpret_cast<uintptr_t>(start));
  if (ts == nullptr) return nullptr;
  ts->start_c11 = start;
  ts->arg = arg;
  return ts;
}

// In the creator, after the real create with `ts` (`created`: it succeeded,
// the new thread's id is in `*thread`): the record goes in, with whatever the
// new thread has done meanwhile, unless it inserted it itself.
void FinishCreate(ThreadState* ts, bool created, const pthread_t* thread) {
  if (!created) {
    delete ts;  // the thread never ran
    return;
  }
  ErrnoGuard errno_guard;
  pthread_mutex_lock(&ts->mu);
  if (!ts->inserted) InsertLocked(ts, Key(*thread));
  pthread_mutex_unlock(&ts->mu);
  Unref(ts);
}

// A self-detach too: a tracked thread's record is in before its own code
// runs.
void OnDetach(pthread_t thread) {
  ErrnoGuard errno_guard;
  Tracker::Get().MarkDetached(Key(thread));
}

// Joins: the record goes once the join succeeded, and only if it is still
// the joined thread's (its pthread_t may be reused at once).
struct JoinScope {
  explicit JoinScope(pthread_t thread, bool record)
      : key(Key(thread)), record(record) {
    if (!record) return;
    ErrnoGuard errno_guard;
    known = Tracker::Get().GetSerial(key, &serial);
  }
  // After the real join; `joined`: it succeeded.
  void Done(bool joined) {
    if (!record || !joined) return;
    ErrnoGuard errno_guard;
    if (known) {
      Tracker::Get().ReleaseIfSerial(key, serial);
    } else {
      // Joined before its record was seen (the thread inserts it as it
      // starts): by now it has exited, so its record says so.
      Tracker::Get().ReleaseIfExited(key);
    }
  }
  uintptr_t key;
  bool record;
  bool known = false;
  uint32_t serial = 0;
};

}  // namespace
}  // namespace leakwatch

using leakwatch::kLibThread;

// The start of every hook here (see hook.h).
#define LW_THREAD_BEGIN(name, fail) \
  LW_HOOK_BEGIN(::leakwatch::g_libc, kLibThread, name, fail)

LW_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                             void* (*start_routine)(void*), void* arg) {
  LW_THREAD_BEGIN(pthread_create, EAGAIN);
  auto* ts = leakwatch::PrepareThread(scope, attr, start_routine, arg);
  if (ts == nullptr) return real(thread, attr, start_routine, arg);
  int rc = real(thread, attr, &leakwatch::Trampoline, ts);
  leakwatch::FinishCreate(ts, rc == 0, thread);
  return rc;
}

LW_EXPORT int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  LW_THREAD_BEGIN(thrd_create, thrd_error);
  auto* ts = leakwatch::PrepareThread(scope, func, arg);
  if (ts == nullptr) return real(thr, func, arg);
  int rc = real(thr, &leakwatch::TrampolineC11, ts);
  leakwatch::FinishCreate(ts, rc == thrd_success, thr);
  return rc;
}

// Detaches are recorded before the real call: once detached, an exited
// thread's pthread_t may be reused at once.
#define LW_DETACH_HOOK(name, fail)                          \
  LW_HOOK(::leakwatch::g_libc, kLibThread, int, name, fail, \
          (pthread_t thread), (thread), leakwatch::OnDetach(thread), (void)0)

LW_DETACH_HOOK(pthread_detach, ESRCH)
LW_DETACH_HOOK(thrd_detach, thrd_error)

// Joins; `joined` is the return of a successful join.
#define LW_JOIN_HOOK(name, fail, joined, params, args) \
  LW_EXPORT int name params {                          \
    LW_THREAD_BEGIN(name, fail);                       \
    leakwatch::JoinScope join(thread, scope.record()); \
    int rc = real args;                                \
    join.Done(rc == (joined));                         \
    return rc;                                         \
  }

LW_JOIN_HOOK(pthread_join, ESRCH, 0, (pthread_t thread, void** retval),
             (thread, retval))
LW_JOIN_HOOK(pthread_tryjoin_np, ESRCH, 0, (pthread_t thread, void** retval),
             (thread, retval))
LW_JOIN_HOOK(pthread_timedjoin_np, ESRCH, 0,
             (pthread_t thread, void** retval, const struct timespec* abstime),
             (thread, retval, abstime))
LW_JOIN_HOOK(pthread_clockjoin_np, ESRCH, 0,
             (pthread_t thread, void** retval, clockid_t clockid,
              const struct timespec* abstime),
             (thread, retval, clockid, abstime))
LW_JOIN_HOOK(thrd_join, thrd_error, thrd_success, (thrd_t thread, int* res),
             (thread, res))

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
// the two, under its mutex, says what happened first, so an exit or a
// self-detach before the insert is not lost. Exit is seen by a
// pthread_key_create destructor, which runs on return, pthread_exit and
// cancellation alike; the trampoline catches nothing (cancellation is a
// forced unwind).
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

const char* const kLibcSonames[] = {"libc.so.6", nullptr};
ClientLibrary g_libc{"libc", kLibcSonames};

// Spelled out: decltype(&::pthread_create) carries glibc's nonnull
// attributes, which a template argument cannot.
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*,
                                void* (*)(void*), void*);
RealFunction<PthreadCreateFn> real_pthread_create("pthread_create", &g_libc);
RealFunction<decltype(&::pthread_join)> real_pthread_join("pthread_join",
                                                          &g_libc);
RealFunction<decltype(&::pthread_tryjoin_np)> real_pthread_tryjoin_np(
    "pthread_tryjoin_np", &g_libc);
RealFunction<decltype(&::pthread_timedjoin_np)> real_pthread_timedjoin_np(
    "pthread_timedjoin_np", &g_libc);
RealFunction<decltype(&::pthread_clockjoin_np)> real_pthread_clockjoin_np(
    "pthread_clockjoin_np", &g_libc);
RealFunction<decltype(&::pthread_detach)> real_pthread_detach(
    "pthread_detach", &g_libc);
RealFunction<decltype(&::thrd_create)> real_thrd_create("thrd_create",
                                                        &g_libc);
RealFunction<decltype(&::thrd_join)> real_thrd_join("thrd_join", &g_libc);
RealFunction<decltype(&::thrd_detach)> real_thrd_detach("thrd_detach",
                                                        &g_libc);

uintptr_t Key(pthread_t t) { return static_cast<uintptr_t>(t); }

// Shared by the creator and the new thread; freed by whichever lets go last.
struct ThreadState {
  void* (*start)(void*) = nullptr;  // POSIX start routine, or
  int (*start_c11)(void*) = nullptr;  // C11 start routine
  void* arg = nullptr;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  // Guarded by mu:
  bool inserted = false;  // the record is in the table
  bool exited = false;
  bool detached = false;
  uintptr_t key = 0;
  uint32_t tid = 0;
  int64_t exit_ns = 0;
  // Set by the creator before the real call:
  uint32_t stack_id = 0;
  uint32_t serial = 0;
  uint32_t creator_tid = 0;
  uintptr_t code = 0;
  std::atomic<int> refs{2};

  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

__attribute__((tls_model("initial-exec"))) __thread ThreadState* t_state =
    nullptr;

pthread_key_t g_exit_key;
bool g_exit_key_ok = false;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

// Runs as the thread's last act (key destructor): return, pthread_exit or
// cancellation.
void OnThreadExit(void* p) {
  ErrnoGuard errno_guard;
  auto* ts = static_cast<ThreadState*>(p);
  pthread_mutex_lock(&ts->mu);
  ts->exited = true;
  ts->exit_ns = NowNs();
  if (ts->inserted) Tracker::Get().MarkExited(ts->key, ts->exit_ns);
  pthread_mutex_unlock(&ts->mu);
  t_state = nullptr;
  ts->Unref();
}

void EnsureExitKey() {
  pthread_once(&g_exit_key_once, [] {
    g_exit_key_ok = pthread_key_create(&g_exit_key, &OnThreadExit) == 0;
  });
}

// Inserts the thread's record with what has happened so far; mu held.
void InsertLocked(ThreadState* ts, uintptr_t key) {
  Tracker& tracker = Tracker::Get();
  ts->key = key;
  AcquireInfo info;
  info.code = ts->code;
  info.serial = ts->serial;
  info.stack_id = ts->stack_id;
  info.tid = ts->creator_tid;
  info.identity.detail = ts->tid;
  if (ts->exited) {
    info.flags |= kExited;
    info.exited_ns = ts->exit_ns;
  }
  if (ts->detached) info.flags |= kDetached;
  tracker.Acquire(&kThread, key, info);
  if (ts->exited && ts->detached) tracker.Release(key);  // already gone
  ts->inserted = true;
}

// First thing in the new thread: its tid, its record if the creator has not
// inserted it yet, and the exit hook.
void BeginThread(ThreadState* ts) {
  ErrnoGuard errno_guard;
  t_state = ts;
  uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  pthread_mutex_lock(&ts->mu);
  ts->tid = tid;
  if (ts->inserted) {
    Tracker::Get().SetDetail(ts->key, tid);
  } else {
    InsertLocked(ts, Key(pthread_self()));
  }
  pthread_mutex_unlock(&ts->mu);
  if (!g_exit_key_ok || pthread_setspecific(g_exit_key, ts) != 0) {
    // No exit notice possible: treat the thread as gone from now on, so it
    // is never reported as running or as exited-unjoined.
    OnThreadExit(ts);
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

// In the creator, after a successful create: the record goes in, with
// whatever the new thread has done meanwhile, unless it inserted it itself.
void InsertThread(ThreadState* ts, pthread_t thread) {
  ErrnoGuard errno_guard;
  pthread_mutex_lock(&ts->mu);
  if (!ts->inserted) InsertLocked(ts, Key(thread));
  pthread_mutex_unlock(&ts->mu);
  ts->Unref();
}

// Before the real create: what the record will say of the creation. Inlined
// into the exported hook, whose frame anchors the stack cache.
__attribute__((always_inline)) inline void PrepareThread(ThreadState* ts,
                                                         uintptr_t code) {
  ErrnoGuard errno_guard;
  static std::atomic<uint32_t> next_serial{1};
  Tracker& tracker = Tracker::Get();
  ts->code = code;
  ts->serial = next_serial.fetch_add(1, std::memory_order_relaxed);
  ts->stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  ts->creator_tid = Tracker::CurrentTid();
}

// Calls the client libraries make are theirs (a thread libpq or libmariadb
// starts is not the program's leak).
bool FromClientLibrary(const void* caller) {
  return g_libpq.Contains(caller) || g_mysql.Contains(caller);
}

void OnDetach(pthread_t thread) {
  ErrnoGuard errno_guard;
  ThreadState* own = t_state;
  if (own != nullptr && pthread_equal(thread, pthread_self())) {
    // Self-detach, possibly before the creator has inserted the record.
    pthread_mutex_lock(&own->mu);
    own->detached = true;
    if (own->inserted) Tracker::Get().MarkDetached(own->key);
    pthread_mutex_unlock(&own->mu);
    return;
  }
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
  void Done(int rc) {
    if (!record || rc != 0) return;
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

using leakwatch::HookScope;
using leakwatch::kLibThread;

#define LW_CALLER __builtin_return_address(0)

LW_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                             void* (*start_routine)(void*), void* arg) {
  auto real = leakwatch::real_pthread_create.Get();
  if (real == nullptr) return EAGAIN;
  const void* caller = LW_CALLER;
  HookScope scope(leakwatch::g_libc, kLibThread, caller);
  if (!scope.record() || leakwatch::FromClientLibrary(caller)) {
    return real(thread, attr, start_routine, arg);
  }
  auto* ts = new (std::nothrow) leakwatch::ThreadState;
  if (ts == nullptr) return real(thread, attr, start_routine, arg);
  leakwatch::EnsureExitKey();
  ts->start = start_routine;
  ts->arg = arg;
  leakwatch::PrepareThread(ts, reinterpret_cast<uintptr_t>(start_routine));
  int detach_state = PTHREAD_CREATE_JOINABLE;
  if (attr != nullptr &&
      pthread_attr_getdetachstate(attr, &detach_state) == 0 &&
      detach_state == PTHREAD_CREATE_DETACHED) {
    ts->detached = true;
  }
  int rc = real(thread, attr, &leakwatch::Trampoline, ts);
  if (rc != 0) {
    delete ts;  // the thread never ran
    return rc;
  }
  leakwatch::InsertThread(ts, *thread);
  return rc;
}

LW_EXPORT int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto real = leakwatch::real_thrd_create.Get();
  if (real == nullptr) return thrd_error;
  const void* caller = LW_CALLER;
  HookScope scope(leakwatch::g_libc, kLibThread, caller);
  if (!scope.record() || leakwatch::FromClientLibrary(caller)) {
    return real(thr, func, arg);
  }
  auto* ts = new (std::nothrow) leakwatch::ThreadState;
  if (ts == nullptr) return real(thr, func, arg);
  leakwatch::EnsureExitKey();
  ts->start_c11 = func;
  ts->arg = arg;
  leakwatch::PrepareThread(ts, reinterpret_cast<uintptr_t>(func));
  int rc = real(thr, &leakwatch::TrampolineC11, ts);
  if (rc != thrd_success) {
    delete ts;
    return rc;
  }
  leakwatch::InsertThread(ts, *thr);
  return rc;
}

LW_EXPORT int pthread_detach(pthread_t thread) {
  auto real = leakwatch::real_pthread_detach.Get();
  if (real == nullptr) return ESRCH;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  // Before the real call: once detached, an exited thread's pthread_t may be
  // reused at once.
  if (scope.record()) leakwatch::OnDetach(thread);
  return real(thread);
}

LW_EXPORT int thrd_detach(thrd_t thr) {
  auto real = leakwatch::real_thrd_detach.Get();
  if (real == nullptr) return thrd_error;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  if (scope.record()) leakwatch::OnDetach(thr);
  return real(thr);
}

LW_EXPORT int pthread_join(pthread_t thread, void** retval) {
  auto real = leakwatch::real_pthread_join.Get();
  if (real == nullptr) return ESRCH;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  leakwatch::JoinScope join(thread, scope.record());
  int rc = real(thread, retval);
  join.Done(rc);
  return rc;
}

LW_EXPORT int pthread_tryjoin_np(pthread_t thread, void** retval) {
  auto real = leakwatch::real_pthread_tryjoin_np.Get();
  if (real == nullptr) return ESRCH;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  leakwatch::JoinScope join(thread, scope.record());
  int rc = real(thread, retval);
  join.Done(rc);
  return rc;
}

LW_EXPORT int pthread_timedjoin_np(pthread_t thread, void** retval,
                                   const struct timespec* abstime) {
  auto real = leakwatch::real_pthread_timedjoin_np.Get();
  if (real == nullptr) return ESRCH;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  leakwatch::JoinScope join(thread, scope.record());
  int rc = real(thread, retval, abstime);
  join.Done(rc);
  return rc;
}

LW_EXPORT int pthread_clockjoin_np(pthread_t thread, void** retval,
                                   clockid_t clockid,
                                   const struct timespec* abstime) {
  auto real = leakwatch::real_pthread_clockjoin_np.Get();
  if (real == nullptr) return ESRCH;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  leakwatch::JoinScope join(thread, scope.record());
  int rc = real(thread, retval, clockid, abstime);
  join.Done(rc);
  return rc;
}

LW_EXPORT int thrd_join(thrd_t thr, int* res) {
  auto real = leakwatch::real_thrd_join.Get();
  if (real == nullptr) return thrd_error;
  HookScope scope(leakwatch::g_libc, kLibThread, LW_CALLER);
  leakwatch::JoinScope join(thr, scope.record());
  int rc = real(thr, res);
  join.Done(rc == thrd_success ? 0 : rc);
  return rc;
}

/* leakwatch.h — in-program annotations for leakwatch (C and C++).
 *
 * For code that keeps a database handle or a thread for the life of the
 * process on purpose (a global configuration connection, a prepared result
 * cached forever, a service thread whose handle is never joined), so that
 * leakwatch does not report it — the counterpart of LeakSanitizer's
 * __lsan_ignore_object.
 *
 *   #include <leakwatch.h>
 *
 *   static PGconn* config_conn;
 *   config_conn = PQconnectdb(...);
 *   leakwatch_ignore_handle(config_conn);   // kept until exit, on purpose
 *
 *   pthread_t t;
 *   pthread_create(&t, NULL, reaper, NULL);
 *   leakwatch_ignore_thread(t);             // never joined, on purpose
 *
 * Works whether or not the agent is loaded. The one function the agent
 * exports, leakwatch_ignore, is declared weak: a program that uses this
 * header links and runs without libleakwatch.so (no link flag, no undefined
 * symbol at run time), and when the agent is preloaded the dynamic linker
 * binds the calls to it. Call the static inline wrappers below, never
 * leakwatch_ignore directly: they check whether it is there.
 *
 * Position-dependent code: a file compiled with -fno-pie (or -fno-pic) takes
 * the address of a weak function as an absolute constant, which the linker
 * fixes to 0 when no library defines it at link time; the agent preloaded
 * later could never be seen. For such files (no __PIC__/__PIE__) the wrappers
 * look the function up with dlsym(RTLD_DEFAULT) instead: glibc 2.34 and later
 * have dlsym in libc; older glibc needs -ldl for those files. GCC and Clang
 * compile position-independent by default on Debian, Ubuntu, Fedora and most
 * distributions, and then none of this applies.
 *
 * What can be annotated: a handle the agent tracks — PGconn*, PGresult*,
 * PGcancel*, MYSQL*, MYSQL_RES*, MYSQL_STMT* — or a thread (its pthread_t).
 * Annotate after the handle is acquired (after PQconnectdb, mysql_init,
 * pthread_create returned). An ignored handle is never reported: not as
 * held too long while the program runs, not in the exit report, and it does
 * not count towards LEAKWATCH_EXITCODE. It still counts in the acquired /
 * released totals (LEAKWATCH_STATS) and as open in LEAKWATCH_METRICS. The
 * mark belongs to that acquisition only: once the handle is released
 * (PQfinish, mysql_close, pthread_join, a detached thread's exit), a new
 * handle that gets the same address is tracked as usual.
 *
 * Return values: 1 if the agent is loaded and tracks the handle (it is now
 * ignored); 0 if the agent is not loaded, the handle is NULL, or the agent
 * does not track it (released already, acquired before the agent started,
 * or its library switched off with LEAKWATCH_TRACK). A program need not
 * check them.
 *
 * Thread safety: every function may be called from any thread at any time,
 * including concurrently with the handle's own use. Cost: one hash-table
 * lookup under a per-shard lock. errno is left unchanged.
 *
 * A statically linked program cannot load the agent: there the functions
 * return 0.
 */
#ifndef LEAKWATCH_H_
#define LEAKWATCH_H_

#include <pthread.h>
#if !defined(__PIC__) && !defined(__PIE__)
#include <dlfcn.h>
#include <string.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Internal: spelled so that strict C++ warnings stay quiet in users' code
 * (-Wold-style-cast, -Wzero-as-null-pointer-constant); #undef'd below. */
#ifdef __cplusplus
#define LEAKWATCH_NULL_ nullptr
#define LEAKWATCH_TO_PTR_(x) reinterpret_cast<const void*>(x)
#else
#define LEAKWATCH_NULL_ ((void*)0)
#define LEAKWATCH_TO_PTR_(x) ((const void*)(x))
#endif

/* Exported by libleakwatch.so; weak, so its address is NULL when the agent
 * is not loaded. Call the wrappers below instead. */
extern int leakwatch_ignore(const void* handle) __attribute__((weak));

typedef int (*leakwatch_ignore_fn)(const void* handle);

#if defined(__PIC__) || defined(__PIE__)
/* Internal: the agent's leakwatch_ignore, or NULL if it is not loaded. */
static inline leakwatch_ignore_fn leakwatch_find_(void) {
  return leakwatch_ignore;
}
#else
/* Internal: position-dependent code sees the weak symbol as 0 for ever (see
 * above), so ask the dynamic linker. RTLD_DEFAULT is (void*)0 in glibc and
 * musl; <dlfcn.h> defines it only under _GNU_SOURCE. */
static inline leakwatch_ignore_fn leakwatch_find_(void) {
  leakwatch_ignore_fn fn;
  void* sym = dlsym(LEAKWATCH_NULL_, "leakwatch_ignore");
  memcpy(&fn, &sym, sizeof fn); /* object to function pointer, as POSIX does */
  return fn;
}
#endif

/* 1 if the leakwatch agent is loaded into this process, 0 if not. */
static inline int leakwatch_is_loaded(void) {
  return leakwatch_find_() != LEAKWATCH_NULL_ ? 1 : 0;
}

/* Marks a database client handle (PGconn*, PGresult*, PGcancel*, MYSQL*,
 * MYSQL_RES*, MYSQL_STMT*) as kept on purpose: it is never reported. Returns
 * 1 if the agent tracks it, 0 otherwise (see above). */
static inline int leakwatch_ignore_handle(const void* handle) {
  leakwatch_ignore_fn fn = leakwatch_find_();
  if (fn == LEAKWATCH_NULL_ || handle == LEAKWATCH_NULL_) return 0;
  return fn(handle);
}

/* Marks a thread as kept on purpose: it is never reported, whether it keeps
 * running or exits and is never joined. Returns 1 if the agent tracks it, 0
 * otherwise. */
static inline int leakwatch_ignore_thread(pthread_t thread) {
  leakwatch_ignore_fn fn = leakwatch_find_();
  if (fn == LEAKWATCH_NULL_) return 0;
  return fn(LEAKWATCH_TO_PTR_(thread)); /* pthread_t is an integer */
}

#undef LEAKWATCH_NULL_
#undef LEAKWATCH_TO_PTR_

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LEAKWATCH_H_ */

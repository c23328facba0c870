// Finding the real functions behind our hooks.
//
// A hook's real function is resolved lazily, on the hook's first call:
//   1. dlsym(RTLD_NEXT, name) — the usual case (the program links the library);
//   2. dlopen(soname, RTLD_NOLOAD) + dlsym, for each known soname of the
//      library — a library loaded privately (RTLD_LOCAL), as Python does;
//   3. every loaded object but ours (dl_iterate_phdr), for a copy under
//      another file name (wheels bundle libpq as libpq-<hash>.so.5).
// A candidate that lies inside libleakwatch itself is never taken. Once found,
// the pointer is cached; the library's code range is remembered so hooks can
// tell the library's calls to its own exported functions from the program's.
// If nothing is found the hook says so once on stderr and fails the call the
// way the library documents failure.
//
// Thread safety: Get() may race with itself; both resolve the same pointer.
// Hook-safe after the first resolution (a relaxed load).
#ifndef LEAKWATCH_INTERPOSE_REAL_H_
#define LEAKWATCH_INTERPOSE_REAL_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace leakwatch {

// Where a RealFunction keeps its pointer (null: to be resolved on the next
// call), listed in its library once resolved, so that an unload can clear
// it.
struct RealSlot {
  std::atomic<void*> ptr{nullptr};
  std::atomic<RealSlot*> next{nullptr};
  std::atomic<bool> listed{false};
};

// A client library: its sonames and, once a symbol was resolved in it, the
// address range of its code.
struct ClientLibrary {
  const char* label;           // "libpq"
  const char* const* sonames;  // nullptr-terminated
  std::atomic<uintptr_t> code_lo{0};
  std::atomic<uintptr_t> code_hi{0};
  // The real functions resolved in it (a list only ever pushed to): when
  // the library is unloaded (dlclose), their pointers are cleared, and each
  // is looked up again on its next call.
  std::atomic<RealSlot*> resolved{nullptr};

  // True if `pc` lies in the library's code (a call the library made itself).
  bool Contains(const void* pc) const {
    uintptr_t p = reinterpret_cast<uintptr_t>(pc);
    return p >= code_lo.load(std::memory_order_relaxed) &&
           p < code_hi.load(std::memory_order_relaxed);
  }
};

// The client libraries whose hooks exist (interpose/libpq.cc, mysql.cc),
// and libc itself (thread hooks, the exit point: interpose/pthread.cc,
// agent.cc).
extern ClientLibrary g_libpq;
extern ClientLibrary g_mysql;
extern ClientLibrary g_libc;

// After a dlclose: forgets what was resolved in client libraries that are no
// longer mapped (their code range is gone), so a library loaded again, at
// another address, is resolved again. Not for hooks' hot paths.
void ForgetUnloadedLibraries();

// Writes `text` to stderr in one write (a line the agent says about itself
// from the interpose layer); errors are ignored.
void WriteToStderr(const std::string& text);

// The slow path: resolves `name` in `library` into `slot` (listed in the
// library) and returns it; nullptr if not found (said once per symbol on
// stderr when `*warned` is false).
void* ResolveReal(const char* name, ClientLibrary* library,
                  std::atomic<bool>* warned, RealSlot* slot);

template <typename Fn>
class RealFunction {
 public:
  // An `optional` function is one the hooks can do without (it only adds
  // detail): not finding it is not said on stderr.
  constexpr RealFunction(const char* name, ClientLibrary* library,
                         bool optional = false)
      : name_(name), library_(library), warned_(optional) {}
  RealFunction(const RealFunction&) = delete;
  RealFunction& operator=(const RealFunction&) = delete;

  // One load once resolved.
  Fn Get() {
    void* p = slot_.ptr.load(std::memory_order_acquire);
    if (p == nullptr) [[unlikely]] {
      p = ResolveReal(name_, library_, &warned_, &slot_);
    }
    return reinterpret_cast<Fn>(p);
  }
  const char* name() const { return name_; }

 private:
  const char* name_;
  ClientLibrary* library_;
  RealSlot slot_;
  std::atomic<bool> warned_{false};
};

}  // namespace leakwatch

// Declares `real_<name>`, the RealFunction of `name` in the ClientLibrary
// `library`: the one way to declare a real function, used by each hook file's
// X-macro list of them. Its type is that of `name`'s declaration, or the
// optional third argument where that will not do (glibc declares some
// functions nonnull, an attribute a template argument cannot carry).
#define LW_DECLARE_REAL(library, name, ...)          \
  ::leakwatch::RealFunction<LW_REAL_TYPE_(           \
      __VA_ARGS__ __VA_OPT__(, ) decltype(&::name))> \
      real_##name(#name, &library);
// The same for a function the hooks can do without (RealFunction's
// `optional`).
#define LW_DECLARE_OPTIONAL_REAL(library, name)                             \
  ::leakwatch::RealFunction<decltype(&::name)> real_##name(#name, &library, \
                                                           true);
#define LW_REAL_TYPE_(type, ...) type

#endif  // LEAKWATCH_INTERPOSE_REAL_H_

// dlopen and dlclose.
//
// dlopen, for one purpose: a module loaded with RTLD_DEEPBIND (PHP's
// extensions) binds to its own libpq/libmariadb first, past our hooks; its
// import slots for the hooked functions are rewritten to the hooks once it is
// loaded (interpose/bind.h), and only a module that still cannot be reached
// (a slot that could not be written, a client library built into the module
// itself) is said in the log. glibc's dlopen looks at its caller (the return
// address) for the search path (DT_RPATH/DT_RUNPATH) and $ORIGIN. So every
// path here ends in a tail call to the real dlopen, which then sees the
// program's return address, not ours; the exception is a RTLD_DEEPBIND load
// where the caller does not matter (a name without `$`, and either a path or
// a caller without DT_RPATH/DT_RUNPATH), which is finished after loading. A
// RTLD_DEEPBIND load that depends on its caller stays unreached.
//
// dlclose: a client library that is unloaded and loaded again lands at
// another address; the real functions resolved before must be forgotten.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstring>
#include <memory>
#include <string>

#include "interpose/attach.h"
#include "interpose/bind.h"
#include "interpose/hook.h"
#include "interpose/real.h"

namespace leakwatch {
namespace {

const char* const kLibdlSonames[] = {"libc.so.6", "libdl.so.2", nullptr};
ClientLibrary g_libdl{"libc", kLibdlSonames};
// Spelled out without what glibc declares them with: dlclose's nonnull,
// which a template argument cannot carry, and noexcept (dlopen runs the
// loaded objects' constructors).
using DlopenFn = void* (*)(const char*, int);
using DlcloseFn = int (*)(void*);

#define LW_LIBDL_FUNCTIONS(X) X(dlopen, DlopenFn) X(dlclose, DlcloseFn)

#define LW_DECLARE_LIBDL_REAL(...) LW_DECLARE_REAL(g_libdl, __VA_ARGS__)
LW_LIBDL_FUNCTIONS(LW_DECLARE_LIBDL_REAL)
#undef LW_DECLARE_LIBDL_REAL

// True if the object containing `caller` has its own library search path,
// which glibc would use for a name without a slash.
bool CallerHasSearchPath(const void* caller) {
  Dl_info info;
  struct link_map* map = nullptr;
  int found =
      dladdr1(caller, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP);
  if (found == 0 || map == nullptr || map->l_ld == nullptr) {
    return true;  // unknown: assume it matters
  }
  for (const ElfW(Dyn)* d = map->l_ld; d->d_tag != DT_NULL; ++d) {
    if (d->d_tag == DT_RPATH || d->d_tag == DT_RUNPATH) return true;
  }
  return false;
}

// The client library whose entry point `handle`'s own scope resolves to a
// definition inside the loaded object itself, when that object is not the
// client library (a copy built into a module: its calls to it are its own,
// carried by no slot), or null. The library itself loaded this way is
// reached like any other (dlsym on its handle answers with the hooks).
const char* BuiltInClientLibrary(void* handle) {
  static const char* const kProbes[][2] = {{"PQconnectdb", "libpq"},
                                           {"mysql_init", "libmariadb"}};
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) {
    return nullptr;
  }
  const char* base =
      map->l_name != nullptr ? std::strrchr(map->l_name, '/') : nullptr;
  base = base != nullptr ? base + 1 : (map->l_name ? map->l_name : "");
  for (const char* library : {"libpq", "libmariadb", "libmysqlclient"}) {
    if (std::strncmp(base, library, std::strlen(library)) == 0) return nullptr;
  }
  for (const auto& probe : kProbes) {
    void* p = RealDlsym(handle, probe[0]);
    LoadedObject object;
    if (p != nullptr && FindLoadedObject(p, &object) &&
        object.bias == map->l_addr && object.dynamic == map->l_ld) {
      return probe[1];
    }
  }
  return nullptr;
}

// The objects loaded now, by dynamic section (at most kMaxObjects).
constexpr size_t kMaxObjects = 1024;
struct ObjectList {
  // Not initialized before Take fills them: a LoadedObject's `name = ""`
  // would put 1,024 pointers per list in the agent's initialized data, for
  // the loader to relocate at start-up, which writes all 40 KiB of it into
  // resident memory. Zeros stay in .bss, not resident until a deep-bound
  // load uses them.
  union Entry {
    constexpr Entry() : unused() {}
    char unused;
    LoadedObject object;
  };
  Entry entries[kMaxObjects];
  size_t count = 0;
  bool complete = true;

  const LoadedObject& operator[](size_t i) const { return entries[i].object; }
  void Take() {
    count = 0;
    complete = true;
    ForEachLoadedObject([this](const LoadedObject& object) {
      if (count == kMaxObjects) {
        complete = false;
        return false;
      }
      std::construct_at(&entries[count++].object, object);
      return true;
    });
  }
  bool Has(const LoadedObject& object) const {
    for (size_t i = 0; i < count; ++i) {
      if ((*this)[i].dynamic == object.dynamic) return true;
    }
    return false;
  }
};

// Loads are finished one at a time (the lists are large for a stack).
pthread_mutex_t g_deepbind_mu = PTHREAD_MUTEX_INITIALIZER;
ObjectList g_before, g_after;

// True if a dlopen(`file`, `mode`) from `caller` is an RTLD_DEEPBIND load
// that DlopenDeepbindChecked may make: one whose result does not depend on
// its caller.
bool IsCallerFreeDeepbind(const char* file, int mode, const void* caller) {
  return (mode & RTLD_DEEPBIND) && file != nullptr && !std::strchr(file, '$') &&
         (std::strchr(file, '/') || !CallerHasSearchPath(caller));
}

// Loads `file` and points the import slots of every object the load brought
// in (deep-bound, all of them) to the hooks.
__attribute__((noinline)) void* DlopenDeepbind(const char* file, int mode) {
  auto real = real_dlopen.Get();
  if (real == nullptr) return nullptr;
  pthread_mutex_lock(&g_deepbind_mu);
  int saved_errno = errno;
  g_before.Take();
  errno = saved_errno;
  void* handle = real(file, mode);
  saved_errno = errno;
  int failed = 0;
  if (handle != nullptr && g_before.complete) {
    g_after.Take();
    for (size_t i = 0; i < g_after.count; ++i) {
      if (!g_before.Has(g_after[i])) {
        RewriteImportSlots(g_after[i], &failed);
      }
    }
  }
  pthread_mutex_unlock(&g_deepbind_mu);
  const char* library =
      handle != nullptr ? BuiltInClientLibrary(handle) : nullptr;
  if (handle != nullptr && (library != nullptr || failed > 0)) {
    AttachReporter();
    Tracker::Get().Notice(
        "deepbind",
        std::string(file) + " was loaded with RTLD_DEEPBIND and " +
            (library != nullptr ? std::string("has its own copy of ") + library
                                : std::to_string(failed) +
                                      " of its calls could not be redirected") +
            ": those calls bind past the hooks and cannot be seen");
  }
  errno = saved_errno;
  return handle;
}

// Attached: loads `file`, then redirects the modules it brought in.
__attribute__((noinline)) void* DlopenAttached(const char* file, int mode) {
  auto real = real_dlopen.Get();
  if (real == nullptr) return nullptr;
  void* handle = real(file, mode);
  if (handle != nullptr) {
    int saved_errno = errno;
    struct link_map* map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr) {
      RedirectNewModules(map->l_ld);
    }
    errno = saved_errno;
  }
  return handle;
}

}  // namespace
}  // namespace leakwatch

LW_EXPORT void* dlopen(const char* file, int mode) {
  if (leakwatch::LoadedByAttach()) {
    // Attached: every module the load brings in is redirected as soon as it
    // returns, unless its result depends on the caller (then the watchdog
    // finds the new modules).
    if (!leakwatch::AgentInert() &&
        leakwatch::IsCallerFreeDeepbind(file, mode | RTLD_DEEPBIND,
                                        LW_CALLER)) {
      return leakwatch::DlopenAttached(file, mode);
    }
    auto real = leakwatch::real_dlopen.Get();
    if (real == nullptr) return nullptr;
    return real(file, mode);  // a tail call
  }
  if (leakwatch::IsCallerFreeDeepbind(file, mode, LW_CALLER)) {
    return leakwatch::DlopenDeepbind(file, mode);
  }
  auto real = leakwatch::real_dlopen.Get();
  if (real == nullptr) return nullptr;
  return real(file, mode);  // a tail call: glibc sees the program's caller
}

LW_EXPORT int dlclose(void* handle) {
  auto real = leakwatch::real_dlclose.Get();
  if (real == nullptr) return -1;
  int rc = real(handle);
  int saved_errno = errno;
  leakwatch::ForgetUnloadedLibraries();
  errno = saved_errno;
  return rc;
}

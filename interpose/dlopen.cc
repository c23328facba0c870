// dlopen and dlclose.
//
// dlopen, for one purpose: a client library loaded with RTLD_DEEPBIND binds
// to its own libpq/libmariadb first, past our hooks, so the agent says so
// once instead of staying silently blind. glibc's dlopen looks at its caller
// (the return address) for the search path (DT_RPATH/DT_RUNPATH) and
// $ORIGIN. So every path here ends in a tail call to the real dlopen, which
// then sees the program's return address, not ours; the exception is a
// RTLD_DEEPBIND load where the caller does not matter (a name without `$`,
// and either a path or a caller without DT_RPATH/DT_RUNPATH), which is
// checked after loading.
//
// dlclose: a client library that is unloaded and loaded again lands at
// another address; the real functions resolved before must be forgotten.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstring>
#include <string>

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

// True if `handle`'s own scope resolves a client library's entry point to a
// definition that is not ours: its calls bypass the hooks.
const char* BlindClientLibrary(void* handle) {
  static const char* const kProbes[][2] = {{"PQconnectdb", "libpq"},
                                           {"mysql_init", "libmariadb"}};
  for (const auto& probe : kProbes) {
    void* p = dlsym(handle, probe[0]);
    if (p == nullptr) continue;
    Dl_info info;
    Dl_info self;
    if (dladdr(p, &info) != 0 &&
        dladdr(reinterpret_cast<void*>(&BlindClientLibrary), &self) != 0 &&
        info.dli_fbase != self.dli_fbase) {
      return probe[1];
    }
  }
  return nullptr;
}

// True if a dlopen(`file`, `mode`) from `caller` is an RTLD_DEEPBIND load
// that DlopenDeepbindChecked may make: one whose result does not depend on
// its caller.
bool IsCallerFreeDeepbind(const char* file, int mode, const void* caller) {
  return (mode & RTLD_DEEPBIND) && file != nullptr && !std::strchr(file, '$') &&
         (std::strchr(file, '/') || !CallerHasSearchPath(caller));
}

__attribute__((noinline)) void* DlopenDeepbindChecked(const char* file,
                                                      int mode) {
  auto real = real_dlopen.Get();
  if (real == nullptr) return nullptr;
  void* handle = real(file, mode);
  if (handle == nullptr) return handle;
  int saved_errno = errno;
  if (const char* library = BlindClientLibrary(handle)) {
    WriteToStderr(std::string("leakwatch: ") + file +
                  " was loaded with RTLD_DEEPBIND: its calls to " + library +
                  " bind to that library directly and cannot be seen\n");
  }
  errno = saved_errno;
  return handle;
}

}  // namespace
}  // namespace leakwatch

LW_EXPORT void* dlopen(const char* file, int mode) {
  if (leakwatch::IsCallerFreeDeepbind(file, mode, LW_CALLER)) {
    return leakwatch::DlopenDeepbindChecked(file, mode);
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

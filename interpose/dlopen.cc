// dlopen, for one purpose: a client library loaded with RTLD_DEEPBIND binds
// to its own libpq/libmariadb first, past our hooks, so the agent says so
// once instead of staying silently blind.
//
// glibc's dlopen looks at its caller (the return address) for the search
// path (DT_RUNPATH) and $ORIGIN. So every path here ends in a tail call to
// the real dlopen, which then sees the program's return address, not ours;
// the one exception is a RTLD_DEEPBIND load by absolute or relative path
// without `$`, where the caller does not matter, and which is checked after
// loading.
#include <dlfcn.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "interpose/hook.h"
#include "interpose/real.h"

namespace leakwatch {
namespace {

const char* const kLibdlSonames[] = {"libc.so.6", "libdl.so.2", nullptr};
ClientLibrary g_libdl{"libc", kLibdlSonames};
RealFunction<void* (*)(const char*, int)> real_dlopen("dlopen", &g_libdl);

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

__attribute__((noinline)) void* DlopenDeepbindChecked(const char* file,
                                                      int mode) {
  auto real = real_dlopen.Get();
  if (real == nullptr) return nullptr;
  void* handle = real(file, mode);
  if (handle == nullptr) return handle;
  int saved_errno = errno;
  if (const char* library = BlindClientLibrary(handle)) {
    std::string msg = std::string("leakwatch: ") + file +
                      " was loaded with RTLD_DEEPBIND: its calls to " +
                      library + " bind to that library directly and cannot "
                      "be seen\n";
    ssize_t ignored = write(STDERR_FILENO, msg.data(), msg.size());
    (void)ignored;
  }
  errno = saved_errno;
  return handle;
}

}  // namespace
}  // namespace leakwatch

LW_EXPORT void* dlopen(const char* file, int mode) {
  if ((mode & RTLD_DEEPBIND) && file != nullptr && std::strchr(file, '/') &&
      !std::strchr(file, '$')) {
    return leakwatch::DlopenDeepbindChecked(file, mode);
  }
  auto real = leakwatch::real_dlopen.Get();
  if (real == nullptr) return nullptr;
  return real(file, mode);  // a tail call: glibc sees the program's caller
}

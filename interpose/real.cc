#include "interpose/real.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace leakwatch {
namespace {

uintptr_t SelfBase() {
  static uintptr_t base = [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&SelfBase), &info) == 0) return uintptr_t{0};
    return reinterpret_cast<uintptr_t>(info.dli_fbase);
  }();
  return base;
}

// True if `p` is a function outside libleakwatch.
bool Acceptable(void* p) {
  if (p == nullptr) return false;
  Dl_info info;
  if (dladdr(p, &info) == 0) return true;
  return reinterpret_cast<uintptr_t>(info.dli_fbase) != SelfBase();
}

void RememberCodeRange(void* fn, ClientLibrary* library) {
  if (library->code_hi.load(std::memory_order_relaxed) != 0) return;
  Dl_info info;
  if (dladdr(fn, &info) == 0) return;
  struct Ctx {
    uintptr_t base;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
  } ctx{reinterpret_cast<uintptr_t>(info.dli_fbase)};
  dl_iterate_phdr(
      [](struct dl_phdr_info* phdr, size_t, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (phdr->dlpi_addr != c->base) return 0;
        for (int i = 0; i < phdr->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = phdr->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          uintptr_t start = phdr->dlpi_addr + ph.p_vaddr;
          if (start < c->lo) c->lo = start;
          if (start + ph.p_memsz > c->hi) c->hi = start + ph.p_memsz;
        }
        return 1;
      },
      &ctx);
  if (ctx.hi == 0) return;
  library->code_lo.store(ctx.lo, std::memory_order_relaxed);
  library->code_hi.store(ctx.hi, std::memory_order_relaxed);
}

void* LookUpIn(const char* object, const char* name) {
  void* handle = dlopen(object, RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return nullptr;
  void* p = dlsym(handle, name);
  dlclose(handle);
  return Acceptable(p) ? p : nullptr;
}

void* Find(const char* name, ClientLibrary* library) {
  void* p = dlsym(RTLD_NEXT, name);
  if (Acceptable(p)) return p;
  for (const char* const* so = library->sonames; so && *so; ++so) {
    if ((p = LookUpIn(*so, name)) != nullptr) return p;
  }
  // Names first, then dlopen outside dl_iterate_phdr (which holds a loader
  // lock).
  std::vector<std::string> objects;
  dl_iterate_phdr(
      [](struct dl_phdr_info* phdr, size_t, void* data) -> int {
        auto* list = static_cast<std::vector<std::string>*>(data);
        if (phdr->dlpi_name != nullptr && phdr->dlpi_name[0] != '\0' &&
            phdr->dlpi_addr != SelfBase()) {
          list->emplace_back(phdr->dlpi_name);
        }
        return 0;
      },
      &objects);
  for (const std::string& object : objects) {
    if ((p = LookUpIn(object.c_str(), name)) != nullptr) return p;
  }
  return nullptr;
}

}  // namespace

void* ResolveReal(const char* name, ClientLibrary* library,
                  std::atomic<bool>* warned) {
  int saved_errno = errno;
  void* p = Find(name, library);
  if (p != nullptr) {
    RememberCodeRange(p, library);
  } else if (!warned->exchange(true)) {
    std::string msg = std::string("leakwatch: cannot find the real ") + name +
                      " (" + library->label +
                      ") in this process; the call fails as the library "
                      "documents failure\n";
    ssize_t ignored = write(STDERR_FILENO, msg.data(), msg.size());
    (void)ignored;
  }
  errno = saved_errno;
  return p;
}

}  // namespace leakwatch

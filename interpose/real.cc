#include "interpose/real.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tracker/stack.h"

namespace leakwatch {

const char* const kLibcSonames[] = {"libc.so.6", nullptr};
ClientLibrary g_libc{"libc", kLibcSonames};

namespace {

uintptr_t SelfBase() {
  static uintptr_t base = [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&SelfBase), &info) == 0) {
      return uintptr_t{0};
    }
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
  uintptr_t lo, hi;
  if (!FindCodeRange(fn, &lo, &hi)) return;
  library->code_lo.store(lo, std::memory_order_relaxed);
  library->code_hi.store(hi, std::memory_order_relaxed);
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

void WriteToStderr(const std::string& text) {
  ssize_t ignored = write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
}

void ForgetUnloadedLibraries() {
  for (ClientLibrary* library : {&g_libpq, &g_mysql}) {
    uintptr_t lo = library->code_lo.load(std::memory_order_relaxed);
    if (lo == 0) continue;
    uintptr_t new_lo, new_hi;
    if (FindCodeRange(reinterpret_cast<void*>(lo), &new_lo, &new_hi) &&
        new_lo == lo) {
      continue;  // still mapped where it was
    }
    library->code_lo.store(0, std::memory_order_relaxed);
    library->code_hi.store(0, std::memory_order_relaxed);
    for (RealSlot* slot = library->resolved.load(std::memory_order_acquire);
         slot != nullptr; slot = slot->next.load(std::memory_order_relaxed)) {
      slot->ptr.store(nullptr, std::memory_order_release);
    }
  }
}

void* ResolveReal(const char* name, ClientLibrary* library,
                  std::atomic<bool>* warned, RealSlot* slot) {
  int saved_errno = errno;
  void* p = Find(name, library);
  if (p != nullptr) {
    RememberCodeRange(p, library);
    slot->ptr.store(p, std::memory_order_release);
    if (!slot->listed.exchange(true, std::memory_order_acq_rel)) {
      RealSlot* head = library->resolved.load(std::memory_order_relaxed);
      do {
        slot->next.store(head, std::memory_order_relaxed);
      } while (!library->resolved.compare_exchange_weak(
          head, slot, std::memory_order_release, std::memory_order_relaxed));
    }
  } else if (!warned->exchange(true)) {
    WriteToStderr(std::string("leakwatch: cannot find the real ") + name +
                  " (" + library->label +
                  ") in this process; the call fails as the library "
                  "documents failure\n");
  }
  errno = saved_errno;
  return p;
}

}  // namespace leakwatch

#include "interpose/bind.h"

#include <dlfcn.h>
#include <errno.h>

#include <atomic>
#include <cstring>

#include "interpose/attach.h"
#include "interpose/hook.h"
#include "tracker/stack.h"

namespace leakwatch {
namespace {

using DlsymFn = void* (*)(void*, const char*);
using DlvsymFn = void* (*)(void*, const char*, const char*);

// libleakwatch's own object (load bias and dynamic section), found once.
std::atomic<uintptr_t> g_self_bias{0};
std::atomic<const ElfDyn*> g_self_dynamic{nullptr};
std::atomic<uintptr_t> g_self_lo{0}, g_self_hi{0};  // its code

}  // namespace
}  // namespace leakwatch

// Read by the assembly below; written once, before they are first needed.
extern "C" {
__attribute__((visibility("hidden"))) void* lw_real_dlsym = nullptr;
__attribute__((visibility("hidden"))) void* lw_real_dlvsym = nullptr;
__attribute__((visibility("hidden"))) void LwResolveDl();
__attribute__((visibility("hidden"))) void* LwDlsymOnHandle(void* handle,
                                                            const char* name);
__attribute__((visibility("hidden"))) void* LwDlvsymOnHandle(
    void* handle, const char* name, const char* version);
}

namespace leakwatch {
namespace {

bool FindSelf() {
  if (g_self_dynamic.load(std::memory_order_acquire) != nullptr) return true;
  LoadedObject self;
  if (!FindLoadedObject(reinterpret_cast<const void*>(&FindSelf), &self) ||
      self.dynamic == nullptr) {
    return false;
  }
  uintptr_t lo = 0, hi = 0;
  if (!FindCodeRange(reinterpret_cast<const void*>(&FindSelf), &lo, &hi)) {
    return false;
  }
  g_self_lo.store(lo, std::memory_order_relaxed);
  g_self_hi.store(hi, std::memory_order_relaxed);
  g_self_bias.store(self.bias, std::memory_order_relaxed);
  g_self_dynamic.store(self.dynamic, std::memory_order_release);
  return true;
}

bool InSelf(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return a >= g_self_lo.load(std::memory_order_relaxed) &&
         a < g_self_hi.load(std::memory_order_relaxed);
}

// The hook libleakwatch exports as `name`, or null.
void* HookNamed(const char* name) {
  if (!FindSelf()) return nullptr;
  ElfImage self(g_self_bias.load(std::memory_order_relaxed),
                g_self_dynamic.load(std::memory_order_relaxed));
  return self.Lookup(name);
}

// True if `handle` (a dlopen handle or link map) is in the program's own
// namespace: a copy of a library loaded with dlmopen elsewhere is another
// library, which the hooks (calling the copy in this namespace) must not
// stand for.
bool InBaseNamespace(void* handle) {
  Lmid_t lmid = LM_ID_BASE;
  return dlinfo(handle, RTLD_DI_LMID, &lmid) == 0 && lmid == LM_ID_BASE;
}

// What a lookup on `handle` (RTLD_DEFAULT: the caller's scope) that found
// `p` for `name`, asked from `caller`, returns: the hook of that name, unless
// the agent itself asked.
void* Redirect(void* handle, const char* name, void* p, const void* caller) {
  if (p == nullptr || name == nullptr || AgentInert() || !FindSelf() ||
      InSelf(caller) || InSelf(p)) {
    return p;
  }
  if (handle == RTLD_DEFAULT) {
    Dl_info info;
    void* map = nullptr;
    if (dladdr1(caller, &info, &map, RTLD_DL_LINKMAP) == 0 || map == nullptr ||
        !InBaseNamespace(map)) {
      return p;
    }
  } else if (!InBaseNamespace(handle)) {
    return p;
  }
  int saved_errno = errno;
  void* hook = HookNamed(name);
  errno = saved_errno;
  return hook != nullptr ? hook : p;
}

}  // namespace

void* RealDlsym(void* handle, const char* name) {
  if (lw_real_dlsym == nullptr) LwResolveDl();
  auto real = reinterpret_cast<DlsymFn>(
      __atomic_load_n(&lw_real_dlsym, __ATOMIC_ACQUIRE));
  return real != nullptr ? real(handle, name) : nullptr;
}

bool IsAgentObject(const LoadedObject& object) {
  return FindSelf() &&
         object.dynamic == g_self_dynamic.load(std::memory_order_relaxed);
}

int RewriteImportSlots(const LoadedObject& object, int* failed, SlotSaver saved,
                       void* arg) {
  if (object.dynamic == nullptr || IsAgentObject(object)) return 0;
  ElfImage image(object);
  int rewritten = 0;
  image.ForEachImportSlot([&](const char* name, void** slot) {
    void* hook = HookNamed(name);
    void* original = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (hook == nullptr || original == hook) return true;
    if (saved != nullptr && !saved(slot, original, hook, arg)) return true;
    if (WriteImportSlot(slot, hook, object.bias, object.phdr, object.phnum)) {
      ++rewritten;
    } else {
      ++*failed;
    }
    return true;
  });
  return rewritten;
}

}  // namespace leakwatch

extern "C" {

// Finds libc's dlsym and dlvsym in its symbol table (glibc before 2.34 keeps
// them in libdl).
void LwResolveDl() {
  if (__atomic_load_n(&lw_real_dlsym, __ATOMIC_ACQUIRE) != nullptr) return;
  void* found[2] = {nullptr, nullptr};
  leakwatch::ForEachLoadedObject([&](const leakwatch::LoadedObject& object) {
    const char* base = std::strrchr(object.name, '/');
    base = base != nullptr ? base + 1 : object.name;
    if (std::strncmp(base, "libc.so", 7) != 0 &&
        std::strncmp(base, "libdl.so", 8) != 0) {
      return true;
    }
    leakwatch::ElfImage image(object);
    if (found[0] == nullptr) found[0] = image.Lookup("dlsym");
    if (found[1] == nullptr) found[1] = image.Lookup("dlvsym");
    return found[0] == nullptr || found[1] == nullptr;
  });
  __atomic_store_n(&lw_real_dlvsym, found[1], __ATOMIC_RELEASE);
  __atomic_store_n(&lw_real_dlsym, found[0], __ATOMIC_RELEASE);
}

void* LwDlsymOnHandle(void* handle, const char* name) {
  const void* caller = __builtin_return_address(0);
  if (lw_real_dlsym == nullptr) LwResolveDl();
  auto real = reinterpret_cast<leakwatch::DlsymFn>(
      __atomic_load_n(&lw_real_dlsym, __ATOMIC_ACQUIRE));
  if (real == nullptr) return nullptr;
  return leakwatch::Redirect(handle, name, real(handle, name), caller);
}

void* LwDlvsymOnHandle(void* handle, const char* name, const char* version) {
  const void* caller = __builtin_return_address(0);
  if (lw_real_dlvsym == nullptr) LwResolveDl();
  auto real = reinterpret_cast<leakwatch::DlvsymFn>(
      __atomic_load_n(&lw_real_dlvsym, __ATOMIC_ACQUIRE));
  if (real == nullptr) return nullptr;
  // RTLD_DEFAULT comes here too (a versioned lookup never finds the hooks,
  // which have no version): the caller's scope is the program's global
  // scope, as ours, unless the caller was loaded with RTLD_DEEPBIND, where
  // its own copy comes first (the hook is the answer then all the more).
  return leakwatch::Redirect(handle, name, real(handle, name, version), caller);
}

}  // extern "C"

// dlsym(handle, name) and dlvsym(handle, name, version): RTLD_NEXT (-1), and
// with `default_to_real` (dlsym) RTLD_DEFAULT (0), jump to libc's function
// (resolved first if need be, the arguments kept); any other handle jumps to
// the C++ side above, whose return address is then still the program's.
// (dlsym's RTLD_DEFAULT finds the hooks first in the global scope by
// itself.)
#define LW_DL_ENTRY(fn, real, on_handle, default_to_real) \
  ".text\n"                                               \
  ".globl " #fn                                           \
  "\n"                                                    \
  ".type " #fn ", @function\n" #fn                        \
  ":\n"                                                   \
  ".cfi_startproc\n"                                      \
  "  testq %rdi, %rdi\n" default_to_real                  \
  "  cmpq $-1, %rdi\n"                                    \
  "  je 1f\n"                                             \
  "  jmp " #on_handle                                     \
  "\n"                                                    \
  "1:\n"                                                  \
  "  movq " #real                                         \
  "(%rip), %rax\n"                                        \
  "  testq %rax, %rax\n"                                  \
  "  jne 2f\n"                                            \
  "  pushq %rdi\n"                                        \
  ".cfi_adjust_cfa_offset 8\n"                            \
  "  pushq %rsi\n"                                        \
  ".cfi_adjust_cfa_offset 8\n"                            \
  "  pushq %rdx\n"                                        \
  ".cfi_adjust_cfa_offset 8\n"                            \
  "  call LwResolveDl\n"                                  \
  "  popq %rdx\n"                                         \
  ".cfi_adjust_cfa_offset -8\n"                           \
  "  popq %rsi\n"                                         \
  ".cfi_adjust_cfa_offset -8\n"                           \
  "  popq %rdi\n"                                         \
  ".cfi_adjust_cfa_offset -8\n"                           \
  "  movq " #real                                         \
  "(%rip), %rax\n"                                        \
  "  testq %rax, %rax\n"                                  \
  "  jne 2f\n"                                            \
  "  ret\n"                                               \
  "2:\n"                                                  \
  "  jmp *%rax\n"                                         \
  ".cfi_endproc\n"                                        \
  ".size " #fn ", .-" #fn "\n"

asm(LW_DL_ENTRY(dlsym, lw_real_dlsym, LwDlsymOnHandle, "  je 1f\n"));
asm(LW_DL_ENTRY(dlvsym, lw_real_dlvsym, LwDlvsymOnHandle, ""));

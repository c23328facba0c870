#include "tracker/stack.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>

// Types and register numbers only: libunwind is loaded with dlopen, and its
// functions are called through the pointers looked up there.
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <atomic>

namespace leakwatch {
namespace stack_internal {
std::atomic<UnwBacktraceFn> g_unwind{nullptr};
// [lo, hi) of our own executable segments; frames there are skipped.
std::atomic<uintptr_t> g_self_lo{0}, g_self_hi{0};
}  // namespace stack_internal

namespace {

using stack_internal::g_self_hi;
using stack_internal::g_self_lo;
using stack_internal::g_unwind;
using stack_internal::UnwBacktraceFn;

std::atomic<const char*> g_unwinder_name{"none"};

// libunwind's cursor interface (the exported names behind its macros), for
// CaptureStackWithSlots; null if missing.
struct CursorApi {
  int (*getcontext)(unw_context_t*) = nullptr;
  int (*init_local)(unw_cursor_t*, unw_context_t*) = nullptr;
  int (*step)(unw_cursor_t*) = nullptr;
  int (*get_reg)(unw_cursor_t*, unw_regnum_t, unw_word_t*) = nullptr;
};
CursorApi g_cursor;
std::atomic<bool> g_cursor_ready{false};

int GlibcBacktrace(void** buffer, int size) { return backtrace(buffer, size); }

}  // namespace

bool FindCodeRange(const void* addr, uintptr_t* lo, uintptr_t* hi) {
  Dl_info info;
  if (dladdr(addr, &info) == 0) return false;
  struct Ctx {
    uintptr_t base;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
  } ctx{reinterpret_cast<uintptr_t>(info.dli_fbase)};
  dl_iterate_phdr(
      [](struct dl_phdr_info* phdr, size_t, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        bool mine = false;
        for (int i = 0; i < phdr->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = phdr->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && phdr->dlpi_addr + ph.p_vaddr == c->base) {
            mine = true;
          }
        }
        if (!mine) return 0;
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
  if (ctx.hi == 0) return false;
  *lo = ctx.lo;
  *hi = ctx.hi;
  return true;
}

void InitStackCapture() {
  if (g_unwind.load(std::memory_order_acquire) != nullptr) return;
  UnwBacktraceFn fn = nullptr;
  const char* name = "glibc backtrace";
  if (void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL)) {
    fn = reinterpret_cast<UnwBacktraceFn>(dlsym(lib, "unw_backtrace"));
    if (fn != nullptr) name = "libunwind";
    CursorApi api;
    api.getcontext = reinterpret_cast<decltype(api.getcontext)>(
        dlsym(lib, "_Ux86_64_getcontext"));
    api.init_local = reinterpret_cast<decltype(api.init_local)>(
        dlsym(lib, "_ULx86_64_init_local"));
    api.step =
        reinterpret_cast<decltype(api.step)>(dlsym(lib, "_ULx86_64_step"));
    api.get_reg = reinterpret_cast<decltype(api.get_reg)>(
        dlsym(lib, "_ULx86_64_get_reg"));
    if (fn != nullptr && api.getcontext && api.init_local && api.step &&
        api.get_reg) {
      g_cursor = api;
      g_cursor_ready.store(true, std::memory_order_release);
    }
  }
  if (fn == nullptr) fn = &GlibcBacktrace;
  void* warm[kMaxFrames];
  fn(warm, kMaxFrames);  // the first unwind loads caches; pay for it here
  g_unwinder_name.store(name, std::memory_order_relaxed);
  g_unwind.store(fn, std::memory_order_release);
}

const char* StackUnwinderName() {
  return g_unwinder_name.load(std::memory_order_relaxed);
}

void SkipFramesInModuleOf(const void* addr) {
  uintptr_t lo, hi;
  if (!FindCodeRange(addr, &lo, &hi)) return;
  g_self_lo.store(lo, std::memory_order_relaxed);
  g_self_hi.store(hi, std::memory_order_relaxed);
}

int CaptureStackWithSlots(uintptr_t anchor, uintptr_t* frames,
                          uint32_t* offsets, int max_frames) {
  if (!g_cursor_ready.load(std::memory_order_acquire) || max_frames <= 0) {
    return -1;
  }
  unw_context_t context;
  unw_cursor_t cursor;
  if (g_cursor.getcontext(&context) != 0 ||
      g_cursor.init_local(&cursor, &context) != 0) {
    return -1;
  }
  // Walk out to the frame whose return address is stored at `anchor` (the
  // hook's caller), then record each frame and where its return address sat.
  int n = 0;
  bool found = false;
  for (int steps = 0; steps < kMaxFrames + 16 && n < max_frames; ++steps) {
    if (g_cursor.step(&cursor) <= 0) break;
    unw_word_t ip = 0, sp = 0;
    if (g_cursor.get_reg(&cursor, UNW_REG_IP, &ip) != 0 ||
        g_cursor.get_reg(&cursor, UNW_REG_SP, &sp) != 0 || ip == 0) {
      break;
    }
    // After a step, this frame's return address was read from the slot just
    // below the stack pointer it resumes with (x86-64: the CFA - 8).
    uintptr_t slot = static_cast<uintptr_t>(sp) - sizeof(uintptr_t);
    if (!found) {
      if (slot != anchor) continue;
      found = true;
    }
    if (slot < anchor || slot - anchor > UINT32_MAX) break;
    // Each slot lies above the one before (the cache checks the last one
    // against the stack's end for all).
    if (n > 0 && slot - anchor <= offsets[n - 1]) break;
    frames[n] = static_cast<uintptr_t>(ip);
    offsets[n] = static_cast<uint32_t>(slot - anchor);
    ++n;
  }
  return found ? n : -1;
}

namespace stack_internal {

// The calling thread's stack, [lo, hi); both 0 until asked, lo = hi = 1 if
// it cannot be known.
__attribute__((tls_model("initial-exec"))) __thread uintptr_t t_stack_lo = 0;
__attribute__((tls_model("initial-exec"))) __thread uintptr_t t_stack_hi = 0;

bool FindStackBounds(uintptr_t* lo, uintptr_t* hi) {
  if (t_stack_hi == 0) {
    t_stack_lo = t_stack_hi = 1;  // unknown, unless found below
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size > 0) {
        t_stack_lo = reinterpret_cast<uintptr_t>(addr);
        t_stack_hi = t_stack_lo + size;
      }
      pthread_attr_destroy(&attr);
    }
  }
  *lo = t_stack_lo;
  *hi = t_stack_hi;
  return t_stack_hi > t_stack_lo;
}

}  // namespace stack_internal

}  // namespace leakwatch

#include "tracker/stack.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include <atomic>

namespace leakwatch {
namespace {

using UnwBacktraceFn = int (*)(void**, int);

std::atomic<UnwBacktraceFn> g_unwind{nullptr};
std::atomic<const char*> g_unwinder_name{"none"};
// [lo, hi) of our own executable segments; frames there are skipped.
std::atomic<uintptr_t> g_self_lo{0}, g_self_hi{0};

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

bool IsAgentAddress(uintptr_t pc) {
  return pc >= g_self_lo.load(std::memory_order_relaxed) &&
         pc < g_self_hi.load(std::memory_order_relaxed);
}

int CaptureStack(uintptr_t* frames, int max_frames) {
  UnwBacktraceFn fn = g_unwind.load(std::memory_order_acquire);
  if (fn == nullptr || max_frames <= 0) return 0;
  // Room for our own frames (capture, tracker, hook) that are dropped below.
  constexpr int kSlack = 8;
  void* raw[kMaxFrames + kSlack];
  int want = max_frames + kSlack;
  if (want > kMaxFrames + kSlack) want = kMaxFrames + kSlack;
  int n = fn(raw, want);
  int skip = 0;
  while (skip < n && IsAgentAddress(reinterpret_cast<uintptr_t>(raw[skip]))) {
    ++skip;
  }
  int out = 0;
  for (int i = skip; i < n && out < max_frames; ++i) {
    frames[out++] = reinterpret_cast<uintptr_t>(raw[i]);
  }
  return out;
}

}  // namespace leakwatch

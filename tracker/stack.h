// Capturing the caller's stack on the hot path.
//
// The unwinder is libunwind's unw_backtrace (about 10 ns a frame), loaded
// privately with dlopen(RTLD_LOCAL): linking libunwind.so.8 would put its
// _Unwind_* symbols in the global scope and hijack C++ exceptions of code the
// host loads later. Without libunwind, glibc's backtrace() is used.
//
// Thread safety: CaptureStack may be called from any thread, from a hook, after
// InitStackCapture() has returned (it falls back to no frames before).
#ifndef LEAKWATCH_TRACKER_STACK_H_
#define LEAKWATCH_TRACKER_STACK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace leakwatch {

inline constexpr int kMaxFrames = 64;

// Loads the unwinder and warms it up (the first unwind in a process is slow).
// Idempotent; not async-signal-safe (it may dlopen).
void InitStackCapture();

// Name of the unwinder in use: "libunwind", "glibc backtrace" or "none".
const char* StackUnwinderName();

namespace stack_internal {
using UnwBacktraceFn = int (*)(void**, int);
extern std::atomic<UnwBacktraceFn> g_unwind;
extern std::atomic<uintptr_t> g_self_lo, g_self_hi;
}  // namespace stack_internal

// True if `pc` lies in the module given to SkipFramesInModuleOf.
inline bool IsAgentAddress(uintptr_t pc) {
  return pc >= stack_internal::g_self_lo.load(std::memory_order_relaxed) &&
         pc < stack_internal::g_self_hi.load(std::memory_order_relaxed);
}

// Writes up to `max_frames` return addresses of the caller's stack to `frames`,
// leaving out the leading frames of the skipped module (leakwatch), and returns
// how many were written. Never fails: returns 0 if nothing could be captured.
//
// Always inlined: every agent frame between the program and the unwinder is
// walked and thrown away (~70 instructions each with libunwind), so a hook
// that captures through inlined helpers pays for its own frame only.
__attribute__((always_inline)) inline int CaptureStack(uintptr_t* frames,
                                                       int max_frames) {
  stack_internal::UnwBacktraceFn fn =
      stack_internal::g_unwind.load(std::memory_order_acquire);
  if (fn == nullptr || max_frames <= 0) return 0;
  // Room for the agent's own frames, dropped below: the hook, and on colder
  // paths a helper or two.
  constexpr int kSlack = 4;
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

// Captures the stack from the frame that returns to the address stored at
// `anchor` (the stack slot holding a hook's return address) outward: up to
// `max_frames` return addresses in `frames`, and in `offsets` where each was
// stored, as a distance above `anchor` (increasing). Returns the number of
// frames, or -1 if libunwind's cursor interface is missing or no frame matched
// `anchor`. Slower than CaptureStack; it feeds a cache that validates a stack
// by reading those slots (Tracker::CaptureStackIdAt).
int CaptureStackWithSlots(uintptr_t anchor, uintptr_t* frames,
                          uint32_t* offsets, int max_frames);

// The calling thread's stack as [lo, hi), found once per thread
// (pthread_getattr_np); false if it cannot be known.
namespace stack_internal {
extern __attribute__((tls_model("initial-exec"))) __thread uintptr_t t_stack_lo;
extern __attribute__((tls_model("initial-exec"))) __thread uintptr_t t_stack_hi;
bool FindStackBounds(uintptr_t* lo, uintptr_t* hi);
}  // namespace stack_internal
inline bool CurrentStackBounds(uintptr_t* lo, uintptr_t* hi) {
  if (stack_internal::t_stack_hi == 0) [[unlikely]] {
    return stack_internal::FindStackBounds(lo, hi);
  }
  *lo = stack_internal::t_stack_lo;
  *hi = stack_internal::t_stack_hi;
  return *hi > *lo;
}

// Makes CaptureStack drop the leading frames that lie in the code of the
// object containing `addr` (the agent calls it with one of its own functions;
// unit tests, which link the tracker into the test binary, do not).
void SkipFramesInModuleOf(const void* addr);

// The [lo, hi) range of the executable segments of the loaded object that
// contains `addr`; false if there is none. Not async-signal-safe (dladdr,
// dl_iterate_phdr).
bool FindCodeRange(const void* addr, uintptr_t* lo, uintptr_t* hi);

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_STACK_H_

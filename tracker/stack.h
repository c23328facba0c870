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

#include <cstddef>
#include <cstdint>

namespace leakwatch {

inline constexpr int kMaxFrames = 64;

// Loads the unwinder and warms it up (the first unwind in a process is slow).
// Idempotent; not async-signal-safe (it may dlopen).
void InitStackCapture();

// Name of the unwinder in use: "libunwind", "glibc backtrace" or "none".
const char* StackUnwinderName();

// Writes up to `max_frames` return addresses of the caller's stack to `frames`,
// leaving out the leading frames of the skipped module (leakwatch), and returns
// how many were written. Never fails: returns 0 if nothing could be captured.
int CaptureStack(uintptr_t* frames, int max_frames);

// Makes CaptureStack drop the leading frames that lie in the code of the
// object containing `addr` (the agent calls it with one of its own functions;
// unit tests, which link the tracker into the test binary, do not).
void SkipFramesInModuleOf(const void* addr);

// The [lo, hi) range of the executable segments of the loaded object that
// contains `addr`; false if there is none. Not async-signal-safe (dladdr,
// dl_iterate_phdr).
bool FindCodeRange(const void* addr, uintptr_t* lo, uintptr_t* hi);

// True if `pc` lies in the module given to SkipFramesInModuleOf.
bool IsAgentAddress(uintptr_t pc);

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_STACK_H_

// Script frames in acquire stacks: the file, function and line of the
// Python, Ruby, Perl or PHP code that was running when a hook was called.
//
// A hook running on a thread that executes a script interpreter captures the
// native stack as usual; then the interpreter's reader (ScriptReader, one
// per language, interpose/script_*.cc) walks the calling thread's own
// interpreter frames. Each frame is described once (file, function, line),
// interned as a string, and stands in the stack as a pseudo return address
// (kScriptFrameTag | string id: a non-canonical address, never a real one)
// where the interpreter's eval loop stands in the native stack. Two script
// lines are therefore two stacks, two sites; the symbolizer turns the pseudo
// address back into the frame at report time.
//
// Thread safety: a reader's functions are called from hooks on any thread,
// concurrently: they read only the calling thread's interpreter state, never
// take the interpreter's lock (GIL, GVL), never allocate, never call code
// that can run script code, and never block. The tracker keeps errno
// around them.
#ifndef LEAKWATCH_TRACKER_SCRIPT_STACK_H_
#define LEAKWATCH_TRACKER_SCRIPT_STACK_H_

#include <cstddef>
#include <cstdint>

namespace leakwatch {

inline constexpr uintptr_t kScriptFrameTag = uintptr_t{0x5c51} << 48;
inline constexpr bool IsScriptFrame(uintptr_t pc) {
  return (pc >> 48) == 0x5c51;
}
inline constexpr uint32_t ScriptFrameStringId(uintptr_t pc) {
  return static_cast<uint32_t>(pc);
}

// One frame of the running script as a reader's walk sees it: enough to
// know it again (a per-thread cache of descriptions keys on all three).
// A walk sets every field (no initializers: the tracker's array of them is
// on the hook's stack, not zeroed on each call).
struct ScriptFrameRef {
  uintptr_t code;   // the interpreter's code unit (PyCodeObject*, ...)
  uintptr_t where;  // the position in it (instruction pointer, line)
  uintptr_t check;  // more identity, against reuse of the addresses
  // The outermost script frame run by one native call of the eval loop
  // (Python's entry frames); readers that cannot tell set it false and all
  // their frames stand at the innermost eval-loop frame.
  bool boundary;
};

// What a frame says, for a cache miss. Strings are NUL-terminated and cut to
// fit; line 0 = unknown.
struct ScriptFrameText {
  char file[256] = {};
  char function[128] = {};
  int line = 0;
};

inline constexpr int kMaxScriptFrames = 48;
inline constexpr int kMaxEvalRanges = 4;

struct ScriptReader {
  const char* language = nullptr;  // "python", "ruby", "perl", "php"
  // The calling thread's script frames, innermost first, at most `max`;
  // 0 if the thread is running no script now (or cannot be read).
  int (*walk)(ScriptFrameRef* frames, int max) = nullptr;
  // File, function and line of one frame walked on this thread just now;
  // false if it cannot be read.
  bool (*describe)(const ScriptFrameRef& frame, ScriptFrameText* out) = nullptr;
  // The native code of the interpreter's eval loop ([lo, hi), unused = 0):
  // the script frames take the place of these native frames.
  uintptr_t eval_lo[kMaxEvalRanges] = {};
  uintptr_t eval_hi[kMaxEvalRanges] = {};
};

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_SCRIPT_STACK_H_

// The readers of script frames, one per interpreter (tracker/script_stack.h):
// interpose/script_python.cc, script_ruby.cc, script_perl.cc, script_php.cc.
//
// Each Init function is called once, as the agent starts in a process
// recognised as that interpreter (interpose/interpreter.cc). It finds what it
// needs in the running interpreter (exported symbols, the version), fills
// `reader` and returns true; or returns false with `why_not` set to the one
// line the log says (the interpreter's version is not one it can read: the
// stacks stay native). Not hook-safe (it may use dlsym and allocate).
#ifndef LEAKWATCH_INTERPOSE_SCRIPT_H_
#define LEAKWATCH_INTERPOSE_SCRIPT_H_

#include <cstdint>
#include <string>

#include "tracker/script_stack.h"

namespace leakwatch {

// The code of the exported function `name` as [lo, hi), from its symbol's
// size in the object that defines it; false (lo, hi untouched) if unknown.
// Not hook-safe.
bool ExportedFunctionRange(const char* name, uintptr_t* lo, uintptr_t* hi);

// For the readers' walks: an address worth following (not null, past the
// first page, in user space, aligned to `align`), and the T stored at one.
inline bool PlausibleAddress(uintptr_t p, uintptr_t align = 8) {
  return p >= 4096 && p < (uintptr_t{1} << 47) && (p & (align - 1)) == 0;
}
template <typename T>
inline T LoadAt(uintptr_t address) {
  T value;
  __builtin_memcpy(&value, reinterpret_cast<const void*>(address),
                   sizeof value);
  return value;
}

bool InitPythonReader(ScriptReader* reader, std::string* why_not);
bool InitRubyReader(ScriptReader* reader, std::string* why_not);
bool InitPerlReader(ScriptReader* reader, std::string* why_not);
bool InitPhpReader(ScriptReader* reader, std::string* why_not);

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_SCRIPT_H_

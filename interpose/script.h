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

bool InitPythonReader(ScriptReader* reader, std::string* why_not);
bool InitRubyReader(ScriptReader* reader, std::string* why_not);
bool InitPerlReader(ScriptReader* reader, std::string* why_not);
bool InitPhpReader(ScriptReader* reader, std::string* why_not);

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_SCRIPT_H_

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

#include <cstddef>
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

// Builds a frame's file or function in a fixed buffer: appends are cut to
// fit (and at a NUL), the buffer always NUL-terminated. Hook-safe.
class ScriptText {
 public:
  ScriptText(char* buffer, size_t size) : buffer_(buffer), size_(size) {
    buffer_[0] = '\0';
  }
  ScriptText(const ScriptText&) = delete;
  ScriptText& operator=(const ScriptText&) = delete;

  void Clear() {
    length_ = 0;
    buffer_[0] = '\0';
  }
  void Append(const char* s, size_t n) {
    for (size_t i = 0; i < n && s[i] != '\0' && length_ + 1 < size_; ++i) {
      buffer_[length_++] = s[i];
    }
    buffer_[length_] = '\0';
  }
  void Append(const char* s) { Append(s, size_); }  // up to its NUL
  // Appends all `n` bytes, or nothing if they do not fit (a UTF-8
  // character is never cut); false if they did not.
  bool AppendWhole(const char* s, size_t n) {
    if (length_ + n >= size_) return false;
    Append(s, n);
    return true;
  }

 private:
  char* buffer_;
  size_t size_;
  size_t length_ = 0;
};

bool InitPythonReader(ScriptReader* reader, std::string* why_not);
bool InitRubyReader(ScriptReader* reader, std::string* why_not);
bool InitPerlReader(ScriptReader* reader, std::string* why_not);
bool InitPhpReader(ScriptReader* reader, std::string* why_not);

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_SCRIPT_H_

// Turns return addresses into function names, modules and source lines, at
// report time only (never on the hook path).
//
// Backend: elfutils libdwfl, loaded privately with dlopen(RTLD_LOCAL) the first
// time a report needs it, so processes that never report pay nothing and the
// host's global symbol scope is untouched. libdwfl reads each module's full
// symbol table (.symtab, so `static` functions have names too) and, where
// debug info exists, file:line. If libdw cannot be loaded, dladdr() gives the
// module and the dynamic symbol.
//
// Thread safety: not thread-safe; the report module serialises its use.
// Results are cached by address.
#ifndef LEAKWATCH_REPORT_SYMBOLIZER_H_
#define LEAKWATCH_REPORT_SYMBOLIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace leakwatch {

struct SymbolizedFrame {
  uintptr_t pc = 0;             // the return address as captured
  std::string function;         // demangled; empty if unknown
  std::string module;           // full path of the object; empty if unknown
  uintptr_t module_offset = 0;  // pc - module load base
  std::string file;             // source file; empty if no debug info
  int line = 0;                 // 0 if unknown
};

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Symbolizes a return address (looks up pc - 1 so the call instruction,
  // not the next one, is described). Never fails: fields it cannot fill stay
  // empty. The reference stays valid until the Symbolizer is destroyed.
  const SymbolizedFrame& Symbolize(uintptr_t pc);

  // Which backend is in use: "libdwfl" or "dladdr".
  const char* backend() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::unordered_map<uintptr_t, std::unique_ptr<SymbolizedFrame>> cache_;
};

// Demangles a C++ symbol and drops a symbol-version suffix ("@@GLIBC_2.34");
// a name that is not mangled is returned without the suffix.
std::string Demangle(const char* name);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_SYMBOLIZER_H_

// Turns return addresses into function names, modules and source lines, at
// report time only (never on the hook path).
//
// Backend: elfutils libdwfl, loaded privately with dlopen(RTLD_LOCAL) the first
// time a report needs it, so processes that never report pay nothing and the
// host's global symbol scope is untouched. libdwfl reads each module's full
// symbol table (.symtab, so `static` functions have names too) and, where
// debug info exists, file:line and the inlined calls containing the address.
// If libdw cannot be loaded, dladdr() gives the module and the dynamic symbol.
//
// Thread safety: not thread-safe; the report module serialises its use.
// Results are cached by address.
#ifndef LEAKWATCH_REPORT_SYMBOLIZER_H_
#define LEAKWATCH_REPORT_SYMBOLIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tracker/depot.h"

namespace leakwatch {

struct SymbolizedFrame {
  uintptr_t pc = 0;             // the return address as captured
  std::string function;         // demangled; empty if unknown
  std::string module;           // full path of the object; empty if unknown
  uintptr_t module_offset = 0;  // pc - module load base
  std::string file;             // source file; empty if no debug info
  int line = 0;                 // 0 if unknown
  // True if this function was inlined into the next frame of the same pc
  // (SymbolizeInlined): file:line is then in this function, and the next
  // frame's file:line is the call site it was inlined at.
  bool inlined = false;
  // A script frame (tracker/script_stack.h): the interpreter's language
  // ("python"...), with function, file and line; empty for native frames.
  std::string script;
};

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Symbolizes a return address (looks up pc - 1 so the call instruction,
  // not the next one, is described) as source-level frames, innermost first,
  // the way `addr2line -i` prints them: each function inlined at pc (inlined
  // set; function is the inlined function's name, file:line the position in
  // it) and last the function that really contains pc (inlined false;
  // file:line the call site of the outermost inlined call, or the line table's
  // position if nothing is inlined there). Without debug info the result is
  // that one real frame. Every frame carries the same pc, module and
  // module_offset. Never empty and never fails: fields it cannot fill stay
  // empty. The reference stays valid until the Symbolizer is destroyed.
  const std::vector<SymbolizedFrame>& SymbolizeInlined(uintptr_t pc);

  // The innermost source-level frame of pc: SymbolizeInlined(pc).front()
  // (the function containing pc when nothing is inlined there). Same
  // lifetime as above.
  const SymbolizedFrame& Symbolize(uintptr_t pc);

  // Which backend is in use: "libdwfl" or "dladdr".
  const char* backend() const;

  // Where script frames' descriptions are interned (the tracker's strings);
  // without it a script frame is unknown.
  void set_strings(Depot<char>* strings) { strings_ = strings; }

 private:
  struct Impl;
  SymbolizedFrame DescribeScriptFrame(uintptr_t pc) const;
  std::unique_ptr<Impl> impl_;
  Depot<char>* strings_ = nullptr;
  // Per pc; never empty. Elements of an unordered_map keep their address.
  std::unordered_map<uintptr_t, std::vector<SymbolizedFrame>> cache_;
};

// True if a script frame's file is the interpreter's or an installed
// package's (site-packages, Perl's and Ruby's library directories, PHP's
// include path under /usr/share/php, Python's "<frozen ...>" modules), not
// the program's own.
bool IsLibraryScript(std::string_view file);

// Demangles a C++ symbol and drops a symbol-version suffix ("@@GLIBC_2.34");
// a name that is not mangled is returned without the suffix.
std::string Demangle(const char* name);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_SYMBOLIZER_H_

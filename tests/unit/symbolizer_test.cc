// Tests for report/symbolizer.h. Built with -g -O0 so that this file's own
// functions have .symtab entries and line info.

#include "report/symbolizer.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

// Returns its own return address: a pc inside the calling function, just
// after the call instruction (what a captured stack holds).
[[gnu::noinline]] static uintptr_t ReturnAddressOfCall() {
  uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  asm volatile("" ::: "memory");  // not a tail call
  return pc;
}

// Internal linkage: its name is in .symtab only, never in .dynsym.
[[gnu::noinline]] static uintptr_t StaticFrame(int* line) {
  *line = __LINE__ + 1;  // the line of the call below
  uintptr_t pc = ReturnAddressOfCall();
  asm volatile("" ::: "memory");  // keeps the call from being a tail call
  return pc;
}

// Inlined even at -O0 (always_inline), so the pc it returns lies in an
// inlined copy of it: the debug info has a DW_TAG_inlined_subroutine there.
// The line numbers are those of the calls, where the captured pc points.
[[gnu::always_inline]] static inline uintptr_t InlinedLeaf(int* leaf_line) {
  *leaf_line = __LINE__ + 1;
  uintptr_t pc = ReturnAddressOfCall();
  asm volatile("" ::: "memory");
  return pc;
}

[[gnu::noinline]] static uintptr_t CallsInlinedLeaf(int* leaf_line,
                                                    int* call_line) {
  *call_line = __LINE__ + 1;
  uintptr_t pc = InlinedLeaf(leaf_line);
  asm volatile("" ::: "memory");
  return pc;
}

// Two levels: InlinedLeaf inlined into InlinedMiddle, inlined into
// CallsInlinedMiddle. In a namespace, without a linkage name (internal
// linkage): the symbolizer qualifies the DWARF name itself.
namespace {
[[gnu::always_inline]] inline uintptr_t InlinedMiddle(int* leaf_line,
                                                      int* mid_line) {
  *mid_line = __LINE__ + 1;
  uintptr_t pc = InlinedLeaf(leaf_line);
  asm volatile("" ::: "memory");
  return pc;
}
}  // namespace

[[gnu::noinline]] static uintptr_t CallsInlinedMiddle(int* leaf_line,
                                                      int* mid_line,
                                                      int* call_line) {
  *call_line = __LINE__ + 1;
  uintptr_t pc = InlinedMiddle(leaf_line, mid_line);
  asm volatile("" ::: "memory");
  return pc;
}

namespace symbolizer_test_ns {
[[gnu::noinline]] uintptr_t Func(int x) {
  static_cast<void>(x);
  uintptr_t pc = ReturnAddressOfCall();
  asm volatile("" ::: "memory");  // keeps the call from being a tail call
  return pc;
}
}  // namespace symbolizer_test_ns

namespace leakwatch {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ExePath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

uintptr_t LoadBaseOf(uintptr_t addr) {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(addr), &info) == 0) return 0;
  return reinterpret_cast<uintptr_t>(info.dli_fbase);
}

bool LibdwAvailable() {
  void* h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return false;
  dlclose(h);
  return true;
}

// printf's address in libc itself (not an interceptor's, as under ASan).
uintptr_t LibcPrintf() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  void* sym = libc != nullptr ? dlsym(libc, "printf") : nullptr;
  return reinterpret_cast<uintptr_t>(sym);
}

bool ProcessMapsContain(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

void ExpectEmpty(const SymbolizedFrame& f) {
  EXPECT_EQ(f.function, "");
  EXPECT_EQ(f.module, "");
  EXPECT_EQ(f.module_offset, 0u);
  EXPECT_EQ(f.file, "");
  EXPECT_EQ(f.line, 0);
}

TEST(SymbolizerTest, UsesLibdwflWhenLibdwIsInstalled) {
  if (!LibdwAvailable()) GTEST_SKIP() << "libdw.so.1 not installed";
  Symbolizer symbolizer;
  EXPECT_STREQ(symbolizer.backend(), "libdwfl");
}

TEST(SymbolizerTest, StaticFunctionGetsNameModuleFileAndLine) {
  if (!LibdwAvailable()) GTEST_SKIP() << "needs libdw for .symtab and lines";
  int line = 0;
  uintptr_t pc = StaticFrame(&line);
  Symbolizer symbolizer;
  const SymbolizedFrame& f = symbolizer.Symbolize(pc);

  EXPECT_EQ(f.pc, pc);
  EXPECT_EQ(f.function, "StaticFrame(int*)");
  EXPECT_EQ(f.module, ExePath());
  EXPECT_EQ(f.module_offset, pc - LoadBaseOf(pc));
  EXPECT_TRUE(EndsWith(f.file, "symbolizer_test.cc")) << f.file;
  EXPECT_NEAR(f.line, line, 2);

  // The name came from .symtab: the dynamic symbol table does not have it.
  Dl_info info;
  ASSERT_NE(dladdr(reinterpret_cast<void*>(pc - 1), &info), 0);
  EXPECT_TRUE(info.dli_sname == nullptr ||
              std::string(info.dli_sname).find("StaticFrame") ==
                  std::string::npos);
}

TEST(SymbolizerTest, NamespacedFunctionIsDemangledWithArguments) {
  uintptr_t pc = symbolizer_test_ns::Func(1);
  Symbolizer symbolizer;
  const SymbolizedFrame& f = symbolizer.Symbolize(pc);
  if (std::string(symbolizer.backend()) != "libdwfl") {
    GTEST_SKIP() << "dladdr has no names for the executable's functions";
  }
  EXPECT_EQ(f.function, "symbolizer_test_ns::Func(int)");
  EXPECT_EQ(f.module, ExePath());
  EXPECT_TRUE(EndsWith(f.file, "symbolizer_test.cc")) << f.file;
  EXPECT_GT(f.line, 0);
}

// A pc in an inlined call expands innermost first, as addr2line -i prints
// it: the inlined function at the line inside it, then the function it was
// inlined into at the line of the call.
TEST(SymbolizerTest, InlinedCallGivesInlinedFrameThenCaller) {
  if (!LibdwAvailable()) GTEST_SKIP() << "needs libdw for inlined frames";
  int leaf_line = 0;
  int call_line = 0;
  uintptr_t pc = CallsInlinedLeaf(&leaf_line, &call_line);
  Symbolizer symbolizer;
  const std::vector<SymbolizedFrame>& frames = symbolizer.SymbolizeInlined(pc);
  ASSERT_EQ(frames.size(), 2u);

  const SymbolizedFrame& inner = frames[0];
  EXPECT_TRUE(inner.inlined);
  // GCC gives a function with internal linkage no DW_AT_linkage_name: the
  // DWARF name, without parameter types (as addr2line -i prints it).
  EXPECT_EQ(inner.function, "InlinedLeaf");
  EXPECT_TRUE(EndsWith(inner.file, "symbolizer_test.cc")) << inner.file;
  EXPECT_EQ(inner.line, leaf_line);

  const SymbolizedFrame& outer = frames[1];
  EXPECT_FALSE(outer.inlined);
  EXPECT_EQ(outer.function, "CallsInlinedLeaf(int*, int*)");
  EXPECT_EQ(outer.file, inner.file);
  EXPECT_EQ(outer.line, call_line);

  for (const SymbolizedFrame& f : frames) {
    EXPECT_EQ(f.pc, pc);
    EXPECT_EQ(f.module, ExePath());
    EXPECT_EQ(f.module_offset, pc - LoadBaseOf(pc));
  }
  // Symbolize gives the innermost source-level frame, from the same cache.
  EXPECT_EQ(&symbolizer.Symbolize(pc), &frames[0]);
  EXPECT_EQ(&symbolizer.SymbolizeInlined(pc), &frames);
}

TEST(SymbolizerTest, NestedInlinedCallsGiveEachCallSite) {
  if (!LibdwAvailable()) GTEST_SKIP() << "needs libdw for inlined frames";
  int leaf_line = 0;
  int mid_line = 0;
  int call_line = 0;
  uintptr_t pc = CallsInlinedMiddle(&leaf_line, &mid_line, &call_line);
  Symbolizer symbolizer;
  const std::vector<SymbolizedFrame>& frames = symbolizer.SymbolizeInlined(pc);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].function, "InlinedLeaf");
  EXPECT_EQ(frames[0].line, leaf_line);
  EXPECT_TRUE(frames[0].inlined);
  EXPECT_EQ(frames[1].function, "(anonymous namespace)::InlinedMiddle");
  EXPECT_EQ(frames[1].line, mid_line);
  EXPECT_TRUE(frames[1].inlined);
  EXPECT_EQ(frames[2].function, "CallsInlinedMiddle(int*, int*, int*)");
  EXPECT_EQ(frames[2].line, call_line);
  EXPECT_FALSE(frames[2].inlined);
  for (const SymbolizedFrame& f : frames) {
    EXPECT_TRUE(EndsWith(f.file, "symbolizer_test.cc")) << f.file;
    EXPECT_EQ(f.module_offset, frames[0].module_offset);
  }
}

// Where nothing is inlined there is one frame, the one Symbolize returns.
TEST(SymbolizerTest, NotInlinedPcGivesOneFrame) {
  int line = 0;
  uintptr_t pc = StaticFrame(&line);
  Symbolizer symbolizer;
  const std::vector<SymbolizedFrame>& frames = symbolizer.SymbolizeInlined(pc);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_FALSE(frames[0].inlined);
  EXPECT_EQ(&symbolizer.Symbolize(pc), &frames[0]);
  if (std::string(symbolizer.backend()) == "libdwfl") {
    EXPECT_EQ(frames[0].function, "StaticFrame(int*)");
    EXPECT_EQ(frames[0].line, line);
  }
}

TEST(SymbolizerTest, LibcAddressGetsLibcModuleAndOffset) {
  uintptr_t printf_addr = LibcPrintf();
  ASSERT_NE(printf_addr, 0u);
  uintptr_t pc = printf_addr + 5;
  Symbolizer symbolizer;
  const SymbolizedFrame& f = symbolizer.Symbolize(pc);

  EXPECT_NE(f.module.find("libc.so"), std::string::npos) << f.module;
  EXPECT_NE(f.module_offset, 0u);
  EXPECT_EQ(f.module_offset, pc - LoadBaseOf(pc));
  EXPECT_NE(f.function.find("printf"), std::string::npos) << f.function;
}

TEST(SymbolizerTest, GarbagePcsGiveEmptyFrames) {
  Symbolizer symbolizer;
  std::unique_ptr<int> heap(new int(0));
  int on_stack = 0;
  const uintptr_t garbage[] = {
      0,
      1,
      2,
      0x1000,
      reinterpret_cast<uintptr_t>(heap.get()),
      reinterpret_cast<uintptr_t>(&on_stack),
      UINTPTR_MAX,
      UINTPTR_MAX - 4096,
  };
  for (uintptr_t pc : garbage) {
    SCOPED_TRACE(testing::Message() << "pc=0x" << std::hex << pc);
    const SymbolizedFrame& f = symbolizer.Symbolize(pc);
    EXPECT_EQ(f.pc, pc);
    ExpectEmpty(f);
    EXPECT_EQ(symbolizer.SymbolizeInlined(pc).size(), 1u);
  }
}

TEST(SymbolizerTest, ResultsAreCachedPerPc) {
  int line = 0;
  uintptr_t pc = StaticFrame(&line);
  Symbolizer symbolizer;
  const SymbolizedFrame& first = symbolizer.Symbolize(pc);
  const SymbolizedFrame& again = symbolizer.Symbolize(pc);
  EXPECT_EQ(&first, &again);
  const SymbolizedFrame& other = symbolizer.Symbolize(pc + 1);
  EXPECT_NE(&first, &other);
  EXPECT_EQ(other.pc, pc + 1);
}

// A library dlopen'ed after the symbolizer has read the process maps must
// still be resolved by libdwfl (the maps are reported again on a miss): it
// must describe the pc exactly as a symbolizer created after the load does,
// file:line included where the library has local debug info (glibc's
// libresolv has, with libc6-dbg installed).
TEST(SymbolizerTest, LibraryLoadedAfterFirstUseIsResolved) {
  struct Candidate {
    const char* soname;
    const char* symbol;
    const char* name_part;  // in the name of every alias of symbol
  };
  const Candidate candidates[] = {
      {"libresolv.so.2", "__b64_ntop", "b64_ntop"},
      {"libpq.so.5", "PQlibVersion", "PQlibVersion"},
      {"libcrypt.so.1", "crypt", "crypt"},
  };
  Symbolizer symbolizer;
  int line = 0;
  symbolizer.Symbolize(StaticFrame(&line));  // reads the maps now

  for (const Candidate& c : candidates) {
    if (dlopen(c.soname, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD) != nullptr) {
      continue;  // already loaded: would not test a late load
    }
    void* handle = dlopen(c.soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) continue;
    void* sym = dlsym(handle, c.symbol);
    ASSERT_NE(sym, nullptr) << c.symbol;
    uintptr_t pc = reinterpret_cast<uintptr_t>(sym) + 1;  // looks up sym
    const SymbolizedFrame& f = symbolizer.Symbolize(pc);
    EXPECT_NE(f.module.find(c.soname), std::string::npos) << f.module;
    EXPECT_EQ(f.module_offset, pc - LoadBaseOf(pc));
    EXPECT_NE(f.function.find(c.name_part), std::string::npos) << f.function;

    Symbolizer fresh;
    const SymbolizedFrame& want = fresh.Symbolize(pc);
    EXPECT_EQ(f.function, want.function);
    EXPECT_EQ(f.module, want.module);
    EXPECT_EQ(f.module_offset, want.module_offset);
    EXPECT_EQ(f.file, want.file);
    EXPECT_EQ(f.line, want.line);
    // The handle stays open: the library must stay mapped for the check.
    return;
  }
  GTEST_SKIP() << "no test library available to dlopen";
}

// Looking for separate debug info (for libc, whose symbols live in
// /usr/lib/debug, and for every other loaded object, most of which have none
// locally) must never involve debuginfod, even when DEBUGINFOD_URLS is set:
// libdwfl dlopens libdebuginfod.so when it would consult a server.
TEST(SymbolizerTest, NeverConsultsDebuginfod) {
  if (!LibdwAvailable()) GTEST_SKIP() << "libdw.so.1 not installed";
  ASSERT_FALSE(ProcessMapsContain("libdebuginfod"));
  const char* old = getenv("DEBUGINFOD_URLS");
  std::string saved = old != nullptr ? old : "";
  setenv("DEBUGINFOD_URLS", "http://127.0.0.1:9/", 1);

  // One pc in the executable code of every loaded object.
  std::vector<uintptr_t> pcs;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* out = static_cast<std::vector<uintptr_t>*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_memsz > 16) {
            out->push_back(info->dlpi_addr + ph.p_vaddr + 16);
            break;
          }
        }
        return 0;
      },
      &pcs);
  pcs.push_back(LibcPrintf() + 5);

  Symbolizer symbolizer;
  for (uintptr_t pc : pcs) symbolizer.Symbolize(pc);
  EXPECT_STREQ(symbolizer.backend(), "libdwfl");
  EXPECT_FALSE(ProcessMapsContain("libdebuginfod"));

  if (old != nullptr) {
    setenv("DEBUGINFOD_URLS", saved.c_str(), 1);
  } else {
    unsetenv("DEBUGINFOD_URLS");
  }
}

TEST(DemangleTest, DemanglesCxxNames) {
  EXPECT_EQ(Demangle("_ZN3foo3barEv"), "foo::bar()");
  EXPECT_EQ(Demangle("_ZN18symbolizer_test_ns4FuncEi"),
            "symbolizer_test_ns::Func(int)");
}

TEST(DemangleTest, LeavesOtherNamesUnchanged) {
  EXPECT_EQ(Demangle("main"), "main");
  EXPECT_EQ(Demangle("d"), "d");    // not the type "double"
  EXPECT_EQ(Demangle("_Z"), "_Z");  // malformed
  EXPECT_EQ(Demangle(""), "");
  EXPECT_EQ(Demangle(nullptr), "");
}

TEST(DemangleTest, KeepsSymbolVersionSuffix) {
  EXPECT_EQ(Demangle("_ZN3foo3barEv@@V_1"), "foo::bar()");
  EXPECT_EQ(Demangle("memcpy@GLIBC_2.2.5"), "memcpy");
}

}  // namespace
}  // namespace leakwatch

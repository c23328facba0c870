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

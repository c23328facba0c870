// Symbols in reports of stripped programs: a program without .symtab and
// debug info still gets module+offset in every frame, the same offsets as the
// unstripped program, and the names its dynamic symbol table has.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

// One line of an exit report's stack.
struct FrameLine {
  int number = -1;
  std::string function;   // "??" if unknown
  std::string file_line;  // "" if none
  std::string module;     // "" if none
  std::string offset;     // hex digits, "" if no module
  bool inlined = false;
};

// Parses "    #N 0x... in FUNCTION[ FILE:LINE][ (MODULE+0xOFF)][ [inlined]]".
// The function must not contain " /" or " (" (true of the C programs here).
FrameLine ParseFrame(const std::string& line) {
  static const std::regex kFrame(
      R"(^    #(\d+) 0x[0-9a-f]+ in (.+?)(?: ([^\s(]\S*))?(?: \((\S+)\+0x([0-9a-f]+)\))?( \[inlined\])?$)");
  FrameLine f;
  std::smatch m;
  if (!std::regex_match(line, m, kFrame)) return f;
  f.number = std::stoi(m[1]);
  f.function = m[2];
  f.file_line = m[3];
  f.module = m[4];
  f.offset = m[5];
  f.inlined = m[6].matched;
  return f;
}

// The frames of the only group of a run's exit report, parsed; fails the
// test unless there is exactly one group of `count` pg.result handles.
std::vector<FrameLine> OnlyGroupFrames(const RunResult& r, int count) {
  ExitReport report = ParseExitReport(r.err);
  EXPECT_EQ(report.groups.size(), 1u) << r.err;
  if (report.groups.size() != 1) return {};
  EXPECT_EQ(report.groups[0].kind, "pg.result");
  EXPECT_EQ(report.groups[0].count, count);
  std::vector<FrameLine> frames;
  for (const std::string& line : report.groups[0].frames) {
    frames.push_back(ParseFrame(line));
    EXPECT_GE(frames.back().number, 0) << "unparsed frame line: " << line;
  }
  return frames;
}

// The names of an ELF64 file's sections (empty if it cannot be read).
std::set<std::string> SectionNames(const std::string& path) {
  std::string data = ReadFile(path);
  std::set<std::string> names;
  if (data.size() < sizeof(Elf64_Ehdr)) return names;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(data.data());
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shstrndx >= eh->e_shnum ||
      eh->e_shoff + eh->e_shnum * sizeof(Elf64_Shdr) > data.size()) {
    return names;
  }
  const auto* sh =
      reinterpret_cast<const Elf64_Shdr*>(data.data() + eh->e_shoff);
  const Elf64_Shdr& strtab = sh[eh->e_shstrndx];
  for (int i = 0; i < eh->e_shnum; ++i) {
    size_t at = strtab.sh_offset + sh[i].sh_name;
    if (at < data.size()) names.insert(std::string(data.c_str() + at));
  }
  return names;
}

// Copies `program` into dir with all symbols and debug info stripped
// (binutils strip --strip-all); returns the copy's path, or "" after a
// failure.
std::string StrippedCopy(const std::string& program, const TempDir& dir) {
  std::string name = program.substr(program.rfind('/') + 1);
  std::string copy = dir.path() + "/" + name + "-stripped";
  RunOptions plain;
  plain.preload = false;
  RunResult strip =
      RunProgram({"strip", "--strip-all", "-o", copy, program}, plain);
  EXPECT_EQ(strip.exit_code, 0) << "strip (binutils) failed: " << strip.err;
  if (strip.exit_code != 0) return "";
  std::set<std::string> sections = SectionNames(copy);
  EXPECT_EQ(sections.count(".symtab"), 0u);
  EXPECT_EQ(sections.count(".debug_info"), 0u);
  EXPECT_EQ(sections.count(".debug_line"), 0u);
  EXPECT_EQ(sections.count(".dynsym"), 1u);
  return copy;
}

// The last line of each frame number (the real function, after any inlined
// ones), by number.
std::map<int, FrameLine> RealFrames(const std::vector<FrameLine>& frames) {
  std::map<int, FrameLine> by_number;
  for (const FrameLine& f : frames) by_number[f.number] = f;
  return by_number;
}

// The program's own frames lose their names and lines when it is stripped,
// but keep module+offset, and exactly the offsets the unstripped program's
// frames have (strip does not move code); frames in other objects (libc,
// with its own debug info or not) are described as before.
TEST(StrippedPrograms, FramesKeepModuleAndOffset) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string program = ProgramPath("pg_result_loop_leak");
  std::string stripped = StrippedCopy(program, dir);
  ASSERT_FALSE(stripped.empty());

  RunResult full = RunProgram({program, "5"}, {});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  RunResult bare = RunProgram({stripped, "5"}, {});
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  std::map<int, FrameLine> want = RealFrames(OnlyGroupFrames(full, 5));
  std::map<int, FrameLine> got = RealFrames(OnlyGroupFrames(bare, 5));
  ASSERT_GE(want.size(), 2u) << full.err;
  // The unstripped run names the program's functions at file:line.
  ASSERT_EQ(want[0].function, "count_rows_in_batch") << full.err;
  ASSERT_NE(want[0].file_line.find("pg_result_loop_leak.c:"), std::string::npos)
      << full.err;
  ASSERT_EQ(want.size(), got.size()) << full.err << bare.err;

  int own_frames = 0;
  for (const auto& [number, f] : got) {
    SCOPED_TRACE(::testing::Message() << "frame #" << number);
    const FrameLine& w = want[number];
    ASSERT_FALSE(f.module.empty()) << bare.err;  // module+offset, always
    EXPECT_EQ(f.offset, w.offset) << full.err << bare.err;
    if (f.module == stripped) {
      ++own_frames;
      EXPECT_EQ(w.module, program);
      EXPECT_TRUE(f.file_line.empty()) << bare.err;
      // Not exported: nothing names it. (_start is in .dynsym of no PIE.)
      EXPECT_EQ(f.function, "??") << bare.err;
    } else {
      EXPECT_EQ(f.module, w.module);
      EXPECT_EQ(f.function, w.function);
      EXPECT_EQ(f.file_line, w.file_line);
    }
  }
  // count_rows_in_batch, main and _start.
  EXPECT_GE(own_frames, 3) << bare.err;
  EXPECT_EQ(got[0].module, stripped) << bare.err;
}

// A stripped program that exports its functions (linked with -rdynamic)
// still has their names, from .dynsym, without file:line.
TEST(StrippedPrograms, ExportedFunctionsKeepTheirDynamicSymbol) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string program = ProgramPath("pg_result_loop_leak_rdynamic");
  std::string stripped = StrippedCopy(program, dir);
  ASSERT_FALSE(stripped.empty());

  RunResult r = RunProgram({stripped, "3"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<int, FrameLine> frames = RealFrames(OnlyGroupFrames(r, 3));
  ASSERT_GE(frames.size(), 2u) << r.err;
  for (int i : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "frame #" << i);
    EXPECT_EQ(frames[i].module, stripped) << r.err;
    EXPECT_FALSE(frames[i].offset.empty()) << r.err;
    EXPECT_TRUE(frames[i].file_line.empty()) << r.err;
  }
  EXPECT_EQ(frames[0].function, "count_rows_in_batch") << r.err;
  EXPECT_EQ(frames[1].function, "main") << r.err;

  // JSON carries the same: function and module+offset, no file or line.
  RunOptions json;
  json.env = {{"LEAKWATCH_FORMAT", "json"}};
  RunResult j = RunProgram({stripped, "3"}, json);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  std::vector<std::string> reports = LinesWith(j.err, "\"exit_report\"");
  ASSERT_EQ(reports.size(), 1u) << j.err;
  std::regex frame0(
      R"re(\{"pc":"0x[0-9a-f]+","function":"count_rows_in_batch","module":")re" +
      std::regex_replace(stripped, std::regex(R"([.+])"), R"(\$&)") +
      R"re(","offset":"0x[0-9a-f]+"\})re");
  EXPECT_TRUE(std::regex_search(reports[0], frame0)) << reports[0];
}

}  // namespace
}  // namespace leakwatch::testing

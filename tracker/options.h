// leakwatch's options: parsed once from the environment.
//
// The table of options lives in options.inc; this header expands it into the
// Options struct. Parsing never fails: a bad value produces one message naming
// the variable, the value and what is expected, and the default is used.
//
// Thread safety: ParseOptions is pure (it reads through the given lookup
// function); the process-wide copy is owned by the tracker.
#ifndef LEAKWATCH_TRACKER_OPTIONS_H_
#define LEAKWATCH_TRACKER_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tracker/kinds.h"

namespace leakwatch {

// Sentinels for durations.
inline constexpr int64_t kInheritMs = -1;  // per-family: use the general one
inline constexpr int64_t kDerivedMs =
    -2;  // scan period: derived from thresholds
inline constexpr int64_t kMaxDurationMs = 7LL * 24 * 3600 * 1000;  // 7 days
inline constexpr int64_t kMaxStackDepth = 64;

// Libraries a hook can belong to (LEAKWATCH_TRACK), as bits.
enum Library : uint32_t {
  kLibPg = 1u << 0,
  kLibMysql = 1u << 1,
  kLibThread = 1u << 2,
};
inline constexpr uint32_t kAllLibraries = kLibPg | kLibMysql | kLibThread;

// C++ types of the option types named in options.inc.
using Duration = int64_t;  // milliseconds, or a sentinel above
using Depth = int64_t;     // stack depth, 0 to kMaxStackDepth
using ExitCode = int;      // 0 to 255
using Path = std::string;
using LibraryList = uint32_t;
using Bool = bool;
enum SqlMode : int { kSqlOff = 0, kSqlMasked = 1, kSqlFull = 2 };
enum Format : int { kFormatText = 0, kFormatJson = 1 };
enum ReachMode : int { kReachOff = 0, kReachExit = 1, kReachOn = 2 };
enum ExitReachable : int {
  kExitReachableOff = 0,
  kExitReachableReport = 1,
  kExitReachableCount = 2,
};

struct Options {
#define LW_OPTION(type, field, var, def, def_text, desc) type field = def;
#include "tracker/options.inc"
#undef LW_OPTION

  // The threshold in force for a family, in ms (0 = no live reports).
  int64_t ThresholdMs(Family family) const;
  // The watchdog period in ms: scan_ms, or derived from the thresholds.
  int64_t ScanPeriodMs() const;
};

// One row of the table, for documentation (README) and tests.
struct OptionDoc {
  const char* variable;
  const char* default_text;
  const char* description;
};
std::vector<OptionDoc> OptionDocs();

// Every option's variable and value in force, as text (for reports).
std::vector<std::pair<std::string, std::string>> OptionValues(
    const Options& options);

// Parses every option. `getenv_fn` returns the value of a variable or nullptr.
// Each bad value appends one line to `errors` (without a trailing newline).
Options ParseOptions(const std::function<const char*(const char*)>& getenv_fn,
                     std::vector<std::string>* errors);

// Individual parsers; each returns false and sets `expected` (what a valid
// value looks like) when `text` is not valid.
bool ParseDuration(const char* text, int64_t* ms, std::string* expected);
bool ParseCount(const char* text, int64_t min, int64_t max, int64_t* value,
                std::string* expected);
bool ParseLibraryList(const char* text, uint32_t* libraries,
                      std::string* expected);
bool ParseBool(const char* text, bool* value, std::string* expected);
bool ParseSqlMode(const char* text, SqlMode* mode, std::string* expected);
bool ParseFormat(const char* text, Format* format, std::string* expected);
bool ParseReachMode(const char* text, ReachMode* mode, std::string* expected);
bool ParseExitReachable(const char* text, ExitReachable* mode,
                        std::string* expected);

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_OPTIONS_H_

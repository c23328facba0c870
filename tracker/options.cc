#include "tracker/options.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "tracker/escape.h"

namespace leakwatch {

const char* FamilyName(Family family) {
  switch (family) {
    case Family::kConn:
      return "conn";
    case Family::kResult:
      return "result";
    case Family::kStmt:
      return "stmt";
    case Family::kThread:
      return "thread";
  }
  return "?";
}

int64_t Options::ThresholdMs(Family family) const {
  int64_t specific = kInheritMs;
  switch (family) {
    case Family::kConn:
      specific = conn_threshold_ms;
      break;
    case Family::kResult:
      specific = result_threshold_ms;
      break;
    case Family::kStmt:
      specific = stmt_threshold_ms;
      break;
    case Family::kThread:
      specific = thread_threshold_ms;
      break;
  }
  return specific >= 0 ? specific : threshold_ms;
}

int64_t Options::ScanPeriodMs() const {
  if (scan_ms > 0) return scan_ms;
  int64_t smallest = 0;
  for (int f = 0; f < kNumFamilies; ++f) {
    int64_t t = ThresholdMs(static_cast<Family>(f));
    if (t > 0 && (smallest == 0 || t < smallest)) smallest = t;
  }
  if (smallest == 0) return 1000;
  int64_t period = smallest / 4;
  if (period < 10) period = 10;
  if (period > 1000) period = 1000;
  return period;
}

bool ParseDuration(const char* text, int64_t* ms, std::string* expected) {
  static const char kExpected[] =
      "a duration from 0 to 7 days: a number of milliseconds, or a number "
      "with a unit ms, s, m or h (e.g. 5000, 250ms, 5s, 2m)";
  const char* p = text;
  if (*p == '\0' || !std::isdigit(static_cast<unsigned char>(*p))) {
    *expected = kExpected;
    return false;
  }
  int64_t value = 0;
  for (; std::isdigit(static_cast<unsigned char>(*p)); ++p) {
    if (value > kMaxDurationMs)
      break;  // already too large; stop before overflow
    value = value * 10 + (*p - '0');
  }
  if (std::isdigit(static_cast<unsigned char>(*p))) {
    *expected = kExpected;
    return false;
  }
  int64_t scale = 0;
  if (*p == '\0' || std::strcmp(p, "ms") == 0) {
    scale = 1;
  } else if (std::strcmp(p, "s") == 0) {
    scale = 1000;
  } else if (std::strcmp(p, "m") == 0) {
    scale = 60 * 1000;
  } else if (std::strcmp(p, "h") == 0) {
    scale = 3600 * 1000;
  } else {
    *expected = kExpected;
    return false;
  }
  if (value > kMaxDurationMs / scale) {
    *expected = kExpected;
    return false;
  }
  *ms = value * scale;
  return true;
}

bool ParseCount(const char* text, int64_t min, int64_t max, int64_t* value,
                std::string* expected) {
  *expected = "a whole number from " + std::to_string(min) + " to " +
              std::to_string(max);
  const char* p = text;
  bool negative = false;
  if (*p == '-') {
    negative = true;
    ++p;
  }
  if (*p == '\0') return false;
  // Magnitude limit: the larger of |min| and |max|; anything beyond is out of
  // range whatever its sign, so accumulation stops before it could overflow.
  const uint64_t limit = std::max(min < 0 ? 0 - static_cast<uint64_t>(min) : 0,
                                  max < 0 ? 0 : static_cast<uint64_t>(max));
  uint64_t magnitude = 0;
  for (; *p; ++p) {
    if (!std::isdigit(static_cast<unsigned char>(*p))) return false;
    uint64_t digit = static_cast<uint64_t>(*p - '0');
    if (magnitude > (limit - digit) / 10) return false;  // would pass limit
    magnitude = magnitude * 10 + digit;
  }
  int64_t v;
  if (negative) {
    if (magnitude > (min < 0 ? 0 - static_cast<uint64_t>(min) : 0))
      return false;
    v = static_cast<int64_t>(0 - magnitude);  // 2^63 becomes INT64_MIN
  } else {
    if (max < 0 || magnitude > static_cast<uint64_t>(max)) return false;
    v = static_cast<int64_t>(magnitude);
  }
  if (v < min || v > max) return false;
  *value = v;
  return true;
}

bool ParseLibraryList(const char* text, uint32_t* libraries,
                      std::string* expected) {
  *expected =
      "a comma-separated list of pg, mysql, thread (or 'none' or 'all')";
  std::string s(text);
  if (s == "none") {
    *libraries = 0;
    return true;
  }
  if (s == "all") {
    *libraries = kAllLibraries;
    return true;
  }
  uint32_t result = 0;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item == "pg") {
      result |= kLibPg;
    } else if (item == "mysql") {
      result |= kLibMysql;
    } else if (item == "thread") {
      result |= kLibThread;
    } else {
      return false;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  *libraries = result;
  return true;
}

bool ParseBool(const char* text, bool* value, std::string* expected) {
  *expected = "0 or 1";
  if (std::strcmp(text, "0") == 0) {
    *value = false;
    return true;
  }
  if (std::strcmp(text, "1") == 0) {
    *value = true;
    return true;
  }
  return false;
}

bool ParseSqlMode(const char* text, SqlMode* mode, std::string* expected) {
  *expected = "masked, full or off";
  if (std::strcmp(text, "masked") == 0) {
    *mode = kSqlMasked;
  } else if (std::strcmp(text, "full") == 0) {
    *mode = kSqlFull;
  } else if (std::strcmp(text, "off") == 0) {
    *mode = kSqlOff;
  } else {
    return false;
  }
  return true;
}

bool ParseFormat(const char* text, Format* format, std::string* expected) {
  *expected = "text or json";
  if (std::strcmp(text, "text") == 0) {
    *format = kFormatText;
  } else if (std::strcmp(text, "json") == 0) {
    *format = kFormatJson;
  } else {
    return false;
  }
  return true;
}

bool ParseReachMode(const char* text, ReachMode* mode, std::string* expected) {
  *expected = "on, exit or off";
  if (std::strcmp(text, "on") == 0) {
    *mode = kReachOn;
  } else if (std::strcmp(text, "exit") == 0) {
    *mode = kReachExit;
  } else if (std::strcmp(text, "off") == 0) {
    *mode = kReachOff;
  } else {
    return false;
  }
  return true;
}

bool ParseExitReachable(const char* text, ExitReachable* mode,
                        std::string* expected) {
  *expected = "report, count or off";
  if (std::strcmp(text, "report") == 0) {
    *mode = kExitReachableReport;
  } else if (std::strcmp(text, "count") == 0) {
    *mode = kExitReachableCount;
  } else if (std::strcmp(text, "off") == 0) {
    *mode = kExitReachableOff;
  } else {
    return false;
  }
  return true;
}

namespace {

std::string ShowDuration(int64_t ms) {
  if (ms == kInheritMs) return "inherit";
  if (ms == kDerivedMs) return "derived";
  return std::to_string(ms);
}
std::string ShowDepth(int64_t v) { return std::to_string(v); }
std::string ShowPath(const std::string& p) { return p; }
std::string ShowLibraryList(uint32_t libraries) {
  std::string out;
  if (libraries & kLibPg) out += "pg,";
  if (libraries & kLibMysql) out += "mysql,";
  if (libraries & kLibThread) out += "thread,";
  if (out.empty()) return "none";
  out.pop_back();
  return out;
}
std::string ShowBool(bool b) { return b ? "1" : "0"; }
std::string ShowSqlMode(SqlMode m) {
  return m == kSqlOff ? "off" : m == kSqlFull ? "full" : "masked";
}
std::string ShowExitCode(int code) { return std::to_string(code); }
std::string ShowFormat(Format f) { return f == kFormatJson ? "json" : "text"; }
std::string ShowReachMode(ReachMode m) {
  return m == kReachOn ? "on" : m == kReachExit ? "exit" : "off";
}
std::string ShowExitReachable(ExitReachable m) {
  return m == kExitReachableReport  ? "report"
         : m == kExitReachableCount ? "count"
                                    : "off";
}

bool ParseOne(const char* text, Duration* out, std::string* expected) {
  return ParseDuration(text, out, expected);
}
// Depth and Duration are both int64_t, so the table names the parser.
bool ParseDepthOption(const char* text, Depth* out, std::string* expected) {
  return ParseCount(text, 0, kMaxStackDepth, out, expected);
}
bool ParseExitCodeOption(const char* text, ExitCode* out,
                         std::string* expected) {
  int64_t v = 0;
  if (!ParseCount(text, 0, 255, &v, expected)) return false;
  *out = static_cast<int>(v);
  return true;
}
bool ParseOne(const char* text, Path* out, std::string* expected) {
  *expected = "a file path (may contain %p for the pid)";
  if (*text == '\0') return false;
  *out = text;
  return true;
}
bool ParseOne(const char* text, LibraryList* out, std::string* expected) {
  return ParseLibraryList(text, out, expected);
}
bool ParseOne(const char* text, Bool* out, std::string* expected) {
  return ParseBool(text, out, expected);
}

#define LW_PARSER_Duration ParseOne
#define LW_PARSER_Depth ParseDepthOption
#define LW_PARSER_Path ParseOne
#define LW_PARSER_LibraryList ParseOne
#define LW_PARSER_Bool ParseOne
#define LW_PARSER_SqlMode ParseSqlMode
#define LW_PARSER_ExitCode ParseExitCodeOption
#define LW_PARSER_Format ParseFormat
#define LW_PARSER_ReachMode ParseReachMode
#define LW_PARSER_ExitReachable ParseExitReachable

}  // namespace

std::vector<std::pair<std::string, std::string>> OptionValues(
    const Options& options) {
  return {
#define LW_OPTION(type, field, var, def, def_text, desc) \
  {var, Show##type(options.field)},
#include "tracker/options.inc"
#undef LW_OPTION
  };
}

std::vector<OptionDoc> OptionDocs() {
  return {
#define LW_OPTION(type, field, var, def, def_text, desc) {var, def_text, desc},
#include "tracker/options.inc"
#undef LW_OPTION
  };
}

Options ParseOptions(const std::function<const char*(const char*)>& getenv_fn,
                     std::vector<std::string>* errors) {
  Options options;
#define LW_OPTION(type, field, var, def, def_text, desc)                    \
  if (const char* text = getenv_fn(var)) {                                  \
    type parsed{};                                                          \
    std::string expected;                                                   \
    if (LW_PARSER_##type(text, &parsed, &expected)) {                       \
      options.field = parsed;                                               \
    } else if (errors) {                                                    \
      errors->push_back(std::string("leakwatch: ignoring ") + var + "=\"" + \
                        Escape(text) + "\": expected " + expected +         \
                        "; using the default (" + def_text + ")");          \
    }                                                                       \
  }
#include "tracker/options.inc"
#undef LW_OPTION
  return options;
}

}  // namespace leakwatch

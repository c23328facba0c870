// A deterministic random test (a GoogleTest-driven fuzzer) of the parsers of
// what users type: option values (tracker/options.h), suppression lines and
// patterns (report/suppressions.h), log path patterns (report/log.h).
//
// 200,000 generated strings (fixed seed, so a failure reproduces), biased
// towards the pieces these parsers look for (digits, units, signs, library
// and mode names, wildcards, anchors, separators) mixed with arbitrary bytes.
// Each parser must not crash (run the unit tests once under
// -fsanitize=address,undefined to check for undefined behaviour too), must
// agree with a small independent reference where one is easy to write, and
// keep its invariants: a duration is 0 to 7 days, a value that parses
// formats and parses back to the same value, a rejected value leaves the
// output alone and says what is expected.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "report/log.h"
#include "report/suppressions.h"
#include "tracker/options.h"

namespace leakwatch {
namespace {

constexpr int kIterations = 200000;
constexpr uint64_t kSeed = 0x6c65616b77617463;  // "leakwatc"

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return n == 0 ? 0 : rng_() % n; }
  bool OneIn(size_t n) { return Below(n) == 0; }

  // A string of pieces; `nul` allows '\0' bytes (for string_view parsers).
  std::string Next(bool nul) {
    static const std::vector<std::string> kPieces = {"0",
                                                     "1",
                                                     "5",
                                                     "9",
                                                     "00",
                                                     "250",
                                                     "1000",
                                                     "30000",
                                                     "604800000",
                                                     "604800001",
                                                     "9223372036854775807",
                                                     "9223372036854775808",
                                                     "18446744073709551616",
                                                     "99999999999999999999",
                                                     "ms",
                                                     "s",
                                                     "m",
                                                     "h",
                                                     "d",
                                                     "us",
                                                     "-",
                                                     "+",
                                                     ".",
                                                     ",",
                                                     " ",
                                                     "\t",
                                                     "pg",
                                                     "mysql",
                                                     "thread",
                                                     "all",
                                                     "none",
                                                     "masked",
                                                     "full",
                                                     "off",
                                                     "text",
                                                     "json",
                                                     "conn",
                                                     "result",
                                                     "stmt",
                                                     "pg.conn",
                                                     "mysql.result",
                                                     "*",
                                                     "^",
                                                     "$",
                                                     ":",
                                                     "#",
                                                     "%",
                                                     "%p",
                                                     "%%",
                                                     "/",
                                                     "\\",
                                                     "\"",
                                                     "\n",
                                                     "\r",
                                                     "\x1b",
                                                     "\xff",
                                                     "\xc3\xa9"};
    std::string s;
    size_t parts = OneIn(50) ? Below(200) : Below(8);
    for (size_t i = 0; i < parts; ++i) {
      if (OneIn(4)) {
        char c = static_cast<char>(Below(256));
        if (c == '\0' && !nul) c = '0';
        s.push_back(c);
      } else {
        s += kPieces[Below(kPieces.size())];
      }
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Digits to a number, saturating at `cap` (anything larger becomes cap + 1).
__int128 DigitsValue(std::string_view digits, __int128 cap) {
  __int128 v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > cap) return cap + 1;
  }
  return v;
}

// Reference for ParseDuration: DIGITS then "", "ms", "s", "m" or "h", at most
// 7 days.
bool ReferenceDuration(std::string_view s, int64_t* ms) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0) return false;
  std::string_view unit = s.substr(digits);
  int64_t scale = unit.empty() || unit == "ms" ? 1
                  : unit == "s"                ? 1000
                  : unit == "m"                ? 60000
                  : unit == "h"                ? 3600000
                                               : 0;
  if (scale == 0) return false;
  __int128 v = DigitsValue(s.substr(0, digits), kMaxDurationMs) * scale;
  if (v > kMaxDurationMs) return false;
  *ms = static_cast<int64_t>(v);
  return true;
}

// Reference for ParseCount: an optional '-' then digits, within [min, max].
bool ReferenceCount(std::string_view s, int64_t min, int64_t max,
                    int64_t* value) {
  bool negative = !s.empty() && s[0] == '-';
  std::string_view digits = negative ? s.substr(1) : s;
  if (!AllDigits(digits)) return false;
  const __int128 cap = static_cast<__int128>(INT64_MAX) + 2;
  __int128 v = DigitsValue(digits, cap);
  if (negative) v = -v;
  if (v < min || v > max) return false;
  *value = static_cast<int64_t>(v);
  return true;
}

// Reference for the suppressions' glob: `*` matches any run, the rest
// literally, the whole text. Dynamic programming, no backtracking.
bool ReferenceGlob(std::string_view p, std::string_view t) {
  std::vector<std::vector<bool>> m(p.size() + 1,
                                   std::vector<bool>(t.size() + 1, false));
  m[p.size()][t.size()] = true;
  for (size_t i = p.size(); i-- > 0;) {
    for (size_t j = t.size() + 1; j-- > 0;) {
      if (p[i] == '*') {
        m[i][j] = m[i + 1][j] || (j < t.size() && m[i][j + 1]);
      } else {
        m[i][j] = j < t.size() && p[i] == t[j] && m[i + 1][j + 1];
      }
    }
  }
  return m[0][0];
}

bool ReferencePattern(std::string_view pattern, std::string_view text) {
  bool start = !pattern.empty() && pattern.front() == '^';
  if (start) pattern.remove_prefix(1);
  bool end = !pattern.empty() && pattern.back() == '$';
  if (end) pattern.remove_suffix(1);
  std::string glob =
      (start ? "" : "*") + std::string(pattern) + (end ? "" : "*");
  return ReferenceGlob(glob, text);
}

// Parses `value` as the only variable set; returns the shown value of `var`
// in force, and the error lines.
std::string ParseOne(const std::string& var, const std::string& value,
                     std::vector<std::string>* errors) {
  Options options = ParseOptions(
      [&](const char* name) { return var == name ? value.c_str() : nullptr; },
      errors);
  for (const auto& [name, shown] : OptionValues(options)) {
    if (name == var) return shown;
  }
  ADD_FAILURE() << var << " is not in OptionValues";
  return "";
}

TEST(OptionsFuzzTest, ParsersAgreeWithReferencesAndKeepInvariants) {
  Generator gen(kSeed);
  const std::vector<OptionDoc> docs = OptionDocs();
  std::map<std::string, std::string> defaults;
  for (const auto& [name, shown] : OptionValues(Options{})) {
    defaults[name] = shown;
  }
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, 64},
      {0, 255},
      {1, 255},
      {-5, 5},
      {0, 0},
      {-10, -3},
      {INT64_MIN, INT64_MAX},
      {0, INT64_MAX},
      {INT64_MIN, 0}};
  int accepted_durations = 0, accepted_counts = 0, accepted_lines = 0;
  for (int i = 0; i < kIterations; ++i) {
    const std::string s = gen.Next(/*nul=*/false);
    SCOPED_TRACE(testing::Message()
                 << "iteration " << i << ": \"" << s << "\"");

    // Durations: 0 to 7 days; as the reference says; a rejected value leaves
    // the output alone; an accepted one prints and parses back the same.
    {
      int64_t ms = -42;
      std::string expected;
      int64_t ref = -42;
      bool ok = ParseDuration(s.c_str(), &ms, &expected);
      ASSERT_EQ(ok, ReferenceDuration(s, &ref));
      if (ok) {
        ++accepted_durations;
        ASSERT_EQ(ms, ref);
        ASSERT_GE(ms, 0);
        ASSERT_LE(ms, kMaxDurationMs);
        int64_t again = -1;
        ASSERT_TRUE(
            ParseDuration(std::to_string(ms).c_str(), &again, &expected));
        ASSERT_EQ(again, ms);
      } else {
        ASSERT_EQ(ms, -42);
        ASSERT_FALSE(expected.empty());
      }
    }

    // Counts, over several ranges, including the extreme ones.
    {
      auto [min, max] = ranges[gen.Below(ranges.size())];
      int64_t v = 4242, ref = 4242;
      std::string expected;
      bool ok = ParseCount(s.c_str(), min, max, &v, &expected);
      ASSERT_EQ(ok, ReferenceCount(s, min, max, &ref)) << min << ".." << max;
      ASSERT_FALSE(expected.empty());
      if (ok) {
        ++accepted_counts;
        ASSERT_EQ(v, ref);
        int64_t again = 0;
        ASSERT_TRUE(
            ParseCount(std::to_string(v).c_str(), min, max, &again, &expected));
        ASSERT_EQ(again, v);
      } else {
        ASSERT_EQ(v, 4242);
      }
    }

    // Libraries, booleans, SQL modes, formats: exact sets of words.
    {
      uint32_t libs = 0xdead;
      std::string expected;
      if (ParseLibraryList(s.c_str(), &libs, &expected)) {
        ASSERT_EQ(libs & ~kAllLibraries, 0u);
        std::string shown;
        if (libs & kLibPg) shown += "pg,";
        if (libs & kLibMysql) shown += "mysql,";
        if (libs & kLibThread) shown += "thread,";
        shown = shown.empty() ? "none" : shown.substr(0, shown.size() - 1);
        uint32_t again = 0;
        ASSERT_TRUE(ParseLibraryList(shown.c_str(), &again, &expected));
        ASSERT_EQ(again, libs);
      } else {
        ASSERT_EQ(libs, 0xdeadu);
      }
      bool b = false;
      ASSERT_EQ(ParseBool(s.c_str(), &b, &expected), s == "0" || s == "1");
      SqlMode mode = kSqlMasked;
      ASSERT_EQ(ParseSqlMode(s.c_str(), &mode, &expected),
                s == "masked" || s == "full" || s == "off");
      Format format = kFormatText;
      ASSERT_EQ(ParseFormat(s.c_str(), &format, &expected),
                s == "text" || s == "json");
    }

    // Every variable of the table: a rejected value is one error naming the
    // variable and the default stays in force; an accepted one, shown as the
    // report shows it, parses back to the same.
    if (i % 8 == 0) {
      const std::string var = docs[gen.Below(docs.size())].variable;
      std::vector<std::string> errors;
      std::string shown = ParseOne(var, s, &errors);
      ASSERT_LE(errors.size(), 1u);
      if (!errors.empty()) {
        ASSERT_NE(errors[0].find(var), std::string::npos) << errors[0];
        // One line whatever the value: control characters are escaped.
        for (unsigned char c : errors[0]) ASSERT_TRUE(c >= 0x20 && c != 0x7f);
        ASSERT_EQ(shown, defaults[var]) << var;
      } else if (shown != "inherit" && shown != "derived" && !shown.empty()) {
        std::vector<std::string> again_errors;
        ASSERT_EQ(ParseOne(var, shown, &again_errors), shown) << var;
        ASSERT_TRUE(again_errors.empty()) << var << ": " << again_errors[0];
      }
    }

    // A whole random environment: one error per rejected variable, and the
    // values in force within their ranges.
    if (i % 64 == 0) {
      std::map<std::string, std::string> env;
      size_t expected_errors = 0;
      for (const OptionDoc& doc : docs) {
        if (!gen.OneIn(3)) continue;
        std::string value = gen.OneIn(2) ? gen.Next(false) : s;
        std::vector<std::string> one;
        ParseOne(doc.variable, value, &one);
        expected_errors += one.size();
        env[doc.variable] = value;
      }
      std::vector<std::string> errors;
      Options options = ParseOptions(
          [&](const char* name) {
            auto it = env.find(name);
            return it == env.end() ? nullptr : it->second.c_str();
          },
          &errors);
      ASSERT_EQ(errors.size(), expected_errors);
      for (int f = 0; f < kNumFamilies; ++f) {
        int64_t t = options.ThresholdMs(static_cast<Family>(f));
        ASSERT_GE(t, 0);
        ASSERT_LE(t, kMaxDurationMs);
      }
      ASSERT_GE(options.ScanPeriodMs(), 1);
      ASSERT_LE(options.ScanPeriodMs(), kMaxDurationMs);
      ASSERT_GE(options.stack_depth, 0);
      ASSERT_LE(options.stack_depth, kMaxStackDepth);
      ASSERT_GE(options.exitcode, 0);
      ASSERT_LE(options.exitcode, 255);
      ASSERT_EQ(options.track & ~kAllLibraries, 0u);
    }

    // Suppression lines (with any bytes, NUL included): accepted lines add
    // one rule of a known shape, comments and blank lines none, a rejected
    // line none and says why.
    {
      static const char* const kTypes[] = {"conn",   "result",  "stmt",
                                           "thread", "pg.conn", "x.y",
                                           "*",      " conn ",  "pg."};
      std::string line;
      switch (gen.Below(3)) {
        case 0:
          line = s;
          break;
        case 1:
          line = gen.Next(/*nul=*/true);
          break;
        default:
          line = kTypes[gen.Below(std::size(kTypes))] + std::string(":") +
                 gen.Next(/*nul=*/true);
      }
      Suppressions suppressions;
      std::string error;
      bool ok = suppressions.AddLine(line, "fuzz:1", &error);
      if (ok) {
        ASSERT_LE(suppressions.rules().size(), 1u);
        if (!suppressions.rules().empty()) {
          ++accepted_lines;
          const Suppressions::Rule& rule = suppressions.rules()[0];
          ASSERT_FALSE(rule.type.empty());
          ASSERT_FALSE(rule.pattern.empty());
          ASSERT_EQ(rule.where, "fuzz:1");
          ASSERT_EQ(rule.hits, 0u);
        }
      } else {
        ASSERT_TRUE(suppressions.rules().empty());
        ASSERT_FALSE(error.empty());
      }
    }

    // Patterns: as the reference glob; a literal matches itself anywhere.
    {
      const std::string pattern = s.size() > 40 ? s.substr(0, 40) : s;
      std::string text = gen.Next(true);
      if (text.size() > 60) text.resize(60);
      ASSERT_EQ(Suppressions::PatternMatches(pattern, text),
                ReferencePattern(pattern, text))
          << "pattern \"" << pattern << "\" text \"" << text << "\"";
      if (pattern.find_first_of("*^$") == std::string::npos) {
        ASSERT_TRUE(
            Suppressions::PatternMatches(pattern, text + pattern + text));
      }
    }

    // Log path patterns: no '%', no change; the pid goes where %p was.
    {
      std::string path = Log::ExpandPath(s, 4242);
      if (s.find('%') == std::string::npos) {
        ASSERT_EQ(path, s);
      }
      std::string ref;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '%' && k + 1 < s.size() &&
            (s[k + 1] == 'p' || s[k + 1] == '%')) {
          ref += s[k + 1] == 'p' ? "4242" : "%";
          ++k;
        } else {
          ref += s[k];
        }
      }
      ASSERT_EQ(path, ref);
    }
  }
  // The generator reaches the accepting paths too, not only rejections.
  EXPECT_GT(accepted_durations, 1000);
  EXPECT_GT(accepted_counts, 1000);
  EXPECT_GT(accepted_lines, 1000);
}

// Long inputs: nothing quadratic or worse in what a user can make long (a
// suppression pattern full of wildcards against a long function name).
TEST(OptionsFuzzTest, LongPatternsAndValuesStayCheap) {
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += "a*";
  pattern += "b";
  std::string text(5000, 'a');
  EXPECT_FALSE(Suppressions::PatternMatches(pattern, text));
  std::string digits(100000, '9');
  int64_t ms = 0;
  std::string expected;
  EXPECT_FALSE(ParseDuration(digits.c_str(), &ms, &expected));
  int64_t v = 0;
  EXPECT_FALSE(ParseCount(digits.c_str(), INT64_MIN, INT64_MAX, &v, &expected));
  std::string zeros(100000, '0');
  EXPECT_TRUE(ParseDuration((zeros + "5s").c_str(), &ms, &expected));
  EXPECT_EQ(ms, 5000);
}

}  // namespace
}  // namespace leakwatch

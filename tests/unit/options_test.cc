// Tests for tracker/options.h: the individual parsers, ParseOptions with a
// fake environment, the derived scan period and the documentation table.

#include "tracker/options.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <ostream>
#include <string>
#include <vector>

namespace leakwatch {
namespace {

using Env = std::map<std::string, std::string>;

// ParseOptions over `env`; records which variables were asked for.
Options ParseEnv(const Env& env, std::vector<std::string>* errors,
                 std::vector<std::string>* asked = nullptr) {
  return ParseOptions(
      [&](const char* name) -> const char* {
        if (asked != nullptr) asked->push_back(name);
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      errors);
}

// Compares every field of two Options (generated from the option table, so a
// new option is compared without touching this test).
void ExpectSameOptions(const Options& actual, const Options& expected) {
#define LW_OPTION(type, field, var, def, def_text, desc) \
  EXPECT_EQ(actual.field, expected.field) << "field " #field " (" var ")";
#include "tracker/options.inc"
#undef LW_OPTION
}

// --- ParseDuration -----------------------------------------------------------

struct DurationCase {
  const char* text;
  int64_t ms;
};
void PrintTo(const DurationCase& c, std::ostream* os) {
  *os << '"' << c.text << "\" -> " << c.ms;
}

class ParseDurationValidTest : public testing::TestWithParam<DurationCase> {};

TEST_P(ParseDurationValidTest, Parses) {
  int64_t ms = -12345;
  std::string expected;
  ASSERT_TRUE(ParseDuration(GetParam().text, &ms, &expected))
      << "\"" << GetParam().text << "\"";
  EXPECT_EQ(ms, GetParam().ms) << "\"" << GetParam().text << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Options, ParseDurationValidTest,
    testing::Values(DurationCase{"5000", 5000}, DurationCase{"5s", 5000},
                    DurationCase{"250ms", 250}, DurationCase{"2m", 120000},
                    DurationCase{"1h", 3600000}, DurationCase{"0", 0},
                    DurationCase{"0ms", 0}, DurationCase{"0s", 0},
                    DurationCase{"007s", 7000}, DurationCase{"1ms", 1},
                    // Exactly the 7-day maximum, in every unit.
                    DurationCase{"604800000", kMaxDurationMs},
                    DurationCase{"604800000ms", kMaxDurationMs},
                    DurationCase{"604800s", kMaxDurationMs},
                    DurationCase{"10080m", kMaxDurationMs},
                    DurationCase{"168h", kMaxDurationMs}));

class ParseDurationInvalidTest : public testing::TestWithParam<const char*> {};

TEST_P(ParseDurationInvalidTest, RejectsAndLeavesValueAlone) {
  int64_t ms = -12345;
  std::string expected;
  EXPECT_FALSE(ParseDuration(GetParam(), &ms, &expected))
      << "\"" << GetParam() << "\" was accepted as " << ms;
  EXPECT_EQ(ms, -12345) << "\"" << GetParam() << "\"";
  EXPECT_NE(expected.find("duration"), std::string::npos) << expected;
  EXPECT_NE(expected.find("250ms"), std::string::npos) << expected;
}

INSTANTIATE_TEST_SUITE_P(
    Options, ParseDurationInvalidTest,
    testing::Values(
        // Not a number at all.
        "", "abc", "s", "ms", "-5", "+5", " 5", "5 ", "5 s", "1.5s", "0x10",
        "1e3",
        // Unknown or misspelled units.
        "5x", "8d", "5sec", "5S", "5MS", "5 ms", "5ms5", "5s5", "5mss",
        // Over the 7-day maximum, in every unit.
        "604800001", "604800001ms", "604801s", "10081m", "169h",
        // So large that a naive parser overflows int64.
        "99999999999999999999", "9223372036854775807", "9223372036854775808",
        "18446744073709551617", "9223372036854775807h", "3074457345618259s",
        "99999999999999999999999999999999999999999ms"));

// --- ParseCount --------------------------------------------------------------

TEST(ParseCountTest, AcceptsTheWholeRange) {
  std::string expected;
  for (int64_t want = 0; want <= 64; ++want) {
    int64_t v = -1;
    ASSERT_TRUE(ParseCount(std::to_string(want).c_str(), 0, 64, &v, &expected))
        << want;
    EXPECT_EQ(v, want);
  }
  int64_t v = -1;
  EXPECT_TRUE(ParseCount("007", 0, 64, &v, &expected));
  EXPECT_EQ(v, 7);
}

TEST(ParseCountTest, RejectsOutOfRangeAndMalformed) {
  for (const char* text :
       {"65", "100", "-1", "-0x1", "", "-", "+1", " 1", "1 ", "1a", "a1", "1.0",
        "99999999999999999999", "-99999999999999999999"}) {
    int64_t v = -7;
    std::string expected;
    EXPECT_FALSE(ParseCount(text, 0, 64, &v, &expected))
        << "\"" << text << "\" accepted as " << v;
    EXPECT_EQ(v, -7) << "\"" << text << "\"";
    EXPECT_EQ(expected, "a whole number from 0 to 64");
  }
}

TEST(ParseCountTest, NegativeValuesInASignedRange) {
  std::string expected;
  int64_t v = 0;
  EXPECT_TRUE(ParseCount("-5", -10, 10, &v, &expected));
  EXPECT_EQ(v, -5);
  EXPECT_TRUE(ParseCount("-10", -10, 10, &v, &expected));
  EXPECT_EQ(v, -10);
  EXPECT_TRUE(ParseCount("10", -10, 10, &v, &expected));
  EXPECT_EQ(v, 10);
  EXPECT_TRUE(ParseCount("-0", -10, 10, &v, &expected));
  EXPECT_EQ(v, 0);
  v = 99;
  EXPECT_FALSE(ParseCount("-11", -10, 10, &v, &expected));
  EXPECT_FALSE(ParseCount("11", -10, 10, &v, &expected));
  EXPECT_EQ(v, 99);
  EXPECT_EQ(expected, "a whole number from -10 to 10");
}

// A range whose negative end is larger in magnitude than its positive end.
TEST(ParseCountTest, NegativeValuesBeyondMax) {
  std::string expected;
  int64_t v = 0;
  EXPECT_TRUE(ParseCount("-50", -100, 10, &v, &expected));
  EXPECT_EQ(v, -50);
  v = 0;
  EXPECT_TRUE(ParseCount("-100", -100, 10, &v, &expected));
  EXPECT_EQ(v, -100);
  v = 0;
  EXPECT_TRUE(ParseCount("-50", -100, 4, &v, &expected));
  EXPECT_EQ(v, -50);
  v = 0;
  EXPECT_TRUE(ParseCount("-5", -10, -1, &v, &expected));
  EXPECT_EQ(v, -5);
}

// With a maximum near INT64_MAX, accumulating digits must not overflow (and
// accept a wrapped-around value).
TEST(ParseCountTest, HugeNumbersWithAWideRange) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::string expected;
  int64_t v = 0;
  EXPECT_TRUE(ParseCount("9223372036854775807", 0, kMax, &v, &expected));
  EXPECT_EQ(v, kMax);
  v = 42;
  EXPECT_FALSE(ParseCount("9223372036854775808", kMin, kMax, &v, &expected))
      << "accepted as " << v;
  EXPECT_FALSE(ParseCount("99999999999999999999", kMin, kMax, &v, &expected))
      << "accepted as " << v;
  EXPECT_FALSE(ParseCount("99999999999999999999", 0, kMax, &v, &expected))
      << "accepted as " << v;
  EXPECT_EQ(v, 42);
}

// A 64-digit number made only of the digits 6 and 7 that is a multiple of
// 2^64: a parser that accumulates it in 64 bits without stopping ends at 0.
std::string SixesAndSevensMultipleOf2To64() {
  uint64_t value = 0;  // the digits so far, mod 2^64
  uint64_t power = 1;  // 10^k mod 2^64
  std::string digits;  // least significant first
  for (int k = 0; k < 64; ++k) {
    uint64_t mask = k == 63 ? ~uint64_t{0} : (uint64_t{1} << (k + 1)) - 1;
    uint64_t d = ((value + 6 * power) & mask) == 0 ? 6 : 7;
    value += d * power;
    power *= 10;
    digits.push_back(static_cast<char>('0' + d));
  }
  return std::string(digits.rbegin(), digits.rend());
}

// Small ranges (max below 9): digits larger than the limit must not let the
// accumulated value run past 64 bits and wrap back into the range.
TEST(ParseCountTest, HugeNumbersWithASmallRange) {
  std::string huge = SixesAndSevensMultipleOf2To64();
  ASSERT_EQ(huge.size(), 64u);
  std::string expected;
  int64_t v = 42;
  EXPECT_FALSE(ParseCount(huge.c_str(), 0, 5, &v, &expected))
      << huge << " accepted as " << v;
  EXPECT_FALSE(ParseCount(("-" + huge).c_str(), -5, 5, &v, &expected))
      << "-" << huge << " accepted as " << v;
  EXPECT_FALSE(ParseCount(huge.c_str(), 0, 0, &v, &expected))
      << huge << " accepted as " << v;
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(ParseCount("99999999999999999999", 0, 5, &v, &expected));
  EXPECT_FALSE(ParseCount("7", 0, 5, &v, &expected));
  EXPECT_TRUE(ParseCount("5", 0, 5, &v, &expected));
  EXPECT_EQ(v, 5);
}

// --- ParseLibraryList --------------------------------------------------------

TEST(ParseLibraryListTest, Valid) {
  struct Case {
    const char* text;
    uint32_t libraries;
  };
  for (const Case& c :
       {Case{"pg", kLibPg}, Case{"mysql", kLibMysql},
        Case{"thread", kLibThread}, Case{"pg,mysql", kLibPg | kLibMysql},
        Case{"mysql,pg", kLibPg | kLibMysql}, Case{"pg,pg", kLibPg},
        Case{"pg,mysql,thread", kAllLibraries}, Case{"all", kAllLibraries},
        Case{"none", 0u}}) {
    uint32_t libs = 0xdead;
    std::string expected;
    ASSERT_TRUE(ParseLibraryList(c.text, &libs, &expected)) << c.text;
    EXPECT_EQ(libs, c.libraries) << c.text;
  }
}

TEST(ParseLibraryListTest, Invalid) {
  for (const char* text :
       {"", "postgres", "pg,,mysql", ",", "pg,", ",pg", "PG", "pg, mysql",
        " pg", "all,pg", "none,pg", "pg;mysql", "libpq"}) {
    uint32_t libs = 0xdead;
    std::string expected;
    EXPECT_FALSE(ParseLibraryList(text, &libs, &expected))
        << "\"" << text << "\" accepted as " << libs;
    EXPECT_EQ(libs, 0xdeadu) << "\"" << text << "\"";
    EXPECT_NE(expected.find("pg, mysql, thread"), std::string::npos)
        << expected;
  }
}

// --- ParseBool ---------------------------------------------------------------

TEST(ParseBoolTest, OnlyZeroAndOne) {
  bool value = true;
  std::string expected;
  ASSERT_TRUE(ParseBool("0", &value, &expected));
  EXPECT_FALSE(value);
  ASSERT_TRUE(ParseBool("1", &value, &expected));
  EXPECT_TRUE(value);
  for (const char* text :
       {"", "2", "true", "false", "yes", " 1", "1 ", "01", "-1", "on"}) {
    value = true;
    EXPECT_FALSE(ParseBool(text, &value, &expected)) << "\"" << text << "\"";
    EXPECT_TRUE(value) << "\"" << text << "\"";
    EXPECT_EQ(expected, "0 or 1");
  }
}

// --- ParseOptions ------------------------------------------------------------

TEST(ParseOptionsTest, DefaultsWhenUnset) {
  std::vector<std::string> errors;
  Options o = ParseEnv({}, &errors);
  EXPECT_TRUE(errors.empty());
  ExpectSameOptions(o, Options{});
  EXPECT_EQ(o.threshold_ms, 30000);
  EXPECT_EQ(o.conn_threshold_ms, kInheritMs);
  EXPECT_EQ(o.result_threshold_ms, kInheritMs);
  EXPECT_EQ(o.stmt_threshold_ms, kInheritMs);
  EXPECT_EQ(o.thread_threshold_ms, kInheritMs);
  EXPECT_EQ(o.log, "");
  EXPECT_EQ(o.stack_depth, 24);
  EXPECT_EQ(o.scan_ms, kDerivedMs);
  EXPECT_EQ(o.track, kAllLibraries);
  EXPECT_FALSE(o.stats);
  for (int f = 0; f < kNumFamilies; ++f) {
    EXPECT_EQ(o.ThresholdMs(static_cast<Family>(f)), 30000) << f;
  }
  EXPECT_EQ(o.ScanPeriodMs(), 1000);
}

TEST(ParseOptionsTest, NullErrorsIsAllowed) {
  Options o = ParseEnv(
      {{"LEAKWATCH_THRESHOLD_MS", "bad"}, {"LEAKWATCH_STACK_DEPTH", "8"}},
      nullptr);
  EXPECT_EQ(o.threshold_ms, 30000);
  EXPECT_EQ(o.stack_depth, 8);
}

TEST(ParseOptionsTest, GoodValues) {
  std::vector<std::string> errors;
  Options o = ParseEnv({{"LEAKWATCH_THRESHOLD_MS", "5s"},
                        {"LEAKWATCH_LOG", "/tmp/lw.%p.log"},
                        {"LEAKWATCH_STACK_DEPTH", "0"},
                        {"LEAKWATCH_SCAN_MS", "250ms"},
                        {"LEAKWATCH_TRACK", "pg,thread"},
                        {"LEAKWATCH_STATS", "1"}},
                       &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(o.threshold_ms, 5000);
  EXPECT_EQ(o.log, "/tmp/lw.%p.log");
  EXPECT_EQ(o.stack_depth, 0);
  EXPECT_EQ(o.scan_ms, 250);
  EXPECT_EQ(o.track, kLibPg | kLibThread);
  EXPECT_TRUE(o.stats);
}

TEST(ParseOptionsTest, FamiliesInheritTheGeneralThreshold) {
  std::vector<std::string> errors;
  Options o = ParseEnv({{"LEAKWATCH_THRESHOLD_MS", "5s"}}, &errors);
  ASSERT_TRUE(errors.empty());
  for (int f = 0; f < kNumFamilies; ++f) {
    EXPECT_EQ(o.ThresholdMs(static_cast<Family>(f)), 5000)
        << FamilyName(static_cast<Family>(f));
  }
}

TEST(ParseOptionsTest, PerFamilyThresholdsOverride) {
  std::vector<std::string> errors;
  Options o = ParseEnv({{"LEAKWATCH_THRESHOLD_MS", "5s"},
                        {"LEAKWATCH_CONN_THRESHOLD_MS", "2m"},
                        {"LEAKWATCH_RESULT_THRESHOLD_MS", "250ms"},
                        {"LEAKWATCH_THREAD_THRESHOLD_MS", "0"}},
                       &errors);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(o.ThresholdMs(Family::kConn), 120000);
  EXPECT_EQ(o.ThresholdMs(Family::kResult), 250);
  EXPECT_EQ(o.ThresholdMs(Family::kStmt), 5000);  // inherited
  EXPECT_EQ(o.ThresholdMs(Family::kThread), 0);   // explicitly off
}

TEST(ParseOptionsTest, PerFamilyThresholdWithoutGeneralOne) {
  std::vector<std::string> errors;
  Options o = ParseEnv({{"LEAKWATCH_STMT_THRESHOLD_MS", "1s"}}, &errors);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(o.ThresholdMs(Family::kStmt), 1000);
  EXPECT_EQ(o.ThresholdMs(Family::kConn), 30000);
  EXPECT_EQ(o.ThresholdMs(Family::kResult), 30000);
}

TEST(ParseOptionsTest, ZeroGeneralThresholdDisablesOnlyInheritingFamilies) {
  std::vector<std::string> errors;
  Options o = ParseEnv(
      {{"LEAKWATCH_THRESHOLD_MS", "0"}, {"LEAKWATCH_CONN_THRESHOLD_MS", "3s"}},
      &errors);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(o.ThresholdMs(Family::kConn), 3000);
  EXPECT_EQ(o.ThresholdMs(Family::kResult), 0);
  EXPECT_EQ(o.ThresholdMs(Family::kStmt), 0);
  EXPECT_EQ(o.ThresholdMs(Family::kThread), 0);
}

// The default text of a variable as OptionDocs shows it.
std::string DefaultText(const std::string& variable) {
  for (const OptionDoc& doc : OptionDocs()) {
    if (variable == doc.variable) return doc.default_text;
  }
  ADD_FAILURE() << "no doc row for " << variable;
  return "";
}

struct BadCase {
  const char* variable;
  const char* value;
  const char* expected_fragment;  // part of the "what is expected" text
};
void PrintTo(const BadCase& c, std::ostream* os) {
  *os << c.variable << "=\"" << c.value << '"';
}

class ParseOptionsBadValueTest : public testing::TestWithParam<BadCase> {};

TEST_P(ParseOptionsBadValueTest, OneErrorLineAndTheDefaultIsKept) {
  const BadCase& c = GetParam();
  std::vector<std::string> errors;
  Options o = ParseEnv({{c.variable, c.value}}, &errors);
  ASSERT_EQ(errors.size(), 1u) << c.variable << "=" << c.value;
  const std::string& line = errors[0];
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find(c.variable), std::string::npos) << line;
  EXPECT_NE(line.find(std::string("\"") + c.value + "\""), std::string::npos)
      << line;
  EXPECT_NE(line.find("expected"), std::string::npos) << line;
  EXPECT_NE(line.find(c.expected_fragment), std::string::npos) << line;
  EXPECT_NE(line.find("default (" + DefaultText(c.variable) + ")"),
            std::string::npos)
      << line;
  ExpectSameOptions(o, Options{});
}

INSTANTIATE_TEST_SUITE_P(
    Options, ParseOptionsBadValueTest,
    testing::Values(
        BadCase{"LEAKWATCH_THRESHOLD_MS", "abc", "duration"},
        BadCase{"LEAKWATCH_THRESHOLD_MS", "", "duration"},
        BadCase{"LEAKWATCH_THRESHOLD_MS", "8d", "duration"},
        BadCase{"LEAKWATCH_THRESHOLD_MS", "99999999999999999999", "duration"},
        BadCase{"LEAKWATCH_CONN_THRESHOLD_MS", "5x", "duration"},
        BadCase{"LEAKWATCH_RESULT_THRESHOLD_MS", "-5", "duration"},
        BadCase{"LEAKWATCH_STMT_THRESHOLD_MS", "1.5s", "duration"},
        BadCase{"LEAKWATCH_THREAD_THRESHOLD_MS", " 5", "duration"},
        BadCase{"LEAKWATCH_LOG", "", "file path"},
        BadCase{"LEAKWATCH_STACK_DEPTH", "65", "from 0 to 64"},
        BadCase{"LEAKWATCH_STACK_DEPTH", "-1", "from 0 to 64"},
        BadCase{"LEAKWATCH_STACK_DEPTH", "deep", "from 0 to 64"},
        BadCase{"LEAKWATCH_SCAN_MS", "5 s", "duration"},
        BadCase{"LEAKWATCH_TRACK", "postgres", "pg, mysql, thread"},
        BadCase{"LEAKWATCH_TRACK", "pg,,mysql", "pg, mysql, thread"},
        BadCase{"LEAKWATCH_TRACK", "", "pg, mysql, thread"},
        BadCase{"LEAKWATCH_STATS", "yes", "0 or 1"}));

TEST(ParseOptionsTest, SeveralBadValuesOneLineEachGoodOnesApplied) {
  std::vector<std::string> errors;
  Options o = ParseEnv({{"LEAKWATCH_THRESHOLD_MS", "soon"},
                        {"LEAKWATCH_RESULT_THRESHOLD_MS", "2s"},
                        {"LEAKWATCH_STACK_DEPTH", "100"},
                        {"LEAKWATCH_TRACK", "mysql"},
                        {"LEAKWATCH_STATS", "maybe"}},
                       &errors);
  ASSERT_EQ(errors.size(), 3u);
  std::set<std::string> named;
  for (const std::string& e : errors) {
    for (const char* var : {"LEAKWATCH_THRESHOLD_MS", "LEAKWATCH_STACK_DEPTH",
                            "LEAKWATCH_STATS"}) {
      if (e.find(std::string(var) + "=") != std::string::npos)
        named.insert(var);
    }
  }
  EXPECT_EQ(named.size(), 3u);
  EXPECT_EQ(o.threshold_ms, 30000);
  EXPECT_EQ(o.result_threshold_ms, 2000);
  EXPECT_EQ(o.stack_depth, 24);
  EXPECT_EQ(o.track, kLibMysql);
  EXPECT_FALSE(o.stats);
}

// --- ScanPeriodMs ------------------------------------------------------------

int64_t ScanPeriod(const Env& env) {
  std::vector<std::string> errors;
  Options o = ParseEnv(env, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return o.ScanPeriodMs();
}

TEST(ScanPeriodTest, QuarterOfTheSmallestPositiveThreshold) {
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "100"}}), 25);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "2s"}}), 500);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "30s"},
                        {"LEAKWATCH_RESULT_THRESHOLD_MS", "400ms"}}),
            100);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "1s"},
                        {"LEAKWATCH_CONN_THRESHOLD_MS", "0"}}),
            250);  // a zero threshold is ignored, not the smallest
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "0"},
                        {"LEAKWATCH_STMT_THRESHOLD_MS", "2s"}}),
            500);
}

TEST(ScanPeriodTest, ClampedBetween10MsAnd1S) {
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "1"}}), 10);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "39"}}), 10);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "40"}}), 10);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "44"}}), 11);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "4s"}}), 1000);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "8s"}}), 1000);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "168h"}}), 1000);
}

TEST(ScanPeriodTest, ExplicitScanPeriodWins) {
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "100"},
                        {"LEAKWATCH_SCAN_MS", "7"}}),
            7);  // below the clamp: the user asked for it
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "100"},
                        {"LEAKWATCH_SCAN_MS", "5s"}}),
            5000);
  EXPECT_EQ(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "0"},
                        {"LEAKWATCH_SCAN_MS", "300ms"}}),
            300);
}

TEST(ScanPeriodTest, AllThresholdsZero) {
  int64_t period = ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "0"}});
  EXPECT_GE(period, 10);
  EXPECT_LE(period, 1000);
}

// A scan period of 0 would make the watchdog spin; whatever 0 means, the
// period in force must stay positive.
TEST(ScanPeriodTest, ZeroScanPeriodNeverSpins) {
  EXPECT_GT(ScanPeriod({{"LEAKWATCH_THRESHOLD_MS", "100"},
                        {"LEAKWATCH_SCAN_MS", "0"}}),
            0);
}

// --- OptionDocs --------------------------------------------------------------

TEST(OptionDocsTest, EveryVariableExactlyOnce) {
  std::vector<OptionDoc> docs = OptionDocs();
  ASSERT_FALSE(docs.empty());
  std::multiset<std::string> documented;
  for (const OptionDoc& doc : docs) {
    ASSERT_NE(doc.variable, nullptr);
    EXPECT_EQ(std::string(doc.variable).rfind("LEAKWATCH_", 0), 0u)
        << doc.variable;
    EXPECT_NE(doc.default_text, nullptr);
    EXPECT_NE(doc.default_text[0], '\0') << doc.variable;
    EXPECT_NE(doc.description, nullptr);
    EXPECT_NE(doc.description[0], '\0') << doc.variable;
    documented.insert(doc.variable);
  }
  for (const std::string& var : documented) {
    EXPECT_EQ(documented.count(var), 1u) << var;
  }
  // Every variable the parser reads is documented, and read exactly once.
  std::vector<std::string> asked;
  std::vector<std::string> errors;
  ParseEnv({}, &errors, &asked);
  std::multiset<std::string> read(asked.begin(), asked.end());
  EXPECT_EQ(read, documented);
  for (const char* var :
       {"LEAKWATCH_THRESHOLD_MS", "LEAKWATCH_CONN_THRESHOLD_MS",
        "LEAKWATCH_RESULT_THRESHOLD_MS", "LEAKWATCH_STMT_THRESHOLD_MS",
        "LEAKWATCH_THREAD_THRESHOLD_MS", "LEAKWATCH_LOG",
        "LEAKWATCH_STACK_DEPTH", "LEAKWATCH_SCAN_MS", "LEAKWATCH_TRACK",
        "LEAKWATCH_STATS"}) {
    EXPECT_EQ(documented.count(var), 1u) << var;
  }
}

// Where a documented default is itself a valid value, it parses to the real
// default (the README cannot drift from the code). Paths are left out: any
// text is a valid path, and "stderr" documents the empty default.
TEST(OptionDocsTest, DocumentedDefaultsMatchTheCode) {
  std::set<std::string> paths;
#define LW_OPTION(type, field, var, def, def_text, desc) \
  if (std::string(#type) == "Path") paths.insert(var);
#include "tracker/options.inc"
#undef LW_OPTION
  EXPECT_EQ(paths.count("LEAKWATCH_LOG"), 1u);
  int checked = 0;
  for (const OptionDoc& doc : OptionDocs()) {
    if (paths.count(doc.variable) != 0) continue;
    std::vector<std::string> errors;
    Options o = ParseEnv({{doc.variable, doc.default_text}}, &errors);
    if (!errors.empty()) continue;  // "the general one", "derived", "stderr"
    ++checked;
    SCOPED_TRACE(doc.variable);
    ExpectSameOptions(o, Options{});
  }
  EXPECT_GE(checked, 4);  // threshold, stack depth, track, stats
}

}  // namespace
}  // namespace leakwatch

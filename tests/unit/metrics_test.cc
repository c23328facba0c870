#include "report/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace leakwatch {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// --- A strict parser for the Prometheus text exposition format 0.0.4 --------
//
// Stricter than Prometheus where our files must be: only counter and gauge
// families, no sample timestamps (node_exporter's textfile collector refuses
// them), HELP and TYPE both before a family's first sample, counters named
// *_total with finite values >= 0, gauges not named *_total, label names not
// starting with "__", and no series twice.

struct ParsedSample {
  std::map<std::string, std::string> labels;
  std::vector<std::string> label_order;
  std::string raw_value;
  double value = 0;
};

struct ParsedFamily {
  std::string name;
  std::string help;
  std::string type;
  bool has_help = false;
  bool has_type = false;
  std::vector<ParsedSample> samples;
};

struct Parsed {
  bool ok = true;
  std::string error;  // "line N: reason"
  std::vector<ParsedFamily> families;

  const ParsedFamily* Family(const std::string& name) const {
    for (const ParsedFamily& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  // The one sample of `name` whose labels include all of `match`.
  const ParsedSample* Find(const std::string& name,
                           const std::map<std::string, std::string>& match,
                           int* count = nullptr) const {
    const ParsedFamily* f = Family(name);
    const ParsedSample* found = nullptr;
    int n = 0;
    if (f != nullptr) {
      for (const ParsedSample& s : f->samples) {
        bool all = true;
        for (const auto& [k, v] : match) {
          auto it = s.labels.find(k);
          if (it == s.labels.end() || it->second != v) all = false;
        }
        if (all) {
          found = &s;
          ++n;
        }
      }
    }
    if (count != nullptr) *count = n;
    return n == 1 ? found : nullptr;
  }
};

bool IsMetricNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':';
}
bool IsMetricNameChar(char c) {
  return IsMetricNameStart(c) || (c >= '0' && c <= '9');
}
bool IsLabelNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsLabelNameChar(char c) {
  return IsLabelNameStart(c) || (c >= '0' && c <= '9');
}

bool ValidMetricName(std::string_view s) {
  if (s.empty() || !IsMetricNameStart(s[0])) return false;
  return std::all_of(s.begin(), s.end(), IsMetricNameChar);
}

bool ValidLabelName(std::string_view s) {
  if (s.empty() || !IsLabelNameStart(s[0])) return false;
  return std::all_of(s.begin(), s.end(), IsLabelNameChar);
}

// Decodes code points one by one and rejects what Go's utf8.ValidString
// rejects: stray continuation bytes, truncated sequences, overlong forms,
// surrogates, values past U+10FFFF.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      extra = 1;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      extra = 2;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      extra = 3;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated
    for (int k = 1; k <= extra; ++k) {
      unsigned char c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// A float as Go's strconv.ParseFloat takes it in this format: decimal or
// exponent notation, or NaN / [+-]Inf.
bool ParseValue(const std::string& s, double* out) {
  if (s == "NaN") {
    *out = NAN;
    return true;
  }
  if (s == "+Inf" || s == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && isdigit(static_cast<unsigned char>(s[i])))
    ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      ++digits;
    }
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0) return false;
  }
  if (i != s.size()) return false;
  *out = strtod(s.c_str(), nullptr);
  return true;
}

class ExpositionParser {
 public:
  Parsed Parse(std::string_view text) {
    if (!text.empty() && text.back() != '\n') {
      return Fail(0, "the last line does not end with a newline");
    }
    size_t line_no = 0;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl + 1);
      ++line_no;
      if (!ParseLine(line)) return Fail(line_no, error_);
    }
    return std::move(result_);
  }

 private:
  Parsed Fail(size_t line_no, const std::string& why) {
    Parsed p;
    p.ok = false;
    p.error = "line " + std::to_string(line_no) + ": " + why;
    return p;
  }

  bool Error(std::string why) {
    error_ = std::move(why);
    return false;
  }

  // The family `name` becomes the current one; a family may not come back
  // after another one started.
  bool Enter(const std::string& name) {
    if (!result_.families.empty() && result_.families.back().name == name) {
      return true;
    }
    if (seen_.count(name) != 0) {
      return Error("lines of \"" + name + "\" are not in one group");
    }
    seen_.insert(name);
    result_.families.push_back(ParsedFamily{});
    result_.families.back().name = name;
    return true;
  }

  bool ParseLine(std::string_view line) {
    if (line.find('\r') != std::string_view::npos) {
      return Error("carriage return in a line");
    }
    if (line.empty()) return true;
    if (line[0] == '#') return ParseComment(line);
    return ParseSample(line);
  }

  bool ParseComment(std::string_view line) {
    bool help = line.rfind("# HELP ", 0) == 0;
    bool type = line.rfind("# TYPE ", 0) == 0;
    if (!help && !type) return true;  // a plain comment
    line.remove_prefix(7);
    size_t sp = line.find(' ');
    std::string name(line.substr(0, sp));
    if (!ValidMetricName(name))
      return Error("bad metric name \"" + name + "\"");
    std::string_view rest =
        sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (!Enter(name)) return false;
    ParsedFamily& f = result_.families.back();
    if (help) {
      if (f.has_help) return Error("second HELP for \"" + name + "\"");
      if (!f.samples.empty()) return Error("HELP after samples of " + name);
      std::string text;
      for (size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] != '\\') {
          text += rest[i];
          continue;
        }
        if (i + 1 == rest.size()) return Error("HELP ends in a backslash");
        char e = rest[++i];
        if (e == '\\') {
          text += '\\';
        } else if (e == 'n') {
          text += '\n';
        } else {
          return Error(std::string("bad escape \\") + e + " in HELP");
        }
      }
      if (!ValidUtf8(text)) return Error("HELP is not UTF-8");
      f.help = text;
      f.has_help = true;
      return true;
    }
    if (f.has_type) return Error("second TYPE for \"" + name + "\"");
    if (!f.samples.empty()) return Error("TYPE after samples of " + name);
    if (rest != "counter" && rest != "gauge") {
      return Error("unexpected type \"" + std::string(rest) + "\"");
    }
    f.type = std::string(rest);
    f.has_type = true;
    return true;
  }

  bool ParseSample(std::string_view line) {
    size_t i = 0;
    while (i < line.size() && IsMetricNameChar(line[i])) ++i;
    std::string name(line.substr(0, i));
    if (!ValidMetricName(name)) return Error("bad metric name in a sample");
    if (!Enter(name)) return false;
    ParsedFamily& f = result_.families.back();
    if (!f.has_help || !f.has_type) {
      return Error("sample of \"" + name + "\" before its HELP and TYPE");
    }
    ParsedSample s;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t start = i;
        while (i < line.size() && IsLabelNameChar(line[i])) ++i;
        std::string label(line.substr(start, i - start));
        if (!ValidLabelName(label)) return Error("bad label name");
        if (label.rfind("__", 0) == 0) {
          return Error("reserved label name \"" + label + "\"");
        }
        if (line.substr(i, 2) != "=\"")
          return Error("expected =\" after " + label);
        i += 2;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c != '\\') {
            value += c;
            continue;
          }
          if (i == line.size()) break;
          char e = line[i++];
          if (e == '\\') {
            value += '\\';
          } else if (e == '"') {
            value += '"';
          } else if (e == 'n') {
            value += '\n';
          } else {
            return Error(std::string("bad escape \\") + e +
                         " in a label value");
          }
        }
        if (!closed) return Error("unterminated label value");
        if (!ValidUtf8(value)) return Error("label value is not UTF-8");
        if (s.labels.count(label) != 0) {
          return Error("label \"" + label + "\" twice");
        }
        s.labels[label] = value;
        s.label_order.push_back(label);
        if (i < line.size() && line[i] == ',') {
          ++i;
        } else if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        } else {
          return Error("expected , or } after a label");
        }
      }
    }
    if (i >= line.size() || line[i] != ' ') return Error("expected a space");
    ++i;
    std::string_view rest = line.substr(i);
    if (rest.find(' ') != std::string_view::npos ||
        rest.find('\t') != std::string_view::npos) {
      return Error("a timestamp or trailing text after the value");
    }
    s.raw_value = std::string(rest);
    if (!ParseValue(s.raw_value, &s.value)) {
      return Error("bad value \"" + s.raw_value + "\"");
    }
    bool total = name.size() > 6 && name.substr(name.size() - 6) == "_total";
    if (f.type == "counter") {
      if (!total) return Error("counter \"" + name + "\" not named *_total");
      if (!(s.value >= 0) || std::isinf(s.value)) {
        return Error("counter value not finite and >= 0");
      }
    } else if (total) {
      return Error("gauge \"" + name + "\" named *_total");
    }
    std::string series;
    for (const auto& [k, v] : s.labels) series += k + '\0' + v + '\0';
    if (!series_.insert(name + '\0' + series).second) {
      return Error("series of \"" + name + "\" twice");
    }
    f.samples.push_back(std::move(s));
    return true;
  }

  Parsed result_;
  std::set<std::string> seen_;
  std::set<std::string> series_;
  std::string error_;
};

Parsed ParseExposition(std::string_view text) {
  return ExpositionParser().Parse(text);
}

// --- Test inputs -------------------------------------------------------------

MetricsInput SampleInput() {
  MetricsInput in;
  in.pid = 4242;
  in.program = "demo_service";
  in.timestamp_ms = 1712345678123;
  in.threads_live = 7;
  KindMetrics pg_conn{"pg.conn", "conn", 3, 5, 11, 8, 1, 2};
  KindMetrics pg_result{"pg.result", "result", 2, 40, 1000, 998, 2, 3};
  KindMetrics thread{"thread", "thread", 6, 9, 25, 19, 0, 0};
  KindMetrics my_stmt{"mysql.stmt", "stmt", 0, 1, 4, 4, 0, 0};
  in.kinds = {thread, pg_result, my_stmt, pg_conn};
  ConnectionMetrics a;
  a.kind = "pg.conn";
  a.labels = IdentityLabels("dbname=app user=app host=127.0.0.1 port=5432");
  a.open = 2;
  a.idle = 1;
  a.in_use = 1;
  ConnectionMetrics b;
  b.kind = "pg.conn";
  b.labels = IdentityLabels("dbname=reports user=ro host=/run/pg port=5432");
  b.open = 1;
  b.pinned = 0;
  ConnectionMetrics c;
  c.kind = "mysql.conn";
  c.labels = IdentityLabels("host=db1 port=3306 user=app db=shop");
  c.open = 4;
  c.idle = 2;
  c.pinned = 1;
  in.connections = {c, b, a};
  return in;
}

Parsed ParseOrFail(const std::string& text) {
  Parsed p = ParseExposition(text);
  EXPECT_TRUE(p.ok) << p.error << "\n--- text ---\n" << text;
  return p;
}

const std::vector<std::string> kExpectedFamilies = {
    "leakwatch_handles_open",           "leakwatch_handles_open_peak",
    "leakwatch_handles_acquired_total", "leakwatch_handles_released_total",
    "leakwatch_handles_past_threshold", "leakwatch_leak_reports_total",
    "leakwatch_connections_open",       "leakwatch_connections_idle",
    "leakwatch_connections_in_use",     "leakwatch_connections_pinned",
    "leakwatch_threads_live",           "leakwatch_last_scan_timestamp_seconds",
};

// --- The parser is strict (a lenient one would prove nothing) ----------------

TEST(MetricsParserTest, RejectsWhatPrometheusOrTheCollectorRejects) {
  const std::string head =
      "# HELP leakwatch_x_total X.\n# TYPE leakwatch_x_total counter\n";
  struct Case {
    const char* why;
    std::string text;
  };
  const Case bad[] = {
      {"no TYPE", "# HELP a_total A.\na_total 1\n"},
      {"no HELP", "# TYPE a_total counter\na_total 1\n"},
      {"no final newline", head + "leakwatch_x_total 1"},
      {"timestamp", head + "leakwatch_x_total 1 1712345678000\n"},
      {"bad escape", head + "leakwatch_x_total{a=\"x\\ty\"} 1\n"},
      {"unterminated", head + "leakwatch_x_total{a=\"x} 1\n"},
      {"bad label name", head + "leakwatch_x_total{1a=\"x\"} 1\n"},
      {"reserved label", head + "leakwatch_x_total{__a=\"x\"} 1\n"},
      {"label twice", head + "leakwatch_x_total{a=\"x\",a=\"y\"} 1\n"},
      {"series twice",
       head + "leakwatch_x_total{a=\"x\"} 1\nleakwatch_x_total{a=\"x\"} 2\n"},
      {"not UTF-8", head + "leakwatch_x_total{a=\"\xC3\x28\"} 1\n"},
      {"overlong UTF-8", head + "leakwatch_x_total{a=\"\xC0\xAF\"} 1\n"},
      {"surrogate", head + "leakwatch_x_total{a=\"\xED\xA0\x80\"} 1\n"},
      {"bad value", head + "leakwatch_x_total 1.2.3\n"},
      {"negative counter", head + "leakwatch_x_total -1\n"},
      {"counter not _total", "# HELP a A.\n# TYPE a counter\na 1\n"},
      {"gauge _total", "# HELP a_total A.\n# TYPE a_total gauge\na_total 1\n"},
      {"split group",
       head + "leakwatch_x_total 1\n# HELP g G.\n# TYPE g gauge\ng 1\n"
              "leakwatch_x_total{a=\"b\"} 2\n"},
      {"TYPE after sample",
       "# HELP g G.\n# TYPE g gauge\ng 1\n# TYPE g gauge\n"},
      {"untyped", "# HELP g G.\n# TYPE g untyped\ng 1\n"},
      {"CR", head + "leakwatch_x_total 1\r\n"},
      {"missing space", head + "leakwatch_x_total{a=\"b\"}1\n"},
  };
  for (const Case& c : bad) {
    Parsed p = ParseExposition(c.text);
    EXPECT_FALSE(p.ok) << c.why << " was accepted";
  }
  Parsed good = ParseExposition(
      head +
      "leakwatch_x_total{a=\"q\\\"\\\\\\n\",b=\"\xE2\x82\xAC\"} 1.5e3\n");
  ASSERT_TRUE(good.ok) << good.error;
  EXPECT_EQ(good.families[0].samples[0].labels.at("a"), "q\"\\\n");
  EXPECT_EQ(good.families[0].samples[0].value, 1500);
}

// --- FormatMetrics -----------------------------------------------------------

TEST(MetricsFormatTest, IsValidExpositionWithHelpAndTypeForEveryFamily) {
  std::string text = FormatMetrics(SampleInput());
  Parsed p = ParseOrFail(text);
  ASSERT_TRUE(p.ok);
  std::vector<std::string> names;
  for (const ParsedFamily& f : p.families) {
    names.push_back(f.name);
    EXPECT_EQ(f.name.rfind("leakwatch_", 0), 0u) << f.name;
    EXPECT_TRUE(f.has_help && f.has_type) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_FALSE(f.samples.empty()) << f.name;
    bool total = f.name.size() > 6 &&
                 f.name.compare(f.name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(f.type == "counter", total) << f.name;
    for (const ParsedSample& s : f.samples) {
      // Every sample names its process, so files of several processes merge.
      EXPECT_EQ(s.labels.at("pid"), "4242") << f.name;
      EXPECT_EQ(s.labels.at("program"), "demo_service") << f.name;
    }
  }
  EXPECT_EQ(names, kExpectedFamilies);
}

TEST(MetricsFormatTest, NumbersMatchTheInput) {
  MetricsInput in = SampleInput();
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  struct Field {
    const char* metric;
    uint64_t KindMetrics::*field;
  };
  const Field fields[] = {
      {"leakwatch_handles_open", &KindMetrics::open},
      {"leakwatch_handles_open_peak", &KindMetrics::peak_open},
      {"leakwatch_handles_acquired_total", &KindMetrics::acquired},
      {"leakwatch_handles_released_total", &KindMetrics::released},
      {"leakwatch_handles_past_threshold", &KindMetrics::past_threshold},
      {"leakwatch_leak_reports_total", &KindMetrics::reported_total},
  };
  for (const KindMetrics& k : in.kinds) {
    for (const Field& f : fields) {
      const ParsedSample* s = p.Find(f.metric, {{"kind", k.kind}});
      ASSERT_NE(s, nullptr) << f.metric << " " << k.kind;
      EXPECT_EQ(s->labels.at("family"), k.family);
      EXPECT_EQ(s->raw_value, std::to_string(k.*f.field))
          << f.metric << " " << k.kind;
    }
  }
  EXPECT_EQ(p.Family("leakwatch_handles_open")->samples.size(), 4u);

  const ParsedSample* live = p.Find("leakwatch_threads_live", {});
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(live->value, 7);
  const ParsedSample* ts = p.Find("leakwatch_last_scan_timestamp_seconds", {});
  ASSERT_NE(ts, nullptr);
  EXPECT_EQ(ts->raw_value, "1712345678.123");

  // The DB.Stats() view, per kind and identity.
  const std::map<std::string, std::string> app = {{"kind", "pg.conn"},
                                                  {"dbname", "app"},
                                                  {"user", "app"},
                                                  {"host", "127.0.0.1"},
                                                  {"port", "5432"}};
  const std::map<std::string, std::string> shop = {{"kind", "mysql.conn"},
                                                   {"db", "shop"},
                                                   {"user", "app"},
                                                   {"host", "db1"},
                                                   {"port", "3306"}};
  struct Expect {
    const char* metric;
    const std::map<std::string, std::string>* who;
    double value;
  };
  const Expect expect[] = {
      {"leakwatch_connections_open", &app, 2},
      {"leakwatch_connections_idle", &app, 1},
      {"leakwatch_connections_in_use", &app, 1},
      {"leakwatch_connections_pinned", &app, 0},
      {"leakwatch_connections_open", &shop, 4},
      {"leakwatch_connections_idle", &shop, 2},
      {"leakwatch_connections_in_use", &shop, 0},
      {"leakwatch_connections_pinned", &shop, 1},
  };
  for (const Expect& e : expect) {
    const ParsedSample* s = p.Find(e.metric, *e.who);
    ASSERT_NE(s, nullptr) << e.metric;
    EXPECT_EQ(s->value, e.value) << e.metric;
    // Exactly the identity labels plus kind, pid and program.
    EXPECT_EQ(s->labels.size(), e.who->size() + 2) << e.metric;
  }
  EXPECT_EQ(p.Family("leakwatch_connections_open")->samples.size(), 3u);
}

TEST(MetricsFormatTest, LabelValuesRoundTripThroughEscaping) {
  MetricsInput in;
  in.pid = 7;
  const std::string program = "we\"ird\\name\nline2 \\n \"\"";
  in.program = program;
  ConnectionMetrics c;
  c.kind = "pg.conn";
  const std::string db = "a\\\"b\n\nc\\";
  const std::string user = "Jos\xC3\xA9 \xE2\x82\xAC";  // José €: stays UTF-8
  c.labels = {{"dbname", db}, {"user", user}, {"host", ""}};
  c.open = 1;
  in.connections = {c};
  in.kinds = {{"pg.conn", "conn", 1, 1, 1, 0, 0, 0}};
  std::string text = FormatMetrics(in);
  Parsed p = ParseOrFail(text);
  ASSERT_TRUE(p.ok);
  for (const ParsedFamily& f : p.families) {
    for (const ParsedSample& s : f.samples) {
      EXPECT_EQ(s.labels.at("program"), program) << f.name;
    }
  }
  const ParsedSample* s = p.Find("leakwatch_connections_open", {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->labels.at("dbname"), db);
  EXPECT_EQ(s->labels.at("user"), user);
  EXPECT_EQ(s->labels.at("host"), "");
  // One line per sample: the newlines in values never split a line.
  size_t lines = std::count(text.begin(), text.end(), '\n');
  size_t expected_lines = 0;
  for (const ParsedFamily& f : p.families)
    expected_lines += 2 + f.samples.size();
  EXPECT_EQ(lines, expected_lines);
}

TEST(MetricsFormatTest, InvalidUtf8BecomesReplacementCharacters) {
  MetricsInput in;
  in.program = std::string("bad\xFF\xC3(\xED\xA0\x80ok\xF0\x9F\x98\x80", 15);
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  const ParsedSample* s = p.Find("leakwatch_threads_live", {});
  ASSERT_NE(s, nullptr);
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(s->labels.at("program"),
            "bad" + r + r + "(" + r + r + r + "ok\xF0\x9F\x98\x80");
}

TEST(MetricsFormatTest, LabelNamesAreSanitizedAndNeverClash) {
  MetricsInput in;
  in.pid = 1;
  in.program = "p";
  ConnectionMetrics c;
  c.kind = "x.conn";
  c.labels = {{"my-key", "1"},      {"9lives", "2"}, {"__meta", "3"},
              {"h\xC3\xA9te", "4"}, {"kind", "5"},   {"pid", "6"},
              {"my_key", "7"},      {"", "8"},       {"program", "9"}};
  c.open = 1;
  in.connections = {c};
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  const ParsedSample* s = p.Find("leakwatch_connections_open", {});
  ASSERT_NE(s, nullptr);
  const std::map<std::string, std::string> expected = {
      {"my_key", "1"}, {"_9lives", "2"},          {"_meta", "3"},
      {"h__te", "4"},  {"identity_kind", "5"},    {"identity_pid", "6"},
      {"_", "8"},      {"identity_program", "9"}, {"kind", "x.conn"},
      {"pid", "1"},    {"program", "p"}};
  // "my_key" = "7" is dropped: its name is taken by the sanitized "my-key".
  EXPECT_EQ(s->labels, expected);
}

TEST(MetricsFormatTest, OutputIsDeterministicWhateverTheInputOrder) {
  MetricsInput in = SampleInput();
  std::string first = FormatMetrics(in);
  std::reverse(in.kinds.begin(), in.kinds.end());
  std::reverse(in.connections.begin(), in.connections.end());
  EXPECT_EQ(FormatMetrics(in), first);
  std::rotate(in.kinds.begin(), in.kinds.begin() + 1, in.kinds.end());
  EXPECT_EQ(FormatMetrics(in), first);
  // Sorted by kind.
  Parsed p = ParseOrFail(first);
  std::vector<std::string> kinds;
  for (const ParsedSample& s : p.Family("leakwatch_handles_open")->samples) {
    kinds.push_back(s.labels.at("kind"));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"mysql.stmt", "pg.conn",
                                             "pg.result", "thread"}));
  // Labels in a fixed order: kind and family first, then pid and program.
  EXPECT_EQ(p.Family("leakwatch_handles_open")->samples[0].label_order,
            (std::vector<std::string>{"kind", "family", "pid", "program"}));
}

TEST(MetricsFormatTest, SameSeriesTwiceIsAddedTogetherNotRepeated) {
  MetricsInput in;
  in.pid = 3;
  in.program = "svc";
  ConnectionMetrics ok;
  ok.kind = "pg.conn";
  ok.labels = IdentityLabels("dbname=app user=app host=h port=5432");
  ok.open = 2;
  ok.idle = 1;
  ConnectionMetrics failed = ok;
  failed.labels = IdentityLabels(
      "dbname=app user=app host=h port=5432 (connection failed)");
  failed.open = 1;
  failed.idle = 1;
  failed.pinned = 0;
  ConnectionMetrics reordered = ok;
  reordered.labels = {
      {"port", "5432"}, {"host", "h"}, {"user", "app"}, {"dbname", "app"}};
  reordered.open = 3;
  reordered.idle = 0;
  in.connections = {ok, failed, reordered};
  in.kinds = {{"pg.conn", "conn", 6, 6, 6, 0, 2, 2},
              {"pg.conn", "conn", 1, 2, 3, 4, 5, 6}};
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  const ParsedFamily* open = p.Family("leakwatch_connections_open");
  ASSERT_NE(open, nullptr);
  ASSERT_EQ(open->samples.size(), 1u);
  EXPECT_EQ(open->samples[0].value, 6);
  EXPECT_EQ(p.Find("leakwatch_connections_idle", {})->value, 2);
  ASSERT_EQ(p.Family("leakwatch_handles_open")->samples.size(), 1u);
  EXPECT_EQ(p.Find("leakwatch_handles_acquired_total", {})->value, 9);
  EXPECT_EQ(p.Find("leakwatch_leak_reports_total", {})->value, 8);
}

TEST(MetricsFormatTest, EmptyInputIsStillValid) {
  MetricsInput in;
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.families.size(), 2u);  // families without samples are left out
  EXPECT_EQ(p.families[0].name, "leakwatch_threads_live");
  EXPECT_EQ(p.Find("leakwatch_threads_live", {})->value, 0);
  EXPECT_EQ(p.Find("leakwatch_last_scan_timestamp_seconds", {})->raw_value,
            "0.000");
  in.timestamp_ms = -1500;
  EXPECT_EQ(ParseOrFail(FormatMetrics(in))
                .Find("leakwatch_last_scan_timestamp_seconds", {})
                ->raw_value,
            "-1.500");
  in.timestamp_ms = 5;
  EXPECT_EQ(ParseOrFail(FormatMetrics(in))
                .Find("leakwatch_last_scan_timestamp_seconds", {})
                ->raw_value,
            "0.005");
}

TEST(MetricsFormatTest, LargeCountersAreExactIntegers) {
  MetricsInput in;
  in.kinds = {{"pg.result", "result", 0, 0, UINT64_MAX, 1ull << 53, 0, 0}};
  Parsed p = ParseOrFail(FormatMetrics(in));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.Find("leakwatch_handles_acquired_total", {})->raw_value,
            "18446744073709551615");
  EXPECT_EQ(p.Find("leakwatch_handles_released_total", {})->raw_value,
            "9007199254740992");
}


// --- IdentityLabels ----------------------------------------------------------

TEST(MetricsIdentityTest, SplitsKeyValueTokensAndDropsTheRest) {
  EXPECT_EQ(IdentityLabels("dbname=app user=app host=127.0.0.1 port=5432 "
                           "(connection failed)"),
            (Labels{{"dbname", "app"},
                    {"user", "app"},
                    {"host", "127.0.0.1"},
                    {"port", "5432"}}));
  EXPECT_EQ(IdentityLabels("host=localhost port=0 user=root db=shop"),
            (Labels{{"host", "localhost"},
                    {"port", "0"},
                    {"user", "root"},
                    {"db", "shop"}}));
  EXPECT_EQ(
      IdentityLabels("  dbname=  user=u\t host=/run/postgresql  "),
      (Labels{{"dbname", ""}, {"user", "u"}, {"host", "/run/postgresql"}}));
  EXPECT_EQ(IdentityLabels("opt=a=b =x bare"), (Labels{{"opt", "a=b"}}));
  EXPECT_TRUE(IdentityLabels("").empty());
  EXPECT_TRUE(IdentityLabels("(connection failed)").empty());
}

// --- WriteMetricsFile --------------------------------------------------------

class MetricsFileTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = testing::TempDir() + "leakwatch-metrics-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    system(cmd.c_str());
  }

  std::vector<std::string> DirEntries() const {
    std::vector<std::string> names;
    DIR* d = opendir(dir_.c_str());
    if (d == nullptr) return names;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  static bool ReadWhole(const std::string& path, std::string* out) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    out->clear();
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out->append(buf, n);
    close(fd);
    return n == 0;
  }

  std::string dir_;
};

TEST_F(MetricsFileTest, WritesAndReplacesLeavingNoTemporaryFile) {
  std::string path = dir_ + "/leakwatch.prom";
  std::string error;
  ASSERT_TRUE(WriteMetricsFile(path, "first\n", &error)) << error;
  std::string text;
  ASSERT_TRUE(ReadWhole(path, &text));
  EXPECT_EQ(text, "first\n");
  std::string formatted = FormatMetrics(SampleInput());
  ASSERT_TRUE(WriteMetricsFile(path, formatted, &error)) << error;
  ASSERT_TRUE(ReadWhole(path, &text));
  EXPECT_EQ(text, formatted);
  EXPECT_EQ(DirEntries(), std::vector<std::string>{"leakwatch.prom"});
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);  // readable by node_exporter's user
}

TEST_F(MetricsFileTest, ReadableWhateverTheUmask) {
  mode_t old = umask(077);
  std::string error;
  bool ok = WriteMetricsFile(dir_ + "/m.prom", "x\n", &error);
  umask(old);
  ASSERT_TRUE(ok) << error;
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/m.prom").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(MetricsFileTest, FailsCleanlyWhereItCannotWrite) {
  std::string error;
  // A directory that does not exist.
  EXPECT_FALSE(WriteMetricsFile(dir_ + "/missing/m.prom", "x\n", &error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos)
      << error;
  // A "directory" that is a regular file (fails even for root).
  ASSERT_TRUE(WriteMetricsFile(dir_ + "/plain", "x\n", &error)) << error;
  error.clear();
  EXPECT_FALSE(WriteMetricsFile(dir_ + "/plain/m.prom", "x\n", &error));
  EXPECT_NE(error.find("Not a directory"), std::string::npos) << error;
  // The target is a directory: the temporary file is written, the rename
  // fails, and the temporary file is removed again.
  ASSERT_EQ(mkdir((dir_ + "/taken.prom").c_str(), 0755), 0);
  error.clear();
  EXPECT_FALSE(WriteMetricsFile(dir_ + "/taken.prom", "x\n", &error));
  EXPECT_NE(error.find("cannot rename"), std::string::npos) << error;
  EXPECT_EQ(DirEntries(), (std::vector<std::string>{"plain", "taken.prom"}));
  error.clear();
  EXPECT_FALSE(WriteMetricsFile("", "x\n", &error));
  EXPECT_FALSE(error.empty());
  // A read-only directory (not for root, who may write anyway).
  if (geteuid() != 0) {
    ASSERT_EQ(mkdir((dir_ + "/ro").c_str(), 0555), 0);
    error.clear();
    EXPECT_FALSE(WriteMetricsFile(dir_ + "/ro/m.prom", "x\n", &error));
    EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
    chmod((dir_ + "/ro").c_str(), 0755);
  }
}

TEST_F(MetricsFileTest, FailsCleanlyOnAFullFileSystem) {
  // A file size limit (SIGXFSZ ignored) makes write() fail with EFBIG part
  // way, as a full disk would; in a child, so the limit stays there.
  std::string path = dir_ + "/big.prom";
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, 4096};
    setrlimit(RLIMIT_FSIZE, &lim);
    std::string error;
    bool ok = WriteMetricsFile(path, std::string(100000, 'x'), &error);
    _exit(!ok && error.find("cannot write") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(DirEntries().empty());  // neither the file nor its temporary
}

// A reader never sees a partial file: two writers in one process replace a
// ~1 MB file over and over with two different texts while a reader reads it
// whole, again and again; every read must be exactly one of the two texts
// (and parse).
TEST_F(MetricsFileTest, ReadersNeverSeeAPartialFile) {
  auto big = [](const std::string& program, uint64_t base) {
    MetricsInput in = SampleInput();
    in.program = program;
    for (int i = 0; i < 1500; ++i) {
      ConnectionMetrics c;
      c.kind = "pg.conn";
      c.labels = IdentityLabels("dbname=db" + std::to_string(i) +
                                " user=u host=10.0.0." +
                                std::to_string(i % 250) + " port=5432");
      c.open = base + i;
      in.connections.push_back(c);
    }
    return FormatMetrics(in);
  };
  const std::string a = big("writer-a", 0);
  const std::string b = big("writer-b", 1000000);
  ASSERT_GT(a.size(), 500000u);
  ASSERT_TRUE(ParseExposition(a).ok);
  ASSERT_TRUE(ParseExposition(b).ok);
  const std::string path = dir_ + "/leakwatch.prom";
  std::string error;
  ASSERT_TRUE(WriteMetricsFile(path, a, &error)) << error;

  std::atomic<bool> stop{false};
  std::atomic<int> write_failures{0};
  auto writer = [&](const std::string& text) {
    for (int i = 0; i < 150; ++i) {
      std::string err;
      if (!WriteMetricsFile(path, text, &err)) ++write_failures;
    }
  };
  int reads = 0, saw_a = 0, saw_b = 0, bad = 0;
  size_t bad_size = 0;
  std::thread reader([&] {
    std::string text;
    while (!stop.load()) {
      if (!ReadWhole(path, &text)) {
        ++bad;
        continue;
      }
      ++reads;
      if (text == a) {
        ++saw_a;
      } else if (text == b) {
        ++saw_b;
      } else {
        if (bad++ == 0) bad_size = text.size();
      }
    }
  });
  std::thread wa(writer, a), wb(writer, b);
  wa.join();
  wb.join();
  stop = true;
  reader.join();
  EXPECT_EQ(write_failures.load(), 0);
  EXPECT_EQ(bad, 0) << "partial or mixed files seen, the first of " << bad_size
                    << " bytes (whole ones: " << a.size() << " and " << b.size()
                    << ")";
  EXPECT_GT(reads, 10);
  EXPECT_GT(saw_a + saw_b, 10);
  std::string last;
  ASSERT_TRUE(ReadWhole(path, &last));
  EXPECT_TRUE(last == a || last == b);
  EXPECT_TRUE(ParseExposition(last).ok);
  EXPECT_EQ(DirEntries(), std::vector<std::string>{"leakwatch.prom"});
  RecordProperty("reads", reads);
  RecordProperty("saw_a", saw_a);
  RecordProperty("saw_b", saw_b);
}

}  // namespace
}  // namespace leakwatch

#include "report/suppressions.h"

#include <cstring>
#include <fstream>

#include "report/symbolizer.h"

namespace leakwatch {
namespace {

constexpr const char* kFamilies[] = {"conn", "result", "stmt", "thread"};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Glob with `*` only, matching the whole of `text`.
bool GlobMatch(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && p[pi] == t[ti]) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool TypeMatches(const std::string& type, const KindDesc& kind) {
  return type == "*" || type == kind.name || type == FamilyName(kind.family);
}

bool KnownType(const std::string& type) {
  if (type == "*") return true;
  for (const char* f : kFamilies) {
    if (type == f) return true;
  }
  // A kind: "<library>.<handle>", checked loosely so that suppressions files
  // can name kinds of libraries added later.
  size_t dot = type.find('.');
  return dot != std::string::npos && dot > 0 && dot + 1 < type.size() &&
         type.find_first_of(" \t*:") == std::string::npos;
}

}  // namespace

bool Suppressions::PatternMatches(std::string_view pattern,
                                  std::string_view text) {
  bool anchored_start = !pattern.empty() && pattern.front() == '^';
  if (anchored_start) pattern.remove_prefix(1);
  bool anchored_end = !pattern.empty() && pattern.back() == '$';
  if (anchored_end) pattern.remove_suffix(1);
  std::string glob;
  if (!anchored_start) glob += '*';
  glob += pattern;
  if (!anchored_end) glob += '*';
  return GlobMatch(glob, text);
}

bool Suppressions::AddLine(std::string_view line, const std::string& where,
                           std::string* error) {
  line = Trim(line);
  if (line.empty() || line.front() == '#') return true;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    *error =
        "expected TYPE:PATTERN (TYPE a family conn/result/stmt/thread, "
        "a kind such as pg.conn, or *)";
    return false;
  }
  std::string type(Trim(line.substr(0, colon)));
  std::string pattern(Trim(line.substr(colon + 1)));
  if (!KnownType(type)) {
    *error = "unknown type \"" + type +
             "\": expected a family (conn, result, stmt, thread), a kind "
             "(pg.conn, mysql.result, ...) or *";
    return false;
  }
  if (pattern.empty() || pattern == "^" || pattern == "$" || pattern == "^$") {
    *error = "empty pattern after \"" + type + ":\"";
    return false;
  }
  rules_.push_back(Rule{type, pattern, where, 0});
  return true;
}

bool Suppressions::Load(const std::string& path,
                        std::vector<std::string>* errors) {
  std::ifstream in(path);
  if (!in) {
    errors->push_back("leakwatch: cannot read LEAKWATCH_SUPPRESSIONS file \"" +
                      path + "\": " + std::strerror(errno) +
                      "; nothing is suppressed");
    return false;
  }
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string where = path + ":" + std::to_string(number);
    std::string error;
    if (!AddLine(line, where, &error)) {
      errors->push_back("leakwatch: " + where + ": ignoring \"" +
                        std::string(Trim(line)) + "\": " + error);
    }
  }
  return true;
}

int Suppressions::Match(const KindDesc& kind,
                        const std::vector<const SymbolizedFrame*>& frames,
                        std::string_view start_routine) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    if (!TypeMatches(rule.type, kind)) continue;
    if (!start_routine.empty() && PatternMatches(rule.pattern, start_routine)) {
      return static_cast<int>(i);
    }
    for (const SymbolizedFrame* f : frames) {
      if ((!f->function.empty() && PatternMatches(rule.pattern, f->function)) ||
          (!f->file.empty() && PatternMatches(rule.pattern, f->file)) ||
          (!f->module.empty() && PatternMatches(rule.pattern, f->module))) {
        return static_cast<int>(i);
      }
    }
  }
  return -1;
}

}  // namespace leakwatch

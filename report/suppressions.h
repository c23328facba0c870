// Suppressions: lines in the file named by LEAKWATCH_SUPPRESSIONS that say
// which reports a person has looked at and does not want to see again.
//
//   # comment
//   conn:legacy_pool_*          family (conn, result, stmt, thread) ...
//   pg.result:*report_job.c     ... or kind (pg.conn, mysql.result, ...)
//   *:libvendor.so              ... or * for every kind
//
// A pattern matches a report if it matches, anywhere, the function, the
// source file or the module of one frame of the acquire (creation) stack, or
// a thread's start routine. `*` matches any run of characters; `^` at the
// start or `$` at the end anchors the pattern. A suppressed report is counted,
// not printed; the exit report lists the suppressions used and how often.
//
// Thread safety: Load before use; Match and Hit are called under the report
// module's lock.
#ifndef LEAKWATCH_REPORT_SUPPRESSIONS_H_
#define LEAKWATCH_REPORT_SUPPRESSIONS_H_

#include <string>
#include <string_view>
#include <vector>

#include "tracker/kinds.h"

namespace leakwatch {

struct SymbolizedFrame;

class Suppressions {
 public:
  struct Rule {
    std::string type;     // "conn", "pg.result", "*"
    std::string pattern;  // as written, anchors included
    std::string where;    // "file:line"
    size_t hits = 0;      // handles (or thread sites) suppressed
  };

  // Reads `path`; each malformed line adds one message to `errors` (naming
  // the file and line) and is skipped. False if the file cannot be read.
  bool Load(const std::string& path, std::vector<std::string>* errors);

  // Parses one line; false (and `*error` says why) if it is malformed.
  // Blank lines and comments give true with nothing added.
  bool AddLine(std::string_view line, const std::string& where,
               std::string* error);

  // The index of the first rule matching a report of `kind` with these
  // frames (and start routine, for a thread), or -1.
  int Match(const KindDesc& kind,
            const std::vector<const SymbolizedFrame*>& frames,
            std::string_view start_routine) const;

  void Hit(int rule, size_t count) { rules_[rule].hits += count; }
  const std::vector<Rule>& rules() const { return rules_; }
  bool empty() const { return rules_.empty(); }

  // `*` wildcards, `^`/`$` anchors, otherwise a match anywhere in `text`.
  static bool PatternMatches(std::string_view pattern, std::string_view text);

 private:
  std::vector<Rule> rules_;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_SUPPRESSIONS_H_

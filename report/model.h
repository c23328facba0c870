// What a report says, decided once: the Reporter (reporter.h) builds these
// models from the tracker's events — suppressions applied, floods summarised,
// handles grouped by site — and each renderer (text_report.cc,
// json_report.cc) turns the same model into its words. A renderer adds words,
// never decisions, so text and JSON cannot drift apart.
//
// Thread safety: plain values; built and rendered under the Reporter's lock.
#ifndef LEAKWATCH_REPORT_MODEL_H_
#define LEAKWATCH_REPORT_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "report/suppressions.h"
#include "tracker/tracker.h"

namespace leakwatch {

// One live scan: warnings, growing thread sites and notes.
struct ScanModel {
  // At most this many handles of one site are named per scan, and at most
  // this many notes of one site and type; the rest are counted in one line.
  static constexpr size_t kPerSitePerScan = 3;

  int64_t now_ns = 0;
  // The warnings of one acquisition site, in the order of the scan.
  struct Site {
    ScrubbedVector<Held> shown;  // the first kPerSitePerScan
    size_t more = 0;             // past a rule too, not named one by one
    bool stack_new = false;      // the site's stack has not been shown before
  };
  std::vector<Site> sites;             // in order of first appearance
  ScrubbedVector<SiteGrowth> growing;  // sites that keep growing
  // Notes about handles reported earlier, in order; past kPerSitePerScan of
  // one site and type, one entry stands for the rest (`more` > 0, `note` the
  // first of them).
  struct Note {
    LiveNote note;
    size_t more = 0;
  };
  ScrubbedVector<Note> notes;
  uint64_t notes_dropped = 0;

  bool empty() const {
    return sites.empty() && growing.empty() && notes.empty() &&
           notes_dropped == 0;
  }
};

// What is held now: the exit report (everything still held) or a periodic
// report (what is past a rule now).
struct HeldModel {
  // One group: the handles of one kind from one acquisition stack.
  struct Group {
    const KindDesc* kind = nullptr;
    uint32_t stack_id = 0;
    std::vector<const Held*> members;  // into HeldModel::held
    int64_t oldest_acquired_ns = 0;
    size_t past_threshold = 0;  // members whose finding is PastThreshold
    size_t running = 0;         // threads still running (growing site)
    // Not threads: members convicted because their site keeps growing
    // (statements idle, never used again, also past_threshold; connections
    // not idle past the threshold yet).
    size_t growing = 0;
    size_t pinned = 0;           // connections pinned by unbuffered results
    size_t lost = 0;             // members no pointer refers to
    size_t indirectly_lost = 0;  // members only lost ones refer to
    // Members the script never released, released by the interpreter's
    // shutdown (kReleasedAtShutdown).
    size_t at_shutdown = 0;
    const Held* example = nullptr;  // the oldest member
    size_t example_pins = 0;        // unbuffered results pinning the example
  };

  bool at_exit = true;
  // `leakwatch report`: written even when nothing is held, with the totals
  // since the session began `session_ns` (NowNs) ago.
  bool on_demand = false;
  int64_t session_ns = 0;
  int64_t now_ns = 0;
  ScanModel pending;          // at exit: notes not yet passed on
  ScrubbedVector<Held> held;  // unsuppressed
  std::vector<Group> groups;  // largest first, then oldest
  std::vector<std::pair<std::string, size_t>> per_kind;  // largest first
  // At exit: still reachable, convicted by no rule (Held::convicted false),
  // unsuppressed; grouped the same way. Not counted for the exit code.
  ScrubbedVector<Held> reachable;
  std::vector<Group> reachable_groups;
  std::vector<std::pair<std::string, size_t>> reachable_per_kind;
  // At exit only:
  size_t suppressed = 0;  // handles hidden by suppressions
  std::vector<Suppressions::Rule> suppressions_used;  // with their hits
  uint64_t misuses = 0;
  uint64_t unknown_releases = 0;
  int shards_skipped = 0;
  uint64_t dropped = 0;
  ShardedTable::Totals totals;
  const KindDesc* kinds[kMaxKinds] = {};
};

// A sample of what is held now, for the JSON log's timeline: the tracker's
// counts per kind and for the sites whose live warnings the Reporter wrote.
struct SampleModel {
  const OpenSample* counts = nullptr;
  // The process's first sample: it carries the program, its start time and
  // the options in force (what the exit report carries), so that the log of
  // a process that never reaches its exit report still says them.
  bool first = false;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_MODEL_H_

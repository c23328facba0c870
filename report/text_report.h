// The text report: live warnings from the watchdog's scans and the exit report,
// in the style of HikariCP's leak log (live) and LeakSanitizer (at exit).
//
//   leakwatch[PID]: pg.result 0x... held 1.2 s (threshold 1 s) by thread N, ...
//   leakwatch[PID]: pg.result 0x... reported above was released after 2.3 s
//   leakwatch[PID]: SUMMARY: 3 handles still held at exit: 2 pg.conn, 1 pg.result
//
// Floods are summarised per acquisition site (stack): the first warning of a
// site carries the symbolized stack, later ones are one line, and past
// kWarningsPerSitePerScan in one scan a site gets one "... and N more" line.
//
// Thread safety: OnScan and OnExit both run on the watchdog thread (OnExit on
// the exiting thread only when there is no watchdog); one mutex serialises
// them, OnMisuse and the symbolizer. OnExit waits for it with a deadline and
// writes the report without it if it cannot be had.
#ifndef LEAKWATCH_REPORT_TEXT_REPORT_H_
#define LEAKWATCH_REPORT_TEXT_REPORT_H_

#include <pthread.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "report/log.h"
#include "report/suppressions.h"
#include "report/symbolizer.h"
#include "tracker/tracker.h"

namespace leakwatch {

class TextReporter : public EventSink {
 public:
  static constexpr int kWarningsPerSitePerScan = 3;

  // `tracker` supplies options and depots; `log` receives the text.
  TextReporter(Tracker& tracker, Log& log);
  TextReporter(const TextReporter&) = delete;
  TextReporter& operator=(const TextReporter&) = delete;

  void OnScan(const ScanEvents& events) override;
  void OnExit(const ExitSnapshot& snapshot) override;
  void OnExitAbandoned(int64_t waited_ms) override;
  void OnPeriodic(const ExitSnapshot& snapshot) override;
  void OnMisuse(const Misuse& misuse) override;
  // A misuse report: this call's stack, the earlier release's, the
  // acquisition's (misuse_report.cc).
  std::string FormatMisuse(const Misuse& misuse);
  void PrepareFork() override;
  void ParentAfterFork() override;
  void ChildAfterFork() override;

  // The text OnScan/OnExit would write (used by them, and by tests).
  // FormatScan updates which sites have been shown.
  std::string FormatScan(const ScanEvents& events);
  std::string FormatExit(const ExitSnapshot& snapshot);
  // LEAKWATCH_REPORT_INTERVAL: what is held past its threshold now.
  std::string FormatPeriodic(const ExitSnapshot& snapshot);

  // The exit report's content, before it is written as text or JSON.
  struct ExitGroup {
    const KindDesc* kind = nullptr;
    uint32_t stack_id = 0;
    std::vector<const Record*> records;  // into ExitModel::held
    int64_t oldest_acquired_ns = 0;
    size_t past_threshold = 0;
    size_t running = 0;       // threads still running (growing site)
    size_t pinned = 0;        // connections pinned by unbuffered results
    const Record* example = nullptr;  // the oldest
    size_t example_pins = 0;
  };
  struct ExitModel {
    std::vector<Record> held;     // unsuppressed; groups point into it
    std::vector<ExitGroup> groups;  // largest first, then oldest
    std::vector<std::pair<std::string, size_t>> per_kind;  // largest first
  };
  // Applies suppressions (counting their hits at exit) and groups by site.
  ExitModel BuildExitModel(const ExitSnapshot& snapshot, bool at_exit);
  std::string FormatHeld(const ExitSnapshot& snapshot, bool at_exit);

  // How many held handles (and threads) the exit report showed, suppressed
  // ones not counted: what LEAKWATCH_EXITCODE acts on.
  size_t unsuppressed_at_exit() const { return unsuppressed_at_exit_; }

  // LEAKWATCH_FORMAT=json: the same events as NDJSON (json_report.cc).
  std::string FormatScanJson(const ScanEvents& events);
  std::string FormatExitJson(const ExitSnapshot& snapshot);
  std::string FormatHeldJson(const ExitSnapshot& snapshot, bool at_exit);

  // "1.2 s", "250 ms", "2 s".
  static std::string FormatDuration(int64_t ns);

 private:
  std::string Prefix() const;
  void AppendStack(std::string* out, uint32_t stack_id);
  void AppendIdentity(std::string* out, const Record& r);
  std::string Describe(const Record& r, int64_t now_ns, bool with_threshold);
  // The demangled name of a thread's start routine.
  std::string StartRoutine(uintptr_t code);
  // The suppression rule matching a record's site, or -1 (cached per site).
  int SuppressionFor(const Record& r);
  std::string JsonFrames(uint32_t stack_id);
  std::string JsonRecordFields(const Record& r, int64_t now_ns);
  // Rewrites the LEAKWATCH_METRICS file from a scan's counts.
  void WriteMetrics(const MetricsSnapshot& snapshot);

  Tracker& tracker_;
  Log& log_;
  pid_t pid_;
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;  // guards all below and log_
  Symbolizer symbolizer_;
  std::unordered_set<uint64_t> sites_shown_;  // (kind index << 32) | stack id
  Suppressions suppressions_;
  std::unordered_map<uint64_t, int> suppression_by_site_;
  bool metrics_error_said_ = false;
  size_t unsuppressed_at_exit_ = 0;
  int64_t start_wall_ms_ = 0;  // when the agent started (JSON exit report)
};

// A report site: a kind and an acquisition stack.
inline uint64_t SiteKey(const Record& r) {
  return (static_cast<uint64_t>(r.kind->index) << 32) | r.stack_id;
}

// A JSON string literal for `s` (quotes, backslashes, control characters
// escaped).
std::string JsonString(std::string_view s);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_TEXT_REPORT_H_

// The report module's face to the tracker: the EventSink that turns scans,
// snapshots and misuses into models (model.h), renders them in the format
// LEAKWATCH_FORMAT asks for (render.h), writes them to the log, and rewrites
// the LEAKWATCH_METRICS file after each scan.
//
//   leakwatch[PID]: pg.result 0x... held 1.2 s (threshold 1 s) by thread N, ...
//   leakwatch[PID]: pg.result 0x... reported above was released after 2.3 s
//   leakwatch[PID]: SUMMARY: 3 handles still held at exit: 2 pg.conn, ...
//
// What the Reporter decides (and only it): which handles suppressions hide,
// which sites' stacks have been shown, how floods are summarised (at most
// ScanModel::kPerSitePerScan lines per site and scan), how the exit report
// groups handles. What is a leak is decided by the tracker (Held::finding).
//
// Thread safety: OnScan, OnPeriodic and OnExit run on the watchdog thread
// (OnExit on the exiting thread when there is no watchdog), OnMisuse inside
// a hook; one mutex serialises them and the symbolizer. OnExit waits for it
// with a deadline and writes the report without it if it cannot be had.
// OnExitAbandoned takes no lock and does not allocate.
#ifndef LEAKWATCH_REPORT_REPORTER_H_
#define LEAKWATCH_REPORT_REPORTER_H_

#include <pthread.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "report/log.h"
#include "report/model.h"
#include "report/render.h"
#include "report/suppressions.h"
#include "report/symbolizer.h"
#include "tracker/tracker.h"

namespace leakwatch {

class Reporter : public EventSink {
 public:
  // `tracker` supplies options and depots; `log` receives the reports, in
  // LEAKWATCH_FORMAT.
  Reporter(Tracker& tracker, Log& log);
  // The same in `format` (tests, benchmarks).
  Reporter(Tracker& tracker, Log& log, Format format);
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  void OnScan(const ScanEvents& events) override;
  void OnExit(const ExitSnapshot& snapshot) override;
  void OnPeriodic(const ExitSnapshot& snapshot) override;
  void OnDemand(const ExitSnapshot& snapshot) override;
  void OnMisuse(const Misuse& misuse) override;
  void OnNotice(std::string_view what, std::string_view text) override;
  void OnExitAbandoned(int64_t waited_ms) override;
  void PrepareFork() override;
  void ParentAfterFork() override;
  void ChildAfterFork() override;

  // The text On* would write, without the lock (tests, benchmarks).
  // FormatScan updates which sites' stacks have been shown; FormatExit
  // counts suppression hits and sets unsuppressed_at_exit().
  std::string FormatScan(const ScanEvents& events);
  std::string FormatExit(const ExitSnapshot& snapshot);
  std::string FormatPeriodic(const ExitSnapshot& snapshot);
  std::string FormatMisuse(const Misuse& misuse);

  // The models behind them.
  ScanModel BuildScanModel(const ScanEvents& events);
  HeldModel BuildHeldModel(const ExitSnapshot& snapshot, bool at_exit);

  // How many held handles (and threads) the exit report showed, suppressed
  // ones not counted: what LEAKWATCH_EXITCODE acts on.
  size_t unsuppressed_at_exit() const { return unsuppressed_at_exit_; }

 private:
  // The suppression rule matching a record's site, or -1 (cached per site).
  int SuppressionFor(const Record& r);
  // Groups `held` by kind and acquisition stack, largest group first; the
  // groups point into `held`.
  void GroupHeld(const ScrubbedVector<Held>& held,
                 std::vector<HeldModel::Group>* out,
                 std::vector<std::pair<std::string, size_t>>* per_kind);
  void WriteMetrics(const MetricsSnapshot& snapshot);

  Tracker& tracker_;
  Log& log_;
  const Format format_;
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;  // guards all below and log_
  Symbolizer symbolizer_;
  RenderContext context_;
  std::unique_ptr<Renderer> renderer_;
  std::unordered_set<uint64_t> sites_shown_;  // SiteKey of sites shown
  Suppressions suppressions_;
  std::unordered_map<uint64_t, int> suppression_by_site_;
  bool metrics_error_said_ = false;
  size_t unsuppressed_at_exit_ = 0;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_REPORTER_H_
